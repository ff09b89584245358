"""`make bench`: one generated day through the daily pipeline, stage by stage, against the I/O floor (issue 8).

A run (`run_bench`) generates a day of N events into a bench landing bucket on the object store (in a child
process, so the generator's memory is not counted as the driver's), then, on a fresh lake (build/bench-lake), runs
the daily DAG's data stages through the same `jobs.pipeline.runner` entry points the DAG tasks call, timing each, and finally
measures the I/O floor in the same Spark session: bronze's own landing reader (`jobs.ingest.bronze.read_landing`,
binaryFile over s3a) writing the objects unchanged to a Delta table. The floor runs last, on a warm JVM, so the
headline ratio (landing-to-gold time / floor time) is not flattered by the pipeline absorbing JIT warm-up.

Measured, never estimated:
* wall time per stage (monotonic clock around the runner call) and events/s = the day's events / that time;
* Spark shuffle read/write bytes per stage from Spark's event log (`SparkListenerStageCompleted` accumulables),
  each Spark stage attributed to the pipeline stage whose wall-time window contains its submission time;
* peak RSS of the driver: the Python process plus the JVM that pyspark started (sampled by `RssSampler` in a
  background thread with psutil), the peak of their sum and of each; pyspark's Python workers are reported apart;
* cores, and the 1-minute load average at start and end (other processes share the machine).

Targets are data (`TARGETS`, evaluated by `evaluate_targets`); the issue sets them at 10M events, so a run at
another size records its values and pass/fail with `at_target_scale: false`.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from lake_layout.config import PROJECT_ROOT, Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

GIB = 1024 ** 3
BENCH_LAKE = PROJECT_ROOT / "build" / "bench-lake"
BENCH_EVENT_LOGS = PROJECT_ROOT / "build" / "bench-eventlogs"
REPORTS_DIR = PROJECT_ROOT / "build" / "reports"
RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
# The bench's own landing bucket: the day it generates never mixes with `make run`'s uploads of the same date.
BENCH_LANDING_BUCKET = "voiplake-bench-landing"
SCALE_SIZES = (1_000_000, 3_000_000)  # `--scale`; add 10_000_000 with --scale-sizes (optional: ~10x the 1M run)
TARGET_EVENTS = 10_000_000


# ----------------------------------------------------------------------------- targets

@dataclass(frozen=True)
class Target:
    """A performance target of issue 8: `metric` of the report compared with `threshold` by `op` (>= or <=),
    set for a day of `at_events` events."""

    name: str
    metric: str
    op: str
    threshold: float
    at_events: int = TARGET_EVENTS

    def __post_init__(self) -> None:
        if self.op not in (">=", "<="):
            raise ValueError(f"target {self.name}: op must be '>=' or '<=', got {self.op!r}")


TARGETS = (
    Target("end_to_end_throughput", "events_per_second_end_to_end", ">=", 50_000),
    Target("pipeline_vs_io_floor", "floor_ratio", "<=", 3),
    Target("driver_peak_memory", "driver_peak_rss_bytes", "<=", 4 * GIB),
)


def evaluate_targets(values: Mapping[str, Any], *, events: int, targets: Sequence[Target] = TARGETS) -> list[dict[str, Any]]:
    """One row per target: the measured value, pass/fail, and whether the run was at the target's scale.

    A missing or None metric is `passed: None` (not measured), never a pass."""
    rows = []
    for t in targets:
        value = values.get(t.metric)
        passed = None if value is None else (value >= t.threshold if t.op == ">=" else value <= t.threshold)
        rows.append({"target": t.name, "metric": t.metric, "op": t.op, "threshold": t.threshold, "value": value,
                     "passed": passed, "target_events": t.at_events, "measured_events": events,
                     "at_target_scale": events >= t.at_events})
    return rows


# ----------------------------------------------------------------------------- memory

@dataclass
class MemoryPeaks:
    """Peak resident set sizes in bytes: the driver's Python process, its JVM, their sum (sampled at the same
    instant, so not the sum of the two peaks) and pyspark's Python workers (descendants of the JVM; their RSS is
    summed per process, so pages the forked workers share copy-on-write with pyspark's daemon count more than once)."""

    driver_python: int = 0
    driver_jvm: int = 0
    driver_total: int = 0
    python_workers: int = 0
    samples: int = 0
    load1_max: float = 0.0


