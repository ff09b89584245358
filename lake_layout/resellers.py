"""Reseller ownership policy: which B2B accounts each reseller owns (declared in lake_layout/resellers.toml).

A reseller (channel partner) may see the aggregated usage of its own customer accounts and nothing else.
Everything that serves usage to a reseller (the `extract usage-report` command, the CRM API) filters through
`jobs.business.account_usage.reseller_usage`, whose predicate is built from the `Reseller` declared here; the API's
per-account checks use `Reseller.owns`, the same rule in Python.

Guarantees checked at load (`load_policy`), with a message naming the file, the reseller and the account:
* every reseller id is unique and well formed, every account id is a B2B account id (never "consumer");
* no account is owned by two resellers: not listed twice, not listed by one and inside another's range, and
  no two ranges overlap. Ownership is therefore a function: `ResellerPolicy.owner_of(account)` is one reseller
  id or None (a direct customer).

No Spark here: DAG files and the API import it at parse time.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

DEFAULT_POLICY_FILE = Path(__file__).resolve().parent / "resellers.toml"
CONSUMER_ACCOUNT = "consumer"  # silver.calls account_id of consumers: never a reseller's

_RESELLER_ID = re.compile(r"[a-z][a-z0-9_-]{1,31}")
_ACCOUNT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_NUMBERED = re.compile(r"(?P<prefix>[A-Za-z][A-Za-z0-9_.-]*?)(?P<digits>\d+)")
_ENTRY_KEYS = {"id", "name", "accounts", "account_ranges"}


class PolicyError(ValueError):
    """The reseller policy file is malformed or gives an account two owners."""


class UnknownReseller(KeyError):
    """A reseller id that the policy does not declare."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


@dataclass(frozen=True)
class AccountRange:
    """Numbered accounts `prefix` + `first`..`last`, zero-padded to `width` digits (both ends inclusive)."""

    prefix: str
    first: int
    last: int
    width: int

    def __post_init__(self) -> None:
        if self.first > self.last:
            raise PolicyError(f"account range {self.text}: first account is after the last")
        if len(str(self.last)) > self.width:
            raise PolicyError(f"account range {self.prefix}{self.first}..{self.last}: {self.last} has more than {self.width} digits")

    @classmethod
    def parse(cls, text: str) -> "AccountRange":
        """'acct-0001..acct-0010' -> AccountRange('acct-', 1, 10, 4); both ends need the same prefix and width."""
        lo, sep, hi = text.partition("..")
        first, last = _NUMBERED.fullmatch(lo.strip()), _NUMBERED.fullmatch(hi.strip())
        if not sep or first is None or last is None:
            raise PolicyError(f"account range {text!r} must look like 'acct-0001..acct-0010'")
        if first["prefix"] != last["prefix"] or len(first["digits"]) != len(last["digits"]):
            raise PolicyError(f"account range {text!r}: both ends need the same prefix and number of digits")
        return cls(first["prefix"], int(first["digits"]), int(last["digits"]), len(first["digits"]))

    def account(self, n: int) -> str:
        return f"{self.prefix}{n:0{self.width}d}"

    @property
    def text(self) -> str:
        return f"{self.account(self.first)}..{self.account(self.last)}"

    @property
    def pattern(self) -> str:
        """A regular expression of the range's id shape (prefix and digit count, not the bounds)."""
        return f"^{re.escape(self.prefix)}[0-9]{{{self.width}}}$"

    def __contains__(self, account_id: object) -> bool:
        if not isinstance(account_id, str) or not account_id.startswith(self.prefix):
            return False
        digits = account_id[len(self.prefix):]
        return len(digits) == self.width and digits.isascii() and digits.isdigit() and self.first <= int(digits) <= self.last

    def overlaps(self, other: "AccountRange") -> bool:
        return (self.prefix, self.width) == (other.prefix, other.width) and self.first <= other.last and other.first <= self.last


@dataclass(frozen=True)
class Reseller:
    id: str
    name: str
    accounts: frozenset[str]  # explicit account ids
    ranges: tuple[AccountRange, ...] = ()

    def __post_init__(self) -> None:
        if not _RESELLER_ID.fullmatch(self.id):
            raise PolicyError(f"reseller id {self.id!r} must be 2-32 characters of a-z, 0-9, - and _, starting with a letter")
        if not self.name.strip():
            raise PolicyError(f"reseller {self.id}: name must not be empty")
        for account in self.accounts:
            if account == CONSUMER_ACCOUNT or not _ACCOUNT_ID.fullmatch(account):
                raise PolicyError(f"reseller {self.id}: {account!r} is not a B2B account id")
        if not self.accounts and not self.ranges:
            raise PolicyError(f"reseller {self.id}: owns no accounts (give accounts and/or account_ranges)")

    def owns(self, account_id: str | None) -> bool:
        """Whether the policy gives `account_id` to this reseller (the rule every reader applies)."""
        return account_id is not None and (account_id in self.accounts or any(account_id in r for r in self.ranges))


