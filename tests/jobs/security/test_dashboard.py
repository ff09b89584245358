"""The usage and anomaly dashboard: what it embeds (k-anonymous usage sums, findings with their subject's
dimensions, no network addresses), the access-log entry, and the page as headless Chromium draws and filters it."""

from __future__ import annotations

import html
import json
import re
import subprocess
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jobs.security import dashboard
from jobs.platform import lake
from lake_layout.access import AccessDenied
from lake_layout.config import Settings
from lake_layout.registry import TableSpec
from lake_layout.tables import AUDIT_ACCESS_LOG, GOLD_ANOMALIES, GOLD_HOURLY_GEO_USAGE, SILVER_CALLS
from test_lineage_report import CHROMIUM_FLAGS, _chromium, decode_png  # the suite's one headless-browser helper

D1, D2 = date(2026, 11, 24), date(2026, 11, 25)
AT = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)

# gold.hourly_geo_usage: (call_date, geo_zone, country, platform, carrier, network class, calls, failed, minutes)
USAGE = [
    (D1, "871f1d489ffffff", "DE", "ios", "26201", "wifi", 40, 2, 100.5),
    (D1, "871f1d48affffff", "DE", "ios", "26201", "wifi", 12, 0, 30.0),  # same group, other cell: summed
    (D1, "871f1d489ffffff", "DE", "android", "26202", "cellular_4g", 25, 5, 60.0),
    (D2, "US-CA", "US-CA", "ios", "*", "cellular_5g", 30, 1, 75.25),
    (D2, "FR", "FR", "web", "*", "wired", 15, 3, 20.0),
    (date(2026, 10, 1), "DE", "DE", "ios", "*", "wifi", 999, 9, 999.0),  # outside the period
]
# gold.anomalies: (detector, rule, severity, score, account, subscriber, device, evidence)
ANOMALIES = [
    ("auth_correlation", "new_ip_range", "high", 4.0, "consumer", "sub-ios", "dev-ios",
     {"calls": 4, "call_ip_ranges": ["198.51.100.0/24"], "login_ip_ranges": ["203.0.113.0/24"]}),
    ("consumption", "session_kbps", "critical", 12.0, "consumer", "sub-android", "dev-android", {"sessions": 2}),
    ("account_baseline", "isolation_forest", "medium", 0.61, "acct-1", None, None, {"attempts": 80}),
]
# silver.calls: (call_date, device, subscriber, account, country, platform, carrier, network class) x calls
CALLS = [
    ((D1, "dev-ios", "sub-ios", "consumer", "DE", "ios", "26201", "wifi"), 3),
    ((D1, "dev-ios", "sub-ios", "consumer", "FR", "ios", "20801", "cellular_4g"), 1),  # the minority: not its region
    ((D1, "dev-android", "sub-android", "consumer", "US-CA", "android", "310260", "cellular_5g"), 2),
    ((D1, "dev-web", "sub-web", "acct-1", "FR", "web", None, "wired"), 5),
]


def _row(spec: TableSpec, **values: Any) -> dict[str, Any]:
    defaults = {"string": "x", "int": 0, "long": 0, "boolean": True, "date": D1, "timestamp": AT, "double": 0.0}
    return {c.name: values.get(c.name, None if c.nullable else defaults[c.type]) for c in spec.columns}


def _write(spark, spec: TableSpec, settings: Settings, rows: list[dict[str, Any]]) -> None:  # type: ignore[no-untyped-def]
    df = spark.createDataFrame(rows, spec.spark_schema())
    lake.conform(df, spec).write.format("delta").mode("append").save(spec.location(settings))


