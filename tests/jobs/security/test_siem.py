"""SIEM export: CEF and JSON lines files per run, syslog over real UDP and TCP sockets on loopback."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import pytest

from jobs.security.siem import cef_line, export_alerts
from lake_layout.config import load_settings

ALERT = {
    "anomaly_id": "a" * 64, "detection_date": date(2026, 11, 24), "detector": "attempt_spike",
    "rule": "robust_z_hour_of_week", "severity": "critical", "score": 42.5, "threshold": 8.0,
    "account_id": "acct-0001", "subscriber_pseudonym": "s" * 32, "device_pseudonym": "d" * 32,
    "window_start": datetime(2026, 11, 24, 3), "window_end": datetime(2026, 11, 24, 4),
    "evidence": json.dumps({"destination_class": "premium", "note": "a=b|c\\d"}), "run_id": "anomalies:2026-11-24:x",
    "detected_at": datetime(2026, 11, 25, 1, 2, 3),
}


def _config(tmp_path: Path, **over: object):  # type: ignore[no-untyped-def]
    return replace(load_settings(env={}).anomalies, siem_dir=str(tmp_path / "siem"), **over)


def test_cef_line_escapes_and_carries_the_finding() -> None:
    line = cef_line(ALERT)
    assert line.startswith("CEF:0|voiplake|voiplake-anomalies|1.0|attempt_spike/robust_z_hour_of_week|"
                           "attempt_spike robust_z_hour_of_week|10|")
    ext = line.split("|", 7)[7]
    assert "\n" not in line
    assert "externalId=" + "a" * 64 in ext and "cs2=" + "d" * 32 in ext and "cn1=42.5" in ext
    assert "start=1795489200000" in ext  # 2026-11-24T03:00Z in epoch ms
    # In extension values \\ and = are escaped, | needs no escape; the evidence JSON survives the round trip.
    assert ext.endswith("msg=" + str(ALERT["evidence"]).replace("\\", "\\\\").replace("=", "\\="))
    assert "a\\=b|c" in ext
    assert cef_line({**ALERT, "rule": "x|y"}).split("|")[4:6] == ["attempt_spike/x\\", "y"]  # header pipes escaped


def test_export_writes_one_cef_and_one_jsonl_file_per_run(tmp_path: Path) -> None:
    config = _config(tmp_path)
    export = export_alerts([ALERT, {**ALERT, "anomaly_id": "b" * 64, "severity": "medium"}], config=config,
                           run_id="anomalies:2026-11-24:manual__1", detection_date=date(2026, 11, 24))
    cef, jsonl = export.files
    assert cef.name == "anomalies-2026-11-24-anomalies_2026-11-24_manual__1.cef" and jsonl.suffix == ".jsonl"
    assert [ln.split("|")[6] for ln in cef.read_text().splitlines()] == ["10", "5"]
    rows = [json.loads(ln) for ln in jsonl.read_text().splitlines()]
    assert [r["anomaly_id"][0] for r in rows] == ["a", "b"] and rows[0]["window_start"] == "2026-11-24T03:00:00"
    assert export.syslog_sent == 0
    empty = export_alerts([], config=config, run_id="r2", detection_date=date(2026, 11, 24))
    assert [p.read_text() for p in empty.files] == ["", ""]  # detection ran, nothing found


def test_syslog_over_udp_reaches_a_local_socket(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(5)
        config = _config(tmp_path, syslog_host="127.0.0.1", syslog_port=server.getsockname()[1], syslog_protocol="udp")
        export = export_alerts([ALERT], config=config, run_id="r", detection_date=date(2026, 11, 24))
        message = server.recv(65535).decode()
    assert export.syslog_sent == 1 and export.syslog_error is None
    assert message.startswith("<106>1 ")  # facility 13 (log audit) * 8 + severity 2 (critical)
    assert message.endswith(cef_line(ALERT).split("|", 7)[7]) and " CEF:0|voiplake|" in message


def test_syslog_over_tcp_uses_octet_counting_frames(tmp_path: Path) -> None:
    received: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(5)

        def accept() -> None:
            conn, _ = server.accept()
            with conn:
                while chunk := conn.recv(65536):
                    received.append(chunk)

        thread = threading.Thread(target=accept)
        thread.start()
        config = _config(tmp_path, syslog_host="127.0.0.1", syslog_port=server.getsockname()[1], syslog_protocol="tcp")
        export = export_alerts([ALERT, {**ALERT, "severity": "high"}], config=config, run_id="r",
                               detection_date=date(2026, 11, 24))
        thread.join(5)
    stream = b"".join(received)
    frames = []
    while stream:
        length, _, rest = stream.partition(b" ")
        frames.append(rest[: int(length)])
        stream = rest[int(length):]
    assert export.syslog_sent == 2 and len(frames) == 2
    assert frames[0].startswith(b"<106>1 ") and frames[1].startswith(b"<107>1 ")  # critical, then high (error)


def test_an_unreachable_tcp_collector_is_reported_not_raised(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = _config(tmp_path, syslog_host="127.0.0.1", syslog_port=port, syslog_protocol="tcp")
    export = export_alerts([ALERT], config=config, run_id="r", detection_date=date(2026, 11, 24))
    assert export.syslog_sent == 0 and export.syslog_error and f":{port}" in export.syslog_error
    assert export.files[0].read_text().count("CEF:0") == 1  # the files were written all the same


def test_settings_validate_the_anomaly_section() -> None:
    from lake_layout.config import SettingsError

    with pytest.raises(SettingsError, match="anomalies.syslog_protocol"):
        load_settings(env={"VOIPLAKE_ANOMALIES_SYSLOG_PROTOCOL": "http"})
    with pytest.raises(SettingsError, match="anomalies.quarantine_severity"):
        load_settings(env={"VOIPLAKE_ANOMALIES_QUARANTINE_SEVERITY": "urgent"})
    with pytest.raises(SettingsError, match="anomalies.iforest_quantile"):
        load_settings(env={"VOIPLAKE_ANOMALIES_IFOREST_QUANTILE": "1.5"})
