"""generate_telemetry: one deterministic, realistic day of landing objects, as the collector stores them.

`generate_day(day, events=..., seed=..., keys=..., prefix=...)` simulates a subscriber population
(B2B accounts with departments, plus consumers; 1-2 devices each) calling through one UTC day. Every
call becomes call_start + call_end / call_failure events stamped with the device's own (skewed) clock;
each device batches its events into signed uploads (gzip protobuf for iOS / Android, gzip JSON for web)
and the collector names each object with its landing key. On top of clean traffic it adds what a real
collector sees:

* clock skew: most devices within ±2 s, ~3 % off by minutes to hours, ~0.3 % about a year ahead;
* offline buffering: ~3 % of batches carry events from 1-3 days before `day` (received on `day`);
* retried uploads: ~2 % of batches arrive twice (same batch_id and bytes, a later key);
* injected faults (`FaultPlan`): corrupt / truncated gzip, tampered batches (re-hashed, not re-signed),
  objects that are not uploads, an unsupported schema version, and invalid records in valid batches;
* impossible times in well-formed uploads (`FaultPlan.future_events` / `prehistoric_events`): an event
  stamped days after it was received, beyond what the batch's clock offset explains, or ~10 years before
  its subscriber's account existed (device RTC reset). Bronze accepts them; silver quarantines them
  (future_timestamp / before_account_creation).

Besides the uploads, the day has one subscriber directory export (`directory_key`, gzip JSON Lines): every
consent state of every subscriber, raw MSISDNs included (it is the CRM's extract). ~2 % of the day's
callers change consent during the day (diagnostic -> basic, or opt out of diagnostics); their clients keep
sending the old level for the rest of the day (SDK config sync lag), so silver must apply the directory's
consent by event time.

Every `LandingObject` records what was injected, and `GeneratedDay.consent_changes` what changed, so tests
and the end-to-end run check bronze's and silver's accounting object by object. Same (day, events, seed,
keys) -> byte-identical keys and bodies: all randomness comes from `random.Random` streams seeded by
strings, and gzip's mtime is 0. Features added later draw from streams of their own, so the uploads of a
plan without them stay what they were.
"""

from __future__ import annotations

import gzip
import hashlib
import ipaddress
import json
import math
import random
import uuid
import zlib
from bisect import bisect
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import cache
from itertools import accumulate, pairwise
from typing import Any, NamedTuple

from jobs.platform.keys import KeyMaterial
from jobs.telemetry import upload_pb2 as pb
from jobs.telemetry.codec import Attestation, Header, encode_json, encode_protobuf, payload_bytes
from lake_layout.landing import AUTH_PREFIX, DIRECTORY_PREFIX, auth_log_key, directory_export_key, landing_object_key

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
EVENTS_PER_SUBSCRIBER = 40  # subscribers per generated day ~ events / 40
MIN_SUBSCRIBERS = 20
EVENTS_PER_OBJECT_ESTIMATE = 40  # what `FaultPlan.default` assumes when turning objects into events
RETRY_SHARE = 0.02
OFFLINE_SHARE = 0.03
FAILURE_SHARE = 0.08
NO_END_SHARE = 0.01  # calls whose app died: a call_start and nothing else
MEDIAN_CALL_MS = 90_000
MAX_CALL_MS = 4 * HOUR_MS
MAX_BATCH_EVENTS = 200  # the SDK's buffer cap: a full buffer is flushed at once
UNSUPPORTED_SCHEMA_VERSION = 7
_EVENT_END_MARGIN_MS = 10_000  # last event of the day at least this long before midnight, so its upload lands on `day`
_SEND_END_MARGIN_MS = 3_000

FAULT_KINDS = ("corrupt", "truncated", "tampered", "wrong_schema", "unsupported_version")
# Quarantine reason(s) bronze must give each object-level fault.
EXPECTED_REJECTION_REASONS: dict[str, frozenset[str]] = {
    "corrupt": frozenset({"corrupt_compression"}),
    "truncated": frozenset({"corrupt_compression"}),
    "tampered": frozenset({"bad_signature"}),
    "wrong_schema": frozenset({"wrong_schema", "undecodable_envelope"}),
    "unsupported_version": frozenset({"unsupported_schema_version"}),
}
BAD_RECORD_REASONS = ("invalid_msisdn", "missing_required_field", "invalid_duration", "invalid_ip")
# Reason silver must give each kind of impossible event time (silver.quarantine.reason).
TIME_FAULT_REASONS = {"future_events": "future_timestamp", "prehistoric_events": "before_account_creation"}
FUTURE_SHIFT_DAYS = (2, 5)  # a future event claims to have happened this many days after it was received
RTC_RESET_DAYS_BEFORE_ACCOUNT = 3650  # a reset device clock dates an event ~10 years before the account
CONSENT_CHANGE_SHARE = 0.02  # of the day's callers
_CONSENT_MIN_GAP_MS = 60_000  # a change falls between two calls at least this far apart: clock correction
#                              (good to ~1 s) cannot move either call to the other side of it

PLATFORM_SHARES = (("ios", 0.40), ("android", 0.45), ("web", 0.15))
# app_version -> (CallEvent schema version, share of installs); the oldest releases still send schema 1.
APP_VERSIONS: dict[str, tuple[tuple[str, int, float], ...]] = {
    "ios": (("5.1.0", 1, 0.15), ("5.2.0", 2, 0.30), ("6.0.1", 2, 0.55)),
    "android": (("5.0.3", 1, 0.20), ("5.2.1", 2, 0.30), ("6.0.0", 2, 0.50)),
    "web": (("2024.11", 1, 0.25), ("2025.3", 2, 0.75)),
}
# Type allocation codes (first 8 IMEI digits): Apple and Samsung under "35", Chinese vendors under "86".
_TACS = {
    "ios": ("35391110", "35328511", "35674108", "35407115", "35299209"),
    "android": ("35260011", "35467611", "35875610", "86753104", "86892605", "86220405"),
}
DEPARTMENTS = (
    "sales", "support", "engineering", "operations", "finance", "field-service", "marketing", "logistics",
    "management", "hr",
)
FAILURE_REASONS = (("busy", 0.25), ("no_answer", 0.35), ("network_error", 0.20), ("codec_mismatch", 0.05),
                   ("timeout", 0.15))
SIGNAL_METRICS = {  # network_type -> (signal_metric, low, high, mode)
    "wifi": ("wifi_rssi_dbm", -90, -30, -58),
    "5g": ("nr_rsrp_dbm", -120, -80, -98),
    "lte": ("lte_rsrp_dbm", -125, -70, -97),
    "3g": ("umts_rscp_dbm", -115, -60, -88),
    "2g": ("gsm_rssi_asu", 0, 31, 14),
}
_CELLULAR_MIX = (("5g", 0.25), ("lte", 0.58), ("3g", 0.11), ("2g", 0.06))
_MOS_BASE = {"ethernet": 4.35, "wifi": 4.2, "5g": 4.1, "lte": 3.95, "3g": 3.4, "2g": 2.7}
_JITTER_BASE_MS = {"ethernet": 3, "wifi": 12, "5g": 9, "lte": 16, "3g": 35, "2g": 60}
_CODEC_KBPS = {"ethernet": 48, "wifi": 46, "5g": 44, "lte": 40, "3g": 24, "2g": 14}  # Opus + RTP/UDP/IP overhead

# Relative call volume per local hour (0-23): business lines peak in office hours, consumers in the evening.
_BUSINESS_HOURS = (0.05, 0.03, 0.02, 0.02, 0.03, 0.08, 0.25, 0.7, 1.6, 2.4, 2.6, 2.4,
                   1.7, 2.0, 2.4, 2.4, 2.1, 1.6, 0.9, 0.5, 0.35, 0.25, 0.15, 0.08)
_CONSUMER_HOURS = (0.35, 0.2, 0.1, 0.06, 0.05, 0.08, 0.2, 0.5, 0.9, 1.1, 1.2, 1.3,
                   1.4, 1.3, 1.2, 1.2, 1.3, 1.5, 1.8, 2.0, 1.9, 1.5, 1.0, 0.6)


# ----------------------------------------------------------------------------- reference data

@dataclass(frozen=True)
class City:
    name: str
    country_code: str  # where a device in this city is: ISO 3166-1 alpha-2, "US-CA" for California
    latitude: float
    longitude: float
    utc_offset_h: float  # standard time; DST is irrelevant for a diurnal shape
    area_codes: tuple[str, ...] = ()  # NANP cities: local numbers use these


@dataclass(frozen=True)
class Market:
    """A home market: numbering plan, carriers, cities, public address space, nearest media-relay region."""

    home: str  # subscribers' home country code: ISO 3166-1 alpha-2, "US-CA" for California
    jurisdiction: str  # "EU" | "US-CA" | "US-other" | "other"
    weight: float
    calling_code: str
    mobile_plan: tuple[tuple[str, int], ...]  # (prefix after the calling code, digits that follow)
    landline_plan: tuple[tuple[str, int], ...]
    cities: tuple[City, ...]
    carriers: tuple[str, ...]  # MCC-MNC, most subscribed first
    mobile_v4: tuple[str, ...]
    mobile_v6: tuple[str, ...]
    fixed_v4: tuple[str, ...]
    fixed_v6: tuple[str, ...]
    relay_region: str


def _nanp(*area_codes: str) -> tuple[tuple[str, int], ...]:
    return tuple((code, 7) for code in area_codes)


_DE_MOBILE_PLAN = tuple((prefix, 8) for prefix in (
    "151", "152", "157", "159", "160", "162", "163", "170", "171", "172", "173", "174", "175", "176", "177", "178",
    "179",
))
_US_MOBILE_V4 = ("172.56.0.0/14", "166.128.0.0/9", "174.192.0.0/10")
_US_MOBILE_V6 = ("2607:fb90::/32", "2600:380::/26", "2600:1000::/28")
_US_CARRIERS = ("310260", "310410", "311480")

MARKETS: tuple[Market, ...] = (
    Market("DE", "EU", 0.22, "49", _DE_MOBILE_PLAN, (("30", 8), ("89", 8)),
           (City("Berlin", "DE", 52.5200, 13.4050, 1.0), City("Munich", "DE", 48.1372, 11.5756, 1.0)),
           ("26201", "26202", "26203"),
           ("80.187.0.0/16", "109.40.0.0/16", "176.0.0.0/16"), ("2a01:598::/32", "2a01:59f::/32"),
           ("91.0.0.0/10", "79.192.0.0/10"), ("2003::/19",), "eu-central"),
    Market("FR", "EU", 0.10, "33", (("6", 8), ("7", 8)), (("1", 8),),
           (City("Paris", "FR", 48.8566, 2.3522, 1.0),),
           ("20801", "20810", "20820", "20815"),
           ("92.184.0.0/15", "37.160.0.0/12"), ("2a01:cd00::/28",),
           ("90.0.0.0/9", "82.64.0.0/10"), ("2a01:cb00::/24", "2a01:e00::/26"), "eu-central"),
    Market("ES", "EU", 0.08, "34", (("6", 8),), (("91", 7),),
           (City("Madrid", "ES", 40.4168, -3.7038, 1.0),),
           ("21407", "21401", "21403"),
           ("88.0.0.0/13", "37.132.0.0/14"), ("2a0c:5a80::/29",),
           ("83.32.0.0/11",), ("2a02:9000::/23",), "eu-central"),
    Market("GB", "other", 0.08, "44", (("7", 9),), (("20", 8),),
           (City("London", "GB", 51.5074, -0.1278, 0.0),),
           ("23430", "23410", "23415", "23420"),
           ("31.94.0.0/16", "92.40.0.0/14"), ("2a01:4c8::/32",),
           ("86.128.0.0/10",), ("2a00:23c0::/26",), "eu-central"),
    Market("US-CA", "US-CA", 0.14, "1", _nanp("415", "628", "213", "310", "323"), _nanp("415", "213"),
           (City("San Francisco", "US-CA", 37.7749, -122.4194, -8.0, ("415", "628")),
            City("Los Angeles", "US-CA", 34.0522, -118.2437, -8.0, ("213", "310", "323"))),
           _US_CARRIERS, _US_MOBILE_V4, _US_MOBILE_V6, ("73.0.0.0/8",), ("2601::/20",), "us-west"),
    Market("US", "US-other", 0.14, "1", _nanp("212", "646", "917", "312", "773"), _nanp("212", "312"),
           (City("New York", "US", 40.7128, -74.0060, -5.0, ("212", "646", "917")),
            City("Chicago", "US", 41.8781, -87.6298, -6.0, ("312", "773"))),
           _US_CARRIERS, _US_MOBILE_V4, _US_MOBILE_V6, ("73.0.0.0/8", "24.0.0.0/12"), ("2601::/20",), "us-east"),
    Market("BR", "other", 0.08, "55", (("119", 8),), (("11", 8),),
           (City("São Paulo", "BR", -23.5505, -46.6333, -3.0),),
           ("72406", "72405", "72402"),
           ("179.96.0.0/13", "191.8.0.0/13"), ("2804:18::/32",),
           ("187.0.0.0/11",), ("2804:14c::/32",), "sa-east"),
    Market("IN", "other", 0.08, "91", (("9", 9),), (("22", 8),),
           (City("Mumbai", "IN", 19.0760, 72.8777, 5.5),),
           ("405874", "40492", "40420"),
           ("49.32.0.0/11", "106.192.0.0/11"), ("2409:4000::/22",),
           ("122.160.0.0/12",), ("2401:4900::/32",), "ap-south"),
    Market("JP", "other", 0.08, "81", (("90", 8), ("80", 8), ("70", 8)), (("3", 8),),
           (City("Tokyo", "JP", 35.6762, 139.6503, 9.0),),
           ("44010", "44020", "44050"),
           ("1.66.0.0/15", "126.0.0.0/8"), ("2001:268::/32",),
           ("153.128.0.0/9",), ("240b:10::/28",), "ap-northeast"),
)
MARKETS_BY_HOME = {m.home: m for m in MARKETS}

