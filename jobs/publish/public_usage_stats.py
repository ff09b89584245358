"""public_usage_stats: silver.calls -> gold.public_usage_stats, differentially private public statistics.

Two datasets per call date (the *period*), each a histogram over a cell domain fixed in advance
(`dp.countries` x network classes x hours), so whether a cell appears leaks nothing: a cell without data
is published with a noisy value like any other.

    daily_country_network   calls and talk minutes per country x network class
    hourly_national_calls   calls per country x UTC hour of call start

The guarantee is epsilon-differential privacy per subscriber-day (neighbouring inputs differ in all the
calls of one subscriber on one day):

1. `bound_contributions`  per subscriber and day keep at most `max_calls` calls (the lowest SHA-256 of
                          call_id: deterministic, independent of the values counted) and scale that
                          subscriber's talk minutes down so they sum to at most `max_minutes`.
2. `exact_histograms`     exact calls / minutes per cell of the fixed domain (0 where no data).
3. `add_noise`            diffprivlib on the driver over the small, fixed-size histogram. After bounding,
                          one subscriber-day changes a calls histogram by at most max_calls in L1 and a
                          minutes histogram by at most max_minutes, so: calls -> two-sided geometric
                          noise (`Geometric`, sensitivity max_calls), minutes -> `Laplace` (sensitivity
                          max_minutes). Clamping at 0 and rounding (integer calls, minutes to 0.1) are
                          post-processing and keep the guarantee.

Budget (`dp` settings, exact fractions, `jobs.privacy.budget`): one day's publication spends
`epsilon_per_release`, half per dataset; daily_country_network splits its half evenly between calls and
minutes (sequential composition). Every release is recorded in `audit.privacy_budget` *before* its rows
are written; a dataset and period never spend more than `epsilon_cap` in total. Rerunning a period
reuses the stored release (no new spend); `rerelease=True` spends again (within the cap) and replaces it.
A release that would exceed the cap is refused (`PrivacyBudgetExceeded`), the refusal is recorded and
nothing is published.

Utility is reported as the median relative error per published cell, |noisy - exact| / max(exact, 1)
(the max keeps empty cells finite: an empty cell's error is its noisy value).
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from jobs.privacy.budget import (
    LedgerEntry,
    PrivacyBudget,
    PrivacyBudgetExceeded,
    ReleaseDecision,
    decide_release,
    exact,
    exact_str,
    total,
)
from lake_layout.config import DPSettings, Settings
from lake_layout.reporting_units import NETWORK_CLASSES
from lake_layout.tables import AUDIT_PRIVACY_BUDGET, GOLD_PUBLIC_USAGE_STATS, SILVER_CALLS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

DAILY_COUNTRY_NETWORK = "daily_country_network"
HOURLY_NATIONAL_CALLS = "hourly_national_calls"
DATASETS = (DAILY_COUNTRY_NETWORK, HOURLY_NATIONAL_CALLS)
ALL = "*"  # network_class of the hourly dataset (all classes together)
UNKNOWN_NETWORK = "unknown"  # calls whose client reported no network type
# The published network classes: fixed by the reporting units, not by what the data holds.
NETWORK_CLASS_DOMAIN: tuple[str, ...] = (*sorted(set(NETWORK_CLASSES.values())), UNKNOWN_NETWORK)
HOURS = tuple(range(24))
MINUTES_DECIMALS = 1

__all__ = ["PrivacyBudgetExceeded", "bound_contributions", "exact_histograms", "add_noise", "release_plan", "run"]


# ----------------------------------------------------------------------------- plan

@dataclass(frozen=True)
class StatisticPlan:
    """How one statistic of one dataset is released: its share of the budget, mechanism and sensitivity."""

    dataset: str
    statistic: str  # calls | minutes
    budget: PrivacyBudget
    mechanism: str  # geometric | laplace
    sensitivity: int  # L1 sensitivity of the statistic's histogram per subscriber-day (= its bound)


def release_plan(dp: DPSettings) -> dict[str, tuple[StatisticPlan, ...]]:
    """The statistics of each dataset with their epsilon share (the split documented in infra/voiplake.toml)."""
    per_dataset = PrivacyBudget.of(dp.epsilon_per_release).split(len(DATASETS))
    calls_bound, minutes_bound = dp.max_calls_per_subscriber_day, dp.max_minutes_per_subscriber_day
    return {
        DAILY_COUNTRY_NETWORK: (
            StatisticPlan(DAILY_COUNTRY_NETWORK, "calls", per_dataset.split(2), "geometric", calls_bound),
            StatisticPlan(DAILY_COUNTRY_NETWORK, "minutes", per_dataset.split(2), "laplace", minutes_bound),
        ),
        HOURLY_NATIONAL_CALLS: (
            StatisticPlan(HOURLY_NATIONAL_CALLS, "calls", per_dataset, "geometric", calls_bound),
        ),
    }


def dataset_budget(plans: Sequence[StatisticPlan]) -> PrivacyBudget:
    """What one release of the dataset spends: its statistics compose sequentially."""
    return total(p.budget for p in plans)


def bounds_text(dp: DPSettings) -> str:
    return (f"<= {dp.max_calls_per_subscriber_day} calls and <= {dp.max_minutes_per_subscriber_day} talk minutes "
            "per subscriber and call date")


# ----------------------------------------------------------------------------- transforms

def bound_contributions(calls: "DataFrame", *, max_calls: int, max_minutes: int) -> "DataFrame":
    """Bound each subscriber's contribution per call date; one row per kept call.

    Input: silver.calls rows (call_id, call_date, started_at, duration_ms, subscriber_pseudonym,
    country_code, network_class). Calls without a start (orphan ends) are not counted.
    Output columns: call_id, call_date, subscriber_pseudonym, country_code, network_class (null ->
    'unknown'), hour (UTC hour of started_at), minutes (bounded talk minutes).
    Guarantees, per (subscriber_pseudonym, call_date): at most `max_calls` rows, chosen by the lowest
    SHA-256 of call_id (deterministic and independent of what is counted), and sum(minutes) <= max_minutes
    (the subscriber's talk minutes of the kept calls scaled by min(1, max_minutes / their total); up to
    floating-point rounding).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if max_calls < 1 or max_minutes < 1:
        raise ValueError(f"contribution bounds must be >= 1, got max_calls={max_calls}, max_minutes={max_minutes}")
    subscriber_day = Window.partitionBy("call_date", "subscriber_pseudonym")
    by_hash = subscriber_day.orderBy(F.sha2(F.col("call_id"), 256), F.col("call_id"))
    talk_minutes = F.greatest(F.coalesce(F.col("duration_ms"), F.lit(0)), F.lit(0)) / 60000.0
    kept = (
        calls.where(F.col("started_at").isNotNull())
        .select(
            "call_id", "call_date", "subscriber_pseudonym", "country_code",
            F.coalesce(F.col("network_class"), F.lit(UNKNOWN_NETWORK)).alias("network_class"),
            F.hour("started_at").alias("hour"),
            talk_minutes.alias("talk_minutes"),
        )
        .withColumn("_rank", F.row_number().over(by_hash))
        .where(F.col("_rank") <= max_calls)
    )
    day_minutes = F.sum("talk_minutes").over(subscriber_day)
    scale = F.when(day_minutes > max_minutes, F.lit(float(max_minutes)) / day_minutes).otherwise(F.lit(1.0))
    return kept.withColumn("minutes", F.col("talk_minutes") * scale).drop("_rank", "talk_minutes")


