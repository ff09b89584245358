"""cost_allocation: finance's monthly costs -> gold.cost_allocation, by usage, exact to the cent.

Input: finance's file for a period, `<finance.costs_dir>/costs-<YYYY-MM>.csv`:

    period,cost_center,amount_minor,currency
    2026-11,sip_trunks,1250000,EUR

Amounts are integers in minor units (cents); a decimal point is an error, not a rounding. Each cost center is
allocated to the (account, department) units that used the service in the period (silver.calls of the UTC
calendar month; account from the call, department from reference.subscriber_consent: each subscriber's state
in force at the end of the period, i.e. the latest before it). The unit's share is a weighted mix of its share
of each driver ([finance] in infra/voiplake.toml):

    share(unit) = sum_d w_d * usage_d(unit) / usage_d(all) / sum_d w_d     (drivers nobody used drop out)

computed in exact fractions. Money is split by largest remainder (`allocate_largest_remainder`), first among
accounts, then within each account among its departments: every account is within one cent of its exact
share, every department within one cent of its exact share of its account's amount, and the rows of a cost
center sum exactly to the input amount. Nothing is ever a float.

Usage is aggregated in Spark to one row per (account, department), which grows with customers, not calls; the
allocation itself is pure Python on those rows (exact arithmetic needs a global view of the remainders).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from fractions import Fraction
from math import floor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from lake_layout.config import COST_DRIVERS, FinanceSettings, Settings
from lake_layout.tables import GOLD_COST_ALLOCATION, REFERENCE_SUBSCRIBER_CONSENT, SILVER_CALLS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

NO_DEPARTMENT = "(none)"
UNASSIGNED_ACCOUNT = "unassigned"
EXTRACT_COLUMNS = (
    "period", "cost_center", "currency", "account_id", "department", "amount_minor", "account_amount_minor",
    "cost_center_total_minor", "share", "drivers", "talk_ms", "calls", "data_bytes",
)


class CostInputError(ValueError):
    """Finance's input file is malformed or does not fit the configuration."""


# ----------------------------------------------------------------------------- the rounding

def allocate_largest_remainder(total_minor: int, weights: Mapping[str, int | Fraction]) -> dict[str, int]:
    """Split `total_minor` (integer minor units) among the keys of `weights` in proportion to them.

    Largest remainder (Hamilton): everyone gets the floor of their exact share, and the cents left over go one
    each to the largest fractional parts, ties broken by key (sorted ascending), so the result is deterministic.
    Contract: the result has every key; values sum exactly to `total_minor`; each value is within 1 of the exact
    proportion (floor or ceiling of it); a zero weight gets 0. A negative total (a credit) is split the same way
    with the signs flipped. Raises ValueError for negative weights, non-integer totals or all-zero weights.
    """
    if isinstance(total_minor, bool) or not isinstance(total_minor, int):
        raise ValueError(f"total_minor must be an integer number of minor units, got {total_minor!r}")
    exact_weights: dict[str, Fraction] = {}
    for key, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, Fraction)):
            raise ValueError(f"weight of {key!r} must be an int or Fraction (exact), got {type(weight).__name__}")
        if weight < 0:
            raise ValueError(f"weight of {key!r} must be >= 0, got {weight}")
        exact_weights[key] = Fraction(weight)
    total_weight = sum(exact_weights.values(), Fraction(0))
    if total_weight == 0:
        raise ValueError(f"cannot allocate {total_minor} by weights that are all zero (keys: {sorted(weights)[:5]}...)")
    if total_minor < 0:
        return {k: -v for k, v in allocate_largest_remainder(-total_minor, exact_weights).items()}
    exact = {k: total_minor * w / total_weight for k, w in exact_weights.items()}
    shares = {k: floor(v) for k, v in exact.items()}
    left = total_minor - sum(shares.values())
    by_remainder = sorted(exact, key=lambda k: (-(exact[k] - shares[k]), k))
    for key in by_remainder[:left]:
        shares[key] += 1
    return shares


# ----------------------------------------------------------------------------- finance's input

