"""One device's day: where it is and how it connects, its calls as events (true times), and the batches the SDK
uploads them in (stamped with the device's skewed clock, with time-sync samples)."""

from __future__ import annotations

import math
import random
from bisect import bisect
from dataclasses import dataclass, field
from typing import Any

from jobs.generator.common import DAY_MS, HOUR_MS, _uuid4, _weighted
from jobs.generator.population import Device, Population, Subscriber
from jobs.generator.reference import MARKETS, MARKETS_BY_HOME, _hour_cum_weights, _phone_number, _pools, _relays
from jobs.telemetry.codec import Attestation

FAILURE_SHARE = 0.08
NO_END_SHARE = 0.01  # calls whose app died: a call_start and nothing else
MEDIAN_CALL_MS = 90_000
MAX_CALL_MS = 4 * HOUR_MS
MAX_BATCH_EVENTS = 200  # the SDK's buffer cap: a full buffer is flushed at once
_EVENT_END_MARGIN_MS = 10_000  # last event of the day at least this long before midnight, so its upload lands on `day`
_SEND_END_MARGIN_MS = 3_000

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
