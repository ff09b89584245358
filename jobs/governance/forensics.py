"""Forensic evidence bundles with a chain of custody (`voiplake forensics export | handover | verify`).

A bundle is a directory an investigator can hand to an authority:

    data/<layer>.<table>.parquet   the subject's rows of each table holding subscriber_pseudonym, in [start, end]
                                   (reference.subscriber_consent: also the row in force at start), and the rows
                                   linked to them (LINKED_TABLES: the landing objects' manifest and integrity
                                   entries, bronze / silver quarantine of those uploads and events, the rating
                                   of those calls)
    query.json                     per table: the exact Spark SQL run (Delta version pinned), time column, rows;
                                   the pseudonyms searched (one per pseudonym key id) -- never the MSISDN in clear
    manifest.json                  case id, created_at, signer key fingerprint, per file: path, SHA-256, size, rows,
                                   table, Delta version read
    manifest.sig                   Ed25519 signature over the canonical manifest bytes (`canonical_json`)
    signing_key.pub                the signer's public key (raw 32 bytes); its SHA-256 is the manifest's fingerprint
    custody.jsonl                  the chain of custody: created / handed_over / received entries, each hash-linked
                                   to the previous one of the case (also appended to audit.custody_log)

Restricted columns (ip_encrypted, location_encrypted) are exported as the ciphertext the lake holds: the bundle
never carries plaintext; an authorised decrypting role decrypts through the key provider later
(lake_layout.access.require_decrypt). The subject is found through its keyed HMAC pseudonym under every key id of
the pseudonym ring, so rows written before a key rotation are found too.

Every export, and every refusal, is recorded in audit.access_log as action "export" (the MSISDN redacted
from the statement). `jobs.governance.forensics_timeline` orders the same evidence into one timeline; `jobs.governance.forensics_drill`
times a complete retrieval and checks it is complete.

The signing key pair is made on first use at [forensics] signing_key (git-ignored build/ folder); the public key
next to it (`<signing_key>.pub`) is the trusted copy `verify` compares the bundle's key against.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from jobs.platform import lake
from jobs.platform.identifiers import pseudonymize
from jobs.platform.keys import KeyMaterial
from lake_layout.access import AccessDenied, role as access_role
from lake_layout.config import Settings
from lake_layout.registry import Sensitivity, TableSpec
from lake_layout.tables import (
    ALL_TABLES, AUDIT_CUSTODY_LOG, AUDIT_LANDING_INTEGRITY, BRONZE_CALL_EVENTS, BRONZE_INGESTED_OBJECTS,
    BRONZE_QUARANTINE, GOLD_BILLING_RATED_CALLS, SILVER_CALLS, SILVER_QUARANTINE, TABLES_BY_NAME,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SUBJECT_COLUMN = "subscriber_pseudonym"
# When a table has no date partition column, its rows are placed in time by the first of these it has.
TIME_COLUMNS = ("call_date", "event_date", "started_at", "event_ts_device", "effective_from")
# A row placed by one of these holds a state in force from then until the subject's next row: the row in force at
# the start of the range belongs to the range too (e.g. the consent that applied to the first call).
STATE_COLUMNS = ("effective_from",)
REDACTED_SUBJECT = "[redacted: see the bundle's query.json]"
CUSTODY_EVENTS = ("created", "handed_over", "received", "verified")
GENESIS = "0" * 64
VERIFY_FAILED_EXIT = 6

MANIFEST, SIGNATURE, PUBLIC_KEY, QUERY, CUSTODY = "manifest.json", "manifest.sig", "signing_key.pub", "query.json", "custody.jsonl"


class ForensicsError(ValueError):
    """A bundle cannot be made or extended (bad range, unknown bundle, role not allowed)."""


def canonical_json(value: Any) -> bytes:
    """The bytes signed and hashed: sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------- signing key


