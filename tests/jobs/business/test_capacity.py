"""Erlang B against published tables and its closed form; the busy hour, sweep-line peak and channels of
gold.capacity_busy_hour on hand-built calls; the job end to end on a fresh lake."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from jobs.business import capacity_busy_hour as capacity
from jobs.business.erlang import erlang_b, erlang_b_channels
from lake_layout.tables import GOLD_CAPACITY_BUSY_HOUR, SILVER_CALLS
from lake_layout.trunks import TRUNK_GROUPS, UNASSIGNED

DAY = date(2026, 11, 24)
T0 = datetime(2026, 11, 24, tzinfo=timezone.utc)


# ----------------------------------------------------------------------------- Erlang B

def erlang_b_closed_form(traffic: Fraction, channels: int) -> Fraction:
    """Erlang's loss formula evaluated literally in exact rational arithmetic: an independent oracle."""
    terms = [traffic**k / math.factorial(k) for k in range(channels + 1)]
    return terms[-1] / sum(terms)


# Offered traffic (Erlangs) that n channels carry at 1 % blocking.
ONE_PERCENT_TABLE = [(5, 1.361), (10, 4.461), (15, 8.108), (20, 12.031), (50, 37.901), (100, 84.064)]


@pytest.mark.parametrize(("channels", "traffic"), ONE_PERCENT_TABLE)
def test_erlang_b_matches_published_one_percent_table(channels: int, traffic: float) -> None:
    """Published Erlang B values for a 1 % grade of service.

    Sources: the 3-decimal 1 % column of the standard Erlang B table (5 -> 1.361, 10 -> 4.461, 20 -> 12.031,
    50 -> 37.901, 100 -> 84.064 E); erlang.com's calculator manual, "How much traffic can a trunk group
    handle?" (https://erlang.com/calculatormanual/howmuchtrafficcanatrunkgrouphandle.htm): 15 lines at 1 %
    carry 8.108 E; and the 1-decimal table of Carrier Grade Voice over IP (2nd ed.), Appendix A "Table of
    Erlang B" (5 channels at 1.0 % -> 1.4 E, 9 -> 3.8 E). Each value is also checked against the closed form
    in exact rational arithmetic, so neither the table nor the recurrence is taken on trust.
    """
    # The table value is rounded to 3 decimals: blocking there is 1 % to within the rounding.
    assert erlang_b(traffic, channels) == pytest.approx(0.01, rel=2e-3)
    # ... and the tabulated traffic is the largest (to 0.001 E) whose blocking stays at or below 1 %:
    assert erlang_b(traffic - 0.001, channels) < 0.01 < erlang_b(traffic + 0.001, channels)
    # n channels are what that traffic (just under the tabulated value) needs at 1 %, one fewer is not enough.
    assert erlang_b_channels(traffic - 0.001, blocking=0.01) == channels
    assert float(erlang_b_closed_form(Fraction(traffic), channels)) == pytest.approx(erlang_b(traffic, channels), rel=1e-12)


def test_erlang_b_other_published_values() -> None:
    # Carrier Grade VoIP, Appendix A (1 decimal): 1.0 % column, 5 channels 1.4 E, 9 channels 3.8 E.
    assert round(_traffic_at(5, 0.01), 1) == 1.4 and round(_traffic_at(9, 0.01), 1) == 3.8
    # erlang.com forum, "Trunk Engineering": 1200 calls of 100 s in the busy hour = 33.333 E need 45 lines at 1 %.
    assert erlang_b_channels(1200 / 36, blocking=0.01) == 45


def _traffic_at(channels: int, blocking: float) -> float:
    lo, hi = 0.0, float(channels) * 2
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if erlang_b(mid, channels) <= blocking else (lo, mid)
    return lo


def test_erlang_b_edge_cases_and_errors() -> None:
    assert erlang_b(3.0, 0) == 1.0 and erlang_b(0.0, 1) == 0.0 and erlang_b(1.0, 1) == 0.5
    assert erlang_b_channels(0.0, blocking=0.01) == 0
    assert erlang_b_channels(1e-9, blocking=0.01) == 1
    with pytest.raises(ValueError, match="traffic"):
        erlang_b(-1.0, 3)
    with pytest.raises(ValueError, match="traffic"):
        erlang_b_channels(float("nan"), blocking=0.01)
    with pytest.raises(ValueError, match="channels"):
        erlang_b(1.0, -1)
    with pytest.raises(ValueError, match="blocking"):
        erlang_b_channels(1.0, blocking=1.0)


def test_large_traffic_without_overflow() -> None:
    # The literal formula overflows floats here (5000^5000); the recurrence stays in [0, 1].
    with pytest.raises(OverflowError):
        float(5000.0) ** 5000
    n = erlang_b_channels(5000.0, blocking=0.01)
    # Halfin-Whitt: n = A + beta * sqrt(A) with phi(beta) / Phi(beta) = B * sqrt(A) = 0.707, beta ~ 0.14 -> ~5010
    assert 5005 <= n <= 5015
    assert erlang_b(5000.0, n) <= 0.01 < erlang_b(5000.0, n - 1)
    assert 0.0 < erlang_b(5000.0, 5000) < 1.0 and math.isfinite(erlang_b(1e6, 10))
    # Large groups are efficient: at 5000 E the 1 % headroom is a few percent (Erlang B's economy of scale).
    assert n / 5000 < 1.03


