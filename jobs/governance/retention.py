"""Retention enforcement (`voiplake retention run --as-of D`, dags/voip_retention.py).

Periods come from lake_layout/retention_policy.toml (lake_layout.retention). For each registry table, by its
retention tier:

* Rows are placed in time by `jobs.governance.forensics.time_column` (a date partition column, else a time column) and
  expire when their UTC day is before `as_of - days`. Tables with `subscriber_pseudonym` whose tier has
  different periods per jurisdiction take each row's period from its subscriber's latest
  reference.subscriber_consent row (EU | US-CA | US-other | other; a subscriber not in the directory gets the
  tier's default). Other tables use the tier's table-wide period.
* reference.subscriber_consent is a state table: a subscriber's latest row is the consent in force, so only
  superseded rows expire. Hash-chained logs and tables with no time column are never row-purged (the plan
  says why).
* Rows of the gated tiers (raw, bronze_restricted, silver) of day D are deleted only once every aggregate of
  the policy's gate (gold.hourly_geo_usage, gold.public_usage_stats) has D's partition and an audit.lineage run
  that wrote it; otherwise D is deferred (a `deferred` action with the reason) and retried by the next run.
* Rows an active legal hold covers (jobs.governance.legal_holds) are never deleted: a `skipped_hold` action counts them
  and names the holds.
* The delete is one Delta operation per table: DELETE for table-wide periods; for per-jurisdiction periods a
  MERGE ... WHEN MATCHED THEN DELETE against the subscribers' cutoffs (Delta's DELETE takes no subquery, and
  the subscriber list grows with the data, so it is joined, never collected). Then VACUUM RETAIN
  vacuum.retain_hours HOURS removes the purged files, so time travel to versions holding them fails; the
  retention-duration check is disabled for that statement only. A table with deletion vectors is REORG'd
  (APPLY PURGE) first, or the deleted rows would stay in the referenced files.
* Landing objects (uploads per upload_date, directory exports per export_date) expire after the raw period;
  objects holding held data (jobs.governance.legal_holds.held_object_keys) are skipped. S3Proxy's filesystem backend
  implements no S3 Object Lock (PutObjectLockConfiguration, PutObjectLegalHold and PutObjectRetention answer
  NotImplemented), so the hold registry in audit.legal_holds is what protects them.

Every step is an audit.retention_actions row (table, jurisdiction, period and regulation, predicate, rows
removed, files removed, Delta version, hold ids). A rerun deletes nothing more and records zero-row deletes.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from jobs.ingest.landing_integrity import EXPIRED_IN
from lake_layout.config import Settings
from lake_layout.landing import DIRECTORY_PREFIX
from lake_layout.registry import RetentionTier, TableSpec
from lake_layout.retention import JURISDICTIONS, Period, RetentionPolicy, load_policy
from lake_layout.tables import (
    ALL_TABLES,
    AUDIT_LINEAGE,
    AUDIT_RETENTION_ACTIONS,
    REFERENCE_SUBSCRIBER_CONSENT,
    TABLES_BY_NAME,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from jobs.governance.legal_holds import Hold

SUBJECT = "subscriber_pseudonym"
UNKNOWN = "unknown"  # jurisdiction of a subscriber not in reference.subscriber_consent
# State tables: the latest row per subscriber (by this column) is in force and never expires.
STATE_TABLES = {REFERENCE_SUBSCRIBER_CONSENT.name: "effective_from"}
CHAIN_COLUMN = "entry_hash"
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
ACTIONS = ("delete", "vacuum", "expire_objects", "skipped_hold", "deferred")
RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
LISTING_PARALLELISM = "spark.sql.sources.parallelPartitionDiscovery.parallelism"
# Source columns of the per-jurisdiction MERGE, prefixed so hold predicates on the target never clash.
_PSN, _JUR, _CUT, _IN_FORCE = "_r_psn", "_r_jurisdiction", "_r_cutoff", "_r_in_force_from"


# ---------------------------------------------------------------------------------------------- plan (pure)


@dataclass(frozen=True)
class TablePlan:
    """How retention applies to one table (independent of the date and of the data)."""

    spec: TableSpec
    time_column: str | None
    periods: tuple[tuple[str, Period], ...]  # per jurisdiction (incl. UNKNOWN); empty for table-wide tables
    table_wide: Period
    gated: bool  # deletes wait for the anonymized aggregates of the day
    state_column: str | None = None  # only rows superseded by a later one of the same subscriber expire
    excluded: str | None = None  # why rows of this table are never purged

    @property
    def by_jurisdiction(self) -> bool:
        return bool(self.periods)

    @property
    def day_sql(self) -> str:
        """Spark SQL of the row's UTC day."""
        assert self.time_column is not None
        kind = {c.name: c.type for c in self.spec.columns}[self.time_column]
        return f"`{self.time_column}`" if kind == "date" else f"CAST(`{self.time_column}` AS DATE)"

    def period(self, jurisdiction: str | None) -> Period:
        return dict(self.periods).get(jurisdiction or "", self.table_wide)


