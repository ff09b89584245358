"""The registry and the settings loader."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from lake_layout.config import SettingsError, load_settings
from lake_layout.landing import landing_object_key, parse_landing_key, upload_date_prefix
from lake_layout.registry import Classification, Column, TableSpec
from lake_layout.tables import ALL_TABLES, BRONZE_CALL_EVENTS, table


def test_every_table_declares_schema_partitioning_classification_and_retention() -> None:
    names = [t.name for t in ALL_TABLES]
    assert len(names) == len(set(names))
    for spec in ALL_TABLES:
        assert spec.merge_keys, spec.name
        assert all(isinstance(c.classification, Classification) for c in spec.columns)
        assert spec.spark_schema().fieldNames() == spec.column_names
        assert spec.retention_tier is not None


def test_bronze_holds_no_raw_identifier_columns() -> None:
    forbidden = {"imei", "msisdn", "callee_msisdn", "device_id", "src_ip", "dst_ip"}
    assert forbidden.isdisjoint(BRONZE_CALL_EVENTS.column_names)
    assert BRONZE_CALL_EVENTS.columns_of(Classification.RESTRICTED) == ["ip_encrypted", "location_encrypted"]


def test_locations_follow_the_lake_root() -> None:
    local = load_settings(env={"VOIPLAKE_LAKE_ROOT": "/data/lake"})
    s3 = load_settings(env={"VOIPLAKE_LAKE_ROOT": "s3a://lake-bucket/prefix/"})
    assert BRONZE_CALL_EVENTS.location(local) == "/data/lake/bronze/call_events"
    assert BRONZE_CALL_EVENTS.location(s3) == "s3a://lake-bucket/prefix/bronze/call_events"
    assert BRONZE_CALL_EVENTS.asset_uri(s3) == "s3://lake-bucket/prefix/bronze/call_events"
    assert BRONZE_CALL_EVENTS.asset_uri(local) == "file:///data/lake/bronze/call_events"
    assert table("bronze.call_events") is BRONZE_CALL_EVENTS
    with pytest.raises(KeyError, match="unknown table"):
        table("bronze.nope")


def test_every_table_names_the_module_that_writes_it() -> None:
    """Two clicks from a table to its code: the registry names the writer module, which exists and refers to the
    table's spec."""
    import importlib.util
    import re

    from lake_layout import tables

    spec_names = {v.name: k for k, v in vars(tables).items() if isinstance(v, TableSpec)}
    for spec in tables.ALL_TABLES:
        found = importlib.util.find_spec(spec.writer)
        assert found is not None and found.origin is not None, f"{spec.name}: no module {spec.writer}"
        assert found.origin.endswith(spec.writer_path), (found.origin, spec.writer_path)
        source = Path(found.origin).read_text()
        constant = spec_names[spec.name]
        assert re.search(rf"\b{constant}\b", source), f"{spec.writer} never refers to {constant} ({spec.name})"


def test_no_personal_column_is_a_statistics_column() -> None:
    """Delta keeps min / max statistics of stats_columns in its log, which VACUUM never cleans: never of a pseudonym,
    a coarse IP or place, or ciphertext (tests/jobs/governance/test_governance_s3.py checks the log's bytes)."""
    from lake_layout.registry import LOG_PRIVATE

    for spec in ALL_TABLES:
        personal = {c.name for c in spec.columns if c.classification in LOG_PRIVATE}
        if spec.stats_columns is None:
            assert not personal, spec.name
            continue
        assert personal and not personal & set(spec.stats_columns), spec.name
        assert set(spec.stats_columns) <= set(spec.column_names) - set(spec.partition_by), spec.name
    assert "subscriber_pseudonym" not in BRONZE_CALL_EVENTS.stats_columns
    assert {"event_ts_device", "received_at"} <= set(BRONZE_CALL_EVENTS.stats_columns)


def test_spec_validation_names_the_problem() -> None:
    with pytest.raises(ValueError, match="'<layer>.<table>'"):
        TableSpec(name="nolayer", description="", columns=())
    with pytest.raises(ValueError, match="'when' is not a column"):
        TableSpec(name="a.b", description="", columns=(Column("x", "string", Classification.INTERNAL, ""),), partition_by=("when",),
                  writer="jobs.test")
    with pytest.raises(ValueError, match="writer must name the job module"):
        TableSpec(name="a.b", description="", columns=(Column("x", "string", Classification.INTERNAL, ""),))
    with pytest.raises(ValueError, match="unknown type"):
        Column("x", "varchar", Classification.INTERNAL, "")


