"""`voiplake report lineage | telemetry`: reports rendered as HTML files, the auditors' lineage report and the
telemetry overhead report."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.cli.common import _date, export_allowed, record_export
from lake_layout.config import Settings

if TYPE_CHECKING:
    from jobs.cli.common import Subparsers


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


# ----------------------------------------------------------------------------- command line

def _report_parser(sub: Subparsers) -> None:
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


PARSERS: dict[str, Callable[[Subparsers], None]] = {"report": _report_parser}


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run `voiplake <args.command>`, one of PARSERS' commands; its exit status."""
    if args.report_kind == "lineage":
        return report_lineage_command(settings, args)
    if args.report_kind == "telemetry":
        return report_telemetry_command(settings, args)
    raise AssertionError(f"not a report: {args.report_kind}")
