"""The auditors' lineage report: graph as SVG down to landing groups, per-table facts, audit sections,
the access-log entry, and the page as a real browser (headless Chromium) draws it."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from dataclasses import replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jobs.platform import lake, lineage
from jobs.governance import lineage_report
from lake_layout.config import LineageSettings, Settings
from lake_layout.registry import TableSpec
from lake_layout.tables import (
    ALL_TABLES, AUDIT_ACCESS_LOG, AUDIT_LINEAGE, AUDIT_PRIVACY_BUDGET, AUDIT_QUALITY_RESULTS, TABLES_BY_NAME,
)

IN_PERIOD = datetime(2026, 11, 25, 1, 0, tzinfo=timezone.utc)
BEFORE_PERIOD = datetime(2026, 10, 2, 1, 0, tzinfo=timezone.utc)
START, END = date(2026, 11, 1), date(2026, 11, 30)
SHA = {name: f"{i:02x}" * 32 for i, name in enumerate(["a", "b", "c", "d", "e"], start=10)}


def _landing_key(day: str, hour: int, ms: int) -> str:
    return f"uploads/upload_date={day}/hour={hour:02d}/{ms}-batch{ms % 97}.pb.gz"


def _record(run_id: str, job: str, inputs: Any, outputs: Any, at: datetime = IN_PERIOD) -> lineage.LineageRecord:
    return lineage.LineageRecord(
        run_id=run_id, job=job, dag_id="voip_daily", dag_run_id=f"manual__{run_id}", logical_date=at.date(),
        inputs=inputs, outputs=outputs, metrics={}, rows_in=5, rows_out=4, started_at=at, finished_at=at)


def _row(spec: TableSpec, **values: Any) -> dict[str, Any]:
    """A full row of `spec`: given values, placeholders for the other non-nullable columns, null elsewhere."""
    defaults = {"string": "x", "int": 0, "long": 0, "boolean": True, "date": IN_PERIOD.date(), "timestamp": IN_PERIOD,
                "double": 0.0}
    return {c.name: values.get(c.name, None if c.nullable else defaults[c.type]) for c in spec.columns}


def _write(spark, spec: TableSpec, settings: Settings, rows: list[dict[str, Any]], *, merge: bool = True) -> None:  # type: ignore[no-untyped-def]
    df = spark.createDataFrame(rows, spec.spark_schema())
    if merge:
        lake.merge_insert_new(spark, df, spec, settings)
    else:  # a plain first write (one Spark job, not a MERGE's several): keeps the test fast
        lake.conform(df, spec).write.format("delta").mode("append").save(spec.location(settings))


@pytest.fixture(scope="module")
def reports(spark, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """A small lake: lineage (two upload dates into bronze, then silver, gold), one quality run, budget ledger,
    DSR receipt and retention actions (one before the period); the report rendered once."""
    tmp = tmp_path_factory.mktemp("lineage_report")
    s = replace(settings.with_lake_root(str(tmp / "lake")),
                lineage=LineageSettings(namespace="test", openlineage_file=str(tmp / "ol" / "events.jsonl")))
    day1 = (lineage.LandingInput(uri="s3a://voiplake-landing/uploads/upload_date=2026-11-24/", objects=(
        (_landing_key("2026-11-24", 9, 1764000000001), SHA["a"]), (_landing_key("2026-11-24", 10, 1764000000002), SHA["b"]),
        (_landing_key("2026-11-24", 11, 1764000000003), SHA["c"]))),)
    day2 = (lineage.LandingInput(uri="s3a://voiplake-landing/uploads/upload_date=2026-11-25/", objects=(
        (_landing_key("2026-11-25", 0, 1764030000004), SHA["d"]), (_landing_key("2026-11-25", 1, 1764030000005), SHA["e"]))),)
    T = lineage.TableOutput
    runs = [
        _record("bronze-1", "bronze_ingest", day1, (T("bronze.call_events", None, 0), T("bronze.ingested_objects", None, 0))),
        _record("bronze-2", "bronze_ingest", day2, (T("bronze.call_events", 0, 1), T("bronze.ingested_objects", 0, 1))),
        _record("silver-1", "silver_calls", (lineage.TableInput("bronze.call_events", 1),), (T("silver.calls", None, 0),)),
        _record("gold-1", "gold_hourly_geo", (lineage.TableInput("silver.calls", 0),), (T("gold.hourly_geo_usage", None, 0),)),
    ]
    _write(spark, AUDIT_LINEAGE, s, [lineage.lineage_row(r) for r in runs])  # one write: record_run is tested elsewhere
    _write(spark, AUDIT_QUALITY_RESULTS, s, [
        _row(AUDIT_QUALITY_RESULTS, run_id="q-1", table_name="silver.calls", suite="silver_calls", expectation_index=i,
             expectation_type=t, success=ok, unexpected_count=0 if ok else 3, checked_at=IN_PERIOD,
             checked_date=IN_PERIOD.date(), scope="call_date IN ('2026-11-24')")
        for i, (t, ok) in enumerate([("expect_column_values_to_not_be_null", True),
                                     ("expect_column_values_to_be_between", False)])], merge=False)
    retention = TABLES_BY_NAME["audit.retention_actions"]
    dsr = TABLES_BY_NAME["audit.dsr_requests"]
    _write(spark, retention, s, [
        _row(retention, run_id="ret-1", step=0, action="delete", table_name="silver.calls", jurisdiction="DE",
             retention_days=180, regulation="TKG 176", rows_removed=41, delta_version=7, executed_at=IN_PERIOD),
        _row(retention, run_id="ret-1", step=1, action="vacuum", table_name="silver.calls", files_removed=12,
             executed_at=IN_PERIOD),
        _row(retention, run_id="ret-0", step=0, action="delete", table_name="bronze.call_events", rows_removed=999,
             executed_at=BEFORE_PERIOD),
    ])
    _write(spark, dsr, s, [
        _row(dsr, request_id="DSR-2026-0042", kind="delete", status="completed",
             subscriber_pseudonyms=json.dumps(["PSN-SECRET-1"]),
             tables=json.dumps({"silver.calls": {"rows": 3}}), rows_total=3, actor="privacy-desk",
             requested_at=IN_PERIOD, completed_at=IN_PERIOD),
    ])
    _write(spark, AUDIT_PRIVACY_BUDGET, s, [
        _row(AUDIT_PRIVACY_BUDGET, release_id=f"daily/2026-11-24/{n}", dataset="daily_country_network",
             period=date(2026, 11, 24), epsilon=eps, delta="0", mechanism="calls=geometric", cap="1",
             spent_before=before, status="spent", reason="release", recorded_at=IN_PERIOD, run_id=f"p-{n}")
        for n, (eps, before) in enumerate([("0.1", "0"), ("1/3", "0.1")])], merge=False)
    out = lineage_report.render(spark, s, out=tmp / "report", start=START, end=END, user="carol")
    return {"settings": s, "full": out, "tmp": tmp}


def _section(page: str, anchor: str) -> str:
    match = re.search(rf'<section id="{anchor}"[^>]*>(.*?)</section>', page, re.S)
    assert match, f"no section {anchor}"
    return match[1]


def _svg(page: str) -> str:
    match = re.search(r"<svg .*?</svg>", page, re.S)
    assert match, "the report has no inline SVG"
    return match[0]


def test_report_has_every_table_with_classification_and_retention_tier(reports: dict[str, Any]) -> None:
    page = reports["full"].read_text()
    for spec in ALL_TABLES:
        section = re.search(rf'<section id="t-[^"]*" class="table-section" data-table="{re.escape(spec.name)}">(.*?)</section>',
                            page, re.S)
        assert section, f"no section for {spec.name}"
        facts = lineage_report.table_facts(spec, exists=False)
        assert f'<dd class="retention-tier">{spec.retention_tier.value}</dd>' in section[1]
        assert f"highest sensitivity <b>{facts.highest_sensitivity}</b>" in section[1]
        for classification, n in facts.columns_per_classification.items():
            assert f"{n} {classification}" in section[1]
    policy = lineage_report.retention_policy()
    if policy is not None:  # lake_layout.retention present: days per jurisdiction from the policy file
        from lake_layout.registry import RetentionTier

        periods = lineage_report.retention_periods(TABLES_BY_NAME["bronze.call_events"], policy)
        assert periods and periods["EU"] == policy.period(RetentionTier.BRONZE_RESTRICTED, "EU").days
        text = ", ".join(f"{j}: {d} days" for j, d in periods.items())
        assert f'<dd class="retention-periods">{text}</dd>' in page
    bronze = lineage_report.table_facts(TABLES_BY_NAME["bronze.call_events"], exists=False)
    assert bronze.highest_sensitivity == "restricted" and bronze.columns_per_classification["restricted"] == 2
    # Delta history of a written table: its MERGEs with their metrics
    lineage_section = re.search(r'data-table="audit.lineage">(.*?)</section>', page, re.S)[1]  # type: ignore[index]
    assert "<h4>Last writes (Delta history)</h4>" in lineage_section
    assert "<td>MERGE</td>" in lineage_section and "numTargetRowsInserted=4" in lineage_section
    assert 'data-table="gold.cost_allocation">' in page and "Not written yet: no Delta history." in page


def test_svg_has_a_node_per_table_with_lineage_and_landing_groups(reports: dict[str, Any]) -> None:
    svg = _svg(reports["full"].read_text())
    nodes = set(re.findall(r'<g class="node" data-node="([^"]+)"', svg))
    assert nodes == {"bronze.call_events", "bronze.ingested_objects", "silver.calls", "gold.hourly_geo_usage",
                     "landing:2026-11-24", "landing:2026-11-25"}
    assert "landing: 3 objects (2026-11-24)" in svg and "landing: 2 objects (2026-11-25)" in svg
    assert SHA["a"] in svg and SHA["d"] in svg  # SHA-256 sample in the landing node's tooltip
    edges = set(re.findall(r'<path class="edge" data-source="([^"]+)" data-target="([^"]+)"', svg))
    assert edges == {("landing:2026-11-24", "bronze.call_events"), ("landing:2026-11-25", "bronze.call_events"),
                     ("landing:2026-11-24", "bronze.ingested_objects"), ("landing:2026-11-25", "bronze.ingested_objects"),
                     ("bronze.call_events", "silver.calls"), ("silver.calls", "gold.hourly_geo_usage")}
    # layered left to right: landing, bronze, silver, gold
    x = {n: int(v) for n, v in re.findall(r'data-node="([^"]+)"[^>]*><a[^>]*><rect x="(\d+)"', svg)}
    assert x["landing:2026-11-24"] == x["landing:2026-11-25"] < x["bronze.call_events"] < x["silver.calls"] < x["gold.hourly_geo_usage"]


def test_audit_sections_say_no_actions_when_empty_or_absent() -> None:
    """Pure: an unwritten audit table and a written one without rows in the period both read "No actions"."""
    absent = lineage_report.AuditRows(table="audit.dsr_requests", present=False)
    empty = lineage_report.AuditRows(table="audit.retention_actions", present=True, columns=("run_id",), rows=())
    data = lineage_report.ReportData(
        start=START, end=END, generated_at=IN_PERIOD, generated_by="carol",
        graph=lineage_report.lineage_graph([], start=START, end=END),
        tables=tuple(lineage_report.table_facts(spec, exists=False) for spec in ALL_TABLES),
        quality=lineage_report.AuditRows(table="audit.quality_results", present=False),
        quality_summary=lineage_report.AuditRows(table="audit.quality_results", present=False),
        budget=lineage_report.AuditRows(table="audit.privacy_budget", present=True, columns=("epsilon",)),
        dsr=absent, retention=empty)
    page = lineage_report.render_html(data)
    assert "No actions in the period. (audit.dsr_requests has not been written yet)" in _section(page, "dsr")
    assert _section(page, "retention").count("No actions in the period.") == 1
    assert "No privacy budget spent" in _section(page, "budget")
    assert "No quality results in the period." in _section(page, "quality")
    assert "No lineage recorded yet" in _section(page, "graph")


def test_audit_sections_show_the_rows_of_the_period(reports: dict[str, Any]) -> None:
    full = reports["full"].read_text()
    for anchor in ("dsr", "retention"):
        assert "No actions in the period." not in _section(full, anchor)
    retention = re.search(r'<section id="retention" class="audit">(.*?)</section>', full, re.S)[1]  # type: ignore[index]
    assert "2 rows from audit.retention_actions in the period" in retention
    assert "ret-1" in retention and "TKG 176" in retention and "41" in retention
    assert "ret-0" not in retention  # executed before the period
    dsr = re.search(r'<section id="dsr" class="audit">(.*?)</section>', full, re.S)[1]  # type: ignore[index]
    assert "DSR-2026-0042" in dsr and "completed" in dsr and "privacy-desk" in dsr
    assert "PSN-SECRET-1" not in full  # pseudonyms are above the auditor's clearance
    budget = re.search(r'<section id="budget">(.*?)</section>', full, re.S)[1]  # type: ignore[index]
    assert "<td>daily_country_network</td><td>2026-11-24</td><td>13/30</td>" in budget  # 0.1 + 1/3, exactly
    quality = re.search(r'<section id="quality">(.*?)</section>', full, re.S)[1]  # type: ignore[index]
    assert "<td>silver.calls</td><td>silver_calls</td><td>1</td><td>2</td><td>1</td>" in quality
    assert "expect_column_values_to_be_between" in quality


def test_report_is_recorded_as_an_auditor_export(spark, reports: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    rows = [r.asDict() for r in lake.read_table(spark, AUDIT_ACCESS_LOG, reports["settings"]).orderBy("seq").collect()]
    assert [(r["user"], r["role"], r["action"], r["allowed"]) for r in rows] == [("carol", "auditor", "export", True)]
    entry = rows[0]
    assert entry["statement"].startswith("voiplake report lineage --out ") and "--from 2026-11-01 --to 2026-11-30" in entry["statement"]
    assert json.loads(entry["tables"]) == ["audit.dsr_requests", "audit.lineage", "audit.privacy_budget",
                                          "audit.quality_results", "audit.retention_actions"]
    columns = json.loads(entry["columns"])
    assert "audit.dsr_requests.request_id" in columns and "audit.dsr_requests.subscriber_pseudonyms" not in columns
    assert "audit.lineage.inputs_json" in columns
    assert entry["row_count"] == 1 + 1 + 2 + 2 + 1  # quality summary + failed expectation + budget + retention + dsr


def test_lineage_graph_groups_landing_objects_per_upload_date_once() -> None:
    """Pure: two runs reading overlapping objects of two dates -> two landing nodes, each object counted once."""
    def row(run_id: str, inputs: list[dict[str, Any]], outputs: dict[str, Any], at: datetime) -> dict[str, Any]:
        return {"run_id": run_id, "job": "bronze_ingest", "dag_run_id": None, "code_version": "c", "rows_in": 1,
                "rows_out": 1, "finished_at": at, "inputs_json": json.dumps(inputs), "outputs_json": json.dumps(outputs)}

    def objs(*items: tuple[str, int, int]) -> list[dict[str, str]]:
        return [{"key": _landing_key(d, h, ms), "sha256": f"{ms:064x}"} for d, h, ms in items]

    rows = [
        row("r1", [{"kind": "landing", "uri": "s3a://l/u/", "objects": objs(("2026-11-24", 1, 1), ("2026-11-24", 2, 2))}],
            {"bronze.call_events": {"version_before": None, "version_after": 0}}, BEFORE_PERIOD),
        row("r2", [{"kind": "landing", "uri": "s3a://l/u/", "objects": objs(("2026-11-24", 2, 2), ("2026-11-25", 3, 3))}],
            {"bronze.call_events": {"version_before": 0, "version_after": 1}}, IN_PERIOD),
    ]
    graph = lineage_report.lineage_graph(rows, start=date(2026, 9, 1), end=END)
    assert [(g.node_id, len(g.objects)) for g in graph.landing] == [("landing:2026-11-24", 2), ("landing:2026-11-25", 1)]
    # outside the period only the newest version is walked: the 2026-11-24-only run is not reached
    newest_only = lineage_report.lineage_graph(rows, start=START, end=END)
    assert [(g.node_id, len(g.objects)) for g in newest_only.landing] == [("landing:2026-11-24", 1), ("landing:2026-11-25", 1)]
    positions = lineage_report.layout(graph)
    assert positions["landing:2026-11-24"][0] == 0 and positions["bronze.call_events"][0] == 1


def test_cli_refuses_a_reversed_period_and_defaults_to_30_days(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from jobs.cli.main import main

    assert main(["report", "lineage", "--out", str(tmp_path), "--from", "2026-11-30", "--to", "2026-11-01"]) == 2
    assert "--from 2026-11-30 is after --to 2026-11-01" in capsys.readouterr().err
    assert not (tmp_path / lineage_report.REPORT_FILE).exists()
    assert lineage_report.default_period(date(2026, 11, 26)) == (date(2026, 10, 28), date(2026, 11, 26))


# ----------------------------------------------------------------------------- a real browser

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,2000"]


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing under CI: .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium); required under CI")
    return found


def decode_png(data: bytes) -> np.ndarray:
    """RGB(A) pixels of an 8-bit, non-interlaced PNG as an (h, w, channels) array (zlib + numpy, no Pillow)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat.append(chunk)
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, f"unsupported PNG: depth {depth} colour {colour}"
    bpp = 3 if colour == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8).reshape(height, 1 + width * bpp)
    kinds, line = raw[:, 0], raw[:, 1:].reshape(height, width, bpp).astype(np.int16)
    # Unfilter along anti-diagonals: pixel (y, x) needs only its left, upper and upper-left neighbours, all on
    # earlier diagonals, so each diagonal is one vectorized step whatever filter (None/Sub/Up/Average/Paeth)
    # each row uses. `out` has a zero row and column in front for the image's edges.
    out = np.zeros((height + 1, width + 1, bpp), dtype=np.int16)
    for d in range(height + width - 1):
        ys = np.arange(max(0, d - width + 1), min(height - 1, d) + 1)
        xs = d - ys
        a, b, c = out[ys + 1, xs], out[ys, xs + 1], out[ys, xs]
        p = a + b - c
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        k = kinds[ys][:, None]
        predicted = np.select([k == 0, k == 1, k == 2, k == 3], [np.zeros_like(a), a, b, (a + b) // 2], paeth)
        out[ys + 1, xs + 1] = (line[ys, xs] + predicted) % 256
    return out[1:, 1:].astype(np.uint8)


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def test_chromium_draws_the_report(reports: dict[str, Any], tmp_path: Path) -> None:
    chromium = _chromium()
    shot = reports["tmp"] / "lineage-report.png"
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                    reports["full"].as_uri()], check=True, capture_output=True, timeout=120)
    pixels = decode_png(shot.read_bytes())[:, :, :3]
    assert pixels.shape[:2] == (2000, 1400)
    flat = pixels.reshape(-1, 3)
    non_white = int((flat.min(axis=1) < 240).sum())
    assert non_white > 50_000, f"page looks blank: {non_white} non-white pixels"
    colours = {tuple(int(v) for v in c) for c in np.unique(flat, axis=0)}
    assert len(colours) > 50
    # the SVG was drawn: the landing, bronze, silver and gold fills are in the picture, each over a node's area
    for layer in ("landing", "bronze", "silver", "gold"):
        rgb = _rgb(lineage_report.LAYER_FILL[layer])
        count = int((flat == np.array(rgb, dtype=np.uint8)).all(axis=1).sum())
        assert count > 3000, f"{layer} node fill {lineage_report.LAYER_FILL[layer]} hardly drawn: {count} pixels"
