"""Legal holds and time-based locks (`voiplake hold add | release | list`).

A hold preserves data that litigation or an investigation needs, overriding retention (jobs.governance.retention) and
erasure (jobs.governance.dsr) until it is released or expires. Its scope is the conjunction of what is given:

    --subject MSISDN    rows of that subscriber, as caller or callee, under every pseudonym key id
    --account ID        rows of that B2B account
    --from / --to       rows whose time column (jobs.governance.forensics.time_column) falls in those UTC days

so `--subject X --from A --to B` holds X's rows of those days only; at least one of the three is required.
`--until DATE` makes it a time-based lock that lapses after that day; without it the hold stands until released.

The holds live in `audit.legal_holds`, an append-only hash-chained log (jobs.platform.hashchain): placing one appends a
`placed` entry, releasing appends a `released` entry naming who and why, so the history of every hold (and any
tampering with it) is visible to `voiplake audit verify`. Nothing is ever updated in place. The MSISDN is never
stored: a subject hold keeps the subscriber's pseudonyms.

Landing objects: S3Proxy's filesystem backend implements no S3 Object Lock, so the hold registry is what
protects them: `held_object_keys` names the landing objects holding held data (from bronze.call_events'
object_key for subject and account scopes, and from the upload dates for a period), and the landing expiry skips
them.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable

from jobs.platform import hashchain, lake
from jobs.governance.forensics import subject_pseudonyms, time_column
from jobs.platform.keys import KeyMaterial
from lake_layout.config import Settings
from lake_layout.registry import TableSpec
from lake_layout.tables import AUDIT_LEGAL_HOLDS, BRONZE_CALL_EVENTS, BRONZE_INGESTED_OBJECTS

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

PARTY_COLUMNS = ("subscriber_pseudonym", "callee_pseudonym")  # a subject's data: as caller and as callee
ACCOUNT_COLUMN = "account_id"


class HoldError(ValueError):
    """A hold cannot be placed or released (no scope, bad dates, unknown or already released hold)."""


def _sql_list(values: Iterable[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values))


@dataclass(frozen=True)
class Hold:
    """One active or past hold, as its `placed` entry describes it."""

    hold_id: str
    case_id: str
    subscriber_pseudonyms: frozenset[str]  # empty: not subject-scoped
    account_id: str | None
    data_from: date | None  # first UTC day of data held; None: from the beginning
    data_to: date | None  # last UTC day held; None: open-ended
    until: date | None  # lapses after this day; None: until released
    placed_by: str = ""
    placed_at: datetime | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if not self.subscriber_pseudonyms and self.account_id is None and self.data_from is None and self.data_to is None:
            raise HoldError("a hold needs a scope: a subject, an account, and/or a period of data")
        if self.data_from and self.data_to and self.data_to < self.data_from:
            raise HoldError(f"hold period ends ({self.data_to}) before it starts ({self.data_from})")

    def active_on(self, day: date) -> bool:
        """Not lapsed on `day` (release is decided by the log, not here)."""
        return self.until is None or day <= self.until

    def covers_sql(self, spec: TableSpec) -> str | None:
        """Spark SQL boolean over `spec`'s columns, true for the rows this hold covers; None when it covers none.

        Each scope the hold has must be decidable on the table: a subject hold covers nothing in a table
        without a party column (anonymous aggregates, manifests), an account hold nothing without account_id.
        A period on a table with no time column covers all its rows (kept rather than guessed)."""
        columns = set(spec.column_names)
        terms: list[str] = []
        if self.subscriber_pseudonyms:
            parties = [c for c in PARTY_COLUMNS if c in columns]
            if not parties:
                return None
            names = _sql_list(self.subscriber_pseudonyms)
            terms.append("(" + " OR ".join(f"`{c}` IN ({names})" for c in parties) + ")")
        if self.account_id is not None:
            if ACCOUNT_COLUMN not in columns:
                return None
            terms.append(f"`{ACCOUNT_COLUMN}` = '{self.account_id.replace(chr(39), chr(39) * 2)}'")
        column = time_column(spec)
        if column is not None and (self.data_from or self.data_to):
            day = f"CAST(`{column}` AS DATE)"
            if self.data_from:
                terms.append(f"{day} >= DATE'{self.data_from.isoformat()}'")
            if self.data_to:
                terms.append(f"{day} <= DATE'{self.data_to.isoformat()}'")
        return " AND ".join(terms) if terms else "TRUE"

    def describe(self) -> str:
        scope = []
        if self.subscriber_pseudonyms:
            scope.append("subject " + ",".join(sorted(p[:12] for p in self.subscriber_pseudonyms)))
        if self.account_id is not None:
            scope.append(f"account {self.account_id}")
        if self.data_from or self.data_to:
            scope.append(f"data {self.data_from or '...'}..{self.data_to or '...'}")
        lapse = f"until {self.until}" if self.until else "until released"
        return f"{self.hold_id} case {self.case_id}: {'; '.join(scope)}; {lapse}"


# --------------------------------------------------------------------------------------------- pure part

def holds_from_entries(entries: Iterable[dict[str, Any]], *, on: date) -> list[Hold]:
    """The holds in force on `on` from the log's entries: placed, not released, not lapsed; in placement order."""
    placed: dict[str, Hold] = {}
    released: set[str] = set()
    for e in sorted(entries, key=lambda e: e["seq"]):
        if e["event"] == "placed":
            pseudonyms = json.loads(e["subscriber_pseudonyms"]) if e["subscriber_pseudonyms"] else []
            placed[e["hold_id"]] = Hold(
                e["hold_id"], e["case_id"], frozenset(pseudonyms), e["account_id"], e["data_from"], e["data_to"],
                e["until"], e["actor"], e["at"], e["reason"])
        elif e["event"] == "released":
            released.add(e["hold_id"])
    return [h for hid, h in placed.items() if hid not in released and h.active_on(on)]


