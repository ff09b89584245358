"""billing_usage: silver.calls -> gold.billing_rated_calls -> gold.billing_usage (B2B billing).

Which calls are billed: completed calls with talk time of B2B accounts (account_id other than "consumer").
Each is rated by its account's plan (lake_layout/billing_plans.toml):

* destination class: silver's (decided at bronze from the dialled number, jobs.ingest.destinations), or `on_net` when
  the callee pseudonym is one of our subscribers (reference.subscriber_consent);
* billable seconds: the plan's increments ("60/60" per started minute, "1/1" per second, "30/6" ...);
* included minutes: consumed per account and period in call order (started_at, then call_id) by calls of the
  plan's included classes; a call crossing the allowance is split into included and overage seconds;
* charge: overage seconds x class rate (minor units per minute) / 60, rounded half up to an integer per call.
  Money is integer minor units throughout; Spark computes it with long arithmetic, never a float.

Periods and closing (lake_layout.billing.BillingCalendar, [billing] in infra/voiplake.toml): a run for day D
first closes every period whose end + close_after_days is on or before D (recorded in audit.billing_periods;
a closed period stays closed, whatever a later backfill's date). Then, for the call dates silver changed:

* open periods are re-rated from all their silver calls (replaceWhere on the period's non-adjustment rows: a
  rerun leaves the same rows);
* closed periods are never rewritten: calls silver gained for them since (late uploads) are rated against the
  allowance the period had left and inserted as adjustment rows invoiced in the period open on D. A call
  already rated whose silver row changed after closing is counted (`closed_changes_not_rebilled`), not re-rated.

gold.billing_usage is then rebuilt for every invoice period that changed, summed from the rated calls.
`extract` writes finance's billing extract for a usage period and reconciles it, or refuses it: its lines' talk time
equals silver's billable talk time of the period; their calls, talk time and charges equal gold.billing_usage's rows
of that usage period (usage and adjustment rows, whatever period invoices them); and the file read back holds the
same totals as its manifest.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time as dtime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from lake_layout.billing import CONSUMER_ACCOUNT, BillingCalendar, Catalogue, load_catalogue
from lake_layout.config import Settings
from lake_layout.tables import (
    AUDIT_BILLING_PERIODS,
    GOLD_BILLING_RATED_CALLS,
    GOLD_BILLING_USAGE,
    REFERENCE_SUBSCRIBER_CONSENT,
    SILVER_CALLS,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

RATED_COLUMNS = GOLD_BILLING_RATED_CALLS.column_names


class ReconciliationError(RuntimeError):
    """The billing extract does not add up to silver's billable minutes: billing is stale or lost calls."""


def calendar_of(settings: Settings) -> BillingCalendar:
    return BillingCalendar(timezone=settings.billing.timezone, cutoff_day=settings.billing.cutoff_day)


# ----------------------------------------------------------------------------- transforms

def period_column(started_at: "Column", *, calendar: BillingCalendar) -> "Column":
    """YYYY-MM billing period of a UTC timestamp column (the Spark twin of BillingCalendar.period_of)."""
    from pyspark.sql import functions as F

    local_day = F.to_date(F.from_utc_timestamp(started_at, calendar.timezone))
    return F.date_format(F.trunc(F.date_sub(local_day, calendar.cutoff_day - 1), "month"), "yyyy-MM")


def billable_calls(calls: "DataFrame", *, subscribers: "DataFrame", calendar: BillingCalendar) -> "DataFrame":
    """silver.calls rows that are billed, with `period` and the rated destination class.

    `subscribers`: one column, subscriber_pseudonym, of our subscribers (callees among them are on_net).
    """
    from pyspark.sql import functions as F

    on_net = subscribers.select(F.col("subscriber_pseudonym").alias("_callee")).distinct().withColumn("_on_net", F.lit(True))
    billed = calls.where(
        (F.col("status") == "completed") & (F.col("duration_ms") > 0) & F.col("started_at").isNotNull()
        & F.col("account_id").isNotNull() & (F.col("account_id") != CONSUMER_ACCOUNT)
    )
    return (
        billed.join(F.broadcast(on_net), billed["callee_pseudonym"] == on_net["_callee"], "left")
        .select(
            "call_id", "call_date", "started_at", "account_id", "duration_ms",
            F.when(F.col("_on_net"), F.lit("on_net"))
            .otherwise(F.coalesce(F.col("destination_class"), F.lit("unknown"))).alias("destination_class"),
            period_column(F.col("started_at"), calendar=calendar).alias("period"),
        )
    )


