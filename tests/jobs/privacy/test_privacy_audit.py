"""The re-identification attack simulation on hand-built silver calls and gold rows built with the real gold
transforms: a k-anonymous gold passes with risk <= 1/k, a gold published without the k step fails (and the CLI
exits 3), distinctive silver records are singled out, pycanon agrees with our k, results land in
audit.privacy_audit and the Markdown report."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import h3
import pytest

from jobs.privacy import kanonymity
from jobs.publish import hourly_geo as gold
from jobs.platform import lake
from jobs.privacy import audit
from lake_layout.config import Settings
from lake_layout.tables import AUDIT_PRIVACY_AUDIT, GOLD_HOURLY_GEO_USAGE, SILVER_CALLS

DAY = date(2026, 3, 2)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
BERLIN = h3.latlng_to_cell(52.52, 13.405, 7)
BERLIN_EAST = h3.latlng_to_cell(52.52, 13.55, 7)
MUNICH = h3.latlng_to_cell(48.137, 11.575, 7)
K = 5

# 10 look-alike subscribers (3 calls each, Berlin, 09-11h), 5 more in Munich on iOS, and 3 distinctive ones who each
# call alone (own hours, web over wifi): k-anonymity can only suppress those three.
CROWD = range(0, 10)
MUNICH_GROUP = range(10, 15)
DISTINCTIVE = range(15, 18)


def call(n: int, subscriber: int, *, cell: str | None, at: datetime, network: str = "cellular_4g",
         platform: str = "android", carrier: str | None = "26201", status: str = "completed") -> dict[str, Any]:
    row: dict[str, Any] = {c: None for c in SILVER_CALLS.column_names}
    row.update(
        call_id=f"c{n}", call_date=at.date(), status=status, started_at=at, ended_at=at + timedelta(minutes=1),
        duration_ms=60_000 if status == "completed" else 0, subscriber_pseudonym=f"{subscriber:032x}",
        device_pseudonym="d" * 32, pseudonym_key_id="psn-1", platform=platform, schema_version=2, country_code="DE",
        h3_cell=cell, carrier_mccmnc=carrier, network_class=network, telemetry_level="basic", clock_offset_ms=0,
        event_count=2, duplicate_events=0, first_received_at=at, last_received_at=at, record_hash="h", silver_run_id="r",
        data_bytes=1000,
    )
    return row


def silver_rows() -> list[dict[str, Any]]:
    rows = [call(100 * s + h, s, cell=BERLIN, at=T0 + timedelta(hours=h, minutes=s),
                 status="failed" if s == 0 and h == 0 else "completed") for s in CROWD for h in range(3)]
    rows += [call(100 * s + h, s, cell=MUNICH, at=T0 + timedelta(hours=h, minutes=s), platform="ios", carrier="26202")
             for s in MUNICH_GROUP for h in range(3)]
    rows += [call(100 * s + h, s, cell=BERLIN_EAST, at=T0 + timedelta(hours=4 * (s - 14) + h), platform="web",
                  network="wifi", carrier=None) for s in DISTINCTIVE for h in range(3)]
    return rows


def subscriber(s: int) -> str:
    return f"{s:032x}"


def audit_settings(settings: Settings, tmp_path: Path) -> Settings:
    fresh = settings.with_lake_root(str(tmp_path / "lake"))
    return replace(
        fresh,
        privacy=replace(fresh.privacy, k_anonymity=K),
        privacy_audit=replace(fresh.privacy_audit, targets=50, known_calls=3, near_unique_size=4,
                              max_prosecutor_risk=Decimal("0.2"), report_dir=str(tmp_path / "reports")),
    )


def write_lake(spark, settings: Settings, *, k_step: int, levels=kanonymity.LEVELS) -> None:  # type: ignore[no-untyped-def]
    """silver.calls from silver_rows(); gold via the gold job's transforms with k = k_step (1 = no k step)."""
    where = f"call_date = DATE'{DAY}'"
    calls = spark.createDataFrame(silver_rows(), SILVER_CALLS.spark_schema())
    lake.replace_partitions(spark, calls, SILVER_CALLS, settings, where=where)
    facts = kanonymity.usage_facts(lake.read_table(spark, SILVER_CALLS, settings), region_resolution=settings.privacy.h3_region_resolution)
    published, _ = kanonymity.k_anonymize(facts, k=k_step, levels=levels)
    lake.replace_partitions(spark, gold.aggregate_published(published, k=k_step), GOLD_HOURLY_GEO_USAGE, settings, where=where)


@pytest.fixture(scope="module")
def k_anonymous_lake(spark, settings, tmp_path_factory) -> Settings:  # type: ignore[no-untyped-def]
    """A lake whose gold was built by the real gold transforms with k = K (shared: building it is the slow part)."""
    s = audit_settings(settings, tmp_path_factory.mktemp("privacy-audit"))
    write_lake(spark, s, k_step=K)
    return s


