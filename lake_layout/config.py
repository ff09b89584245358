"""Typed settings: one TOML file (infra/voiplake.toml) plus environment overrides.

`load_settings()` validates at load and names the bad key in its error. Every other
module takes a `Settings` (or a piece of it) instead of reading files or the
environment itself.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields, replace
from dataclasses import field as _field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "infra" / "voiplake.toml"


class SettingsError(ValueError):
    """The configuration is incomplete or malformed."""


@dataclass(frozen=True)
class LakeSettings:
    root: str

    def __post_init__(self) -> None:
        if not self.root:
            raise SettingsError("lake.root must not be empty")


@dataclass(frozen=True)
class LandingSettings:
    bucket: str
    prefix: str

    @property
    def s3a_uri(self) -> str:
        return f"s3a://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class ObjectStoreSettings:
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    data_dir: str

    @property
    def port(self) -> int:
        port = self.endpoint.rsplit(":", 1)[-1].rstrip("/")
        if not port.isdigit():
            raise SettingsError(f"object_store.endpoint {self.endpoint!r} must end in :PORT")
        return int(port)


@dataclass(frozen=True)
class KeySettings:
    file: str


DAG_TASK_MODES = ("in_process", "pyspark")
CODEGEN_MODES = ("on", "off")


@dataclass(frozen=True)
class SparkSettings:
    master: str  # local[N], or spark://host:7077 for a standalone cluster (jobs run unchanged on either)
    shuffle_partitions: int
    adaptive_initial_partitions: int  # shuffles start this wide, adaptive execution merges them (0: shuffle_partitions)
    driver_memory: str
    ivy_dir: str
    executor_memory: str  # per executor on a cluster (ignored by local[N], where the driver executes)
    executor_cores: int  # cores per executor on a cluster
    max_cores: int  # cores the application takes from a standalone cluster in all (0: what the cluster offers)
    # How the DAGs' Spark tasks get their session: "in_process" (a plain @task; the session comes from `master`)
    # or "pyspark" (@task.pyspark of the Airflow Spark provider: the session comes from Airflow connection
    # `airflow_conn_id`, i.e. the cluster Airflow is configured for, with the lake's configuration on top).
    dag_tasks: str
    airflow_conn_id: str
    # "on": Spark compiles queries to JVM code (whole-stage codegen), what a big day needs. "off": expressions
    # are interpreted, which costs far less JVM CPU on small data (the test suite runs this way).
    codegen: str
    driver_java_options: str  # extra JVM options of the driver (which also runs the tasks in local mode); "" for none

    def __post_init__(self) -> None:
        if self.dag_tasks not in DAG_TASK_MODES:
            raise SettingsError(f"spark.dag_tasks: expected one of {DAG_TASK_MODES}, got {self.dag_tasks!r}")
        if self.codegen not in CODEGEN_MODES:
            raise SettingsError(f"spark.codegen: expected one of {CODEGEN_MODES}, got {self.codegen!r}")
        if self.adaptive_initial_partitions < 0:
            raise SettingsError(f"spark.adaptive_initial_partitions must be >= 0, got {self.adaptive_initial_partitions}")


@dataclass(frozen=True)
class GeneratorSettings:
    events: int
    seed: int


@dataclass(frozen=True)
class SilverSettings:
    incomplete_after_minutes: int  # a call_start with no end for this long (in data time) is closed as incomplete
    future_tolerance_seconds: int  # corrected event times later than receive time + this are impossible

    def __post_init__(self) -> None:
        if self.incomplete_after_minutes < 1:
            raise SettingsError("silver.incomplete_after_minutes must be >= 1")
        if self.future_tolerance_seconds < 0:
            raise SettingsError("silver.future_tolerance_seconds must be >= 0")


@dataclass(frozen=True)
class PrivacySettings:
    k_anonymity: int  # every published aggregate row covers at least k distinct subscribers
    h3_cell_resolution: int  # finest geo zone of gold (H3 resolution)
    h3_region_resolution: int  # the region a cell generalizes to

    def __post_init__(self) -> None:
        if self.k_anonymity < 2:
            raise SettingsError(f"privacy.k_anonymity must be >= 2, got {self.k_anonymity}")
        if not 0 <= self.h3_region_resolution < self.h3_cell_resolution <= 15:
            raise SettingsError(
                "privacy.h3_region_resolution must be coarser (smaller) than privacy.h3_cell_resolution, both in 0..15"
            )


@dataclass(frozen=True)
class PrivacyAuditSettings:
    """Re-identification attack simulation (jobs.privacy.audit, `voiplake privacy-audit`).

    The simulated attacker knows `known_calls` calls of each of `targets` sampled subscribers (hour, H3 cell,
    network class, platform). A published table fails when a target's prosecutor risk exceeds
    `max_prosecutor_risk` (an exact decimal: compared as a fraction, so 1/5 vs "0.2" is not a float accident).
    """

    targets: int  # subscribers sampled as attack targets per audited date
    known_calls: int  # calls of each target the attacker knows
    near_unique_size: int  # a target whose smallest consistent group is <= this is "near-unique"
    max_prosecutor_risk: Decimal  # published tables fail above this risk (e.g. 0.1 = 1 in 10)
    seed: int  # target and known-call sampling seed (deterministic audits)
    report_dir: str  # Markdown report for auditors: <report_dir>/privacy-audit-<date>.md
    max_independent_records: int  # microdata records handed to pycanon at most (the smallest groups first)

    def __post_init__(self) -> None:
        for name in ("targets", "known_calls", "max_independent_records"):
            if getattr(self, name) < 1:
                raise SettingsError(f"privacy_audit.{name} must be >= 1, got {getattr(self, name)}")
        if self.near_unique_size < 2:
            raise SettingsError(f"privacy_audit.near_unique_size must be >= 2, got {self.near_unique_size}")
        if not self.max_prosecutor_risk.is_finite() or not 0 < self.max_prosecutor_risk <= 1:
            raise SettingsError(f"privacy_audit.max_prosecutor_risk must be in (0, 1], got {self.max_prosecutor_risk}")


@dataclass(frozen=True)
class LineageSettings:
    namespace: str  # OpenLineage job namespace
    openlineage_file: str  # file transport target (one JSON event per line)


@dataclass(frozen=True)
class QualitySettings:
    data_docs_dir: str  # where Great Expectations renders Data Docs (HTML) of the last run


@dataclass(frozen=True)
class DPSettings:
    """Differential privacy of gold.public_usage_stats (jobs.publish.public_usage_stats).

    `epsilon_per_release` is what one day's publication spends in total; it is split evenly between the
    two datasets (each dataset's ledger row), and within daily_country_network evenly between calls and
    minutes. `epsilon_cap` bounds what one dataset may spend on one period over all its releases.
    """

    epsilon_per_release: Decimal
    epsilon_cap: Decimal
    max_calls_per_subscriber_day: int  # calls of a subscriber and day beyond this are not counted
    max_minutes_per_subscriber_day: int  # a subscriber's minutes of a day are scaled down to at most this
    countries: str  # the published countries, comma-separated: fixed in advance, never read from the data

    def __post_init__(self) -> None:
        for name in ("epsilon_per_release", "epsilon_cap"):
            value = getattr(self, name)
            if not value.is_finite() or value <= 0:
                raise SettingsError(f"dp.{name} must be a positive decimal, got {value}")
        for name in ("max_calls_per_subscriber_day", "max_minutes_per_subscriber_day"):
            if getattr(self, name) < 1:
                raise SettingsError(f"dp.{name} must be >= 1, got {getattr(self, name)}")
        if not self.country_domain:
            raise SettingsError("dp.countries must list at least one country code")

    @property
    def country_domain(self) -> tuple[str, ...]:
        return tuple(sorted({c.strip() for c in self.countries.split(",") if c.strip()}))


@dataclass(frozen=True)
class EncryptionSettings:
    """Envelope encryption of restricted columns (jobs.platform.envelope): which provider holds the key-encryption key.

    `local`: the KEK is the key file's column_encryption ring ([keys] file). `vault`: a HashiCorp Vault (or
    OpenBao) Transit key; the token should come from VOIPLAKE_ENCRYPTION_VAULT_TOKEN, not from the file.
    """

    provider: str  # local | vault
    vault_url: str  # e.g. http://127.0.0.1:8200 (provider = vault)
    vault_token: str = _field(repr=False)  # never printed
    vault_transit_key: str = "voiplake-columns"  # Transit key name (created derived, aes256-gcm96, if missing)
    vault_mount: str = "transit"  # mount point of the Transit secrets engine

    def __post_init__(self) -> None:
        if self.provider not in ("local", "vault"):
            raise SettingsError(f"encryption.provider must be 'local' or 'vault', got {self.provider!r}")
        if self.provider == "vault":
            missing = [k for k in ("vault_url", "vault_token", "vault_transit_key", "vault_mount") if not getattr(self, k)]
            if missing:
                raise SettingsError(
                    f"encryption.provider = 'vault' needs {', '.join('encryption.' + k for k in missing)} "
                    "(the token via VOIPLAKE_ENCRYPTION_VAULT_TOKEN)"
                )


@dataclass(frozen=True)
class CapacitySettings:
    """SIP trunk capacity planning (jobs.business.capacity_busy_hour, gold.capacity_busy_hour).

    `blocking` is the grade of service trunk groups are dimensioned for: the Erlang B blocking probability
    the busy-hour traffic may see (exact decimal, as a string: "0.01" = 1 call in 100 blocked).
    """

    blocking: Decimal

    def __post_init__(self) -> None:
        if not self.blocking.is_finite() or not 0 < self.blocking < 1:
            raise SettingsError(f"capacity.blocking must be a decimal in (0, 1), got {self.blocking}")


COST_DRIVERS = ("minutes", "calls", "data_bytes")  # usage measures a cost center can be allocated by


@dataclass(frozen=True)
class FinanceSettings:
    """Cost allocation (jobs.business.cost_allocation, `voiplake extract cost-allocation`).

    Finance drops one file per month, `<costs_dir>/costs-<YYYY-MM>.csv` (period, cost_center, amount_minor,
    currency). Each cost center is allocated by a weighted mix of usage drivers, written
    "driver:weight, driver:weight" with drivers from COST_DRIVERS and non-negative exact decimal weights,
    e.g. "minutes:3, data_bytes:1" = 3/4 by each unit's share of minutes, 1/4 by its share of data bytes.
    """

    costs_dir: str
    sip_trunks: str
    media_servers: str
    storage: str

    def __post_init__(self) -> None:
        for center in self.cost_centers:
            self.weights(center)  # validates

    @property
    def cost_centers(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self) if f.name != "costs_dir")

    def weights(self, cost_center: str) -> dict[str, Fraction]:
        """The driver weights of `cost_center` as exact fractions (only positive weights)."""
        if cost_center not in self.cost_centers:
            raise SettingsError(
                f"unknown cost center {cost_center!r}; known: {list(self.cost_centers)} (add a key to [finance])")
        spec = getattr(self, cost_center)
        weights: dict[str, Fraction] = {}
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            driver, _, raw = part.partition(":")
            driver = driver.strip()
            if driver not in COST_DRIVERS:
                raise SettingsError(f"finance.{cost_center}: unknown driver {driver!r}; known: {list(COST_DRIVERS)}")
            try:
                weight = Fraction(Decimal(raw.strip() or "1"))
            except (InvalidOperation, ValueError) as exc:
                raise SettingsError(f"finance.{cost_center}: weight of {driver} must be a decimal, got {raw!r}") from exc
            if weight < 0 or driver in weights:
                raise SettingsError(f"finance.{cost_center}: weight of {driver} must be given once and be >= 0")
            if weight > 0:
                weights[driver] = weight
        if not weights:
            raise SettingsError(f"finance.{cost_center}: needs at least one driver with a positive weight, got {spec!r}")
        return weights


QUOTA_SINKS = ("file", "webhook")  # where support triggers are delivered (jobs.business.support_sinks)


@dataclass(frozen=True)
class QuotaSettings:
    """Quotas and support triggers (jobs.business.support_triggers, gold.support_triggers, `voiplake support-triggers`).

    Quotas are talk minutes of completed calls per calendar month (UTC call dates). A trigger fires when an
    account's (or one of its subscribers') month-to-date minutes reach `thresholds_percent` of its quota, or when
    an account's day has a failure rate / short-call ratio above the maximum over at least `min_calls` calls.
    Ratios are exact decimals (TOML strings) compared as fractions. A quota of 0 means "no quota".
    `accounts` overrides account_minutes per account: `[quotas.accounts."acct-0001"] minutes = 5000` in the file,
    or VOIPLAKE_QUOTAS_ACCOUNTS="acct-0001:5000,acct-0002:0".
    """

    period: str  # quota period: "month" (calendar month, UTC); the only one supported
    account_minutes: int  # default monthly quota of every B2B account
    subscriber_minutes: int  # monthly quota of every subscriber (per account)
    thresholds_percent: tuple[int, ...]  # usage shares of the quota that fire a trigger, e.g. (80, 100)
    max_failure_rate: Decimal  # failed / (completed + failed) of an account's day above this fires
    max_short_call_ratio: Decimal  # completed calls shorter than short_call_seconds / completed above this fires
    short_call_seconds: int
    min_calls: int  # quality triggers need at least this many calls in the account's day (no alerts on tiny samples)
    sink: str  # file | webhook
    file_path: str  # file sink: JSON lines appended here
    webhook_url: str  # webhook sink: POST target
    webhook_timeout_seconds: Decimal
    webhook_max_retries: int  # retries after the first attempt (connection errors, timeouts, 5xx, 429)
    webhook_backoff_seconds: Decimal  # wait before retry i (0-based): backoff * 2**i
    accounts: tuple[tuple[str, int], ...] = ()  # (account_id, monthly minutes) overrides, sorted

    def __post_init__(self) -> None:
        if self.period != "month":
            raise SettingsError(f"quotas.period must be 'month' (calendar month, UTC), got {self.period!r}")
        for name in ("account_minutes", "subscriber_minutes", "short_call_seconds", "webhook_max_retries"):
            if getattr(self, name) < 0:
                raise SettingsError(f"quotas.{name} must be >= 0, got {getattr(self, name)}")
        if self.min_calls < 1:
            raise SettingsError(f"quotas.min_calls must be >= 1, got {self.min_calls}")
        if not self.thresholds_percent or any(t < 1 for t in self.thresholds_percent) \
                or len(set(self.thresholds_percent)) != len(self.thresholds_percent):
            raise SettingsError(f"quotas.thresholds_percent must be distinct percentages >= 1, got {list(self.thresholds_percent)}")
        for name in ("max_failure_rate", "max_short_call_ratio"):
            value = getattr(self, name)
            if not value.is_finite() or not 0 <= value <= 1:
                raise SettingsError(f"quotas.{name} must be a decimal in [0, 1], got {value}")
        for name in ("webhook_timeout_seconds", "webhook_backoff_seconds"):
            value = getattr(self, name)
            if not value.is_finite() or value < 0 or (name == "webhook_timeout_seconds" and value == 0):
                raise SettingsError(f"quotas.{name} must be a non-negative decimal (timeout > 0), got {value}")
        if self.sink not in QUOTA_SINKS:
            raise SettingsError(f"quotas.sink must be one of {list(QUOTA_SINKS)}, got {self.sink!r}")
        if self.sink == "webhook" and not self.webhook_url.startswith(("http://", "https://")):
            raise SettingsError(f"quotas.sink = 'webhook' needs quotas.webhook_url (http[s]://...), got {self.webhook_url!r}")
        for account, minutes in self.accounts:
            if not account or minutes < 0:
                raise SettingsError(f"quotas.accounts.{account!r}: minutes must be >= 0, got {minutes}")
        object.__setattr__(self, "thresholds_percent", tuple(sorted(self.thresholds_percent)))
        object.__setattr__(self, "accounts", tuple(sorted(self.accounts)))

    def account_quota(self, account_id: str) -> int:
        """Monthly minutes quota of `account_id`: its override, else account_minutes (0 = none)."""
        return dict(self.accounts).get(account_id, self.account_minutes)


@dataclass(frozen=True)
class BillingSettings:
    """B2B billing (jobs.business.billing_usage, gold.billing_usage, `voiplake extract billing`).

    Periods run from `cutoff_day` (1-28) 00:00 in `timezone` to the same day next month. A period closes once
    the run's date is `close_after_days` past its end (the late-data grace); after that its rows are never
    rewritten, and calls that arrive late for it are billed as adjustments in the open period.
    `catalogue` is the plan catalogue file (lake_layout/billing_plans.toml).
    """

    catalogue: str
    timezone: str
    cutoff_day: int
    close_after_days: int

    def __post_init__(self) -> None:
        if self.close_after_days < 0:
            raise SettingsError(f"billing.close_after_days must be >= 0, got {self.close_after_days}")


@dataclass(frozen=True)
class CrmApiSettings:
    """The read-only CRM API (`voiplake api serve`, jobs.business.crm_api) and its reseller policy.

    `resellers_file` is the ownership policy (lake_layout/resellers.toml); `tokens_file` holds only the SHA-256
    of each reseller's API token (`voiplake api token --reseller R`), under the git-ignored build/ folder.
    """

    resellers_file: str
    tokens_file: str
    port: int

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise SettingsError(f"crm_api.port must be a TCP port 1-65535, got {self.port}")


@dataclass(frozen=True)
class ForensicsSettings:
    """Forensic evidence bundles (jobs.governance.forensics, `voiplake forensics export | handover | verify`).

    `signing_key` is the Ed25519 private key (PEM) signing bundle manifests, made on first use under the
    git-ignored build/ folder; its public key next to it (`<signing_key>.pub`) is the trusted copy verify uses.
    `bundles_dir` is where `export` writes bundles when no --out is given.
    """

    signing_key: str
    bundles_dir: str


SEVERITIES = ("low", "medium", "high", "critical")  # anomaly severities, least to most (gold.anomalies)
SYSLOG_PROTOCOLS = ("udp", "tcp")


@dataclass(frozen=True)
class AnomalySettings:
    """Anomaly detection and response (jobs.security.anomalies, gold.anomalies, security.device_quarantine).

    Sensitivities are exact decimals (TOML strings). `spike_sensitivity` is the robust z-score, (attempts -
    median) / max(1.4826 MAD, spike_min_scale), at which an account's hourly call attempts to a destination class
    count as a spike against the same hour of week in the last `history_days` days (falling back to the same hour
    of weekdays or weekend days, then of all days, when fewer than `baseline_min_slots` such hours exist).
    `iforest_quantile`: an enterprise account-hour is unusual when the isolation forest finds it more anomalous
    than this share of the history's account-hours. Devices of findings at or above `quarantine_severity` are
    quarantined for `quarantine_days`; "off" disables quarantine. Alerts go to `siem_dir` (one CEF and one JSON
    lines file per run) and, when `syslog_host` is set, to syslog over `syslog_protocol`.
    """

    history_days: int
    baseline_min_slots: int
    spike_sensitivity: Decimal
    spike_min_attempts: int
    spike_min_scale: Decimal
    max_session_kbps: int
    max_user_daily_mb: int
    auth_window_hours: int
    auth_tolerance_seconds: int
    auth_ipv4_range_bits: int  # new_ip_range compares IPv4 sources at this prefix length (0: not compared), <= 24
    auth_ipv6_range_bits: int  # ... and IPv6 sources (0: not compared), <= 48: bronze keeps /24 and /48 only
    iforest_quantile: Decimal
    iforest_min_attempts: int
    iforest_min_history_hours: int
    iforest_seed: int
    quarantine_severity: str
    quarantine_days: int
    siem_dir: str
    syslog_host: str
    syslog_port: int
    syslog_protocol: str

    def __post_init__(self) -> None:
        for name in ("history_days", "baseline_min_slots", "spike_min_attempts", "max_session_kbps", "max_user_daily_mb",
                     "auth_window_hours", "iforest_min_attempts", "iforest_min_history_hours", "quarantine_days"):
            if getattr(self, name) < 1:
                raise SettingsError(f"anomalies.{name} must be >= 1, got {getattr(self, name)}")
        if self.auth_tolerance_seconds < 0:
            raise SettingsError(f"anomalies.auth_tolerance_seconds must be >= 0, got {self.auth_tolerance_seconds}")
        for name, finest in (("auth_ipv4_range_bits", 24), ("auth_ipv6_range_bits", 48)):
            if not 0 <= getattr(self, name) <= finest:
                raise SettingsError(f"anomalies.{name} must be 0 (off) .. {finest} (bronze keeps /24 and /48 "
                                    f"prefixes), got {getattr(self, name)}")
        for name in ("spike_sensitivity", "spike_min_scale"):
            value = getattr(self, name)
            if not value.is_finite() or value <= 0:
                raise SettingsError(f"anomalies.{name} must be a positive decimal, got {value}")
        if not self.iforest_quantile.is_finite() or not 0 < self.iforest_quantile < 1:
            raise SettingsError(f"anomalies.iforest_quantile must be a decimal in (0, 1), got {self.iforest_quantile}")
        if self.quarantine_severity not in (*SEVERITIES, "off"):
            raise SettingsError(
                f"anomalies.quarantine_severity must be one of {[*SEVERITIES, 'off']}, got {self.quarantine_severity!r}")
        if self.syslog_protocol not in SYSLOG_PROTOCOLS:
            raise SettingsError(f"anomalies.syslog_protocol must be one of {list(SYSLOG_PROTOCOLS)}, got {self.syslog_protocol!r}")
        if not 0 < self.syslog_port < 65536:
            raise SettingsError(f"anomalies.syslog_port must be a port 1-65535, got {self.syslog_port}")


ATTESTATION_VERDICTS = ("MEETS_STRONG_INTEGRITY", "MEETS_DEVICE_INTEGRITY", "MEETS_BASIC_INTEGRITY", "FAILS_INTEGRITY")


@dataclass(frozen=True)
class AttestationSettings:
    """Device attestation at bronze (jobs.telemetry.attestation): which batches need the attestation service's verdict.

    Batches of schema version `required_from_schema_version` or newer must carry a verdict signed by the (simulated)
    attestation service for their own device and payload, issued at most `max_age_seconds` before the collector
    received the batch (and at most `max_future_seconds` after: clock tolerance), with one of `accepted_verdicts`
    (comma-separated); anything else is quarantined with the reason. Older clients predate attestation: their batches
    are ingested without a verdict (a verdict they do carry is checked all the same). Set it to 1 to require a
    verdict from every client once the old versions are retired.
    """

    required_from_schema_version: int
    max_age_seconds: int
    max_future_seconds: int
    accepted_verdicts: str

    def __post_init__(self) -> None:
        if self.required_from_schema_version < 1:
            raise SettingsError(f"attestation.required_from_schema_version must be >= 1, got {self.required_from_schema_version}")
        if self.max_age_seconds < 1:
            raise SettingsError(f"attestation.max_age_seconds must be >= 1, got {self.max_age_seconds}")
        if self.max_future_seconds < 0:
            raise SettingsError(f"attestation.max_future_seconds must be >= 0, got {self.max_future_seconds}")
        unknown = set(self.verdicts) - set(ATTESTATION_VERDICTS)
        if not self.verdicts or unknown:
            raise SettingsError(f"attestation.accepted_verdicts must name some of {list(ATTESTATION_VERDICTS)}, "
                                f"got {self.accepted_verdicts!r}")

    @property
    def verdicts(self) -> frozenset[str]:
        return frozenset(v.strip() for v in self.accepted_verdicts.split(",") if v.strip())


@dataclass(frozen=True)
class DoorSettings:
    """Abuse at the door (jobs.ingest.door, bronze_ingest): per device, authentic uploads received beyond
    `max_batches_per_device_hour` within one receive hour, and uploads whose attestation nonce the device already
    used for another batch, are quarantined as suspected spoofing (reasons upload_rate_exceeded, replayed_nonce).
    jobs.security.anomalies turns a device's suspected-spoofing uploads of a day into a finding, of severity high (so
    quarantining at the default anomalies.quarantine_severity) from `spoofing_high_objects` uploads on."""

    max_batches_per_device_hour: int
    spoofing_high_objects: int

    def __post_init__(self) -> None:
        for name in ("max_batches_per_device_hour", "spoofing_high_objects"):
            if getattr(self, name) < 1:
                raise SettingsError(f"door.{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class EnvironmentSettings:
    """Production and test data never mix (lake_layout/environments.py, bronze_ingest).

    Uploads from test builds (BatchHeader.build_environment = "test") or from the test tenants and test devices
    of `test_registry` (a TOML file: accounts = [...], devices = [...]) are ingested into the same tables under
    `test_lake_root` instead of lake.root: no production table, and so no job reading them, ever sees them.
    """

    test_lake_root: str
    test_registry: str

    def __post_init__(self) -> None:
        if not self.test_lake_root:
            raise SettingsError("environments.test_lake_root must not be empty")


@dataclass(frozen=True)
class Settings:
    lake: LakeSettings
    landing: LandingSettings
    object_store: ObjectStoreSettings
    keys: KeySettings
    spark: SparkSettings
    generator: GeneratorSettings
    silver: SilverSettings
    privacy: PrivacySettings
    lineage: LineageSettings
    quality: QualitySettings
    encryption: EncryptionSettings
    dp: DPSettings
    privacy_audit: PrivacyAuditSettings
    capacity: CapacitySettings
    finance: FinanceSettings
    billing: BillingSettings
    quotas: QuotaSettings
    crm_api: CrmApiSettings
    forensics: ForensicsSettings
    anomalies: AnomalySettings
    attestation: AttestationSettings
    environments: EnvironmentSettings
    door: DoorSettings

    def with_lake_root(self, root: str) -> "Settings":
        return replace(self, lake=LakeSettings(root=root))

    def test_lake(self) -> "Settings":
        """These settings with the test environment's lake root: where test builds' and test tenants' data goes."""
        if self.environments.test_lake_root == self.lake.root:
            raise SettingsError("environments.test_lake_root must differ from lake.root")
        return self.with_lake_root(self.environments.test_lake_root)


