"""`voiplake generate | ingest | demo | bench | summary | pipeline`: generated telemetry into the landing zone, the
daily pipeline (through Airflow, without it, or stage by stage in the benchmark) and what the lake holds for a day."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from jobs.cli.common import _date
from jobs.cli.dag_progress import TaskProgress, follow, quiet_fds
from jobs.generator.landing import generate_to_landing
from lake_layout.config import PROJECT_ROOT, Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from jobs.cli.common import Subparsers


# ----------------------------------------------------------------------------- summary

def day_summary(spark: "SparkSession", settings: Settings, day: date) -> dict[str, Any]:
    """What the lake holds for one upload date, read back from the manifest and quarantine tables."""
    from pyspark.sql import functions as F

    from jobs.platform import lake
    from lake_layout.tables import (
        ALL_TABLES,
        BRONZE_INGESTED_OBJECTS,
        BRONZE_QUARANTINE,
        GOLD_BILLING_USAGE,
        GOLD_HOURLY_GEO_USAGE,
        SILVER_CALLS,
    )

    manifest = lake.read_table(spark, BRONZE_INGESTED_OBJECTS, settings).where(F.col("upload_date") == F.lit(day))
    totals = manifest.agg(
        F.count("*").alias("objects"), F.sum("records_received").alias("received"),
        F.sum("records_accepted").alias("accepted"), F.sum("records_quarantined").alias("quarantined"),
    ).first()
    by_status = {r["status"]: r["count"] for r in manifest.groupBy("status").count().collect()}
    quarantine = lake.read_table(spark, BRONZE_QUARANTINE, settings).where(F.col("upload_date") == F.lit(day))
    by_reason = {r["reason"]: int(r["n"]) for r in quarantine.groupBy("reason").agg(F.sum("records").alias("n")).collect()}
    specs = [t for t in ALL_TABLES if lake.table_exists(spark, t, settings)]
    calls = lake.read_table(spark, SILVER_CALLS, settings).where(F.col("call_date") == F.lit(day)) if SILVER_CALLS in specs else None
    by_call_status = {r["status"]: int(r["count"]) for r in calls.groupBy("status").count().collect()} if calls is not None else {}
    gold_rows = lake.read_table(spark, GOLD_HOURLY_GEO_USAGE, settings).where(F.col("call_date") == F.lit(day)) if GOLD_HOURLY_GEO_USAGE in specs else None
    gold = gold_rows.agg(F.count("*").alias("rows"), F.sum("calls").alias("calls"), F.min("distinct_subscribers").alias("min_subs")).first() if gold_rows is not None else None
    by_level = {int(r["generalization_level"]): int(r["count"]) for r in gold_rows.groupBy("generalization_level").count().collect()} if gold_rows is not None else {}
    n_calls = sum(by_call_status.values())
    published = int(gold["calls"] or 0) if gold else 0
    billing: dict[str, Any] = {}
    if GOLD_BILLING_USAGE in specs:
        from jobs.business.billing_usage import calendar_of

        period = calendar_of(settings).period_of(datetime.combine(day, datetime.max.time(), tzinfo=timezone.utc))
        b = (lake.read_table(spark, GOLD_BILLING_USAGE, settings).where(F.col("invoice_period") == period)
             .agg(F.countDistinct("account_id").alias("accounts"), F.sum("calls").alias("calls"),
                  F.sum("billable_seconds").alias("billable"), F.sum("included_seconds").alias("included"),
                  F.sum("charge_minor").alias("charge"), F.max("currency").alias("currency")).first())
        billing = {"invoice_period": period, "accounts": int(b["accounts"]), "calls": int(b["calls"] or 0),
                   "billable_minutes": round((b["billable"] or 0) / 60, 1), "included_minutes": round((b["included"] or 0) / 60, 1),
                   "charge_minor": int(b["charge"] or 0), "currency": b["currency"]}
    return {
        "billing": billing,
        "silver_calls": n_calls,
        "silver_calls_by_status": dict(sorted(by_call_status.items())),
        "gold_rows": int(gold["rows"]) if gold else 0,
        "gold_rows_by_generalization_level": dict(sorted(by_level.items())),
        "gold_min_distinct_subscribers": int(gold["min_subs"]) if gold and gold["min_subs"] is not None else None,
        "k_anonymity": settings.privacy.k_anonymity,
        "gold_calls_published": published,
        "suppressed_share": round((n_calls - published) / n_calls, 4) if n_calls else None,
        "upload_date": day.isoformat(),
        "objects_received": int(totals["objects"] or 0),
        "objects_by_status": dict(sorted(by_status.items())),
        "events_received": int(totals["received"] or 0),
        "events_accepted": int(totals["accepted"] or 0),
        "events_quarantined": int(totals["quarantined"] or 0),
        "quarantined_by_reason": dict(sorted(by_reason.items(), key=lambda kv: -kv[1])),
        "tables": {s.name: {"location": s.location(settings), "delta_version": lake.table_version(spark, s, settings)} for s in specs},
    }


def print_summary(summary: dict[str, Any]) -> None:
    print(f"voiplake daily pipeline for upload date {summary['upload_date']}")
    print(f"  objects received     {summary['objects_received']:>10,}   {summary['objects_by_status']}")
    print(f"  events received      {summary['events_received']:>10,}")
    print(f"  events accepted      {summary['events_accepted']:>10,}")
    print(f"  events quarantined   {summary['events_quarantined']:>10,}")
    for reason, n in summary["quarantined_by_reason"].items():
        print(f"      {reason:<28}{n:>8,}")
    balanced = summary["events_received"] == summary["events_accepted"] + summary["events_quarantined"]
    print(f"  received = accepted + quarantined: {'yes' if balanced else 'NO'}")
    print(f"  silver.calls on call date {summary['upload_date']}: {summary['silver_calls']:,}  {summary['silver_calls_by_status']}")
    print(f"  gold.hourly_geo_usage rows: {summary['gold_rows']:,} (k = {summary['k_anonymity']}, smallest row "
          f"{summary['gold_min_distinct_subscribers']} subscribers; rows by generalization level {summary['gold_rows_by_generalization_level']})")
    share = summary["suppressed_share"]
    print(f"  calls suppressed by k-anonymity: {share:.2%}" if share is not None else "  calls suppressed: n/a")
    if summary.get("billing"):
        b = summary["billing"]
        print(f"  billing {b['invoice_period']} so far: {b['accounts']} B2B accounts, {b['calls']:,} billable calls, "
              f"{b['billable_minutes']:,} billable minutes ({b['included_minutes']:,} included), "
              f"charges {b['charge_minor'] / 100:,.2f} {b['currency']}  (voiplake extract billing --period {b['invoice_period']} --out F)")
    print("  tables:")
    for name, info in summary["tables"].items():
        print(f"      {name:<30} v{info['delta_version']}  {info['location']}")
    print('  query: voiplake query "SELECT geo_level, sum(calls) calls, count(*) rows FROM gold.hourly_geo_usage GROUP BY 1"')
    print("  lineage: voiplake lineage gold.hourly_geo_usage")


# ----------------------------------------------------------------------------- demo

def airflow_env(settings: Settings, airflow_home: Path | None = None) -> dict[str, str]:
    """The environment of an Airflow child process: its home and DAG folder, and every setting of `settings` as a
    VOIPLAKE_* override, so the DAG's tasks run with exactly this process's settings."""
    from lake_layout.config import settings_env

    env = dict(os.environ)
    env["AIRFLOW_HOME"] = str(airflow_home or os.environ.get("AIRFLOW_HOME") or PROJECT_ROOT / "build" / "airflow")
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(PROJECT_ROOT / "dags")
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    env.update(settings_env(settings))
    return env


def airflow_dags_test(settings: Settings, dag_id: str, day: date, *, log: Path, airflow_home: Path | None = None,
                      progress: IO[str] | None = None) -> list[TaskProgress]:
    """Run a DAG for one logical date in-process through Airflow (`airflow dags test`) on its SQLite DB, Airflow's
    output (task logs, Spark's and the JVM's) appended to `log`. With `progress`, each task is written there as it
    starts and ends (jobs.cli.dag_progress). Returns the run's tasks as Airflow recorded them."""
    airflow = str(Path(sys.executable).with_name("airflow"))
    env = airflow_env(settings, airflow_home)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    db = Path(env["AIRFLOW_HOME"]) / "airflow.db"
    with open(log, "a") as out:
        subprocess.run([airflow, "db", "migrate"], env=env, stdout=out, stderr=subprocess.STDOUT, check=True)
        process = subprocess.Popen([airflow, "dags", "test", dag_id, day.isoformat()], env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
        tasks = follow(process, db, dag_id, day, out=progress if progress is not None else io.StringIO())
    if process.returncode != 0 or not tasks or any(t.state != "success" for t in tasks):
        failed = ", ".join(f"{t.task_id} {t.state}" for t in tasks if t.state != "success")
        raise SystemExit(f"DAG {dag_id} for {day} did not succeed ({failed or f'exit {process.returncode}'}); "
                         f"Airflow's log: {log}")
    return tasks


DAILY_DAG = "voip_daily"


def demo(settings: Settings, day: date, *, events: int, seed: int, faults: bool, log: Path | None = None) -> dict[str, Any]:
    """`make run`: the object store, a generated day in the landing zone, the daily DAG through Airflow with one line
    per task as it starts and ends, then the summary. Everything the JVMs and Airflow print goes to one log file,
    named once at the start; the terminal shows only progress and results."""
    from infra.objectstore import S3ProxyServer, _port_open

    log = (log or PROJECT_ROOT / "build" / "logs" / f"demo-{day}.log").resolve()
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    print(f"voiplake demo: upload date {day}, {events:,} events, seed {seed}", flush=True)
    print(f"  log (Airflow, Spark, JVM): {log.relative_to(PROJECT_ROOT) if log.is_relative_to(PROJECT_ROOT) else log}", flush=True)
    started_here = None
    if not _port_open(settings.object_store.port):
        started_here = S3ProxyServer(settings.object_store).start()
        print(f"  object store: S3Proxy on {settings.object_store.endpoint}", flush=True)
    try:
        t0 = time.monotonic()
        gen = generate_to_landing(settings, day, events=events, seed=seed, faults=faults)
        print(f"  generated {gen['events']:,} events in {gen['objects']:,} objects "
              f"({gen['retried_objects']} retried uploads, faulty objects {gen['faulty_objects']}, "
              f"{gen['bad_records']} bad records) -> {gen['landing']} "
              f"[{gen['generate_seconds']}s generate, {gen['upload_seconds']}s upload]", flush=True)
        print(f"  Airflow DAG {DAILY_DAG} for {day}:", flush=True)
        t1 = time.monotonic()
        airflow_dags_test(settings, DAILY_DAG, day, log=log, progress=sys.stdout)
        dag_seconds = time.monotonic() - t1
        from jobs.platform.spark import build_spark

        with quiet_fds(log):  # the summary's JVM writes its warnings to the log for the rest of its life
            spark = build_spark(settings, app_name="voiplake summary")
        summary = day_summary(spark, settings, day)
        summary["dag_seconds"] = round(dag_seconds, 1)
        summary["total_seconds"] = round(time.monotonic() - t0, 1)
        print_summary(summary)
        print(f"  Airflow DAG {DAILY_DAG} took {summary['dag_seconds']}s; demo total {summary['total_seconds']}s")
        return summary
    finally:
        if started_here is not None:
            started_here.stop()


# ----------------------------------------------------------------------------- command line

def _generate_parser(sub: Subparsers) -> None:
    p = sub.add_parser("generate", help="generate one day of uploads into the landing zone")
    p.add_argument("--date", type=_date, required=True)
    p.add_argument("--events", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--faults", action="store_true", help="inject corrupt, truncated, tampered, wrong-schema objects and bad records")
    p.add_argument("--scenarios", action="store_true",
                   help="add labelled attack scenarios and the auth log (labels: build/scenarios/labels-<date>.json)")
    p.add_argument("--noncompliant", action="store_true",
                   help="add one client per breach of the SDK configuration (lake_layout/sdk_config.toml)")


def _ingest_parser(sub: Subparsers) -> None:
    p = sub.add_parser("ingest", help="run the bronze job for one upload date (without Airflow)")
    p.add_argument("--date", type=_date, required=True)


def _demo_parser(sub: Subparsers) -> None:
    p = sub.add_parser("demo", help="object store + generated day + the daily Airflow DAG + summary")
    p.add_argument("--date", type=_date, required=True)
    p.add_argument("--events", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--no-faults", action="store_true")
    p.add_argument("--log", type=Path, default=None, help="where Airflow's, Spark's and the JVM's output goes "
                   "(default build/logs/demo-<date>.log)")


def _bench_parser(sub: Subparsers) -> None:
    p = sub.add_parser("bench", help="the daily pipeline stage by stage vs the I/O floor on a fresh lake (jobs.pipeline.bench)")
    p.add_argument("--date", type=_date, required=True)
    p.add_argument("--events", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--scale", action="store_true", help="the scaling curve: one fresh run per size of --scale-sizes")
    p.add_argument("--scale-sizes", default="1000000,3000000", help="comma-separated event counts (add 10000000: optional, long)")


def _summary_parser(sub: Subparsers) -> None:
    p = sub.add_parser("summary", help="what the lake holds for one upload date")
    p.add_argument("--date", type=_date, required=True)


def _pipeline_parser(sub: Subparsers) -> None:
    p = sub.add_parser("pipeline", help="the daily DAG's data stages for one upload date without Airflow (e.g. on a Spark cluster)")
    p.add_argument("--date", type=_date, required=True)


PARSERS: dict[str, Callable[[Subparsers], None]] = {
    "generate": _generate_parser, "ingest": _ingest_parser, "demo": _demo_parser, "bench": _bench_parser,
    "summary": _summary_parser, "pipeline": _pipeline_parser}


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run `voiplake <args.command>`, one of PARSERS' commands; its exit status."""
    if args.command == "generate":
        summary = generate_to_landing(
            settings, args.date, events=args.events or settings.generator.events,
            seed=settings.generator.seed if args.seed is None else args.seed, faults=args.faults,
            scenarios=args.scenarios, noncompliant=args.noncompliant,
        )
        print(json.dumps(summary, indent=2))
        return 0
    if args.command == "demo":
        demo(settings, args.date, events=args.events or settings.generator.events,
             seed=settings.generator.seed if args.seed is None else args.seed, faults=not args.no_faults, log=args.log)
        return 0
    if args.command == "bench":
        from jobs.pipeline.bench import bench_command

        result = bench_command(settings, args.date, events=args.events or 1_000_000,
                               seed=settings.generator.seed if args.seed is None else args.seed, scale=args.scale,
                               scale_sizes=[int(n) for n in args.scale_sizes.split(",") if n.strip()])
        return 1 if result.get("failed_stage") else 0
    if args.command == "ingest":
        from jobs.pipeline.runner import run_bronze_ingest

        print(json.dumps(run_bronze_ingest(upload_date=args.date, settings=settings), indent=2, default=str))
        return 0
    if args.command == "pipeline":
        from jobs.pipeline.runner import run_pipeline

        print(json.dumps(run_pipeline(day=args.date, settings=settings), default=str))
        return 0
    if args.command == "summary":
        from jobs.platform.spark import build_spark

        spark = build_spark(settings, app_name=f"voiplake {args.command}")
        print_summary(day_summary(spark, settings, args.date))
        return 0
    raise AssertionError(f"not a demo command: {args.command}")
