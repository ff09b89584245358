"""Injected faults (`FaultPlan`): object-level faults (corrupt / truncated gzip, tampered batches, crash reports
posted as uploads, an unsupported schema version), invalid records in valid batches, and impossible event times."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import zlib
from bisect import bisect
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from jobs.generator.calls import _Batch
from jobs.generator.common import DAY_MS, _day_start_ms, _digits
from jobs.generator.population import Population, _account_created_on
from jobs.telemetry import upload_pb2 as pb

EVENTS_PER_OBJECT_ESTIMATE = 40  # what `FaultPlan.default` assumes when turning objects into events
UNSUPPORTED_SCHEMA_VERSION = 7

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


def _canonical_json(obj: Any) -> bytes:
    """The upload format's canonical JSON (docs/landing_format.md): sorted keys, no spaces, ASCII."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _gunzips(blob: bytes) -> bool:
    try:
        gzip.decompress(blob)
    except (OSError, EOFError, zlib.error):
        return False
    return True


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


__all__ = ["BAD_RECORD_REASONS", "EXPECTED_REJECTION_REASONS", "FAULT_KINDS", "TIME_FAULT_REASONS", "FaultPlan"]
