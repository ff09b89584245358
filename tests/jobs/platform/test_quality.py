"""Quality gates: suites load from expectations/, match the registry, pass good data, stop bad data
with a message naming the expectation and row count, and record every result."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import great_expectations  # noqa: F401  (before airflow, which the conftest environment may import)
import pytest

from jobs.platform import lake, quality
from lake_layout.tables import AUDIT_QUALITY_RESULTS, BRONZE_CALL_EVENTS, GOLD_HOURLY_GEO_USAGE, SILVER_CALLS

GATED = (BRONZE_CALL_EVENTS, SILVER_CALLS, GOLD_HOURLY_GEO_USAGE)


def gold_row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {c: None for c in GOLD_HOURLY_GEO_USAGE.column_names}
    row.update(
        call_date=date(2026, 11, 24), period_start=datetime(2026, 11, 24, 9), period_hours=1, geo_level="h3_cell",
        geo_zone="871f1d489ffffff", country_code="DE", network_class="wifi", platform="ios", carrier_mccmnc="*",
        generalization_level=1, calls=12, failed_calls=1, total_minutes=30.0, data_bytes=0, distinct_subscribers=10, k=10,
    )
    row.update(overrides)
    return row


@pytest.mark.parametrize("spec", GATED, ids=lambda s: s.name)
def test_suites_load_and_only_name_registry_columns(spec) -> None:  # type: ignore[no-untyped-def]
    suite = quality.load_suite(spec)
    assert suite.name == spec.name and len(suite.expectations) >= 5
    raw = json.loads(quality.suite_path(spec).read_text())
    for expectation in raw["expectations"]:
        kwargs = expectation["kwargs"]
        named = [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs] + kwargs.get("column_list", [])
        assert set(named) <= set(spec.column_names), (spec.name, expectation)


def test_good_gold_passes_and_a_row_below_k_fails_naming_it(spark) -> None:
    good = spark.createDataFrame([gold_row(), gold_row(geo_zone="871f1d48affffff")], GOLD_HOURLY_GEO_USAGE.spark_schema())
    assert quality.validate_dataframe(good, GOLD_HOURLY_GEO_USAGE, scope="test").success

    bad = spark.createDataFrame([gold_row(), gold_row(geo_zone="x", distinct_subscribers=9), gold_row(geo_zone="y")],
                                GOLD_HOURLY_GEO_USAGE.spark_schema())
    report = quality.validate_dataframe(bad, GOLD_HOURLY_GEO_USAGE, scope="test")
    assert [r.index for r in report.failed] == [0]
    assert "expect_column_pair_values_a_to_be_greater_than_b(distinct_subscribers,k) on 1 of 3 rows" in report.failure_message()


def test_run_gate_records_results_and_data_docs_then_raises(spark, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from lake_layout.config import QualitySettings

    local = replace(settings.with_lake_root(str(tmp_path / "lake")), quality=QualitySettings(data_docs_dir=str(tmp_path / "docs")))
    rows = [gold_row(geo_zone=f"z{i}") for i in range(4)] + [gold_row(geo_zone="small", distinct_subscribers=3)]
    lake.merge_insert_new(spark, spark.createDataFrame(rows, GOLD_HOURLY_GEO_USAGE.spark_schema()), GOLD_HOURLY_GEO_USAGE, local)

    with pytest.raises(quality.QualityGateFailed, match=r"failed 1 of 8 expectations .*on 1 of 5 rows"):
        quality.run_gate(spark, local, GOLD_HOURLY_GEO_USAGE, where="call_date = DATE'2026-11-24'", run_id="gate-1")
    recorded = lake.read_table(spark, AUDIT_QUALITY_RESULTS, local).collect()
    assert len(recorded) == 8 and {r.run_id for r in recorded} == {"gate-1"}
    failed = [r for r in recorded if not r.success]
    assert [(r.expectation_type, r.unexpected_count, r.element_count) for r in failed] == [
        ("expect_column_pair_values_a_to_be_greater_than_b", 1, 5)]
    assert (Path(local.quality.data_docs_dir) / "index.html").exists()

    # the scope limits what is checked: another day's rows pass
    ok = quality.run_gate(spark, local, GOLD_HOURLY_GEO_USAGE, where="call_date = DATE'2026-11-23'", run_id="gate-2")
    assert ok.success


def test_silver_suite_enforces_consent_on_diagnostics(spark) -> None:
    def call(call_id: str, level: str, mos: float | None) -> dict[str, Any]:
        row: dict[str, Any] = {c: None for c in SILVER_CALLS.column_names}
        row.update(call_id=call_id, call_date=date(2026, 11, 24), status="completed", started_at=datetime(2026, 11, 24, 9),
                   duration_ms=1000, subscriber_pseudonym="a" * 32, device_pseudonym="d" * 32, pseudonym_key_id="p",
                   platform="ios", schema_version=2, telemetry_level=level, mos=mos, clock_offset_ms=0, event_count=2,
                   duplicate_events=0, first_received_at=datetime(2026, 11, 24, 10), last_received_at=datetime(2026, 11, 24, 10),
                   record_hash="h", silver_run_id="r")
        return row

    df = spark.createDataFrame([call("a", "diagnostic", 4.0), call("b", "basic", None), call("c", "opted_out", 3.9)],
                               SILVER_CALLS.spark_schema())
    report = quality.validate_dataframe(df, SILVER_CALLS, scope="test")
    assert [(r.column, r.unexpected_count) for r in report.failed] == [("mos", 1)]
