"""The telemetry generator: deterministic, realistic, and its faults are exactly what it says they are."""

from __future__ import annotations

import gzip
import ipaddress
import math
import re
import statistics
import uuid
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

import pytest

from jobs.bronze_ingest import clock_offset_ms, validate_event
from jobs.generate_telemetry import (
    APP_VERSIONS,
    BAD_RECORD_REASONS,
    EXPECTED_REJECTION_REASONS,
    FAULT_KINDS,
    MARKETS,
    SIGNAL_METRICS,
    FaultPlan,
    GeneratedDay,
    LandingObject,
    build_population,
    generate_day,
    luhn_check_digit,
    luhn_valid,
)
from jobs.keys import new_key_material
from jobs.telemetry.codec import DecodedUpload, UploadRejected, decode_object
from lake_layout.landing import parse_landing_key

DAY = date(2026, 11, 24)  # a Tuesday
DAY_START_MS = int(datetime(2026, 11, 24, tzinfo=UTC).timestamp() * 1000)
DAY_END_MS = DAY_START_MS + 86_400_000
EVENTS = 5000
SEED = 3
KEYS = new_key_material()
PLAN = FaultPlan(corrupt=2, truncated=2, tampered=2, wrong_schema=3, unsupported_version=2, bad_records=16)
E164 = re.compile(r"^\+[1-9]\d{7,14}$")
CITIES = [(c.latitude, c.longitude) for m in MARKETS for c in m.cities]


def _generate(seed: int = SEED, faults: FaultPlan | None = PLAN, events: int = EVENTS) -> GeneratedDay:
    return generate_day(DAY, events=events, seed=seed, keys=KEYS, prefix="landing/uploads", faults=faults)


def _decode(obj: LandingObject) -> DecodedUpload:
    return decode_object(obj.key, obj.body, lambda device_id, key_id: KEYS.device_key(device_id, key_id))


@pytest.fixture(scope="module")
def day() -> GeneratedDay:
    return _generate()


@pytest.fixture(scope="module")
def clean(day: GeneratedDay) -> list[tuple[LandingObject, DecodedUpload]]:
    """Every object without an object-level fault, decoded."""
    return [(obj, _decode(obj)) for obj in day.objects if obj.fault is None]


def _events(clean: list[tuple[LandingObject, DecodedUpload]]) -> list[tuple[DecodedUpload, dict[str, Any]]]:
    """Valid events of first uploads only (bad records and retried copies left out), with their upload."""
    out: list[tuple[DecodedUpload, dict[str, Any]]] = []
    for obj, up in clean:
        if obj.is_retry:
            continue
        bad = set(obj.bad_record_indexes)
        out.extend((up, e) for i, e in enumerate(up.events) if i not in bad)
    return out


# ----------------------------------------------------------------------------- determinism and shape

def test_same_seed_gives_identical_objects_and_another_seed_does_not(day: GeneratedDay) -> None:
    again = _generate()
    assert [(o.key, o.body, o.fault, o.bad_record_indexes, o.is_retry) for o in again.objects] == \
           [(o.key, o.body, o.fault, o.bad_record_indexes, o.is_retry) for o in day.objects]
    assert again.population == day.population
    other = _generate(seed=SEED + 1)
    assert {o.key for o in other.objects}.isdisjoint({o.key for o in day.objects})
    assert {s.msisdn for s in other.population.subscribers} != {s.msisdn for s in day.population.subscribers}


def test_size_keys_and_receive_times(day: GeneratedDay) -> None:
    assert abs(day.events_total - EVENTS) <= 0.05 * EVENTS
    assert day.events_total == sum(o.event_count for o in day.objects)
    assert len(day.population.subscribers) == EVENTS // 40
    assert 20 <= day.events_total / len(day.objects) <= 60  # uploads batch many calls
    assert [o.key for o in day.objects] == sorted(o.key for o in day.objects)
    assert len({o.key for o in day.objects}) == len(day.objects)
    for obj in day.objects:
        parsed = parse_landing_key(obj.key)
        assert parsed is not None and obj.key.startswith("landing/uploads/upload_date=2026-11-24/")
        assert parsed.upload_date == DAY and DAY_START_MS <= parsed.received_at_ms < DAY_END_MS
        assert parsed.hour == (parsed.received_at_ms - DAY_START_MS) // 3_600_000
    assert {parse_landing_key(o.key).encoding for o in day.objects} == {"protobuf", "json"}  # type: ignore[union-attr]


