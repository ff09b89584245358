"""Clients that break the central SDK configuration (`NonCompliancePlan`), recorded as `NonComplianceLabel`s."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from jobs.generator.calls import _Batch, _time_sync
from jobs.generator.common import DAY_MS, _day_start_ms, _uuid4
from jobs.platform.keys import KeyMaterial
from jobs.telemetry.codec import Header, encode_json, encode_protobuf

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


__all__ = ["NONCOMPLIANCE_KINDS", "NonComplianceLabel", "NonCompliancePlan"]