def _rss(pid: int | None) -> tuple[int, list[int]]:
    """RSS of `pid` and the pids of its descendants (0, [] once it is gone)."""
    import psutil

    if pid is None:
        return 0, []
    try:
        proc = psutil.Process(pid)
        return proc.memory_info().rss, [c.pid for c in proc.children(recursive=True)]
    except psutil.Error:
        return 0, []


class RssSampler:
    """Samples the RSS of the driver Python process (`python_pid`) and the driver JVM (`jvm_pid`, or whatever
    `jvm_pid_fn` returns once it exists) every `interval` seconds in a daemon thread; `peaks` holds the maxima.

    Use as a context manager; one final sample is taken on exit, so even a run shorter than `interval` is sampled."""

    def __init__(self, *, python_pid: int | None = None, jvm_pid: int | None = None,
                 jvm_pid_fn: Callable[[], int | None] | None = None, interval: float = 0.2) -> None:
        self.python_pid = os.getpid() if python_pid is None else python_pid
        self._jvm_pid = jvm_pid
        self._jvm_pid_fn = jvm_pid_fn
        self.interval = interval
        self.peaks = MemoryPeaks()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def sample(self) -> None:
        import psutil

        if self._jvm_pid is None and self._jvm_pid_fn is not None:
            self._jvm_pid = self._jvm_pid_fn()
        python, _ = _rss(self.python_pid)
        jvm, workers = _rss(self._jvm_pid)
        worker_rss = 0
        for pid in workers:
            try:
                worker_rss += psutil.Process(pid).memory_info().rss
            except psutil.Error:
                pass
        p = self.peaks
        p.driver_python = max(p.driver_python, python)
        p.driver_jvm = max(p.driver_jvm, jvm)
        p.driver_total = max(p.driver_total, python + jvm)
        p.python_workers = max(p.python_workers, worker_rss)
        p.load1_max = max(p.load1_max, os.getloadavg()[0])
        p.samples += 1

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> "RssSampler":
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def driver_jvm_pid(spark: "SparkSession") -> int | None:
    """The pid of the JVM pyspark launched for `spark` (local mode: the driver, which also executes tasks).

    pyspark starts it through spark-submit's shell scripts, which exec java; the gateway's process is that java,
    or (if a shell stayed in between) its java descendant."""
    import psutil

    proc = getattr(spark.sparkContext._gateway, "proc", None)  # noqa: SLF001 (pyspark exposes no public handle)
    candidates = [proc.pid] if proc is not None else []
    candidates += [c.pid for c in psutil.Process().children(recursive=True)]
    for pid in candidates:
        try:
            p = psutil.Process(pid)
            if p.name().startswith("java") or (p.cmdline()[:1] and p.cmdline()[0].endswith("/java")):
                return pid
            java = [c for c in p.children(recursive=True) if c.name().startswith("java")]
            if java:
                return java[0].pid
        except psutil.Error:
            continue
    return None


# ----------------------------------------------------------------------------- Spark stage metrics (event log)

@dataclass(frozen=True)
class SparkStageMetrics:
    """One completed Spark stage attempt from the event log (times in epoch ms, sizes in bytes)."""

    stage_id: int
    attempt: int
    name: str
    submitted_ms: int
    completed_ms: int
    shuffle_read_bytes: int
    shuffle_write_bytes: int
    input_bytes: int
    output_bytes: int
    executor_run_ms: int
    tasks: int


_ACCUMULABLES = {
    "internal.metrics.shuffle.read.remoteBytesRead": "shuffle_read",
    "internal.metrics.shuffle.read.localBytesRead": "shuffle_read",
    "internal.metrics.shuffle.write.bytesWritten": "shuffle_write",
    "internal.metrics.input.bytesRead": "input",
    "internal.metrics.output.bytesWritten": "output",
    "internal.metrics.executorRunTime": "run_ms",
}