def test_clean_objects_are_signed_by_the_device_and_consistent_with_the_population(
    day: GeneratedDay, clean: list[tuple[LandingObject, DecodedUpload]]
) -> None:
    devices = {d.device_id: d for d in day.population.devices}
    for obj, up in clean:
        parsed = parse_landing_key(obj.key)
        assert parsed is not None and parsed.batch_id == up.header.batch_id
        assert len(up.events) == up.header.event_count == obj.event_count
        device = devices[up.header.device_id]
        assert (up.header.platform, up.header.app_version, up.header.schema_version) == \
               (device.platform, device.app_version, device.schema_version)
        assert up.encoding == ("json" if device.platform == "web" else "protobuf") == parsed.encoding
        assert {e["msisdn"] for i, e in enumerate(up.events) if i not in obj.bad_record_indexes} == {device.msisdn}
        assert 1 <= len(up.header.time_sync) <= 2
    # The key the decoder used is the active device key: another key generation would not verify.
    obj = clean[0][0]
    with pytest.raises(UploadRejected) as err:
        decode_object(obj.key, obj.body, lambda d, k: new_key_material().device_key(d, k))
    assert err.value.reason == "bad_signature"


# ----------------------------------------------------------------------------- faults

def test_object_faults_are_rejected_for_the_promised_reason(day: GeneratedDay) -> None:
    seen: Counter[str] = Counter()
    for obj in day.objects:
        if obj.fault is None:
            continue
        assert not obj.is_retry and not obj.bad_record_indexes
        with pytest.raises(UploadRejected) as err:
            _decode(obj)
        assert err.value.reason in EXPECTED_REJECTION_REASONS[obj.fault], (obj.fault, err.value.reason)
        seen[obj.fault] += 1
        if obj.fault in ("tampered", "unsupported_version"):
            assert err.value.header is not None and err.value.event_count == obj.event_count
        if obj.fault == "tampered":  # the attacker fixed the checksum: only the signature gives it away
            assert err.value.header is not None and err.value.header.batch_id in obj.key
    assert dict(seen) == {kind: n for kind, n in PLAN.object_faults().items() if n}


def test_wrong_schema_objects_are_not_uploads_in_either_encoding() -> None:
    generated = generate_day(DAY, events=3000, seed=8, keys=KEYS, prefix="p", faults=FaultPlan(wrong_schema=25))
    reasons: dict[str, set[str]] = {}
    for obj in generated.objects:
        if obj.fault != "wrong_schema":
            continue
        assert gzip.decompress(obj.body)  # valid gzip: the problem is what is inside
        with pytest.raises(UploadRejected) as err:
            _decode(obj)
        reasons.setdefault(obj.key.rsplit(".", 2)[1], set()).add(err.value.reason)
    assert set(reasons) == {"pb", "json"}
    assert set().union(*reasons.values()) <= EXPECTED_REJECTION_REASONS["wrong_schema"]


