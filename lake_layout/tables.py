"""Every table of the lake, declared once.

Readers and writers take these specs (`jobs.platform.lake.read_table(spark, BRONZE_CALL_EVENTS, settings)`),
DAGs derive their Assets from them, `voiplake tables` lists them. Nothing else writes a table name
or path.
"""

from __future__ import annotations

from lake_layout.registry import Classification as C
from lake_layout.registry import Column, Plane, RetentionTier, TableSpec

# Why signaling and media fields sit where they do (Column.plane_reason); see docs in lake_layout/access.py.
_TRAFFIC = (
    "Signaling traffic data (when, how long, how it ended): personal data once linked to a subscriber, "
    "so held only beside pseudonyms and published only in k-anonymous or differentially private aggregates"
)
_PARTY = "Signaling: identifies a party of the call, so only a keyed pseudonym is kept"
_ADDRESS = (
    "Signaling addresses locate the device: a truncated prefix is confidential personal data, the "
    "original address is restricted and stored only encrypted"
)
_MEDIA = (
    "Media-stream volume and quality metrics, never media content: no communication content is held; "
    "quality diagnostics need diagnostic-level consent"
)

BRONZE_CALL_EVENTS = TableSpec(
    name="bronze.call_events",
    writer="jobs.ingest.bronze",
    description=(
        "Every accepted call event as uploaded, decoded and verified, with identifiers pseudonymized at "
        "the door: IMEI dropped, MSISDN / callee / device id as keyed HMAC pseudonyms, IPs truncated "
        "(/24, /48) with the originals only in the encrypted restricted column."
    ),
    purpose="Source of record for normalization into silver; re-derivation after key rotation or bug fixes.",
    retention_tier=RetentionTier.BRONZE_RESTRICTED,
    partition_by=("event_date",),
    merge_keys=("object_key", "record_index"),
    optimize_write=True,
    columns=(
        Column("event_id", "string", C.INTERNAL, "Client-generated event id (UUID)", nullable=False),
        Column("call_id", "string", C.INTERNAL, "Client-generated call id joining start / end / failure", nullable=False, plane=Plane.SIGNALING, plane_reason=_TRAFFIC),
        Column("event_type", "string", C.INTERNAL, "call_start | call_end | call_failure", nullable=False, plane=Plane.SIGNALING, plane_reason=_TRAFFIC),
        Column("event_ts_device", "timestamp", C.INTERNAL, "Event time on the device clock (UTC), uncorrected", nullable=False, plane=Plane.SIGNALING, plane_reason=_TRAFFIC),
        Column("event_date", "date", C.INTERNAL, "UTC date of event_ts_device; partition column", nullable=False),
        Column("platform", "string", C.INTERNAL, "ios | android | web", nullable=False),
        Column("app_version", "string", C.INTERNAL, "Client app version"),
        Column("schema_version", "int", C.INTERNAL, "CallEvent schema version of the upload (1 or 2)", nullable=False),
        Column("subscriber_pseudonym", "string", C.PSEUDONYMOUS, "HMAC-SHA256 pseudonym of the caller's MSISDN", nullable=False, plane=Plane.SIGNALING, plane_reason=_PARTY),
        Column("callee_pseudonym", "string", C.PSEUDONYMOUS, "HMAC-SHA256 pseudonym of the destination number", plane=Plane.SIGNALING, plane_reason=_PARTY),
        Column("destination_class", "string", C.INTERNAL, "Class of the dialled number decided before pseudonymization (jobs.ingest.destinations): domestic_mobile | domestic_fixed | international | premium | unknown", plane=Plane.SIGNALING, plane_reason=_TRAFFIC),
        Column("device_pseudonym", "string", C.PSEUDONYMOUS, "HMAC-SHA256 pseudonym of the device id", nullable=False),
        Column("pseudonym_key_id", "string", C.INTERNAL, "Id of the pseudonym key used (keys rotate)", nullable=False),
        Column("account_id", "string", C.INTERNAL, "Customer account (B2B) or 'consumer'"),
        Column("src_ip_prefix", "string", C.PERSONAL, "Caller IP truncated to /24 (IPv4) or /48 (IPv6)", plane=Plane.SIGNALING, plane_reason=_ADDRESS),
        Column("dst_ip_prefix", "string", C.PERSONAL, "Destination IP truncated to /24 or /48", plane=Plane.SIGNALING, plane_reason=_ADDRESS),
        Column("ip_encrypted", "binary", C.RESTRICTED, "Envelope-encrypted original source and destination IPs (jobs.platform.envelope cell format: version, DEK id, nonce, AES-256-GCM ciphertext)", plane=Plane.SIGNALING, plane_reason=_ADDRESS),
        Column("location_encrypted", "binary", C.RESTRICTED, "Envelope-encrypted original precise latitude / longitude (same cell format as ip_encrypted)", plane=Plane.SIGNALING, plane_reason=_ADDRESS),
        Column("encryption_key_id", "string", C.INTERNAL, "Id of the data key (DEK) that encrypted this row's restricted columns; its wrapped form is in security.data_keys"),
        Column("network_type", "string", C.INTERNAL, "wifi | 5g | lte | 3g | 2g | ethernet"),
        Column("signal_metric", "string", C.INTERNAL, "Platform signal metric name, e.g. lte_rsrp_dbm, wifi_rssi_dbm, gsm_rssi_asu"),
        Column("signal_value", "double", C.INTERNAL, "Signal value in the metric's unit"),
        Column("latitude", "double", C.PERSONAL, "Device latitude rounded to 2 decimals (~1 km); the precise value only in location_encrypted"),
        Column("longitude", "double", C.PERSONAL, "Device longitude rounded to 2 decimals (<= ~1 km); the precise value only in location_encrypted"),
        Column("country_code", "string", C.INTERNAL, "ISO 3166 code where the device was (US-CA for California)"),
        Column("carrier_mccmnc", "string", C.INTERNAL, "Serving carrier MCC-MNC"),
        Column("duration_ms", "long", C.INTERNAL, "Call duration (call_end only)", plane=Plane.SIGNALING, plane_reason=_TRAFFIC),
        Column("failure_reason", "string", C.INTERNAL, "Failure reason (call_failure only)", plane=Plane.SIGNALING, plane_reason=_TRAFFIC),
        Column("telemetry_level", "string", C.INTERNAL, "basic | diagnostic as the client reported (schema 2)"),
        Column("diagnostics_opt_out", "boolean", C.INTERNAL, "Subscriber opted out of diagnostics (schema 2)"),
        Column("bytes_sent", "long", C.INTERNAL, "Media bytes sent (schema 2, call_end)", plane=Plane.MEDIA, plane_reason=_MEDIA),
        Column("bytes_received", "long", C.INTERNAL, "Media bytes received (schema 2, call_end)", plane=Plane.MEDIA, plane_reason=_MEDIA),
        Column("mos", "double", C.INTERNAL, "Diagnostic: estimated mean opinion score", plane=Plane.MEDIA, plane_reason=_MEDIA),
        Column("jitter_ms", "int", C.INTERNAL, "Diagnostic: jitter", plane=Plane.MEDIA, plane_reason=_MEDIA),
        Column("quality_samples", "int", C.INTERNAL, "Diagnostic (call_end): times the SDK sampled mos / jitter during the call, if the build reports it"),
        Column("dropped_fields", "string", C.INTERNAL, "Comma-separated names of fields the client sent outside the allowed set of the SDK configuration in force (lake_layout/sdk_config.toml): bronze dropped their values; null when none"),
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
    writer="jobs.ingest.bronze",
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
    writer="jobs.ingest.bronze",
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
        # The door's registry (jobs.ingest.door): a nonce seen here for the device is never accepted again for another batch.
        Column("device_pseudonym", "string", C.PSEUDONYMOUS, "Device that signed the upload (null if not authentic)"),
        Column("batch_id", "string", C.INTERNAL, "Batch id of an authentic upload"),
        Column("attestation_nonce", "string", C.INTERNAL, "Hex nonce of the upload's attestation verdict, if any"),
        Column("received_at", "timestamp", C.INTERNAL, "Collector receive time (from the landing key)"),
    ),
)

