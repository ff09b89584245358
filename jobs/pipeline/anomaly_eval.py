"""Detection quality of jobs.security.anomalies against the generator's labelled scenarios (precision and recall per detector).

Labels are ground truth the detectors never read (jobs.generator.labels: a generated day's `ScenarioLabel`s
pseudonymized with bronze's active key, so they compare with findings).

Matching: a finding matches a label when their windows overlap (within `tolerance`) and the finding's subject is
the label's: same device, else same subscriber, else the same B2B account (an account-level finding about an
account-of-one consumer names the subscriber). Precision of a detector = its findings matching any label / its
findings; recall = labels of the scenarios it targets (`DETECTOR_TARGETS`; the account baseline only sees B2B
accounts) matched by at least one of its findings / those labels.

    python -m jobs.pipeline.anomaly_eval --days 8 --events 3000 --seed 5    # figures on a generated history (local Spark)
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Sequence

from jobs.generator.day import GeneratedDay
from jobs.generator.labels import label_records
from jobs.platform.keys import KeyMaterial

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

DETECTOR_TARGETS: dict[str, frozenset[str]] = {
    "attempt_spike": frozenset({"irsf_burst", "call_flood"}),
    "consumption": frozenset({"telemetry_flood"}),
    "auth_correlation": frozenset({"compromised_account"}),
    "account_baseline": frozenset({"irsf_burst", "call_flood", "compromised_account"}),
}
B2B_ONLY = frozenset({"account_baseline"})


@dataclass(frozen=True)
class DetectorQuality:
    detector: str
    findings: int
    true_positives: int  # findings matching a label
    labels: int  # target labels
    detected: int  # target labels matched

    @property
    def precision(self) -> float | None:
        return self.true_positives / self.findings if self.findings else None

    @property
    def recall(self) -> float | None:
        return self.detected / self.labels if self.labels else None

    def as_dict(self) -> dict[str, Any]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 3)

        return {"findings": self.findings, "true_positives": self.true_positives, "labels": self.labels,
                "detected": self.detected, "precision": r(self.precision), "recall": r(self.recall)}


def _ts(value: Any) -> datetime:
    import pandas as pd

    ts = pd.Timestamp(value)
    return (ts.tz_convert("UTC") if ts.tzinfo else ts.tz_localize("UTC")).to_pydatetime()


def _matches(finding: dict[str, Any], label: dict[str, Any], tolerance: timedelta) -> bool:
    if _ts(finding["window_start"]) > _ts(label["window_end"]) + tolerance \
            or _ts(finding["window_end"]) < _ts(label["window_start"]) - tolerance:
        return False
    if finding.get("device_pseudonym") and finding["device_pseudonym"] == label["device_pseudonym"]:
        return True
    if finding.get("subscriber_pseudonym") and finding["subscriber_pseudonym"] == label["subscriber_pseudonym"]:
        return True
    account = finding.get("account_id")
    return bool(account) and account != "consumer" and account == label["account_id"] \
        and not finding.get("subscriber_pseudonym")


def evaluate(findings: "pd.DataFrame", labels: Sequence[dict[str, Any]], *,
             tolerance: timedelta = timedelta(minutes=5)) -> dict[str, DetectorQuality]:
    """Precision and recall per detector (see the module docstring) of `findings` (gold.anomalies rows)."""
    rows = findings.to_dict("records")
    out = {}
    for detector, targets in DETECTOR_TARGETS.items():
        mine = [f for f in rows if f["detector"] == detector]
        wanted = [lb for lb in labels if lb["scenario"] in targets
                  and (detector not in B2B_ONLY or lb["account_id"] != "consumer")]
        tp = sum(any(_matches(f, lb, tolerance) for lb in labels) for f in mine)
        hit = sum(any(_matches(f, lb, tolerance) for f in mine) for lb in wanted)
        out[detector] = DetectorQuality(detector, len(mine), tp, len(wanted), hit)
    return out


# ----------------------------------------------------------------------------- a generated history, end to end

CALL_COLUMNS = ("call_id", "call_date", "status", "started_at", "ended_at", "duration_ms", "subscriber_pseudonym",
                "callee_pseudonym", "destination_class", "device_pseudonym", "account_id", "country_code", "data_bytes")


def simulated_calls(days: Sequence[GeneratedDay], keys: KeyMaterial) -> "pd.DataFrame":
    """silver.calls-shaped rows (CALL_COLUMNS, what jobs.security.anomalies reads) of generated days, in pandas: every object
    through bronze's own decoder (`decode_object_rows`: verification, validation, pseudonyms), then silver's rules
    in short: clock-corrected times, one copy per event id, the earliest start and terminal event per call.
    Fast enough for tests and what-if runs without the object store, Delta or Spark's Python workers."""
    import pandas as pd
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from jobs.ingest.door import ROW_EVENT
    from jobs.ingest.bronze import decode_object_rows
    from jobs.platform.envelope import DataKey

    last = max(d.day for d in days)
    now = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
    dek = DataKey.generate(last)
    aead = AESGCM(dek.key)
    rows = [row for d in days for o in d.objects
            for row in decode_object_rows(o.key, o.body, keys=keys, run_id="eval", aead=aead, dek_id=dek.dek_id, now=now)
            if row["row_kind"] == ROW_EVENT]
    events = pd.DataFrame(rows)
    events["event_ts"] = (pd.to_datetime(events["event_ts_device"], utc=True)
                          + pd.to_timedelta(events["clock_offset_ms"].fillna(0), unit="ms"))
    events = events.sort_values(["received_at", "object_key", "record_index"]).drop_duplicates("event_id")
    starts = events[events["event_type"] == "call_start"].sort_values("event_ts").drop_duplicates("call_id")
    terminal = (events[events["event_type"].isin(["call_end", "call_failure"])].sort_values("event_ts")
                .drop_duplicates("call_id")[["call_id", "event_type", "event_ts", "duration_ms", "bytes_sent",
                                             "bytes_received"]])
    calls = starts.drop(columns=["duration_ms", "bytes_sent", "bytes_received"]).merge(
        terminal.rename(columns={"event_type": "terminal", "event_ts": "ended_at"}), on="call_id", how="left")
    completed = calls["terminal"] == "call_end"
    calls["status"] = completed.map({True: "completed", False: "failed"}).where(calls["terminal"].notna(), "incomplete")
    calls["duration_ms"] = calls["duration_ms"].where(completed, calls["terminal"].notna().map({True: 0, False: None}))
    media = calls[["bytes_sent", "bytes_received"]]
    calls["data_bytes"] = media.sum(axis=1, min_count=1)
    calls["started_at"] = calls["event_ts"].dt.tz_convert("UTC").dt.tz_localize(None)
    calls["ended_at"] = pd.to_datetime(calls["ended_at"], utc=True).dt.tz_localize(None)
    calls["call_date"] = calls["started_at"].dt.date
    out = calls[[*CALL_COLUMNS, "src_ip_prefix"]].copy()  # + where the call came from (bronze's prefix)
    for column in ("duration_ms", "data_bytes"):
        out[column] = out[column].astype("Int64")
    return out


