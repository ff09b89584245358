"""telemetry_compliance: what each client build uploaded on one day against the central SDK configuration.

Reads what bronze kept of the upload date's accepted events (bronze.call_events: platform, app version, serving
carrier, device pseudonym, telemetry level, network type, call times on the device clock, quality_samples, the
fields bronze dropped, batch send time) and the sizes of their landing objects (bronze.ingested_objects), and holds
every event to the SDK configuration version in force when the collector received it
(lake_layout/sdk_config.toml, `policy_frame`). Five checks:

* dropped fields: the event carried fields outside the allowed set of its platform and telemetry level (bronze
  dropped them and named them in `dropped_fields`; events without a level, schema 1, are held to basic);
* fast sampling: a call end's quality metrics were sampled more often than quality_sample_interval_seconds
  (duration_ms / quality_samples below it) on an unconstrained network;
* high-frequency tracking on a constrained network (2G): the same against constrained_sample_interval_seconds;
* uploads during calls: a batch's send time (device clock) falls strictly inside one of the same device's calls
  (call_start .. call_end, device clock) where uploads_during_calls is false;
* bytes over the cap: the device's landing objects of the day sum to more than daily_background_upload_bytes (the
  more generous level's cap when the device sent both).

Everything is counted per device, and devices are grouped by platform, app version and their most used serving
carrier of the day into gold.telemetry_compliance, with the five worst devices (pseudonyms only) per group.
Builds that report no quality_samples cannot be judged on sampling and count as compliant there.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from lake_layout.config import Settings
from lake_layout.sdk_config import PLATFORMS, TELEMETRY_LEVELS, SdkConfig, document_sha256, published_document
from lake_layout.tables import BRONZE_CALL_EVENTS, BRONZE_INGESTED_OBJECTS, GOLD_TELEMETRY_COMPLIANCE

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

WORST_OFFENDERS = 5
UNKNOWN = "unknown"
POLICY_SCHEMA = (
    "config_version string, effective_from timestamp, effective_to timestamp, platform string, level string, "
    "sample_interval_ms long, constrained_interval_ms long, constrained_networks array<string>, "
    "uploads_during_calls boolean, daily_cap_bytes long"
)


def policy_frame(config: SdkConfig) -> list[tuple[Any, ...]]:
    """Rows (POLICY_SCHEMA) of every configuration version, platform and level, each valid from its
    effective_from until the next version's (None: still in force)."""
    rows = []
    for version, following in zip(config.versions, (*config.versions[1:], None)):
        for platform in PLATFORMS:
            for level in TELEMETRY_LEVELS:
                p = version.policy(platform, level)
                rows.append((version.version_id, version.effective_from, following.effective_from if following else None,
                             platform, level, p.quality_sample_interval_seconds * 1000,
                             p.constrained_sample_interval_seconds * 1000, list(p.constrained_networks),
                             p.uploads_during_calls, p.daily_background_upload_bytes))
    return rows


def with_policy(events: "DataFrame", *, policies: "DataFrame") -> "DataFrame":
    """Each event with the policy of its platform and telemetry level (basic when it has none) in force at its
    received_at. Events received before the first configuration version have none and are dropped."""
    from pyspark.sql import functions as F

    level = F.when(F.col("telemetry_level").isin(*TELEMETRY_LEVELS), F.col("telemetry_level")).otherwise(F.lit("basic"))
    e = events.withColumn("_level", level).alias("e")
    p = F.broadcast(policies).alias("p")
    cond = ((F.col("e.platform") == F.col("p.platform")) & (F.col("e._level") == F.col("p.level"))
            & (F.col("e.received_at") >= F.col("p.effective_from"))
            & (F.col("p.effective_to").isNull() | (F.col("e.received_at") < F.col("p.effective_to"))))
    return e.join(p, cond, "inner").select("e.*", *[F.col(f"p.{c}") for c in (
        "config_version", "sample_interval_ms", "constrained_interval_ms", "constrained_networks",
        "uploads_during_calls", "daily_cap_bytes")]).drop("_level")


