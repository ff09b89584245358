"""auth_ingest: the identity provider's auth log of a day (landing) -> bronze.auth_events, bronze.quarantine.

The log (`lake_layout.landing.auth_log_key`, gzip JSON Lines) names subscribers by raw MSISDN and devices by
raw id, with the client's IP. They are pseudonymized at the door exactly as bronze does for uploads (same keyed
HMAC, `jobs.platform.identifiers.pseudonymize`, active pseudonym key; IP truncated to /24 or /48), so logins join calls
on subscriber_pseudonym / device_pseudonym. A line that cannot be used (not JSON, a missing field, an invalid
MSISDN, IP, outcome or time) becomes a bronze.quarantine row (record_index = line index, reason
invalid_auth_record) and never a silent drop: lines read = events + quarantined. MERGE on (object_key,
line_index): reruns write nothing new. A day without an auth log ingests nothing (it is optional upstream).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any, Iterator

from jobs.platform.keys import KeyMaterial
from lake_layout.config import Settings
from lake_layout.landing import auth_log_key
from lake_layout.tables import BRONZE_AUTH_EVENTS, BRONZE_QUARANTINE

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

OUTCOMES = ("success", "failure")
REJECT_REASON = "invalid_auth_record"
_FIELDS = ("event_id", "ts", "msisdn", "device_id", "ip", "outcome")


def parse_auth_line(value: str) -> tuple[dict[str, Any] | None, str | None]:
    """(fields, None) for a usable line, else (None, detail). Details never echo identifiers."""
    import ipaddress

    from jobs.platform.identifiers import E164

    try:
        record = json.loads(value)
    except ValueError:
        return None, "not JSON"
    if not isinstance(record, dict):
        return None, "not a JSON object"
    for name in _FIELDS:
        if record.get(name) in (None, ""):
            return None, f"{name} is missing"
    if not isinstance(record["msisdn"], str) or not E164.match(record["msisdn"]):
        return None, "msisdn is not E.164"
    try:
        ipaddress.ip_address(record["ip"])
    except ValueError:
        return None, "ip is not an IP address"
    if record["outcome"] not in OUTCOMES:
        return None, f"outcome {str(record['outcome'])[:20]!r} not in {OUTCOMES}"
    try:
        ts = datetime.fromisoformat(str(record["ts"]).replace("Z", "+00:00"))
    except ValueError:
        return None, "ts is not ISO-8601"
    if ts.tzinfo is None:
        return None, "ts has no UTC offset"
    return {**record, "ts": ts.astimezone(timezone.utc)}, None


def auth_event_rows(lines: "DataFrame", *, keys: KeyMaterial, run_id: str) -> "DataFrame":
    """(object_key, line_index, value) -> bronze.auth_events columns plus reject_reason / reject_detail (null for
    a usable line; then the event columns are null). Arrow-vectorized (`mapInArrow`): JSON, IP parsing and HMAC
    per line have no Spark SQL equivalent, and raw identifiers never leave the worker that read them."""
    from pyspark.sql import types as T
    from pyspark.sql.pandas.types import to_arrow_schema

    from jobs.platform.identifiers import pseudonymize, truncate_ip

    fields = [T.StructField(f.name, f.dataType, True) for f in BRONZE_AUTH_EVENTS.spark_schema().fields]
    schema = T.StructType([*fields, T.StructField("reject_reason", T.StringType(), True),
                           T.StructField("reject_detail", T.StringType(), True)])
    arrow_schema = to_arrow_schema(schema, timezone="UTC")
    key_id, key = keys.pseudonym.active, keys.pseudonym.active_key

    def convert(batches: Iterator["pa.RecordBatch"]) -> Iterator["pa.RecordBatch"]:
        import pyarrow as pa

        for batch in batches:
            out: dict[str, list[Any]] = {name: [] for name in schema.fieldNames()}
            for object_key, index, value in zip(batch.column("object_key").to_pylist(),
                                                batch.column("line_index").to_pylist(),
                                                batch.column("value").to_pylist()):
                record, problem = parse_auth_line(value or "")
                row: dict[str, Any] = {"object_key": object_key, "line_index": index, "ingest_run_id": run_id}
                if record is None:
                    row.update(reject_reason=REJECT_REASON, reject_detail=problem)
                else:
                    row.update(
                        event_id=str(record["event_id"]), auth_ts=record["ts"], auth_date=record["ts"].date(),
                        subscriber_pseudonym=pseudonymize("msisdn", record["msisdn"], key),
                        device_pseudonym=pseudonymize("device", str(record["device_id"]), key),
                        pseudonym_key_id=key_id, ip_prefix=truncate_ip(record["ip"]),
                        country_code=record.get("country_code"), outcome=record["outcome"],
                        failure_reason=record.get("failure_reason"),
                    )
                for name in out:
                    out[name].append(row.get(name))
            yield pa.RecordBatch.from_pydict(out, schema=arrow_schema)

    return lines.select("object_key", "line_index", "value").mapInArrow(convert, schema)


@dataclass(frozen=True)
class AuthIngestReport:
    login_date: str
    object_key: str | None  # None: no auth log for the date
    lines: int
    events: int
    quarantined: int
    written: int
    seconds: float

    def __post_init__(self) -> None:
        if self.lines != self.events + self.quarantined:
            raise ValueError(f"lines {self.lines} != events {self.events} + quarantined {self.quarantined}")


def run(spark: "SparkSession", settings: Settings, keys: KeyMaterial, *, login_date: date,
        run_id: str | None = None) -> AuthIngestReport:
    """Ingest the auth log of `login_date` (if the landing bucket has one) into bronze.auth_events."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from jobs.platform import lake
    from jobs.platform.objectstore import list_keys, s3_client

    login_date = date(login_date.year, login_date.month, login_date.day)
    run_id = run_id or f"auth_ingest-{uuid.uuid4().hex[:12]}"
    t0 = time.monotonic()
    for spec in (BRONZE_AUTH_EVENTS, BRONZE_QUARANTINE):
        lake.ensure_table(spark, spec, settings)
    key = auth_log_key(login_date)
    client = s3_client(settings.object_store)
    if not any(k == key for k, _ in list_keys(client, settings.landing.bucket, key)):
        return AuthIngestReport(login_date.isoformat(), None, 0, 0, 0, 0, round(time.monotonic() - t0, 1))
    # One gzip object is one (unsplittable) partition, read in order: monotonically_increasing_id is the line index.
    lines = (spark.read.text(f"s3a://{settings.landing.bucket}/{key}")
             .withColumn("line_index", F.monotonically_increasing_id().cast("int"))
             .withColumn("object_key", F.lit(key)))
    rows = auth_event_rows(lines.where(F.length(F.trim("value")) > 0), keys=keys, run_id=run_id).persist(
        StorageLevel.MEMORY_AND_DISK)
    counts = rows.agg(F.count("*").alias("n"), F.count("reject_reason").alias("bad")).first()
    events = rows.where(F.col("reject_reason").isNull())
    written = events.join(lake.read_table(spark, BRONZE_AUTH_EVENTS, settings).select("object_key", "line_index"),
                          on=["object_key", "line_index"], how="left_anti").count()
    lake.merge_insert_new(spark, events, BRONZE_AUTH_EVENTS, settings, prune_on="auth_date")
    bad = rows.where(F.col("reject_reason").isNotNull()).select(
        "object_key", F.col("line_index").alias("record_index"), F.col("reject_reason").alias("reason"),
        F.col("reject_detail").alias("detail"), F.lit(1).cast("long").alias("records"),
        *[F.lit(None).cast(t).alias(c) for c, t in (("platform", "string"), ("schema_version", "int"),
                                                     ("batch_id", "string"), ("event_id", "string"))],
        F.lit(login_date).alias("upload_date"), F.lit(run_id).alias("ingest_run_id"))
    if int(counts["bad"]):
        lake.merge_insert_new(spark, bad, BRONZE_QUARANTINE, settings, prune_on="upload_date")
    rows.unpersist()
    return AuthIngestReport(login_date.isoformat(), key, int(counts["n"]), int(counts["n"]) - int(counts["bad"]),
                            int(counts["bad"]), written, round(time.monotonic() - t0, 1))
