"""`voiplake query | tables | lineage`: Spark SQL over the registry's tables as a role sees them (every read and
refusal recorded in audit.access_log), the registry's tables, and a table's upstream lineage graph."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Sequence

from jobs.cli.common import render
from lake_layout.access import DEFAULT_ROLE
from lake_layout.config import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from jobs.cli.common import Subparsers
    from lake_layout.registry import TableSpec


def register_tables(spark: "SparkSession", settings: Settings, *, role: str | None = None,
                    only: Sequence["TableSpec"] | None = None) -> list[str]:
    """Make every existing registry table (or those in `only`) queryable by its name (e.g. bronze.call_events).

    With a `role`, each table is registered as a view of only the columns the role may read
    (lake_layout.access); a table the role may read nothing of is not registered at all. Names registered
    before (e.g. for another role in this session) are dropped first, also those outside `only`.
    """
    from jobs.platform import lake
    from lake_layout.access import forbidden_columns, readable_columns
    from lake_layout.tables import ALL_TABLES

    wanted = {spec.name for spec in (ALL_TABLES if only is None else only)}
    registered = []
    for spec in ALL_TABLES:
        name, location = f"`{spec.layer}`.`{spec.table}`", spec.location(settings)
        if spark.catalog.databaseExists(spec.layer) and spark.catalog.tableExists(spec.name):
            # unregister only: the data lives at an external location
            kind = "VIEW" if spark.catalog.getTable(spec.name).tableType == "VIEW" else "TABLE"
            spark.sql(f"DROP {kind} {name}")
        if spec.name not in wanted or not lake.table_exists(spark, spec, settings):
            continue
        spark.sql(f"CREATE DATABASE IF NOT EXISTS `{spec.layer}`")
        if role is None or not forbidden_columns(spec, role):
            spark.sql(f"CREATE TABLE {name} USING DELTA LOCATION '{location}'")
        else:
            columns = readable_columns(spec, role)
            if not columns:
                continue
            select = ", ".join(f"`{c}`" for c in columns)
            spark.sql(f"CREATE VIEW {name} AS SELECT {select} FROM delta.`{location}`")
        registered.append(spec.name)
    return registered


def tables_named(sql: str) -> list["TableSpec"]:
    """Registry tables the SQL text names as layer.table (backticks allowed), in registry order."""
    import re

    from lake_layout.tables import ALL_TABLES

    text = sql.lower().replace("`", "")
    return [spec for spec in ALL_TABLES
            if re.search(rf"(?<![a-z0-9_.]){spec.layer}\s*\.\s*{spec.table}(?![a-z0-9_])", text)]


def explain_denial(sql: str, role: str) -> str | None:
    """If `sql` names a column above the role's clearance, say which and why (else None)."""
    import re

    from lake_layout.access import forbidden_columns
    from lake_layout.tables import ALL_TABLES

    from lake_layout.access import may_read_table

    for spec in tables_named(sql):
        if not may_read_table(spec, role):
            return f"{spec.name} is closed to role {role!r} (see lake_layout/access_policy.toml)"
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", sql))
    for spec in ALL_TABLES:
        if spec.table not in words:
            continue
        for column, level in forbidden_columns(spec, role).items():
            if column in words:
                return f"{spec.name}.{column} is {level.value}; role {role!r} may not read it (see lake_layout/access.py)"
    return None


def run_query(spark: "SparkSession", settings: Settings, sql: str, *, role: str | None = None) -> "DataFrame":
    """Run Spark SQL over the registry's tables as seen by `role` (None: every column)."""
    register_tables(spark, settings, role=role, only=tables_named(sql))  # reading every table's log costs seconds each
    return spark.sql(sql)


