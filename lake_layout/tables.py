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
    description=(
        "One row per job run that wrote data: what it read (landing objects with their SHA-256, or table + "
        "Delta version), what it wrote (table + Delta version), row counts in and out, code version, times."
    ),
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
        Column("inputs_json", "string", C.INTERNAL, "JSON list of inputs: {kind: landing, uri, objects: [{key, sha256}]} or {kind: table, table, version}", nullable=False),
        Column("outputs_json", "string", C.INTERNAL, "JSON map table -> {version_before, version_after}", nullable=False),
        Column("metrics_json", "string", C.INTERNAL, "JSON of counts (received, accepted, quarantined by reason, ...)", nullable=False),
        Column("started_at", "timestamp", C.INTERNAL, "Start", nullable=False),
        Column("finished_at", "timestamp", C.INTERNAL, "End", nullable=False),
        Column("code_version", "string", C.INTERNAL, "git commit of the code that ran (package version if not a checkout)"),
        Column("rows_in", "long", C.INTERNAL, "Records read"),
        Column("rows_out", "long", C.INTERNAL, "Records written"),
    ),
)

AUDIT_QUALITY_RESULTS = TableSpec(
    name="audit.quality_results",
    description="One row per expectation per quality-gate run (Great Expectations suites in expectations/).",
    purpose="Evidence that each layer was checked before promotion; why a promotion stopped.",
    retention_tier=RetentionTier.AUDIT,
    partition_by=("checked_date",),
    merge_keys=("run_id", "suite", "expectation_index"),
    columns=(
        Column("run_id", "string", C.INTERNAL, "Quality-gate run id", nullable=False),
        Column("dag_run_id", "string", C.INTERNAL, "Airflow DAG run id"),
        Column("table_name", "string", C.INTERNAL, "Registry table validated", nullable=False),
        Column("table_version", "long", C.INTERNAL, "Delta version validated"),
        Column("scope", "string", C.INTERNAL, "Slice validated, e.g. call_date IN ('2026-11-24')", nullable=False),
        Column("suite", "string", C.INTERNAL, "Expectation suite name (file in expectations/)", nullable=False),
        Column("expectation_index", "int", C.INTERNAL, "Position of the expectation in its suite", nullable=False),
        Column("expectation_type", "string", C.INTERNAL, "e.g. expect_column_values_to_not_be_null", nullable=False),
        Column("column_name", "string", C.INTERNAL, "Column checked, if any"),
        Column("kwargs_json", "string", C.INTERNAL, "Expectation arguments", nullable=False),
        Column("success", "boolean", C.INTERNAL, "Whether the expectation held", nullable=False),
        Column("element_count", "long", C.INTERNAL, "Rows checked"),
        Column("unexpected_count", "long", C.INTERNAL, "Rows that failed it"),
        Column("observed_value", "string", C.INTERNAL, "Observed value for aggregate expectations"),
        Column("checked_at", "timestamp", C.INTERNAL, "When", nullable=False),
        Column("checked_date", "date", C.INTERNAL, "UTC date of checked_at; partition column", nullable=False),
    ),
)

