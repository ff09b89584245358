"""capacity_busy_hour: silver.calls -> gold.capacity_busy_hour, SIP trunk dimensioning per trunk group and day.

Every completed call holds one SIP channel on the trunk group of the country it was made in
(lake_layout.trunks) from `started_at` to `ended_at`. For a UTC day D, each call's interval is clipped to D:

* traffic per clock hour = call-seconds overlapping the hour / 3600 (Erlangs); the busy hour is the hour with
  the most traffic (the earliest on ties), and its traffic is what the group is dimensioned for;
* peak concurrent calls come from a sweep line over the interval ends: +1 at each start, -1 at each end, ordered
  by time with ends before starts at the same instant (intervals are [start, end): a channel freed at t can be
  seized at t), and a running sum over a Spark window: the largest running value is the peak;
* SIP channels required = the smallest n whose Erlang B blocking (jobs.business.erlang, stable recurrence) at the
  busy-hour traffic is <= capacity.blocking.

The mean traffic of any hour never exceeds the peak number of simultaneous calls in it, so
busy_hour_erlangs <= peak_concurrent_calls always holds (the tests check it on random intervals).

Calls that started on D-1 and run past midnight count towards D's first hours, so a run of D reads silver's
call dates D-1 and D; a run for changed call dates also recomputes the following day if silver has it. Each run
replaces exactly the call_date partitions it computed (replaceWhere): reruns leave the table as it was.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from lake_layout.config import Settings
from lake_layout.tables import GOLD_CAPACITY_BUSY_HOUR, SILVER_CALLS
from lake_layout.trunks import TRUNK_GROUPS, UNASSIGNED

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import Column, DataFrame, SparkSession

MICROS_PER_HOUR = 3_600_000_000
MICROS_PER_DAY = 24 * MICROS_PER_HOUR
GROUP = ("call_date", "trunk_group", "region")


def _trunk_columns(country: "Column") -> dict[str, "Column"]:
    """trunk_group and region of a country code column, from lake_layout.trunks (one literal map, no join)."""
    from itertools import chain

    from pyspark.sql import functions as F

    def lookup(attr: str, default: str) -> "Column":
        mapping = F.create_map(*chain.from_iterable((F.lit(c), F.lit(getattr(g, attr))) for c, g in TRUNK_GROUPS.items()))
        return F.coalesce(F.element_at(mapping, F.coalesce(country, F.lit(""))), F.lit(default))

    return {"trunk_group": lookup("name", UNASSIGNED.name), "region": lookup("region", UNASSIGNED.region)}


def call_intervals(calls: "DataFrame", *, call_dates: Sequence[date]) -> "DataFrame":
    """Channel-holding intervals per measured day: (call_id, call_date, trunk_group, region, start_us, end_us).

    Contract: only completed calls with started_at < ended_at; each call appears once per day of `call_dates`
    its interval overlaps, clipped to that UTC day; start_us < end_us are microseconds since the epoch.
    `call_date` here is the measured day, not silver's (a call over midnight belongs to two days).
    """
    from pyspark.sql import functions as F

    days = sorted({date.fromordinal(d.toordinal()) for d in call_dates})
    completed = calls.where(
        (F.col("status") == "completed") & F.col("started_at").isNotNull() & F.col("ended_at").isNotNull()
        & (F.col("started_at") < F.col("ended_at"))
    )
    start, end = F.unix_micros("started_at"), F.unix_micros("ended_at")
    first_day = F.floor(start / MICROS_PER_DAY)
    last_day = F.floor((end - 1) / MICROS_PER_DAY)  # [start, end): a call ending at midnight is not in the next day
    exploded = completed.select(
        "call_id", start.alias("_start"), end.alias("_end"), *[c.alias(n) for n, c in _trunk_columns(F.col("country_code")).items()],
        F.explode(F.sequence(first_day, last_day)).alias("_day"),
    )
    day_start = F.col("_day") * MICROS_PER_DAY
    return (
        exploded.withColumn("call_date", F.date_from_unix_date(F.col("_day").cast("int")))
        .where(F.col("call_date").isin(days))
        .select(
            "call_id", "call_date", "trunk_group", "region",
            F.greatest("_start", day_start).alias("start_us"),
            F.least("_end", day_start + MICROS_PER_DAY).alias("end_us"),
        )
    )


def hourly_traffic(intervals: "DataFrame") -> "DataFrame":
    """Carried traffic per (call_date, trunk_group, region, hour_start): call-microseconds and calls overlapping it."""
    from pyspark.sql import functions as F

    first_hour = F.floor(F.col("start_us") / MICROS_PER_HOUR)
    last_hour = F.floor((F.col("end_us") - 1) / MICROS_PER_HOUR)
    hours = intervals.withColumn("_hour", F.explode(F.sequence(first_hour, last_hour)))
    hour_start = F.col("_hour") * MICROS_PER_HOUR
    overlap = F.least("end_us", hour_start + MICROS_PER_HOUR) - F.greatest("start_us", hour_start)
    return (
        hours.groupBy(*GROUP, "_hour")
        .agg(F.sum(overlap).alias("call_us"), F.count("*").alias("calls"))
        .select(*GROUP, F.timestamp_micros(F.col("_hour") * MICROS_PER_HOUR).alias("hour_start"), "call_us", "calls")
    )


def busy_hours(hourly: "DataFrame") -> "DataFrame":
    """One row per (call_date, trunk_group, region): the hour with the most traffic, earliest on ties.

    Columns: GROUP, busy_hour, busy_hour_start, busy_hour_erlangs, busy_hour_calls.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    rank = Window.partitionBy(*GROUP).orderBy(F.col("call_us").desc(), F.col("hour_start").asc())
    return (
        hourly.withColumn("_rank", F.row_number().over(rank))
        .where(F.col("_rank") == 1)
        .select(
            *GROUP, F.hour("hour_start").alias("busy_hour"), F.col("hour_start").alias("busy_hour_start"),
            (F.col("call_us") / MICROS_PER_HOUR).alias("busy_hour_erlangs"), F.col("calls").alias("busy_hour_calls"),
        )
    )


