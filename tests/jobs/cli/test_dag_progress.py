"""jobs.cli.dag_progress: a DAG run read from Airflow's metadata tables, the one-line results, and the JVM's output
kept off the terminal. The real Airflow database is exercised end to end (tests/e2e/test_daily_dag.py)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from jobs.cli.dag_progress import follow, one_line, quiet_fds, read_run

DAY = date(2026, 11, 24)
RUN = "manual__2026-11-24T00:00:00+00:00"


def _metadata(db: Path) -> sqlite3.Connection:
    """The columns of Airflow 3's dag_run, task_instance and xcom tables that the reader uses."""
    con = sqlite3.connect(db)
    con.executescript("""
        CREATE TABLE dag_run (id INTEGER PRIMARY KEY, dag_id TEXT, run_id TEXT, logical_date TIMESTAMP);
        CREATE TABLE task_instance (task_id TEXT, dag_id TEXT, run_id TEXT, map_index INTEGER, state TEXT,
                                    start_date TIMESTAMP, end_date TIMESTAMP);
        CREATE TABLE xcom (dag_run_id INTEGER, task_id TEXT, map_index INTEGER, key TEXT, dag_id TEXT, run_id TEXT,
                           value JSON);
    """)
    con.execute("INSERT INTO dag_run VALUES (1, 'voip_daily', 'older', '2026-11-23 00:00:00.000000')")
    con.execute("INSERT INTO dag_run VALUES (2, 'voip_daily', ?, '2026-11-24 00:00:00.000000')", (RUN,))
    return con


def _task(con: sqlite3.Connection, task_id: str, state: str | None, start: str | None, end: str | None,
          result: object = None) -> None:
    con.execute("INSERT INTO task_instance VALUES (?, 'voip_daily', ?, -1, ?, ?, ?)", (task_id, RUN, state, start, end))
    if result is not None:  # Airflow stores the JSON text of the serialized value in a JSON column
        con.execute("INSERT INTO xcom VALUES (2, ?, -1, 'return_value', 'voip_daily', ?, ?)",
                    (task_id, RUN, json.dumps(json.dumps(result))))
    con.commit()


def test_read_run_orders_tasks_by_start_and_decodes_their_results(tmp_path: Path) -> None:
    con = _metadata(tmp_path / "airflow.db")
    _task(con, "build_silver", "running", "2026-11-24 10:02:00.000000+00:00", None)
    _task(con, "ingest_landing", "success", "2026-11-24 10:00:00.000000+00:00", "2026-11-24 10:01:30.500000+00:00",
          {"records_received": 10, "records_accepted": 9, "records_quarantined": 1, "seconds": 90.5})
    _task(con, "check_gold", None, None, None)  # not started: not shown
    _task(con, "check_silver", "upstream_failed", None, None)  # finished without starting: shown

    tasks = read_run(tmp_path / "airflow.db", "voip_daily", DAY)
    assert [t.task_id for t in tasks] == ["ingest_landing", "build_silver", "check_silver"]
    landing = tasks[0]
    assert landing.seconds == 90.5 and landing.result["records_quarantined"] == 1
    assert tasks[1].result is None and tasks[1].seconds is None
    assert read_run(tmp_path / "airflow.db", "voip_daily", date(2026, 11, 25)) == []


def test_one_line_uses_the_reports_own_words() -> None:
    assert one_line({"records_received": 197_034, "records_accepted": 194_426, "records_quarantined": 2_608,
                     "seconds": 92.8, "objects_new": 5_417}) == \
        "records received 197,034, records accepted 194,426, records quarantined 2,608"
    assert one_line({"bronze_events_read": 5, "calls_written": 2, "events_quarantined": 0, "unique_events": 5}) == \
        "bronze events read 5, calls written 2, events quarantined 0"
    gate = {"table": "silver.calls", "suite": "silver.calls", "success": False, "expectations": 8, "failed": ["a", "b"]}
    assert one_line(gate) == "silver.calls: 8 expectations, 2 failed"
    assert one_line({"table": "gold.x", "skipped": "nothing written this run"}) == "skipped: nothing written this run"
    assert one_line(["2026-11-23", "2026-11-24"]) == "returned 2: 2026-11-23, 2026-11-24"
    assert one_line({"ok": True}) == "" and one_line(None) == ""


def test_follow_prints_each_task_once_when_it_starts_and_when_it_ends(tmp_path: Path) -> None:
    import io

    db = tmp_path / "airflow.db"
    con = _metadata(db)
    _task(con, "ingest_landing", "running", "2026-11-24 10:00:00+00:00", None)
    # the process ends after the task does: the final reading (after the exit) must show the end
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    out = io.StringIO()

    import threading

    def finish() -> None:
        import time

        time.sleep(0.7)
        writer = sqlite3.connect(db)
        writer.execute("UPDATE task_instance SET state = 'success', end_date = '2026-11-24 10:00:42+00:00'")
        writer.execute("INSERT INTO xcom VALUES (2, 'ingest_landing', -1, 'return_value', 'voip_daily', ?, ?)",
                       (RUN, json.dumps({"records_received": 3, "records_accepted": 3, "records_quarantined": 0})))
        writer.commit()

    threading.Thread(target=finish).start()
    tasks = follow(process, db, "voip_daily", DAY, out=out, poll_seconds=0.1)
    lines = out.getvalue().splitlines()
    assert lines == [
        "  ..  ingest_landing               started",
        "  ok  ingest_landing                 42.0s  success  records received 3, records accepted 3, records quarantined 0",
    ]
    assert [t.state for t in tasks] == ["success"]


def test_quiet_fds_sends_a_child_process_output_to_the_log(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "logs" / "run.log"
    with quiet_fds(log):
        child = subprocess.Popen([sys.executable, "-c",
                                  "import sys, time; print('WARN NativeCodeLoader'); time.sleep(0.5); "
                                  "print('WARN later', file=sys.stderr)"])
    print("on the terminal")
    child.wait()  # the child keeps the log as its stdout and stderr after the block
    captured = capfd.readouterr()
    assert "WARN" not in captured.out + captured.err and "on the terminal" in captured.out
    assert log.read_text().splitlines() == ["WARN NativeCodeLoader", "WARN later"]
