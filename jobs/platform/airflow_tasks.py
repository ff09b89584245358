"""The decorator the DAGs put on their Spark work, chosen by `[spark] dag_tasks` (infra/voiplake.toml).

* ``in_process`` (default): a plain TaskFlow ``@task``; the job builds its session from `[spark] master`
  (local[N] here, or a standalone master).
* ``pyspark``: ``@task.pyspark`` of the Airflow Spark provider. The provider builds the session from the
  Airflow connection `[spark] airflow_conn_id` (host and port give the master, e.g.
  ``AIRFLOW_CONN_SPARK_DEFAULT='{"conn_type": "spark", "host": "spark://spark-master", "port": 7077}'``; a host
  of ``local[2]`` and no port runs in the task's process), with the lake's Spark configuration
  (`jobs.platform.spark.spark_conf`: Delta, s3a, jars) passed as ``config_kwargs``; the job's `build_spark` then finds
  that session and uses it. The provider passes the session as keyword ``spark``, which every Spark task of the
  DAGs therefore accepts (and otherwise ignores).

Light at DAG-parse time: airflow.sdk and the settings only; no pyspark import.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import task

from lake_layout.config import Settings


def spark_task(settings: Settings, **kwargs: Any) -> Any:
    """`@task(**kwargs)` or `@task.pyspark(conn_id=..., config_kwargs=..., **kwargs)` per `settings`."""
    if settings.spark.dag_tasks == "pyspark":
        from jobs.platform.spark import spark_conf

        return task.pyspark(conn_id=settings.spark.airflow_conn_id, config_kwargs=spark_conf(settings), **kwargs)
    return task(**kwargs)