_SECTIONS: dict[str, type] = {
    "lake": LakeSettings,
    "landing": LandingSettings,
    "object_store": ObjectStoreSettings,
    "keys": KeySettings,
    "spark": SparkSettings,
    "generator": GeneratorSettings,
    "silver": SilverSettings,
    "privacy": PrivacySettings,
    "lineage": LineageSettings,
    "quality": QualitySettings,
    "encryption": EncryptionSettings,
    "dp": DPSettings,
    "privacy_audit": PrivacyAuditSettings,
    "capacity": CapacitySettings,
    "finance": FinanceSettings,
    "billing": BillingSettings,
    "quotas": QuotaSettings,
    "crm_api": CrmApiSettings,
    "forensics": ForensicsSettings,
    "anomalies": AnomalySettings,
    "attestation": AttestationSettings,
    "environments": EnvironmentSettings,
    "door": DoorSettings,
}
# Keys holding local paths: resolved against the project root when relative.
_PATH_KEYS = {("lake", "root"), ("object_store", "data_dir"), ("keys", "file"), ("spark", "ivy_dir"),
              ("lineage", "openlineage_file"), ("quality", "data_docs_dir"), ("privacy_audit", "report_dir"),
              ("finance", "costs_dir"), ("billing", "catalogue"), ("quotas", "file_path"),
              ("crm_api", "resellers_file"), ("crm_api", "tokens_file"),
              ("forensics", "signing_key"), ("forensics", "bundles_dir"), ("anomalies", "siem_dir"),
              ("environments", "test_lake_root"), ("environments", "test_registry")}