def test_settings_errors_name_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "s.toml"
    bad.write_text((Path(__file__).parents[2] / "infra" / "voiplake.toml").read_text().replace("[spark]", "[spark]\nwarp = 9"))
    with pytest.raises(SettingsError, match=r"unknown key\(s\) \['warp'\] in \[spark\]"):
        load_settings(bad, env={})
    with pytest.raises(SettingsError, match="spark.shuffle_partitions: expected int"):
        load_settings(env={"VOIPLAKE_SPARK_SHUFFLE_PARTITIONS": "many"})
    assert load_settings(env={"VOIPLAKE_SPARK_SHUFFLE_PARTITIONS": "3"}).spark.shuffle_partitions == 3


def test_landing_keys_round_trip() -> None:
    key = landing_object_key("uploads", received_at_ms=1_795_525_200_123, batch_id="b-1", encoding="json")
    assert key == "uploads/upload_date=2026-11-24/hour=13/1795525200123-b-1.json.gz"
    assert key.startswith(upload_date_prefix("uploads", parse_landing_key(key).upload_date))  # type: ignore[union-attr]
    parsed = parse_landing_key(key)
    assert parsed is not None and parsed.hour == 13 and parsed.encoding == "json" and parsed.batch_id == "b-1"
    assert parse_landing_key("uploads/somewhere/else.gz") is None


def test_spark_codegen_and_driver_options_reach_the_spark_conf() -> None:
    from dataclasses import replace

    from jobs.platform.spark import spark_conf

    settings = load_settings(env={})
    on = spark_conf(settings)
    assert "spark.sql.codegen.factoryMode" not in on and "spark.sql.codegen.wholeStage" not in on  # Spark's defaults
    off = spark_conf(replace(settings, spark=replace(settings.spark, codegen="off", driver_java_options="-XX:+UseSerialGC")))
    assert off["spark.sql.codegen.wholeStage"] == "false" and off["spark.sql.codegen.factoryMode"] == "NO_CODEGEN"
    assert off["spark.driver.extraJavaOptions"].endswith(" -XX:+UseSerialGC")
    assert on["spark.driver.extraJavaOptions"].startswith("-Dderby.system.home=") and " " not in on["spark.driver.extraJavaOptions"]
    with pytest.raises(SettingsError, match="spark.codegen: expected one of"):
        load_settings(env={"VOIPLAKE_SPARK_CODEGEN": "sometimes"})


def test_adaptive_initial_partitions_reach_the_spark_conf() -> None:
    from dataclasses import replace

    from jobs.platform.spark import spark_conf

    settings = load_settings(env={})
    assert settings.spark.adaptive_initial_partitions == 32
    wide = spark_conf(settings)
    assert wide["spark.sql.adaptive.coalescePartitions.initialPartitionNum"] == "32"
    assert wide["spark.sql.adaptive.coalescePartitions.parallelismFirst"] == "false"
    plain = spark_conf(replace(settings, spark=replace(settings.spark, adaptive_initial_partitions=0)))
    assert not any(key.startswith("spark.sql.adaptive.coalescePartitions.") for key in plain)
    with pytest.raises(SettingsError, match="spark.adaptive_initial_partitions must be >= 0"):
        load_settings(env={"VOIPLAKE_SPARK_ADAPTIVE_INITIAL_PARTITIONS": "-1"})


def test_big_shuffles_get_more_partitions_than_small_ones(spark) -> None:  # type: ignore[no-untyped-def]
    """The session's shuffles start at adaptive_initial_partitions (32) and merge up to the advisory size: with the
    advisory size lowered to 256 KB, ~7 MB of shuffle (hashes, which do not compress) runs in more partitions than
    shuffle_partitions (4), while a few rows end in one partition."""
    from pyspark.sql import functions as F

    advisory = "spark.sql.adaptive.advisoryPartitionSizeInBytes"
    previous = spark.conf.get(advisory)
    spark.conf.set(advisory, str(256 * 1024))
    try:
        def big():  # type: ignore[no-untyped-def]
            return spark.range(200_000).withColumn("pad", F.sha2(F.col("id").cast("string"), 256)).repartition("id")

        sizes = [len(rows) for rows in big().rdd.glom().collect()]  # the plan's final partitions, after merging
        assert sum(sizes) == 200_000
        assert int(spark.conf.get("spark.sql.shuffle.partitions")) < len(sizes) <= 32
        assert [len(rows) for rows in spark.range(10).repartition("id").rdd.glom().collect()] == [10]
        initial = "spark.sql.adaptive.coalescePartitions.initialPartitionNum"
        spark.conf.unset(initial)  # without the setting the same shuffle stays within shuffle_partitions
        try:
            assert len(big().rdd.glom().collect()) <= int(spark.conf.get("spark.sql.shuffle.partitions"))
        finally:
            spark.conf.set(initial, "32")
    finally:
        spark.conf.set(advisory, previous)


