"""Differentially private public statistics: contribution bounding, the fixed release domain, noise calibrated
to the bounds (a statistical test in numpy, no Spark), exact budgets, and the ledger (reuse, refusal)."""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings as hyp_settings, strategies as st

from jobs.platform import lake
from jobs.publish import public_usage_stats as dp
from jobs.privacy.budget import PrivacyBudget, PrivacyBudgetExceeded, exact, exact_str, total
from lake_layout.tables import AUDIT_LINEAGE, AUDIT_PRIVACY_BUDGET, GOLD_PUBLIC_USAGE_STATS, SILVER_CALLS

DAY = date(2026, 11, 24)
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
COUNTRIES = ("DE", "FR", "JP")


def call(n: int | str, subscriber: int, *, at: datetime = T0, minutes: float = 1.0, country: str | None = "DE",
         network: str | None = "wifi", status: str = "completed", started: bool = True) -> dict[str, Any]:
    row: dict[str, Any] = {c: None for c in SILVER_CALLS.column_names}
    row.update(
        call_id=f"c{n}", call_date=at.date(), status=status, started_at=at if started else None,
        ended_at=at + timedelta(minutes=minutes), duration_ms=int(minutes * 60_000) if status == "completed" else 0,
        subscriber_pseudonym=f"{subscriber:032x}", device_pseudonym="d" * 32, pseudonym_key_id="psn-1",
        platform="android", schema_version=2, country_code=country, network_class=network, telemetry_level="basic",
        clock_offset_ms=0, event_count=2, duplicate_events=0, first_received_at=at, last_received_at=at,
        record_hash="h", silver_run_id="r",
    )
    return row


def silver(spark, rows):  # type: ignore[no-untyped-def]
    return spark.createDataFrame(rows, SILVER_CALLS.spark_schema())


# ----------------------------------------------------------------------------- bounding

def test_heavy_subscriber_is_cut_to_max_calls_by_call_id_hash_and_minutes_scaled_to_the_cap(spark) -> None:
    heavy = [call(f"h{i}", 1, at=T0 + timedelta(minutes=i), minutes=20.0) for i in range(30)]  # 600 minutes
    light = [call(f"l{i}", 2, minutes=10.0) for i in range(3)]
    next_day = [call("n0", 1, at=T0 + timedelta(days=1), minutes=30.0)]  # another subscriber-day: its own bounds
    bounded = dp.bound_contributions(silver(spark, heavy + light + next_day), max_calls=20, max_minutes=240).collect()

    kept = {r.call_id: r for r in bounded}
    heavy_kept = sorted(c for c in kept if c.startswith("ch"))
    by_hash = sorted((f"ch{i}" for i in range(30)), key=lambda c: hashlib.sha256(c.encode()).hexdigest())[:20]
    assert heavy_kept == sorted(by_hash)  # exactly max_calls, the lowest hashes: deterministic
    # 20 kept calls x 20 minutes = 400 > 240: each scaled by 240/400
    assert sum(kept[c].minutes for c in heavy_kept) == pytest.approx(240.0)
    assert all(kept[c].minutes == pytest.approx(12.0) for c in heavy_kept)
    assert [kept[f"cl{i}"].minutes for i in range(3)] == [10.0, 10.0, 10.0]  # under both bounds: untouched
    assert kept["cn0"].minutes == 30.0 and kept["cn0"].call_date == T0.date() + timedelta(days=1)
    assert {kept[c].hour for c in heavy_kept} <= {9, 10}


def test_calls_without_start_are_not_counted_and_missing_network_is_unknown(spark) -> None:
    rows = [call(1, 1, network=None), call(2, 1, started=False, status="orphan_end")]
    bounded = dp.bound_contributions(silver(spark, rows), max_calls=5, max_minutes=60).collect()
    assert [(r.call_id, r.network_class) for r in bounded] == [("c1", "unknown")]