def plan_table(spark: "SparkSession", catalogue: Catalogue) -> "DataFrame":
    """(plan_id, destination_class) -> rate, included?, increments, allowance: the catalogue as a small frame."""
    rows = [
        (plan.plan_id, cls, rate, cls in plan.included_classes, plan.initial_increment_s, plan.increment_s,
         plan.included_minutes * 60)
        for plan in catalogue.plans.values() for cls, rate in plan.rates_minor_per_minute.items()
    ]
    return spark.createDataFrame(rows, "plan_id string, destination_class string, rate long, included boolean, "
                                       "initial_s long, step_s long, allowance_s long")


def rate_calls(
    calls: "DataFrame", *, catalogue: Catalogue, used_allowance: "DataFrame | None" = None,
) -> "DataFrame":
    """Rate billable calls (output of billable_calls) by their account's plan.

    `used_allowance` (account_id, period, used_seconds): included seconds already consumed by rows that are not
    being rated again (a closed period's); the calls here consume what is left, in call order.
    Adds plan_id, currency, billable_seconds, included_seconds, overage_seconds, rate_minor_per_minute,
    charge_minor and rating_rule. All integer (long) arithmetic.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    plans = plan_table(calls.sparkSession, catalogue)
    account_plan = F.create_map(*[F.lit(x) for kv in sorted(catalogue.accounts.items()) for x in kv]) \
        if catalogue.accounts else None
    plan_id = F.coalesce(F.try_element_at(account_plan, F.col("account_id")), F.lit(catalogue.default_plan)) \
        if account_plan is not None else F.lit(catalogue.default_plan)
    rated = calls.withColumn("plan_id", plan_id).join(F.broadcast(plans), ["plan_id", "destination_class"], "left")
    if used_allowance is not None:
        rated = rated.join(used_allowance, ["account_id", "period"], "left")
    else:
        rated = rated.withColumn("used_seconds", F.lit(0).cast("long"))
    d = F.col("duration_ms")
    initial_ms, step_ms = F.col("initial_s") * 1000, F.col("step_s") * 1000
    billable = (
        F.when(d <= 0, F.lit(0))
        .when(d <= initial_ms, F.col("initial_s"))
        .otherwise(F.col("initial_s") + F.expr("(duration_ms - initial_s * 1000 + step_s * 1000 - 1) div (step_s * 1000)") * F.col("step_s"))
    ).cast("long")
    in_order = Window.partitionBy("account_id", "period").orderBy("started_at", "call_id") \
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    rated = rated.withColumn("billable_seconds", billable).withColumn(
        "_eligible", F.when(F.col("included"), F.col("billable_seconds")).otherwise(F.lit(0)).cast("long"))
    left_before = F.greatest(
        F.col("allowance_s") - F.coalesce(F.col("used_seconds"), F.lit(0))
        - (F.sum("_eligible").over(in_order) - F.col("_eligible")),
        F.lit(0),
    )
    rated = rated.withColumn("_left", left_before.cast("long")).withColumn(
        "included_seconds", F.least(F.col("_eligible"), F.col("_left")).cast("long"))
    overage = F.col("billable_seconds") - F.col("included_seconds")
    rated = rated.withColumn("overage_seconds", overage.cast("long")).withColumn(
        # round half up of overage * rate / 60, exactly: floor((2 * overage * rate + 60) / 120)
        "charge_minor", F.expr("(2 * overage_seconds * rate + 60) div 120").cast("long"))
    rule = F.format_string(
        "plan=%s class=%s increments=%d/%d rate=%d/min allowance_left=%ds included=%ds overage=%ds charge=%d",
        "plan_id", "destination_class", "initial_s", "step_s", "rate", "_left", "included_seconds",
        "overage_seconds", "charge_minor",
    )
    return rated.select(
        *calls.columns, "plan_id", F.lit(catalogue.currency).alias("currency"), "billable_seconds",
        "included_seconds", "overage_seconds", F.col("rate").alias("rate_minor_per_minute"), "charge_minor",
        rule.alias("rating_rule"),
    )


def usage_rows(rated: "DataFrame", *, closed_periods: Sequence[str]) -> "DataFrame":
    """gold.billing_usage rows (without run columns) from rated call rows."""
    from pyspark.sql import functions as F

    closed = F.col("period").isin(list(closed_periods)) if closed_periods else F.lit(False)
    return (
        rated.withColumn("_closed", closed)
        .groupBy("invoice_period", F.col("period").alias("usage_period"), "account_id")
        .agg(
            F.max("plan_id").alias("plan_id"), F.max("currency").alias("currency"),
            F.count("*").alias("calls"), F.sum("duration_ms").alias("duration_ms"),
            F.sum("billable_seconds").alias("billable_seconds"), F.sum("included_seconds").alias("included_seconds"),
            F.sum("overage_seconds").alias("overage_seconds"), F.sum("charge_minor").alias("charge_minor"),
            F.max("_closed").alias("period_closed"),
        )
        .withColumn("row_type", F.when(F.col("invoice_period") == F.col("usage_period"), "usage").otherwise("adjustment"))
    )


# ----------------------------------------------------------------------------- periods

def periods_of_dates(calendar: BillingCalendar, call_dates: Sequence[date]) -> list[str]:
    """Billing periods a UTC call date can hold calls of (two near a cut-off in a time zone off UTC)."""
    found = set()
    for d in call_dates:
        start = datetime.combine(d, dtime.min, tzinfo=timezone.utc)
        found |= {calendar.period_of(start), calendar.period_of(start + timedelta(days=1) - timedelta(microseconds=1))}
    return sorted(found)


def is_due_to_close(calendar: BillingCalendar, period: str, *, as_of: date, close_after_days: int) -> bool:
    """True once `as_of` is `close_after_days` days past the period's last local day."""
    from zoneinfo import ZoneInfo

    end = calendar.bounds(period)[1].astimezone(ZoneInfo(calendar.timezone)).date()
    return as_of >= end + timedelta(days=close_after_days)


