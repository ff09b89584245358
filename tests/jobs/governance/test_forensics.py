"""Forensic evidence bundles: exactly the subject's rows, no clear MSISDN, signed manifest, custody chain."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from jobs.governance import forensics
from jobs.platform import lake
from jobs.platform.identifiers import pseudonymize
from jobs.platform.keys import KeyMaterial, rotate
from lake_layout.access import AccessDenied
from lake_layout.config import ForensicsSettings, Settings
from lake_layout.registry import TableSpec
from lake_layout.tables import AUDIT_ACCESS_LOG, REFERENCE_SUBSCRIBER_CONSENT, SILVER_CALLS

SUBJECT = "+4915112345678"
OTHER = "+4915187654321"
START, END = date(2026, 3, 1), date(2026, 3, 3)


def _ts(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 3 if day > 0 else 2, abs(day), hour, tzinfo=timezone.utc)


def _row(spec: TableSpec, **values: Any) -> dict[str, Any]:
    """A full row of `spec`: given values, placeholders for the other non-nullable columns, null elsewhere."""
    defaults = {"string": "x", "int": 0, "long": 0, "boolean": False, "date": date(2026, 3, 1),
                "timestamp": _ts(1), "double": 0.0}
    return {c.name: values.get(c.name, None if c.nullable else defaults[c.type]) for c in spec.columns}


@pytest.fixture(scope="module")
def rotated_keys(keys: KeyMaterial) -> KeyMaterial:
    return rotate(keys, "pseudonym")  # two pseudonym key ids: rows made before the rotation must be found too


@pytest.fixture(scope="module")
def case(spark, settings: Settings, rotated_keys: KeyMaterial, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("forensics")
    s = replace(settings.with_lake_root(str(tmp / "lake")),
                forensics=ForensicsSettings(signing_key=str(tmp / "keys" / "forensics.pem"), bundles_dir=str(tmp / "bundles")))
    old_id = next(k for k in rotated_keys.pseudonym.keys if k != rotated_keys.pseudonym.active)
    new_id = rotated_keys.pseudonym.active

    def psn(msisdn: str, key_id: str) -> str:
        return pseudonymize("msisdn", msisdn, rotated_keys.pseudonym.get(key_id))

    calls = [  # (call_id, msisdn, key id, call_date)
        ("c-in-new", SUBJECT, new_id, date(2026, 3, 1)), ("c-in-old", SUBJECT, old_id, date(2026, 3, 3)),
        ("c-out", SUBJECT, new_id, date(2026, 3, 5)), ("c-other", OTHER, new_id, date(2026, 3, 2)),
    ]
    call_rows = [_row(SILVER_CALLS, call_id=cid, subscriber_pseudonym=psn(m, k), pseudonym_key_id=k, call_date=d,
                      started_at=datetime(d.year, d.month, d.day, 9, tzinfo=timezone.utc))
                 for cid, m, k, d in calls]
    consent_rows = [_row(REFERENCE_SUBSCRIBER_CONSENT, subscriber_pseudonym=psn(m, new_id), pseudonym_key_id=new_id,
                         effective_from=at, telemetry_level=level)
                    for m, at, level in [(SUBJECT, _ts(2), "in"), (SUBJECT, _ts(-1), "in_force_at_start"),
                                         (SUBJECT, datetime(2026, 1, 5, tzinfo=timezone.utc), "superseded"),
                                         (SUBJECT, _ts(4), "after"), (OTHER, _ts(2), "other"),
                                         (OTHER, _ts(-1), "other_in_force")]]
    for spec, rows in ((SILVER_CALLS, call_rows), (REFERENCE_SUBSCRIBER_CONSENT, consent_rows)):
        lake.merge_insert_new(spark, spark.createDataFrame(rows, spec.spark_schema()), spec, s)
    report = forensics.export(spark, s, rotated_keys, case_id="CASE-42", msisdn=SUBJECT, start=START, end=END,
                              out_dir=tmp / "bundles", handler="alice", role="security")
    return {"settings": s, "bundle": Path(report.bundle), "report": report, "tmp": tmp,
            "subject_psn": {psn(SUBJECT, old_id), psn(SUBJECT, new_id)}, "other_psn": psn(OTHER, new_id)}


def _trusted(case: dict[str, Any]) -> bytes:
    return forensics.trusted_public_key_path(Path(case["settings"].forensics.signing_key)).read_bytes()


def _copy(case: dict[str, Any], name: str) -> Path:
    target = case["tmp"] / name
    shutil.copytree(case["bundle"], target)
    return target


def test_bundle_holds_exactly_the_subjects_rows_in_range(case: dict[str, Any]) -> None:
    bundle = case["bundle"]
    calls = pq.read_table(bundle / "data" / "silver.calls.parquet").to_pylist()
    assert sorted(r["call_id"] for r in calls) == ["c-in-new", "c-in-old"]
    consent = pq.read_table(bundle / "data" / "reference.subscriber_consent.parquet").to_pylist()
    # the changes in range, and the state in force at the start (its latest row before it); not older ones
    assert sorted(r["telemetry_level"] for r in consent) == ["in", "in_force_at_start"]
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    by_table = {f["table"]: f for f in manifest["files"] if f["table"]}
    assert set(by_table) == {"silver.calls", "reference.subscriber_consent"}  # bronze/gold tables do not exist here
    assert by_table["silver.calls"]["rows"] == 2 and by_table["silver.calls"]["delta_version"] == 1  # create, then the insert
    query = json.loads((bundle / "query.json").read_bytes())
    assert set(query["subject"]["pseudonyms_by_key_id"].values()) == case["subject_psn"]
    assert "VERSION AS OF 1" in query["tables"]["silver.calls"]["sql"]
    skipped = query["skipped_tables"]
    assert skipped["bronze.call_events"] == "table does not exist"  # only silver and reference tables exist here
    assert all(skipped[t.name] == "table does not exist" for t in forensics.subject_tables() if t.name not in by_table)
    no_events = "its parent bronze.call_events is not selected (table does not exist)"
    assert {lk.spec.name: skipped[lk.spec.name] for lk in forensics.LINKED_TABLES} == {
        "bronze.ingested_objects": no_events, "audit.landing_integrity": no_events, "bronze.quarantine": no_events,
        "silver.quarantine": no_events, "gold.billing_rated_calls": "table does not exist"}


def test_export_is_recorded_in_the_access_log(spark, case: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    rows = lake.read_table(spark, AUDIT_ACCESS_LOG, case["settings"]).orderBy("seq").collect()
    exports = [r for r in rows if r["statement"].startswith("voiplake forensics export --case CASE-42 ")]
    assert len(exports) == 1
    entry = exports[0]
    assert (entry["action"], entry["user"], entry["role"], entry["allowed"]) == ("export", "alice", "security", True)
    assert json.loads(entry["tables"]) == ["reference.subscriber_consent", "silver.calls"]
    assert entry["row_count"] == 4  # 2 calls + 2 consent rows
    assert SUBJECT not in entry["statement"] and not [p for p in case["subject_psn"] if p in entry["statement"]]


def test_no_clear_msisdn_or_other_subscriber_in_bundle(case: dict[str, Any]) -> None:
    needles = [SUBJECT.encode(), SUBJECT.lstrip("+").encode(), case["other_psn"].encode()]
    files = [p for p in case["bundle"].rglob("*") if p.is_file()]
    assert len(files) >= 6
    for path in files:
        data = path.read_bytes()
        assert not [n for n in needles if n in data], path


def test_verify_passes_and_custody_matches_the_log(spark, case: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    log = forensics.custody_log_entries(spark, case["settings"], "CASE-42")
    report = forensics.verify(case["bundle"], trusted_public_key=_trusted(case), custody_log=log)
    assert report.problems == []
    assert (report.trusted_key, report.custody_log, report.custody_entries) == ("match", "match", 1)


@pytest.mark.parametrize("tamper, expected", [
    ("flip_data_byte", "data/silver.calls.parquet: SHA-256 differs"),
    ("edit_manifest", "manifest.sig: the signature does not verify"),
    ("swap_key", "signing_key.pub: fingerprint differs"),
    ("resign_with_other_key", "signing_key.pub: not the trusted forensics key"),
])
def test_tampering_is_detected_and_named(case: dict[str, Any], tamper: str, expected: str) -> None:
    bundle = _copy(case, f"tampered-{tamper}")
    other = Ed25519PrivateKey.generate()
    if tamper == "flip_data_byte":
        path = bundle / "data" / "silver.calls.parquet"
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    elif tamper == "edit_manifest":
        manifest = json.loads((bundle / "manifest.json").read_bytes())
        manifest["files"][0]["rows"] = 0
        (bundle / "manifest.json").write_bytes(forensics.canonical_json(manifest))
    elif tamper == "swap_key":
        (bundle / "signing_key.pub").write_bytes(forensics.public_bytes(other.public_key()))
    else:  # a forger re-signs a consistent manifest with their own key: only the trusted copy catches it
        pub = forensics.public_bytes(other.public_key())
        manifest = json.loads((bundle / "manifest.json").read_bytes())
        manifest["signing_key_fingerprint"] = forensics.fingerprint(pub)
        raw = forensics.canonical_json(manifest)
        (bundle / "manifest.json").write_bytes(raw)
        (bundle / "manifest.sig").write_bytes(other.sign(raw))
        (bundle / "signing_key.pub").write_bytes(pub)
    report = forensics.verify(bundle, trusted_public_key=_trusted(case))
    assert not report.ok
    assert any(p.startswith(expected) for p in report.problems), report.problems


def test_handover_appends_linked_entry_and_tampering_is_detected(spark, case: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    bundle = _copy(case, "handed")
    s = case["settings"]
    entry = forensics.handover(spark, s, bundle, from_party="alice", to_party="bob", note="sealed bag 7")
    entries = forensics.read_custody(bundle)
    assert [e["event"] for e in entries] == ["created", "handed_over"]
    assert entry["seq"] == 1 and entry["prev_hash"] == entries[0]["entry_hash"]
    log = forensics.custody_log_entries(spark, s, "CASE-42")
    assert forensics.verify(bundle, trusted_public_key=_trusted(case), custody_log=log).problems == []
    # the original bundle (without the hand-over) now disagrees with the lake's custody log
    stale = forensics.verify(case["bundle"], custody_log=log)
    assert stale.problems == ["custody entry 1: differs from audit.custody_log (missing in bundle)"]

    # alter the hand-over's recipient in the bundle: the entry hash no longer matches
    lines = (bundle / "custody.jsonl").read_text().splitlines()
    altered = json.loads(lines[1]) | {"to_party": "mallory"}
    (bundle / "custody.jsonl").write_text("\n".join([lines[0], json.dumps(altered)]) + "\n")
    problems = forensics.verify(bundle, custody_log=log).problems
    assert "custody entry 1 (handed_over): entry_hash does not match its content (altered entry)" in problems
    assert "custody entry 1: differs from audit.custody_log (content differs)" in problems
    with pytest.raises(forensics.ForensicsError, match="custody chain .* is broken"):
        forensics.handover(None, s, bundle, from_party="bob", to_party="carol")

    # remove the created entry: the chain no longer starts at the genesis link
    (bundle / "custody.jsonl").write_text(lines[1] + "\n")
    problems = forensics.verify(bundle).problems
    assert any("expected 0 (an entry was removed" in p for p in problems), problems


def test_export_refused_for_a_role_that_may_not_decrypt(spark, case: dict[str, Any], rotated_keys: KeyMaterial) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AccessDenied, match="may not export forensic evidence"):
        forensics.export(spark, case["settings"], rotated_keys, case_id="CASE-43", msisdn=SUBJECT, start=START,
                         end=END, out_dir=case["tmp"] / "bundles", handler="eve", role="analyst")
    assert not (case["tmp"] / "bundles" / "CASE-43").exists()
    denied = lake.read_table(spark, AUDIT_ACCESS_LOG, case["settings"]).orderBy("seq").collect()[-1]
    assert (denied["action"], denied["user"], denied["role"], denied["allowed"]) == ("export", "eve", "analyst", False)
    assert "CASE-43" in denied["statement"] and "may not export forensic evidence" in denied["reason"]