@hyp_settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    max_calls=st.integers(1, 6),
    max_minutes=st.integers(1, 90),
    calls=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 1), st.floats(0, 180, allow_nan=False)),
                   min_size=1, max_size=50),
)
def test_property_no_subscriber_day_exceeds_either_bound(spark, max_calls, max_minutes, calls) -> None:  # type: ignore[no-untyped-def]
    rows = [call(i, sub, at=T0 + timedelta(days=day, minutes=i), minutes=round(m, 3))
            for i, (sub, day, m) in enumerate(calls)]
    bounded = dp.bound_contributions(silver(spark, rows), max_calls=max_calls, max_minutes=max_minutes).collect()
    per_day: dict[tuple[str, date], list[float]] = {}
    for r in bounded:
        per_day.setdefault((r.subscriber_pseudonym, r.call_date), []).append(r.minutes)
    given_per_day: dict[tuple[str, date], list[float]] = {}
    for r in rows:
        given_per_day.setdefault((r["subscriber_pseudonym"], r["call_date"]), []).append(r["duration_ms"] / 60000)
    assert set(per_day) == set(given_per_day)  # bounding drops calls, never a whole subscriber-day
    for key, minutes in per_day.items():
        assert len(minutes) == min(max_calls, len(given_per_day[key]))
        assert sum(minutes) <= max_minutes + 1e-9
        assert all(m >= 0 for m in minutes)


# ----------------------------------------------------------------------------- the fixed domain

def test_fixed_domain_has_a_row_for_every_cell_even_without_data(spark) -> None:
    rows = [call(1, 1, country="DE", network="wifi", minutes=3.0), call(2, 2, country="DE", network="wifi", minutes=2.0),
            call(3, 3, country="XX", network="wifi")]  # XX is not published
    bounded = dp.bound_contributions(silver(spark, rows), max_calls=20, max_minutes=240)
    empty_day = DAY + timedelta(days=1)
    cells = dp.exact_histograms(bounded, periods=[DAY, empty_day], countries=COUNTRIES).collect()
    classes = dp.NETWORK_CLASS_DOMAIN
    per_period = len(COUNTRIES) * len(classes) * 2 + len(COUNTRIES) * 24
    assert len(cells) == 2 * per_period
    assert {c.period for c in cells} == {DAY, empty_day}
    values = {(c.dataset, c.period, c.country_code, c.network_class, c.hour, c.statistic): c.exact for c in cells}
    assert len(values) == len(cells)
    assert values[("daily_country_network", DAY, "DE", "wifi", None, "calls")] == 2
    assert values[("daily_country_network", DAY, "DE", "wifi", None, "minutes")] == pytest.approx(5.0)
    assert values[("hourly_national_calls", DAY, "DE", "*", 9, "calls")] == 2
    assert values[("daily_country_network", DAY, "JP", "cellular_legacy", None, "calls")] == 0  # no data, still a row
    assert all(v == 0 for k, v in values.items() if k[1] == empty_day)
    assert "XX" not in {c.country_code for c in cells}
    assert sum(v for k, v in values.items() if k[0] == "hourly_national_calls") == 2


# ----------------------------------------------------------------------------- noise

def test_released_values_differ_from_exact_and_are_post_processed(settings) -> None:
    plans = dp.release_plan(settings.dp)[dp.DAILY_COUNTRY_NETWORK]
    cells = [{"dataset": dp.DAILY_COUNTRY_NETWORK, "statistic": s, "exact": float(v)}
             for v in (0, 3, 500, 10_000) for s in ("calls", "minutes") for _ in range(25)]
    released = dp.add_noise(cells, plans=plans, random_state=np.random.RandomState(3))
    assert len(released) == len(cells)
    assert all(r["noisy"] != r["exact"] for r in released if r["statistic"] == "minutes")  # continuous noise
    large = [r for r in released if r["exact"] >= 500]
    assert sum(dp.published_value(r) != r["exact"] for r in large) >= 0.95 * len(large)
    for r in released:
        if r["statistic"] == "calls":
            assert isinstance(r["calls"], int) and r["calls"] >= 0 and r["minutes"] is None
            assert r["mechanism"] == "geometric" and r["sensitivity"] == 20 and r["epsilon"] == "0.125"
        else:
            assert r["minutes"] >= 0 and round(r["minutes"], 1) == r["minutes"] and r["calls"] is None
            assert r["mechanism"] == "laplace" and r["sensitivity"] == 240 and r["epsilon"] == "0.125"
    # clamping at 0 is visible on empty cells: some noisy values were negative, none is published
    assert any(r["noisy"] < 0 for r in released) and all(dp.published_value(r) >= 0 for r in released)


