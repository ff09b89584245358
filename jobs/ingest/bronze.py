"""bronze_ingest: landing objects of one upload date -> bronze.call_events, bronze.quarantine, manifest.

Every landing object not yet in `bronze.ingested_objects` is verified (gzip integrity, payload
checksum, device signature), decoded, validated and pseudonymized in one Arrow-vectorized pass
(`decode_uploads`), so raw identifiers never leave the Python worker that decoded them:

* IMEI is dropped; MSISDN, callee number and device id become keyed HMAC-SHA256 pseudonyms;
* fields the central SDK configuration in force at receipt (lake_layout/sdk_config.toml) does not allow the
  upload's platform and telemetry level are dropped and named in `dropped_fields` (jobs.telemetry.compliance
  counts them per client build);
* IPs are truncated to /24 (IPv4) or /48 (IPv6) and coordinates rounded to 2 decimals (~1 km); the
  originals survive only envelope-encrypted (jobs.platform.envelope) in the restricted columns `ip_encrypted` and
  `location_encrypted`, under a fresh data key per run whose wrapped form goes to `security.data_keys`
  before any cell it encrypted is written.

Accounting per object: records_received = records_accepted + records_quarantined. An object that
cannot be trusted as a whole (corrupt, tampered, wrong schema) is one quarantine row that accounts
for all its records.

Writes MERGE on the registry's keys, and the manifest is written last: a rerun after success
ingests nothing; a rerun after a crash completes the work without duplicates.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from jobs.ingest.destinations import destination_class
from jobs.ingest.door import ROW_EVENT, ROW_OBJECT, ROW_QUARANTINE, apply_door, door_verdicts, quarantined_devices, spoofing_by_device, without_flagged
from jobs.platform.envelope import DataKey, KeyProvider, encrypt_cell, register_data_key
from jobs.platform.identifiers import E164, _is_ip, coarse_coordinate, pseudonymize, truncate_ip
from jobs.platform.keys import KeyMaterial
from jobs.telemetry.attestation import AttestationPolicy, check_attestation
from jobs.telemetry.codec import EVENT_TYPES, NETWORK_TYPES, DecodedUpload, Header, UploadRejected, decode_object
from lake_layout.config import Settings
from lake_layout.environments import PRODUCTION, TEST, NonProductionRegistry
from lake_layout.landing import parse_landing_key, upload_date_prefix
from lake_layout.sdk_config import SdkConfig
from lake_layout.tables import (
    AUDIT_LINEAGE,
    BRONZE_CALL_EVENTS,
    BRONZE_INGESTED_OBJECTS,
    BRONZE_QUARANTINE,
    SECURITY_DATA_KEYS,
    SECURITY_DEVICE_QUARANTINE,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

MAX_CALL_MS = 24 * 3600 * 1000
DEVICE_QUARANTINED = "device_quarantined"  # reason for uploads of a device in security.device_quarantine


def encrypt_restricted(aead: Any, dek_id: str, event: dict[str, Any]) -> dict[str, Any]:
    """ip_encrypted, location_encrypted (null where the event has no IP / no location) and encryption_key_id
    (the DEK id, null if nothing was encrypted): original values under the run's data key, bound to the event id."""
    event_id = event["event_id"]
    src, dst = event.get("src_ip"), event.get("dst_ip")
    lat, lon = event.get("latitude"), event.get("longitude")
    ips = encrypt_cell(aead, dek_id, column="ip_encrypted", row_id=event_id, payload={"src_ip": src, "dst_ip": dst}) \
        if (src or dst) else None
    location = encrypt_cell(aead, dek_id, column="location_encrypted", row_id=event_id,
                            payload={"latitude": lat, "longitude": lon}) if (lat is not None or lon is not None) else None
    return {"ip_encrypted": ips, "location_encrypted": location,
            "encryption_key_id": dek_id if (ips is not None or location is not None) else None}


# ----------------------------------------------------------------------------- validation

