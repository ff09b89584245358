"""A real Spark standalone cluster (one master, one worker) on 127.0.0.1 from the installed pyspark.

The jobs do not know the difference: `[spark] master` (or VOIPLAKE_SPARK_MASTER) set to the cluster's
`spark://127.0.0.1:PORT` makes `jobs/platform/spark.py` submit every job there; executors fetch Delta's and
hadoop-aws's jars from the driver (`spark.jars`) and run the venv's Python for Python work.

    python -m infra.spark_cluster up     # start master + worker in the foreground; Ctrl-C stops both

Used by tests/e2e/test_spark_cluster.py (as a context manager on free ports) to run the daily pipeline on a
cluster and compare it with the local run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from infra.objectstore import free_port
from lake_layout.config import PROJECT_ROOT


class ClusterError(RuntimeError):
    pass


def spark_home() -> Path:
    """The installed pyspark package is a complete Spark distribution (bin/spark-class, jars/)."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


@dataclass
class StandaloneCluster:
    """One standalone master and one worker; use as a context manager, or start()/stop()."""

    work_dir: Path = PROJECT_ROOT / "build" / "spark-cluster"
    worker_cores: int = 1
    worker_memory: str = "2g"
    master_port: int = field(default_factory=free_port)
    master_ui_port: int = field(default_factory=free_port)
    worker_ui_port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"spark://127.0.0.1:{self.master_port}"

    def _launch(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        home = spark_home()
        env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1",
               "SPARK_LOG_DIR": str(self.work_dir), "SPARK_WORKER_DIR": str(self.work_dir / "work"),
               "PYSPARK_PYTHON": sys.executable, "SPARK_NO_DAEMONIZE": "1"}
        if shutil.which("java") is None and "JAVA_HOME" not in env:
            raise ClusterError("Java is needed to run Spark")
        log = open(self.work_dir / f"{name}.log", "ab")
        proc = subprocess.Popen([str(home / "bin" / "spark-class"), *args], env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.processes.append(proc)
        return proc

    def state(self) -> dict[str, object]:
        """The master's JSON status page (workers, their state, cores, running applications)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.master_ui_port}/json/", timeout=2) as resp:
            return json.loads(resp.read())

    def alive_workers(self) -> int:
        try:
            return sum(1 for w in self.state().get("workers", []) if w.get("state") == "ALIVE")  # type: ignore[union-attr]
        except OSError:
            return 0

    def start(self, timeout: float = 90.0) -> "StandaloneCluster":
        self._launch("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                     "--port", str(self.master_port), "--webui-port", str(self.master_ui_port))
        self._launch("worker", "org.apache.spark.deploy.worker.Worker", self.url, "--host", "127.0.0.1",
                     "--cores", str(self.worker_cores), "--memory", self.worker_memory,
                     "--webui-port", str(self.worker_ui_port), "--work-dir", str(self.work_dir / "work"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.processes):
                self.stop()
                raise ClusterError(f"a Spark daemon exited; see {self.work_dir}/master.log and worker.log")
            if self.alive_workers() >= 1:
                return self
            time.sleep(0.5)
        self.stop()
        raise ClusterError(f"no worker registered with {self.url} within {timeout:.0f}s; see {self.work_dir}")

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.processes.clear()

    def __enter__(self) -> "StandaloneCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.spark_cluster", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up"])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--memory", default="4g")
    parser.add_argument("--port", type=int, default=7077)
    args = parser.parse_args(argv)
    cluster = StandaloneCluster(worker_cores=args.cores, worker_memory=args.memory, master_port=args.port).start()
    print(f"spark standalone cluster: {cluster.url} (master UI http://127.0.0.1:{cluster.master_ui_port}); "
          f"run jobs with VOIPLAKE_SPARK_MASTER={cluster.url}; Ctrl-C stops it")
    try:
        while all(p.poll() is None for p in cluster.processes):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