def load_signing_key(path: Path, *, create: bool = True) -> Ed25519PrivateKey:
    """The forensics Ed25519 key at `path` (PEM, PKCS8), made on first use with its public key at `<path>.pub`."""
    if not path.exists():
        if not create:
            raise ForensicsError(f"no forensics signing key at {path}; run `voiplake forensics export` once to make it")
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        path.chmod(0o600)
        trusted_public_key_path(path).write_bytes(public_bytes(key.public_key()))
        return key
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ForensicsError(f"{path} is not an Ed25519 private key")
    return key


def trusted_public_key_path(signing_key: Path) -> Path:
    return signing_key.with_name(signing_key.name + ".pub")


def public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()


# ---------------------------------------------------------------------------------------------- selection


def subject_pseudonyms(keys: KeyMaterial, msisdn: str) -> dict[str, str]:
    """The MSISDN's pseudonym under every key id of the pseudonym ring (rows keep the id they were made with)."""
    return {key_id: pseudonymize("msisdn", msisdn, key) for key_id, key in sorted(keys.pseudonym.keys.items())}


def subject_tables(tables: Iterable[TableSpec] = ALL_TABLES) -> list[TableSpec]:
    """Every registry table holding a subscriber pseudonym."""
    return [t for t in tables if SUBJECT_COLUMN in t.column_names]


def time_column(spec: TableSpec) -> str | None:
    """The column placing a row in time: a date partition column, else the first of TIME_COLUMNS it has."""
    types = {c.name: c.type for c in spec.columns}
    for name in spec.partition_by:
        if types.get(name) == "date":
            return name
    return next((c for c in TIME_COLUMNS if c in types), None)


def subject_sql(spec: TableSpec, location: str, version: int, *, pseudonyms: Iterable[str], start: date, end: date) -> str:
    """The Spark SQL selecting the subject's rows of `spec` at Delta `version` in [start, end] (UTC days, inclusive)."""
    in_list = ", ".join(f"'{p}'" for p in sorted(set(pseudonyms)))
    where = [f"`{SUBJECT_COLUMN}` IN ({in_list})"]
    column = time_column(spec)
    source = f"delta.`{location}` VERSION AS OF {version}"
    if column is not None:
        if {c.name: c.type for c in spec.columns}[column] == "date":
            where.append(f"`{column}` BETWEEN DATE'{start.isoformat()}' AND DATE'{end.isoformat()}'")
        elif column in STATE_COLUMNS:  # in range, or the subject's latest row at or before the start (in force then)
            where.append(f"(`{column}` >= TIMESTAMP'{start.isoformat()} 00:00:00' "
                         f"AND `{column}` < TIMESTAMP'{(end + timedelta(days=1)).isoformat()} 00:00:00' "
                         f"OR `{column}` = (SELECT max(s.`{column}`) FROM {source} AS s "
                         f"WHERE s.`{SUBJECT_COLUMN}` = t.`{SUBJECT_COLUMN}` "
                         f"AND s.`{column}` <= TIMESTAMP'{start.isoformat()} 00:00:00'))")
        else:
            where.append(f"`{column}` >= TIMESTAMP'{start.isoformat()} 00:00:00' "
                         f"AND `{column}` < TIMESTAMP'{(end + timedelta(days=1)).isoformat()} 00:00:00'")
    return f"SELECT * FROM {source} AS t WHERE " + " AND ".join(where)


@dataclass(frozen=True)
class LinkedTable:
    """A table without a subscriber column whose rows belong to the subject through `key` of the subject's rows
    of `parent` (e.g. the landing objects its bronze events came from)."""

    spec: TableSpec
    key: str
    parent: TableSpec


