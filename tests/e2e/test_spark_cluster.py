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

import pytest

from infra.spark_cluster import StandaloneCluster
from jobs import lake
from jobs.cli import generate_to_landing
from jobs.runner import run_pipeline
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
        code = ("import json; from datetime import date; from jobs.runner import run_pipeline; "
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
