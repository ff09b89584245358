"""support_triggers: silver.calls -> gold.support_triggers, quota and quality events for customer support.

For an evaluated UTC call date D (period P = D's calendar month):

* quota use: talk time (duration_ms) of completed calls per B2B account, and per subscriber of each account,
  over P's call dates up to D. For each threshold t of quotas.thresholds_percent, a quota_threshold event fires
  when usage >= t % of the quota (the account's override in quotas.accounts, else quotas.account_minutes; for a
  subscriber quotas.subscriber_minutes; a quota of 0 never fires). The event's identity is (kind, scope,
  account, subscriber, P, t): it fires once per period, so a rerun of D or the run of D+1 (still above 80 %)
  adds nothing, and crossing 100 % later fires its own event;
* quality: per account on D, failure rate = failed / (completed + failed) above quotas.max_failure_rate over at
  least quotas.min_calls such calls, and short-call ratio = completed calls shorter than
  quotas.short_call_seconds / completed above quotas.max_short_call_ratio over at least min_calls completed
  calls. Identity (kind, account, D): once per account and day.

All comparisons are exact: integer usage against integer quota, ratios against the configured decimals as
fractions (failed * q > p * calls for a maximum p/q), so a boundary case never flips on float rounding. Only
B2B accounts are evaluated (not null and not "consumer").

trigger_id = SHA-256 of the identity; `run` MERGEs new events on it (insert only), then hands every event not yet
delivered to the sink (jobs.business.support_sinks: file by default, or webhook) and records the outcome (sink,
attempts, last_attempt_at, delivered_at, last_error) on the event's row. Events a sink could not take stay
undelivered and are retried by the next run; receivers dedupe on the Idempotency-Key (= trigger_id).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Sequence

from lake_layout.config import QuotaSettings, Settings
from lake_layout.tables import GOLD_SUPPORT_TRIGGERS, SILVER_CALLS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from jobs.business.support_sinks import SupportSink

QUOTA_THRESHOLD, FAILURE_RATE, SHORT_CALL_RATIO = "quota_threshold", "failure_rate", "short_call_ratio"
ACCOUNT_SCOPE, SUBSCRIBER_SCOPE = "account", "subscriber"
NON_B2B_ACCOUNTS = ("consumer",)  # consumers share one pseudo-account: no account quota, no account support
MS_PER_MINUTE = 60_000
# What a trigger says (the event the sink delivers); the rest of the row is delivery bookkeeping.
EVENT_COLUMNS = ("trigger_id", "kind", "scope", "account_id", "subscriber_pseudonym", "period", "call_date", "threshold",
                 "observed", "numerator", "denominator", "quota_minutes", "usage_ms", "calls")


def period_of(day: date) -> str:
    """The quota period (calendar month, UTC) of a call date: YYYY-MM."""
    return f"{day.year:04d}-{day.month:02d}"


def _b2b(calls: "DataFrame") -> "DataFrame":
    from pyspark.sql import functions as F

    return calls.where(F.col("account_id").isNotNull() & ~F.col("account_id").isin(*NON_B2B_ACCOUNTS))


def month_to_date_usage(calls: "DataFrame", *, evaluated: date) -> "DataFrame":
    """Talk time of completed calls of B2B accounts over `evaluated`'s month up to and including `evaluated`.

    Columns: scope (account | subscriber), account_id, subscriber_pseudonym (null for account rows), period,
    usage_ms, calls. Calls after `evaluated` are ignored, so a backfilled day sees what it would have seen then.
    """
    from pyspark.sql import functions as F

    first = evaluated.replace(day=1)
    completed = _b2b(calls).where(
        (F.col("status") == "completed") & F.col("call_date").between(F.lit(first), F.lit(evaluated))
    )
    per_subscriber = completed.groupBy("account_id", "subscriber_pseudonym").agg(
        F.sum(F.coalesce(F.col("duration_ms"), F.lit(0))).cast("long").alias("usage_ms"), F.count("*").alias("calls"),
    )
    per_account = per_subscriber.groupBy("account_id").agg(
        F.sum("usage_ms").cast("long").alias("usage_ms"), F.sum("calls").cast("long").alias("calls"),
    )
    return (
        per_account.select(F.lit(ACCOUNT_SCOPE).alias("scope"), "account_id", F.lit(None).cast("string").alias("subscriber_pseudonym"),
                           "usage_ms", "calls")
        .unionByName(per_subscriber.select(F.lit(SUBSCRIBER_SCOPE).alias("scope"), "account_id", "subscriber_pseudonym",
                                           "usage_ms", "calls"))
        .withColumn("period", F.lit(period_of(evaluated)))
    )


def quota_triggers(usage: "DataFrame", *, quotas: QuotaSettings, evaluated: date) -> "DataFrame":
    """One row per (usage row, threshold) whose usage reached the threshold's share of its quota.

    Contract: usage_ms * 100 >= quota_minutes * 60000 * threshold, in long arithmetic; rows whose quota is 0 never
    fire. Output columns: EVENT_COLUMNS without trigger_id.
    """
    from itertools import chain

    from pyspark.sql import functions as F

    overrides = F.create_map(*chain.from_iterable((F.lit(a), F.lit(m)) for a, m in quotas.accounts)) if quotas.accounts else None
    account_quota = F.lit(quotas.account_minutes).cast("long")
    if overrides is not None:
        account_quota = F.coalesce(F.element_at(overrides, F.col("account_id")).cast("long"), account_quota)
    quota = F.when(F.col("scope") == ACCOUNT_SCOPE, account_quota).otherwise(F.lit(quotas.subscriber_minutes).cast("long"))
    quota_ms = F.col("quota_minutes") * MS_PER_MINUTE
    return (
        usage.withColumn("quota_minutes", quota)
        .where(F.col("quota_minutes") > 0)
        .withColumn("_pct", F.explode(F.array(*[F.lit(t).cast("long") for t in quotas.thresholds_percent])))
        .where(F.col("usage_ms") * 100 >= quota_ms * F.col("_pct"))
        .select(
            F.lit(QUOTA_THRESHOLD).alias("kind"), "scope", "account_id", "subscriber_pseudonym", "period",
            F.lit(evaluated).alias("call_date"), F.col("_pct").cast("string").alias("threshold"),
            (F.col("usage_ms") * 100.0 / quota_ms).alias("observed"),
            F.col("usage_ms").alias("numerator"), quota_ms.alias("denominator"), "quota_minutes", "usage_ms", "calls",
        )
    )


def daily_quality(calls: "DataFrame", *, evaluated: date, short_call_seconds: int) -> "DataFrame":
    """Per B2B account on `evaluated`: completed, failed and short (completed, duration < short_call_seconds) calls.

    Calls still open, incomplete or orphaned are neither success nor failure and are not counted.
    """
    from pyspark.sql import functions as F

    day = _b2b(calls).where((F.col("call_date") == F.lit(evaluated)) & F.col("status").isin("completed", "failed"))
    completed = F.col("status") == "completed"
    short = completed & (F.coalesce(F.col("duration_ms"), F.lit(0)) < short_call_seconds * 1000)
    return day.groupBy("account_id").agg(
        F.count(F.when(completed, 1)).alias("completed"),
        F.count(F.when(F.col("status") == "failed", 1)).alias("failed"),
        F.count(F.when(short, 1)).alias("short"),
    )


def quality_triggers(quality: "DataFrame", *, quotas: QuotaSettings, evaluated: date) -> "DataFrame":
    """failure_rate and short_call_ratio events of `daily_quality` rows above their maximum (exact comparison).

    A ratio fires only over at least quotas.min_calls calls (completed + failed, resp. completed) and only when
    strictly above the maximum. Output columns: EVENT_COLUMNS without trigger_id.
    """
    from pyspark.sql import functions as F

    def above(kind: str, numerator: str, denominator: "Any", maximum: Fraction, configured: str) -> "DataFrame":
        p, q = maximum.numerator, maximum.denominator
        rows = quality.withColumns({"numerator": F.col(numerator).cast("long"), "denominator": denominator.cast("long")})
        return rows.where(
            (F.col("denominator") >= quotas.min_calls) & (F.col("numerator") * q > F.col("denominator") * p)
        ).select(
            F.lit(kind).alias("kind"), F.lit(ACCOUNT_SCOPE).alias("scope"), "account_id",
            F.lit(None).cast("string").alias("subscriber_pseudonym"), F.lit(period_of(evaluated)).alias("period"),
            F.lit(evaluated).alias("call_date"), F.lit(configured).alias("threshold"),
            (F.col("numerator") / F.col("denominator")).alias("observed"), "numerator", "denominator",
            F.lit(None).cast("long").alias("quota_minutes"), F.lit(None).cast("long").alias("usage_ms"),
            F.col("denominator").alias("calls"),
        )

    failure = above(FAILURE_RATE, "failed", F.col("completed") + F.col("failed"), Fraction(quotas.max_failure_rate),
                    str(quotas.max_failure_rate))
    short = above(SHORT_CALL_RATIO, "short", F.col("completed"), Fraction(quotas.max_short_call_ratio),
                  str(quotas.max_short_call_ratio))
    return failure.unionByName(short)


def with_trigger_id(triggers: "DataFrame") -> "DataFrame":
    """Adds trigger_id = SHA-256 of the event's identity: kind|scope|account|subscriber|window|threshold, where the
    window is the period for quota events (once per period) and the call date for quality events (once per day)."""
    from pyspark.sql import functions as F

    window = F.when(F.col("kind") == QUOTA_THRESHOLD, F.col("period")).otherwise(F.col("call_date").cast("string"))
    identity = F.concat_ws("|", "kind", "scope", "account_id", F.coalesce("subscriber_pseudonym", F.lit("")), window, "threshold")
    return triggers.withColumn("trigger_id", F.sha2(identity, 256)).select(*EVENT_COLUMNS)


def first_detection(triggers: "DataFrame") -> "DataFrame":
    """One row per trigger_id: the earliest call_date's (several evaluated days of one run can see the same event)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    first = Window.partitionBy("trigger_id").orderBy("call_date")
    return triggers.withColumn("_n", F.row_number().over(first)).where(F.col("_n") == 1).drop("_n")


