"""Entry points that wire settings, keys and a SparkSession to a job's `run` (used by DAG tasks and the CLI).

Each returns a JSON-serializable dict (Airflow passes it on as XCom) and writes it to
build/reports/<job>-<date>.json for people.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from lake_layout.config import PROJECT_ROOT, Settings, load_settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

REPORTS_DIR = PROJECT_ROOT / "build" / "reports"


def _plain(day: date) -> date:
    """A plain date: Airflow hands over pendulum types, which Spark's type checks reject."""
    return date(day.year, day.month, day.day)


def _run_id(job: str, day: date, dag_run_id: str | None) -> dict[str, str]:
    # A DAG run gets a run id derived from it, so lineage and quality results point back at the Airflow run.
    return {"run_id": f"{job}:{day}:{dag_run_id}"} if dag_run_id else {}


def _spark(settings: Settings, name: str) -> "SparkSession":
    from jobs.platform.spark import build_spark

    return build_spark(settings, app_name=name)


def _save(job: str, day: date, report: dict[str, Any]) -> dict[str, Any]:
    REPORTS_DIR.mkdir(parents=True, exist_ok=True)
    (REPORTS_DIR / f"{job}-{day}.json").write_text(json.dumps(report, indent=2, default=str))
    return report


def run_reference_ingest(*, export_date: date, settings: Settings | None = None) -> dict[str, Any]:
    from jobs.ingest import reference as reference_ingest
    from jobs.platform.keys import load_key_material

    settings = settings or load_settings()
    export_date = _plain(export_date)
    keys = load_key_material(Path(settings.keys.file))
    report = reference_ingest.run(_spark(settings, f"reference_ingest {export_date}"), settings, keys, export_date=export_date)
    return _save("reference_ingest", export_date, dict(report.__dict__))


def run_bronze_ingest(
    *, upload_date: date, settings: Settings | None = None, dag_id: str | None = None, dag_run_id: str | None = None
) -> dict[str, Any]:
    from jobs.ingest import bronze as bronze_ingest
    from jobs.platform.keys import load_key_material

    settings = settings or load_settings()
    upload_date = _plain(upload_date)
    keys = load_key_material(Path(settings.keys.file))
    spark = _spark(settings, f"bronze_ingest {upload_date}")
    ctx = bronze_ingest.IngestContext(settings=settings, upload_date=upload_date, dag_id=dag_id, dag_run_id=dag_run_id,
                                      **_run_id("bronze_ingest", upload_date, dag_run_id))
    return _save("bronze_ingest", upload_date, dict(bronze_ingest.run(spark, ctx, keys).__dict__))


def run_telemetry_compliance(
    *, upload_date: date, settings: Settings | None = None, dag_id: str | None = None, dag_run_id: str | None = None
) -> dict[str, Any]:
    """Telemetry-contract compliance of one upload date (gold.telemetry_compliance) against the central SDK
    configuration (lake_layout/sdk_config.toml) in force when each upload was received."""
    from jobs.telemetry import compliance as telemetry_compliance
    from jobs.telemetry.codec import EVENT_FIELDS
    from lake_layout.sdk_config import load_sdk_config

    settings = settings or load_settings()
    upload_date = _plain(upload_date)
    ctx = telemetry_compliance.ComplianceContext(
        settings=settings, upload_date=upload_date, sdk_config=load_sdk_config(known_fields=EVENT_FIELDS),
        dag_id=dag_id, dag_run_id=dag_run_id, **_run_id("telemetry_compliance", upload_date, dag_run_id))
    report = telemetry_compliance.run(_spark(settings, f"telemetry_compliance {upload_date}"), ctx)
    return _save("telemetry_compliance", upload_date, dict(report.__dict__))


def run_silver_calls(
    *, upload_date: date, settings: Settings | None = None, dag_id: str | None = None, dag_run_id: str | None = None
) -> dict[str, Any]:
    from jobs.curate import silver_calls

    settings = settings or load_settings()
    upload_date = _plain(upload_date)
    ctx = silver_calls.SilverContext(settings=settings, upload_date=upload_date, dag_id=dag_id, dag_run_id=dag_run_id,
                                     **_run_id("silver_calls", upload_date, dag_run_id))
    report = silver_calls.run(_spark(settings, f"silver_calls {upload_date}"), ctx)
    return _save("silver_calls", upload_date, dict(report.__dict__))


