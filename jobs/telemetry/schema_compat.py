"""Upload schema versions and their compatibility check (`voiplake schema check [--new PATH]`).

Every released version of the upload schema is kept as a complete .proto in jobs/telemetry/schemas/,
listed in schemas/manifest.toml with whether installed clients still send it (`in_field`). The check
compiles the .proto files with protoc (grpcio-tools' build, the same compiler `make proto` uses) into
FileDescriptorSets and compares the descriptors, so it judges what protoc understood, not the text:

* a field number keeps its name, type, cardinality (repeated or not) and presence (`optional`) for
  ever: readers of every in-field version decode the same bytes (protobuf) and names (web JSON) to
  the same meaning, in both directions (backward: the lake reads old clients; forward: a reader of an
  older version reads new clients, skipping what it does not know);
* a removed field's number and name are `reserved`, and a reserved number or name is never used again;
* enum values keep their numbers; a removed value's number is reserved or stays unused;
* the manifest's contract fields (what bronze validates and signs over) are never removed.

Each problem is a `Violation` naming the file, message, field, number and what changed. The check never
imports the candidate as code: protoc parses it, and `message_classes` builds classes from descriptors
(used by tests to encode exactly what an old client would send).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
MANIFEST = SCHEMA_DIR / "manifest.toml"
UPLOAD_PROTO = Path(__file__).resolve().parent / "upload.proto"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DESCRIPTOR_DIR = PROJECT_ROOT / "build" / "schemas"
# protoc comes from grpcio-tools, in a venv of its own: its wheel wants a newer setuptools than the project's
# venv has. Pinned to the protobuf / grpcio of requirements.lock; made by `make setup` in the ignored build folder.
GRPCIO_TOOLS = ("grpcio-tools==1.85.1", "protobuf==7.36.2", "grpcio==1.85.3")
PROTOC_VENV = Path(os.environ.get("VOIPLAKE_PROTOC_VENV") or PROJECT_ROOT / "build" / "protoc-venv")

_FD = descriptor_pb2.FieldDescriptorProto
_TYPE_NAMES = {v: k.removeprefix("TYPE_").lower() for k, v in _FD.Type.items()}
_LABEL_NAMES = {_FD.LABEL_OPTIONAL: "singular", _FD.LABEL_REPEATED: "repeated", _FD.LABEL_REQUIRED: "required"}


class SchemaError(Exception):
    """The schemas cannot be checked at all (bad manifest, a .proto protoc rejects, no protoc)."""


@dataclass(frozen=True)
class Violation:
    """One incompatibility of `file` against the in-field version `against`."""

    rule: str  # machine-readable: field_number_reused, field_type_changed, field_removed_without_reserved, ...
    file: str
    message: str  # message or enum name, package-relative ("CallEvent", "NetworkType")
    field: str  # field or enum value name ("" for a whole message)
    number: int | None
    detail: str  # what changed, and what to do
    against: str  # e.g. "v1 (jobs/telemetry/schemas/v1.proto)"

    def __str__(self) -> str:
        where = f"{self.message}.{self.field}" if self.field else self.message
        number = f" = {self.number}" if self.number is not None else ""
        return f"{self.file}: {where}{number}: {self.rule}: {self.detail} [breaks {self.against}]"


@dataclass(frozen=True)
class SchemaVersion:
    number: int
    path: Path
    in_field: bool
    clients: str = ""

    @property
    def label(self) -> str:
        return f"v{self.number} ({_rel(self.path)})"


@dataclass(frozen=True)
class SchemaManifest:
    versions: tuple[SchemaVersion, ...]
    current: int
    contract: frozenset[str]  # "Message.field", package-relative

    def __post_init__(self) -> None:
        numbers = [v.number for v in self.versions]
        if len(set(numbers)) != len(numbers):
            raise SchemaError(f"schema manifest lists a version twice: {numbers}")
        if self.current not in numbers:
            raise SchemaError(f"schema manifest: current = {self.current} is not among the versions {numbers}")
        if not self.version(self.current).in_field:
            raise SchemaError(f"schema manifest: the current version {self.current} must be in_field")

    def version(self, number: int) -> SchemaVersion:
        return next(v for v in self.versions if v.number == number)

    @property
    def in_field(self) -> tuple[SchemaVersion, ...]:
        return tuple(sorted((v for v in self.versions if v.in_field), key=lambda v: v.number))


@dataclass(frozen=True)
class CheckResult:
    checked: str  # what was checked
    against: tuple[str, ...]  # labels of the versions it was compared with
    violations: tuple[Violation, ...]

    @property
    def ok(self) -> bool:
        return not self.violations


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def load_manifest(path: Path = MANIFEST) -> SchemaManifest:
    """The manifest, validated: files exist, numbers unique, `current` listed and in the field."""
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SchemaError(f"cannot read schema manifest {path}: {exc}") from None
    versions = []
    for i, entry in enumerate(doc.get("versions", [])):
        try:
            number, file, in_field = int(entry["number"]), str(entry["file"]), entry["in_field"]
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"{path}: versions[{i}] needs number, file and in_field ({exc!r})") from None
        if not isinstance(in_field, bool):
            raise SchemaError(f"{path}: versions[{i}].in_field must be true or false, got {in_field!r}")
        proto = path.parent / file
        if not proto.is_file():
            raise SchemaError(f"{path}: versions[{i}].file {file!r} does not exist in {path.parent}")
        versions.append(SchemaVersion(number, proto, in_field, str(entry.get("clients", ""))))
    if not versions or "current" not in doc:
        raise SchemaError(f"{path}: needs `current` and at least one [[versions]] entry")
    contract = doc.get("contract", {}).get("required", [])
    if not all(isinstance(c, str) and c.count(".") == 1 for c in contract):
        raise SchemaError(f"{path}: contract.required must list \"Message.field\" names")
    return SchemaManifest(tuple(versions), int(doc["current"]), frozenset(contract))


# ----------------------------------------------------------------------------- protoc

def protoc_python(venv: Path = PROTOC_VENV) -> Path:
    """The Python of a venv with grpcio-tools (protoc), created on first use (pip, ~15 s). Processes that ask at
    the same moment (test workers) wait on a lock file rather than install into the same folder together."""
    import fcntl

    python = venv / "bin" / "python"
    done = venv / ".complete"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.exists() and done.exists() and done.read_text().strip() == " ".join(GRPCIO_TOOLS):
            return python
        try:
            if not python.exists():
                subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, text=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *GRPCIO_TOOLS],
                           check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as exc:
            raise SchemaError(f"cannot install protoc (grpcio-tools) into {venv}: {exc.stderr.strip()[-500:]}") from None
        done.write_text(" ".join(GRPCIO_TOOLS))
    return python


def compile_descriptor_set(proto: Path, *, out_dir: Path = DESCRIPTOR_DIR) -> descriptor_pb2.FileDescriptorSet:
    """protoc's FileDescriptorSet of one self-contained .proto (cached in out_dir by content hash).

    Raises SchemaError with protoc's message when the file does not compile."""
    proto = proto.resolve()
    try:
        source = proto.read_bytes()
    except OSError as exc:
        raise SchemaError(f"cannot read {proto}: {exc}") from None
    digest = hashlib.sha256(proto.name.encode() + b"\0" + source).hexdigest()[:16]
    out = out_dir / f"{proto.stem}-{digest}.binpb"
    if not out.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        result = subprocess.run(
            [str(protoc_python()), "-m", "grpc_tools.protoc", f"-I{proto.parent}", f"--descriptor_set_out={tmp}",
             str(proto)],
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise SchemaError(f"protoc rejects {_rel(proto)}: {result.stderr.strip() or result.stdout.strip()}")
        tmp.replace(out)
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(out.read_bytes())
    return fds


def _file(fds: descriptor_pb2.FileDescriptorSet) -> descriptor_pb2.FileDescriptorProto:
    if len(fds.file) != 1:
        raise SchemaError(f"an upload schema must be one self-contained file, got {[f.name for f in fds.file]}")
    return fds.file[0]


def message_classes(fds: descriptor_pb2.FileDescriptorSet) -> dict[str, Any]:
    """Message classes built from descriptors, by package-relative name ("CallEvent"), in a pool of their own
    (so an old version's classes live beside the current generated ones)."""
    from google.protobuf import descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    package = _file(fds).package
    classes = message_factory.GetMessages(list(fds.file), pool=pool)
    return {name.removeprefix(f"{package}."): cls for name, cls in classes.items()}


# ----------------------------------------------------------------------------- descriptor comparison

def _messages(file: descriptor_pb2.FileDescriptorProto) -> dict[str, descriptor_pb2.DescriptorProto]:
    out: dict[str, descriptor_pb2.DescriptorProto] = {}

    def walk(prefix: str, messages: Iterable[descriptor_pb2.DescriptorProto]) -> None:
        for m in messages:
            name = f"{prefix}{m.name}"
            out[name] = m
            walk(f"{name}.", m.nested_type)

    walk("", file.message_type)
    return out


def _enums(file: descriptor_pb2.FileDescriptorProto) -> dict[str, descriptor_pb2.EnumDescriptorProto]:
    out = {e.name: e for e in file.enum_type}
    for name, m in _messages(file).items():
        out.update({f"{name}.{e.name}": e for e in m.enum_type})
    return out


def _type(f: descriptor_pb2.FieldDescriptorProto, package: str) -> str:
    if f.type in (_FD.TYPE_MESSAGE, _FD.TYPE_ENUM, _FD.TYPE_GROUP):
        return f.type_name.removeprefix(f".{package}.")
    return _TYPE_NAMES[f.type]


def _shape(f: descriptor_pb2.FieldDescriptorProto, package: str) -> str:
    optional = "optional " if f.proto3_optional else ""
    repeated = "repeated " if f.label == _FD.LABEL_REPEATED else ""
    return f"{repeated}{optional}{_type(f, package)} {f.name} = {f.number}"


def _reserved(ranges: Iterable[Any], number: int, *, end_inclusive: bool) -> bool:
    return any(r.start <= number < r.end or (end_inclusive and number == r.end) for r in ranges)


def compare(
    old: descriptor_pb2.FileDescriptorProto, new: descriptor_pb2.FileDescriptorProto, *,
    new_file: str, against: str, contract: frozenset[str] = frozenset(),
) -> list[Violation]:
    """Every way `new` breaks readers or writers of `old` (empty: wire- and JSON-compatible both ways)."""
    found: list[Violation] = []

    def add(rule: str, message: str, field: str, number: int | None, detail: str) -> None:
        found.append(Violation(rule, new_file, message, field, number, detail, against))

    if old.package != new.package:
        add("package_changed", "(file)", "", None,
            f"package {old.package!r} -> {new.package!r}: every message's full name changes")
    if old.syntax != new.syntax:
        add("syntax_changed", "(file)", "", None, f"syntax {old.syntax or 'proto2'!r} -> {new.syntax or 'proto2'!r}")

    old_messages, new_messages = _messages(old), _messages(new)
    for name, om in old_messages.items():
        nm = new_messages.get(name)
        if nm is None:
            add("message_removed", name, "", None, "message no longer defined; keep it (fields may be reserved)")
            continue
        new_by_number = {f.number: f for f in nm.field}
        new_by_name = {f.name: f for f in nm.field}
        for of in om.field:
            is_contract = f"{name}.{of.name}" in contract
            nf = new_by_number.get(of.number)
            if nf is not None:
                if nf.name != of.name:
                    add("field_number_reused", name, nf.name, of.number,
                        f"number {of.number} was `{_shape(of, old.package)}`, now `{_shape(nf, new.package)}`: "
                        f"old clients' {of.name} would be read as {nf.name}; use a new number and reserve "
                        f"{of.number}")
                    continue
                if _type(nf, new.package) != _type(of, old.package):
                    add("field_type_changed", name, of.name, of.number,
                        f"type {_type(of, old.package)} -> {_type(nf, new.package)}: readers of one version "
                        f"misread the other's bytes; add a new field instead")
                if nf.label != of.label:
                    add("cardinality_changed", name, of.name, of.number,
                        f"{_LABEL_NAMES[of.label]} -> {_LABEL_NAMES[nf.label]}")
                if nf.proto3_optional != of.proto3_optional:
                    add("presence_changed", name, of.name, of.number,
                        ("`optional` dropped: 'not sent' can no longer be told from the default value"
                         if of.proto3_optional else
                         "`optional` added: old clients never mark presence, so every old value reads as unset"))
                continue
            moved = new_by_name.get(of.name)
            if moved is not None:
                add("field_renumbered", name, of.name, of.number,
                    f"moved from {of.number} to {moved.number}: readers of either version lose it; keep {of.number}")
            elif is_contract:
                add("contract_field_removed", name, of.name, of.number,
                    f"`{_shape(of, old.package)}` is required by the lake's contract (schemas/manifest.toml); "
                    "it cannot be removed")
            elif not (_reserved(nm.reserved_range, of.number, end_inclusive=False) and of.name in nm.reserved_name):
                add("field_removed_without_reserved", name, of.name, of.number,
                    f"`{_shape(of, old.package)}` removed; add `reserved {of.number};` and "
                    f"`reserved \"{of.name}\";` so neither is reused")
        old_numbers = {f.number for f in om.field}
        old_names = {f.name for f in om.field}
        for nf in nm.field:
            if nf.number in old_numbers:
                continue
            if _reserved(om.reserved_range, nf.number, end_inclusive=False):
                add("reserved_number_reused", name, nf.name, nf.number,
                    f"number {nf.number} is reserved in {against}: it once meant another field")
            if nf.name in om.reserved_name and nf.name not in old_names:
                add("reserved_name_reused", name, nf.name, nf.number,
                    f"name {nf.name!r} is reserved in {against}: web clients' JSON used it for another field")
        for r in om.reserved_range:
            for number in range(r.start, r.end):
                if not _reserved(nm.reserved_range, number, end_inclusive=False) and number not in new_by_number:
                    add("reserved_removed", name, "", number, f"number {number} is no longer reserved")
                    break
        for reserved_name in om.reserved_name:
            if reserved_name not in nm.reserved_name and reserved_name not in new_by_name:
                add("reserved_removed", name, reserved_name, None, f"name {reserved_name!r} is no longer reserved")

    old_enums, new_enums = _enums(old), _enums(new)
    for name, oe in old_enums.items():
        ne = new_enums.get(name)
        if ne is None:
            add("enum_removed", name, "", None, "enum no longer defined")
            continue
        new_by_name_e = {v.name: v for v in ne.value}
        new_by_number_e = {v.number: v for v in ne.value}
        for ov in oe.value:
            nv = new_by_name_e.get(ov.name)
            if nv is not None and nv.number != ov.number:
                add("enum_value_renumbered", name, ov.name, ov.number,
                    f"{ov.name} = {ov.number} -> {nv.number}: old clients' {ov.name} would read as "
                    f"{new_by_number_e[ov.number].name if ov.number in new_by_number_e else 'unknown'}")
            elif nv is None and ov.number in new_by_number_e:
                add("enum_number_reused", name, new_by_number_e[ov.number].name, ov.number,
                    f"{ov.number} meant {ov.name}, now {new_by_number_e[ov.number].name}")
            elif nv is None and not _reserved(ne.reserved_range, ov.number, end_inclusive=True):
                add("enum_value_removed", name, ov.name, ov.number,
                    f"{ov.name} = {ov.number} removed; add `reserved {ov.number};` so it is never reused")
        old_values = {v.number for v in oe.value}
        for nv in ne.value:
            if nv.number not in old_values and _reserved(oe.reserved_range, nv.number, end_inclusive=True):
                add("reserved_number_reused", name, nv.name, nv.number, f"value {nv.number} is reserved in {against}")
    for qualified in sorted(contract):
        message, field = qualified.split(".")
        had = message in old_messages and any(f.name == field for f in old_messages[message].field)
        has = message in new_messages and any(f.name == field for f in new_messages[message].field)
        if had and not has and not any(v.rule == "contract_field_removed" and v.message == message
                                       and v.field == field for v in found):
            number = next(f.number for f in old_messages[message].field if f.name == field)
            add("contract_field_removed", message, field, number, "required by the lake's contract (schemas/manifest.toml)")
    return found


def _without_name(file: descriptor_pb2.FileDescriptorProto) -> bytes:
    copy = descriptor_pb2.FileDescriptorProto()
    copy.CopyFrom(file)
    copy.ClearField("name")
    copy.ClearField("source_code_info")
    return copy.SerializeToString(deterministic=True)


# ----------------------------------------------------------------------------- the checks

def check_candidate(candidate: Path, manifest: SchemaManifest | None = None) -> CheckResult:
    """A proposed new version against every in-field version of the manifest."""
    manifest = manifest or load_manifest()
    new = _file(compile_descriptor_set(candidate))
    violations: list[Violation] = []
    for version in manifest.in_field:
        old = _file(compile_descriptor_set(version.path))
        violations += compare(old, new, new_file=_rel(candidate), against=version.label, contract=manifest.contract)
    return CheckResult(_rel(candidate), tuple(v.label for v in manifest.in_field), tuple(violations))


def check_repository(manifest: SchemaManifest | None = None) -> CheckResult:
    """The repository's own schemas: every in-field version against every older in-field one, upload.proto
    identical to the current version, and bronze's supported versions equal to the in-field ones."""
    from jobs.telemetry.codec import SUPPORTED_SCHEMA_VERSIONS

    manifest = manifest or load_manifest()
    in_field = manifest.in_field
    files = {v.number: _file(compile_descriptor_set(v.path)) for v in in_field}
    violations: list[Violation] = []
    for i, newer in enumerate(in_field):
        for older in in_field[:i]:
            violations += compare(files[older.number], files[newer.number], new_file=_rel(newer.path),
                                  against=older.label, contract=manifest.contract)
    current = manifest.version(manifest.current)
    upload = _file(compile_descriptor_set(UPLOAD_PROTO))
    if _without_name(upload) != _without_name(_file(compile_descriptor_set(current.path))):
        violations.append(Violation(
            "upload_proto_differs", _rel(UPLOAD_PROTO), "(file)", "", None,
            f"differs from the current version {current.label}: release the change as a new version "
            "(copy it to schemas/vN.proto, list it in manifest.toml) or revert it", current.label))
    supported = tuple(v.number for v in in_field)
    if tuple(SUPPORTED_SCHEMA_VERSIONS) != supported:
        violations.append(Violation(
            "supported_versions_differ", "jobs/telemetry/codec.py", "SUPPORTED_SCHEMA_VERSIONS", "", None,
            f"bronze accepts {tuple(SUPPORTED_SCHEMA_VERSIONS)} but the in-field versions are {supported}",
            _rel(MANIFEST)))
    return CheckResult("repository schemas", tuple(v.label for v in in_field), tuple(violations))


def report_lines(result: CheckResult) -> Iterator[str]:
    """What `voiplake schema check` prints: one line per violation, or one OK line."""
    if result.ok:
        yield f"OK: {result.checked} is backward and forward compatible with {', '.join(result.against)}"
        return
    for v in result.violations:
        yield str(v)
    yield f"FAILED: {len(result.violations)} incompatibilit{'y' if len(result.violations) == 1 else 'ies'} in {result.checked}"


def schema_check_command(new: str | None) -> int:
    """Exit 0 compatible, 1 incompatible, 2 when the check could not run (bad manifest, protoc error)."""
    try:
        result = check_candidate(Path(new)) if new else check_repository()
    except SchemaError as exc:
        print(f"schema check error: {exc}", file=sys.stderr)
        return 2
    out = sys.stdout if result.ok else sys.stderr
    for line in report_lines(result):
        print(line, file=out)
    return 0 if result.ok else 1


__all__ = [
    "CheckResult", "SchemaError", "SchemaManifest", "SchemaVersion", "Violation", "check_candidate",
    "check_repository", "compare", "compile_descriptor_set", "load_manifest", "message_classes", "schema_check_command",
]