@hyp_settings(max_examples=200, deadline=None)
@given(traffic=st.floats(min_value=0.001, max_value=500.0), channels=st.integers(min_value=0, max_value=300),
       more=st.floats(min_value=0.001, max_value=50.0))
def test_property_erlang_b_is_a_probability_decreasing_in_channels_increasing_in_traffic(
    traffic: float, channels: int, more: float
) -> None:
    b = erlang_b(traffic, channels)
    assert 0.0 <= b <= 1.0
    assert erlang_b(traffic, channels + 1) <= b
    if b > 1e-300:  # below that both underflow to 0
        assert erlang_b(traffic, channels + 1) < b
    assert erlang_b(traffic + more, channels) >= b


@hyp_settings(max_examples=100, deadline=None)
@given(traffic=st.floats(min_value=0.01, max_value=2000.0), blocking=st.sampled_from([0.001, 0.005, 0.01, 0.02, 0.05]))
def test_property_channels_is_the_smallest_meeting_the_grade_of_service(traffic: float, blocking: float) -> None:
    n = erlang_b_channels(traffic, blocking=blocking)
    assert erlang_b(traffic, n) <= blocking < erlang_b(traffic, n - 1)


# ----------------------------------------------------------------------------- the job's transforms

def call(n: int, start: datetime, minutes: float, *, country: str | None = "DE", status: str = "completed") -> dict[str, Any]:
    row: dict[str, Any] = {c: None for c in SILVER_CALLS.column_names}
    end = start + timedelta(minutes=minutes)
    row.update(
        call_id=f"c{n}", call_date=start.date(), status=status, started_at=start, ended_at=end,
        duration_ms=int(minutes * 60_000), subscriber_pseudonym=f"{n:032x}", device_pseudonym="d" * 32,
        pseudonym_key_id="psn-1", platform="android", schema_version=2, country_code=country, account_id="acct-0001",
        telemetry_level="basic", clock_offset_ms=0, event_count=2, duplicate_events=0, first_received_at=end,
        last_received_at=end, record_hash="h", silver_run_id="r",
    )
    return row


def rows_for(spark, calls, days=(DAY,), blocking="0.01"):  # type: ignore[no-untyped-def]
    from decimal import Decimal

    df = spark.createDataFrame(calls, SILVER_CALLS.spark_schema())
    out = capacity.capacity_rows(df, call_dates=list(days), blocking=Decimal(blocking)).collect()
    return {(r["call_date"], r["trunk_group"]): r.asDict() for r in out}


def test_busy_hour_peak_and_channels_on_hand_built_calls(spark) -> None:
    at = lambda h, m=0: T0 + timedelta(hours=h, minutes=m)  # noqa: E731
    calls = [
        # 09:00-10:00: three 30-minute calls, two overlapping -> 1.25 E in hour 9, peak 2
        call(1, at(9), 30), call(2, at(9, 15), 30), call(3, at(9, 45), 30),  # c3 spills 15 min into hour 10
        # 14:00: four calls of 30 minutes starting together -> 2.0 E, peak 4
        call(4, at(14), 30), call(5, at(14), 30), call(6, at(14), 30), call(7, at(14), 30),
        # back to back at 20:00: the channel freed at 20:10 is reused at 20:10 -> peak 1, not 2
        call(8, at(20), 10), call(9, at(20, 10), 10),
        # not traffic: failed and zero-length calls, and a call of the next day
        call(10, at(14), 30, status="failed"), call(11, at(14), 0), call(12, at(24, 30), 600),
        # France, and a call with no country (intl default route)
        call(20, at(8), 60, country="FR"), call(21, at(8), 6, country=None),
    ]
    rows = rows_for(spark, calls)
    de = rows[(DAY, TRUNK_GROUPS["DE"].name)]
    assert (de["region"], de["busy_hour"], de["busy_hour_start"]) == ("eu-central", 14, at(14).replace(tzinfo=None))
    assert de["busy_hour_erlangs"] == pytest.approx(2.0) and de["busy_hour_calls"] == 4
    assert de["peak_concurrent_calls"] == 4 and de["peak_at"] == at(14).replace(tzinfo=None)
    assert de["calls"] == 9
    assert de["day_erlangs"] == pytest.approx((90 + 120 + 20) / (24 * 60))
    assert de["channels_required"] == erlang_b_channels(2.0, blocking=0.01) == 7
    assert de["blocking_at_channels"] == pytest.approx(erlang_b(2.0, 7)) and de["blocking"] == "0.01"
    fr = rows[(DAY, "fr-par-1")]
    assert (fr["busy_hour"], fr["busy_hour_erlangs"], fr["peak_concurrent_calls"], fr["channels_required"]) == (8, 1.0, 1, 5)
    intl = rows[(DAY, UNASSIGNED.name)]
    assert intl["busy_hour_erlangs"] == pytest.approx(0.1) and intl["channels_required"] == 2
    assert set(rows) == {(DAY, "de-fra-1"), (DAY, "fr-par-1"), (DAY, UNASSIGNED.name)}


