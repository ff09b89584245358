"""Cost allocation: largest-remainder rounding (hand cases and properties), finance's input validation, the
driver mix, and `voiplake extract cost-allocation` end to end on a small lake (exact sums, a hand-computed case)."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from fractions import Fraction
from math import ceil, floor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from jobs.business import cost_allocation as ca
from lake_layout.config import FinanceSettings, SettingsError, load_settings
from lake_layout.tables import GOLD_COST_ALLOCATION, REFERENCE_SUBSCRIBER_CONSENT, SILVER_CALLS

FINANCE = load_settings(env={}).finance
NOV = ca.Period("2026-11")


# ----------------------------------------------------------------------------- largest remainder

def test_hand_computed_largest_remainder() -> None:
    # 10 000 cents by 3/7, 3/7, 1/7: exact 4285.714.., 4285.714.., 1428.571..; floors sum to 9998, the 2 cents
    # left go to the two largest fractional parts (.714 > .571).
    assert ca.allocate_largest_remainder(10_000, {"acct-A": Fraction(3, 7), "acct-B": Fraction(3, 7), "consumer": Fraction(1, 7)}) == {
        "acct-A": 4286, "acct-B": 4286, "consumer": 1428}
    # a three-way tie: the leftover cent goes to the first key in sorted order, whatever the mapping's order
    assert ca.allocate_largest_remainder(10, {"c": 1, "a": 1, "b": 1}) == {"a": 4, "b": 3, "c": 3}
    assert ca.allocate_largest_remainder(0, {"a": 1}) == {"a": 0}
    assert ca.allocate_largest_remainder(-10, {"a": 1, "b": 2}) == {"a": -3, "b": -7}  # a credit
    assert ca.allocate_largest_remainder(5, {"a": 0, "b": 3}) == {"a": 0, "b": 5}


def test_largest_remainder_rejects_what_it_cannot_split_exactly() -> None:
    with pytest.raises(ValueError, match="all zero"):
        ca.allocate_largest_remainder(100, {"a": 0, "b": Fraction(0)})
    with pytest.raises(ValueError, match="all zero"):
        ca.allocate_largest_remainder(100, {})
    with pytest.raises(ValueError, match="exact"):
        ca.allocate_largest_remainder(100, {"a": 0.5})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="integer number of minor units"):
        ca.allocate_largest_remainder(10.0, {"a": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=">= 0"):
        ca.allocate_largest_remainder(10, {"a": -1, "b": 2})


weights_strategy = st.dictionaries(
    st.text(alphabet="abcdefgh", min_size=1, max_size=3),
    st.one_of(st.integers(0, 10**6), st.fractions(min_value=0, max_value=1000, max_denominator=10**4)),
    min_size=1, max_size=15,
)


@hyp_settings(max_examples=300, deadline=None)
@given(total=st.integers(-10**12, 10**12), weights=weights_strategy)
def test_property_sum_exact_within_one_cent_zero_gets_zero(total: int, weights: dict[str, Any]) -> None:
    if sum(weights.values()) == 0:
        with pytest.raises(ValueError, match="all zero"):
            ca.allocate_largest_remainder(total, weights)
        return
    shares = ca.allocate_largest_remainder(total, weights)
    assert set(shares) == set(weights) and all(isinstance(v, int) for v in shares.values())
    assert sum(shares.values()) == total
    weight_sum = sum(Fraction(w) for w in weights.values())
    for key, weight in weights.items():
        exact = total * Fraction(weight) / weight_sum
        assert floor(exact) <= shares[key] <= ceil(exact)
        assert abs(shares[key] - exact) < 1
        if weight == 0:
            assert shares[key] == 0


@hyp_settings(max_examples=100, deadline=None)
@given(total=st.integers(0, 10**9), weights=weights_strategy)
def test_property_deterministic_whatever_the_order(total: int, weights: dict[str, Any]) -> None:
    if sum(weights.values()) == 0:
        return
    assert ca.allocate_largest_remainder(total, weights) == ca.allocate_largest_remainder(total, dict(reversed(list(weights.items()))))


# ----------------------------------------------------------------------------- drivers and input

def test_driver_mix_normalizes_each_driver_before_weighting() -> None:
    usage = [ca.UnitUsage("a", "x", talk_ms=3, calls=1, data_bytes=0), ca.UnitUsage("b", "y", talk_ms=1, calls=1, data_bytes=10**9)]
    # minutes 3/4 vs 1/4, bytes 0 vs 1: a 1:1 mix gives a 3/8, b 5/8 (bytes do not swamp minutes)
    assert ca.unit_shares(usage, {"minutes": Fraction(1), "data_bytes": Fraction(1)}) == {("a", "x"): Fraction(3, 8), ("b", "y"): Fraction(5, 8)}
    # a driver nobody used drops out of the mix
    no_bytes = [replace(u, data_bytes=0) for u in usage]
    assert ca.unit_shares(no_bytes, {"minutes": Fraction(1), "data_bytes": Fraction(1)})[("a", "x")] == Fraction(3, 4)
    with pytest.raises(ValueError, match="nothing to allocate by"):
        ca.unit_shares([replace(u, talk_ms=0) for u in usage], {"minutes": Fraction(1)})


def test_finance_settings_validate_and_name_the_key() -> None:
    assert FINANCE.weights("media_servers") == {"minutes": Fraction(1), "data_bytes": Fraction(1)}
    assert FinanceSettings("d", "minutes:0.25, calls:0.75", "calls", "calls").weights("sip_trunks") == {
        "minutes": Fraction(1, 4), "calls": Fraction(3, 4)}
    with pytest.raises(SettingsError, match="finance.storage: unknown driver 'bytes'"):
        FinanceSettings("d", "minutes", "minutes", "bytes:1")
    with pytest.raises(SettingsError, match="finance.sip_trunks: needs at least one driver"):
        FinanceSettings("d", "minutes:0", "minutes", "calls")
    with pytest.raises(SettingsError, match="finance.sip_trunks: unknown driver"):
        load_settings(env={"VOIPLAKE_FINANCE_SIP_TRUNKS": "seconds:1"})


def write_costs(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    path.write_text("period,cost_center,amount_minor,currency\n" + "".join(",".join(r) + "\n" for r in rows))
    return path


def test_cost_file_errors_say_what_to_fix(tmp_path: Path) -> None:
    ok = ca.read_costs(Path(FINANCE.costs_dir) / "costs-2026-11.csv", period=NOV, finance=FINANCE)
    assert [(c.cost_center, c.currency) for c in ok] == [("sip_trunks", "EUR"), ("media_servers", "EUR"), ("storage", "EUR")]
    cases = {
        ("2026-11", "sip_trunks", "12.50", "EUR"): "integer number of minor units",
        ("2026-11", "printers", "100", "EUR"): "unknown cost center 'printers'",
        ("2026-10", "sip_trunks", "100", "EUR"): "period '2026-10' is not 2026-11",
        ("2026-11", "sip_trunks", "100", "euro"): "ISO 4217",
    }
    for row, message in cases.items():
        with pytest.raises(ca.CostInputError, match=message):
            ca.read_costs(write_costs(tmp_path / "c.csv", [row]), period=NOV, finance=FINANCE)
    with pytest.raises(ca.CostInputError, match="appears twice"):
        ca.read_costs(write_costs(tmp_path / "c.csv", [("2026-11", "storage", "1", "EUR")] * 2), period=NOV, finance=FINANCE)
    with pytest.raises(ca.CostInputError, match="no cost file"):
        ca.read_costs(tmp_path / "missing.csv", period=NOV, finance=FINANCE)
    with pytest.raises(ValueError, match="YYYY-MM"):
        ca.Period("2026-13")


# ----------------------------------------------------------------------------- end to end

T = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)


def call(n: int, subscriber: str, account: str, *, at: datetime = T, minutes: float = 1, status: str = "completed",
         data_bytes: int | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {c: None for c in SILVER_CALLS.column_names}
    row.update(
        call_id=f"c{n}", call_date=at.date(), status=status, started_at=at, ended_at=at + timedelta(minutes=minutes),
        duration_ms=int(minutes * 60_000) if status == "completed" else 0, subscriber_pseudonym=subscriber,
        device_pseudonym="d" * 32, pseudonym_key_id="psn-1", platform="ios", schema_version=2, country_code="DE",
        account_id=account, telemetry_level="basic", clock_offset_ms=0, event_count=2, duplicate_events=0,
        first_received_at=at, last_received_at=at, record_hash="h", silver_run_id="r", data_bytes=data_bytes,
    )
    return row


def consent(subscriber: str, account: str, department: str | None, effective: datetime) -> dict[str, Any]:
    return {
        "subscriber_pseudonym": subscriber, "pseudonym_key_id": "psn-1", "account_id": account, "department": department,
        "jurisdiction": "EU", "home_country": "DE", "subscriber_created_on": date(2025, 1, 1),
        "account_created_on": date(2025, 1, 1), "effective_from": effective, "telemetry_level": "basic",
        "diagnostics_opt_out": False, "source_object_key": "directory/x.csv",
    }


def test_extract_cost_allocation_exact_sums_and_hand_computed_case(spark, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from jobs.platform import lake
    from jobs.cli.business import extract_cost_allocation_command
    from lake_layout.tables import AUDIT_LINEAGE

    s = settings.with_lake_root(str(tmp_path / "lake"))
    day = lambda m, d: datetime(2026, m, d, tzinfo=timezone.utc)  # noqa: E731
    # plain writes (no MERGE): a fresh lake needs no upsert, and the test stays fast
    lake.replace_partitions(spark, spark.createDataFrame([
        # s1 moved from marketing to sales during November; the December move to legal is after the period
        consent("s1", "acct-A", "marketing", day(10, 1)), consent("s1", "acct-A", "sales", day(11, 10)),
        consent("s1", "acct-A", "legal", day(12, 5)),
        consent("s2", "acct-A", "support", day(10, 1)), consent("s3", "acct-B", "eng", day(10, 1)),
        consent("s4", "consumer", None, day(10, 1)),
    ], REFERENCE_SUBSCRIBER_CONSENT.spark_schema()), REFERENCE_SUBSCRIBER_CONSENT, s, where="true")
    lake.replace_partitions(spark, spark.createDataFrame([
        call(1, "s1", "acct-A", minutes=1, data_bytes=100),
        call(2, "s2", "acct-A", minutes=2, data_bytes=0),
        call(3, "s3", "acct-B", minutes=3, data_bytes=300),
        call(4, "s4", "consumer", minutes=1, data_bytes=600),
        call(5, "s2", "acct-A", status="failed"),  # a call (storage) but no minutes
        call(6, "s3", "acct-B", at=datetime(2026, 10, 31, 23, 0, tzinfo=timezone.utc), minutes=100),  # October
        call(7, "s3", "acct-B", at=datetime(2026, 12, 1, 0, 0, tzinfo=timezone.utc), minutes=100),  # December
    ], SILVER_CALLS.spark_schema()), SILVER_CALLS, s, where="true")
    costs = write_costs(tmp_path / "costs-2026-11.csv", [
        ("2026-11", "sip_trunks", "10000", "EUR"), ("2026-11", "media_servers", "999", "EUR"), ("2026-11", "storage", "1", "EUR")])

    out = tmp_path / "extract" / "cost-allocation-2026-11.csv"
    assert extract_cost_allocation_command(s, "2026-11", out, costs_file=costs) == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == list(ca.EXTRACT_COLUMNS)
    by_center: dict[str, int] = {}
    for r in rows:
        by_center[r["cost_center"]] = by_center.get(r["cost_center"], 0) + int(r["amount_minor"])
    assert by_center == {"sip_trunks": 10000, "media_servers": 999, "storage": 1}

    # Hand-computed (sip_trunks = minutes): minutes A/sales 1, A/support 2, B/eng 3, consumer 1 of 7.
    # Accounts: A 3/7, B 3/7, consumer 1/7 of 10 000 -> 4285.71, 4285.71, 1428.57 -> 4286, 4286, 1428.
    # Within A's 4286: sales 1/3 -> 1428.67, support 2/3 -> 2857.33 -> 1429 + 2857.
    sip = {(r["account_id"], r["department"]): int(r["amount_minor"]) for r in rows if r["cost_center"] == "sip_trunks"}
    assert sip == {("acct-A", "sales"): 1429, ("acct-A", "support"): 2857, ("acct-B", "eng"): 4286, ("consumer", "(none)"): 1428}
    shares = {(r["account_id"], r["department"]): r["share"] for r in rows if r["cost_center"] == "sip_trunks"}
    assert shares[("acct-A", "support")] == "2/7"
    # storage (calls 1:1 data bytes) is 1 cent: exactly one row gets it
    assert sorted(int(r["amount_minor"]) for r in rows if r["cost_center"] == "storage") == [0, 0, 0, 1]
    usage = {(r["account_id"], r["department"]): (int(r["talk_ms"]), int(r["calls"])) for r in rows if r["cost_center"] == "storage"}
    assert usage[("acct-A", "support")] == (120_000, 2) and usage[("acct-B", "eng")] == (180_000, 1)

    # Parquet by suffix (what the command writes for --out *.parquet): the same rows, amounts as integers
    import pyarrow.parquet as pq

    pq_out = ca.write_extract(ca.extract_rows(spark, s, NOV), tmp_path / "extract" / "cost-allocation-2026-11.parquet")
    table = pq.read_table(pq_out)
    assert str(table.schema.field("amount_minor").type) == "int64"
    assert sorted(table.column("amount_minor").to_pylist()) == sorted(int(r["amount_minor"]) for r in rows)

    # the lake keeps the allocation, with the input file's fingerprint in lineage
    stored = lake.read_table(spark, GOLD_COST_ALLOCATION, s)
    assert stored.count() == len(rows) == 12
    lineage = lake.read_table(spark, AUDIT_LINEAGE, s).where("job = 'cost_allocation'").collect()
    assert len(lineage) == 1
    landing = json.loads(lineage[0]["inputs_json"])[0]
    assert landing["kind"] == "landing" and landing["objects"][0]["key"] == "costs-2026-11.csv"

    # unusable input is refused with exit 2 and nothing written
    bad = write_costs(tmp_path / "bad.csv", [("2026-11", "sip_trunks", "100.00", "EUR")])
    assert extract_cost_allocation_command(s, "2026-11", tmp_path / "x.csv", costs_file=bad) == 2
    assert not (tmp_path / "x.csv").exists()
