"""The subscriber population: B2B accounts and consumers, their subscribers and devices (platform, app version,
IMEI, clock skew), deterministic for a seed."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import date, timedelta

from jobs.generator.common import DAY_MS, HOUR_MS, _digits, _uuid4, _weighted
from jobs.generator.reference import MARKETS, MARKETS_BY_HOME, _nanp, _phone_number

PLATFORM_SHARES = (("ios", 0.40), ("android", 0.45), ("web", 0.15))
# app_version -> (CallEvent schema version, share of installs); the oldest releases still send schema 1.
APP_VERSIONS: dict[str, tuple[tuple[str, int, float], ...]] = {
    "ios": (("5.1.0", 1, 0.15), ("5.2.0", 2, 0.30), ("6.0.1", 2, 0.55)),
    "android": (("5.0.3", 1, 0.20), ("5.2.1", 2, 0.30), ("6.0.0", 2, 0.50)),
    "web": (("2024.11", 1, 0.25), ("2025.3", 2, 0.75)),
}
# Type allocation codes (first 8 IMEI digits): Apple and Samsung under "35", Chinese vendors under "86".
_TACS = {
    "ios": ("35391110", "35328511", "35674108", "35407115", "35299209"),
    "android": ("35260011", "35467611", "35875610", "86753104", "86892605", "86220405"),
}
DEPARTMENTS = (
    "sales", "support", "engineering", "operations", "finance", "field-service", "marketing", "logistics",
    "management", "hr",
)


@dataclass(frozen=True)
class Account:
    """A B2B customer account; consumers have no account row and account_id "consumer"."""

    account_id: str  # "acct-0007"
    home: str  # market (country code) of the headquarters
    departments: tuple[str, ...]
    created_on: date


@dataclass(frozen=True)
class Subscriber:
    msisdn: str  # E.164, valid for the home market's numbering plan
    account_id: str  # "acct-NNNN" or "consumer"
    department: str | None  # B2B only
    home_country: str  # ISO 3166-1 alpha-2, "US-CA" for California
    jurisdiction: str  # "EU" | "US-CA" | "US-other" | "other"
    home_city: str
    home_mccmnc: str
    telemetry_level: str  # "basic" | "diagnostic"
    diagnostics_opt_out: bool
    created_on: date
    activity: float  # relative call volume; heavy users call many times more than light ones

    @property
    def is_b2b(self) -> bool:
        return self.account_id != "consumer"


@dataclass(frozen=True)
class Device:
    device_id: str  # UUID string
    msisdn: str  # owner
    platform: str  # "ios" | "android" | "web"
    app_version: str
    schema_version: int  # CallEvent schema the app version sends
    imei: str | None  # 15 digits with a Luhn check digit; None for web
    clock_skew_ms: int  # device clock minus true time
    usage_share: float  # primary device 1.0, a second one less


@dataclass(frozen=True)
class Population:
    accounts: list[Account]  # B2B accounts
    subscribers: list[Subscriber]
    devices: list[Device]


def luhn_check_digit(digits: str) -> str:
    """The Luhn check digit to append to `digits` (as for IMEIs and card numbers)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:  # every second digit from the right, counting the check digit to come
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    return number.isdigit() and len(number) >= 2 and luhn_check_digit(number[:-1]) == number[-1]


def _imei(rng: random.Random, platform: str) -> str:
    body = rng.choice(_TACS[platform]) + _digits(rng, 6)
    return body + luhn_check_digit(body)