def test_calls_over_midnight_count_in_both_days_and_ties_take_the_earliest_hour(spark) -> None:
    late = T0 - timedelta(minutes=30)  # 23:30 the day before, 60 minutes: 30 min on each day
    calls = [call(1, late, 60), call(2, T0 + timedelta(hours=5), 30)]
    rows = rows_for(spark, calls, days=(DAY - timedelta(days=1), DAY))
    before, day = rows[(DAY - timedelta(days=1), "de-fra-1")], rows[(DAY, "de-fra-1")]
    assert (before["busy_hour"], before["busy_hour_erlangs"], before["calls"]) == (23, 0.5, 1)
    # hour 0 and hour 5 both carry 0.5 E: the earliest wins
    assert (day["busy_hour"], day["busy_hour_erlangs"], day["calls"], day["peak_concurrent_calls"]) == (0, 0.5, 2, 1)
    assert day["peak_at"] == T0.replace(tzinfo=None)


def test_dates_to_compute() -> None:
    d = DAY
    assert capacity.dates_to_compute([d], []) == (d,)
    assert capacity.dates_to_compute([d, d - timedelta(days=1)], [d + timedelta(days=1)]) == (d - timedelta(days=1), d, d + timedelta(days=1))


@hyp_settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 24 * 60 - 1), st.integers(1, 180)), min_size=1, max_size=40))
def test_property_sweep_line_matches_brute_force_and_bounds_busy_hour_traffic(spark, spans) -> None:  # type: ignore[no-untyped-def]
    calls = [call(i, T0 + timedelta(minutes=s), d) for i, (s, d) in enumerate(spans)]
    row = rows_for(spark, calls)[(DAY, "de-fra-1")]
    # brute force over minutes of the day: intervals [s, min(s + d, 1440))
    in_progress = [sum(1 for s, d in spans if s <= m < s + d) for m in range(24 * 60)]
    assert row["peak_concurrent_calls"] == max(in_progress)
    assert row["peak_at"] == (T0 + timedelta(minutes=in_progress.index(max(in_progress)))).replace(tzinfo=None)
    per_hour = [sum(in_progress[h * 60:(h + 1) * 60]) / 60 for h in range(24)]
    assert row["busy_hour_erlangs"] == pytest.approx(max(per_hour))
    assert row["busy_hour"] == per_hour.index(max(per_hour))
    assert row["busy_hour_erlangs"] <= row["peak_concurrent_calls"]


def test_capacity_command_runs_the_job_writes_lineage_and_prints_rows(spark, settings, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """`voiplake capacity --date D` end to end on a fresh lake: runner -> job -> table -> lineage -> printed rows."""
    import json

    from jobs.platform import lake
    from jobs.cli.business import capacity_command
    from lake_layout.tables import AUDIT_LINEAGE

    s = settings.with_lake_root(str(tmp_path / "lake"))
    calls = [call(i, T0 + timedelta(hours=10), 30) for i in range(6)] + [call(99, T0 + timedelta(days=1, hours=3), 30)]
    lake.replace_partitions(spark, spark.createDataFrame(calls, SILVER_CALLS.spark_schema()), SILVER_CALLS, s, where="true")
    assert capacity_command(s, DAY) == 0
    printed = capsys.readouterr().out
    channels = erlang_b_channels(3.0, blocking=0.01)  # six 30-minute calls in one hour: 3 E
    assert "de-fra-1" in printed and "channels_required" in printed and "(1 row)" in printed  # the asked day only
    table = lake.read_table(spark, GOLD_CAPACITY_BUSY_HOUR, s)
    assert table.columns == GOLD_CAPACITY_BUSY_HOUR.column_names
    # the next day has silver calls of its own, so it is recomputed too
    assert sorted((r["call_date"], r["busy_hour"], r["busy_hour_erlangs"], r["peak_concurrent_calls"], r["channels_required"])
                  for r in table.collect()) == [(DAY, 10, 3.0, 6, channels), (DAY + timedelta(days=1), 3, 0.5, 1, 4)]
    runs = lake.read_table(spark, AUDIT_LINEAGE, s).where("job = 'capacity_busy_hour'").collect()
    assert len(runs) == 1 and json.loads(runs[0]["inputs_json"])[0]["table"] == "silver.calls"
    assert "gold.capacity_busy_hour" in json.loads(runs[0]["outputs_json"])
    assert json.loads(runs[0]["metrics_json"])["call_dates"] == [DAY.isoformat(), (DAY + timedelta(days=1)).isoformat()]
