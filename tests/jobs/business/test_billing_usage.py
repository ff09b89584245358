"""B2B billing: destination classes, rounding increments, billing periods (cut-off, time zone), rating in Spark
against a plain-Python reference, closing periods, late calls as adjustments, reruns, and the reconciled extract."""

from __future__ import annotations

import csv
import json
import random
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from jobs.business import billing_usage as billing
from jobs.ingest.destinations import destination_class
from lake_layout.billing import BillingCalendar, CatalogueError, Plan, load_catalogue
from lake_layout.reporting_units import DESTINATION_CLASSES
from lake_layout.tables import (
    AUDIT_BILLING_PERIODS,
    AUDIT_LINEAGE,
    GOLD_BILLING_RATED_CALLS,
    GOLD_BILLING_USAGE,
    REFERENCE_SUBSCRIBER_CONSENT,
    SILVER_CALLS,
)

UTC = timezone.utc
RATES = {"on_net": 0, "domestic_fixed": 2, "domestic_mobile": 4, "international": 25, "premium": 150, "unknown": 4}
CATALOGUE = """
currency = "EUR"
default_plan = "per-second"

[plans.tiny]
included_minutes = 10
included_classes = ["domestic_mobile", "domestic_fixed"]
initial_increment_s = 60
increment_s = 60
rates_minor_per_minute = { on_net = 0, domestic_fixed = 2, domestic_mobile = 4, international = 25, premium = 150, unknown = 4 }

[plans.per-second]
included_minutes = 0
initial_increment_s = 30
increment_s = 6
rates_minor_per_minute = { on_net = 0, domestic_fixed = 1, domestic_mobile = 3, international = 18, premium = 150, unknown = 3 }

[accounts]
"acct-A" = "tiny"
"""


# ----------------------------------------------------------------------------- pure Python

def test_destination_classes_from_the_numbering_plan() -> None:
    de_mobile = "+4915112345678"
    assert destination_class(de_mobile, "+4915212345678") == "domestic_mobile"
    assert destination_class(de_mobile, "+493012345678") == "domestic_fixed"
    assert destination_class(de_mobile, "+33612345678") == "international"
    assert destination_class(de_mobile, "+8821312345678") == "premium"  # the generator's premium satellite range
    assert destination_class(de_mobile, "+499001234567") == "premium"  # German 0900 premium rate
    assert destination_class(de_mobile, "+4911") == "unknown"
    assert destination_class("+14155550123", "+12125550199") == "domestic_mobile"  # NANP: fixed-or-mobile


@pytest.mark.parametrize("rule, cases", [
    ((60, 60), [(0, 0), (1, 60), (60_000, 60), (60_001, 120), (119_999, 120)]),
    ((30, 6), [(1, 30), (30_000, 30), (30_001, 36), (36_000, 36), (36_001, 42)]),
    ((1, 1), [(1, 1), (1_000, 1), (1_500, 2), (59_999, 60)]),
])
def test_billable_seconds_by_increments(rule: tuple[int, int], cases: list[tuple[int, int]]) -> None:
    plan = Plan("p", "", 0, (), rule[0], rule[1], RATES)
    assert [plan.billable_seconds(ms) for ms, _ in cases] == [s for _, s in cases]


def test_periods_follow_cutoff_day_and_time_zone() -> None:
    berlin = BillingCalendar("Europe/Berlin", 1)
    assert berlin.period_of(datetime(2026, 11, 30, 22, 59, tzinfo=UTC)) == "2026-11"
    assert berlin.period_of(datetime(2026, 11, 30, 23, 0, tzinfo=UTC)) == "2026-12"  # midnight in Berlin
    assert berlin.bounds("2026-11") == (datetime(2026, 10, 31, 23, 0, tzinfo=UTC), datetime(2026, 11, 30, 23, 0, tzinfo=UTC))
    assert berlin.utc_dates("2026-11") == (date(2026, 10, 31), date(2026, 11, 30))
    mid = BillingCalendar("America/New_York", 15)
    assert mid.period_of(datetime(2026, 11, 15, 4, 59, tzinfo=UTC)) == "2026-10"  # 14 Nov 23:59 in New York
    assert mid.period_of(datetime(2026, 11, 15, 5, 0, tzinfo=UTC)) == "2026-11"
    assert mid.period_of(datetime(2027, 1, 14, 12, 0, tzinfo=UTC)) == "2026-12"
    assert mid.next_period("2026-12") == "2027-01"
    with pytest.raises(CatalogueError, match="cutoff_day"):
        BillingCalendar("UTC", 29)
    with pytest.raises(CatalogueError, match="time zone"):
        BillingCalendar("Mars/Olympus", 1)