LINKED_TABLES = (
    LinkedTable(BRONZE_INGESTED_OBJECTS, "object_key", BRONZE_CALL_EVENTS),
    LinkedTable(AUDIT_LANDING_INTEGRITY, "object_key", BRONZE_CALL_EVENTS),
    LinkedTable(BRONZE_QUARANTINE, "object_key", BRONZE_CALL_EVENTS),  # an upload is one device's batch
    LinkedTable(SILVER_QUARANTINE, "event_id", BRONZE_CALL_EVENTS),
    LinkedTable(GOLD_BILLING_RATED_CALLS, "call_id", SILVER_CALLS),
)


def linked_sql(link: LinkedTable, location: str, version: int, *, parent_sql: str) -> str:
    """The Spark SQL selecting the rows of `link.spec` at Delta `version` whose key is in the subject's parent rows."""
    return (f"SELECT * FROM delta.`{location}` VERSION AS OF {version} "
            f"WHERE `{link.key}` IN (SELECT `{link.key}` FROM ({parent_sql}))")


@dataclass(frozen=True)
class Selection:
    """One table's part of a subject's retrieval: the SQL run at a pinned Delta version."""

    table: str
    delta_version: int
    sql: str
    time_column: str | None
    linked_by: str | None = None  # "<key> of <parent table>" for a linked table


def retrieval_plan(spark: "SparkSession", settings: Settings, *, pseudonyms: Iterable[str], start: date, end: date,
                   role: str) -> tuple[list[Selection], dict[str, str]]:
    """The selections of a complete retrieval of the subject's rows in [start, end] readable by `role`: every
    subject table, then every linked table whose parent was selected; and the tables skipped, with why.

    Each table's Delta version is read once, so a linked table's subquery reads its parent at the same version
    the parent's own selection does."""
    allowed = access_role(role)
    pseudonyms = sorted(set(pseudonyms))
    selections: dict[str, Selection] = {}
    skipped: dict[str, str] = {}
    for spec in subject_tables():
        if not allowed.may_read_table(spec.name):
            skipped[spec.name] = f"closed to role {role}"
            continue
        version = lake.table_version(spark, spec, settings)
        if version is None:
            skipped[spec.name] = "table does not exist"
            continue
        sql = subject_sql(spec, spec.location(settings), version, pseudonyms=pseudonyms, start=start, end=end)
        selections[spec.name] = Selection(spec.name, version, sql, time_column(spec))
    for link in LINKED_TABLES:
        name = link.spec.name
        if not allowed.may_read_table(name):
            skipped[name] = f"closed to role {role}"
            continue
        parent = selections.get(link.parent.name)
        if parent is None:
            skipped[name] = f"its parent {link.parent.name} is not selected ({skipped.get(link.parent.name)})"
            continue
        version = lake.table_version(spark, link.spec, settings)
        if version is None:
            skipped[name] = "table does not exist"
            continue
        sql = linked_sql(link, link.spec.location(settings), version, parent_sql=parent.sql)
        selections[name] = Selection(name, version, sql, None, f"{link.key} of {link.parent.name}")
    return list(selections.values()), skipped


# ---------------------------------------------------------------------------------------------- custody chain


def custody_entry(prev: dict[str, Any] | None, *, case_id: str, event: str, manifest_sha256: str,
                  from_party: str, to_party: str, at: datetime, note: str = "") -> dict[str, Any]:
    """The next custody entry of a case, linked to `prev` (None for the first): entry_hash =
    SHA-256(prev_hash + canonical JSON of the entry without its hashes)."""
    if event not in CUSTODY_EVENTS:
        raise ForensicsError(f"unknown custody event {event!r}; known: {list(CUSTODY_EVENTS)}")
    if not from_party or not to_party:
        raise ForensicsError("a custody entry needs both parties (--from and --to)")
    body = {"case_id": case_id, "seq": 0 if prev is None else int(prev["seq"]) + 1, "event": event,
            "manifest_sha256": manifest_sha256, "from_party": from_party, "to_party": to_party,
            "at": at.astimezone(timezone.utc).isoformat(timespec="microseconds"), "note": note}
    prev_hash = GENESIS if prev is None else str(prev["entry_hash"])
    return {**body, "prev_hash": prev_hash, "entry_hash": _entry_hash(prev_hash, body)}


