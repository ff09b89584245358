"""privacy_audit: a re-identification attack simulation against what voiplake publishes (`voiplake privacy-audit`).

The promise to regulators is that nothing published identifies a person. This job measures it for one
call date, per table, and writes the findings to `audit.privacy_audit` and a Markdown report for auditors.

The attacker. For each of `privacy_audit.targets` subscribers (sampled deterministically from silver.calls
with `privacy_audit.seed`), the attacker knows up to `privacy_audit.known_calls` of the target's calls:
roughly when (the hour), where (the H3 cell at privacy.h3_cell_resolution, hence also its region and
country), over which network class and from which platform. That is what a colleague, a photo with a
timestamp or a shared location would give away. The carrier is not assumed known (see below why knowing
less can only raise our risk bound).

Against gold.hourly_geo_usage (published, method 'aggregate_linkage'). A published row is *consistent*
with a known call when its period covers the call's hour, its zone contains the call's cell at the row's
geo level (cell, region or country), and its network class, platform and country equal the call's. A
consistent row tells the attacker "if the call is counted here, the target is one of distinct_subscribers
people". Aggregate rows carry no identifiers, so rows cannot be intersected member by member: each known
call gives one row's worth of information, and the best the attacker can do is the smallest such group.
We therefore bound the target's prosecutor risk (the probability of picking the right person, Elliot &
Dale's prosecutor model) by

    risk(target) = max over known calls of 1 / min(distinct_subscribers of the rows consistent with it)

This is a conservative upper bound: the attacker does not know which consistent row actually counts the
call, and we assume they learn the smallest one. Anything the attacker knows beyond our model (say the
carrier) only removes rows from the consistent set and cannot raise the bound. A target with no
consistent row gets risk 0 (the table says nothing about them). A target is *unique* when its smallest
group is 1 and *near-unique* when it is 2..`near_unique_size`. A published table FAILS when any target's
risk exceeds `privacy_audit.max_prosecutor_risk` (compared exactly, as fractions). A k-anonymous table
bounds every risk by 1/k.

Against silver.calls (pseudonymous records, never published, method 'record_linkage'). The same attacker
holds the record-level table: the candidates for a target are the pseudonyms with, for every known call, a
call in the same hour, H3 cell and network class. Unique = exactly one candidate, and then every other
call of that pseudonym is the target's. Expect most targets to be unique with three known calls (de
Montjoye et al., "Unique in the Crowd", 2013: four spatio-temporal points single out 95% of people): this
is the measured reason silver is never published. Silver cannot fail the audit.

Independent k-anonymity check. The record-level microdata behind the published gold rows is rebuilt from
silver with the gold job's own pure functions (`usage_facts`, `level_keys`, `LEVELS`): each call is
attributed to the finest level whose key has a published row, which is exactly the row `k_anonymize`
counted it in (it publishes whole groups, finest first). One record per (subscriber, row), the row key as
quasi-identifiers, is handed to pycanon (IFCA's k-anonymity / l-diversity library) as a pandas frame.
Both pycanon's k and ours (the smallest distinct_subscribers in the published table) must be >= k.
l-diversity is reported on `had_failed_call` (did the subscriber have a failed call in that row?), the only
per-person attribute a gold row discloses (as failed_calls); it is not gating (see `l_diversity_note`).

Differentially private tables (gold.public_usage_stats, method 'differential_privacy'), if the registry
has them: the epsilon spent on the date per dataset from audit.privacy_budget and whether it is within the
cap. Their guarantee does not rest on group sizes, so they are not attacked.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from fractions import Fraction
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from jobs.privacy.kanonymity import GROUP_COLUMNS, LEVELS, Level, level_keys, usage_facts
from lake_layout.config import Settings
from lake_layout.tables import (
    AUDIT_PRIVACY_AUDIT,
    AUDIT_PRIVACY_BUDGET,
    GOLD_HOURLY_GEO_USAGE,
    GOLD_PUBLIC_USAGE_STATS,
    SILVER_CALLS,
    TABLES_BY_NAME,
)

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

AGGREGATE_LINKAGE = "aggregate_linkage"
RECORD_LINKAGE = "record_linkage"
DIFFERENTIAL_PRIVACY = "differential_privacy"
DP_TABLE = GOLD_PUBLIC_USAGE_STATS.name
DP_LEDGER = AUDIT_PRIVACY_BUDGET.name
SENSITIVE_ATTRIBUTE = "had_failed_call"
QUASI_IDENTIFIERS: tuple[str, ...] = ("generalization_level", *GROUP_COLUMNS)
EXIT_AUDIT_FAILED = 3

l_diversity_note = (
    "l-diversity is reported, not gating: gold publishes failed_calls per row, so a row whose subscribers all "
    "had (or all had no) failed call discloses that fact about each of them. Failures are operational, not "
    "special-category data, most rows have no failure at all (l = 1 by construction), and gating on l >= 2 "
    "would suppress most of the table for little protection."
)


# ----------------------------------------------------------------------------- the attacker's knowledge

def sample_targets(facts: "DataFrame", *, targets: int, seed: int) -> "DataFrame":
    """`targets` distinct subscribers of `facts`, chosen by xxhash64(seed, pseudonym): same seed and data, same targets.

    Output: one column, subscriber_pseudonym; at most `targets` rows (fewer if fewer subscribers).
    """
    from pyspark.sql import functions as F

    if targets < 1:
        raise ValueError(f"targets must be >= 1, got {targets}")
    return (
        facts.select("subscriber_pseudonym").distinct()
        .withColumn("_order", F.xxhash64(F.lit(seed), "subscriber_pseudonym"))
        .orderBy("_order", "subscriber_pseudonym").limit(targets)
        .select("subscriber_pseudonym")
    )


def attacker_knowledge(facts: "DataFrame", targets: "DataFrame", *, known_calls: int, seed: int) -> "DataFrame":
    """The calls the attacker knows: up to `known_calls` facts per target, chosen by xxhash64(seed, call_id).

    `facts` are `jobs.privacy.kanonymity.usage_facts` rows. Output, one row per known call: subscriber_pseudonym
    (the target), known_index (1..known_calls), call_date, hour_start (the call's hour), h3_cell, h3_region,
    country_code, network_class, platform. Facts without a time are not knowable and are skipped.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if known_calls < 1:
        raise ValueError(f"known_calls must be >= 1, got {known_calls}")
    order = Window.partitionBy("subscriber_pseudonym").orderBy(F.xxhash64(F.lit(seed), "call_id"), "call_id")
    return (
        facts.where(F.col("call_ts").isNotNull())
        .join(F.broadcast(targets), "subscriber_pseudonym")
        .withColumn("known_index", F.row_number().over(order))
        .where(F.col("known_index") <= known_calls)
        .select(
            "subscriber_pseudonym", "known_index", "call_date", F.date_trunc("hour", "call_ts").alias("hour_start"),
            "h3_cell", "h3_region", "country_code", "network_class", "platform",
        )
    )


# ----------------------------------------------------------------------------- attacks

def aggregate_linkage(known: "DataFrame", rows: "DataFrame") -> "DataFrame":
    """Per target, the smallest published group consistent with any of its known calls, and the risk it implies.

    `rows`: gold.hourly_geo_usage rows (geo_level, geo_zone, period_start, period_hours, country_code,
    network_class, platform, distinct_subscribers). Output, one row per target of `known`:
    subscriber_pseudonym, known_calls (how many the attacker had), consistent_rows, smallest_group (null
    when no row is consistent) and prosecutor_risk = 1 / smallest_group (0.0 when none).
    """
    from pyspark.sql import functions as F

    k, g = known.alias("k"), rows.alias("g")
    hour = F.unix_seconds(F.col("k.hour_start"))
    period_start = F.unix_seconds(F.col("g.period_start"))
    zone_contains_cell = (
        ((F.col("g.geo_level") == "h3_cell") & (F.col("g.geo_zone") == F.col("k.h3_cell")))
        | ((F.col("g.geo_level") == "h3_region") & (F.col("g.geo_zone") == F.col("k.h3_region")))
        | ((F.col("g.geo_level") == "country") & (F.col("g.geo_zone") == F.col("k.country_code")))
    )
    consistent = (
        (F.col("k.call_date") == F.col("g.call_date"))
        & (F.col("k.network_class") == F.col("g.network_class"))
        & (F.col("k.platform") == F.col("g.platform"))
        & (F.col("k.country_code") == F.col("g.country_code"))
        & (period_start <= hour) & (hour < period_start + F.col("g.period_hours") * 3600)
        & zone_contains_cell
    )
    per_target = (
        k.join(g, consistent, "left")
        .groupBy(F.col("k.subscriber_pseudonym").alias("subscriber_pseudonym"))
        .agg(
            F.countDistinct("k.known_index").alias("known_calls"),
            F.count("g.distinct_subscribers").alias("consistent_rows"),
            F.min("g.distinct_subscribers").alias("smallest_group"),
        )
    )
    return per_target.withColumn(
        "prosecutor_risk", F.coalesce(F.lit(1.0) / F.col("smallest_group"), F.lit(0.0))
    )


def record_linkage(known: "DataFrame", facts: "DataFrame") -> "DataFrame":
    """Per target, the pseudonyms in `facts` (silver records) that match ALL its known calls.

    A candidate has, for every known call, a call in the same hour, H3 cell (null matches null: the
    location was unknown in both) and network class on the same date. The target always matches itself.
    Output, one row per target: subscriber_pseudonym, known_calls, smallest_group (= candidates, >= 1) and
    prosecutor_risk = 1 / candidates.
    """
    from pyspark.sql import functions as F

    population = facts.where(F.col("call_ts").isNotNull()).select(
        F.col("subscriber_pseudonym").alias("candidate"), F.col("call_date").alias("p_date"),
        F.date_trunc("hour", "call_ts").alias("p_hour"), F.col("h3_cell").alias("p_cell"),
        F.col("network_class").alias("p_class"),
    ).distinct()
    matches = known.join(
        population,
        (F.col("call_date") == F.col("p_date")) & (F.col("hour_start") == F.col("p_hour"))
        & F.col("h3_cell").eqNullSafe(F.col("p_cell")) & (F.col("network_class") == F.col("p_class")),
    )
    needed = known.groupBy("subscriber_pseudonym").agg(F.count("*").alias("known_calls"))
    candidates = (
        matches.groupBy("subscriber_pseudonym", "candidate").agg(F.countDistinct("known_index").alias("matched"))
        .join(needed, "subscriber_pseudonym")
        .where(F.col("matched") == F.col("known_calls"))
        .groupBy("subscriber_pseudonym", "known_calls").agg(F.count("*").alias("smallest_group"))
    )
    return candidates.withColumn("prosecutor_risk", F.lit(1.0) / F.col("smallest_group"))


@dataclass(frozen=True)
class RiskSummary:
    targets: int
    known_calls_max: int
    unique: int  # targets whose smallest group is 1
    near_unique: int  # 2 .. near_unique_size
    smallest_group: int | None  # over all targets
    mean_prosecutor_risk: float

    @property
    def max_prosecutor_risk(self) -> Fraction:
        """Exact: 1 / smallest group (0 when no target met any group)."""
        return Fraction(1, self.smallest_group) if self.smallest_group else Fraction(0)

    def share(self, n: int) -> float:
        return round(n / self.targets, 6) if self.targets else 0.0


def summarize_risk(per_target: "DataFrame", *, near_unique_size: int) -> RiskSummary:
    """Collapse `aggregate_linkage` / `record_linkage` output to one summary (one collected row)."""
    from pyspark.sql import functions as F

    group = F.col("smallest_group")
    row = per_target.agg(
        F.count("*").alias("targets"),
        F.max("known_calls").alias("known_calls_max"),
        F.count(F.when(group == 1, 1)).alias("unique"),
        F.count(F.when((group >= 2) & (group <= near_unique_size), 1)).alias("near_unique"),
        F.min(group).alias("smallest_group"),
        F.avg("prosecutor_risk").alias("mean_risk"),
    ).first()
    assert row is not None
    return RiskSummary(
        targets=int(row["targets"]), known_calls_max=int(row["known_calls_max"] or 0), unique=int(row["unique"]),
        near_unique=int(row["near_unique"]),
        smallest_group=None if row["smallest_group"] is None else int(row["smallest_group"]),
        mean_prosecutor_risk=round(float(row["mean_risk"] or 0.0), 6),
    )


# ----------------------------------------------------------------------------- independent k-anonymity check

def published_microdata(facts: "DataFrame", rows: "DataFrame", *, levels: Sequence[Level] = LEVELS) -> "DataFrame":
    """One record per (subscriber, published row): the row key (QUASI_IDENTIFIERS) and had_failed_call.

    Each fact is keyed at every level with the gold job's `level_keys` and attributed to the finest level
    whose key has a row in `rows`: `k_anonymize` publishes whole groups, finest first, so that is the row
    the gold job counted the call in. Facts of no published row (suppressed) are left out. Grouping the
    output by QUASI_IDENTIFIERS gives each published row's subscribers as recomputed from silver.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    keyed = reduce(lambda a, b: a.unionByName(b), [
        level_keys(facts, level).select(
            "call_id", "subscriber_pseudonym", "is_failed", F.lit(level.index).alias("generalization_level"), *GROUP_COLUMNS
        )
        for level in levels
    ])
    published_keys = rows.select(*QUASI_IDENTIFIERS).distinct()
    finest = Window.partitionBy("call_id").orderBy("generalization_level")
    attributed = (
        keyed.join(published_keys, list(QUASI_IDENTIFIERS))
        .withColumn("_rank", F.row_number().over(finest))
        .where(F.col("_rank") == 1)
    )
    return attributed.groupBy(*QUASI_IDENTIFIERS, "subscriber_pseudonym").agg(
        F.max(F.col("is_failed").cast("int")).cast("boolean").alias(SENSITIVE_ATTRIBUTE)
    )


def bounded_microdata(microdata: "DataFrame", *, max_records: int) -> tuple["DataFrame", int, int]:
    """(records of the smallest published rows, up to about `max_records` records; total records; total rows).

    Everything when it fits (the usual case: one aggregate action). Otherwise whole rows, smallest first:
    the smallest row is always included, so k over the selection equals k over everything, and l over the
    selection is an upper bound of l over everything (fewer rows can only raise a minimum).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    totals = microdata.agg(
        F.count("*"), F.count_distinct(*[F.col(c) for c in QUASI_IDENTIFIERS])
    ).first()
    assert totals is not None
    total_records, total_rows = int(totals[0] or 0), int(totals[1] or 0)
    if total_records <= max_records:
        return microdata, total_records, total_rows
    sizes = microdata.groupBy(*QUASI_IDENTIFIERS).agg(F.count("*").alias("_records"))
    # One window over published rows (not records): gold has a few thousand rows a day.
    running = Window.orderBy("_records", *QUASI_IDENTIFIERS).rowsBetween(Window.unboundedPreceding, Window.currentRow)
    chosen = (
        sizes.withColumn("_before", F.sum("_records").over(running) - F.col("_records"))
        .where(F.col("_before") < max_records).select(*QUASI_IDENTIFIERS)
    )
    return microdata.join(chosen, list(QUASI_IDENTIFIERS)), total_records, total_rows


def to_pycanon_frame(microdata: "DataFrame") -> "pd.DataFrame":
    """The microdata as pandas for pycanon: quasi-identifiers as strings (no NaN keys, which pandas' groupby would
    drop), the sensitive attribute as bool, a fresh RangeIndex (pycanon mixes label and position indexing)."""
    from pyspark.sql import functions as F

    frame = microdata.select(
        *[F.col(c).cast("string").alias(c) for c in QUASI_IDENTIFIERS], F.col(SENSITIVE_ATTRIBUTE)
    ).toPandas()
    return frame.reset_index(drop=True)


@dataclass(frozen=True)
class IndependentCheck:
    k: int | None  # pycanon k_anonymity; None when nothing is published
    l_diversity: int | None  # pycanon l_diversity on SENSITIVE_ATTRIBUTE
    records_checked: int
    rows_checked: int
    homogeneous_failed_rows: int  # rows where every subscriber had a failed call (positive disclosure)


def pycanon_check(frame: "pd.DataFrame") -> IndependentCheck:
    """k and l of the microdata by pycanon (IFCA), independent of our Spark code."""
    from pycanon import anonymity

    if frame.empty:
        return IndependentCheck(None, None, 0, 0, 0)
    qi = list(QUASI_IDENTIFIERS)
    by_row = frame.groupby(qi, dropna=False)[SENSITIVE_ATTRIBUTE]
    return IndependentCheck(
        k=int(anonymity.k_anonymity(frame, qi)),
        l_diversity=int(anonymity.l_diversity(frame, qi, [SENSITIVE_ATTRIBUTE])),
        records_checked=len(frame),
        rows_checked=int(by_row.ngroups),
        homogeneous_failed_rows=int(by_row.all().sum()),
    )


# ----------------------------------------------------------------------------- run

@dataclass(frozen=True)
class AuditContext:
    settings: Settings
    audit_date: date
    targets: int | None = None  # default privacy_audit.targets
    known_calls: int | None = None  # default privacy_audit.known_calls
    run_id: str = field(default_factory=lambda: f"privacy_audit-{uuid.uuid4().hex[:12]}")
    dag_id: str | None = None
    dag_run_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "audit_date", date.fromordinal(self.audit_date.toordinal()))