def validate_event(event: dict[str, Any], header: Header) -> tuple[str, str] | None:
    """(reason, detail) if the event cannot be accepted, else None. Details never echo identifiers."""
    if event.get("_malformed"):
        return "malformed_record", "event is not an object"
    for name in ("event_id", "call_id", "event_type", "event_ms", "msisdn"):
        if event.get(name) in (None, ""):
            return "missing_required_field", f"{name} is missing"
    if event["event_type"] not in EVENT_TYPES.values():
        return "invalid_event_type", f"event_type {str(event['event_type'])[:20]!r}"
    if not isinstance(event["msisdn"], str) or not E164.match(event["msisdn"]):
        return "invalid_msisdn", "msisdn is not E.164"
    callee = event.get("callee_msisdn")
    if callee is not None and (not isinstance(callee, str) or not E164.match(callee)):
        return "invalid_msisdn", "callee_msisdn is not E.164"
    for name in ("src_ip", "dst_ip"):
        if event.get(name) is not None and not _is_ip(event[name]):
            return "invalid_ip", f"{name} is not an IP address"
    if not isinstance(event["event_ms"], int) or not (0 < event["event_ms"] < 4102444800000):
        return "invalid_timestamp", "event_ms out of range"
    if event["event_type"] == "call_end":
        duration = event.get("duration_ms")
        if not isinstance(duration, int) or not 0 <= duration <= MAX_CALL_MS:
            return "invalid_duration", f"duration_ms {duration!r} outside 0..{MAX_CALL_MS}"
    network = event.get("network_type")
    if network is not None and network not in NETWORK_TYPES.values():
        return "invalid_value", f"network_type {str(network)[:20]!r}"
    lat, lon = event.get("latitude"), event.get("longitude")
    if lat is not None and not -90 <= lat <= 90 or lon is not None and not -180 <= lon <= 180:
        return "invalid_location", "latitude/longitude out of range"
    if header.schema_version >= 2 and event.get("telemetry_level") not in ("basic", "diagnostic"):
        return "invalid_value", "schema 2 requires telemetry_level basic|diagnostic"
    return None


def disallowed_fields(event: dict[str, Any], header: Header, allowed: dict[str, frozenset[str]] | None) -> tuple[str, ...]:
    """Fields the event carries that the SDK configuration in force does not allow its platform and telemetry
    level (`allowed`: level -> allowed field names for the upload's platform; events without a level, schema 1,
    are held to basic). Sorted; empty when `allowed` is None (no configuration in force)."""
    if allowed is None:
        return ()
    level = event.get("telemetry_level") if event.get("telemetry_level") in allowed else "basic"
    return tuple(sorted(k for k, v in event.items() if v is not None and k not in allowed[level]))


