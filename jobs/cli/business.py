"""`voiplake capacity | billing | support-triggers | extract | account-usage | api`: SIP trunk capacity, B2B billing,
support triggers, extracts for finance and resellers (each recorded in audit.access_log), account usage and the
resellers' CRM API (jobs.business)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.cli.common import _date, _export_identity, export_allowed, record_export, render
from lake_layout.config import Settings

if TYPE_CHECKING:
    from jobs.cli.common import Subparsers


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


# ----------------------------------------------------------------------------- command line

def _capacity_parser(sub: Subparsers) -> None:
    p = sub.add_parser("capacity", help="SIP trunk capacity of one day: busy hour, Erlangs, peak calls, channels (Erlang B)")
    p.add_argument("--date", type=_date, required=True, help="UTC call date")


def _billing_parser(sub: Subparsers) -> None:
    p = sub.add_parser("billing", help="B2B billing: rate the open period up to a day, bill late calls as adjustments")
    p.add_argument("--date", type=_date, required=True, help="run date (closes periods due by then)")


def _support_triggers_parser(sub: Subparsers) -> None:
    p = sub.add_parser("support-triggers", help="quota and call-quality triggers of one day, delivered to the support sink")
    p.add_argument("--date", type=_date, required=True, help="UTC call date to evaluate (quotas: month to date)")


def _extract_parser(sub: Subparsers) -> None:
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


def _account_usage_parser(sub: Subparsers) -> None:
    p = sub.add_parser("account-usage", help="usage per B2B account and day (gold.account_usage_daily) for one call date")
    p.add_argument("--date", type=_date, required=True, help="UTC call date")


def _api_parser(sub: Subparsers) -> None:
    p = sub.add_parser("api", help="the read-only CRM API for resellers")
    api_sub = p.add_subparsers(dest="api_command", required=True)
    p = api_sub.add_parser("token", help="issue a reseller's bearer token (printed once; only its SHA-256 is kept)")
    p.add_argument("--reseller", required=True)
    p = api_sub.add_parser("serve", help="serve the API on 127.0.0.1")
    p.add_argument("--port", type=int, default=None, help="default: crm_api.port")
    p = api_sub.add_parser("openapi", help="write the API's OpenAPI document")
    p.add_argument("--out", type=Path, required=True)


PARSERS: dict[str, Callable[[Subparsers], None]] = {
    "capacity": _capacity_parser, "billing": _billing_parser, "support-triggers": _support_triggers_parser,
    "extract": _extract_parser, "account-usage": _account_usage_parser, "api": _api_parser}


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run `voiplake <args.command>`, one of PARSERS' commands; its exit status."""
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
    if args.command == "account-usage":
        return account_usage_command(settings, args.date)
    if args.command == "api":
        return api_command(settings, args)
    raise AssertionError(f"not a business command: {args.command}")
