"""Every table of the lake, declared once.

Readers and writers take these specs (`jobs.lake.read_table(spark, BRONZE_CALL_EVENTS, settings)`),
DAGs derive their Assets from them, `voiplake tables` lists them. Nothing else writes a table name
or path.
"""

from __future__ import annotations

from lake_layout.registry import Classification as C
from lake_layout.registry import Column, RetentionTier, TableSpec

BRONZE_CALL_EVENTS = TableSpec(
    name="bronze.call_events",
    description=(
        "Every accepted call event as uploaded, decoded and verified, with identifiers pseudonymized at "
        "the door: IMEI dropped, MSISDN / callee / device id as keyed HMAC pseudonyms, IPs truncated "
        "(/24, /48) with the originals only in the encrypted restricted column."
    ),
    purpose="Source of record for normalization into silver; re-derivation after key rotation or bug fixes.",
    retention_tier=RetentionTier.BRONZE_RESTRICTED,
    partition_by=("event_date",),
    merge_keys=("object_key", "record_index"),
    columns=(
        Column("event_id", "string", C.INTERNAL, "Client-generated event id (UUID)", nullable=False),
        Column("call_id", "string", C.INTERNAL, "Client-generated call id joining start / end / failure", nullable=False),
        Column("event_type", "string", C.INTERNAL, "call_start | call_end | call_failure", nullable=False),
        Column("event_ts_device", "timestamp", C.INTERNAL, "Event time on the device clock (UTC), uncorrected", nullable=False),
        Column("event_date", "date", C.INTERNAL, "UTC date of event_ts_device; partition column", nullable=False),
        Column("platform", "string", C.INTERNAL, "ios | android | web", nullable=False),
        Column("app_version", "string", C.INTERNAL, "Client app version"),
        Column("schema_version", "int", C.INTERNAL, "CallEvent schema version of the upload (1 or 2)", nullable=False),
        Column("subscriber_pseudonym", "string", C.PSEUDONYMOUS, "HMAC-SHA256 pseudonym of the caller's MSISDN", nullable=False),
        Column("callee_pseudonym", "string", C.PSEUDONYMOUS, "HMAC-SHA256 pseudonym of the destination number"),
        Column("device_pseudonym", "string", C.PSEUDONYMOUS, "HMAC-SHA256 pseudonym of the device id", nullable=False),
        Column("pseudonym_key_id", "string", C.INTERNAL, "Id of the pseudonym key used (keys rotate)", nullable=False),
        Column("account_id", "string", C.INTERNAL, "Customer account (B2B) or 'consumer'"),
        Column("src_ip_prefix", "string", C.PERSONAL, "Caller IP truncated to /24 (IPv4) or /48 (IPv6)"),
        Column("dst_ip_prefix", "string", C.PERSONAL, "Destination IP truncated to /24 or /48"),
        Column("ip_encrypted", "binary", C.RESTRICTED, "AES-256-GCM(nonce || ciphertext) of the original source and destination IPs"),
        Column("encryption_key_id", "string", C.INTERNAL, "Id of the column-encryption key"),
        Column("network_type", "string", C.INTERNAL, "wifi | 5g | lte | 3g | 2g | ethernet"),
        Column("signal_metric", "string", C.INTERNAL, "Platform signal metric name, e.g. lte_rsrp_dbm, wifi_rssi_dbm, gsm_rssi_asu"),
        Column("signal_value", "double", C.INTERNAL, "Signal value in the metric's unit"),
        Column("latitude", "double", C.PERSONAL, "Device latitude rounded to 3 decimals (~100 m)"),
        Column("longitude", "double", C.PERSONAL, "Device longitude rounded to 3 decimals (~100 m)"),
        Column("country_code", "string", C.INTERNAL, "ISO 3166 code where the device was (US-CA for California)"),
        Column("carrier_mccmnc", "string", C.INTERNAL, "Serving carrier MCC-MNC"),
        Column("duration_ms", "long", C.INTERNAL, "Call duration (call_end only)"),
        Column("failure_reason", "string", C.INTERNAL, "Failure reason (call_failure only)"),
        Column("telemetry_level", "string", C.INTERNAL, "basic | diagnostic as the client reported (schema 2)"),
        Column("diagnostics_opt_out", "boolean", C.INTERNAL, "Subscriber opted out of diagnostics (schema 2)"),
        Column("bytes_sent", "long", C.INTERNAL, "Media bytes sent (schema 2, call_end)"),
        Column("bytes_received", "long", C.INTERNAL, "Media bytes received (schema 2, call_end)"),
        Column("mos", "double", C.INTERNAL, "Diagnostic: estimated mean opinion score"),
        Column("jitter_ms", "int", C.INTERNAL, "Diagnostic: jitter"),
        Column("batch_id", "string", C.INTERNAL, "Upload batch id (same across retried uploads)", nullable=False),
        Column("sent_at_device", "timestamp", C.INTERNAL, "Batch send time on the device clock", nullable=False),
        Column("received_at", "timestamp", C.INTERNAL, "Collector receive time (UTC)", nullable=False),
        Column("clock_offset_ms", "long", C.INTERNAL, "server minus device clock from the batch's time-sync samples (lowest RTT), else received_at - sent_at"),
        Column("object_key", "string", C.INTERNAL, "Landing object the event came from", nullable=False),
        Column("record_index", "int", C.INTERNAL, "Position of the event in its upload", nullable=False),
        Column("ingest_run_id", "string", C.INTERNAL, "Run that ingested the event", nullable=False),
    ),
)

