"""Forensic timeline (order across layers, period, quarantine reasons) and the retrieval drill (complete / not)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime, timezone
from typing import Any

import pytest
from delta.tables import DeltaTable

from jobs.governance import forensics_drill, forensics_timeline
from jobs.platform import hashchain, lake
from jobs.platform.identifiers import pseudonymize
from jobs.platform.keys import KeyMaterial
from lake_layout.access import AccessDenied
from lake_layout.config import ForensicsSettings, Settings
from lake_layout.registry import TableSpec
from lake_layout.tables import (
    AUDIT_ACCESS_LOG, AUDIT_LANDING_INTEGRITY, BRONZE_CALL_EVENTS, BRONZE_INGESTED_OBJECTS, BRONZE_QUARANTINE,
    GOLD_BILLING_RATED_CALLS, SILVER_CALLS, SILVER_QUARANTINE,
)

SUBJECT = "+4915112345678"
OTHER = "+4915187654321"
START, END = date(2026, 3, 1), date(2026, 3, 3)


def _at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=timezone.utc)


def _row(spec: TableSpec, **values: Any) -> dict[str, Any]:
    """A full row of `spec`: given values, placeholders for the other non-nullable columns, null elsewhere."""
    defaults = {"string": "x", "int": 0, "long": 0, "boolean": False, "date": START, "timestamp": _at(1, 0),
                "double": 0.0, "binary": b"\x00"}
    return {c.name: values.get(c.name, None if c.nullable else defaults[c.type]) for c in spec.columns}


# (event_id, call_id, event_type, device time, clock offset ms, object key, record index, msisdn)
EVENTS = [
    ("e1", "c1", "call_start", _at(1, 9, 59), 60_000, "obj-a", 0, SUBJECT),    # corrected 10:00
    ("e2", "c1", "call_end", _at(1, 10, 4), 60_000, "obj-a", 1, SUBJECT),      # corrected 10:05
    ("e3", "c2", "call_start", _at(2, 11), 0, "obj-b", 0, SUBJECT),
    ("e4", "c2", "call_failure", _at(2, 11, 1), 0, "obj-b", 1, SUBJECT),       # silver quarantined it
    ("e5", "c3", "call_start", _at(5, 8), 0, "obj-c", 0, SUBJECT),             # outside the period
    ("e6", "c-o", "call_start", _at(2, 9), 0, "obj-o", 0, OTHER),
]
RECEIVED = {"obj-a": _at(1, 10, 6), "obj-b": _at(2, 11, 30), "obj-c": _at(5, 8, 30), "obj-o": _at(2, 9, 30)}
PLATFORM = {"obj-a": "ios", "obj-b": "android", "obj-c": "web", "obj-o": "ios"}


@pytest.fixture(scope="module")
def lake_case(spark, settings: Settings, keys: KeyMaterial, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("forensics-timeline")
    s = replace(settings.with_lake_root(str(tmp / "lake")),
                forensics=ForensicsSettings(signing_key=str(tmp / "keys" / "f.pem"), bundles_dir=str(tmp / "bundles")))
    key_id = keys.pseudonym.active

    def psn(msisdn: str) -> str:
        return pseudonymize("msisdn", msisdn, keys.pseudonym.get(key_id))

    events = [_row(BRONZE_CALL_EVENTS, event_id=e, call_id=c, event_type=t, event_ts_device=ts, event_date=ts.date(),
                   clock_offset_ms=off, object_key=o, record_index=i, subscriber_pseudonym=psn(m),
                   pseudonym_key_id=key_id, platform=PLATFORM[o], app_version="5.1", network_type="lte",
                   received_at=RECEIVED[o], ip_encrypted=b"secret-ciphertext")
              for e, c, t, ts, off, o, i, m in EVENTS]
    objects = [_row(BRONZE_INGESTED_OBJECTS, object_key=o, upload_date=r.date(), sha256=f"sha-{o}", size_bytes=100,
                    status="partial" if o == "obj-b" else "accepted", records_received=3, records_accepted=2,
                    records_quarantined=1 if o == "obj-b" else 0, ingested_at=r.replace(minute=45))
               for o, r in RECEIVED.items()]
    bronze_q = [_row(BRONZE_QUARANTINE, object_key="obj-b", record_index=2, reason="invalid_msisdn",
                     upload_date=RECEIVED["obj-b"].date(), records=1, platform="android")]
    silver_q = [_row(SILVER_QUARANTINE, event_id="e4", call_id="c2", event_date=date(2026, 3, 2),
                     reason="before_account_creation", object_key="obj-b", record_index=1)]
    calls = [_row(SILVER_CALLS, call_id="c1", call_date=START, status="completed", started_at=_at(1, 10),
                  ended_at=_at(1, 10, 5), duration_ms=300_000, subscriber_pseudonym=psn(SUBJECT), platform="ios",
                  pseudonym_key_id=key_id),
             _row(SILVER_CALLS, call_id="c2", call_date=date(2026, 3, 2), status="incomplete", started_at=_at(2, 11),
                  subscriber_pseudonym=psn(SUBJECT), platform="android", pseudonym_key_id=key_id),
             _row(SILVER_CALLS, call_id="c3", call_date=date(2026, 3, 5), status="open", started_at=_at(5, 8),
                  subscriber_pseudonym=psn(SUBJECT), platform="web", pseudonym_key_id=key_id),
             _row(SILVER_CALLS, call_id="c-o", call_date=date(2026, 3, 2), status="open", started_at=_at(2, 9),
                  subscriber_pseudonym=psn(OTHER), platform="ios", pseudonym_key_id=key_id)]
    rated = [_row(GOLD_BILLING_RATED_CALLS, call_id="c1", period="2026-03", invoice_period="2026-03",
                  call_date=START, started_at=_at(1, 10), rating_rule="plan=pro class=domestic_mobile 60/60",
                  charge_minor=12, currency="EUR", rated_at=_at(4, 1))]
    for spec, rows in ((BRONZE_CALL_EVENTS, events), (BRONZE_INGESTED_OBJECTS, objects), (BRONZE_QUARANTINE, bronze_q),
                       (SILVER_QUARANTINE, silver_q), (SILVER_CALLS, calls), (GOLD_BILLING_RATED_CALLS, rated)):
        # one plain Delta write per table (version 0): the fixture needs the data, not the merge path
        (lake.conform(spark.createDataFrame(rows, spec.spark_schema()), spec).coalesce(1).write.format("delta")
         .partitionBy(*spec.partition_by).save(spec.location(s)))
    hashchain.append_to_table(spark, s, AUDIT_LANDING_INTEGRITY, [
        {"object_key": o, "bucket": "landing", "sha256": f"sha-{o}", "size_bytes": 100, "upload_date": r.date(),
         "ingest_run_id": "run-1", "recorded_at": r.replace(minute=46)} for o, r in RECEIVED.items()])
    return {"settings": s, "tmp": tmp, "psn": psn(SUBJECT)}


def _kinds(entries: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    return [(e["at"][11:19], e["layer"], e["kind"]) for e in entries]


def test_call_timeline_is_ordered_across_layers_and_logged(spark, lake_case: dict[str, Any], keys: KeyMaterial) -> None:  # type: ignore[no-untyped-def]
    s = lake_case["settings"]
    report = forensics_timeline.run(spark, s, keys, call_id="c1", role="security", user="ivy")
    assert _kinds(report.entries) == [
        ("10:00:00", "bronze", "call_start"),  # device 09:59 + 60 s offset
        ("10:00:00", "silver", "call_started"),  # same time: bronze before silver
        ("10:00:00", "gold", "call_rated"),
        ("10:05:00", "bronze", "call_end"),
        ("10:05:00", "silver", "call_ended"),
        ("10:06:00", "landing", "object_received"),
        ("10:45:00", "landing", "object_ingested"),
        ("10:46:00", "landing", "object_chained"),
    ]
    start = report.entries[0]
    assert start["source"] == "bronze.call_events" and start["delta_version"] == report.versions["bronze.call_events"]
    assert start["detail"]["device_time"].startswith("2026-03-01 09:59:00") and start["detail"]["clock_offset_ms"] == "60000"
    assert report.entries[2]["detail"]["rating_rule"] == "plan=pro class=domestic_mobile 60/60"
    assert report.entries[5]["detail"]["sha256"] == "sha-obj-a"
    assert report.entries[7]["detail"]["sha256_matches_manifest"] == "true"
    assert "secret-ciphertext" not in json.dumps(report.entries)

    log = lake.read_table(spark, AUDIT_ACCESS_LOG, s).orderBy("seq").collect()[-1]
    assert (log["action"], log["user"], log["allowed"], log["row_count"]) == ("export", "ivy", True, 8)
    assert "forensics timeline --call-id c1" in log["statement"]
    assert "bronze.call_events" in json.loads(log["tables"])
    assert not [c for c in json.loads(log["columns"]) if c.endswith("_encrypted")]  # restricted columns never read


def test_subscriber_timeline_is_limited_to_the_period_and_shows_quarantine(spark, lake_case: dict[str, Any],  # type: ignore[no-untyped-def]
                                                                          keys: KeyMaterial, tmp_path) -> None:
    s = lake_case["settings"]
    report = forensics_timeline.run(spark, s, keys, msisdn=SUBJECT, start=START, end=END, role="security", user="ivy")
    entries = report.entries
    assert {e["call_id"] for e in entries if e["call_id"]} == {"c1", "c2"}  # not c3 (03-05), not the other subscriber
    assert all("2026-03-01" <= e["at"][:10] <= "2026-03-03" for e in entries)
    assert {e["detail"].get("object_key") for e in entries if e["layer"] == "landing"} == {"obj-a", "obj-b"}
    quarantined = {(e["kind"], e["detail"]["reason"], e["detail"].get("object_key")) for e in entries
                   if e["kind"].endswith("_quarantined")}
    assert quarantined == {("bronze_quarantined", "invalid_msisdn", "obj-b"),
                           ("silver_quarantined", "before_account_creation", "obj-b")}
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
    forensics_timeline.write_jsonl(entries, tmp_path / "t.jsonl")
    text = (tmp_path / "t.jsonl").read_text()
    assert len(text.splitlines()) == len(entries) and SUBJECT not in text and SUBJECT.lstrip("+") not in text
    log = lake.read_table(spark, AUDIT_ACCESS_LOG, s).orderBy("seq").collect()[-1]
    assert SUBJECT not in log["statement"] and "--subscriber [redacted" in log["statement"]

    with pytest.raises(forensics_timeline.TimelineError, match="needs a period"):
        forensics_timeline.run(spark, s, keys, msisdn=SUBJECT, role="security")
    with pytest.raises(AccessDenied):
        forensics_timeline.run(spark, s, keys, call_id="c1", role="analyst", user="eve")
    denied = lake.read_table(spark, AUDIT_ACCESS_LOG, s).orderBy("seq").collect()[-1]
    assert (denied["user"], denied["allowed"], denied["row_count"]) == ("eve", False, None)


def test_drill_complete_on_intact_lake_and_incomplete_without_an_integrity_entry(  # type: ignore[no-untyped-def]
        spark, lake_case: dict[str, Any], keys: KeyMaterial, tmp_path) -> None:
    s = lake_case["settings"]
    path = tmp_path / "reports" / "forensics_drill.json"
    report = forensics_drill.run(spark, s, keys, msisdn=SUBJECT, days=3, as_of=END, role="security",
                                 report_path=path, work_dir=tmp_path)
    assert report.problems == [] and report.complete
    rows = {t.table: t.retrieved_rows for t in report.tables}
    assert rows == {"bronze.call_events": 4, "silver.calls": 2, "bronze.ingested_objects": 2,
                    "audit.landing_integrity": 2, "bronze.quarantine": 1, "silver.quarantine": 1,
                    "gold.billing_rated_calls": 1}
    saved = json.loads(path.read_text())
    assert saved["complete"] is True and saved["days"] == 3 and saved["retrieved_rows"] == 13
    assert saved["retrieval_seconds"] >= sum(t["seconds"] for t in saved["tables"]) > 0
    assert SUBJECT not in path.read_text()

    # An ingested object whose integrity entry is gone: its events can no longer be traced to the bytes received.
    table = DeltaTable.forPath(spark, AUDIT_LANDING_INTEGRITY.location(s))
    version = lake.table_version(spark, AUDIT_LANDING_INTEGRITY, s)
    table.delete("object_key = 'obj-a'")
    try:
        broken = forensics_drill.run(spark, s, keys, days=3, as_of=END, role="security", work_dir=tmp_path)
    finally:
        table.restoreToVersion(version)
    assert not broken.complete
    assert broken.subject.startswith(f"busiest subscriber in silver.calls, pseudonym {lake_case['psn'][:12]}…")
    assert lake_case["psn"] not in broken.subject
    assert broken.problems == ["audit.landing_integrity: 1 landing object(s) of retrieved bronze events are not in "
                               "the retrieved rows, e.g. obj-a"]
    assert "INCOMPLETE" in forensics_drill.render(broken)