def test_catalogue_errors_name_what_to_fix(tmp_path: Path) -> None:
    assert load_catalogue().plan_for("acct-0001").plan_id == "enterprise-flat"  # the repo's catalogue is valid
    assert load_catalogue().plan_for("acct-9999").plan_id == load_catalogue().default_plan
    bad = tmp_path / "plans.toml"
    bad.write_text(CATALOGUE.replace("premium = 150, unknown = 4", "premium = 150"))
    with pytest.raises(CatalogueError, match=r"plan 'tiny'.*missing \['unknown'\]"):
        load_catalogue(bad)
    bad.write_text(CATALOGUE.replace('"acct-A" = "tiny"', '"acct-A" = "gold"'))
    with pytest.raises(CatalogueError, match="account 'acct-A': unknown plan 'gold'"):
        load_catalogue(bad)
    bad.write_text(CATALOGUE.replace("domestic_mobile = 4,", "domestic_mobile = 4.5,"))
    with pytest.raises(CatalogueError, match="non-negative integer"):
        load_catalogue(bad)


# ----------------------------------------------------------------------------- Spark: rating against a reference

T = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def call(n: int | str, account: str, *, at: datetime = T, seconds: float = 60, status: str = "completed",
         dest: str | None = "domestic_mobile", callee: str = "x" * 32, subscriber: str = "s" * 32) -> dict[str, Any]:
    row: dict[str, Any] = {c: None for c in SILVER_CALLS.column_names}
    row.update(
        call_id=f"c{n}", call_date=at.astimezone(UTC).date(), status=status, started_at=at,
        ended_at=at + timedelta(seconds=seconds), duration_ms=int(seconds * 1000) if status == "completed" else 0,
        subscriber_pseudonym=subscriber, callee_pseudonym=callee, destination_class=dest, device_pseudonym="d" * 32,
        pseudonym_key_id="psn-1", platform="ios", schema_version=2, country_code="DE", account_id=account,
        telemetry_level="basic", clock_offset_ms=0, event_count=2, duplicate_events=0, first_received_at=at,
        last_received_at=at, record_hash="h", silver_run_id="r",
    )
    return row


def reference_rating(calls: list[dict[str, Any]], catalogue: Any, calendar: BillingCalendar) -> dict[str, tuple[int, int, int, int]]:
    """call_id -> (billable, included, overage, charge), plainly: allowance consumed in (start, call_id) order."""
    from fractions import Fraction
    from math import floor

    out: dict[str, tuple[int, int, int, int]] = {}
    left: dict[tuple[str, str], int] = {}
    for c in sorted(calls, key=lambda c: (c["started_at"], c["call_id"])):
        plan = catalogue.plan_for(c["account_id"])
        period = calendar.period_of(c["started_at"])
        billable = plan.billable_seconds(c["duration_ms"])
        key = (c["account_id"], period)
        left.setdefault(key, plan.included_minutes * 60)
        included = min(billable, left[key]) if c["destination_class"] in plan.included_classes else 0
        left[key] -= included
        charge = floor(Fraction((billable - included) * plan.rates_minor_per_minute[c["destination_class"]], 60) + Fraction(1, 2))
        out[c["call_id"]] = (billable, included, billable - included, charge)
    return out