def _resolve_path(value: str) -> str:
    if "://" in value:
        return value
    path = Path(value)
    return str(path if path.is_absolute() else (PROJECT_ROOT / path).resolve())


# Setting types beyond int / str / Decimal, as their annotation strings (postponed evaluation).
_INT_LIST = "tuple[int, ...]"  # a TOML array of integers, or "80, 100" from the environment
_MINUTES_TABLE = "tuple[tuple[str, int], ...]"  # [section.<field>."<id>"] minutes = N sub-tables, or "id:N, id:N"


def _minutes_table(section: str, key: str, raw: Any) -> tuple[tuple[str, int], ...]:
    if isinstance(raw, str):
        pairs = [p.rpartition(":") for p in (p.strip() for p in raw.split(",")) if p]
        return tuple((name.strip(), int(minutes)) for name, _, minutes in pairs)
    if not isinstance(raw, Mapping):
        raise TypeError(raw)
    out = []
    for name, entry in raw.items():
        if not isinstance(entry, Mapping) or set(entry) != {"minutes"}:
            raise SettingsError(f"{section}.{key}.{name}: expected a table with exactly one key, minutes = N; got {entry!r}")
        out.append((str(name), int(entry["minutes"])))
    return tuple(out)


def _coerce(section: str, key: str, raw: Any, target: Any) -> Any:
    try:
        if target is int:
            return int(raw)
        if target == _INT_LIST:
            items = raw.split(",") if isinstance(raw, str) else raw
            if isinstance(items, (int, float, Mapping)) or any(isinstance(x, (bool, float)) for x in items):
                raise TypeError(raw)
            return tuple(int(str(x).strip()) for x in items if str(x).strip())
        if target == _MINUTES_TABLE:
            return _minutes_table(section, key, raw)
        if target is Decimal:  # exact: "0.1" stays 0.1 (give decimals as TOML strings, not floats)
            return Decimal(str(raw).strip())
        return str(raw)
    except SettingsError:
        raise
    except (TypeError, ValueError, InvalidOperation) as exc:
        raise SettingsError(f"{section}.{key}: expected {getattr(target, '__name__', target)}, got {raw!r}") from exc


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load settings from `path` (default: $VOIPLAKE_CONFIG or infra/voiplake.toml), then apply
    VOIPLAKE_<SECTION>_<KEY> environment overrides."""
    env = os.environ if env is None else env
    path = path or Path(env.get("VOIPLAKE_CONFIG", DEFAULT_CONFIG))
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise SettingsError(f"settings file {path} not found") from exc
    unknown = set(raw) - set(_SECTIONS)
    if unknown:
        raise SettingsError(f"unknown section(s) {sorted(unknown)} in {path}; known: {sorted(_SECTIONS)}")
    built: dict[str, Any] = {}
    for section, cls in _SECTIONS.items():
        given = dict(raw.get(section, {}))
        declared = {f.name: f for f in fields(cls)}
        extra = set(given) - set(declared)
        if extra:
            raise SettingsError(f"unknown key(s) {sorted(extra)} in [{section}] of {path}")
        values: dict[str, Any] = {}
        for name, field in declared.items():
            override = env.get(f"VOIPLAKE_{section}_{name}".upper())
            value = override if override is not None else given.get(name)
            target = {"int": int, int: int, "Decimal": Decimal, Decimal: Decimal,
                      _INT_LIST: _INT_LIST, _MINUTES_TABLE: _MINUTES_TABLE}.get(field.type, str)
            if value is None and target == _MINUTES_TABLE:
                value = {}  # no sub-tables: no overrides
            if value is None:
                raise SettingsError(f"missing setting {section}.{name} in {path}")
            value = _coerce(section, name, value, target)
            if (section, name) in _PATH_KEYS:
                value = _resolve_path(value)
            values[name] = value
        built[section] = cls(**values)
    return Settings(**built)


def _env_value(value: Any) -> str:
    if isinstance(value, tuple) and all(isinstance(v, tuple) for v in value):
        return ", ".join(f"{name}:{minutes}" for name, minutes in value)  # _MINUTES_TABLE
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value)  # _INT_LIST
    return str(value)


def settings_env(settings: Settings) -> dict[str, str]:
    """Every setting as its VOIPLAKE_<SECTION>_<KEY> override, so that a child process (Airflow, a job on a
    cluster) whose `load_settings()` reads them gets exactly these settings: load_settings(env=settings_env(s))
    == s."""
    env = {}
    for section in _SECTIONS:
        values = getattr(settings, section)
        for f in fields(values):
            env[f"VOIPLAKE_{section}_{f.name}".upper()] = _env_value(getattr(values, f.name))
    return env
