"""SIEM export of gold.anomalies findings: CEF and JSON lines files, optionally syslog over UDP or TCP.

Every run writes exactly two files under `anomalies.siem_dir`, named after the detection date and run id:
`anomalies-<date>-<run>.cef` (one ArcSight CEF line per finding) and `anomalies-<date>-<run>.jsonl` (the rows as
JSON). A run without findings writes empty files: the SIEM sees that detection ran. With `anomalies.syslog_host`
set, each CEF line is also sent as an RFC 5424 syslog message (facility 13 "log audit", syslog severity from the
finding's) over UDP (one datagram each) or TCP (RFC 6587 octet-counting framing). Syslog is best effort: an unreachable collector is reported, never raised, because the
findings are already in gold.anomalies and the files.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from lake_layout.config import AnomalySettings

CEF_VENDOR, CEF_PRODUCT, CEF_VERSION = "voiplake", "voiplake-anomalies", "1.0"
CEF_SEVERITY = {"low": 3, "medium": 5, "high": 8, "critical": 10}  # CEF 0-10
SYSLOG_FACILITY = 13  # log audit
SYSLOG_SEVERITY = {"low": 5, "medium": 4, "high": 3, "critical": 2}  # notice, warning, error, critical


def _cef_header(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|")


def _cef_value(value: Any) -> str:
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return text.replace("\\", "\\\\").replace("=", "\\=").replace("\r", "\\r").replace("\n", "\\n")


def _ms(value: datetime) -> int:
    aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return int(aware.timestamp() * 1000)


def cef_line(alert: Mapping[str, Any]) -> str:
    """One finding (a gold.anomalies row as a dict) as a CEF:0 line: signature id detector/rule, severity 0-10,
    extension keys rt/start/end (epoch ms), cs1 account, suser subscriber pseudonym, cs2 device pseudonym,
    cn1 score, cfp1 threshold, externalId anomaly id, msg evidence JSON (escaped as CEF requires)."""
    signature = f"{alert['detector']}/{alert['rule']}"
    name = f"{alert['detector']} {alert['rule']}"
    ext = {
        "rt": _ms(alert["detected_at"]), "start": _ms(alert["window_start"]), "end": _ms(alert["window_end"]),
        "externalId": alert["anomaly_id"], "cs1Label": "account", "cs1": alert.get("account_id") or "",
        "suser": alert.get("subscriber_pseudonym") or "", "cs2Label": "device", "cs2": alert.get("device_pseudonym") or "",
        "cn1Label": "score", "cn1": round(float(alert["score"]), 4), "cfp1Label": "threshold",
        "cfp1": round(float(alert["threshold"]), 4), "cs3Label": "severity", "cs3": alert["severity"],
        "msg": alert["evidence"],
    }
    extension = " ".join(f"{k}={_cef_value(v)}" for k, v in ext.items())
    header = "|".join(_cef_header(str(x)) for x in (
        CEF_VENDOR, CEF_PRODUCT, CEF_VERSION, signature, name, CEF_SEVERITY[alert["severity"]]))
    return f"CEF:0|{header}|{extension}"


def json_line(alert: Mapping[str, Any]) -> str:
    def plain(v: Any) -> Any:
        return v.isoformat() if isinstance(v, (datetime, date)) else v

    return json.dumps({k: plain(v) for k, v in alert.items()}, sort_keys=True)


def syslog_message(alert: Mapping[str, Any], *, hostname: str) -> bytes:
    """RFC 5424 message carrying the CEF line: <PRI>1 TIMESTAMP HOST voiplake - anomaly - CEF:..."""
    pri = SYSLOG_FACILITY * 8 + SYSLOG_SEVERITY[alert["severity"]]
    ts = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return f"<{pri}>1 {ts} {hostname} voiplake - anomaly - {cef_line(alert)}".encode()


def send_syslog(messages: Sequence[bytes], *, host: str, port: int, protocol: str, timeout: float = 5.0) -> int:
    """Send `messages` to host:port; returns how many were sent. TCP frames each as "<length> <message>"."""
    if not messages:
        return 0
    if protocol == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for message in messages:
                sock.sendto(message, (host, port))
        return len(messages)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"".join(str(len(m)).encode() + b" " + m for m in messages))
    return len(messages)


@dataclass(frozen=True)
class SiemExport:
    files: tuple[Path, ...]
    syslog_sent: int
    syslog_error: str | None = None


def export_alerts(alerts: Sequence[Mapping[str, Any]], *, config: AnomalySettings, run_id: str,
                  detection_date: date) -> SiemExport:
    """Write the run's CEF and JSON lines files (empty when there are no alerts) and send syslog if configured."""
    out = Path(config.siem_dir)
    out.mkdir(parents=True, exist_ok=True)
    safe_run = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    stem = out / f"anomalies-{detection_date.isoformat()}-{safe_run}"
    cef, jsonl = stem.with_suffix(".cef"), stem.with_suffix(".jsonl")
    cef.write_text("".join(cef_line(a) + "\n" for a in alerts))
    jsonl.write_text("".join(json_line(a) + "\n" for a in alerts))
    sent, error = 0, None
    if config.syslog_host:
        try:
            messages = [syslog_message(a, hostname=socket.gethostname()) for a in alerts]
            sent = send_syslog(messages, host=config.syslog_host, port=config.syslog_port,
                               protocol=config.syslog_protocol)
        except OSError as exc:
            error = f"syslog {config.syslog_protocol}://{config.syslog_host}:{config.syslog_port}: {exc}"
    return SiemExport(files=(cef, jsonl), syslog_sent=sent, syslog_error=error)