def support_triggers(calls: "DataFrame", *, quotas: QuotaSettings, evaluated: Sequence[date]) -> "DataFrame":
    """Every event the evaluated call dates raise (EVENT_COLUMNS, one row per trigger_id) from silver calls."""
    from functools import reduce

    per_day = [
        quota_triggers(month_to_date_usage(calls, evaluated=day), quotas=quotas, evaluated=day).unionByName(
            quality_triggers(daily_quality(calls, evaluated=day, short_call_seconds=quotas.short_call_seconds),
                             quotas=quotas, evaluated=day))
        for day in evaluated
    ]
    return reduce(lambda a, b: a.unionByName(b), per_day).transform(with_trigger_id).transform(first_detection)


def event_of(row: dict[str, Any]) -> dict[str, Any]:
    """The event a sink receives for a gold.support_triggers row (no delivery bookkeeping); detected_at in UTC."""
    detected = row["detected_at"]
    # Spark hands timestamps back as naive local times; a row built in this run holds an aware UTC time.
    return {**{k: row[k] for k in EVENT_COLUMNS}, "detected_at": detected.astimezone(timezone.utc)}


def deliver_events(rows: Sequence[dict[str, Any]], sink: "SupportSink") -> tuple[list[dict[str, Any]], int, int]:
    """Hand each undelivered row's event to `sink`, in order; returns (rows with their delivery status, delivered, failed).

    Each attempted row gets sink, attempts (added to its earlier attempts), last_attempt_at, delivered_at (null
    unless delivered) and last_error. After a transient failure that outlasted the sink's own retries (receiver
    down), the remaining rows are returned unattempted: they would only wait out the same backoff, and the next
    run tries them again. A refused event (4xx) does not stop the others.
    """
    out, delivered, failed, stopped = [], 0, 0, False
    for row in rows:
        if stopped or row["delivered_at"] is not None:
            out.append(row)
            continue
        result = sink.deliver(event_of(row))
        now = datetime.now(timezone.utc)
        out.append(row | {"sink": sink.name, "attempts": row["attempts"] + result.attempts, "last_attempt_at": now,
                          "delivered_at": now if result.delivered else None, "last_error": result.error})
        delivered += result.delivered
        failed += not result.delivered
        stopped = not result.delivered and result.transient
    return out, delivered, failed


