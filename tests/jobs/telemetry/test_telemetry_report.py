"""The telemetry overhead report: exact numbers on a tiny hand-built bronze, and the page as headless Chromium
draws it (plotly.js inline, offline)."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest

from jobs.telemetry.report import TelemetryOverhead, overhead, render_html
from lake_layout.tables import BRONZE_CALL_EVENTS
from test_lineage_report import CHROMIUM_FLAGS, _chromium, decode_png  # the suite's headless-browser helper

DAY = date(2026, 11, 24)


def t(h: int, m: int = 0, s: int = 0) -> datetime:
    return datetime(2026, 11, 24, h, m, s, tzinfo=UTC)


def _events(spark):  # type: ignore[no-untyped-def]
    rows = []

    def add(device, platform, version, batch, obj, call, kind, at, network, sent, received):  # type: ignore[no-untyped-def]
        rows.append({"event_id": f"e{len(rows)}", "call_id": call, "event_type": kind, "event_ts_device": at,
                     "event_date": at.date(), "platform": platform, "app_version": version, "schema_version": 2,
                     "subscriber_pseudonym": "s", "device_pseudonym": device, "pseudonym_key_id": "k",
                     "network_type": network, "batch_id": batch, "sent_at_device": sent, "received_at": received,
                     "clock_offset_ms": 0, "object_key": obj, "record_index": len(rows), "ingest_run_id": "r"})

    # d1 on Wi-Fi: one call, uploaded a minute after it ended
    add("d1", "ios", "6.0.1", "b1", "o1", "c1", "call_start", t(10), "wifi", t(10, 3), t(10, 3, 1))
    add("d1", "ios", "6.0.1", "b1", "o1", "c1", "call_end", t(10, 2), "wifi", t(10, 3), t(10, 3, 1))
    # d1 on LTE: the batch waits an hour (deferred), and is uploaded twice (o3: a retry of the same batch)
    for obj, received in (("o2", t(12)), ("o3", t(12, 5))):
        add("d1", "ios", "6.0.1", "b2", obj, "c2", "call_start", t(11), "lte", t(12), received)
        add("d1", "ios", "6.0.1", "b2", obj, "c2", "call_end", t(11, 1), "lte", t(12), received)
    # a browser reports no network type
    add("d2", "web", "2025.3", "b3", "o4", "c3", "call_start", t(9), None, t(9, 0, 10), t(9, 0, 11))
    names = BRONZE_CALL_EVENTS.column_names
    return spark.createDataFrame([tuple(r.get(n) for n in names) for r in rows], BRONZE_CALL_EVENTS.spark_schema())


def _objects(spark):  # type: ignore[no-untyped-def]
    return spark.createDataFrame([("o1", 300), ("o2", 200), ("o3", 200), ("o4", 100)], "object_key string, size_bytes long")


@pytest.fixture(scope="module")
def data(spark) -> TelemetryOverhead:  # type: ignore[no-untyped-def]
    return overhead(_events(spark), _objects(spark), period=(DAY, DAY))  # every transform, collected once


def test_overhead_numbers(data: TelemetryOverhead) -> None:
    calls = {(r["platform"], r["network_class"]): (r["calls"], r["telemetry_bytes"], r["bytes_per_call"])
             for r in data.calls}
    # retried bytes count: the LTE call cost both uploads (o2 + o3)
    assert calls == {("ios", "wifi"): (1, 300.0, 300.0), ("ios", "cellular_4g"): (1, 400.0, 400.0),
                     ("web", "unknown"): (1, 100.0, 100.0)}
    batches = {(r["platform"], r["network_class"]): (r["batches"], r["device_days"], r["batches_per_device_day"],
                                                     r["deferred_share"]) for r in data.batches}
    assert batches == {("ios", "wifi"): (1, 1, 1.0, 0.0), ("ios", "cellular_4g"): (1, 1, 1.0, 1.0),
                       ("web", "unknown"): (1, 1, 1.0, 0.0)}
    late = {(r["network_class"], r["bucket"]): r["events"] for r in data.late}
    # start 3600 s late is no longer "< 1 h"; the retry's copies are 5 minutes later still
    assert late == {("wifi", "1-15 min"): 2, ("cellular_4g", "1-6 h"): 3, ("cellular_4g", "15 min-1 h"): 1,
                    ("unknown", "< 1 min"): 1}


def test_chromium_draws_the_report(data: TelemetryOverhead, tmp_path: Path) -> None:
    page = render_html(data)
    # plotly.js inline, no script fetched from elsewhere: the page opens offline
    assert "<script" in page and not re.search(r"<script[^>]*\bsrc=", page)
    assert TelemetryOverhead(**{**data.__dict__}).to_json() == data.to_json()
    (tmp_path / "index.html").write_text(page)
    chromium = _chromium()
    shot = tmp_path / "telemetry.png"
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000",
                    f"--screenshot={shot}", (tmp_path / "index.html").as_uri()], check=True, capture_output=True, timeout=120)
    pixels = decode_png(shot.read_bytes())[:, :, :3].reshape(-1, 3)
    # plotly's first three trace colours (#636efa, #EF553B, #00cc96) fill the bars: the plots were drawn
    for colour in ((0x63, 0x6E, 0xFA), (0xEF, 0x55, 0x3B), (0x00, 0xCC, 0x96)):
        count = int((pixels == np.array(colour, dtype=np.uint8)).all(axis=1).sum())
        assert count > 500, f"bars in {colour} hardly drawn: {count} pixels"
