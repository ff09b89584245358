"""The local object store: a real S3Proxy server (filesystem backend) on 127.0.0.1.

S3Proxy is resolved from Maven Central once (infra/s3proxy/pom.xml) into build/s3proxy/lib
and runs as a separate Java process. Used by `make run` (start / stop with a pid file) and by
the test fixtures (`S3ProxyServer` as a context manager on a free port).

    python -m infra.objectstore start   # uses [object_store] from the settings
    python -m infra.objectstore stop
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lake_layout.config import PROJECT_ROOT, ObjectStoreSettings, load_settings

S3PROXY_POM = PROJECT_ROOT / "infra" / "s3proxy" / "pom.xml"
S3PROXY_LOGBACK = PROJECT_ROOT / "infra" / "s3proxy" / "logback.xml"
BUILD = PROJECT_ROOT / "build"
S3PROXY_LIB = BUILD / "s3proxy" / "lib"
MAVEN_REPO = BUILD / "m2"


class ObjectStoreError(RuntimeError):
    pass


def ensure_s3proxy_jars() -> Path:
    """Resolve S3Proxy and its dependencies with Maven into build/s3proxy/lib (once)."""
    marker = S3PROXY_LIB / ".resolved"
    if marker.exists():
        return S3PROXY_LIB
    if shutil.which("mvn") is None:
        raise ObjectStoreError("Maven (mvn) is needed once to resolve S3Proxy from Maven Central")
    S3PROXY_LIB.mkdir(parents=True, exist_ok=True)
    # Maven's output (and its console's escape codes) only matters when it fails: then it is in the error.
    result = subprocess.run(
        [
            "mvn", "-q", "-B", "-Dstyle.color=never", "-f", str(S3PROXY_POM), f"-Dmaven.repo.local={MAVEN_REPO}",
            "dependency:copy-dependencies", f"-DoutputDirectory={S3PROXY_LIB}",
        ],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise ObjectStoreError(f"Maven could not resolve S3Proxy (exit {result.returncode}):\n"
                               f"{(result.stdout + result.stderr)[-4000:]}")
    marker.write_text("org.gaul:s3proxy resolved\n")
    return S3PROXY_LIB


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ObjectStoreError(f"S3Proxy exited with {proc.returncode}; see {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise ObjectStoreError(f"S3Proxy did not listen on 127.0.0.1:{port} within {timeout:.0f}s; see {log}")


@dataclass
class S3ProxyServer:
    """One S3Proxy process. Use as a context manager, or start()/stop()."""

    settings: ObjectStoreSettings
    process: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return Path(self.settings.data_dir)

    def _properties(self) -> Path:
        blobs = self.data_dir / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        props = self.data_dir / "s3proxy.properties"
        props.write_text(
            "\n".join(
                [
                    f"s3proxy.endpoint=http://127.0.0.1:{self.settings.port}",
                    # Signature V4 (and V2) with a fixed local identity: boto3 and s3a both sign V4.
                    "s3proxy.authorization=aws-v2-or-v4",
                    f"s3proxy.identity={self.settings.access_key}",
                    f"s3proxy.credential={self.settings.secret_key}",
                    "jclouds.provider=filesystem",
                    f"jclouds.filesystem.basedir={blobs}",
                    "",
                ]
            )
        )
        return props

    def start(self) -> "S3ProxyServer":
        lib = ensure_s3proxy_jars()
        props = self._properties()
        log = self.data_dir / "s3proxy.log"
        java = shutil.which("java") or "java"
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [
                    java, "-Xmx512m", f"-Dlogback.configurationFile={S3PROXY_LOGBACK}",
                    "-cp", f"{lib}/*", "org.gaul.s3proxy.Main", "--properties", str(props),
                ],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        _wait_listening(self.settings.port, self.process, log)
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> "S3ProxyServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _pid_file(settings: ObjectStoreSettings) -> Path:
    return Path(settings.data_dir) / "s3proxy.pid"


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start_background(settings: ObjectStoreSettings) -> int:
    """Start a detached S3Proxy for `make run`; returns its pid (reuses a running one)."""
    pid_file = _pid_file(settings)
    if pid_file.exists() and _port_open(settings.port):
        return int(pid_file.read_text())
    if _port_open(settings.port):
        raise ObjectStoreError(f"127.0.0.1:{settings.port} is taken by another process; set VOIPLAKE_OBJECT_STORE_ENDPOINT")
    server = S3ProxyServer(settings).start()
    assert server.process is not None
    pid_file.write_text(str(server.process.pid))
    return server.process.pid


def stop_background(settings: ObjectStoreSettings) -> bool:
    pid_file = _pid_file(settings)
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text())
    pid_file.unlink()
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.objectstore", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop", "resolve"])
    args = parser.parse_args(argv)
    settings = load_settings().object_store
    if args.action == "resolve":
        print(ensure_s3proxy_jars())
    elif args.action == "start":
        pid = start_background(settings)
        print(f"object store: S3Proxy pid {pid} on {settings.endpoint} (data in {settings.data_dir})")
    else:
        stopped = stop_background(settings)
        print("object store: stopped" if stopped else "object store: was not running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