def parse_event_log(lines: Iterable[str]) -> list[SparkStageMetrics]:
    """Completed stages of a Spark event log (JSON lines); a truncated last line (log still being written) is
    skipped. Shuffle read = remote + local bytes read."""
    stages = []
    for line in lines:
        if '"SparkListenerStageCompleted"' not in line:
            continue
        try:
            info = json.loads(line)["Stage Info"]
        except (json.JSONDecodeError, KeyError):
            continue
        sums = {"shuffle_read": 0, "shuffle_write": 0, "input": 0, "output": 0, "run_ms": 0}
        for acc in info.get("Accumulables", []):
            key = _ACCUMULABLES.get(acc.get("Name", ""))
            if key is not None:
                sums[key] += int(acc.get("Value", 0))
        submitted = info.get("Submission Time")
        completed = info.get("Completion Time")
        if submitted is None or completed is None:
            continue
        stages.append(SparkStageMetrics(
            stage_id=int(info["Stage ID"]), attempt=int(info.get("Stage Attempt ID", 0)), name=str(info.get("Stage Name", "")),
            submitted_ms=int(submitted), completed_ms=int(completed), shuffle_read_bytes=sums["shuffle_read"],
            shuffle_write_bytes=sums["shuffle_write"], input_bytes=sums["input"], output_bytes=sums["output"],
            executor_run_ms=sums["run_ms"], tasks=int(info.get("Number of Tasks", 0)),
        ))
    return stages


def read_event_logs(directory: Path, app_id: str) -> list[SparkStageMetrics]:
    """Completed stages of application `app_id` from `directory`: Spark 4's rolling log (eventlog_v2_<app>/
    events_<n>_<app>, in order) or a single file (<app>, or <app>.inprogress while it runs)."""
    rolling = directory / f"eventlog_v2_{app_id}"
    if rolling.is_dir():
        paths = sorted(rolling.glob(f"events_*_{app_id}*"), key=lambda p: int(p.name.split("_")[1]))
    else:
        paths = [p for p in (directory / app_id, directory / f"{app_id}.inprogress") if p.exists()][:1]
    if not paths:
        raise FileNotFoundError(f"no Spark event log for {app_id} in {directory} (spark.eventLog.enabled must be set "
                                "before the SparkSession starts)")
    stages: list[SparkStageMetrics] = []
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            stages += parse_event_log(f)
    return stages


# ----------------------------------------------------------------------------- stages and report

@dataclass(frozen=True)
class StageTiming:
    """One pipeline stage's wall-time window (epoch ms) and seconds; `landing_to_gold` marks the stages the
    end-to-end throughput and the floor ratio count."""

    stage: str
    started_ms: int
    finished_ms: int
    seconds: float
    landing_to_gold: bool = True
    result: Mapping[str, Any] = field(default_factory=dict)


def attribute_spark_stages(timings: Sequence[StageTiming], spark_stages: Sequence[SparkStageMetrics]) -> dict[str, list[SparkStageMetrics]]:
    """Spark stages per pipeline stage: each goes to the stage whose [started, finished] window holds its
    submission time (stages run one after another in one session, so windows do not overlap); the rest are
    dropped (session start-up, generation)."""
    out: dict[str, list[SparkStageMetrics]] = {t.stage: [] for t in timings}
    for s in spark_stages:
        for t in timings:
            if t.started_ms <= s.submitted_ms <= t.finished_ms:
                out[t.stage].append(s)
                break
    return out


def _per_second(events: int, seconds: float) -> float | None:
    return round(events / seconds, 1) if seconds > 0 else None


def stage_row(timing: StageTiming, spark_stages: Sequence[SparkStageMetrics], *, events: int, top: int = 3) -> dict[str, Any]:
    """A `per_stage` entry: wall time, events/s, summed shuffle bytes, and the `top` Spark stages by executor time."""
    slowest = sorted(spark_stages, key=lambda s: s.executor_run_ms, reverse=True)[:top]
    return {
        "stage": timing.stage, "seconds": round(timing.seconds, 2), "events": events,
        "events_per_second": _per_second(events, timing.seconds), "landing_to_gold": timing.landing_to_gold,
        "shuffle_read_bytes": sum(s.shuffle_read_bytes for s in spark_stages),
        "shuffle_write_bytes": sum(s.shuffle_write_bytes for s in spark_stages),
        "input_bytes": sum(s.input_bytes for s in spark_stages),
        "spark_stages": len(spark_stages),
        "executor_run_seconds": round(sum(s.executor_run_ms for s in spark_stages) / 1000, 2),
        "slowest_spark_stages": [{"stage_id": s.stage_id, "name": s.name, "executor_run_seconds": round(s.executor_run_ms / 1000, 2),
                                  "wall_seconds": round((s.completed_ms - s.submitted_ms) / 1000, 2), "tasks": s.tasks}
                                 for s in slowest],
    }


