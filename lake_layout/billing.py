"""The B2B plan catalogue (lake_layout/billing_plans.toml) and billing periods.

A billing period is named by the month it starts in, "YYYY-MM", and runs from `cutoff_day` of that month at
00:00 in the billing time zone to `cutoff_day` of the next month (cut-off 1 = calendar months). Cut-off days
above 28 are refused: every month must have the day.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lake_layout.reporting_units import DESTINATION_CLASSES

CATALOGUE_FILE = Path(__file__).with_name("billing_plans.toml")
CONSUMER_ACCOUNT = "consumer"  # silver.calls' account_id for consumers: not billed here


class CatalogueError(ValueError):
    """The plan catalogue is malformed; the message names the plan or account and what to fix."""


@dataclass(frozen=True)
class Plan:
    plan_id: str
    description: str
    included_minutes: int
    included_classes: tuple[str, ...]
    initial_increment_s: int
    increment_s: int
    rates_minor_per_minute: Mapping[str, int]  # every destination class

    def __post_init__(self) -> None:
        where = f"plan {self.plan_id!r}"
        if self.included_minutes < 0:
            raise CatalogueError(f"{where}: included_minutes must be >= 0")
        if self.initial_increment_s < 1 or self.increment_s < 1:
            raise CatalogueError(f"{where}: increments must be whole seconds >= 1")
        unknown = set(self.included_classes) - set(DESTINATION_CLASSES)
        if unknown:
            raise CatalogueError(f"{where}: unknown included class(es) {sorted(unknown)}; known: {DESTINATION_CLASSES}")
        missing = set(DESTINATION_CLASSES) - set(self.rates_minor_per_minute)
        extra = set(self.rates_minor_per_minute) - set(DESTINATION_CLASSES)
        if missing or extra:
            raise CatalogueError(f"{where}: rates_minor_per_minute needs exactly {list(DESTINATION_CLASSES)}; "
                                 f"missing {sorted(missing)}, unknown {sorted(extra)}")
        for cls, rate in self.rates_minor_per_minute.items():
            if isinstance(rate, bool) or not isinstance(rate, int) or rate < 0:
                raise CatalogueError(f"{where}: rate for {cls} must be a non-negative integer of minor units, got {rate!r}")

    def billable_seconds(self, duration_ms: int) -> int:
        """Billable seconds of a call of `duration_ms` talk time (the reference for the Spark expression)."""
        if duration_ms <= 0:
            return 0
        initial_ms, step_ms = self.initial_increment_s * 1000, self.increment_s * 1000
        if duration_ms <= initial_ms:
            return self.initial_increment_s
        return self.initial_increment_s + -(-(duration_ms - initial_ms) // step_ms) * self.increment_s

    @property
    def rule(self) -> str:
        return f"{self.initial_increment_s}/{self.increment_s}"


@dataclass(frozen=True)
class Catalogue:
    currency: str
    default_plan: str
    plans: Mapping[str, Plan]
    accounts: Mapping[str, str]  # account_id -> plan_id

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Z]{3}", self.currency):
            raise CatalogueError(f"currency must be an ISO 4217 code like EUR, got {self.currency!r}")
        if self.default_plan not in self.plans:
            raise CatalogueError(f"default_plan {self.default_plan!r} is not a plan; plans: {sorted(self.plans)}")
        for account, plan in self.accounts.items():
            if plan not in self.plans:
                raise CatalogueError(f"account {account!r}: unknown plan {plan!r}; plans: {sorted(self.plans)}")
            if account == CONSUMER_ACCOUNT:
                raise CatalogueError(f"{CONSUMER_ACCOUNT!r} is not a B2B account and cannot have a plan")

    def plan_for(self, account_id: str) -> Plan:
        return self.plans[self.accounts.get(account_id, self.default_plan)]


def load_catalogue(path: Path | str = CATALOGUE_FILE) -> Catalogue:
    """Parse and validate the catalogue at `path`."""
    raw: dict[str, Any] = tomllib.loads(Path(path).read_text())
    plans = {}
    for plan_id, body in raw.get("plans", {}).items():
        try:
            plans[plan_id] = Plan(
                plan_id=plan_id, description=str(body.get("description", "")),
                included_minutes=int(body["included_minutes"]),
                included_classes=tuple(body.get("included_classes", ())),
                initial_increment_s=int(body["initial_increment_s"]), increment_s=int(body["increment_s"]),
                rates_minor_per_minute=dict(body["rates_minor_per_minute"]),
            )
        except KeyError as exc:
            raise CatalogueError(f"{path}: plan {plan_id!r} lacks {exc.args[0]}") from exc
    if not plans:
        raise CatalogueError(f"{path}: no [plans.*]")
    try:
        return Catalogue(currency=str(raw["currency"]), default_plan=str(raw["default_plan"]), plans=plans,
                         accounts={str(k): str(v) for k, v in raw.get("accounts", {}).items()})
    except KeyError as exc:
        raise CatalogueError(f"{path}: missing top-level key {exc.args[0]}") from exc


# ----------------------------------------------------------------------------- periods

@dataclass(frozen=True)
class BillingCalendar:
    """Where billing periods start: `cutoff_day` (1-28) at 00:00 in `timezone`."""

    timezone: str
    cutoff_day: int

    def __post_init__(self) -> None:
        if not 1 <= self.cutoff_day <= 28:
            raise CatalogueError(f"billing cutoff_day must be 1..28, got {self.cutoff_day}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise CatalogueError(f"unknown billing time zone {self.timezone!r}") from exc

    def period_of(self, instant: datetime) -> str:
        """The period containing `instant` (aware; naive means UTC)."""
        if instant.tzinfo is None:
            instant = instant.replace(tzinfo=timezone.utc)
        local = instant.astimezone(ZoneInfo(self.timezone)).date() - timedelta(days=self.cutoff_day - 1)
        return f"{local.year:04d}-{local.month:02d}"

    def bounds(self, period: str) -> tuple[datetime, datetime]:
        """[start, end) of `period` as aware UTC datetimes."""
        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", period):
            raise ValueError(f"billing period must be YYYY-MM, got {period!r}")
        year, month = int(period[:4]), int(period[5:])
        zone = ZoneInfo(self.timezone)
        start = datetime(year, month, self.cutoff_day, tzinfo=zone)
        end = datetime(year + month // 12, month % 12 + 1, self.cutoff_day, tzinfo=zone)
        return start.astimezone(timezone.utc), end.astimezone(timezone.utc)

    def utc_dates(self, period: str) -> tuple[date, date]:
        """First and last UTC call_date that can hold calls of `period`."""
        start, end = self.bounds(period)
        return start.date(), (end - timedelta(microseconds=1)).date()

    def next_period(self, period: str) -> str:
        year, month = int(period[:4]), int(period[5:])
        return f"{year + month // 12:04d}-{month % 12 + 1:02d}"
