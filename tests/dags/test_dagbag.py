"""DAG files parse, stay thin, and declare their Assets from the registry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DAGS = Path(__file__).resolve().parents[2] / "dags"


def test_dagbag_has_no_import_errors() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    dag = bag.dags["voip_bronze_ingest"]
    assert dag is not None
    assert dag.catchup is False and "bronze" in dag.tags
    task = dag.get_task("ingest_landing")
    assert task.retries == 2
    assert {a.name for a in task.outlets} == {"bronze.call_events", "bronze.quarantine", "bronze.ingested_objects", "audit.lineage"}


def test_parsing_a_dag_imports_nothing_heavy() -> None:
    code = (
        "import runpy, sys; runpy.run_path(%r); "
        "heavy = [m for m in ('pyspark', 'delta', 'great_expectations', 'boto3', 'pandas') if m in sys.modules]; "
        "print(','.join(heavy))" % str(DAGS / "voip_bronze_ingest.py")
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
