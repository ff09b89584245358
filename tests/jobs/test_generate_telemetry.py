"""The telemetry generator: deterministic, realistic, and its faults are what it says they are."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date

import pytest

from jobs.generate_telemetry import FaultPlan, build_population, generate_day, luhn_check_digit
from jobs.keys import new_key_material
from jobs.telemetry.codec import UploadRejected, decode_object
from lake_layout.landing import parse_landing_key

DAY = date(2026, 11, 24)
KEYS = new_key_material()
REASON_OF_FAULT = {"corrupt": {"corrupt_compression"}, "truncated": {"corrupt_compression"}, "tampered": {"bad_signature"},
                   "wrong_schema": {"wrong_schema", "undecodable_envelope"}, "unsupported_version": {"unsupported_schema_version"}}


@pytest.fixture(scope="module")
def day():  # type: ignore[no-untyped-def]
    return generate_day(DAY, events=5000, seed=3, keys=KEYS, prefix="uploads", faults=FaultPlan.default(200))


def _decode(obj):  # type: ignore[no-untyped-def]
    return decode_object(obj.key, obj.body, lambda d, k: KEYS.device_key(d, k))


def test_deterministic_for_a_seed(day) -> None:  # type: ignore[no-untyped-def]
    again = generate_day(DAY, events=5000, seed=3, keys=KEYS, prefix="uploads", faults=FaultPlan.default(200))
    assert [(o.key, o.body) for o in again.objects] == [(o.key, o.body) for o in day.objects]
    other = generate_day(DAY, events=5000, seed=4, keys=KEYS, prefix="uploads")
    assert {o.key for o in other.objects}.isdisjoint({o.key for o in day.objects})


def test_size_and_keys(day) -> None:  # type: ignore[no-untyped-def]
    assert 4750 <= day.events_total <= 5250
    for obj in day.objects:
        parsed = parse_landing_key(obj.key)
        assert parsed is not None and parsed.upload_date == DAY
        assert parsed.encoding == ("json" if obj.key.endswith(".json.gz") else "protobuf")


def test_identifiers_are_realistic() -> None:
    population = build_population(n_subscribers=300, seed=1)
    assert all(re.fullmatch(r"\+[1-9]\d{7,14}", s.msisdn) for s in population.subscribers)
    assert len({s.msisdn for s in population.subscribers}) == 300
    imeis = [d.imei for d in population.devices if d.imei]
    assert imeis and all(len(i) == 15 and i.isdigit() and luhn_check_digit(i[:14]) == i[14] for i in imeis)
    assert luhn_check_digit("49015420323751") == "8"  # the textbook IMEI 490154203237518
    assert all(d.imei is None for d in population.devices if d.platform == "web")
    shares = Counter(s.account_id == "consumer" for s in population.subscribers)
    assert 0.1 < shares[True] / 300 < 0.3
    assert {s.jurisdiction for s in population.subscribers} == {"EU", "US-CA", "US-other", "other"}


def test_faults_produce_the_promised_rejections(day) -> None:  # type: ignore[no-untyped-def]
    seen: dict[str, set[str]] = {}
    for obj in day.objects:
        if obj.fault is None:
            up = _decode(obj)
            assert len(up.events) == obj.event_count
            for idx, reason in zip(obj.bad_record_indexes, obj.bad_record_reasons):
                event = up.events[idx]
                assert (reason == "invalid_msisdn" and event["msisdn"] == "0151-1234") or \
                       (reason == "missing_required_field" and event["call_id"] is None) or \
                       (reason == "invalid_duration" and event["duration_ms"] < 0) or \
                       (reason == "invalid_ip" and event["src_ip"] == "999.1.1.1")
            continue
        with pytest.raises(UploadRejected) as err:
            _decode(obj)
        seen.setdefault(obj.fault, set()).add(err.value.reason)
    assert set(seen) == set(REASON_OF_FAULT)
    for fault, reasons in seen.items():
        assert reasons <= REASON_OF_FAULT[fault]
    assert any(o.bad_record_indexes for o in day.objects)


def test_late_uploads_retries_schema_versions_and_skew(day) -> None:  # type: ignore[no-untyped-def]
    retries = [o for o in day.objects if o.is_retry]
    assert retries
    by_body = Counter(o.body for o in day.objects)
    assert all(by_body[o.body] == 2 for o in retries)
    decoded = [_decode(o) for o in day.objects if o.fault is None]
    event_days = Counter(parse_day(e["event_ms"]) for up in decoded for e in up.events)
    assert any(d < DAY for d in event_days)  # buffered offline, uploaded days later
    for up in decoded:
        for e in up.events:
            if up.header.schema_version == 1:
                assert e["telemetry_level"] is None and (e["imei"] is not None) == (up.header.platform != "web")
            else:
                assert e["imei"] is None and e["telemetry_level"] in ("basic", "diagnostic")
    assert {up.encoding for up in decoded} == {"protobuf", "json"}
    assert all(up.header.time_sync for up in decoded)


def parse_day(ms: int) -> date:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).date()
