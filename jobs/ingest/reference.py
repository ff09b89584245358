"""reference_ingest: the subscriber directory's daily export -> reference.subscriber_consent.

The export (`lake_layout.landing.directory_export_key`, gzip JSON Lines in the landing bucket) holds every
consent state of every subscriber, with raw MSISDNs: it is the CRM's extract. The job

1. `parse_directory_lines`     one JSON object per line -> typed fields + `reject_reason` (null = usable);
2. `pseudonymize_subscribers`  msisdn -> subscriber_pseudonym with bronze's keyed HMAC (same key, so
                               silver joins consent to calls), Arrow-vectorized; the msisdn column is dropped
                               here, before anything is cached or written;
3. `to_consent_rows`           exactly the columns reference.subscriber_consent declares;

and MERGEs on (subscriber_pseudonym, effective_from): a rerun, or tomorrow's export repeating today's
history, adds nothing. Malformed lines are counted by reason in the report (read = accepted + rejected),
never dropped silently; no reason or detail echoes a line's content. A date without an export is not an
error: the report says so with `object_key=None`.

`consent_in_force` turns the history into validity intervals for silver's as-of join.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from jobs.platform.identifiers import E164
from jobs.platform.keys import KeyMaterial
from lake_layout.config import Settings
from lake_layout.landing import DIRECTORY_PREFIX, directory_export_key
from lake_layout.tables import REFERENCE_SUBSCRIBER_CONSENT

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import Column, DataFrame, SparkSession

# Every field is read as a string (a JSON number or boolean arrives as its JSON text), so a value of the
# wrong type is reported as invalid_<field> instead of silently nulling the whole line.
EXPORT_FIELDS = (
    "msisdn", "account_id", "department", "jurisdiction", "home_country", "subscriber_created_on",
    "account_created_on", "effective_from", "telemetry_level", "diagnostics_opt_out",
)
REQUIRED_FIELDS = (
    "msisdn", "account_id", "jurisdiction", "home_country", "subscriber_created_on", "effective_from",
    "telemetry_level", "diagnostics_opt_out",
)  # department is B2B only; account_created_on defaults to subscriber_created_on (consumers)
JURISDICTIONS = ("EU", "US-CA", "US-other", "other")
TELEMETRY_LEVELS = ("basic", "diagnostic")
_CORRUPT = "_corrupt_record"
_MERGE_KEYS = REFERENCE_SUBSCRIBER_CONSENT.merge_keys  # (subscriber_pseudonym, effective_from)
_ISO_DATE = "yyyy-MM-dd"
_EXPLICIT_OFFSET = r"(Z|[+-]\d{2}:?\d{2})$"  # effective_from must say it is UTC (or its offset)


# ----------------------------------------------------------------------------- transforms

def parse_directory_lines(lines: DataFrame) -> DataFrame:
    """(value) export lines -> the export's fields, typed, plus `reject_reason` (null when the line is usable).

    Output columns: msisdn, account_id, department, jurisdiction, home_country (strings),
    subscriber_created_on, account_created_on (dates; the latter defaults to the former), effective_from
    (timestamp), telemetry_level (string), diagnostics_opt_out (boolean), reject_reason. Reasons, first match
    wins: malformed_json (not a JSON object), missing_<field> (absent or null), invalid_<field> (msisdn not
    E.164, unknown jurisdiction / telemetry_level, not a boolean, not an ISO date, effective_from not an
    ISO-8601 timestamp with Z or an offset). The typed value of a rejected line's field may be null.
    """
    from pyspark.sql import functions as F

    schema = ", ".join(f"{name} string" for name in (*EXPORT_FIELDS, _CORRUPT))
    parsed = lines.select(
        F.from_json("value", schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT}).alias("r")
    ).select("r.*")

    opt_out = F.lower(F.trim("diagnostics_opt_out"))
    subscriber_created = F.try_to_date("subscriber_created_on", _ISO_DATE)
    account_created = F.try_to_date("account_created_on", _ISO_DATE)
    effective_from = F.when(F.col("effective_from").rlike(_EXPLICIT_OFFSET), F.try_to_timestamp("effective_from"))

    reason: Column = F.when(F.col(_CORRUPT).isNotNull(), F.lit("malformed_json"))
    for name in REQUIRED_FIELDS:
        reason = reason.when(F.col(name).isNull() | (F.trim(name) == ""), F.lit(f"missing_{name}"))
    reason = (
        reason.when(~F.col("msisdn").rlike(E164.pattern), F.lit("invalid_msisdn"))
        .when(~F.col("jurisdiction").isin(*JURISDICTIONS), F.lit("invalid_jurisdiction"))
        .when(~F.col("telemetry_level").isin(*TELEMETRY_LEVELS), F.lit("invalid_telemetry_level"))
        .when(~opt_out.isin("true", "false"), F.lit("invalid_diagnostics_opt_out"))
        .when(subscriber_created.isNull(), F.lit("invalid_subscriber_created_on"))
        .when(F.col("account_created_on").isNotNull() & account_created.isNull(), F.lit("invalid_account_created_on"))
        .when(effective_from.isNull(), F.lit("invalid_effective_from"))
    )
    return parsed.select(
        "msisdn", "account_id", "department", "jurisdiction", "home_country",
        subscriber_created.alias("subscriber_created_on"),
        F.coalesce(account_created, subscriber_created).alias("account_created_on"),
        effective_from.alias("effective_from"), "telemetry_level",
        (opt_out == "true").alias("diagnostics_opt_out"),
        reason.alias("reject_reason"),
    )


def pseudonymize_subscribers(rows: DataFrame, *, keys: KeyMaterial) -> DataFrame:
    """Replaces `msisdn` with `subscriber_pseudonym`: bronze's keyed HMAC under the active pseudonym key.

    Arrow-vectorized (`mapInArrow`): HMAC has no Spark SQL equivalent. Rows with a `reject_reason` get a
    null pseudonym (their msisdn may not be a number at all). The output has no msisdn column.
    """
    from pyspark.sql import types as T

    key = keys.pseudonym.active_key
    kept = [f for f in rows.schema.fields if f.name != "msisdn"]
    out_schema = T.StructType([*kept, T.StructField("subscriber_pseudonym", T.StringType(), True)])

    def convert(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        from jobs.platform.identifiers import pseudonymize

        for batch in batches:
            msisdns = batch.column("msisdn").to_pylist()
            rejected = batch.column("reject_reason").to_pylist()
            pseudonyms = pa.array(
                [pseudonymize("msisdn", m, key) if m is not None and r is None else None
                 for m, r in zip(msisdns, rejected)],
                pa.string(),
            )
            yield batch.drop_columns(["msisdn"]).append_column("subscriber_pseudonym", pseudonyms)

    return rows.mapInArrow(convert, out_schema)


def to_consent_rows(accepted: DataFrame, *, key_id: str, object_key: str) -> DataFrame:
    """Accepted, pseudonymized lines -> reference.subscriber_consent rows, one per (subscriber, effective_from)."""
    from pyspark.sql import functions as F

    from jobs.platform import lake

    rows = accepted.withColumns({"pseudonym_key_id": F.lit(key_id), "source_object_key": F.lit(object_key)})
    # A line the export repeats is one consent state, not two.
    return lake.conform(rows, REFERENCE_SUBSCRIBER_CONSENT).dropDuplicates(list(_MERGE_KEYS))


def consent_in_force(consent: DataFrame) -> DataFrame:
    """Adds `effective_to`: the subscriber's next effective_from, null for the state in force now.

    A state is in force for event time t when effective_from <= t and (effective_to is null or t < effective_to).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    history = Window.partitionBy("subscriber_pseudonym").orderBy("effective_from")
    return consent.withColumn("effective_to", F.lead("effective_from").over(history))