def clock_offset_ms(header: Header, received_at_ms: int) -> int:
    """Server minus device clock: from the time-sync sample with the lowest RTT, else receive - send."""
    if header.time_sync:
        device_ms, server_ms, rtt_ms = min(header.time_sync, key=lambda s: s[2])
        return int(server_ms - device_ms - rtt_ms // 2)
    return int(received_at_ms - header.sent_at_ms)


# ----------------------------------------------------------------------------- the decode transform

def decoded_schema() -> "StructType":
    """Union of the three outputs' columns (all nullable) plus `row_kind` and `environment` (production | test:
    which lake the row is written to, lake_layout.environments)."""
    from pyspark.sql import types as T

    fields: dict[str, T.StructField] = {"row_kind": T.StructField("row_kind", T.StringType(), False),
                                        "environment": T.StructField("environment", T.StringType(), False)}
    for spec in (BRONZE_CALL_EVENTS, BRONZE_QUARANTINE, BRONZE_INGESTED_OBJECTS):
        for f in spec.spark_schema().fields:
            if f.name in fields:
                if fields[f.name].dataType != f.dataType:
                    raise TypeError(f"column {f.name} has two types in bronze outputs")
                continue
            fields[f.name] = T.StructField(f.name, f.dataType, True)
    return T.StructType(list(fields.values()))


def _ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def decode_object_rows(
    object_key: str, blob: bytes, *, keys: KeyMaterial, run_id: str, aead: Any, dek_id: str, now: datetime,
    quarantined_devices: frozenset[str] = frozenset(), sdk_config: SdkConfig | None = None,
    attestation: AttestationPolicy | None = None, registry: NonProductionRegistry | None = None,
) -> Iterator[dict[str, Any]]:
    """All output rows for one landing object: events or quarantine rows, then one object row.

    Every row carries the object's `environment`: test when `registry` finds a test build, device or tenant in it
    (lake_layout.environments), else production; an object that cannot be decoded is judged on its header if it
    has one.

    With `sdk_config`, fields outside the allowed set of the configuration in force when the collector received
    the object are dropped (nulled) from accepted events and named in their `dropped_fields`.

    An authentic upload of a device in `quarantined_devices` (device pseudonyms, security.device_quarantine) is
    one object-level quarantine row, reason device_quarantined, accounting for all its records. So is, with an
    `attestation` policy, an authentic upload without a valid, fresh attestation verdict where the policy requires
    one (reasons: jobs.telemetry.attestation.ATTESTATION_REASONS)."""
    parsed = parse_landing_key(object_key)
    upload_day = parsed.upload_date if parsed else now.date()
    received_ms = parsed.received_at_ms if parsed else int(now.timestamp() * 1000)
    sha = hashlib.sha256(blob).hexdigest()
    encoding = parsed.encoding if parsed else "unknown"
    common_q = {"row_kind": ROW_QUARANTINE, "object_key": object_key, "upload_date": upload_day, "ingest_run_id": run_id,
                "environment": PRODUCTION}

    def device_key(device_id: str, key_id: str) -> bytes | None:
        return keys.device_key(device_id, key_id) if key_id in keys.device_master.keys else None

    accepted = quarantined = 0
    door: dict[str, Any] = {"received_at": _ms_to_dt(received_ms)}  # the door's registry columns (jobs.ingest.door)
    try:
        if parsed is None:
            raise UploadRejected("unknown_object_key", "key does not follow the landing layout")
        upload: DecodedUpload = decode_object(object_key, blob, device_key)
    except UploadRejected as rejected:
        h = rejected.header
        if h is not None and registry is not None:
            common_q["environment"] = registry.environment(build_environment=h.build_environment, device_id=h.device_id,
                                                          accounts=())[0]
        records = max(rejected.event_count, 1)
        quarantined = records
        yield {
            **common_q, "record_index": -1, "reason": rejected.reason, "detail": rejected.detail[:500],
            "records": records, "platform": h.platform if h else None,
            "schema_version": h.schema_version if h else None, "batch_id": h.batch_id if h else None,
        }
    else:
        header = upload.header
        if registry is not None:
            common_q["environment"] = registry.environment(
                build_environment=header.build_environment, device_id=header.device_id,
                accounts=(e.get("account_id") for e in upload.events))[0]
        psn_id = keys.pseudonym.active
        psn_key = keys.pseudonym.active_key
        device_psn = pseudonymize("device", header.device_id, psn_key)
        msisdn_psn: dict[str, str] = {}  # an upload's events mostly share a caller (and callees repeat)

        def number_psn(msisdn: str) -> str:
            found = msisdn_psn.get(msisdn)
            if found is None:
                found = msisdn_psn[msisdn] = pseudonymize("msisdn", msisdn, psn_key)
            return found

        offset = clock_offset_ms(header, received_ms)
        held = device_psn in quarantined_devices
        door.update(device_pseudonym=device_psn, batch_id=header.batch_id, platform=header.platform,
                    schema_version=header.schema_version,
                    attestation_nonce=header.attestation.nonce.hex() if header.attestation is not None else None)
        allowed = _allowed_fields(sdk_config, header.platform, received_ms)
        hold = (DEVICE_QUARANTINED, "device is in security.device_quarantine") if held else None
        if hold is None and attestation is not None:
            hold = check_attestation(header, received_ms=received_ms, policy=attestation)
        if hold is not None:
            quarantined = max(len(upload.events), 1)
            yield {
                **common_q, "record_index": -1, "reason": hold[0], "detail": hold[1][:500], "records": quarantined,
                "platform": header.platform, "schema_version": header.schema_version, "batch_id": header.batch_id,
            }
        for index, event in enumerate(() if hold is not None else upload.events):
            problem = validate_event(event, header)
            if problem is not None:
                quarantined += 1
                yield {
                    **common_q, "record_index": index, "reason": problem[0], "detail": problem[1], "records": 1,
                    "platform": header.platform, "schema_version": header.schema_version,
                    "batch_id": header.batch_id, "event_id": event.get("event_id") if isinstance(event.get("event_id"), str) else None,
                }
                continue
            accepted += 1
            dropped = disallowed_fields(event, header, allowed)
            if dropped:
                event = {k: None if k in dropped else v for k, v in event.items()}
            event_ts = _ms_to_dt(event["event_ms"])
            src, dst = event.get("src_ip"), event.get("dst_ip")
            callee = event.get("callee_msisdn")
            yield {
                "row_kind": ROW_EVENT, "environment": common_q["environment"],
                "event_id": event["event_id"], "call_id": event["call_id"], "event_type": event["event_type"],
                "event_ts_device": event_ts, "event_date": event_ts.date(),
                "platform": header.platform, "app_version": header.app_version, "schema_version": header.schema_version,
                "subscriber_pseudonym": number_psn(event["msisdn"]),
                "callee_pseudonym": number_psn(callee) if callee else None,
                "destination_class": destination_class(event["msisdn"], callee) if callee else None,
                "device_pseudonym": device_psn, "pseudonym_key_id": psn_id,
                "account_id": event.get("account_id"),
                "src_ip_prefix": truncate_ip(src) if src else None,
                "dst_ip_prefix": truncate_ip(dst) if dst else None,
                **encrypt_restricted(aead, dek_id, event),
                "network_type": event.get("network_type"), "signal_metric": event.get("signal_metric"),
                "signal_value": event.get("signal_value"),
                "latitude": coarse_coordinate(event.get("latitude")),
                "longitude": coarse_coordinate(event.get("longitude")),
                "country_code": event.get("country_code"), "carrier_mccmnc": event.get("carrier_mccmnc"),
                "duration_ms": event.get("duration_ms"), "failure_reason": event.get("failure_reason"),
                "telemetry_level": event.get("telemetry_level"), "diagnostics_opt_out": event.get("diagnostics_opt_out"),
                "bytes_sent": event.get("bytes_sent"), "bytes_received": event.get("bytes_received"),
                "mos": event.get("mos"), "jitter_ms": event.get("jitter_ms"),
                "quality_samples": event.get("quality_samples"), "dropped_fields": ",".join(dropped) or None,
                "batch_id": header.batch_id, "sent_at_device": _ms_to_dt(header.sent_at_ms),
                "received_at": _ms_to_dt(received_ms), "clock_offset_ms": offset,
                "object_key": object_key, "record_index": index, "ingest_run_id": run_id,
            }
    received = accepted + quarantined
    yield {
        "row_kind": ROW_OBJECT, "environment": common_q["environment"], "object_key": object_key, "upload_date": upload_day, "size_bytes": len(blob),
        "sha256": sha, "encoding": encoding,
        "status": "accepted" if quarantined == 0 else ("quarantined" if accepted == 0 else "partial"),
        "records_received": received, "records_accepted": accepted, "records_quarantined": quarantined,
        "ingest_run_id": run_id, "ingested_at": now, **door,
    }


def _allowed_fields(config: SdkConfig | None, platform: str, received_ms: int) -> dict[str, frozenset[str]] | None:
    """Telemetry level -> allowed fields of `platform` in the SDK configuration in force at `received_ms`."""
    if config is None:
        return None
    try:
        version = config.in_force(_ms_to_dt(received_ms))
    except LookupError:  # received before the first central configuration: nothing to enforce
        return None
    return {level: frozenset(version.policy(platform, level).allowed_fields) for level in ("basic", "diagnostic")}


# Decoded rows per Arrow batch handed back to Spark: an input batch holds up to 10,000 objects (Spark's
# arrow.maxRecordsPerBatch) of ~36 events each, whose rows as Python dicts took GBs per worker (make bench).
OUTPUT_BATCH_ROWS = 20_000


def decode_uploads(
    objects: "DataFrame", *, keys: KeyMaterial, dek: DataKey, run_id: str, now: datetime,
    quarantined_devices: frozenset[str] = frozenset(), sdk_config: SdkConfig | None = None,
    attestation: AttestationPolicy | None = None, registry: NonProductionRegistry | None = None,
    batch_rows: int = OUTPUT_BATCH_ROWS,
) -> "DataFrame":
    """(object_key, content) -> decoded rows (see `decoded_schema`): events, quarantine rows, one object row each.

    Restricted cells are encrypted with `dek` (its plaintext travels to the workers in this closure only);
    the caller registers the wrapped DEK before writing the rows. Arrow-vectorized (`mapInArrow`): the
    per-object work is protobuf/JSON decoding, HMAC and AES, which have no Spark SQL equivalent. Output batches
    hold about `batch_rows` rows (an object's rows are never split).
    """
    from pyspark.sql.pandas.types import to_arrow_schema

    schema = decoded_schema()
    arrow_schema = to_arrow_schema(schema, timezone="UTC")
    names = [f.name for f in schema.fields]

    def decode_batches(batches: Iterator["pa.RecordBatch"]) -> Iterator["pa.RecordBatch"]:
        import pyarrow as pa
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        aead = AESGCM(dek.key)

        def to_batch(rows: list[dict[str, Any]]) -> pa.RecordBatch:
            # Column by column (4x faster than appending each row to every column, or than from_pylist).
            return pa.RecordBatch.from_pydict({n: [r.get(n) for r in rows] for n in names}, schema=arrow_schema)

        rows: list[dict[str, Any]] = []
        for batch in batches:
            keys_col = batch.column("object_key").to_pylist()
            content_col = batch.column("content").to_pylist()
            for object_key, blob in zip(keys_col, content_col):
                rows.extend(decode_object_rows(object_key, blob, keys=keys, run_id=run_id, aead=aead, dek_id=dek.dek_id,
                                               now=now, quarantined_devices=quarantined_devices, sdk_config=sdk_config,
                                               attestation=attestation, registry=registry))
                if len(rows) >= batch_rows:
                    yield to_batch(rows)
                    rows = []
        if rows:
            yield to_batch(rows)

    return objects.select("object_key", "content").mapInArrow(decode_batches, schema)


def accepted_events(decoded: "DataFrame") -> "DataFrame":
    from pyspark.sql import functions as F

    return decoded.where(F.col("row_kind") == ROW_EVENT)


def quarantine_records(decoded: "DataFrame") -> "DataFrame":
    from pyspark.sql import functions as F

    return decoded.where(F.col("row_kind") == ROW_QUARANTINE)


def object_manifest(decoded: "DataFrame") -> "DataFrame":
    from pyspark.sql import functions as F

    return decoded.where(F.col("row_kind") == ROW_OBJECT)


def new_objects(landing: "DataFrame", manifest: "DataFrame | None") -> "DataFrame":
    """Landing objects whose key is not in the manifest yet."""
    if manifest is None:
        return landing
    return landing.join(manifest.select("object_key"), on="object_key", how="left_anti")


# ----------------------------------------------------------------------------- run

@dataclass(frozen=True)
class IngestContext:
    settings: Settings
    upload_date: date
    run_id: str = field(default_factory=lambda: f"bronze_ingest-{uuid.uuid4().hex[:12]}")
    dag_id: str | None = None
    dag_run_id: str | None = None

    def __post_init__(self) -> None:
        # Normalize date subclasses (pendulum.Date from Airflow) that Spark's type checks reject.
        object.__setattr__(self, "upload_date", date.fromordinal(self.upload_date.toordinal()))


@dataclass(frozen=True)
class IngestReport:
    upload_date: str
    objects_listed: int
    objects_new: int
    records_received: int
    records_accepted: int
    records_quarantined: int
    quarantined_by_reason: dict[str, int]
    objects_by_status: dict[str, int]
    table_versions: dict[str, int | None]
    table_locations: dict[str, str]
    seconds: float
    # Uploads of test builds / tenants (lake_layout.environments): ingested into the test lake, counted apart from
    # the production figures above.
    objects_routed_to_test: int = 0
    records_routed_to_test: int = 0
    # Abuse at the door (jobs.ingest.door): device pseudonym -> uploads quarantined as replayed_nonce / upload_rate_exceeded,
    # the 10 devices with most (production only).
    suspected_spoofing_by_device: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True)


