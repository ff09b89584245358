"""Labelled attack scenarios (`ScenarioPlan`, `ScenarioLabel`): their scripted calls and uploads, and the day's
authentication log."""

from __future__ import annotations

import gzip
import ipaddress
import json
import math
import random
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

from jobs.generator.calls import (
    _CELLULAR_MIX,
    _CODEC_KBPS,
    _EVENT_END_MARGIN_MS,
    _SEND_END_MARGIN_MS,
    MAX_BATCH_EVENTS,
    MAX_CALL_MS,
    MEDIAN_CALL_MS,
    _Batch,
    _call_fields,
    _CallSimulator,
    _DeviceDay,
    _signal,
    _time_sync,
)
from jobs.generator.common import DAY_MS, HOUR_MS, _day_start_ms, _digits, _uuid4, _weighted
from jobs.generator.population import APP_VERSIONS, Device, Population, _device
from jobs.generator.reference import MARKETS, MARKETS_BY_HOME, _phone_number, _pools

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


def _attack_call(
    rng: random.Random, ctx: _DeviceDay, start_ms: int, *, callee: str, outcome: str, terminal_after_ms: int,
    duration_ms: int = 0, failure_reason: str | None = None, bytes_factor: float = 1.0,
) -> list[dict[str, Any]]:
    """One scripted call's events (true times): like `_CallSimulator.call`, with the outcome imposed."""
    device = ctx.device
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


__all__ = ["SCENARIO_KINDS", "ScenarioLabel", "ScenarioPlan", "auth_log"]
