"""reference_ingest: the subscriber directory's daily export -> reference.subscriber_consent.

The export (gzip JSON Lines, `lake_layout.landing.directory_export_key`) holds every consent state of
every subscriber with raw MSISDNs. They are pseudonymized with the same key as bronze in an
Arrow-vectorized pass, so silver can join consent to calls by subscriber pseudonym; the MSISDN is never
written. Malformed lines are counted with a reason (read = accepted + rejected), never dropped silently.
MERGE on (subscriber_pseudonym, effective_from): a rerun adds nothing.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Iterator

from jobs.keys import KeyMaterial
from lake_layout.config import Settings
from lake_layout.landing import directory_export_key
from lake_layout.tables import REFERENCE_SUBSCRIBER_CONSENT

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

RAW_SCHEMA = (
    "msisdn string, account_id string, department string, jurisdiction string, home_country string, "
    "subscriber_created_on string, account_created_on string, effective_from string, telemetry_level string, "
    "diagnostics_opt_out boolean"
)
REQUIRED = ("msisdn", "account_id", "jurisdiction", "home_country", "subscriber_created_on", "effective_from",
            "telemetry_level", "diagnostics_opt_out")


def parse_directory_lines(lines: "DataFrame") -> "DataFrame":
    """(value) JSON lines -> parsed columns plus `reject_reason` (null when the line is usable)."""
    from pyspark.sql import functions as F

    from jobs.bronze_ingest import E164

    parsed = lines.select(F.from_json("value", RAW_SCHEMA, {"mode": "PERMISSIVE"}).alias("r"), "value").select("r.*", "value")
    reason = F.when(F.get_json_object("value", "$").isNull(), F.lit("malformed_json"))
    for name in REQUIRED:
        reason = reason.when(F.col(name).isNull(), F.lit(f"missing_{name}"))
    reason = (
        reason.when(~F.col("msisdn").rlike(E164.pattern), F.lit("invalid_msisdn"))
        .when(~F.col("telemetry_level").isin("basic", "diagnostic"), F.lit("invalid_telemetry_level"))
        .when(F.to_timestamp("effective_from").isNull(), F.lit("invalid_effective_from"))
    )
    return parsed.withColumn("reject_reason", reason).drop("value")


def pseudonymize_subscribers(rows: "DataFrame", *, keys: KeyMaterial) -> "DataFrame":
    """Replaces msisdn with subscriber_pseudonym (keyed HMAC, the bronze key) in an Arrow pass."""
    from pyspark.sql import types as T

    key = keys.pseudonym.active_key
    out_schema = T.StructType([f for f in rows.schema.fields if f.name != "msisdn"]
                              + [T.StructField("subscriber_pseudonym", T.StringType(), False)])

    def convert(batches: Iterator["pa.RecordBatch"]) -> Iterator["pa.RecordBatch"]:
        import pyarrow as pa

        from jobs.bronze_ingest import pseudonymize

        for batch in batches:
            msisdns = batch.column("msisdn").to_pylist()
            kept = batch.drop_columns(["msisdn"])
            pseudonyms = pa.array([pseudonymize("msisdn", m, key) for m in msisdns], pa.string())
            yield kept.append_column("subscriber_pseudonym", pseudonyms)

    return rows.mapInArrow(convert, out_schema)


def consent_rows(accepted: "DataFrame", *, key_id: str, object_key: str) -> "DataFrame":
    from pyspark.sql import functions as F

    return accepted.select(
        "subscriber_pseudonym", F.lit(key_id).alias("pseudonym_key_id"), "account_id", "department", "jurisdiction",
        "home_country", F.to_date("subscriber_created_on").alias("subscriber_created_on"),
        F.coalesce(F.to_date("account_created_on"), F.to_date("subscriber_created_on")).alias("account_created_on"),
        F.to_timestamp("effective_from").alias("effective_from"), "telemetry_level", "diagnostics_opt_out",
        F.lit(object_key).alias("source_object_key"),
    )


def consent_in_force(consent: "DataFrame") -> "DataFrame":
    """Adds effective_to: the subscriber's next effective_from (null for the state in force now)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    return consent.withColumn(
        "effective_to", F.lead("effective_from").over(Window.partitionBy("subscriber_pseudonym").orderBy("effective_from")))


