"""The k-anonymity generalization lattice of the usage aggregates, and the walk that publishes along it.

`LEVELS`, finest to coarsest:

    0  H3 cell    x hour    x carrier
    1  H3 cell    x hour                (carrier generalized to '*')
    2  H3 region  x hour
    3  H3 region  x 3 hours
    4  country    x 3 hours
    5  country    x day

`k_anonymize` publishes each call at the finest level whose group has >= k distinct subscribers and suppresses the
rest. The gold job (jobs.publish.hourly_geo) aggregates what it publishes; the re-identification audit
(jobs.privacy.audit) re-keys the same facts with the same `level_keys` to attack what was published.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

ALL_CARRIERS = "*"


@dataclass(frozen=True)
class Level:
    index: int
    geo: str  # h3_cell | h3_region | country
    period_hours: int  # 1 | 3 | 24
    keep_carrier: bool


LEVELS: tuple[Level, ...] = (
    Level(0, "h3_cell", 1, True),
    Level(1, "h3_cell", 1, False),
    Level(2, "h3_region", 1, False),
    Level(3, "h3_region", 3, False),
    Level(4, "country", 3, False),
    Level(5, "country", 24, False),
)
GROUP_COLUMNS = ("call_date", "period_start", "geo_zone", "country_code", "network_class", "platform", "carrier_mccmnc")


def usage_facts(calls: "DataFrame", *, region_resolution: int) -> "DataFrame":
    """One fact per silver call: call time, hour, H3 cell and region, dimensions, subscriber, measures."""
    from pyspark.sql import functions as F

    from jobs.platform.geo import h3_parent  # pandas UDFs: imported where a Spark plan is built

    at = F.coalesce("started_at", "ended_at")
    return calls.select(
        "call_id", "call_date", "subscriber_pseudonym",
        at.alias("call_ts"),
        F.col("h3_cell"),
        h3_parent(F.col("h3_cell"), resolution=region_resolution).alias("h3_region"),
        F.coalesce("country_code", F.lit("unknown")).alias("country_code"),
        F.coalesce("network_class", F.lit("unknown")).alias("network_class"),
        "platform",
        F.coalesce("carrier_mccmnc", F.lit(ALL_CARRIERS)).alias("carrier"),
        (F.col("status") == "failed").alias("is_failed"),
        F.when(F.col("status") == "completed", F.col("duration_ms")).alias("talk_ms"),
        F.coalesce("data_bytes", F.lit(0)).alias("data_bytes"),
    )


def level_keys(facts: "DataFrame", level: Level) -> "DataFrame":
    """Adds the level's group key columns (GROUP_COLUMNS); geo_zone is null where the level has no zone."""
    from pyspark.sql import functions as F

    seconds = level.period_hours * 3600
    period = F.timestamp_seconds(F.floor(F.unix_seconds("call_ts") / seconds) * seconds)
    geo = {"h3_cell": F.col("h3_cell"), "h3_region": F.col("h3_region"), "country": F.col("country_code")}[level.geo]
    return facts.withColumns({
        "period_start": period,
        "geo_zone": geo,
        "carrier_mccmnc": F.col("carrier") if level.keep_carrier else F.lit(ALL_CARRIERS),
    })


def k_anonymize(facts: "DataFrame", *, k: int, levels: Sequence[Level] = LEVELS) -> tuple["DataFrame", "DataFrame"]:
    """(published facts with generalization keys and `generalization_level`, suppressed facts).

    Guarantee: grouping the published facts by (generalization_level, GROUP_COLUMNS) gives groups of
    >= k distinct subscribers; published and suppressed partition the input facts.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    fact_columns = facts.columns
    remaining = facts
    published: list[DataFrame] = []
    for level in levels:
        keyed = level_keys(remaining, level)
        group = Window.partitionBy(*GROUP_COLUMNS)
        subscribers = F.size(F.collect_set("subscriber_pseudonym").over(group))
        keyed = keyed.withColumn(
            "_subscribers", F.when(F.col("geo_zone").isNotNull(), subscribers).otherwise(F.lit(0))
        ).localCheckpoint()  # cut the plan: each level reads the previous level's leftovers
        published.append(
            keyed.where(F.col("_subscribers") >= k)
            .drop("_subscribers")
            .withColumn("generalization_level", F.lit(level.index))
            .withColumn("geo_level", F.lit(level.geo))
            .withColumn("period_hours", F.lit(level.period_hours))
        )
        remaining = keyed.where(F.col("_subscribers") < k).select(*fact_columns)
    result = published[0]
    for part in published[1:]:
        result = result.unionByName(part)
    return result, remaining
