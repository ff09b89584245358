"""Data-subject requests (GDPR art. 15, 17, 20; CCPA 1798.105, 1798.110): `voiplake dsr export | delete`.

The subject is named by MSISDN and found through its keyed pseudonym under every key id of the pseudonym ring
(`jobs.governance.forensics.subject_pseudonyms`), so rows written before a key rotation are found too. The MSISDN itself is
written nowhere: not in the export, the receipt, the access log or the run report.

What each registry table gets is decided once, by rule, in `lake_layout.dsr_scope.table_scope` (so a table added
later is classified without touching this module):

    erase         tables holding subscriber_pseudonym / callee_pseudonym (bronze.call_events, silver.calls,
                  reference.subscriber_consent, gold.support_triggers): rows where the subject is the
                  subscriber (caller) are deleted. Where the subject is only the CALLEE, the row is the caller's
                  data: it is kept and its callee_pseudonym set to NULL (redacted), so the caller's history,
                  billing and aggregates stay intact while nothing links the call to the subject any more.
    erase_linked  row-level tables without a subscriber column but keyed by the subject's call_id / event_id
                  (silver.quarantine, bronze.quarantine): rows of the subject's own calls (as caller) are deleted.
    retained      financial records (gold.billing_rated_calls: kept as commercial and tax law require, GDPR
                  art. 17(3)(b), CCPA 1798.105(d)(8); once silver and bronze are erased no table maps their
                  call_id to the subject) and audit records holding pseudonyms (audit.legal_holds,
                  audit.dsr_requests: accountability, art. 5(2)). Exported when call-linked, never deleted.
    anonymous     silver/gold aggregates without subscriber-level columns: not personal data, left as they are
                  and listed in the receipt's anonymous_tables_left.
    not_personal  operational and audit metadata without personal data.

Export writes `<out>/<request_id>/`: per exported table `<table>.jsonl` and `<table>.csv` (the same rows,
machine-readable, with a `subject_role` column: subscriber | callee | linked) and `manifest.json` (request id,
generated_at, the pseudonyms searched, per table the Delta version read, row counts and per file SHA-256 and
size). Restricted columns (ciphertext of original IPs and precise location) are withheld and named in the
manifest; in callee rows the caller's pseudonyms and personal columns are nulled (art. 15(4): another person's
data). Export is never refused by a legal hold.

Delete first checks the active legal holds (`jobs.governance.legal_holds`): if any hold covers any row the request would
delete or redact, nothing is changed, a receipt with status `refused` naming the holds and their cases is
recorded and `DsrRefused` is raised (CLI exit 8). Otherwise it deletes / redacts, then VACUUMs every touched
table with RETAIN 0 HOURS so no older Delta version can still be read (time travel to it fails: its files are
gone). `spark.databricks.delta.retentionDurationCheck.enabled` is switched off only around those VACUUMs and
restored. RETAIN 0 HOURS also removes files a concurrent writer has written but not yet committed: run deletions
when no pipeline writes the tables (the DSR DAG runs one request at a time).

Residuals the receipt states rather than hides:
* Landing objects hold the raw MSISDN (of the caller, and of the callee in the callee_msisdn field). This module
  does NOT delete them: their expiry belongs to the retention job. The receipt lists the landing object keys
  holding the subject (bronze.call_events.object_key, reference.subscriber_consent.source_object_key).
* Delta's commit log (`_delta_log/*.json`) is never VACUUMed. Tables keep no statistics of personal columns
  (TableSpec.stats_columns, set by jobs.platform.lake.ensure_table) and the erasure runs as MERGEs against a
  DataFrame of the subject's values, so no log entry holds a pseudonym (tests/jobs/governance/test_governance_s3.py
  reads every object under the tables' prefixes on the object store). Commits written before a table got that
  property can still hold pseudonyms in their min/max statistics until Delta's log retention
  (delta.logRetentionDuration, 30 days) removes them: the receipt counts, per table, the log files still mentioning
  a pseudonym (`log_files_with_subject`).

Every request is recorded: the receipt in audit.dsr_requests (MERGE on request_id + kind, so re-running a
request records it again and a completed delete finds nothing more), the access in audit.access_log (action
`export` or `dsr_delete`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

from jobs.platform import lake
from jobs.platform.identifiers import E164
from jobs.governance.forensics import subject_pseudonyms
from jobs.platform.keys import KeyMaterial
from lake_layout.access import AccessDenied
from lake_layout.access import role as access_role
from lake_layout.config import PROJECT_ROOT, Settings
from lake_layout.dsr_scope import (
    CALLEE_COLUMN,
    LINK_COLUMNS,
    SUBJECT_COLUMN,
    TableScope,
    Treatment,
    dsr_scopes,
    table_scope,
)
from lake_layout.registry import Classification, Sensitivity, TableSpec
from lake_layout.tables import ALL_TABLES, AUDIT_DSR_REQUESTS, BRONZE_CALL_EVENTS, REFERENCE_SUBSCRIBER_CONSENT

__all__ = ["TableScope", "Treatment", "dsr_scopes", "table_scope", "export", "delete", "receipts"]

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# Landing objects (raw MSISDNs) a subject's rows came from, per table.
LANDING_KEY_COLUMNS = {BRONZE_CALL_EVENTS.name: "object_key", REFERENCE_SUBSCRIBER_CONSENT.name: "source_object_key"}
REFUSED_EXIT = 8  # `voiplake dsr delete` exit status when a legal hold refuses the request
DEFAULT_OUT = PROJECT_ROOT / "build" / "dsr"  # exports land in <out>/<request_id> (git-ignored build/)
MANIFEST = "manifest.json"
KINDS = ("export", "delete")
_RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"


class DsrError(ValueError):
    """A request that cannot run as given (bad MSISDN or request id, role not allowed)."""


class DsrRefused(Exception):
    """A deletion refused because legal holds cover some of the subject's data; nothing was changed."""

    def __init__(self, message: str, receipt: dict[str, Any]) -> None:
        super().__init__(message)
        self.receipt = receipt