def _entry_hash(prev_hash: str, body: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical_json(body)).hexdigest()


def check_custody_chain(entries: list[dict[str, Any]], *, case_id: str, manifest_sha256: str) -> list[str]:
    """Problems of a custody chain: broken links, altered entries, gaps, wrong case or manifest, no `created` first."""
    problems: list[str] = []
    if not entries:
        return ["custody: the chain is empty (no `created` entry)"]
    prev_hash = GENESIS
    for i, entry in enumerate(entries):
        where = f"custody entry {i}"
        body = {k: v for k, v in entry.items() if k not in ("prev_hash", "entry_hash")}
        if entry.get("seq") != i:
            problems.append(f"{where}: seq {entry.get('seq')!r}, expected {i} (an entry was removed or reordered)")
        if entry.get("prev_hash") != prev_hash:
            problems.append(f"{where}: prev_hash does not link to the previous entry (removed or reordered entry)")
        if _entry_hash(str(entry.get("prev_hash")), body) != entry.get("entry_hash"):
            problems.append(f"{where} ({entry.get('event')}): entry_hash does not match its content (altered entry)")
        if entry.get("case_id") != case_id:
            problems.append(f"{where}: case_id {entry.get('case_id')!r} is not the bundle's case {case_id!r}")
        if entry.get("manifest_sha256") != manifest_sha256:
            problems.append(f"{where}: manifest_sha256 is not the SHA-256 of this bundle's manifest")
        prev_hash = str(entry.get("entry_hash"))
    if entries[0].get("event") != "created":
        problems.append("custody entry 0: the chain must start with a `created` entry")
    return problems


def read_custody(bundle: Path) -> list[dict[str, Any]]:
    path = bundle / CUSTODY
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _record_custody(spark: "SparkSession | None", settings: Settings, bundle: Path, entry: dict[str, Any]) -> None:
    with (bundle / CUSTODY).open("a") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")
    if spark is not None:
        row = {**entry, "at": datetime.fromisoformat(entry["at"])}
        df = spark.createDataFrame([row], AUDIT_CUSTODY_LOG.spark_schema())
        lake.merge_insert_new(spark, df, AUDIT_CUSTODY_LOG, settings)


def custody_log_entries(spark: "SparkSession", settings: Settings, case_id: str) -> list[dict[str, Any]] | None:
    """The case's entries in audit.custody_log, by seq (None if the table does not exist)."""
    from pyspark.sql import functions as F

    if not lake.table_exists(spark, AUDIT_CUSTODY_LOG, settings):
        return None
    rows = (lake.read_table(spark, AUDIT_CUSTODY_LOG, settings).where(F.col("case_id") == case_id)
            .orderBy("seq").collect())  # one row per hand-over of one case: small by construction
    return [{**r.asDict(), "at": r["at"].replace(tzinfo=timezone.utc).isoformat(timespec="microseconds")} for r in rows]


# ---------------------------------------------------------------------------------------------- export


@dataclass(frozen=True)
class BundleReport:
    bundle: str
    case_id: str
    manifest_sha256: str
    files: list[dict[str, Any]]
    skipped_tables: dict[str, str] = field(default_factory=dict)


def require_forensics_role(role_name: str) -> None:
    """Forensic exports carry restricted ciphertext: only a role with restricted clearance that may decrypt."""
    r = access_role(role_name)
    if r.clearance is not Sensitivity.RESTRICTED or not r.may_decrypt:
        raise AccessDenied(f"role {role_name!r} may not export forensic evidence; roles that may: "
                           f"{sorted(n for n, x in _roles().items() if x.may_decrypt)}")


def _roles() -> dict[str, Any]:
    from lake_layout.access import ROLES

    return ROLES