def test_bad_records_are_exactly_the_reported_events(clean: list[tuple[LandingObject, DecodedUpload]]) -> None:
    reasons: Counter[str] = Counter()
    for obj, up in clean:
        assert len(obj.bad_record_indexes) == len(obj.bad_record_reasons)
        bad = dict(zip(obj.bad_record_indexes, obj.bad_record_reasons))
        for index, event in enumerate(up.events):
            problem = validate_event(event, up.header)
            if index in bad:
                assert problem is not None and problem[0] == bad[index], (bad[index], problem)
                reasons[bad[index]] += 1
                assert {
                    "invalid_msisdn": event["msisdn"] == "0151-1234",
                    "missing_required_field": event["call_id"] is None,
                    "invalid_duration": event["event_type"] == "call_end" and event["duration_ms"] < 0,
                    "invalid_ip": event["src_ip"] == "999.1.1.1",
                }[bad[index]]
            else:
                assert problem is None, (problem, event)
    originals = sum(len(obj.bad_record_indexes) for obj, _ in clean if not obj.is_retry)
    assert originals == PLAN.bad_records
    assert set(reasons) == set(BAD_RECORD_REASONS)


def test_retries_repeat_an_earlier_upload_byte_for_byte(day: GeneratedDay) -> None:
    by_batch: dict[str, list[LandingObject]] = {}
    for obj in day.objects:
        by_batch.setdefault(parse_landing_key(obj.key).batch_id, []).append(obj)  # type: ignore[union-attr]
    retries = [o for o in day.objects if o.is_retry]
    assert retries
    for retry in retries:
        original, second = by_batch[parse_landing_key(retry.key).batch_id]  # type: ignore[union-attr]
        assert not original.is_retry and second is retry
        assert original.body == retry.body and original.fault is None and retry.fault is None
        assert (original.event_count, original.bad_record_indexes) == (retry.event_count, retry.bad_record_indexes)
        first, again = parse_landing_key(original.key), parse_landing_key(retry.key)
        assert first is not None and again is not None and first.received_at_ms < again.received_at_ms
    assert all(len(objs) == 1 for objs in by_batch.values() if not any(o.is_retry for o in objs))


def test_fault_plan_default_and_validation() -> None:
    assert FaultPlan.default(200) == FaultPlan(1, 1, 1, 1, 1, 16)
    assert FaultPlan.default(10_000) == FaultPlan(50, 50, 50, 50, 50, 800)
    assert FaultPlan.default(1).bad_records == 1
    with pytest.raises(ValueError, match="corrupt"):
        FaultPlan(corrupt=-1)
    with pytest.raises(ValueError, match="faulty objects"):
        generate_day(DAY, events=200, seed=1, keys=KEYS, prefix="p", faults=FaultPlan(truncated=10_000))
    with pytest.raises(ValueError, match="events"):
        generate_day(DAY, events=0, seed=1, keys=KEYS, prefix="p")
    assert set(EXPECTED_REJECTION_REASONS) == set(FAULT_KINDS)


# ----------------------------------------------------------------------------- population

