"""The generated day: one deterministic, realistic day of landing objects, as the collector stores them.

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

The pieces live in the modules of `jobs.generator`: `reference` (markets, numbering plans, address pools, relays,
hour weights), `population` (accounts, subscribers, devices), `calls` (one device's calls and batches), `faults`
(`FaultPlan`), `scenarios` (`ScenarioPlan`, the auth log), `noncompliance` (`NonCompliancePlan`) and `attested`
(`AttestationPlan`); this module composes them into a `GeneratedDay`.
"""

from __future__ import annotations

import gzip
import json
import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import accumulate, pairwise
from typing import NamedTuple

from jobs.generator.attested import AttestationPlan, _apply_attestation
from jobs.generator.calls import NO_END_SHARE, _Batch, _CallSimulator, _device_batches, _DeviceDay
from jobs.generator.common import DAY_MS, _day_start_ms
from jobs.generator.faults import (
    UNSUPPORTED_SCHEMA_VERSION,
    FaultPlan,
    _corrupt,
    _crash_report,
    _inject_faults,
    _inject_time_faults,
    _tamper,
    _truncate,
)
from jobs.generator.noncompliance import NonComplianceLabel, NonCompliancePlan, _apply_noncompliance
from jobs.generator.population import Device, Population, _account_created_on, build_population
from jobs.generator.scenarios import ScenarioLabel, ScenarioPlan, _logins, _scenario_batches, auth_log
from jobs.platform.keys import KeyMaterial
from jobs.telemetry.codec import Header, encode_json, encode_protobuf
from lake_layout.landing import AUTH_PREFIX, DIRECTORY_PREFIX, auth_log_key, directory_export_key, landing_object_key

EVENTS_PER_SUBSCRIBER = 40  # subscribers per generated day ~ events / 40
MIN_SUBSCRIBERS = 20
RETRY_SHARE = 0.02
OFFLINE_SHARE = 0.03
CONSENT_CHANGE_SHARE = 0.02  # of the day's callers
_CONSENT_MIN_GAP_MS = 60_000  # a change falls between two calls at least this far apart: clock correction
#                              (good to ~1 s) cannot move either call to the other side of it


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


class ConsentChange(NamedTuple):
    """A subscriber changed consent during the day; the client keeps sending its old level (SDK config lag).

    The directory records it as the subscriber's second state, in force from `effective_from_ms` (true
    UTC time, inside the day, after the subscriber was created)."""

    msisdn: str
    effective_from_ms: int
    telemetry_level: str  # the new level: "basic" | "diagnostic"
    diagnostics_opt_out: bool  # the new opt-out


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


def _share_of(share: float, n: int) -> int:
    """How many of n items get a phenomenon of this share: at least one once there are two items."""
    return max(1, round(share * n)) if n >= 2 else 0


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


__all__ = ["ConsentChange", "GeneratedDay", "LandingObject", "directory_export", "generate_day"]