def geometric_mean_abs(epsilon: float, sensitivity: int) -> float:
    """E|X| of the two-sided geometric distribution P(x) ~ alpha^|x|, alpha = exp(-epsilon / sensitivity)."""
    alpha = math.exp(-epsilon / sensitivity)
    return 2 * alpha / (1 - alpha**2)


@pytest.mark.parametrize("dataset,statistic", [
    (dp.DAILY_COUNTRY_NETWORK, "calls"), (dp.DAILY_COUNTRY_NETWORK, "minutes"), (dp.HOURLY_NATIONAL_CALLS, "calls"),
])
def test_error_scale_matches_the_noise_calibrated_to_bounds_and_epsilon(base_settings, dataset, statistic) -> None:
    draws, tolerance = 20_000, 0.05
    conf = base_settings.dp
    # Independently of the job: the documented split of epsilon_per_release (half per dataset; the daily
    # dataset halves again between calls and minutes) and sensitivity = the contribution bound.
    share = {(dp.DAILY_COUNTRY_NETWORK, "calls"): 4, (dp.DAILY_COUNTRY_NETWORK, "minutes"): 4,
             (dp.HOURLY_NATIONAL_CALLS, "calls"): 2}[(dataset, statistic)]
    epsilon = float(conf.epsilon_per_release) / share
    sensitivity = conf.max_calls_per_subscriber_day if statistic == "calls" else conf.max_minutes_per_subscriber_day

    def expected(eps: float, sens: int) -> float:  # Laplace: E|X| = b = sensitivity / epsilon
        return geometric_mean_abs(eps, sens) if statistic == "calls" else sens / eps

    exact_value = 1_000_000.0  # far from 0: clamping never touches the error
    cells = [{"dataset": dataset, "statistic": statistic, "exact": exact_value}] * draws
    released = dp.add_noise(cells, plans=dp.release_plan(conf)[dataset], random_state=np.random.RandomState(20261124))
    errors = np.array([r["noisy"] - exact_value for r in released])
    mae = float(np.mean(np.abs(errors)))
    assert abs(float(np.mean(errors))) < 0.05 * expected(epsilon, sensitivity)  # unbiased
    assert mae == pytest.approx(expected(epsilon, sensitivity), rel=tolerance)
    # the tolerance is tight enough to catch a wrongly wired sensitivity or epsilon
    for wrong in (expected(epsilon, 1), expected(epsilon * 2, sensitivity), expected(epsilon / 2, sensitivity),
                  expected(epsilon, sensitivity * 2)):
        assert abs(mae - wrong) > tolerance * wrong


# ----------------------------------------------------------------------------- exact budgets