def build_report(
    *, events: int, timings: Sequence[StageTiming], floor: StageTiming, spark_stages: Sequence[SparkStageMetrics],
    memory: MemoryPeaks, cores: int, load_start: Sequence[float], load_end: Sequence[float],
    extra: Mapping[str, Any] | None = None, targets: Sequence[Target] = TARGETS,
) -> dict[str, Any]:
    """The benchmark report (JSON-serializable). `events_per_second_end_to_end` and `floor_ratio` count the
    landing-to-gold stages (issue 8's definition); `*_all_stages` count every stage run."""
    attributed = attribute_spark_stages([*timings, floor], spark_stages)
    per_stage = [stage_row(t, attributed[t.stage], events=events) for t in timings]
    to_gold = sum(t.seconds for t in timings if t.landing_to_gold)
    everything = sum(t.seconds for t in timings)
    floor_row = stage_row(floor, attributed[floor.stage], events=events)
    report: dict[str, Any] = {
        "events": events,
        "landing_to_gold_seconds": round(to_gold, 2),
        "pipeline_seconds_all_stages": round(everything, 2),
        "events_per_second_end_to_end": _per_second(events, to_gold),
        "events_per_second_all_stages": _per_second(events, everything),
        "floor_seconds": round(floor.seconds, 2),
        "floor_ratio": round(to_gold / floor.seconds, 3) if floor.seconds > 0 else None,
        "floor_ratio_all_stages": round(everything / floor.seconds, 3) if floor.seconds > 0 else None,
        "driver_peak_rss_bytes": memory.driver_total,
        "driver_python_peak_rss_bytes": memory.driver_python,
        "driver_jvm_peak_rss_bytes": memory.driver_jvm,
        "python_workers_peak_rss_bytes": memory.python_workers,
        "rss_samples": memory.samples,
        "per_stage": per_stage,
        "io_floor": floor_row,
        "cores": cores,
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in load_end],
        "load1_max_during_run": round(memory.load1_max, 2),
        **(extra or {}),
    }
    report["targets"] = evaluate_targets(report, events=events, targets=targets)
    return report


