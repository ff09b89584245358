"""Shared fixtures: one local SparkSession, a real S3Proxy on a free loopback port, test settings."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import pytest

from lake_layout.config import PROJECT_ROOT

# pytest-xdist workers run with a bare __main__ (no __file__), which pyspark.sql.connect takes for a doctest
# run and answers with sys.exit(0) at import (great_expectations imports it). Give __main__ a file name.
import __main__  # noqa: E402

if not hasattr(__main__, "__file__"):
    __main__.__file__ = "<pytest-xdist worker>"

# Airflow reads its configuration at import: keep its home (SQLite DB, logs) in the build folder.
os.environ.setdefault("AIRFLOW_HOME", str(PROJECT_ROOT / "build" / "airflow-test"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(PROJECT_ROOT / "dags")

from infra.objectstore import S3ProxyServer, free_port
from jobs.platform.keys import KeyMaterial, load_key_material
from lake_layout.config import (  # noqa: E402
    KeySettings,
    LineageSettings,
    ObjectStoreSettings,
    QualitySettings,
    Settings,
    load_settings,
)


@pytest.fixture(scope="session")
def base_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Project settings with the lake and keys in a temp dir (Spark's jar cache stays shared)."""
    tmp = tmp_path_factory.mktemp("voiplake")
    settings = load_settings(env={})
    # Small data: interpreted expressions and the serial collector. On tests/jobs/governance/test_retention.py they took the
    # machine's CPU from 211-231 s to 152 s (child processes, e.g. Airflow's, get the same settings).
    spark = replace(settings.spark, codegen="off", driver_java_options="-XX:+UseSerialGC")
    return replace(
        settings.with_lake_root(str(tmp / "lake")),
        spark=spark,
        keys=KeySettings(file=str(tmp / "keys.json")),
        lineage=LineageSettings(namespace="voiplake-test", openlineage_file=str(tmp / "openlineage" / "events.jsonl")),
        quality=QualitySettings(data_docs_dir=str(tmp / "data_docs")),
    )


@pytest.fixture(scope="session")
def keys(base_settings: Settings) -> KeyMaterial:
    return load_key_material(Path(base_settings.keys.file))


@pytest.fixture(scope="session")
def object_store(tmp_path_factory: pytest.TempPathFactory, base_settings: Settings) -> Iterator[ObjectStoreSettings]:
    """A real S3Proxy process on 127.0.0.1:<free port>, data in a temp dir; stopped after the session."""
    store = replace(
        base_settings.object_store,
        endpoint=f"http://127.0.0.1:{free_port()}",
        data_dir=str(tmp_path_factory.mktemp("objectstore")),
    )
    with S3ProxyServer(store):
        yield store


@pytest.fixture(scope="session")
def settings(base_settings: Settings, object_store: ObjectStoreSettings) -> Settings:
    return replace(base_settings, object_store=object_store)


@pytest.fixture(scope="session")
def spark(settings: Settings):  # type: ignore[no-untyped-def]
    from jobs.platform.spark import build_spark

    session = build_spark(settings, app_name="voiplake-tests")
    yield session
    session.stop()
