"""account_usage: silver.calls -> gold.account_usage_daily, and the one gate every reseller reader goes through.

Per B2B account and UTC call date (consumers, account_id "consumer" or null, are not accounts and are left out):

    calls            calls of any status        completed_calls / failed_calls   by status
    talk_ms          duration_ms of completed calls (exact integer milliseconds)
    data_bytes       media bytes (unreported counts 0)
    active_users     distinct subscriber pseudonyms with a call that day

`reseller_id` records the account's owner under the reseller policy (lake_layout/resellers.toml) when the row was
computed; null for a direct account.

Ownership is enforced in one place: `reseller_usage(usage, reseller=R)` keeps only the rows of accounts the policy
gives R, as a predicate in the Spark query (so it is pushed down, and nothing else is read into Python). The
`voiplake extract usage-report` command and the CRM API (jobs.business.crm_api) both call it; neither filters on its own.
It filters by the policy in force, not by the stored reseller_id, so an account moved to another reseller is
served to its new owner only, including its history.

A run recomputes whole call dates (those silver reports as changed) and replaces exactly those partitions
(replaceWhere), so late calls re-aggregate their day and a rerun leaves the table as it was.
"""

from __future__ import annotations

import csv
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from lake_layout.config import Settings
from lake_layout.resellers import CONSUMER_ACCOUNT, Reseller, ResellerPolicy, load_policy
from lake_layout.tables import GOLD_ACCOUNT_USAGE_DAILY, SILVER_CALLS

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

MEASURES = ("calls", "completed_calls", "failed_calls", "talk_ms", "data_bytes", "active_users")
REPORT_COLUMNS = ("reseller_id", "account_id", "call_date", *MEASURES)


# ----------------------------------------------------------------------------- ownership as Spark predicates

def ownership_predicate(reseller: Reseller, account: "Column | None" = None) -> "Column":
    """A boolean Column: the account (default `account_id`) is owned by `reseller` under the policy.

    Same rule as `Reseller.owns`: an explicit account, or a zero-padded number inside one of its ranges (the id's
    shape is checked by a regex, so a plain string comparison of the bounds is exact). Never true for null.
    """
    from pyspark.sql import functions as F

    col = F.col("account_id") if account is None else account
    predicate = col.isin(sorted(reseller.accounts)) if reseller.accounts else F.lit(False)
    for rng in reseller.ranges:
        predicate = predicate | (col.rlike(rng.pattern) & col.between(rng.account(rng.first), rng.account(rng.last)))
    return F.coalesce(predicate, F.lit(False))


def reseller_id_column(policy: ResellerPolicy, account: "Column | None" = None) -> "Column":
    """The owning reseller's id of the account column under `policy`, null for a direct account."""
    from pyspark.sql import functions as F

    owner: Column = F.lit(None).cast("string")
    for reseller in reversed(policy.resellers):  # at most one predicate holds (checked at policy load)
        owner = F.when(ownership_predicate(reseller, account), F.lit(reseller.id)).otherwise(owner)
    return owner


# ----------------------------------------------------------------------------- the transform

def b2b_calls(calls: "DataFrame") -> "DataFrame":
    """The calls of B2B accounts: account_id set and not the consumer marker."""
    from pyspark.sql import functions as F

    return calls.where(F.col("account_id").isNotNull() & (F.col("account_id") != CONSUMER_ACCOUNT))


def daily_usage_by_account(calls: "DataFrame") -> "DataFrame":
    """MEASURES per (call_date, account_id) of every call, consumers and null accounts included (as their own groups).

    Contract: calls = completed + failed + other statuses; talk_ms sums duration_ms of completed calls only;
    data_bytes counts null as 0; active_users counts distinct subscriber_pseudonym.
    """
    from pyspark.sql import functions as F

    completed = F.col("status") == "completed"
    return calls.groupBy("call_date", "account_id").agg(
        F.count("*").alias("calls"),
        F.count(F.when(completed, 1)).alias("completed_calls"),
        F.count(F.when(F.col("status") == "failed", 1)).alias("failed_calls"),
        F.coalesce(F.sum(F.when(completed, F.col("duration_ms"))), F.lit(0)).cast("long").alias("talk_ms"),
        F.coalesce(F.sum("data_bytes"), F.lit(0)).cast("long").alias("data_bytes"),
        F.countDistinct("subscriber_pseudonym").alias("active_users"),
    )