def run_gold_hourly_geo(
    *, call_dates: Sequence[date | str], logical_date: date, settings: Settings | None = None,
    dag_id: str | None = None, dag_run_id: str | None = None,
) -> dict[str, Any]:
    from jobs.publish import hourly_geo as gold_hourly_geo

    settings = settings or load_settings()
    logical_date = _plain(logical_date)
    days = tuple(date.fromisoformat(d) if isinstance(d, str) else _plain(d) for d in call_dates)
    ctx = gold_hourly_geo.GoldContext(settings=settings, call_dates=days, logical_date=logical_date, dag_id=dag_id,
                                      dag_run_id=dag_run_id, **_run_id("gold_hourly_geo", logical_date, dag_run_id))
    report = gold_hourly_geo.run(_spark(settings, f"gold_hourly_geo {logical_date}"), ctx)
    return _save("gold_hourly_geo", logical_date, dict(report.__dict__))


def run_public_usage_stats(
    *, call_dates: Sequence[date | str], logical_date: date, settings: Settings | None = None,
    dag_id: str | None = None, dag_run_id: str | None = None, rerelease: bool = False,
) -> dict[str, Any]:
    """Differentially private public statistics for `call_dates`; raises PrivacyBudgetExceeded (after
    recording the refusal in audit.privacy_budget) when a release would exceed dp.epsilon_cap."""
    from jobs.publish import public_usage_stats

    settings = settings or load_settings()
    logical_date = _plain(logical_date)
    days = tuple(date.fromisoformat(d) if isinstance(d, str) else _plain(d) for d in call_dates)
    ctx = public_usage_stats.PublicStatsContext(
        settings=settings, call_dates=days, logical_date=logical_date, rerelease=rerelease, dag_id=dag_id,
        dag_run_id=dag_run_id, **_run_id("public_usage_stats", logical_date, dag_run_id),
    )
    report = public_usage_stats.run(_spark(settings, f"public_usage_stats {logical_date}"), ctx)
    return _save("public_usage_stats", logical_date, dict(report.__dict__))


def run_privacy_audit(
    *, audit_date: date, targets: int | None = None, known_calls: int | None = None, settings: Settings | None = None,
    dag_id: str | None = None, dag_run_id: str | None = None,
) -> dict[str, Any]:
    """Re-identification attack simulation for one call date (jobs.privacy.audit). The result's `passed` is False
    (and `failures` says which table and why) when a published table exceeds the risk threshold or fails k."""
    from jobs.privacy import audit as privacy_audit

    settings = settings or load_settings()
    audit_date = _plain(audit_date)
    ctx = privacy_audit.AuditContext(settings=settings, audit_date=audit_date, targets=targets, known_calls=known_calls,
                                     dag_id=dag_id, dag_run_id=dag_run_id, **_run_id("privacy_audit", audit_date, dag_run_id))
    report = privacy_audit.run(_spark(settings, f"privacy_audit {audit_date}"), ctx)
    return _save("privacy_audit", audit_date, json.loads(report.to_json()))


def run_keys_rotate(*, settings: Settings | None = None) -> dict[str, Any]:
    """`voiplake keys rotate`: a new KEK version at the configured provider, then every DEK in
    security.data_keys re-wrapped under it (no data table is rewritten)."""
    from datetime import datetime, timezone

    from jobs.platform import envelope

    settings = settings or load_settings()
    provider = envelope.provider_from_settings(settings)
    report = envelope.rotate_data_keys(_spark(settings, "keys rotate"), settings, provider)
    return _save("keys_rotate", datetime.now(timezone.utc).date(), dict(report.__dict__))


