"""End to end: generated days with faults -> S3Proxy landing zone -> Airflow DAG voip_daily ->
bronze, silver, gold (k-anonymous) with quality gates and lineage, all on s3a://.

The lake itself lives on the object store (s3a://), the DAG runs through `airflow dags test`.
A second day brings offline-buffered (late) calls of the first day: silver MERGEs them into the
first day's partition and gold recomputes that day.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import pytest

from jobs.platform import lake
from jobs.cli.demo import airflow_dags_test, airflow_env, day_summary
from jobs.generator.landing import generate_to_landing
from jobs.generator.day import generate_day
from jobs.generator.faults import FaultPlan
from jobs.platform.objectstore import ensure_bucket, s3_client
from jobs.telemetry.codec import UploadRejected, decode_object
from lake_layout.config import PROJECT_ROOT
from lake_layout.tables import (
    AUDIT_QUALITY_RESULTS,
    BRONZE_CALL_EVENTS,
    BRONZE_INGESTED_OBJECTS,
    BRONZE_QUARANTINE,
    GOLD_BILLING_RATED_CALLS,
    GOLD_BILLING_USAGE,
    GOLD_HOURLY_GEO_USAGE,
    SILVER_CALLS,
    SILVER_PLATFORM_COMPLETENESS,
    SILVER_QUARANTINE,
)

pytestmark = pytest.mark.e2e

DAG_ID = "voip_daily"
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
    """The day through `voiplake demo`, as `make run` runs it (the same generated objects land again, unchanged);
    what it printed on the terminal is kept in terminal.txt."""
    home = tmp_path_factory.mktemp("airflow")
    demo = subprocess.run(
        [sys.executable, "-m", "jobs.cli.main", "demo", "--date", DAY.isoformat(), "--events", str(EVENTS),
         "--seed", str(SEED), "--log", str(home / "dag.log")],
        env=airflow_env(s3_settings, home), capture_output=True, text=True, timeout=1800)
    (home / "terminal.txt").write_text(demo.stdout + demo.stderr)
    assert demo.returncode == 0, f"voiplake demo failed; its log: {home / 'dag.log'}\n{demo.stderr[-3000:]}"
    return home


def test_demo_terminal_shows_each_task_and_no_jvm_warnings(ingested) -> None:  # type: ignore[no-untyped-def]
    """`make run`'s terminal: every task of the DAG named as it ends, with a result line; the JVM's, Spark's and
    Airflow's warnings only in the log, whose path is printed once."""
    from airflow.dag_processing.dagbag import DagBag

    from jobs.cli.dag_progress import read_run

    terminal = (ingested / "terminal.txt").read_text()
    lines = terminal.splitlines()
    assert not [line for line in lines if "WARN" in line], terminal
    task_ids = set(DagBag(dag_folder=str(PROJECT_ROOT / "dags")).dags[DAG_ID].task_ids)
    ended = {line.split()[1]: line for line in lines if line.startswith("  ok  ")}
    assert set(ended) == task_ids, (sorted(task_ids - set(ended)), sorted(set(ended) - task_ids))
    assert {t.task_id for t in read_run(ingested / "airflow.db", DAG_ID, DAY)} == task_ids
    assert "records quarantined" in ended["ingest_landing"] and "all met" in ended["check_bronze"]
    assert [line for line in lines if "log (Airflow, Spark, JVM)" in line] == [f"  log (Airflow, Spark, JVM): {ingested / 'dag.log'}"]
    log = (ingested / "dag.log").read_text()
    assert "WARN" in log and "voip_daily" in log  # what the terminal did not show is in the log
    assert "received = accepted + quarantined: yes" in terminal


def metrics_of(row):  # type: ignore[no-untyped-def]
    import json

    return json.loads(row.metrics_json)


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


def _population_identifiers(generated, keys) -> set[str]:  # type: ignore[no-untyped-def]
    """Every raw identifier of the generated day: the uploads' and the population's (MSISDNs with and without '+')."""
    raw = _raw_identifiers(generated, keys)
    population = generated.population
    raw |= {s.msisdn for s in population.subscribers} | {s.msisdn.lstrip("+") for s in population.subscribers}
    raw |= {d.device_id for d in population.devices} | {d.imei for d in population.devices if d.imei}
    raw = {r for r in raw if len(r) >= 7}
    assert len(raw) > 1000
    return raw