def test_privacy_budget_is_exact_and_validated() -> None:
    with pytest.raises(ValueError, match="Epsilon must be non-negative. Cannot construct a PrivacyBudget with epsilon of -1"):
        PrivacyBudget.of("-1")
    with pytest.raises(TypeError, match="exact"):
        PrivacyBudget.of(0.1)  # type: ignore[arg-type]
    assert total([PrivacyBudget.of("0.1"), PrivacyBudget.of("0.2")]) == PrivacyBudget.of("0.3")  # floats: 0.30000000000000004
    third = PrivacyBudget.of(1).split(3)
    assert third.epsilon_str == "1/3" and total([third] * 3) == PrivacyBudget.of(1)
    for text in ("0", "0.125", "1/3", "2.5", "0.0000005"):
        assert exact_str(exact(text)) == text
    assert PrivacyBudget.of(Decimal("0.5")).epsilon == Fraction(1, 2)
    budgets = dp.release_plan(replace(base_dp(), epsilon_per_release=Decimal("0.3")))
    assert total(p.budget for plans in budgets.values() for p in plans) == PrivacyBudget.of("0.3")


def base_dp():  # type: ignore[no-untyped-def]
    from lake_layout.config import load_settings

    return load_settings(env={}).dp


# ----------------------------------------------------------------------------- the job and its ledger

@pytest.fixture()
def lake_settings(settings, tmp_path):  # type: ignore[no-untyped-def]
    return settings.with_lake_root(str(tmp_path / "lake"))


def with_dp(settings, **changes):  # type: ignore[no-untyped-def]
    return replace(settings, dp=replace(settings.dp, **changes))


def write_silver(spark, settings, rows) -> None:  # type: ignore[no-untyped-def]
    lake.replace_partitions(spark, silver(spark, rows), SILVER_CALLS, settings,
                            where="call_date IN (" + ", ".join(sorted({f"DATE'{r['call_date']}'" for r in rows})) + ")")


def day_rows(spark, settings, day=DAY):  # type: ignore[no-untyped-def]
    df = lake.read_table(spark, GOLD_PUBLIC_USAGE_STATS, settings).where(f"period = DATE'{day}'")
    return sorted(tuple(r) for r in df.drop("released_at").collect())


def ledger(spark, settings):  # type: ignore[no-untyped-def]
    return lake.read_table(spark, AUDIT_PRIVACY_BUDGET, settings).collect()


def some_calls() -> list[dict[str, Any]]:
    # 40 subscribers in DE over wifi and 4G, one heavy caller, a few in FR; JP has no calls at all
    rows = [call(f"de{i}", i, network="wifi" if i % 2 else "cellular_4g", at=T0 + timedelta(hours=i % 5), minutes=3.0)
            for i in range(40)]
    rows += [call(f"heavy{i}", 99, network="cellular_4g", minutes=30.0) for i in range(35)]
    rows += [call(f"fr{i}", 200 + i, country="FR", network="cellular_5g", minutes=7.5) for i in range(6)]
    return rows


