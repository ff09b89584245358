"""One hash-chain mechanism for tamper-evident audit tables (audit.access_log, audit.landing_integrity).

Each entry carries `seq` (0, 1, 2, ... contiguous), `prev_hash` (the previous entry's hash; GENESIS_HASH for
seq 0) and `entry_hash`:

    entry_hash = SHA-256( prev_hash "\\n" seq "\\n" canonical_json(fields) )

where `fields` are all the entry's other columns and canonical_json is sorted-key, compact, ASCII JSON with
timestamps as UTC epoch microseconds and dates as ISO strings. `verify` detects:

    altered entry      any field changed          -> its entry_hash no longer matches
    removed entry      a row deleted              -> gap in seq and the next prev_hash mismatches
    reordering         seq values swapped/moved   -> seq is hashed, so the moved entries' hashes mismatch
    duplicate / fork   two writers appended seq N -> duplicate seq
    truncated tail     last entries deleted       -> only against the head anchor (below)

What the chain alone cannot show: deleting the *last* entries leaves a valid shorter chain, and someone who can
rewrite the whole table can recompute every hash. So every append also writes the new head (seq, entry_hash) to
an anchor file outside the table (`anchor_path`); `verify` compares the chain with it, which catches tail
truncation and rewrites as long as the anchor is not rewritten too. An anchor kept in another trust domain
(a WORM bucket, a notary, a printed hash) is what makes a full rewrite detectable; this module keeps it beside
the lake, not inside a table directory.

Concurrency: appends are single-writer. `DeltaChain.append` holds an exclusive file lock on the anchor while it
reads the head, computes and appends, so writers on one host serialize; writers on several hosts need one
serializing writer (a service), otherwise two may append the same seq, which `verify` reports as a fork.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

from lake_layout.config import PROJECT_ROOT, Settings
from lake_layout.registry import TableSpec

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

GENESIS_HASH = "0" * 64
CHAIN_COLUMNS = ("seq", "prev_hash", "entry_hash")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _canonical_value(value: Any) -> Any:
    if isinstance(value, datetime):
        # Spark returns naive datetimes in the Python process's local zone; aware ones are exact already.
        aware = value if value.tzinfo else value.astimezone()
        return {"ts_us": (aware - _EPOCH) // timedelta(microseconds=1)}
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_canonical_value(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return value


def canonical_json(fields: Mapping[str, Any]) -> str:
    """Sorted-key, compact, ASCII JSON of the fields (timestamps as UTC epoch microseconds)."""
    return json.dumps({k: _canonical_value(v) for k, v in fields.items()}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True)


def entry_hash(prev_hash: str, seq: int, fields: Mapping[str, Any]) -> str:
    """SHA-256 hex of prev_hash, seq and the canonical JSON of the entry's fields."""
    return hashlib.sha256(f"{prev_hash}\n{seq}\n{canonical_json(fields)}".encode()).hexdigest()


@dataclass(frozen=True)
class Head:
    """The newest entry of a chain: seq and entry_hash (seq -1 and GENESIS_HASH for an empty chain)."""
    seq: int
    entry_hash: str


EMPTY = Head(-1, GENESIS_HASH)


@dataclass(frozen=True)
class Problem:
    """One finding of `verify`: the chain (or object) it concerns, the seq, a kind code and what changed."""
    chain: str
    seq: int | None
    kind: str  # altered | removed | prev_mismatch | duplicate | truncated | rewritten | unanchored | no_anchor | object_changed | object_missing
    detail: str

    def __str__(self) -> str:
        at = f" seq {self.seq}" if self.seq is not None else ""
        return f"{self.chain}{at}: {self.kind}: {self.detail}"


