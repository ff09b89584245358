"""The telemetry generator: deterministic, realistic, and its faults are exactly what it says they are."""

from __future__ import annotations

import gzip
import ipaddress
import json
import math
import re
import statistics
import uuid
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

import pytest

from jobs.ingest.bronze import clock_offset_ms, validate_event
from jobs.generator.calls import SIGNAL_METRICS
from jobs.generator.day import GeneratedDay, LandingObject, generate_day
from jobs.generator.faults import (
    BAD_RECORD_REASONS,
    EXPECTED_REJECTION_REASONS,
    FAULT_KINDS,
    TIME_FAULT_REASONS,
    FaultPlan,
)
from jobs.generator.population import APP_VERSIONS, build_population, luhn_check_digit, luhn_valid
from jobs.generator.reference import MARKETS
from jobs.platform.keys import new_key_material
from jobs.telemetry.codec import DecodedUpload, UploadRejected, decode_object
from lake_layout.landing import directory_export_key, parse_landing_key

DAY = date(2026, 11, 24)  # a Tuesday
DAY_START_MS = int(datetime(2026, 11, 24, tzinfo=UTC).timestamp() * 1000)
DAY_END_MS = DAY_START_MS + 86_400_000
EVENTS = 5000
SEED = 3
KEYS = new_key_material()
PLAN = FaultPlan(corrupt=2, truncated=2, tampered=2, wrong_schema=3, unsupported_version=2, bad_records=16,
                 future_events=5, prehistoric_events=6)
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
    """Valid events of first uploads only (bad records, impossible times and retried copies left out), with
    their upload."""
    out: list[tuple[DecodedUpload, dict[str, Any]]] = []
    for obj, up in clean:
        if obj.is_retry:
            continue
        skip = set(obj.bad_record_indexes) | set(obj.time_fault_indexes)
        out.extend((up, e) for i, e in enumerate(up.events) if i not in skip)
    return out


def _received_ms(obj: LandingObject) -> int:
    parsed = parse_landing_key(obj.key)
    assert parsed is not None
    return parsed.received_at_ms


def _midnight_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def _account_created_on(generated: GeneratedDay) -> dict[str, date]:
    accounts = {a.account_id: a.created_on for a in generated.population.accounts}
    return {s.msisdn: accounts[s.account_id] if s.is_b2b else s.created_on for s in generated.population.subscribers}


# ----------------------------------------------------------------------------- determinism and shape

def test_same_seed_gives_identical_objects_and_another_seed_does_not(day: GeneratedDay) -> None:
    again = _generate()
    assert again.objects == day.objects  # keys, bodies and every piece of ground truth
    assert (again.directory_key, again.directory_body, again.consent_changes) == \
           (day.directory_key, day.directory_body, day.consent_changes)
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