def test_spark_rating_matches_the_reference_and_periods_match_the_calendar(spark, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "plans.toml"
    path.write_text(CATALOGUE)
    catalogue = load_catalogue(path)
    calendar = BillingCalendar("Europe/Berlin", 1)
    rng = random.Random(5)
    calls = [
        call(i, rng.choice(["acct-A", "acct-B"]),
             at=datetime(2026, 11, 30, 20, 0, tzinfo=UTC) + timedelta(minutes=rng.randint(0, 240)),  # spans the cut-off
             seconds=rng.choice([0.4, 1, 29.5, 30, 30.001, 59, 61, 300, 1234.5]),
             dest=rng.choice([c for c in DESTINATION_CLASSES if c != "on_net"]))
        for i in range(60)
    ]
    df = spark.createDataFrame(calls, SILVER_CALLS.spark_schema())
    subscribers = spark.createDataFrame([("nobody",)], "subscriber_pseudonym string")
    rated = billing.rate_calls(billing.billable_calls(df, subscribers=subscribers, calendar=calendar), catalogue=catalogue).collect()

    expected = reference_rating(calls, catalogue, calendar)
    assert {r.call_id: (r.billable_seconds, r.included_seconds, r.overage_seconds, r.charge_minor) for r in rated} == expected
    assert {r.call_id: r.period for r in rated} == {c["call_id"]: calendar.period_of(c["started_at"]) for c in calls}
    assert {r.period for r in rated} == {"2026-11", "2026-12"}
    assert all(f"class={r.destination_class}" in r.rating_rule and f"charge={r.charge_minor}" in r.rating_rule for r in rated)


# ----------------------------------------------------------------------------- the job on a lake

def _billing_settings(settings: Any, tmp_path: Path) -> Any:
    plans = tmp_path / "plans.toml"
    plans.write_text(CATALOGUE)
    s = settings.with_lake_root(str(tmp_path / "lake"))
    return replace(s, billing=replace(s.billing, catalogue=str(plans), timezone="Europe/Berlin", cutoff_day=1, close_after_days=3))


def _consent(subscriber: str) -> dict[str, Any]:
    return {
        "subscriber_pseudonym": subscriber, "pseudonym_key_id": "psn-1", "account_id": "acct-A", "department": "ops",
        "jurisdiction": "EU", "home_country": "DE", "subscriber_created_on": date(2025, 1, 1),
        "account_created_on": date(2025, 1, 1), "effective_from": datetime(2025, 1, 1, tzinfo=UTC),
        "telemetry_level": "basic", "diagnostics_opt_out": False, "source_object_key": "directory/x.csv",
    }


def _table(spark, spec, s, *, drop=("run_id", "rated_at", "computed_at")):  # type: ignore[no-untyped-def]
    from jobs.platform import lake

    rows = lake.read_table(spark, spec, s).drop(*[c for c in drop if c in spec.column_names]).collect()
    return sorted((tuple(r) for r in rows), key=repr)


def test_billing_run_close_adjust_rerun_and_reconciled_extract(spark, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from jobs.platform import lake

    s = _billing_settings(settings, tmp_path)
    colleague = "b" * 32
    lake.replace_partitions(spark, spark.createDataFrame([_consent(colleague)], REFERENCE_SUBSCRIBER_CONSENT.spark_schema()),
                            REFERENCE_SUBSCRIBER_CONSENT, s, where="true")
    november = [
        call(1, "acct-A", at=T, seconds=360),  # 6 min, all included
        call(2, "acct-A", at=T + timedelta(minutes=10), seconds=330),  # 5.5 -> 6 min: 4 included, 2 over: 2 * 4 = 8
        call(3, "acct-A", at=T + timedelta(minutes=20), seconds=150, dest="international"),  # 3 min * 25 = 75
        call(4, "acct-A", at=T + timedelta(minutes=30), seconds=600, callee=colleague),  # on_net, rate 0
        call(5, "acct-B", at=T, seconds=31),  # per-second plan 30/6: 36 s * 3 / 60 = 1.8 -> 2
        call(6, "acct-A", at=T, status="failed"),  # not billed
        call(7, "consumer", at=T, seconds=900),  # not billed
        call(8, "acct-B", at=datetime(2026, 11, 30, 23, 30, tzinfo=UTC), seconds=60),  # 00:30 Berlin: December
    ]
    lake.replace_partitions(spark, spark.createDataFrame(november, SILVER_CALLS.spark_schema()), SILVER_CALLS, s, where="true")
    nov_dates = sorted({c["call_date"] for c in november})

    def run(as_of: date, dates: list[date]) -> billing.BillingReport:
        return billing.run(spark, billing.BillingContext(settings=s, as_of=as_of, call_dates=tuple(dates)))

    first = run(date(2026, 11, 24), nov_dates)
    assert first.periods_rerated == ["2026-11", "2026-12"] and first.periods_closed_now == []
    assert first.rated_calls == 6 and first.adjustment_calls == 0
    assert first.charge_minor_by_invoice_period == {"2026-11": 8 + 75 + 2, "2026-12": 3}
    usage = {(r.invoice_period, r.account_id): r for r in lake.read_table(spark, GOLD_BILLING_USAGE, s).collect()}
    a = usage[("2026-11", "acct-A")]
    assert (a.calls, a.billable_seconds, a.included_seconds, a.overage_seconds, a.charge_minor) == (4, 1500, 600, 900, 83)
    assert (a.plan_id, a.row_type, a.currency, a.period_closed) == ("tiny", "usage", "EUR", False)
    rated = {r.call_id: r for r in lake.read_table(spark, GOLD_BILLING_RATED_CALLS, s).collect()}
    assert rated["c4"].destination_class == "on_net" and rated["c4"].charge_minor == 0
    assert (rated["c2"].included_seconds, rated["c2"].overage_seconds, rated["c2"].charge_minor) == (240, 120, 8)

    snapshot = {spec.name: _table(spark, spec, s) for spec in (GOLD_BILLING_RATED_CALLS, GOLD_BILLING_USAGE)}
    run(date(2026, 11, 24), nov_dates)  # rerun: same tables
    assert {spec.name: _table(spark, spec, s) for spec in (GOLD_BILLING_RATED_CALLS, GOLD_BILLING_USAGE)} == snapshot

    # A late November call uploaded on 4 December: November is closed first (30 Nov + 3 days), then billed late.
    late = call(9, "acct-A", at=datetime(2026, 11, 29, 9, 0, tzinfo=UTC), seconds=120)  # allowance used up: 2 * 4 = 8
    lake.replace_partitions(spark, spark.createDataFrame([late], SILVER_CALLS.spark_schema()), SILVER_CALLS, s,
                            where="call_date = DATE'2026-11-29'")
    nov_rated_before = [r for r in _table(spark, GOLD_BILLING_RATED_CALLS, s) if r[0] == "2026-11"]
    nov_invoice_before = [r for r in _table(spark, GOLD_BILLING_USAGE, s) if r[0] == "2026-11"]
    closing = run(date(2026, 12, 4), [date(2026, 11, 29)])
    assert closing.periods_closed_now == ["2026-11"] and closing.open_period == "2026-12"
    assert (closing.adjustment_calls, closing.adjustment_charge_minor, closing.periods_rerated) == (1, 8, [])
    closed = lake.read_table(spark, AUDIT_BILLING_PERIODS, s).collect()
    assert [(r.period, r.closed_as_of, r.calls, r.charge_minor) for r in closed] == [("2026-11", date(2026, 12, 4), 5, 85)]
    assert [r for r in _table(spark, GOLD_BILLING_USAGE, s) if r[0] == "2026-11"] == nov_invoice_before  # not rewritten
    assert [r for r in _table(spark, GOLD_BILLING_RATED_CALLS, s) if r[0] == "2026-11" and not r[2]] == \
        [r for r in nov_rated_before if not r[2]]
    adjustment = {(r.invoice_period, r.usage_period, r.account_id): r for r in lake.read_table(spark, GOLD_BILLING_USAGE, s).collect()}
    adj = adjustment[("2026-12", "2026-11", "acct-A")]
    assert (adj.row_type, adj.calls, adj.included_seconds, adj.overage_seconds, adj.charge_minor, adj.period_closed) == \
        ("adjustment", 1, 0, 120, 8, True)
    assert adjustment[("2026-12", "2026-12", "acct-B")].charge_minor == 3  # December's own usage is still there

    # Rerun of that day, and a backfill dated before the close: nothing new, November still closed and untouched.
    after = {spec.name: _table(spark, spec, s) for spec in (GOLD_BILLING_RATED_CALLS, GOLD_BILLING_USAGE, AUDIT_BILLING_PERIODS)}
    again = run(date(2026, 12, 4), [date(2026, 11, 29)])
    backfill = run(date(2026, 11, 25), nov_dates)
    assert again.adjustment_calls == 0 and backfill.periods_rerated == ["2026-12"] and backfill.adjustment_calls == 0
    assert {spec.name: _table(spark, spec, s) for spec in (GOLD_BILLING_RATED_CALLS, GOLD_BILLING_USAGE, AUDIT_BILLING_PERIODS)} == after
    jobs_logged = [r.job for r in lake.read_table(spark, AUDIT_LINEAGE, s).collect()]
    assert jobs_logged.count("billing_usage") == 5

    # The extract reconciles with silver (late call included) in CSV and Parquet, with a manifest.
    out = tmp_path / "extract" / "billing-2026-11.csv"
    manifest = billing.extract(spark, s, "2026-11", out)
    lines = list(csv.DictReader(out.open()))
    assert list(lines[0]) == list(billing.EXTRACT_COLUMNS)
    assert sorted(r["call_id"] for r in lines) == ["c1", "c2", "c3", "c4", "c5", "c9"]
    silver_ms = sum(c["duration_ms"] for c in november + [late]
                    if c["status"] == "completed" and c["account_id"] != "consumer" and c["call_id"] != "c8")
    assert sum(int(r["duration_ms"]) for r in lines) == silver_ms == manifest.call_ms == manifest.silver_billable_ms
    assert manifest.charge_minor == 83 + 2 + 8 and manifest.reconciled
    assert json.loads((out.parent / "billing-2026-11.csv.manifest.json").read_text())["lines"] == 6
    parquet = billing.extract(spark, s, "2026-11", tmp_path / "extract" / "billing-2026-11.parquet")
    assert pq.read_table(tmp_path / "extract" / "billing-2026-11.parquet").num_rows == parquet.lines == 6

    # Charges reconcile exactly with gold.billing_usage of the usage period, the adjustment invoiced in December
    # included, and the manifest states the same totals as the file.
    usage = lake.read_table(spark, GOLD_BILLING_USAGE, s).where("usage_period = '2026-11'").collect()
    assert {(r.invoice_period, r.row_type) for r in usage} == {("2026-11", "usage"), ("2026-12", "adjustment")}
    assert manifest.billing_usage_charge_minor == sum(r.charge_minor for r in usage) == manifest.charge_minor \
        == sum(int(r["charge_minor"]) for r in lines) == parquet.charge_minor == 93
    assert manifest.billing_usage_calls == sum(r.calls for r in usage) == 6
    saved = json.loads((out.parent / "billing-2026-11.csv.manifest.json").read_text())
    assert (saved["charge_minor"], saved["billing_usage_charge_minor"], saved["billing_usage_ms"]) == (93, 93, silver_ms)

    # One corrupted line (a rated call's charge off by one minor unit): refused, no file, and the CLI exits 2.
    from delta.tables import DeltaTable

    from jobs.cli.business import extract_billing_command

    rated_table = DeltaTable.forPath(spark, GOLD_BILLING_RATED_CALLS.location(s))
    rated_table.update("call_id = 'c2' AND period = '2026-11'", {"charge_minor": "charge_minor + 1"})
    with pytest.raises(billing.ReconciliationError, match="gold.billing_usage has 6 calls, .* and 93 minor units"):
        billing.extract(spark, s, "2026-11", tmp_path / "extract" / "corrupt.csv")
    assert extract_billing_command(s, "2026-11", tmp_path / "extract" / "corrupt.csv", user="finance-test") == 2
    assert not (tmp_path / "extract" / "corrupt.csv").exists()
    rated_table.update("call_id = 'c2' AND period = '2026-11'", {"charge_minor": "charge_minor - 1"})
    assert billing.extract(spark, s, "2026-11", tmp_path / "extract" / "restored.csv").charge_minor == 93

    # Billing that has not seen a silver change refuses to extract rather than under-bill.
    unbilled = call(10, "acct-B", at=datetime(2026, 11, 28, 9, 0, tzinfo=UTC), seconds=60)
    lake.replace_partitions(spark, spark.createDataFrame([unbilled], SILVER_CALLS.spark_schema()), SILVER_CALLS, s,
                            where="call_date = DATE'2026-11-28'")
    with pytest.raises(billing.ReconciliationError, match="run billing"):
        billing.extract(spark, s, "2026-11", tmp_path / "extract" / "stale.csv")
    assert not (tmp_path / "extract" / "stale.csv").exists()