def test_release_is_recorded_once_and_a_rerun_reuses_it_spending_nothing(spark, lake_settings) -> None:
    import json

    settings = with_dp(lake_settings, countries="DE,FR,JP")
    write_silver(spark, settings, some_calls())
    t0 = time.monotonic()
    first = dp.run(spark, dp.PublicStatsContext(settings=settings, call_dates=(DAY,), random_state=np.random.RandomState(5)))
    seconds = time.monotonic() - t0
    print(f"public_usage_stats first run on a small lake: {seconds:.1f}s (job-reported {first.seconds}s), "
          f"median relative error {first.median_relative_error} by statistic {first.median_relative_error_by_statistic}")

    assert [(r["dataset"], r["action"], r["epsilon"]) for r in first.releases] == [
        ("daily_country_network", "released", "0.25"), ("hourly_national_calls", "released", "0.25")]
    assert first.epsilon_spent == "0.5"
    rows = day_rows(spark, settings)
    n_classes = len(dp.NETWORK_CLASS_DOMAIN)
    assert len(rows) == first.cells_released == 3 * n_classes * 2 + 3 * 24
    published = lake.read_table(spark, GOLD_PUBLIC_USAGE_STATS, settings).where(f"period = DATE'{DAY}'")
    assert published.where("country_code = 'JP' AND network_class = 'cellular_legacy'").count() == 2  # a cell with no data
    assert published.where("statistic = 'calls' AND (calls IS NULL OR calls < 0 OR minutes IS NOT NULL)").count() == 0
    assert published.where("statistic = 'minutes' AND (minutes IS NULL OR minutes < 0 OR calls IS NOT NULL)").count() == 0
    assert {r.release_id for r in published.select("release_id").distinct().collect()} == {
        "daily_country_network/2026-11-24/1", "hourly_national_calls/2026-11-24/1"}
    book = ledger(spark, settings)
    assert sorted((r.dataset, r.status, r.epsilon, r.delta, r.spent_before, r.cap) for r in book) == [
        ("daily_country_network", "spent", "0.25", "0", "0", "1"),
        ("hourly_national_calls", "spent", "0.25", "0", "0", "1")]
    assert {r.mechanism for r in book} == {"calls=geometric;minutes=laplace", "calls=geometric"}

    # utility: the reported median relative error is the one of the published rows against the exact bounded histogram
    bounded = dp.bound_contributions(lake.read_table(spark, SILVER_CALLS, settings), max_calls=20, max_minutes=240)
    exact_cells = {(c.dataset, c.country_code, c.network_class, c.hour, c.statistic): c.exact
                   for c in dp.exact_histograms(bounded, periods=[DAY], countries=("DE", "FR", "JP")).collect()}
    # 20 DE wifi subscribers x 1 call; 4G: 20 subscribers + the heavy caller's 35 calls bounded to 20 and 240 minutes
    assert exact_cells[("daily_country_network", "DE", "wifi", None, "calls")] == 20
    assert exact_cells[("daily_country_network", "DE", "cellular_4g", None, "calls")] == 40
    assert exact_cells[("daily_country_network", "DE", "cellular_4g", None, "minutes")] == pytest.approx(20 * 3.0 + 240.0)
    pairs = [(float(r.calls if r.statistic == "calls" else r.minutes),
              exact_cells[(r.dataset, r.country_code, r.network_class, r.hour, r.statistic)]) for r in published.collect()]
    assert first.median_relative_error == pytest.approx(float(np.median([dp.relative_error(*p) for p in pairs])), abs=1e-6)
    with_data = [(noisy, exact_value) for noisy, exact_value in pairs if exact_value > 0]
    assert len(with_data) == 12 and sum(noisy != exact_value for noisy, exact_value in with_data) >= 11  # not the exact values

    versions = (lake.table_version(spark, GOLD_PUBLIC_USAGE_STATS, settings),
                lake.table_version(spark, AUDIT_PRIVACY_BUDGET, settings))
    second = dp.run(spark, dp.PublicStatsContext(settings=settings, call_dates=(DAY,), random_state=np.random.RandomState(6)))
    assert [r["action"] for r in second.releases] == ["reused", "reused"]
    assert second.epsilon_spent == "0" and second.cells_released == 0
    assert day_rows(spark, settings) == rows  # identical values, no new noise
    assert (lake.table_version(spark, GOLD_PUBLIC_USAGE_STATS, settings),
            lake.table_version(spark, AUDIT_PRIVACY_BUDGET, settings)) == versions
    assert len(ledger(spark, settings)) == 2

    lineage = {r.run_id: r for r in lake.read_table(spark, AUDIT_LINEAGE, settings).where("job = 'public_usage_stats'").collect()}
    assert len(lineage) == 2
    metrics = [json.loads(r.metrics_json) for r in lineage.values()]
    assert sorted(m["epsilon_spent"] for m in metrics) == ["0", "0.5"]
    assert first.median_relative_error in [m["median_relative_error"] for m in metrics]
    assert all(set(json.loads(r.outputs_json)) == {"gold.public_usage_stats", "audit.privacy_budget"} for r in lineage.values())


