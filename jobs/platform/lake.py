"""Reading and writing registry tables. Jobs never build a path or name a format themselves."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lake_layout.config import Settings
from lake_layout.registry import TableSpec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

OPTIMIZE_WRITE = "delta.autoOptimize.optimizeWrite"  # the Delta table property behind TableSpec.optimize_write
STATS_COLUMNS = "delta.dataSkippingStatsColumns"  # behind TableSpec.stats_columns
NO_STATS = "delta.dataSkippingNumIndexedCols"


class SchemaMismatch(ValueError):
    pass


def table_properties(spec: TableSpec) -> dict[str, str]:
    """The Delta table properties the spec asks for: optimized writes, and statistics only on the columns that hold
    no personal data (so no pseudonym, IP prefix or place is ever written into the transaction log)."""
    properties = {OPTIMIZE_WRITE: "true"} if spec.optimize_write else {}
    if spec.stats_columns is not None:
        properties.update({STATS_COLUMNS: ",".join(spec.stats_columns)} if spec.stats_columns else {NO_STATS: "0"})
    return properties


def ensure_table(spark: "SparkSession", spec: TableSpec, settings: Settings) -> None:
    """Create the Delta table at the spec's location if it does not exist (schema, partitioning, comments,
    `table_properties`).

    An existing table that lacks columns the spec has since gained gets them added (nullable), and the properties
    it lacks set (one metadata commit), so a lake written by an older release keeps working; any other difference
    is an error. (Log entries an older release wrote keep their statistics until the log's own retention,
    delta.logRetentionDuration, removes them.)
    """
    from delta.tables import DeltaTable

    if table_exists(spark, spec, settings):
        _add_new_columns(spark, spec, settings)
        _set_properties(spark, spec, settings)
        return

    builder = DeltaTable.createIfNotExists(spark).location(spec.location(settings)).comment(spec.description)
    for column, field in zip(spec.columns, spec.spark_schema().fields):
        builder = builder.addColumn(field.name, field.dataType, nullable=field.nullable, comment=column.description)
    if spec.partition_by:
        builder = builder.partitionedBy(*spec.partition_by)
    for key, value in table_properties(spec).items():
        builder = builder.property(key, value)
    builder.property("voiplake.table", spec.name).property("voiplake.retention_tier", spec.retention_tier.value).execute()


def _set_properties(spark: "SparkSession", spec: TableSpec, settings: Settings) -> None:
    """A table created before its spec asked for a property gets it (one metadata commit, none if all are set)."""
    wanted = table_properties(spec)
    location = spec.location(settings)
    if not wanted or (location, tuple(wanted.items())) in _PROPERTIES_SET:
        return
    properties = {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES delta.`{location}`").collect()}
    missing = {k: v for k, v in wanted.items() if properties.get(k) != v}
    if missing:
        assignments = ", ".join(f"'{k}' = '{v}'" for k, v in missing.items())
        spark.sql(f"ALTER TABLE delta.`{location}` SET TBLPROPERTIES ({assignments})")
    _PROPERTIES_SET.add((location, tuple(wanted.items())))


# Tables this process has seen with their properties set: checked once per process, not on every write.
_PROPERTIES_SET: set[tuple[str, tuple[tuple[str, str], ...]]] = set()


def _add_new_columns(spark: "SparkSession", spec: TableSpec, settings: Settings) -> None:
    existing = {f.name for f in spark.read.format("delta").load(spec.location(settings)).schema.fields}
    added = [(c, f) for c, f in zip(spec.columns, spec.spark_schema().fields) if c.name not in existing]
    if not added:
        return
    required = [c.name for c, _ in added if not c.nullable]
    if required:
        raise SchemaMismatch(f"{spec.name}: existing table lacks non-nullable column(s) {required}; migrate it")
    columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()} COMMENT '{c.description.replace(chr(39), '')}'" for c, f in added)
    spark.sql(f"ALTER TABLE delta.`{spec.location(settings)}` ADD COLUMNS ({columns})")


def table_exists(spark: "SparkSession", spec: TableSpec, settings: Settings) -> bool:
    from delta.tables import DeltaTable

    return DeltaTable.isDeltaTable(spark, spec.location(settings))


def read_table(spark: "SparkSession", spec: TableSpec, settings: Settings) -> "DataFrame":
    return spark.read.format("delta").load(spec.location(settings))


def table_version(spark: "SparkSession", spec: TableSpec, settings: Settings) -> int | None:
    """Latest Delta version, or None if the table does not exist yet."""
    from delta.tables import DeltaTable

    if not table_exists(spark, spec, settings):
        return None
    row = DeltaTable.forPath(spark, spec.location(settings)).history(1).select("version").first()
    return int(row[0]) if row else None


def conform(df: "DataFrame", spec: TableSpec) -> "DataFrame":
    """Select and cast exactly the spec's columns, in order; fail on a missing column."""
    from pyspark.sql import functions as F

    missing = [c for c in spec.column_names if c not in df.columns]
    if missing:
        raise SchemaMismatch(f"{spec.name}: input lacks column(s) {missing}")
    return df.select([F.col(f.name).cast(f.dataType).alias(f.name) for f in spec.spark_schema().fields])


def merge_insert_new(
    spark: "SparkSession", df: "DataFrame", spec: TableSpec, settings: Settings, *, prune_on: str | None = None
) -> None:
    """Insert the rows of `df` whose merge keys are not in the table yet (idempotent append).

    `prune_on`: a partition column whose values in `df` bound the target scan.
    """
    from delta.tables import DeltaTable

    ensure_table(spark, spec, settings)
    source = conform(df, spec)
    condition = " AND ".join(f"t.`{k}` = s.`{k}`" for k in spec.merge_keys)
    if prune_on is not None:
        values = sorted({r[0] for r in source.select(prune_on).distinct().collect()})
        if not values:
            return
        in_list = ", ".join(f"'{v}'" for v in values)
        condition = f"t.`{prune_on}` IN ({in_list}) AND " + condition
    (
        DeltaTable.forPath(spark, spec.location(settings)).alias("t")
        .merge(source.alias("s"), condition)
        .whenNotMatchedInsertAll()
        .execute()
    )


def upsert(spark: "SparkSession", df: "DataFrame", spec: TableSpec, settings: Settings) -> None:
    """MERGE `df` into the table on the spec's merge keys: update matches, insert the rest."""
    from delta.tables import DeltaTable

    ensure_table(spark, spec, settings)
    source = conform(df, spec)
    condition = " AND ".join(f"t.`{k}` = s.`{k}`" for k in spec.merge_keys)
    (
        DeltaTable.forPath(spark, spec.location(settings)).alias("t")
        .merge(source.alias("s"), condition)
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )


def replace_partitions(spark: "SparkSession", df: "DataFrame", spec: TableSpec, settings: Settings, *, where: str) -> None:
    """Atomically replace the rows matching `where` (a predicate on partition columns) with `df`.

    Every row of `df` must match `where` (Delta checks it); partitions outside it are untouched, and a
    partition in `where` that `df` has no rows for ends up empty. Reruns give the same table content.
    """
    ensure_table(spark, spec, settings)
    (
        conform(df, spec).write.format("delta").mode("overwrite")
        .option("replaceWhere", where)
        .save(spec.location(settings))
    )