def export(spark: "SparkSession", settings: Settings, keys: KeyMaterial, *, case_id: str, msisdn: str,
           start: date, end: date, out_dir: Path, handler: str, role: str = "security",
           now: datetime | None = None) -> BundleReport:
    """Write the evidence bundle of one subscriber for [start, end] (UTC days) into `out_dir/<case_id>`.

    Contract: every table of the registry with subscriber_pseudonym that exists and `role` may read gives one
    Parquet file holding exactly the rows whose pseudonym is the MSISDN's under any pseudonym key id and whose time
    column is in range (a state table: also each pseudonym's row in force at `start`), read at a pinned Delta
    version, plus one file per readable LINKED_TABLES table of the rows linked to those; the MSISDN itself is
    written nowhere; the manifest is signed; custody starts with one `created` entry by `handler` (also in
    audit.custody_log); the export (or its refusal) is one audit.access_log entry, action "export".
    """
    statement = (f"voiplake forensics export --case {case_id} --subject {REDACTED_SUBJECT} --from {start} "
                 f"--to {end} --role {role}")
    try:
        require_forensics_role(role)
    except AccessDenied as exc:
        record_forensic_access(spark, settings, user=handler, role=role, statement=statement, selections=[],
                               rows=None, reason=str(exc))
        raise
    if end < start:
        raise ForensicsError(f"--to {end} is before --from {start}")
    if not case_id or any(c in case_id for c in "/\\") or case_id.startswith("."):
        raise ForensicsError(f"case id {case_id!r} must be a non-empty name without path separators")
    bundle = out_dir / case_id
    if bundle.exists():
        raise ForensicsError(f"{bundle} exists; a bundle is never overwritten (choose another case id or directory)")
    now = now or datetime.now(timezone.utc)
    signing_key = load_signing_key(Path(settings.forensics.signing_key))
    pseudonyms = subject_pseudonyms(keys, msisdn)
    selections, skipped = retrieval_plan(spark, settings, pseudonyms=pseudonyms.values(), start=start, end=end,
                                         role=role)

    (bundle / "data").mkdir(parents=True)
    files: list[dict[str, Any]] = []
    queries: dict[str, Any] = {}
    for sel in selections:
        rel = f"data/{sel.table}.parquet"
        rows = _write_single_parquet(spark.sql(sel.sql), bundle / rel)
        path = bundle / rel
        files.append({"path": rel, "table": sel.table, "delta_version": sel.delta_version, "rows": rows,
                      "sha256": sha256_file(path), "size": path.stat().st_size})
        queries[sel.table] = {"sql": sel.sql, "delta_version": sel.delta_version, "time_column": sel.time_column,
                              "linked_by": sel.linked_by, "rows": rows}

    query = {"case_id": case_id, "subject": {"column": SUBJECT_COLUMN, "pseudonyms_by_key_id": pseudonyms},
             "from": start.isoformat(), "to": end.isoformat(), "role": role, "tables": queries,
             "skipped_tables": skipped,
             "restricted_columns": "exported as stored ciphertext (never decrypted in the bundle)"}
    (bundle / QUERY).write_bytes(canonical_json(query))
    files.append({"path": QUERY, "table": None, "delta_version": None, "rows": None,
                  "sha256": sha256_file(bundle / QUERY), "size": (bundle / QUERY).stat().st_size})

    public_key = public_bytes(signing_key.public_key())
    (bundle / PUBLIC_KEY).write_bytes(public_key)
    manifest = {"case_id": case_id, "created_at": now.isoformat(timespec="seconds"), "created_by": handler,
                "from": start.isoformat(), "to": end.isoformat(), "signature_algorithm": "Ed25519",
                "signing_key_fingerprint": fingerprint(public_key), "files": sorted(files, key=lambda f: f["path"])}
    manifest_bytes = canonical_json(manifest)
    (bundle / MANIFEST).write_bytes(manifest_bytes)
    (bundle / SIGNATURE).write_bytes(signing_key.sign(manifest_bytes))
    manifest_sha = hashlib.sha256(manifest_bytes).hexdigest()
    _record_custody(spark, settings, bundle, custody_entry(
        None, case_id=case_id, event="created", manifest_sha256=manifest_sha, from_party=handler,
        to_party=handler, at=now, note=f"exported as role {role}"))
    record_forensic_access(spark, settings, user=handler, role=role, statement=statement, selections=selections,
                           rows=sum(int(f["rows"]) for f in files if f["rows"] is not None), reason=None)
    return BundleReport(str(bundle), case_id, manifest_sha, manifest["files"], skipped)