def test_time_faults_are_well_formed_uploads_with_impossible_corrected_times(
    day: GeneratedDay, clean: list[tuple[LandingObject, DecodedUpload]]
) -> None:
    account_created = _account_created_on(day)
    changed = {c.msisdn for c in day.consent_changes}
    seen: Counter[str] = Counter()
    faulted_calls: list[str] = []
    impossible: set[tuple[str, int]] = set()  # what silver must quarantine, judged from the decoded objects alone
    for obj, up in clean:
        received = _received_ms(obj)
        offset = clock_offset_ms(up.header, received)
        for index, event in enumerate(up.events):
            if index in obj.bad_record_indexes:
                continue
            corrected = event["event_ms"] + offset
            if corrected > received + 5 * 60_000:
                impossible.add((obj.key, index))
                assert corrected > received + 86_400_000  # days, not a skew the offset failed to explain
            elif corrected < _midnight_ms(account_created[event["msisdn"]]):
                impossible.add((obj.key, index))
        assert len(obj.time_fault_indexes) == len(obj.time_fault_reasons)
        assert list(obj.time_fault_indexes) == sorted(set(obj.time_fault_indexes))
        assert not set(obj.time_fault_indexes) & set(obj.bad_record_indexes)
        if not obj.time_fault_indexes:
            continue
        assert not obj.is_retry and obj.fault is None  # decoded above: signed over the changed event
        for index, reason in zip(obj.time_fault_indexes, obj.time_fault_reasons):
            event = up.events[index]
            assert validate_event(event, up.header) is None  # bronze accepts it
            assert 0 < event["event_ms"] < 4_102_444_800_000
            corrected = event["event_ms"] + offset
            if reason == "future_timestamp":
                assert received + 2 * 86_400_000 - 1_000 < corrected < received + 5 * 86_400_000 + 1_000
            else:
                assert reason == "before_account_creation"
                created = _midnight_ms(account_created[event["msisdn"]])
                assert created - 3651 * 86_400_000 < corrected < created - 3649 * 86_400_000
            assert event["msisdn"] not in changed  # consent ground truth stays checkable
            faulted_calls.append(event["call_id"])
            seen[reason] += 1
    assert dict(seen) == {reason: getattr(PLAN, name) for name, reason in TIME_FAULT_REASONS.items()}
    assert len(set(faulted_calls)) == len(faulted_calls)  # one event per call
    # Exactly the recorded events are impossible: no skewed or offline-buffered clock looks like one.
    assert impossible == {(o.key, i) for o, _ in clean for i in o.time_fault_indexes}


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
    assert FaultPlan.default(200) == FaultPlan(1, 1, 1, 1, 1, 16, future_events=4, prehistoric_events=4)
    assert FaultPlan.default(10_000) == FaultPlan(50, 50, 50, 50, 50, 800, future_events=200, prehistoric_events=200)
    assert FaultPlan.default(1).bad_records == 1
    assert (FaultPlan.default(1).future_events, FaultPlan.default(1).prehistoric_events) == (1, 1)
    assert FaultPlan() == FaultPlan(0, 0, 0, 0, 0, 0, 0, 0)
    with pytest.raises(ValueError, match="corrupt"):
        FaultPlan(corrupt=-1)
    with pytest.raises(ValueError, match="future_events"):
        FaultPlan(future_events=-1)
    with pytest.raises(ValueError, match="prehistoric_events"):
        FaultPlan(prehistoric_events=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="faulty objects"):
        generate_day(DAY, events=200, seed=1, keys=KEYS, prefix="p", faults=FaultPlan(truncated=10_000))
    with pytest.raises(ValueError, match="impossible times"):
        generate_day(DAY, events=200, seed=1, keys=KEYS, prefix="p", faults=FaultPlan(future_events=10_000))
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
        true_times = [e["event_ms"] + offset for i, e in enumerate(up.events) if i not in obj.time_fault_indexes]
        assert max(true_times) <= received
        if min(true_times) < DAY_START_MS:
            earlier_batches += 1
            assert min(true_times) >= DAY_START_MS - 3 * 86_400_000 - 1_000
        else:  # calls follow the local time where the device is: count those made in UTC+1
            hours.update(((e["event_ms"] + offset - DAY_START_MS) // 3_600_000 + 1) % 24
                         for i, e in enumerate(up.events)
                         if e["country_code"] in ("DE", "FR", "ES") and i not in obj.time_fault_indexes)
    assert 0 < earlier_batches / len(clean) < 0.1
    assert sum(hours[h] for h in range(9, 13)) > 5 * sum(hours[h] for h in range(1, 5))  # quiet at night


# ----------------------------------------------------------------------------- subscriber directory and consent

DIRECTORY_FIELDS = {"msisdn", "account_id", "department", "jurisdiction", "home_country", "subscriber_created_on",
                    "account_created_on", "effective_from", "telemetry_level", "diagnostics_opt_out"}


def _directory(generated: GeneratedDay) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gzip.decompress(generated.directory_body).decode().splitlines()]


def _parse_utc(text: str) -> datetime:
    assert text.endswith("Z")
    return datetime.fromisoformat(text)