def plan_tables(policy: RetentionPolicy, *, tables: Iterable[TableSpec] = ALL_TABLES) -> list[TablePlan]:
    """The retention plan of every table: time column, periods (per jurisdiction or table-wide), gate, exclusion."""
    from jobs.governance.forensics import time_column

    plans = []
    for spec in tables:
        tier = policy.tier(spec.retention_tier)
        column = time_column(spec)
        per_jurisdiction = SUBJECT in spec.column_names and not tier.uniform
        periods = (tuple((j, tier.period(j)) for j in JURISDICTIONS) + ((UNKNOWN, tier.table_wide),)
                   if per_jurisdiction else ())
        excluded = None
        if CHAIN_COLUMN in spec.column_names:
            excluded = "hash-chained log: deleting entries breaks `voiplake audit verify` (truncation needs a re-anchored chain)"
        elif column is None:
            excluded = "no time column places its rows in time (jobs.governance.forensics.time_column)"
        gated = spec.retention_tier in policy.gate_tiers and spec.name not in STATE_TABLES
        plans.append(TablePlan(spec=spec, time_column=column, periods=periods, table_wide=tier.table_wide,
                               gated=gated, state_column=STATE_TABLES.get(spec.name), excluded=excluded))
    return plans


def before_sql(day_sql: str, cutoff: date) -> str:
    return f"{day_sql} < DATE'{cutoff.isoformat()}'"


def expiry_predicate(plan: TablePlan, *, as_of: date, jurisdiction: str | None = None) -> str:
    """Spark SQL selecting the rows of `plan`'s table (of `jurisdiction`'s subscribers) past their period on `as_of`.

    Per-jurisdiction tables are written with the subscriber set as a subquery on the consent table's latest
    rows: the exact selection, for the audit record (execution joins instead, see `subscriber_cutoffs`)."""
    if plan.excluded:
        raise ValueError(f"{plan.spec.name} is not purged: {plan.excluded}")
    sql = before_sql(plan.day_sql, plan.period(jurisdiction).cutoff(as_of))
    if plan.by_jurisdiction and jurisdiction is not None:
        latest = (f"SELECT {SUBJECT} FROM {REFERENCE_SUBSCRIBER_CONSENT.name} latest row per {SUBJECT}")
        if jurisdiction == UNKNOWN:
            sql += f" AND {SUBJECT} NOT IN ({latest})"
        else:
            sql += f" AND {SUBJECT} IN ({latest} WHERE jurisdiction = '{jurisdiction}')"
    if plan.state_column:
        sql += f" AND `{plan.state_column}` < (the subscriber's latest `{plan.state_column}`)"
    return sql


