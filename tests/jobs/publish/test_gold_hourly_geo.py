"""The k-anonymity generalizer on hand-built silver calls: k-1 vs k subscribers, the generalization
ladder, suppression, and a property test that every published row covers >= k subscribers."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

import h3
from hypothesis import HealthCheck, given, settings as hyp_settings, strategies as st

from jobs.privacy import kanonymity
from jobs.publish import hourly_geo as gold
from lake_layout.tables import GOLD_HOURLY_GEO_USAGE, SILVER_CALLS

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
BERLIN = h3.latlng_to_cell(52.52, 13.405, 7)
BERLIN_EAST = h3.latlng_to_cell(52.52, 13.55, 7)  # another cell of the same resolution-4 region
MUNICH = h3.latlng_to_cell(48.137, 11.575, 7)
assert BERLIN != BERLIN_EAST and h3.cell_to_parent(BERLIN, 4) == h3.cell_to_parent(BERLIN_EAST, 4)


def call(n: int, subscriber: int, *, cell: str | None = BERLIN, at: datetime = T0, status: str = "completed",
         carrier: str | None = "26201", network: str = "cellular_4g", platform: str = "android",
         duration_ms: int = 60_000, data_bytes: int | None = 1000) -> dict[str, Any]:
    row: dict[str, Any] = {c: None for c in SILVER_CALLS.column_names}
    row.update(
        call_id=f"c{n}", call_date=at.date(), status=status, started_at=at, ended_at=at + timedelta(minutes=1),
        duration_ms=duration_ms if status == "completed" else 0, subscriber_pseudonym=f"{subscriber:032x}",
        device_pseudonym="d" * 32, pseudonym_key_id="psn-1", platform=platform, schema_version=2, country_code="DE",
        h3_cell=cell, carrier_mccmnc=carrier, network_class=network, telemetry_level="basic", clock_offset_ms=0,
        event_count=2, duplicate_events=0, first_received_at=at, last_received_at=at, record_hash="h", silver_run_id="r",
        data_bytes=data_bytes,
    )
    return row


def gold_rows(spark, calls, k):  # type: ignore[no-untyped-def]
    facts = kanonymity.usage_facts(spark.createDataFrame(calls, SILVER_CALLS.spark_schema()), region_resolution=4)
    published, suppressed = kanonymity.k_anonymize(facts, k=k)
    rows = gold.aggregate_published(published, k=k).collect()
    return rows, suppressed.count()


def test_cell_of_exactly_k_subscribers_is_published_at_the_finest_level(spark) -> None:
    k = 5
    calls = [call(i, i) for i in range(k)] + [call(100 + i, i, duration_ms=120_000) for i in range(k)]
    rows, suppressed = gold_rows(spark, calls, k)
    assert suppressed == 0
    assert len(rows) == 1
    row = rows[0]
    assert (row["generalization_level"], row["geo_level"], row["geo_zone"], row["carrier_mccmnc"]) == (0, "h3_cell", BERLIN, "26201")
    assert (row["calls"], row["distinct_subscribers"], row["k"]) == (2 * k, k, k)
    assert row["total_minutes"] == 15.0 and row["mean_minutes"] == 1.5
    assert row["p50_duration_s"] == 90.0
    assert row["data_bytes"] == 10 * 1000


def test_cell_of_k_minus_1_subscribers_is_generalized_not_published(spark) -> None:
    k = 5
    # 4 subscribers in one cell (many calls each: calls are not subscribers) + 1 in a neighbouring cell
    calls = [call(i * 10 + j, i) for i in range(k - 1) for j in range(3)] + [call(999, 99, cell=BERLIN_EAST)]
    rows, suppressed = gold_rows(spark, calls, k)
    assert suppressed == 0
    assert len(rows) == 1
    row = rows[0]
    # the two cells only reach k together: in their resolution-4 region, same hour
    assert (row["generalization_level"], row["geo_level"], row["geo_zone"]) == (2, "h3_region", h3.cell_to_parent(BERLIN, 4))
    assert (row["calls"], row["distinct_subscribers"], row["carrier_mccmnc"]) == (13, k, "*")


def test_ladder_time_then_country_then_suppression(spark) -> None:
    k = 3
    calls = (
        # 3 subscribers in one region over 3 hours (09:00-11:59): only a 3-hour period reaches k
        [call(1, 1, at=T0), call(2, 2, at=T0 + timedelta(hours=1)), call(3, 3, at=T0 + timedelta(hours=2))]
        # 3 subscribers over the day, far apart: only country x day reaches k ...
        + [call(4, 4, cell=MUNICH, at=T0 - timedelta(hours=8)), call(5, 5, cell=None, at=T0 + timedelta(hours=5)),
           call(6, 6, cell=MUNICH, at=T0 + timedelta(hours=12))]
        # ... and a lone web caller (other platform) stays suppressed
        + [call(7, 7, platform="web", carrier=None, network="wifi")]
    )
    rows, suppressed = gold_rows(spark, calls, k)
    levels = sorted((r["generalization_level"], r["period_hours"], r["geo_level"], r["calls"]) for r in rows)
    assert levels == [(3, 3, "h3_region", 3), (5, 24, "country", 3)]
    assert suppressed == 1


def test_calls_without_location_are_publishable_only_by_country(spark) -> None:
    k = 2
    rows, suppressed = gold_rows(spark, [call(1, 1, cell=None), call(2, 2, cell=None)], k)
    assert [(r["geo_level"], r["geo_zone"], r["period_hours"]) for r in rows] == [("country", "DE", 3)]
    assert suppressed == 0


def test_rows_conform_to_the_registry(spark) -> None:
    from jobs.platform.lake import conform

    calls = [call(i, i) for i in range(3)]
    facts = kanonymity.usage_facts(spark.createDataFrame(calls, SILVER_CALLS.spark_schema()), region_resolution=4)
    published, _ = kanonymity.k_anonymize(facts, k=3)
    out = conform(gold.aggregate_published(published, k=3), GOLD_HOURLY_GEO_USAGE)
    assert out.columns == GOLD_HOURLY_GEO_USAGE.column_names


CELLS = [BERLIN, BERLIN_EAST, MUNICH, None]


@hyp_settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    k=st.integers(min_value=2, max_value=6),
    calls=st.lists(
        st.tuples(st.integers(0, 15), st.sampled_from(CELLS), st.integers(0, 23), st.sampled_from(["ios", "android"]),
                  st.sampled_from(["26201", "26202"])),
        min_size=1, max_size=60,
    ),
)
def test_property_every_row_covers_k_subscribers_and_calls_are_conserved(spark, k, calls) -> None:  # type: ignore[no-untyped-def]
    rows = [call(i, sub, cell=cell, at=T0.replace(hour=hour), platform=platform, carrier=carrier)
            for i, (sub, cell, hour, platform, carrier) in enumerate(calls)]
    facts = kanonymity.usage_facts(spark.createDataFrame(rows, SILVER_CALLS.spark_schema()), region_resolution=4)
    published, suppressed = kanonymity.k_anonymize(facts, k=k)
    pub = published.collect()
    # published and suppressed partition the calls
    ids = [r["call_id"] for r in pub] + [r["call_id"] for r in suppressed.collect()]
    assert sorted(ids) == sorted(r["call_id"] for r in rows)
    groups: dict[tuple[Any, ...], set[str]] = defaultdict(set)
    for r in pub:
        groups[(r["generalization_level"], *(r[c] for c in kanonymity.GROUP_COLUMNS))].add(r["subscriber_pseudonym"])
    assert all(len(subs) >= k for subs in groups.values())
