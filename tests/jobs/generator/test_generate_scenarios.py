"""Attack scenarios and auth logs of the generator: off by default, labelled exactly, and what they claim to be."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from datetime import UTC, date, datetime

import pytest

from jobs.ingest.destinations import destination_class
from jobs.generator.day import GeneratedDay, generate_day
from jobs.generator.scenarios import SCENARIO_KINDS, ScenarioPlan
from jobs.platform.keys import new_key_material
from jobs.telemetry.codec import decode_object
from lake_layout.landing import auth_log_key

DAY = date(2026, 11, 24)
KEYS = new_key_material()
PLAN = ScenarioPlan(irsf_bursts=1, compromised_accounts=2, telemetry_floods=1, call_floods=1)


@pytest.fixture(scope="module")
def plain() -> GeneratedDay:
    return generate_day(DAY, events=1500, seed=4, keys=KEYS, prefix="uploads")


@pytest.fixture(scope="module")
def attacked() -> GeneratedDay:
    return generate_day(DAY, events=1500, seed=4, keys=KEYS, prefix="uploads", scenarios=PLAN)


def _calls(day: GeneratedDay) -> dict[str, list[tuple[str, dict[str, object]]]]:
    """call_id -> [(device_id, event)] over every decodable upload (device clock times)."""
    out: dict[str, list[tuple[str, dict[str, object]]]] = defaultdict(list)
    for obj in day.objects:
        if obj.fault:
            continue
        upload = decode_object(obj.key, obj.body, lambda device_id, key_id: KEYS.device_key(device_id, key_id))
        for event in upload.events:
            out[str(event.get("call_id"))].append((upload.header.device_id, event))
    return out


def _logins(day: GeneratedDay) -> list[dict[str, object]]:
    return [json.loads(line) for line in gzip.decompress(day.auth_body).decode().splitlines()]


def test_scenarios_are_off_by_default_and_leave_normal_traffic_unchanged(plain: GeneratedDay,
                                                                       attacked: GeneratedDay) -> None:
    assert plain.auth_key == "" and plain.auth_body == b"" and plain.labels == ()
    normal = {o.key: o.body for o in plain.objects}
    scenario_objects = {o.key: o.body for o in attacked.objects}
    assert all(scenario_objects.get(k) == body for k, body in normal.items())  # every normal upload, byte for byte
    assert len(scenario_objects) > len(normal)
    assert attacked.directory_body == plain.directory_body
    assert attacked.auth_key == auth_log_key(DAY)
    assert sorted(label.scenario for label in attacked.labels) == sorted(
        ["irsf_burst", "compromised_account", "compromised_account", "telemetry_flood", "call_flood"])
    with pytest.raises(ValueError, match="auth_logs"):
        ScenarioPlan(compromised_accounts=1, auth_logs=False)
    with pytest.raises(ValueError, match="non-negative"):
        ScenarioPlan(irsf_bursts=-1)


def test_labels_name_exactly_the_scenario_calls(attacked: GeneratedDay) -> None:
    calls = _calls(attacked)
    day_start = int(datetime(2026, 11, 24, tzinfo=UTC).timestamp() * 1000)
    for label in attacked.labels:
        assert label.scenario in SCENARIO_KINDS
        assert day_start <= label.start_ms <= label.end_ms < day_start + 86_400_000
        for call_id in label.call_ids:
            events = calls[call_id]
            assert {device for device, _ in events} == {label.device_id}
            assert {e["msisdn"] for _, e in events} == {label.msisdn}
        starts = [e for c in label.call_ids for _, e in calls[c] if e["event_type"] == "call_start"]
        ends = [e for c in label.call_ids for _, e in calls[c] if e["event_type"] != "call_start"]
        if label.scenario == "irsf_burst":
            assert len(starts) >= 30
            assert all(destination_class(str(e["msisdn"]), str(e["callee_msisdn"])) == "premium" for e in starts)
            assert all(e["event_type"] == "call_end" and int(e["duration_ms"]) <= 75_000 for e in ends)
            assert label.end_ms - label.start_ms <= 2 * 3_600_000
        elif label.scenario == "call_flood":
            assert len(starts) >= 120 and all(e["event_type"] == "call_failure" for e in ends)
            assert len({e["callee_msisdn"] for e in starts}) == 1  # one number, retried
        elif label.scenario == "telemetry_flood":
            for e in ends:  # media bytes far beyond what Opus over RTP (~100 kbps both ways) can carry
                kbps = (int(e["bytes_sent"]) + int(e["bytes_received"])) * 8 / int(e["duration_ms"])
                assert kbps > 5_000


def test_auth_log_logins_precede_calls_except_for_intruders(attacked: GeneratedDay) -> None:
    logins = _logins(attacked)
    assert {tuple(sorted(x)) for x in logins} == {tuple(sorted(
        ("event_id", "ts", "msisdn", "device_id", "ip", "country_code", "outcome", "failure_reason")))}
    success = defaultdict(list)
    for x in logins:
        if x["outcome"] == "success":
            ts = datetime.fromisoformat(str(x["ts"]).replace("Z", "+00:00"))
            success[(x["device_id"], x["country_code"])].append(int(ts.timestamp() * 1000))
    calls = _calls(attacked)
    intruders = {(lb.device_id, lb.start_ms) for lb in attacked.labels if lb.scenario == "compromised_account"}
    assert len(intruders) == 2
    for device_id, start in intruders:  # no successful login from the country the intruder called from
        compromised = next(lb for lb in attacked.labels if lb.device_id == device_id and lb.start_ms == start)
        countries = {e["country_code"] for c in compromised.call_ids for _, e in calls[c]}
        assert all(not success.get((device_id, country)) for country in countries)
    # Every other device logged in before (true time) its first call of the day from each country it called from.
    skew = {d.device_id: d.clock_skew_ms for d in attacked.population.devices}
    intruder_calls = {c for lb in attacked.labels if lb.scenario == "compromised_account" for c in lb.call_ids}
    day_start = int(datetime(2026, 11, 24, tzinfo=UTC).timestamp() * 1000)
    first: dict[tuple[str, str], int] = {}
    for call_id, events in calls.items():
        for device_id, e in events:
            if e["event_type"] != "call_start" or call_id in intruder_calls or device_id not in skew:
                continue
            true_ms = int(e["event_ms"]) - skew[device_id]
            if true_ms >= day_start:
                key = (device_id, str(e["country_code"]))
                first[key] = min(first.get(key, true_ms), true_ms)
    assert first
    assert all(success.get(key) and min(success[key]) <= at for key, at in first.items())