def test_k_anonymous_gold_passes_with_risk_at_most_one_over_k(spark, k_anonymous_lake) -> None:  # type: ignore[no-untyped-def]
    s = k_anonymous_lake
    report = audit.run(spark, audit.AuditContext(settings=s, audit_date=DAY, run_id="audit-proper"))

    assert report.passed and report.failures == []
    by_table = {t["table_name"]: t for t in report.tables}
    g = by_table["gold.hourly_geo_usage"]
    assert g["method"] == "aggregate_linkage" and g["published"] and g["passed"]
    assert g["targets"] == 18  # all subscribers: fewer than privacy_audit.targets
    # the Munich rows describe exactly k subscribers: risk exactly 1/k, which the exact threshold 0.2 admits
    assert g["max_prosecutor_risk"] == pytest.approx(1 / K) and Fraction(1, K) <= Fraction(Decimal("0.2"))
    assert g["unique_share"] == 0.0 and g["near_unique_share"] == 0.0
    assert g["k_min_ours"] == g["k_min_independent"] == K
    assert g["l_diversity"] == 1 and g["sensitive_attribute"] == "had_failed_call"

    silver = by_table["silver.calls"]
    assert silver["method"] == "record_linkage" and not silver["published"] and silver["passed"]
    assert silver["unique_share"] == round(3 / 18, 6)  # the three distinctive subscribers
    assert silver["max_prosecutor_risk"] == 1.0

    stored = lake.read_table(spark, AUDIT_PRIVACY_AUDIT, s).where("run_id = 'audit-proper'").collect()
    assert sorted((r["table_name"], r["method"], r["published"], r["passed"]) for r in stored) == [
        ("gold.hourly_geo_usage", "aggregate_linkage", True, True), ("silver.calls", "record_linkage", False, True)]
    assert {r["audit_date"] for r in stored} == {DAY}
    gold_row = next(r for r in stored if r["table_name"] == "gold.hourly_geo_usage")
    assert (gold_row["k_min_ours"], gold_row["k_min_independent"], gold_row["threshold"]) == (K, K, 0.2)

    text = Path(report.report_path).read_text()
    assert f"# Privacy audit for {DAY}" in text and "Verdict: **PASS**" in text
    assert "## gold.hourly_geo_usage (aggregate_linkage)" in text and "## silver.calls (record_linkage)" in text
    assert "never published" in text


