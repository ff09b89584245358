"""Entry points that wire settings, keys and a SparkSession to a job's `run` (used by DAG tasks and the CLI)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from lake_layout.config import Settings, load_settings

if TYPE_CHECKING:
    from jobs.bronze_ingest import IngestReport

REPORTS_DIR = Path(__file__).resolve().parent.parent / "build" / "reports"


def run_bronze_ingest(
    *, upload_date: date, settings: Settings | None = None, dag_id: str | None = None, dag_run_id: str | None = None
) -> "IngestReport":
    from jobs import bronze_ingest
    from jobs.keys import load_key_material
    from jobs.spark import build_spark

    settings = settings or load_settings()
    keys = load_key_material(Path(settings.keys.file))
    spark = build_spark(settings, app_name=f"bronze_ingest {upload_date}")
    # A DAG run gets a run id derived from it, so lineage points back at the Airflow run.
    run_id = {"run_id": f"bronze_ingest:{upload_date}:{dag_run_id}"} if dag_run_id else {}
    ctx = bronze_ingest.IngestContext(settings=settings, upload_date=upload_date, dag_id=dag_id, dag_run_id=dag_run_id, **run_id)
    report = bronze_ingest.run(spark, ctx, keys)
    REPORTS_DIR.mkdir(parents=True, exist_ok=True)
    (REPORTS_DIR / f"bronze_ingest-{upload_date}.json").write_text(json.dumps(report.__dict__, indent=2, default=str))
    return report