def test_identifiers_are_realistic() -> None:
    population = build_population(n_subscribers=2000, seed=1, as_of=DAY)
    subscribers, devices = population.subscribers, population.devices
    assert len({s.msisdn for s in subscribers}) == 2000
    prefixes = {"DE": "+491", "FR": "+33", "ES": "+346", "GB": "+447", "US-CA": "+1", "US": "+1", "BR": "+55119",
                "IN": "+919", "JP": "+81"}
    ca_codes = {"415", "628", "213", "310", "323"}
    for s in subscribers:
        assert E164.match(s.msisdn) and s.msisdn.startswith(prefixes[s.home_country]), s
        if s.home_country.startswith("US"):
            assert len(s.msisdn) == 12 and (s.msisdn[2:5] in ca_codes) == (s.home_country == "US-CA")
        assert s.created_on < DAY and s.home_mccmnc.isdigit() and len(s.home_mccmnc) in (5, 6)
    imeis = [d.imei for d in devices if d.platform != "web"]
    assert imeis and all(i is not None and len(i) == 15 and luhn_valid(i) and i[:2] in ("35", "86") for i in imeis)
    assert all(d.imei is None for d in devices if d.platform == "web")
    assert luhn_check_digit("49015420323751") == "8"  # the textbook IMEI 490154203237518
    assert not luhn_valid("490154203237517")
    assert len({d.device_id for d in devices}) == len(devices)
    assert all(uuid.UUID(d.device_id).version == 4 for d in devices)
    per_subscriber = Counter(d.msisdn for d in devices)
    assert set(per_subscriber.values()) == {1, 2} and set(per_subscriber) == {s.msisdn for s in subscribers}
    for d in devices:
        assert (d.app_version, d.schema_version) in {(v, s) for v, s, _ in APP_VERSIONS[d.platform]}

    n = len(subscribers)
    assert 0.74 < sum(s.is_b2b for s in subscribers) / n < 0.86
    assert 0.55 < sum(s.telemetry_level == "diagnostic" for s in subscribers) / n < 0.65
    assert 0.07 < sum(s.diagnostics_opt_out for s in subscribers) / n < 0.13
    assert {s.jurisdiction for s in subscribers} == {"EU", "US-CA", "US-other", "other"}
    platforms = Counter(d.platform for d in devices)
    assert 0.35 < platforms["ios"] / len(devices) < 0.45 and 0.40 < platforms["android"] / len(devices) < 0.50
    assert 0.11 < platforms["web"] / len(devices) < 0.19

    accounts = {a.account_id: a for a in population.accounts}
    assert 20 <= len(accounts) <= 30 and all(re.fullmatch(r"acct-\d{4}", a) for a in accounts)
    for s in subscribers:
        if s.is_b2b:
            account = accounts[s.account_id]
            assert 2 <= len(account.departments) <= 8 and s.department in account.departments
            assert account.created_on <= s.created_on
        else:
            assert s.account_id == "consumer" and s.department is None

    skews = [abs(d.clock_skew_ms) for d in devices]
    assert sum(s <= 2000 for s in skews) / len(skews) > 0.95
    assert any(120_000 <= s <= 6 * 3_600_000 for s in skews)  # minutes to hours off
    assert any(s > 300 * 86_400_000 for s in skews)  # about a year ahead


# ----------------------------------------------------------------------------- events

def test_schema_versions_carry_their_own_fields(clean: list[tuple[LandingObject, DecodedUpload]]) -> None:
    versions: Counter[int] = Counter()
    for up, e in _events(clean):
        versions[up.header.schema_version] += 1
        if up.header.schema_version == 1:
            assert (e["imei"] is not None) == (up.header.platform != "web")
            assert all(e[f] is None for f in ("telemetry_level", "diagnostics_opt_out", "bytes_sent", "bytes_received",
                                              "mos", "jitter_ms"))
        else:
            assert e["imei"] is None and e["telemetry_level"] in ("basic", "diagnostic")
            assert isinstance(e["diagnostics_opt_out"], bool)
            assert (e["bytes_sent"] is not None) == (e["event_type"] == "call_end")
            diagnostic = e["telemetry_level"] == "diagnostic" and not e["diagnostics_opt_out"]
            has_quality = diagnostic and e["event_type"] == "call_end"
            assert (e["mos"] is not None) == (e["jitter_ms"] is not None) == has_quality
            if e["mos"] is not None:
                assert 1.0 <= e["mos"] <= 4.5 and 0 <= e["jitter_ms"] <= 500
    assert versions[1] > 0 and versions[2] > versions[1]


def test_calls_start_then_end_or_fail(clean: list[tuple[LandingObject, DecodedUpload]]) -> None:
    calls: dict[str, list[dict[str, Any]]] = {}
    for _, e in _events(clean):
        calls.setdefault(e["call_id"], []).append(e)
    events = [e for es in calls.values() for e in es]
    assert len({e["event_id"] for e in events}) == len(events)
    outcomes: Counter[str] = Counter()
    durations = []
    for call_events in calls.values():
        kinds = sorted(e["event_type"] for e in call_events)
        # A bad record may hide one event of a call; everything else is start + at most one terminal event.
        assert kinds in (["call_start"], ["call_end", "call_start"], ["call_failure", "call_start"], ["call_end"],
                         ["call_failure"])
        by_type = {e["event_type"]: e for e in call_events}
        if len(kinds) == 2:
            terminal = by_type.get("call_end") or by_type["call_failure"]
            assert terminal["event_ms"] > by_type["call_start"]["event_ms"]
            outcomes[terminal["event_type"]] += 1
        elif kinds == ["call_start"]:
            outcomes["open"] += 1
        if "call_end" in by_type:
            durations.append(by_type["call_end"]["duration_ms"])
            assert 1_000 <= by_type["call_end"]["duration_ms"] <= 4 * 3_600_000
        if "call_failure" in by_type:
            assert by_type["call_failure"]["failure_reason"] in (
                "busy", "no_answer", "network_error", "codec_mismatch", "timeout")
    total = sum(outcomes.values())
    assert 0.05 < outcomes["call_failure"] / total < 0.11
    assert 0 < outcomes["open"] / total < 0.03
    assert 60_000 < statistics.median(durations) < 130_000