def latest_jurisdiction(consent: "DataFrame") -> "DataFrame":
    """(subscriber_pseudonym, jurisdiction, effective_from) of each subscriber's latest consent row."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    latest = Window.partitionBy(SUBJECT).orderBy(F.col("effective_from").desc())
    return (consent.withColumn("_rank", F.row_number().over(latest)).where("_rank = 1")
            .select(SUBJECT, "jurisdiction", "effective_from"))


def subscriber_cutoffs(consent: "DataFrame", *, plan: TablePlan, as_of: date) -> "DataFrame":
    """One row per subscriber: pseudonym, jurisdiction, first day kept on `as_of`, and since when its latest
    consent row is in force. A jurisdiction outside the policy gets the table-wide period."""
    from pyspark.sql import functions as F

    cutoffs = F.create_map(*[x for j, p in plan.periods for x in (F.lit(j), F.lit(p.cutoff(as_of)))])
    latest = latest_jurisdiction(consent)
    known = F.col("jurisdiction").isin(list(JURISDICTIONS))
    return latest.select(
        F.col(SUBJECT).alias(_PSN),
        F.when(known, F.col("jurisdiction")).otherwise(F.lit(UNKNOWN)).alias(_JUR),
        F.coalesce(cutoffs[F.col("jurisdiction")], F.lit(plan.table_wide.cutoff(as_of))).alias(_CUT),
        F.col("effective_from").alias(_IN_FORCE),
    )


def classify_rows(rows: "DataFrame", *, plan: TablePlan, as_of: date, cutoffs: "DataFrame | None",
                  holds: Sequence[tuple[str, str]]) -> "DataFrame":
    """`rows` with _jurisdiction, _day, _expired and one boolean _held_<i> per (hold_id, predicate) of `holds`.

    _expired follows the same rule the delete executes: day before the row's cutoff (and, for state tables,
    superseded by the subscriber's latest row)."""
    from pyspark.sql import functions as F

    day = F.expr(plan.day_sql)
    if plan.by_jurisdiction:
        assert cutoffs is not None
        out = rows.join(cutoffs, rows[SUBJECT] == cutoffs[_PSN], "left")
        jurisdiction = F.coalesce(F.col(_JUR), F.lit(UNKNOWN))
        cutoff = F.coalesce(F.col(_CUT), F.lit(plan.table_wide.cutoff(as_of)))
    else:
        out, jurisdiction, cutoff = rows, F.lit(None).cast("string"), F.lit(plan.table_wide.cutoff(as_of))
    expired = day < cutoff
    if plan.state_column:
        expired = expired & F.coalesce(F.col(plan.state_column) < F.col(_IN_FORCE), F.lit(False))
    out = out.withColumn("_jurisdiction", jurisdiction).withColumn("_day", day).withColumn("_expired", expired)
    for i, (_, predicate) in enumerate(holds):
        out = out.withColumn(f"_held_{i}", F.coalesce(F.expr(predicate), F.lit(False)))
    return out


@dataclass(frozen=True)
class ExpiryCounts:
    """Expired rows of one table, per (jurisdiction, day): how many, how many held, by which holds."""

    rows: Mapping[tuple[str | None, date], int]
    held: Mapping[tuple[str | None, date], int]
    holds_hit: Mapping[date, frozenset[str]]

    @property
    def days(self) -> set[date]:
        return {d for _, d in self.rows}


def expiry_counts(classified: "DataFrame", *, hold_ids: Sequence[str]) -> ExpiryCounts:
    """Aggregate `classify_rows` output: one row per jurisdiction and expired day (bounded by days, not rows)."""
    from pyspark.sql import functions as F

    held_any = F.lit(False)
    for i in range(len(hold_ids)):
        held_any = held_any | F.col(f"_held_{i}")
    aggs = [F.count(F.lit(1)).alias("rows"), F.sum(held_any.cast("long")).alias("held")]
    aggs += [F.max(F.col(f"_held_{i}")).alias(f"hit_{i}") for i in range(len(hold_ids))]
    result = classified.where("_expired").groupBy("_jurisdiction", "_day").agg(*aggs).collect()
    rows = {(r["_jurisdiction"], r["_day"]): int(r["rows"]) for r in result}
    held = {(r["_jurisdiction"], r["_day"]): int(r["held"] or 0) for r in result}
    hits: dict[date, set[str]] = {}
    for r in result:
        hits.setdefault(r["_day"], set()).update(h for i, h in enumerate(hold_ids) if r[f"hit_{i}"])
    return ExpiryCounts(rows, held, {d: frozenset(h) for d, h in hits.items()})