REFERENCE_SUBSCRIBER_CONSENT = TableSpec(
    name="reference.subscriber_consent",
    description=(
        "Consent and telemetry-level history per subscriber from the subscriber directory exports, "
        "pseudonymized with the same key as bronze: one row per change, in force from effective_from "
        "until the subscriber's next row. Also carries the account and subscriber creation dates."
    ),
    purpose="Honour consent by event time in silver; reject events dated before the account existed.",
    retention_tier=RetentionTier.SILVER,
    partition_by=(),
    merge_keys=("subscriber_pseudonym", "effective_from"),
    columns=(
        Column("subscriber_pseudonym", "string", C.PSEUDONYMOUS, "HMAC-SHA256 pseudonym of the MSISDN", nullable=False),
        Column("pseudonym_key_id", "string", C.INTERNAL, "Pseudonym key used", nullable=False),
        Column("account_id", "string", C.INTERNAL, "B2B account or 'consumer'", nullable=False),
        Column("department", "string", C.INTERNAL, "B2B department"),
        Column("jurisdiction", "string", C.INTERNAL, "EU | US-CA | US-other | other (drives retention)", nullable=False),
        Column("home_country", "string", C.INTERNAL, "ISO 3166 home market", nullable=False),
        Column("subscriber_created_on", "date", C.INTERNAL, "Subscription start", nullable=False),
        Column("account_created_on", "date", C.INTERNAL, "Account creation (= subscriber_created_on for consumers)", nullable=False),
        Column("effective_from", "timestamp", C.INTERNAL, "Consent state in force from (UTC)", nullable=False),
        Column("telemetry_level", "string", C.INTERNAL, "basic | diagnostic", nullable=False),
        Column("diagnostics_opt_out", "boolean", C.INTERNAL, "Opted out of diagnostics", nullable=False),
        Column("source_object_key", "string", C.INTERNAL, "Directory export object it came from", nullable=False),
    ),
)

SILVER_CALLS = TableSpec(
    name="silver.calls",
    description=(
        "One row per call across iOS, Android and web: start / end / failure events joined by call id, "
        "deduplicated, device clocks corrected, network metrics in common reporting units "
        "(lake_layout.reporting_units), diagnostics nulled where consent at call time does not allow them. "
        "Holds no coordinates, IPs or device identifiers beyond pseudonyms (data minimization)."
    ),
    purpose="Call-level analytics, quality reporting and the source of every gold aggregate.",
    retention_tier=RetentionTier.SILVER,
    partition_by=("call_date",),
    merge_keys=("call_id",),
    columns=(
        Column("call_id", "string", C.INTERNAL, "Client-generated call id", nullable=False),
        Column("call_date", "date", C.INTERNAL, "UTC date of started_at (of the first event if no start); partition column", nullable=False),
        Column("status", "string", C.INTERNAL, "completed | failed | incomplete (start, no end within the window) | open (still within it) | orphan_end (end without start)", nullable=False),
        Column("started_at", "timestamp", C.INTERNAL, "Corrected call_start time (UTC)"),
        Column("ended_at", "timestamp", C.INTERNAL, "Corrected call_end / call_failure time (UTC)"),
        Column("duration_ms", "long", C.INTERNAL, "Talk time reported by call_end (0 for failed calls)"),
        Column("failure_reason", "string", C.INTERNAL, "call_failure reason"),
        Column("subscriber_pseudonym", "string", C.PSEUDONYMOUS, "Caller", nullable=False),
        Column("callee_pseudonym", "string", C.PSEUDONYMOUS, "Callee"),
        Column("device_pseudonym", "string", C.PSEUDONYMOUS, "Device", nullable=False),
        Column("pseudonym_key_id", "string", C.INTERNAL, "Pseudonym key", nullable=False),
        Column("account_id", "string", C.INTERNAL, "B2B account or 'consumer'"),
        Column("platform", "string", C.INTERNAL, "ios | android | web", nullable=False),
        Column("app_version", "string", C.INTERNAL, "Client app version"),
        Column("schema_version", "int", C.INTERNAL, "Upload schema version", nullable=False),
        Column("country_code", "string", C.INTERNAL, "Where the device was (ISO 3166, US-CA for California)"),
        Column("h3_cell", "string", C.PERSONAL, "H3 cell (privacy.h3_cell_resolution) of the start location; coordinates are not kept"),
        Column("carrier_mccmnc", "string", C.INTERNAL, "Serving carrier (native clients)"),
        Column("network_type", "string", C.INTERNAL, "As reported: wifi | 5g | lte | 3g | 2g | ethernet"),
        Column("network_class", "string", C.INTERNAL, "wifi | wired | cellular_5g | cellular_4g | cellular_legacy"),
        Column("signal_dbm", "double", C.INTERNAL, "Signal at call start in dBm (ASU converted); null where the platform reports none"),
        Column("signal_quality", "int", C.INTERNAL, "Signal quality score 0 (none/poor) .. 4 (great) from per-class thresholds"),
        Column("bytes_sent", "long", C.INTERNAL, "Media bytes sent (schema 2)"),
        Column("bytes_received", "long", C.INTERNAL, "Media bytes received (schema 2)"),
        Column("data_bytes", "long", C.INTERNAL, "bytes_sent + bytes_received (null if unreported)"),
        Column("telemetry_level", "string", C.INTERNAL, "Consent in force at call start: basic | diagnostic | opted_out | unknown", nullable=False),
        Column("mos", "double", C.INTERNAL, "Diagnostic MOS; null unless consent allowed diagnostics at call time"),
        Column("jitter_ms", "int", C.INTERNAL, "Diagnostic jitter; same consent rule"),
        Column("clock_offset_ms", "long", C.INTERNAL, "Correction applied to device times (server minus device clock)", nullable=False),
        Column("event_count", "int", C.INTERNAL, "Distinct events joined", nullable=False),
        Column("duplicate_events", "int", C.INTERNAL, "Extra copies dropped (retried uploads, repeated events)", nullable=False),
        Column("first_received_at", "timestamp", C.INTERNAL, "Earliest collector receive time of its events", nullable=False),
        Column("last_received_at", "timestamp", C.INTERNAL, "Latest collector receive time of its events", nullable=False),
        Column("record_hash", "string", C.INTERNAL, "Hash of the content columns: reruns update a row only if it changed", nullable=False),
        Column("silver_run_id", "string", C.INTERNAL, "Run that last changed the row", nullable=False),
    ),
)