def held_predicate(holds: Iterable[Hold], spec: TableSpec) -> str | None:
    """OR of the holds' predicates on `spec`; None when no hold touches the table."""
    terms = [t for t in (h.covers_sql(spec) for h in holds) if t is not None]
    if not terms:
        return None
    return "TRUE" if "TRUE" in terms else " OR ".join(f"({t})" for t in terms)


def holds_touching(holds: Iterable[Hold], spec: TableSpec) -> list[Hold]:
    return [h for h in holds if h.covers_sql(spec) is not None]


# --------------------------------------------------------------------------------------------- lake part

def _entries(spark: "SparkSession", settings: Settings) -> list[dict[str, Any]]:
    if not lake.table_exists(spark, AUDIT_LEGAL_HOLDS, settings):
        return []
    return [r.asDict() for r in lake.read_table(spark, AUDIT_LEGAL_HOLDS, settings).collect()]


def active_holds(spark: "SparkSession", settings: Settings, *, on: date) -> list[Hold]:
    """Holds in force on `on` (UTC day)."""
    return holds_from_entries(_entries(spark, settings), on=on)


def all_holds(spark: "SparkSession", settings: Settings) -> list[dict[str, Any]]:
    """Every hold with its state (active / released / lapsed) as of today, for `voiplake hold list --all`."""
    entries = _entries(spark, settings)
    today = datetime.now(timezone.utc).date()
    active = {h.hold_id for h in holds_from_entries(entries, on=today)}
    releases = {e["hold_id"]: e for e in entries if e["event"] == "released"}
    out = []
    for e in sorted((e for e in entries if e["event"] == "placed"), key=lambda e: e["seq"]):
        state = "active" if e["hold_id"] in active else ("released" if e["hold_id"] in releases else "lapsed")
        rel = releases.get(e["hold_id"])
        out.append({"hold_id": e["hold_id"], "case_id": e["case_id"], "state": state,
                    "subject": bool(e["subscriber_pseudonyms"]), "account_id": e["account_id"],
                    "data_from": e["data_from"], "data_to": e["data_to"], "until": e["until"],
                    "placed_by": e["actor"], "placed_at": e["at"], "reason": e["reason"],
                    "released_by": rel["actor"] if rel else None, "released_at": rel["at"] if rel else None,
                    "release_reason": rel["reason"] if rel else None})
    return out