def missing_aggregates(days: Iterable[date], *, partitions: Mapping[str, set[date]],
                       lineage_days: Mapping[str, set[date]]) -> dict[date, list[str]]:
    """Per day, why its anonymized aggregates are not there yet (empty list: covered).

    A day is covered when every aggregate has the day's partition and an audit.lineage run wrote it for that day."""
    out = {}
    for day in sorted(set(days)):
        reasons = []
        for table in sorted(partitions):
            if day not in partitions[table]:
                reasons.append(f"{table} has no partition for {day}")
            elif day not in lineage_days.get(table, set()):
                reasons.append(f"audit.lineage has no run writing {table} for {day}")
        out[day] = reasons
    return out


def expired_landing_days(prefixes: Iterable[str], *, marker: str, cutoff: date) -> list[tuple[date, str]]:
    """(day, prefix) of the landing prefixes `<root>/<marker>=YYYY-MM-DD/` whose day is before `cutoff`."""
    out = []
    for prefix in prefixes:
        name = prefix.rstrip("/").rsplit("/", 1)[-1]
        key, _, value = name.partition("=")
        if key != marker:
            continue
        try:
            day = date.fromisoformat(value)
        except ValueError:
            continue  # not a day partition: left alone
        if day < cutoff:
            out.append((day, prefix))
    return sorted(out)


# ---------------------------------------------------------------------------------------------- actions


@dataclass
class RetentionAction:
    """One audit.retention_actions row before it is numbered."""

    action: str
    table_name: str
    jurisdiction: str | None = None
    retention_days: int | None = None
    regulation: str | None = None
    predicate: str | None = None
    rows_removed: int | None = None
    files_removed: int | None = None
    delta_version: int | None = None
    hold_ids: list[str] | None = None
    detail: str | None = None
    executed_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown retention action {self.action!r}; known: {ACTIONS}")

    def row(self, run_id: str, step: int) -> dict[str, Any]:
        return {"run_id": run_id, "step": step, "action": self.action, "table_name": self.table_name,
                "jurisdiction": self.jurisdiction, "retention_days": self.retention_days,
                "regulation": self.regulation, "predicate": self.predicate, "rows_removed": self.rows_removed,
                "files_removed": self.files_removed, "delta_version": self.delta_version,
                "hold_ids": json.dumps(sorted(self.hold_ids)) if self.hold_ids is not None else None,
                "detail": self.detail, "executed_at": self.executed_at}


@dataclass
class RetentionReport:
    run_id: str
    as_of: str
    dry_run: bool
    actions: list[dict[str, Any]]
    rows_removed: int
    files_removed: int
    objects_expired: int
    rows_held: int
    objects_held: int
    deferred_days: list[str]
    excluded_tables: dict[str, str]
    seconds: float

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, default=str)


def table_deletions(plan: TablePlan, counts: ExpiryCounts, *, as_of: date,
                    deferred: Mapping[date, list[str]]) -> list[RetentionAction]:
    """The deferred / delete / skipped_hold actions of one table from its expiry counts (pure).

    One delete per jurisdiction (table-wide: one with jurisdiction None), zero-row deletes included, so a
    rerun's record shows that nothing was left to delete."""
    spec = plan.spec
    deferred_days = sorted(d for d in counts.days if deferred.get(d))
    actions: list[RetentionAction] = []
    if deferred_days:
        in_list = ", ".join(f"DATE'{d}'" for d in deferred_days)
        reasons = sorted({r for d in deferred_days for r in deferred[d]})
        actions.append(RetentionAction(
            "deferred", spec.name, predicate=f"{plan.day_sql} IN ({in_list})",
            rows_removed=sum(n for (_, d), n in counts.rows.items() if d in deferred_days),
            detail="anonymized aggregates missing: " + "; ".join(reasons)))
    jurisdictions: list[str | None] = [j for j, _ in plan.periods] if plan.by_jurisdiction else [None]
    held_total, hit = 0, set()
    for j in jurisdictions:
        period = plan.period(j)
        live = {d: n for (jj, d), n in counts.rows.items() if jj == j and d not in deferred_days}
        held = sum(counts.held.get((j, d), 0) for d in live)
        held_total += held
        actions.append(RetentionAction(
            "delete", spec.name, jurisdiction=j, retention_days=period.days, regulation=period.regulation,
            predicate=expiry_predicate(plan, as_of=as_of, jurisdiction=j), rows_removed=sum(live.values()) - held))
    for (_, d), n in counts.held.items():
        if n and d not in deferred_days:
            hit |= set(counts.holds_hit.get(d, ()))
    if held_total:
        actions.append(RetentionAction("skipped_hold", spec.name, rows_removed=held_total, hold_ids=sorted(hit),
                                       detail="expired rows under an active legal hold were kept"))
    return actions


