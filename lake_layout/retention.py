"""The retention policy (lake_layout/retention_policy.toml): period and regulation per tier and jurisdiction.

    policy = load_policy()
    policy.period(RetentionTier.SILVER, "EU")      # Period(days=180, regulation="GDPR art. 5(1)(e); ...")
    policy.table_wide(RetentionTier.RAW)           # the period for data not attributable to one jurisdiction
    policy.cutoff(RetentionTier.SILVER, "EU", as_of=date(2027, 1, 1))   # rows of days before this expire

Validated at load: every tier of lake_layout.registry.RetentionTier has a period for every jurisdiction or a
default; every period names its regulation; unknown tiers, jurisdictions and keys, negative or non-integer days
are refused with a message naming the key. No Spark here: DAG files and the CLI read it at parse time.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from lake_layout.registry import RetentionTier, TableSpec

POLICY_FILE = Path(__file__).resolve().parent / "retention_policy.toml"
# The values reference.subscriber_consent.jurisdiction takes; the policy must use exactly these.
JURISDICTIONS = ("EU", "US-CA", "US-other", "other")
DEFAULT = "default"


class RetentionPolicyError(ValueError):
    """The retention policy file is unusable; the message names the file and the bad key."""


@dataclass(frozen=True)
class Period:
    """How long data is kept, and the rule that says so."""

    days: int
    regulation: str

    def __post_init__(self) -> None:
        if isinstance(self.days, bool) or not isinstance(self.days, int):
            raise RetentionPolicyError(f"days must be a whole number of days, got {self.days!r}")
        if self.days < 0:
            raise RetentionPolicyError(f"days must be >= 0, got {self.days}")
        if not isinstance(self.regulation, str) or not self.regulation.strip():
            raise RetentionPolicyError("every period must name the regulation it comes from (regulation = \"...\")")

    def cutoff(self, as_of: date) -> date:
        """First day still kept on `as_of`: rows of earlier days expire."""
        return as_of - timedelta(days=self.days)


@dataclass(frozen=True)
class TierPolicy:
    tier: RetentionTier
    periods: Mapping[str, Period]  # jurisdiction -> period (only those the file names)
    default: Period | None

    def period(self, jurisdiction: str | None) -> Period:
        """Period for data of `jurisdiction`; None or an unknown jurisdiction gets the table-wide period."""
        if jurisdiction in self.periods:
            return self.periods[jurisdiction]  # type: ignore[index]
        return self.table_wide

    @property
    def table_wide(self) -> Period:
        """Period for data not attributable to one jurisdiction: the default, else the shortest period named."""
        if self.default is not None:
            return self.default
        return min(self.periods.values(), key=lambda p: p.days)

    @property
    def uniform(self) -> bool:
        """Every jurisdiction gets the same number of days (no per-subscriber lookup needed)."""
        return len({self.period(j).days for j in JURISDICTIONS} | {self.table_wide.days}) == 1


@dataclass(frozen=True)
class RetentionPolicy:
    tiers: Mapping[RetentionTier, TierPolicy]
    vacuum_retain_hours: int = 0
    gate_tiers: frozenset[RetentionTier] = frozenset()
    gate_aggregates: tuple[str, ...] = ()
    source: str = field(default=str(POLICY_FILE), compare=False)

    def tier(self, tier: RetentionTier) -> TierPolicy:
        return self.tiers[tier]

    def period(self, tier: RetentionTier, jurisdiction: str | None) -> Period:
        return self.tiers[tier].period(jurisdiction)

    def table_wide(self, tier: RetentionTier) -> Period:
        return self.tiers[tier].table_wide

    def cutoff(self, tier: RetentionTier, jurisdiction: str | None, *, as_of: date) -> date:
        return self.period(tier, jurisdiction).cutoff(as_of)

    def with_days(self, tier: RetentionTier, days: int, *, jurisdiction: str | None = None,
                  regulation: str = "test override") -> "RetentionPolicy":
        """A copy with one period replaced (`jurisdiction` None: the tier's default), validated again."""
        current = self.tiers[tier]
        period = Period(days, regulation)
        updated = (replace(current, default=period) if jurisdiction is None
                   else replace(current, periods=MappingProxyType({**current.periods, jurisdiction: period})))
        policy = replace(self, tiers=MappingProxyType({**self.tiers, tier: updated}))
        _check_invariants(policy, policy.source)
        return policy


def _period(where: str, raw: Any) -> Period:
    if not isinstance(raw, Mapping) or set(raw) != {"days", "regulation"}:
        raise RetentionPolicyError(f"{where}: expected {{ days = N, regulation = \"...\" }}, got {raw!r}")
    try:
        return Period(raw["days"], raw["regulation"])
    except RetentionPolicyError as exc:
        raise RetentionPolicyError(f"{where}: {exc}") from None


def parse_policy(raw: Mapping[str, Any], *, source: str = "<policy>") -> RetentionPolicy:
    """Build and validate a policy from the parsed TOML document `raw` (see the module docstring)."""
    unknown = set(raw) - {"jurisdictions", "vacuum", "aggregate_gate", "tiers"}
    if unknown:
        raise RetentionPolicyError(f"{source}: unknown key(s) {sorted(unknown)}; known: aggregate_gate, jurisdictions, tiers, vacuum")
    declared = list(raw.get("jurisdictions", JURISDICTIONS))
    if sorted(declared) != sorted(JURISDICTIONS):
        raise RetentionPolicyError(f"{source}: jurisdictions must be exactly {list(JURISDICTIONS)} "
                                   f"(the values of reference.subscriber_consent.jurisdiction), got {declared}")
    tiers_raw = raw.get("tiers", {})
    known_tiers = {t.value: t for t in RetentionTier}
    bad = set(tiers_raw) - set(known_tiers)
    if bad:
        raise RetentionPolicyError(f"{source}: unknown tier(s) {sorted(bad)}; known: {sorted(known_tiers)}")
    tiers: dict[RetentionTier, TierPolicy] = {}
    for name, tier in known_tiers.items():
        entries = tiers_raw.get(name)
        if entries is None:
            raise RetentionPolicyError(f"{source}: tier {name!r} has no periods ([tiers.{name}]); every retention tier needs one")
        bad_j = set(entries) - set(JURISDICTIONS) - {DEFAULT}
        if bad_j:
            raise RetentionPolicyError(f"{source}: [tiers.{name}] unknown jurisdiction(s) {sorted(bad_j)}; "
                                       f"known: {list(JURISDICTIONS)} or {DEFAULT!r}")
        periods = {j: _period(f"{source}: tiers.{name}.{j}", entries[j]) for j in JURISDICTIONS if j in entries}
        default = _period(f"{source}: tiers.{name}.default", entries[DEFAULT]) if DEFAULT in entries else None
        missing = [j for j in JURISDICTIONS if j not in periods]
        if missing and default is None:
            raise RetentionPolicyError(f"{source}: [tiers.{name}] has no period for {missing} and no default")
        tiers[tier] = TierPolicy(tier, MappingProxyType(periods), default)

    vacuum = raw.get("vacuum", {})
    if set(vacuum) - {"retain_hours"}:
        raise RetentionPolicyError(f"{source}: [vacuum] unknown key(s) {sorted(set(vacuum) - {'retain_hours'})}")
    hours = vacuum.get("retain_hours", 0)
    if isinstance(hours, bool) or not isinstance(hours, int) or hours < 0:
        raise RetentionPolicyError(f"{source}: vacuum.retain_hours must be a whole number >= 0, got {hours!r}")

    gate = raw.get("aggregate_gate", {})
    if set(gate) - {"tiers", "aggregates"}:
        raise RetentionPolicyError(f"{source}: [aggregate_gate] unknown key(s) {sorted(set(gate) - {'tiers', 'aggregates'})}")
    bad_gate = [t for t in gate.get("tiers", []) if t not in known_tiers]
    if bad_gate:
        raise RetentionPolicyError(f"{source}: aggregate_gate.tiers: unknown tier(s) {bad_gate}")
    from lake_layout.tables import TABLES_BY_NAME

    bad_tables = [t for t in gate.get("aggregates", []) if t not in TABLES_BY_NAME]
    if bad_tables:
        raise RetentionPolicyError(f"{source}: aggregate_gate.aggregates: {bad_tables} are not registry tables")
    policy = RetentionPolicy(
        tiers=MappingProxyType(tiers), vacuum_retain_hours=hours,
        gate_tiers=frozenset(known_tiers[t] for t in gate.get("tiers", [])),
        gate_aggregates=tuple(gate.get("aggregates", [])), source=source,
    )
    _check_invariants(policy, source)
    return policy


def _check_invariants(policy: RetentionPolicy, source: str) -> None:
    def days(tier: RetentionTier) -> list[int]:
        t = policy.tiers[tier]
        return [t.period(j).days for j in JURISDICTIONS] + [t.table_wide.days]

    raw_longest = max(days(RetentionTier.RAW))
    if min(days(RetentionTier.OPERATIONAL)) < raw_longest:
        raise RetentionPolicyError(
            f"{source}: operational periods ({min(days(RetentionTier.OPERATIONAL))} days) must be >= the raw period "
            f"({raw_longest} days): bronze.ingested_objects must outlive the landing objects or a rerun ingests them twice")
    audit_shortest = min(days(RetentionTier.AUDIT))
    longest_other = max(d for t in RetentionTier if t is not RetentionTier.AUDIT for d in days(t))
    if audit_shortest < longest_other:
        raise RetentionPolicyError(
            f"{source}: audit periods ({audit_shortest} days) must be >= every other period ({longest_other} days): "
            "the record of a purge must outlive the data it documents")


def may_purge(spec: TableSpec) -> bool:
    """Whether a retention purge may delete rows of `spec` (for DAG outlets, decided without Spark): it has a date
    or timestamp column to place rows in time and is not a hash-chained log. jobs.governance.retention's plan purges a subset."""
    return "entry_hash" not in spec.column_names and any(c.type in ("date", "timestamp") for c in spec.columns)


def load_policy(path: Path | None = None) -> RetentionPolicy:
    """Load and validate the retention policy (default: lake_layout/retention_policy.toml)."""
    path = Path(path or POLICY_FILE)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise RetentionPolicyError(f"retention policy {path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise RetentionPolicyError(f"{path}: not valid TOML: {exc}") from None
    return parse_policy(raw, source=str(path))