def test_directory_export_holds_every_consent_state(day: GeneratedDay) -> None:
    assert day.directory_key == directory_export_key(DAY) == "directory/export_date=2026-11-24/subscribers.jsonl.gz"
    assert day.directory_body[4:8] == b"\0\0\0\0"  # gzip mtime 0: same bytes on every run
    records = _directory(day)
    subscribers = {s.msisdn: s for s in day.population.subscribers}
    changes = {c.msisdn: c for c in day.consent_changes}
    account_created = _account_created_on(day)
    assert len(records) == len(subscribers) + len(changes)
    states: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        assert set(record) == DIRECTORY_FIELDS
        assert E164.match(record["msisdn"])  # raw: the CRM's own extract; reference_ingest pseudonymizes it
        states.setdefault(record["msisdn"], []).append(record)
    assert set(states) == set(subscribers)
    for msisdn, (first, *later) in states.items():
        s = subscribers[msisdn]
        assert (first["account_id"], first["department"], first["jurisdiction"], first["home_country"]) == \
               (s.account_id, s.department, s.jurisdiction, s.home_country)
        assert date.fromisoformat(first["subscriber_created_on"]) == s.created_on
        assert date.fromisoformat(first["account_created_on"]) == account_created[msisdn] <= s.created_on
        assert _parse_utc(first["effective_from"]) == datetime(s.created_on.year, s.created_on.month, s.created_on.day,
                                                               tzinfo=UTC)
        assert (first["telemetry_level"], first["diagnostics_opt_out"]) == (s.telemetry_level, s.diagnostics_opt_out)
        assert len(later) == (msisdn in changes)
        for second in later:
            change = changes[msisdn]
            consent = ("effective_from", "telemetry_level", "diagnostics_opt_out")
            assert {k: v for k, v in second.items() if k not in consent} == \
                   {k: v for k, v in first.items() if k not in consent}
            assert _parse_utc(second["effective_from"]) == datetime.fromtimestamp(change.effective_from_ms / 1000, UTC)
            assert (second["telemetry_level"], second["diagnostics_opt_out"]) == \
                   (change.telemetry_level, change.diagnostics_opt_out)

    custom = generate_day(DAY, events=200, seed=1, keys=KEYS, prefix="p", directory_prefix="/crm/exports/")
    assert custom.directory_key == "crm/exports/export_date=2026-11-24/subscribers.jsonl.gz"
    with pytest.raises(ValueError, match="prefix"):
        directory_export_key(DAY, prefix="/")


def test_consent_changes_withdraw_diagnostics_inside_the_day(day: GeneratedDay) -> None:
    subscribers = {s.msisdn: s for s in day.population.subscribers}
    callers = {e["msisdn"] for o in day.objects if o.fault is None for e in _decode(o).events} & set(subscribers)
    assert 1 <= len(day.consent_changes) <= max(1, round(0.03 * len(callers)))
    assert [c.msisdn for c in day.consent_changes] == sorted({c.msisdn for c in day.consent_changes})
    for change in day.consent_changes:
        msisdn, effective_from_ms, level, opt_out = change  # a plain tuple too
        before = subscribers[msisdn]
        assert DAY_START_MS <= effective_from_ms < DAY_END_MS
        assert effective_from_ms > _midnight_ms(before.created_on)
        assert not before.diagnostics_opt_out and level in ("basic", "diagnostic")
        # a withdrawal: diagnostic -> basic, or an opt-out at the same level
        assert (before.telemetry_level, level, opt_out) in {
            ("diagnostic", "basic", False), ("diagnostic", "diagnostic", True), ("basic", "basic", True)}
    # deterministic per (day, seed), and another seed picks other people
    assert _generate().consent_changes == day.consent_changes
    other = _generate(seed=SEED + 1)
    assert {c.msisdn for c in other.consent_changes}.isdisjoint({c.msisdn for c in day.consent_changes})
    # even the smallest day has a change
    assert generate_day(DAY, events=1, seed=2, keys=KEYS, prefix="p").consent_changes


def test_clients_keep_sending_the_old_level_after_a_consent_change(
    day: GeneratedDay, clean: list[tuple[LandingObject, DecodedUpload]]
) -> None:
    subscribers = {s.msisdn: s for s in day.population.subscribers}
    changes = {c.msisdn: c for c in day.consent_changes}
    sides: dict[str, set[str]] = {m: set() for m in changes}
    diagnostics_after_withdrawal = 0
    for obj, up in clean:
        offset = clock_offset_ms(up.header, _received_ms(obj))
        for index, event in enumerate(up.events):
            change = changes.get(event["msisdn"])
            if change is None or index in obj.bad_record_indexes:
                continue
            corrected = event["event_ms"] + offset
            assert abs(corrected - change.effective_from_ms) > 30_000  # no call straddles the change's minute
            after = corrected >= change.effective_from_ms
            if event["event_type"] == "call_start":
                sides[event["msisdn"]].add("after" if after else "before")
            if not after or up.header.schema_version < 2:
                continue
            old = subscribers[event["msisdn"]]
            # SDK config sync lag: the upload still says what the subscriber had agreed to before
            sent = (event["telemetry_level"], event["diagnostics_opt_out"])
            assert sent == (old.telemetry_level, old.diagnostics_opt_out)
            if event["mos"] is not None:
                assert change.telemetry_level == "basic" or change.diagnostics_opt_out
                diagnostics_after_withdrawal += 1
    assert diagnostics_after_withdrawal > 0  # silver has diagnostics to null
    assert all(found == {"before", "after"} for found in sides.values())  # calls on both sides of each change