def query_command(spark: "SparkSession", settings: Settings, sql: str, *, role: str, user: str | None = None,
                  fmt: str = "table", limit: int | None = None) -> int:
    """`voiplake query`: run `sql` as `role`, print the result, and record the read (or the denial) in
    audit.access_log with the tables and columns the plan scans. Exit 0, or 2 when refused or failed.

    Besides the role's views, the plan itself is checked: a scan of a table closed to the role (e.g. through
    delta.`<path>`) is refused too."""
    from jobs.platform.access_log import current_user, plan_reads, record_access
    from lake_layout.access import AccessDenied, may_read_table
    from lake_layout.access import role as role_of

    who = current_user(user)

    def log(tables: Sequence[str], columns: Sequence[str], rows: int | None, reason: str | None, allowed: bool) -> None:
        record_access(spark, settings, user=who, role=role, action="query", sql=sql, tables=tables, columns=columns,
                      rows=rows, allowed=allowed, reason=reason)

    named = [spec.name for spec in tables_named(sql)]
    try:
        role_of(role)
        df = run_query(spark, settings, sql, role=role)
    except AccessDenied as exc:
        log(named, [], None, str(exc), False)
        print(f"query refused: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # AnalysisException, ParseException: a user error, not a crash
        denial = explain_denial(sql, role)
        reason = denial or f"failed: {str(exc).splitlines()[0]}"
        log(named, [], None, reason, denial is None)
        print(f"query refused: {denial}" if denial else f"query {reason}", file=sys.stderr)
        return 2
    tables, columns = plan_reads(df, settings)
    closed = [t for t in tables if "/" in t or not may_read_table(t, role)]  # a path: a scan outside the registry
    if closed:
        reason = f"{', '.join(closed)} closed to role {role!r} (see lake_layout/access_policy.toml)"
        log(tables, columns, None, reason, False)
        print(f"query refused: {reason}", file=sys.stderr)
        return 2
    limit = limit if limit is not None else (1000 if fmt == "table" else None)
    rows = (df.limit(limit) if limit is not None else df).collect()
    log(tables, columns, len(rows), None, True)
    print(render(df.columns, [tuple(r) for r in rows], fmt))
    return 0


# ----------------------------------------------------------------------------- command line

def _query_parser(sub: Subparsers) -> None:
    p = sub.add_parser("query", help="run Spark SQL over the registry's tables")
    p.add_argument("sql")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--limit", type=int, default=None, help="at most this many rows (default: all for csv/json, 1000 for table)")
    p.add_argument("--role", default=os.environ.get("VOIPLAKE_ROLE", DEFAULT_ROLE),
                   help="read as this role: only its tables and columns within its clearance are visible (lake_layout/access_policy.toml)")
    p.add_argument("--as", dest="as_user", default=None,
                   help="acting user recorded in audit.access_log (default: $VOIPLAKE_USER, else $USER)")


def _tables_parser(sub: Subparsers) -> None:
    sub.add_parser("tables", help="list the registry's tables with row counts and Delta versions")


def _lineage_parser(sub: Subparsers) -> None:
    p = sub.add_parser("lineage", help="the upstream graph of a table, down to the landing objects")
    p.add_argument("table")
    p.add_argument("--version", type=int, default=None, help="a Delta version of the table (default: its newest recorded)")
    p.add_argument("--format", choices=["text", "json"], default="text")


PARSERS: dict[str, Callable[[Subparsers], None]] = {
    "query": _query_parser, "tables": _tables_parser, "lineage": _lineage_parser}


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run `voiplake <args.command>`, one of PARSERS' commands; its exit status."""
    from jobs.platform.spark import build_spark

    spark = build_spark(settings, app_name=f"voiplake {args.command}")
    if args.command == "query":
        return query_command(spark, settings, args.sql, role=args.role, user=args.as_user, fmt=args.format, limit=args.limit)
    elif args.command == "lineage":
        from jobs.platform.lineage import render_graph, upstream_graph

        try:
            graph = upstream_graph(spark, settings, args.table, version=args.version)
        except KeyError as exc:
            print(str(exc).strip('"'), file=sys.stderr)
            return 2
        print(json.dumps(graph.to_json(), indent=2, default=str) if args.format == "json" else render_graph(graph))
    elif args.command == "tables":
        from jobs.platform import lake
        from lake_layout.tables import ALL_TABLES

        rows = []
        for spec in ALL_TABLES:
            exists = lake.table_exists(spark, spec, settings)
            rows.append((
                spec.name, lake.read_table(spark, spec, settings).count() if exists else None,
                lake.table_version(spark, spec, settings) if exists else None,
                spec.retention_tier.value, ",".join(spec.partition_by), spec.location(settings),
            ))
        print(render(["table", "rows", "delta_version", "retention_tier", "partitioned_by", "location"], rows, "table"))
    return 0
