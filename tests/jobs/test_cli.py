"""Output formats of `voiplake query`."""

from __future__ import annotations

import json
from datetime import date

from jobs.cli import render

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