def test_over_budget_release_is_refused_recorded_and_publishes_nothing(spark, lake_settings) -> None:
    from jobs.privacy.budget import release_id

    # 0.1 per dataset release, cap 0.3, and the ledger already holds two spent releases of 0.1 per dataset
    # (runs that failed before publishing): a third fits exactly (in floats 0.1 + 0.1 + 0.1 > 0.3), a fourth does not
    settings = with_dp(lake_settings, countries="DE,FR,JP", epsilon_per_release=Decimal("0.2"), epsilon_cap=Decimal("0.3"))
    write_silver(spark, settings, some_calls())
    earlier = [{"release_id": release_id(d, DAY, n), "dataset": d, "period": DAY, "epsilon": "0.1", "delta": "0",
                "mechanism": "calls=geometric", "cap": "0.3", "spent_before": str(Fraction(n - 1, 10)), "status": "spent",
                "reason": "test setup", "recorded_at": T0 + timedelta(hours=n), "run_id": f"earlier-{n}"}
               for d in dp.DATASETS for n in (1, 2)]
    lake.merge_insert_new(spark, spark.createDataFrame(earlier, AUDIT_PRIVACY_BUDGET.spark_schema()), AUDIT_PRIVACY_BUDGET, settings)
    rng = np.random.RandomState(9)
    report = dp.run(spark, dp.PublicStatsContext(settings=settings, call_dates=(DAY,), random_state=rng))
    assert report.epsilon_spent == "0.2"
    assert {r["release_id"] for r in report.releases} == {"daily_country_network/2026-11-24/3", "hourly_national_calls/2026-11-24/3"}
    assert all("never published" in r["reason"] for r in report.releases)
    rows = day_rows(spark, settings)
    assert {r[0] for r in rows} == {"daily_country_network/2026-11-24/3", "hourly_national_calls/2026-11-24/3"}
    version = lake.table_version(spark, GOLD_PUBLIC_USAGE_STATS, settings)

    with pytest.raises(PrivacyBudgetExceeded) as refused:
        dp.run(spark, dp.PublicStatsContext(settings=settings, call_dates=(DAY,), rerelease=True, random_state=rng))
    message = str(refused.value)
    for part in ("daily_country_network for 2026-11-24", "hourly_national_calls for 2026-11-24",
                 "already spent epsilon 0.3", "requested 0.1", "cap 0.3", "nothing published"):
        assert part in message, message
    assert day_rows(spark, settings) == rows and lake.table_version(spark, GOLD_PUBLIC_USAGE_STATS, settings) == version
    book = ledger(spark, settings)
    refusals = [r for r in book if r.status == "refused"]
    assert sorted(r.dataset for r in refusals) == ["daily_country_network", "hourly_national_calls"]
    assert all(r.spent_before == "0.3" and r.epsilon == "0.1" and "exceed" in r.reason for r in refusals)
    spent = [r for r in book if r.status == "spent"]
    assert len(spent) == 6 and sorted(r.spent_before for r in spent if r.run_id == report_run_id(spark, settings)) == ["0.2", "0.2"]

    # a fresh period whose single release already exceeds the cap publishes nothing at all
    other = DAY + timedelta(days=1)
    greedy = with_dp(settings, epsilon_per_release=Decimal("1"))
    with pytest.raises(PrivacyBudgetExceeded, match="already spent epsilon 0, requested 0.5, cap 0.3"):
        dp.run(spark, dp.PublicStatsContext(settings=greedy, call_dates=(other,), random_state=rng))
    assert day_rows(spark, settings, other) == []
    assert len([r for r in ledger(spark, settings) if r.status == "refused"]) == 4


def report_run_id(spark, settings) -> str:  # type: ignore[no-untyped-def]
    """The run id of the one public_usage_stats run that published (its lineage row spent epsilon)."""
    import json

    rows = lake.read_table(spark, AUDIT_LINEAGE, settings).where("job = 'public_usage_stats'").collect()
    (run,) = [r for r in rows if json.loads(r.metrics_json)["epsilon_spent"] != "0"]
    return str(run.run_id)
