"""gold_hourly_geo: silver.calls -> gold.hourly_geo_usage, k-anonymous hourly usage by geo zone.

Every call of a call date is a fact (when, where, which network class, platform and carrier, who).
`k_anonymize` (jobs.privacy.kanonymity) walks the generalization lattice from finest to coarsest (`LEVELS`):

    0  H3 cell    x hour    x carrier
    1  H3 cell    x hour                (carrier generalized to '*')
    2  H3 region  x hour
    3  H3 region  x 3 hours
    4  country    x 3 hours
    5  country    x day

At each level the calls not yet published are grouped by that level's key; a group with at least k
distinct subscribers is published as one row at that level, the rest move on to the next level, and
what is left after the last level is suppressed. So every published row describes >= k distinct
subscribers, every call is counted in at most one row (the finest one whose group was large enough),
and the job reports the share of calls suppressed. Calls without a location can only be published at
country level. Geo zones are H3 cells (Uber's H3 library), not hand-written geometry.

A run recomputes whole call dates (those silver reports as changed) and replaces exactly those
partitions, so late calls re-aggregate their day and a rerun leaves the table as it was.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

from jobs.privacy.kanonymity import GROUP_COLUMNS, k_anonymize, usage_facts
from lake_layout.config import Settings
from lake_layout.tables import GOLD_HOURLY_GEO_USAGE, SILVER_CALLS

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

def aggregate_published(published: "DataFrame", *, k: int) -> "DataFrame":
    """gold.hourly_geo_usage rows from published facts: one per (generalization_level, GROUP_COLUMNS)."""
    from pyspark.sql import functions as F

    talk_s = F.col("talk_ms") / 1000.0
    return (
        published.groupBy("generalization_level", "geo_level", "period_hours", *GROUP_COLUMNS)
        .agg(
            F.count("*").alias("calls"),
            F.count(F.when(F.col("is_failed"), 1)).alias("failed_calls"),
            (F.coalesce(F.sum("talk_ms"), F.lit(0)) / 60000.0).alias("total_minutes"),
            (F.avg("talk_ms") / 60000.0).alias("mean_minutes"),
            F.percentile(talk_s, F.lit(0.5)).alias("p50_duration_s"),
            F.percentile(talk_s, F.lit(0.95)).alias("p95_duration_s"),
            F.sum("data_bytes").alias("data_bytes"),
            F.countDistinct("subscriber_pseudonym").alias("distinct_subscribers"),
        )
        .withColumn("k", F.lit(k))
    )


# ----------------------------------------------------------------------------- run

@dataclass(frozen=True)
class GoldContext:
    settings: Settings
    call_dates: tuple[date, ...]
    logical_date: date | None = None
    run_id: str = field(default_factory=lambda: f"gold_hourly_geo-{uuid.uuid4().hex[:12]}")
    dag_id: str | None = None
    dag_run_id: str | None = None

    def __post_init__(self) -> None:
        days = tuple(sorted({date.fromordinal(d.toordinal()) for d in self.call_dates}))
        object.__setattr__(self, "call_dates", days)


@dataclass(frozen=True)
class GoldReport:
    call_dates: list[str]
    k: int
    calls: int
    calls_published: int
    calls_suppressed: int
    suppressed_share: float
    rows: int
    rows_by_level: dict[str, int]
    calls_by_level: dict[str, int]
    table_version: int | None
    seconds: float

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True)


def run(spark: "SparkSession", ctx: GoldContext) -> GoldReport:
    """Recompute gold.hourly_geo_usage for ctx.call_dates from silver.calls."""
    from jobs.platform.spark import row_cache_level
    from pyspark.sql import functions as F

    from jobs.platform import lake, lineage

    settings = ctx.settings
    k = settings.privacy.k_anonymity
    started = datetime.now(timezone.utc)
    t0 = time.monotonic()
    for spec in (SILVER_CALLS, GOLD_HOURLY_GEO_USAGE):
        lake.ensure_table(spark, spec, settings)
    if not ctx.call_dates:
        return GoldReport([], k, 0, 0, 0, 0.0, 0, {}, {}, lake.table_version(spark, GOLD_HOURLY_GEO_USAGE, settings), 0.0)
    before = lake.table_version(spark, GOLD_HOURLY_GEO_USAGE, settings)
    silver_version = lake.table_version(spark, SILVER_CALLS, settings)
    in_dates = ", ".join(f"DATE'{d.isoformat()}'" for d in ctx.call_dates)
    calls = lake.read_table(spark, SILVER_CALLS, settings).where(f"call_date IN ({in_dates})")
    facts = usage_facts(calls, region_resolution=settings.privacy.h3_region_resolution).persist(row_cache_level())
    published, suppressed = k_anonymize(facts, k=k)
    rows = aggregate_published(published, k=k).persist(row_cache_level())

    n_calls = facts.count()
    n_suppressed = suppressed.count()
    by_level = rows.groupBy("generalization_level").agg(F.count("*").alias("rows"), F.sum("calls").alias("calls")).collect()
    lake.replace_partitions(spark, rows, GOLD_HOURLY_GEO_USAGE, settings, where=f"call_date IN ({in_dates})")
    version = lake.table_version(spark, GOLD_HOURLY_GEO_USAGE, settings)
    n_rows = sum(int(r["rows"]) for r in by_level)
    rows.unpersist()
    facts.unpersist()

    report = GoldReport(
        call_dates=[d.isoformat() for d in ctx.call_dates], k=k, calls=n_calls,
        calls_published=n_calls - n_suppressed, calls_suppressed=n_suppressed,
        suppressed_share=round(n_suppressed / n_calls, 6) if n_calls else 0.0,
        rows=n_rows,
        rows_by_level={str(r["generalization_level"]): int(r["rows"]) for r in sorted(by_level, key=lambda r: r[0])},
        calls_by_level={str(r["generalization_level"]): int(r["calls"]) for r in sorted(by_level, key=lambda r: r[0])},
        table_version=version, seconds=round(time.monotonic() - t0, 1),
    )
    lineage.record_run(spark, settings, lineage.LineageRecord(
        run_id=ctx.run_id, job="gold_hourly_geo", dag_id=ctx.dag_id, dag_run_id=ctx.dag_run_id,
        logical_date=ctx.logical_date or ctx.call_dates[-1],
        inputs=(lineage.TableInput(table=SILVER_CALLS.name, version=silver_version),),
        outputs=(lineage.TableOutput(table=GOLD_HOURLY_GEO_USAGE.name, version_before=before, version_after=version),),
        metrics=_metrics(report), rows_in=n_calls, rows_out=n_rows,
        started_at=started, finished_at=datetime.now(timezone.utc),
    ))
    return report


def _metrics(report: GoldReport) -> dict[str, Any]:
    return {k: v for k, v in report.__dict__.items() if k not in ("table_version", "seconds")}