# ---------------------------------------------------------------------------------------------- lake part


def _covered(spark: "SparkSession", settings: Settings, policy: RetentionPolicy, days: set[date],
             known: dict[date, list[str]]) -> dict[date, list[str]]:
    """missing_aggregates for `days`, reading the gate's aggregates and audit.lineage (results bounded by days).

    `known` caches the answers of earlier calls in the same run (tables and landing share their days)."""
    todo = set(days) - set(known)
    if todo:
        known.update(_read_coverage(spark, settings, policy, todo))
    return {d: known[d] for d in days}


def _read_coverage(spark: "SparkSession", settings: Settings, policy: RetentionPolicy, days: set[date]) -> dict[date, list[str]]:
    from pyspark.sql import functions as F

    from jobs.platform import lake

    if not days or not policy.gate_aggregates:
        return {d: [] for d in days}
    in_list = ", ".join(f"DATE'{d}'" for d in sorted(days))
    partitions: dict[str, set[date]] = {}
    for name in policy.gate_aggregates:
        spec = TABLES_BY_NAME[name]
        column = spec.partition_by[0]
        partitions[name] = set() if not lake.table_exists(spark, spec, settings) else {
            r[0] for r in lake.read_table(spark, spec, settings).where(f"`{column}` IN ({in_list})")
            .select(column).distinct().collect()}
    lineage_days: dict[str, set[date]] = {name: set() for name in policy.gate_aggregates}
    if lake.table_exists(spark, AUDIT_LINEAGE, settings):
        runs = (lake.read_table(spark, AUDIT_LINEAGE, settings)
                .select("outputs_json", F.explode(F.from_json("metrics_json", "struct<call_dates: array<string>>")
                                                  .getField("call_dates")).alias("day"))
                .where(F.col("day").isin([d.isoformat() for d in days])))
        outputs = F.from_json("outputs_json", "map<string, string>")
        for name in policy.gate_aggregates:
            lineage_days[name] = {date.fromisoformat(r[0]) for r in
                                  runs.where(F.map_contains_key(outputs, F.lit(name))).select("day").distinct().collect()}
    return missing_aggregates(days, partitions=partitions, lineage_days=lineage_days)


def _last_metrics(spark: "SparkSession", location: str) -> tuple[int, dict[str, str]]:
    from delta.tables import DeltaTable

    row = DeltaTable.forPath(spark, location).history(1).select("version", "operationMetrics").first()
    assert row is not None
    return int(row[0]), dict(row[1] or {})


def _delete(spark: "SparkSession", settings: Settings, plan: TablePlan, *, as_of: date, cutoffs: "DataFrame | None",
            deferred_days: Sequence[date], held_sql: str | None) -> tuple[int, int]:
    """Run the table's one delete operation; (Delta version, rows the operation reports deleted)."""
    from delta.tables import DeltaTable

    location = plan.spec.location(settings)
    # Unqualified target columns: the MERGE source's columns are all prefixed (_r_*), so nothing is ambiguous.
    keep = []
    if deferred_days:
        keep.append(f"{plan.day_sql} NOT IN (" + ", ".join(f"DATE'{d}'" for d in deferred_days) + ")")
    if held_sql is not None:
        keep.append(f"NOT COALESCE(({held_sql}), FALSE)")
    guard = "".join(f" AND {k}" for k in keep)
    table = DeltaTable.forPath(spark, location)
    if not plan.by_jurisdiction:
        table.delete(before_sql(plan.day_sql, plan.table_wide.cutoff(as_of)) + guard)
        version, metrics = _last_metrics(spark, location)
        return version, int(metrics.get("numDeletedRows", -1))
    assert cutoffs is not None
    matched = f"{plan.day_sql} < s.{_CUT}" + guard
    if plan.state_column:
        matched += f" AND `{plan.state_column}` < s.{_IN_FORCE}"
    unmatched = before_sql(plan.day_sql, plan.table_wide.cutoff(as_of)) + guard
    merge = (table.alias("t").merge(cutoffs.alias("s"), f"t.`{SUBJECT}` = s.{_PSN}")
             .whenMatchedDelete(condition=matched))
    if not plan.state_column:  # a state table's rows all have a latest row: none is unmatched
        merge = merge.whenNotMatchedBySourceDelete(condition=unmatched)
    merge.execute()
    version, metrics = _last_metrics(spark, location)
    return version, int(metrics.get("numTargetRowsDeleted", -1))


