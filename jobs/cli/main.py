"""`voiplake` command line: generate telemetry, run the demo day, query and list tables.

    voiplake generate --date 2026-11-24 --events 200000 --seed 7 [--faults] [--scenarios]
    voiplake ingest --date 2026-11-24            # the bronze job directly, without Airflow
    voiplake publish-stats --date 2026-11-24      # differentially private public statistics (budget ledger)
    voiplake demo --date 2026-11-24               # object store + generate + Airflow DAG + summary
    voiplake bench --date 2026-11-24 --events 1000000 [--scale [--scale-sizes 1000000,3000000,10000000]]   # jobs.pipeline.bench
    voiplake summary --date 2026-11-24
    voiplake privacy-audit --date 2026-11-24 [--targets 200] [--known-calls 3]   # exit 3 when a published table fails
    voiplake query "SELECT platform, count(*) FROM bronze.call_events GROUP BY 1" [--format csv|json] [--role R] [--as USER]
    voiplake audit verify                          # access log + landing integrity chains, objects re-hashed (exit 5 on a problem)
    voiplake tables
    voiplake retention run --as-of 2027-06-01 [--dry-run]   # purge expired data per lake_layout/retention_policy.toml
    voiplake schema check [--new jobs/telemetry/schemas/v3.proto]   # compatible with every in-field version (exit 1 if not)
    voiplake report lineage --out DIR [--from 2026-11-01 --to 2026-11-30]   # auditors' HTML report (lineage graph, audit records)
    voiplake dashboard --out DIR [--from 2026-11-01 --to 2026-11-30] [--role noc_operator]   # static HTML: usage + anomaly plots, filters
    voiplake capacity --date 2026-11-24                # SIP trunk busy hour, peak calls, Erlang B channels
    voiplake extract cost-allocation --period 2026-11 --out costs.csv   # finance: costs by account (.parquet too)
    voiplake support-triggers --date 2026-11-24        # quota / quality triggers, delivered to the file or webhook sink
    voiplake billing --date 2026-11-24                 # B2B billing: rate the open period, adjustments for late calls
    voiplake extract billing --period 2026-11 --out billing.csv   # billing lines, reconciled with silver (.parquet too)
    voiplake account-usage --date 2026-11-24           # usage per B2B account and day (gold.account_usage_daily)
    voiplake extract usage-report --reseller northwind --from 2026-11-01 --to 2026-11-30 --out usage.csv
    voiplake api token --reseller northwind            # issue a reseller's CRM API token (printed once, hash kept)
    voiplake api serve [--port 8765]                   # read-only CRM API on 127.0.0.1 (docs at /docs)
    voiplake api openapi --out docs/crm_api.openapi.json
    voiplake anomalies --date 2026-11-24               # gold.anomalies, SIEM files / syslog, device quarantine
    voiplake quarantine list [--all] | release --device PSEUDONYM --reason TEXT
    voiplake keys rotate                          # new KEK version; re-wrap the data keys (tables untouched)
    voiplake keys decrypt-check --date 2026-11-24 --role security   # every restricted cell decrypts (counts only)
    voiplake forensics timeline --subscriber +49... --from 2026-11-01 --to 2026-11-30 [--out t.jsonl]   # or --call-id
    voiplake forensics drill --days 30 [--subscriber +49...] [--as-of 2026-11-24]   # exit 7 if incomplete
    voiplake dsr export --subscriber +4915112345678 --request-id DSR-42 [--out DIR]   # the subject's data, JSON + CSV
    voiplake dsr delete --subscriber +4915112345678 --request-id DSR-42   # erase + VACUUM; exit 8 under a legal hold

Spark's and Airflow's logs go to stderr; stdout carries only the command's result.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from jobs.generator.landing import generate_to_landing
from lake_layout.access import DEFAULT_ROLE
from lake_layout.config import PROJECT_ROOT, Settings, load_settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from lake_layout.registry import TableSpec


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {value!r}") from None


# ----------------------------------------------------------------------------- query

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


def _cell(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def render(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    """Rows as an aligned text table, CSV (header then rows, nothing else) or a JSON array of objects."""
    cells = [[_cell(v) for v in row] for row in rows]
    if fmt == "json":
        return json.dumps([dict(zip(columns, row)) for row in cells], default=str, indent=1)
    if fmt == "csv":
        import io

        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if v is None else v for v in row] for row in cells])
        return buf.getvalue().rstrip("\n")
    text = [[("NULL" if v is None else str(v)) for v in row] for row in cells]
    widths = [max([len(c)] + [len(r[i]) for r in text]) for i, c in enumerate(columns)]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [line, "| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + " |", line]
    out += ["| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |" for r in text]
    out += [line, f"({len(text)} row{'s' if len(text) != 1 else ''})"]
    return "\n".join(out)


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


def record_export(settings: Settings, *, user: str | None, role: str, statement: str, tables: Sequence[str],
                  columns: Sequence[str], rows: int | None, allowed: bool, reason: str | None) -> None:
    """Record an extract (or its refusal) in audit.access_log as action "export"."""
    from jobs.platform.access_log import current_user, record_access
    from jobs.platform.spark import build_spark

    record_access(build_spark(settings, app_name="voiplake audit"), settings, user=current_user(user), role=role,
                  action="export", sql=statement, tables=tables, columns=columns, rows=rows, allowed=allowed, reason=reason)


def export_allowed(settings: Settings, *, user: str | None, role: str, statement: str, tables: Sequence[str]) -> bool:
    """True when the policy opens every exported table to `role`; a refusal is logged and printed."""
    from lake_layout.access import AccessDenied, may_read_table

    try:
        closed = [t for t in tables if not may_read_table(t, role)]
        reason = f"{', '.join(closed)} closed to role {role!r} (see lake_layout/access_policy.toml)" if closed else None
    except AccessDenied as exc:
        reason = str(exc)
    if reason is None:
        return True
    record_export(settings, user=user, role=role, statement=statement, tables=tables, columns=[], rows=None,
                  allowed=False, reason=reason)
    print(f"export refused: {reason}", file=sys.stderr)
    return False


def forensics_command(settings: Settings, args: argparse.Namespace) -> int:
    """`voiplake forensics export | handover | verify | timeline | drill` (jobs.governance.forensics, jobs.governance.forensics_timeline,
    jobs.governance.forensics_drill); verify exits 6 listing each problem, drill exits 7 when the retrieval is incomplete."""
    from jobs.governance import forensics
    from jobs.platform.keys import load_key_material
    from jobs.platform.spark import build_spark
    from lake_layout.access import AccessDenied

    if args.forensics_command in ("timeline", "drill"):
        return forensics_investigate_command(settings, args)
    if args.forensics_command == "verify":
        trusted = forensics.trusted_public_key_path(Path(settings.forensics.signing_key))
        log = None
        if not args.offline:
            case_id = json.loads((args.bundle / forensics.MANIFEST).read_bytes()).get("case_id", "")
            log = forensics.custody_log_entries(build_spark(settings, app_name="voiplake forensics verify"), settings, case_id)
        report = forensics.verify(args.bundle, trusted_public_key=trusted.read_bytes() if trusted.exists() else None,
                                  custody_log=log)
        print(forensics.render_verify(report))
        return 0 if report.ok else forensics.VERIFY_FAILED_EXIT
    try:
        if args.forensics_command == "handover":
            entry = forensics.handover(build_spark(settings, app_name="voiplake forensics handover"), settings,
                                       args.bundle, from_party=args.from_party, to_party=args.to_party,
                                       note=args.note, event=args.event)
            print(json.dumps(entry, indent=2))
            return 0
        handler = args.handler or os.environ.get("VOIPLAKE_USER") or os.environ.get("USER", "unknown")
        report = forensics.export(
            build_spark(settings, app_name="voiplake forensics export"), settings,
            load_key_material(Path(settings.keys.file), create=False), case_id=args.case, msisdn=args.subject,
            start=args.date_from, end=args.date_to, out_dir=args.out or Path(settings.forensics.bundles_dir),
            handler=handler, role=args.role)
    except (AccessDenied, forensics.ForensicsError) as exc:
        print(f"forensics {args.forensics_command} refused: {str(exc).strip(chr(34))}", file=sys.stderr)
        return 2
    print(json.dumps({"bundle": report.bundle, "case_id": report.case_id, "manifest_sha256": report.manifest_sha256,
                      "files": report.files, "skipped_tables": report.skipped_tables}, indent=2, default=str))
    return 0


RETENTION_COLUMNS = ("step", "action", "table_name", "jurisdiction", "retention_days", "rows_removed", "files_removed",
                     "delta_version", "hold_ids", "predicate", "detail")


def retention_command(settings: Settings, args: argparse.Namespace) -> int:
    """`voiplake retention run --as-of D [--dry-run]` (jobs.governance.retention): print the actions (the plan on a dry run)
    as a table on stdout and the totals on stderr; exit 2 when the policy file is unusable."""
    from jobs.pipeline.runner import run_retention
    from lake_layout.retention import RetentionPolicyError

    try:
        report = run_retention(as_of=args.as_of, dry_run=args.dry_run, policy_file=args.policy, settings=settings)
    except RetentionPolicyError as exc:
        print(f"retention refused: {exc}", file=sys.stderr)
        return 2
    print(render(RETENTION_COLUMNS, [tuple(a[c] for c in RETENTION_COLUMNS) for a in report["actions"]], "table"))
    verb = "would remove" if report["dry_run"] else "removed"
    print(f"retention {report['run_id']} as of {report['as_of']}: {verb} {report['rows_removed']:,} rows, "
          f"{report['objects_expired']:,} landing objects; vacuumed {report['files_removed']:,} files; kept under hold "
          f"{report['rows_held']:,} rows, {report['objects_held']:,} objects; deferred days {report['deferred_days']}; "
          f"{report['seconds']}s", file=sys.stderr)
    return 0


def hold_command(settings: Settings, args: argparse.Namespace) -> int:
    """`voiplake hold add | release | list` (jobs.governance.legal_holds): place and release legal holds, audited in the
    hash-chained audit.legal_holds. Placing and releasing need a role with `may_hold`; exit 2 when refused."""
    from jobs.governance import legal_holds
    from jobs.platform.access_log import current_user
    from jobs.platform.keys import load_key_material
    from jobs.platform.spark import build_spark
    from lake_layout.access import AccessDenied, require_hold_authority

    who = current_user(args.as_user)
    try:
        if args.hold_command != "list":
            if not args.role:
                raise AccessDenied("say which role you act as: --role (or $VOIPLAKE_ROLE)")
            require_hold_authority(args.role)
        spark = build_spark(settings, app_name=f"voiplake hold {args.hold_command}")
        if args.hold_command == "add":
            keys = load_key_material(Path(settings.keys.file), create=False) if args.subject else None
            hold = legal_holds.place(spark, settings, keys, case_id=args.case, msisdn=args.subject,
                                     account_id=args.account, data_from=args.date_from, data_to=args.date_to,
                                     until=args.until, actor=f"{who} ({args.role})", reason=args.reason)
            print(f"placed {hold.describe()}")
            return 0
        if args.hold_command == "release":
            hold = legal_holds.release(spark, settings, hold_id=args.hold_id, actor=f"{who} ({args.role})",
                                       reason=args.reason)
            print(f"released {hold.describe()}")
            return 0
    except (AccessDenied, legal_holds.HoldError) as exc:
        print(f"hold {args.hold_command} refused: {str(exc).strip(chr(34))}", file=sys.stderr)
        return 2
    rows = legal_holds.all_holds(spark, settings)
    rows = rows if args.all else [r for r in rows if r["state"] == "active"]
    columns = ["hold_id", "case_id", "state", "subject", "account_id", "data_from", "data_to", "until", "placed_by",
               "released_by", "release_reason"]
    print(render(columns, [tuple(r[c] for c in columns) for r in rows], "table"))
    return 0


def forensics_investigate_command(settings: Settings, args: argparse.Namespace) -> int:
    """`voiplake forensics timeline` (table on stdout, --out JSON lines) and `voiplake forensics drill` (report on
    stdout and build/reports/forensics_drill.json, exit 7 when incomplete). Both are logged in audit.access_log."""
    from jobs.governance import forensics_drill, forensics_timeline
    from jobs.platform.access_log import current_user
    from jobs.platform.keys import load_key_material
    from jobs.pipeline.runner import REPORTS_DIR
    from jobs.platform.spark import build_spark
    from lake_layout.access import AccessDenied

    spark = build_spark(settings, app_name=f"voiplake forensics {args.forensics_command}")
    keys = load_key_material(Path(settings.keys.file), create=False)
    user = current_user(args.as_user)
    try:
        if args.forensics_command == "timeline":
            timeline = forensics_timeline.run(spark, settings, keys, call_id=args.call_id, msisdn=args.subscriber,
                                              start=args.date_from, end=args.date_to, role=args.role, user=user)
            if args.out:
                forensics_timeline.write_jsonl(timeline.entries, args.out)
                print(f"timeline: {len(timeline.entries)} entries written to {args.out}", file=sys.stderr)
            print(render(*forensics_timeline.render_rows(timeline.entries), "table"))
            for name, why in timeline.skipped_tables.items():
                print(f"skipped {name}: {why}", file=sys.stderr)
            return 0
        drill = forensics_drill.run(spark, settings, keys, msisdn=args.subscriber, days=args.days, as_of=args.as_of,
                                    role=args.role, user=user, report_path=REPORTS_DIR / "forensics_drill.json")
    except (AccessDenied, forensics_timeline.TimelineError, ValueError) as exc:
        print(f"forensics {args.forensics_command} refused: {str(exc).strip(chr(34))}", file=sys.stderr)
        return 2
    print(forensics_drill.render(drill))
    return 0 if drill.complete else forensics_drill.INCOMPLETE_EXIT


def dsr_command(settings: Settings, args: argparse.Namespace) -> int:
    """`voiplake dsr export | delete` (jobs.governance.dsr): prints the receipt; exit 2 when the request or role is refused,
    exit 8 (jobs.governance.dsr.REFUSED_EXIT) when a legal hold covers the subject's data (nothing deleted)."""
    from jobs.governance import dsr
    from jobs.platform.access_log import current_user
    from jobs.pipeline.runner import run_dsr
    from lake_layout.access import AccessDenied

    try:
        report = run_dsr(action=args.dsr_command, msisdn=args.subscriber, request_id=args.request_id,
                         actor=current_user(args.as_user), role=args.role, out=getattr(args, "out", None),
                         settings=settings)
    except dsr.DsrRefused as exc:
        print(str(exc), file=sys.stderr)
        return dsr.REFUSED_EXIT
    except (AccessDenied, dsr.DsrError) as exc:
        print(f"dsr {args.dsr_command} refused: {str(exc).strip(chr(34))}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2, default=str))
    return 0


def audit_verify_command(settings: Settings) -> int:
    """Verify audit.access_log and audit.landing_integrity (chains, head anchors, landing objects re-hashed).

    Prints one line per problem; exit 0 when everything is intact, 5 otherwise. Landing objects are re-read
    from the object store: the embedded S3Proxy is started for the check if nothing listens on its port."""
    from infra.objectstore import S3ProxyServer, _port_open
    from jobs.platform.access_log import verify_access_log
    from jobs.ingest.landing_integrity import verify_landing
    from jobs.governance.legal_holds import verify_holds
    from jobs.platform.spark import build_spark

    spark = build_spark(settings, app_name="voiplake audit verify")
    access = verify_access_log(spark, settings)
    holds = verify_holds(spark, settings)
    started_here = None if _port_open(settings.object_store.port) else S3ProxyServer(settings.object_store).start()
    try:
        landing, objects = verify_landing(spark, settings)
    finally:
        if started_here is not None:
            started_here.stop()
    print(f"audit.access_log: {'intact' if not access else f'{len(access)} problem(s)'}")
    for p in access:
        print(f"  {p}")
    print(f"audit.legal_holds: {'intact' if not holds else f'{len(holds)} problem(s)'}")
    for p in holds:
        print(f"  {p}")
    print(f"audit.landing_integrity: {objects} object(s) re-hashed, {'intact' if not landing else f'{len(landing)} problem(s)'}")
    for p in landing:
        print(f"  {p}")
    return 0 if not access and not holds and not landing else 5


# ----------------------------------------------------------------------------- summary

def day_summary(spark: "SparkSession", settings: Settings, day: date) -> dict[str, Any]:
    """What the lake holds for one upload date, read back from the manifest and quarantine tables."""
    from pyspark.sql import functions as F

    from jobs.platform import lake
    from lake_layout.tables import (
        ALL_TABLES,
        BRONZE_INGESTED_OBJECTS,
        BRONZE_QUARANTINE,
        GOLD_BILLING_USAGE,
        GOLD_HOURLY_GEO_USAGE,
        SILVER_CALLS,
    )

    manifest = lake.read_table(spark, BRONZE_INGESTED_OBJECTS, settings).where(F.col("upload_date") == F.lit(day))
    totals = manifest.agg(
        F.count("*").alias("objects"), F.sum("records_received").alias("received"),
        F.sum("records_accepted").alias("accepted"), F.sum("records_quarantined").alias("quarantined"),
    ).first()
    by_status = {r["status"]: r["count"] for r in manifest.groupBy("status").count().collect()}
    quarantine = lake.read_table(spark, BRONZE_QUARANTINE, settings).where(F.col("upload_date") == F.lit(day))
    by_reason = {r["reason"]: int(r["n"]) for r in quarantine.groupBy("reason").agg(F.sum("records").alias("n")).collect()}
    specs = [t for t in ALL_TABLES if lake.table_exists(spark, t, settings)]
    calls = lake.read_table(spark, SILVER_CALLS, settings).where(F.col("call_date") == F.lit(day)) if SILVER_CALLS in specs else None
    by_call_status = {r["status"]: int(r["count"]) for r in calls.groupBy("status").count().collect()} if calls is not None else {}
    gold_rows = lake.read_table(spark, GOLD_HOURLY_GEO_USAGE, settings).where(F.col("call_date") == F.lit(day)) if GOLD_HOURLY_GEO_USAGE in specs else None
    gold = gold_rows.agg(F.count("*").alias("rows"), F.sum("calls").alias("calls"), F.min("distinct_subscribers").alias("min_subs")).first() if gold_rows is not None else None
    by_level = {int(r["generalization_level"]): int(r["count"]) for r in gold_rows.groupBy("generalization_level").count().collect()} if gold_rows is not None else {}
    n_calls = sum(by_call_status.values())
    published = int(gold["calls"] or 0) if gold else 0
    billing: dict[str, Any] = {}
    if GOLD_BILLING_USAGE in specs:
        from jobs.business.billing_usage import calendar_of

        period = calendar_of(settings).period_of(datetime.combine(day, datetime.max.time(), tzinfo=timezone.utc))
        b = (lake.read_table(spark, GOLD_BILLING_USAGE, settings).where(F.col("invoice_period") == period)
             .agg(F.countDistinct("account_id").alias("accounts"), F.sum("calls").alias("calls"),
                  F.sum("billable_seconds").alias("billable"), F.sum("included_seconds").alias("included"),
                  F.sum("charge_minor").alias("charge"), F.max("currency").alias("currency")).first())
        billing = {"invoice_period": period, "accounts": int(b["accounts"]), "calls": int(b["calls"] or 0),
                   "billable_minutes": round((b["billable"] or 0) / 60, 1), "included_minutes": round((b["included"] or 0) / 60, 1),
                   "charge_minor": int(b["charge"] or 0), "currency": b["currency"]}
    return {
        "billing": billing,
        "silver_calls": n_calls,
        "silver_calls_by_status": dict(sorted(by_call_status.items())),
        "gold_rows": int(gold["rows"]) if gold else 0,
        "gold_rows_by_generalization_level": dict(sorted(by_level.items())),
        "gold_min_distinct_subscribers": int(gold["min_subs"]) if gold and gold["min_subs"] is not None else None,
        "k_anonymity": settings.privacy.k_anonymity,
        "gold_calls_published": published,
        "suppressed_share": round((n_calls - published) / n_calls, 4) if n_calls else None,
        "upload_date": day.isoformat(),
        "objects_received": int(totals["objects"] or 0),
        "objects_by_status": dict(sorted(by_status.items())),
        "events_received": int(totals["received"] or 0),
        "events_accepted": int(totals["accepted"] or 0),
        "events_quarantined": int(totals["quarantined"] or 0),
        "quarantined_by_reason": dict(sorted(by_reason.items(), key=lambda kv: -kv[1])),
        "tables": {s.name: {"location": s.location(settings), "delta_version": lake.table_version(spark, s, settings)} for s in specs},
    }


def print_summary(summary: dict[str, Any]) -> None:
    print(f"voiplake daily pipeline for upload date {summary['upload_date']}")
    print(f"  objects received     {summary['objects_received']:>10,}   {summary['objects_by_status']}")
    print(f"  events received      {summary['events_received']:>10,}")
    print(f"  events accepted      {summary['events_accepted']:>10,}")
    print(f"  events quarantined   {summary['events_quarantined']:>10,}")
    for reason, n in summary["quarantined_by_reason"].items():
        print(f"      {reason:<28}{n:>8,}")
    balanced = summary["events_received"] == summary["events_accepted"] + summary["events_quarantined"]
    print(f"  received = accepted + quarantined: {'yes' if balanced else 'NO'}")
    print(f"  silver.calls on call date {summary['upload_date']}: {summary['silver_calls']:,}  {summary['silver_calls_by_status']}")
    print(f"  gold.hourly_geo_usage rows: {summary['gold_rows']:,} (k = {summary['k_anonymity']}, smallest row "
          f"{summary['gold_min_distinct_subscribers']} subscribers; rows by generalization level {summary['gold_rows_by_generalization_level']})")
    share = summary["suppressed_share"]
    print(f"  calls suppressed by k-anonymity: {share:.2%}" if share is not None else "  calls suppressed: n/a")
    if summary.get("billing"):
        b = summary["billing"]
        print(f"  billing {b['invoice_period']} so far: {b['accounts']} B2B accounts, {b['calls']:,} billable calls, "
              f"{b['billable_minutes']:,} billable minutes ({b['included_minutes']:,} included), "
              f"charges {b['charge_minor'] / 100:,.2f} {b['currency']}  (voiplake extract billing --period {b['invoice_period']} --out F)")
    print("  tables:")
    for name, info in summary["tables"].items():
        print(f"      {name:<30} v{info['delta_version']}  {info['location']}")
    print('  query: voiplake query "SELECT geo_level, sum(calls) calls, count(*) rows FROM gold.hourly_geo_usage GROUP BY 1"')
    print("  lineage: voiplake lineage gold.hourly_geo_usage")


# ----------------------------------------------------------------------------- demo

def airflow_env(settings: Settings, airflow_home: Path | None = None) -> dict[str, str]:
    """The environment of an Airflow child process: its home and DAG folder, and every setting of `settings` as a
    VOIPLAKE_* override, so the DAG's tasks run with exactly this process's settings."""
    from lake_layout.config import settings_env

    env = dict(os.environ)
    env["AIRFLOW_HOME"] = str(airflow_home or PROJECT_ROOT / "build" / "airflow")
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(PROJECT_ROOT / "dags")
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    env.update(settings_env(settings))
    return env


def airflow_dags_test(settings: Settings, dag_id: str, day: date, *, log: Path, airflow_home: Path | None = None) -> None:
    """Run a DAG for one logical date in-process through Airflow (`airflow dags test`) on its SQLite DB."""
    airflow = str(Path(sys.executable).with_name("airflow"))
    env = airflow_env(settings, airflow_home)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        subprocess.run([airflow, "db", "migrate"], env=env, stdout=out, stderr=subprocess.STDOUT, check=True)
        result = subprocess.run([airflow, "dags", "test", dag_id, day.isoformat()], env=env, stdout=out, stderr=subprocess.STDOUT)
    text = log.read_text()
    if result.returncode != 0 or "state=success" not in text:
        raise SystemExit(f"DAG {dag_id} for {day} did not succeed; Airflow's log: {log}")


DAILY_DAG = "voip_daily"


def demo(settings: Settings, day: date, *, events: int, seed: int, faults: bool) -> dict[str, Any]:
    from infra.objectstore import S3ProxyServer, _port_open

    started_here = None
    if not _port_open(settings.object_store.port):
        started_here = S3ProxyServer(settings.object_store).start()
        print(f"object store: S3Proxy on {settings.object_store.endpoint}", file=sys.stderr)
    try:
        t0 = time.monotonic()
        gen = generate_to_landing(settings, day, events=events, seed=seed, faults=faults)
        print(f"generated {gen['events']:,} events in {gen['objects']:,} objects "
              f"({gen['retried_objects']} retried uploads, faulty objects {gen['faulty_objects']}, "
              f"{gen['bad_records']} bad records) -> {gen['landing']} "
              f"[{gen['generate_seconds']}s generate, {gen['upload_seconds']}s upload]")
        t1 = time.monotonic()
        airflow_dags_test(settings, DAILY_DAG, day, log=PROJECT_ROOT / "build" / "reports" / f"airflow-{DAILY_DAG}-{day}.log")
        dag_seconds = time.monotonic() - t1
        from jobs.platform.spark import build_spark

        spark = build_spark(settings, app_name="voiplake summary")
        summary = day_summary(spark, settings, day)
        summary["dag_seconds"] = round(dag_seconds, 1)
        summary["total_seconds"] = round(time.monotonic() - t0, 1)
        print_summary(summary)
        print(f"  Airflow DAG {DAILY_DAG} took {summary['dag_seconds']}s; demo total {summary['total_seconds']}s")
        return summary
    finally:
        if started_here is not None:
            started_here.stop()


# ----------------------------------------------------------------------------- privacy audit

def privacy_audit_command(settings: Settings, day: date, *, targets: int | None, known_calls: int | None) -> int:
    """Run the re-identification audit, print its summary; 0 if every published table passed, else 3 with the reasons
    on stderr (which table, and why)."""
    from jobs.privacy.audit import EXIT_AUDIT_FAILED
    from jobs.pipeline.runner import run_privacy_audit

    report = run_privacy_audit(audit_date=day, targets=targets, known_calls=known_calls, settings=settings)
    print(f"privacy audit for {report['audit_date']} (run {report['run_id']}): {'PASS' if report['passed'] else 'FAIL'}")
    for t in report["tables"]:
        verdict = ("PASS" if t["passed"] else "FAIL") if t["published"] else "not published"
        risk = "n/a" if t["max_prosecutor_risk"] is None else f"{t['max_prosecutor_risk']:.4g}"
        unique = "n/a" if t["unique_share"] is None else f"{t['unique_share']:.1%}"
        print(f"  {t['table_name']:<26} {t['method']:<21} targets {t['targets']:>4}  unique {unique:>6}  "
              f"max risk {risk:>6}  k ours/pycanon {t['k_min_ours']}/{t['k_min_independent']}  {verdict}")
    print(f"  report: {report['report_path']}  ({report['seconds'].get('total')}s)")
    for failure in report["failures"]:
        print(f"privacy audit failed: {failure}", file=sys.stderr)
    return 0 if report["passed"] else EXIT_AUDIT_FAILED


# ----------------------------------------------------------------------------- capacity and finance

CAPACITY_COLUMNS = ("call_date", "trunk_group", "region", "busy_hour", "busy_hour_erlangs", "busy_hour_calls",
                    "peak_concurrent_calls", "peak_at", "calls", "blocking", "channels_required")


def capacity_command(settings: Settings, day: date) -> int:
    """Recompute gold.capacity_busy_hour for `day` and print its rows (one per trunk group)."""
    from pyspark.sql import functions as F

    from jobs.platform import lake
    from jobs.pipeline.runner import run_capacity_busy_hour
    from jobs.platform.spark import build_spark
    from lake_layout.tables import GOLD_CAPACITY_BUSY_HOUR

    report = run_capacity_busy_hour(call_dates=[day], logical_date=day, settings=settings)
    spark = build_spark(settings, app_name="voiplake capacity")
    rows = (lake.read_table(spark, GOLD_CAPACITY_BUSY_HOUR, settings).where(F.col("call_date") == F.lit(day))
            .orderBy("region", "trunk_group").select(*CAPACITY_COLUMNS).collect())
    cells = [tuple(round(v, 3) if isinstance(v, float) else v for v in r) for r in rows]
    print(render(CAPACITY_COLUMNS, cells, "table"))
    print(f"capacity for {day}: days computed {report['call_dates']}, {report['calls_read']:,} silver calls read, "
          f"{report['seconds']}s", file=sys.stderr)
    return 0


def extract_cost_allocation_command(settings: Settings, period: str, out: Path, *, costs_file: Path | None = None,
                                    user: str | None = None, role: str = "billing") -> int:
    """Allocate `period`'s costs (gold.cost_allocation) and write finance's extract; 2 if the input is unusable
    or the role may not read gold.cost_allocation. The export is recorded in audit.access_log."""
    from lake_layout.tables import GOLD_COST_ALLOCATION

    statement = f"extract cost-allocation --period {period} --out {out}"
    if not export_allowed(settings, user=user, role=role, statement=statement, tables=[GOLD_COST_ALLOCATION.name]):
        return 2
    from jobs.business.cost_allocation import CostInputError, Period, extract_rows, write_extract
    from jobs.pipeline.runner import run_cost_allocation
    from jobs.platform.spark import build_spark

    try:
        report = run_cost_allocation(period=period, costs_file=costs_file, settings=settings)
    except (CostInputError, ValueError) as exc:
        print(f"cost allocation refused: {exc}", file=sys.stderr)
        return 2
    rows = extract_rows(build_spark(settings, app_name="voiplake extract"), settings, Period(period))
    write_extract(rows, out)
    record_export(settings, user=user, role=role, statement=statement, tables=[GOLD_COST_ALLOCATION.name],
                  columns=[f"{GOLD_COST_ALLOCATION.name}.{c}" for c in (rows[0] if rows else {})], rows=len(rows),
                  allowed=True, reason=None)
    for center, info in report["cost_centers"].items():
        status = "exact" if info["input_minor"] == info["allocated_minor"] else "MISMATCH"
        print(f"{center:<14} {info['currency']} input {info['input_minor']:>12,} allocated {info['allocated_minor']:>12,} "
              f"({status}) to {info['accounts']} accounts")
    print(f"wrote {len(rows)} rows to {out} (costs {report['costs_file']} sha256 {report['costs_sha256'][:12]})")
    return 0


def billing_command(settings: Settings, day: date) -> int:
    """Rate the open billing period up to `day` (and bill late calls of closed periods) and print the invoices."""
    from jobs.business.billing_usage import calendar_of
    from jobs.pipeline.runner import run_billing_usage

    calendar = calendar_of(settings)
    first = calendar.utc_dates(calendar.period_of(datetime.combine(day, datetime.max.time(), tzinfo=timezone.utc)))[0]
    days = [first + timedelta(days=i) for i in range((day - first).days + 1)]
    report = run_billing_usage(call_dates=days, logical_date=day, settings=settings)
    print(json.dumps(report, indent=2, sort_keys=True, default=str))
    return 0


def extract_billing_command(settings: Settings, period: str, out: Path, *, user: str | None = None,
                            role: str = "billing") -> int:
    """Write the reconciled billing extract of usage `period`; 2 if it does not reconcile with silver or the
    role may not read gold.billing_rated_calls. The export is recorded in audit.access_log."""
    from jobs.business.billing_usage import EXTRACT_COLUMNS, ReconciliationError, extract
    from jobs.platform.spark import build_spark
    from lake_layout.tables import GOLD_BILLING_RATED_CALLS

    statement = f"extract billing --period {period} --out {out}"
    if not export_allowed(settings, user=user, role=role, statement=statement, tables=[GOLD_BILLING_RATED_CALLS.name]):
        return 2

    try:
        manifest = extract(build_spark(settings, app_name="voiplake extract billing"), settings, period, out)
    except (ReconciliationError, ValueError) as exc:
        print(f"billing extract refused: {exc}", file=sys.stderr)
        return 2
    record_export(settings, user=user, role=role, statement=statement, tables=[GOLD_BILLING_RATED_CALLS.name],
                  columns=[f"{GOLD_BILLING_RATED_CALLS.name}.{c}" for c in EXTRACT_COLUMNS], rows=manifest.lines,
                  allowed=True, reason=None)
    print(f"wrote {manifest.lines:,} billing lines of {manifest.accounts} accounts to {out}: "
          f"{manifest.call_minutes} call minutes (= silver), charges {manifest.charge_minor:,} {manifest.currency} minor units; "
          f"manifest {out.name}.manifest.json")
    return 0


# ----------------------------------------------------------------------------- resellers and the CRM API

def account_usage_command(settings: Settings, day: date) -> int:
    """Recompute gold.account_usage_daily for `day` and print the run's report."""
    from jobs.pipeline.runner import run_account_usage

    print(json.dumps(run_account_usage(call_dates=[day], logical_date=day, settings=settings), indent=2, default=str))
    return 0


def extract_usage_report_command(settings: Settings, reseller_id: str, date_from: date, date_to: date, out: Path,
                                 *, user: str | None = None, role: str = "billing") -> int:
    """Write a reseller's usage report (only its accounts, through jobs.business.account_usage.reseller_usage); 2 on a bad
    reseller, range or output name, or a role that may not read gold.account_usage_daily. Recorded in audit.access_log."""
    from lake_layout.tables import GOLD_ACCOUNT_USAGE_DAILY

    statement = f"extract usage-report --reseller {reseller_id} --from {date_from} --to {date_to} --out {out}"
    if not export_allowed(settings, user=user, role=role, statement=statement, tables=[GOLD_ACCOUNT_USAGE_DAILY.name]):
        return 2
    from jobs.business.account_usage import usage_report_rows, write_usage_report
    from jobs.platform.spark import build_spark
    from lake_layout.resellers import PolicyError, UnknownReseller, load_policy

    try:
        reseller = load_policy(settings.crm_api.resellers_file).reseller(reseller_id)
        if date_from > date_to or out.suffix not in (".csv", ".parquet"):
            raise ValueError(f"need --from <= --to and an --out ending in .csv or .parquet, got {date_from}..{date_to}, {out}")
    except (PolicyError, UnknownReseller, ValueError) as exc:
        print(f"usage report refused: {exc}", file=sys.stderr)
        return 2
    rows = usage_report_rows(build_spark(settings, app_name="voiplake extract usage-report"), settings,
                             reseller=reseller, date_from=date_from, date_to=date_to)
    write_usage_report(rows, out)
    record_export(settings, user=user, role=role, statement=statement, tables=[GOLD_ACCOUNT_USAGE_DAILY.name],
                  columns=[f"{GOLD_ACCOUNT_USAGE_DAILY.name}.{c}" for c in (rows[0] if rows else {})], rows=len(rows),
                  allowed=True, reason=None)
    accounts = len({r["account_id"] for r in rows})
    print(f"wrote {len(rows)} rows ({accounts} accounts of {reseller.id}, {date_from}..{date_to}) to {out}")
    return 0


def api_command(settings: Settings, args: argparse.Namespace) -> int:
    """`voiplake api token | openapi | serve`."""
    from lake_layout.resellers import PolicyError, UnknownReseller, load_policy

    if args.api_command == "openapi":
        from jobs.business.crm_api import openapi_document

        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(openapi_document(settings))
        print(f"wrote {args.out}")
        return 0
    try:
        policy = load_policy(settings.crm_api.resellers_file)
        if args.api_command == "token":
            policy.reseller(args.reseller)
    except (PolicyError, UnknownReseller) as exc:
        print(f"api {args.api_command} refused: {exc}", file=sys.stderr)
        return 2
    if args.api_command == "token":
        from jobs.business.api_tokens import issue_token

        token = issue_token(settings.crm_api.tokens_file, args.reseller)
        print(f"token for {args.reseller} (shown once; its SHA-256 is in {settings.crm_api.tokens_file}, "
              "any previous token of the reseller is revoked):", file=sys.stderr)
        print(token)
        return 0
    from jobs.business.crm_api import serve
    from jobs.platform.spark import build_spark

    serve(build_spark(settings, app_name="voiplake crm api"), settings, port=args.port or settings.crm_api.port)
    return 0


# ----------------------------------------------------------------------------- support triggers

def support_triggers_command(settings: Settings, day: date) -> int:
    """Evaluate quotas and call quality for `day` (gold.support_triggers), deliver pending triggers, print a summary.

    Exit 0 when every trigger is delivered, 4 when some stay undelivered (they are retried by the next run)."""
    from jobs.pipeline.runner import run_support_triggers

    report = run_support_triggers(evaluated_dates=[day], logical_date=day, settings=settings)
    kinds = ", ".join(f"{k} {n}" for k, n in report["new_by_kind"].items()) or "none"
    print(f"support triggers for {day}: {report['new_triggers']} new ({kinds}); delivered {report['delivered']}, "
          f"failed {report['failed']}, undelivered {report['undelivered']} via {report['sink']}")
    for t in report["new"]:
        print(f"  {t['account_id']:<12} {t['kind']:<16} {t['scope']:<10} threshold {t['threshold']:>5}  "
              f"observed {t['observed']:.4g}")
    print(f"  {report['calls_read']:,} silver calls read, table version {report['table_version']}, {report['seconds']}s",
          file=sys.stderr)
    return 0 if report["undelivered"] == 0 else 4


# ----------------------------------------------------------------------------- main

def report_lineage_command(settings: Settings, args: argparse.Namespace) -> int:
    """`voiplake report lineage`: write the HTML report, print its path; exit 2 on a bad period."""
    from jobs.governance import lineage_report
    from jobs.platform.spark import build_spark

    default_start, default_end = lineage_report.default_period(
        args.date_to or datetime.now(timezone.utc).date())
    start, end = args.date_from or default_start, args.date_to or default_end
    if start > end:
        print(f"report refused: --from {start} is after --to {end}", file=sys.stderr)
        return 2
    path = lineage_report.render(build_spark(settings, app_name="voiplake report lineage"), settings,
                                 out=args.out, start=start, end=end, user=args.as_user)
    print(path)
    return 0


def report_telemetry_command(settings: Settings, args: argparse.Namespace) -> int:
    """`voiplake report telemetry`: the telemetry overhead report (jobs.telemetry.report) from bronze; exit 2 on a
    bad period or a role that may not read bronze (the refusal is recorded in audit.access_log)."""
    from jobs.governance import lineage_report
    from jobs.telemetry import report as telemetry_report
    from jobs.platform.spark import build_spark
    from lake_layout.tables import BRONZE_CALL_EVENTS, BRONZE_INGESTED_OBJECTS

    default_start, default_end = lineage_report.default_period(args.date_to or datetime.now(timezone.utc).date())
    start, end = args.date_from or default_start, args.date_to or default_end
    if start > end:
        print(f"report refused: --from {start} is after --to {end}", file=sys.stderr)
        return 2
    tables = [BRONZE_CALL_EVENTS.name, BRONZE_INGESTED_OBJECTS.name]
    statement = f"voiplake report telemetry --out {args.out} --from {start} --to {end} --role {args.role}"
    if not export_allowed(settings, user=args.as_user, role=args.role, statement=statement, tables=tables):
        return 2
    paths = telemetry_report.render(build_spark(settings, app_name="voiplake report telemetry"), settings, args.out,
                                    date_from=start, date_to=end)
    record_export(settings, user=args.as_user, role=args.role, statement=statement, tables=tables, columns=[],
                  rows=None, allowed=True, reason=None)
    print(paths["report"])
    return 0


def dashboard_command(settings: Settings, args: argparse.Namespace) -> int:
    """`voiplake dashboard`: write the static HTML dashboard (jobs.security.dashboard), print its path; exit 2 on a bad
    period or a role that may not read the gold tables (the refusal is recorded in audit.access_log)."""
    from jobs.security import dashboard
    from jobs.governance import lineage_report
    from jobs.platform.spark import build_spark
    from lake_layout.tables import GOLD_ANOMALIES, GOLD_HOURLY_GEO_USAGE

    default_start, default_end = lineage_report.default_period(args.date_to or datetime.now(timezone.utc).date())
    start, end = args.date_from or default_start, args.date_to or default_end
    if start > end:
        print(f"dashboard refused: --from {start} is after --to {end}", file=sys.stderr)
        return 2
    statement = f"voiplake dashboard --out {args.out} --from {start} --to {end} --role {args.role}"
    if not export_allowed(settings, user=args.as_user, role=args.role, statement=statement,
                          tables=[GOLD_HOURLY_GEO_USAGE.name, GOLD_ANOMALIES.name]):
        return 2
    path = dashboard.render(build_spark(settings, app_name="voiplake dashboard"), settings, out=args.out, start=start,
                            end=end, role=args.role, user=args.as_user)
    print(path)
    return 0


def _export_identity(p: argparse.ArgumentParser) -> None:
    p.add_argument("--as", dest="as_user", default=None,
                   help="acting user recorded in audit.access_log (default: $VOIPLAKE_USER, else $USER)")
    p.add_argument("--role", default=os.environ.get("VOIPLAKE_ROLE", "billing"),
                   help="acting role; it must read the exported tables (lake_layout/access_policy.toml)")


def _hold_identity(p: argparse.ArgumentParser) -> None:
    p.add_argument("--as", dest="as_user", default=None, help="acting user (default: $VOIPLAKE_USER, else $USER)")
    p.add_argument("--role", default=os.environ.get("VOIPLAKE_ROLE"),
                   help="acting role; it needs may_hold in lake_layout/access_policy.toml (default: $VOIPLAKE_ROLE)")


def anomalies_command(settings: Settings, day: date) -> int:
    from jobs.pipeline.runner import run_detect_anomalies

    print(json.dumps(run_detect_anomalies(detection_date=day, settings=settings), indent=2, default=str))
    return 0


def quarantine_command(settings: Settings, args: argparse.Namespace) -> int:
    """`quarantine list [--all]`: held devices (all entries with --all); `quarantine release`: exit 4 if not held."""
    from jobs.platform import lake
    from jobs.ingest.door import active_quarantine
    from jobs.security.anomalies import release_device
    from jobs.platform.spark import build_spark
    from lake_layout.tables import SECURITY_DEVICE_QUARANTINE

    spark = build_spark(settings, app_name=f"voiplake quarantine {args.quarantine_command}")
    now = datetime.now(timezone.utc)
    if args.quarantine_command == "release":
        released = release_device(spark, settings, device_pseudonym=args.device, by=args.by, reason=args.reason, now=now)
        if not released:
            print(f"device {args.device} is not quarantined (nothing released)", file=sys.stderr)
            return 4
        print(json.dumps({"device_pseudonym": args.device, "released_entries": released, "released_by": args.by}))
        return 0
    columns = ["device_pseudonym", "reason", "severity", "quarantined_at", "expires_at", "released_at", "released_by"]
    if not lake.table_exists(spark, SECURITY_DEVICE_QUARANTINE, settings):
        print(render(columns, [], args.format))
        return 0
    table = lake.read_table(spark, SECURITY_DEVICE_QUARANTINE, settings)
    shown = table if args.all else active_quarantine(table, now=now)
    rows = [tuple(r) for r in shown.select(*columns).orderBy("quarantined_at", "device_pseudonym").collect()]
    print(render(columns, rows, args.format))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voiplake", description="Privacy-first lakehouse for VoIP telemetry")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="generate one day of uploads into the landing zone")
    p.add_argument("--date", type=_date, required=True)
    p.add_argument("--events", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--faults", action="store_true", help="inject corrupt, truncated, tampered, wrong-schema objects and bad records")
    p.add_argument("--scenarios", action="store_true",
                   help="add labelled attack scenarios and the auth log (labels: build/scenarios/labels-<date>.json)")
    p.add_argument("--noncompliant", action="store_true",
                   help="add one client per breach of the SDK configuration (lake_layout/sdk_config.toml)")

    p = sub.add_parser("ingest", help="run the bronze job for one upload date (without Airflow)")
    p.add_argument("--date", type=_date, required=True)

    p = sub.add_parser("publish-stats", help="differentially private public statistics for one call date (budget-checked)")
    p.add_argument("--date", type=_date, required=True)
    p.add_argument("--rerelease", action="store_true",
                   help="spend budget again on an already released date (refused beyond dp.epsilon_cap)")

    p = sub.add_parser("demo", help="object store + generated day + the daily Airflow DAG + summary")
    p.add_argument("--date", type=_date, required=True)
    p.add_argument("--events", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--no-faults", action="store_true")

    p = sub.add_parser("bench", help="the daily pipeline stage by stage vs the I/O floor on a fresh lake (jobs.pipeline.bench)")
    p.add_argument("--date", type=_date, required=True)
    p.add_argument("--events", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--scale", action="store_true", help="the scaling curve: one fresh run per size of --scale-sizes")
    p.add_argument("--scale-sizes", default="1000000,3000000", help="comma-separated event counts (add 10000000: optional, long)")

    p = sub.add_parser("summary", help="what the lake holds for one upload date")
    p.add_argument("--date", type=_date, required=True)

    p = sub.add_parser("query", help="run Spark SQL over the registry's tables")
    p.add_argument("sql")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--limit", type=int, default=None, help="at most this many rows (default: all for csv/json, 1000 for table)")
    p.add_argument("--role", default=os.environ.get("VOIPLAKE_ROLE", DEFAULT_ROLE),
                   help="read as this role: only its tables and columns within its clearance are visible (lake_layout/access_policy.toml)")
    p.add_argument("--as", dest="as_user", default=None,
                   help="acting user recorded in audit.access_log (default: $VOIPLAKE_USER, else $USER)")
    p = sub.add_parser("audit", help="tamper-evident audit trails")
    audit_sub = p.add_subparsers(dest="audit_command", required=True)
    audit_sub.add_parser("verify", help="check audit.access_log, audit.legal_holds and audit.landing_integrity; re-hash landing objects (exit 5 on a problem)")
    p = sub.add_parser("dsr", help="data-subject requests: export or erase one subscriber's data (jobs.governance.dsr)")
    dsr_sub = p.add_subparsers(dest="dsr_command", required=True)
    for name, text in (("export", "the subject's rows of every table as JSON lines + CSV with a manifest"),
                       ("delete", "erase the subject from every personal-data table, VACUUM; refused under a legal hold (exit 8)")):
        p = dsr_sub.add_parser(name, help=text)
        p.add_argument("--subscriber", required=True, help="the subject's MSISDN (E.164); only its pseudonyms are stored")
        p.add_argument("--request-id", required=True, help="the privacy desk's request id (receipt key in audit.dsr_requests)")
        p.add_argument("--role", default=os.environ.get("VOIPLAKE_ROLE", DEFAULT_ROLE),
                       help="acting role; it needs confidential clearance and every personal-data table (data_engineer, security)")
        p.add_argument("--as", dest="as_user", default=None,
                       help="acting user recorded in the receipt and audit.access_log (default: $VOIPLAKE_USER, else $USER)")
        if name == "export":
            p.add_argument("--out", type=Path, default=None, help="exports directory (default build/dsr); writes <out>/<request-id>/")
    p = sub.add_parser("forensics", help="signed evidence bundles with a chain of custody (jobs.governance.forensics)")
    forensics_sub = p.add_subparsers(dest="forensics_command", required=True)
    p = forensics_sub.add_parser("export", help="one subscriber's rows of every table for a date range, signed")
    p.add_argument("--case", required=True, help="case id; the bundle is written to <out>/<case>")
    p.add_argument("--subject", required=True, help="the subscriber's MSISDN (E.164); only its pseudonyms are stored")
    p.add_argument("--from", dest="date_from", type=_date, required=True)
    p.add_argument("--to", dest="date_to", type=_date, required=True)
    p.add_argument("--out", type=Path, default=None, help="bundles directory (default [forensics] bundles_dir)")
    p.add_argument("--handler", default=None, help="who makes the bundle (default: $VOIPLAKE_USER, else $USER)")
    p.add_argument("--role", default=os.environ.get("VOIPLAKE_ROLE", "security"),
                   help="a role with restricted clearance that may decrypt (security, lawful_intercept)")
    p = forensics_sub.add_parser("handover", help="record a hand-over of a bundle in its custody chain and audit.custody_log")
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--from", dest="from_party", required=True)
    p.add_argument("--to", dest="to_party", required=True)
    p.add_argument("--note", default="")
    p.add_argument("--event", choices=["handed_over", "received"], default="handed_over")
    p = forensics_sub.add_parser("verify", help="check a bundle's hashes, signature and custody chain (exit 6 on a problem)")
    p.add_argument("bundle", type=Path)
    p.add_argument("--offline", action="store_true", help="do not compare with audit.custody_log in the lake")
    p = forensics_sub.add_parser("timeline", help="ordered events of a call or subscriber across landing, bronze, silver, gold")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--call-id", default=None)
    who.add_argument("--subscriber", default=None, help="MSISDN (E.164); searched by its pseudonyms, written nowhere")
    p.add_argument("--from", dest="date_from", type=_date, default=None, help="first UTC day (required with --subscriber)")
    p.add_argument("--to", dest="date_to", type=_date, default=None, help="last UTC day, inclusive")
    p.add_argument("--out", type=Path, default=None, help="also write the entries as JSON lines to this file")
    p.add_argument("--role", default=os.environ.get("VOIPLAKE_ROLE", "security"), help="security or lawful_intercept")
    p.add_argument("--as", dest="as_user", default=None, help="acting user for audit.access_log")
    p = forensics_sub.add_parser("drill", help="time a complete retrieval of one subscriber over N days and check it (exit 7 if incomplete)")
    p.add_argument("--subscriber", default=None, help="MSISDN; default: the pseudonym with most calls in the window")
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--as-of", dest="as_of", type=_date, default=None, help="last UTC day (default: newest call_date in silver.calls)")
    p.add_argument("--role", default=os.environ.get("VOIPLAKE_ROLE", "security"), help="security or lawful_intercept")
    p.add_argument("--as", dest="as_user", default=None, help="acting user for audit.access_log")

    p = sub.add_parser("retention", help="retention periods (lake_layout/retention_policy.toml) enforced (jobs.governance.retention)")
    retention_sub = p.add_subparsers(dest="retention_command", required=True)
    p = retention_sub.add_parser("run", help="delete expired rows per jurisdiction, VACUUM, expire landing objects")
    p.add_argument("--as-of", dest="as_of", type=_date, required=True, help="UTC day the periods are counted back from")
    p.add_argument("--dry-run", action="store_true", help="print the plan (counts) without changing anything")
    p.add_argument("--policy", type=Path, default=None, help="policy file (default: lake_layout/retention_policy.toml)")

    p = sub.add_parser("hold", help="legal holds: block retention purges and erasure of matching data (jobs.governance.legal_holds)")
    hold_sub = p.add_subparsers(dest="hold_command", required=True)
    p = hold_sub.add_parser("add", help="place a hold on a subject, an account and/or a period of data")
    p.add_argument("--case", required=True, help="case or matter id")
    p.add_argument("--subject", default=None, help="MSISDN (E.164) of the held subscriber; stored only as pseudonyms")
    p.add_argument("--account", default=None, help="held B2B account id")
    p.add_argument("--from", dest="date_from", type=_date, default=None, help="first UTC day of data held")
    p.add_argument("--to", dest="date_to", type=_date, default=None, help="last UTC day of data held")
    p.add_argument("--until", type=_date, default=None, help="the hold lapses after this day (default: until released)")
    p.add_argument("--reason", default=None)
    _hold_identity(p)
    p = hold_sub.add_parser("release", help="release an active hold (audited)")
    p.add_argument("hold_id")
    p.add_argument("--reason", required=True)
    _hold_identity(p)
    p = hold_sub.add_parser("list", help="active holds (--all: with released and lapsed ones)")
    p.add_argument("--all", action="store_true")
    p.add_argument("--as", dest="as_user", default=None)
    p = sub.add_parser("pipeline", help="the daily DAG's data stages for one upload date without Airflow (e.g. on a Spark cluster)")
    p.add_argument("--date", type=_date, required=True)
    sub.add_parser("tables", help="list the registry's tables with row counts and Delta versions")
    p = sub.add_parser("report", help="reports rendered as files (lineage report for auditors)")
    report_sub = p.add_subparsers(dest="report_kind", required=True)
    p = report_sub.add_parser("lineage", help="HTML: lineage graph down to landing objects, classification, retention, "
                                              "Delta history, quality, privacy budget, DSR and retention actions")
    p.add_argument("--out", type=Path, required=True, help="directory; the report is <out>/lineage-report.html")
    p.add_argument("--from", dest="date_from", type=_date, default=None, help="first day of the period (default: 29 days before --to)")
    p.add_argument("--to", dest="date_to", type=_date, default=None, help="last day of the period, inclusive (default: today UTC)")
    p.add_argument("--as", dest="as_user", default=None,
                   help="acting user recorded in audit.access_log (default: $VOIPLAKE_USER, else $USER)")
    p = report_sub.add_parser("telemetry", help="HTML: telemetry overhead per platform, app version and network class "
                                                "(bytes per call, batches per day, deferred uploads, late arrivals)")
    p.add_argument("--out", type=Path, required=True, help="directory; the report is <out>/index.html")
    p.add_argument("--from", dest="date_from", type=_date, default=None, help="first upload date (default: 29 days before --to)")
    p.add_argument("--to", dest="date_to", type=_date, default=None, help="last upload date, inclusive (default: today UTC)")
    p.add_argument("--role", default=os.environ.get("VOIPLAKE_ROLE", "data_engineer"),
                   help="acting role; it must read bronze.call_events and bronze.ingested_objects")
    p.add_argument("--as", dest="as_user", default=None,
                   help="acting user recorded in audit.access_log (default: $VOIPLAKE_USER, else $USER)")
    p = sub.add_parser("dashboard", help="static HTML dashboard: usage and anomaly plots with region, device type, "
                                         "platform and carrier filters (jobs.security.dashboard)")
    p.add_argument("--out", type=Path, required=True, help="directory; the dashboard is <out>/index.html")
    p.add_argument("--from", dest="date_from", type=_date, default=None, help="first call date (default: 29 days before --to)")
    p.add_argument("--to", dest="date_to", type=_date, default=None, help="last call date, inclusive (default: today UTC)")
    p.add_argument("--role", default=os.environ.get("VOIPLAKE_ROLE", "noc_operator"),
                   help="acting role; it must read gold.hourly_geo_usage and gold.anomalies (lake_layout/access_policy.toml)")
    p.add_argument("--as", dest="as_user", default=None,
                   help="acting user recorded in audit.access_log (default: $VOIPLAKE_USER, else $USER)")
    p = sub.add_parser("lineage", help="the upstream graph of a table, down to the landing objects")
    p.add_argument("table")
    p.add_argument("--version", type=int, default=None, help="a Delta version of the table (default: its newest recorded)")
    p.add_argument("--format", choices=["text", "json"], default="text")
    sub.add_parser("warmup", help="resolve Spark's jars into the build cache (first run needs Maven Central)")
    p = sub.add_parser("keys", help="envelope-encryption keys of the restricted columns")
    keys_sub = p.add_subparsers(dest="keys_command", required=True)
    keys_sub.add_parser("rotate", help="new KEK version, then re-wrap every data key in security.data_keys (no table rewrite)")
    p = keys_sub.add_parser("decrypt-check", help="decrypt (and count, never print) the restricted cells of one upload date")
    p.add_argument("--date", type=_date, required=True)
    p.add_argument("--role", default=os.environ.get("VOIPLAKE_ROLE", DEFAULT_ROLE),
                   help="acting role; only roles that may decrypt (security) are allowed (lake_layout/access.py)")
    p = sub.add_parser("privacy-audit", help="re-identification attack simulation on published tables (exit 3 on failure)")
    p.add_argument("--date", type=_date, required=True, help="call date to audit")
    p.add_argument("--targets", type=int, default=None, help="subscribers attacked (default: privacy_audit.targets)")
    p.add_argument("--known-calls", type=int, default=None, help="calls known per target (default: privacy_audit.known_calls)")

    p = sub.add_parser("capacity", help="SIP trunk capacity of one day: busy hour, Erlangs, peak calls, channels (Erlang B)")
    p.add_argument("--date", type=_date, required=True, help="UTC call date")
    p = sub.add_parser("billing", help="B2B billing: rate the open period up to a day, bill late calls as adjustments")
    p.add_argument("--date", type=_date, required=True, help="run date (closes periods due by then)")
    p = sub.add_parser("support-triggers", help="quota and call-quality triggers of one day, delivered to the support sink")
    p.add_argument("--date", type=_date, required=True, help="UTC call date to evaluate (quotas: month to date)")
    p = sub.add_parser("extract", help="extracts for business users (finance, resellers)")
    extract_sub = p.add_subparsers(dest="extract_kind", required=True)
    p = extract_sub.add_parser("billing", help="billing lines of a period (reconciled with silver) for finance")
    p.add_argument("--period", required=True, help="billing period YYYY-MM")
    p.add_argument("--out", type=Path, required=True, help="output file: .csv, or .parquet")
    _export_identity(p)
    p = extract_sub.add_parser("cost-allocation", help="allocate a month's infrastructure costs to accounts and departments")
    p.add_argument("--period", required=True, help="month YYYY-MM")
    p.add_argument("--out", type=Path, required=True, help="output file: .csv, or .parquet")
    p.add_argument("--costs", type=Path, default=None, help="finance's cost file (default: <finance.costs_dir>/costs-<period>.csv)")
    _export_identity(p)
    p = extract_sub.add_parser("usage-report", help="a reseller's usage per account and day (only its own accounts)")
    p.add_argument("--reseller", required=True, help="reseller id (lake_layout/resellers.toml)")
    p.add_argument("--from", dest="date_from", type=_date, required=True, help="first UTC call date")
    p.add_argument("--to", dest="date_to", type=_date, required=True, help="last UTC call date (inclusive)")
    p.add_argument("--out", type=Path, required=True, help="output file: .csv, or .parquet")
    _export_identity(p)
    p = sub.add_parser("account-usage", help="usage per B2B account and day (gold.account_usage_daily) for one call date")
    p.add_argument("--date", type=_date, required=True, help="UTC call date")
    p = sub.add_parser("api", help="the read-only CRM API for resellers")
    api_sub = p.add_subparsers(dest="api_command", required=True)
    p = api_sub.add_parser("token", help="issue a reseller's bearer token (printed once; only its SHA-256 is kept)")
    p.add_argument("--reseller", required=True)
    p = api_sub.add_parser("serve", help="serve the API on 127.0.0.1")
    p.add_argument("--port", type=int, default=None, help="default: crm_api.port")
    p = api_sub.add_parser("openapi", help="write the API's OpenAPI document")
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("anomalies", help="detect one call date's anomalies (gold.anomalies), quarantine devices, alert the SIEM")
    p.add_argument("--date", type=_date, required=True, help="UTC call date")
    p = sub.add_parser("quarantine", help="devices whose uploads bronze diverts to quarantine (security.device_quarantine)")
    quarantine_sub = p.add_subparsers(dest="quarantine_command", required=True)
    p = quarantine_sub.add_parser("list", help="devices held now (--all: every entry, released and expired too)")
    p.add_argument("--all", action="store_true")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p = quarantine_sub.add_parser("release", help="release a held device: its next uploads are ingested again")
    p.add_argument("--device", required=True, help="device pseudonym (as listed)")
    p.add_argument("--reason", required=True, help="why it is released (recorded)")
    p.add_argument("--by", default=os.environ.get("VOIPLAKE_USER") or os.environ.get("USER") or "unknown",
                   help="who releases it (default: $VOIPLAKE_USER, else $USER)")

    p = sub.add_parser("sdk-config", help="the central SDK configuration (lake_layout/sdk_config.toml)")
    sdk_sub = p.add_subparsers(dest="sdk_config_command", required=True)
    p = sdk_sub.add_parser("publish", help="write every version and the latest pointer to the landing bucket")
    p.add_argument("--at", type=datetime.fromisoformat, default=None,
                   help="latest = the version in force at this ISO time with zone (default: now)")

    p = sub.add_parser("schema", help="upload schema versions (jobs/telemetry/schemas): compatibility check")
    schema_sub = p.add_subparsers(dest="schema_command", required=True)
    p = schema_sub.add_parser("check", help="a new .proto (--new) or the repository's versions against every in-field "
                                            "version: exit 1 when incompatible, 2 when the check cannot run")
    p.add_argument("--new", metavar="PATH", help="candidate .proto of the next version (default: check the repository)")

    args = parser.parse_args(argv)
    if args.command == "schema":
        from jobs.telemetry.schema_compat import schema_check_command

        return schema_check_command(args.new)
    settings = load_settings()

    if args.command == "generate":
        summary = generate_to_landing(
            settings, args.date, events=args.events or settings.generator.events,
            seed=settings.generator.seed if args.seed is None else args.seed, faults=args.faults,
            scenarios=args.scenarios, noncompliant=args.noncompliant,
        )
        print(json.dumps(summary, indent=2))
        return 0
    if args.command == "demo":
        demo(settings, args.date, events=args.events or settings.generator.events,
             seed=settings.generator.seed if args.seed is None else args.seed, faults=not args.no_faults)
        return 0
    if args.command == "bench":
        from jobs.pipeline.bench import bench_command

        result = bench_command(settings, args.date, events=args.events or 1_000_000,
                               seed=settings.generator.seed if args.seed is None else args.seed, scale=args.scale,
                               scale_sizes=[int(n) for n in args.scale_sizes.split(",") if n.strip()])
        return 1 if result.get("failed_stage") else 0
    if args.command == "ingest":
        from jobs.pipeline.runner import run_bronze_ingest

        print(json.dumps(run_bronze_ingest(upload_date=args.date, settings=settings), indent=2, default=str))
        return 0
    if args.command == "publish-stats":
        from jobs.privacy.budget import PrivacyBudgetExceeded
        from jobs.pipeline.runner import run_public_usage_stats

        try:
            report = run_public_usage_stats(call_dates=[args.date], logical_date=args.date, settings=settings,
                                            rerelease=args.rerelease)
        except PrivacyBudgetExceeded as exc:
            print(f"publish refused: {exc}", file=sys.stderr)
            return 3
        print(json.dumps(report, indent=2, default=str))
        return 0
    if args.command == "keys":
        from jobs.pipeline.runner import run_keys_decrypt_check, run_keys_rotate

        if args.keys_command == "rotate":
            print(json.dumps(run_keys_rotate(settings=settings), indent=2, default=str))
            return 0
        from lake_layout.access import AccessDenied

        try:
            check = run_keys_decrypt_check(upload_date=args.date, role=args.role, settings=settings)
        except (AccessDenied, KeyError) as exc:
            print(f"decrypt-check refused: {str(exc).strip(chr(34))}", file=sys.stderr)
            return 2
        print(json.dumps(check, indent=2, default=str))
        return 0 if check["ok"] else 4
    if args.command == "privacy-audit":
        return privacy_audit_command(settings, args.date, targets=args.targets, known_calls=args.known_calls)

    if args.command == "capacity":
        return capacity_command(settings, args.date)
    if args.command == "support-triggers":
        return support_triggers_command(settings, args.date)
    if args.command == "extract" and args.extract_kind == "billing":
        return extract_billing_command(settings, args.period, args.out, user=args.as_user, role=args.role)
    if args.command == "billing":
        return billing_command(settings, args.date)
    if args.command == "extract" and args.extract_kind == "cost-allocation":
        return extract_cost_allocation_command(settings, args.period, args.out, costs_file=args.costs,
                                               user=args.as_user, role=args.role)
    if args.command == "extract" and args.extract_kind == "usage-report":
        return extract_usage_report_command(settings, args.reseller, args.date_from, args.date_to, args.out,
                                            user=args.as_user, role=args.role)
    if args.command == "dsr":
        return dsr_command(settings, args)
    if args.command == "forensics":
        return forensics_command(settings, args)
    if args.command == "audit":
        return audit_verify_command(settings)
    if args.command == "pipeline":
        from jobs.pipeline.runner import run_pipeline

        print(json.dumps(run_pipeline(day=args.date, settings=settings), default=str))
        return 0
    if args.command == "hold":
        return hold_command(settings, args)
    if args.command == "retention":
        return retention_command(settings, args)
    if args.command == "account-usage":
        return account_usage_command(settings, args.date)
    if args.command == "anomalies":
        return anomalies_command(settings, args.date)
    if args.command == "quarantine":
        return quarantine_command(settings, args)
    if args.command == "api":
        return api_command(settings, args)
    if args.command == "dashboard":
        return dashboard_command(settings, args)
    if args.command == "report" and args.report_kind == "lineage":
        return report_lineage_command(settings, args)
    if args.command == "report" and args.report_kind == "telemetry":
        return report_telemetry_command(settings, args)
    if args.command == "sdk-config":
        from jobs.telemetry.sdk_config_publish import publish
        from jobs.telemetry.codec import EVENT_FIELDS
        from lake_layout.sdk_config import load_sdk_config

        at = args.at or datetime.now(timezone.utc)
        print(json.dumps(publish(settings, load_sdk_config(known_fields=EVENT_FIELDS), at=at).to_dict(), indent=2))
        return 0

    from jobs.platform.spark import build_spark

    spark = build_spark(settings, app_name=f"voiplake {args.command}")
    if args.command == "warmup":
        spark.range(1).count()
        print("spark: jars resolved and cached", file=sys.stderr)
    elif args.command == "summary":
        print_summary(day_summary(spark, settings, args.date))
    elif args.command == "query":
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


if __name__ == "__main__":
    sys.exit(main())