def run_keys_decrypt_check(*, upload_date: date, role: str, settings: Settings | None = None) -> dict[str, Any]:
    """`voiplake keys decrypt-check`: decrypt every restricted cell bronze received on `upload_date` through the
    configured provider and count them (no plaintext in the result); `ok` False if any cell fails.
    Raises AccessDenied unless `role` may decrypt restricted columns (lake_layout.access)."""
    from jobs.platform import envelope
    from lake_layout.access import require_decrypt

    require_decrypt(role)
    settings = settings or load_settings()
    upload_date = _plain(upload_date)
    where = gate_scope("bronze.call_events", upload_date=upload_date)
    assert where is not None
    report = envelope.decrypt_check(_spark(settings, f"keys decrypt-check {upload_date}"), settings,
                                    envelope.provider_from_settings(settings), where=where)
    return _save("keys_decrypt_check", upload_date, report)


def run_capacity_busy_hour(
    *, call_dates: Sequence[date | str], logical_date: date, settings: Settings | None = None,
    dag_id: str | None = None, dag_run_id: str | None = None,
) -> dict[str, Any]:
    """SIP trunk capacity (gold.capacity_busy_hour) for `call_dates` and the following days silver already has."""
    from jobs.business import capacity_busy_hour

    settings = settings or load_settings()
    logical_date = _plain(logical_date)
    days = tuple(date.fromisoformat(d) if isinstance(d, str) else _plain(d) for d in call_dates)
    ctx = capacity_busy_hour.CapacityContext(settings=settings, call_dates=days, logical_date=logical_date, dag_id=dag_id,
                                             dag_run_id=dag_run_id, **_run_id("capacity_busy_hour", logical_date, dag_run_id))
    report = capacity_busy_hour.run(_spark(settings, f"capacity_busy_hour {logical_date}"), ctx)
    return _save("capacity_busy_hour", logical_date, json.loads(report.to_json()))


def run_auth_ingest(*, login_date: date, settings: Settings | None = None) -> dict[str, Any]:
    """The identity provider's auth log of `login_date` into bronze.auth_events (nothing when there is none)."""
    from jobs.ingest import auth as auth_ingest
    from jobs.platform.keys import load_key_material

    settings = settings or load_settings()
    login_date = _plain(login_date)
    keys = load_key_material(Path(settings.keys.file))
    report = auth_ingest.run(_spark(settings, f"auth_ingest {login_date}"), settings, keys, login_date=login_date)
    return _save("auth_ingest", login_date, dict(report.__dict__))


def run_detect_anomalies(
    *, detection_date: date, settings: Settings | None = None, dag_id: str | None = None, dag_run_id: str | None = None,
) -> dict[str, Any]:
    """Anomalies of `detection_date`'s calls (gold.anomalies), device quarantine and the SIEM export."""
    from jobs.security import anomalies
    from jobs.platform.keys import load_key_material

    settings = settings or load_settings()
    detection_date = _plain(detection_date)
    keys = load_key_material(Path(settings.keys.file))
    ctx = anomalies.AnomalyContext(settings=settings, detection_date=detection_date, dag_id=dag_id, dag_run_id=dag_run_id,
                                   **_run_id("anomalies", detection_date, dag_run_id))
    report = anomalies.run(_spark(settings, f"anomalies {detection_date}"), ctx, key_id=keys.pseudonym.active)
    return _save("anomalies", detection_date, json.loads(report.to_json()))


def run_billing_usage(
    *, call_dates: Sequence[date | str], logical_date: date, settings: Settings | None = None,
    dag_id: str | None = None, dag_run_id: str | None = None,
) -> dict[str, Any]:
    """B2B billing for the call dates silver changed, as of `logical_date`: closes due periods, re-rates open ones,
    bills late calls of closed ones as adjustments (gold.billing_rated_calls, gold.billing_usage)."""
    from jobs.business import billing_usage

    settings = settings or load_settings()
    logical_date = _plain(logical_date)
    days = tuple(date.fromisoformat(d) if isinstance(d, str) else _plain(d) for d in call_dates)
    ctx = billing_usage.BillingContext(settings=settings, as_of=logical_date, call_dates=days, dag_id=dag_id,
                                       dag_run_id=dag_run_id, **_run_id("billing_usage", logical_date, dag_run_id))
    report = billing_usage.run(_spark(settings, f"billing_usage {logical_date}"), ctx)
    return _save("billing_usage", logical_date, json.loads(report.to_json()))