def vacuum(spark: "SparkSession", settings: Settings, spec: TableSpec, *, retain_hours: int) -> tuple[int, int | None]:
    """Remove the files no longer referenced (older than `retain_hours`); (files removed, VACUUM END version).

    The retention-duration safety check is turned off for this statement only and restored after. A table
    with deletion vectors is purged first (REORG ... APPLY (PURGE)): otherwise deleted rows stay physically in
    files the current version still references."""
    from delta.tables import DeltaTable

    location = spec.location(settings)
    properties = DeltaTable.forPath(spark, location).detail().select("properties").first()[0] or {}
    if str(properties.get("delta.enableDeletionVectors", "false")).lower() == "true":
        spark.sql(f"REORG TABLE delta.`{location}` APPLY (PURGE)")
    # VACUUM lists the table's directories with parallelPartitionDiscovery.parallelism tasks (Spark's default:
    # 10000), which on a few cores costs far more than the listing itself: use the session's shuffle partitions.
    overrides = {RETENTION_CHECK: "false",
                 LISTING_PARALLELISM: spark.conf.get("spark.sql.shuffle.partitions") or "8"}
    before = {key: spark.conf.get(key, None) for key in overrides}
    for key, value in overrides.items():
        spark.conf.set(key, value)
    try:
        spark.sql(f"VACUUM delta.`{location}` RETAIN {int(retain_hours)} HOURS").collect()
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
    history = DeltaTable.forPath(spark, location).history(2).select("version", "operation", "operationMetrics").collect()
    end = next((r for r in history if r["operation"] == "VACUUM END"), None)
    if end is None:  # vacuum logging off: no commit to read the count from
        return -1, None
    return int((end["operationMetrics"] or {}).get("numDeletedFiles", 0)), int(end["version"])


def _needs_vacuum(spark: "SparkSession", settings: Settings) -> set[str]:
    """Tables whose last recorded retention delete has no VACUUM after it (an interrupted earlier run)."""
    from pyspark.sql import functions as F

    from jobs.platform import lake

    if not lake.table_exists(spark, AUDIT_RETENTION_ACTIONS, settings):
        return set()
    deleted = F.max(F.when((F.col("action") == "delete") & (F.col("rows_removed") > 0), F.col("executed_at")))
    vacuumed = F.max(F.when(F.col("action") == "vacuum", F.col("executed_at")))
    rows = (lake.read_table(spark, AUDIT_RETENTION_ACTIONS, settings).groupBy("table_name")
            .agg(deleted.alias("d"), vacuumed.alias("v")).where("d IS NOT NULL AND (v IS NULL OR v < d)").collect())
    return {r["table_name"] for r in rows}


