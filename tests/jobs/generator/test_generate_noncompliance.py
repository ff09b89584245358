"""The generator and the central SDK configuration: default clients follow it (legacy schema-1 builds aside), and
NonCompliancePlan's clients break it exactly as labelled."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime

import pytest

from jobs.generator.calls import MAX_BATCH_EVENTS
from jobs.generator.day import GeneratedDay, generate_day
from jobs.generator.noncompliance import NonCompliancePlan
from jobs.platform.keys import new_key_material
from jobs.telemetry.codec import EVENT_FIELDS, DecodedUpload, decode_object
from lake_layout.landing import parse_landing_key
from lake_layout.sdk_config import load_sdk_config

DAY = date(2026, 11, 24)
KEYS = new_key_material()
PLAN = NonCompliancePlan(disallowed_fields=1, fast_sampling=1, tracking_on_2g=1, uploads_during_calls=1, over_cap=1)
CONFIG = load_sdk_config(known_fields=EVENT_FIELDS).in_force(datetime(2026, 11, 24, tzinfo=UTC))


def _decoded(day: GeneratedDay) -> list[tuple[int, DecodedUpload]]:
    out = []
    for obj in day.objects:
        if obj.fault is None:
            parsed = parse_landing_key(obj.key)
            assert parsed is not None
            out.append((parsed.received_at_ms, decode_object(obj.key, obj.body, KEYS.device_key)))
    return out


@pytest.fixture(scope="module")
def plain() -> GeneratedDay:
    return generate_day(DAY, events=4000, seed=7, keys=KEYS, prefix="uploads")


@pytest.fixture(scope="module")
def broken() -> GeneratedDay:
    return generate_day(DAY, events=4000, seed=7, keys=KEYS, prefix="uploads", noncompliance=PLAN)


def test_default_clients_follow_the_configuration_in_force(plain: GeneratedDay) -> None:
    assert plain.noncompliant == ()
    bytes_per_device: Counter[str] = Counter()
    for obj in plain.objects:
        upload = decode_object(obj.key, obj.body, KEYS.device_key)
        header = upload.header
        bytes_per_device[header.device_id] += len(obj.body)
        assert header.event_count <= MAX_BATCH_EVENTS <= CONFIG.policy(header.platform, "basic").batch_max_events
        for event in upload.events:
            policy = CONFIG.policy(header.platform, event.get("telemetry_level") or "basic")
            sent = {k for k, v in event.items() if v is not None}
            # Legacy schema-1 builds predate the central configuration and still send the IMEI (bronze drops it).
            extra = sent - set(policy.allowed_fields) - ({"imei"} if header.schema_version == 1 else set())
            assert not extra, (header.platform, header.app_version, extra)
            assert event.get("quality_samples") is None
    platforms = {d.device_id: d.platform for d in plain.population.devices}
    for device_id, total in bytes_per_device.items():
        assert total <= CONFIG.policy(platforms[device_id], "basic").daily_background_upload_bytes


def test_noncompliant_clients_break_the_configuration_as_labelled(plain: GeneratedDay, broken: GeneratedDay) -> None:
    labels = {label.kind: label for label in broken.noncompliant}
    assert set(labels) == {"disallowed_fields", "fast_sampling", "tracking_on_2g", "uploads_during_calls", "over_cap"}
    assert len({label.device_id for label in broken.noncompliant}) == 5
    events_by_device: dict[str, list[dict]] = defaultdict(list)  # type: ignore[type-arg]
    sends_by_device: dict[str, list[int]] = defaultdict(list)
    bytes_by_device: Counter[str] = Counter()
    body_of = {o.key: o.body for o in broken.objects}
    for received_ms, upload in _decoded(broken):
        events_by_device[upload.header.device_id].extend(upload.events)
        sends_by_device[upload.header.device_id].append(upload.header.sent_at_ms)
    for obj in broken.objects:
        bytes_by_device[decode_object(obj.key, body_of[obj.key], KEYS.device_key).header.device_id] += len(obj.body)

    extra = [e for e in events_by_device[labels["disallowed_fields"].device_id] if e.get("mos") is not None]
    assert len(extra) == labels["disallowed_fields"].events > 0
    assert all(e["telemetry_level"] == "basic" for e in extra)

    fast = [e for e in events_by_device[labels["fast_sampling"].device_id] if e.get("quality_samples")]
    assert len(fast) == labels["fast_sampling"].events > 0
    for e in fast:
        interval_s = e["duration_ms"] / e["quality_samples"] / 1000
        assert e["network_type"] != "2g" and interval_s < CONFIG.policy("ios", "diagnostic").quality_sample_interval_seconds

    on_2g = [e for e in events_by_device[labels["tracking_on_2g"].device_id] if e.get("quality_samples")]
    assert len(on_2g) == labels["tracking_on_2g"].events > 0
    platform = labels["tracking_on_2g"].platform
    for e in on_2g:
        interval_s = e["duration_ms"] / e["quality_samples"] / 1000
        policy = CONFIG.policy(platform, "diagnostic")
        assert e["network_type"] == "2g" and policy.quality_sample_interval_seconds <= interval_s
        assert interval_s < policy.constrained_sample_interval_seconds

    device = labels["uploads_during_calls"].device_id
    starts = {e["call_id"]: e["event_ms"] for e in events_by_device[device] if e["event_type"] == "call_start"}
    calls = [(starts[e["call_id"]], e["event_ms"]) for e in events_by_device[device]
             if e["event_type"] == "call_end" and e["call_id"] in starts]
    during = [s for s in sends_by_device[device] if any(a < s < b for a, b in calls)]
    assert len(during) == 1

    capped = labels["over_cap"]
    cap = CONFIG.policy(capped.platform, "diagnostic").daily_background_upload_bytes
    assert bytes_by_device[capped.device_id] == capped.events > cap

    # Nobody else changed: every other device's uploads are byte-identical to the plain day's.
    marked = {label.device_id for label in broken.noncompliant}
    plain_bodies = sorted(o.body for o in plain.objects
                          if o.fault is not None or decode_object(o.key, o.body, KEYS.device_key).header.device_id not in marked)
    broken_bodies = sorted(o.body for o in broken.objects
                           if o.fault is not None or decode_object(o.key, o.body, KEYS.device_key).header.device_id not in marked)
    assert plain_bodies == broken_bodies


def test_plan_validation_and_too_large_plans() -> None:
    with pytest.raises(ValueError, match="NonCompliancePlan.over_cap must be a non-negative integer"):
        NonCompliancePlan(over_cap=-1)
    with pytest.raises(ValueError, match="NonCompliancePlan.disallowed_fields asks for 500 devices"):
        generate_day(DAY, events=400, seed=7, keys=KEYS, prefix="uploads", noncompliance=NonCompliancePlan(disallowed_fields=500))