LANDING_SUFFIX = ".gz"  # what the reader takes from the day's prefix (both encodings are gzip)


def landing_uri(settings: Settings, day: date) -> str:
    return f"s3a://{settings.landing.bucket}/{upload_date_prefix(settings.landing.prefix, day)}"


def read_landing(spark: "SparkSession", settings: Settings, day: date) -> "DataFrame":
    """Landing objects received on `day` as (object_key, content); object_key is relative to the bucket.

    The day must have objects (_landing_has_objects): Spark's reader fails on an empty prefix."""
    from pyspark.sql import functions as F

    from jobs.platform.objectstore import list_level, s3_client

    bucket_prefix = f"s3a://{settings.landing.bucket}/"
    # The day's children (its hour folders, and any stray object) are the roots Spark lists, each recursively:
    # one flat listing of the whole day made S3Proxy's filesystem store rebuild each 1,000-key page from every
    # key of the day (82,700 objects at 3M events: 478 s for the listing); listing hour by hour took 72-82 s.
    objects, folders = list_level(s3_client(settings.object_store), settings.landing.bucket,
                                  upload_date_prefix(settings.landing.prefix, day))
    roots = sorted(f"{bucket_prefix}{key}" for key in [*folders, *(k for k, _ in objects)])
    return (
        spark.read.format("binaryFile")
        .option("recursiveFileLookup", "true")
        .option("pathGlobFilter", f"*{LANDING_SUFFIX}")
        .load(roots)
        .select(F.expr(f"substring(path, {len(bucket_prefix) + 1})").alias("object_key"), "content")
    )