@dataclass(frozen=True)
class Period:
    """A calendar month, "YYYY-MM"."""

    text: str

    def __post_init__(self) -> None:
        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", self.text):
            raise ValueError(f"period must be YYYY-MM, got {self.text!r}")

    @property
    def first_day(self) -> date:
        return date(int(self.text[:4]), int(self.text[5:]), 1)

    @property
    def next_first_day(self) -> date:
        first = self.first_day
        return date(first.year + first.month // 12, first.month % 12 + 1, 1)


@dataclass(frozen=True)
class CostLine:
    period: str
    cost_center: str
    amount_minor: int
    currency: str


def read_costs(path: Path, *, period: Period, finance: FinanceSettings) -> list[CostLine]:
    """Finance's cost lines of `period` from `path`; errors name the file, line and what to fix."""
    if not path.exists():
        raise CostInputError(f"no cost file {path} for period {period.text}: finance provides costs-{period.text}.csv")
    lines: list[CostLine] = []
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        expected = {"period", "cost_center", "amount_minor", "currency"}
        if set(reader.fieldnames or ()) != expected:
            raise CostInputError(f"{path}: header must be {sorted(expected)}, got {reader.fieldnames}")
        for n, row in enumerate(reader, start=2):
            where = f"{path}:{n}"
            if row["period"].strip() != period.text:
                raise CostInputError(f"{where}: period {row['period']!r} is not {period.text}")
            center = row["cost_center"].strip()
            if center not in finance.cost_centers:
                raise CostInputError(f"{where}: unknown cost center {center!r}; known: {list(finance.cost_centers)} "
                                     "(add its drivers to [finance] in infra/voiplake.toml)")
            raw = row["amount_minor"].strip()
            if not re.fullmatch(r"-?\d+", raw):
                raise CostInputError(f"{where}: amount_minor must be an integer number of minor units (cents), got {raw!r}")
            currency = row["currency"].strip()
            if not re.fullmatch(r"[A-Z]{3}", currency):
                raise CostInputError(f"{where}: currency must be an ISO 4217 code like EUR, got {currency!r}")
            if any(line.cost_center == center for line in lines):
                raise CostInputError(f"{where}: cost center {center} appears twice")
            lines.append(CostLine(period.text, center, int(raw), currency))
    if not lines:
        raise CostInputError(f"{path}: no cost lines")
    return lines


# ----------------------------------------------------------------------------- usage (Spark)

def departments_at(consent: "DataFrame", *, as_of: datetime) -> "DataFrame":
    """(subscriber_pseudonym, department): each subscriber's department in force at `as_of` (the latest state
    effective before it; a subscriber whose every state is later gets its earliest)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    before = F.col("effective_from") < F.lit(as_of)
    order = Window.partitionBy("subscriber_pseudonym").orderBy(
        before.desc(), F.when(before, F.col("effective_from")).desc_nulls_last(), F.col("effective_from").asc())
    return (
        consent.withColumn("_rank", F.row_number().over(order))
        .where(F.col("_rank") == 1)
        .select("subscriber_pseudonym", "department")
    )


def usage_by_unit(calls: "DataFrame", departments: "DataFrame") -> "DataFrame":
    """(account_id, department, talk_ms, calls, data_bytes) per allocation unit; `calls` already cut to the period.

    talk_ms counts completed calls only; calls counts every call (each is stored and processed); null account
    becomes 'unassigned', no department '(none)'.
    """
    from pyspark.sql import functions as F

    return (
        calls.join(departments, "subscriber_pseudonym", "left")
        .select(
            F.coalesce("account_id", F.lit(UNASSIGNED_ACCOUNT)).alias("account_id"),
            F.coalesce("department", F.lit(NO_DEPARTMENT)).alias("department"),
            F.when(F.col("status") == "completed", F.coalesce("duration_ms", F.lit(0))).otherwise(F.lit(0)).alias("talk_ms"),
            F.coalesce("data_bytes", F.lit(0)).alias("data_bytes"),
        )
        .groupBy("account_id", "department")
        .agg(F.sum("talk_ms").cast("long").alias("talk_ms"), F.count("*").alias("calls"),
             F.sum("data_bytes").cast("long").alias("data_bytes"))
    )


# ----------------------------------------------------------------------------- allocation (pure)

@dataclass(frozen=True)
class UnitUsage:
    account_id: str
    department: str
    talk_ms: int
    calls: int
    data_bytes: int

    def driver(self, name: str) -> int:
        return {"minutes": self.talk_ms, "calls": self.calls, "data_bytes": self.data_bytes}[name]


def unit_shares(usage: Sequence[UnitUsage], weights: Mapping[str, Fraction]) -> dict[tuple[str, str], Fraction]:
    """Each unit's exact share of a cost center under driver `weights` (shares sum to 1).

    Drivers with no usage at all drop out of the mix (their weight cannot be split by anything); raises
    ValueError if no weighted driver has any usage.
    """
    unknown = set(weights) - set(COST_DRIVERS)
    if unknown:
        raise ValueError(f"unknown driver(s) {sorted(unknown)}; known: {list(COST_DRIVERS)}")
    totals = {d: sum(u.driver(d) for u in usage) for d in weights}
    active = {d: w for d, w in weights.items() if w > 0 and totals[d] > 0}
    if not active:
        raise ValueError(f"no usage of {sorted(weights)} in the period: nothing to allocate by")
    weight_sum = sum(active.values(), Fraction(0))
    return {
        (u.account_id, u.department): sum((w * Fraction(u.driver(d), totals[d]) for d, w in active.items()), Fraction(0)) / weight_sum
        for u in usage
    }


def allocate_cost(line: CostLine, usage: Sequence[UnitUsage], weights: Mapping[str, Fraction]) -> list[dict[str, Any]]:
    """Rows of one cost line: accounts by largest remainder, then each account's amount among its departments."""
    shares = unit_shares(usage, weights)
    by_account: dict[str, dict[str, Fraction]] = {}
    for (account, department), share in shares.items():
        by_account.setdefault(account, {})[department] = share
    account_shares = {a: sum(d.values(), Fraction(0)) for a, d in by_account.items()}
    account_amounts = allocate_largest_remainder(line.amount_minor, account_shares)
    drivers = ",".join(f"{d}:{w}" for d, w in weights.items())
    usage_of = {(u.account_id, u.department): u for u in usage}
    rows = []
    for account in sorted(by_account):
        departments = by_account[account]
        amount = account_amounts[account]
        split = (allocate_largest_remainder(amount, departments) if account_shares[account] > 0
                 else {d: 0 for d in departments})
        for department in sorted(departments):
            u = usage_of[(account, department)]
            rows.append({
                "period": line.period, "cost_center": line.cost_center, "currency": line.currency,
                "account_id": account, "department": department, "amount_minor": split[department],
                "account_amount_minor": amount, "cost_center_total_minor": line.amount_minor,
                "share": str(departments[department]), "drivers": drivers,
                "talk_ms": u.talk_ms, "calls": u.calls, "data_bytes": u.data_bytes,
            })
    return rows


def allocate_costs(lines: Sequence[CostLine], usage: Sequence[UnitUsage], finance: FinanceSettings) -> list[dict[str, Any]]:
    """Every cost line allocated (rows in cost center, account, department order). Raises CostInputError when a
    cost center has nothing to be allocated by (no usage of its drivers in the period)."""
    rows: list[dict[str, Any]] = []
    for line in sorted(lines, key=lambda x: x.cost_center):
        try:
            rows += allocate_cost(line, usage, finance.weights(line.cost_center))
        except ValueError as exc:
            raise CostInputError(f"{line.period} {line.cost_center}: {exc}") from exc
    return rows


# ----------------------------------------------------------------------------- extract

def write_extract(rows: Sequence[Mapping[str, Any]], out: Path) -> Path:
    """Finance's extract: CSV, or Parquet if `out` ends in .parquet (pyarrow, amounts as int64)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        ints = {"amount_minor", "account_amount_minor", "cost_center_total_minor", "talk_ms", "calls", "data_bytes"}
        schema = pa.schema([(c, pa.int64() if c in ints else pa.string()) for c in EXTRACT_COLUMNS])
        table = pa.Table.from_pylist([{c: r[c] for c in EXTRACT_COLUMNS} for r in rows], schema=schema)
        pq.write_table(table, out)
        return out
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(EXTRACT_COLUMNS)
        writer.writerows([[r[c] for c in EXTRACT_COLUMNS] for r in rows])
    return out


def extract_rows(spark: "SparkSession", settings: Settings, period: Period) -> list[dict[str, Any]]:
    """gold.cost_allocation rows of `period` in extract order (bounded by accounts x departments x cost centers)."""
    from pyspark.sql import functions as F

    from jobs.platform import lake

    table = lake.read_table(spark, GOLD_COST_ALLOCATION, settings).where(F.col("period") == period.text)
    return [r.asDict() for r in table.orderBy("cost_center", "account_id", "department").collect()]


# ----------------------------------------------------------------------------- run

@dataclass(frozen=True)
class CostAllocationContext:
    settings: Settings
    period: Period
    costs_file: Path | None = None  # default: <finance.costs_dir>/costs-<period>.csv
    run_id: str = field(default_factory=lambda: f"cost_allocation-{uuid.uuid4().hex[:12]}")
    dag_id: str | None = None
    dag_run_id: str | None = None

    @property
    def costs_path(self) -> Path:
        return self.costs_file or Path(self.settings.finance.costs_dir) / f"costs-{self.period.text}.csv"


@dataclass(frozen=True)
class CostAllocationReport:
    period: str
    costs_file: str
    costs_sha256: str
    cost_centers: dict[str, dict[str, Any]]  # center -> {input, allocated, currency, accounts, rows}
    units: int
    calls: int
    rows: int
    table_version: int | None
    seconds: float


def run(spark: "SparkSession", ctx: CostAllocationContext) -> CostAllocationReport:
    """Allocate the period's costs and replace the period's partition of gold.cost_allocation."""
    from pyspark.sql import functions as F

    from jobs.platform import lake, lineage

    settings, period = ctx.settings, ctx.period
    started = datetime.now(timezone.utc)
    t0 = time.monotonic()
    path = ctx.costs_path
    lines = read_costs(path, period=period, finance=settings.finance)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    for spec in (SILVER_CALLS, REFERENCE_SUBSCRIBER_CONSENT, GOLD_COST_ALLOCATION):
        lake.ensure_table(spark, spec, settings)
    versions = {spec.name: lake.table_version(spark, spec, settings) for spec in (SILVER_CALLS, REFERENCE_SUBSCRIBER_CONSENT)}
    before = lake.table_version(spark, GOLD_COST_ALLOCATION, settings)
    calls = lake.read_table(spark, SILVER_CALLS, settings).where(
        (F.col("call_date") >= F.lit(period.first_day)) & (F.col("call_date") < F.lit(period.next_first_day)))
    period_end = datetime.combine(period.next_first_day, datetime.min.time(), timezone.utc)
    departments = departments_at(lake.read_table(spark, REFERENCE_SUBSCRIBER_CONSENT, settings), as_of=period_end)
    usage = [UnitUsage(r["account_id"], r["department"], int(r["talk_ms"] or 0), int(r["calls"]), int(r["data_bytes"] or 0))
             for r in usage_by_unit(calls, departments).collect()]
    rows = allocate_costs(lines, usage, settings.finance)
    for row in rows:
        row.update(costs_file=str(path), costs_sha256=sha, run_id=ctx.run_id, allocated_at=started)
    df = spark.createDataFrame(rows, GOLD_COST_ALLOCATION.spark_schema()) if rows else \
        spark.createDataFrame([], GOLD_COST_ALLOCATION.spark_schema())
    lake.replace_partitions(spark, df, GOLD_COST_ALLOCATION, settings, where=f"period = '{period.text}'")
    version = lake.table_version(spark, GOLD_COST_ALLOCATION, settings)
    centers = {
        line.cost_center: {
            "currency": line.currency, "input_minor": line.amount_minor,
            "allocated_minor": sum(r["amount_minor"] for r in rows if r["cost_center"] == line.cost_center),
            "accounts": len({r["account_id"] for r in rows if r["cost_center"] == line.cost_center}),
        }
        for line in lines
    }
    n_calls = sum(u.calls for u in usage)
    report = CostAllocationReport(
        period=period.text, costs_file=str(path), costs_sha256=sha, cost_centers=centers, units=len(usage),
        calls=n_calls, rows=len(rows), table_version=version, seconds=round(time.monotonic() - t0, 1),
    )
    lineage.record_run(spark, settings, lineage.LineageRecord(
        run_id=ctx.run_id, job="cost_allocation", dag_id=ctx.dag_id, dag_run_id=ctx.dag_run_id,
        logical_date=period.first_day,
        inputs=(
            lineage.LandingInput(uri=str(path.parent), objects=((path.name, sha),)),
            lineage.TableInput(table=SILVER_CALLS.name, version=versions[SILVER_CALLS.name]),
            lineage.TableInput(table=REFERENCE_SUBSCRIBER_CONSENT.name, version=versions[REFERENCE_SUBSCRIBER_CONSENT.name]),
        ),
        outputs=(lineage.TableOutput(table=GOLD_COST_ALLOCATION.name, version_before=before, version_after=version),),
        metrics=json.loads(json.dumps({k: v for k, v in report.__dict__.items() if k not in ("table_version", "seconds")})),
        rows_in=n_calls, rows_out=len(rows), started_at=started, finished_at=datetime.now(timezone.utc),
    ))
    return report