@pytest.fixture(scope="module")
def board(spark, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("dashboard")
    s = settings.with_lake_root(str(tmp / "lake"))
    _write(spark, GOLD_HOURLY_GEO_USAGE, s, [
        _row(GOLD_HOURLY_GEO_USAGE, call_date=d, geo_zone=z, country_code=c, platform=p, carrier_mccmnc=m,
             network_class=n, calls=calls, failed_calls=failed, total_minutes=minutes, data_bytes=calls * 1000,
             distinct_subscribers=10, k=10, period_hours=1, geo_level="h3_cell")
        for d, z, c, p, m, n, calls, failed, minutes in USAGE])
    _write(spark, GOLD_ANOMALIES, s, [
        _row(GOLD_ANOMALIES, anomaly_id=f"a{i}", detection_date=D1, detector=det, rule=rule, severity=sev, score=score,
             threshold=1.0, account_id=acct, subscriber_pseudonym=sub, device_pseudonym=dev, evidence=json.dumps(ev),
             window_start=AT.replace(hour=9 + i), window_end=AT.replace(hour=10 + i))
        for i, (det, rule, sev, score, acct, sub, dev, ev) in enumerate(ANOMALIES)])
    _write(spark, SILVER_CALLS, s, [
        _row(SILVER_CALLS, call_id=f"{dims[1]}-{dims[4]}-{k}", call_date=dims[0], device_pseudonym=dims[1],
             subscriber_pseudonym=dims[2], account_id=dims[3], country_code=dims[4], platform=dims[5],
             carrier_mccmnc=dims[6], network_class=dims[7], status="completed", started_at=AT)
        for dims, n in CALLS for k in range(n)])
    path = dashboard.render(spark, s, out=tmp / "out", start=D1, end=D2, role="noc_operator", user="dash-tester")
    page = path.read_text(encoding="utf-8")
    match = re.search(r'<script type="application/json" id="dashboard-data">(.*?)</script>', page, re.S)
    assert match
    return {"settings": s, "path": path, "page": page, "data": json.loads(match[1]), "tmp": tmp}


def _records(table: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(zip(table["columns"], r)) for r in table["rows"]]


def test_usage_is_summed_from_the_k_anonymous_rows_of_the_period(board: dict[str, Any]) -> None:
    usage = _records(board["data"]["usage"])
    assert len(usage) == 4  # the two DE/ios/26201/wifi cells are one group; the October row is outside the period
    de_ios = next(r for r in usage if r["region"] == "DE" and r["platform"] == "ios")
    assert (de_ios["calls"], de_ios["failed_calls"], de_ios["total_minutes"]) == (52, 2, 130.5)
    assert de_ios["device_type"] == "smartphone app" and de_ios["carrier"] == "26201"
    assert {r["device_type"] for r in usage if r["platform"] == "web"} == {"web browser"}
    assert sum(r["calls"] for r in usage) == sum(u[6] for u in USAGE if u[0] in (D1, D2))


def test_anomalies_carry_their_subjects_dimensions_and_no_addresses(board: dict[str, Any]) -> None:
    found = {r["rule"]: r for r in _records(board["data"]["anomalies"])}
    assert (found["new_ip_range"]["region"], found["new_ip_range"]["platform"], found["new_ip_range"]["carrier"]) \
        == ("DE", "ios", "26201")  # most of the device's calls that day (3 in DE, 1 in FR)
    assert (found["session_kbps"]["region"], found["session_kbps"]["network"]) == ("US-CA", "cellular_5g")
    assert (found["isolation_forest"]["region"], found["isolation_forest"]["device_type"]) == ("FR", "web browser")
    assert found["isolation_forest"]["carrier"] == "*"  # the account's web calls report no carrier
    assert found["new_ip_range"]["evidence"] == {"calls": 4}  # IP prefixes left out
    assert "198.51.100" not in board["page"] and "203.0.113" not in board["page"]
    assert board["data"]["values"]["platform"] == ["android", "ios", "web"]
    assert board["data"]["values"]["region"] == ["DE", "FR", "US-CA"]


def test_dashboard_is_recorded_as_an_export_of_what_it_read(spark, board: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    log = lake.read_table(spark, AUDIT_ACCESS_LOG, board["settings"]).where("user = 'dash-tester'").collect()
    assert len(log) == 1
    entry = log[0]
    assert (entry["action"], entry["role"], entry["allowed"]) == ("export", "noc_operator", True)
    assert json.loads(entry["tables"]) == sorted([GOLD_ANOMALIES.name, GOLD_HOURLY_GEO_USAGE.name, SILVER_CALLS.name])
    columns = set(json.loads(entry["columns"]))
    assert {"gold.hourly_geo_usage.calls", "gold.anomalies.device_pseudonym", "silver.calls.platform"} <= columns
    assert "silver.calls.h3_cell" not in columns and "silver.calls.callee_pseudonym" not in columns
    assert entry["row_count"] == 4 + 3


def test_a_role_that_may_not_read_the_gold_tables_is_refused(spark, settings: Settings, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AccessDenied, match="gold.hourly_geo_usage, gold.anomalies closed to role 'billing'"):
        dashboard.render(spark, settings, out=tmp_path, start=D1, end=D2, role="billing")
    assert not (tmp_path / dashboard.DASHBOARD_FILE).exists()
    from jobs.cli.main import main

    assert main(["dashboard", "--out", str(tmp_path), "--from", "2026-11-30", "--to", "2026-11-01"]) == 2
    assert "--from 2026-11-30 is after --to 2026-11-01" in capsys.readouterr().err


def test_public_evidence_drops_every_address_key() -> None:
    evidence = json.dumps({"calls": 3, "ip_prefix": "10.0.0.0/24", "call_ip_ranges": ["a"], "src_ip": "x",
                           "login_countries": ["DE"], "shipping": 1})
    assert dashboard.public_evidence(evidence) == {"calls": 3, "login_countries": ["DE"], "shipping": 1}
    assert dashboard.public_evidence("not json") == {} and dashboard.public_evidence(None) == {}


# ----------------------------------------------------------------------------- a real browser

def _browse(chromium: str, url: str, profile: Path, shot: Path) -> str:
    """The DOM after the page's scripts ran, and a screenshot, of `url` (one headless Chromium run)."""
    return subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}",
                           "--dump-dom", url], check=True, capture_output=True, timeout=120, text=True).stdout