def _purge_table(spark: "SparkSession", settings: Settings, policy: RetentionPolicy, plan: TablePlan, *,
                 as_of: date, holds: Sequence["Hold"], consent: "DataFrame | None", needs_vacuum: bool,
                 dry_run: bool, coverage: dict[date, list[str]]) -> list[RetentionAction]:
    from jobs.platform import lake

    spec = plan.spec
    cutoffs = subscriber_cutoffs(consent, plan=plan, as_of=as_of) if plan.by_jurisdiction and consent is not None else None
    if plan.by_jurisdiction and cutoffs is None:  # no directory yet: every subscriber is of unknown jurisdiction
        cutoffs = spark.createDataFrame([], f"{_PSN} string, {_JUR} string, {_CUT} date, {_IN_FORCE} timestamp")
    touching = [(h.hold_id, sql) for h in holds if (sql := h.covers_sql(spec)) is not None]
    classified = classify_rows(lake.read_table(spark, spec, settings), plan=plan, as_of=as_of, cutoffs=cutoffs, holds=touching)
    counts = expiry_counts(classified, hold_ids=[h for h, _ in touching])
    deferred = _covered(spark, settings, policy, counts.days, coverage) if plan.gated else {}
    actions = table_deletions(plan, counts, as_of=as_of, deferred=deferred)
    to_delete = sum(a.rows_removed or 0 for a in actions if a.action == "delete")
    if dry_run:
        return actions
    if to_delete:
        from jobs.governance.legal_holds import held_predicate

        deferred_days = sorted(d for d in counts.days if deferred.get(d))
        version, reported = _delete(spark, settings, plan, as_of=as_of, cutoffs=cutoffs, deferred_days=deferred_days,
                                    held_sql=held_predicate(holds, spec))
        for a in actions:
            if a.action == "delete" and a.rows_removed:
                a.delta_version = version
                a.executed_at = datetime.now(timezone.utc)
                if reported not in (-1, to_delete):  # a concurrent writer changed the table between count and delete
                    a.detail = f"the delete reported {reported} rows for the table, {to_delete} were counted"
    if to_delete or needs_vacuum:
        files, version = vacuum(spark, settings, spec, retain_hours=policy.vacuum_retain_hours)
        actions.append(RetentionAction(
            "vacuum", spec.name, predicate=f"VACUUM RETAIN {policy.vacuum_retain_hours} HOURS",
            files_removed=files if files >= 0 else None, delta_version=version,
            detail=None if files >= 0 else "vacuum logging is off: files removed not reported"))
    return actions


def _expire_landing(spark: "SparkSession", settings: Settings, policy: RetentionPolicy, *, as_of: date,
                    holds: Sequence["Hold"], dry_run: bool, coverage: dict[date, list[str]]) -> list[RetentionAction]:
    """Expire landing objects past the raw period (uploads per upload_date, gated; directory exports per export_date)."""
    from jobs.governance.legal_holds import held_object_keys
    from jobs.platform.objectstore import list_keys, s3_client

    client = s3_client(settings.object_store)
    bucket = settings.landing.bucket
    if bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        return []
    period = policy.table_wide(RetentionTier.RAW)
    cutoff = period.cutoff(as_of)
    gated = RetentionTier.RAW in policy.gate_tiers
    table = f"landing:{bucket}"
    actions: list[RetentionAction] = []
    roots = ((settings.landing.prefix.strip("/") + "/", "upload_date", gated), (DIRECTORY_PREFIX + "/", "export_date", False))
    days: list[tuple[date, str, bool]] = []
    for root, marker, gate in roots:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=root, Delimiter="/")
        prefixes = [p["Prefix"] for page in pages for p in page.get("CommonPrefixes", [])]
        days += [(d, p, gate) for d, p in expired_landing_days(prefixes, marker=marker, cutoff=cutoff)]
    deferred = _covered(spark, settings, policy, {d for d, _, g in days if g}, coverage)
    late = [(d, p) for d, p, g in days if g and deferred.get(d)]
    if late:
        actions.append(RetentionAction(
            "deferred", table, retention_days=period.days, regulation=period.regulation,
            predicate="prefixes " + ", ".join(p for _, p in late), rows_removed=None,
            detail="anonymized aggregates missing: " + "; ".join(sorted({r for d, _ in late for r in deferred[d]}))))
    due = [p for d, p, g in days if not (g and deferred.get(d))]
    keys = [k for p in due for k, _ in list_keys(client, bucket, p)]
    held_keys = held_object_keys(spark, settings, holds) & set(keys) if holds else set()
    expired = [k for k in keys if k not in held_keys]
    if not dry_run:
        for key in expired:  # S3Proxy answers DeleteObjects (multi-delete) with NotImplemented: one call per object
            client.delete_object(Bucket=bucket, Key=key)
    actions.append(RetentionAction(
        "expire_objects", table, retention_days=period.days, regulation=period.regulation,
        predicate=f"day < DATE'{cutoff}'{EXPIRED_IN}" + (", ".join(due) if due else "(no expired prefixes)"),
        files_removed=len(expired)))
    if held_keys:
        hit = [h.hold_id for h in holds if len(holds) == 1 or held_object_keys(spark, settings, [h]) & held_keys]
        actions.append(RetentionAction("skipped_hold", table, files_removed=len(held_keys), hold_ids=hit,
                                       predicate="keys " + ", ".join(sorted(held_keys)[:20]) + (" ..." if len(held_keys) > 20 else ""),
                                       detail=f"{len(held_keys)} expired landing object(s) under an active legal hold were kept"))
    return actions