def _clock_skew_ms(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.003:  # clock set about a year ahead (wrong year picked by hand, dead RTC battery)
        return 365 * DAY_MS + int(rng.gauss(0, 2 * HOUR_MS))
    if r < 0.033:  # manual clock / wrong time zone: minutes to hours off, either way
        magnitude = math.exp(rng.uniform(math.log(2 * 60_000), math.log(6 * HOUR_MS)))
        return int(magnitude) * rng.choice((-1, 1))
    return max(-2000, min(2000, int(rng.gauss(0, 600))))


def _device(rng: random.Random, msisdn: str, usage_share: float) -> Device:
    platform = _weighted(rng, PLATFORM_SHARES)
    versions = APP_VERSIONS[platform]
    app_version, schema_version, _ = rng.choices(versions, weights=[v[2] for v in versions])[0]
    return Device(
        device_id=_uuid4(rng), msisdn=msisdn, platform=platform, app_version=app_version,
        schema_version=schema_version, imei=None if platform == "web" else _imei(rng, platform),
        clock_skew_ms=_clock_skew_ms(rng), usage_share=usage_share,
    )


def build_population(*, n_subscribers: int, seed: int, as_of: date = date(2026, 1, 1)) -> Population:
    """Accounts, subscribers and their devices, deterministic for (n_subscribers, seed).

    ~n_subscribers/80 (at least 3) B2B accounts with 2-8 departments hold ~80 % of the subscribers; the rest are
    consumers (account_id "consumer"). MSISDNs are unique E.164 numbers of the home market; every
    subscriber and account was created before `as_of`; each subscriber has 1-2 devices. `as_of` only
    moves the creation dates, so the same seed gives the same people and devices on every day.
    """
    if n_subscribers < 1:
        raise ValueError(f"n_subscribers must be >= 1, got {n_subscribers}")
    rng = random.Random(f"voiplake-population:{seed}")
    market_weights = [m.weight for m in MARKETS]

    accounts: list[Account] = []
    for i in range(max(3, round(n_subscribers / 80))):  # at least a few, so a small population is not one company
        market = rng.choices(MARKETS, weights=market_weights)[0]
        accounts.append(Account(
            account_id=f"acct-{i + 1:04d}", home=market.home,
            departments=tuple(rng.sample(DEPARTMENTS, rng.randint(2, 8))),
            created_on=as_of - timedelta(days=rng.randint(60, 3000)),
        ))
    account_sizes = [rng.lognormvariate(0, 1.0) for _ in accounts]  # a few large customers, many small ones

    used: set[str] = set()
    subscribers: list[Subscriber] = []
    devices: list[Device] = []
    for _ in range(n_subscribers):
        account: Account | None = None
        if rng.random() < 0.8:
            account = rng.choices(accounts, weights=account_sizes)[0]
            # Most staff work in the customer's home market; international customers have a few abroad.
            if rng.random() < 0.85:
                market = MARKETS_BY_HOME[account.home]
            else:
                market = rng.choices(MARKETS, weights=market_weights)[0]
            days_since_account = (as_of - account.created_on).days
            created_on = account.created_on + timedelta(days=rng.randint(0, days_since_account - 1))
            department: str | None = rng.choice(account.departments)
            # Agents in support and sales live on the phone.
            activity = rng.lognormvariate(0, 0.7) * (2.2 if department in ("support", "sales") else 1.2)
        else:
            market = rng.choices(MARKETS, weights=market_weights)[0]
            created_on = as_of - timedelta(days=rng.randint(1, 2500))
            department = None
            activity = rng.lognormvariate(0, 0.8) * 0.6
        city = rng.choice(market.cities)
        plan = _nanp(*city.area_codes) if city.area_codes else market.mobile_plan
        msisdn = _phone_number(rng, market, plan)
        while msisdn in used:
            msisdn = _phone_number(rng, market, plan)
        used.add(msisdn)
        subscribers.append(Subscriber(
            msisdn=msisdn, account_id=account.account_id if account else "consumer", department=department,
            home_country=market.home, jurisdiction=market.jurisdiction, home_city=city.name,
            home_mccmnc=rng.choices(market.carriers, weights=range(len(market.carriers) + 1, 1, -1))[0],
            telemetry_level="diagnostic" if rng.random() < 0.6 else "basic",
            diagnostics_opt_out=rng.random() < 0.1, created_on=created_on, activity=activity,
        ))
        devices.append(_device(rng, msisdn, 1.0))
        if rng.random() < 0.3:
            devices.append(_device(rng, msisdn, rng.uniform(0.1, 0.5)))
    return Population(accounts=accounts, subscribers=subscribers, devices=devices)


def _account_created_on(accounts: dict[str, Account], subscriber: Subscriber) -> date:
    """The B2B account's creation date (`accounts` by account_id); a consumer's account is their subscription."""
    return accounts[subscriber.account_id].created_on if subscriber.is_b2b else subscriber.created_on


__all__ = [
    "APP_VERSIONS", "Account", "Device", "Population", "Subscriber", "build_population", "luhn_check_digit",
    "luhn_valid",
]