# ----------------------------------------------------------------------------- run

@dataclass(frozen=True)
class ReferenceReport:
    export_date: str
    object_key: str | None  # None: there was no export for the date (nothing read, nothing written)
    records_read: int  # non-blank lines of the export
    records_accepted: int
    records_rejected: int
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    records_written: int = 0  # new consent states; a rerun writes 0
    table_version: int | None = None
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.records_read != self.records_accepted + self.records_rejected:
            raise ValueError(f"records_read {self.records_read} != accepted {self.records_accepted} "
                             f"+ rejected {self.records_rejected}")
        if self.records_rejected != sum(self.rejected_by_reason.values()):
            raise ValueError(f"records_rejected {self.records_rejected} != sum of rejected_by_reason "
                             f"{self.rejected_by_reason}")


def export_uri(settings: Settings, export_date: date, *, prefix: str = DIRECTORY_PREFIX) -> str:
    return f"s3a://{settings.landing.bucket}/{directory_export_key(export_date, prefix=prefix)}"


def _export_exists(settings: Settings, key: str) -> bool:
    from jobs.platform.objectstore import list_keys, s3_client

    return any(k == key for k, _ in list_keys(s3_client(settings.object_store), settings.landing.bucket, key))


def run(
    spark: SparkSession, settings: Settings, keys: KeyMaterial, *, export_date: date,
    directory_prefix: str = DIRECTORY_PREFIX,
) -> ReferenceReport:
    """Load the directory export of `export_date` into reference.subscriber_consent (idempotent)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from jobs.platform import lake

    export_date = date(export_date.year, export_date.month, export_date.day)  # Airflow hands over pendulum dates
    started = datetime.now(UTC)
    t0 = time.monotonic()
    lake.ensure_table(spark, REFERENCE_SUBSCRIBER_CONSENT, settings)
    before = lake.table_version(spark, REFERENCE_SUBSCRIBER_CONSENT, settings)
    key = directory_export_key(export_date, prefix=directory_prefix)
    if not _export_exists(settings, key):
        return ReferenceReport(export_date.isoformat(), None, 0, 0, 0, {}, 0, before, round(time.monotonic() - t0, 1))

    uri = export_uri(settings, export_date, prefix=directory_prefix)
    lines = spark.read.text(uri).where(F.length(F.trim("value")) > 0)
    # Cached only after pseudonymization: no raw MSISDN is ever held by (or spilled from) the block manager.
    parsed = (
        parse_directory_lines(lines).transform(pseudonymize_subscribers, keys=keys)
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    by_reason = {r["reject_reason"]: int(r["count"]) for r in parsed.groupBy("reject_reason").count().collect()}
    accepted = by_reason.pop(None, 0)
    rows = to_consent_rows(parsed.where(F.col("reject_reason").isNull()), key_id=keys.pseudonym.active, object_key=key)
    existing = lake.read_table(spark, REFERENCE_SUBSCRIBER_CONSENT, settings).select(*_MERGE_KEYS)
    new = rows.join(existing, on=list(_MERGE_KEYS), how="left_anti").persist(StorageLevel.MEMORY_AND_DISK)
    written = new.count()
    if written:
        lake.merge_insert_new(spark, new, REFERENCE_SUBSCRIBER_CONSENT, settings)
    new.unpersist()
    parsed.unpersist()

    rejected = sum(by_reason.values())
    report = ReferenceReport(
        export_date=export_date.isoformat(), object_key=key, records_read=accepted + rejected,
        records_accepted=accepted, records_rejected=rejected, rejected_by_reason=dict(sorted(by_reason.items())),
        records_written=written, table_version=lake.table_version(spark, REFERENCE_SUBSCRIBER_CONSENT, settings),
        seconds=round(time.monotonic() - t0, 1),
    )
    if written:
        _record_lineage(spark, settings, report, key=key, before=before, started=started, uri=uri)
    return report


def _record_lineage(
    spark: SparkSession, settings: Settings, report: ReferenceReport, *, key: str, before: int | None,
    started: datetime, uri: str,
) -> None:
    from jobs.platform import lineage
    from jobs.platform.objectstore import s3_client

    body = s3_client(settings.object_store).get_object(Bucket=settings.landing.bucket, Key=key)["Body"].read()
    lineage.record_run(spark, settings, lineage.LineageRecord(
        run_id=f"reference_ingest:{report.export_date}:{uuid.uuid4().hex[:8]}", job="reference_ingest", dag_id=None,
        dag_run_id=None, logical_date=date.fromisoformat(report.export_date),
        inputs=(lineage.LandingInput(uri=uri, objects=((key, hashlib.sha256(body).hexdigest()),)),),
        outputs=(lineage.TableOutput(REFERENCE_SUBSCRIBER_CONSENT.name, before, report.table_version),),
        metrics={k: v for k, v in report.__dict__.items() if k not in ("seconds", "table_version")},
        rows_in=report.records_read, rows_out=report.records_written, started_at=started,
        finished_at=datetime.now(UTC),
    ))