def _landing_has_objects(settings: Settings, day: date) -> bool:
    """Whether `day` has landing objects (Spark's reader fails on an empty prefix)."""
    from jobs.platform.objectstore import list_keys, s3_client

    client = s3_client(settings.object_store)
    prefix = upload_date_prefix(settings.landing.prefix, day)
    return any(key.endswith(LANDING_SUFFIX) for key, _ in list_keys(client, settings.landing.bucket, prefix))


def run(spark: "SparkSession", ctx: IngestContext, keys: KeyMaterial, provider: KeyProvider | None = None) -> IngestReport:
    """Ingest every not-yet-ingested landing object of ctx.upload_date.

    Restricted columns are encrypted with a fresh data key for this run, wrapped by `provider` (default: the
    configured one, jobs.platform.envelope.provider_from_settings) and registered in security.data_keys before the
    bronze rows that need it are written.
    """
    import time

    from jobs.platform.spark import row_cache_level
    from pyspark.sql import functions as F

    from jobs.platform import lake

    settings = ctx.settings
    started = datetime.now(timezone.utc)
    t0 = time.monotonic()
    outputs = (BRONZE_CALL_EVENTS, BRONZE_QUARANTINE, BRONZE_INGESTED_OBJECTS, SECURITY_DATA_KEYS)
    for spec in (*outputs, AUDIT_LINEAGE):
        lake.ensure_table(spark, spec, settings)
    versions_before = {s.name: lake.table_version(spark, s, settings) for s in outputs}

    # Not cached: the decode below reads each object's content once. The count comes from the reader's own file
    # listing: a second listing (or a count over the reader, a HEAD request per object) cost 50-100 s for a
    # 1M-event day's 27,825 objects on S3Proxy (make bench).
    landing = read_landing(spark, settings, ctx.upload_date) if _landing_has_objects(settings, ctx.upload_date) else None
    listed = len(landing.inputFiles()) if landing is not None else 0

    counts: dict[str, Any] = {"records_received": 0, "records_accepted": 0, "records_quarantined": 0}
    by_reason: dict[str, int] = {}
    by_status: dict[str, int] = {}
    fresh = 0
    processed: list[tuple[str, str]] = []
    quarantine_version: int | None = None
    routed_objects = routed_records = 0
    spoofing: dict[str, int] = {}
    if landing is not None:
        test_settings = settings.test_lake()
        manifest = lake.read_table(spark, BRONZE_INGESTED_OBJECTS, settings).where(F.col("upload_date") == F.lit(ctx.upload_date))
        if lake.table_exists(spark, BRONZE_INGESTED_OBJECTS, test_settings):  # objects already routed to the test lake
            manifest = manifest.select("object_key").unionByName(
                lake.read_table(spark, BRONZE_INGESTED_OBJECTS, test_settings)
                .where(F.col("upload_date") == F.lit(ctx.upload_date)).select("object_key"))
        todo = new_objects(landing, manifest)
        dek = DataKey.generate(ctx.upload_date)

        # Its version before the read: the lineage names the quarantine list the diversion was decided on.
        quarantine_version = lake.table_version(spark, SECURITY_DEVICE_QUARANTINE, settings)
        held = quarantined_devices(spark, settings, now=started)  # diverted to bronze.quarantine until released
        from jobs.telemetry.codec import EVENT_FIELDS
        from lake_layout.environments import load_registry
        from lake_layout.sdk_config import load_sdk_config

        decoded_raw = decode_uploads(todo, keys=keys, dek=dek, run_id=ctx.run_id, now=started, quarantined_devices=held,
                                     sdk_config=load_sdk_config(known_fields=EVENT_FIELDS),
                                     attestation=AttestationPolicy.from_settings(settings.attestation, keys),
                                     registry=load_registry(Path(settings.environments.test_registry)),
                                     ).persist(row_cache_level())
        # The few rows that are not events (one per object, one per quarantined record) get a cache of their own,
        # filled in the same pass that decodes and caches everything: the door, the totals, the quarantine and the
        # manifest read it. Only the events' MERGEs scan the day's cache: each scan of a 3M-event day's cache
        # costs seconds, and the run used to make a dozen of them (make bench).
        from pyspark import StorageLevel

        side_raw = decoded_raw.where(F.col("row_kind") != F.lit(ROW_EVENT)).persist(StorageLevel.MEMORY_AND_DISK)
        # Abuse at the door (jobs.ingest.door): upload rate per device-hour and attestation nonce replay, across objects.

        seen_nonces = lake.read_table(spark, BRONZE_INGESTED_OBJECTS, settings).where(
            F.col("attestation_nonce").isNotNull()).select("device_pseudonym", "batch_id", "attestation_nonce")
        verdicts = door_verdicts(object_manifest(side_raw), seen=seen_nonces,
                                 max_per_hour=settings.door.max_batches_per_device_hour).persist(StorageLevel.MEMORY_AND_DISK)
        spoofing = spoofing_by_device(verdicts.where(F.col("environment") == F.lit(PRODUCTION)))
        side_all = apply_door(side_raw, verdicts).persist(StorageLevel.MEMORY_AND_DISK)
        events_all = without_flagged(accepted_events(decoded_raw), verdicts)  # read by the events' MERGE only

        # Test builds' and test tenants' rows go to the test lake only: production tables never see them.
        def of(rows: "DataFrame", environment: str) -> "DataFrame":
            return rows.where(F.col("environment") == F.lit(environment))

        totals_by_env = {r["environment"]: r for r in object_manifest(side_all).groupBy("environment").agg(
            F.count("*").alias("n"),
            F.coalesce(F.sum("records_received"), F.lit(0)).alias("received"),
            F.coalesce(F.sum("records_accepted"), F.lit(0)).alias("accepted"),
            F.coalesce(F.sum("records_quarantined"), F.lit(0)).alias("quarantined"),
        ).collect()}
        side_raw.unpersist()  # side_all is materialized by the totals above
        totals, routed_totals = totals_by_env.get(PRODUCTION), totals_by_env.get(TEST)
        fresh = int(totals["n"]) if totals else 0
        if routed_totals:
            routed_objects, routed_records = int(routed_totals["n"]), int(routed_totals["received"])
        if (fresh or routed_objects) and provider is None:
            from jobs.platform.envelope import provider_from_settings

            provider = provider_from_settings(settings)
        if routed_objects:
            assert provider is not None
            _write_bronze(spark, test_settings, of(events_all, TEST), of(side_all, TEST), dek=dek, provider=provider,
                          upload_date=ctx.upload_date, run_id=ctx.run_id)
        if fresh:
            assert totals is not None and provider is not None
            side = of(side_all, PRODUCTION)
            objects = object_manifest(side)
            counts = {"records_received": int(totals["received"]), "records_accepted": int(totals["accepted"]),
                      "records_quarantined": int(totals["quarantined"])}
            by_reason = {r["reason"]: int(r["n"]) for r in quarantine_records(side).groupBy("reason").agg(F.sum("records").alias("n")).collect()}
            by_status = {r["status"]: int(r["count"]) for r in objects.groupBy("status").count().collect()}
            processed = [(r["object_key"], r["sha256"]) for r in objects.select("object_key", "sha256").collect()]
            _write_bronze(spark, settings, of(events_all, PRODUCTION), side, dek=dek, provider=provider,
                          upload_date=ctx.upload_date, run_id=ctx.run_id)
        for cached in (side_all, verdicts, decoded_raw):
            cached.unpersist()
        # Chain each newly ingested object's SHA-256 (audit.landing_integrity); already chained ones are skipped.
        from jobs.ingest.landing_integrity import record_new_objects

        record_new_objects(spark, settings, upload_date=ctx.upload_date)

    versions = {s.name: lake.table_version(spark, s, settings) for s in outputs}
    report = IngestReport(
        upload_date=ctx.upload_date.isoformat(), objects_listed=listed, objects_new=fresh,
        quarantined_by_reason=dict(sorted(by_reason.items())), objects_by_status=dict(sorted(by_status.items())),
        table_versions=versions, table_locations={s.name: s.location(settings) for s in outputs},
        seconds=round(time.monotonic() - t0, 1), objects_routed_to_test=routed_objects,
        records_routed_to_test=routed_records, suspected_spoofing_by_device=spoofing, **counts,
    )
    if fresh:
        _record_lineage(spark, ctx, report, versions_before, started, processed, quarantine_version=quarantine_version)
    return report