def append(head: Head, entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Chain `entries` after `head`: each returned row is the entry plus seq, prev_hash and entry_hash."""
    rows, prev, seq = [], head.entry_hash, head.seq
    for fields in entries:
        if set(CHAIN_COLUMNS) & set(fields):
            raise ValueError(f"entry fields must not contain {CHAIN_COLUMNS}: {sorted(fields)}")
        seq += 1
        h = entry_hash(prev, seq, fields)
        rows.append({**fields, "seq": seq, "prev_hash": prev, "entry_hash": h})
        prev = h
    return rows


def verify(rows: Iterable[Mapping[str, Any]], *, chain: str, anchor: Head | None) -> list[Problem]:
    """Every problem of a chain whose `rows` come in ascending seq order (each with all its fields).

    `anchor` is the head recorded outside the table (None: no anchor was found, itself reported when the
    chain is not empty). An intact chain matching its anchor returns [].
    """
    problems: list[Problem] = []
    expected_seq, expected_prev, last = 0, GENESIS_HASH, EMPTY
    hash_at_anchor: str | None = None
    for row in rows:
        seq, prev, stored = int(row["seq"]), str(row["prev_hash"]), str(row["entry_hash"])
        fields = {k: v for k, v in row.items() if k not in CHAIN_COLUMNS}
        if seq < expected_seq:
            problems.append(Problem(chain, seq, "duplicate", f"seq {seq} appears more than once (or out of order)"))
        elif seq > expected_seq:
            missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}..{seq - 1}"
            problems.append(Problem(chain, seq, "removed", f"entries {missing} are missing before seq {seq}"))
        if prev != expected_prev and seq >= expected_seq:
            problems.append(Problem(chain, seq, "prev_mismatch",
                                    f"prev_hash {prev[:12]}… does not match the preceding entry's {expected_prev[:12]}…"))
        if entry_hash(prev, seq, fields) != stored:
            problems.append(Problem(chain, seq, "altered", "entry_hash does not match its fields (an entry was changed or moved)"))
        if anchor is not None and seq == anchor.seq:
            hash_at_anchor = stored
        expected_seq, expected_prev, last = max(expected_seq, seq + 1), stored, Head(seq, stored)
    if anchor is None:
        if last.seq >= 0:
            problems.append(Problem(chain, None, "no_anchor", "no head anchor found: tail truncation cannot be ruled out"))
    elif anchor.seq > last.seq:
        problems.append(Problem(chain, last.seq if last.seq >= 0 else None, "truncated",
                                f"the anchor records head seq {anchor.seq} but the table ends at seq {last.seq}"))
    elif hash_at_anchor is not None and hash_at_anchor != anchor.entry_hash:
        problems.append(Problem(chain, anchor.seq, "rewritten", "the entry at the anchored head has a different hash than the anchor"))
    elif anchor.seq < last.seq:
        problems.append(Problem(chain, anchor.seq + 1, "unanchored",
                                f"entries {anchor.seq + 1}..{last.seq} come after the anchored head (appended without the writer?)"))
    return problems


# ----------------------------------------------------------------------------- head anchors

def anchor_dir(settings: Settings) -> Path:
    """Where head anchors live: beside a local lake (<root>.audit-anchors), else under build/ keyed by the lake root."""
    root = settings.lake.root
    if "://" not in root:
        path = Path(root.removeprefix("file:"))
        return path.parent / f"{path.name}.audit-anchors"
    return PROJECT_ROOT / "build" / "audit-anchors" / hashlib.sha256(root.encode()).hexdigest()[:16]


def anchor_path(settings: Settings, spec: TableSpec) -> Path:
    return anchor_dir(settings) / f"{spec.name}.head.json"


def read_anchor(path: Path) -> Head | None:
    if not path.exists():
        return None
    raw = json.loads(path.read_text())
    return Head(int(raw["seq"]), str(raw["entry_hash"]))


def write_anchor(path: Path, head: Head) -> None:
    """Atomically replace the anchor with `head` (write a temp file, then rename)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"seq": head.seq, "entry_hash": head.entry_hash}) + "\n")
    os.replace(tmp, path)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# ----------------------------------------------------------------------------- Delta-backed chains

def table_head(spark: "SparkSession", settings: Settings, spec: TableSpec) -> Head:
    """The entry with the highest seq in the table (EMPTY when the table is empty)."""
    from jobs.platform import lake

    row = lake.read_table(spark, spec, settings).orderBy("seq", ascending=False).select("seq", "entry_hash").first()
    return EMPTY if row is None else Head(int(row["seq"]), str(row["entry_hash"]))


def append_to_table(spark: "SparkSession", settings: Settings, spec: TableSpec,
                    entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Append `entries` to the chained table `spec` (Delta append) and move its head anchor; returns the rows.

    Holds the anchor's lock from reading the head to writing the anchor (single writer per host)."""
    from jobs.platform import lake

    if not entries:
        return []
    lake.ensure_table(spark, spec, settings)
    path = anchor_path(settings, spec)
    with _locked(path):
        rows = append(table_head(spark, settings, spec), entries)
        df = spark.createDataFrame(rows, spec.spark_schema())
        lake.conform(df, spec).write.format("delta").mode("append").save(spec.location(settings))
        write_anchor(path, Head(rows[-1]["seq"], rows[-1]["entry_hash"]))
    return rows


def verify_table(spark: "SparkSession", settings: Settings, spec: TableSpec) -> list[Problem]:
    """Verify the chained table against its anchor, streaming rows in seq order (memory bounded)."""
    from jobs.platform import lake

    anchor = read_anchor(anchor_path(settings, spec))
    if not lake.table_exists(spark, spec, settings):
        if anchor is not None and anchor.seq >= 0:
            return [Problem(spec.name, None, "truncated", f"the table is gone but the anchor records head seq {anchor.seq}")]
        return []
    rows = lake.read_table(spark, spec, settings).orderBy("seq").toLocalIterator()
    return verify((r.asDict() for r in rows), chain=spec.name, anchor=anchor)