def test_gold_published_without_the_k_step_fails_and_the_cli_exits_3(spark, settings, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from jobs.cli.privacy import privacy_audit_command

    s = audit_settings(settings, tmp_path)
    # no k step: every cell-hour-carrier group published at the finest level, the distinctive callers alone
    write_lake(spark, s, k_step=1, levels=kanonymity.LEVELS[:1])

    exit_code = privacy_audit_command(s, DAY, targets=None, known_calls=None)

    assert exit_code == audit.EXIT_AUDIT_FAILED == 3
    out, err = capsys.readouterr()
    assert "FAIL" in out
    assert "privacy audit failed: gold.hourly_geo_usage: a target's prosecutor risk is 1.000 (1 in 1)" in err
    assert "covers only 1 subscriber(s), k = 5 required" in err and "pycanon finds k = 1" in err
    stored = {r["table_name"]: r for r in lake.read_table(spark, AUDIT_PRIVACY_AUDIT, s).collect()}
    g = stored["gold.hourly_geo_usage"]
    assert not g["passed"] and g["published"]
    assert g["unique_share"] == round(3 / 18, 6) and g["max_prosecutor_risk"] == 1.0
    assert g["k_min_ours"] == g["k_min_independent"] == 1
    report = Path(s.privacy_audit.report_dir) / f"privacy-audit-{DAY}.md"
    text = report.read_text()
    assert "Verdict: **FAIL** (gold.hourly_geo_usage)" in text and "Why it failed:" in text


def test_record_linkage_singles_out_distinctive_subscribers(spark) -> None:  # type: ignore[no-untyped-def]
    facts = kanonymity.usage_facts(spark.createDataFrame(silver_rows(), SILVER_CALLS.spark_schema()), region_resolution=4)
    targets = audit.sample_targets(facts, targets=100, seed=1)
    known = audit.attacker_knowledge(facts, targets, known_calls=3, seed=1)
    per_target = {r["subscriber_pseudonym"]: r for r in audit.record_linkage(known, facts).collect()}

    assert all(per_target[subscriber(s)]["smallest_group"] == 1 for s in DISTINCTIVE)
    distinctive = audit.summarize_risk(
        audit.record_linkage(known.where(known.subscriber_pseudonym.isin([subscriber(s) for s in DISTINCTIVE])), facts),
        near_unique_size=4,
    )
    assert (distinctive.targets, distinctive.share(distinctive.unique), distinctive.max_prosecutor_risk) == (3, 1.0, 1)
    # look-alikes hide in their crowd: every crowd member matches all three known calls of a crowd target
    assert {per_target[subscriber(s)]["smallest_group"] for s in CROWD} == {10}
    assert {per_target[subscriber(s)]["smallest_group"] for s in MUNICH_GROUP} == {5}


def test_targets_and_known_calls_are_deterministic_and_bounded(spark) -> None:  # type: ignore[no-untyped-def]
    facts = kanonymity.usage_facts(spark.createDataFrame(silver_rows(), SILVER_CALLS.spark_schema()), region_resolution=4)

    def draw(seed: int) -> list[tuple[str, int, str]]:
        targets = audit.sample_targets(facts, targets=4, seed=seed)
        known = audit.attacker_knowledge(facts, targets, known_calls=2, seed=seed)
        return sorted((r["subscriber_pseudonym"], r["known_index"], str(r["hour_start"])) for r in known.collect())

    first = draw(7)
    assert first == draw(7)
    assert len({s for s, _, _ in first}) == 4 and len(first) == 8
    assert first != draw(8)


def test_pycanon_k_equals_our_k_on_the_rebuilt_microdata(spark, k_anonymous_lake) -> None:  # type: ignore[no-untyped-def]
    s = k_anonymous_lake
    facts = kanonymity.usage_facts(lake.read_table(spark, SILVER_CALLS, s), region_resolution=s.privacy.h3_region_resolution).cache()
    rows = lake.read_table(spark, GOLD_HOURLY_GEO_USAGE, s).cache()
    microdata = audit.published_microdata(facts, rows).cache()

    # each published row's subscribers, recomputed from silver, are exactly its distinct_subscribers
    sizes = {tuple(r[c] for c in audit.QUASI_IDENTIFIERS): r["count"] for r in microdata.groupBy(*audit.QUASI_IDENTIFIERS).count().collect()}
    published_sizes = {tuple(r[c] for c in audit.QUASI_IDENTIFIERS): r["distinct_subscribers"] for r in rows.collect()}
    assert sizes == published_sizes
    ours = min(published_sizes.values())
    check = audit.pycanon_check(audit.to_pycanon_frame(microdata))
    assert check.k == ours == K
    assert check.records_checked == sum(published_sizes.values()) and check.rows_checked == len(published_sizes)
    assert check.l_diversity == 1  # most rows have no failed call at all

    # a bound below the total keeps the smallest rows only, so k is unchanged
    selected, total_records, total_rows = audit.bounded_microdata(microdata, max_records=1)
    assert (total_records, total_rows) == (sum(published_sizes.values()), len(published_sizes))
    bounded = audit.pycanon_check(audit.to_pycanon_frame(selected))
    assert bounded.k == K and bounded.rows_checked == 1


def _registry_row(spec_name: str, **values: Any) -> dict[str, Any]:
    """A row of a registry table: every required column filled with a placeholder of its type, then `values`."""
    from lake_layout.tables import TABLES_BY_NAME

    placeholder = {"string": "x", "date": DAY, "timestamp": T0, "long": 0, "int": 0, "double": 0.0, "boolean": False,
                   "binary": b""}
    spec = TABLES_BY_NAME[spec_name]
    row = {c.name: (None if c.nullable else placeholder[c.type]) for c in spec.columns}
    row.update(values)
    return row


def test_dp_table_reports_exact_epsilon_spent_and_fails_over_cap(spark, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from lake_layout.tables import TABLES_BY_NAME

    if audit.DP_TABLE not in TABLES_BY_NAME or audit.DP_LEDGER not in TABLES_BY_NAME:
        pytest.skip("the registry has no differentially private table")
    s = settings.with_lake_root(str(tmp_path / "lake"))
    assert audit.audit_dp(spark, s, DAY) is None  # declared but not written yet: nothing to report
    stats, ledger = TABLES_BY_NAME[audit.DP_TABLE], TABLES_BY_NAME[audit.DP_LEDGER]
    lake.upsert(spark, spark.createDataFrame([_registry_row(audit.DP_TABLE, period=DAY, dataset="d1", statistic="calls")],
                                             stats.spark_schema()), stats, s)
    spent = [_registry_row(audit.DP_LEDGER, release_id=f"{d}/{DAY}/1", dataset=d, period=DAY, epsilon=e, cap="1",
                           status="spent") for d, e in (("d1", "0.1"), ("d2", "1/3"))]
    refused = _registry_row(audit.DP_LEDGER, release_id=f"d1/{DAY}/refused", dataset="d1", period=DAY, epsilon="5",
                            cap="1", status="refused")
    lake.upsert(spark, spark.createDataFrame(spent + [refused], ledger.spark_schema()), ledger, s)

    result = audit.audit_dp(spark, s, DAY)
    assert result is not None and result.method == "differential_privacy" and result.published and result.passed
    assert "d1 0.1, d2 1/3; total 13/30." in result.detail  # exact sums; the refused request is not spent

    over = _registry_row(audit.DP_LEDGER, release_id=f"d1/{DAY}/2", dataset="d1", period=DAY, epsilon="0.95", cap="1",
                         status="spent")
    lake.upsert(spark, spark.createDataFrame([over], ledger.spark_schema()), ledger, s)
    result = audit.audit_dp(spark, s, DAY)
    assert result is not None and not result.passed
    assert result.failures == (f"gold.public_usage_stats: dataset d1 spent epsilon 1.05 on {DAY}, above its cap 1",)