# ----------------------------------------------------------------------------- run

@dataclass(frozen=True)
class BillingContext:
    settings: Settings
    as_of: date  # the run's day (the DAG's logical date): decides which periods are closed and which is open
    call_dates: tuple[date, ...]  # silver call dates that changed
    run_id: str = field(default_factory=lambda: f"billing_usage-{uuid.uuid4().hex[:12]}")
    dag_id: str | None = None
    dag_run_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "call_dates", tuple(sorted({date.fromordinal(d.toordinal()) for d in self.call_dates})))


@dataclass(frozen=True)
class BillingReport:
    as_of: str
    open_period: str
    periods_closed_now: list[str]
    periods_rerated: list[str]
    invoice_periods_written: list[str]
    rated_calls: int
    adjustment_calls: int
    adjustment_charge_minor: int
    closed_changes_not_rebilled: int
    charge_minor_by_invoice_period: dict[str, int]
    currency: str
    seconds: float

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True, default=str)


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def run(spark: "SparkSession", ctx: BillingContext) -> BillingReport:
    """Close due periods, rate what silver changed, rebuild gold.billing_usage for the invoices it touched."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from jobs.platform import lake, lineage

    settings = ctx.settings
    started = datetime.now(timezone.utc)
    t0 = time.monotonic()
    catalogue = load_catalogue(settings.billing.catalogue)
    calendar = calendar_of(settings)
    for spec in (SILVER_CALLS, REFERENCE_SUBSCRIBER_CONSENT, GOLD_BILLING_RATED_CALLS, GOLD_BILLING_USAGE, AUDIT_BILLING_PERIODS):
        lake.ensure_table(spark, spec, settings)
    versions_before = {s.name: lake.table_version(spark, s, settings)
                       for s in (GOLD_BILLING_RATED_CALLS, GOLD_BILLING_USAGE, AUDIT_BILLING_PERIODS)}
    silver_version = lake.table_version(spark, SILVER_CALLS, settings)
    open_period = calendar.period_of(datetime.combine(ctx.as_of, dtime.max, tzinfo=timezone.utc))
    rated_table = lake.read_table(spark, GOLD_BILLING_RATED_CALLS, settings)
    now = F.lit(started)

    # 1. close the periods that are due (once; a closed period stays closed)
    closed = {r[0] for r in lake.read_table(spark, AUDIT_BILLING_PERIODS, settings).select("period").collect()}
    touched = periods_of_dates(calendar, ctx.call_dates)
    known = {r[0] for r in rated_table.select("period").distinct().collect()} | set(touched)
    due = sorted(p for p in known - closed
                 if is_due_to_close(calendar, p, as_of=ctx.as_of, close_after_days=settings.billing.close_after_days))
    if due:
        totals = (rated_table.where(F.col("period").isin(due)).groupBy("period")
                  .agg(F.count("*").alias("calls"), F.sum("charge_minor").alias("charge_minor")))
        closing = (spark.createDataFrame([(p,) for p in due], "period string").join(totals, "period", "left")
                   .select("period", now.alias("closed_at"), F.lit(ctx.as_of).alias("closed_as_of"),
                           F.coalesce("calls", F.lit(0)).alias("calls"),
                           F.coalesce("charge_minor", F.lit(0)).alias("charge_minor"), F.lit(ctx.run_id).alias("run_id")))
        lake.merge_insert_new(spark, closing, AUDIT_BILLING_PERIODS, settings)
        closed |= set(due)

    subscribers = lake.read_table(spark, REFERENCE_SUBSCRIBER_CONSENT, settings).select("subscriber_pseudonym")
    silver = lake.read_table(spark, SILVER_CALLS, settings)
    stamp = {"run_id": F.lit(ctx.run_id), "rated_at": now}

    # 2. open periods silver touched: re-rate all their calls
    rerate = [p for p in touched if p not in closed]
    n_rated = 0
    if rerate:
        first = min(calendar.utc_dates(p)[0] for p in rerate)
        last = max(calendar.utc_dates(p)[1] for p in rerate)
        calls = billable_calls(silver.where(F.col("call_date").between(first, last)), subscribers=subscribers,
                               calendar=calendar).where(F.col("period").isin(rerate))
        rated = (rate_calls(calls, catalogue=catalogue)
                 .withColumns({"invoice_period": F.col("period"), "is_adjustment": F.lit(False), **stamp})
                 .persist(StorageLevel.MEMORY_AND_DISK))
        n_rated = rated.count()
        lake.replace_partitions(spark, rated, GOLD_BILLING_RATED_CALLS, settings,
                                where=f"{_in('period', rerate)} AND is_adjustment = false")
        rated.unpersist()

    # 3. closed periods silver touched: late calls become adjustments in the open period
    late_periods = [p for p in touched if p in closed]
    n_adjust, adjust_charge, n_changed = 0, 0, 0
    if late_periods:
        on_dates = silver.where(F.col("call_date").isin(list(ctx.call_dates)))
        candidates = billable_calls(on_dates, subscribers=subscribers, calendar=calendar).where(F.col("period").isin(late_periods))
        existing = rated_table.where(F.col("period").isin(late_periods))
        billed = existing.groupBy("call_id").agg(F.sum("duration_ms").alias("_billed_ms"))
        new = candidates.join(billed, "call_id", "left_anti")
        n_changed = (candidates.join(billed, "call_id").where(F.col("duration_ms") != F.col("_billed_ms")).count())
        used = existing.groupBy("account_id", "period").agg(F.sum("included_seconds").alias("used_seconds"))
        adjustments = (rate_calls(new, catalogue=catalogue, used_allowance=used)
                       .withColumns({"invoice_period": F.lit(open_period), "is_adjustment": F.lit(True), **stamp})
                       .persist(StorageLevel.MEMORY_AND_DISK))
        summary = adjustments.agg(F.count("*").alias("n"), F.sum("charge_minor").alias("c")).first()
        n_adjust, adjust_charge = int(summary["n"]), int(summary["c"] or 0)
        if n_adjust:
            lake.merge_insert_new(spark, adjustments, GOLD_BILLING_RATED_CALLS, settings, prune_on="period")
        adjustments.unpersist()

    # 4. invoices that changed: rebuild their gold.billing_usage rows
    invoices = sorted(set(rerate) | ({open_period} if n_adjust else set()))
    charges: dict[str, int] = {}
    if invoices:
        lines = lake.read_table(spark, GOLD_BILLING_RATED_CALLS, settings).where(F.col("invoice_period").isin(invoices))
        usage = usage_rows(lines, closed_periods=sorted(closed)).withColumns({"run_id": F.lit(ctx.run_id), "computed_at": now})
        usage = usage.persist(StorageLevel.MEMORY_AND_DISK)
        lake.replace_partitions(spark, usage, GOLD_BILLING_USAGE, settings, where=_in("invoice_period", invoices))
        charges = {r[0]: int(r[1] or 0) for r in usage.groupBy("invoice_period").agg(F.sum("charge_minor")).collect()}
        usage.unpersist()

    report = BillingReport(
        as_of=ctx.as_of.isoformat(), open_period=open_period, periods_closed_now=due, periods_rerated=rerate,
        invoice_periods_written=invoices, rated_calls=n_rated, adjustment_calls=n_adjust,
        adjustment_charge_minor=adjust_charge, closed_changes_not_rebilled=n_changed,
        charge_minor_by_invoice_period=dict(sorted(charges.items())), currency=catalogue.currency,
        seconds=round(time.monotonic() - t0, 1),
    )
    outputs = tuple(
        lineage.TableOutput(table=name, version_before=before, version_after=lake.table_version(spark, spec, settings))
        for spec in (GOLD_BILLING_RATED_CALLS, GOLD_BILLING_USAGE, AUDIT_BILLING_PERIODS)
        for name, before in [(spec.name, versions_before[spec.name])]
    )
    lineage.record_run(spark, settings, lineage.LineageRecord(
        run_id=ctx.run_id, job="billing_usage", dag_id=ctx.dag_id, dag_run_id=ctx.dag_run_id, logical_date=ctx.as_of,
        inputs=(lineage.TableInput(table=SILVER_CALLS.name, version=silver_version),
                lineage.TableInput(table=REFERENCE_SUBSCRIBER_CONSENT.name,
                                   version=lake.table_version(spark, REFERENCE_SUBSCRIBER_CONSENT, settings))),
        outputs=outputs,
        metrics={k: v for k, v in json.loads(report.to_json()).items() if k != "seconds"},
        rows_in=n_rated + n_adjust, rows_out=n_rated + n_adjust, started_at=started, finished_at=datetime.now(timezone.utc),
    ))
    return report


# ----------------------------------------------------------------------------- extract

EXTRACT_COLUMNS = (
    "period", "invoice_period", "is_adjustment", "account_id", "plan_id", "call_id", "started_at", "destination_class",
    "duration_ms", "billable_seconds", "included_seconds", "overage_seconds", "rate_minor_per_minute",
    "charge_minor", "currency", "rating_rule",
)


@dataclass(frozen=True)
class ExtractManifest:
    period: str
    file: str
    sha256: str
    lines: int
    accounts: int
    charge_minor: int
    currency: str
    call_ms: int  # talk time of the lines (exact)
    silver_billable_ms: int  # silver's billable talk time of the period (exact; equal, or no extract)
    call_minutes: str  # call_ms in minutes, 3 decimals
    billing_usage_calls: int  # gold.billing_usage of the usage period, adjustments included (equal, or no extract)
    billing_usage_ms: int
    billing_usage_charge_minor: int
    reconciled: bool  # every check above passed and the written file read back to the same totals
    rated_calls_version: int | None
    silver_version: int | None


def _minutes(ms: int) -> str:
    return str((Decimal(ms) / 60000).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP))


def extract(spark: "SparkSession", settings: Settings, period: str, out: Path) -> ExtractManifest:
    """Write the billing lines of usage `period` to `out` (.parquet, else CSV) and a manifest beside it.

    Reconciles first: the lines' talk time must equal silver's billable talk time of the period (the same
    selection billing rates from), and their calls, talk time and charges gold.billing_usage's rows of the usage
    period (adjustments included); then the written file, read back, must hold the same totals. Else
    ReconciliationError and no file. Minutes are exact (ms / 60000), money integer minor units.
    """
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from pyspark.sql import functions as F

    from jobs.platform import lake

    calendar = calendar_of(settings)
    calendar.bounds(period)  # validates the format
    lines = (lake.read_table(spark, GOLD_BILLING_RATED_CALLS, settings).where(F.col("period") == period)
             .select(*EXTRACT_COLUMNS).orderBy("account_id", "started_at", "call_id", "invoice_period"))
    first, last = calendar.utc_dates(period)
    silver = lake.read_table(spark, SILVER_CALLS, settings).where(F.col("call_date").between(first, last))
    subscribers = lake.read_table(spark, REFERENCE_SUBSCRIBER_CONSENT, settings).select("subscriber_pseudonym")
    silver_ms = billable_calls(silver, subscribers=subscribers, calendar=calendar).where(F.col("period") == period) \
        .agg(F.sum("duration_ms")).first()[0] or 0
    table = lines.toArrow()
    line_ms = sum(v for v in table.column("duration_ms").to_pylist())
    if line_ms != silver_ms:
        raise ReconciliationError(
            f"billing extract {period}: lines hold {_minutes(line_ms)} call minutes, silver.calls has "
            f"{_minutes(silver_ms)} billable minutes; run billing for the period's call dates (voiplake billing) first")
    charge = sum(table.column("charge_minor").to_pylist())
    usage = (lake.read_table(spark, GOLD_BILLING_USAGE, settings).where(F.col("usage_period") == period)
             .agg(F.sum("calls").alias("calls"), F.sum("duration_ms").alias("ms"), F.sum("charge_minor").alias("charge"))
             .first())
    usage_totals = (int(usage["calls"] or 0), int(usage["ms"] or 0), int(usage["charge"] or 0))
    if (table.num_rows, line_ms, charge) != usage_totals:
        raise ReconciliationError(
            f"billing extract {period}: lines hold {table.num_rows} calls, {line_ms} ms and {charge} minor units of "
            f"charges; gold.billing_usage has {usage_totals[0]} calls, {usage_totals[1]} ms and {usage_totals[2]} minor "
            "units for the usage period (adjustments included): rerun billing (voiplake billing) for the period")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        pq.write_table(table, out)
        written = pq.read_table(out)
    else:
        pacsv.write_csv(table, out)
        written = pacsv.read_csv(out)
    written_totals = (written.num_rows, sum(written.column("duration_ms").to_pylist()),
                      sum(written.column("charge_minor").to_pylist()))
    if written_totals != usage_totals:
        out.unlink()
        raise ReconciliationError(f"billing extract {period}: {out} read back as {written_totals} (calls, ms, charges), "
                                  f"not {usage_totals}; nothing was kept")
    manifest = ExtractManifest(
        period=period, file=out.name, sha256=hashlib.sha256(out.read_bytes()).hexdigest(), lines=table.num_rows,
        accounts=len(set(table.column("account_id").to_pylist())), charge_minor=int(charge),
        currency=load_catalogue(settings.billing.catalogue).currency,
        call_ms=int(line_ms), silver_billable_ms=int(silver_ms), call_minutes=_minutes(line_ms),
        billing_usage_calls=usage_totals[0], billing_usage_ms=usage_totals[1], billing_usage_charge_minor=usage_totals[2],
        reconciled=True,
        rated_calls_version=lake.table_version(spark, GOLD_BILLING_RATED_CALLS, settings),
        silver_version=lake.table_version(spark, SILVER_CALLS, settings),
    )
    out.with_name(out.name + ".manifest.json").write_text(json.dumps(manifest.__dict__, indent=2) + "\n")
    return manifest
