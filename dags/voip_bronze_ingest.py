"""Daily ingestion of mobile VoIP telemetry uploads into the bronze layer.

What triggers what
------------------
* Runs once per UTC day, after the day has ended: the run for logical date D ingests every
  landing object the collector received on D (`<landing>/upload_date=D/...`). Backfill a day with
  `airflow dags test voip_bronze_ingest D` or `airflow dags backfill`.
* `ingest_landing` verifies, decodes, pseudonymizes and writes `bronze.call_events`, quarantines bad
  objects and records in `bronze.quarantine`, and records each processed object in
  `bronze.ingested_objects`, so a rerun of a day ingests nothing twice.
* It updates one Asset per table it writes; downstream DAGs (silver) schedule on those Assets.

Transient failures (object store hiccups, Spark executor loss) are retried; bad data is never a
failure, it is quarantined.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from airflow.sdk import Asset, dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from lake_layout.config import load_settings
from lake_layout.tables import AUDIT_LINEAGE, BRONZE_CALL_EVENTS, BRONZE_INGESTED_OBJECTS, BRONZE_QUARANTINE

_SETTINGS = load_settings()
BRONZE_CALL_EVENTS_ASSET = Asset(name=BRONZE_CALL_EVENTS.name, uri=BRONZE_CALL_EVENTS.asset_uri(_SETTINGS))
BRONZE_QUARANTINE_ASSET = Asset(name=BRONZE_QUARANTINE.name, uri=BRONZE_QUARANTINE.asset_uri(_SETTINGS))
BRONZE_MANIFEST_ASSET = Asset(name=BRONZE_INGESTED_OBJECTS.name, uri=BRONZE_INGESTED_OBJECTS.asset_uri(_SETTINGS))
AUDIT_LINEAGE_ASSET = Asset(name=AUDIT_LINEAGE.name, uri=AUDIT_LINEAGE.asset_uri(_SETTINGS))


@dag(
    dag_id="voip_bronze_ingest",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["bronze", "ingestion"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1), "retry_exponential_backoff": True},
    doc_md=__doc__,
)
def voip_bronze_ingest() -> None:
    @task(outlets=[BRONZE_CALL_EVENTS_ASSET, BRONZE_QUARANTINE_ASSET, BRONZE_MANIFEST_ASSET, AUDIT_LINEAGE_ASSET])
    def ingest_landing(*, logical_date: datetime, dag_run=None) -> dict[str, object]:  # type: ignore[no-untyped-def]
        from jobs.runner import run_bronze_ingest

        # A plain date: Airflow hands over pendulum types, which Spark's type checks reject.
        upload_date = date(logical_date.year, logical_date.month, logical_date.day)
        report = run_bronze_ingest(
            upload_date=upload_date,
            dag_id="voip_bronze_ingest",
            dag_run_id=dag_run.run_id if dag_run is not None else None,
        )
        return report.__dict__

    ingest_landing()


voip_bronze_ingest()