def account_usage_rows(usage_by_account: "DataFrame", *, policy: ResellerPolicy) -> "DataFrame":
    """gold.account_usage_daily rows (without run_id / computed_at) from `daily_usage_by_account`: B2B accounts
    only (consumers and null accounts dropped), each with its reseller under `policy` (null: direct)."""
    return usage_by_account.transform(b2b_calls).withColumn("reseller_id", reseller_id_column(policy))


def reseller_usage(usage: "DataFrame", *, reseller: Reseller, date_from: date | None = None,
                   date_to: date | None = None) -> "DataFrame":
    """The usage rows a reseller may see: only accounts `reseller` owns (the policy in force), optionally
    call dates in [date_from, date_to]. Columns REPORT_COLUMNS, reseller_id = the reseller's id.

    The single ownership gate: every reader that serves a reseller (extract, CRM API) goes through it.
    """
    from pyspark.sql import functions as F

    scoped = usage.where(ownership_predicate(reseller))
    if date_from is not None:
        scoped = scoped.where(F.col("call_date") >= F.lit(date_from))
    if date_to is not None:
        scoped = scoped.where(F.col("call_date") <= F.lit(date_to))
    return scoped.withColumn("reseller_id", F.lit(reseller.id)).select(*REPORT_COLUMNS)


# ----------------------------------------------------------------------------- the extract

def usage_report_rows(spark: "SparkSession", settings: Settings, *, reseller: Reseller, date_from: date,
                      date_to: date) -> list[dict[str, Any]]:
    """The reseller's rows of gold.account_usage_daily in [date_from, date_to], ordered by account and date
    (bounded by the reseller's accounts x days)."""
    from jobs.platform import lake

    if date_from > date_to:
        raise ValueError(f"--from {date_from} is after --to {date_to}")
    lake.ensure_table(spark, GOLD_ACCOUNT_USAGE_DAILY, settings)
    usage = lake.read_table(spark, GOLD_ACCOUNT_USAGE_DAILY, settings)
    rows = reseller_usage(usage, reseller=reseller, date_from=date_from, date_to=date_to).orderBy("account_id", "call_date")
    return [r.asDict() for r in rows.collect()]


def write_usage_report(rows: Sequence[Mapping[str, Any]], out: Path) -> Path:
    """A reseller's usage report: CSV (.csv) or Parquet (.parquet), columns REPORT_COLUMNS, integers exact."""
    if out.suffix not in (".csv", ".parquet"):
        raise ValueError(f"output {out} must end in .csv or .parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        types = {"reseller_id": pa.string(), "account_id": pa.string(), "call_date": pa.date32()}
        schema = pa.schema([(c, types.get(c, pa.int64())) for c in REPORT_COLUMNS])
        pq.write_table(pa.Table.from_pylist([{c: r[c] for c in REPORT_COLUMNS} for r in rows], schema=schema), out)
        return out
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(REPORT_COLUMNS)
        writer.writerows([[r[c].isoformat() if isinstance(r[c], date) else r[c] for c in REPORT_COLUMNS] for r in rows])
    return out


# ----------------------------------------------------------------------------- run

@dataclass(frozen=True)
class AccountUsageContext:
    settings: Settings
    call_dates: tuple[date, ...]
    policy: ResellerPolicy | None = None  # default: settings.crm_api.resellers_file
    logical_date: date | None = None
    run_id: str = field(default_factory=lambda: f"account_usage-{uuid.uuid4().hex[:12]}")
    dag_id: str | None = None
    dag_run_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "call_dates", tuple(sorted({date.fromordinal(d.toordinal()) for d in self.call_dates})))

    @property
    def reseller_policy(self) -> ResellerPolicy:
        return self.policy if self.policy is not None else load_policy(self.settings.crm_api.resellers_file)


