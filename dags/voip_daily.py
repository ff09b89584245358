"""Daily mobile VoIP telemetry pipeline: landing -> bronze -> silver -> gold, with quality gates between.

What triggers what
------------------
* Runs once per UTC day, after the day has ended; logical date D = the upload date. Backfill a day with
  `airflow dags test voip_daily D` or `airflow dags backfill voip_daily --start-date D1 --end-date D2`.
* `ingest_directory` loads D's subscriber directory export (consent history, account creation dates)
  into `reference.subscriber_consent`.
* `ingest_landing` verifies, decodes and pseudonymizes every landing object received on D into
  `bronze.call_events`; bad objects and records go to `bronze.quarantine`; processed objects are
  recorded in `bronze.ingested_objects` so a rerun ingests nothing twice.
* `check_bronze` runs the bronze expectation suite (expectations/bronze.call_events.json) on what
  arrived on D. A failing suite stops the run here: silver is not built from it. Every gate records
  its results in `audit.quality_results` and names the failing expectation and row count.
* `build_silver` rebuilds every call touched by D's events (late events included) into `silver.calls`
  and `silver.platform_completeness`; it reports the call dates that changed.
* `check_silver`, then `build_gold` recomputes `gold.hourly_geo_usage` (k-anonymous) for exactly those
  call dates, then `check_gold`.
* `publish_public_stats` (also after `check_silver`, beside gold) releases the differentially private
  `gold.public_usage_stats` for those call dates. Every release is charged to `audit.privacy_budget`
  first; a date already released is reused (no new spend); a release beyond the epsilon cap is refused
  and fails the task without retries (retrying cannot create budget).
* `build_capacity` (also after `check_silver`) recomputes `gold.capacity_busy_hour` for those call dates
  (and the day after each, for calls over midnight): busy hour, Erlangs, peak calls and the SIP channels
  each trunk group needs by Erlang B at `capacity.blocking`.
* `build_billing` (also after `check_silver`) closes the billing periods whose late-data grace ended by D,
  re-rates the open periods silver touched into `gold.billing_rated_calls` / `gold.billing_usage`, and bills
  calls that arrived for closed periods as adjustments in the open period (closed periods are never rewritten).
* `build_account_usage` (also after `check_silver`) recomputes `gold.account_usage_daily` for those call
  dates: usage per B2B account and day with its reseller (lake_layout/resellers.toml), which the resellers'
  usage-report extract and the CRM API read.
* `evaluate_support_triggers` (also after `check_silver`) checks each changed call date against the quotas
  ([quotas] in infra/voiplake.toml: month-to-date minutes per account and per subscriber) and the call quality
  per account (failure rate, short-call ratio), records new events in `gold.support_triggers` (each threshold
  fires once per period) and delivers the undelivered ones to the support sink (file or webhook). A sink that
  is down does not fail the task: its events stay undelivered and the next run delivers them.
* `check_telemetry_compliance` (after `check_bronze`) holds what each client build uploaded on D to the central SDK
  configuration in force when it was received (lake_layout/sdk_config.toml): fields outside the allowed set (bronze
  dropped them), sampling too fast, high-frequency tracking on 2G, uploads during calls, bytes over the daily cap;
  results per platform, app version and carrier with the worst devices in `gold.telemetry_compliance`.
* `ingest_auth` (beside `ingest_landing`) loads D's authentication log, if the identity provider delivered one,
  into `bronze.auth_events`, pseudonymized with bronze's keys.
* `detect_anomalies` (after `check_silver` and `ingest_auth`) finds D's anomalies ([anomalies] in
  infra/voiplake.toml): call-attempt spikes against an hour-of-week baseline, media volume thresholds, calls without
  a recent login from the device, and unusual enterprise account-hours (isolation forest on the history). Findings
  go to `gold.anomalies` and the SIEM (CEF / JSON lines files, optional syslog); devices of severe findings go to
  `security.device_quarantine`, whose uploads the next `ingest_landing` diverts to `bronze.quarantine`. A day
  without auth logs or history still runs: those detectors are skipped and say why.
* Each task that writes a table updates that table's Asset, so downstream DAGs (privacy publications,
  billing) schedule on `gold.hourly_geo_usage` / `silver.calls` rather than on a clock.

Where Spark runs: `[spark] dag_tasks` (infra/voiplake.toml). "in_process" (default): each task builds its session
from `[spark] master` (local[N], or a standalone master). "pyspark": every task is an @task.pyspark of the Airflow
Spark provider and takes the master from Airflow connection `[spark] airflow_conn_id` (jobs/platform/airflow_tasks.py).

Transient failures (object store hiccups, Spark executor loss) are retried; bad data is never a
failure, it is quarantined. A failed quality gate is not retried: the data, not the system, is wrong.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import Asset, dag
from airflow.timetables.interval import CronDataIntervalTimetable

from jobs.platform.airflow_tasks import spark_task
from lake_layout.config import load_settings
from lake_layout.tables import (
    ALL_TABLES,
    AUDIT_BILLING_PERIODS,
    AUDIT_LINEAGE,
    AUDIT_PRIVACY_BUDGET,
    AUDIT_QUALITY_RESULTS,
    BRONZE_AUTH_EVENTS,
    BRONZE_CALL_EVENTS,
    BRONZE_INGESTED_OBJECTS,
    BRONZE_QUARANTINE,
    GOLD_ACCOUNT_USAGE_DAILY,
    GOLD_ANOMALIES,
    GOLD_BILLING_RATED_CALLS,
    GOLD_BILLING_USAGE,
    GOLD_CAPACITY_BUSY_HOUR,
    GOLD_HOURLY_GEO_USAGE,
    GOLD_PUBLIC_USAGE_STATS,
    GOLD_SUPPORT_TRIGGERS,
    GOLD_TELEMETRY_COMPLIANCE,
    REFERENCE_SUBSCRIBER_CONSENT,
    SECURITY_DEVICE_QUARANTINE,
    SILVER_CALLS,
    SILVER_PLATFORM_COMPLETENESS,
    SILVER_QUARANTINE,
)

_SETTINGS = load_settings()
ASSETS = {
    spec.name: Asset(name=spec.name, uri=spec.asset_uri(_SETTINGS))
    for spec in ALL_TABLES
}
DAG_ID = "voip_daily"


def _outlets(*specs):  # type: ignore[no-untyped-def]
    return [ASSETS[s.name] for s in specs]


@dag(
    dag_id=DAG_ID,
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["bronze", "silver", "gold", "quality"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1), "retry_exponential_backoff": True},
    doc_md=__doc__,
)
def voip_daily() -> None:
    @spark_task(_SETTINGS, outlets=_outlets(REFERENCE_SUBSCRIBER_CONSENT, AUDIT_LINEAGE))
    def ingest_directory(*, logical_date: datetime, spark=None) -> dict[str, object]:
        from jobs.pipeline.runner import run_reference_ingest

        return run_reference_ingest(export_date=logical_date.date())

    @spark_task(_SETTINGS, outlets=_outlets(BRONZE_CALL_EVENTS, BRONZE_QUARANTINE, BRONZE_INGESTED_OBJECTS, AUDIT_LINEAGE))
    def ingest_landing(*, logical_date: datetime, dag_run=None, spark=None) -> dict[str, object]:  # type: ignore[no-untyped-def]
        from jobs.pipeline.runner import run_bronze_ingest

        return run_bronze_ingest(upload_date=logical_date.date(), dag_id=DAG_ID, dag_run_id=dag_run.run_id if dag_run else None)

    @spark_task(_SETTINGS, retries=0, outlets=_outlets(AUDIT_QUALITY_RESULTS))
    def check_bronze(bronze: dict[str, object], *, logical_date: datetime, dag_run=None, spark=None) -> dict[str, object]:  # type: ignore[no-untyped-def]
        from jobs.pipeline.runner import gate_scope, run_quality_gate

        where = gate_scope(BRONZE_CALL_EVENTS.name, upload_date=logical_date.date())
        return run_quality_gate(table=BRONZE_CALL_EVENTS.name, where=where, logical_date=logical_date.date(),
                                dag_run_id=dag_run.run_id if dag_run else None)

    @spark_task(_SETTINGS, outlets=_outlets(SILVER_CALLS, SILVER_QUARANTINE, SILVER_PLATFORM_COMPLETENESS, AUDIT_LINEAGE))
    def build_silver(gate: dict[str, object], *, logical_date: datetime, dag_run=None, spark=None) -> dict[str, object]:  # type: ignore[no-untyped-def]
        from jobs.pipeline.runner import run_silver_calls

        return run_silver_calls(upload_date=logical_date.date(), dag_id=DAG_ID, dag_run_id=dag_run.run_id if dag_run else None)

    @spark_task(_SETTINGS, retries=0, outlets=_outlets(AUDIT_QUALITY_RESULTS))
    def check_silver(silver: dict[str, object], *, logical_date: datetime, dag_run=None, spark=None) -> list[str]:  # type: ignore[no-untyped-def]
        from jobs.pipeline.runner import gate_scope, run_quality_gate

        call_dates = list(silver["call_dates"])  # type: ignore[call-overload]
        run_quality_gate(table=SILVER_CALLS.name, where=gate_scope(SILVER_CALLS.name, call_dates=call_dates),
                         logical_date=logical_date.date(), dag_run_id=dag_run.run_id if dag_run else None)
        return call_dates

    @spark_task(_SETTINGS, outlets=_outlets(GOLD_HOURLY_GEO_USAGE, AUDIT_LINEAGE))
    def build_gold(call_dates: list[str], *, logical_date: datetime, dag_run=None, spark=None) -> dict[str, object]:  # type: ignore[no-untyped-def]
        from jobs.pipeline.runner import run_gold_hourly_geo

        return run_gold_hourly_geo(call_dates=call_dates, logical_date=logical_date.date(), dag_id=DAG_ID,
                                   dag_run_id=dag_run.run_id if dag_run else None)

    @spark_task(_SETTINGS, retries=0, outlets=_outlets(AUDIT_QUALITY_RESULTS))
    def check_gold(gold: dict[str, object], *, logical_date: datetime, dag_run=None, spark=None) -> dict[str, object]:  # type: ignore[no-untyped-def]
        from jobs.pipeline.runner import gate_scope, run_quality_gate

        where = gate_scope(GOLD_HOURLY_GEO_USAGE.name, call_dates=list(gold["call_dates"]))  # type: ignore[call-overload]
        return run_quality_gate(table=GOLD_HOURLY_GEO_USAGE.name, where=where, logical_date=logical_date.date(),
                                dag_run_id=dag_run.run_id if dag_run else None)

    @spark_task(_SETTINGS, outlets=_outlets(GOLD_PUBLIC_USAGE_STATS, AUDIT_PRIVACY_BUDGET, AUDIT_LINEAGE))
    def publish_public_stats(call_dates: list[str], *, logical_date: datetime, dag_run=None, spark=None) -> dict[str, object]:  # type: ignore[no-untyped-def]
        from airflow.sdk.exceptions import AirflowFailException

        from jobs.privacy.budget import PrivacyBudgetExceeded
        from jobs.pipeline.runner import run_public_usage_stats

        try:
            return run_public_usage_stats(call_dates=call_dates, logical_date=logical_date.date(), dag_id=DAG_ID,
                                          dag_run_id=dag_run.run_id if dag_run else None)
        except PrivacyBudgetExceeded as exc:
            raise AirflowFailException(str(exc)) from exc

    @spark_task(_SETTINGS, outlets=_outlets(GOLD_CAPACITY_BUSY_HOUR, AUDIT_LINEAGE))
    def build_capacity(call_dates: list[str], *, logical_date: datetime, dag_run=None, spark=None) -> dict[str, object]:  # type: ignore[no-untyped-def]
        from jobs.pipeline.runner import run_capacity_busy_hour

        return run_capacity_busy_hour(call_dates=call_dates, logical_date=logical_date.date(), dag_id=DAG_ID,
                                      dag_run_id=dag_run.run_id if dag_run else None)

    @spark_task(_SETTINGS, outlets=_outlets(GOLD_BILLING_RATED_CALLS, GOLD_BILLING_USAGE, AUDIT_BILLING_PERIODS, AUDIT_LINEAGE))
    def build_billing(call_dates: list[str], *, logical_date: datetime, dag_run=None, spark=None) -> dict[str, object]:  # type: ignore[no-untyped-def]
        from jobs.pipeline.runner import run_billing_usage

        return run_billing_usage(call_dates=call_dates, logical_date=logical_date.date(), dag_id=DAG_ID,
                                 dag_run_id=dag_run.run_id if dag_run else None)

    @spark_task(_SETTINGS, outlets=_outlets(GOLD_ACCOUNT_USAGE_DAILY, AUDIT_LINEAGE))
    def build_account_usage(call_dates: list[str], *, logical_date: datetime, dag_run=None, spark=None) -> dict[str, object]:  # type: ignore[no-untyped-def]
        from jobs.pipeline.runner import run_account_usage

        return run_account_usage(call_dates=call_dates, logical_date=logical_date.date(), dag_id=DAG_ID,
                                 dag_run_id=dag_run.run_id if dag_run else None)

    @spark_task(_SETTINGS, outlets=_outlets(GOLD_SUPPORT_TRIGGERS, AUDIT_LINEAGE))
    def evaluate_support_triggers(call_dates: list[str], *, logical_date: datetime, dag_run=None, spark=None) -> dict[str, object]:  # type: ignore[no-untyped-def]
        from jobs.pipeline.runner import run_support_triggers

        return run_support_triggers(evaluated_dates=call_dates, logical_date=logical_date.date(), dag_id=DAG_ID,
                                    dag_run_id=dag_run.run_id if dag_run else None)

    @spark_task(_SETTINGS, outlets=_outlets(GOLD_TELEMETRY_COMPLIANCE, AUDIT_LINEAGE))
    def check_telemetry_compliance(gate: dict[str, object], *, logical_date: datetime, dag_run=None, spark=None) -> dict[str, object]:  # type: ignore[no-untyped-def]
        from jobs.pipeline.runner import run_telemetry_compliance

        return run_telemetry_compliance(upload_date=logical_date.date(), dag_id=DAG_ID,
                                        dag_run_id=dag_run.run_id if dag_run else None)

    @spark_task(_SETTINGS, outlets=_outlets(BRONZE_AUTH_EVENTS, BRONZE_QUARANTINE))
    def ingest_auth(*, logical_date: datetime, spark=None) -> dict[str, object]:
        from jobs.pipeline.runner import run_auth_ingest

        return run_auth_ingest(login_date=logical_date.date())

    @spark_task(_SETTINGS, outlets=_outlets(GOLD_ANOMALIES, SECURITY_DEVICE_QUARANTINE, AUDIT_LINEAGE))
    def detect_anomalies(call_dates: list[str], auth: dict[str, object], *, logical_date: datetime, dag_run=None, spark=None) -> dict[str, object]:  # type: ignore[no-untyped-def]
        from jobs.pipeline.runner import run_detect_anomalies

        return run_detect_anomalies(detection_date=logical_date.date(), dag_id=DAG_ID,
                                    dag_run_id=dag_run.run_id if dag_run else None)

    bronze = ingest_landing()
    ingest_directory() >> bronze
    bronze_checked = check_bronze(bronze)
    silver = build_silver(bronze_checked)
    check_telemetry_compliance(bronze_checked)
    silver_checked = check_silver(silver)
    check_gold(build_gold(silver_checked))
    publish_public_stats(silver_checked)
    build_capacity(silver_checked)
    evaluate_support_triggers(silver_checked)
    build_account_usage(silver_checked)
    build_billing(silver_checked)
    detect_anomalies(silver_checked, ingest_auth())


voip_daily()
