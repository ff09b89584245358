"""What a data-subject request (jobs.governance.dsr) does to each registry table, decided by rule from its declaration.

Kept beside the registry, free of Spark, so DAG files can derive the tables a request changes at parse time.

    erase         tables holding subscriber_pseudonym or callee_pseudonym (not audit records): the subject's rows
                  as subscriber are deleted; where the subject is only the callee, callee_pseudonym is nulled
    erase_linked  row-level tables without a subscriber column keyed by call_id / event_id: rows of the
                  subject's own calls are deleted
    retained      audit records holding pseudonyms (accountability), financial records linked by call_id (tax
                  and commercial law), and tables with pseudonymous columns not keyed by the subscriber
                  (e.g. device pseudonyms only), which an MSISDN cannot find
    anonymous     silver / gold aggregates without personal columns: not personal data, left as they are
    not_personal  operational and audit metadata without personal data

A table added to the registry is classified by these rules without touching this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Iterable

from lake_layout.registry import Classification, RetentionTier, TableSpec
from lake_layout.tables import ALL_TABLES

SUBJECT_COLUMN = "subscriber_pseudonym"
CALLEE_COLUMN = "callee_pseudonym"
LINK_COLUMNS = ("call_id", "event_id")  # how a row-level table without a subscriber column points at a call
_PERSONAL = (Classification.PSEUDONYMOUS, Classification.PERSONAL, Classification.RESTRICTED)


class Treatment(str, Enum):
    ERASE = "erase"
    ERASE_LINKED = "erase_linked"
    RETAINED = "retained"
    ANONYMOUS = "anonymous"
    NOT_PERSONAL = "not_personal"


@dataclass(frozen=True)
class TableScope:
    spec: TableSpec
    treatment: Treatment
    reason: str
    link_column: str | None = None  # call_id / event_id for erase_linked and call-linked retained tables

    @property
    def exported(self) -> bool:
        """Whether an export includes the table: the subject's own rows or rows of the subject's calls."""
        return self.treatment in (Treatment.ERASE, Treatment.ERASE_LINKED) or (
            self.treatment is Treatment.RETAINED and self.link_column is not None)

    @property
    def changed_by_delete(self) -> bool:
        return self.treatment in (Treatment.ERASE, Treatment.ERASE_LINKED)


def table_scope(spec: TableSpec) -> TableScope:
    """What a data-subject request does to `spec` (see the module docstring for the rules)."""
    names = set(spec.column_names)
    personal = [c.name for c in spec.columns if c.classification in _PERSONAL]
    link = next((c for c in LINK_COLUMNS if c in names), None)
    if spec.retention_tier is RetentionTier.AUDIT:
        if personal:
            return TableScope(spec, Treatment.RETAINED, "audit record kept for accountability (GDPR art. 5(2), "
                              "17(3)(b)); holds the subject only as pseudonyms")
        return TableScope(spec, Treatment.NOT_PERSONAL, "audit metadata without personal data")
    if SUBJECT_COLUMN in names or CALLEE_COLUMN in names:
        return TableScope(spec, Treatment.ERASE, "holds the subject's pseudonym")
    if link is not None and spec.retention_tier is RetentionTier.FINANCIAL:
        return TableScope(spec, Treatment.RETAINED, f"financial record kept as commercial and tax law require "
                          f"(GDPR art. 17(3)(b), CCPA 1798.105(d)); linked to the subject only through {link}, which "
                          "no table maps to the subject once the erasure is done", link)
    if link is not None:
        return TableScope(spec, Treatment.ERASE_LINKED, f"row-level record of the subject's calls (by {link})", link)
    if personal:
        return TableScope(spec, Treatment.RETAINED, "holds pseudonymous data not keyed by the subscriber (e.g. "
                          f"{', '.join(personal)}): not found by MSISDN; review by hand if the request requires it")
    if spec.layer in ("silver", "gold"):
        return TableScope(spec, Treatment.ANONYMOUS, "aggregate without subscriber-level columns (anonymous)")
    return TableScope(spec, Treatment.NOT_PERSONAL, "operational metadata without personal data")


def dsr_scopes(tables: Iterable[TableSpec] = ALL_TABLES) -> list[TableScope]:
    return [table_scope(t) for t in tables]