SILVER_QUARANTINE = TableSpec(
    name="silver.quarantine",
    description="Bronze events silver could not use, with a reason: impossible times after clock correction.",
    purpose="Accounting (bronze events = used + duplicates + quarantined) and reprocessing after fixes.",
    retention_tier=RetentionTier.OPERATIONAL,
    partition_by=("event_date",),
    merge_keys=("event_id",),
    columns=(
        Column("event_id", "string", C.INTERNAL, "Event id", nullable=False),
        Column("call_id", "string", C.INTERNAL, "Call id", nullable=False),
        Column("event_date", "date", C.INTERNAL, "bronze event_date (device clock); partition column", nullable=False),
        Column("reason", "string", C.INTERNAL, "future_timestamp | before_account_creation", nullable=False),
        Column("detail", "string", C.INTERNAL, "Corrected time and the bound it broke"),
        Column("object_key", "string", C.INTERNAL, "Landing object of the first copy", nullable=False),
        Column("record_index", "int", C.INTERNAL, "Position in that object", nullable=False),
        Column("silver_run_id", "string", C.INTERNAL, "Run that quarantined it", nullable=False),
    ),
)

SILVER_PLATFORM_COMPLETENESS = TableSpec(
    name="silver.platform_completeness",
    description="Events expected vs seen per call date, platform and app version (e.g. starts without ends).",
    purpose="Client telemetry health: which platform or release loses events.",
    retention_tier=RetentionTier.SILVER,
    partition_by=("call_date",),
    merge_keys=("call_date", "platform", "app_version"),
    columns=(
        Column("call_date", "date", C.INTERNAL, "Call date; partition column", nullable=False),
        Column("platform", "string", C.INTERNAL, "ios | android | web", nullable=False),
        Column("app_version", "string", C.INTERNAL, "Client app version ('unknown' if unreported)", nullable=False),
        Column("calls", "long", C.INTERNAL, "Calls", nullable=False),
        Column("completed", "long", C.INTERNAL, "Calls with start and end", nullable=False),
        Column("failed", "long", C.INTERNAL, "Calls with start and failure", nullable=False),
        Column("incomplete", "long", C.INTERNAL, "Starts without an end after the window", nullable=False),
        Column("open", "long", C.INTERNAL, "Starts still within the window", nullable=False),
        Column("ends_without_start", "long", C.INTERNAL, "End or failure seen, start never seen", nullable=False),
        Column("events_expected", "long", C.INTERNAL, "2 per call (start + terminal)", nullable=False),
        Column("events_seen", "long", C.INTERNAL, "Distinct start / terminal events seen", nullable=False),
        Column("duplicate_events", "long", C.INTERNAL, "Extra copies dropped", nullable=False),
        Column("completeness", "double", C.INTERNAL, "events_seen / events_expected", nullable=False),
    ),
)

