"""The one place a SparkSession is configured: Delta Lake, s3a on the object store, the jar cache.

Spark's extra jars (Delta Lake, hadoop-aws and the AWS SDK bundle) are resolved by Spark's Ivy from
Maven Central into `[spark] ivy_dir` on first use. The resolved jar list is then recorded, and later
sessions load those files directly, so a warm machine needs no network.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lake_layout.config import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DELTA_PACKAGE = "io.delta:delta-spark_4.2_2.13:4.4.0"
HADOOP_AWS_PACKAGE = "org.apache.hadoop:hadoop-aws:3.5.0"  # matches pyspark 4.2's hadoop-client 3.5.0
PACKAGES = (DELTA_PACKAGE, HADOOP_AWS_PACKAGE)
# Transitive dependencies Spark already ships (newer versions); keeping theirs avoids classpath clashes.
EXCLUDES = (
    "org.apache.hadoop:hadoop-client-api", "org.apache.hadoop:hadoop-client-runtime",
    "org.apache.parquet:parquet-column", "org.apache.parquet:parquet-common", "org.apache.parquet:parquet-encoding",
    "org.apache.parquet:parquet-format-structures", "org.apache.parquet:parquet-hadoop", "org.apache.parquet:parquet-jackson",
    "com.fasterxml.jackson.core:jackson-annotations", "com.fasterxml.jackson.core:jackson-core",
    "com.fasterxml.jackson.core:jackson-databind", "com.fasterxml.jackson.datatype:jackson-datatype-jdk8",
    "org.apache.logging.log4j:log4j-api", "org.apache.logging.log4j:log4j-core", "org.apache.logging.log4j:log4j-slf4j2-impl",
    "org.slf4j:slf4j-api", "org.xerial.snappy:snappy-java", "com.github.luben:zstd-jni",
    "org.roaringbitmap:RoaringBitmap", "org.roaringbitmap:shims", "io.airlift:aircompressor",
    "commons-logging:commons-logging", "com.google.code.findbugs:jsr305", "org.locationtech.jts:jts-core",
)


def _resolved_record(settings: Settings) -> Path:
    return Path(settings.spark.ivy_dir) / "resolved-jars.json"


def _cached_jars(settings: Settings) -> list[str] | None:
    record = _resolved_record(settings)
    if not record.exists():
        return None
    data = json.loads(record.read_text())
    jars = data.get("jars", [])
    if data.get("packages") != list(PACKAGES) or not jars or not all(Path(j).exists() for j in jars):
        return None
    return list(jars)


def s3a_options(settings: Settings) -> dict[str, str]:
    store = settings.object_store
    return {
        "fs.s3a.endpoint": store.endpoint,
        "fs.s3a.endpoint.region": store.region,
        "fs.s3a.path.style.access": "true",
        "fs.s3a.connection.ssl.enabled": "false",
        "fs.s3a.access.key": store.access_key,
        "fs.s3a.secret.key": store.secret_key,
        "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        # S3Proxy does not implement the SDK's newer flexible checksums.
        "fs.s3a.checksum.validation": "false",
        "fs.s3a.checksum.calculation.enabled": "false",
        "fs.s3a.change.detection.mode": "none",
        "fs.s3a.committer.magic.enabled": "false",
        "fs.s3a.retry.limit": "3",
        "fs.s3a.attempts.maximum": "3",
        # Hadoop 3.5's default stream ("analytics", HADOOP-19559) keeps an entry per object read for the life of
        # the filesystem (HADOOP-20058) and waits on its async block fetches: reading a 1M-event day's 27,825
        # small landing objects, the decode stage ran over 10 minutes with tasks parked in Block.awaitData and
        # a 2g heap ran out; with "classic" the same read + decode took 132 s (make bench, /tmp/prof/decexp.py).
        "fs.s3a.input.stream.type": "classic",
    }


def spark_conf(settings: Settings) -> dict[str, str]:
    """Every Spark setting the lake needs for `settings` (Delta, s3a, the jar cache, sizes), master excluded.

    Plain strings and no pyspark import: `build_spark` applies them, and a DAG in `spark.dag_tasks = "pyspark"`
    mode hands them to @task.pyspark, whose session takes its master from an Airflow connection instead."""
    conf = {
        "spark.driver.memory": settings.spark.driver_memory,
        "spark.executor.memory": settings.spark.executor_memory,
        "spark.executor.cores": str(settings.spark.executor_cores),
        "spark.sql.shuffle.partitions": str(settings.spark.shuffle_partitions),
        # Delta rebuilds a table's snapshot state in this many partitions (default 50): on a small machine and
        # small tables those tasks dominate every read and write (2.5x slower measured); follow the shuffle width.
        "spark.databricks.delta.snapshotPartitions": str(settings.spark.shuffle_partitions),
        # VACUUM lists a table's files in a job of this many tasks (Spark's default: 10,000, whatever the
        # table's size): on this machine 60 s for a 7-file table, 8 s at 4 (/tmp/vacbench.py, loaded machine).
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": str(settings.spark.shuffle_partitions),
        # What opening a file costs, in bytes of reading, when Spark packs files into a read task (default 4 MB).
        # Landing objects are ~3 KB and an S3 GET costs about what reading ~256 KB does here, so the default made
        # one task per 32 objects: 870 tasks for a 1M-event day, and every job over the decoded rows paid for
        # 870 partitions (make bench). Also packs small Delta files into fewer read tasks.
        "spark.sql.files.openCostInBytes": str(256 * 1024),
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        # Bins of an optimized write (tables whose spec sets optimize_write): Delta's default, 512 MB of shuffled
        # rows per file, would write a 3M-event day's bronze events (1.1 GB shuffled) in 3 tasks again, which is what
        # MERGE's repartitioning by partition value did (45.5 s for 65 s of work on 2 cores, make bench).
        "spark.databricks.delta.optimizeWrite.binSize": "128m",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.warehouse.dir": str(Path(settings.spark.ivy_dir).parent / "spark-warehouse"),
        "spark.driver.extraJavaOptions": " ".join(filter(None, (
            f"-Dderby.system.home={Path(settings.spark.ivy_dir).parent}", settings.spark.driver_java_options))),
    }
    if settings.spark.adaptive_initial_partitions > 0:
        # Shuffles start wide and adaptive execution merges neighbouring partitions up to the advisory size (64 MB)
        # rather than keeping as many as there are cores (parallelismFirst): a big shuffle gets many tasks, a small
        # one few. Silver at 3M events with every shuffle at 4 partitions: 271 s, 8.8 GiB spilled; started at 32:
        # 239 s, 0.4 GiB (silver alone on the bench lake).
        conf["spark.sql.adaptive.coalescePartitions.initialPartitionNum"] = str(settings.spark.adaptive_initial_partitions)
        conf["spark.sql.adaptive.coalescePartitions.parallelismFirst"] = "false"
    if settings.spark.codegen == "off":
        # Interpreted expressions, no generated classes for Janino and the JIT to compile (factoryMode is the
        # switch for expression code generation; wholeStage for the fused stages).
        conf["spark.sql.codegen.wholeStage"] = "false"
        conf["spark.sql.codegen.factoryMode"] = "NO_CODEGEN"
    if settings.spark.max_cores > 0:
        conf["spark.cores.max"] = str(settings.spark.max_cores)
    conf.update({f"spark.hadoop.{key}": value for key, value in s3a_options(settings).items()})
    cached = _cached_jars(settings)
    if cached is not None:
        conf["spark.jars"] = ",".join(cached)
    else:
        conf.update({"spark.jars.packages": ",".join(PACKAGES), "spark.jars.excludes": ",".join(EXCLUDES),
                     "spark.jars.ivy": settings.spark.ivy_dir})
    return conf


def build_spark(settings: Settings, app_name: str = "voiplake") -> "SparkSession":
    """A SparkSession with Delta Lake and s3a configured for `settings` (an existing session is reused)."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    conf = spark_conf(settings)
    cached = "spark.jars" in conf
    builder = SparkSession.builder.appName(app_name).master(settings.spark.master)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    if not cached:
        jars = [j.removeprefix("file:") for j in spark.sparkContext.getConf().get("spark.jars", "").split(",") if j]
        if jars:
            _resolved_record(settings).write_text(json.dumps({"packages": list(PACKAGES), "jars": jars}, indent=1))
    return spark


def row_cache_level():  # type: ignore[no-untyped-def]
    """The storage level for a job's cached rows of the day (bronze's decoded uploads, silver's events and calls,
    gold's facts, the calls anomaly detection reads): on disk, so the rows sit in the OS page cache rather than in
    the driver's heap.

    With MEMORY_AND_DISK a 3M-event day ran a 2g driver out of heap in bronze while the block manager unrolled
    the decoded rows (MemoryStore.putIteratorAsBytes), and a bigger heap only moves that wall; DISK_ONLY writes
    each block straight to a local file and bounds the heap by the task's working set, not the day's size."""
    from pyspark import StorageLevel

    return StorageLevel.DISK_ONLY