# ---------------------------------------------------------------------------------------------- validation


def check_request(*, msisdn: str, request_id: str) -> None:
    """Raise DsrError unless the MSISDN is E.164 (as bronze stores it) and the request id is a plain name."""
    if not E164.match(msisdn or ""):
        raise DsrError("the subscriber must be an E.164 MSISDN such as +4915112345678 (as the clients upload it)")
    if not request_id or any(c in request_id for c in "/\\ ") or request_id.startswith("."):
        raise DsrError(f"request id {request_id!r} must be a non-empty name without spaces or path separators")


def require_dsr_role(role_name: str, scopes: Iterable[TableScope] | None = None) -> None:
    """Raise AccessDenied unless the role may read pseudonymous data in every table a request touches or exports.

    No extra policy notion: data engineers and security qualify by their read globs and clearance."""
    r = access_role(role_name)
    needed = [s.spec.name for s in (dsr_scopes() if scopes is None else scopes) if s.exported or s.changed_by_delete]
    closed = [t for t in needed if not r.may_read_table(t)]
    if r.clearance.rank < Sensitivity.CONFIDENTIAL.rank or closed:
        raise AccessDenied(f"role {role_name!r} may not handle data-subject requests: it needs confidential clearance "
                           f"and every personal-data table (closed to it: {closed or 'none'})")


# ---------------------------------------------------------------------------------------------- selection