def _write_actions(spark: "SparkSession", settings: Settings, run_id: str, actions: Sequence[RetentionAction]) -> None:
    from jobs.platform import lake

    if not actions:
        return
    rows = [a.row(run_id, step) for step, a in enumerate(actions)]
    df = spark.createDataFrame(rows, AUDIT_RETENTION_ACTIONS.spark_schema())
    lake.merge_insert_new(spark, df, AUDIT_RETENTION_ACTIONS, settings)


def run(spark: "SparkSession", settings: Settings, *, as_of: date, run_id: str | None = None,
        policy: RetentionPolicy | None = None, holds: Sequence["Hold"] | None = None, dry_run: bool = False,
        tables: Iterable[TableSpec] = ALL_TABLES, landing: bool = True) -> RetentionReport:
    """Enforce the retention policy as of `as_of`: per table delete, VACUUM; then expire landing objects.

    `holds` default: the holds active on `as_of` (jobs.governance.legal_holds.active_holds). `dry_run` counts and returns
    the actions without changing anything or writing audit rows. Each run appends its actions to
    audit.retention_actions under `run_id` (give a new one per attempt); the actions done before a failure are
    still written."""
    from jobs.platform import lake
    from jobs.governance.legal_holds import active_holds

    t0 = time.monotonic()
    as_of = date.fromordinal(as_of.toordinal())
    run_id = run_id or f"retention:{as_of}:{uuid.uuid4().hex[:12]}"
    policy = policy or load_policy()
    holds = list(active_holds(spark, settings, on=as_of) if holds is None else holds)
    plans = plan_tables(policy, tables=tables)
    consent = (lake.read_table(spark, REFERENCE_SUBSCRIBER_CONSENT, settings)
               if lake.table_exists(spark, REFERENCE_SUBSCRIBER_CONSENT, settings) else None)
    pending_vacuum = set() if dry_run else _needs_vacuum(spark, settings)
    actions: list[RetentionAction] = []
    coverage: dict[date, list[str]] = {}
    try:
        for plan in plans:
            if plan.excluded or not lake.table_exists(spark, plan.spec, settings):
                continue
            actions += _purge_table(spark, settings, policy, plan, as_of=as_of, holds=holds, consent=consent,
                                    needs_vacuum=plan.spec.name in pending_vacuum, dry_run=dry_run, coverage=coverage)
        if landing:
            actions += _expire_landing(spark, settings, policy, as_of=as_of, holds=holds, dry_run=dry_run,
                                       coverage=coverage)
    finally:
        if not dry_run:
            _write_actions(spark, settings, run_id, actions)
    deferred = sorted({d for a in actions if a.action == "deferred" for d in _DAY.findall(a.predicate or "")})
    return RetentionReport(
        run_id=run_id, as_of=as_of.isoformat(), dry_run=dry_run,
        actions=[{k: v for k, v in a.row(run_id, i).items() if k != "run_id"} for i, a in enumerate(actions)],
        rows_removed=sum(a.rows_removed or 0 for a in actions if a.action == "delete"),
        files_removed=sum(a.files_removed or 0 for a in actions if a.action == "vacuum"),
        objects_expired=sum(a.files_removed or 0 for a in actions if a.action == "expire_objects"),
        rows_held=sum(a.rows_removed or 0 for a in actions if a.action == "skipped_hold"),
        objects_held=sum(a.files_removed or 0 for a in actions if a.action == "skipped_hold"),
        deferred_days=deferred,
        excluded_tables={p.spec.name: p.excluded for p in plans if p.excluded},
        seconds=round(time.monotonic() - t0, 1),
    )