def _write_bronze(spark: "SparkSession", settings: Settings, events: "DataFrame", side: "DataFrame", *, dek: DataKey,
                  provider: KeyProvider, upload_date: date, run_id: str) -> None:
    """The decoded rows of one environment into that environment's lake (`settings`): the wrapped data key first
    (no ciphertext is ever written without the key that decrypts it), then events, quarantine, manifest.
    `events`: its accepted events; `side`: its quarantine and manifest rows."""
    from jobs.platform import lake

    for spec in (BRONZE_CALL_EVENTS, BRONZE_QUARANTINE, BRONZE_INGESTED_OBJECTS, SECURITY_DATA_KEYS):
        lake.ensure_table(spark, spec, settings)
    register_data_key(spark, settings, provider, dek, scope=f"{BRONZE_CALL_EVENTS.name} upload_date={upload_date}",
                      run_id=run_id)
    lake.merge_insert_new(spark, events, BRONZE_CALL_EVENTS, settings, prune_on="event_date")
    lake.merge_insert_new(spark, quarantine_records(side), BRONZE_QUARANTINE, settings, prune_on="upload_date")
    lake.merge_insert_new(spark, object_manifest(side), BRONZE_INGESTED_OBJECTS, settings, prune_on="upload_date")


def lineage_inputs(settings: Settings, upload_date: date, objects: list[tuple[str, str]], *,
                   quarantine_version: int | None) -> tuple[Any, ...]:
    """The run's lineage inputs: the landing objects it ingested and, when it existed, the version of
    security.device_quarantine it read to divert held devices' uploads (a diverted upload's fate depends on it)."""
    from jobs.platform import lineage

    inputs: list[Any] = [lineage.LandingInput(uri=landing_uri(settings, upload_date), objects=tuple(sorted(objects)))]
    if quarantine_version is not None:
        inputs.append(lineage.TableInput(table=SECURITY_DEVICE_QUARANTINE.name, version=quarantine_version))
    return tuple(inputs)


def _record_lineage(
    spark: "SparkSession", ctx: IngestContext, report: IngestReport, before: dict[str, int | None], started: datetime,
    objects: list[tuple[str, str]], *, quarantine_version: int | None,
) -> None:
    from jobs.platform import lineage

    lineage.record_run(spark, ctx.settings, lineage.LineageRecord(
        run_id=ctx.run_id, job="bronze_ingest", dag_id=ctx.dag_id, dag_run_id=ctx.dag_run_id, logical_date=ctx.upload_date,
        inputs=lineage_inputs(ctx.settings, ctx.upload_date, objects, quarantine_version=quarantine_version),
        outputs=tuple(lineage.TableOutput(table=name, version_before=before.get(name), version_after=v)
                      for name, v in report.table_versions.items()),
        metrics={
            "objects_listed": report.objects_listed, "objects_new": report.objects_new,
            "records_received": report.records_received, "records_accepted": report.records_accepted,
            "records_quarantined": report.records_quarantined, "quarantined_by_reason": report.quarantined_by_reason,
            "objects_by_status": report.objects_by_status,
        },
        rows_in=report.records_received, rows_out=report.records_accepted + report.records_quarantined,
        started_at=started, finished_at=datetime.now(timezone.utc),
    ))