@dataclass(frozen=True)
class ResellerPolicy:
    resellers: tuple[Reseller, ...]
    source: str = "<policy>"

    def __post_init__(self) -> None:
        seen: dict[str, Reseller] = {}
        for r in self.resellers:
            if r.id in seen:
                raise PolicyError(f"{self.source}: reseller id {r.id!r} is declared twice")
            seen[r.id] = r
        _check_single_owner(self.resellers, self.source)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.resellers)

    def reseller(self, reseller_id: str) -> Reseller:
        for r in self.resellers:
            if r.id == reseller_id:
                return r
        raise UnknownReseller(f"unknown reseller {reseller_id!r}; known: {list(self.ids)} ({self.source})")

    def owner_of(self, account_id: str | None) -> str | None:
        """The reseller owning `account_id`, or None for a direct customer (or a consumer)."""
        owners = [r.id for r in self.resellers if r.owns(account_id)]
        return owners[0] if owners else None  # at most one: checked at load


def _check_single_owner(resellers: Iterable[Reseller], source: str) -> None:
    claims: list[tuple[Reseller, AccountRange]] = []
    listed: dict[str, str] = {}
    resellers = tuple(resellers)
    for r in resellers:
        for account in sorted(r.accounts):
            if account in listed and listed[account] != r.id:
                raise PolicyError(f"{source}: account {account} is owned by two resellers ({listed[account]} and {r.id}); "
                                  "an account has at most one reseller")
            listed[account] = r.id
        for rng in r.ranges:
            for other, other_range in claims:
                if rng.overlaps(other_range):
                    who = "reseller " + r.id if other.id == r.id else f"resellers {other.id} and {r.id}"
                    raise PolicyError(f"{source}: account ranges {other_range.text} and {rng.text} overlap ({who}); "
                                      "an account has at most one reseller")
            claims.append((r, rng))
    for account, owner in listed.items():
        for r, rng in claims:
            if account in rng and r.id != owner:
                raise PolicyError(f"{source}: account {account} is owned by two resellers ({owner} lists it, "
                                  f"{r.id} owns range {rng.text}); an account has at most one reseller")


def parse_policy(raw: dict[str, Any], *, source: str = "<policy>") -> ResellerPolicy:
    """A policy from parsed TOML (`{"resellers": [{id, name, accounts, account_ranges}, ...]}`); raises PolicyError."""
    unknown = set(raw) - {"resellers"}
    if unknown:
        raise PolicyError(f"{source}: unknown top-level key(s) {sorted(unknown)}; expected [[resellers]] entries")
    entries = raw.get("resellers", [])
    if not isinstance(entries, list):
        raise PolicyError(f"{source}: 'resellers' must be an array of tables ([[resellers]])")
    resellers = []
    for n, entry in enumerate(entries, start=1):
        where = f"{source}: reseller #{n} ({entry.get('id', '?')})"
        extra = set(entry) - _ENTRY_KEYS
        if extra:
            raise PolicyError(f"{where}: unknown key(s) {sorted(extra)}; known: {sorted(_ENTRY_KEYS)}")
        for key in ("id", "name"):
            if not isinstance(entry.get(key), str):
                raise PolicyError(f"{where}: '{key}' is required and must be a string")
        accounts, ranges = entry.get("accounts", []), entry.get("account_ranges", [])
        for key, value in (("accounts", accounts), ("account_ranges", ranges)):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise PolicyError(f"{where}: '{key}' must be a list of strings")
        if len(set(accounts)) != len(accounts):
            raise PolicyError(f"{where}: an account is listed twice in 'accounts'")
        try:
            resellers.append(Reseller(id=entry["id"], name=entry["name"], accounts=frozenset(accounts),
                                      ranges=tuple(AccountRange.parse(t) for t in ranges)))
        except PolicyError as exc:
            raise PolicyError(f"{source}: {exc}") from None
    return ResellerPolicy(tuple(resellers), source=source)


def load_policy(path: Path | str | None = None) -> ResellerPolicy:
    """The reseller policy from `path` (default lake_layout/resellers.toml); raises PolicyError naming the problem."""
    path = Path(path) if path is not None else DEFAULT_POLICY_FILE
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise PolicyError(f"reseller policy file {path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: not valid TOML: {exc}") from None
    return parse_policy(raw, source=str(path))