# TURN / media relays by cloud region: (IPv4 ranges, IPv6 ranges).
_RELAY_RANGES = {
    "eu-central": (("3.120.0.0/14",), ("2a05:d014::/36",)),
    "us-west": (("54.183.0.0/16",), ("2600:1f1c::/36",)),
    "us-east": (("3.80.0.0/12",), ("2600:1f18::/33",)),
    "sa-east": (("18.228.0.0/16",), ("2600:1f1e::/36",)),
    "ap-south": (("13.232.0.0/14",), ("2406:da1a::/36",)),
    "ap-northeast": (("13.112.0.0/14",), ("2406:da14::/36",)),
}
_RELAYS_PER_REGION = 6


# ----------------------------------------------------------------------------- public types

@dataclass(frozen=True)
class FaultPlan:
    """How many landing objects (or records) of each fault to inject; 0 = none.

    Object-level faults go to distinct objects whose batch was uploaded once (never to a retried batch,
    so a retry's body always equals its original's); bad records go to valid, correctly signed batches.
    Time faults go to valid events of valid batches uploaded once (signed after the change, so bronze accepts
    them), one event per affected call, never of a subscriber who changes consent that day.
    """

    corrupt: int = 0  # bytes flipped inside the gzip stream -> corrupt_compression
    truncated: int = 0  # gzip blob cut short -> corrupt_compression
    tampered: int = 0  # an event altered after signing, payload_sha256 recomputed, not re-signed -> bad_signature
    wrong_schema: int = 0  # valid gzip of something that is not an upload -> wrong_schema
    unsupported_version: int = 0  # correctly signed batch with schema_version 7 -> unsupported_schema_version
    bad_records: int = 0  # invalid events inside valid batches (see BAD_RECORD_REASONS)
    future_events: int = 0  # events dated 2-5 days after receipt (clock offset cannot explain it) -> future_timestamp
    prehistoric_events: int = 0  # events dated ~10 years before the account existed -> before_account_creation

    def __post_init__(self) -> None:
        for name in (*FAULT_KINDS, "bad_records", *TIME_FAULT_REASONS):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"FaultPlan.{name} must be a non-negative integer, got {value!r}")

    @classmethod
    def default(cls, n_objects: int) -> FaultPlan:
        """~0.5 % of `n_objects` per object-level fault, bad records for ~0.2 % of the events and each
        time fault for ~0.05 % of them (assuming ~40 events per object); at least one of each."""
        if n_objects < 1:
            raise ValueError(f"FaultPlan.default needs n_objects >= 1, got {n_objects}")
        per_kind = max(1, round(n_objects * 0.005))
        bad = max(1, round(n_objects * EVENTS_PER_OBJECT_ESTIMATE * 0.002))
        per_time_fault = max(1, round(n_objects * EVENTS_PER_OBJECT_ESTIMATE * 0.0005))
        return cls(per_kind, per_kind, per_kind, per_kind, per_kind, bad,
                   future_events=per_time_fault, prehistoric_events=per_time_fault)

    def object_faults(self) -> dict[str, int]:
        """Object-level fault kind -> count, in `FAULT_KINDS` order."""
        return {kind: getattr(self, kind) for kind in FAULT_KINDS}


@dataclass(frozen=True)
class LandingObject:
    """One object as the collector stored it, plus the ground truth of what was injected into it."""

    key: str
    body: bytes
    fault: str | None  # None or one of FAULT_KINDS
    event_count: int  # events in the batch as built (before faults)
    bad_record_indexes: tuple[int, ...] = ()  # positions of events made invalid
    bad_record_reasons: tuple[str, ...] = ()  # parallel to bad_record_indexes, from BAD_RECORD_REASONS
    is_retry: bool = False  # a second upload of an earlier batch: same batch_id and body, later received_at
    time_fault_indexes: tuple[int, ...] = ()  # positions of valid events with an impossible time
    time_fault_reasons: tuple[str, ...] = ()  # parallel: "future_timestamp" | "before_account_creation"
    attestation_fault: str | None = None  # AttestationPlan: one of ATTESTATION_FAULTS (bronze quarantines the object)
    door_fault: str | None = None  # AttestationPlan: "replayed_nonce" | "burst" (jobs.ingest.door)


@dataclass(frozen=True)
class Account:
    """A B2B customer account; consumers have no account row and account_id "consumer"."""

    account_id: str  # "acct-0007"
    home: str  # market (country code) of the headquarters
    departments: tuple[str, ...]
    created_on: date


@dataclass(frozen=True)
class Subscriber:
    msisdn: str  # E.164, valid for the home market's numbering plan
    account_id: str  # "acct-NNNN" or "consumer"
    department: str | None  # B2B only
    home_country: str  # ISO 3166-1 alpha-2, "US-CA" for California
    jurisdiction: str  # "EU" | "US-CA" | "US-other" | "other"
    home_city: str
    home_mccmnc: str
    telemetry_level: str  # "basic" | "diagnostic"
    diagnostics_opt_out: bool
    created_on: date
    activity: float  # relative call volume; heavy users call many times more than light ones

    @property
    def is_b2b(self) -> bool:
        return self.account_id != "consumer"


@dataclass(frozen=True)
class Device:
    device_id: str  # UUID string
    msisdn: str  # owner
    platform: str  # "ios" | "android" | "web"
    app_version: str
    schema_version: int  # CallEvent schema the app version sends
    imei: str | None  # 15 digits with a Luhn check digit; None for web
    clock_skew_ms: int  # device clock minus true time
    usage_share: float  # primary device 1.0, a second one less


@dataclass(frozen=True)
class Population:
    accounts: list[Account]  # B2B accounts
    subscribers: list[Subscriber]
    devices: list[Device]


class ConsentChange(NamedTuple):
    """A subscriber changed consent during the day; the client keeps sending its old level (SDK config lag).

    The directory records it as the subscriber's second state, in force from `effective_from_ms` (true
    UTC time, inside the day, after the subscriber was created)."""

    msisdn: str
    effective_from_ms: int
    telemetry_level: str  # the new level: "basic" | "diagnostic"
    diagnostics_opt_out: bool  # the new opt-out


SCENARIO_KINDS = ("irsf_burst", "compromised_account", "telemetry_flood", "call_flood")
# Premium / non-geographic ranges an IRSF fraudster leases numbers in (+881 / +882 satellite and global services).
IRSF_PREFIXES = ("+88213", "+88216", "+88234", "+8816")
AUTH_FAILURE_REASONS = ("bad_password", "expired_token", "mfa_failed")


@dataclass(frozen=True)
class ScenarioPlan:
    """Labelled attack scenarios and the authentication log of a day; `generate_day` adds none by default.

    * irsf_bursts: one subscriber's device makes 30-60 short completed calls to premium / satellite numbers
      within 30-90 minutes (international revenue share fraud);
    * compromised_accounts: an attacker calls with a victim's number from a foreign country: half the time from a
      device of their own that only failed to log in, half the time from the victim's device identity (a cloned
      session) without a login from that country;
    * telemetry_floods: a (schema 2) device reports 150-600x the media bytes its calls can carry;
    * call_floods: a misconfigured client retries one number 120-250 times within 45-90 minutes, each attempt
      failing within seconds;
    * auth_logs: the day's login log (every calling device logs in before its first call; a few mistype first;
      some credential-stuffing noise from abroad). Needed by the compromised-account scenario.

    Every scenario draws from a random stream of its own, so the day's normal traffic is the same with or without
    them; each is recorded as a `ScenarioLabel`.
    """

    irsf_bursts: int = 0
    compromised_accounts: int = 0
    telemetry_floods: int = 0
    call_floods: int = 0
    auth_logs: bool = True

    def __post_init__(self) -> None:
        for name in ("irsf_bursts", "compromised_accounts", "telemetry_floods", "call_floods"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"ScenarioPlan.{name} must be a non-negative integer, got {value!r}")
        if self.compromised_accounts and not self.auth_logs:
            raise ValueError("ScenarioPlan.compromised_accounts needs auth_logs (the scenario is defined by them)")

    @property
    def attacks(self) -> int:
        return self.irsf_bursts + self.compromised_accounts + self.telemetry_floods + self.call_floods


@dataclass(frozen=True)
class ScenarioLabel:
    """Ground truth of one injected scenario: who (raw identifiers, as generated), when (true UTC ms), which calls."""

    scenario: str  # one of SCENARIO_KINDS
    msisdn: str  # the subscriber whose number made the calls
    device_id: str  # the device identity the calls came from
    account_id: str  # "acct-NNNN" or "consumer"
    start_ms: int  # first call start (true time)
    end_ms: int  # last call end (true time)
    call_ids: tuple[str, ...]


@dataclass(frozen=True)
class GeneratedDay:
    day: date
    objects: list[LandingObject]  # sorted by key (= by receive time)
    population: Population
    directory_key: str = ""  # the subscriber directory export of the day (landing bucket)
    directory_body: bytes = b""  # gzip JSON Lines: every consent state of every subscriber (see directory_export)
    consent_changes: tuple[ConsentChange, ...] = ()  # sorted by msisdn
    auth_key: str = ""  # the day's authentication log (landing bucket); "" when the plan asked for none
    auth_body: bytes = b""  # gzip JSON Lines, one login attempt per line (see `auth_log`)
    labels: tuple[ScenarioLabel, ...] = ()  # ground truth of the injected attack scenarios (never for detectors)
    noncompliant: tuple[NonComplianceLabel, ...] = ()  # ground truth of NonCompliancePlan's clients

    @property
    def events_total(self) -> int:
        """Sum of event_count over all objects, retries included."""
        return sum(o.event_count for o in self.objects)


# ----------------------------------------------------------------------------- small helpers

