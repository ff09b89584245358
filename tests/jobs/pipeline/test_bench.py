"""jobs.pipeline.bench: targets, Spark event-log parsing, stage attribution, the report files and the RSS sampler.

No Spark and no pipeline run here (`make bench` is the benchmark itself); the sampler is exercised on real
processes: this one and a child that allocates memory and has a child of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs.pipeline.bench import (
    GIB,
    TARGETS,
    MemoryPeaks,
    RssSampler,
    SparkStageMetrics,
    StageTiming,
    Target,
    attribute_spark_stages,
    build_report,
    evaluate_targets,
    parse_event_log,
    read_event_logs,
    render_markdown,
    scaling_summary,
    write_report,
)

MIB = 1024 ** 2


def _stage_completed(stage_id: int, submitted: int, completed: int, *, remote: int = 0, local: int = 0,
                     written: int = 0, run_ms: int = 0, name: str = "stage") -> str:
    # The shape Spark 4.2 writes (checked against a real event log): some values are strings, some ints.
    return json.dumps({"Event": "SparkListenerStageCompleted", "Stage Info": {
        "Stage ID": stage_id, "Stage Attempt ID": 0, "Stage Name": name, "Number of Tasks": 2,
        "Submission Time": submitted, "Completion Time": completed,
        "Accumulables": [
            {"ID": 1, "Name": "duration", "Value": "515"},
            {"ID": 2, "Name": "internal.metrics.executorRunTime", "Value": run_ms},
            {"ID": 3, "Name": "internal.metrics.shuffle.read.remoteBytesRead", "Value": remote},
            {"ID": 4, "Name": "internal.metrics.shuffle.read.localBytesRead", "Value": str(local)},
            {"ID": 5, "Name": "internal.metrics.shuffle.write.bytesWritten", "Value": written},
        ]}})


def test_targets_pass_fail_and_scale_are_data() -> None:
    values = {"events_per_second_end_to_end": 60_000.0, "floor_ratio": 3.5, "driver_peak_rss_bytes": None}
    rows = {r["target"]: r for r in evaluate_targets(values, events=1_000_000)}
    assert rows["end_to_end_throughput"]["passed"] is True
    assert rows["pipeline_vs_io_floor"]["passed"] is False
    assert rows["driver_peak_memory"]["passed"] is None  # not measured is never a pass
    assert all(r["at_target_scale"] is False and r["target_events"] == 10_000_000 for r in rows.values())
    at_scale = evaluate_targets({"floor_ratio": 3}, events=10_000_000, targets=[Target("f", "floor_ratio", "<=", 3)])
    assert at_scale[0]["passed"] is True and at_scale[0]["at_target_scale"] is True
    assert [t.threshold for t in TARGETS] == [50_000, 3, 4 * GIB]
    with pytest.raises(ValueError, match="op must be"):
        Target("bad", "x", ">", 1)


def test_event_log_stages_and_their_shuffle_bytes(tmp_path: Path) -> None:
    lines = [
        json.dumps({"Event": "SparkListenerJobStart", "Job ID": 0}),
        _stage_completed(0, 1_000, 1_500, remote=10, local=5, written=7, run_ms=400, name="count at X"),
        _stage_completed(1, 2_000, 2_100, written=3),
        _stage_completed(2, 3_000, 3_100)[:-40],  # the log being written: a truncated last line
    ]
    stages = parse_event_log(lines)
    assert [(s.stage_id, s.shuffle_read_bytes, s.shuffle_write_bytes, s.executor_run_ms) for s in stages] == [
        (0, 15, 7, 400), (1, 0, 3, 0)]
    # Spark 4's rolling layout: eventlog_v2_<app>/events_<n>_<app>, read in index order (10 after 2).
    rolling = tmp_path / "eventlog_v2_app-1"
    rolling.mkdir()
    (rolling / "events_2_app-1").write_text(lines[2] + "\n")
    (rolling / "events_10_app-1").write_text(_stage_completed(9, 5_000, 5_001) + "\n")
    (rolling / "events_1_app-1").write_text(lines[1] + "\n")
    assert [s.stage_id for s in read_event_logs(tmp_path, "app-1")] == [0, 1, 9]
    with pytest.raises(FileNotFoundError, match="spark.eventLog.enabled"):
        read_event_logs(tmp_path, "app-2")


def _metrics(stage_id: int, submitted: int, *, read: int = 0, write: int = 0, run_ms: int = 100) -> SparkStageMetrics:
    return SparkStageMetrics(stage_id=stage_id, attempt=0, name=f"s{stage_id}", submitted_ms=submitted,
                             completed_ms=submitted + 50, shuffle_read_bytes=read, shuffle_write_bytes=write,
                             input_bytes=0, output_bytes=0, executor_run_ms=run_ms, tasks=1)


def test_report_attributes_spark_stages_by_window_and_computes_the_headline(tmp_path: Path) -> None:
    timings = [StageTiming("bronze", 1_000, 5_000, 4.0), StageTiming("silver", 5_001, 7_000, 2.0),
               StageTiming("anomalies", 7_001, 9_000, 2.0, landing_to_gold=False)]
    floor = StageTiming("io_floor", 9_001, 11_000, 2.0, landing_to_gold=False)
    spark_stages = [_metrics(0, 500, read=999), _metrics(1, 1_200, write=40), _metrics(2, 4_999, read=40, run_ms=900),
                    _metrics(3, 6_000, read=8, write=2), _metrics(4, 10_000, write=5)]
    assert [s.stage_id for s in attribute_spark_stages(timings, spark_stages)["bronze"]] == [1, 2]  # 0: before any stage

    memory = MemoryPeaks(driver_python=100 * MIB, driver_jvm=900 * MIB, driver_total=990 * MIB, samples=3)
    report = build_report(events=600_000, timings=timings, floor=floor, spark_stages=spark_stages, memory=memory, cores=2,
                          load_start=(1.0, 2.0, 3.0), load_end=(4.0, 5.0, 6.0), extra={"date": "2026-11-24"})
    bronze, silver, anomalies = report["per_stage"]
    assert (bronze["stage"], bronze["seconds"], bronze["events_per_second"]) == ("bronze", 4.0, 150_000.0)
    assert (bronze["shuffle_read_bytes"], bronze["shuffle_write_bytes"]) == (40, 40)
    assert bronze["slowest_spark_stages"][0]["stage_id"] == 2
    assert (silver["shuffle_read_bytes"], silver["shuffle_write_bytes"]) == (8, 2)
    assert report["io_floor"]["shuffle_write_bytes"] == 5
    assert report["landing_to_gold_seconds"] == 6.0 and report["events_per_second_end_to_end"] == 100_000.0
    assert report["floor_ratio"] == 3.0 and report["floor_ratio_all_stages"] == 4.0
    assert report["driver_peak_rss_bytes"] == 990 * MIB and report["cores"] == 2
    assert {t["target"]: t["passed"] for t in report["targets"]} == {
        "end_to_end_throughput": True, "pipeline_vs_io_floor": True, "driver_peak_memory": True}
    for key in ("events", "events_per_second_end_to_end", "floor_ratio", "driver_peak_rss_bytes", "per_stage", "cores"):
        assert key in report
    assert set(bronze) >= {"stage", "seconds", "events", "events_per_second", "shuffle_read_bytes", "shuffle_write_bytes"}

    paths = write_report(report, reports_dir=tmp_path / "reports", results_dir=tmp_path / "results")
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        "reports/bench-2026-11-24-600000.json", "reports/bench-2026-11-24-600000.md", "results/latest.json", "results/latest.md"]
    assert json.loads((tmp_path / "results" / "latest.json").read_text())["floor_ratio"] == 3.0
    md = render_markdown(report)
    assert "| bronze | 4.0 | 150,000.0 |" in md and "| anomalies (after gold) |" in md and "| I/O floor |" in md
    assert "| pipeline_vs_io_floor | 3.0 | <= 3 | True | False (600,000 of 10,000,000 events) |" in md


def test_scaling_is_linear_unless_cost_per_event_grows() -> None:
    def run(events: int, seconds: float) -> dict[str, object]:
        return {"events": events, "landing_to_gold_seconds": seconds, "events_per_second_end_to_end": events / seconds,
                "floor_ratio": 2.0, "driver_peak_rss_bytes": 1}

    linear = scaling_summary([run(3_000_000, 33.0), run(1_000_000, 10.0)])
    assert [p["events"] for p in linear["points"]] == [1_000_000, 3_000_000]
    assert linear["cost_per_event_growth"] == 1.1 and linear["linear"] is True
    assert scaling_summary([run(1_000_000, 10.0), run(3_000_000, 45.0)])["linear"] is False


CHILD = """
import subprocess, sys, time
block = b"x" * (64 * 1024 * 1024)   # written, so resident
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
print("ready", flush=True)
sys.stdin.readline()
grandchild.kill()
"""


def test_rss_sampler_sees_the_jvm_stand_in_its_children_and_this_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(0.2)  # the grandchild interpreter is up
        with RssSampler(jvm_pid=child.pid, interval=0.05) as sampler:
            ballast = b"y" * (48 * MIB)
            time.sleep(0.3)
        peaks = sampler.peaks
        assert peaks.samples >= 3
        assert peaks.driver_jvm >= 64 * MIB
        assert peaks.driver_python >= 48 * MIB
        assert peaks.driver_jvm + peaks.driver_python >= peaks.driver_total >= max(peaks.driver_jvm, peaks.driver_python)
        assert 0 < peaks.python_workers < 64 * MIB  # the grandchild: an idle interpreter, counted apart
        assert len(ballast) == 48 * MIB
    finally:
        child.stdin.write("\n")  # type: ignore[union-attr]
        child.stdin.flush()  # type: ignore[union-attr]
        child.wait(timeout=10)