def test_no_raw_identifier_in_any_artifact_of_the_run(spark, s3_settings, generated, keys, ingested, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Everything the run wrote besides the tables (Airflow's task logs and database, the demo's log and terminal,
    OpenLineage events, Data Docs, reports, SIEM and support-sink files), a DSR export, a forensics bundle and CRM API
    responses of a generated subscriber, and every object of the lake on the object store (Parquet decoded, the
    transaction log as bytes): no raw identifier, no precise coordinate. A planted identifier is found."""
    from fastapi.testclient import TestClient

    from jobs.business.api_tokens import TokenStore, issue_token
    from jobs.business.crm_api import create_app, load_snapshot
    from jobs.governance import forensics
    from jobs.governance.leak_scan import scan_files, scan_objects
    from jobs.pipeline.runner import run_dsr
    from lake_layout.resellers import load_policy

    raw = _population_identifiers(generated, keys)
    subject = next(s.msisdn for s in generated.population.subscribers
                   if s.msisdn in {e.get("msisdn") for o in generated.objects[:20] for e in _events(o, keys)})
    run_dsr(action="export", msisdn=subject, request_id="REQ-LEAK", actor="privacy-desk", out=tmp_path / "dsr",
            settings=s3_settings)
    forensics.export(spark, s3_settings, keys, case_id="CASE-LEAK", msisdn=subject, start=DAY, end=DAY,
                     out_dir=tmp_path / "bundles", handler="analyst-1")
    policy = load_policy(s3_settings.crm_api.resellers_file)
    token_file = tmp_path / "api" / "tokens.json"
    tokens = {rid: issue_token(token_file, rid) for rid in policy.ids}
    app = create_app(s3_settings, policy=policy, snapshot=load_snapshot(spark, s3_settings, policy),
                     tokens=lambda: TokenStore.load(token_file, resellers=policy.ids))
    with TestClient(app) as client:
        for rid, token in tokens.items():
            for path in ("/v1/accounts", f"/v1/usage/summary?from={DAY}&to={DAY}"):
                response = client.get(path, headers={"Authorization": f"Bearer {token}"})
                assert response.status_code == 200, response.text
                (tmp_path / "api" / f"{rid}-{path.split('?')[0].strip('/').replace('/', '_')}.json").write_bytes(response.content)
    roots = [ingested, tmp_path, Path(s3_settings.lineage.openlineage_file).parent, Path(s3_settings.quality.data_docs_dir),
             Path(s3_settings.anomalies.siem_dir), Path(s3_settings.quotas.file_path).parent, PROJECT_ROOT / "build" / "reports"]
    files = scan_files([r for r in roots if r.exists()], raw)
    assert files.files > 50 and not files.truncated
    assert not files.leaks, files.leaks[:10]
    bucket, _, prefix = s3_settings.lake.root.removeprefix("s3a://").partition("/")
    lake_objects = scan_objects(s3_client(s3_settings.object_store), bucket, prefix + "/", raw)
    assert lake_objects.files > 100 and not lake_objects.leaks, lake_objects.leaks[:10]

    planted = sorted(raw)[0]
    (tmp_path / "planted.log").write_text(f"INFO upload from {planted} accepted\n")
    assert [leak.value for leak in scan_files([tmp_path], raw).leaks] == [planted]


def _events(obj, keys) -> list[dict]:  # type: ignore[no-untyped-def]
    try:
        return list(decode_object(obj.key, obj.body, lambda d, k: keys.device_key(d, k)).events)
    except UploadRejected:
        return []


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
    rows = lake.read_table(spark, AUDIT_LINEAGE, s3_settings).where(f"logical_date = DATE'{DAY}'").collect()
    assert {r.job for r in rows} == {"reference_ingest", "bronze_ingest", "silver_calls", "gold_hourly_geo", "public_usage_stats",
                                     "capacity_busy_hour", "support_triggers", "account_usage", "anomalies",
                                     "billing_usage", "telemetry_compliance"}
    lineage = next(r for r in rows if r.job == "bronze_ingest")
    assert lineage.dag_id == DAG_ID and lineage.logical_date == DAY
    assert len(lineage.code_version) >= 40
    landing = json.loads(lineage.inputs_json)[0]
    manifest = {r.object_key: r.sha256 for r in lake.read_table(spark, BRONZE_INGESTED_OBJECTS, s3_settings).collect()}
    assert {o["key"]: o["sha256"] for o in landing["objects"]} == manifest
    assert lineage.rows_in == metrics_of(lineage)["records_received"]
    metrics = metrics_of(lineage)
    summary = day_summary(spark, s3_settings, DAY)
    assert metrics["records_received"] == summary["events_received"]
    assert metrics["quarantined_by_reason"] == summary["quarantined_by_reason"]
    outputs = json.loads(lineage.outputs_json)
    assert outputs["bronze.call_events"]["version_after"] == summary["tables"]["bronze.call_events"]["delta_version"]


def test_no_raw_identifier_in_any_table(spark, s3_settings, generated, keys, ingested) -> None:  # type: ignore[no-untyped-def]
    """Every value the generator produced as an identifier (MSISDN with and without '+', IMEI, full IP,
    device id) is searched for as a substring of every string, binary and long column of every table,
    restricted columns included (they must hold ciphertext only)."""
    from pyspark.sql import functions as F

    from lake_layout.tables import ALL_TABLES

    raw = _population_identifiers(generated, keys)
    identifiers = F.broadcast(spark.createDataFrame([(r,) for r in sorted(raw)], "identifier string"))

    scanned = []
    for spec in ALL_TABLES:
        if not lake.table_exists(spark, spec, s3_settings):
            continue
        table = lake.read_table(spark, spec, s3_settings)
        values = table.select(F.explode(F.array(*[
            F.struct(F.lit(c.name).alias("column"), F.col(c.name).cast("string").alias("value"))
            for c in spec.columns if c.type in ("string", "binary", "long")  # types an identifier can hide in
        ])).alias("cell")).select("cell.column", "cell.value").where("value IS NOT NULL")
        hits = values.join(identifiers, F.expr("instr(value, identifier) > 0")).select("column").distinct().collect()
        assert not hits, f"{spec.name} holds raw identifiers in {sorted(h.column for h in hits)}"
        scanned.append(spec.name)
    assert {"bronze.call_events", "bronze.quarantine", "reference.subscriber_consent", "silver.calls",
            "silver.quarantine", "gold.hourly_geo_usage", "audit.lineage", "audit.quality_results"} <= set(scanned)


def test_silver_accounts_for_every_bronze_event(spark, s3_settings, generated, keys, ingested) -> None:  # type: ignore[no-untyped-def]
    bronze = lake.read_table(spark, BRONZE_CALL_EVENTS, s3_settings)
    report = gold_or_silver_metrics(spark, s3_settings, "silver_calls", DAY)
    assert report["bronze_events_read"] == bronze.count()
    assert report["unique_events"] == bronze.select("event_id").distinct().count()
    assert report["bronze_events_read"] == report["unique_events"] + report["duplicate_copies"]
    assert report["unique_events"] == report["events_used"] + report["events_quarantined"]
    retried = sum(o.event_count - len(o.bad_record_indexes) for o in generated.objects if o.is_retry and not o.fault)
    assert report["duplicate_copies"] >= retried > 0

    # skewed clocks (minutes, hours, a year ahead) are corrected, not rejected: silver quarantines exactly the
    # injected impossible times, with the injected reasons
    expected: dict[str, str] = {}
    for obj in generated.objects:
        if obj.fault or obj.is_retry or not obj.time_fault_indexes:
            continue
        events = decode_object(obj.key, obj.body, lambda d, k: keys.device_key(d, k)).events
        for index, reason in zip(obj.time_fault_indexes, obj.time_fault_reasons):
            expected[events[index]["event_id"]] = reason
    assert set(expected.values()) == {"future_timestamp", "before_account_creation"}
    quarantined = {r.event_id: r.reason for r in lake.read_table(spark, SILVER_QUARANTINE, s3_settings).collect()}
    assert quarantined == expected
    assert report["events_quarantined"] == len(expected)

    calls = lake.read_table(spark, SILVER_CALLS, s3_settings)
    assert calls.count() == calls.select("call_id").distinct().count()
    assert set(calls.columns) == set(SILVER_CALLS.column_names)  # no coordinates, IPs, device ids


def test_consent_withdrawn_during_the_day_nulls_later_diagnostics(spark, s3_settings, generated, keys, ingested) -> None:  # type: ignore[no-untyped-def]
    from datetime import datetime, timezone

    from jobs.platform.identifiers import pseudonymize

    assert generated.consent_changes
    calls = lake.read_table(spark, SILVER_CALLS, s3_settings)
    checked_after = 0
    for change in generated.consent_changes:
        sub = pseudonymize("msisdn", change.msisdn, keys.pseudonym.active_key)
        at = datetime.fromtimestamp(change.effective_from_ms / 1000, tz=timezone.utc)
        level, opt_out = change.telemetry_level, change.diagnostics_opt_out
        rows = calls.where(f"subscriber_pseudonym = '{sub}' AND started_at IS NOT NULL").collect()
        for row in rows:
            started = row.started_at.replace(tzinfo=timezone.utc)
            if started >= at:
                checked_after += 1
                assert row.telemetry_level == ("opted_out" if opt_out else level)
                assert row.mos is None and row.jitter_ms is None
    assert checked_after > 0  # the generated day has calls after a consent change
    # diagnostics survive only where consent in force allowed them
    assert calls.where("mos IS NOT NULL AND telemetry_level <> 'diagnostic'").count() == 0
    assert calls.where("mos IS NOT NULL").count() > 0


def published_rows_by_call(spark, s3_settings, day):  # type: ignore[no-untyped-def]
    """Recompute from silver which gold row each call falls in: the finest published row whose key it has."""
    from jobs.privacy.kanonymity import LEVELS, level_keys, usage_facts

    gold = lake.read_table(spark, GOLD_HOURLY_GEO_USAGE, s3_settings).where(f"call_date = DATE'{day}'").collect()
    key_cols = ("period_start", "geo_zone", "country_code", "network_class", "platform", "carrier_mccmnc")
    published = {(r.generalization_level, *(r[c] for c in key_cols)): r for r in gold}
    facts = usage_facts(lake.read_table(spark, SILVER_CALLS, s3_settings).where(f"call_date = DATE'{day}'"),
                        region_resolution=s3_settings.privacy.h3_region_resolution)
    keyed = {level.index: {r.call_id: r for r in level_keys(facts, level).collect()} for level in LEVELS}
    assignment: dict[str, tuple] = {}
    subscribers: dict[str, str] = {}
    for call_id, fact in keyed[0].items():
        subscribers[call_id] = fact.subscriber_pseudonym
        for level in LEVELS:
            row = keyed[level.index][call_id]
            key = (level.index, *(row[c] for c in key_cols))
            if row.geo_zone is not None and key in published:
                assignment[call_id] = key
                break
    return published, assignment, subscribers


def test_gold_rows_each_cover_at_least_k_subscribers_recomputed_from_silver(spark, s3_settings, ingested) -> None:  # type: ignore[no-untyped-def]
    k = s3_settings.privacy.k_anonymity
    published, assignment, subscribers = published_rows_by_call(spark, s3_settings, DAY)
    assert published, "gold published nothing"
    members: dict[tuple, set[str]] = {key: set() for key in published}
    calls: dict[tuple, int] = {key: 0 for key in published}
    for call_id, key in assignment.items():
        members[key].add(subscribers[call_id])
        calls[key] += 1
    for key, row in published.items():
        assert len(members[key]) >= k, key
        assert row.distinct_subscribers == len(members[key]) and row.calls == calls[key] and row.k == k
    # the run covered DAY and the earlier days offline phones reported; its suppression figures add up over them
    report = gold_or_silver_metrics(spark, s3_settings, "gold_hourly_geo", DAY)
    assert DAY.isoformat() in report["call_dates"]
    total = suppressed = 0
    for day in report["call_dates"]:
        _, day_assignment, day_calls = published_rows_by_call(spark, s3_settings, date.fromisoformat(day))
        total += len(day_calls)
        suppressed += len(day_calls) - len(day_assignment)
    assert report["calls"] == total and report["calls_suppressed"] == suppressed
    assert report["suppressed_share"] == pytest.approx(suppressed / total, abs=1e-6)


def test_quality_gates_recorded_and_passed(spark, s3_settings, ingested) -> None:  # type: ignore[no-untyped-def]
    results = lake.read_table(spark, AUDIT_QUALITY_RESULTS, s3_settings).collect()
    assert {r.table_name for r in results} == {"bronze.call_events", "silver.calls", "gold.hourly_geo_usage"}
    assert all(r.success for r in results), [(r.suite, r.expectation_type, r.unexpected_count) for r in results if not r.success]
    assert (Path(s3_settings.quality.data_docs_dir) / "index.html").exists()


def test_lineage_cli_walks_from_gold_down_to_landing_objects(spark, s3_settings, ingested, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from jobs.cli.main import main
    from lake_layout.config import settings_env

    # The command's own entry point in this process (its settings from the environment, as in a shell); a child
    # process would only add a JVM start. test_query_cli_prints_csv_only runs the installed command.
    for name, value in settings_env(s3_settings).items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    assert main(["lineage", "gold.hourly_geo_usage"]) == 0
    out = capsys.readouterr().out
    for expected in ("gold.hourly_geo_usage", "silver.calls", "bronze.call_events", "reference.subscriber_consent",
                     "s3a://voiplake-landing/uploads/upload_date=2026-11-24"):
        assert expected in out, out


def gold_or_silver_metrics(spark, s3_settings, job, day):  # type: ignore[no-untyped-def]
    from lake_layout.tables import AUDIT_LINEAGE

    rows = lake.read_table(spark, AUDIT_LINEAGE, s3_settings).where(f"job = '{job}' AND logical_date = DATE'{day}'").collect()
    assert len(rows) == 1, [r.run_id for r in rows]
    return metrics_of(rows[0])


def test_rerun_of_the_same_day_changes_no_table(spark, s3_settings, ingested, tmp_path) -> None:  # type: ignore[no-untyped-def]
    specs = (BRONZE_CALL_EVENTS, BRONZE_QUARANTINE, BRONZE_INGESTED_OBJECTS, SILVER_CALLS, SILVER_QUARANTINE,
             SILVER_PLATFORM_COMPLETENESS, GOLD_HOURLY_GEO_USAGE, GOLD_BILLING_RATED_CALLS, GOLD_BILLING_USAGE)
    before = {s.name: lake.table_version(spark, s, s3_settings) for s in specs}
    counts = {s.name: lake.read_table(spark, s, s3_settings).count() for s in specs}
    airflow_dags_test(s3_settings, DAG_ID, DAY, log=tmp_path / "rerun.log", airflow_home=ingested)
    assert {s.name: lake.table_version(spark, s, s3_settings) for s in specs} == before
    assert {s.name: lake.read_table(spark, s, s3_settings).count() for s in specs} == counts


def test_query_cli_prints_csv_only(spark, s3_settings, ingested, capsys) -> None:  # type: ignore[no-untyped-def]
    from jobs.cli.demo import airflow_env
    from jobs.cli.query import query_command

    env = airflow_env(s3_settings)
    out = subprocess.run(  # a real process: nothing but the CSV reaches stdout (no JVM or Spark log lines)
        [str(Path(sys.executable).with_name("voiplake")), "query",
         "SELECT platform, count(*) AS n FROM bronze.call_events GROUP BY platform ORDER BY platform", "--format", "csv"],
        env=env, capture_output=True, text=True, check=True,
    )
    lines = out.stdout.splitlines()
    assert lines[0] == "platform,n"
    assert [line.split(",")[0] for line in lines[1:]] == ["android", "ios", "web"]
    assert all(int(line.split(",")[1]) > 0 for line in lines[1:])

    # Finance reads internal columns only: a pseudonym is confidential, so the query is refused by name. The same
    # function the command calls, in this process (a second JVM would only add start-up time).
    capsys.readouterr()
    sql = "SELECT account_id, count(DISTINCT subscriber_pseudonym) FROM silver.calls GROUP BY 1"
    assert query_command(spark, s3_settings, sql, role="finance", fmt="csv") == 2
    refused = capsys.readouterr()
    assert refused.out == ""
    assert "silver.calls.subscriber_pseudonym is confidential; role 'finance' may not read it" in refused.err


NEXT_DAY = date(2026, 11, 25)
NEXT_DAY_SEED = 13


def test_late_calls_merge_into_their_day_and_gold_recomputes_it(spark, s3_settings, ingested) -> None:  # type: ignore[no-untyped-def]
    from pyspark.sql import functions as F

    calls = lake.read_table(spark, SILVER_CALLS, s3_settings)
    day_calls_before = calls.where(F.col("call_date") == DAY).count()
    gold_rows_before = lake.read_table(spark, GOLD_HOURLY_GEO_USAGE, s3_settings).where(F.col("call_date") == DAY).agg(F.sum("calls")).first()[0]
    gold_version_before = lake.table_version(spark, GOLD_HOURLY_GEO_USAGE, s3_settings)

    # seed 13's next day carries phones that were offline on DAY (55 events of DAY, checked by decoding)
    generate_to_landing(s3_settings, NEXT_DAY, events=EVENTS, seed=NEXT_DAY_SEED, faults=False)
    airflow_dags_test(s3_settings, DAG_ID, NEXT_DAY, log=ingested / "next-day.log", airflow_home=ingested)

    silver = gold_or_silver_metrics(spark, s3_settings, "silver_calls", NEXT_DAY)
    assert DAY.isoformat() in silver["call_dates"] and NEXT_DAY.isoformat() in silver["call_dates"]
    calls = lake.read_table(spark, SILVER_CALLS, s3_settings)
    late = calls.where((F.col("call_date") == DAY) & (F.to_date("first_received_at") == NEXT_DAY)).count()
    assert late > 0
    assert calls.where(F.col("call_date") == DAY).count() == day_calls_before + late
    gold = gold_or_silver_metrics(spark, s3_settings, "gold_hourly_geo", NEXT_DAY)
    assert DAY.isoformat() in gold["call_dates"]
    assert lake.table_version(spark, GOLD_HOURLY_GEO_USAGE, s3_settings) > gold_version_before
    # the recomputed day counts the late calls (published or suppressed) and still holds k for every row
    published, assignment, subscribers = published_rows_by_call(spark, s3_settings, DAY)
    assert len(subscribers) == day_calls_before + late
    gold_calls = lake.read_table(spark, GOLD_HOURLY_GEO_USAGE, s3_settings).where(F.col("call_date") == DAY).agg(F.sum("calls")).first()[0]
    assert gold_calls == len(assignment) and gold_calls >= gold_rows_before
    k = s3_settings.privacy.k_anonymity
    assert all(row.distinct_subscribers >= k for row in published.values())


def test_public_usage_stats_released_once_per_dataset_and_day_and_reruns_spend_nothing(spark, s3_settings, ingested) -> None:  # type: ignore[no-untyped-def]
    import json

    from jobs.publish import public_usage_stats as dp
    from lake_layout.tables import AUDIT_LINEAGE, AUDIT_PRIVACY_BUDGET, GOLD_PUBLIC_USAGE_STATS

    stats = lake.read_table(spark, GOLD_PUBLIC_USAGE_STATS, s3_settings).where(f"period = DATE'{DAY}'")
    countries = s3_settings.dp.country_domain
    # every cell of the fixed domain exactly once, data or not
    assert stats.count() == len(countries) * len(dp.NETWORK_CLASS_DOMAIN) * 2 + len(countries) * 24
    assert stats.select("dataset", "country_code", "network_class", "hour", "statistic").distinct().count() == stats.count()
    assert dict(stats.dtypes)["calls"] == "bigint"  # counts are integers
    assert stats.where("statistic = 'calls' AND (calls IS NULL OR calls < 0)").count() == 0
    assert stats.where("statistic = 'minutes' AND (minutes IS NULL OR minutes < 0 OR minutes <> round(minutes, 1))").count() == 0
    assert stats.where("calls > 0").count() > 0

    book = lake.read_table(spark, AUDIT_PRIVACY_BUDGET, s3_settings).where(f"period = DATE'{DAY}'").collect()
    assert sorted((r.dataset, r.status, r.epsilon) for r in book) == [
        ("daily_country_network", "spent", "0.25"), ("hourly_national_calls", "spent", "0.25")]
    assert {r.release_id for r in book} == {r.release_id for r in stats.select("release_id").distinct().collect()}

    # DAY was published by its first DAG run; the rerun of DAY and NEXT_DAY's run (late calls of DAY) reused it
    runs = [json.loads(r.metrics_json) for r in
            lake.read_table(spark, AUDIT_LINEAGE, s3_settings).where("job = 'public_usage_stats'").collect()]
    of_day = [release for m in runs for release in m["releases"] if release["period"] == DAY.isoformat()]
    assert sorted(r["action"] for r in of_day) == ["released"] * 2 + ["reused"] * (len(of_day) - 2)
    assert len(of_day) >= 4
    assert all(m["median_relative_error"] is not None for m in runs if m["cells_released"])


def test_privacy_audit_passes_gold_and_singles_out_silver_targets(spark, s3_settings, ingested) -> None:  # type: ignore[no-untyped-def]
    """The attack simulation on the generated day: gold leaks at most 1/k per target (ours and pycanon's k
    agree it is k-anonymous), while the same attacker singles out pseudonyms in silver, which is why silver
    is never published. The DP table passes on its ledger."""
    from pathlib import Path

    from jobs.pipeline.runner import run_privacy_audit
    from lake_layout.tables import AUDIT_PRIVACY_AUDIT

    k = s3_settings.privacy.k_anonymity
    report = run_privacy_audit(audit_date=DAY, targets=60, settings=s3_settings)
    assert report["passed"], report["failures"]
    tables = {t["table_name"]: t for t in report["tables"]}
    gold, silver = tables["gold.hourly_geo_usage"], tables["silver.calls"]
    assert gold["published"] and gold["unique_share"] == 0.0
    assert 0 < gold["max_prosecutor_risk"] <= 1 / k
    assert gold["k_min_ours"] >= k and gold["k_min_independent"] >= k
    assert not silver["published"] and silver["unique_share"] > gold["unique_share"]
    assert tables["gold.public_usage_stats"]["passed"]
    rows = lake.read_table(spark, AUDIT_PRIVACY_AUDIT, s3_settings).where(f"run_id = '{report['run_id']}'").collect()
    assert {r.table_name for r in rows} == set(tables)
    assert "gold.hourly_geo_usage" in Path(report["report_path"]).read_text()


def test_billing_rates_the_generated_calls_and_the_extract_reconciles_with_silver(spark, s3_settings, ingested, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from jobs.business import billing_usage
    from lake_layout.tables import GOLD_BILLING_RATED_CALLS

    period = billing_usage.calendar_of(s3_settings).period_of(datetime.combine(DAY, datetime.min.time()))
    manifest = billing_usage.extract(spark, s3_settings, period, tmp_path / "billing.csv")
    assert manifest.reconciled and manifest.call_ms == manifest.silver_billable_ms > 0
    assert manifest.accounts >= 3 and manifest.charge_minor > 0
    usage = lake.read_table(spark, GOLD_BILLING_USAGE, s3_settings).where(f"usage_period = '{period}'")
    assert manifest.charge_minor == manifest.billing_usage_charge_minor == usage.agg({"charge_minor": "sum"}).first()[0]
    assert manifest.lines == manifest.billing_usage_calls == usage.agg({"calls": "sum"}).first()[0]
    classes = {r[0] for r in lake.read_table(spark, GOLD_BILLING_RATED_CALLS, s3_settings).select("destination_class").distinct().collect()}
    assert {"on_net", "domestic_mobile", "domestic_fixed", "international"} <= classes