def peak_concurrency(intervals: "DataFrame") -> "DataFrame":
    """Peak simultaneous calls per (call_date, trunk_group, region) by a sweep line: (GROUP, peak_concurrent_calls, peak_at).

    Events are +1 at each start and -1 at each end; sorted by (time, delta) so ends precede starts at one
    instant, their running sum is the number of calls in progress just after each event. No Python loop:
    two window passes over the events of a group and day.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    events = intervals.select(*GROUP, F.col("start_us").alias("at_us"), F.lit(1).alias("delta")).unionByName(
        intervals.select(*GROUP, F.col("end_us").alias("at_us"), F.lit(-1).alias("delta"))
    )
    sweep = Window.partitionBy(*GROUP).orderBy("at_us", "delta").rowsBetween(Window.unboundedPreceding, Window.currentRow)
    running = events.withColumn("in_progress", F.sum("delta").over(sweep))
    first_peak = Window.partitionBy(*GROUP).orderBy(F.col("in_progress").desc(), F.col("at_us").asc())
    return (
        running.withColumn("_rank", F.row_number().over(first_peak))
        .where(F.col("_rank") == 1)
        .select(*GROUP, F.col("in_progress").cast("long").alias("peak_concurrent_calls"),
                F.timestamp_micros("at_us").alias("peak_at"))
    )


def daily_totals(intervals: "DataFrame") -> "DataFrame":
    """(GROUP, calls, day_erlangs): completed calls overlapping the day and the day's mean traffic."""
    from pyspark.sql import functions as F

    return intervals.groupBy(*GROUP).agg(
        F.countDistinct("call_id").alias("calls"),
        (F.sum(F.col("end_us") - F.col("start_us")) / MICROS_PER_DAY).alias("day_erlangs"),
    )


