"""silver_calls: bronze call events -> one normalized row per call in silver.calls.

For the bronze events received on one upload date, every call they touch is rebuilt from all of its
bronze events (whichever day those arrived), so late events land in the right call and call date:

1. `correct_clock`       device time + the batch's clock offset (server minus device clock);
2. `deduplicate_events`  one copy per event id (retried uploads repeat whole batches);
3. `flag_impossible_times` corrected times after receipt (+ tolerance) or before the account existed
                         go to silver.quarantine with a reason;
4. `normalize_network`   one network class, signal in dBm and a 0-4 score (lake_layout.reporting_units);
5. `sessionize_calls`    start + end / failure joined by call id; a start with no end for longer than the
                         window (in data time: the newest receive time seen) is closed as `incomplete`;
6. `apply_consent`       diagnostics nulled unless the consent in force at call start allows them
                         (reference.subscriber_consent, by event time);
7. `to_silver_rows`      exactly the columns silver.calls declares (no coordinates, IPs or device ids).

silver.calls is MERGEd on call_id and a row is rewritten only when its content hash changed, so a
rerun leaves the table as it was. Completeness per platform and app version is recomputed for every
call date the run touched; the run reports those dates so gold recomputes exactly those days.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from lake_layout.config import Settings
from lake_layout.reporting_units import NETWORK_CLASSES, SIGNAL_SCALES
from lake_layout.tables import (
    BRONZE_CALL_EVENTS,
    REFERENCE_SUBSCRIBER_CONSENT,
    SILVER_CALLS,
    SILVER_PLATFORM_COMPLETENESS,
    SILVER_QUARANTINE,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

START, END, FAILURE = "call_start", "call_end", "call_failure"
DIAGNOSTIC_COLUMNS = ("mos", "jitter_ms")
# Columns of silver.calls that define its content (everything but bookkeeping).
_BOOKKEEPING = {"record_hash", "silver_run_id"}


# ----------------------------------------------------------------------------- transforms

def correct_clock(events: "DataFrame") -> "DataFrame":
    """Adds `event_ts`: event_ts_device shifted by clock_offset_ms (0 when the batch had no offset)."""
    from pyspark.sql import functions as F

    offset = F.coalesce(F.col("clock_offset_ms"), F.lit(0))
    return events.withColumn("event_ts", F.timestamp_millis(F.unix_millis("event_ts_device") + offset))


def deduplicate_events(events: "DataFrame") -> "DataFrame":
    """One row per event_id (the first received copy) with `copies` = how many copies bronze holds."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    by_event = Window.partitionBy("event_id")
    first = by_event.orderBy("received_at", "object_key", "record_index")
    return (
        events.withColumn("copies", F.count("*").over(by_event))
        .withColumn("_copy", F.row_number().over(first))
        .where(F.col("_copy") == 1)
        .drop("_copy")
    )


def flag_impossible_times(
    events: "DataFrame", accounts: "DataFrame", *, future_tolerance: timedelta
) -> "DataFrame":
    """Adds `reject_reason` / `reject_detail` (null when the corrected time is possible).

    future_timestamp: event_ts later than received_at + tolerance. before_account_creation: event_ts
    before the subscriber's account was created (`accounts`: subscriber_pseudonym, account_created_on;
    subscribers missing there are not judged on it).
    """
    from pyspark.sql import functions as F

    tolerance_ms = int(future_tolerance.total_seconds() * 1000)
    created = accounts.select("subscriber_pseudonym", F.col("account_created_on").alias("_created_on"))
    joined = events.join(F.broadcast(created), on="subscriber_pseudonym", how="left")
    future = F.unix_millis("event_ts") > F.unix_millis("received_at") + F.lit(tolerance_ms)
    prehistoric = F.col("_created_on").isNotNull() & (F.col("event_ts") < F.col("_created_on").cast("timestamp"))
    ts = F.date_format("event_ts", "yyyy-MM-dd'T'HH:mm:ss'Z'")
    return (
        joined.withColumn(
            "reject_reason",
            F.when(future, F.lit("future_timestamp")).when(prehistoric, F.lit("before_account_creation")),
        )
        .withColumn(
            "reject_detail",
            F.when(future, F.concat(F.lit("corrected "), ts, F.lit(" is after receipt "),
                                    F.date_format("received_at", "yyyy-MM-dd'T'HH:mm:ss'Z'")))
            .when(prehistoric, F.concat(F.lit("corrected "), ts, F.lit(" is before account creation "),
                                        F.col("_created_on").cast("string"))),
        )
        .drop("_created_on")
    )