def held_object_keys(spark: "SparkSession", settings: Settings, holds: Iterable[Hold]) -> set[str]:
    """Landing object keys holding data under any of `holds`.

    Subject and account scopes are decided on bronze.call_events (the objects its held rows came from); a
    period-only hold also keeps every object received on a held day (bronze.ingested_objects' upload_date), so
    quarantined objects of those days are kept as evidence too."""
    holds = list(holds)
    keys: set[str] = set()
    if not holds:
        return keys
    if lake.table_exists(spark, BRONZE_CALL_EVENTS, settings):
        predicate = held_predicate(holds, BRONZE_CALL_EVENTS)
        if predicate is not None:
            rows = lake.read_table(spark, BRONZE_CALL_EVENTS, settings).where(predicate).select("object_key").distinct()
            keys |= {r["object_key"] for r in rows.collect()}
    periods = [h for h in holds if not h.subscriber_pseudonyms and h.account_id is None]
    if periods and lake.table_exists(spark, BRONZE_INGESTED_OBJECTS, settings):
        predicate = held_predicate(periods, BRONZE_INGESTED_OBJECTS)
        if predicate is not None:
            rows = lake.read_table(spark, BRONZE_INGESTED_OBJECTS, settings).where(predicate).select("object_key")
            keys |= {r["object_key"] for r in rows.collect()}
    return keys


def place(spark: "SparkSession", settings: Settings, keys: KeyMaterial | None, *, case_id: str,
          msisdn: str | None = None, account_id: str | None = None, data_from: date | None = None,
          data_to: date | None = None, until: date | None = None, actor: str, reason: str | None = None,
          now: datetime | None = None) -> Hold:
    """Place a hold: append its `placed` entry to audit.legal_holds and return it."""
    if not case_id.strip():
        raise HoldError("a hold needs a case id")
    now = now or datetime.now(timezone.utc)
    if until is not None and until < now.date():
        raise HoldError(f"--until {until} is already past")
    pseudonyms: frozenset[str] = frozenset()
    if msisdn is not None:
        if keys is None:
            raise HoldError("a subject hold needs the pseudonym keys")
        pseudonyms = frozenset(subject_pseudonyms(keys, msisdn).values())
    hold = Hold(f"hold-{uuid.uuid4().hex[:12]}", case_id, pseudonyms, account_id, data_from, data_to, until,
                actor, now, reason)
    hashchain.append_to_table(spark, settings, AUDIT_LEGAL_HOLDS, [{
        "hold_id": hold.hold_id, "event": "placed", "case_id": case_id,
        "subscriber_pseudonyms": json.dumps(sorted(pseudonyms)) if pseudonyms else None,
        "account_id": account_id, "data_from": data_from, "data_to": data_to, "until": until,
        "actor": actor, "at": now, "reason": reason,
    }])
    return hold


def release(spark: "SparkSession", settings: Settings, *, hold_id: str, actor: str, reason: str,
            now: datetime | None = None) -> Hold:
    """Release an active hold: append a `released` entry (who, when, why). Refuses unknown or ended holds."""
    if not reason.strip():
        raise HoldError("releasing a hold needs a reason")
    now = now or datetime.now(timezone.utc)
    entries = _entries(spark, settings)
    active = {h.hold_id: h for h in holds_from_entries(entries, on=now.date())}
    if hold_id not in active:
        known = {e["hold_id"] for e in entries}
        state = "no such hold" if hold_id not in known else "it is already released or lapsed"
        raise HoldError(f"cannot release {hold_id}: {state}")
    hold = active[hold_id]
    hashchain.append_to_table(spark, settings, AUDIT_LEGAL_HOLDS, [{
        "hold_id": hold_id, "event": "released", "case_id": hold.case_id, "subscriber_pseudonyms": None,
        "account_id": None, "data_from": None, "data_to": None, "until": None,
        "actor": actor, "at": now, "reason": reason,
    }])
    return hold


def verify_holds(spark: "SparkSession", settings: Settings) -> list[hashchain.Problem]:
    return hashchain.verify_table(spark, settings, AUDIT_LEGAL_HOLDS)
