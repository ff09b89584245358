"""Identifier leak scan: known raw identifiers looked for in every file a run leaves behind.

Pseudonymization at the door is only as good as the places identifiers can slip past it: a log line that prints an
upload's header, a report that copies a value, a lineage event, an export. `scan_files` reads every file under the
given roots and looks for any of a set of raw identifiers (MSISDNs, callee numbers, IMEIs, device ids, IPs), all at
once (Aho-Corasick, pyahocorasick), in what the file really holds:

* gzip files decompressed (bounded), zip members one by one;
* Parquet files decoded column by column, since compressed and dictionary-encoded pages hide raw bytes: every value
  is looked at as text, and double columns whose name says latitude / longitude are checked for precision (no value
  may carry more than `max_decimals` decimals: precise coordinates live only in the encrypted restricted columns);
* everything else as bytes (text, JSON, HTML, CSV, logs, Delta's transaction log).

The caller chooses the identifiers (a test knows the generated population; an auditor can plant canaries). Files
under a folder named in `skip_dirs` (jar caches, virtual environments) are not read.
"""

from __future__ import annotations

import gzip
import io
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_INFLATED = 256 << 20  # a gzip member inflating past this is scanned up to it (and reported as truncated)
SKIP_DIRS = frozenset({"ivy", "m2", "s3proxy", "protoc-venv", "vault", ".venv", "__pycache__", ".git"})
COORDINATE_WORDS = ("latitude", "longitude", "lat", "lon", "lng")


@dataclass(frozen=True)
class Leak:
    path: str  # the file (and member / column where it applies)
    kind: str  # identifier | precise_coordinate
    value: str  # the identifier found, or the coordinate value


@dataclass(frozen=True)
class ScanReport:
    files: int
    bytes_read: int
    leaks: tuple[Leak, ...]
    truncated: tuple[str, ...]  # gzip members cut at MAX_INFLATED


def automaton(identifiers: Iterable[str]) -> Any:
    """An Aho-Corasick automaton over the identifiers' UTF-8 bytes (as latin-1 text, so it runs on any bytes)."""
    import ahocorasick

    machine = ahocorasick.Automaton()
    for identifier in set(identifiers):
        if identifier:
            machine.add_word(identifier.encode().decode("latin-1"), identifier)
    if len(machine) == 0:
        raise ValueError("no identifiers to scan for")
    machine.make_automaton()
    return machine


def _found(machine: Any, data: bytes) -> set[str]:
    return {identifier for _, identifier in machine.iter(data.decode("latin-1"))}


def _inflate(data: bytes) -> tuple[bytes, bool]:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as member:
        while chunk := member.read(1 << 20):
            out.write(chunk)
            if out.tell() >= MAX_INFLATED:
                return out.getvalue()[:MAX_INFLATED], True
    return out.getvalue(), False


def _is_coordinate(column: str) -> bool:
    words = column.lower().replace("-", "_").split("_")
    return any(w in COORDINATE_WORDS for w in words)


def _parquet_leaks(name: str, data: bytes, machine: Any, *, max_decimals: int) -> Iterator[Leak]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    for column in table.column_names:
        values = table.column(column)
        if pa.types.is_floating(values.type) and _is_coordinate(column):
            for v in values.to_pylist():
                if v is not None and round(v, max_decimals) != v:
                    yield Leak(f"{name}#{column}", "precise_coordinate", repr(v))
                    break
            continue
        text = "\n".join(str(v) for v in values.to_pylist() if v is not None)
        for identifier in _found(machine, text.encode()):
            yield Leak(f"{name}#{column}", "identifier", identifier)


def scan_bytes(name: str, data: bytes, machine: Any, *, max_decimals: int = 2) -> tuple[list[Leak], list[str]]:
    """Leaks in one file's content (decoded as its name and magic bytes say), and the members cut short."""
    leaks: list[Leak] = []
    truncated: list[str] = []
    if data[:4] == b"PAR1" or name.endswith(".parquet"):
        try:
            leaks.extend(_parquet_leaks(name, data, machine, max_decimals=max_decimals))
        except Exception:  # not readable as Parquet after all: fall through to the bytes
            pass
    elif data[:2] == b"\x1f\x8b":
        try:
            data, cut = _inflate(data)
            if cut:
                truncated.append(name)
        except (OSError, EOFError, zlib.error):
            pass  # corrupt gzip (the generator makes some on purpose): scan the bytes as they are
    elif data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for info in archive.infolist():
                    with archive.open(info) as member:
                        inner, cut = scan_bytes(f"{name}!{info.filename}", member.read(MAX_INFLATED), machine,
                                                max_decimals=max_decimals)
                    leaks.extend(inner)
                    truncated.extend(cut)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error):
            pass  # not a readable archive: scan the bytes as they are
    leaks.extend(Leak(name, "identifier", i) for i in _found(machine, data))
    return leaks, truncated


def walk(roots: Iterable[Path], *, skip_dirs: frozenset[str] = SKIP_DIRS) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
            continue
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink() and not skip_dirs & set(path.relative_to(root).parts[:-1]):
                yield path


def scan_files(roots: Iterable[Path], identifiers: Iterable[str], *, max_decimals: int = 2,
               skip_dirs: frozenset[str] = SKIP_DIRS) -> ScanReport:
    """Every file under `roots` (files or folders) scanned for the identifiers and for precise coordinates."""
    machine = automaton(identifiers)
    leaks: list[Leak] = []
    truncated: list[str] = []
    files = size = 0
    for path in walk([Path(r) for r in roots], skip_dirs=skip_dirs):
        data = path.read_bytes()
        files += 1
        size += len(data)
        found, cut = scan_bytes(str(path), data, machine, max_decimals=max_decimals)
        leaks.extend(found)
        truncated.extend(cut)
    return ScanReport(files, size, tuple(leaks), tuple(truncated))


def scan_objects(client: Any, bucket: str, prefix: str, identifiers: Iterable[str], *, max_decimals: int = 2) -> ScanReport:
    """The same scan over the objects of a bucket under `prefix` (a lake on the object store), read through boto3."""
    from jobs.platform.objectstore import list_keys

    machine = automaton(identifiers)
    leaks: list[Leak] = []
    truncated: list[str] = []
    files = size = 0
    for key, _ in list_keys(client, bucket, prefix):
        data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        files += 1
        size += len(data)
        found, cut = scan_bytes(f"s3://{bucket}/{key}", data, machine, max_decimals=max_decimals)
        leaks.extend(found)
        truncated.extend(cut)
    return ScanReport(files, size, tuple(leaks), tuple(truncated))