def run_pipeline(*, day: date, settings: Settings | None = None) -> dict[str, Any]:
    """The daily DAG's data stages for one upload date, in its order, without Airflow and without the quality
    gates: subscriber directory, bronze, silver, gold, billing. For running the jobs where no Airflow runs (a
    Spark cluster smoke run: `VOIPLAKE_SPARK_MASTER=spark://... voiplake pipeline --date D`)."""
    from jobs.platform.spark import build_spark

    settings = settings or load_settings()
    day = _plain(day)
    report: dict[str, Any] = {"date": day.isoformat(), "master": build_spark(settings).sparkContext.master}
    report["directory"] = run_reference_ingest(export_date=day, settings=settings)
    report["bronze"] = run_bronze_ingest(upload_date=day, settings=settings)
    silver = run_silver_calls(upload_date=day, settings=settings)
    report["silver"] = silver
    report["gold"] = run_gold_hourly_geo(call_dates=silver["call_dates"], logical_date=day, settings=settings)
    report["billing"] = run_billing_usage(call_dates=silver["call_dates"], logical_date=day, settings=settings)
    return report


def run_cost_allocation(*, period: str, costs_file: Path | None = None, settings: Settings | None = None) -> dict[str, Any]:
    """Allocate finance's costs of `period` (YYYY-MM) to accounts and departments into gold.cost_allocation."""
    from jobs.business import cost_allocation

    settings = settings or load_settings()
    month = cost_allocation.Period(period)
    ctx = cost_allocation.CostAllocationContext(settings=settings, period=month, costs_file=costs_file)
    report = cost_allocation.run(_spark(settings, f"cost_allocation {period}"), ctx)
    return _save("cost_allocation", month.first_day, dict(report.__dict__))


def run_account_usage(
    *, call_dates: Sequence[date | str], logical_date: date, settings: Settings | None = None,
    dag_id: str | None = None, dag_run_id: str | None = None,
) -> dict[str, Any]:
    """Usage per B2B account and day (gold.account_usage_daily, with each account's reseller) for `call_dates`."""
    from jobs.business import account_usage

    settings = settings or load_settings()
    logical_date = _plain(logical_date)
    days = tuple(date.fromisoformat(d) if isinstance(d, str) else _plain(d) for d in call_dates)
    ctx = account_usage.AccountUsageContext(settings=settings, call_dates=days, logical_date=logical_date, dag_id=dag_id,
                                            dag_run_id=dag_run_id, **_run_id("account_usage", logical_date, dag_run_id))
    report = account_usage.run(_spark(settings, f"account_usage {logical_date}"), ctx)
    return _save("account_usage", logical_date, json.loads(report.to_json()))


def run_support_triggers(
    *, evaluated_dates: Sequence[date | str], logical_date: date, settings: Settings | None = None,
    dag_id: str | None = None, dag_run_id: str | None = None,
) -> dict[str, Any]:
    """Quota and quality support triggers (gold.support_triggers) for `evaluated_dates`, then delivery of every
    undelivered trigger through the configured sink (quotas.sink)."""
    from jobs.business import support_triggers

    settings = settings or load_settings()
    logical_date = _plain(logical_date)
    days = tuple(date.fromisoformat(d) if isinstance(d, str) else _plain(d) for d in evaluated_dates)
    ctx = support_triggers.SupportTriggersContext(settings=settings, evaluated_dates=days, logical_date=logical_date,
                                                  dag_id=dag_id, dag_run_id=dag_run_id,
                                                  **_run_id("support_triggers", logical_date, dag_run_id))
    report = support_triggers.run(_spark(settings, f"support_triggers {logical_date}"), ctx)
    return _save("support_triggers", logical_date, json.loads(report.to_json()))