BRONZE_QUARANTINE = TableSpec(
    name="bronze.quarantine",
    description=(
        "Every landing object or record that could not be accepted, with a machine-readable reason. "
        "Object-level rejections have record_index -1 and count all records of the object."
    ),
    purpose="Accounting (received = accepted + quarantined) and reprocessing after fixes.",
    retention_tier=RetentionTier.OPERATIONAL,
    partition_by=("upload_date",),
    merge_keys=("object_key", "record_index"),
    columns=(
        Column("object_key", "string", C.INTERNAL, "Landing object key", nullable=False),
        Column("record_index", "int", C.INTERNAL, "Event position in the upload, -1 for the whole object", nullable=False),
        Column("reason", "string", C.INTERNAL, "Reason code, e.g. bad_signature, corrupt_compression, invalid_msisdn", nullable=False),
        Column("detail", "string", C.INTERNAL, "Human-readable detail (never raw identifiers)"),
        Column("records", "long", C.INTERNAL, "Records this row accounts for (events in the object, or 1)", nullable=False),
        Column("platform", "string", C.INTERNAL, "Platform if the header was readable"),
        Column("schema_version", "int", C.INTERNAL, "Schema version if the header was readable"),
        Column("batch_id", "string", C.INTERNAL, "Batch id if the header was readable"),
        Column("event_id", "string", C.INTERNAL, "Event id if the record was readable"),
        Column("upload_date", "date", C.INTERNAL, "Collector receive date; partition column", nullable=False),
        Column("ingest_run_id", "string", C.INTERNAL, "Run that quarantined it", nullable=False),
    ),
)

BRONZE_INGESTED_OBJECTS = TableSpec(
    name="bronze.ingested_objects",
    description="Manifest of processed landing objects: reruns skip what is here, so nothing is ingested twice.",
    purpose="Exactly-once ingestion and per-object accounting.",
    retention_tier=RetentionTier.OPERATIONAL,
    partition_by=("upload_date",),
    merge_keys=("object_key",),
    columns=(
        Column("object_key", "string", C.INTERNAL, "Landing object key", nullable=False),
        Column("upload_date", "date", C.INTERNAL, "Collector receive date; partition column", nullable=False),
        Column("size_bytes", "long", C.INTERNAL, "Object size", nullable=False),
        Column("sha256", "string", C.INTERNAL, "SHA-256 of the object bytes (chain of custody)", nullable=False),
        Column("encoding", "string", C.INTERNAL, "protobuf | json | unknown"),
        Column("status", "string", C.INTERNAL, "accepted | partial | quarantined", nullable=False),
        Column("records_received", "long", C.INTERNAL, "Records in the object (1 if unreadable)", nullable=False),
        Column("records_accepted", "long", C.INTERNAL, "Records written to bronze.call_events", nullable=False),
        Column("records_quarantined", "long", C.INTERNAL, "Records written to bronze.quarantine", nullable=False),
        Column("ingest_run_id", "string", C.INTERNAL, "Run that processed it", nullable=False),
        Column("ingested_at", "timestamp", C.INTERNAL, "When", nullable=False),
    ),
)

AUDIT_LINEAGE = TableSpec(
    name="audit.lineage",
    description="One row per job run that wrote data: inputs, outputs with their Delta versions, counts.",
    purpose="Lineage from collection to reporting for compliance audits.",
    retention_tier=RetentionTier.AUDIT,
    partition_by=(),
    merge_keys=("run_id",),
    columns=(
        Column("run_id", "string", C.INTERNAL, "Job run id", nullable=False),
        Column("job", "string", C.INTERNAL, "Job module, e.g. bronze_ingest", nullable=False),
        Column("dag_id", "string", C.INTERNAL, "Airflow DAG id, if run by Airflow"),
        Column("dag_run_id", "string", C.INTERNAL, "Airflow DAG run id"),
        Column("logical_date", "date", C.INTERNAL, "Logical date of the run"),
        Column("inputs_json", "string", C.INTERNAL, "JSON list of inputs (URIs, object counts)", nullable=False),
        Column("outputs_json", "string", C.INTERNAL, "JSON map table -> Delta version written", nullable=False),
        Column("metrics_json", "string", C.INTERNAL, "JSON of counts (received, accepted, quarantined by reason, ...)", nullable=False),
        Column("started_at", "timestamp", C.INTERNAL, "Start", nullable=False),
        Column("finished_at", "timestamp", C.INTERNAL, "End", nullable=False),
    ),
)

ALL_TABLES: tuple[TableSpec, ...] = (BRONZE_CALL_EVENTS, BRONZE_QUARANTINE, BRONZE_INGESTED_OBJECTS, AUDIT_LINEAGE)
TABLES_BY_NAME: dict[str, TableSpec] = {t.name: t for t in ALL_TABLES}


def table(name: str) -> TableSpec:
    try:
        return TABLES_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known: {sorted(TABLES_BY_NAME)}") from None