# ----------------------------------------------------------------------------- run

@dataclass(frozen=True)
class SupportTriggersContext:
    settings: Settings
    evaluated_dates: tuple[date, ...]  # call dates to evaluate (the DAG: silver's changed call dates)
    logical_date: date | None = None
    sink: "SupportSink | None" = None  # default: quotas.sink (jobs.business.support_sinks.sink_from_settings)
    run_id: str = field(default_factory=lambda: f"support_triggers-{uuid.uuid4().hex[:12]}")
    dag_id: str | None = None
    dag_run_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "evaluated_dates", tuple(sorted({date.fromordinal(d.toordinal()) for d in self.evaluated_dates})))


@dataclass(frozen=True)
class SupportTriggersReport:
    evaluated_dates: list[str]
    calls_read: int
    new_triggers: int
    new_by_kind: dict[str, int]
    delivered: int  # deliveries that succeeded in this run (new and earlier undelivered events)
    failed: int  # deliveries attempted in this run that failed
    undelivered: int  # events still undelivered after this run (retried next run)
    sink: str
    new: list[dict[str, Any]]  # the new events (account, kind, threshold, observed)
    table_version: int | None
    seconds: float

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True, default=str)


def run(spark: "SparkSession", ctx: SupportTriggersContext) -> SupportTriggersReport:
    """Evaluate ctx.evaluated_dates, deliver the new events and every earlier undelivered one, then write them all to
    gold.support_triggers in one MERGE on trigger_id (new rows inserted, earlier rows' delivery status updated).

    Delivery happens before the write: if the write fails, the next run detects and delivers the same events again
    (same trigger_id), so delivery is at least once and receivers dedupe on the Idempotency-Key.
    """
    from pyspark.sql import functions as F

    from jobs.platform import lake, lineage
    from jobs.business.support_sinks import sink_from_settings

    settings = ctx.settings
    sink = ctx.sink or sink_from_settings(settings.quotas)
    started = datetime.now(timezone.utc)
    t0 = time.monotonic()
    for spec in (SILVER_CALLS, GOLD_SUPPORT_TRIGGERS):
        lake.ensure_table(spark, spec, settings)
    before = lake.table_version(spark, GOLD_SUPPORT_TRIGGERS, settings)
    silver_version = lake.table_version(spark, SILVER_CALLS, settings)
    table = lake.read_table(spark, GOLD_SUPPORT_TRIGGERS, settings)
    n_calls, new_rows = 0, []
    if ctx.evaluated_dates:
        first, last = ctx.evaluated_dates[0].replace(day=1), ctx.evaluated_dates[-1]
        calls = lake.read_table(spark, SILVER_CALLS, settings).where(F.col("call_date").between(F.lit(first), F.lit(last)))
        candidates = support_triggers(calls, quotas=settings.quotas, evaluated=ctx.evaluated_dates)
        new = candidates.join(table.select("trigger_id"), "trigger_id", "left_anti")
        # New events of a run are bounded by accounts x (thresholds + 2) plus subscribers over quota: few enough to hold.
        bookkeeping = {"detected_at": started, "run_id": ctx.run_id, "sink": None, "attempts": 0,
                       "last_attempt_at": None, "delivered_at": None, "last_error": None}
        new_rows = [r.asDict() | bookkeeping for r in new.orderBy("account_id", "kind", "subscriber_pseudonym", "threshold").collect()]
        n_calls = calls.count()
    # Undelivered events are few (a failing sink's backlog at most): collect is fine.
    pending = [r.asDict() for r in table.where(F.col("delivered_at").isNull()).orderBy("detected_at", "trigger_id").collect()]
    rows, delivered, failed = deliver_events(pending + new_rows, sink)
    if rows:
        lake.upsert(spark, spark.createDataFrame(rows, GOLD_SUPPORT_TRIGGERS.spark_schema()), GOLD_SUPPORT_TRIGGERS, settings)
    version = lake.table_version(spark, GOLD_SUPPORT_TRIGGERS, settings)
    report = SupportTriggersReport(
        evaluated_dates=[d.isoformat() for d in ctx.evaluated_dates], calls_read=n_calls, new_triggers=len(new_rows),
        new_by_kind=dict(sorted(Counter(r["kind"] for r in new_rows).items())), delivered=delivered, failed=failed,
        undelivered=sum(r["delivered_at"] is None for r in rows), sink=sink.name,
        new=[{k: r[k] for k in ("account_id", "kind", "scope", "threshold", "observed", "call_date")} for r in new_rows],
        table_version=version, seconds=round(time.monotonic() - t0, 1),
    )
    lineage.record_run(spark, settings, lineage.LineageRecord(
        run_id=ctx.run_id, job="support_triggers", dag_id=ctx.dag_id, dag_run_id=ctx.dag_run_id,
        logical_date=ctx.logical_date or (ctx.evaluated_dates[-1] if ctx.evaluated_dates else started.date()),
        inputs=(lineage.TableInput(table=SILVER_CALLS.name, version=silver_version),),
        outputs=(lineage.TableOutput(table=GOLD_SUPPORT_TRIGGERS.name, version_before=before, version_after=version),),
        metrics={k: v for k, v in json.loads(report.to_json()).items() if k not in ("table_version", "seconds", "new")},
        rows_in=n_calls, rows_out=len(new_rows), started_at=started, finished_at=datetime.now(timezone.utc),
    ))
    return report