def event_violations(events: "DataFrame") -> "DataFrame":
    """Flags per event (with policy): dropped_field, fast_sampling, constrained_tracking (0/1)."""
    from pyspark.sql import functions as F

    sampled = (F.col("event_type") == "call_end") & (F.col("quality_samples") > 0) & F.col("duration_ms").isNotNull()
    interval_ms = F.col("duration_ms") / F.col("quality_samples")
    constrained = F.coalesce(F.array_contains("constrained_networks", F.col("network_type")), F.lit(False))
    flag = lambda c: F.when(c, 1).otherwise(0)  # noqa: E731
    return (events
            .withColumn("dropped_field", flag(F.col("dropped_fields").isNotNull()))
            .withColumn("fast_sampling", flag(sampled & ~constrained & (interval_ms < F.col("sample_interval_ms"))))
            .withColumn("constrained_tracking", flag(sampled & constrained & (interval_ms < F.col("constrained_interval_ms")))))


def device_batches(events: "DataFrame") -> "DataFrame":
    """One row per (device, batch, landing object): the batch's send time (device clock) and whether its policy
    allows uploads during calls."""
    from pyspark.sql import functions as F

    return events.groupBy("device_pseudonym", "batch_id", "object_key").agg(
        F.min("sent_at_device").alias("sent_at_device"), F.bool_or("uploads_during_calls").alias("allowed"))


def uploads_during_calls(events: "DataFrame", batches: "DataFrame") -> "DataFrame":
    """(device_pseudonym, batches_during_calls): batches (`device_batches`) whose send time falls strictly inside one
    of the device's calls (call_start .. call_end, device clock), counted where their policy does not allow it."""
    from pyspark.sql import functions as F

    calls = (events.where(F.col("event_type").isin("call_start", "call_end"))
             .groupBy("device_pseudonym", "call_id")
             .agg(F.min(F.when(F.col("event_type") == "call_start", F.col("event_ts_device"))).alias("call_start"),
                  F.max(F.when(F.col("event_type") == "call_end", F.col("event_ts_device"))).alias("call_end"))
             .where(F.col("call_start").isNotNull() & F.col("call_end").isNotNull()))
    b, c = batches.where(~F.col("allowed")).alias("b"), calls.alias("c")
    during = b.join(c, (F.col("b.device_pseudonym") == F.col("c.device_pseudonym"))
                    & (F.col("c.call_start") < F.col("b.sent_at_device")) & (F.col("b.sent_at_device") < F.col("c.call_end")))
    return during.groupBy("b.device_pseudonym").agg(F.countDistinct("b.batch_id").alias("batches_during_calls"))


def device_bytes(batches: "DataFrame", objects: "DataFrame") -> "DataFrame":
    """(device_pseudonym, bytes_uploaded): sizes of the landing objects the device's accepted events came from
    (`device_batches`; retried uploads are objects of their own and count)."""
    from pyspark.sql import functions as F

    return (batches.select("object_key", "device_pseudonym").distinct()
            .join(objects.select("object_key", "size_bytes"), "object_key")
            .groupBy("device_pseudonym").agg(F.sum("size_bytes").alias("bytes_uploaded")))


def device_compliance(events: "DataFrame", objects: "DataFrame", *, policies: "DataFrame") -> "DataFrame":
    """One row per device: its platform, app version, most used carrier (ties: the smallest code), the
    configuration versions applied, counts per check, the day's bytes against its cap and total violations."""
    from pyspark.sql import functions as F

    flagged = event_violations(with_policy(events, policies=policies))
    carrier = F.coalesce(F.col("carrier_mccmnc"), F.lit(UNKNOWN))
    per_carrier = flagged.groupBy("device_pseudonym", carrier.alias("carrier")).agg(
        F.first("platform").alias("platform"),
        F.max("app_version").alias("app_version"),
        F.collect_set("config_version").alias("_versions"),
        F.count("*").alias("events"),
        F.sum("dropped_field").alias("dropped_field_events"),
        F.collect_set("dropped_fields").alias("_dropped"),
        F.sum("fast_sampling").alias("fast_sampling_calls"),
        F.sum("constrained_tracking").alias("constrained_tracking_calls"),
        F.max("daily_cap_bytes").alias("daily_cap_bytes"),
    )
    per_device = per_carrier.groupBy("device_pseudonym").agg(
        F.first("platform").alias("platform"),
        F.coalesce(F.max("app_version"), F.lit(UNKNOWN)).alias("app_version"),
        F.array_join(F.array_sort(F.array_distinct(F.flatten(F.collect_list("_versions")))), ",").alias("config_versions"),
        F.sum("events").alias("events"),
        F.sum("dropped_field_events").alias("dropped_field_events"),
        F.array_sort(F.array_distinct(F.flatten(F.transform(
            F.flatten(F.collect_list("_dropped")), lambda names: F.split(names, ","))))).alias("dropped_fields"),
        F.sum("fast_sampling_calls").alias("fast_sampling_calls"),
        F.sum("constrained_tracking_calls").alias("constrained_tracking_calls"),
        F.max("daily_cap_bytes").alias("daily_cap_bytes"),
        F.min(F.struct(-F.col("events"), F.col("carrier")))["carrier"].alias("carrier_mccmnc"),
    )
    batches = device_batches(flagged)
    out = (per_device
           .join(uploads_during_calls(flagged, batches), "device_pseudonym", "left")
           .join(device_bytes(batches, objects), "device_pseudonym", "left")
           .fillna(0, subset=["batches_during_calls", "bytes_uploaded"]))
    over = F.when(F.col("bytes_uploaded") > F.col("daily_cap_bytes"), 1).otherwise(0)
    return (out.withColumn("over_cap", over)
            .withColumn("violations", F.col("dropped_field_events") + F.col("fast_sampling_calls")
                        + F.col("constrained_tracking_calls") + F.col("batches_during_calls") + F.col("over_cap")))