def test_network_signal_addresses_and_location(clean: list[tuple[LandingObject, DecodedUpload]]) -> None:
    families: Counter[int] = Counter()
    networks: Counter[str] = Counter()
    for up, e in _events(clean):
        network = e["network_type"]
        networks[network] += 1
        if up.header.platform == "web":
            assert network in ("wifi", "ethernet") and e["signal_metric"] is None and e["signal_value"] is None
            assert e["carrier_mccmnc"] is None
        else:
            metric, low, high, _ = SIGNAL_METRICS[network]
            assert e["signal_metric"] == metric and low <= e["signal_value"] <= high
            assert e["carrier_mccmnc"].isdigit() and len(e["carrier_mccmnc"]) in (5, 6)
            assert e["latitude"] is not None
        for name in ("src_ip", "dst_ip"):
            address = ipaddress.ip_address(e[name])
            assert address.is_global, e[name]
            if address.version == 4:  # a host, never x.y.z.0 (which would read as its own /24 prefix) or .255
                assert e[name].rsplit(".", 1)[1] not in ("0", "255"), e[name]
            families[address.version] += 1
        assert E164.match(e["msisdn"]) and E164.match(e["callee_msisdn"]) and e["callee_msisdn"] != e["msisdn"]
        if e["latitude"] is not None:
            assert min(math.dist((e["latitude"], e["longitude"]), c) for c in CITIES) < 1.0
        assert e["country_code"] in {c.country_code for m in MARKETS for c in m.cities}
        assert e["account_id"] == "consumer" or re.fullmatch(r"acct-\d{4}", e["account_id"])
    assert families[4] > 0 and families[6] > 0
    assert set(networks) == {"wifi", "5g", "lte", "3g", "2g", "ethernet"}


def test_device_clocks_offline_buffering_and_daily_rhythm(
    day: GeneratedDay, clean: list[tuple[LandingObject, DecodedUpload]]
) -> None:
    skew = {d.device_id: d.clock_skew_ms for d in day.population.devices}
    earlier_batches = 0
    hours: Counter[int] = Counter()
    for obj, up in clean:
        received = parse_landing_key(obj.key).received_at_ms  # type: ignore[union-attr]
        offset = clock_offset_ms(up.header, received)
        # The time-sync samples reveal the device's skew (to within network delay).
        assert abs(offset + skew[up.header.device_id]) < 1_000
        assert up.header.sent_at_ms + offset <= received
        true_times = [e["event_ms"] + offset for e in up.events]
        assert max(true_times) <= received
        if min(true_times) < DAY_START_MS:
            earlier_batches += 1
            assert min(true_times) >= DAY_START_MS - 3 * 86_400_000 - 1_000
        else:  # calls follow the local time where the device is: count those made in UTC+1
            hours.update(((t - DAY_START_MS) // 3_600_000 + 1) % 24
                         for t, e in zip(true_times, up.events) if e["country_code"] in ("DE", "FR", "ES"))
    assert 0 < earlier_batches / len(clean) < 0.1
    assert sum(hours[h] for h in range(9, 13)) > 5 * sum(hours[h] for h in range(1, 5))  # quiet at night
