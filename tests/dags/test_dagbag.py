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
    dag = bag.dags["voip_daily"]
    assert dag.catchup is False and {"bronze", "silver", "gold"} <= set(dag.tags)
    task = dag.get_task("ingest_landing")
    assert task.retries == 2
    assert {a.name for a in task.outlets} == {"bronze.call_events", "bronze.quarantine", "bronze.ingested_objects", "audit.lineage"}
    assert {a.name for a in dag.get_task("build_gold").outlets} == {"gold.hourly_geo_usage", "audit.lineage"}
    assert {a.name for a in dag.get_task("publish_public_stats").outlets} == {
        "gold.public_usage_stats", "audit.privacy_budget", "audit.lineage"}
    assert {a.name for a in dag.get_task("build_capacity").outlets} == {"gold.capacity_busy_hour", "audit.lineage"}
    assert {a.name for a in dag.get_task("evaluate_support_triggers").outlets} == {"gold.support_triggers", "audit.lineage"}
    assert {a.name for a in dag.get_task("build_account_usage").outlets} == {"gold.account_usage_daily", "audit.lineage"}


def test_quality_gates_stand_between_layers() -> None:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(DAGS)).dags["voip_daily"]
    upstream = {t.task_id: set(t.upstream_task_ids) for t in dag.tasks}
    assert upstream["check_bronze"] == {"ingest_landing"}
    assert upstream["build_silver"] == {"check_bronze"}
    assert upstream["check_silver"] == {"build_silver"}
    assert upstream["build_gold"] == {"check_silver"}
    assert upstream["check_gold"] == {"build_gold"}
    assert upstream["build_capacity"] == {"check_silver"}  # trunk dimensioning from checked silver
    assert upstream["evaluate_support_triggers"] == {"check_silver"}  # quota / quality triggers from checked silver
    assert upstream["build_account_usage"] == {"check_silver"}  # resellers' usage only from checked silver
    assert upstream["publish_public_stats"] == {"check_silver"}  # DP statistics only from checked silver
    assert upstream["ingest_landing"] == {"ingest_directory"}
    # a failed gate is the data's fault: retrying it cannot help
    assert all(dag.get_task(t).retries == 0 for t in ("check_bronze", "check_silver", "check_gold"))


def test_parsing_a_dag_imports_nothing_heavy() -> None:
    code = (
        "import runpy, sys; runpy.run_path(%r); "
        "heavy = [m for m in ('pyspark', 'delta', 'great_expectations', 'boto3', 'pandas') if m in sys.modules]; "
        "print(','.join(heavy))" % str(DAGS / "voip_daily.py")
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