def _bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("GiB", GIB), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report for people: headline, stages table, floor, memory, load, targets."""
    def n(x: Any) -> str:
        return "-" if x is None else f"{x:,}" if isinstance(x, int) else f"{x:,.1f}" if isinstance(x, float) else str(x)

    lines = [
        f"# voiplake benchmark: {report['events']:,} events ({report.get('date', '')})", "",
        f"- Landing to gold: **{report['landing_to_gold_seconds']} s**, **{n(report['events_per_second_end_to_end'])} events/s**; "
        f"all stages {report['pipeline_seconds_all_stages']} s ({n(report['events_per_second_all_stages'])} events/s)",
        f"- I/O floor (same landing objects read by bronze's reader, written unchanged to Delta): {report['floor_seconds']} s; "
        f"**ratio {report['floor_ratio']}x** (all stages: {report['floor_ratio_all_stages']}x)",
        f"- Driver peak RSS (Python + JVM, same instant): **{_bytes(report['driver_peak_rss_bytes'])}** "
        f"(Python {_bytes(report['driver_python_peak_rss_bytes'])}, JVM {_bytes(report['driver_jvm_peak_rss_bytes'])}; "
        f"pyspark workers {_bytes(report['python_workers_peak_rss_bytes'])})",
        f"- Machine: {report['cores']} cores; load average (1/5/15 min) at start {report['load_average_start']}, "
        f"at end {report['load_average_end']}, 1-min max during the run {report['load1_max_during_run']} "
        "(shared machine: other processes ran too)", "",
        "| stage | seconds | events/s | shuffle read | shuffle write | Spark stages | slowest Spark stage |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in [*report["per_stage"], {**report["io_floor"], "stage": "I/O floor", "landing_to_gold": True}]:
        slow = row["slowest_spark_stages"][0] if row["slowest_spark_stages"] else None
        slow_text = f"{slow['name'][:60]} ({slow['executor_run_seconds']} s)" if slow else "-"
        lines.append(f"| {row['stage']}{'' if row.get('landing_to_gold', True) else ' (after gold)'} | {row['seconds']} | "
                     f"{n(row['events_per_second'])} | {_bytes(row['shuffle_read_bytes'])} | {_bytes(row['shuffle_write_bytes'])} | "
                     f"{row['spark_stages']} | {slow_text} |")
    lines += ["", "| target | value | threshold | passed | at target scale |", "|---|---:|---:|---|---|"]
    for t in report["targets"]:
        lines.append(f"| {t['target']} | {n(t['value'])} | {t['op']} {n(t['threshold'])} | {t['passed']} | "
                     f"{t['at_target_scale']} ({t['measured_events']:,} of {t['target_events']:,} events) |")
    return "\n".join(lines) + "\n"


def write_report(report: Mapping[str, Any], *, reports_dir: Path = REPORTS_DIR, results_dir: Path = RESULTS_DIR) -> list[Path]:
    """build/reports/bench-<date>-<events>.{json,md} and bench/results/latest.{json,md}; returns the paths."""
    text, md = json.dumps(report, indent=2, default=str) + "\n", render_markdown(report)
    reports_dir.mkdir(parents=True, exist_ok=True)
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = f"bench-{report.get('date', 'undated')}-{report['events']}"
    paths = [reports_dir / f"{stem}.json", reports_dir / f"{stem}.md", results_dir / "latest.json", results_dir / "latest.md"]
    for path in paths:
        path.write_text(text if path.suffix == ".json" else md)
    return paths


def scaling_summary(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The scaling curve: seconds per million events at each size; `linear` when the largest size costs at most
    25% more per event than the smallest (noise on a shared machine) -- cost growing linearly, not worse."""
    points = sorted(({"events": r["events"], "landing_to_gold_seconds": r["landing_to_gold_seconds"],
                      "seconds_per_million_events": round(r["landing_to_gold_seconds"] / r["events"] * 1e6, 2),
                      "events_per_second_end_to_end": r["events_per_second_end_to_end"], "floor_ratio": r["floor_ratio"],
                      "driver_peak_rss_bytes": r["driver_peak_rss_bytes"]} for r in runs), key=lambda p: p["events"])
    growth = (points[-1]["seconds_per_million_events"] / points[0]["seconds_per_million_events"]
              if len(points) > 1 and points[0]["seconds_per_million_events"] > 0 else None)
    return {"points": points, "cost_per_event_growth": None if growth is None else round(growth, 3),
            "linear": None if growth is None else growth <= 1.25}


# ----------------------------------------------------------------------------- the run

@dataclass(frozen=True)
class PipelineStage:
    """A stage of the daily DAG as the benchmark runs it: a `jobs.pipeline.runner` entry point (the DAG task's call)."""

    name: str
    landing_to_gold: bool
    run: Callable[[Settings, date, dict[str, Any]], dict[str, Any]]


def pipeline_stages() -> tuple[PipelineStage, ...]:
    """The daily DAG's data stages in its order (quality gates aside): runner.run_pipeline's directory, bronze
    (landing decode + bronze writes), silver, gold, billing, plus the DP public statistics, telemetry compliance and
    anomaly detection (with the auth-log ingest it reads)."""
    from jobs.pipeline import runner

    def dates(state: dict[str, Any]) -> list[Any]:
        return list(state["silver"]["call_dates"])

    return (
        PipelineStage("directory", True, lambda s, d, st: runner.run_reference_ingest(export_date=d, settings=s)),
        PipelineStage("bronze", True, lambda s, d, st: runner.run_bronze_ingest(upload_date=d, settings=s)),
        PipelineStage("silver", True, lambda s, d, st: runner.run_silver_calls(upload_date=d, settings=s)),
        PipelineStage("gold_hourly_geo", True,
                      lambda s, d, st: runner.run_gold_hourly_geo(call_dates=dates(st), logical_date=d, settings=s)),
        PipelineStage("public_usage_stats_dp", False,
                      lambda s, d, st: runner.run_public_usage_stats(call_dates=dates(st), logical_date=d, settings=s)),
        PipelineStage("billing_usage", False,
                      lambda s, d, st: runner.run_billing_usage(call_dates=dates(st), logical_date=d, settings=s)),
        PipelineStage("telemetry_compliance", False,
                      lambda s, d, st: runner.run_telemetry_compliance(upload_date=d, settings=s)),
        PipelineStage("auth_ingest", False, lambda s, d, st: runner.run_auth_ingest(login_date=d, settings=s)),
        PipelineStage("anomalies", False, lambda s, d, st: runner.run_detect_anomalies(detection_date=d, settings=s)),
    )