def record_forensic_access(spark: "SparkSession", settings: Settings, *, user: str, role: str, statement: str,
                           selections: Iterable[Selection], rows: int | None, reason: str | None) -> None:
    """Record a forensic read (export, timeline) or its refusal (`reason`) in audit.access_log as action "export":
    the tables of `selections` and all their columns (the selections read whole rows)."""
    from jobs.platform.access_log import record_access

    tables = sorted({s.table for s in selections})
    columns = [f"{t}.{c}" for t in tables for c in TABLES_BY_NAME[t].column_names]
    record_access(spark, settings, user=user, role=role, action="export", sql=statement, tables=tables,
                  columns=columns, rows=rows, allowed=reason is None, reason=reason)


def _write_single_parquet(df: "DataFrame", target: Path) -> int:
    """Write `df` as one Parquet file at `target`; returns its row count (a subject's rows: small)."""
    tmp = target.with_name(target.name + ".tmp")
    df.coalesce(1).write.mode("overwrite").parquet(str(tmp))
    parts = sorted(tmp.glob("part-*.parquet"))
    if len(parts) != 1:
        raise ForensicsError(f"expected one Parquet part in {tmp}, found {len(parts)}")
    shutil.move(str(parts[0]), target)
    shutil.rmtree(tmp)
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(target).metadata.num_rows)


# ---------------------------------------------------------------------------------------------- hand-over


def handover(spark: "SparkSession | None", settings: Settings, bundle: Path, *, from_party: str, to_party: str,
             note: str = "", event: str = "handed_over", now: datetime | None = None) -> dict[str, Any]:
    """Append one custody entry (handed_over or received) to the bundle's custody.jsonl and audit.custody_log.

    Refused if the bundle's custody chain is already broken (a hand-over never extends a tampered chain)."""
    manifest_bytes = canonical_json(json.loads((bundle / MANIFEST).read_bytes()))
    manifest = json.loads(manifest_bytes)
    manifest_sha = hashlib.sha256(manifest_bytes).hexdigest()
    entries = read_custody(bundle)
    problems = check_custody_chain(entries, case_id=manifest["case_id"], manifest_sha256=manifest_sha)
    if problems:
        raise ForensicsError(f"custody chain of {bundle} is broken; not extending it: " + "; ".join(problems))
    entry = custody_entry(entries[-1], case_id=manifest["case_id"], event=event, manifest_sha256=manifest_sha,
                          from_party=from_party, to_party=to_party, at=now or datetime.now(timezone.utc), note=note)
    _record_custody(spark, settings, bundle, entry)
    return entry


# ---------------------------------------------------------------------------------------------- verify


@dataclass(frozen=True)
class VerifyReport:
    bundle: str
    problems: list[str]
    checked_files: int
    custody_entries: int
    trusted_key: str  # "match" | "differs" | "unavailable"
    custody_log: str  # "match" | "differs" | "unavailable"

    @property
    def ok(self) -> bool:
        return not self.problems


_LOG_FIELDS = ("seq", "event", "manifest_sha256", "from_party", "to_party", "at", "note", "prev_hash", "entry_hash")