def normalize_network(events: "DataFrame") -> "DataFrame":
    """Adds network_class, signal_dbm and signal_quality (0-4) from the platform's own metric.

    Unknown metrics and values outside the metric's physical range give null dBm and quality.
    """
    from pyspark.sql import functions as F

    network_class = F.lit(None).cast("string")
    for network_type, cls in NETWORK_CLASSES.items():
        network_class = F.when(F.col("network_type") == network_type, F.lit(cls)).otherwise(network_class)
    dbm = F.lit(None).cast("double")
    quality = F.lit(None).cast("int")
    for metric, scale in SIGNAL_SCALES.items():
        value = F.col("signal_value") * F.lit(scale.scale) + F.lit(scale.offset)
        in_range = value.between(scale.valid_dbm[0], scale.valid_dbm[1])
        is_metric = (F.col("signal_metric") == metric) & in_range
        dbm = F.when(is_metric, value).otherwise(dbm)
        score = sum((F.when(value >= t, 1).otherwise(0) for t in scale.thresholds_dbm), F.lit(0))
        quality = F.when(is_metric, score).otherwise(quality)
    return events.withColumns({"network_class": network_class, "signal_dbm": dbm, "signal_quality": quality.cast("int")})


_CALL_ATTRIBUTES = (
    "subscriber_pseudonym", "callee_pseudonym", "destination_class", "device_pseudonym", "pseudonym_key_id",
    "account_id", "platform", "app_version", "schema_version", "country_code", "latitude", "longitude", "carrier_mccmnc", "network_type",
    "network_class", "signal_dbm", "signal_quality", "clock_offset_ms", "telemetry_level", "diagnostics_opt_out",
)
_TERMINAL_FIELDS = ("event_type", "duration_ms", "failure_reason", "bytes_sent", "bytes_received", "mos", "jitter_ms")
# The bronze columns silver reads, selected before the events are cached: a cached relation stops Spark's column
# pruning, so the restricted ciphertexts and ingest bookkeeping were cached and shuffled with every event
# (make bench: 1.1 KB of shuffle per event). Derived attributes (network_class, ...) are not in bronze.
_EVENT_COLUMNS = frozenset((
    "event_id", "call_id", "event_ts_device", "clock_offset_ms", "event_date", "received_at", "object_key",
    "record_index", "signal_metric", "signal_value", *_TERMINAL_FIELDS, *_CALL_ATTRIBUTES,
))


def sessionize_calls(events: "DataFrame", *, incomplete_after: timedelta, watermark: datetime) -> "DataFrame":
    """One row per call_id from deduplicated, clock-corrected, normalized events.

    The earliest call_start gives the call's start and attributes; the earliest call_end / call_failure
    its outcome. Status: completed | failed (a terminal event) | incomplete (a start only, older than
    `incomplete_after` at `watermark`) | open (a start only, younger) | orphan_end (no start).
    duplicate_events counts extra copies and extra start / terminal events.
    """
    from pyspark.sql import functions as F

    is_start = F.col("event_type") == START
    is_terminal = F.col("event_type").isin(END, FAILURE)
    start = F.struct(F.col("event_ts").alias("ts"), F.col("event_id").alias("id"), *[F.col(c) for c in _CALL_ATTRIBUTES])
    terminal = F.struct(
        F.col("event_ts").alias("ts"), F.col("event_id").alias("id"),
        *[F.col(c) for c in _TERMINAL_FIELDS], *[F.col(c) for c in _CALL_ATTRIBUTES],
    )
    calls = events.groupBy("call_id").agg(
        F.min(F.when(is_start, start)).alias("s"),
        F.min(F.when(is_terminal, terminal)).alias("t"),
        F.count(F.when(is_start, 1)).alias("starts"),
        F.count(F.when(is_terminal, 1)).alias("terminals"),
        F.sum(F.col("copies") - 1).alias("extra_copies"),
        F.min("received_at").alias("first_received_at"),
        F.max("received_at").alias("last_received_at"),
    )
    has_start, has_terminal = F.col("s").isNotNull(), F.col("t").isNotNull()
    deadline_ms = F.unix_millis(F.col("s.ts")) + F.lit(int(incomplete_after.total_seconds() * 1000))
    watermark_ms = int(watermark.astimezone(timezone.utc).timestamp() * 1000)
    status = (
        F.when(has_terminal & has_start & (F.col("t.event_type") == END), "completed")
        .when(has_terminal & has_start, "failed")
        .when(has_terminal, "orphan_end")
        .when(deadline_ms <= F.lit(watermark_ms), "incomplete")
        .otherwise("open")
    )
    attributes = {c: F.coalesce(F.col(f"s.{c}"), F.col(f"t.{c}")) for c in _CALL_ATTRIBUTES}
    # Media volume and diagnostics are reported on call_end; the signal at the start describes the call.
    return calls.select(
        "call_id",
        status.alias("status"),
        F.col("s.ts").alias("started_at"),
        F.col("t.ts").alias("ended_at"),
        F.when(F.col("t.event_type") == END, F.col("t.duration_ms")).when(has_terminal, F.lit(0)).cast("long").alias("duration_ms"),
        F.col("t.failure_reason").alias("failure_reason"),
        *[v.alias(c) for c, v in attributes.items()],
        F.col("t.bytes_sent").alias("bytes_sent"),
        F.col("t.bytes_received").alias("bytes_received"),
        F.col("t.mos").alias("mos"),
        F.col("t.jitter_ms").alias("jitter_ms"),
        (has_start.cast("int") + has_terminal.cast("int")).alias("event_count"),
        (F.col("extra_copies") + F.greatest(F.col("starts") - 1, F.lit(0)) + F.greatest(F.col("terminals") - 1, F.lit(0)))
        .cast("int").alias("duplicate_events"),
        "first_received_at", "last_received_at",
    ).withColumn("call_date", F.to_date(F.coalesce("started_at", "ended_at")))