def _text(dom: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', dom)
    assert match, f"#{element_id} not in the DOM"
    return match[1]


def _traces(dom: str, element_id: str) -> list[dict[str, Any]]:
    match = re.search(rf'<div class="plot" id="{element_id}"[^>]*data-traces="([^"]*)"', dom) or re.search(
        rf'id="{element_id}"[^>]*data-traces="([^"]*)"', dom)
    assert match, f"#{element_id} has no drawn traces"
    return json.loads(html.unescape(match[1]))


def test_chromium_draws_the_plots_and_the_filters_change_them(board: dict[str, Any], tmp_path: Path) -> None:
    chromium = _chromium()
    url = board["path"].as_uri()
    doms, shots = {}, {}
    # a hash and a query string; "empty": FR has only web clients, so no smartphone app usage or finding there
    views = (("all", ""), ("ios", "#platform=ios"), ("empty", "?region=FR&device_type=smartphone%20app"))
    for name, fragment in views:
        shots[name] = tmp_path / f"{name}.png"
        doms[name] = _browse(chromium, url + fragment, tmp_path / "profile", shots[name])

    def expected(keep: Any) -> tuple[int, int]:
        rows = [u for u in USAGE if u[0] in (D1, D2) and keep(u)]
        return sum(u[6] for u in rows), sum(u[7] for u in rows)

    for name, keep, anomalies in (("all", lambda u: True, 3), ("ios", lambda u: u[3] == "ios", 1),
                                  ("empty", lambda u: u[2] == "FR" and u[3] != "web", 0)):
        calls, failed = expected(keep)
        dom = doms[name]
        assert _text(dom, "total-calls") == f"{calls:,}", name
        assert _text(dom, "total-failed") == f"{failed:,}", name
        assert _text(dom, "total-anomalies") == str(anomalies), name
        assert re.search(rf'data-calls="{calls}"', dom), name
        daily = _traces(dom, "plot-daily")  # one trace per platform shown, each summing that platform's calls
        assert sum(t["sum"] for t in daily) == calls, name
        assert "main-svg" in dom, f"{name}: plotly drew no SVG"
    assert [t["name"] for t in _traces(doms["ios"], "plot-daily")] == ["ios"]
    state = re.search(r'data-state="([^"]*)"', doms["empty"])
    assert state and json.loads(html.unescape(state[1])) == {
        "region": "FR", "device_type": "smartphone app", "platform": "all", "carrier": "all", "network": "all"}

    pixels = {n: decode_png(p.read_bytes())[:, :, :3] for n, p in shots.items()}
    for name in ("all", "ios"):
        flat = pixels[name].reshape(-1, 3)
        non_white = int((flat.min(axis=1) < 240).sum())
        assert non_white > 40_000, f"{name}: page looks blank ({non_white} non-white pixels)"
        assert len(np.unique(flat, axis=0)) > 50, f"{name}: hardly any colours: no plots drawn"
    # the first platform's and the calls-per-region bars' colour is there unfiltered ...
    plot_blue = np.array([0x1F, 0x77, 0xB4], dtype=np.uint8)
    blue = {n: int((px.reshape(-1, 3) == plot_blue).all(axis=1).sum()) for n, px in pixels.items()}
    assert blue["all"] > 2000, blue
    # ... and a filter changes what is drawn: other pixels, and an empty selection draws (almost) no bars
    changed = {n: int((pixels[n] != pixels["all"]).any(axis=2).sum()) for n in ("ios", "empty")}
    assert min(changed.values()) > 5000, changed
    assert blue["empty"] < blue["all"] // 10, blue