def exact_histograms(
    bounded: "DataFrame", *, periods: Sequence[date], countries: Sequence[str],
    network_classes: Sequence[str] = NETWORK_CLASS_DOMAIN,
) -> "DataFrame":
    """Exact histograms over the fixed domain, one row per (dataset, period, cell, statistic).

    Columns: dataset, period, country_code, network_class ('*' for hourly), hour (null for daily),
    statistic (calls | minutes), exact (double). Every cell of `periods` x `countries` x
    `network_classes` (daily) and `periods` x `countries` x 0..23 (hourly) has a row, 0 where no call
    falls in it; calls outside the domain (other countries, other dates) are not counted.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    spark = bounded.sparkSession
    days = sorted(set(periods))
    daily_cells = spark.createDataFrame(
        [(d, c, n) for d in days for c in countries for n in network_classes],
        "period date, country_code string, network_class string",
    )
    hourly_cells = spark.createDataFrame(
        [(d, c, h) for d in days for c in countries for h in HOURS], "period date, country_code string, hour int",
    )
    facts = bounded.withColumnRenamed("call_date", "period")
    daily = (
        daily_cells.join(
            facts.groupBy("period", "country_code", "network_class")
            .agg(F.count("*").cast("double").alias("calls"), F.sum("minutes").alias("minutes")),
            ["period", "country_code", "network_class"], "left",
        )
        .select(
            F.lit(DAILY_COUNTRY_NETWORK).alias("dataset"), "period", "country_code", "network_class",
            F.lit(None).cast(T.IntegerType()).alias("hour"),
            F.expr("stack(2, 'calls', coalesce(calls, 0D), 'minutes', coalesce(minutes, 0D)) AS (statistic, exact)"),
        )
    )
    hourly = (
        hourly_cells.join(
            facts.groupBy("period", "country_code", "hour").agg(F.count("*").cast("double").alias("calls")),
            ["period", "country_code", "hour"], "left",
        )
        .select(
            F.lit(HOURLY_NATIONAL_CALLS).alias("dataset"), "period", "country_code", F.lit(ALL).alias("network_class"),
            "hour", F.lit("calls").alias("statistic"), F.coalesce("calls", F.lit(0.0)).alias("exact"),
        )
    )
    return daily.unionByName(hourly)


def add_noise(
    cells: Sequence[Mapping[str, Any]], *, plans: Sequence[StatisticPlan], random_state: Any = None,
) -> list[dict[str, Any]]:
    """Noisy, post-processed values for exact histogram cells of one dataset release.

    `cells`: rows of `exact_histograms` (keys dataset, statistic, exact, ...). Each statistic gets the
    mechanism of its plan: calls -> diffprivlib `Geometric(epsilon, sensitivity)` on the integer count,
    minutes -> `Laplace(epsilon, sensitivity)`. Post-processing (no effect on the guarantee): values
    clamped at 0; calls are integers (`calls`), minutes rounded to 0.1 (`minutes`). Returns the input
    cells with `calls` / `minutes` (the one of its statistic), `noisy`, and the plan's epsilon, mechanism
    and sensitivity. `random_state`: None in production (diffprivlib's secure `secrets.SystemRandom`);
    tests pass a seeded `numpy.random.RandomState` shared by all cells.
    """
    from diffprivlib.mechanisms import Geometric, Laplace

    by_statistic = {(p.dataset, p.statistic): p for p in plans}
    mechanisms: dict[tuple[str, str], Any] = {}
    for key, plan in by_statistic.items():
        epsilon = float(plan.budget.epsilon)  # diffprivlib takes floats; the ledger keeps the exact value
        if plan.mechanism == "geometric":
            mechanisms[key] = Geometric(epsilon=epsilon, sensitivity=plan.sensitivity, random_state=random_state)
        elif plan.mechanism == "laplace":
            mechanisms[key] = Laplace(epsilon=epsilon, sensitivity=float(plan.sensitivity), random_state=random_state)
        else:
            raise ValueError(f"unknown mechanism {plan.mechanism!r} for {key}")
    released = []
    for cell in cells:
        key = (cell["dataset"], cell["statistic"])
        if key not in by_statistic:
            raise ValueError(f"no release plan for {key}; planned: {sorted(by_statistic)}")
        plan = by_statistic[key]
        if plan.mechanism == "geometric":
            noisy = float(mechanisms[key].randomise(int(round(cell["exact"]))))
            values = {"calls": max(0, int(noisy)), "minutes": None}
        else:
            noisy = float(mechanisms[key].randomise(float(cell["exact"])))
            values = {"calls": None, "minutes": max(0.0, round(noisy, MINUTES_DECIMALS))}
        released.append({
            **cell, **values, "noisy": noisy, "epsilon": plan.budget.epsilon_str, "mechanism": plan.mechanism,
            "sensitivity": plan.sensitivity,
        })
    return released


def published_value(cell: Mapping[str, Any]) -> float:
    return float(cell["calls"] if cell["statistic"] == "calls" else cell["minutes"])


def relative_error(published: float, exact_value: float) -> float:
    """|published - exact| / max(exact, 1): finite for empty cells (then it is the published value)."""
    return abs(published - exact_value) / max(exact_value, 1.0)


# ----------------------------------------------------------------------------- run

@dataclass(frozen=True)
class PublicStatsContext:
    settings: Settings
    call_dates: tuple[date, ...]  # the periods to publish
    logical_date: date | None = None
    rerelease: bool = False  # spend again (within the cap) on periods already released, replacing them
    random_state: Any = None  # None: secure randomness (production); tests pass a seeded RandomState
    run_id: str = field(default_factory=lambda: f"public_usage_stats-{uuid.uuid4().hex[:12]}")
    dag_id: str | None = None
    dag_run_id: str | None = None

    def __post_init__(self) -> None:
        days = tuple(sorted({date.fromordinal(d.toordinal()) for d in self.call_dates}))
        object.__setattr__(self, "call_dates", days)


@dataclass(frozen=True)
class PublicStatsReport:
    call_dates: list[str]
    releases: list[dict[str, Any]]  # per dataset and period: action (released | reused), release_id, epsilon, ...
    epsilon_spent: str  # by this run, over all datasets and periods (exact)
    cells_released: int  # rows written by this run
    median_relative_error: float | None  # over the cells this run released, |noisy - exact| / max(exact, 1)
    median_relative_error_by_statistic: dict[str, float]
    contribution_bounds: str
    table_version: int | None
    ledger_version: int | None
    seconds: float

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True, default=str)


def _in_dates(days: Sequence[date]) -> str:
    return ", ".join(f"DATE'{d.isoformat()}'" for d in days)


def _calls_counted(cells: Sequence[Mapping[str, Any]]) -> int:
    """Calls counted (after bounding, in the domain) per released period: both datasets count the same calls."""
    per_period: dict[date, int] = {}
    for dataset in DATASETS:
        for period in {c["period"] for c in cells if c["dataset"] == dataset}:
            counted = sum(c["exact"] for c in cells if c["dataset"] == dataset and c["period"] == period and c["statistic"] == "calls")
            per_period[period] = max(per_period.get(period, 0), int(counted))
    return sum(per_period.values())


def _ledger_entries(spark: "SparkSession", settings: Settings, days: Sequence[date]) -> list[LedgerEntry]:
    from jobs.platform import lake

    rows = lake.read_table(spark, AUDIT_PRIVACY_BUDGET, settings).where(f"period IN ({_in_dates(days)})").collect()
    return [LedgerEntry(release_id=r.release_id, dataset=r.dataset, period=r.period,
                        budget=PrivacyBudget.of(r.epsilon, r.delta), status=r.status, recorded_at=r.recorded_at)
            for r in rows]


def _ledger_row(decision: ReleaseDecision, *, mechanism: str, at: datetime, run_id: str, status: str) -> dict[str, Any]:
    return {
        "release_id": decision.release_id, "dataset": decision.dataset, "period": decision.period,
        "epsilon": decision.requested.epsilon_str, "delta": decision.requested.delta_str, "mechanism": mechanism,
        "cap": decision.cap.epsilon_str, "spent_before": decision.spent_before.epsilon_str, "status": status,
        "reason": decision.reason, "recorded_at": at, "run_id": run_id,
    }


def run(spark: "SparkSession", ctx: PublicStatsContext) -> PublicStatsReport:
    """Publish (or reuse) both datasets for every period in ctx.call_dates; refuse all if one would exceed the cap."""
    from jobs.platform import lake, lineage

    settings, dp = ctx.settings, ctx.settings.dp
    started = datetime.now(timezone.utc)
    t0 = time.monotonic()
    for spec in (SILVER_CALLS, GOLD_PUBLIC_USAGE_STATS, AUDIT_PRIVACY_BUDGET):
        lake.ensure_table(spark, spec, settings)
    outputs = (GOLD_PUBLIC_USAGE_STATS, AUDIT_PRIVACY_BUDGET)
    before = {s.name: lake.table_version(spark, s, settings) for s in outputs}
    silver_version = lake.table_version(spark, SILVER_CALLS, settings)
    plans = release_plan(dp)
    mechanisms = {d: ";".join(f"{p.statistic}={p.mechanism}" for p in plans[d]) for d in DATASETS}
    cap = PrivacyBudget.of(dp.epsilon_cap)
    days = ctx.call_dates

    decisions: list[ReleaseDecision] = []
    if days:
        entries = _ledger_entries(spark, settings, days)
        published = {r[0] for r in lake.read_table(spark, GOLD_PUBLIC_USAGE_STATS, settings)
                     .where(f"period IN ({_in_dates(days)})").select("release_id").distinct().collect()}
        decisions = [
            decide_release(entries, dataset=dataset, period=day, requested=dataset_budget(plans[dataset]), cap=cap,
                           published_release_ids=published, rerelease=ctx.rerelease, run_id=ctx.run_id)
            for day in days for dataset in DATASETS
        ]

    def finish(releases: list[dict[str, Any]], cells: list[dict[str, Any]]) -> PublicStatsReport:
        errors = [relative_error(published_value(c), c["exact"]) for c in cells]
        by_statistic: dict[str, list[float]] = {}
        for c, e in zip(cells, errors):
            by_statistic.setdefault(f"{c['dataset']}.{c['statistic']}", []).append(e)
        after = {s.name: lake.table_version(spark, s, settings) for s in outputs}
        report = PublicStatsReport(
            call_dates=[d.isoformat() for d in days], releases=releases,
            epsilon_spent=exact_str(sum((exact(r["epsilon"]) for r in releases if r["action"] == "released"), exact(0))),
            cells_released=len(cells),
            median_relative_error=round(statistics.median(errors), 6) if errors else None,
            median_relative_error_by_statistic={k: round(statistics.median(v), 6) for k, v in sorted(by_statistic.items())},
            contribution_bounds=bounds_text(dp),
            table_version=after[GOLD_PUBLIC_USAGE_STATS.name], ledger_version=after[AUDIT_PRIVACY_BUDGET.name],
            seconds=round(time.monotonic() - t0, 1),
        )
        lineage.record_run(spark, settings, lineage.LineageRecord(
            run_id=ctx.run_id, job="public_usage_stats", dag_id=ctx.dag_id, dag_run_id=ctx.dag_run_id,
            logical_date=ctx.logical_date or (days[-1] if days else None),
            inputs=(lineage.TableInput(table=SILVER_CALLS.name, version=silver_version),),
            outputs=tuple(lineage.TableOutput(table=s.name, version_before=before[s.name], version_after=after[s.name])
                          for s in outputs),
            metrics={k: v for k, v in report.__dict__.items() if k not in ("table_version", "ledger_version", "seconds")},
            rows_in=_calls_counted(cells), rows_out=len(cells),
            started_at=started, finished_at=datetime.now(timezone.utc),
        ))
        return report

    def release_entry(d: ReleaseDecision, action: str) -> dict[str, Any]:
        return {"dataset": d.dataset, "period": d.period.isoformat(), "release_id": d.release_id, "action": action,
                "epsilon": d.requested.epsilon_str, "spent_before": d.spent_before.epsilon_str,
                "cap": d.cap.epsilon_str, "reason": d.reason}

    refusals = [d for d in decisions if d.action == "refuse"]
    if refusals:
        ledger_df = spark.createDataFrame(
            [_ledger_row(d, mechanism=mechanisms[d.dataset], at=started, run_id=ctx.run_id, status="refused") for d in refusals],
            AUDIT_PRIVACY_BUDGET.spark_schema(),
        )
        lake.merge_insert_new(spark, ledger_df, AUDIT_PRIVACY_BUDGET, settings)
        finish([release_entry(d, "refused") for d in refusals], [])
        raise PrivacyBudgetExceeded(refusals)

    spends = [d for d in decisions if d.action == "spend"]
    releases = [release_entry(d, "reused") for d in decisions if d.action == "reuse"]
    cells: list[dict[str, Any]] = []
    if spends:
        spend_days = sorted({d.period for d in spends})
        calls = lake.read_table(spark, SILVER_CALLS, settings).where(f"call_date IN ({_in_dates(spend_days)})")
        bounded = bound_contributions(calls, max_calls=dp.max_calls_per_subscriber_day,
                                      max_minutes=dp.max_minutes_per_subscriber_day)
        exact_cells = [r.asDict() for r in exact_histograms(bounded, periods=spend_days, countries=dp.country_domain).collect()]
        bounds = bounds_text(dp)
        rows = []
        for d in spends:
            mine = [c for c in exact_cells if c["dataset"] == d.dataset and c["period"] == d.period]
            noisy = add_noise(mine, plans=plans[d.dataset], random_state=ctx.random_state)
            cells.extend(noisy)
            errors = [relative_error(published_value(c), c["exact"]) for c in noisy]
            releases.append({**release_entry(d, "released"), "cells": len(noisy),
                             "median_relative_error": round(statistics.median(errors), 6)})
            rows.extend({
                "release_id": d.release_id, "dataset": c["dataset"], "period": c["period"], "country_code": c["country_code"],
                "network_class": c["network_class"], "hour": c["hour"], "statistic": c["statistic"], "calls": c["calls"],
                "minutes": c["minutes"], "epsilon": c["epsilon"], "mechanism": c["mechanism"], "sensitivity": c["sensitivity"],
                "bounds": bounds, "released_at": started,
            } for c in noisy)
        # The ledger first: budget is counted before anything is public (a crash in between wastes budget, never hides it).
        ledger_df = spark.createDataFrame(
            [_ledger_row(d, mechanism=mechanisms[d.dataset], at=started, run_id=ctx.run_id, status="spent") for d in spends],
            AUDIT_PRIVACY_BUDGET.spark_schema(),
        )
        lake.merge_insert_new(spark, ledger_df, AUDIT_PRIVACY_BUDGET, settings)
        where = " OR ".join(f"(period = DATE'{d.period.isoformat()}' AND dataset = '{d.dataset}')" for d in spends)
        lake.replace_partitions(spark, spark.createDataFrame(rows, GOLD_PUBLIC_USAGE_STATS.spark_schema()),
                                GOLD_PUBLIC_USAGE_STATS, settings, where=where)
    releases.sort(key=lambda r: (r["period"], r["dataset"]))
    return finish(releases, cells)
