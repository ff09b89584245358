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
    assert {a.name for a in dag.get_task("detect_anomalies").outlets} == {
        "gold.anomalies", "security.device_quarantine", "audit.lineage"}
    assert {a.name for a in dag.get_task("ingest_auth").outlets} == {"bronze.auth_events", "bronze.quarantine"}
    assert {a.name for a in dag.get_task("check_telemetry_compliance").outlets} == {
        "gold.telemetry_compliance", "audit.lineage"}


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
    assert upstream["detect_anomalies"] == {"check_silver", "ingest_auth"}  # anomalies only from checked silver
    assert upstream["ingest_auth"] == set()
    assert upstream["check_telemetry_compliance"] == {"check_bronze"}  # compliance only from checked bronze
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


def test_retention_dag_structure() -> None:
    from airflow.dag_processing.dagbag import DagBag

    from jobs.governance import retention
    from lake_layout.retention import load_policy
    from lake_layout.tables import AUDIT_RETENTION_ACTIONS

    dag = DagBag(dag_folder=str(DAGS)).dags["voip_retention"]
    assert dag.catchup is False and dag.max_active_runs == 1 and "retention" in dag.tags
    assert {t.task_id: set(t.upstream_task_ids) for t in dag.tasks} == {
        "check_policy": set(), "enforce_retention": {"check_policy"}}
    assert dag.get_task("check_policy").retries == 0  # a broken policy file is not fixed by retrying
    outlets = {a.name for a in dag.get_task("enforce_retention").outlets}
    purged = {p.spec.name for p in retention.plan_tables(load_policy()) if not p.excluded}
    assert purged <= outlets and AUDIT_RETENTION_ACTIONS.name in outlets  # every table it may delete from
    assert "audit.access_log" not in outlets and "silver.calls" in outlets  # hash-chained logs are never purged


def test_parsing_the_retention_dag_imports_nothing_heavy() -> None:
    code = (
        "import runpy, sys; runpy.run_path(%r); "
        "heavy = [m for m in ('pyspark', 'delta', 'great_expectations', 'boto3', 'pandas', 'jobs.governance.retention') if m in sys.modules]; "
        "print(','.join(heavy))" % str(DAGS / "voip_retention.py")
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_dsr_dag_structure_and_params() -> None:
    import copy

    import pytest
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.definitions.param import ParamValidationError

    from lake_layout.dsr_scope import dsr_scopes

    dag = DagBag(dag_folder=str(DAGS)).dags["voip_dsr"]
    assert type(dag.timetable).__name__ == "NullTimetable" and dag.catchup is False and dag.max_active_runs == 1
    task = dag.get_task("handle_request")
    assert [t.task_id for t in dag.tasks] == ["handle_request"] and task.retries == 0  # a hold is not lifted by retrying
    erased = {s.spec.name for s in dsr_scopes() if s.changed_by_delete}
    assert {a.name for a in task.outlets} == erased | {"audit.dsr_requests", "audit.access_log"}
    assert {"silver.calls", "bronze.call_events"} <= erased and "gold.hourly_geo_usage" not in erased

    def validated(conf: dict[str, str]) -> dict[str, object]:  # what a trigger with this conf is checked against
        params = copy.deepcopy(dag.params)
        params.update(conf)
        return params.validate()

    good = {"subscriber": "+4915112345678", "request_id": "DSR-42", "action": "delete"}
    assert validated(good) == {**good, "role": "data_engineer"}
    for bad in ({**good, "subscriber": "015112345678"}, {**good, "action": "purge"}, {**good, "request_id": "../x"},
                {"action": "export"}):
        with pytest.raises(ParamValidationError):
            validated(bad)


def test_parsing_the_dsr_dag_imports_nothing_heavy() -> None:
    code = (
        "import runpy, sys; runpy.run_path(%r); "
        "heavy = [m for m in ('pyspark', 'delta', 'great_expectations', 'boto3', 'pandas', 'jobs.governance.dsr') if m in sys.modules]; "
        "print(','.join(heavy))" % str(DAGS / "voip_dsr.py")
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_spark_tasks_take_the_airflow_spark_connection_when_configured(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`[spark] dag_tasks = "pyspark"` turns every Spark task into the provider's @task.pyspark on the configured
    connection, carrying the lake's Spark configuration; the default keeps plain in-process tasks.
    (tests/e2e/test_spark_cluster.py runs the DAG this way on a real standalone cluster: `make test-cluster`.)"""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.providers.apache.spark.operators.spark_pyspark import PySparkOperator

    from jobs.platform.spark import spark_conf
    from lake_layout.config import load_settings

    default = DagBag(dag_folder=str(DAGS)).dags
    assert not any(isinstance(t, PySparkOperator) for d in default.values() for t in d.tasks)

    monkeypatch.setenv("VOIPLAKE_SPARK_DAG_TASKS", "pyspark")
    monkeypatch.setenv("VOIPLAKE_SPARK_AIRFLOW_CONN_ID", "spark_cluster")
    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    conf = spark_conf(load_settings())
    assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension" and "spark.master" not in conf
    spark_tasks = [t for d in bag.dags.values() for t in d.tasks if isinstance(t, PySparkOperator)]
    assert {t.task_id for t in spark_tasks} == {t.task_id for t in bag.dags["voip_daily"].tasks} | {
        "enforce_retention", "handle_request"}
    assert all(t.conn_id == "spark_cluster" and t.config_kwargs == conf for t in spark_tasks)

    monkeypatch.setenv("VOIPLAKE_SPARK_DAG_TASKS", "yarn-please")
    assert "spark.dag_tasks: expected one of" in str(DagBag(dag_folder=str(DAGS)).import_errors)