AUDIT_LINEAGE = TableSpec(
    name="audit.lineage",
    writer="jobs.platform.lineage",
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
    writer="jobs.platform.quality",
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
    writer="jobs.ingest.reference",
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
    writer="jobs.curate.silver_calls",
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
    optimize_write=True,
    columns=(
        Column("call_id", "string", C.INTERNAL, "Client-generated call id", nullable=False, plane=Plane.SIGNALING, plane_reason=_TRAFFIC),
        Column("call_date", "date", C.INTERNAL, "UTC date of started_at (of the first event if no start); partition column", nullable=False),
        Column("status", "string", C.INTERNAL, "completed | failed | incomplete (start, no end within the window) | open (still within it) | orphan_end (end without start)", nullable=False, plane=Plane.SIGNALING, plane_reason=_TRAFFIC),
        Column("started_at", "timestamp", C.INTERNAL, "Corrected call_start time (UTC)", plane=Plane.SIGNALING, plane_reason=_TRAFFIC),
        Column("ended_at", "timestamp", C.INTERNAL, "Corrected call_end / call_failure time (UTC)", plane=Plane.SIGNALING, plane_reason=_TRAFFIC),
        Column("duration_ms", "long", C.INTERNAL, "Talk time reported by call_end (0 for failed calls)", plane=Plane.SIGNALING, plane_reason=_TRAFFIC),
        Column("failure_reason", "string", C.INTERNAL, "call_failure reason", plane=Plane.SIGNALING, plane_reason=_TRAFFIC),
        Column("subscriber_pseudonym", "string", C.PSEUDONYMOUS, "Caller", nullable=False, plane=Plane.SIGNALING, plane_reason=_PARTY),
        Column("callee_pseudonym", "string", C.PSEUDONYMOUS, "Callee", plane=Plane.SIGNALING, plane_reason=_PARTY),
        Column("destination_class", "string", C.INTERNAL, "Class of the dialled number (jobs.ingest.destinations); billing adds on_net", plane=Plane.SIGNALING, plane_reason=_TRAFFIC),
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
        Column("bytes_sent", "long", C.INTERNAL, "Media bytes sent (schema 2)", plane=Plane.MEDIA, plane_reason=_MEDIA),
        Column("bytes_received", "long", C.INTERNAL, "Media bytes received (schema 2)", plane=Plane.MEDIA, plane_reason=_MEDIA),
        Column("data_bytes", "long", C.INTERNAL, "bytes_sent + bytes_received (null if unreported)", plane=Plane.MEDIA, plane_reason=_MEDIA),
        Column("telemetry_level", "string", C.INTERNAL, "Consent in force at call start: basic | diagnostic | opted_out | unknown", nullable=False),
        Column("mos", "double", C.INTERNAL, "Diagnostic MOS; null unless consent allowed diagnostics at call time", plane=Plane.MEDIA, plane_reason=_MEDIA),
        Column("jitter_ms", "int", C.INTERNAL, "Diagnostic jitter; same consent rule", plane=Plane.MEDIA, plane_reason=_MEDIA),
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
    writer="jobs.curate.silver_calls",
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
    writer="jobs.curate.silver_calls",
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
    writer="jobs.publish.hourly_geo",
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

GOLD_PUBLIC_USAGE_STATS = TableSpec(
    name="gold.public_usage_stats",
    writer="jobs.publish.public_usage_stats",
    description=(
        "Differentially private public usage statistics (jobs.publish.public_usage_stats). Datasets: "
        "'daily_country_network' = calls and talk minutes per day x country x network class; "
        "'hourly_national_calls' = calls per day x hour x country (network_class '*'). Before counting, each "
        "subscriber's contribution per day is bounded: at most dp.max_calls_per_subscriber_day calls (kept by "
        "hash of call_id) and their minutes scaled down to at most dp.max_minutes_per_subscriber_day. Noise is "
        "calibrated to those bounds (L1 sensitivity of each histogram = the bound): two-sided geometric for "
        "counts, Laplace for minutes; values are then clamped at 0 and rounded (post-processing). The cells are "
        "a fixed public domain (dp.countries x network classes x hours), so every cell has a row, with or "
        "without data. Epsilon per row and the budget ledger are in audit.privacy_budget."
    ),
    purpose="Public statistics with a differential privacy guarantee per subscriber-day.",
    retention_tier=RetentionTier.GOLD_AGGREGATE,
    partition_by=("period",),
    merge_keys=("dataset", "period", "country_code", "network_class", "hour", "statistic"),
    columns=(
        Column("release_id", "string", C.PUBLIC, "Release the row belongs to (dataset/period/n); one ledger row each", nullable=False),
        Column("dataset", "string", C.PUBLIC, "daily_country_network | hourly_national_calls", nullable=False),
        Column("period", "date", C.PUBLIC, "UTC call date the statistic covers; partition column", nullable=False),
        Column("country_code", "string", C.PUBLIC, "Country (ISO 3166, US-CA for California) from the fixed domain dp.countries", nullable=False),
        Column("network_class", "string", C.PUBLIC, "wifi | wired | cellular_5g | cellular_4g | cellular_legacy | unknown, or '*' (all)", nullable=False),
        Column("hour", "int", C.PUBLIC, "UTC hour 0-23 of the call start (hourly dataset); null for daily"),
        Column("statistic", "string", C.PUBLIC, "calls | minutes: which of the value columns is set", nullable=False),
        Column("calls", "long", C.PUBLIC, "Noisy count of calls started (statistic 'calls'): a non-negative integer"),
        Column("minutes", "double", C.PUBLIC, "Noisy talk minutes (statistic 'minutes'): non-negative, rounded to 0.1"),
        Column("epsilon", "string", C.PUBLIC, "Epsilon this statistic of the release spent (exact decimal or p/q)", nullable=False),
        Column("mechanism", "string", C.PUBLIC, "geometric | laplace (diffprivlib)", nullable=False),
        Column("sensitivity", "long", C.PUBLIC, "L1 sensitivity of the statistic's histogram (= the contribution bound)", nullable=False),
        Column("bounds", "string", C.PUBLIC, "Contribution bounds the release used, per subscriber and day", nullable=False),
        Column("released_at", "timestamp", C.PUBLIC, "When the release was computed", nullable=False),
    ),
)

AUDIT_PRIVACY_BUDGET = TableSpec(
    name="audit.privacy_budget",
    writer="jobs.publish.public_usage_stats",
    description=(
        "Privacy budget ledger: one row per differentially private release of gold.public_usage_stats "
        "(status 'spent') and per refused attempt (status 'refused'), with the epsilon it spent or asked for, "
        "what the dataset and period had spent before and the cap (dp.epsilon_cap). Epsilons are exact "
        "decimal strings (or p/q), summed as fractions, never floats. Written before the release is published."
    ),
    purpose="Proof that no dataset and period spent more privacy budget than the configured cap.",
    retention_tier=RetentionTier.AUDIT,
    partition_by=(),
    merge_keys=("release_id",),
    columns=(
        Column("release_id", "string", C.INTERNAL, "Release id (dataset/period/n), or dataset/period/refused/<run_id>", nullable=False),
        Column("dataset", "string", C.INTERNAL, "daily_country_network | hourly_national_calls", nullable=False),
        Column("period", "date", C.INTERNAL, "Call date the release covers", nullable=False),
        Column("epsilon", "string", C.INTERNAL, "Epsilon spent (or requested, if refused): exact decimal or p/q", nullable=False),
        Column("delta", "string", C.INTERNAL, "Delta spent (0: pure differential privacy)", nullable=False),
        Column("mechanism", "string", C.INTERNAL, "Mechanisms per statistic, e.g. calls=geometric;minutes=laplace", nullable=False),
        Column("cap", "string", C.INTERNAL, "Epsilon cap of the dataset and period at the time", nullable=False),
        Column("spent_before", "string", C.INTERNAL, "Epsilon the dataset and period had spent before this row", nullable=False),
        Column("status", "string", C.INTERNAL, "spent | refused", nullable=False),
        Column("reason", "string", C.INTERNAL, "Why it was spent (first release, re-release, ...) or refused", nullable=False),
        Column("recorded_at", "timestamp", C.INTERNAL, "When the row was written", nullable=False),
        Column("run_id", "string", C.INTERNAL, "Job run that wrote it", nullable=False),
    ),
)

SECURITY_DATA_KEYS = TableSpec(
    name="security.data_keys",
    writer="jobs.platform.envelope",
    description=(
        "Envelope-encryption data keys (DEKs): one AES-256 key per ingest run, stored only wrapped by the "
        "key-encryption key (KEK) of a key provider (local key file or Vault Transit). Restricted cells name "
        "their DEK id; a reader unwraps the DEK through the provider once and decrypts. Rotating the KEK re-wraps "
        "these rows only: no data table is rewritten. Deleting a row crypto-shreds every cell it encrypted."
    ),
    purpose="Decrypting restricted columns for network operations and forensics; key rotation; crypto-shredding.",
    # Keys must live as long as the data they decrypt: the longest tier.
    retention_tier=RetentionTier.AUDIT,
    partition_by=(),
    merge_keys=("dek_id",),
    columns=(
        Column("dek_id", "string", C.INTERNAL, "Data key id, as in encryption_key_id and the ciphertext header", nullable=False),
        Column("provider", "string", C.INTERNAL, "Key provider holding the KEK: local | vault", nullable=False),
        Column("kek_id", "string", C.INTERNAL, "KEK (version) that wrapped the key: a key-file id, or <mount>/<key>:v<N> in Vault", nullable=False),
        Column("kek_version", "int", C.INTERNAL, "KEK version number (the N of enc-N or vault:vN)"),
        Column("wrapped_key", "binary", C.INTERNAL, "The DEK encrypted under the KEK (useless without the provider)", nullable=False),
        Column("scope", "string", C.INTERNAL, "What it encrypts, e.g. bronze.call_events upload_date=2026-11-24", nullable=False),
        Column("created_at", "timestamp", C.INTERNAL, "When the key was made", nullable=False),
        Column("created_by_run", "string", C.INTERNAL, "Run that made and used it", nullable=False),
        Column("rewrapped_at", "timestamp", C.INTERNAL, "Last KEK rotation that re-wrapped it (null if never)"),
    ),
)

AUDIT_PRIVACY_AUDIT = TableSpec(
    name="audit.privacy_audit",
    writer="jobs.privacy.audit",
    description=(
        "Re-identification attack simulation (jobs.privacy.audit, `voiplake privacy-audit`): one row per audited "
        "table per run. An attacker who knows a few calls of each sampled target (hour, H3 cell, network class, "
        "platform) tries to single the target out: in gold aggregates via the smallest published group consistent "
        "with a known call ('aggregate_linkage'), in the pseudonymous silver records by matching all known calls "
        "('record_linkage'); differentially private tables report the epsilon spent ('differential_privacy'). "
        "Also k-anonymity by our own check and by pycanon on the rebuilt microdata, and l-diversity."
    ),
    purpose="Evidence for regulators that published tables do not single out subscribers; why an audit failed.",
    retention_tier=RetentionTier.AUDIT,
    partition_by=("audit_date",),
    merge_keys=("run_id", "table_name"),
    columns=(
        Column("run_id", "string", C.INTERNAL, "Audit run id", nullable=False),
        Column("audit_date", "date", C.INTERNAL, "Call date of the data audited; partition column", nullable=False),
        Column("table_name", "string", C.INTERNAL, "Audited table, e.g. gold.hourly_geo_usage", nullable=False),
        Column("method", "string", C.INTERNAL, "aggregate_linkage | record_linkage | differential_privacy", nullable=False),
        Column("targets", "int", C.INTERNAL, "Subscribers attacked (sampled with privacy_audit.seed)", nullable=False),
        Column("known_calls", "int", C.INTERNAL, "Calls of each target the attacker knows (at most)", nullable=False),
        Column("unique_share", "double", C.INTERNAL, "Share of targets singled out (group of 1)"),
        Column("near_unique_share", "double", C.INTERNAL, "Share of targets in a group of 2..privacy_audit.near_unique_size"),
        Column("max_prosecutor_risk", "double", C.INTERNAL, "Largest per-target prosecutor risk (1 / smallest group)"),
        Column("mean_prosecutor_risk", "double", C.INTERNAL, "Mean per-target prosecutor risk"),
        Column("k_required", "int", C.INTERNAL, "privacy.k_anonymity at audit time"),
        Column("k_min_ours", "long", C.INTERNAL, "Our check: smallest distinct_subscribers of the published rows"),
        Column("k_min_independent", "long", C.INTERNAL, "pycanon k_anonymity on the rebuilt (subscriber, row) microdata"),
        Column("l_diversity", "long", C.INTERNAL, "pycanon l_diversity of the sensitive attribute (reported, not gating)"),
        Column("sensitive_attribute", "string", C.INTERNAL, "Sensitive attribute l-diversity was measured on"),
        Column("threshold", "double", C.INTERNAL, "privacy_audit.max_prosecutor_risk applied to published tables"),
        Column("published", "boolean", C.INTERNAL, "Whether the table is published (only published tables can fail)", nullable=False),
        Column("passed", "boolean", C.INTERNAL, "Risk <= threshold and both k checks >= k_required (always true if unpublished)", nullable=False),
        Column("detail", "string", C.INTERNAL, "Plain-language finding and supporting figures (JSON-free prose)"),
        Column("audited_at", "timestamp", C.INTERNAL, "When the audit ran", nullable=False),
    ),
)

GOLD_CAPACITY_BUSY_HOUR = TableSpec(
    name="gold.capacity_busy_hour",
    writer="jobs.business.capacity_busy_hour",
    description=(
        "SIP trunk capacity per trunk group (lake_layout/trunks.py: country -> trunk group and region) and UTC "
        "day, from the intervals of completed silver calls clipped to the day: the busy hour (the clock hour "
        "carrying the most traffic), its traffic in Erlangs (call-seconds overlapping the hour / 3600), the peak "
        "number of simultaneous calls (sweep over call starts and ends), and the SIP channels the busy-hour "
        "traffic needs at the configured grade of service by Erlang B (jobs.business.erlang)."
    ),
    purpose="Dimensioning SIP trunks and session border controllers per interconnect and region.",
    retention_tier=RetentionTier.GOLD_AGGREGATE,
    partition_by=("call_date",),
    merge_keys=("call_date", "trunk_group"),
    columns=(
        Column("call_date", "date", C.INTERNAL, "UTC day whose clock hours are measured; partition column", nullable=False),
        Column("trunk_group", "string", C.INTERNAL, "Trunk group (lake_layout.trunks), intl-default for countries without one", nullable=False),
        Column("region", "string", C.INTERNAL, "Planning / media-relay region of the trunk group", nullable=False),
        Column("busy_hour", "int", C.INTERNAL, "UTC clock hour 0-23 with the most traffic (earliest on ties)", nullable=False),
        Column("busy_hour_start", "timestamp", C.INTERNAL, "Start of the busy hour (UTC)", nullable=False),
        Column("busy_hour_erlangs", "double", C.INTERNAL, "Traffic in the busy hour: call-seconds overlapping it / 3600", nullable=False),
        Column("busy_hour_calls", "long", C.INTERNAL, "Completed calls overlapping the busy hour", nullable=False),
        Column("day_erlangs", "double", C.INTERNAL, "Mean traffic over the day: call-seconds in the day / 86400", nullable=False),
        Column("calls", "long", C.INTERNAL, "Completed calls overlapping the day", nullable=False),
        Column("peak_concurrent_calls", "long", C.INTERNAL, "Most calls in progress at one instant (intervals [start, end))", nullable=False),
        Column("peak_at", "timestamp", C.INTERNAL, "First instant the peak was reached (UTC)", nullable=False),
        Column("blocking", "string", C.INTERNAL, "Grade of service dimensioned for (capacity.blocking, exact decimal)", nullable=False),
        Column("channels_required", "int", C.INTERNAL, "Smallest channel count whose Erlang B blocking at busy_hour_erlangs is <= blocking", nullable=False),
        Column("blocking_at_channels", "double", C.INTERNAL, "Erlang B blocking of busy_hour_erlangs on channels_required channels", nullable=False),
        Column("run_id", "string", C.INTERNAL, "Run that computed the row", nullable=False),
        Column("computed_at", "timestamp", C.INTERNAL, "When the row was computed", nullable=False),
    ),
)

GOLD_COST_ALLOCATION = TableSpec(
    name="gold.cost_allocation",
    writer="jobs.business.cost_allocation",
    description=(
        "Monthly infrastructure costs (finance's input file per period: SIP trunks, media servers, storage) "
        "allocated to accounts and their departments in proportion to usage in silver.calls (a weighted mix "
        "of talk time, calls and data bytes per cost center, [finance] in infra/voiplake.toml). Largest-remainder "
        "rounding to the minor unit, first to accounts, then within each account to departments: the rows of a "
        "cost center sum exactly to its input amount. Money in integer minor units, shares as exact fractions."
    ),
    purpose="Chargeback of infrastructure costs to customer accounts and departments; finance's cost extract.",
    retention_tier=RetentionTier.GOLD_AGGREGATE,
    partition_by=("period",),
    merge_keys=("period", "cost_center", "account_id", "department"),
    columns=(
        Column("period", "string", C.INTERNAL, "Month YYYY-MM (UTC call dates); partition column", nullable=False),
        Column("cost_center", "string", C.INTERNAL, "sip_trunks | media_servers | storage (the input file's)", nullable=False),
        Column("account_id", "string", C.INTERNAL, "Account (silver.calls account_id; 'consumer', or 'unassigned' if unknown)", nullable=False),
        Column("department", "string", C.INTERNAL, "Department (reference.subscriber_consent, latest state by period end); '(none)' if none", nullable=False),
        Column("currency", "string", C.INTERNAL, "ISO 4217 currency of the amounts", nullable=False),
        Column("amount_minor", "long", C.INTERNAL, "Allocated amount in minor units (cents)", nullable=False),
        Column("account_amount_minor", "long", C.INTERNAL, "The account's allocation of the cost center (sum of its department rows)", nullable=False),
        Column("cost_center_total_minor", "long", C.INTERNAL, "The cost center's input amount (sum of its rows)", nullable=False),
        Column("share", "string", C.INTERNAL, "Exact usage share of the row in the cost center (p/q)", nullable=False),
        Column("drivers", "string", C.INTERNAL, "Driver weights applied, e.g. minutes:1,data_bytes:1", nullable=False),
        Column("talk_ms", "long", C.INTERNAL, "Talk time of completed calls in the period (ms)", nullable=False),
        Column("calls", "long", C.INTERNAL, "Calls in the period (any status)", nullable=False),
        Column("data_bytes", "long", C.INTERNAL, "Media bytes in the period", nullable=False),
        Column("costs_file", "string", C.INTERNAL, "Finance input file the amounts came from", nullable=False),
        Column("costs_sha256", "string", C.INTERNAL, "SHA-256 of that file", nullable=False),
        Column("run_id", "string", C.INTERNAL, "Run that allocated", nullable=False),
        Column("allocated_at", "timestamp", C.INTERNAL, "When", nullable=False),
    ),
)

_RATING = (
    "Rated per lake_layout/billing_plans.toml ([billing] in infra/voiplake.toml): billable seconds by the plan's "
    "increments, included minutes consumed in call order by the plan's included classes, overage charged per "
    "call at the class rate, rounded half up to the minor unit."
)

GOLD_BILLING_RATED_CALLS = TableSpec(
    name="gold.billing_rated_calls",
    writer="jobs.business.billing_usage",
    description=(
        "One row per billable call (completed, talk time > 0, a B2B account) and invoice: how it was rated. "
        + _RATING + " Calls of an open period are re-rated on every run; once the period is closed its rows are "
        "frozen, and a call that arrives for it later gets an adjustment row (is_adjustment) invoiced in the "
        "period open at the time."
    ),
    purpose="Traceable rating of every billed call; the lines of the billing extract.",
    retention_tier=RetentionTier.FINANCIAL,
    partition_by=("period",),
    merge_keys=("call_id", "invoice_period"),
    columns=(
        Column("period", "string", C.INTERNAL, "Billing period of the call's start (YYYY-MM, cut-off and time zone from [billing]); partition column", nullable=False),
        Column("invoice_period", "string", C.INTERNAL, "Period whose invoice carries the row (= period unless an adjustment)", nullable=False),
        Column("is_adjustment", "boolean", C.INTERNAL, "Rated after its period closed: billed in invoice_period, the closed period untouched", nullable=False),
        Column("call_id", "string", C.INTERNAL, "silver.calls call_id", nullable=False),
        Column("call_date", "date", C.INTERNAL, "silver.calls call_date (UTC)", nullable=False),
        Column("started_at", "timestamp", C.INTERNAL, "Call start (UTC)", nullable=False),
        Column("account_id", "string", C.INTERNAL, "B2B account", nullable=False),
        Column("plan_id", "string", C.INTERNAL, "Plan the account is on", nullable=False),
        Column("currency", "string", C.INTERNAL, "ISO 4217 currency of the charge", nullable=False),
        Column("destination_class", "string", C.INTERNAL, "Destination class rated (silver's, or on_net for a callee who is our subscriber)", nullable=False),
        Column("duration_ms", "long", C.INTERNAL, "Talk time (silver.calls)", nullable=False),
        Column("billable_seconds", "long", C.INTERNAL, "Talk time rounded up by the plan's increments", nullable=False),
        Column("included_seconds", "long", C.INTERNAL, "Billable seconds covered by the included minutes", nullable=False),
        Column("overage_seconds", "long", C.INTERNAL, "Billable seconds charged", nullable=False),
        Column("rate_minor_per_minute", "long", C.INTERNAL, "Rate applied to overage (minor units per minute)", nullable=False),
        Column("charge_minor", "long", C.INTERNAL, "Charge in minor units: overage_seconds * rate / 60, rounded half up", nullable=False),
        Column("rating_rule", "string", C.INTERNAL, "The rule applied, readable: plan, class, increments, rate, allowance", nullable=False),
        Column("run_id", "string", C.INTERNAL, "Run that rated the row", nullable=False),
        Column("rated_at", "timestamp", C.INTERNAL, "When", nullable=False),
    ),
)

GOLD_BILLING_USAGE = TableSpec(
    name="gold.billing_usage",
    writer="jobs.business.billing_usage",
    description=(
        "Per account, invoice period and usage period: billable, included and overage minutes (as seconds) and "
        "charges in integer minor units, summed from gold.billing_rated_calls. A row with usage_period = "
        "invoice_period is the period's usage; other rows are adjustments for calls that arrived after their "
        "period closed. " + _RATING
    ),
    purpose="What each B2B account is invoiced for; finance's billing reconciliation.",
    retention_tier=RetentionTier.FINANCIAL,
    partition_by=("invoice_period",),
    merge_keys=("invoice_period", "account_id", "usage_period"),
    columns=(
        Column("invoice_period", "string", C.INTERNAL, "Period invoiced (YYYY-MM); partition column", nullable=False),
        Column("usage_period", "string", C.INTERNAL, "Period the calls were made in", nullable=False),
        Column("row_type", "string", C.INTERNAL, "usage | adjustment", nullable=False),
        Column("account_id", "string", C.INTERNAL, "B2B account", nullable=False),
        Column("plan_id", "string", C.INTERNAL, "Plan", nullable=False),
        Column("currency", "string", C.INTERNAL, "ISO 4217", nullable=False),
        Column("calls", "long", C.INTERNAL, "Billable calls", nullable=False),
        Column("duration_ms", "long", C.INTERNAL, "Talk time of those calls", nullable=False),
        Column("billable_seconds", "long", C.INTERNAL, "After rounding increments", nullable=False),
        Column("included_seconds", "long", C.INTERNAL, "Covered by included minutes", nullable=False),
        Column("overage_seconds", "long", C.INTERNAL, "Charged", nullable=False),
        Column("charge_minor", "long", C.INTERNAL, "Charges in minor units (sum of the calls' charges)", nullable=False),
        Column("period_closed", "boolean", C.INTERNAL, "The usage period was closed when the row was written", nullable=False),
        Column("run_id", "string", C.INTERNAL, "Run that wrote the row", nullable=False),
        Column("computed_at", "timestamp", C.INTERNAL, "When", nullable=False),
    ),
)

AUDIT_BILLING_PERIODS = TableSpec(
    name="audit.billing_periods",
    writer="jobs.business.billing_usage",
    description=(
        "Billing periods that have been closed, when and by which run, with their totals at closing. A closed "
        "period stays closed whatever the date of a later (backfill) run: its rated calls are never rewritten."
    ),
    purpose="Proof that closed periods are not silently rewritten; when each invoice run could start.",
    retention_tier=RetentionTier.FINANCIAL,
    merge_keys=("period",),
    columns=(
        Column("period", "string", C.INTERNAL, "Billing period (YYYY-MM)", nullable=False),
        Column("closed_at", "timestamp", C.INTERNAL, "When it was closed", nullable=False),
        Column("closed_as_of", "date", C.INTERNAL, "The run date that closed it (>= period end + close_after_days)", nullable=False),
        Column("calls", "long", C.INTERNAL, "Rated calls at closing", nullable=False),
        Column("charge_minor", "long", C.INTERNAL, "Charges at closing (minor units)", nullable=False),
        Column("run_id", "string", C.INTERNAL, "Run that closed it", nullable=False),
    ),
)

GOLD_ACCOUNT_USAGE_DAILY = TableSpec(
    name="gold.account_usage_daily",
    writer="jobs.business.account_usage",
    description=(
        "Aggregated usage per B2B account and UTC call date from silver.calls (consumers excluded): calls of "
        "any status, completed and failed calls, talk time of completed calls, media bytes and distinct active "
        "users, with the account's reseller (lake_layout/resellers.toml) at computation time, null for direct "
        "accounts. Readers serving resellers (usage-report extract, CRM API) filter by the policy in force "
        "through jobs.business.account_usage.reseller_usage, not by the stored reseller_id."
    ),
    purpose="Usage reports and the CRM API for resellers and B2B account management.",
    retention_tier=RetentionTier.GOLD_AGGREGATE,
    partition_by=("call_date",),
    merge_keys=("call_date", "account_id"),
    columns=(
        Column("call_date", "date", C.INTERNAL, "UTC call date (silver.calls call_date); partition column", nullable=False),
        Column("account_id", "string", C.INTERNAL, "B2B account (never 'consumer')", nullable=False),
        Column("reseller_id", "string", C.INTERNAL, "Reseller owning the account when the row was computed; null for a direct account"),
        Column("calls", "long", C.INTERNAL, "Calls of any status (completed, failed, incomplete, open, orphan_end)", nullable=False),
        Column("completed_calls", "long", C.INTERNAL, "Completed calls", nullable=False),
        Column("failed_calls", "long", C.INTERNAL, "Failed calls", nullable=False),
        Column("talk_ms", "long", C.INTERNAL, "Talk time of completed calls (ms, exact)", nullable=False),
        Column("data_bytes", "long", C.INTERNAL, "Media bytes sent + received (unreported counts 0)", nullable=False),
        Column("active_users", "long", C.INTERNAL, "Distinct subscribers (pseudonyms) with a call that day", nullable=False),
        Column("run_id", "string", C.INTERNAL, "Run that computed the row", nullable=False),
        Column("computed_at", "timestamp", C.INTERNAL, "When the row was computed", nullable=False),
    ),
)

GOLD_SUPPORT_TRIGGERS = TableSpec(
    name="gold.support_triggers",
    writer="jobs.business.support_triggers",
    description=(
        "Support workflow events (jobs.business.support_triggers, [quotas] in infra/voiplake.toml): an account's or one of its "
        "subscribers' month-to-date talk minutes (completed calls in silver.calls up to the evaluated day) reaching a "
        "threshold percentage of the quota (once per threshold and period), or an account's day with a failure "
        "rate / short-call ratio above the maximum over at least quotas.min_calls calls (once per kind and day). "
        "trigger_id hashes the event's identity, so reruns and later days never fire an event twice. Each row "
        "carries the delivery status of its sink (file or webhook): delivered_at stays null until a delivery succeeds."
    ),
    purpose="Alerting customer support and account managers on quota use and degraded call quality of B2B accounts.",
    retention_tier=RetentionTier.OPERATIONAL,
    partition_by=("period",),
    merge_keys=("trigger_id",),
    columns=(
        Column("trigger_id", "string", C.INTERNAL, "SHA-256 of kind|account_id|subscriber|period or call_date|threshold: the event's identity and the receivers' idempotency key", nullable=False),
        Column("kind", "string", C.INTERNAL, "quota_threshold | failure_rate | short_call_ratio", nullable=False),
        Column("scope", "string", C.INTERNAL, "account | subscriber (whose quota; quality triggers are per account)", nullable=False),
        Column("account_id", "string", C.INTERNAL, "B2B account (silver.calls account_id)", nullable=False),
        Column("subscriber_pseudonym", "string", C.PSEUDONYMOUS, "Subscriber whose own quota was reached; null for account-level triggers"),
        Column("period", "string", C.INTERNAL, "Quota period YYYY-MM (UTC call dates); partition column", nullable=False),
        Column("call_date", "date", C.INTERNAL, "Evaluated UTC call date on which the event was detected", nullable=False),
        Column("threshold", "string", C.INTERNAL, "Crossed threshold as an exact decimal: percent of the quota, or the maximum ratio", nullable=False),
        Column("observed", "double", C.INTERNAL, "Observed value (numerator / denominator; percent for quota triggers) for display", nullable=False),
        Column("numerator", "long", C.INTERNAL, "Exact observed ratio's numerator: usage ms, failed calls or short calls", nullable=False),
        Column("denominator", "long", C.INTERNAL, "... and denominator: quota ms, completed + failed calls or completed calls", nullable=False),
        Column("quota_minutes", "long", C.INTERNAL, "Monthly quota in minutes (quota triggers only)"),
        Column("usage_ms", "long", C.INTERNAL, "Month-to-date talk time of completed calls (quota triggers only)"),
        Column("calls", "long", C.INTERNAL, "Calls behind the figure: month-to-date completed calls, or the day's calls counted", nullable=False),
        Column("detected_at", "timestamp", C.INTERNAL, "When the event was first detected", nullable=False),
        Column("run_id", "string", C.INTERNAL, "Run that detected it", nullable=False),
        Column("sink", "string", C.INTERNAL, "Sink of the last delivery attempt: file:<path> | webhook:<url>"),
        Column("attempts", "int", C.INTERNAL, "Delivery attempts so far, over all runs", nullable=False),
        Column("last_attempt_at", "timestamp", C.INTERNAL, "When delivery was last attempted"),
        Column("delivered_at", "timestamp", C.INTERNAL, "When a delivery succeeded; null while undelivered (retried by the next run)"),
        Column("last_error", "string", C.INTERNAL, "Why the last attempt failed (HTTP status or connection error); null once delivered"),
    ),
)

_CHAIN = (
    Column("seq", "long", C.INTERNAL, "Position in the hash chain: 0, 1, 2, ... contiguous (jobs.platform.hashchain)", nullable=False),
    Column("prev_hash", "string", C.INTERNAL, "entry_hash of the previous entry (64 zeros for seq 0)", nullable=False),
    Column("entry_hash", "string", C.INTERNAL, "SHA-256 over prev_hash, seq and the canonical JSON of the other columns", nullable=False),
)

AUDIT_ACCESS_LOG = TableSpec(
    name="audit.access_log",
    writer="jobs.platform.access_log",
    description=(
        "Every read through `voiplake query` and every extract, allowed or denied: who (user, role), what (SQL or "
        "export, tables and columns read), when, rows returned and why a denial happened. Append-only and "
        "hash-chained (jobs.platform.hashchain): `voiplake audit verify` detects an altered, removed or reordered entry and, "
        "against the head anchor kept outside the table, a truncated tail."
    ),
    purpose="Accountability for access to personal data (GDPR art. 5(2), 32); evidence for auditors.",
    retention_tier=RetentionTier.AUDIT,
    partition_by=(),
    merge_keys=("seq",),
    columns=(
        Column("accessed_at", "timestamp", C.INTERNAL, "When the access was decided", nullable=False),
        Column("user", "string", C.INTERNAL, "Acting user (--as, else $VOIPLAKE_USER or $USER)", nullable=False),
        Column("role", "string", C.INTERNAL, "Role of lake_layout/access_policy.toml the user acted as", nullable=False),
        Column("action", "string", C.INTERNAL, "query | export | dsr_delete (jobs.platform.access_log.ACTIONS)", nullable=False),
        Column("statement", "string", C.INTERNAL, "The SQL, or the export command and its arguments", nullable=False),
        Column("tables", "string", C.INTERNAL, "JSON list of tables read (from the query plan, or the export's inputs)", nullable=False),
        Column("columns", "string", C.INTERNAL, "JSON list of table.column read (scan outputs of the plan)", nullable=False),
        Column("row_count", "long", C.INTERNAL, "Rows returned or exported (null when denied or failed)"),
        Column("allowed", "boolean", C.INTERNAL, "False for a denial", nullable=False),
        Column("reason", "string", C.INTERNAL, "Why it was denied (or failed); null when allowed"),
        *_CHAIN,
    ),
)

AUDIT_LANDING_INTEGRITY = TableSpec(
    name="audit.landing_integrity",
    writer="jobs.ingest.landing_integrity",
    description=(
        "One hash-chained entry per landing object ingested into bronze: its key, SHA-256 and size as received. "
        "`voiplake audit verify` re-reads each object from the object store, recomputes its SHA-256 and checks "
        "the chain, so a changed or removed object and a changed or removed entry are reported."
    ),
    purpose="Log integrity for incident response and chain of custody of the raw telemetry.",
    retention_tier=RetentionTier.AUDIT,
    partition_by=(),
    merge_keys=("seq",),
    columns=(
        Column("object_key", "string", C.INTERNAL, "Landing object key (relative to the landing bucket)", nullable=False),
        Column("bucket", "string", C.INTERNAL, "Landing bucket", nullable=False),
        Column("sha256", "string", C.INTERNAL, "SHA-256 of the object bytes at ingestion (bronze.ingested_objects)", nullable=False),
        Column("size_bytes", "long", C.INTERNAL, "Object size at ingestion", nullable=False),
        Column("upload_date", "date", C.INTERNAL, "Collector receive date", nullable=False),
        Column("ingest_run_id", "string", C.INTERNAL, "Bronze run that ingested the object", nullable=False),
        Column("recorded_at", "timestamp", C.INTERNAL, "When the entry was chained", nullable=False),
        *_CHAIN,
    ),
)

AUDIT_CUSTODY_LOG = TableSpec(
    name="audit.custody_log",
    writer="jobs.governance.forensics",
    description=(
        "Chain of custody of forensic evidence bundles (jobs.governance.forensics): one entry per event of a case (created, "
        "handed_over, received, verified) with the bundle's manifest SHA-256, the parties and when. Each entry "
        "carries SHA-256(prev_hash + canonical JSON of the entry), linked per case, so an altered or removed "
        "hand-over is detected by `voiplake forensics verify`."
    ),
    purpose="Evidence integrity for incident response and warranted disclosure (chain of custody).",
    retention_tier=RetentionTier.AUDIT,
    partition_by=(),
    merge_keys=("case_id", "seq"),
    columns=(
        Column("case_id", "string", C.INTERNAL, "Investigation case id", nullable=False),
        Column("seq", "long", C.INTERNAL, "Position in the case's chain: 0, 1, 2, ...", nullable=False),
        Column("event", "string", C.INTERNAL, "created | handed_over | received | verified", nullable=False),
        Column("manifest_sha256", "string", C.INTERNAL, "SHA-256 of the bundle's canonical manifest.json", nullable=False),
        Column("from_party", "string", C.INTERNAL, "Who handed the bundle over (the exporter for created)", nullable=False),
        Column("to_party", "string", C.INTERNAL, "Who received it", nullable=False),
        Column("at", "timestamp", C.INTERNAL, "When (UTC)", nullable=False),
        Column("note", "string", C.INTERNAL, "Free text (e.g. medium, seal number)"),
        Column("prev_hash", "string", C.INTERNAL, "entry_hash of the case's previous entry (64 zeros for seq 0)", nullable=False),
        Column("entry_hash", "string", C.INTERNAL, "SHA-256 over prev_hash and the canonical JSON of the other fields", nullable=False),
    ),
)

AUDIT_LEGAL_HOLDS = TableSpec(
    name="audit.legal_holds",
    writer="jobs.governance.legal_holds",
    description=(
        "Legal holds and time-based locks as an append-only, hash-chained event log (jobs.platform.hashchain): one "
        "`placed` entry per hold with its scope (a subscriber's pseudonyms, an account, and/or a period of data) "
        "and its expiry, one `released` entry when it is lifted. A hold is active from its `placed` entry until "
        "released or past `until`. Retention purges and DSR deletions skip or refuse data an active hold covers."
    ),
    purpose="Preservation of evidence under litigation or investigation (legal hold) overriding retention and erasure.",
    retention_tier=RetentionTier.AUDIT,
    partition_by=(),
    merge_keys=("seq",),
    columns=(
        Column("hold_id", "string", C.INTERNAL, "Hold id (one id across its placed and released entries)", nullable=False),
        Column("event", "string", C.INTERNAL, "placed | released", nullable=False),
        Column("case_id", "string", C.INTERNAL, "Case or matter the hold serves", nullable=False),
        Column("subscriber_pseudonyms", "string", C.PSEUDONYMOUS, "JSON list of the held subscriber's pseudonyms (one per pseudonym key); null when not subject-scoped"),
        Column("account_id", "string", C.INTERNAL, "Held account; null when not account-scoped"),
        Column("data_from", "date", C.INTERNAL, "First UTC day of data held (inclusive); null: from the beginning"),
        Column("data_to", "date", C.INTERNAL, "Last UTC day of data held (inclusive); null: open-ended"),
        Column("until", "date", C.INTERNAL, "Hold expires after this day unless released earlier; null: until released"),
        Column("actor", "string", C.INTERNAL, "Who placed or released it", nullable=False),
        Column("at", "timestamp", C.INTERNAL, "When (UTC)", nullable=False),
        Column("reason", "string", C.INTERNAL, "Why it was placed or released"),
        *_CHAIN,
    ),
)

AUDIT_RETENTION_ACTIONS = TableSpec(
    name="audit.retention_actions",
    writer="jobs.governance.retention",
    description=(
        "Every retention purge step: per table and jurisdiction, the Delta DELETE (predicate, rows removed, the "
        "Delta version it produced), the VACUUM (files removed), the expiry of landing objects, and data an "
        "active legal hold kept (rows or objects skipped, with the hold ids)."
    ),
    purpose="Proof that retention periods are enforced (GDPR art. 5(1)(e) storage limitation, CCPA 1798.100(a)(3)).",
    retention_tier=RetentionTier.AUDIT,
    partition_by=(),
    merge_keys=("run_id", "step"),
    columns=(
        Column("run_id", "string", C.INTERNAL, "Retention run", nullable=False),
        Column("step", "int", C.INTERNAL, "Position of the action within the run", nullable=False),
        Column("action", "string", C.INTERNAL, "delete | vacuum | expire_objects | skipped_hold | deferred", nullable=False),
        Column("table_name", "string", C.INTERNAL, "Registry table, or landing:<bucket> for landing objects", nullable=False),
        Column("jurisdiction", "string", C.INTERNAL, "Jurisdiction the period applies to: EU | US-CA | US-other | other | unknown (subscriber not in reference.subscriber_consent); null for table-wide steps"),
        Column("retention_days", "int", C.INTERNAL, "Period applied, from lake_layout/retention_policy.toml"),
        Column("regulation", "string", C.INTERNAL, "Regulation the period comes from"),
        Column("predicate", "string", C.INTERNAL, "The DELETE predicate or the object selection"),
        Column("rows_removed", "long", C.INTERNAL, "Rows deleted (delete; 0 when nothing was due), kept under a hold (skipped_hold) or waiting for their aggregates (deferred)"),
        Column("files_removed", "long", C.INTERNAL, "Data files removed by VACUUM, landing objects expired (expire_objects) or kept under a hold (skipped_hold on landing:<bucket>)"),
        Column("delta_version", "long", C.INTERNAL, "Table version the action produced (null if none)"),
        Column("hold_ids", "string", C.INTERNAL, "JSON list of legal holds that kept data"),
        Column("detail", "string", C.INTERNAL, "Free text, e.g. why an expiry was deferred"),
        Column("executed_at", "timestamp", C.INTERNAL, "When", nullable=False),
    ),
)

AUDIT_DSR_REQUESTS = TableSpec(
    name="audit.dsr_requests",
    writer="jobs.governance.dsr",
    description=(
        "Receipts of data-subject requests (GDPR art. 15/17/20, CCPA 1798.105/110): per request, what was done "
        "(export or delete), which tables were touched with rows found or deleted and the Delta versions, the "
        "anonymous aggregates deliberately left, refusals (legal hold) and completion time. Holds the subject "
        "only as pseudonyms."
    ),
    purpose="Demonstrable handling of data-subject rights within statutory deadlines.",
    retention_tier=RetentionTier.AUDIT,
    partition_by=(),
    merge_keys=("request_id", "kind"),
    columns=(
        Column("request_id", "string", C.INTERNAL, "Request id as given by the privacy desk", nullable=False),
        Column("kind", "string", C.INTERNAL, "export | delete", nullable=False),
        Column("status", "string", C.INTERNAL, "completed | refused", nullable=False),
        Column("subscriber_pseudonyms", "string", C.PSEUDONYMOUS, "JSON list of the subject's pseudonyms (one per pseudonym key)", nullable=False),
        Column("tables", "string", C.INTERNAL, "JSON object: table -> {treatment, rows (caller / callee / linked), delta_version_before, delta_version_after, files_removed, log_files_with_subject}", nullable=False),
        Column("rows_total", "long", C.INTERNAL, "Rows exported, or deleted plus callee-redacted, in all", nullable=False),
        Column("anonymous_tables_left", "string", C.INTERNAL, "JSON list of aggregate tables left as anonymous (not personal data)"),
        Column("retained_tables", "string", C.INTERNAL, "JSON object: table -> why it is kept (financial record, audit record, no personal data)"),
        Column("landing_objects", "string", C.INTERNAL, "JSON list of landing object keys holding the subject's raw MSISDN (left to landing expiry; delete only)"),
        Column("hold_ids", "string", C.INTERNAL, "JSON list of the legal holds that refused the request (empty when completed)"),
        Column("refusal_reason", "string", C.INTERNAL, "Why refused (e.g. the legal holds covering the data); null when completed"),
        Column("actor", "string", C.INTERNAL, "Who ran it", nullable=False),
        Column("requested_at", "timestamp", C.INTERNAL, "When the run started", nullable=False),
        Column("completed_at", "timestamp", C.INTERNAL, "When it completed (null if refused)"),
        Column("output", "string", C.INTERNAL, "Export directory or manifest path (export only)"),
    ),
)

BRONZE_AUTH_EVENTS = TableSpec(
    name="bronze.auth_events",
    writer="jobs.ingest.auth",
    description=(
        "The identity provider's login attempts (landing auth/login_date=D/auth.jsonl.gz), pseudonymized at the door "
        "with bronze's keys: MSISDN and device id as keyed HMAC pseudonyms, the IP truncated (/24, /48). Lines that "
        "cannot be used go to bronze.quarantine with a reason."
    ),
    purpose="Security monitoring: correlating calls with authentication (jobs.security.anomalies).",
    retention_tier=RetentionTier.BRONZE_RESTRICTED,
    partition_by=("auth_date",),
    merge_keys=("object_key", "line_index"),
    columns=(
        Column("event_id", "string", C.INTERNAL, "Identity provider's event id", nullable=False),
        Column("auth_ts", "timestamp", C.INTERNAL, "Login attempt time (identity provider clock, UTC)", nullable=False),
        Column("auth_date", "date", C.INTERNAL, "UTC date of auth_ts; partition column", nullable=False),
        Column("subscriber_pseudonym", "string", C.PSEUDONYMOUS, "HMAC-SHA256 pseudonym of the MSISDN", nullable=False),
        Column("device_pseudonym", "string", C.PSEUDONYMOUS, "HMAC-SHA256 pseudonym of the device id", nullable=False),
        Column("pseudonym_key_id", "string", C.INTERNAL, "Pseudonym key used", nullable=False),
        Column("ip_prefix", "string", C.PERSONAL, "Client IP truncated to /24 (IPv4) or /48 (IPv6)", nullable=False),
        Column("country_code", "string", C.INTERNAL, "Country the identity provider located the client in"),
        Column("outcome", "string", C.INTERNAL, "success | failure", nullable=False),
        Column("failure_reason", "string", C.INTERNAL, "Why a login failed (bad_password, expired_token, mfa_failed, ...)"),
        Column("object_key", "string", C.INTERNAL, "Landing object (auth log) the line came from", nullable=False),
        Column("line_index", "int", C.INTERNAL, "Position of the line in the object (0-based, blank lines counted)", nullable=False),
        Column("ingest_run_id", "string", C.INTERNAL, "Run that ingested it", nullable=False),
    ),
)

GOLD_ANOMALIES = TableSpec(
    name="gold.anomalies",
    writer="jobs.security.anomalies",
    description=(
        "Security and fraud anomalies of one detection date (jobs.security.anomalies, [anomalies] in infra/voiplake.toml): "
        "call-attempt spikes per account and destination class against a robust hour-of-week baseline, media "
        "volume above the per-session / per-user thresholds, calls without a recent successful login from the "
        "device (or from a country it did not log in from; optionally from an IP range the subscriber did not log in "
        "from), and enterprise account-hours an isolation forest "
        "trained on history finds unusual. One row per finding with its score, the threshold it crossed, the "
        "severity and the evidence; subjects only as account ids and pseudonyms."
    ),
    purpose="Security operations and fraud response: SIEM alerts, device quarantine, investigation.",
    retention_tier=RetentionTier.OPERATIONAL,
    partition_by=("detection_date",),
    merge_keys=("anomaly_id",),
    columns=(
        Column("anomaly_id", "string", C.INTERNAL, "SHA-256 of detector|rule|subject|window_start: stable across reruns", nullable=False),
        Column("detection_date", "date", C.INTERNAL, "UTC call date examined; partition column", nullable=False),
        Column("detector", "string", C.INTERNAL, "attempt_spike | consumption | auth_correlation | account_baseline | door", nullable=False),
        Column("rule", "string", C.INTERNAL, "Rule or model that fired, e.g. robust_z_hour_of_week, session_kbps, no_recent_login, isolation_forest", nullable=False),
        Column("severity", "string", C.INTERNAL, "low | medium | high | critical", nullable=False),
        Column("score", "double", C.INTERNAL, "Detector score (robust z, ratio to threshold, calls, or anomaly score)", nullable=False),
        Column("threshold", "double", C.INTERNAL, "The score threshold the detector fires at (its configured sensitivity)", nullable=False),
        Column("account_id", "string", C.INTERNAL, "Account (B2B id or 'consumer')"),
        Column("subscriber_pseudonym", "string", C.PSEUDONYMOUS, "Subscriber, where the finding is about one"),
        Column("device_pseudonym", "string", C.PSEUDONYMOUS, "Device, where the finding is about one (quarantine acts on it)"),
        Column("window_start", "timestamp", C.INTERNAL, "Start of the anomalous window (UTC)", nullable=False),
        Column("window_end", "timestamp", C.INTERNAL, "End of the anomalous window (UTC)", nullable=False),
        Column("evidence", "string", C.PSEUDONYMOUS, "JSON: observed values, baseline, call ids (sample), countries", nullable=False),
        Column("run_id", "string", C.INTERNAL, "Run that detected it", nullable=False),
        Column("detected_at", "timestamp", C.INTERNAL, "When it was detected", nullable=False),
    ),
)

SECURITY_DEVICE_QUARANTINE = TableSpec(
    name="security.device_quarantine",
    writer="jobs.security.anomalies",
    description=(
        "Devices whose uploads bronze diverts to bronze.quarantine (reason device_quarantined): added automatically "
        "for anomalies at or above anomalies.quarantine_severity, each with its reason and expiry; a device is held "
        "while released_at is null and expires_at is in the future (`voiplake quarantine list | release`)."
    ),
    purpose="Automated containment of abusive or compromised devices until security operations release them.",
    retention_tier=RetentionTier.OPERATIONAL,
    partition_by=(),
    merge_keys=("quarantine_id",),
    columns=(
        Column("quarantine_id", "string", C.INTERNAL, "SHA-256 of device_pseudonym|anomaly_id", nullable=False),
        Column("device_pseudonym", "string", C.PSEUDONYMOUS, "Quarantined device", nullable=False),
        Column("pseudonym_key_id", "string", C.INTERNAL, "Pseudonym key of device_pseudonym", nullable=False),
        Column("anomaly_id", "string", C.INTERNAL, "gold.anomalies finding that caused it", nullable=False),
        Column("reason", "string", C.INTERNAL, "detector/rule and severity of the finding", nullable=False),
        Column("severity", "string", C.INTERNAL, "Severity of the finding", nullable=False),
        Column("quarantined_at", "timestamp", C.INTERNAL, "When it was added", nullable=False),
        Column("expires_at", "timestamp", C.INTERNAL, "Released automatically after this (anomalies.quarantine_days)", nullable=False),
        Column("released_at", "timestamp", C.INTERNAL, "When it was released by hand (null while held)"),
        Column("released_by", "string", C.INTERNAL, "Who released it"),
        Column("release_reason", "string", C.INTERNAL, "Why it was released"),
    ),
)

GOLD_TELEMETRY_COMPLIANCE = TableSpec(
    name="gold.telemetry_compliance",
    writer="jobs.telemetry.compliance",
    description=(
        "Daily telemetry-contract compliance (jobs.telemetry.compliance): what each client build actually uploaded on "
        "one upload date against the central SDK configuration in force when it was received (lake_layout/"
        "sdk_config.toml). One row per platform, app version and serving carrier (a device counts under its most used "
        "carrier of the day; 'unknown' for browsers): fields outside the allowed set that bronze dropped, call-quality "
        "sampling faster than allowed, high-frequency tracking on constrained (2G) networks, uploads while a call was "
        "in progress and devices over the daily background-upload byte cap, with the worst offending devices."
    ),
    purpose="Client governance: find SDK builds that break the telemetry contract and the devices running them.",
    retention_tier=RetentionTier.OPERATIONAL,
    partition_by=("compliance_date",),
    merge_keys=("compliance_date", "platform", "app_version", "carrier_mccmnc"),
    columns=(
        Column("compliance_date", "date", C.INTERNAL, "Upload (collector receive) date examined; partition column", nullable=False),
        Column("platform", "string", C.INTERNAL, "ios | android | web", nullable=False),
        Column("app_version", "string", C.INTERNAL, "Client app version ('unknown' if not reported)", nullable=False),
        Column("carrier_mccmnc", "string", C.INTERNAL, "The devices' most used serving carrier of the day ('unknown' for none)", nullable=False),
        Column("config_versions", "string", C.INTERNAL, "SDK configuration version(s) in force for these uploads, comma-separated", nullable=False),
        Column("devices", "long", C.INTERNAL, "Devices that uploaded accepted events", nullable=False),
        Column("noncompliant_devices", "long", C.INTERNAL, "Devices with at least one violation", nullable=False),
        Column("events", "long", C.INTERNAL, "Accepted events", nullable=False),
        Column("dropped_field_events", "long", C.INTERNAL, "Events carrying fields outside the allowed set (bronze dropped them)", nullable=False),
        Column("dropped_fields", "string", C.INTERNAL, "Names of the dropped fields, comma-separated (null when none)"),
        Column("fast_sampling_calls", "long", C.INTERNAL, "Calls whose quality metrics were sampled faster than quality_sample_interval_seconds", nullable=False),
        Column("constrained_tracking_calls", "long", C.INTERNAL, "Calls on a constrained network (2G) sampled faster than constrained_sample_interval_seconds", nullable=False),
        Column("uploads_during_calls", "long", C.INTERNAL, "Batches sent while one of the device's calls was in progress, where not allowed", nullable=False),
        Column("devices_over_cap", "long", C.INTERNAL, "Devices whose uploads of the day exceeded daily_background_upload_bytes", nullable=False),
        Column("bytes_uploaded", "long", C.INTERNAL, "Landing-object bytes of the devices' uploads (retries included)", nullable=False),
        Column("max_device_bytes", "long", C.INTERNAL, "Most bytes one device uploaded", nullable=False),
        Column("worst_offenders", "string", C.PSEUDONYMOUS, "JSON list of up to 5 devices with the most violations: device_pseudonym and counts per check"),
        Column("run_id", "string", C.INTERNAL, "Run that computed it", nullable=False),
        Column("computed_at", "timestamp", C.INTERNAL, "When", nullable=False),
    ),
)

ALL_TABLES: tuple[TableSpec, ...] = (
    BRONZE_CALL_EVENTS, BRONZE_QUARANTINE, BRONZE_INGESTED_OBJECTS,
    REFERENCE_SUBSCRIBER_CONSENT,
    SILVER_CALLS, SILVER_QUARANTINE, SILVER_PLATFORM_COMPLETENESS,
    GOLD_HOURLY_GEO_USAGE, GOLD_PUBLIC_USAGE_STATS,
    GOLD_CAPACITY_BUSY_HOUR, GOLD_COST_ALLOCATION, GOLD_ACCOUNT_USAGE_DAILY,
    GOLD_BILLING_RATED_CALLS, GOLD_BILLING_USAGE, AUDIT_BILLING_PERIODS,
    GOLD_SUPPORT_TRIGGERS,
    AUDIT_LINEAGE, AUDIT_QUALITY_RESULTS, AUDIT_PRIVACY_BUDGET, AUDIT_PRIVACY_AUDIT,
    AUDIT_ACCESS_LOG, AUDIT_LANDING_INTEGRITY,
    AUDIT_CUSTODY_LOG, AUDIT_LEGAL_HOLDS, AUDIT_RETENTION_ACTIONS, AUDIT_DSR_REQUESTS,
    SECURITY_DATA_KEYS,
    BRONZE_AUTH_EVENTS, GOLD_ANOMALIES, SECURITY_DEVICE_QUARANTINE,
    GOLD_TELEMETRY_COMPLIANCE,
)
TABLES_BY_NAME: dict[str, TableSpec] = {t.name: t for t in ALL_TABLES}


def table(name: str) -> TableSpec:
    try:
        return TABLES_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known: {sorted(TABLES_BY_NAME)}") from None