def calls_frame(spark: "SparkSession", calls: "pd.DataFrame") -> "DataFrame":
    """The simulated calls as a Spark DataFrame with silver.calls' types (Arrow conversion; naive times are UTC)."""
    from pyspark.sql import types as T

    from lake_layout.tables import SILVER_CALLS

    fields = {f.name: f for f in SILVER_CALLS.spark_schema().fields}
    schema = T.StructType([T.StructField(c, fields[c].dataType, True) for c in CALL_COLUMNS])
    return spark.createDataFrame(calls[list(CALL_COLUMNS)], schema)


def call_prefix_frame(spark: "SparkSession", calls: "pd.DataFrame") -> "DataFrame":
    """(call_id, src_ip_prefix) of the simulated calls: what `jobs.security.anomalies.call_source_prefixes` gives from bronze."""
    rows = [(c, p if isinstance(p, str) else None) for c, p in zip(calls["call_id"], calls["src_ip_prefix"])]
    return spark.createDataFrame(rows, "call_id string, src_ip_prefix string")


def auth_rows(spark: "SparkSession", days: Sequence[GeneratedDay], keys: KeyMaterial) -> "DataFrame":
    """bronze.auth_events rows of the generated days' auth logs (jobs.ingest.auth's transform)."""
    import gzip

    from jobs.ingest.auth import auth_event_rows

    lines = [(d.auth_key, i, line) for d in days if d.auth_body
             for i, line in enumerate(gzip.decompress(d.auth_body).decode().splitlines())]
    frame = spark.createDataFrame(lines, "object_key string, line_index int, value string")
    return auth_event_rows(frame, keys=keys, run_id="eval").where("reject_reason IS NULL")


def main(argv: Sequence[str] | None = None) -> int:
    from jobs.security.anomalies import detect, to_anomaly_rows
    from jobs.generator.day import generate_day
    from jobs.generator.scenarios import ScenarioPlan
    from jobs.platform.keys import new_key_material
    from jobs.platform.spark import build_spark
    from lake_layout.config import load_settings

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=8, help="history days + the detected day")
    p.add_argument("--events", type=int, default=3000)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--end", type=date.fromisoformat, default=date(2026, 11, 24))
    p.add_argument("--ipv4-range-bits", type=int, default=None, help="what-if for anomalies.auth_ipv4_range_bits")
    p.add_argument("--ipv6-range-bits", type=int, default=None, help="what-if for anomalies.auth_ipv6_range_bits")
    args = p.parse_args(argv)
    keys = new_key_material()
    settings = load_settings()
    config = replace(settings.anomalies, **{k: v for k, v in (("auth_ipv4_range_bits", args.ipv4_range_bits),
                                                               ("auth_ipv6_range_bits", args.ipv6_range_bits)) if v is not None})
    attacks = ScenarioPlan(irsf_bursts=2, compromised_accounts=2, telemetry_floods=2, call_floods=2)
    days = [generate_day(args.end - timedelta(days=i), events=args.events, seed=args.seed, keys=keys, prefix="uploads",
                         scenarios=attacks if i == 0 else ScenarioPlan())
            for i in range(args.days - 1, -1, -1)]
    spark = build_spark(settings, app_name="anomaly-eval")
    simulated = simulated_calls(days, keys)
    calls = calls_frame(spark, simulated).cache()
    findings, skipped = detect(spark, calls, auth_rows(spark, days, keys), detection_date=args.end, config=config,
                               call_prefixes=call_prefix_frame(spark, simulated))
    rows = to_anomaly_rows(findings, detection_date=args.end, run_id="eval", detected_at=datetime.now(UTC)).toPandas()
    quality = evaluate(rows, label_records(days[-1].labels, keys))
    print(json.dumps({"skipped": skipped, "detectors": {k: v.as_dict() for k, v in quality.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