def bench_settings(settings: Settings, lake: Path = BENCH_LAKE) -> Settings:
    """`settings` pointed at the bench lake and bench landing bucket; files jobs write beside tables (SIEM alerts,
    OpenLineage events) go under the bench lake too, so a benchmark leaves `make run`'s outputs alone."""
    s = settings.with_lake_root(str(lake))
    return replace(s, landing=replace(s.landing, bucket=BENCH_LANDING_BUCKET),
                   anomalies=replace(s.anomalies, siem_dir=str(lake / "_siem")),
                   lineage=replace(s.lineage, openlineage_file=str(lake / "_openlineage" / "events.jsonl")))


def enable_event_log(directory: Path = BENCH_EVENT_LOGS) -> None:
    """Have the next SparkSession of this process write Spark's event log to `directory` (uncompressed JSON).

    jobs.platform.spark.build_spark does not set these keys, so spark-submit's --conf reaches the session."""
    directory.mkdir(parents=True, exist_ok=True)
    os.environ["PYSPARK_SUBMIT_ARGS"] = (f"--conf spark.eventLog.enabled=true --conf spark.eventLog.dir=file://{directory} "
                                         "--conf spark.eventLog.compress=false pyspark-shell")


def _empty_bucket(settings: Settings) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from jobs.platform.objectstore import ensure_bucket, list_keys, s3_client

    client = s3_client(settings.object_store)
    ensure_bucket(client, settings.landing.bucket)
    keys = [k for k, _ in list_keys(client, settings.landing.bucket, "")]
    # One DELETE per key: S3Proxy rejects boto3's batch DeleteObjects (its checksum header is "NotImplemented").
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda k: client.delete_object(Bucket=settings.landing.bucket, Key=k), keys))


def _generate(settings: Settings, day: date, events: int, seed: int) -> dict[str, Any]:
    from jobs.generator.landing import generate_to_landing

    return generate_to_landing(settings, day, events=events, seed=seed, faults=True)


def _timed(name: str, landing_to_gold: bool, fn: Callable[[], dict[str, Any]]) -> StageTiming:
    started = time.time()
    t0 = time.monotonic()
    result = fn()
    seconds = time.monotonic() - t0
    return StageTiming(stage=name, started_ms=int(started * 1000), finished_ms=int((started + seconds) * 1000) + 1,
                       seconds=seconds, landing_to_gold=landing_to_gold, result=result)


def io_floor(spark: "SparkSession", settings: Settings, day: date) -> dict[str, Any]:
    """Bronze's landing reader (binaryFile over s3a) writing the day's objects unchanged to a Delta table under
    the bench lake: the least any landing-to-Delta pipeline must do."""
    from jobs.ingest.bronze import read_landing

    path = f"{settings.lake.root}/_bench/io_floor"
    read_landing(spark, settings, day).write.format("delta").mode("overwrite").save(path)
    return {"table": path}