def test_the_test_session_interprets_expressions(spark) -> None:  # type: ignore[no-untyped-def]
    """The suite's settings (tests/conftest.py) reach its session: a query compiles few classes, if any."""
    codegen = spark._jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME()
    before = codegen.getCount()
    rows = spark.range(1000).selectExpr("id % 7 AS k", "id * 2 AS v").groupBy("k").sum("v").orderBy("k").collect()
    assert [r.k for r in rows] == list(range(7))
    assert spark.conf.get("spark.sql.codegen.factoryMode") == "NO_CODEGEN"
    assert codegen.getCount() - before <= 3  # with codegen on this query compiles about a dozen classes


def test_cached_rows_of_the_day_sit_on_disk_not_in_the_heap(spark) -> None:  # type: ignore[no-untyped-def]
    """jobs.platform.spark.row_cache_level, the level bronze, silver and gold cache their day's rows at: blocks on local
    disk, none in the block manager's memory (a 3M-event day with MEMORY_AND_DISK ran a 2g driver out of heap)."""
    from jobs.platform.spark import row_cache_level

    def cached_rdds() -> dict[int, object]:
        return {i.id(): i for i in spark.sparkContext._jsc.sc().getRDDStorageInfo() if i.numCachedPartitions() > 0}

    before = cached_rdds()  # what other tests of this worker's session left cached is not ours to judge
    rows = spark.range(20_000).selectExpr("id", "sha2(CAST(id AS STRING), 256) AS h").persist(row_cache_level())
    try:
        assert rows.count() == 20_000
        cached = [info for rdd_id, info in cached_rdds().items() if rdd_id not in before]
        assert cached, "the persisted rows were not cached at all"
        assert all(i.memSize() == 0 and i.diskSize() > 0 for i in cached), [(i.memSize(), i.diskSize()) for i in cached]  # type: ignore[attr-defined]
        assert rows.storageLevel.useDisk and not rows.storageLevel.useMemory
    finally:
        rows.unpersist(blocking=True)


def test_optimized_writes_split_a_big_partition_value_across_tasks(spark, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A spec with optimize_write gets Delta's optimized writes, MERGEs included: one partition value's rows are
    written in bins of optimizeWrite.binSize, several files, where a MERGE into a table without the property
    repartitions by the partition column and writes that value in one task, one file. Tables that predate the
    property get it from ensure_table."""
    from pyspark.sql import functions as F

    from jobs.platform import lake

    columns = (Column("id", "long", Classification.INTERNAL, ""), Column("day", "date", Classification.INTERNAL, ""),
               Column("pad", "string", Classification.INTERNAL, ""))
    local = settings.with_lake_root(str(tmp_path / "lake"))
    plain = TableSpec(name="t.plain", description="", columns=columns, partition_by=("day",), merge_keys=("id",),
                      writer="jobs.test")
    binned = replace(plain, name="t.binned", optimize_write=True)
    # ~6 MB of hashes (they do not compress) for one day, from 8 source partitions.
    rows = (spark.range(0, 60_000, numPartitions=8).withColumn("day", F.lit("2026-11-24").cast("date"))
            .withColumn("pad", F.concat(F.sha2(F.col("id").cast("string"), 512), F.sha2(F.col("id").cast("string"), 256))))
    bin_size = "spark.databricks.delta.optimizeWrite.binSize"
    previous = spark.conf.get(bin_size)
    spark.conf.set(bin_size, "1m")
    try:
        for spec in (plain, binned):
            lake.merge_insert_new(spark, rows, spec, local, prune_on="day")
        files = {s.name: lake.read_table(spark, s, local).select(F.input_file_name()).distinct().count() for s in (plain, binned)}
    finally:
        spark.conf.set(bin_size, previous)
    assert files["t.plain"] == 1
    assert 1 < files["t.binned"] <= 16, files
    assert lake.read_table(spark, binned, local).count() == 60_000

    def optimize_write(spec: TableSpec) -> str | None:
        props = spark.sql(f"SHOW TBLPROPERTIES delta.`{spec.location(local)}`").collect()
        return {r["key"]: r["value"] for r in props}.get(lake.OPTIMIZE_WRITE)

    assert optimize_write(binned) == "true" and optimize_write(plain) is None
    lake.ensure_table(spark, replace(plain, optimize_write=True), local)  # the spec now asks for it
    assert optimize_write(plain) == "true"