@dataclass(frozen=True)
class TableAudit:
    """One audited table: one audit.privacy_audit row and one section of the report."""

    table_name: str
    method: str
    published: bool
    passed: bool
    targets: int
    known_calls: int
    unique_share: float | None = None
    near_unique_share: float | None = None
    max_prosecutor_risk: float | None = None
    mean_prosecutor_risk: float | None = None
    k_required: int | None = None
    k_min_ours: int | None = None
    k_min_independent: int | None = None
    l_diversity: int | None = None
    sensitive_attribute: str | None = None
    threshold: float | None = None
    detail: str = ""
    failures: tuple[str, ...] = ()  # why it failed, one sentence each


@dataclass(frozen=True)
class AuditReport:
    run_id: str
    audit_date: str
    passed: bool
    tables: list[dict[str, Any]]
    failures: list[str]
    report_path: str
    seconds: dict[str, float]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)


def audit_gold(known: "DataFrame", facts: "DataFrame", rows: "DataFrame", *, k: int, threshold: Decimal,
               near_unique_size: int, max_records: int, known_calls: int) -> TableAudit:
    """The aggregate-linkage attack and both k checks on gold.hourly_geo_usage rows of the audited date."""
    from pyspark.sql import functions as F

    summary = summarize_risk(aggregate_linkage(known, rows), near_unique_size=near_unique_size)
    ours_row = rows.agg(F.min("distinct_subscribers"), F.count("*")).first()
    assert ours_row is not None
    k_ours = None if ours_row[0] is None else int(ours_row[0])
    n_rows = int(ours_row[1])
    microdata = published_microdata(facts, rows)
    selected, total_records, total_rows = bounded_microdata(microdata, max_records=max_records)
    independent = pycanon_check(to_pycanon_frame(selected))

    failures = []
    risk = summary.max_prosecutor_risk
    if risk > Fraction(threshold):
        failures.append(
            f"gold.hourly_geo_usage: a target's prosecutor risk is {float(risk):.3f} (1 in {summary.smallest_group}), "
            f"above the threshold {threshold}; {summary.unique} of {summary.targets} targets singled out"
        )
    if k_ours is not None and k_ours < k:
        failures.append(f"gold.hourly_geo_usage: a published row covers only {k_ours} subscriber(s), k = {k} required")
    if independent.k is not None and independent.k < k:
        failures.append(f"gold.hourly_geo_usage: pycanon finds k = {independent.k} on the rebuilt microdata, k = {k} required")
    if n_rows and total_rows != n_rows:
        # rows silver no longer backs (silver changed after gold ran): pycanon cannot see them, ours still does
        mismatch = f" {n_rows - total_rows} published row(s) are not backed by silver any more (rerun gold)."
    else:
        mismatch = ""
    detail = (
        f"{summary.targets} targets, up to {summary.known_calls_max} known calls each, against {n_rows} published rows. "
        f"Smallest group consistent with a known call: {summary.smallest_group}. "
        f"Our k (smallest distinct_subscribers): {k_ours}; pycanon k on {independent.records_checked} of {total_records} "
        f"(subscriber, row) records in {independent.rows_checked} of {total_rows} rows: {independent.k}. "
        f"l-diversity of {SENSITIVE_ATTRIBUTE}: {independent.l_diversity} "
        f"({independent.homogeneous_failed_rows} row(s) where every subscriber had a failed call).{mismatch}"
    )
    return TableAudit(
        table_name=GOLD_HOURLY_GEO_USAGE.name, method=AGGREGATE_LINKAGE, published=True, passed=not failures,
        targets=summary.targets, known_calls=known_calls, unique_share=summary.share(summary.unique),
        near_unique_share=summary.share(summary.near_unique), max_prosecutor_risk=round(float(risk), 6),
        mean_prosecutor_risk=summary.mean_prosecutor_risk, k_required=k, k_min_ours=k_ours,
        k_min_independent=independent.k, l_diversity=independent.l_diversity, sensitive_attribute=SENSITIVE_ATTRIBUTE,
        threshold=float(threshold), detail=detail, failures=tuple(failures),
    )