def run_retention(
    *, as_of: date, dry_run: bool = False, policy_file: Path | None = None, settings: Settings | None = None,
    dag_run_id: str | None = None,
) -> dict[str, Any]:
    """Enforce lake_layout/retention_policy.toml as of `as_of` (jobs.governance.retention): delete expired rows per
    jurisdiction, VACUUM, expire landing objects, skipping held data and days whose aggregates are missing;
    every step in audit.retention_actions. `dry_run` only plans (counts, no change, no audit rows)."""
    import uuid

    from jobs.governance import retention
    from lake_layout.retention import load_policy

    settings = settings or load_settings()
    as_of = _plain(as_of)
    # A new run id per attempt: a retried task appends its own actions next to those of the failed attempt.
    run_id = f"retention:{as_of}:{dag_run_id or 'manual'}:{uuid.uuid4().hex[:8]}"
    report = retention.run(_spark(settings, f"retention {as_of}"), settings, as_of=as_of, run_id=run_id,
                           policy=load_policy(policy_file), dry_run=dry_run)
    return _save("retention-plan" if dry_run else "retention", as_of, json.loads(report.to_json()))


def run_dsr(
    *, action: str, msisdn: str, request_id: str, actor: str, role: str | None = None, out: Path | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """A data-subject request (jobs.governance.dsr): `export` writes the subject's data to `out` (default build/dsr),
    `delete` erases it. Raises DsrError / AccessDenied before any change, DsrRefused (after recording the refused
    receipt) when a legal hold covers the subject's data. The report holds pseudonyms only, never the MSISDN."""
    from datetime import datetime, timezone

    from jobs.governance import dsr
    from jobs.platform.keys import load_key_material
    from lake_layout.access import DEFAULT_ROLE

    if action not in dsr.KINDS:
        raise dsr.DsrError(f"action must be one of {dsr.KINDS}, got {action!r}")
    dsr.check_request(msisdn=msisdn, request_id=request_id)  # before starting Spark
    settings = settings or load_settings()
    keys = load_key_material(Path(settings.keys.file), create=False)
    spark = _spark(settings, f"dsr {action} {request_id}")
    if action == "export":
        report = dsr.export(spark, settings, keys, msisdn=msisdn, request_id=request_id, out=out or dsr.DEFAULT_OUT,
                            actor=actor, role=role or DEFAULT_ROLE)
    else:
        report = dsr.delete(spark, settings, keys, msisdn=msisdn, request_id=request_id, actor=actor,
                            role=role or DEFAULT_ROLE)
    return _save(f"dsr_{action}-{request_id}", datetime.now(timezone.utc).date(), report.to_json())


def gate_scope(table: str, *, upload_date: date | None = None, call_dates: Sequence[date | str] = ()) -> str | None:
    """The slice a quality gate checks: what the run wrote. None = nothing to check."""
    if table == "bronze.call_events":
        assert upload_date is not None
        day = _plain(upload_date)
        return f"received_at >= TIMESTAMP'{day} 00:00:00' AND received_at < TIMESTAMP'{day + timedelta(days=1)} 00:00:00'"
    if not call_dates:
        return None
    return "call_date IN (" + ", ".join(f"DATE'{d}'" for d in call_dates) + ")"


def run_quality_gate(
    *, table: str, where: str | None, logical_date: date, settings: Settings | None = None, dag_run_id: str | None = None
) -> dict[str, Any]:
    """Validate `where` of `table` against expectations/<table>.json; raises QualityGateFailed (after
    recording the results in audit.quality_results) when an expectation fails."""
    import great_expectations  # noqa: F401  (before anything imports airflow's logging in this process)

    from jobs.platform import quality
    from lake_layout.tables import table as table_spec

    settings = settings or load_settings()
    logical_date = _plain(logical_date)
    if where is None:
        return {"table": table, "skipped": "nothing written this run"}
    spec = table_spec(table)
    run_id = f"quality:{table}:{logical_date}:{dag_run_id}" if dag_run_id else f"quality:{table}:{logical_date}"
    report = quality.run_gate(_spark(settings, f"quality {table}"), settings, spec, where=where, run_id=run_id, dag_run_id=dag_run_id)
    return _save(f"quality-{table}", logical_date, report.summary())
