"""Abuse at the door: per-device upload rate and attestation nonce replay, checked by bronze (jobs.ingest.bronze).

Both checks look across objects, so they run on the decoded rows (jobs.ingest.bronze.decode_uploads) after the
per-object pass, in Spark built-ins (window functions, joins). Only authentic uploads that got some record
accepted are judged (an object already wholly quarantined keeps its reason); the device is its pseudonym.

* replayed_nonce: the upload's attestation nonce was used by the same device for another batch, earlier in this
  run (ordered by receive time, then object key) or in an earlier run (`seen`: bronze.ingested_objects rows with
  a nonce). A retry of the same batch (same batch_id, same verdict) is not a replay.
* upload_rate_exceeded: per device and receive hour, the uploads after the first `max_per_hour` (same order;
  replayed ones not counted).

* device_quarantined: the device is held in security.device_quarantine (the security detectors put it there,
  `voiplake quarantine release` lets it out); `quarantined_devices` is the list bronze checks each upload against.

A flagged object becomes one object-level quarantine row (record_index -1) accounting for all its records, and
its manifest row says quarantined: records_received = records_accepted + records_quarantined still holds.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from lake_layout.config import Settings
from lake_layout.tables import SECURITY_DEVICE_QUARANTINE

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# The kinds of row bronze's decoding pass emits (bronze.decoded_schema's row_kind), shared with the door's verdicts.
ROW_EVENT, ROW_QUARANTINE, ROW_OBJECT = "event", "quarantine", "object"

REPLAYED_NONCE = "replayed_nonce"
UPLOAD_RATE_EXCEEDED = "upload_rate_exceeded"
DOOR_REASONS = (REPLAYED_NONCE, UPLOAD_RATE_EXCEEDED)


def door_verdicts(objects: "DataFrame", *, seen: "DataFrame | None", max_per_hour: int) -> "DataFrame":
    """(object_key, device_pseudonym, environment, reason, detail) for the objects to quarantine at the door.

    `objects`: manifest rows (object_key, device_pseudonym, batch_id, attestation_nonce, received_at,
    records_accepted, environment). `seen`: (device_pseudonym, batch_id, attestation_nonce) of earlier runs, or None.
    Deterministic: the order within a device is (received_at, object_key)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if max_per_hour < 1:
        raise ValueError(f"max_per_hour must be >= 1, got {max_per_hour}")
    judged = objects.where(F.col("device_pseudonym").isNotNull() & (F.col("records_accepted") > 0)).select(
        "object_key", "device_pseudonym", "batch_id", "attestation_nonce", "received_at", "environment")
    order = ("received_at", "object_key")
    first_batch = F.first("batch_id").over(
        Window.partitionBy("device_pseudonym", "attestation_nonce").orderBy(*order))
    replay_in_run = F.col("attestation_nonce").isNotNull() & (first_batch != F.col("batch_id"))
    judged = judged.withColumn("_replay", replay_in_run)
    if seen is not None:
        earlier = (seen.where(F.col("attestation_nonce").isNotNull() & F.col("device_pseudonym").isNotNull())
                   .select("device_pseudonym", "attestation_nonce", F.col("batch_id").alias("_seen_batch"))
                   .groupBy("device_pseudonym", "attestation_nonce")
                   .agg(F.min("_seen_batch").alias("_seen_min"), F.max("_seen_batch").alias("_seen_max")))
        judged = (judged.join(earlier, on=["device_pseudonym", "attestation_nonce"], how="left")
                  .withColumn("_replay", F.col("_replay") | F.coalesce(
                      (F.col("_seen_min") != F.col("batch_id")) | (F.col("_seen_max") != F.col("batch_id")),
                      F.lit(False))))
    rank = F.row_number().over(Window.partitionBy("device_pseudonym", F.date_trunc("hour", "received_at"))
                               .orderBy(*order))
    counted = judged.where(~F.col("_replay")).withColumn("_rank", rank).where(F.col("_rank") > F.lit(max_per_hour))
    replays = judged.where(F.col("_replay")).select(
        "object_key", "device_pseudonym", "environment", F.lit(REPLAYED_NONCE).alias("reason"),
        F.lit("attestation nonce already used by this device for another batch").alias("detail"))
    over = counted.select(
        "object_key", "device_pseudonym", "environment", F.lit(UPLOAD_RATE_EXCEEDED).alias("reason"),
        F.concat(F.lit("upload "), F.col("_rank").cast("string"),
                 F.lit(f" of the device in this receive hour; max {max_per_hour}")).alias("detail"))
    return replays.unionByName(over)


