"""Data-subject requests: export finds the subject everywhere (as caller, callee, linked call); delete leaves no
row and no readable older version and no parquet byte of the subject, is refused under a legal hold, keeps the
caller's row where the subject was only the callee, leaves anonymous aggregates, and is idempotent."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from jobs.governance import dsr, legal_holds
from jobs.platform import lake
from jobs.platform.identifiers import pseudonymize
from jobs.cli.main import main as cli_main
from jobs.platform.keys import KeyMaterial, rotate, save_key_material
from jobs.pipeline.runner import run_dsr
from lake_layout.access import AccessDenied
from lake_layout.config import KeySettings, Settings
from lake_layout.registry import TableSpec
from lake_layout.tables import (
    AUDIT_ACCESS_LOG,
    BRONZE_CALL_EVENTS,
    GOLD_BILLING_RATED_CALLS,
    GOLD_HOURLY_GEO_USAGE,
    REFERENCE_SUBSCRIBER_CONSENT,
    SILVER_CALLS,
    SILVER_QUARANTINE,
    TABLES_BY_NAME,
)

SUBJECT = "+4915112345678"
OTHER = "+4915187654321"
DAY = date(2026, 3, 2)
PARTY = ("subscriber_pseudonym", "callee_pseudonym")


def _row(spec: TableSpec, **values: Any) -> dict[str, Any]:
    """A full row of `spec`: given values, placeholders for the other non-nullable columns, null elsewhere."""
    defaults = {"string": "x", "int": 0, "long": 0, "boolean": False, "date": DAY, "binary": b"\x01cipher",
                "timestamp": datetime(2026, 3, 2, 10, tzinfo=timezone.utc), "double": 0.0}
    return {c.name: values.get(c.name, None if c.nullable else defaults[c.type]) for c in spec.columns}


def _write(spark, spec: TableSpec, settings: Settings, rows: list[dict[str, Any]]) -> None:  # type: ignore[no-untyped-def]
    # A plain append (the first one creates the table): each call is one Delta version.
    (lake.conform(spark.createDataFrame(rows, spec.spark_schema()), spec).write.format("delta").mode("append")
     .partitionBy(*spec.partition_by).save(spec.location(settings)))


@pytest.fixture(scope="module")
def rotated_keys(keys: KeyMaterial) -> KeyMaterial:
    return rotate(keys, "pseudonym")  # rows made under the old key id must be found too


@pytest.fixture(scope="module")
def world(spark, settings: Settings, rotated_keys: KeyMaterial, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """A small lake: the subject calls (under both key ids), is called by OTHER, has consent rows, a quarantined
    event of its own call, a billed call; OTHER has its own rows; one anonymous aggregate row."""
    tmp = tmp_path_factory.mktemp("dsr")
    s = replace(settings.with_lake_root(str(tmp / "lake")), keys=KeySettings(file=str(tmp / "keys.json")))
    save_key_material(rotated_keys, Path(s.keys.file))  # the runner loads the keys from the settings' key file
    new_id = rotated_keys.pseudonym.active
    old_id = next(k for k in rotated_keys.pseudonym.keys if k != new_id)

    def psn(msisdn: str, key_id: str = new_id) -> str:
        return pseudonymize("msisdn", msisdn, rotated_keys.pseudonym.get(key_id))

    me_new, me_old, other = psn(SUBJECT), psn(SUBJECT, old_id), psn(OTHER)
    calls = [  # call_id, caller, callee, key id
        ("c-me-1", me_new, other, new_id), ("c-me-2", me_old, None, old_id),
        ("c-to-me", other, me_new, new_id), ("c-other", other, psn("+4915100000001"), new_id),
    ]
    bronze = [_row(BRONZE_CALL_EVENTS, event_id=f"e-{cid}-{i}", call_id=cid, subscriber_pseudonym=caller,
                   callee_pseudonym=callee, pseudonym_key_id=k, object_key=f"landing/{cid}.pb", record_index=i,
                   latitude=52.52, src_ip_prefix="10.1.2.0/24")
              for cid, caller, callee, k in calls for i in range(2)]
    silver = [_row(SILVER_CALLS, call_id=cid, subscriber_pseudonym=caller, callee_pseudonym=callee,
                   pseudonym_key_id=k, device_pseudonym=f"dev-{caller[:6]}", h3_cell="8a1f", account_id="acct-1",
                   duration_ms=60_000)
              for cid, caller, callee, k in calls]
    _write(spark, BRONZE_CALL_EVENTS, s, bronze)
    _write(spark, SILVER_CALLS, s, silver[:1])  # two commits: the subject sits in more than one older version
    _write(spark, SILVER_CALLS, s, silver[1:])
    _write(spark, REFERENCE_SUBSCRIBER_CONSENT, s, [
        _row(REFERENCE_SUBSCRIBER_CONSENT, subscriber_pseudonym=p, pseudonym_key_id=k, source_object_key=f"dir/{n}.csv",
             effective_from=datetime(2026, 3, 1, n, tzinfo=timezone.utc))
        for n, (p, k) in enumerate([(me_new, new_id), (me_old, old_id), (other, new_id)])])
    _write(spark, SILVER_QUARANTINE, s, [
        _row(SILVER_QUARANTINE, event_id="q-me", call_id="c-me-1", event_date=DAY),
        _row(SILVER_QUARANTINE, event_id="q-other", call_id="c-other", event_date=DAY)])
    _write(spark, GOLD_BILLING_RATED_CALLS, s, [
        _row(GOLD_BILLING_RATED_CALLS, call_id=cid, invoice_period="2026-03", period="2026-03")
        for cid in ("c-me-1", "c-to-me")])
    _write(spark, GOLD_HOURLY_GEO_USAGE, s, [_row(GOLD_HOURLY_GEO_USAGE, geo_zone="DE", distinct_subscribers=12, k=10)])
    return {"settings": s, "tmp": tmp, "keys": rotated_keys, "me": {me_new, me_old}, "other": other,
            "stranger": psn("+4915100000001")}


@pytest.fixture(scope="module")
def exported(spark, world: dict[str, Any]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The export through the runner entry point the DAG task calls (its report is what Airflow keeps)."""
    return run_dsr(action="export", msisdn=SUBJECT, request_id="REQ-1", actor="privacy-desk",
                   out=world["tmp"] / "exports", settings=world["settings"])