def apply_consent(calls: "DataFrame", consent: "DataFrame") -> "DataFrame":
    """Sets telemetry_level to the consent in force at the call's start and nulls diagnostics it forbids.

    `consent`: reference.subscriber_consent rows (a state is in force from effective_from until the
    subscriber's next row). The directory is authoritative; a subscriber it does not know falls back
    to what the client reported (schema 2), else `unknown`. Only `diagnostic` keeps DIAGNOSTIC_COLUMNS.
    """
    from pyspark.sql import functions as F

    at = F.coalesce(F.col("started_at"), F.col("ended_at"))
    states = consent.select(
        "subscriber_pseudonym", "effective_from",
        F.struct(F.col("telemetry_level").alias("level"), F.col("diagnostics_opt_out").alias("opt_out")).alias("state"),
    )
    in_force = (
        calls.select("call_id", "subscriber_pseudonym", at.alias("_at"))
        .join(states, on="subscriber_pseudonym")
        .where(F.col("effective_from") <= F.col("_at"))
        .groupBy("call_id")
        .agg(F.max_by("state", "effective_from").alias("_consent"))
    )
    level = F.coalesce(F.col("_consent.level"), F.col("telemetry_level"))
    opt_out = F.coalesce(F.col("_consent.opt_out"), F.col("diagnostics_opt_out"), F.lit(False))
    effective = F.when(level.isNull(), "unknown").when(opt_out, "opted_out").otherwise(level)
    out = calls.join(in_force, on="call_id", how="left").withColumn("telemetry_level", effective)
    allowed = F.col("telemetry_level") == "diagnostic"
    for column in DIAGNOSTIC_COLUMNS:
        out = out.withColumn(column, F.when(allowed, F.col(column)))
    return out.drop("_consent", "diagnostics_opt_out")


def locate_cells(calls: "DataFrame", *, resolution: int) -> "DataFrame":
    """Replaces latitude / longitude with the H3 cell at `resolution` (coordinates never reach silver)."""
    from jobs.platform.geo import h3_cell

    return calls.withColumn("h3_cell", h3_cell(calls["latitude"], calls["longitude"], resolution=resolution)).drop(
        "latitude", "longitude"
    )


def to_silver_rows(calls: "DataFrame", *, run_id: str) -> "DataFrame":
    """Exactly silver.calls' columns, plus record_hash over the content columns."""
    from pyspark.sql import functions as F

    content = [c for c in SILVER_CALLS.column_names if c not in _BOOKKEEPING]
    data_bytes = F.when(F.col("bytes_sent").isNotNull() | F.col("bytes_received").isNotNull(),
                        F.coalesce("bytes_sent", F.lit(0)) + F.coalesce("bytes_received", F.lit(0)))
    with_bytes = calls.withColumn("data_bytes", data_bytes.cast("long"))
    hashed = with_bytes.withColumn(
        "record_hash",
        F.sha2(F.to_json(F.struct(*[F.col(c) for c in content])), 256),
    ).withColumn("silver_run_id", F.lit(run_id))
    return hashed.select(*SILVER_CALLS.column_names)