@dataclass(frozen=True)
class ReferenceReport:
    export_date: str
    object_key: str | None
    records_read: int
    records_accepted: int
    records_rejected: int
    rejected_by_reason: dict[str, int]
    records_new: int
    table_version: int | None
    seconds: float


def run(spark: "SparkSession", settings: Settings, keys: KeyMaterial, *, export_date: date) -> ReferenceReport:
    """Load the directory export of `export_date` (absent export: nothing to do, reported as such)."""
    from pyspark.sql import functions as F

    from jobs import lake, lineage
    from jobs.objectstore import list_keys, s3_client

    started = datetime.now(timezone.utc)
    t0 = time.monotonic()
    lake.ensure_table(spark, REFERENCE_SUBSCRIBER_CONSENT, settings)
    before = lake.table_version(spark, REFERENCE_SUBSCRIBER_CONSENT, settings)
    key = directory_export_key(export_date)
    present = any(k == key for k, _ in list_keys(s3_client(settings.object_store), settings.landing.bucket, key))
    if not present:
        return ReferenceReport(export_date.isoformat(), None, 0, 0, 0, {}, 0, before, round(time.monotonic() - t0, 1))

    lines = spark.read.text(f"s3a://{settings.landing.bucket}/{key}").where(F.length(F.trim("value")) > 0)
    parsed = parse_directory_lines(lines).cache()
    by_reason = {r["reject_reason"]: int(r["count"]) for r in parsed.groupBy("reject_reason").count().collect()}
    accepted_n = by_reason.pop(None, 0)
    rows = consent_rows(pseudonymize_subscribers(parsed.where(F.col("reject_reason").isNull()).drop("reject_reason"), keys=keys),
                        key_id=keys.pseudonym.active, object_key=key)
    existing = lake.read_table(spark, REFERENCE_SUBSCRIBER_CONSENT, settings).select("subscriber_pseudonym", "effective_from")
    new = rows.join(existing, on=["subscriber_pseudonym", "effective_from"], how="left_anti").cache()
    n_new = new.count()
    if n_new:
        lake.merge_insert_new(spark, new, REFERENCE_SUBSCRIBER_CONSENT, settings)
    parsed.unpersist()
    new.unpersist()
    version = lake.table_version(spark, REFERENCE_SUBSCRIBER_CONSENT, settings)
    report = ReferenceReport(
        export_date=export_date.isoformat(), object_key=key, records_read=accepted_n + sum(by_reason.values()),
        records_accepted=accepted_n, records_rejected=sum(by_reason.values()), rejected_by_reason=dict(sorted(by_reason.items())),
        records_new=n_new, table_version=version, seconds=round(time.monotonic() - t0, 1),
    )
    if n_new:
        sha = _object_sha256(settings, key)
        lineage.record_run(spark, settings, lineage.LineageRecord(
            run_id=f"reference_ingest:{export_date}:{uuid.uuid4().hex[:8]}", job="reference_ingest", dag_id=None, dag_run_id=None,
            logical_date=export_date,
            inputs=(lineage.LandingInput(uri=f"s3a://{settings.landing.bucket}/{key}", objects=((key, sha),)),),
            outputs=(lineage.TableOutput(REFERENCE_SUBSCRIBER_CONSENT.name, before, version),),
            metrics={k: v for k, v in report.__dict__.items() if k not in ("seconds", "table_version")},
            rows_in=report.records_read, rows_out=n_new, started_at=started, finished_at=datetime.now(timezone.utc),
        ))
    return report


def _object_sha256(settings: Settings, key: str) -> str:
    import hashlib

    from jobs.objectstore import s3_client

    body = s3_client(settings.object_store).get_object(Bucket=settings.landing.bucket, Key=key)["Body"].read()
    return hashlib.sha256(body).hexdigest()