def audit_silver(known: "DataFrame", facts: "DataFrame", *, threshold: Decimal, near_unique_size: int,
                 known_calls: int) -> TableAudit:
    """The record-linkage attack on silver.calls: reported, never failing (silver is not published)."""
    summary = summarize_risk(record_linkage(known, facts), near_unique_size=near_unique_size)
    detail = (
        f"{summary.unique} of {summary.targets} targets ({summary.share(summary.unique):.0%}) are the only pseudonym "
        f"matching all of up to {summary.known_calls_max} known calls (hour, H3 cell, network class); once matched, "
        "every other call of that pseudonym is theirs. This is why silver is never published: only k-anonymous or "
        "differentially private aggregates leave the lake."
    )
    return TableAudit(
        table_name=SILVER_CALLS.name, method=RECORD_LINKAGE, published=False, passed=True, targets=summary.targets,
        known_calls=known_calls, unique_share=summary.share(summary.unique),
        near_unique_share=summary.share(summary.near_unique),
        max_prosecutor_risk=round(float(summary.max_prosecutor_risk), 6),
        mean_prosecutor_risk=summary.mean_prosecutor_risk, threshold=float(threshold), detail=detail,
    )


def audit_dp(spark: "SparkSession", settings: Settings, day: date) -> TableAudit | None:
    """gold.public_usage_stats, if the registry declares it and it exists: epsilon spent on `day` per dataset.

    Fails only when the ledger shows a dataset spent more than its recorded cap for the day, or when rows
    were published for the day without any ledger entry. Returns None when there is no such table.
    """
    from pyspark.sql import functions as F

    from jobs.platform import lake

    spec = TABLES_BY_NAME.get(DP_TABLE)
    if spec is None or not lake.table_exists(spark, spec, settings):
        return None
    date_column = next((c for c in ("period", "call_date") if c in spec.column_names), None)
    if date_column is None:
        return None
    published_rows = lake.read_table(spark, spec, settings).where(F.col(date_column) == F.lit(day)).count()
    ledger_spec = TABLES_BY_NAME.get(DP_LEDGER)
    spent: dict[str, Fraction] = {}
    caps: dict[str, Fraction] = {}
    if ledger_spec is not None and lake.table_exists(spark, ledger_spec, settings) and {
        "dataset", "period", "epsilon"} <= set(ledger_spec.column_names):
        ledger = lake.read_table(spark, ledger_spec, settings).where(F.col("period") == F.lit(day))
        if "status" in ledger_spec.column_names:
            ledger = ledger.where(F.col("status") == "spent")
        cap_col = F.col("cap") if "cap" in ledger_spec.column_names else F.lit(None).cast("string")
        for r in ledger.select("dataset", "epsilon", cap_col.alias("cap")).collect():  # one row per release
            spent[r["dataset"]] = spent.get(r["dataset"], Fraction(0)) + Fraction(str(r["epsilon"]))
            if r["cap"]:
                caps[r["dataset"]] = Fraction(str(r["cap"]))
    failures = [f"{DP_TABLE}: dataset {d} spent epsilon {float(e):g} on {day}, above its cap {float(caps[d]):g}"
                for d, e in sorted(spent.items()) if d in caps and e > caps[d]]
    if published_rows and not spent:
        failures.append(f"{DP_TABLE}: {published_rows} rows published for {day} without a spent entry in {DP_LEDGER}")
    epsilons = ", ".join(f"{d} {_exact(e)}" for d, e in sorted(spent.items())) or "none recorded"
    detail = (
        f"{published_rows} rows for {day}. Epsilon spent per dataset (from {DP_LEDGER}): {epsilons}"
        + (f"; total {_exact(sum(spent.values(), Fraction(0)))}." if spent else ".")
        + " Differential privacy bounds what any one subscriber-day changes in the output, whatever the attacker "
        "knows; no linkage attack is simulated."
    )
    return TableAudit(table_name=DP_TABLE, method=DIFFERENTIAL_PRIVACY, published=True, passed=not failures,
                      targets=0, known_calls=0, detail=detail, failures=tuple(failures))