def platform_completeness(calls: "DataFrame") -> "DataFrame":
    """silver.platform_completeness rows: events expected (2 per call) vs seen, by date, platform, version."""
    from pyspark.sql import functions as F

    def n(status: str) -> "Column":
        return F.count(F.when(F.col("status") == status, 1))

    return (
        calls.withColumn("app_version", F.coalesce("app_version", F.lit("unknown")))
        .groupBy("call_date", "platform", "app_version")
        .agg(
            F.count("*").alias("calls"), n("completed").alias("completed"), n("failed").alias("failed"),
            n("incomplete").alias("incomplete"), n("open").alias("open"), n("orphan_end").alias("ends_without_start"),
            F.sum("event_count").alias("events_seen"), F.sum("duplicate_events").alias("duplicate_events"),
        )
        .withColumn("events_expected", F.col("calls") * 2)
        .withColumn("completeness", F.col("events_seen") / F.col("events_expected"))
    )


# ----------------------------------------------------------------------------- run

@dataclass(frozen=True)
class SilverContext:
    settings: Settings
    upload_date: date  # bronze events received on this date trigger the rebuild of their calls
    run_id: str = field(default_factory=lambda: f"silver_calls-{uuid.uuid4().hex[:12]}")
    dag_id: str | None = None
    dag_run_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "upload_date", date.fromordinal(self.upload_date.toordinal()))


@dataclass(frozen=True)
class SilverReport:
    upload_date: str
    bronze_events_read: int  # all bronze copies of the touched calls' events
    duplicate_copies: int  # copies dropped by event id
    unique_events: int  # = events_used + events_quarantined
    events_used: int
    events_quarantined: int
    quarantined_by_reason: dict[str, int]
    calls_rebuilt: int
    calls_written: int  # inserted or changed
    calls_by_status: dict[str, int]
    call_dates: list[str]  # call dates whose calls changed: gold recomputes these
    table_versions: dict[str, int | None]
    seconds: float

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True)


def _in_list(values: list[date]) -> str:
    return ", ".join(f"DATE'{v.isoformat()}'" for v in values)


