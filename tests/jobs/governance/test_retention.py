"""Retention: expired rows deleted per jurisdiction and gone from disk, deferred without aggregates, held data kept."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from jobs.platform import lake
from jobs.governance import retention
from jobs.ingest import landing_integrity
from jobs.governance.forensics import subject_pseudonyms
from jobs.platform.keys import KeyMaterial
from jobs.platform.objectstore import ensure_bucket, list_keys, s3_client
from lake_layout.config import Settings
from lake_layout.registry import RetentionTier, TableSpec
from lake_layout.retention import JURISDICTIONS, RetentionPolicyError, load_policy, parse_policy
from lake_layout.tables import (
    AUDIT_LINEAGE,
    AUDIT_RETENTION_ACTIONS,
    BRONZE_CALL_EVENTS,
    BRONZE_QUARANTINE,
    GOLD_HOURLY_GEO_USAGE,
    GOLD_PUBLIC_USAGE_STATS,
    REFERENCE_SUBSCRIBER_CONSENT,
    SILVER_CALLS,
)

AS_OF = date(2026, 9, 1)  # silver: EU (180 d) and unknown (180 d) rows of March expire, US-CA (365 d) rows do not
D1, D2, RECENT = date(2026, 3, 1), date(2026, 3, 2), date(2026, 8, 30)
HELD_MSISDN = "+4915100000001"
BUCKET = "retention-test-landing"
# Tables the runs purge (the gold aggregates and audit.lineage are only read, by the gate): fewer scans, faster tests.
TABLES = (REFERENCE_SUBSCRIBER_CONSENT, BRONZE_CALL_EVENTS, BRONZE_QUARANTINE, SILVER_CALLS)


def _ts(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=timezone.utc)


def _row(spec: TableSpec, **values: Any) -> dict[str, Any]:
    defaults = {"string": "x", "int": 0, "long": 0, "boolean": False, "date": D1, "timestamp": _ts(D1), "double": 0.0}
    return {c.name: values.get(c.name, None if c.nullable else defaults[c.type]) for c in spec.columns}


def _upload_key(day: date, batch: str) -> str:
    return f"uploads/upload_date={day}/hour=10/{int(_ts(day).timestamp() * 1000):013d}-{batch}.pb.gz"


def _write(spark, spec: TableSpec, settings: Settings, rows: list[dict[str, Any]]) -> None:  # type: ignore[no-untyped-def]
    lake.ensure_table(spark, spec, settings)
    df = spark.createDataFrame(rows, spec.spark_schema())
    lake.conform(df, spec).write.format("delta").mode("append").save(spec.location(settings))


def _ids(spark, spec: TableSpec, settings: Settings, column: str) -> set[str]:  # type: ignore[no-untyped-def]
    return {r[0] for r in lake.read_table(spark, spec, settings).select(column).collect()}


@pytest.fixture(scope="module")
def lake_case(spark, settings: Settings, keys: KeyMaterial, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from jobs.governance.legal_holds import place

    tmp = tmp_path_factory.mktemp("retention")
    s = replace(settings.with_lake_root(str(tmp / "lake")), landing=replace(settings.landing, bucket=BUCKET))
    held = subject_pseudonyms(keys, HELD_MSISDN)[keys.pseudonym.active]
    psn = {"eu": "psn-eu", "ca": "psn-ca", "us": "psn-us", "x": "psn-unknown", "held": held}
    _write(spark, REFERENCE_SUBSCRIBER_CONSENT, s, [
        _row(REFERENCE_SUBSCRIBER_CONSENT, subscriber_pseudonym=psn["eu"], jurisdiction="US-CA", effective_from=_ts(date(2026, 1, 1)), source_object_key="old"),
        _row(REFERENCE_SUBSCRIBER_CONSENT, subscriber_pseudonym=psn["eu"], jurisdiction="EU", effective_from=_ts(date(2026, 2, 15)), source_object_key="latest"),
        _row(REFERENCE_SUBSCRIBER_CONSENT, subscriber_pseudonym=psn["ca"], jurisdiction="US-CA", effective_from=_ts(date(2026, 1, 1)), source_object_key="ca"),
        _row(REFERENCE_SUBSCRIBER_CONSENT, subscriber_pseudonym=psn["us"], jurisdiction="US-other", effective_from=_ts(date(2026, 1, 1)), source_object_key="us"),
        _row(REFERENCE_SUBSCRIBER_CONSENT, subscriber_pseudonym=held, jurisdiction="EU", effective_from=_ts(date(2026, 1, 1)), source_object_key="held"),
    ])
    calls = [("c-eu-1", "eu", D1), ("c-eu-2", "eu", D2), ("c-eu-new", "eu", RECENT), ("c-ca-1", "ca", D1),
             ("c-us-1", "us", D1), ("c-x-1", "x", D1), ("c-held", "held", D1)]
    _write(spark, SILVER_CALLS, s, [_row(SILVER_CALLS, call_id=c, subscriber_pseudonym=psn[who], call_date=d,
                                         started_at=_ts(d)) for c, who, d in calls])
    events = [("e-eu", "eu"), ("e-ca", "ca"), ("e-us", "us"), ("e-x", "x"), ("e-held", "held")]
    _write(spark, BRONZE_CALL_EVENTS, s, [_row(BRONZE_CALL_EVENTS, event_id=e, subscriber_pseudonym=psn[who], event_date=D1,
                                               event_ts_device=_ts(D1), object_key=_upload_key(D1, who))
                                          for e, who in events])
    _write(spark, BRONZE_QUARANTINE, s, [_row(BRONZE_QUARANTINE, object_key=f"q-{d}", upload_date=d) for d in (D1, D2, RECENT)])
    # Aggregates: hourly geo for both days, the DP statistics only for D1, so D2 must wait.
    _write(spark, GOLD_HOURLY_GEO_USAGE, s, [_row(GOLD_HOURLY_GEO_USAGE, call_date=d, period_start=_ts(d)) for d in (D1, D2)])
    _write(spark, GOLD_PUBLIC_USAGE_STATS, s, [_row(GOLD_PUBLIC_USAGE_STATS, period=D1)])
    _write(spark, AUDIT_LINEAGE, s, [
        _row(AUDIT_LINEAGE, run_id=f"r-{job}", job=job, inputs_json="[]", metrics_json=json.dumps({"call_dates": [str(D1), str(D2)]}),
             outputs_json=json.dumps({table.name: {"version_before": 0, "version_after": 1}}))
        for job, table in (("gold_hourly_geo", GOLD_HOURLY_GEO_USAGE), ("public_usage_stats", GOLD_PUBLIC_USAGE_STATS))])
    client = s3_client(s.object_store)
    ensure_bucket(client, BUCKET)
    objects = [_upload_key(D1, "eu"), _upload_key(D1, "held"), _upload_key(D2, "eu"), _upload_key(RECENT, "eu"),
               f"directory/export_date={D1}/subscribers.jsonl.gz"]
    for key in objects:
        client.put_object(Bucket=BUCKET, Key=key, Body=b"payload")
    hold = place(spark, s, keys, case_id="CASE-7", msisdn=HELD_MSISDN, actor="legal", reason="litigation")
    silver_files = {p.name for p in Path(SILVER_CALLS.location(s)).rglob("*.parquet")}
    silver_version = lake.table_version(spark, SILVER_CALLS, s)
    dry = retention.run(spark, s, as_of=AS_OF, run_id="dry", dry_run=True, tables=(BRONZE_QUARANTINE,), landing=False)
    first = retention.run(spark, s, as_of=AS_OF, run_id="first", tables=TABLES)
    second = retention.run(spark, s, as_of=AS_OF, run_id="second", tables=(SILVER_CALLS,))
    print(f"retention runs: dry {dry.seconds}s, first {first.seconds}s, second {second.seconds}s")
    audit = [r.asDict() for r in lake.read_table(spark, AUDIT_RETENTION_ACTIONS, s).collect()]
    return {"settings": s, "psn": psn, "hold": hold, "dry": dry, "first": first, "second": second, "audit": audit,
            "silver_files": silver_files, "silver_version": silver_version, "client": client}


def _actions(case: dict[str, Any], run_id: str, action: str, table: str) -> list[dict[str, Any]]:
    return [a for a in case["audit"] if a["run_id"] == run_id and a["action"] == action and a["table_name"] == table]


def test_expired_rows_deleted_per_jurisdiction_others_kept(spark, lake_case: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    s = lake_case["settings"]
    # EU and unknown-jurisdiction rows of D1 are past 180 days; US-CA / US-other are not; D2 waits; held kept.
    assert _ids(spark, SILVER_CALLS, s, "call_id") == {"c-eu-2", "c-eu-new", "c-ca-1", "c-us-1", "c-held"}
    # bronze: EU 90 d, US-CA 180 d and unknown 90 d expire, US-other 365 d does not
    assert _ids(spark, BRONZE_CALL_EVENTS, s, "event_id") == {"e-us", "e-held"}
    # consent: the EU subscriber's superseded US-CA row goes; every subscriber's row in force stays
    assert _ids(spark, REFERENCE_SUBSCRIBER_CONSENT, s, "source_object_key") == {"latest", "ca", "us", "held"}
    # operational tables are table-wide (90 d) and not gated
    assert _ids(spark, BRONZE_QUARANTINE, s, "object_key") == {f"q-{RECENT}"}
    assert lake.read_table(spark, AUDIT_LINEAGE, s).count() == 2  # read by the gate, never purged here


def test_audit_records_each_delete_with_period_regulation_and_version(spark, lake_case: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    deletes = {a["jurisdiction"]: a for a in _actions(lake_case, "first", "delete", SILVER_CALLS.name)}
    assert set(deletes) == {*JURISDICTIONS, "unknown"}
    assert {j: a["rows_removed"] for j, a in deletes.items()} == {"EU": 1, "US-CA": 0, "US-other": 0, "other": 0, "unknown": 1}
    eu = deletes["EU"]
    assert eu["retention_days"] == 180 and "GDPR art. 5(1)(e)" in eu["regulation"]
    assert "`call_date` < DATE'2026-03-05'" in eu["predicate"] and "jurisdiction = 'EU'" in eu["predicate"]
    assert eu["delta_version"] == deletes["unknown"]["delta_version"] == lake_case["silver_version"] + 1
    assert deletes["US-CA"]["delta_version"] is None  # nothing deleted for it: no Delta operation
    [quarantine] = _actions(lake_case, "first", "delete", BRONZE_QUARANTINE.name)
    assert quarantine["jurisdiction"] is None and quarantine["rows_removed"] == 2 and quarantine["retention_days"] == 90
    assert lake_case["first"].rows_removed == 2 + 3 + 1 + 2  # silver, bronze, consent, quarantine
    # the dry run planned exactly what the run then did, and wrote no audit rows
    planned = [(a["action"], a["jurisdiction"], a["rows_removed"]) for a in lake_case["dry"].actions]
    done = [(a["action"], a["jurisdiction"], a["rows_removed"]) for a in lake_case["audit"]
            if a["run_id"] == "first" and a["table_name"] == BRONZE_QUARANTINE.name and a["action"] != "vacuum"]
    assert planned == done == [("delete", None, 2)]
    assert not [a for a in lake_case["audit"] if a["run_id"] == "dry"]


def test_vacuum_removes_the_purged_files(spark, lake_case: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    s = lake_case["settings"]
    [vac] = _actions(lake_case, "first", "vacuum", SILVER_CALLS.name)
    assert vac["files_removed"] >= 1 and vac["predicate"] == "VACUUM RETAIN 0 HOURS"
    remaining = {p.name for p in Path(SILVER_CALLS.location(s)).rglob("*.parquet")}
    assert not lake_case["silver_files"] <= remaining  # files holding the deleted rows are gone from disk
    with pytest.raises(Exception, match="(?i)not exist|not found|FileNotFound"):
        (spark.read.format("delta").option("versionAsOf", lake_case["silver_version"])
         .load(SILVER_CALLS.location(s)).collect())
    # the check guarding short retentions is back on for everyone else
    assert spark.conf.get(retention.RETENTION_CHECK, "true") != "false"


def test_day_without_its_aggregates_is_deferred(lake_case: dict[str, Any]) -> None:
    [deferred] = _actions(lake_case, "first", "deferred", SILVER_CALLS.name)
    assert "DATE'2026-03-02'" in deferred["predicate"] and deferred["rows_removed"] == 1
    assert "gold.public_usage_stats has no partition for 2026-03-02" in deferred["detail"]
    [landing] = _actions(lake_case, "first", "deferred", f"landing:{BUCKET}")
    assert "upload_date=2026-03-02/" in landing["predicate"]
    assert "2026-03-02" in lake_case["first"].deferred_days


def test_held_rows_kept_and_recorded(lake_case: dict[str, Any]) -> None:
    hold_id = lake_case["hold"].hold_id
    for table in (SILVER_CALLS.name, BRONZE_CALL_EVENTS.name):
        [skip] = _actions(lake_case, "first", "skipped_hold", table)
        assert skip["rows_removed"] == 1 and json.loads(skip["hold_ids"]) == [hold_id]


def test_landing_objects_expired_except_held_and_deferred(lake_case: dict[str, Any]) -> None:
    left = {k for k, _ in list_keys(lake_case["client"], BUCKET, "")}
    assert left == {_upload_key(D1, "held"), _upload_key(D2, "eu"), _upload_key(RECENT, "eu")}
    [expired] = _actions(lake_case, "first", "expire_objects", f"landing:{BUCKET}")
    assert expired["files_removed"] == 2 and expired["retention_days"] == 30  # D1's upload and D1's directory export
    [skip] = _actions(lake_case, "first", "skipped_hold", f"landing:{BUCKET}")
    assert skip["files_removed"] == 1 and json.loads(skip["hold_ids"]) == [lake_case["hold"].hold_id]
    assert _upload_key(D1, "held") in skip["predicate"]


def test_audit_verify_knows_expired_objects_from_missing_ones(spark, lake_case: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    from jobs.platform import hashchain
    from jobs.ingest.landing_integrity import verify_landing
    from lake_layout.tables import AUDIT_LANDING_INTEGRITY

    s = lake_case["settings"]
    never_purged = _upload_key(RECENT, "lost")  # chained at ingestion, then gone without a retention run
    keys = [_upload_key(D1, "eu"), _upload_key(D1, "held"), _upload_key(RECENT, "eu"), never_purged]
    body_sha = hashlib.sha256(b"payload").hexdigest()
    hashchain.append_to_table(spark, s, AUDIT_LANDING_INTEGRITY, [
        {"object_key": k, "bucket": BUCKET, "sha256": body_sha, "size_bytes": 7, "upload_date": D1,
         "ingest_run_id": "r", "recorded_at": datetime(2026, 3, 1, tzinfo=timezone.utc)} for k in keys])
    prefixes = landing_integrity.expired_landing_prefixes(spark, s)[BUCKET]
    assert f"directory/export_date={D1}/" in prefixes and any(_upload_key(D1, "eu").startswith(p) for p in prefixes)
    assert not any(_upload_key(RECENT, "eu").startswith(p) for p in prefixes)
    problems, checked = verify_landing(spark, s)
    # the expired object is gone by policy (not re-hashed, not reported); the held and the recent one are re-hashed
    assert checked == 3 and [p.kind for p in problems] == ["object_missing"] and never_purged in problems[0].detail


def test_rerun_deletes_nothing_and_records_it(lake_case: dict[str, Any]) -> None:
    second = lake_case["second"]
    # the second run (silver.calls and the landing zone) finds nothing left to delete
    assert second.rows_removed == 0 and second.objects_expired == 0 and second.files_removed == 0
    deletes = [a for a in lake_case["audit"] if a["run_id"] == "second" and a["action"] == "delete"]
    assert deletes and all(a["rows_removed"] == 0 and a["delta_version"] is None for a in deletes)
    assert not [a for a in lake_case["audit"] if a["run_id"] == "second" and a["action"] == "vacuum"]
    assert lake_case["first"].rows_held == 2  # silver and bronze rows of the held subject
    assert second.rows_held == 1 and second.objects_held == lake_case["first"].objects_held == 1  # still held
    steps = sorted(a["step"] for a in lake_case["audit"] if a["run_id"] == "first")
    assert steps == list(range(len(steps)))


# ---------------------------------------------------------------------------------------------- pure parts


def test_missing_aggregates_needs_partition_and_lineage() -> None:
    partitions = {"gold.a": {D1, D2}, "gold.b": {D1}}
    lineage = {"gold.a": {D1}, "gold.b": {D1}}
    out = retention.missing_aggregates([D1, D2], partitions=partitions, lineage_days=lineage)
    assert out[D1] == []
    assert out[D2] == [f"audit.lineage has no run writing gold.a for {D2}", f"gold.b has no partition for {D2}"]


def test_expired_landing_days_by_prefix() -> None:
    prefixes = ["uploads/upload_date=2026-03-01/", "uploads/upload_date=2026-08-31/", "uploads/upload_date=junk/",
                "uploads/other=2026-01-01/"]
    assert retention.expired_landing_days(prefixes, marker="upload_date", cutoff=date(2026, 8, 2)) == [
        (D1, "uploads/upload_date=2026-03-01/")]


def test_plan_per_jurisdiction_and_exclusions() -> None:
    plans = {p.spec.name: p for p in retention.plan_tables(load_policy())}
    assert plans["silver.calls"].by_jurisdiction and plans["silver.calls"].gated
    assert dict(plans["silver.calls"].periods)["US-other"].days == 548
    assert not plans["bronze.quarantine"].by_jurisdiction and not plans["bronze.quarantine"].gated
    assert plans["reference.subscriber_consent"].state_column == "effective_from" and not plans["reference.subscriber_consent"].gated
    assert "hash-chained" in (plans["audit.access_log"].excluded or "")
    assert "no time column" in (plans["gold.billing_usage"].excluded or "")
    predicate = retention.expiry_predicate(plans["reference.subscriber_consent"], as_of=AS_OF, jurisdiction="EU")
    assert predicate.startswith("CAST(`effective_from` AS DATE) < DATE'2026-03-05'")


def _raw_policy() -> dict[str, Any]:
    import tomllib

    from lake_layout.retention import POLICY_FILE

    return tomllib.loads(POLICY_FILE.read_text())


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p["tiers"].update(cold={"default": {"days": 1, "regulation": "r"}}), "unknown tier(s) ['cold']"),
    (lambda p: p["tiers"]["silver"].update(UK={"days": 1, "regulation": "r"}), "unknown jurisdiction(s) ['UK']"),
    (lambda p: p["tiers"]["silver"]["EU"].update(days=-1), "tiers.silver.EU: days must be >= 0"),
    (lambda p: p["tiers"]["silver"]["EU"].update(days=1.5), "tiers.silver.EU: days must be a whole number"),
    (lambda p: p["tiers"]["silver"]["EU"].update(regulation=" "), "must name the regulation"),
    (lambda p: p["tiers"]["silver"].pop("default") and p["tiers"]["silver"].pop("EU"), "no period for ['EU'] and no default"),
    (lambda p: p["tiers"].pop("audit"), "tier 'audit' has no periods"),
    (lambda p: p["tiers"]["operational"]["default"].update(days=10), "bronze.ingested_objects must outlive"),
    (lambda p: p["tiers"]["audit"]["default"].update(days=365), "audit periods (365 days) must be >="),
    (lambda p: p.update(jurisdictions=["EU", "US"]), "jurisdictions must be exactly"),
    (lambda p: p["aggregate_gate"].update(aggregates=["gold.nope"]), "are not registry tables"),
])
def test_policy_loader_rejects(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    raw = _raw_policy()
    mutate(raw)
    with pytest.raises(RetentionPolicyError, match=".*" + message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        parse_policy(raw, source="test.toml")


def test_policy_file_names_a_regulation_for_every_tier_and_jurisdiction() -> None:
    policy = load_policy()
    for tier in RetentionTier:
        for j in (*JURISDICTIONS, None):
            assert policy.period(tier, j).regulation.strip()
    assert policy.period(RetentionTier.FINANCIAL, "EU").days == 3650 and "HGB" in policy.period(RetentionTier.FINANCIAL, "EU").regulation
    assert policy.with_days(RetentionTier.SILVER, 1, jurisdiction="EU").period(RetentionTier.SILVER, "EU").days == 1