def compliance_rows(devices: "DataFrame", *, compliance_date: date, run_id: str, computed_at: datetime) -> "DataFrame":
    """gold.telemetry_compliance rows: devices grouped by platform, app version and carrier, with the
    WORST_OFFENDERS devices of most violations (ties by pseudonym) as JSON."""
    from pyspark.sql import functions as F

    offender = F.struct(
        (-F.col("violations")).alias("rank"), F.col("device_pseudonym"), F.col("violations"),
        F.col("dropped_field_events"), F.col("fast_sampling_calls"), F.col("constrained_tracking_calls"),
        F.col("batches_during_calls").alias("uploads_during_calls"), F.col("bytes_uploaded"),
        F.col("over_cap").cast("boolean").alias("over_cap"))
    worst = F.slice(F.array_sort(F.collect_list(F.when(F.col("violations") > 0, offender))), 1, WORST_OFFENDERS)
    fields = ["device_pseudonym", "violations", "dropped_field_events", "fast_sampling_calls",
              "constrained_tracking_calls", "uploads_during_calls", "bytes_uploaded", "over_cap"]
    grouped = devices.groupBy("platform", "app_version", "carrier_mccmnc").agg(
        F.array_join(F.array_sort(F.array_distinct(F.flatten(F.collect_list(F.split("config_versions", ","))))), ",")
        .alias("config_versions"),
        F.count("*").alias("devices"),
        F.count(F.when(F.col("violations") > 0, 1)).alias("noncompliant_devices"),
        F.sum("events").alias("events"),
        F.sum("dropped_field_events").alias("dropped_field_events"),
        F.array_sort(F.array_distinct(F.flatten(F.collect_list("dropped_fields")))).alias("_dropped"),
        F.sum("fast_sampling_calls").alias("fast_sampling_calls"),
        F.sum("constrained_tracking_calls").alias("constrained_tracking_calls"),
        F.sum("batches_during_calls").alias("uploads_during_calls"),
        F.sum("over_cap").alias("devices_over_cap"),
        F.sum("bytes_uploaded").alias("bytes_uploaded"),
        F.max("bytes_uploaded").alias("max_device_bytes"),
        worst.alias("_worst"),
    )
    return (grouped
            .withColumn("dropped_fields", F.when(F.size("_dropped") > 0, F.array_join("_dropped", ",")))
            .withColumn("worst_offenders", F.when(F.size("_worst") > 0, F.to_json(F.transform(
                "_worst", lambda o: F.struct(*[o[f].alias(f) for f in fields])))))
            .withColumn("compliance_date", F.lit(compliance_date))
            .withColumn("run_id", F.lit(run_id))
            .withColumn("computed_at", F.lit(computed_at))
            .drop("_dropped", "_worst"))


# ----------------------------------------------------------------------------- run

