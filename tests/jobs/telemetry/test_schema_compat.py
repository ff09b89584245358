"""`voiplake schema check`: protoc-compiled descriptors of a candidate version against every in-field version."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.cli.main import main as cli
from jobs.generator.attested import ATTESTED_SCHEMA_VERSION
from jobs.generator.population import APP_VERSIONS
from jobs.telemetry import codec
from jobs.telemetry.schema_compat import (
    SchemaError,
    check_candidate,
    check_repository,
    compare,
    compile_descriptor_set,
    load_manifest,
)

CURRENT = load_manifest().version(load_manifest().current).path.read_text()


def _candidate(tmp_path: Path, text: str, name: str = "v3.proto") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _edit(old: str, new: str) -> str:
    assert CURRENT.count(old) == 1, old
    return CURRENT.replace(old, new)


def test_repository_versions_are_compatible_and_match_the_code() -> None:
    manifest = load_manifest()
    result = check_repository(manifest)
    assert result.ok, [str(v) for v in result.violations]
    # bronze accepts exactly the in-field versions, and the generator's clients send every one of them
    in_field = tuple(v.number for v in manifest.in_field)
    assert codec.SUPPORTED_SCHEMA_VERSIONS == in_field
    default = {schema for versions in APP_VERSIONS.values() for _, schema, _ in versions}
    assert default | {ATTESTED_SCHEMA_VERSION} == set(in_field)  # schema 3: with an AttestationPlan


def test_compatible_addition_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = _edit("  ETHERNET = 6;\n", "  ETHERNET = 6;\n  SATELLITE = 7;\n")
    text = text.replace("message CallEvent {\n", "message CallEvent {\n  optional uint32 packet_loss_permille = 40;\n")
    # removing a non-contract field is fine once its number and name are reserved
    text = text.replace('  string imei = 6;                // schema v1 only; never stored by voiplake\n',
                        '  reserved 6;\n  reserved "imei";\n')
    path = _candidate(tmp_path, text)
    assert check_candidate(path).ok
    assert cli(["schema", "check", "--new", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: ") and "v1 (jobs/telemetry/schemas/v1.proto)" in out and "v2 (" in out


@pytest.mark.parametrize(
    ("old", "new", "rule", "message", "field", "number"),
    [
        # a reused field number: old clients' IMEI would be read as a handset model
        ("  string imei = 6;", "  int64 handset_model = 6;", "field_number_reused", "CallEvent", "handset_model", 6),
        ("  optional double mos = 24;", "  optional float mos = 24;", "field_type_changed", "CallEvent", "mos", 24),
        ("  int64 sent_at_ms = 6;", "  uint64 sent_at_ms = 6;", "field_type_changed", "BatchHeader", "sent_at_ms", 6),
        ("  string imei = 6;                // schema v1 only; never stored by voiplake\n", "",
         "field_removed_without_reserved", "CallEvent", "imei", 6),
        ("  string msisdn = 5;", '  reserved 5;\n  reserved "msisdn";', "contract_field_removed", "CallEvent", "msisdn", 5),
        ("  optional int64 duration_ms = 17;", "  int64 duration_ms = 17;", "presence_changed", "CallEvent",
         "duration_ms", 17),
        ("  repeated TimeSyncSample time_sync = 9;", "  TimeSyncSample time_sync = 9;", "cardinality_changed",
         "BatchHeader", "time_sync", 9),
        ("  string call_id = 2;", "  string call_id = 30;", "field_renumbered", "CallEvent", "call_id", 2),
        ("  LTE = 3;\n  UMTS_3G = 4;", "  LTE = 4;\n  UMTS_3G = 3;", "enum_value_renumbered", "NetworkType", "LTE", 3),
    ],
)
def test_incompatible_change_fails_with_a_precise_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, rule: str, message: str, field: str,
    number: int,
) -> None:
    path = _candidate(tmp_path, _edit(old, new))
    result = check_candidate(path)
    hits = [v for v in result.violations if v.rule == rule]
    assert hits, [str(v) for v in result.violations]
    v = hits[0]
    assert (v.message, v.field, v.number, v.file) == (message, field, number, str(path))
    assert cli(["schema", "check", "--new", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}: {message}.{field} = {number}: {rule}: " in err and "FAILED" in err


def test_reserved_numbers_and_names_are_never_reused(tmp_path: Path) -> None:
    old = compile_descriptor_set(_candidate(tmp_path, 'syntax = "proto3";\npackage p;\n'
                                            'message M {\n  string a = 1;\n  reserved 2, 5 to 7;\n  reserved "b";\n}\n',
                                            "old.proto"), out_dir=tmp_path).file[0]
    new = compile_descriptor_set(_candidate(tmp_path, 'syntax = "proto3";\npackage p;\n'
                                            'message M {\n  string a = 1;\n  int32 c = 6;\n  string b = 8;\n}\n',
                                            "new.proto"), out_dir=tmp_path).file[0]
    rules = sorted((v.rule, v.field, v.number) for v in compare(old, new, new_file="new.proto", against="old"))
    assert ("reserved_number_reused", "c", 6) in rules and ("reserved_name_reused", "b", 8) in rules
    assert ("reserved_removed", "", 2) in rules


def test_a_proto_that_does_not_compile_is_an_error_not_a_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _candidate(tmp_path, _edit("message CallEvent {", "message CallEvent {{"))
    with pytest.raises(SchemaError, match="protoc rejects"):
        check_candidate(path)
    assert cli(["schema", "check", "--new", str(path)]) == 2
    assert "protoc rejects" in capsys.readouterr().err
