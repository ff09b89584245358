"""The forensics retrieval drill (`voiplake forensics drill`): how long a complete retrieval of one subscriber
over N days takes, and whether it is complete.

    voiplake forensics drill --subscriber +4915... --days 30 [--as-of 2026-11-24]
    voiplake forensics drill --days 30          # the subscriber with the most silver.calls rows in the window

The retrieval is the forensics export's own selection (`jobs.governance.forensics.retrieval_plan`: every subject table and
the linked landing / quarantine / rating tables, each at a pinned Delta version), written as Parquet into a
temporary directory the way a bundle's data files are, timed per table and in total. It is complete when

* every table's retrieved rows equal an independent count: the same subject and window expressed through the
  DataFrame API (not the export's SQL text) on the same Delta version, and
* every landing object a retrieved bronze event came from is among the retrieved bronze.ingested_objects rows
  and the retrieved audit.landing_integrity rows (the event can be traced to the bytes received).

Without --subscriber the drill picks the pseudonym with most calls and searches that pseudonym only; it prints
a pseudonym prefix, never an MSISDN. The report goes to stdout and build/reports/forensics_drill.json; the
command exits 7 when the retrieval is incomplete. The drill's read is recorded in audit.access_log.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from jobs.platform import lake
from jobs.governance.forensics import (
    LINKED_TABLES, REDACTED_SUBJECT, STATE_COLUMNS, SUBJECT_COLUMN, Selection, _write_single_parquet,
    record_forensic_access, require_forensics_role, retrieval_plan, subject_pseudonyms, time_column,
)
from jobs.governance.forensics_timeline import read_pinned
from jobs.platform.keys import KeyMaterial
from lake_layout.access import AccessDenied
from lake_layout.config import Settings
from lake_layout.tables import (
    AUDIT_LANDING_INTEGRITY, BRONZE_CALL_EVENTS, BRONZE_INGESTED_OBJECTS, SILVER_CALLS, TABLES_BY_NAME,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

INCOMPLETE_EXIT = 7
PREFIX = 12  # characters of a pseudonym shown


@dataclass(frozen=True)
class TableCheck:
    table: str
    delta_version: int
    retrieved_rows: int
    independent_rows: int
    seconds: float
    linked_by: str | None = None

    @property
    def complete(self) -> bool:
        return self.retrieved_rows == self.independent_rows


@dataclass(frozen=True)
class DrillReport:
    subject: str  # how the subject was chosen, with pseudonym prefixes only
    start: date
    end: date
    role: str
    tables: list[TableCheck]
    skipped_tables: dict[str, str]
    retrieval_seconds: float  # wall time of the whole retrieval (plan + every table written)
    problems: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["tables"] = [{**asdict(t), "complete": t.complete} for t in self.tables]
        out["complete"] = self.complete
        out["days"] = (self.end - self.start).days + 1
        out["retrieved_rows"] = sum(t.retrieved_rows for t in self.tables)
        return out


# ---------------------------------------------------------------------------------------------- pure checks


def independent_subject_rows(df: "DataFrame", *, table: str, pseudonyms: Iterable[str], start: date,
                             end: date) -> "DataFrame":
    """The subject's rows of a subject table in [start, end], through the DataFrame API (the export builds SQL
    text): pseudonym in the set, the time column in the window; a state column also keeps each pseudonym's
    latest row at or before the start."""
    from pyspark.sql import functions as F

    spec = TABLES_BY_NAME[table]
    rows = df.where(F.col(SUBJECT_COLUMN).isin(sorted(set(pseudonyms))))
    column = time_column(spec)
    if column is None:
        return rows
    first = datetime(start.year, start.month, start.day, tzinfo=timezone.utc)
    after = first + timedelta(days=(end - start).days + 1)
    if {c.name: c.type for c in spec.columns}[column] == "date":
        return rows.where((F.col(column) >= F.lit(start)) & (F.col(column) <= F.lit(end)))
    in_window = rows.where((F.col(column) >= F.lit(first)) & (F.col(column) < F.lit(after)))
    if column not in STATE_COLUMNS:
        return in_window
    in_force = (rows.where(F.col(column) <= F.lit(first)).groupBy(SUBJECT_COLUMN)
                .agg(F.max(column).alias(column)).join(rows, [SUBJECT_COLUMN, column]))
    return in_window.unionByName(in_force.select(*rows.columns)).distinct()


def untraced_objects(events: "DataFrame", landing: "DataFrame") -> "DataFrame":
    """Distinct object keys of `events` that `landing` (ingested-objects or landing-integrity rows) lacks."""
    return events.select("object_key").distinct().join(landing.select("object_key"), "object_key", "left_anti")


def busiest_subscriber(calls: "DataFrame", *, start: date, end: date) -> str | None:
    """The pseudonym with the most silver.calls rows with call_date in [start, end] (ties: smallest pseudonym)."""
    from pyspark.sql import functions as F

    row = (calls.where(F.col("call_date").between(F.lit(start), F.lit(end))).groupBy(SUBJECT_COLUMN).count()
           .orderBy(F.col("count").desc(), F.col(SUBJECT_COLUMN)).first())
    return None if row is None else str(row[SUBJECT_COLUMN])


# ---------------------------------------------------------------------------------------------- run


def run(spark: "SparkSession", settings: Settings, keys: KeyMaterial, *, msisdn: str | None = None, days: int = 30,
        as_of: date | None = None, role: str = "security", user: str = "unknown",
        report_path: Path | None = None, work_dir: Path | None = None) -> DrillReport:
    """Time a complete retrieval of one subscriber over the `days` UTC days ending `as_of` (default: the newest
    call_date in silver.calls) and check it (see the module docstring); write the report to `report_path`."""
    from pyspark.sql import functions as F

    if days < 1:
        raise ValueError(f"--days must be at least 1, got {days}")
    statement = (f"voiplake forensics drill --subscriber {REDACTED_SUBJECT if msisdn else '(busiest)'} "
                 f"--days {days}" + (f" --as-of {as_of}" if as_of else "") + f" --role {role}")
    try:
        require_forensics_role(role)
    except AccessDenied as exc:
        record_forensic_access(spark, settings, user=user, role=role, statement=statement, selections=[],
                               rows=None, reason=str(exc))
        raise
    calls_version = lake.table_version(spark, SILVER_CALLS, settings)
    calls = read_pinned(spark, SILVER_CALLS, settings, calls_version) if calls_version is not None else None
    if as_of is None:
        newest = calls.agg(F.max("call_date")).first()[0] if calls is not None else None
        as_of = newest or datetime.now(timezone.utc).date()
    start, end = as_of - timedelta(days=days - 1), as_of
    if msisdn:
        pseudonyms = sorted(set(subject_pseudonyms(keys, msisdn).values()))
        subject = "given subscriber, pseudonyms " + ", ".join(p[:PREFIX] + "…" for p in pseudonyms)
    else:
        busiest = busiest_subscriber(calls, start=start, end=end) if calls is not None else None
        if busiest is None:
            raise ValueError(f"no silver.calls rows in {start}..{end} to pick a subscriber from; give --subscriber")
        pseudonyms = [busiest]
        subject = f"busiest subscriber in silver.calls, pseudonym {busiest[:PREFIX]}… (this pseudonym only)"

    with tempfile.TemporaryDirectory(prefix="forensics-drill-", dir=work_dir) as tmp:
        t0 = time.monotonic()
        selections, skipped = retrieval_plan(spark, settings, pseudonyms=pseudonyms, start=start, end=end, role=role)
        plan_seconds = time.monotonic() - t0
        files: dict[str, Path] = {}
        timed: dict[str, tuple[int, float]] = {}
        for sel in selections:
            t = time.monotonic()
            files[sel.table] = Path(tmp) / f"{sel.table}.parquet"
            rows = _write_single_parquet(spark.sql(sel.sql), files[sel.table])
            timed[sel.table] = (rows, time.monotonic() - t)
        retrieval_seconds = plan_seconds + sum(s for _, s in timed.values())
        checks, problems = _check(spark, settings, selections, timed, files, pseudonyms=pseudonyms, start=start, end=end)

    report = DrillReport(subject, start, end, role, checks, skipped, round(retrieval_seconds, 3), problems)
    record_forensic_access(spark, settings, user=user, role=role, statement=statement, selections=selections,
                           rows=sum(t.retrieved_rows for t in checks), reason=None)
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps(report.to_json(), indent=2, default=str))
    return report


def _check(spark: "SparkSession", settings: Settings, selections: list[Selection], timed: dict[str, tuple[int, float]],
           files: dict[str, Path], *, pseudonyms: list[str], start: date, end: date) -> tuple[list[TableCheck], list[str]]:
    by_table = {s.table: s for s in selections}
    independent: dict[str, "DataFrame"] = {}
    for sel in selections:  # subject tables first (retrieval_plan's order), so a linked table's parent is ready
        spec = TABLES_BY_NAME[sel.table]
        df = read_pinned(spark, spec, settings, sel.delta_version)
        link = next((lk for lk in LINKED_TABLES if lk.spec.name == sel.table), None)
        if link is None:
            independent[sel.table] = independent_subject_rows(df, table=sel.table, pseudonyms=pseudonyms,
                                                              start=start, end=end)
        else:
            parent = independent[link.parent.name].select(link.key).distinct()
            independent[sel.table] = df.join(parent, link.key, "left_semi")
    checks = [TableCheck(s.table, s.delta_version, timed[s.table][0], independent[s.table].count(),
                         round(timed[s.table][1], 3), s.linked_by) for s in selections]
    problems = [f"{c.table}: retrieved {c.retrieved_rows} rows, the independent count at version "
                f"{c.delta_version} is {c.independent_rows}" for c in checks if not c.complete]
    if BRONZE_CALL_EVENTS.name in by_table:
        events = spark.read.parquet(str(files[BRONZE_CALL_EVENTS.name]))
        for landing in (BRONZE_INGESTED_OBJECTS, AUDIT_LANDING_INTEGRITY):
            if landing.name not in by_table:
                problems.append(f"{landing.name}: not retrieved, so no bronze event can be traced to its landing object")
                continue
            missing = untraced_objects(events, spark.read.parquet(str(files[landing.name])))
            count = missing.count()
            if count:
                examples = sorted(r["object_key"] for r in missing.limit(3).collect())
                problems.append(f"{landing.name}: {count} landing object(s) of retrieved bronze events are not in the "
                                f"retrieved rows, e.g. {', '.join(examples)}")
    return checks, problems


def render(report: DrillReport) -> str:
    lines = [f"forensics drill {report.start}..{report.end} ({(report.end - report.start).days + 1} days) as role "
             f"{report.role}: {'COMPLETE' if report.complete else 'INCOMPLETE'}",
             f"  subject: {report.subject}",
             f"  retrieval wall time: {report.retrieval_seconds:.2f} s for "
             f"{sum(t.retrieved_rows for t in report.tables)} rows in {len(report.tables)} tables"]
    for t in report.tables:
        lines.append(f"  {t.table:<30} v{t.delta_version:<5} {t.retrieved_rows:>8} rows  {t.seconds:7.2f} s  "
                     f"independent {t.independent_rows:>8}  {'ok' if t.complete else 'MISMATCH'}"
                     + (f"  (by {t.linked_by})" if t.linked_by else ""))
    lines += [f"  skipped {name}: {why}" for name, why in report.skipped_tables.items()]
    lines += [f"  PROBLEM: {p}" for p in report.problems]
    return "\n".join(lines)