def run_bench(settings: Settings, day: date, *, events: int, seed: int, lake: Path = BENCH_LAKE,
              write: bool = True) -> dict[str, Any]:
    """One benchmark run (see the module docstring); writes the reports when `write` and returns the report."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from jobs.platform.spark import build_spark

    load_start = os.getloadavg()
    run_started = datetime.now(timezone.utc)
    shutil.rmtree(lake, ignore_errors=True)
    s = bench_settings(settings, lake)
    _empty_bucket(s)
    # In a child process: the generator holds the whole day in memory, which is not the driver's footprint.
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        gen = pool.submit(_generate, s, day, events, seed).result()

    t0 = time.monotonic()
    spark = build_spark(s, app_name="voiplake bench")
    spark_start = time.monotonic() - t0
    app_id = spark.sparkContext.applicationId
    event_log_dir = Path(spark.sparkContext.getConf().get("spark.eventLog.dir", "").removeprefix("file:"))
    timings: list[StageTiming] = []
    state: dict[str, Any] = {}
    failed: dict[str, str] | None = None
    with RssSampler(jvm_pid_fn=lambda: driver_jvm_pid(spark)) as sampler:
        for stage in pipeline_stages():
            try:
                timing = _timed(stage.name, stage.landing_to_gold, lambda: stage.run(s, day, state))
            except Exception as exc:  # a failed stage is reported (the report says which), later stages are skipped
                failed = {"stage": stage.name, "error": f"{type(exc).__name__}: {exc}"[:2000]}
                print(f"bench: {stage.name} FAILED: {failed['error']}", flush=True)
                break
            state[stage.name] = timing.result
            timings.append(timing)
            print(f"bench: {stage.name} {timing.seconds:.1f}s", flush=True)
        floor = _timed("io_floor", False, lambda: io_floor(spark, s, day))
        print(f"bench: I/O floor {floor.seconds:.1f}s", flush=True)
    time.sleep(1.0)  # the event log is flushed at each stage's completion; let the last one land
    try:
        spark_stages = read_event_logs(event_log_dir, app_id)
    except FileNotFoundError as exc:  # shuffle bytes then read 0 and the report says why
        print(f"bench: {exc}", flush=True)
        spark_stages = []
    bronze = state.get("bronze", {})
    report = build_report(
        events=int(gen["events"]), timings=timings, floor=floor, spark_stages=spark_stages, memory=sampler.peaks,
        cores=os.cpu_count() or 0, load_start=load_start, load_end=os.getloadavg(),
        extra={
            "date": day.isoformat(), "seed": seed, "events_requested": events, "started_at": run_started.isoformat(),
            "objects": gen["objects"], "generate_seconds": gen["generate_seconds"], "upload_seconds": gen["upload_seconds"],
            "spark_start_seconds": round(spark_start, 2), "spark_master": spark.sparkContext.master,
            "spark_version": spark.version, "spark_driver_memory": s.spark.driver_memory,
            "shuffle_partitions": s.spark.shuffle_partitions,
            "adaptive_initial_partitions": s.spark.adaptive_initial_partitions, "spark_app_id": app_id,
            "spark_stage_metrics_source": f"Spark event log {event_log_dir}/eventlog_v2_{app_id}" if spark_stages else None,
            "bronze_records": {k: bronze.get(k) for k in ("records_received", "records_accepted", "records_quarantined",
                                                          "objects_listed", "objects_new")},
            "silver_call_dates": [str(d) for d in state.get("silver", {}).get("call_dates", [])],
            "failed_stage": failed,
            "lake": str(lake), "landing": f"s3://{s.landing.bucket}/{s.landing.prefix}/",
        },
    )
    if write:
        for path in write_report(report):
            print(f"bench: wrote {path}", flush=True)
    return report


def bench_command(settings: Settings, day: date, *, events: int, seed: int, scale: bool = False,
                  scale_sizes: Sequence[int] = SCALE_SIZES) -> dict[str, Any]:
    """`voiplake bench`: starts the object store if nothing listens on its port, one run of `events` (or the
    scaling curve over `scale_sizes`, each on a fresh lake), reports written; prints the headline JSON."""
    from infra.objectstore import S3ProxyServer, _port_open

    enable_event_log()
    started_here = None if _port_open(settings.object_store.port) else S3ProxyServer(settings.object_store).start()
    try:
        if not scale:
            report = run_bench(settings, day, events=events, seed=seed)
            result: dict[str, Any] = {k: report[k] for k in ("events", "events_per_second_end_to_end", "floor_ratio",
                                                             "driver_peak_rss_bytes", "cores", "targets", "failed_stage")}
        else:
            runs = [run_bench(settings, day, events=n, seed=seed) for n in sorted(scale_sizes)]
            result = {"date": day.isoformat(), **scaling_summary(runs),
                      "failed_stage": next((r["failed_stage"] for r in runs if r["failed_stage"]), None)}
            REPORTS_DIR.mkdir(parents=True, exist_ok=True)
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            for path in (REPORTS_DIR / f"bench-scaling-{day}.json", RESULTS_DIR / "scaling.json"):
                path.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        if started_here is not None:
            started_here.stop()
    print(json.dumps(result, indent=2, default=str))
    return result