def _in_list(values: Iterable[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(set(values)))


def subject_predicate(spec: TableSpec, pseudonyms: Iterable[str]) -> str | None:
    """Spark SQL true for rows whose subscriber_pseudonym is the subject's (None: the table has no such column)."""
    if SUBJECT_COLUMN not in spec.column_names:
        return None
    return f"`{SUBJECT_COLUMN}` IN ({_in_list(pseudonyms)})"


def callee_predicate(spec: TableSpec, pseudonyms: Iterable[str]) -> str | None:
    """Spark SQL true for rows where the subject is only the callee (None: the table has no callee column)."""
    if CALLEE_COLUMN not in spec.column_names:
        return None
    own = subject_predicate(spec, pseudonyms)
    callee = f"`{CALLEE_COLUMN}` IN ({_in_list(pseudonyms)})"
    return callee if own is None else f"{callee} AND NOT coalesce({own}, false)"


def subject_rows(table: "DataFrame", *, scope: TableScope, pseudonyms: Iterable[str],
                 links: "DataFrame | None" = None) -> "DataFrame":
    """The subject's rows of one table with a `subject_role` column: subscriber | callee | linked.

    `links`: one column named scope.link_column holding the subject's call / event ids (needed for linked tables).
    Rows are those a delete changes (erase, erase_linked) or an export includes (also call-linked retained)."""
    from pyspark.sql import functions as F

    pseudonyms = sorted(set(pseudonyms))
    if scope.treatment is Treatment.ERASE:
        own = subject_predicate(scope.spec, pseudonyms)
        callee = callee_predicate(scope.spec, pseudonyms)
        role = F.when(F.expr(own), F.lit("subscriber")) if own else None
        if callee:
            role = (role.when(F.expr(callee), F.lit("callee")) if role is not None
                    else F.when(F.expr(callee), F.lit("callee")))
        assert role is not None
        return table.withColumn("subject_role", role).where(F.col("subject_role").isNotNull())
    if scope.link_column is not None and links is not None:
        return table.join(links.select(scope.link_column).distinct(), on=scope.link_column, how="left_semi") \
            .withColumn("subject_role", F.lit("linked"))
    return table.where(F.lit(False)).withColumn("subject_role", F.lit(None).cast("string"))


def export_view(rows: "DataFrame", *, spec: TableSpec) -> "DataFrame":
    """What the subject receives of `rows` (from `subject_rows`): restricted ciphertext columns dropped; in callee
    rows every pseudonymous / personal column but callee_pseudonym nulled (they describe the caller)."""
    from pyspark.sql import functions as F

    caller_columns = {c.name for c in spec.columns
                      if c.classification in (Classification.PSEUDONYMOUS, Classification.PERSONAL)} - {CALLEE_COLUMN}
    out = []
    for c in spec.columns:
        if c.classification is Classification.RESTRICTED:
            continue
        col = F.col(c.name)
        if c.name in caller_columns:
            col = F.when(F.col("subject_role") == "callee", F.lit(None)).otherwise(col).cast(rows.schema[c.name].dataType)
        out.append(col.alias(c.name))
    return rows.select(F.col("subject_role"), *out)


def withheld_columns(spec: TableSpec) -> list[str]:
    return spec.columns_of(Classification.RESTRICTED)


# ---------------------------------------------------------------------------------------------- receipt


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def receipt_row(*, request_id: str, kind: str, status: str, pseudonyms: Mapping[str, str],
                tables: Mapping[str, Mapping[str, Any]], scopes: Sequence[TableScope], actor: str,
                requested_at: datetime, completed_at: datetime | None, landing_objects: Sequence[str] = (),
                hold_ids: Sequence[str] = (), refusal_reason: str | None = None, output: str | None = None) -> dict[str, Any]:
    """One audit.dsr_requests row. rows_total counts rows found (export) or deleted plus redacted (delete)."""
    if kind not in KINDS:
        raise DsrError(f"kind must be one of {KINDS}, got {kind!r}")
    if status not in ("completed", "refused"):
        raise DsrError(f"status must be completed or refused, got {status!r}")
    if status == "refused" and not refusal_reason:
        raise DsrError("a refused request needs its refusal_reason")
    total = sum(int(sum(t.get("rows", {}).values())) for t in tables.values())
    return {
        "request_id": request_id, "kind": kind, "status": status,
        "subscriber_pseudonyms": _json(sorted(set(pseudonyms.values()))),
        "tables": _json(tables), "rows_total": total if status == "completed" else 0,
        "anonymous_tables_left": _json(sorted(s.spec.name for s in scopes if s.treatment is Treatment.ANONYMOUS)),
        "retained_tables": _json({s.spec.name: s.reason for s in scopes if s.treatment is Treatment.RETAINED}),
        "landing_objects": _json(sorted(set(landing_objects))), "hold_ids": _json(sorted(set(hold_ids))),
        "refusal_reason": refusal_reason, "actor": actor, "requested_at": requested_at,
        "completed_at": completed_at, "output": output,
    }


def cumulative_tables(previous: Mapping[str, Mapping[str, Any]] | None,
                      current: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The per-table account of a request over all its runs: rows summed per kind, the first run's
    delta_version_before, the latest run's other fields. A re-run that finds nothing keeps the first run's counts."""
    out = {name: dict(entry) for name, entry in (previous or {}).items()}
    for name, entry in current.items():
        before = out.get(name)
        merged = dict(entry)
        if before is not None:
            rows = dict(before.get("rows", {}))
            for kind, n in entry.get("rows", {}).items():
                rows[kind] = rows.get(kind, 0) + n
            merged["rows"] = rows
            merged["delta_version_before"] = before.get("delta_version_before", entry.get("delta_version_before"))
            merged["files_removed"] = (before.get("files_removed") or 0) + (entry.get("files_removed") or 0)
            if not entry.get("rows") and "log_files_with_subject" in before:
                merged.setdefault("log_files_with_subject", before["log_files_with_subject"])
        out[name] = merged
    return out


def record_receipt(spark: "SparkSession", settings: Settings, receipt: Mapping[str, Any]) -> None:
    df = spark.createDataFrame([dict(receipt)], AUDIT_DSR_REQUESTS.spark_schema())
    lake.upsert(spark, df, AUDIT_DSR_REQUESTS, settings)


def _record_access(spark: "SparkSession", settings: Settings, *, kind: str, request_id: str, actor: str, role: str,
                   pseudonyms: Mapping[str, str], tables: Iterable[str], rows: int | None, allowed: bool,
                   reason: str | None) -> None:
    from jobs.platform.access_log import record_access

    statement = (f"voiplake dsr {kind} --request-id {request_id} (subject pseudonyms "
                 f"{', '.join(sorted(set(pseudonyms.values())))})")
    record_access(spark, settings, user=actor, role=role, action="export" if kind == "export" else "dsr_delete",
                  sql=statement, tables=tables, columns=[], rows=rows, allowed=allowed, reason=reason)


# ---------------------------------------------------------------------------------------------- helpers with I/O


@dataclass(frozen=True)
class DsrReport:
    request_id: str
    kind: str
    status: str
    receipt: dict[str, Any]
    output: str | None = None
    files: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps({"request_id": self.request_id, "kind": self.kind, "status": self.status,
                                      "output": self.output, "files": self.files, "receipt": self.receipt},
                                     default=str))


def _read(spark: "SparkSession", settings: Settings, spec: TableSpec, version: int) -> "DataFrame":
    return spark.read.format("delta").option("versionAsOf", version).load(spec.location(settings))


def _versions(spark: "SparkSession", settings: Settings, scopes: Iterable[TableScope]) -> dict[str, int]:
    out = {}
    for s in scopes:
        version = lake.table_version(spark, s.spec, settings)
        if version is not None:
            out[s.spec.name] = version
    return out


def subject_links(spark: "SparkSession", settings: Settings, *, pseudonyms: Iterable[str],
                  versions: Mapping[str, int]) -> dict[str, list[str]]:
    """The subject's own call ids and event ids (as subscriber) from every erase table having them (read at the
    pinned versions), so later deletions of those tables do not change them."""
    ids: dict[str, set[str]] = {c: set() for c in LINK_COLUMNS}
    for spec in ALL_TABLES:
        own = subject_predicate(spec, pseudonyms)
        columns = [c for c in LINK_COLUMNS if c in spec.column_names]
        # only call records (they have call_id) name the call events other tables point at
        if own is None or "call_id" not in columns or spec.name not in versions:
            continue
        # One subject's calls: bounded by one person's activity, so collecting them is safe.
        for row in _read(spark, settings, spec, versions[spec.name]).where(own).select(*columns).distinct().collect():
            for column in columns:
                if row[column] is not None:
                    ids[column].add(str(row[column]))
    return {c: sorted(values) for c, values in ids.items()}


def links_frame(spark: "SparkSession", column: str, ids: Sequence[str]) -> "DataFrame":
    from pyspark.sql import types as T

    return spark.createDataFrame([(v,) for v in ids], T.StructType([T.StructField(column, T.StringType())]))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.astimezone()  # Spark hands naive datetimes in the local zone
        return aware.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _write_rows(rows: Iterator[Any], columns: list[str], jsonl: Path, csv_path: Path) -> dict[str, int]:
    """Write rows as JSON lines and CSV (same order); returns the rows written per subject_role."""
    by_role: dict[str, int] = {}
    with jsonl.open("w", encoding="utf-8") as j, csv_path.open("w", encoding="utf-8", newline="") as c:
        writer = csv.writer(c)
        writer.writerow(columns)
        for row in rows:
            values = [_plain(row[name]) for name in columns]
            j.write(json.dumps(dict(zip(columns, values)), ensure_ascii=False) + "\n")
            writer.writerow(["" if v is None else v for v in values])
            by_role[row["subject_role"]] = by_role.get(row["subject_role"], 0) + 1
    return by_role


# ---------------------------------------------------------------------------------------------- export


def export(spark: "SparkSession", settings: Settings, keys: KeyMaterial, *, msisdn: str, request_id: str, out: Path,
           actor: str, role: str = "data_engineer", now: datetime | None = None) -> DsrReport:
    """Write the subject's data (right of access / portability) to `out/<request_id>` and record the receipt.

    Contract: for every exported table that exists, one JSON-lines and one CSV file holding exactly the rows
    where the subject is the subscriber, the callee, or (call-linked tables) the caller of the call, read at one
    pinned Delta version each; manifest.json lists each file's SHA-256, size and rows. A re-run replaces the
    directory and the receipt. Never refused by a legal hold."""
    check_request(msisdn=msisdn, request_id=request_id)
    scopes = dsr_scopes()
    pseudonyms = subject_pseudonyms(keys, msisdn)
    try:
        require_dsr_role(role, scopes)
    except AccessDenied as exc:
        _record_access(spark, settings, kind="export", request_id=request_id, actor=actor, role=role,
                       pseudonyms=pseudonyms, tables=[], rows=None, allowed=False, reason=str(exc))
        raise
    requested_at = now or datetime.now(timezone.utc)
    exported = [s for s in scopes if s.exported]
    versions = _versions(spark, settings, exported)
    links = subject_links(spark, settings, pseudonyms=pseudonyms.values(), versions=versions)

    target = out / request_id
    staging = out / f".{request_id}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    tables: dict[str, dict[str, Any]] = {}
    files: list[dict[str, Any]] = []
    for scope in exported:
        name = scope.spec.name
        if name not in versions:
            continue
        link = links_frame(spark, scope.link_column, links[scope.link_column]) if scope.link_column else None
        rows = subject_rows(_read(spark, settings, scope.spec, versions[name]), scope=scope,
                            pseudonyms=pseudonyms.values(), links=link)
        view = export_view(rows, spec=scope.spec).orderBy(*[c for c in (*scope.spec.merge_keys, "subject_role")])
        jsonl, csv_path = staging / f"{name}.jsonl", staging / f"{name}.csv"
        # A subject's rows: streamed to the driver (one sorted partition, one job), never collected at once.
        by_role = _write_rows(view.coalesce(1).toLocalIterator(), view.columns, jsonl, csv_path)
        n = sum(by_role.values())
        tables[name] = {"treatment": scope.treatment.value, "delta_version": versions[name], "rows": by_role,
                        "withheld_columns": withheld_columns(scope.spec)}
        for path in (jsonl, csv_path):
            files.append({"path": path.name, "table": name, "format": "jsonl" if path is jsonl else "csv",
                          "rows": n, "sha256": _sha256(path), "size": path.stat().st_size,
                          "delta_version": versions[name]})
    manifest = {
        "request_id": request_id, "kind": "export", "generated_at": requested_at.isoformat(timespec="seconds"),
        "generated_by": actor, "subject": {"column": SUBJECT_COLUMN, "pseudonyms_by_key_id": pseudonyms},
        "tables": tables, "files": files,
        "withheld": "restricted columns (ciphertext of original IPs and precise location) are not exported; in "
                    "callee rows the caller's pseudonyms and personal columns are nulled (another person's data)",
        "not_exported": {s.spec.name: s.reason for s in scopes if s.treatment is Treatment.RETAINED and not s.exported},
        "anonymous_tables": sorted(s.spec.name for s in scopes if s.treatment is Treatment.ANONYMOUS),
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)

    receipt = receipt_row(request_id=request_id, kind="export", status="completed", pseudonyms=pseudonyms,
                          tables=tables, scopes=scopes, actor=actor, requested_at=requested_at,
                          completed_at=datetime.now(timezone.utc), output=str(target / MANIFEST))
    record_receipt(spark, settings, receipt)
    _record_access(spark, settings, kind="export", request_id=request_id, actor=actor, role=role,
                   pseudonyms=pseudonyms, tables=sorted(tables), rows=receipt["rows_total"], allowed=True, reason=None)
    return DsrReport(request_id, "export", "completed", receipt, str(target), files)


# ---------------------------------------------------------------------------------------------- delete


@contextmanager
def retention_check_disabled(spark: "SparkSession") -> Iterator[None]:
    """Let VACUUM ... RETAIN 0 HOURS run (Delta refuses it by default); the previous setting is restored."""
    previous = spark.conf.get(_RETENTION_CHECK, None)
    spark.conf.set(_RETENTION_CHECK, "false")
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(_RETENTION_CHECK)
        else:
            spark.conf.set(_RETENTION_CHECK, previous)


def _vacuum(spark: "SparkSession", location: str) -> int | None:
    """VACUUM RETAIN 0 HOURS; returns the data files it deleted (from the VACUUM END commit), None if unknown."""
    from delta.tables import DeltaTable

    with retention_check_disabled(spark):
        spark.sql(f"VACUUM delta.`{location}` RETAIN 0 HOURS")
    for row in DeltaTable.forPath(spark, location).history(5).select("operation", "operationMetrics").collect():
        if row["operation"] == "VACUUM END":
            return int((row["operationMetrics"] or {}).get("numDeletedFiles", 0))
    return None


def _purge_deletion_vectors(spark: "SparkSession", location: str) -> None:
    """With deletion vectors a DELETE only masks rows: rewrite the files so the bytes go before VACUUM."""
    properties = spark.sql(f"DESCRIBE DETAIL delta.`{location}`").first()["properties"] or {}
    if str(properties.get("delta.enableDeletionVectors", "false")).lower() == "true":
        spark.sql(f"REORG TABLE delta.`{location}` APPLY (PURGE)")


def _values(spark: "SparkSession", values: Iterable[str]) -> "DataFrame":
    return spark.createDataFrame([(v,) for v in sorted(set(values))], "value string")


def _merge_on(table: Any, column: str, values: "DataFrame") -> Any:
    """A MERGE builder matching the table's rows whose `column` is one of `values` (a one-column DataFrame)."""
    return table.alias("t").merge(values.alias("s"), f"t.`{column}` = s.value")


def log_files_with_subject(spark: "SparkSession", location: str, pseudonyms: Iterable[str]) -> int:
    """Delta commit files (_delta_log/*.json) that still mention a pseudonym (min/max statistics of old versions)."""
    from pyspark.sql import functions as F

    if "://" not in location:  # a local lake: read the commit files directly, no Spark job needed
        needles = [p.encode() for p in set(pseudonyms)]
        log_dir = Path(location.removeprefix("file:")) / "_delta_log"
        return sum(1 for f in log_dir.glob("*.json") if any(n in f.read_bytes() for n in needles))
    condition = None
    for p in sorted(set(pseudonyms)):
        hit = F.instr(F.col("value"), p) > 0
        condition = hit if condition is None else condition | hit
    assert condition is not None
    log = spark.read.text(f"{location}/_delta_log/*.json")
    return log.where(condition).select(F.input_file_name()).distinct().count()


def affected_summary(rows: "DataFrame", *, scope: TableScope, holds: Sequence[Any]) -> "DataFrame":
    """One row per subject_role of `rows` (from `subject_rows`): `rows`, per hold `held_<i>` (rows the i-th hold
    covers; 0 if it cannot cover the table) and `landing` (landing object keys the rows came from, if any)."""
    from pyspark.sql import functions as F

    aggregates = [F.count(F.lit(1)).alias("rows")]
    for i, hold in enumerate(holds):
        covers = hold.covers_sql(scope.spec)
        held = F.lit(0) if covers is None else F.expr(covers).cast("int")
        aggregates.append(F.coalesce(F.sum(held), F.lit(0)).alias(f"held_{i}"))
    landing = LANDING_KEY_COLUMNS.get(scope.spec.name)
    aggregates.append(F.collect_set(landing).alias("landing") if landing
                      else F.array().cast("array<string>").alias("landing"))
    return rows.groupBy("subject_role").agg(*aggregates)


def delete(spark: "SparkSession", settings: Settings, keys: KeyMaterial, *, msisdn: str, request_id: str,
           actor: str, role: str = "data_engineer", now: datetime | None = None) -> DsrReport:
    """Erase the subject from every table holding personal data (right to erasure) and record the receipt.

    Contract: unless an active legal hold covers any affected row (then nothing changes, the refused receipt is
    recorded and DsrRefused raised), afterwards no current row of an erase / erase_linked table has the subject as
    subscriber, callee or linked call, every touched table was VACUUMed with RETAIN 0 HOURS (older versions that
    held the subject cannot be read), and the receipt lists per table the rows deleted (subscriber, linked) and
    redacted (callee), the Delta versions before and after and the files removed. Re-running a completed request
    changes nothing and records the receipt again."""
    check_request(msisdn=msisdn, request_id=request_id)
    scopes = dsr_scopes()
    pseudonyms = subject_pseudonyms(keys, msisdn)
    psn = sorted(set(pseudonyms.values()))
    try:
        require_dsr_role(role, scopes)
    except AccessDenied as exc:
        _record_access(spark, settings, kind="delete", request_id=request_id, actor=actor, role=role,
                       pseudonyms=pseudonyms, tables=[], rows=None, allowed=False, reason=str(exc))
        raise
    requested_at = now or datetime.now(timezone.utc)
    changed = {s.spec.name: s for s in scopes if s.changed_by_delete}
    versions = _versions(spark, settings, changed.values())
    links = subject_links(spark, settings, pseudonyms=psn, versions=versions)
    from jobs.governance import legal_holds

    holds = legal_holds.active_holds(spark, settings, on=requested_at.date())
    counts: dict[str, dict[str, int]] = {}
    landing: set[str] = set()
    blocking: list[tuple[Any, str, int]] = []
    for name, version in versions.items():
        scope = changed[name]
        link = links_frame(spark, scope.link_column, links[scope.link_column]) if scope.link_column else None
        rows = subject_rows(_read(spark, settings, scope.spec, version), scope=scope, pseudonyms=psn, links=link)
        summary = affected_summary(rows, scope=scope, holds=holds).collect()  # at most 3 rows (one per role)
        counts[name] = {r["subject_role"]: int(r["rows"]) for r in summary}
        landing.update(k for r in summary for k in r["landing"])
        for i, hold in enumerate(holds):
            held = sum(int(r[f"held_{i}"]) for r in summary)
            if held:
                blocking.append((hold, name, held))

    if blocking:
        hold_ids = sorted({h.hold_id for h, _, _ in blocking})
        reason = "data under legal hold: " + "; ".join(
            f"hold {h.hold_id} (case {h.case_id}) covers {n} row(s) of {t}" for h, t, n in blocking)
        receipt = receipt_row(request_id=request_id, kind="delete", status="refused", pseudonyms=pseudonyms,
                              tables={}, scopes=scopes, actor=actor, requested_at=requested_at, completed_at=None,
                              landing_objects=sorted(landing), hold_ids=hold_ids, refusal_reason=reason)
        record_receipt(spark, settings, receipt)
        _record_access(spark, settings, kind="delete", request_id=request_id, actor=actor, role=role,
                       pseudonyms=pseudonyms, tables=sorted({t for _, t, _ in blocking}), rows=None, allowed=False,
                       reason=reason)
        raise DsrRefused(f"dsr delete {request_id} refused, nothing was deleted: {reason}. Release the hold(s) "
                         "(voiplake hold release) or wait until they expire, then re-run with the same request id.",
                         receipt)

    from delta.tables import DeltaTable

    subject_values = _values(spark, psn)
    tables: dict[str, dict[str, Any]] = {}
    for name in sorted(versions, key=lambda n: changed[n].treatment is Treatment.ERASE):  # linked rows first
        scope, found = changed[name], counts[name]
        location = scope.spec.location(settings)
        table = DeltaTable.forPath(spark, location)
        entry: dict[str, Any] = {"treatment": scope.treatment.value, "delta_version_before": versions[name],
                                 "rows": {}, "files_removed": 0}
        # MERGEs against a DataFrame of the subject's values, never a predicate with them as literals: Delta keeps
        # an operation's predicate in the commit's commitInfo, a log entry that VACUUM does not remove.
        if found.get("subscriber"):
            _merge_on(table, SUBJECT_COLUMN, subject_values).whenMatchedDelete().execute()
            entry["rows"]["subscriber_deleted"] = found["subscriber"]
        if found.get("callee"):  # the subject's own rows are gone by now: what is left names the subject as callee
            _merge_on(table, CALLEE_COLUMN, subject_values).whenMatchedUpdate(
                set={CALLEE_COLUMN: "CAST(NULL AS STRING)"}).execute()
            entry["rows"]["callee_redacted"] = found["callee"]
        if found.get("linked"):
            assert scope.link_column is not None
            _merge_on(table, scope.link_column, _values(spark, links[scope.link_column])).whenMatchedDelete().execute()
            entry["rows"]["linked_deleted"] = found["linked"]
        if entry["rows"]:
            _purge_deletion_vectors(spark, location)
            entry["files_removed"] = _vacuum(spark, location)
            entry["log_files_with_subject"] = log_files_with_subject(spark, location, psn)
        entry["delta_version_after"] = lake.table_version(spark, scope.spec, settings)
        tables[name] = entry

    changed_now = sum(sum(e["rows"].values()) for e in tables.values())
    previous = next((r for r in receipts(spark, settings, request_id)
                     if r["kind"] == "delete" and r["status"] == "completed"), None)
    if previous is not None:  # a re-run: the receipt stays the account of the whole request
        tables = cumulative_tables(previous["tables"], tables)
        landing |= set(previous["landing_objects"] or [])
        requested_at = previous["requested_at"].astimezone(timezone.utc)
    receipt = receipt_row(request_id=request_id, kind="delete", status="completed", pseudonyms=pseudonyms,
                          tables=tables, scopes=scopes, actor=actor, requested_at=requested_at,
                          completed_at=datetime.now(timezone.utc), landing_objects=sorted(landing))
    record_receipt(spark, settings, receipt)
    _record_access(spark, settings, kind="delete", request_id=request_id, actor=actor, role=role,
                   pseudonyms=pseudonyms, tables=sorted(tables), rows=changed_now, allowed=True, reason=None)
    return DsrReport(request_id, "delete", "completed", receipt)


def receipts(spark: "SparkSession", settings: Settings, request_id: str) -> list[dict[str, Any]]:
    """The receipts of one request (export and/or delete), JSON columns decoded."""
    from pyspark.sql import functions as F

    if not lake.table_exists(spark, AUDIT_DSR_REQUESTS, settings):
        return []
    rows = lake.read_table(spark, AUDIT_DSR_REQUESTS, settings).where(F.col("request_id") == request_id).collect()
    json_columns = ("subscriber_pseudonyms", "tables", "anonymous_tables_left", "retained_tables", "landing_objects",
                    "hold_ids")
    return [{k: (json.loads(v) if k in json_columns and v is not None else v) for k, v in r.asDict().items()}
            for r in sorted(rows, key=lambda r: r["kind"])]