def run(spark: "SparkSession", ctx: SilverContext) -> SilverReport:
    """Rebuild every call touched by bronze events received on ctx.upload_date (plus still-open calls)."""
    from delta.tables import DeltaTable
    from jobs.platform.spark import row_cache_level
    from pyspark.sql import functions as F

    from jobs.platform import lake, lineage

    settings = ctx.settings
    started = datetime.now(timezone.utc)
    t0 = time.monotonic()
    for spec in (BRONZE_CALL_EVENTS, REFERENCE_SUBSCRIBER_CONSENT, SILVER_CALLS, SILVER_QUARANTINE, SILVER_PLATFORM_COMPLETENESS):
        lake.ensure_table(spark, spec, settings)
    outputs = (SILVER_CALLS, SILVER_QUARANTINE, SILVER_PLATFORM_COMPLETENESS)
    before = {s.name: lake.table_version(spark, s, settings) for s in outputs}
    inputs = {s.name: lake.table_version(spark, s, settings) for s in (BRONZE_CALL_EVENTS, REFERENCE_SUBSCRIBER_CONSENT)}

    bronze = lake.read_table(spark, BRONZE_CALL_EVENTS, settings)
    silver = lake.read_table(spark, SILVER_CALLS, settings)
    consent = lake.read_table(spark, REFERENCE_SUBSCRIBER_CONSENT, settings)
    arrived = bronze.where(F.to_date("received_at") == F.lit(ctx.upload_date))
    watermark_row = arrived.agg(F.max("received_at")).first()
    watermark = watermark_row[0] if watermark_row else None
    empty = SilverReport(ctx.upload_date.isoformat(), 0, 0, 0, 0, 0, {}, 0, 0, {}, [], before, round(time.monotonic() - t0, 1))
    if watermark is None:
        return empty
    watermark = watermark.replace(tzinfo=timezone.utc) if watermark.tzinfo is None else watermark

    touched = arrived.select("call_id").union(silver.where(F.col("status") == "open").select("call_id")).distinct()
    used = bronze.select(*[c for c in bronze.columns if c in _EVENT_COLUMNS])
    # Not cached: only `flagged` reads it (deduplication keeps every copy's count, so the events read are
    # sum(copies) there); caching it cost a 3M-event day a pass writing and reading every event (make bench).
    events = used.join(touched, on="call_id", how="left_semi")
    accounts = consent.groupBy("subscriber_pseudonym").agg(F.min("account_created_on").alias("account_created_on"))
    flagged = (
        events.transform(correct_clock)
        .transform(deduplicate_events)
        .transform(lambda df: flag_impossible_times(
            df, accounts, future_tolerance=timedelta(seconds=settings.silver.future_tolerance_seconds)))
        .persist(row_cache_level())
    )
    rejected = flagged.where(F.col("reject_reason").isNotNull())
    quarantine = rejected.select(
        "event_id", "call_id", "event_date", F.col("reject_reason").alias("reason"),
        F.col("reject_detail").alias("detail"), "object_key", "record_index", F.lit(ctx.run_id).alias("silver_run_id"),
    )
    calls = (
        flagged.where(F.col("reject_reason").isNull())
        .transform(normalize_network)
        .transform(lambda df: sessionize_calls(
            df, incomplete_after=timedelta(minutes=settings.silver.incomplete_after_minutes), watermark=watermark))
        .transform(lambda df: apply_consent(df, consent))
        .transform(lambda df: locate_cells(df, resolution=settings.privacy.h3_cell_resolution))
        .transform(lambda df: to_silver_rows(df, run_id=ctx.run_id))
        .persist(row_cache_level())
    )

    unique = flagged.agg(F.count("*").alias("n"), F.sum("copies").alias("copies")).first()
    by_reason = {r["reason"]: int(r["count"]) for r in quarantine.groupBy("reason").count().collect()}
    by_status = {r["status"]: int(r["count"]) for r in calls.groupBy("status").count().collect()}
    n_calls = sum(by_status.values())

    # Which rows will change, and which call dates they leave or enter (a late start can move a call).
    changed = calls.join(silver.select("call_id", F.col("record_hash").alias("_old_hash"), F.col("call_date").alias("_old_date")),
                         on="call_id", how="left").where(F.col("_old_hash").isNull() | (F.col("_old_hash") != F.col("record_hash")))
    date_rows = changed.select(F.col("call_date").alias("d")).union(
        changed.where(F.col("_old_date").isNotNull()).select(F.col("_old_date").alias("d"))).distinct().collect()
    call_dates = sorted(r["d"] for r in date_rows)
    n_changed = changed.count()

    if by_reason:
        lake.merge_insert_new(spark, quarantine, SILVER_QUARANTINE, settings, prune_on="event_date")
    if n_changed:
        (
            DeltaTable.forPath(spark, SILVER_CALLS.location(settings)).alias("t")
            .merge(lake.conform(calls, SILVER_CALLS).alias("s"), "t.call_id = s.call_id")
            .whenMatchedUpdateAll(condition="t.record_hash <> s.record_hash")
            .whenNotMatchedInsertAll()
            .execute()
        )
        completeness = platform_completeness(
            lake.read_table(spark, SILVER_CALLS, settings).where(f"call_date IN ({_in_list(call_dates)})"))
        lake.replace_partitions(spark, completeness, SILVER_PLATFORM_COMPLETENESS, settings,
                                where=f"call_date IN ({_in_list(call_dates)})")
    calls.unpersist()
    flagged.unpersist()

    versions = {s.name: lake.table_version(spark, s, settings) for s in outputs}
    report = SilverReport(
        upload_date=ctx.upload_date.isoformat(),
        bronze_events_read=int(unique["copies"] or 0),
        duplicate_copies=int(unique["copies"] or 0) - int(unique["n"]),
        unique_events=int(unique["n"]),
        events_used=int(unique["n"]) - sum(by_reason.values()),
        events_quarantined=sum(by_reason.values()),
        quarantined_by_reason=dict(sorted(by_reason.items())),
        calls_rebuilt=n_calls, calls_written=n_changed,
        calls_by_status=dict(sorted(by_status.items())),
        call_dates=[d.isoformat() for d in call_dates],
        table_versions=versions,
        seconds=round(time.monotonic() - t0, 1),
    )
    if versions != before:
        lineage.record_run(spark, settings, lineage.LineageRecord(
            run_id=ctx.run_id, job="silver_calls", dag_id=ctx.dag_id, dag_run_id=ctx.dag_run_id,
            logical_date=ctx.upload_date,
            inputs=tuple(lineage.TableInput(table=name, version=v) for name, v in inputs.items()),
            outputs=tuple(lineage.TableOutput(table=s.name, version_before=before[s.name], version_after=versions[s.name]) for s in outputs),
            metrics=_metrics(report), rows_in=report.bronze_events_read, rows_out=n_changed + report.events_quarantined,
            started_at=started, finished_at=datetime.now(timezone.utc),
        ))
    return report


def _metrics(report: SilverReport) -> dict[str, Any]:
    skip = {"table_versions", "seconds", "upload_date"}
    return {k: v for k, v in report.__dict__.items() if k not in skip}
