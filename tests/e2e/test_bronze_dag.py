"""End to end: generated day with faults -> S3Proxy landing zone -> Airflow DAG -> bronze on s3a://.

The lake itself lives on the object store (s3a://), the DAG runs through `airflow dags test`.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from jobs import lake
from jobs.cli import airflow_dags_test, day_summary, generate_to_landing
from jobs.generate_telemetry import FaultPlan, generate_day
from jobs.objectstore import ensure_bucket, s3_client
from jobs.telemetry.codec import UploadRejected, decode_object
from lake_layout.tables import BRONZE_CALL_EVENTS, BRONZE_INGESTED_OBJECTS, BRONZE_QUARANTINE

pytestmark = pytest.mark.e2e

DAY = date(2026, 11, 24)
EVENTS = 3000
SEED = 11
EXPECTED_OBJECT_REASONS = {
    "corrupt": {"corrupt_compression"}, "truncated": {"corrupt_compression"}, "tampered": {"bad_signature"},
    "wrong_schema": {"wrong_schema", "undecodable_envelope"}, "unsupported_version": {"unsupported_schema_version"},
}


@pytest.fixture(scope="module")
def s3_settings(settings, tmp_path_factory):  # type: ignore[no-untyped-def]
    s3 = settings.with_lake_root("s3a://voiplake-lake/lake")
    ensure_bucket(s3_client(s3.object_store), "voiplake-lake")
    return s3


@pytest.fixture(scope="module")
def generated(s3_settings, keys):  # type: ignore[no-untyped-def]
    # The same call the CLI makes, so what lands is exactly what `voiplake generate --faults` writes.
    summary = generate_to_landing(s3_settings, DAY, events=EVENTS, seed=SEED, faults=True)
    day = generate_day(DAY, events=EVENTS, seed=SEED, keys=keys, prefix=s3_settings.landing.prefix,
                       faults=FaultPlan.default(max(1, EVENTS // 40)))
    assert summary["objects"] == len(day.objects)
    return day


@pytest.fixture(scope="module")
def ingested(s3_settings, generated, tmp_path_factory, spark):  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("airflow")
    airflow_dags_test(s3_settings, "voip_bronze_ingest", DAY, log=home / "dag.log", airflow_home=home)
    return home


def _raw_identifiers(generated, keys) -> set[str]:  # type: ignore[no-untyped-def]
    raw: set[str] = set()
    for obj in generated.objects:
        try:
            up = decode_object(obj.key, obj.body, lambda d, k: keys.device_key(d, k))
        except UploadRejected:
            continue
        raw.add(up.header.device_id)
        for e in up.events:
            for name in ("msisdn", "callee_msisdn", "imei", "src_ip", "dst_ip"):
                if isinstance(e.get(name), str) and len(e[name]) > 6:
                    raw.add(e[name])
    return raw


def test_every_record_is_accounted_for_with_the_right_reasons(spark, s3_settings, generated, ingested) -> None:  # type: ignore[no-untyped-def]
    manifest = lake.read_table(spark, BRONZE_INGESTED_OBJECTS, s3_settings)
    per_object = {r.object_key: r for r in manifest.collect()}
    assert set(per_object) == {o.key for o in generated.objects}
    quarantine = lake.read_table(spark, BRONZE_QUARANTINE, s3_settings).collect()
    reasons_by_key: dict[str, set[str]] = {}
    for q in quarantine:
        reasons_by_key.setdefault(q.object_key, set()).add(q.reason)
    events = lake.read_table(spark, BRONZE_CALL_EVENTS, s3_settings)
    accepted_by_key = {r.object_key: r["count"] for r in events.groupBy("object_key").count().collect()}

    for obj in generated.objects:
        row = per_object[obj.key]
        assert row.records_received == row.records_accepted + row.records_quarantined, obj.key
        assert accepted_by_key.get(obj.key, 0) == row.records_accepted
        if obj.fault:
            assert row.status == "quarantined" and row.records_accepted == 0
            assert reasons_by_key[obj.key] <= EXPECTED_OBJECT_REASONS[obj.fault], (obj.fault, reasons_by_key[obj.key])
        else:
            assert row.records_received == obj.event_count
            assert row.records_quarantined == len(obj.bad_record_indexes)
            assert reasons_by_key.get(obj.key, set()) == set(obj.bad_record_reasons)

    summary = day_summary(spark, s3_settings, DAY)
    assert summary["events_received"] == summary["events_accepted"] + summary["events_quarantined"]
    assert summary["objects_received"] == len(generated.objects)
    assert summary["events_accepted"] == events.count()
    faulty = {o.fault for o in generated.objects if o.fault}
    assert faulty == set(EXPECTED_OBJECT_REASONS)
    assert {"corrupt_compression", "bad_signature", "unsupported_schema_version"} <= set(summary["quarantined_by_reason"])


def test_first_attempt_succeeds_and_lineage_is_recorded(spark, s3_settings, ingested) -> None:  # type: ignore[no-untyped-def]
    import json

    from lake_layout.tables import AUDIT_LINEAGE

    log = (ingested / "dag.log").read_text()
    assert "up_for_retry" not in log  # a retry would hide a crash behind idempotency
    rows = lake.read_table(spark, AUDIT_LINEAGE, s3_settings).collect()
    assert len(rows) == 1
    lineage = rows[0]
    assert lineage.job == "bronze_ingest" and lineage.dag_id == "voip_bronze_ingest" and lineage.logical_date == DAY
    metrics = json.loads(lineage.metrics_json)
    summary = day_summary(spark, s3_settings, DAY)
    assert metrics["records_received"] == summary["events_received"]
    assert metrics["quarantined_by_reason"] == summary["quarantined_by_reason"]
    outputs = json.loads(lineage.outputs_json)
    assert outputs["bronze.call_events"]["version_after"] == summary["tables"]["bronze.call_events"]["delta_version"]


def test_no_raw_identifier_in_any_bronze_column(spark, s3_settings, generated, keys, ingested) -> None:  # type: ignore[no-untyped-def]
    raw = _raw_identifiers(generated, keys)
    assert len(raw) > 100
    raw_bytes = [r.encode() for r in raw]
    for spec in (BRONZE_CALL_EVENTS, BRONZE_QUARANTINE, BRONZE_INGESTED_OBJECTS):
        for row in lake.read_table(spark, spec, s3_settings).collect():
            for name, value in row.asDict().items():
                if isinstance(value, str):
                    assert value not in raw, f"{spec.name}.{name} holds a raw identifier"
                    assert not any(r in value for r in raw if len(r) > 9), f"{spec.name}.{name} embeds a raw identifier"
                elif isinstance(value, (bytes, bytearray)):
                    assert not any(r in value for r in raw_bytes), f"{spec.name}.{name} holds plaintext"


def test_rerun_of_the_same_day_changes_no_table(spark, s3_settings, ingested, tmp_path) -> None:  # type: ignore[no-untyped-def]
    specs = (BRONZE_CALL_EVENTS, BRONZE_QUARANTINE, BRONZE_INGESTED_OBJECTS)
    before = {s.name: lake.table_version(spark, s, s3_settings) for s in specs}
    counts = {s.name: lake.read_table(spark, s, s3_settings).count() for s in specs}
    airflow_dags_test(s3_settings, "voip_bronze_ingest", DAY, log=tmp_path / "rerun.log", airflow_home=ingested)
    assert {s.name: lake.table_version(spark, s, s3_settings) for s in specs} == before
    assert {s.name: lake.read_table(spark, s, s3_settings).count() for s in specs} == counts


def test_query_cli_prints_csv_only(s3_settings, ingested) -> None:  # type: ignore[no-untyped-def]
    from jobs.cli import airflow_env

    env = airflow_env(s3_settings)
    out = subprocess.run(
        [str(Path(sys.executable).with_name("voiplake")), "query",
         "SELECT platform, count(*) AS n FROM bronze.call_events GROUP BY platform ORDER BY platform", "--format", "csv"],
        env=env, capture_output=True, text=True, check=True,
    )
    lines = out.stdout.splitlines()
    assert lines[0] == "platform,n"
    assert [line.split(",")[0] for line in lines[1:]] == ["android", "ios", "web"]
    assert all(int(line.split(",")[1]) > 0 for line in lines[1:])
