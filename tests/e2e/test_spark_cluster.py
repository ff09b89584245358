"""The same jobs on a real Spark standalone cluster (master + worker on loopback, from the installed pyspark)
give the same tables as the local run.

The cluster run happens in a child process whose only difference is VOIPLAKE_SPARK_MASTER=spark://...; the
local run uses the test session (local[2]). Both read the same landing objects and write separate lakes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from infra.spark_cluster import StandaloneCluster
from jobs.platform import lake
from jobs.generator.landing import generate_to_landing
from jobs.pipeline.runner import run_pipeline
from lake_layout.config import settings_env
from lake_layout.registry import TableSpec
from lake_layout.tables import BRONZE_CALL_EVENTS, GOLD_BILLING_RATED_CALLS, GOLD_HOURLY_GEO_USAGE, SILVER_CALLS

# Not in `make test` (13 min on this 2-core machine while it was busy): `make test-cluster` runs it.
pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

DAY = date(2026, 11, 20)
EVENTS, SEED = 1500, 5
# Columns that name the run or the moment of writing, not the data; and the restricted ciphertext, which every run
# encrypts under fresh data keys and nonces (so equal plaintext gives different bytes, by design).
RUN_COLUMNS = {"ingest_run_id", "silver_run_id", "run_id", "rated_at", "computed_at",
               "ip_encrypted", "location_encrypted", "encryption_key_id"}


def _rows(spark, spec: TableSpec, settings) -> list[tuple]:  # type: ignore[no-untyped-def]
    df = lake.read_table(spark, spec, settings)
    cols = [c for c in df.columns if c not in RUN_COLUMNS]
    return sorted(tuple(r) for r in df.select(*cols).collect())


@pytest.fixture(scope="module")
def landed(settings, tmp_path_factory):  # type: ignore[no-untyped-def]
    s = replace(settings, landing=replace(settings.landing, prefix="cluster-uploads"))
    generate_to_landing(s, DAY, events=EVENTS, seed=SEED, faults=True)
    return s


def test_the_daily_pipeline_runs_unchanged_on_a_standalone_cluster(spark, landed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    local = landed.with_lake_root(str(tmp_path / "local-lake"))
    clustered = landed.with_lake_root(str(tmp_path / "cluster-lake"))
    with StandaloneCluster(work_dir=tmp_path / "cluster", worker_cores=2, worker_memory="3g") as cluster:
        child = replace(clustered, spark=replace(clustered.spark, master=cluster.url, driver_memory="2g",
                                                 executor_memory="2g", executor_cores=2))
        env = {**os.environ, **settings_env(child)}
        code = ("import json; from datetime import date; from jobs.pipeline.runner import run_pipeline; "
                f"print(json.dumps(run_pipeline(day=date.fromisoformat('{DAY}')), default=str))")
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=1200)
        assert out.returncode == 0, out.stderr[-4000:]
        state = cluster.state()
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["master"] == cluster.url  # the child's jobs ran on the cluster, not in local mode
    apps = [a for a in state["completedapps"] + state["activeapps"]]  # type: ignore[operator]
    assert len(apps) == 1 and apps[0]["cores"] >= 1  # executors on the worker did the work
    assert report["bronze"]["records_accepted"] > 0 and report["gold"]["rows"] > 0, report

    local_report = run_pipeline(day=DAY, settings=local)
    assert local_report["master"].startswith("local")
    for key in ("records_received", "records_accepted", "records_quarantined"):
        assert report["bronze"][key] == local_report["bronze"][key]
    for spec in (BRONZE_CALL_EVENTS, SILVER_CALLS, GOLD_HOURLY_GEO_USAGE, GOLD_BILLING_RATED_CALLS):
        cluster_rows = _rows(spark, spec, clustered)
        assert cluster_rows, spec.name
        assert cluster_rows == _rows(spark, spec, local), f"{spec.name} differs between cluster and local runs"


def test_the_daily_dag_submits_its_spark_tasks_through_the_spark_provider(spark, landed, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`[spark] dag_tasks = "pyspark"`: every Spark task of voip_daily is an @task.pyspark of the Airflow Spark
    provider, which takes the master from the Airflow connection (here the standalone cluster), not from
    `[spark] master` (left at local[2]: a task that ignored the connection would run locally and not show up)."""
    from airflow.providers.apache.spark.operators.spark_pyspark import PySparkOperator

    from jobs.cli.demo import DAILY_DAG, airflow_dags_test

    settings = landed.with_lake_root(str(tmp_path / "provider-lake"))
    child = replace(settings, spark=replace(settings.spark, dag_tasks="pyspark", airflow_conn_id="spark_cluster",
                                            driver_memory="2g", executor_memory="2g", executor_cores=2))
    with StandaloneCluster(work_dir=tmp_path / "cluster", worker_cores=2, worker_memory="3g") as cluster:
        host, port = cluster.url.rsplit(":", 1)
        monkeypatch.setenv("AIRFLOW_CONN_SPARK_CLUSTER", json.dumps({"conn_type": "spark", "host": host, "port": int(port)}))
        airflow_dags_test(child, DAILY_DAG, DAY, log=tmp_path / "dag.log", airflow_home=tmp_path / "airflow")
        state = cluster.state()

    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("VOIPLAKE_SPARK_DAG_TASKS", "pyspark")
    dag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags")).dags[DAILY_DAG]
    assert all(isinstance(t, PySparkOperator) for t in dag.tasks)
    apps = {a["name"] for a in state["completedapps"] + state["activeapps"]}  # type: ignore[operator]
    assert apps == {f"{DAILY_DAG}-{t.task_id}" for t in dag.tasks}  # one application per task, on the cluster
    assert lake.read_table(spark, GOLD_HOURLY_GEO_USAGE, settings).count() > 0
    assert lake.read_table(spark, SILVER_CALLS, settings).count() > 0