@dataclass(frozen=True)
class AccountUsageReport:
    call_dates: list[str]
    calls_read: int
    rows: int
    accounts: int
    rows_by_reseller: dict[str, int]  # reseller id (or "direct") -> rows
    table_version: int | None
    seconds: float

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True, default=str)


def run(spark: "SparkSession", ctx: AccountUsageContext) -> AccountUsageReport:
    """Recompute gold.account_usage_daily for ctx.call_dates from silver.calls; records lineage."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from jobs.platform import lake, lineage

    settings = ctx.settings
    policy = ctx.reseller_policy
    started = datetime.now(timezone.utc)
    t0 = time.monotonic()
    for spec in (SILVER_CALLS, GOLD_ACCOUNT_USAGE_DAILY):
        lake.ensure_table(spark, spec, settings)
    before = lake.table_version(spark, GOLD_ACCOUNT_USAGE_DAILY, settings)
    if not ctx.call_dates:
        return AccountUsageReport([], 0, 0, 0, {}, before, 0.0)
    silver_version = lake.table_version(spark, SILVER_CALLS, settings)
    in_dates = ", ".join(f"DATE'{d.isoformat()}'" for d in ctx.call_dates)
    calls = lake.read_table(spark, SILVER_CALLS, settings).where(f"call_date IN ({in_dates})")
    # Aggregated once (consumers included, so the calls read come from the same pass), then filtered to B2B.
    all_usage = daily_usage_by_account(calls).persist(StorageLevel.MEMORY_AND_DISK)
    rows = account_usage_rows(all_usage, policy=policy).withColumns({"run_id": F.lit(ctx.run_id), "computed_at": F.lit(started)})
    lake.replace_partitions(spark, rows, GOLD_ACCOUNT_USAGE_DAILY, settings, where=f"call_date IN ({in_dates})")
    version = lake.table_version(spark, GOLD_ACCOUNT_USAGE_DAILY, settings)
    is_b2b = F.col("account_id").isNotNull() & (F.col("account_id") != CONSUMER_ACCOUNT)
    owner = F.when(is_b2b, F.coalesce(reseller_id_column(policy), F.lit("direct")))  # null: not an account
    stats = all_usage.groupBy(owner.alias("owner")).agg(
        F.sum("calls").alias("calls"), F.count("*").alias("rows"), F.countDistinct("account_id").alias("accounts")).collect()
    all_usage.unpersist()
    n_calls = sum(int(r["calls"]) for r in stats)
    by_reseller = [r for r in stats if r["owner"] is not None]
    report = AccountUsageReport(
        call_dates=[d.isoformat() for d in ctx.call_dates], calls_read=n_calls,
        rows=sum(int(r["rows"]) for r in by_reseller), accounts=sum(int(r["accounts"]) for r in by_reseller),
        rows_by_reseller={r["owner"]: int(r["rows"]) for r in sorted(by_reseller, key=lambda r: r["owner"])},
        table_version=version, seconds=round(time.monotonic() - t0, 1),
    )
    lineage.record_run(spark, settings, lineage.LineageRecord(
        run_id=ctx.run_id, job="account_usage", dag_id=ctx.dag_id, dag_run_id=ctx.dag_run_id,
        logical_date=ctx.logical_date or ctx.call_dates[-1],
        inputs=(lineage.TableInput(table=SILVER_CALLS.name, version=silver_version),),
        outputs=(lineage.TableOutput(table=GOLD_ACCOUNT_USAGE_DAILY.name, version_before=before, version_after=version),),
        metrics={**{k: v for k, v in json.loads(report.to_json()).items() if k not in ("table_version", "seconds")},
                 "policy": policy.source, "policy_sha256": _file_sha256(policy.source)},
        rows_in=n_calls, rows_out=report.rows, started_at=started, finished_at=datetime.now(timezone.utc),
    ))
    return report


def _file_sha256(path: str) -> str | None:
    """SHA-256 of the policy file a run applied (None for an in-memory policy), so ownership can be traced."""
    import hashlib

    file = Path(path)
    return hashlib.sha256(file.read_bytes()).hexdigest() if file.is_file() else None
