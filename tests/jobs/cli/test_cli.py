"""Output formats of `voiplake query`; the command groups `voiplake` is built from."""

from __future__ import annotations

import json
from datetime import date

from jobs.cli.common import render

COLUMNS = ["platform", "n", "day", "blob"]
ROWS = [("ios", 3, date(2026, 11, 24), b"\x00\x01"), ("web, beta", None, None, None)]


def test_csv_is_header_then_rows_only() -> None:
    assert render(COLUMNS, ROWS, "csv").split("\n") == [
        "platform,n,day,blob", "ios,3,2026-11-24,<2 bytes>", '"web, beta",,,']


def test_json_is_an_array_of_objects() -> None:
    assert json.loads(render(COLUMNS, ROWS, "json")) == [
        {"platform": "ios", "n": 3, "day": "2026-11-24", "blob": "<2 bytes>"},
        {"platform": "web, beta", "n": None, "day": None, "blob": None}]


def test_table_aligns_and_counts_rows() -> None:
    lines = render(COLUMNS, ROWS, "table").split("\n")
    assert lines[1] == "| platform  | n    | day        | blob      |"
    assert lines[3] == "| ios       | 3    | 2026-11-24 | <2 bytes> |"
    assert lines[-1] == "(2 rows)"
    assert render(["x"], [], "csv") == "x"


def test_every_command_of_every_group_is_listed_once_with_its_group() -> None:
    from jobs.cli.main import COMMANDS

    names = [name for name, _ in COMMANDS]
    assert len(names) == len(set(names))
    groups = {group for _, group in COMMANDS}
    assert set(COMMANDS) == {(name, group) for group in groups for name in group.PARSERS}


def test_query_as_a_role_sees_only_columns_within_its_clearance(spark, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest
    from pyspark.errors import AnalysisException

    from jobs.platform import lake
    from jobs.cli.query import explain_denial, run_query
    from lake_layout.tables import BRONZE_CALL_EVENTS, SILVER_CALLS

    lake_settings = settings.with_lake_root(str(tmp_path / "lake"))
    for spec in (BRONZE_CALL_EVENTS, SILVER_CALLS):
        lake.ensure_table(spark, spec, lake_settings)

    engineer = run_query(spark, lake_settings, "SELECT * FROM bronze.call_events", role="data_engineer")
    assert "src_ip_prefix" in engineer.columns and "ip_encrypted" not in engineer.columns
    sql = "SELECT ip_encrypted FROM bronze.call_events"
    with pytest.raises(AnalysisException):
        run_query(spark, lake_settings, sql, role="data_engineer")
    assert explain_denial(sql, "data_engineer") == (
        "bronze.call_events.ip_encrypted is restricted; role 'data_engineer' may not read it (see lake_layout/access.py)")
    with pytest.raises(AnalysisException):  # the policy closes bronze to analysts: the table is not there at all
        run_query(spark, lake_settings, "SELECT platform FROM bronze.call_events", role="analyst")
    assert explain_denial(sql, "analyst") == "bronze.call_events is closed to role 'analyst' (see lake_layout/access_policy.toml)"
    assert run_query(spark, lake_settings, sql, role="security").columns == ["ip_encrypted"]
    assert run_query(spark, lake_settings, "SELECT * FROM silver.calls", role="finance").columns == [
        c for c in SILVER_CALLS.column_names if c not in ("subscriber_pseudonym", "callee_pseudonym", "device_pseudonym", "h3_cell")]
    assert run_query(spark, lake_settings, sql, role=None).columns == ["ip_encrypted"]  # no role: the table itself
