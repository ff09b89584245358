"""What several command groups of `voiplake` share: the date argument, the acting user's and role's options, result
rendering (table, CSV, JSON) and the recording of exports in audit.access_log."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Sequence

from lake_layout.config import Settings

if TYPE_CHECKING:
    from typing import TypeAlias

    # what `parser.add_subparsers()` returns: each group's parser builders add their command to it
    Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {value!r}") from None


def _export_identity(p: argparse.ArgumentParser) -> None:
    p.add_argument("--as", dest="as_user", default=None,
                   help="acting user recorded in audit.access_log (default: $VOIPLAKE_USER, else $USER)")
    p.add_argument("--role", default=os.environ.get("VOIPLAKE_ROLE", "billing"),
                   help="acting role; it must read the exported tables (lake_layout/access_policy.toml)")


def _hold_identity(p: argparse.ArgumentParser) -> None:
    p.add_argument("--as", dest="as_user", default=None, help="acting user (default: $VOIPLAKE_USER, else $USER)")
    p.add_argument("--role", default=os.environ.get("VOIPLAKE_ROLE"),
                   help="acting role; it needs may_hold in lake_layout/access_policy.toml (default: $VOIPLAKE_ROLE)")


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
