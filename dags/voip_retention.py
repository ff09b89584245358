"""Daily retention: expired data is purged from the lake and the landing zone, with a record of every purge.

What triggers what
------------------
* Runs once a day at 12:00 UTC, away from `voip_daily` (which runs after midnight): VACUUM with a zero-hour
  retention would also remove files a concurrent writer has not committed yet. Logical date D is the day the
  periods are counted back from (`as_of`); backfill one with `airflow dags test voip_retention D`.
* `check_policy` loads and validates `lake_layout/retention_policy.toml` (a period and its regulation for every
  retention tier and jurisdiction). A broken policy fails the run before any data is touched, without retries.
* `enforce_retention` (jobs.governance.retention), in this order:
  1. per table, deletes the rows past their period: per jurisdiction (the subscriber's latest row in
     `reference.subscriber_consent`: EU, US-CA, US-other, other) where the tier's periods differ, else
     table-wide; only superseded consent rows, never the one in force;
  2. VACUUMs each table it deleted from, so the purged files are gone (time travel to them fails);
  3. expires landing objects (uploads, directory exports) past the raw period.
  Rows and objects of a day whose anonymized aggregates (`gold.hourly_geo_usage`, `gold.public_usage_stats`)
  are not there yet are deferred to a later run; data under an active legal hold (`voiplake hold`) is kept.
  Every step (delete, vacuum, expire_objects, deferred, skipped_hold) is a row of `audit.retention_actions`.
* The task updates the Asset of every table the purge may delete from, and `audit.retention_actions`.

A rerun of the same day deletes nothing more and records zero-row deletes: safe to retry.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import Asset, dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from jobs.platform.airflow_tasks import spark_task
from lake_layout.config import load_settings
from lake_layout.retention import may_purge
from lake_layout.tables import ALL_TABLES, AUDIT_RETENTION_ACTIONS

_SETTINGS = load_settings()
# Every table a purge may delete rows from (lake_layout.retention.may_purge), and the purge record.
PURGED = [spec for spec in ALL_TABLES if may_purge(spec)]
ASSETS = {spec.name: Asset(name=spec.name, uri=spec.asset_uri(_SETTINGS)) for spec in (*PURGED, AUDIT_RETENTION_ACTIONS)}
DAG_ID = "voip_retention"


@dag(
    dag_id=DAG_ID,
    schedule=CronDataIntervalTimetable("0 12 * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["retention", "compliance"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5), "retry_exponential_backoff": True},
    doc_md=__doc__,
)
def voip_retention() -> None:
    @task(retries=0)
    def check_policy() -> dict[str, object]:
        from lake_layout.retention import load_policy

        policy = load_policy()
        return {"source": policy.source, "tiers": {t.value: p.table_wide.days for t, p in policy.tiers.items()}}

    @spark_task(_SETTINGS, outlets=list(ASSETS.values()))
    def enforce_retention(policy: dict[str, object], *, logical_date: datetime, dag_run=None, spark=None) -> dict[str, object]:  # type: ignore[no-untyped-def]
        from jobs.pipeline.runner import run_retention

        report = run_retention(as_of=logical_date.date(), dag_run_id=dag_run.run_id if dag_run else None)
        return {k: report[k] for k in ("run_id", "as_of", "rows_removed", "files_removed", "objects_expired",
                                        "rows_held", "objects_held", "deferred_days")}

    enforce_retention(check_policy())


voip_retention()
