"""The access audit trail: every query and export, allowed or denied, as a hash-chained entry of audit.access_log.

    record_access(spark, settings, user=..., role=..., action="query", sql=..., tables=[...], columns=[...],
                  rows=12, allowed=True, reason=None)

Entries are appended through jobs.platform.hashchain (single writer per host, head anchor outside the table);
`voiplake audit verify` checks the chain. What a query read comes from its physical plan (`plan_reads`):
the file relations under its analyzed plan and their columns some operator references, so a view, a join,
a subquery or a direct `delta.`path`` read are all attributed to the registry tables underneath.
"""

from __future__ import annotations

import getpass
import json
import os
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from jobs.platform import hashchain
from lake_layout.config import Settings
from lake_layout.tables import ALL_TABLES, AUDIT_ACCESS_LOG

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def current_user(explicit: str | None = None) -> str:
    """The acting user: --as, else $VOIPLAKE_USER, else $USER, else the login name."""
    if explicit:
        return explicit
    for var in ("VOIPLAKE_USER", "USER"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


def _normalize(path: str) -> str:
    for prefix in ("file://", "file:"):
        if path.startswith(prefix):
            path = path[len(prefix):]
    return path.rstrip("/")


def _plan_nodes(node: Any) -> Iterator[Any]:
    """Every node of a (JVM) logical plan, its expressions' subqueries included, depth first."""
    yield node
    children, subqueries = node.children(), node.subqueries()
    for seq in (children, subqueries):
        for i in range(seq.size()):
            yield from _plan_nodes(seq.apply(i))


def plan_reads(df: "DataFrame", settings: Settings) -> tuple[list[str], list[str]]:
    """(tables, table.column list) a query reads, from its analyzed plan, mapped to registry tables by location.

    Tables are the file relations under the plan (views, joins, subqueries and direct delta.`path` reads
    alike); a location outside the registry is reported as its path. Columns are the relations' attributes
    that some operator references (so `count(*)` reads no column and `SELECT *` reads all)."""
    locations = {_normalize(spec.location(settings)): spec.name for spec in ALL_TABLES}
    nodes = list(_plan_nodes(df._jdf.queryExecution().analyzed()))
    referenced: set[int] = set()
    for node in nodes:
        refs = node.references().toSeq()
        referenced.update(refs.apply(i).exprId().id() for i in range(refs.size()))
    tables: set[str] = set()
    columns: set[str] = set()
    for node in nodes:
        if node.children().size() or node.getClass().getSimpleName() != "LogicalRelation":
            continue
        try:
            roots = node.relation().location().rootPaths()
        except Exception:  # a relation that is not over files
            continue
        output = node.output()
        used = [output.apply(j).name() for j in range(output.size()) if output.apply(j).exprId().id() in referenced]
        for k in range(roots.size()):
            path = _normalize(str(roots.apply(k)))
            name = locations.get(path) or next(
                (n for loc, n in locations.items() if path.endswith(loc.split("://")[-1])), path)
            tables.add(name)
            columns.update(f"{name}.{c}" for c in used)
    return sorted(tables), sorted(columns)


# dsr_delete: a data-subject erasure (jobs.governance.dsr) reads and deletes the subject's rows.
ACTIONS = ("query", "export", "dsr_delete")


def record_access(
    spark: "SparkSession", settings: Settings, *, user: str, role: str, action: str, sql: str,
    tables: Iterable[str], columns: Iterable[str], rows: int | None, allowed: bool, reason: str | None,
) -> dict[str, object]:
    """Append one entry to audit.access_log (hash-chained); returns the stored row."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")
    entry = {
        "accessed_at": datetime.now(timezone.utc), "user": user, "role": role, "action": action, "statement": sql,
        "tables": json.dumps(sorted(set(tables))), "columns": json.dumps(sorted(set(columns))),
        "row_count": rows, "allowed": allowed, "reason": reason,
    }
    return hashchain.append_to_table(spark, settings, AUDIT_ACCESS_LOG, [entry])[0]


def verify_access_log(spark: "SparkSession", settings: Settings) -> list[hashchain.Problem]:
    return hashchain.verify_table(spark, settings, AUDIT_ACCESS_LOG)