GOLD_HOURLY_GEO_USAGE = TableSpec(
    name="gold.hourly_geo_usage",
    description=(
        "Hourly usage by geo zone x network class x platform (x carrier where it survives), k-anonymous: "
        "every row describes at least k distinct subscribers (column k). Small groups are generalized "
        "(carrier dropped; H3 cell -> H3 region -> country; hour -> 3 hours -> day) and suppressed when "
        "even a country-day group is too small. Each call is counted in exactly one row: the finest one "
        "whose group was large enough."
    ),
    purpose="Published usage reporting; anonymous aggregates.",
    retention_tier=RetentionTier.GOLD_AGGREGATE,
    partition_by=("call_date",),
    merge_keys=("call_date", "generalization_level", "period_start", "geo_zone", "country_code", "network_class", "platform", "carrier_mccmnc"),
    columns=(
        Column("call_date", "date", C.PUBLIC, "UTC date; partition column", nullable=False),
        Column("period_start", "timestamp", C.PUBLIC, "Start of the period (UTC)", nullable=False),
        Column("period_hours", "int", C.PUBLIC, "1, 3 or 24 (time generalization)", nullable=False),
        Column("geo_level", "string", C.PUBLIC, "h3_cell | h3_region | country", nullable=False),
        Column("geo_zone", "string", C.PUBLIC, "H3 index, or the country code at country level", nullable=False),
        Column("country_code", "string", C.PUBLIC, "Country (ISO 3166)", nullable=False),
        Column("network_class", "string", C.PUBLIC, "wifi | wired | cellular_5g | cellular_4g | cellular_legacy | unknown", nullable=False),
        Column("platform", "string", C.PUBLIC, "ios | android | web", nullable=False),
        Column("carrier_mccmnc", "string", C.PUBLIC, "Serving carrier, or '*' when generalized away / unreported", nullable=False),
        Column("generalization_level", "int", C.PUBLIC, "0 = finest (cell, hour, carrier) .. 5 = country, day", nullable=False),
        Column("calls", "long", C.PUBLIC, "Calls started in the period", nullable=False),
        Column("failed_calls", "long", C.PUBLIC, "Of which failed", nullable=False),
        Column("total_minutes", "double", C.PUBLIC, "Talk minutes", nullable=False),
        Column("mean_minutes", "double", C.PUBLIC, "Mean talk minutes per completed call"),
        Column("p50_duration_s", "double", C.PUBLIC, "Median talk time of completed calls, seconds"),
        Column("p95_duration_s", "double", C.PUBLIC, "95th percentile talk time of completed calls, seconds"),
        Column("data_bytes", "long", C.PUBLIC, "Media bytes (schema-2 clients)", nullable=False),
        Column("distinct_subscribers", "long", C.PUBLIC, "Distinct callers in the row; >= k", nullable=False),
        Column("k", "int", C.PUBLIC, "k the row was published under", nullable=False),
    ),
)

ALL_TABLES: tuple[TableSpec, ...] = (
    BRONZE_CALL_EVENTS, BRONZE_QUARANTINE, BRONZE_INGESTED_OBJECTS,
    REFERENCE_SUBSCRIBER_CONSENT,
    SILVER_CALLS, SILVER_QUARANTINE, SILVER_PLATFORM_COMPLETENESS,
    GOLD_HOURLY_GEO_USAGE,
    AUDIT_LINEAGE, AUDIT_QUALITY_RESULTS,
)
TABLES_BY_NAME: dict[str, TableSpec] = {t.name: t for t in ALL_TABLES}


def table(name: str) -> TableSpec:
    try:
        return TABLES_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known: {sorted(TABLES_BY_NAME)}") from None
