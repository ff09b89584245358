"""A DAG run's progress on the terminal while it runs, and the JVM's chatter kept off it.

`airflow dags test` runs the tasks in one process whose output (Airflow's task logs, Spark's and the JVM's warnings)
goes to a log file. Meanwhile `follow` reads the run from Airflow's own metadata database (the `task_instance` and
`xcom` tables of the SQLite file under AIRFLOW_HOME) and prints one line when a task starts and one when it ends,
with its state, its duration and a one-line result drawn from the report the task returned (rows in, out,
quarantined). Nothing is parsed out of log text.

`quiet_fds` points the process's own stdout and stderr at the log while a JVM starts, so the driver that a
SparkSession launches writes its warnings there for the rest of its life while Python prints on the terminal again.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import IO, Any

FINISHED = frozenset({"success", "failed", "upstream_failed", "skipped", "removed"})
_MARK = {"success": "ok", "skipped": "--"}
_NEVER = datetime.max.replace(tzinfo=timezone.utc)  # tasks that ended without starting sort last

# Report fields that say how much a task read, wrote and set aside, in order of preference. Each report names its
# own (bronze counts records, silver events and calls, gold calls and rows), and the line shows those names.
_IN = ("records_received", "records_read", "bronze_events_read", "calls_read", "lines", "calls")
_OUT = ("records_accepted", "calls_written", "rated_calls", "rows", "cells_released", "events", "new_triggers",
        "findings", "records_written")
_ASIDE = ("records_quarantined", "events_quarantined", "records_rejected", "quarantined", "calls_suppressed",
          "noncompliant_devices")


@dataclass(frozen=True)
class TaskProgress:
    task_id: str
    state: str | None
    started: datetime | None
    ended: datetime | None
    result: Any  # what the task returned (its XCom), None until it ends

    @property
    def seconds(self) -> float | None:
        return (self.ended - self.started).total_seconds() if self.started and self.ended else None


def _when(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    at = datetime.fromisoformat(str(value).replace(" ", "T"))
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)  # Airflow keeps UTC


def _xcom_value(raw: Any) -> Any:
    value = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
    if isinstance(value, str):  # stored as the JSON text of the serialized value
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def read_run(db: Path, dag_id: str, logical_date: date) -> list[TaskProgress]:
    """The newest run of `dag_id` for `logical_date` in Airflow's metadata database: its tasks that started or
    finished, in start order. Empty while the run is not created yet."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as con:
        run = con.execute("SELECT run_id FROM dag_run WHERE dag_id = ? AND logical_date LIKE ? ORDER BY id DESC LIMIT 1",
                          (dag_id, f"{logical_date.isoformat()}%")).fetchone()
        if run is None:
            return []
        tasks = con.execute("SELECT task_id, state, start_date, end_date FROM task_instance "
                            "WHERE dag_id = ? AND run_id = ? AND map_index = -1", (dag_id, run[0])).fetchall()
        results = dict(con.execute("SELECT task_id, value FROM xcom WHERE dag_id = ? AND run_id = ? "
                                   "AND key = 'return_value' AND map_index = -1", (dag_id, run[0])).fetchall())
    progress = [TaskProgress(task_id, state, _when(start), _when(end),
                             _xcom_value(results[task_id]) if task_id in results else None)
                for task_id, state, start, end in tasks if start or state in FINISHED]
    return sorted(progress, key=lambda t: (t.started or _NEVER, t.task_id))


def _first(report: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, int | float] | None:
    return next(((k, report[k]) for k in keys
                 if isinstance(report.get(k), (int, float)) and not isinstance(report[k], bool)), None)


def one_line(result: Any) -> str:
    """What a task's report says it read, wrote and set aside, in the report's own words ("records received
    197,034, records accepted 194,426, records quarantined 2,608"), or a quality gate's verdict."""
    if isinstance(result, list):
        return f"returned {len(result)}: {', '.join(map(str, result[:3]))}{' ...' if len(result) > 3 else ''}"
    if not isinstance(result, dict):
        return "" if result is None else str(result)[:80]
    if "success" in result and "suite" in result:
        failed = result.get("failed") or []
        return f"{result.get('table')}: {result.get('expectations')} expectations, " + (
            "all met" if result["success"] else f"{len(failed)} failed")
    if isinstance(result.get("skipped"), str):
        return f"skipped: {result['skipped']}"
    found = [f for f in (_first(result, _IN), _first(result, _OUT), _first(result, _ASIDE)) if f is not None]
    return ", ".join(f"{key.replace('_', ' ')} {value:,}" for key, value in found)


def _line(task: TaskProgress) -> str:
    if task.state not in FINISHED:
        return f"  ..  {task.task_id:<28} started"
    seconds = f"{task.seconds:6.1f}s" if task.seconds is not None else "      -"
    return f"  {_MARK.get(task.state or '', '!!')}  {task.task_id:<28} {seconds}  {task.state:<8} {one_line(task.result)}".rstrip()


def follow(process: subprocess.Popen[Any], db: Path, dag_id: str, logical_date: date, *, out: IO[str] = sys.stdout,
           poll_seconds: float = 0.5) -> list[TaskProgress]:
    """Print each task of the run as it starts and ends until `process` exits; returns the run's tasks as last read.
    A read that finds the database busy (Airflow is writing) is retried at the next poll."""
    started: set[str] = set()
    ended: set[str] = set()
    tasks: list[TaskProgress] = []
    while True:
        finished = process.poll() is not None
        try:
            tasks = read_run(db, dag_id, logical_date) if db.exists() else []
        except sqlite3.OperationalError:
            pass  # locked by a writer, or not migrated yet: keep the last reading
        for task in tasks:
            if task.task_id not in started and task.state not in FINISHED:
                started.add(task.task_id)
                print(_line(task), file=out, flush=True)
            if task.task_id not in ended and task.state in FINISHED:
                started.add(task.task_id)
                ended.add(task.task_id)
                print(_line(task), file=out, flush=True)
        if finished:
            return tasks
        time.sleep(poll_seconds)


@contextmanager
def quiet_fds(log: Path) -> Iterator[None]:
    """File descriptors 1 and 2 point at `log` (appended) inside the block, then back at what they were. A child
    process started inside (a JVM) keeps writing to the log after the block."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "a") as target:
        os.dup2(target.fileno(), 1)
        os.dup2(target.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
