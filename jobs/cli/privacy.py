"""`voiplake publish-stats | privacy-audit`: differentially private public statistics (within the privacy budget)
and the re-identification audit of the published tables."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING

from jobs.cli.common import _date
from lake_layout.config import Settings

if TYPE_CHECKING:
    from jobs.cli.common import Subparsers


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


# ----------------------------------------------------------------------------- command line

def _publish_stats_parser(sub: Subparsers) -> None:
    p = sub.add_parser("publish-stats", help="differentially private public statistics for one call date (budget-checked)")
    p.add_argument("--date", type=_date, required=True)
    p.add_argument("--rerelease", action="store_true",
                   help="spend budget again on an already released date (refused beyond dp.epsilon_cap)")


def _privacy_audit_parser(sub: Subparsers) -> None:
    p = sub.add_parser("privacy-audit", help="re-identification attack simulation on published tables (exit 3 on failure)")
    p.add_argument("--date", type=_date, required=True, help="call date to audit")
    p.add_argument("--targets", type=int, default=None, help="subscribers attacked (default: privacy_audit.targets)")
    p.add_argument("--known-calls", type=int, default=None, help="calls known per target (default: privacy_audit.known_calls)")


PARSERS: dict[str, Callable[[Subparsers], None]] = {
    "publish-stats": _publish_stats_parser, "privacy-audit": _privacy_audit_parser}


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run `voiplake <args.command>`, one of PARSERS' commands; its exit status."""
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
    if args.command == "privacy-audit":
        return privacy_audit_command(settings, args.date, targets=args.targets, known_calls=args.known_calls)
    raise AssertionError(f"not a privacy command: {args.command}")
