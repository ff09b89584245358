"""`voiplake anomalies | quarantine | dashboard`: a day's anomaly detection (gold.anomalies, device quarantine, SIEM
alerts), the quarantined devices, and the static HTML dashboard of usage and anomalies (jobs.security)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.cli.common import _date, export_allowed, render
from lake_layout.config import Settings

if TYPE_CHECKING:
    from jobs.cli.common import Subparsers


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


# ----------------------------------------------------------------------------- command line

def _dashboard_parser(sub: Subparsers) -> None:
    p = sub.add_parser("dashboard", help="static HTML dashboard: usage and anomaly plots with region, device type, "
                                         "platform and carrier filters (jobs.security.dashboard)")
    p.add_argument("--out", type=Path, required=True, help="directory; the dashboard is <out>/index.html")
    p.add_argument("--from", dest="date_from", type=_date, default=None, help="first call date (default: 29 days before --to)")
    p.add_argument("--to", dest="date_to", type=_date, default=None, help="last call date, inclusive (default: today UTC)")
    p.add_argument("--role", default=os.environ.get("VOIPLAKE_ROLE", "noc_operator"),
                   help="acting role; it must read gold.hourly_geo_usage and gold.anomalies (lake_layout/access_policy.toml)")
    p.add_argument("--as", dest="as_user", default=None,
                   help="acting user recorded in audit.access_log (default: $VOIPLAKE_USER, else $USER)")


def _anomalies_parser(sub: Subparsers) -> None:
    p = sub.add_parser("anomalies", help="detect one call date's anomalies (gold.anomalies), quarantine devices, alert the SIEM")
    p.add_argument("--date", type=_date, required=True, help="UTC call date")


def _quarantine_parser(sub: Subparsers) -> None:
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


PARSERS: dict[str, Callable[[Subparsers], None]] = {
    "dashboard": _dashboard_parser, "anomalies": _anomalies_parser, "quarantine": _quarantine_parser}


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run `voiplake <args.command>`, one of PARSERS' commands; its exit status."""
    if args.command == "anomalies":
        return anomalies_command(settings, args.date)
    if args.command == "quarantine":
        return quarantine_command(settings, args)
    if args.command == "dashboard":
        return dashboard_command(settings, args)
    raise AssertionError(f"not a security command: {args.command}")