@pytest.fixture(scope="module")
def deleted(spark, world: dict[str, Any], exported: dict[str, Any]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """A delete refused under a hold, then (hold released) the delete, then the same request again."""
    s, keys = world["settings"], world["keys"]
    hold = legal_holds.place(spark, s, keys, case_id="CASE-9", msisdn=SUBJECT, data_from=DAY, data_to=DAY,
                             actor="legal", reason="litigation")
    versions_before = {n: lake.table_version(spark, TABLES_BY_NAME[n], s) for n in ("silver.calls", "bronze.call_events")}
    with pytest.raises(dsr.DsrRefused) as refused:
        dsr.delete(spark, s, keys, msisdn=SUBJECT, request_id="REQ-1", actor="privacy-desk")
    versions_refused = {n: lake.table_version(spark, TABLES_BY_NAME[n], s) for n in versions_before}
    refused_receipt = dsr.receipts(spark, s, "REQ-1")
    legal_holds.release(spark, s, hold_id=hold.hold_id, actor="legal", reason="case settled")
    history_before = {spec.name: lake.table_version(spark, spec, s) for spec in (GOLD_HOURLY_GEO_USAGE, GOLD_BILLING_RATED_CALLS)}
    first = dsr.delete(spark, s, keys, msisdn=SUBJECT, request_id="REQ-1", actor="privacy-desk")
    again = dsr.delete(spark, s, keys, msisdn=SUBJECT, request_id="REQ-1", actor="privacy-desk")
    return {"hold": hold, "refused": refused.value, "refused_receipt": refused_receipt,
            "versions_before": versions_before, "versions_refused": versions_refused, "first": first, "again": again,
            "untouched_versions": history_before}


def _subject_rows(df, pseudonyms: set[str]):  # type: ignore[no-untyped-def]
    from pyspark.sql import functions as F

    condition = F.lit(False)
    for column in PARTY:
        if column in df.columns:
            condition = condition | F.col(column).isin(sorted(pseudonyms))
    return df.where(condition)


def test_every_table_has_a_scope_and_personal_tables_are_changed() -> None:
    scopes = {s.spec.name: s for s in dsr.dsr_scopes()}
    assert set(scopes) == set(TABLES_BY_NAME)
    treatment = {n: s.treatment for n, s in scopes.items()}
    assert {n for n, t in treatment.items() if t is dsr.Treatment.ERASE} >= {
        "bronze.call_events", "silver.calls", "reference.subscriber_consent", "gold.support_triggers"}
    assert treatment["silver.quarantine"] is dsr.Treatment.ERASE_LINKED and scopes["silver.quarantine"].link_column == "call_id"
    assert treatment["bronze.quarantine"] is dsr.Treatment.ERASE_LINKED and scopes["bronze.quarantine"].link_column == "event_id"
    assert treatment["gold.billing_rated_calls"] is dsr.Treatment.RETAINED and scopes["gold.billing_rated_calls"].exported
    assert treatment["audit.legal_holds"] is dsr.Treatment.RETAINED and not scopes["audit.legal_holds"].exported
    assert {"gold.hourly_geo_usage", "gold.public_usage_stats", "gold.account_usage_daily",
            "silver.platform_completeness"} <= {n for n, t in treatment.items() if t is dsr.Treatment.ANONYMOUS}
    # every table holding a pseudonym or personal column is changed or deliberately retained, never "anonymous";
    # every table with a subscriber column is erased unless it is an audit record
    for spec in TABLES_BY_NAME.values():
        if any(c.classification.value in ("pseudonymous", "personal", "restricted") for c in spec.columns):
            assert treatment[spec.name] in (dsr.Treatment.ERASE, dsr.Treatment.RETAINED), spec.name
        if "subscriber_pseudonym" in spec.column_names and spec.layer != "audit":
            assert treatment[spec.name] is dsr.Treatment.ERASE, spec.name


def test_requests_are_validated_and_roles_checked() -> None:
    with pytest.raises(dsr.DsrError, match="E.164"):
        dsr.check_request(msisdn="015112345678", request_id="R")
    with pytest.raises(dsr.DsrError, match="path separators"):
        dsr.check_request(msisdn=SUBJECT, request_id="../R")
    assert cli_main(["dsr", "delete", "--subscriber", "015112345678", "--request-id", "R"]) == 2  # before any Spark
    dsr.require_dsr_role("data_engineer")
    with pytest.raises(AccessDenied, match="closed to it: \\['bronze.call_events'"):
        dsr.require_dsr_role("analyst")


def test_export_finds_the_subject_as_caller_callee_and_linked(exported: dict[str, Any], world: dict[str, Any]) -> None:
    out = Path(exported["output"])
    manifest = json.loads((out / "manifest.json").read_text())
    rows = {t: [json.loads(line) for line in (out / f"{t}.jsonl").read_text().splitlines()] for t in manifest["tables"]}
    assert set(rows) == {"bronze.call_events", "silver.calls", "reference.subscriber_consent", "silver.quarantine",
                         "gold.billing_rated_calls"}  # every exported table that exists in this lake
    assert sorted((r["call_id"], r["subject_role"]) for r in rows["silver.calls"]) == [
        ("c-me-1", "subscriber"), ("c-me-2", "subscriber"), ("c-to-me", "callee")]
    assert len(rows["bronze.call_events"]) == 6  # 2 events of each of the 3 calls
    assert {r["subscriber_pseudonym"] for r in rows["reference.subscriber_consent"]} == world["me"]  # both key ids
    assert [(r["event_id"], r["subject_role"]) for r in rows["silver.quarantine"]] == [("q-me", "linked")]
    assert [r["call_id"] for r in rows["gold.billing_rated_calls"]] == ["c-me-1"]  # the subject's own billed call
    # in the callee row the caller's pseudonyms and location are nulled; restricted ciphertext is never exported
    callee = next(r for r in rows["silver.calls"] if r["subject_role"] == "callee")
    assert callee["subscriber_pseudonym"] is None and callee["device_pseudonym"] is None and callee["h3_cell"] is None
    assert callee["callee_pseudonym"] in world["me"] and callee["duration_ms"] == 60_000
    header = next(csv.reader((out / "bronze.call_events.csv").open()))
    assert "ip_encrypted" not in header and "latitude" in header and header[0] == "subject_role"
    assert manifest["tables"]["bronze.call_events"]["withheld_columns"] == ["ip_encrypted", "location_encrypted"]
    assert manifest["tables"]["silver.calls"]["rows"] == {"subscriber": 2, "callee": 1}
    for f in manifest["files"]:  # hashes, sizes and row counts match the files
        data = (out / f["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"] and len(data) == f["size"]
        assert f["rows"] == len(rows[f["table"]])
    blob = b"".join(p.read_bytes() for p in out.iterdir())
    assert SUBJECT.encode() not in blob and SUBJECT[1:].encode() not in blob
    assert world["stranger"].encode() not in blob and f"dev-{world['other'][:6]}".encode() not in blob
    receipt = exported["receipt"]
    assert receipt["status"] == "completed" and receipt["rows_total"] == 3 + 6 + 2 + 1 + 1
    assert receipt["output"] == str(out / "manifest.json") and SUBJECT not in json.dumps(exported)


def test_delete_is_refused_under_a_legal_hold_and_changes_nothing(deleted: dict[str, Any]) -> None:
    refused, hold = deleted["refused"], deleted["hold"]
    assert f"hold {hold.hold_id} (case CASE-9)" in str(refused) and "nothing was deleted" in str(refused)
    assert deleted["versions_refused"] == deleted["versions_before"]
    receipt = next(r for r in deleted["refused_receipt"] if r["kind"] == "delete")
    assert receipt["status"] == "refused" and receipt["hold_ids"] == [hold.hold_id]
    assert "CASE-9" in receipt["refusal_reason"] and receipt["completed_at"] is None and receipt["rows_total"] == 0


def test_delete_leaves_no_row_and_no_readable_older_version(spark, deleted: dict[str, Any], world: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    from delta.tables import DeltaTable

    s, me = world["settings"], world["me"]
    receipt = deleted["first"].receipt
    for name in json.loads(receipt["tables"]):
        spec = TABLES_BY_NAME[name]
        location = spec.location(s)
        assert _subject_rows(lake.read_table(spark, spec, s), me).count() == 0, name
        versions = [r[0] for r in DeltaTable.forPath(spark, location).history().select("version").collect()]
        assert len(versions) >= 3, name  # insert(s), delete / update, vacuum: older versions did hold the subject
        for version in versions:
            try:
                old = spark.read.format("delta").option("versionAsOf", version).load(location)
                found = _subject_rows(old, me).count()
            except Exception as exc:  # files vacuumed: the version cannot be read any more
                assert "does not exist" in str(exc) or "FileNotFound" in str(exc) or "FILE_NOT_EXIST" in str(exc), exc
                continue
            assert found == 0, (name, version)
        # the bytes: no remaining data file of the table holds a pseudonym of the subject
        for path in Path(location).rglob("*.parquet"):
            if "_delta_log" in path.parts:
                continue
            table = pq.read_table(path)
            for column in PARTY:
                if column in table.column_names:
                    assert not set(table.column(column).to_pylist()) & me, (name, path)
            assert not [p for p in me if p.encode() in path.read_bytes()], (name, path)


def test_delete_keeps_callers_row_other_subjects_and_retained_tables(spark, deleted: dict[str, Any], world: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    s = world["settings"]
    calls = {r["call_id"]: r for r in lake.read_table(spark, SILVER_CALLS, s).collect()}
    assert sorted(calls) == ["c-other", "c-to-me"]
    assert calls["c-to-me"]["subscriber_pseudonym"] == world["other"] and calls["c-to-me"]["callee_pseudonym"] is None
    assert [r["event_id"] for r in lake.read_table(spark, SILVER_QUARANTINE, s).collect()] == ["q-other"]
    assert lake.read_table(spark, REFERENCE_SUBSCRIBER_CONSENT, s).count() == 1
    assert sorted(r["call_id"] for r in lake.read_table(spark, GOLD_BILLING_RATED_CALLS, s).collect()) == ["c-me-1", "c-to-me"]
    now = {spec.name: lake.table_version(spark, spec, s) for spec in (GOLD_HOURLY_GEO_USAGE, GOLD_BILLING_RATED_CALLS)}
    assert now == deleted["untouched_versions"]  # anonymous aggregates and retained records are not rewritten


def test_receipt_names_what_was_done_and_rerun_finds_nothing(spark, deleted: dict[str, Any], world: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    s = world["settings"]
    first = next(r for r in dsr.receipts(spark, s, "REQ-1") if r["kind"] == "delete")
    assert first["status"] == "completed" and first["refusal_reason"] is None and first["hold_ids"] == []
    assert set(first["subscriber_pseudonyms"]) == world["me"]
    done = json.loads(deleted["first"].receipt["tables"])
    tables = first["tables"]  # the stored receipt is the re-run's, which found nothing more: same account
    assert tables == done and first["rows_total"] == deleted["first"].receipt["rows_total"]
    assert done["silver.calls"]["rows"] == {"subscriber_deleted": 2, "callee_redacted": 1}
    assert done["bronze.call_events"]["rows"] == {"subscriber_deleted": 4, "callee_redacted": 2}
    assert done["silver.quarantine"]["rows"] == {"linked_deleted": 1}
    assert done["reference.subscriber_consent"]["rows"] == {"subscriber_deleted": 2}
    assert done["silver.calls"]["delta_version_after"] > done["silver.calls"]["delta_version_before"]
    assert done["silver.calls"]["files_removed"] >= 2
    for name, entry in done.items():  # the stated residual: commit files whose statistics still name the subject
        log = Path(TABLES_BY_NAME[name].location(s)) / "_delta_log"
        mentions = sum(1 for f in log.glob("*.json") if any(p.encode() in f.read_bytes() for p in world["me"]))
        assert entry["log_files_with_subject"] == mentions, name
    assert deleted["first"].receipt["rows_total"] == 2 + 1 + 4 + 2 + 1 + 2
    assert tables["silver.calls"]["delta_version_after"] == done["silver.calls"]["delta_version_after"]  # rerun: no commit
    assert "gold.hourly_geo_usage" in first["anonymous_tables_left"]
    assert "financial record" in first["retained_tables"]["gold.billing_rated_calls"]
    assert first["landing_objects"] == ["dir/0.csv", "dir/1.csv", "landing/c-me-1.pb", "landing/c-me-2.pb",
                                        "landing/c-to-me.pb"]
    log = lake.read_table(spark, AUDIT_ACCESS_LOG, s).where("action = 'dsr_delete'").orderBy("seq").collect()
    assert [(r["allowed"], r["row_count"]) for r in log] == [(False, None), (True, 12), (True, 0)]
    assert all(SUBJECT not in r["statement"] for r in log)