def apply_door(decoded: "DataFrame", verdicts: "DataFrame") -> "DataFrame":
    """`decoded` rows (bronze_ingest.decoded_schema) with each object of `verdicts` turned into one object-level
    quarantine row plus its manifest row marked quarantined; its events and record-level quarantine rows dropped."""
    from pyspark.sql import functions as F

    flags = F.broadcast(verdicts.select("object_key", F.col("reason").alias("_door_reason"),
                                        F.col("detail").alias("_door_detail")))
    tagged = decoded.join(flags, on="object_key", how="left")
    hit = F.col("_door_reason").isNotNull()
    is_object = F.col("row_kind") == F.lit(ROW_OBJECT)
    kept = tagged.where(~hit | is_object).withColumns({
        "status": F.when(hit, F.lit("quarantined")).otherwise(F.col("status")),
        "records_accepted": F.when(hit, F.lit(0).cast("long")).otherwise(F.col("records_accepted")),
        "records_quarantined": F.when(hit, F.col("records_received")).otherwise(F.col("records_quarantined")),
    })
    held = tagged.where(hit & is_object).withColumns({
        "row_kind": F.lit(ROW_QUARANTINE), "record_index": F.lit(-1), "reason": F.col("_door_reason"),
        "detail": F.col("_door_detail"), "records": F.col("records_received"),
    })
    return kept.unionByName(held).select(*decoded.columns)


def without_flagged(rows: "DataFrame", verdicts: "DataFrame") -> "DataFrame":
    """`rows` of the objects `verdicts` did not flag: for events, what `apply_door` keeps of them, in one
    anti-join on the object key (no union: bronze_ingest reads a day's events through it once)."""
    from pyspark.sql import functions as F

    flagged = F.broadcast(verdicts.select("object_key"))
    return rows.join(flagged, on="object_key", how="left_anti").select(*rows.columns)


def spoofing_by_device(verdicts: "DataFrame", *, top: int = 10) -> dict[str, int]:
    """Device pseudonym -> uploads quarantined at the door, the `top` devices (most first, then by pseudonym)."""
    from pyspark.sql import functions as F

    rows = (verdicts.groupBy("device_pseudonym").count()
            .orderBy(F.col("count").desc(), F.col("device_pseudonym")).limit(top).collect())
    return {r["device_pseudonym"]: int(r["count"]) for r in rows}


def active_quarantine(quarantine: "DataFrame", *, now: datetime) -> "DataFrame":
    """Quarantine rows in force at `now`: not released and not expired."""
    from pyspark.sql import functions as F

    return quarantine.where(F.col("released_at").isNull() & (F.col("expires_at") > F.lit(now)))


def quarantined_devices(spark: "SparkSession", settings: Settings, *, now: datetime) -> frozenset[str]:
    """Device pseudonyms held in security.device_quarantine at `now` (empty when the table does not exist).
    Bounded by the quarantine list, which security operations keep short."""
    from jobs.platform import lake

    if not lake.table_exists(spark, SECURITY_DEVICE_QUARANTINE, settings):
        return frozenset()
    held = active_quarantine(lake.read_table(spark, SECURITY_DEVICE_QUARANTINE, settings), now=now)
    return frozenset(r[0] for r in held.select("device_pseudonym").distinct().collect())