def _exact(value: Fraction) -> str:
    """"0.25" when the decimal terminates, else "1/3": epsilons are printed exactly, never as rounded floats."""
    rest = value.denominator
    for prime in (2, 5):
        while rest % prime == 0:
            rest //= prime
    if rest != 1:
        return f"{value.numerator}/{value.denominator}"
    text = format(Decimal(value.numerator) / Decimal(value.denominator), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def run(spark: "SparkSession", ctx: AuditContext) -> AuditReport:
    """Audit ctx.audit_date: attack gold and silver, check k twice, write audit.privacy_audit and the report."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from jobs.platform import lake, lineage

    settings = ctx.settings
    cfg = settings.privacy_audit
    n_targets = ctx.targets or cfg.targets
    n_known = ctx.known_calls or cfg.known_calls
    k = settings.privacy.k_anonymity
    started = datetime.now(timezone.utc)
    t0 = time.monotonic()
    seconds: dict[str, float] = {}
    for spec in (SILVER_CALLS, GOLD_HOURLY_GEO_USAGE):
        lake.ensure_table(spark, spec, settings)
    versions_in = {spec.name: lake.table_version(spark, spec, settings) for spec in (SILVER_CALLS, GOLD_HOURLY_GEO_USAGE)}
    day = F.lit(ctx.audit_date)
    calls = lake.read_table(spark, SILVER_CALLS, settings).where(F.col("call_date") == day)
    facts = usage_facts(calls, region_resolution=settings.privacy.h3_region_resolution).persist(StorageLevel.MEMORY_AND_DISK)
    rows = lake.read_table(spark, GOLD_HOURLY_GEO_USAGE, settings).where(F.col("call_date") == day).persist(StorageLevel.MEMORY_AND_DISK)
    targets = sample_targets(facts, targets=n_targets, seed=cfg.seed)
    # materialized once: both attacks read the same known calls (and the plan stays small)
    known = attacker_knowledge(facts, targets, known_calls=n_known, seed=cfg.seed).localCheckpoint()
    seconds["sample"] = round(time.monotonic() - t0, 2)

    t = time.monotonic()
    audits = [audit_gold(known, facts, rows, k=k, threshold=cfg.max_prosecutor_risk, near_unique_size=cfg.near_unique_size,
                         max_records=cfg.max_independent_records, known_calls=n_known)]
    seconds["gold"] = round(time.monotonic() - t, 2)
    t = time.monotonic()
    audits.append(audit_silver(known, facts, threshold=cfg.max_prosecutor_risk, near_unique_size=cfg.near_unique_size,
                               known_calls=n_known))
    seconds["silver"] = round(time.monotonic() - t, 2)
    t = time.monotonic()
    dp = audit_dp(spark, settings, ctx.audit_date)
    if dp is not None:
        audits.append(dp)
    seconds["dp"] = round(time.monotonic() - t, 2)
    facts.unpersist()
    rows.unpersist()

    audited_at = datetime.now(timezone.utc)
    before = lake.table_version(spark, AUDIT_PRIVACY_AUDIT, settings)
    lake.upsert(spark, spark.createDataFrame(
        [audit_row(a, run_id=ctx.run_id, audit_date=ctx.audit_date, audited_at=audited_at) for a in audits],
        AUDIT_PRIVACY_AUDIT.spark_schema(),
    ), AUDIT_PRIVACY_AUDIT, settings)
    after = lake.table_version(spark, AUDIT_PRIVACY_AUDIT, settings)
    failures = [f for a in audits for f in a.failures]
    report_path = Path(cfg.report_dir) / f"privacy-audit-{ctx.audit_date}.md"
    seconds["total"] = round(time.monotonic() - t0, 2)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(render_markdown(audits, run_id=ctx.run_id, audit_date=ctx.audit_date, settings=settings,
                                           known_calls=n_known, audited_at=audited_at, seconds=seconds))
    lineage.record_run(spark, settings, lineage.LineageRecord(
        run_id=ctx.run_id, job="privacy_audit", dag_id=ctx.dag_id, dag_run_id=ctx.dag_run_id, logical_date=ctx.audit_date,
        inputs=tuple(lineage.TableInput(table=n, version=v) for n, v in versions_in.items()),
        outputs=(lineage.TableOutput(table=AUDIT_PRIVACY_AUDIT.name, version_before=before, version_after=after),),
        metrics={"passed": not failures, "failures": failures,
                 "tables": {a.table_name: {"passed": a.passed, "unique_share": a.unique_share,
                                           "max_prosecutor_risk": a.max_prosecutor_risk} for a in audits}},
        rows_in=0, rows_out=len(audits), started_at=started, finished_at=datetime.now(timezone.utc),
    ))
    return AuditReport(
        run_id=ctx.run_id, audit_date=ctx.audit_date.isoformat(), passed=not failures,
        tables=[{k_: v for k_, v in asdict(a).items() if k_ != "failures"} for a in audits], failures=failures,
        report_path=str(report_path), seconds=seconds,
    )


def audit_row(audit: TableAudit, *, run_id: str, audit_date: date, audited_at: datetime) -> dict[str, Any]:
    """The audit.privacy_audit row of one table audit."""
    row = {c: getattr(audit, c, None) for c in AUDIT_PRIVACY_AUDIT.column_names}
    row.update(run_id=run_id, audit_date=audit_date, audited_at=audited_at)
    return row


# ----------------------------------------------------------------------------- report

EXPLANATIONS = {
    AGGREGATE_LINKAGE: (
        "An attacker who knows when (the hour), where (the H3 cell) and over which network and platform a target "
        "called looks for the published rows that could contain that call. Each row only says how many people it "
        "describes, so the best the attacker can do is guess one of the people of the smallest such row: the "
        "prosecutor risk is 1 / that number. We assume the attacker always finds the smallest row (an upper "
        "bound). A k-anonymous table keeps every risk at or below 1/k. The table fails when any target's risk is "
        "above the threshold, or when a row covers fewer than k subscribers by our count or by pycanon's."
    ),
    RECORD_LINKAGE: (
        "The same attacker holding the pseudonymous record-level table finds the pseudonyms whose calls match all "
        "known calls. A single match singles the target out and exposes every other call they made. Silver is "
        "never published; this measures why it must not be."
    ),
    DIFFERENTIAL_PRIVACY: (
        "Differentially private statistics add calibrated noise so that any one subscriber's day changes the "
        "output distribution by at most a factor e^epsilon, whatever else the attacker knows. The audit reports "
        "the epsilon spent from the budget ledger."
    ),
}


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "n/a"
    if pct:
        return f"{value:.1%}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_markdown(audits: Sequence[TableAudit], *, run_id: str, audit_date: date, settings: Settings,
                    known_calls: int, audited_at: datetime, seconds: dict[str, float]) -> str:
    """The auditors' report: a summary table, then per table the method, figures, verdict and explanation."""
    cfg = settings.privacy_audit
    failed = [a for a in audits if not a.passed]
    lines = [
        f"# Privacy audit for {audit_date}",
        "",
        f"Run `{run_id}` at {audited_at:%Y-%m-%d %H:%M:%S} UTC. Verdict: **{'FAIL' if failed else 'PASS'}**"
        + (f" ({', '.join(a.table_name for a in failed)})." if failed else ": no published table exceeds the risk threshold."),
        "",
        f"Attacker model: up to {known_calls} known call(s) per target "
        f"(hour, H3 cell at resolution {settings.privacy.h3_cell_resolution}, network class, platform); targets sampled "
        f"with seed {cfg.seed}. Threshold for published tables: prosecutor risk <= {cfg.max_prosecutor_risk}; "
        f"k-anonymity k = {settings.privacy.k_anonymity}; near-unique = smallest group of 2..{cfg.near_unique_size}.",
        "",
        "| table | method | published | targets | unique | near-unique | max risk | mean risk | k (ours) | k (pycanon) "
        "| l-diversity | threshold | result |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a in audits:
        lines.append(
            f"| {a.table_name} | {a.method} | {'yes' if a.published else 'no'} | {a.targets} | {_fmt(a.unique_share, True)} "
            f"| {_fmt(a.near_unique_share, True)} | {_fmt(a.max_prosecutor_risk)} | {_fmt(a.mean_prosecutor_risk)} "
            f"| {_fmt(a.k_min_ours)} | {_fmt(a.k_min_independent)} | {_fmt(a.l_diversity)} | {_fmt(a.threshold)} "
            f"| {('PASS' if a.passed else 'FAIL') if a.published else 'not published'} |"
        )
    for a in audits:
        lines += ["", f"## {a.table_name} ({a.method})", "", EXPLANATIONS[a.method], "", f"Findings: {a.detail}"]
        if a.method == AGGREGATE_LINKAGE:
            lines += ["", l_diversity_note]
        if a.failures:
            lines += ["", "Why it failed:"] + [f"- {f}" for f in a.failures]
    lines += ["", f"Timings (s): {', '.join(f'{k} {v}' for k, v in seconds.items())}.", ""]
    return "\n".join(lines)
