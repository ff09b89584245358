"""`voiplake audit | dsr | forensics | retention | hold`: the audit trails' verification, data-subject requests,
forensic evidence (bundles, timelines, drills), retention runs and legal holds (jobs.governance)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.cli.common import _date, _hold_identity, render
from lake_layout.access import DEFAULT_ROLE
from lake_layout.config import Settings

if TYPE_CHECKING:
    from jobs.cli.common import Subparsers


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


# ----------------------------------------------------------------------------- command line

def _audit_parser(sub: Subparsers) -> None:
    p = sub.add_parser("audit", help="tamper-evident audit trails")
    audit_sub = p.add_subparsers(dest="audit_command", required=True)
    audit_sub.add_parser("verify", help="check audit.access_log, audit.legal_holds and audit.landing_integrity; re-hash landing objects (exit 5 on a problem)")


def _dsr_parser(sub: Subparsers) -> None:
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


def _forensics_parser(sub: Subparsers) -> None:
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


def _retention_parser(sub: Subparsers) -> None:
    p = sub.add_parser("retention", help="retention periods (lake_layout/retention_policy.toml) enforced (jobs.governance.retention)")
    retention_sub = p.add_subparsers(dest="retention_command", required=True)
    p = retention_sub.add_parser("run", help="delete expired rows per jurisdiction, VACUUM, expire landing objects")
    p.add_argument("--as-of", dest="as_of", type=_date, required=True, help="UTC day the periods are counted back from")
    p.add_argument("--dry-run", action="store_true", help="print the plan (counts) without changing anything")
    p.add_argument("--policy", type=Path, default=None, help="policy file (default: lake_layout/retention_policy.toml)")


def _hold_parser(sub: Subparsers) -> None:
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


PARSERS: dict[str, Callable[[Subparsers], None]] = {
    "audit": _audit_parser, "dsr": _dsr_parser, "forensics": _forensics_parser, "retention": _retention_parser,
    "hold": _hold_parser}


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run `voiplake <args.command>`, one of PARSERS' commands; its exit status."""
    if args.command == "dsr":
        return dsr_command(settings, args)
    if args.command == "forensics":
        return forensics_command(settings, args)
    if args.command == "audit":
        return audit_verify_command(settings)
    if args.command == "hold":
        return hold_command(settings, args)
    if args.command == "retention":
        return retention_command(settings, args)
    raise AssertionError(f"not a governance command: {args.command}")