def verify(bundle: Path, *, trusted_public_key: bytes | None = None,
           custody_log: list[dict[str, Any]] | None = None) -> VerifyReport:
    """Check a bundle: every listed file's size and SHA-256, no unlisted data file, the manifest signature under
    the bundle's key and its fingerprint, the bundle key against the trusted key (if given), the custody chain,
    and the chain against the case's audit.custody_log entries (if given). Each problem is named in the report."""
    problems: list[str] = []
    try:
        manifest_raw = json.loads((bundle / MANIFEST).read_bytes())
    except (OSError, ValueError) as exc:
        return VerifyReport(str(bundle), [f"{MANIFEST}: unreadable ({exc})"], 0, 0, "unavailable", "unavailable")
    manifest_bytes = canonical_json(manifest_raw)
    manifest_sha = hashlib.sha256(manifest_bytes).hexdigest()

    files = manifest_raw.get("files", [])
    for entry in files:
        path = bundle / str(entry.get("path"))
        if not path.is_file():
            problems.append(f"{entry.get('path')}: listed in the manifest but missing")
            continue
        if path.stat().st_size != entry.get("size"):
            problems.append(f"{entry['path']}: size {path.stat().st_size} != manifest {entry.get('size')}")
        if sha256_file(path) != entry.get("sha256"):
            problems.append(f"{entry['path']}: SHA-256 differs from the manifest (file altered)")
    listed = {str(e.get("path")) for e in files}
    for path in sorted((bundle / "data").glob("*")) if (bundle / "data").is_dir() else []:
        if f"data/{path.name}" not in listed:
            problems.append(f"data/{path.name}: not in the manifest (file added)")

    try:
        public_key = (bundle / PUBLIC_KEY).read_bytes()
        signature = (bundle / SIGNATURE).read_bytes()
    except OSError as exc:
        problems.append(f"signature: {exc}")
        public_key, signature = b"", b""
    if public_key:
        if fingerprint(public_key) != manifest_raw.get("signing_key_fingerprint"):
            problems.append(f"{PUBLIC_KEY}: fingerprint differs from the manifest's signing_key_fingerprint (key swapped)")
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(signature, manifest_bytes)
        except (InvalidSignature, ValueError):
            problems.append(f"{SIGNATURE}: the signature does not verify over {MANIFEST} with {PUBLIC_KEY} "
                            "(manifest edited or key swapped)")
    trusted = "unavailable"
    if trusted_public_key is not None:
        trusted = "match" if public_key == trusted_public_key else "differs"
        if trusted == "differs":
            problems.append(f"{PUBLIC_KEY}: not the trusted forensics key (fingerprint {fingerprint(public_key)[:16]}…, "
                            f"trusted {fingerprint(trusted_public_key)[:16]}…)")

    entries = read_custody(bundle)
    problems += check_custody_chain(entries, case_id=str(manifest_raw.get("case_id")), manifest_sha256=manifest_sha)
    log_state = "unavailable"
    if custody_log is not None:
        ours = [{k: e.get(k) for k in _LOG_FIELDS} for e in entries]
        theirs = [{k: e.get(k) for k in _LOG_FIELDS} for e in custody_log]
        log_state = "match" if ours == theirs else "differs"
        for i in range(max(len(ours), len(theirs))):
            a = ours[i] if i < len(ours) else None
            b = theirs[i] if i < len(theirs) else None
            if a != b:
                problems.append(f"custody entry {i}: differs from audit.custody_log "
                                f"({'missing in bundle' if a is None else 'missing in log' if b is None else 'content differs'})")
    return VerifyReport(str(bundle), problems, len(files), len(entries), trusted, log_state)


def render_verify(report: VerifyReport) -> str:
    lines = [f"bundle {report.bundle}: {'OK' if report.ok else 'FAILED'}",
             f"  files checked: {report.checked_files}; custody entries: {report.custody_entries}; "
             f"trusted key: {report.trusted_key}; audit.custody_log: {report.custody_log}"]
    lines += [f"  PROBLEM: {p}" for p in report.problems]
    return "\n".join(lines)
