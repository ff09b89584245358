"""`voiplake warmup | keys | sdk-config | schema`: Spark's jars, the envelope-encryption keys, the central SDK
configuration and the upload schema versions' compatibility check."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from jobs.cli.common import _date
from lake_layout.access import DEFAULT_ROLE
from lake_layout.config import PROJECT_ROOT, Settings

if TYPE_CHECKING:
    from jobs.cli.common import Subparsers


def _warmup_parser(sub: Subparsers) -> None:
    sub.add_parser("warmup", help="resolve Spark's jars into the build cache (first run needs Maven Central)")


def _keys_parser(sub: Subparsers) -> None:
    p = sub.add_parser("keys", help="envelope-encryption keys of the restricted columns")
    keys_sub = p.add_subparsers(dest="keys_command", required=True)
    keys_sub.add_parser("rotate", help="new KEK version, then re-wrap every data key in security.data_keys (no table rewrite)")
    p = keys_sub.add_parser("decrypt-check", help="decrypt (and count, never print) the restricted cells of one upload date")
    p.add_argument("--date", type=_date, required=True)
    p.add_argument("--role", default=os.environ.get("VOIPLAKE_ROLE", DEFAULT_ROLE),
                   help="acting role; only roles that may decrypt (security) are allowed (lake_layout/access.py)")


def _sdk_config_parser(sub: Subparsers) -> None:
    p = sub.add_parser("sdk-config", help="the central SDK configuration (lake_layout/sdk_config.toml)")
    sdk_sub = p.add_subparsers(dest="sdk_config_command", required=True)
    p = sdk_sub.add_parser("publish", help="write every version and the latest pointer to the landing bucket")
    p.add_argument("--at", type=datetime.fromisoformat, default=None,
                   help="latest = the version in force at this ISO time with zone (default: now)")


def _schema_parser(sub: Subparsers) -> None:
    p = sub.add_parser("schema", help="upload schema versions (jobs/telemetry/schemas): compatibility check")
    schema_sub = p.add_subparsers(dest="schema_command", required=True)
    p = schema_sub.add_parser("check", help="a new .proto (--new) or the repository's versions against every in-field "
                                            "version: exit 1 when incompatible, 2 when the check cannot run")
    p.add_argument("--new", metavar="PATH", help="candidate .proto of the next version (default: check the repository)")


PARSERS: dict[str, Callable[[Subparsers], None]] = {
    "warmup": _warmup_parser, "keys": _keys_parser, "sdk-config": _sdk_config_parser, "schema": _schema_parser}


def schema_command(args: argparse.Namespace) -> int:
    """`voiplake schema check`: needs no settings (it runs before they are loaded)."""
    from jobs.telemetry.schema_compat import schema_check_command

    return schema_check_command(args.new)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run `voiplake <args.command>`, one of PARSERS' commands; its exit status."""
    if args.command == "warmup":
        from jobs.platform.spark import build_spark

        from jobs.cli.dag_progress import quiet_fds

        log = PROJECT_ROOT / "build" / "logs" / "warmup.log"
        with quiet_fds(log):  # Ivy's resolution report and the JVM's warnings
            spark = build_spark(settings, app_name=f"voiplake {args.command}")
        spark.range(1).count()
        print(f"spark: jars resolved and cached (JVM log: {log.relative_to(PROJECT_ROOT)})", file=sys.stderr)
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
    if args.command == "sdk-config":
        from jobs.telemetry.sdk_config_publish import publish
        from jobs.telemetry.codec import EVENT_FIELDS
        from lake_layout.sdk_config import load_sdk_config

        at = args.at or datetime.now(timezone.utc)
        print(json.dumps(publish(settings, load_sdk_config(known_fields=EVENT_FIELDS), at=at).to_dict(), indent=2))
        return 0
    raise AssertionError(f"not a platform command: {args.command}")