def dimension_channels(busy: "DataFrame", *, blocking: Decimal) -> "DataFrame":
    """Adds `blocking` (exact decimal string), `channels_required` and `blocking_at_channels` by Erlang B.

    Arrow-vectorized (`mapInArrow`): the Erlang B search has no Spark SQL equivalent; one row per trunk group
    and day, so the per-value loop inside a batch is over a handful of rows.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    target = float(blocking)
    base = busy.withColumn("blocking", F.lit(str(blocking)))
    schema = T.StructType([*base.schema.fields, T.StructField("channels_required", T.IntegerType(), False),
                           T.StructField("blocking_at_channels", T.DoubleType(), False)])

    def add_channels(batches: Iterator["pa.RecordBatch"]) -> Iterator["pa.RecordBatch"]:
        import pyarrow as pa

        from jobs.business.erlang import erlang_b, erlang_b_channels

        for batch in batches:
            traffic = batch.column("busy_hour_erlangs").to_pylist()
            channels = [erlang_b_channels(a, blocking=target) for a in traffic]
            blocked = [erlang_b(a, n) if a > 0 else 0.0 for a, n in zip(traffic, channels)]
            yield pa.RecordBatch.from_arrays(
                [*batch.columns, pa.array(channels, pa.int32()), pa.array(blocked, pa.float64())],
                names=[*batch.schema.names, "channels_required", "blocking_at_channels"],
            )

    return base.mapInArrow(add_channels, schema)


def capacity_rows(calls: "DataFrame", *, call_dates: Sequence[date], blocking: Decimal) -> "DataFrame":
    """gold.capacity_busy_hour rows (without run_id / computed_at) for `call_dates` from silver calls."""
    intervals = call_intervals(calls, call_dates=call_dates)
    return (
        busy_hours(hourly_traffic(intervals))
        .join(peak_concurrency(intervals), list(GROUP))
        .join(daily_totals(intervals), list(GROUP))
        .transform(lambda df: dimension_channels(df, blocking=blocking))
    )


def dates_to_compute(changed: Sequence[date], present: Sequence[date]) -> tuple[date, ...]:
    """The days whose capacity changes when silver's `changed` call dates change: those days, and the day after
    each (calls over midnight) if silver has calls for it (`present`); a day without its own calls waits for them."""
    changed_set = {date.fromordinal(d.toordinal()) for d in changed}
    present_set = {date.fromordinal(d.toordinal()) for d in present}
    following = {d + timedelta(days=1) for d in changed_set} & present_set
    return tuple(sorted(changed_set | following))


# ----------------------------------------------------------------------------- run

@dataclass(frozen=True)
class CapacityContext:
    settings: Settings
    call_dates: tuple[date, ...]  # silver call dates that changed (or the days asked for)
    logical_date: date | None = None
    run_id: str = field(default_factory=lambda: f"capacity_busy_hour-{uuid.uuid4().hex[:12]}")
    dag_id: str | None = None
    dag_run_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "call_dates", tuple(sorted({date.fromordinal(d.toordinal()) for d in self.call_dates})))


@dataclass(frozen=True)
class CapacityReport:
    call_dates: list[str]
    blocking: str
    calls_read: int
    rows: int
    trunk_groups: int
    busiest: dict[str, Any]  # the row with the most channels required
    table_version: int | None
    seconds: float

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True, default=str)


def run(spark: "SparkSession", ctx: CapacityContext) -> CapacityReport:
    """Recompute gold.capacity_busy_hour for ctx.call_dates (plus following days silver already has)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from jobs.platform import lake, lineage

    settings = ctx.settings
    blocking = settings.capacity.blocking
    started = datetime.now(timezone.utc)
    t0 = time.monotonic()
    for spec in (SILVER_CALLS, GOLD_CAPACITY_BUSY_HOUR):
        lake.ensure_table(spark, spec, settings)
    before = lake.table_version(spark, GOLD_CAPACITY_BUSY_HOUR, settings)
    if not ctx.call_dates:
        return CapacityReport([], str(blocking), 0, 0, 0, {}, before, 0.0)
    silver = lake.read_table(spark, SILVER_CALLS, settings)
    silver_version = lake.table_version(spark, SILVER_CALLS, settings)
    following = sorted({d + timedelta(days=1) for d in ctx.call_dates})
    present = [r[0] for r in silver.where(F.col("call_date").isin(following)).select("call_date").distinct().collect()]
    days = dates_to_compute(ctx.call_dates, present)
    read_dates = sorted(set(days) | {d - timedelta(days=1) for d in days})
    calls = silver.where(F.col("call_date").isin(read_dates))
    rows = (
        capacity_rows(calls, call_dates=days, blocking=blocking)
        .withColumns({"run_id": F.lit(ctx.run_id), "computed_at": F.lit(started)})
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    in_dates = ", ".join(f"DATE'{d.isoformat()}'" for d in days)
    lake.replace_partitions(spark, rows, GOLD_CAPACITY_BUSY_HOUR, settings, where=f"call_date IN ({in_dates})")
    version = lake.table_version(spark, GOLD_CAPACITY_BUSY_HOUR, settings)
    n_calls = calls.count()
    summary = rows.agg(F.count("*").alias("rows"), F.countDistinct("trunk_group").alias("groups")).first()
    top = rows.orderBy(F.col("channels_required").desc(), "call_date", "trunk_group").first()
    rows.unpersist()
    busiest = {} if top is None else {k: top[k] for k in (
        "call_date", "trunk_group", "region", "busy_hour", "busy_hour_erlangs", "peak_concurrent_calls", "channels_required")}
    report = CapacityReport(
        call_dates=[d.isoformat() for d in days], blocking=str(blocking), calls_read=n_calls,
        rows=int(summary["rows"]), trunk_groups=int(summary["groups"]), busiest=busiest,
        table_version=version, seconds=round(time.monotonic() - t0, 1),
    )
    lineage.record_run(spark, settings, lineage.LineageRecord(
        run_id=ctx.run_id, job="capacity_busy_hour", dag_id=ctx.dag_id, dag_run_id=ctx.dag_run_id,
        logical_date=ctx.logical_date or days[-1],
        inputs=(lineage.TableInput(table=SILVER_CALLS.name, version=silver_version),),
        outputs=(lineage.TableOutput(table=GOLD_CAPACITY_BUSY_HOUR.name, version_before=before, version_after=version),),
        metrics={k: v for k, v in json.loads(report.to_json()).items() if k not in ("table_version", "seconds")},
        rows_in=n_calls, rows_out=report.rows, started_at=started, finished_at=datetime.now(timezone.utc),
    ))
    return report