def luhn_check_digit(digits: str) -> str:
    """The Luhn check digit to append to `digits` (as for IMEIs and card numbers)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:  # every second digit from the right, counting the check digit to come
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    return number.isdigit() and len(number) >= 2 and luhn_check_digit(number[:-1]) == number[-1]


def _uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _weighted(rng: random.Random, options: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


def _digits(rng: random.Random, n: int) -> str:
    return str(rng.randrange(10**n)).zfill(n)


def _phone_number(rng: random.Random, market: Market, plan: tuple[tuple[str, int], ...]) -> str:
    prefix, n = rng.choice(plan)
    # First subscriber digit 2-9: NANP exchange codes cannot start with 0/1, and it is harmless elsewhere.
    return f"+{market.calling_code}{prefix}{rng.randint(2, 9)}{_digits(rng, n - 1)}"


@dataclass(frozen=True)
class _AddressPool:
    """Public address ranges of one kind (a carrier's mobile pool, broadband, relays)."""

    ranges: tuple[tuple[int, int, int], ...]  # (version, first address, size)

    @classmethod
    def of(cls, cidrs: tuple[str, ...]) -> _AddressPool:
        nets = [ipaddress.ip_network(c) for c in cidrs]
        return cls(tuple((n.version, int(n.network_address), n.num_addresses) for n in nets))

    def draw(self, rng: random.Random) -> str:
        version, first, size = rng.choice(self.ranges)
        offset = rng.randrange(1, size - 1)  # never the range's network or broadcast address
        if version == 4:
            # Hosts avoid .0 and .255 (x.y.z.0 would also read like its own /24 prefix).
            address = first + offset
            if address & 0xFF in (0, 255):
                address ^= 1
            return str(ipaddress.IPv4Address(address))
        return str(ipaddress.IPv6Address(first + offset))


@cache
def _pools(home: str) -> dict[str, _AddressPool]:
    m = MARKETS_BY_HOME[home]
    return {"mobile4": _AddressPool.of(m.mobile_v4), "mobile6": _AddressPool.of(m.mobile_v6),
            "fixed4": _AddressPool.of(m.fixed_v4), "fixed6": _AddressPool.of(m.fixed_v6)}


@cache
def _relays(region: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A small fixed fleet of media relays per region, the same for every seed and day."""
    rng = random.Random(f"voiplake-relays:{region}")
    v4, v6 = _RELAY_RANGES[region]
    return (tuple(_AddressPool.of(v4).draw(rng) for _ in range(_RELAYS_PER_REGION)),
            tuple(_AddressPool.of(v6).draw(rng) for _ in range(_RELAYS_PER_REGION)))


@cache
def _hour_cum_weights(business: bool, utc_offset_h: float) -> tuple[float, ...]:
    """Cumulative weights of the 24 UTC hours for a caller living at `utc_offset_h`."""
    local = _BUSINESS_HOURS if business else _CONSUMER_HOURS
    return tuple(accumulate(local[math.floor(h + utc_offset_h) % 24] for h in range(24)))


def _canonical_json(obj: Any) -> bytes:
    """The upload format's canonical JSON (docs/landing_format.md): sorted keys, no spaces, ASCII."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _gunzips(blob: bytes) -> bool:
    try:
        gzip.decompress(blob)
    except (OSError, EOFError, zlib.error):
        return False
    return True


def _share_of(share: float, n: int) -> int:
    """How many of n items get a phenomenon of this share: at least one once there are two items."""
    return max(1, round(share * n)) if n >= 2 else 0


def _day_start_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


# ----------------------------------------------------------------------------- population

def _imei(rng: random.Random, platform: str) -> str:
    body = rng.choice(_TACS[platform]) + _digits(rng, 6)
    return body + luhn_check_digit(body)


def _clock_skew_ms(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.003:  # clock set about a year ahead (wrong year picked by hand, dead RTC battery)
        return 365 * DAY_MS + int(rng.gauss(0, 2 * HOUR_MS))
    if r < 0.033:  # manual clock / wrong time zone: minutes to hours off, either way
        magnitude = math.exp(rng.uniform(math.log(2 * 60_000), math.log(6 * HOUR_MS)))
        return int(magnitude) * rng.choice((-1, 1))
    return max(-2000, min(2000, int(rng.gauss(0, 600))))


def _device(rng: random.Random, msisdn: str, usage_share: float) -> Device:
    platform = _weighted(rng, PLATFORM_SHARES)
    versions = APP_VERSIONS[platform]
    app_version, schema_version, _ = rng.choices(versions, weights=[v[2] for v in versions])[0]
    return Device(
        device_id=_uuid4(rng), msisdn=msisdn, platform=platform, app_version=app_version,
        schema_version=schema_version, imei=None if platform == "web" else _imei(rng, platform),
        clock_skew_ms=_clock_skew_ms(rng), usage_share=usage_share,
    )


def build_population(*, n_subscribers: int, seed: int, as_of: date = date(2026, 1, 1)) -> Population:
    """Accounts, subscribers and their devices, deterministic for (n_subscribers, seed).

    ~n_subscribers/80 (at least 3) B2B accounts with 2-8 departments hold ~80 % of the subscribers; the rest are
    consumers (account_id "consumer"). MSISDNs are unique E.164 numbers of the home market; every
    subscriber and account was created before `as_of`; each subscriber has 1-2 devices. `as_of` only
    moves the creation dates, so the same seed gives the same people and devices on every day.
    """
    if n_subscribers < 1:
        raise ValueError(f"n_subscribers must be >= 1, got {n_subscribers}")
    rng = random.Random(f"voiplake-population:{seed}")
    market_weights = [m.weight for m in MARKETS]

    accounts: list[Account] = []
    for i in range(max(3, round(n_subscribers / 80))):  # at least a few, so a small population is not one company
        market = rng.choices(MARKETS, weights=market_weights)[0]
        accounts.append(Account(
            account_id=f"acct-{i + 1:04d}", home=market.home,
            departments=tuple(rng.sample(DEPARTMENTS, rng.randint(2, 8))),
            created_on=as_of - timedelta(days=rng.randint(60, 3000)),
        ))
    account_sizes = [rng.lognormvariate(0, 1.0) for _ in accounts]  # a few large customers, many small ones

    used: set[str] = set()
    subscribers: list[Subscriber] = []
    devices: list[Device] = []
    for _ in range(n_subscribers):
        account: Account | None = None
        if rng.random() < 0.8:
            account = rng.choices(accounts, weights=account_sizes)[0]
            # Most staff work in the customer's home market; international customers have a few abroad.
            if rng.random() < 0.85:
                market = MARKETS_BY_HOME[account.home]
            else:
                market = rng.choices(MARKETS, weights=market_weights)[0]
            days_since_account = (as_of - account.created_on).days
            created_on = account.created_on + timedelta(days=rng.randint(0, days_since_account - 1))
            department: str | None = rng.choice(account.departments)
            # Agents in support and sales live on the phone.
            activity = rng.lognormvariate(0, 0.7) * (2.2 if department in ("support", "sales") else 1.2)
        else:
            market = rng.choices(MARKETS, weights=market_weights)[0]
            created_on = as_of - timedelta(days=rng.randint(1, 2500))
            department = None
            activity = rng.lognormvariate(0, 0.8) * 0.6
        city = rng.choice(market.cities)
        plan = _nanp(*city.area_codes) if city.area_codes else market.mobile_plan
        msisdn = _phone_number(rng, market, plan)
        while msisdn in used:
            msisdn = _phone_number(rng, market, plan)
        used.add(msisdn)
        subscribers.append(Subscriber(
            msisdn=msisdn, account_id=account.account_id if account else "consumer", department=department,
            home_country=market.home, jurisdiction=market.jurisdiction, home_city=city.name,
            home_mccmnc=rng.choices(market.carriers, weights=range(len(market.carriers) + 1, 1, -1))[0],
            telemetry_level="diagnostic" if rng.random() < 0.6 else "basic",
            diagnostics_opt_out=rng.random() < 0.1, created_on=created_on, activity=activity,
        ))
        devices.append(_device(rng, msisdn, 1.0))
        if rng.random() < 0.3:
            devices.append(_device(rng, msisdn, rng.uniform(0.1, 0.5)))
    return Population(accounts=accounts, subscribers=subscribers, devices=devices)


# ----------------------------------------------------------------------------- one device's day

@dataclass
class _Batch:
    """A device's upload as built, before encoding."""

    device: Device
    events: list[dict[str, Any]]
    batch_id: str
    send_ms: int  # true time the upload left the device
    received_ms: int
    time_sync: tuple[tuple[int, int, int], ...]
    retry_received_ms: int | None = None
    fault: str | None = None
    bad: list[tuple[int, str]] = field(default_factory=list)
    time_faults: list[tuple[int, str]] = field(default_factory=list)  # (event index, silver reason)
    storm_received_ms: list[int] = field(default_factory=list)  # NonCompliancePlan.over_cap: further re-uploads
    attestation: Attestation | None = None  # AttestationPlan: the service's verdict the (schema 3) client attaches
    attestation_fault: str | None = None  # one of ATTESTATION_FAULTS
    door_fault: str | None = None  # AttestationPlan.replayed_nonce / burst_uploads: "replayed_nonce" | "burst"


class _DeviceDay:
    """Where a device is today and how it connects: location, serving carrier, addresses, networks."""

    def __init__(self, rng: random.Random, device: Device, subscriber: Subscriber) -> None:
        self.device = device
        self.subscriber = subscriber
        home = MARKETS_BY_HOME[subscriber.home_country]
        if rng.random() < 0.03:  # abroad today
            others = [m for m in MARKETS if m.calling_code != home.calling_code]
            self.market = rng.choices(others, weights=[m.weight for m in others])[0]
            self.city = rng.choice(self.market.cities)
        else:
            self.market = home
            home_city = next(c for c in home.cities if c.name == subscriber.home_city)
            self.city = home_city if rng.random() < 0.9 else rng.choice(home.cities)
        self.native = device.platform != "web"
        roaming = self.market is not home
        serving = rng.choice(self.market.carriers) if roaming else subscriber.home_mccmnc
        self.carrier = serving if self.native else None  # browsers cannot see the mobile network
        self.latitude = self.city.latitude + rng.gauss(0, 0.06)
        self.longitude = self.city.longitude + rng.gauss(0, 0.08)
        self.shares_location = self.native or rng.random() < 0.4  # browsers: only if the user allowed it
        self.wifi_share = rng.uniform(0.25, 0.8)
        self.web_network = "ethernet" if rng.random() < 0.4 else "wifi"
        fixed = _pools(self.market.home)
        self.fixed_ip = (fixed["fixed6"] if rng.random() < 0.35 else fixed["fixed4"]).draw(rng)
        # Roaming data is home-routed: the public mobile address belongs to the home carrier.
        self.mobile_pool = _pools(home.home)["mobile6" if rng.random() < 0.55 else "mobile4"]
        self.relays = _relays(self.market.relay_region)
        self.flush_every_ms = rng.randint(10 * HOUR_MS, 24 * HOUR_MS)


def _signal(rng: random.Random, network: str) -> float:
    _, low, high, mode = SIGNAL_METRICS[network]
    return float(round(rng.triangular(low, high, mode)))


def _call_fields(rng: random.Random, ctx: _DeviceDay, *, call_id: str, callee: str, src_ip: str, dst_ip: str,
                 network: str) -> dict[str, Any]:
    """The fields every event of one call repeats: parties, addresses, network, location (when shared, jittered
    from `rng`) and, by schema version, the telemetry level (v2+) or the IMEI (v1 clients that send it)."""
    device, subscriber = ctx.device, ctx.subscriber
    common: dict[str, Any] = {
        "call_id": call_id, "msisdn": subscriber.msisdn, "callee_msisdn": callee,
        "account_id": subscriber.account_id, "src_ip": src_ip, "dst_ip": dst_ip, "network_type": network,
        # Browsers expose no radio metrics; native SDKs report their platform's own one.
        "signal_metric": SIGNAL_METRICS[network][0] if ctx.native else None,
        "country_code": ctx.city.country_code, "carrier_mccmnc": ctx.carrier,
    }
    if ctx.shares_location:
        common["latitude"] = round(ctx.latitude + rng.gauss(0, 0.01), 5)
        common["longitude"] = round(ctx.longitude + rng.gauss(0, 0.01), 5)
    if device.schema_version >= 2:
        common["telemetry_level"] = subscriber.telemetry_level
        common["diagnostics_opt_out"] = subscriber.diagnostics_opt_out
    elif device.imei is not None:
        common["imei"] = device.imei
    return common


class _CallSimulator:
    """Turns calls into events (true time in event_ms; the device's skew is added when batching)."""

    def __init__(self, rng: random.Random, population: Population, seed: int) -> None:
        self.rng = rng
        self.seed = seed
        self.subscribers = population.subscribers
        self.colleagues: dict[str, list[str]] = {}
        for s in population.subscribers:
            if s.is_b2b:
                self.colleagues.setdefault(s.account_id, []).append(s.msisdn)
        self._contacts: dict[str, list[str]] = {}

    def contacts(self, subscriber: Subscriber) -> list[str]:
        """Outside numbers a subscriber keeps calling; stable for a seed, whatever the day."""
        found = self._contacts.get(subscriber.msisdn)
        if found is None:
            crng = random.Random(f"voiplake-contacts:{self.seed}:{subscriber.msisdn}")
            home = MARKETS_BY_HOME[subscriber.home_country]
            found = []
            for _ in range(crng.randint(5, 25)):
                r = crng.random()
                if r < 0.70:
                    found.append(_phone_number(crng, home, home.mobile_plan))
                elif r < 0.95:
                    found.append(_phone_number(crng, home, home.landline_plan))
                else:
                    other = crng.choice(MARKETS)
                    found.append(_phone_number(crng, other, other.mobile_plan))
            self._contacts[subscriber.msisdn] = found
        return found

    def callee(self, subscriber: Subscriber) -> str:
        rng = self.rng
        r = rng.random()
        if r < 0.35:  # on-net: a colleague for business lines, anyone for consumers
            pool = self.colleagues.get(subscriber.account_id) if rng.random() < 0.6 else None
            if not pool or len(pool) < 2:
                pool = None
            for _ in range(5):
                pick = rng.choice(pool) if pool else rng.choice(self.subscribers).msisdn
                if pick != subscriber.msisdn:
                    return pick
        if r < 0.85:
            return rng.choice(self.contacts(subscriber))
        market = MARKETS_BY_HOME[subscriber.home_country] if rng.random() < 0.9 else rng.choice(MARKETS)
        return _phone_number(rng, market, market.mobile_plan)

    def call(self, ctx: _DeviceDay, start_ms: int, end_limit_ms: int) -> list[dict[str, Any]]:
        """One call's events with true times, all ending by `end_limit_ms`."""
        rng = self.rng
        device, subscriber = ctx.device, ctx.subscriber
        if ctx.native:
            network = "wifi" if rng.random() < ctx.wifi_share else _weighted(rng, _CELLULAR_MIX)
        else:
            network = ctx.web_network
        src_ip = ctx.fixed_ip if network in ("wifi", "ethernet") else ctx.mobile_pool.draw(rng)
        v6 = ":" in src_ip
        if rng.random() < 0.75:  # relayed media (TURN) ...
            dst_ip = rng.choice(ctx.relays[1] if v6 else ctx.relays[0])
        else:  # ... or peer to peer, to the other side's broadband address
            peer = _pools(rng.choice(MARKETS).home)
            dst_ip = (peer["fixed6"] if v6 else peer["fixed4"]).draw(rng)

        r = rng.random()
        outcome = "none" if r < NO_END_SHARE else ("failure" if r < NO_END_SHARE + FAILURE_SHARE else "end")
        failure_reason = None
        duration_ms = 0
        if outcome == "end":
            ring_ms = rng.randint(2_000, 20_000)
            duration_ms = min(MAX_CALL_MS, max(1_000, int(rng.lognormvariate(math.log(MEDIAN_CALL_MS), 1.1))))
            terminal_after_ms = ring_ms + duration_ms
        elif outcome == "failure":
            failure_reason = _weighted(rng, FAILURE_REASONS)
            terminal_after_ms = {
                "busy": rng.randint(800, 4_000), "no_answer": rng.randint(30_000, 60_000),
                "network_error": rng.randint(300, 20_000), "codec_mismatch": rng.randint(500, 3_000),
                "timeout": rng.randint(30_000, 45_000),
            }[failure_reason]
        else:
            terminal_after_ms = 0
        if start_ms + terminal_after_ms > end_limit_ms:  # a call (at most ~4 h) started late: keep it inside the day
            start_ms = end_limit_ms - terminal_after_ms

        call_id = _uuid4(rng)  # drawn before the callee: the seeded stream stays what it was
        common = _call_fields(rng, ctx, call_id=call_id, callee=self.callee(subscriber), src_ip=src_ip, dst_ip=dst_ip,
                              network=network)
        v2 = device.schema_version >= 2

        def event(event_type: str, at_ms: int) -> dict[str, Any]:
            e = dict(common)
            e["event_id"] = _uuid4(rng)
            e["event_type"] = event_type
            e["event_ms"] = at_ms
            if ctx.native:
                e["signal_value"] = _signal(rng, network)
            return e

        events = [event("call_start", start_ms)]
        if outcome == "end":
            end = event("call_end", start_ms + terminal_after_ms)
            end["duration_ms"] = duration_ms
            if v2:
                kbps = _CODEC_KBPS[network] * 125  # bytes per second
                end["bytes_sent"] = int(duration_ms / 1000 * kbps * rng.uniform(0.85, 1.05))
                end["bytes_received"] = int(duration_ms / 1000 * kbps * rng.uniform(0.85, 1.05))
                if subscriber.telemetry_level == "diagnostic" and not subscriber.diagnostics_opt_out:
                    weak = 0.0
                    if ctx.native and network != "2g":
                        _, low, high, _ = SIGNAL_METRICS[network]
                        weak = max(0.0, (high - end["signal_value"]) / (high - low) - 0.5)
                    mos = _MOS_BASE[network] - 1.6 * weak + rng.gauss(0, 0.25)
                    end["mos"] = round(min(4.5, max(1.0, mos)), 2)
                    end["jitter_ms"] = min(500, int(_JITTER_BASE_MS[network] * rng.lognormvariate(0, 0.5)))
            events.append(end)
        elif outcome == "failure":
            fail = event("call_failure", start_ms + terminal_after_ms)
            fail["failure_reason"] = failure_reason
            events.append(fail)
        return events


def _time_sync(rng: random.Random, send_ms: int, skew_ms: int) -> tuple[tuple[int, int, int], ...]:
    """1-2 NTP-like samples taken before the send: server_ms - device_ms ~ one-way delay - skew."""
    samples = []
    taken = send_ms - rng.randint(0, 1_500)
    for _ in range(1 if rng.random() < 0.6 else 2):
        rtt = max(8, min(3_000, int(rng.lognormvariate(math.log(120), 0.6))))
        sample_at = taken - rtt
        samples.append((sample_at + skew_ms, sample_at + int(rtt * rng.uniform(0.35, 0.65)), rtt))
        taken = sample_at - rng.randint(10 * 60_000, 4 * HOUR_MS)  # the previous sync, earlier
    return tuple(reversed(samples))


def _device_batches(
    rng: random.Random, sim: _CallSimulator, ctx: _DeviceDay, n_calls: int, day_start_ms: int
) -> list[_Batch]:
    """A device's calls of the day, batched the way the SDK flushes: every few hours or when the buffer is full."""
    device = ctx.device
    cum = _hour_cum_weights(ctx.subscriber.is_b2b, ctx.city.utc_offset_h)
    end_limit = day_start_ms + DAY_MS - _EVENT_END_MARGIN_MS
    starts = sorted(
        day_start_ms + bisect(cum, rng.random() * cum[-1]) * HOUR_MS + rng.randrange(HOUR_MS) for _ in range(n_calls)
    )
    calls = sorted((sim.call(ctx, min(s, end_limit), end_limit) for s in starts), key=lambda c: c[0]["event_ms"])

    groups: list[list[list[dict[str, Any]]]] = []
    current: list[list[dict[str, Any]]] = []
    current_events = 0
    for call in calls:
        if current and (call[0]["event_ms"] - current[0][0]["event_ms"] > ctx.flush_every_ms
                        or current_events + len(call) > MAX_BATCH_EVENTS):
            groups.append(current)
            current, current_events = [], 0
        current.append(call)
        current_events += len(call)
    if current:
        groups.append(current)

    batches = []
    for i, group in enumerate(groups):
        events = sorted((e for call in group for e in call), key=lambda e: e["event_ms"])
        last_ms = events[-1]["event_ms"]
        flush_delay = 500 + int(rng.expovariate(1 / 180_000))  # the SDK waits for an idle moment
        if i + 1 < len(groups):
            flush_delay = min(flush_delay, max(500, groups[i + 1][0][0]["event_ms"] - last_ms))
        send_ms = min(last_ms + flush_delay, day_start_ms + DAY_MS - _SEND_END_MARGIN_MS)
        for e in events:
            e["event_ms"] += device.clock_skew_ms
        batches.append(_Batch(
            device=device, events=events, batch_id=_uuid4(rng), send_ms=send_ms,
            received_ms=send_ms + rng.randint(50, 2_000), time_sync=_time_sync(rng, send_ms, device.clock_skew_ms),
        ))
    return batches


# ----------------------------------------------------------------------------- faults

def _pb_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _pb_bytes_field(number: int, value: bytes) -> bytes:
    return _pb_varint(number << 3 | 2) + _pb_varint(len(value)) + value


def _crash_report(rng: random.Random, batch: _Batch, encoding: str) -> bytes:
    """What a client's crash reporter posts to the wrong endpoint: valid gzip, not an upload."""
    device = batch.device
    frames = ["CallEngine.startMedia", "AudioSession.activate", "RTPSender.flush", "main"]
    if encoding == "json":
        doc = {"kind": "crash_report", "device_id": device.device_id, "platform": device.platform,
               "app_version": device.app_version, "crashed_at_ms": batch.send_ms + device.clock_skew_ms,
               "exception": "TypeError: Cannot read properties of undefined (reading 'getStats')",
               "stack": rng.sample(frames, len(frames))}
        return gzip.compress(_canonical_json(doc), mtime=0)
    # The crash report protobuf shares field numbers 1-3 with SignedUpload (version, context, trace), so it
    # parses as an envelope whose "header" has none of BatchHeader's fields: the decoder says wrong_schema.
    context = (_pb_bytes_field(16, device.app_version.encode()) + _pb_bytes_field(17, device.platform.encode())
               + _pb_bytes_field(18, b"com.voiplake.call-engine"))
    trace = "\n".join(f"#{i} {f} +0x{rng.randrange(1 << 16):04x}" for i, f in enumerate(frames)).encode()
    raw = _pb_varint(1 << 3 | 0) + _pb_varint(1) + _pb_bytes_field(2, context) + _pb_bytes_field(3, trace)
    return gzip.compress(raw, mtime=0)


def _tamper(rng: random.Random, body: bytes, encoding: str) -> bytes:
    """Inflate a call (or redirect one) after signing; recompute payload_sha256, keep the old signature."""
    raw = gzip.decompress(body)
    if encoding == "json":
        doc = json.loads(raw)
        events = doc["events"]
        ends = [e for e in events if e.get("event_type") == "call_end"]
        if ends:
            ends[0]["duration_ms"] = int(ends[0]["duration_ms"]) * rng.randint(5, 20)
        else:
            events[0]["callee_msisdn"] = "+88213" + _digits(rng, 8)  # premium-rate satellite range
        doc["header"]["payload_sha256"] = hashlib.sha256(_canonical_json(events)).hexdigest()
        return gzip.compress(_canonical_json(doc), mtime=0)
    signed = pb.SignedUpload.FromString(raw)
    batch = pb.EventBatch.FromString(signed.payload)
    ends_pb = [e for e in batch.events if e.event_type == pb.CALL_END]
    if ends_pb:
        ends_pb[0].duration_ms = ends_pb[0].duration_ms * rng.randint(5, 20)
    else:
        batch.events[0].callee_msisdn = "+88213" + _digits(rng, 8)
    signed.payload = batch.SerializeToString()
    header = pb.BatchHeader.FromString(signed.header)
    header.payload_sha256 = hashlib.sha256(signed.payload).digest()
    signed.header = header.SerializeToString()
    return gzip.compress(signed.SerializeToString(), mtime=0)


def _corrupt(rng: random.Random, body: bytes) -> bytes:
    """Flip 1-3 bytes inside the deflate data (not the gzip header, whose mtime bytes are not checked)."""
    for _ in range(100):
        damaged = bytearray(body)
        for _ in range(rng.randint(1, 3)):
            damaged[rng.randrange(10, len(body) - 8)] ^= rng.randrange(1, 256)
        if not _gunzips(bytes(damaged)):
            return bytes(damaged)
    raise RuntimeError("could not corrupt a gzip stream in 100 tries")  # CRC-32 makes this unreachable


def _truncate(rng: random.Random, body: bytes) -> bytes:
    for _ in range(100):
        cut = body[: rng.randrange(max(10, len(body) // 4), len(body) - 1)]
        if not _gunzips(cut):
            return cut
    raise RuntimeError("could not truncate a gzip stream into an unreadable one")


def _make_bad_record(rng: random.Random, event: dict[str, Any], reason: str) -> None:
    """Make one event invalid for exactly `reason` (the rest of it stays valid)."""
    if reason == "invalid_msisdn":
        event["msisdn"] = "0151-1234"  # a number as typed locally, not E.164
    elif reason == "missing_required_field":
        event["call_id"] = None
    elif reason == "invalid_duration":
        event["duration_ms"] = -rng.randint(1, 60_000)
    elif reason == "invalid_ip":
        event["src_ip"] = "999.1.1.1"
    else:
        raise ValueError(f"unknown bad record reason {reason!r}; known: {BAD_RECORD_REASONS}")


def _inject_faults(rng: random.Random, batches: list[_Batch], plan: FaultPlan) -> None:
    """Mark object-level faults on single-upload batches, then spoil records in valid batches."""
    single = [b for b in batches if b.retry_received_ms is None]
    wanted = plan.object_faults()
    total = sum(wanted.values())
    if total > len(single):
        raise ValueError(
            f"FaultPlan asks for {total} faulty objects but only {len(single)} batches were uploaded once; "
            "lower the plan or generate more events"
        )
    chosen = rng.sample(single, total)
    i = 0
    for kind, count in wanted.items():
        for batch in chosen[i:i + count]:
            batch.fault = kind
        i += count

    if plan.bad_records == 0:
        return
    valid = [b for b in batches if b.fault is None]
    cum = list(accumulate(len(b.events) for b in valid))
    if not valid or plan.bad_records > cum[-1] // 2:
        raise ValueError(f"FaultPlan asks for {plan.bad_records} bad records in {cum[-1] if valid else 0} valid events")
    reasons = [BAD_RECORD_REASONS[i % len(BAD_RECORD_REASONS)] for i in range(plan.bad_records)]
    rng.shuffle(reasons)
    taken: set[tuple[int, int]] = set()
    for reason in reasons:
        for _ in range(100_000):
            position = rng.randrange(cum[-1])
            b = bisect(cum, position)
            index = position - (cum[b - 1] if b else 0)
            event = valid[b].events[index]
            if (b, index) in taken or (reason == "invalid_duration" and event["event_type"] != "call_end"):
                continue
            taken.add((b, index))
            _make_bad_record(rng, event, reason)
            valid[b].bad.append((index, reason))
            break
        else:
            raise ValueError(f"no event left to make a {reason} bad record from")
    for batch in valid:
        batch.bad.sort()


def _account_created_on(accounts: dict[str, Account], subscriber: Subscriber) -> date:
    """The B2B account's creation date (`accounts` by account_id); a consumer's account is their subscription."""
    return accounts[subscriber.account_id].created_on if subscriber.is_b2b else subscriber.created_on


def _inject_time_faults(
    rng: random.Random, batches: list[_Batch], plan: FaultPlan, population: Population, *, spare: set[str]
) -> None:
    """Give valid events of valid single-upload batches an impossible time, one event per call.

    Runs before encoding, so the batch is signed over the changed event: a well-formed upload that
    bronze accepts. Calls of subscribers in `spare` (those changing consent today) are left alone.
    """
    wanted = [reason for name, reason in TIME_FAULT_REASONS.items() for _ in range(getattr(plan, name))]
    if not wanted:
        return
    calls: dict[str, list[tuple[_Batch, int]]] = {}  # call_id -> its eligible events, in generation order
    for batch in batches:
        if batch.fault is not None or batch.retry_received_ms is not None:
            continue
        bad = {i for i, _ in batch.bad}
        for index, event in enumerate(batch.events):
            if index not in bad and event["msisdn"] not in spare:
                calls.setdefault(event["call_id"], []).append((batch, index))
    if len(wanted) > len(calls):
        raise ValueError(
            f"FaultPlan asks for {len(wanted)} events with impossible times but only {len(calls)} calls have "
            "events in valid single-upload batches; lower the plan or generate more events"
        )
    rng.shuffle(wanted)
    by_msisdn = {s.msisdn: s for s in population.subscribers}
    accounts = {a.account_id: a for a in population.accounts}
    for call_id, reason in zip(rng.sample(sorted(calls), len(wanted)), wanted):
        batch, index = rng.choice(calls[call_id])
        event = batch.events[index]
        if reason == "future_timestamp":
            # Claims to have happened days after the collector received it, beyond what the skew explains.
            true_ms = batch.received_ms + rng.randint(FUTURE_SHIFT_DAYS[0] * DAY_MS, FUTURE_SHIFT_DAYS[1] * DAY_MS)
            event["event_ms"] = true_ms + batch.device.clock_skew_ms
        else:
            # The device's RTC was reset: a timestamp from years before the account existed (still after 1970).
            created_ms = _day_start_ms(_account_created_on(accounts, by_msisdn[event["msisdn"]]))
            event["event_ms"] = max(1, created_ms - RTC_RESET_DAYS_BEFORE_ACCOUNT * DAY_MS + rng.randrange(DAY_MS))
        batch.time_faults.append((index, reason))
    for batch in batches:
        batch.time_faults.sort()


# ----------------------------------------------------------------------------- non-compliant clients

NONCOMPLIANCE_KINDS = ("disallowed_fields", "fast_sampling", "tracking_on_2g", "uploads_during_calls", "over_cap")


@dataclass(frozen=True)
class NonCompliancePlan:
    """Clients that break the central SDK configuration (lake_layout/sdk_config.toml); `generate_day` adds none by
    default. Each count is a number of distinct devices (fault-free, at least one upload that day):

    * disallowed_fields: a basic-level build sends mos and jitter_ms on its call ends (diagnostic-only fields);
    * fast_sampling: a diagnostic build samples call quality every second (quality_samples = duration in s),
      on a network that is not constrained;
    * tracking_on_2g: a diagnostic build keeps its normal sampling interval on 2G calls of >= 10 s instead of the
      constrained (slower) one;
    * uploads_during_calls: a build uploads a batch half-way through a call (the call's end follows in a batch of
      its own right after the call);
    * over_cap: a build ignores the collector's acks and re-uploads every batch until its day's uploads exceed the
      daily background-upload byte cap (a retry storm: same batch ids and bytes, later receive times).

    Draws from a random stream of its own, so the day's other uploads are unchanged; each device is recorded as a
    `NonComplianceLabel`.
    """

    disallowed_fields: int = 0
    fast_sampling: int = 0
    tracking_on_2g: int = 0
    uploads_during_calls: int = 0
    over_cap: int = 0

    def __post_init__(self) -> None:
        for name in NONCOMPLIANCE_KINDS:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"NonCompliancePlan.{name} must be a non-negative integer, got {value!r}")


@dataclass(frozen=True)
class NonComplianceLabel:
    kind: str  # one of NONCOMPLIANCE_KINDS
    device_id: str  # raw device id, as generated
    platform: str
    app_version: str
    events: int  # events (disallowed_fields, sampling kinds), uploads (uploads_during_calls) or bytes (over_cap)


def _call_ends(batches: list[_Batch], predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    return [e for b in batches for e in b.events if e.get("event_type") == "call_end" and predicate(e)]


def _apply_noncompliance(
    plan: NonCompliancePlan, batches: list[_Batch], day: date, seed: int, keys: KeyMaterial
) -> tuple[NonComplianceLabel, ...]:
    """Make `plan`'s devices break the SDK configuration in force at the start of `day`; mutates `batches` (the
    chosen devices' events, and for uploads_during_calls their batch list) before encoding."""
    from lake_layout.sdk_config import load_sdk_config

    config = load_sdk_config().in_force(datetime(day.year, day.month, day.day, tzinfo=UTC))
    rng = random.Random(f"voiplake-noncompliance:{seed}:{day.isoformat()}")
    by_device: dict[str, list[_Batch]] = {}
    for batch in batches:
        by_device.setdefault(batch.device.device_id, []).append(batch)
    clean = sorted(d for d, bs in by_device.items() if all(b.fault is None and not b.bad and not b.time_faults for b in bs))
    taken: set[str] = set()
    labels: list[NonComplianceLabel] = []

    def pick(kind: str, n: int, eligible: Callable[[list[_Batch]], bool], *, heaviest: bool = False) -> list[list[_Batch]]:
        candidates = [d for d in clean if d not in taken and eligible(by_device[d])]
        if len(candidates) < n:
            raise ValueError(f"NonCompliancePlan.{kind} asks for {n} devices but only {len(candidates)} qualify; "
                             "lower the plan or generate more events")
        if heaviest:  # the busiest devices: fewest re-uploads needed to pass the cap
            candidates.sort(key=lambda d: (-sum(len(b.events) for b in by_device[d]), d))
        chosen = candidates[:n] if heaviest else rng.sample(candidates, n)
        taken.update(chosen)
        return [by_device[d] for d in chosen]

    def label(kind: str, device_batches: list[_Batch], count: int) -> None:
        device = device_batches[0].device
        labels.append(NonComplianceLabel(kind, device.device_id, device.platform, device.app_version, count))

    def basic_end(e: dict[str, Any]) -> bool:
        return e.get("telemetry_level") == "basic"

    for device_batches in pick("disallowed_fields", plan.disallowed_fields, lambda bs: bool(_call_ends(bs, basic_end))):
        ends = _call_ends(device_batches, basic_end)
        for e in ends:
            e["mos"] = round(rng.uniform(3.0, 4.4), 2)
            e["jitter_ms"] = rng.randint(5, 60)
        label("disallowed_fields", device_batches, len(ends))

    def diagnostic_end(network: Callable[[str], bool]) -> Callable[[dict[str, Any]], bool]:
        return lambda e: e.get("mos") is not None and network(e["network_type"]) and e["duration_ms"] >= 10_000

    for kind, n, network, interval_s in (
        ("fast_sampling", plan.fast_sampling, lambda net: net != "2g", 1),
        ("tracking_on_2g", plan.tracking_on_2g, lambda net: net == "2g", None),
    ):
        wanted = diagnostic_end(network)
        for device_batches in pick(kind, n, lambda bs, w=wanted: bool(_call_ends(bs, w))):
            ends = _call_ends(device_batches, wanted)
            policy = config.policy(device_batches[0].device.platform, "diagnostic")
            step_ms = 1000 * (interval_s or policy.quality_sample_interval_seconds)
            for e in ends:
                e["quality_samples"] = max(2, e["duration_ms"] // step_ms)
            label(kind, device_batches, len(ends))

    day_start = _day_start_ms(day)

    def splittable(batch: _Batch) -> dict[str, Any] | None:
        """The batch's last event if it ends a call of today lasting >= 10 s whose start is in the same batch and
        whose last third no other event of the batch falls in (so an upload fits inside the call)."""
        last = batch.events[-1]
        if last["event_type"] != "call_end" or last["duration_ms"] < 10_000 or len(batch.events) < 3:
            return None
        if last["event_ms"] - batch.device.clock_skew_ms - last["duration_ms"] < day_start:  # offline-buffered day
            return None
        if batch.events[-2]["event_ms"] >= last["event_ms"] - last["duration_ms"] // 3:
            return None
        return last if any(e["call_id"] == last["call_id"] for e in batch.events[:-1]) else None

    for device_batches in pick("uploads_during_calls", plan.uploads_during_calls,
                               lambda bs: any(b.retry_received_ms is None and splittable(b) for b in bs)):
        batch = next(b for b in device_batches if b.retry_received_ms is None and splittable(b))
        device = batch.device
        end = batch.events.pop()
        end_true = end["event_ms"] - device.clock_skew_ms
        earlier_true = batch.events[-1]["event_ms"] - device.clock_skew_ms
        start_true = next(e for e in batch.events if e["call_id"] == end["call_id"])["event_ms"] - device.clock_skew_ms
        # Mid-call: after the call started (and after the batch's other events), well before it ends.
        batch.send_ms = max(earlier_true + 1, start_true + (end_true - start_true) // 3)
        batch.received_ms = batch.send_ms + rng.randint(50, 2_000)
        batch.time_sync = _time_sync(rng, batch.send_ms, device.clock_skew_ms)
        send_ms = end_true + rng.randint(500, 5_000)
        tail = _Batch(device=device, events=[end], batch_id=_uuid4(rng), send_ms=send_ms,
                      received_ms=send_ms + rng.randint(50, 2_000), time_sync=_time_sync(rng, send_ms, device.clock_skew_ms))
        batches.insert(batches.index(batch) + 1, tail)
        label("uploads_during_calls", device_batches, 1)

    day_end = _day_start_ms(day) + DAY_MS
    key_id = keys.device_master.active
    for device_batches in pick("over_cap", plan.over_cap, lambda bs: all(b.received_ms < day_end - 120_000 for b in bs),
                               heaviest=True):
        device = device_batches[0].device
        encode: Callable[..., bytes] = encode_json if device.platform == "web" else encode_protobuf
        device_key = keys.device_key(device.device_id, key_id)
        sizes = []
        for b in device_batches:
            header = Header(batch_id=b.batch_id, device_id=device.device_id, platform=device.platform,
                            app_version=device.app_version, schema_version=device.schema_version,
                            sent_at_ms=b.send_ms + device.clock_skew_ms, payload_sha256=b"", event_count=len(b.events),
                            time_sync=b.time_sync)
            sizes.append(len(encode(header, b.events, device_key=device_key, key_id=key_id)))
        cap = max(config.policy(device.platform, level).daily_background_upload_bytes for level in ("basic", "diagnostic"))
        rounds = cap // sum(sizes) + 1  # re-uploads of every batch that take the day past the cap
        for b in device_batches:
            gap = max(1, (day_end - 2 - b.received_ms) // (rounds + 1))
            b.storm_received_ms = [b.received_ms + gap * (i + 1) for i in range(rounds)]
        label("over_cap", device_batches, sum(sizes) * (rounds + 1) + sum(
            size for b, size in zip(device_batches, sizes) if b.retry_received_ms is not None))
    return tuple(labels)


# ----------------------------------------------------------------------------- attested clients

# Batches with a bad verdict, and the quarantine reason bronze must give each (jobs.telemetry.attestation).
EXPECTED_ATTESTATION_REASONS = {
    "missing": "attestation_missing",  # an attested build that sent no verdict
    "forged": "attestation_bad_signature",  # a verdict not signed by the attestation service
    "stale": "attestation_stale",  # a verdict issued days before the upload (replayed from an old request)
    "failed_integrity": "attestation_failed_integrity",  # a rooted / emulated device: FAILS_INTEGRITY
    "wrong_device": "attestation_wrong_device",  # a verdict lifted from another device
}
ATTESTATION_FAULTS = tuple(EXPECTED_ATTESTATION_REASONS)
ATTESTED_APP_VERSIONS = {"ios": "6.1.0", "android": "6.1.0", "web": "2026.1"}  # the builds that send schema 3
ATTESTED_SCHEMA_VERSION = 3
STALE_VERDICT_DAYS = (2, 5)


@dataclass(frozen=True)
class AttestationPlan:
    """Attested clients (schema 3); `generate_day` has none by default (no device then sends schema 3).

    Every device that would send schema 2 runs the attested build instead (ATTESTED_APP_VERSIONS): before each
    upload it gets a verdict (MEETS_DEVICE_INTEGRITY, issued 1-60 s before the send, a fresh 16-byte nonce, bound
    to the batch payload) from the simulated attestation service (jobs.telemetry.attestation) and sends it in the
    header; schema 1 devices stay legacy clients without one. The counts are batches given a bad verdict (see
    EXPECTED_ATTESTATION_REASONS), chosen among attested batches that are otherwise clean and uploaded once.
    Draws from a random stream of its own: the events and batches of the day are the same with or without it.

    Abuse at the door (jobs.ingest.door), from a further stream of its own (0: the output is as without these fields):
    `replayed_nonce` clean attested batches get a valid verdict that reuses the nonce of an earlier clean batch of
    the same device (bronze: replayed_nonce); `burst_uploads` re-uploads of one clean attested batch within its
    receive hour (same body: counted against door.max_batches_per_device_hour, not replays). Their objects carry
    `door_fault` "replayed_nonce" / "burst".
    """

    missing: int = 0
    forged: int = 0
    stale: int = 0
    failed_integrity: int = 0
    wrong_device: int = 0
    replayed_nonce: int = 0
    burst_uploads: int = 0

    def __post_init__(self) -> None:
        for name in (*ATTESTATION_FAULTS, "replayed_nonce", "burst_uploads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"AttestationPlan.{name} must be a non-negative integer, got {value!r}")


def _apply_attestation(plan: AttestationPlan, batches: list[_Batch], day: date, seed: int, keys: KeyMaterial) -> None:
    """Upgrade schema 2 devices to the attested build and attach each batch's verdict (bad ones per `plan`)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from jobs.telemetry.attestation import AttestationService

    rng = random.Random(f"voiplake-attestation:{seed}:{day.isoformat()}")
    service = AttestationService.from_keys(keys)
    upgraded: dict[str, Device] = {}
    for batch in batches:
        device = batch.device
        if device.schema_version == 2:
            if device.device_id not in upgraded:
                upgraded[device.device_id] = replace(device, schema_version=ATTESTED_SCHEMA_VERSION,
                                                     app_version=ATTESTED_APP_VERSIONS[device.platform])
            batch.device = upgraded[device.device_id]
    attested = [b for b in batches if b.device.schema_version == ATTESTED_SCHEMA_VERSION]
    clean = [b for b in attested if b.fault is None and b.retry_received_ms is None and not b.storm_received_ms
             and not b.bad and not b.time_faults]
    wanted = [kind for kind in ATTESTATION_FAULTS for _ in range(getattr(plan, kind))]
    if len(wanted) > len(clean):
        raise ValueError(f"AttestationPlan asks for {len(wanted)} bad verdicts but only {len(clean)} attested batches "
                         "are clean single uploads; lower the plan or generate more events")
    for batch, kind in zip(rng.sample(clean, len(wanted)), wanted):
        batch.attestation_fault = kind
    others = sorted({b.device.device_id for b in attested})
    for batch in attested:
        fault = batch.attestation_fault
        if fault == "missing":
            continue
        encoding = "json" if batch.device.platform == "web" else "protobuf"
        issued = batch.send_ms - rng.randint(1_000, 60_000)
        if fault == "stale":
            issued -= rng.randint(*STALE_VERDICT_DAYS) * DAY_MS
        device_id = batch.device.device_id
        if fault == "wrong_device":
            device_id = next((d for d in others if d != device_id), f"{device_id}-other")
        signer = service
        if fault == "forged":  # a self-made key claiming the service's key id
            signer = AttestationService(service.key_id, Ed25519PrivateKey.from_private_bytes(rng.randbytes(32)))
        batch.attestation = signer.issue(
            device_id=device_id, nonce=rng.randbytes(16),
            verdict="FAILS_INTEGRITY" if fault == "failed_integrity" else "MEETS_DEVICE_INTEGRITY",
            issued_at_ms=issued, payload=payload_bytes(batch.events, encoding=encoding),
        )
    if plan.replayed_nonce or plan.burst_uploads:
        _apply_door_abuse(plan, [b for b in clean if b.attestation_fault is None], day, seed, service)


def _apply_door_abuse(plan: AttestationPlan, clean: list[_Batch], day: date, seed: int, service: Any) -> None:
    """AttestationPlan.replayed_nonce / burst_uploads on `clean` (attested, good verdict, uploaded once)."""
    rng = random.Random(f"voiplake-door:{seed}:{day.isoformat()}")
    by_device: dict[str, list[_Batch]] = {}
    for b in sorted(clean, key=lambda b: (b.received_ms, b.batch_id)):
        by_device.setdefault(b.device.device_id, []).append(b)
    pairs = [(bs[i - 1], bs[i]) for bs in by_device.values() for i in range(1, len(bs), 2)]
    if plan.replayed_nonce > len(pairs):
        raise ValueError(f"AttestationPlan asks for {plan.replayed_nonce} replayed nonces but only {len(pairs)} devices' "
                         "clean batch pairs exist; lower the plan or generate more events")
    used: set[str] = set()
    for first, later in rng.sample(pairs, plan.replayed_nonce):
        att = later.attestation
        assert att is not None and first.attestation is not None
        encoding = "json" if later.device.platform == "web" else "protobuf"
        later.attestation = service.issue(device_id=att.device_id, nonce=first.attestation.nonce, verdict=att.verdict,
                                          issued_at_ms=att.issued_at_ms,
                                          payload=payload_bytes(later.events, encoding=encoding))
        later.door_fault = "replayed_nonce"
        used.update((first.batch_id, later.batch_id))
    if plan.burst_uploads:
        candidates = [b for b in clean if b.batch_id not in used]
        if not candidates:
            raise ValueError("AttestationPlan.burst_uploads needs a clean attested batch")
        batch = rng.choice(sorted(candidates, key=lambda b: b.batch_id))
        hour_end = (batch.received_ms // 3_600_000 + 1) * 3_600_000
        gap = max(1, (hour_end - 1 - batch.received_ms) // (plan.burst_uploads + 1))
        batch.storm_received_ms = [batch.received_ms + gap * (i + 1) for i in range(plan.burst_uploads)]
        batch.door_fault = "burst"


# ----------------------------------------------------------------------------- the day

def generate_day(
    day: date, *, events: int, seed: int, keys: KeyMaterial, prefix: str, faults: FaultPlan | None = None,
    directory_prefix: str = DIRECTORY_PREFIX, scenarios: ScenarioPlan | None = None, auth_prefix: str = AUTH_PREFIX,
    noncompliance: NonCompliancePlan | None = None, attestation: AttestationPlan | None = None,
) -> GeneratedDay:
    """One day of landing objects received on `day` (UTC), deterministic for (day, events, seed, keys).

    Contract:
    * ~`events` call events in all (±5 %, retried uploads included); ~events/40 subscribers (>= 20);
    * every object's key comes from `landing_object_key(prefix, ...)` with upload_date == `day`;
    * objects without a fault decode with `decode_object` and the device key
      `keys.device_key(device_id, keys.device_master.active)`, holding `event_count` events of which
      exactly those at `bad_record_indexes` are invalid, for the parallel `bad_record_reasons`;
    * a fault object is rejected for one of `EXPECTED_REJECTION_REASONS[fault]`;
    * a retry (`is_retry`) has its original's batch_id and body and a later receive time;
    * the events at `time_fault_indexes` are valid for bronze, but corrected with the batch's clock offset
      they are later than receipt + 1 day ("future_timestamp") or earlier than the subscriber's
      account_created_on ("before_account_creation"), for the parallel `time_fault_reasons`;
    * `directory_key` = `directory_export_key(day, prefix=directory_prefix)`; `directory_body` holds every
      consent state of every subscriber (`directory_export`), the second state of a subscriber being their
      `consent_changes` entry; at least one change when anybody without an opt-out called (or exists);
    * with `scenarios`: their attack calls as further valid uploads, one `labels` entry per scenario, and (if
      `scenarios.auth_logs`) the login log at `auth_key` = `auth_log_key(day, prefix=auth_prefix)`. Without
      `scenarios` (the default) the day is exactly what it was before scenarios existed (no auth log, no labels).
    * with `noncompliance`: that many devices per kind break the central SDK configuration in force on `day`
      (lake_layout/sdk_config.toml), each recorded in `noncompliant`; without it no client reports quality_samples
      and the day is byte-identical to what it was before the plan existed.
    * with `attestation`: schema 2 devices send schema 3 with an attestation verdict (AttestationPlan), and the
      objects of `attestation_fault` batches are quarantined for EXPECTED_ATTESTATION_REASONS[fault]; without it
      no object carries a verdict.
    Raises ValueError for a non-positive `events` or a fault plan larger than the generated day.
    """
    if not isinstance(events, int) or events < 1:
        raise ValueError(f"events must be a positive integer, got {events!r}")
    plan = faults or FaultPlan()
    population = build_population(
        n_subscribers=max(MIN_SUBSCRIBERS, round(events / EVENTS_PER_SUBSCRIBER)), seed=seed, as_of=day
    )
    rng = random.Random(f"voiplake-day:{seed}:{day.isoformat()}")
    day_start = _day_start_ms(day)
    day_end = day_start + DAY_MS

    # Who calls today, and how much: business lines mostly on weekdays.
    weekend = day.weekday() >= 5
    by_msisdn = {s.msisdn: s for s in population.subscribers}
    active: list[Device] = []
    weights: list[float] = []
    for device in population.devices:
        subscriber = by_msisdn[device.msisdn]
        p_active = (0.3 if weekend else 0.7) if subscriber.is_b2b else 0.45
        if device.usage_share < 1.0:
            p_active *= 0.5  # a second device (tablet, browser) is used on fewer days
        if rng.random() < p_active:
            active.append(device)
            weights.append(subscriber.activity * device.usage_share)
    if not active:
        active, weights = [population.devices[0]], [1.0]
    n_calls = max(1, round(events / (1 + RETRY_SHARE) / (2 - NO_END_SHARE)))
    calls_per_device = Counter(rng.choices(range(len(active)), cum_weights=list(accumulate(weights)), k=n_calls))

    sim = _CallSimulator(rng, population, seed)
    batches: list[_Batch] = []
    for index, device in enumerate(active):
        if calls_per_device[index]:
            ctx = _DeviceDay(rng, device, by_msisdn[device.msisdn])
            batches.extend(_device_batches(rng, sim, ctx, calls_per_device[index], day_start))

    # Offline buffering: these events happened 1-3 days ago; the device only got a connection today.
    for batch in rng.sample(batches, _share_of(OFFLINE_SHARE, len(batches))):
        shift = rng.choice((1, 1, 1, 2, 2, 3)) * DAY_MS
        for e in batch.events:
            e["event_ms"] -= shift
    # Retries: the client saw no ack (timeout) and sent the same bytes again, seconds to minutes later.
    retryable = [b for b in batches if b.received_ms < day_end - 2]
    n_retries = min(len(retryable), _share_of(RETRY_SHARE, len(batches)))
    for batch in rng.sample(retryable, n_retries):
        delay = int(math.exp(rng.uniform(math.log(3_000), math.log(600_000))))
        batch.retry_received_ms = min(batch.received_ms + delay, day_end - 1)
    _inject_faults(rng, batches, plan)
    # Both from streams of their own, so adding them changed no upload of a plan without time faults.
    changes = _consent_changes(population, day, seed, batches=batches)
    _inject_time_faults(random.Random(f"voiplake-time-faults:{seed}:{day.isoformat()}"), batches, plan, population,
                        spare={c.msisdn for c in changes})
    labels: tuple[ScenarioLabel, ...] = ()
    auth_key, auth_body = "", b""
    if scenarios is not None:  # streams of their own: the normal traffic above is unchanged by them
        attack_batches, labels, attack_logins, intruders = _scenario_batches(population, day, seed, scenarios, batches)
        if scenarios.auth_logs:
            auth_key = auth_log_key(day, prefix=auth_prefix)
            # Intruders' calls never logged in: only their failed attempts (attack_logins) are in the log.
            logged_in = batches + [b for b in attack_batches if b.batch_id not in intruders]
            auth_body = auth_log(_logins(population, day, seed, logged_in) + attack_logins)
        batches = batches + attack_batches
    noncompliant: tuple[NonComplianceLabel, ...] = ()
    if noncompliance is not None:  # a stream of its own, applied last: the rest of the day is unchanged
        noncompliant = _apply_noncompliance(noncompliance, batches, day, seed, keys)
    if attestation is not None:  # a stream of its own, after every change to the events it signs over
        _apply_attestation(attestation, batches, day, seed, keys)

    objects: list[LandingObject] = []
    device_keys: dict[str, bytes] = {}
    key_id = keys.device_master.active
    for batch in batches:
        device = batch.device
        encoding = "json" if device.platform == "web" else "protobuf"
        encode: Callable[..., bytes] = encode_json if encoding == "json" else encode_protobuf
        if device.device_id not in device_keys:
            device_keys[device.device_id] = keys.device_key(device.device_id, key_id)
        unsupported = batch.fault == "unsupported_version"  # a client build from the future, correctly signed
        header = Header(
            batch_id=batch.batch_id, device_id=device.device_id, platform=device.platform,
            app_version=device.app_version,
            schema_version=UNSUPPORTED_SCHEMA_VERSION if unsupported else device.schema_version,
            sent_at_ms=batch.send_ms + device.clock_skew_ms, payload_sha256=b"", event_count=len(batch.events),
            time_sync=batch.time_sync, attestation=batch.attestation,
        )
        body = encode(header, batch.events, device_key=device_keys[device.device_id], key_id=key_id)
        if batch.fault == "corrupt":
            body = _corrupt(rng, body)
        elif batch.fault == "truncated":
            body = _truncate(rng, body)
        elif batch.fault == "tampered":
            body = _tamper(rng, body, encoding)
        elif batch.fault == "wrong_schema":
            body = _crash_report(rng, batch, encoding)
        bad_indexes = tuple(i for i, _ in batch.bad)
        bad_reasons = tuple(r for _, r in batch.bad)
        receipts = ((batch.received_ms, False), (batch.retry_received_ms, True), *((t, True) for t in batch.storm_received_ms))
        for received_ms, is_retry in receipts:
            if received_ms is None:
                continue
            objects.append(LandingObject(
                key=landing_object_key(prefix, received_at_ms=received_ms, batch_id=batch.batch_id, encoding=encoding),
                body=body, fault=batch.fault, event_count=len(batch.events), bad_record_indexes=bad_indexes,
                bad_record_reasons=bad_reasons, is_retry=is_retry,
                time_fault_indexes=tuple(i for i, _ in batch.time_faults),
                time_fault_reasons=tuple(r for _, r in batch.time_faults), attestation_fault=batch.attestation_fault,
                door_fault=batch.door_fault,
            ))
    objects.sort(key=lambda o: o.key)
    return GeneratedDay(
        day=day, objects=objects, population=population,
        directory_key=directory_export_key(day, prefix=directory_prefix),
        directory_body=directory_export(population, changes), consent_changes=changes,
        auth_key=auth_key, auth_body=auth_body, labels=labels, noncompliant=noncompliant,
    )


def _consent_changes(
    population: Population, day: date, seed: int, *, batches: list[_Batch]
) -> tuple[ConsentChange, ...]:
    """~2 % of today's callers (at least one) withdraw diagnostics during the day: diagnostic subscribers
    drop to basic or opt out, basic ones opt out; subscribers already opted out do not change.

    The change falls between two of the subscriber's calls of the day at least a minute apart where they
    have such a pair (preferred), else after their last (or before their first) call; the client keeps
    reporting its old level afterwards. Own random stream: the traffic is the same with or without consent changes.
    """
    rng = random.Random(f"voiplake-consent:{seed}:{day.isoformat()}")
    day_start = _day_start_ms(day)
    day_end = day_start + DAY_MS
    starts: dict[str, set[int]] = {}
    for batch in batches:
        for e in batch.events:
            if e.get("event_type") != "call_start" or not isinstance(e.get("event_ms"), int):
                continue  # an injected bad record
            true_ms = e["event_ms"] - batch.device.clock_skew_ms
            if day_start <= true_ms < day_end:
                starts.setdefault(e["msisdn"], set()).add(true_ms)
    by_msisdn = {s.msisdn: s for s in population.subscribers}
    callers = sorted(m for m in starts if m in by_msisdn)  # a bad record's msisdn is nobody's
    if callers:
        eligible = [m for m in callers if not by_msisdn[m].diagnostics_opt_out]
        wanted = min(len(eligible), max(1, round(CONSENT_CHANGE_SHARE * len(callers))))
    else:  # nobody called today (cannot happen with >= 1 call, kept for the contract)
        eligible = [s.msisdn for s in population.subscribers if not s.diagnostics_opt_out]
        wanted = min(len(eligible), 1)

    def gaps(msisdn: str) -> list[tuple[int, int]]:
        times = sorted(starts.get(msisdn, ()))
        return [(a, b) for a, b in pairwise(times) if b - a >= _CONSENT_MIN_GAP_MS]

    between = [m for m in eligible if gaps(m)]  # preferred: calls on both sides of the change
    others = [m for m in eligible if not gaps(m)]
    picked = rng.sample(between, min(wanted, len(between)))
    picked += rng.sample(others, wanted - len(picked))
    changes = []
    for msisdn in sorted(picked):
        subscriber = by_msisdn[msisdn]
        pairs = gaps(msisdn)
        if pairs:
            a, b = rng.choice(pairs)
            at = (a + b) // 2
        elif msisdn in starts:  # one call (or a few within a minute): change after the last, else before the first
            first, last = min(starts[msisdn]), max(starts[msisdn])
            at = (last + day_end) // 2 if day_end - last >= 2 * _CONSENT_MIN_GAP_MS else (day_start + first) // 2
        else:
            at = day_start + rng.randrange(DAY_MS)
        if subscriber.telemetry_level == "diagnostic" and rng.random() < 0.5:
            changes.append(ConsentChange(msisdn, at, "basic", False))
        else:
            changes.append(ConsentChange(msisdn, at, subscriber.telemetry_level, True))
    return tuple(changes)


def directory_export(population: Population, changes: tuple[ConsentChange, ...]) -> bytes:
    """The subscriber directory's consent history as gzip JSON Lines (mtime 0: deterministic bytes).

    One line per consent state per subscriber, keys sorted: msisdn (raw E.164: the CRM's extract), account_id,
    department (null for consumers), jurisdiction, home_country, subscriber_created_on, account_created_on
    (ISO dates; a consumer's account is their subscription), effective_from (ISO-8601 UTC with "Z"; the first
    state is in force from subscriber_created_on 00:00), telemetry_level, diagnostics_opt_out.
    """
    accounts = {a.account_id: a for a in population.accounts}
    later = {c.msisdn: c for c in changes}
    lines = []
    for s in population.subscribers:
        account_created = _account_created_on(accounts, s)
        base = {
            "msisdn": s.msisdn, "account_id": s.account_id, "department": s.department, "jurisdiction": s.jurisdiction,
            "home_country": s.home_country, "subscriber_created_on": s.created_on.isoformat(),
            "account_created_on": account_created.isoformat(),
        }
        since = datetime.combine(s.created_on, datetime.min.time(), UTC)
        lines.append({**base, "effective_from": since.isoformat().replace("+00:00", "Z"),
                      "telemetry_level": s.telemetry_level, "diagnostics_opt_out": s.diagnostics_opt_out})
        change = later.get(s.msisdn)
        if change is not None:
            at = datetime.fromtimestamp(change.effective_from_ms / 1000, UTC)
            lines.append({**base, "effective_from": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                          "telemetry_level": change.telemetry_level, "diagnostics_opt_out": change.diagnostics_opt_out})
    text = "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines)
    return gzip.compress(text.encode(), mtime=0)


# ----------------------------------------------------------------------------- attack scenarios and logins

def _attack_call(
    rng: random.Random, ctx: _DeviceDay, start_ms: int, *, callee: str, outcome: str, terminal_after_ms: int,
    duration_ms: int = 0, failure_reason: str | None = None, bytes_factor: float = 1.0,
) -> list[dict[str, Any]]:
    """One scripted call's events (true times): like `_CallSimulator.call`, with the outcome imposed."""
    device, subscriber = ctx.device, ctx.subscriber
    if ctx.native:
        network = "wifi" if rng.random() < ctx.wifi_share else _weighted(rng, _CELLULAR_MIX)
    else:
        network = ctx.web_network
    src_ip = ctx.fixed_ip if network in ("wifi", "ethernet") else ctx.mobile_pool.draw(rng)
    dst_ip = rng.choice(ctx.relays[1] if ":" in src_ip else ctx.relays[0])
    common = _call_fields(rng, ctx, call_id=_uuid4(rng), callee=callee, src_ip=src_ip, dst_ip=dst_ip, network=network)
    v2 = device.schema_version >= 2

    def event(event_type: str, at_ms: int) -> dict[str, Any]:
        e = dict(common, event_id=_uuid4(rng), event_type=event_type, event_ms=at_ms)
        if ctx.native:
            e["signal_value"] = _signal(rng, network)
        return e

    events = [event("call_start", start_ms)]
    if outcome == "end":
        end = event("call_end", start_ms + terminal_after_ms)
        end["duration_ms"] = duration_ms
        if v2:
            rate = _CODEC_KBPS[network] * 125 * bytes_factor
            end["bytes_sent"] = int(duration_ms / 1000 * rate * rng.uniform(0.85, 1.05))
            end["bytes_received"] = int(duration_ms / 1000 * rate * rng.uniform(0.85, 1.05))
        events.append(end)
    else:
        fail = event("call_failure", start_ms + terminal_after_ms)
        fail["failure_reason"] = failure_reason
        events.append(fail)
    return events


def _attack_batches(rng: random.Random, device: Device, calls: list[list[dict[str, Any]]], day_end_ms: int) -> list[_Batch]:
    """Upload a scripted device's calls as the SDK would: buffers of at most MAX_BATCH_EVENTS, flushed when full
    and after the last call."""
    groups: list[list[dict[str, Any]]] = [[]]
    for call in sorted(calls, key=lambda c: c[0]["event_ms"]):
        if len(groups[-1]) + len(call) > MAX_BATCH_EVENTS:
            groups.append([])
        groups[-1].extend(call)
    batches = []
    for events in groups:
        events.sort(key=lambda e: e["event_ms"])
        send_ms = min(events[-1]["event_ms"] + rng.randint(500, 60_000), day_end_ms - _SEND_END_MARGIN_MS)
        for e in events:
            e["event_ms"] += device.clock_skew_ms
        batches.append(_Batch(device=device, events=events, batch_id=_uuid4(rng), send_ms=send_ms,
                              received_ms=send_ms + rng.randint(50, 2_000),
                              time_sync=_time_sync(rng, send_ms, device.clock_skew_ms)))
    return batches


def _login(rng: random.Random, at_ms: int, msisdn: str, device_id: str, ip: str, country: str,
           failure: str | None = None) -> dict[str, Any]:
    return {"event_id": _uuid4(rng), "ts_ms": at_ms, "msisdn": msisdn, "device_id": device_id, "ip": ip,
            "country_code": country, "outcome": "failure" if failure else "success", "failure_reason": failure}


def _scenario_batches(
    population: Population, day: date, seed: int, plan: ScenarioPlan, batches: list[_Batch]
) -> tuple[list[_Batch], tuple[ScenarioLabel, ...], list[dict[str, Any]], set[str]]:
    """The attack scenarios' uploads, labels and login attempts, and the batch ids of intruders' uploads (calls
    made without logging in), from the stream "voiplake-scenarios"."""
    rng = random.Random(f"voiplake-scenarios:{seed}:{day.isoformat()}")
    day_start = _day_start_ms(day)
    day_end = day_start + DAY_MS
    by_msisdn = {s.msisdn: s for s in population.subscribers}
    sim = _CallSimulator(rng, population, seed)
    # Victims: one scenario per subscriber, drawn from today's callers first (realistic traffic around them).
    callers = list(dict.fromkeys(b.device.msisdn for b in batches))
    others = [s.msisdn for s in population.subscribers if s.msisdn not in set(callers)]
    victims = rng.sample(callers, min(len(callers), plan.attacks)) if callers else []
    victims += rng.sample(others, min(len(others), plan.attacks - len(victims)))
    if len(victims) < plan.attacks:
        raise ValueError(f"ScenarioPlan asks for {plan.attacks} attacks but the population has {len(victims)} subscribers")
    primary = {d.msisdn: d for d in reversed(population.devices)}  # each subscriber's first (primary) device
    kinds = (["irsf_burst"] * plan.irsf_bursts + ["compromised_account"] * plan.compromised_accounts
             + ["telemetry_flood"] * plan.telemetry_floods + ["call_flood"] * plan.call_floods)
    out: list[_Batch] = []
    labels: list[ScenarioLabel] = []
    logins: list[dict[str, Any]] = []
    intruders: set[str] = set()
    for index, (kind, msisdn) in enumerate(zip(kinds, victims)):
        victim = by_msisdn[msisdn]
        device = primary[msisdn]
        start = day_start + rng.randrange(HOUR_MS, 19 * HOUR_MS)
        calls: list[list[dict[str, Any]]] = []
        if kind == "irsf_burst":
            ctx = _DeviceDay(rng, device, victim)
            at = start
            for _ in range(rng.randint(30, 60)):
                duration = rng.randint(8_000, 75_000)
                ring = rng.randint(1_500, 6_000)
                callee = rng.choice(IRSF_PREFIXES) + _digits(rng, 8)
                calls.append(_attack_call(rng, ctx, at, callee=callee, outcome="end", terminal_after_ms=ring + duration,
                                          duration_ms=duration))
                at += ring + duration + rng.randint(2_000, 40_000)
        elif kind == "call_flood":
            ctx = _DeviceDay(rng, device, victim)
            callee = sim.callee(victim)
            span = rng.randint(45, 90) * 60_000
            n = rng.randint(120, 250)
            for i in range(n):
                at = start + i * span // n + rng.randrange(2_000)
                reason = rng.choice(("network_error", "timeout", "codec_mismatch"))
                calls.append(_attack_call(rng, ctx, at, callee=callee, outcome="failure",
                                          terminal_after_ms=rng.randint(200, 3_000), failure_reason=reason))
        elif kind == "telemetry_flood":
            v2 = [d for d in population.devices if d.msisdn == msisdn and d.schema_version >= 2]
            if not v2:  # the victim's app cannot report bytes: give them an updated install
                device = replace(device, schema_version=2, app_version=APP_VERSIONS[device.platform][-1][0])
            else:
                device = v2[0]
            ctx = _DeviceDay(rng, device, victim)
            for _ in range(rng.randint(6, 15)):
                at = start + rng.randrange(4 * HOUR_MS)
                duration = min(MAX_CALL_MS, max(5_000, int(rng.lognormvariate(math.log(MEDIAN_CALL_MS), 0.8))))
                calls.append(_attack_call(rng, ctx, at, callee=sim.callee(victim), outcome="end",
                                          terminal_after_ms=duration + rng.randint(2_000, 10_000), duration_ms=duration,
                                          bytes_factor=rng.uniform(150, 600)))
        else:  # compromised_account: calls with the victim's number from abroad, without a login from there
            home = MARKETS_BY_HOME[victim.home_country]
            abroad = rng.choice([m for m in MARKETS if m.calling_code != home.calling_code])
            city = rng.choice(abroad.cities)
            attacker = replace(victim, home_country=abroad.home, home_city=city.name, home_mccmnc=abroad.carriers[0])
            own_device = index % 2 == 0
            if own_device:  # a device of the attacker's own that never managed to log in
                device = _device(rng, msisdn, 1.0)
            ctx = _DeviceDay(rng, device, attacker)
            at = start
            for _ in range(rng.randint(8, 20)):
                duration = rng.randint(20_000, 600_000)
                international = rng.choice(MARKETS)
                callee = (rng.choice(IRSF_PREFIXES) + _digits(rng, 8) if rng.random() < 0.3
                          else _phone_number(rng, international, international.mobile_plan))
                calls.append(_attack_call(rng, ctx, at, callee=callee, outcome="end", terminal_after_ms=duration + 3_000,
                                          duration_ms=duration))
                at += duration + rng.randint(60_000, 900_000)
            if own_device:
                first_ip = calls[0][0]["src_ip"]
                for _ in range(rng.randint(2, 6)):
                    logins.append(_login(rng, start - rng.randint(60_000, 1_800_000), msisdn, device.device_id,
                                         first_ip, city.country_code, rng.choice(AUTH_FAILURE_REASONS)))
        end_limit = day_end - _EVENT_END_MARGIN_MS
        calls = [c for c in calls if c[-1]["event_ms"] <= end_limit]  # a late start: the rest of the burst is tomorrow
        if not calls:
            continue
        made = _attack_batches(rng, device, calls, day_end)
        if kind == "compromised_account":
            intruders.update(b.batch_id for b in made)
        out.extend(made)
        true_start = min(c[0]["event_ms"] for c in calls) - device.clock_skew_ms
        true_end = max(c[-1]["event_ms"] for c in calls) - device.clock_skew_ms
        labels.append(ScenarioLabel(kind, msisdn, device.device_id, victim.account_id, true_start, true_end,
                                    tuple(sorted(c[0]["call_id"] for c in calls))))
    return out, tuple(labels), logins, intruders


def _logins(population: Population, day: date, seed: int, batches: list[_Batch]) -> list[dict[str, Any]]:
    """Login attempts of the day (true UTC times): each device that called logs in before its first call of the
    day from each country it called from (a new network abroad means a new session); ~6 % mistype first; ~1 % of
    subscribers see credential stuffing from abroad."""
    rng = random.Random(f"voiplake-auth:{seed}:{day.isoformat()}")
    day_start = _day_start_ms(day)
    day_end = day_start + DAY_MS
    first: dict[tuple[str, str], tuple[int, Device, str, str]] = {}  # (device_id, country) -> (start, device, ip, country)
    for batch in batches:
        for e in batch.events:
            if e.get("event_type") != "call_start" or not isinstance(e.get("event_ms"), int):
                continue
            true_ms = e["event_ms"] - batch.device.clock_skew_ms
            try:
                ipaddress.ip_address(e.get("src_ip") or "")
            except ValueError:
                continue  # an injected bad record
            where = (batch.device.device_id, e["country_code"])
            if day_start <= true_ms < day_end and (where not in first or true_ms < first[where][0]):
                first[where] = (true_ms, batch.device, e["src_ip"], e["country_code"])
    out: list[dict[str, Any]] = []
    for where in sorted(first):
        at, device, ip, country = first[where]
        device_id = device.device_id
        lead = at - day_start
        login_ms = at - rng.randint(5_000, min(4 * HOUR_MS, lead)) if lead > 5_000 else day_start + lead // 2
        if rng.random() < 0.06:
            for k in range(rng.randint(1, 2)):
                out.append(_login(rng, max(day_start, login_ms - (k + 1) * rng.randint(3_000, 60_000)), device.msisdn,
                                  device_id, ip, country, "bad_password"))
        out.append(_login(rng, login_ms, device.msisdn, device_id, ip, country))
    for subscriber in population.subscribers:
        if rng.random() < 0.01:
            market = rng.choice([m for m in MARKETS if m.home != subscriber.home_country])
            stuffer = _uuid4(rng)
            for _ in range(rng.randint(1, 5)):
                out.append(_login(rng, day_start + rng.randrange(DAY_MS), subscriber.msisdn, stuffer,
                                  _pools(market.home)["mobile4"].draw(rng), market.cities[0].country_code, "bad_password"))
    return out


def auth_log(logins: list[dict[str, Any]]) -> bytes:
    """Login attempts as the identity provider exports them: gzip JSON Lines (mtime 0), ordered by time, keys
    sorted: event_id, ts (ISO-8601 UTC, ms, "Z"), msisdn (raw E.164), device_id, ip, country_code, outcome
    (success | failure), failure_reason (null on success)."""
    lines = []
    for login in sorted(logins, key=lambda x: (x["ts_ms"], x["event_id"])):
        ts = datetime.fromtimestamp(login["ts_ms"] / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        record = {k: v for k, v in login.items() if k != "ts_ms"}
        lines.append(json.dumps({**record, "ts": ts}, sort_keys=True) + "\n")
    return gzip.compress("".join(lines).encode(), mtime=0)


__all__ = [
    "APP_VERSIONS", "BAD_RECORD_REASONS", "EXPECTED_REJECTION_REASONS", "FAULT_KINDS", "MARKETS", "TIME_FAULT_REASONS",
    "SCENARIO_KINDS", "Account", "ConsentChange", "Device", "FaultPlan", "GeneratedDay", "LandingObject", "Population",
    "ScenarioLabel", "ScenarioPlan", "Subscriber", "auth_log", "NONCOMPLIANCE_KINDS", "NonComplianceLabel",
    "NonCompliancePlan", "build_population", "directory_export", "generate_day",
    "luhn_check_digit", "luhn_valid",
]