@dataclass(frozen=True)
class ComplianceContext:
    settings: Settings
    upload_date: date
    sdk_config: SdkConfig
    run_id: str = field(default_factory=lambda: f"telemetry_compliance-{uuid.uuid4().hex[:12]}")
    dag_id: str | None = None
    dag_run_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "upload_date", date.fromordinal(self.upload_date.toordinal()))


@dataclass(frozen=True)
class ComplianceReport:
    upload_date: str
    config_versions: list[str]
    rows: int
    devices: int
    noncompliant_devices: int
    violations: dict[str, int]
    table_version: int | None
    seconds: float


def run(spark: "SparkSession", ctx: ComplianceContext) -> ComplianceReport:
    """Recompute gold.telemetry_compliance for ctx.upload_date (its partition is replaced)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from jobs.platform import lake, lineage

    settings = ctx.settings
    started = datetime.now(timezone.utc)
    t0 = time.monotonic()
    for spec in (BRONZE_CALL_EVENTS, BRONZE_INGESTED_OBJECTS, GOLD_TELEMETRY_COMPLIANCE):
        lake.ensure_table(spark, spec, settings)
    inputs = {s.name: lake.table_version(spark, s, settings) for s in (BRONZE_CALL_EVENTS, BRONZE_INGESTED_OBJECTS)}
    before = lake.table_version(spark, GOLD_TELEMETRY_COMPLIANCE, settings)
    day = ctx.upload_date
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    events = lake.read_table(spark, BRONZE_CALL_EVENTS, settings).where(
        (F.col("received_at") >= F.lit(start)) & (F.col("received_at") < F.lit(start + timedelta(days=1))))
    objects = lake.read_table(spark, BRONZE_INGESTED_OBJECTS, settings).where(F.col("upload_date") == F.lit(day))
    policies = spark.createDataFrame(policy_frame(ctx.sdk_config), POLICY_SCHEMA)
    devices = device_compliance(events, objects, policies=policies).persist(StorageLevel.MEMORY_AND_DISK)
    rows = compliance_rows(devices, compliance_date=day, run_id=ctx.run_id, computed_at=started) \
        .persist(StorageLevel.MEMORY_AND_DISK)
    lake.replace_partitions(spark, rows, GOLD_TELEMETRY_COMPLIANCE, settings, where=f"compliance_date = DATE'{day}'")
    totals = rows.agg(*[F.coalesce(F.sum(c), F.lit(0)).alias(c) for c in (
        "devices", "noncompliant_devices", "dropped_field_events", "fast_sampling_calls", "constrained_tracking_calls",
        "uploads_during_calls", "devices_over_cap")], F.count("*").alias("rows")).first()
    versions = sorted({v for r in rows.select("config_versions").distinct().collect() for v in r[0].split(",") if v})
    version = lake.table_version(spark, GOLD_TELEMETRY_COMPLIANCE, settings)
    rows.unpersist()
    devices.unpersist()
    violations = {k: int(totals[k]) for k in ("dropped_field_events", "fast_sampling_calls", "constrained_tracking_calls",
                                              "uploads_during_calls", "devices_over_cap")}
    report = ComplianceReport(
        upload_date=day.isoformat(), config_versions=versions, rows=int(totals["rows"]), devices=int(totals["devices"]),
        noncompliant_devices=int(totals["noncompliant_devices"]), violations=violations, table_version=version,
        seconds=round(time.monotonic() - t0, 1))
    # The configuration is an input too: which versions (and their published SHA-256) the day was judged by.
    config_inputs = {v: document_sha256(published_document(ctx.sdk_config.version(v))) for v in versions}
    lineage.record_run(spark, settings, lineage.LineageRecord(
        run_id=ctx.run_id, job="telemetry_compliance", dag_id=ctx.dag_id, dag_run_id=ctx.dag_run_id, logical_date=day,
        inputs=tuple(lineage.TableInput(table=name, version=v) for name, v in inputs.items()),
        outputs=(lineage.TableOutput(table=GOLD_TELEMETRY_COMPLIANCE.name, version_before=before, version_after=version),),
        metrics={"devices": report.devices, "noncompliant_devices": report.noncompliant_devices, **violations,
                 "sdk_config_sha256": config_inputs},
        rows_in=report.devices, rows_out=report.rows, started_at=started, finished_at=datetime.now(timezone.utc),
    ))
    return report


def report_json(report: ComplianceReport) -> str:
    return json.dumps(report.__dict__, indent=2, sort_keys=True)
