"""anomalies: silver.calls (+ bronze.auth_events) -> gold.anomalies, SIEM alerts, device quarantine.

Four detectors look at the calls of one UTC call date D against the `anomalies.history_days` days before it:

* attempt_spike / robust_z: call attempts per account (a consumer is an account of one) x destination class x
  hour, against the same key's attempts in the same hour of week in the history, zero-filled (no calls in an
  hour is a count of 0), with median and MAD. z = (attempts - median) / max(1.4826 MAD, spike_min_scale) fires at
  `spike_sensitivity` with at least `spike_min_attempts` attempts. A short history has few equal hours of week, so
  the baseline falls back to the same hour of days of the same kind (weekday / weekend), then of all days. Robust
  statistics: one earlier burst in the history does not lift the baseline (the median ignores it). History dates
  are those silver covers (`covered_dates`); skipped on the lake's first day, when there is no history at all.
* consumption / session_kbps, user_daily_mb: a completed call whose media bytes over its talk time exceed
  `max_session_kbps` (Opus over RTP needs ~100 kbps both ways), and a subscriber's day above `max_user_daily_mb`.
* auth_correlation / no_recent_login, login_elsewhere: calls whose device has no successful login in the
  `auth_window_hours` before the call (plus a clock tolerance after), or only from other countries than the one
  the call was made in; and, when enabled (`auth_ipv4_range_bits` / `auth_ipv6_range_bits` > 0), new_ip_range:
  calls that passed both but whose source IP range (bronze.call_events' src_ip_prefix of the call_start: silver
  keeps no address; bronze keeps /24 and /48 prefixes, coarsened to the configured bits) is none of the ranges the
  subscriber logged in from successfully in the window. Off by default: mobile clients change address, and /24,
  between calls (carrier NAT pools, Wi-Fi <-> cellular), so alone it is a weak signal (low / medium, never
  quarantining) for networks where addresses are stable. Skipped, not fired, when the auth log has no entry at
  all for the window (a feed outage must not page anyone).
* account_baseline / isolation_forest: per enterprise (B2B) account and hour, features of the calling behaviour
  (attempts, failure / premium / international / short-call shares, distinct callees and devices, attempts
  relative to the account's median at that hour of day); an IsolationForest (scikit-learn) trained on the
  history's account-hours scores D's, and an hour fires when it is more anomalous than `iforest_quantile` of the
  history. Skipped with fewer than `iforest_min_history_hours` account-hours of history.

Every finding is one gold.anomalies row: detector, rule, score and the threshold it crossed, severity, subject
(account id, pseudonyms), window and evidence (JSON). anomaly_id hashes detector|rule|subject|window start, and a
run replaces D's partition: reruns give the same rows. Devices of findings at or above `quarantine_severity` go to
security.device_quarantine (bronze diverts their uploads); every finding is exported to the SIEM (jobs.security.siem).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Sequence

from jobs.ingest.door import DOOR_REASONS, REPLAYED_NONCE, UPLOAD_RATE_EXCEEDED, active_quarantine
from lake_layout.config import SEVERITIES, AnomalySettings, Settings
from lake_layout.tables import (
    BRONZE_AUTH_EVENTS, BRONZE_CALL_EVENTS, BRONZE_INGESTED_OBJECTS, BRONZE_QUARANTINE, GOLD_ANOMALIES,
    SECURITY_DEVICE_QUARANTINE, SILVER_CALLS,
)

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import Column, DataFrame, SparkSession

MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution x this = its standard deviation
SHORT_CALL_MS = 30_000
EVIDENCE_CALL_IDS = 10  # call ids kept in a finding's evidence (a sample, ordered)
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
FINDING_COLUMNS = ("detector", "rule", "severity", "score", "threshold", "account_id", "subscriber_pseudonym",
                   "device_pseudonym", "window_start", "window_end", "evidence")
IFOREST_FEATURES = ("log_attempts", "relative_attempts", "failed_share", "premium_share", "international_share",
                    "short_share", "log_callees", "log_devices")


def _severity(ratio: "Column", *, high: float, critical: float) -> "Column":
    """medium from the threshold on, high from `high` x it, critical from `critical` x it."""
    from pyspark.sql import functions as F

    return F.when(ratio >= critical, "critical").when(ratio >= high, "high").otherwise("medium")


def subject_account(calls: "DataFrame") -> "DataFrame":
    """Adds `subject_account`: the B2B account id, or "subscriber:<pseudonym>" for a consumer (an account of one)."""
    from pyspark.sql import functions as F

    consumer = F.col("account_id").isNull() | (F.col("account_id") == "consumer")
    return calls.withColumn(
        "subject_account",
        F.when(consumer, F.concat(F.lit("subscriber:"), F.col("subscriber_pseudonym"))).otherwise(F.col("account_id")),
    )


def _call_ids(column: str = "call_id") -> "Column":
    from pyspark.sql import functions as F

    return F.slice(F.sort_array(F.collect_set(column)), 1, EVIDENCE_CALL_IDS)


# ----------------------------------------------------------------------------- attempt spikes

def hourly_attempts(calls: "DataFrame") -> "DataFrame":
    """(subject_account, account_id, destination_class, hour, attempts, top_device, top_device_attempts,
    top_subscriber): call attempts (calls of any status with a start) per account, destination class and hour."""
    from pyspark.sql import functions as F

    per_device = (
        calls.where(F.col("started_at").isNotNull())
        .transform(subject_account)
        .withColumns({"destination_class": F.coalesce("destination_class", F.lit("unknown")),
                      "hour": F.date_trunc("hour", "started_at")})
        .groupBy("subject_account", "destination_class", "hour", "device_pseudonym", "subscriber_pseudonym")
        .agg(F.count("*").alias("n"), F.first("account_id").alias("account_id"))
    )
    return per_device.groupBy("subject_account", "destination_class", "hour").agg(
        F.first("account_id").alias("account_id"),
        F.sum("n").alias("attempts"),
        F.max_by("device_pseudonym", "n").alias("top_device"),
        F.max("n").alias("top_device_attempts"),
        F.max_by("subscriber_pseudonym", "n").alias("top_subscriber"),
    )


def robust_baseline(counts: dict[datetime, int], hour: datetime, history_dates: Sequence[date], *,
                    min_slots: int) -> tuple[float, float, str, int]:
    """(median, MAD, baseline kind, slots) of a key's hourly counts at `hour`'s hour of week over `history_dates`.

    `counts` maps history hours (naive UTC, on the hour) to attempts; hours it lacks count 0. With fewer than
    `min_slots` history dates of `hour`'s weekday, the same hour of days of the same kind (weekday / weekend) is
    used, then of all history dates. No history at all gives (0, 0, "none", 0).
    """
    import numpy as np

    weekday = hour.weekday()
    kinds = (("hour_of_week", [d for d in history_dates if d.weekday() == weekday]),
             ("hour_of_daytype", [d for d in history_dates if (d.weekday() >= 5) == (weekday >= 5)]),
             ("hour_of_day", list(history_dates)))
    for kind, dates in kinds:
        if len(dates) >= min_slots or kind == "hour_of_day":
            break
    if not dates:
        return 0.0, 0.0, "none", 0
    values = np.array([counts.get(datetime(d.year, d.month, d.day, hour.hour), 0) for d in dates], dtype=float)
    median = float(np.median(values))
    return median, float(np.median(np.abs(values - median))), kind, len(dates)


def attempt_spikes(
    today: "DataFrame", history: "DataFrame", *, history_dates: Sequence[date], sensitivity: float, min_attempts: int,
    min_scale: float, min_slots: int,
) -> "DataFrame":
    """Findings (FINDING_COLUMNS) for `today`'s hourly attempts (`hourly_attempts` of the detection date) that spike
    against `history` (`hourly_attempts` of `history_dates`): robust z >= sensitivity and attempts >= min_attempts.

    Grouped per (account, destination class) in pandas (`applyInPandas`, Arrow-vectorized): the zero-filled
    median / MAD of a handful of hours has no Spark SQL aggregate. Only keys with a candidate hour are shipped.
    The device is named when one device made >= 80 % of the hour's attempts (quarantine acts on devices).
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    keys = ["subject_account", "destination_class"]
    candidates = today.where(F.col("attempts") >= min_attempts).withColumn("is_today", F.lit(True))
    past = (history.join(candidates.select(*keys).distinct(), on=keys, how="left_semi")
            .withColumn("is_today", F.lit(False)))
    rows = candidates.unionByName(past)
    out_schema = T.StructType([
        T.StructField("subject_account", T.StringType()), T.StructField("destination_class", T.StringType()),
        T.StructField("account_id", T.StringType()), T.StructField("hour", T.TimestampType()),
        T.StructField("attempts", T.LongType()), T.StructField("top_device", T.StringType()),
        T.StructField("top_device_attempts", T.LongType()), T.StructField("top_subscriber", T.StringType()),
        T.StructField("median", T.DoubleType()), T.StructField("mad", T.DoubleType()),
        T.StructField("baseline", T.StringType()), T.StructField("slots", T.IntegerType()),
        T.StructField("z", T.DoubleType()),
    ])
    dates = sorted(history_dates)

    def score(pdf: "pd.DataFrame") -> "pd.DataFrame":
        import pandas as pd

        past_rows = pdf[~pdf["is_today"]]
        counts = {pd.Timestamp(h).to_pydatetime().replace(tzinfo=None): int(n)
                  for h, n in zip(past_rows["hour"], past_rows["attempts"])}
        out = []
        for row in pdf[pdf["is_today"]].itertuples(index=False):
            hour = pd.Timestamp(row.hour).to_pydatetime().replace(tzinfo=None)
            median, mad, kind, slots = robust_baseline(counts, hour, dates, min_slots=min_slots)
            z = (row.attempts - median) / max(MAD_TO_SIGMA * mad, min_scale)
            if z >= sensitivity:
                out.append((row.subject_account, row.destination_class, row.account_id, row.hour, int(row.attempts),
                            row.top_device, int(row.top_device_attempts), row.top_subscriber, median, mad, kind,
                            slots, float(z)))
        return pd.DataFrame(out, columns=out_schema.fieldNames())

    spikes = rows.groupBy(*keys).applyInPandas(score, out_schema)
    consumer = F.col("subject_account").startswith("subscriber:")
    dominant = F.col("top_device_attempts") >= F.lit(0.8) * F.col("attempts")
    return spikes.select(
        F.lit("attempt_spike").alias("detector"),
        F.concat(F.lit("robust_z_"), F.col("baseline")).alias("rule"),
        _severity(F.col("z") / F.lit(sensitivity), high=2.0, critical=4.0).alias("severity"),
        F.col("z").alias("score"), F.lit(float(sensitivity)).alias("threshold"),
        F.coalesce("account_id", F.lit("consumer")).alias("account_id"),
        F.when(consumer | dominant, F.col("top_subscriber")).alias("subscriber_pseudonym"),
        F.when(dominant, F.col("top_device")).alias("device_pseudonym"),
        F.col("hour").alias("window_start"),
        (F.col("hour") + F.expr("INTERVAL 1 HOUR")).alias("window_end"),
        F.to_json(F.struct("destination_class", "attempts", "median", "mad", "baseline", "slots",
                           "top_device_attempts")).alias("evidence"),
    )


# ----------------------------------------------------------------------------- consumption

def consumption_anomalies(calls: "DataFrame", *, max_session_kbps: int, max_user_daily_mb: int) -> "DataFrame":
    """Findings (FINDING_COLUMNS): per device, its completed calls above `max_session_kbps` (data_bytes x 8 /
    talk ms; calls under 1 s of talk are not judged), and per subscriber, a day above `max_user_daily_mb` (10^6
    bytes) of media. Score = observed / threshold (fires at 1)."""
    from pyspark.sql import functions as F

    completed = calls.where((F.col("status") == "completed") & F.col("data_bytes").isNotNull())
    kbps = F.col("data_bytes") * F.lit(8.0) / F.col("duration_ms")
    sessions = (
        completed.where(F.col("duration_ms") >= 1000).withColumn("kbps", kbps)
        .where(F.col("kbps") > F.lit(float(max_session_kbps)))
        .groupBy("device_pseudonym", "subscriber_pseudonym")
        .agg(F.first("account_id").alias("account_id"), F.count("*").alias("sessions"), F.max("kbps").alias("max_kbps"),
             F.sum("data_bytes").alias("data_bytes"), F.min("started_at").alias("window_start"),
             F.max(F.coalesce("ended_at", "started_at")).alias("window_end"), _call_ids().alias("call_ids"))
    )
    ratio = F.col("max_kbps") / F.lit(float(max_session_kbps))
    by_session = sessions.select(
        F.lit("consumption").alias("detector"), F.lit("session_kbps").alias("rule"),
        _severity(ratio, high=3.0, critical=10.0).alias("severity"), ratio.alias("score"), F.lit(1.0).alias("threshold"),
        "account_id", "subscriber_pseudonym", "device_pseudonym", "window_start", "window_end",
        F.to_json(F.struct("sessions", "max_kbps", "data_bytes", F.lit(max_session_kbps).alias("max_session_kbps"),
                           "call_ids")).alias("evidence"),
    )
    limit = float(max_user_daily_mb) * 1e6
    users = (
        completed.groupBy("subscriber_pseudonym", "device_pseudonym")
        .agg(F.first("account_id").alias("account_id"), F.sum("data_bytes").alias("b"), F.count("*").alias("n"),
             F.min("started_at").alias("s"), F.max(F.coalesce("ended_at", "started_at")).alias("e"))
        .groupBy("subscriber_pseudonym")
        .agg(F.first("account_id").alias("account_id"), F.sum("b").alias("data_bytes"), F.sum("n").alias("calls"),
             F.max_by("device_pseudonym", "b").alias("device_pseudonym"), F.min("s").alias("window_start"),
             F.max("e").alias("window_end"))
        .where(F.col("data_bytes") > F.lit(limit))
    )
    user_ratio = F.col("data_bytes") / F.lit(limit)
    by_user = users.select(
        F.lit("consumption").alias("detector"), F.lit("user_daily_mb").alias("rule"),
        _severity(user_ratio, high=3.0, critical=10.0).alias("severity"), user_ratio.alias("score"),
        F.lit(1.0).alias("threshold"), "account_id", "subscriber_pseudonym", "device_pseudonym", "window_start",
        "window_end",
        F.to_json(F.struct("data_bytes", "calls", F.lit(max_user_daily_mb).alias("max_user_daily_mb"))).alias("evidence"),
    )
    return by_session.unionByName(by_user)


# ----------------------------------------------------------------------------- authentication

def ip_range(prefix: str | None, *, ipv4_bits: int, ipv6_bits: int) -> str | None:
    """The network of `prefix` (an address or a prefix such as bronze's "198.51.100.0/24") at `ipv4_bits` /
    `ipv6_bits`, e.g. "198.51.0.0/16"; None for no or an unparsable prefix, or when its family's bits are 0 (that
    family is not compared). Bits finer than the prefix keep the prefix (bronze keeps no more than /24, /48)."""
    import ipaddress

    if not prefix:
        return None
    try:
        net = ipaddress.ip_network(prefix, strict=False)
    except ValueError:
        return None
    bits = ipv4_bits if net.version == 4 else ipv6_bits
    if bits <= 0:
        return None
    return str(net.supernet(new_prefix=min(bits, net.prefixlen)))


def call_source_prefixes(events: "DataFrame") -> "DataFrame":
    """(call_id, src_ip_prefix) of each call's first call_start event (bronze.call_events rows): where silver's
    calls came from, as bronze keeps it (/24, /48; silver keeps no address)."""
    from pyspark.sql import functions as F

    starts = events.where((F.col("event_type") == "call_start") & F.col("src_ip_prefix").isNotNull())
    return starts.groupBy("call_id").agg(
        F.min_by("src_ip_prefix", F.struct("event_ts_device", "event_id")).alias("src_ip_prefix"))


def _ip_range_column(prefix: "Column", *, ipv4_bits: int, ipv6_bits: int) -> "Column":
    """`ip_range` as an Arrow-vectorized pandas UDF (prefix parsing has no Spark SQL function)."""
    import pandas as pd
    from pyspark.sql.functions import pandas_udf

    def to_range(prefixes: pd.Series) -> pd.Series:
        return pd.Series([ip_range(p, ipv4_bits=ipv4_bits, ipv6_bits=ipv6_bits) for p in prefixes], dtype=object)

    # Real types, not this module's postponed (string) annotations: pandas_udf infers its kind from them.
    to_range.__annotations__ = {"prefixes": pd.Series, "return": pd.Series}
    return pandas_udf(to_range, "string")(prefix)  # type: ignore[call-overload]


def new_ip_range_findings(calls: "DataFrame", auth: "DataFrame", call_prefixes: "DataFrame", *, window: timedelta,
                          tolerance: timedelta, ipv4_bits: int, ipv6_bits: int) -> "DataFrame":
    """Findings (FINDING_COLUMNS, rule new_ip_range), one per device: its `calls` whose source range (`call_prefixes`
    (call_id, src_ip_prefix) at `ipv4_bits` / `ipv6_bits`, see `ip_range`) is none of the ranges of the
    subscriber's successful logins (any device) in [start - window, start + tolerance]. Calls without a known
    range, or with no successful login of the subscriber in the window, are not judged here (no_recent_login's).
    Score = such calls; low under 3 calls, else medium (a weak signal alone: never quarantines at the default
    `quarantine_severity`). Evidence: the calls' ranges and the login ranges (sorted, at most 10 each)."""
    from pyspark.sql import functions as F

    ranged = (calls.where(F.col("started_at").isNotNull())
              .select("call_id", "device_pseudonym", "subscriber_pseudonym", "account_id", "started_at", "ended_at")
              .join(call_prefixes.select("call_id", "src_ip_prefix"), "call_id")
              .withColumn("call_range", _ip_range_column(F.col("src_ip_prefix"), ipv4_bits=ipv4_bits, ipv6_bits=ipv6_bits))
              .where(F.col("call_range").isNotNull()))
    logins = (auth.where(F.col("outcome") == "success")
              .select("subscriber_pseudonym", "auth_ts",
                      _ip_range_column(F.col("ip_prefix"), ipv4_bits=ipv4_bits, ipv6_bits=ipv6_bits).alias("login_range")))
    in_window = ((F.col("a.auth_ts") >= F.col("c.started_at") - F.lit(window))
                 & (F.col("a.auth_ts") <= F.col("c.started_at") + F.lit(tolerance)))
    per_call = (ranged.alias("c")
                .join(logins.alias("a"), (F.col("c.subscriber_pseudonym") == F.col("a.subscriber_pseudonym")) & in_window)
                .groupBy("c.call_id")
                .agg(*[F.first(f"c.{c}").alias(c) for c in ("device_pseudonym", "subscriber_pseudonym", "account_id",
                                                            "started_at", "ended_at", "call_range")],
                     F.collect_set("a.login_range").alias("login_ranges")))
    flagged = per_call.where(~F.array_contains(F.col("login_ranges"), F.col("call_range")))
    devices = flagged.groupBy("device_pseudonym").agg(
        F.first("subscriber_pseudonym").alias("subscriber_pseudonym"), F.first("account_id").alias("account_id"),
        F.count("*").alias("calls"), F.min("started_at").alias("window_start"),
        F.max(F.coalesce("ended_at", "started_at")).alias("window_end"),
        F.slice(F.sort_array(F.collect_set("call_range")), 1, EVIDENCE_CALL_IDS).alias("call_ip_ranges"),
        F.slice(F.sort_array(F.array_distinct(F.flatten(F.collect_list("login_ranges")))), 1, EVIDENCE_CALL_IDS)
        .alias("login_ip_ranges"),
        _call_ids().alias("call_ids"),
    )
    return devices.select(
        F.lit("auth_correlation").alias("detector"), F.lit("new_ip_range").alias("rule"),
        F.when(F.col("calls") >= 3, "medium").otherwise("low").alias("severity"),
        F.col("calls").cast("double").alias("score"), F.lit(1.0).alias("threshold"), "account_id",
        "subscriber_pseudonym", "device_pseudonym", "window_start", "window_end",
        F.to_json(F.struct("calls", "call_ip_ranges", "login_ip_ranges",
                           F.lit(f"/{ipv4_bits} IPv4, /{ipv6_bits} IPv6").alias("range_bits"), "call_ids"))
        .alias("evidence"),
    )


def auth_correlation(calls: "DataFrame", auth: "DataFrame", *, window: timedelta, tolerance: timedelta,
                     call_prefixes: "DataFrame | None" = None, ipv4_bits: int = 0, ipv6_bits: int = 0) -> "DataFrame":
    """Findings (FINDING_COLUMNS), one per device and rule: its calls with no successful login from the device in
    [start - window, start + tolerance] (no_recent_login), or only from other countries than the call's
    (login_elsewhere). `auth`: bronze.auth_events rows. Score = such calls; failed logins of the device in the
    window are evidence (and make a no_recent_login critical). With `call_prefixes` and ipv4_bits / ipv6_bits > 0,
    also new_ip_range (`new_ip_range_findings`) for the calls neither rule flagged."""
    from pyspark.sql import functions as F

    started = calls.where(F.col("started_at").isNotNull()).select(
        "call_id", "device_pseudonym", "subscriber_pseudonym", "account_id", "country_code", "started_at", "ended_at")
    logins = auth.select("device_pseudonym", "auth_ts", F.col("country_code").alias("auth_country"), "outcome")
    in_window = (
        (F.col("a.auth_ts") >= F.col("c.started_at") - F.lit(window))
        & (F.col("a.auth_ts") <= F.col("c.started_at") + F.lit(tolerance))
    )
    joined = started.alias("c").join(
        logins.alias("a"), (F.col("c.device_pseudonym") == F.col("a.device_pseudonym")) & in_window, "left")
    success = F.col("a.outcome") == "success"
    same_country = success & (F.col("c.country_code").isNull() | (F.col("a.auth_country") == F.col("c.country_code")))
    per_call = joined.groupBy("c.call_id").agg(
        F.first("c.device_pseudonym").alias("device_pseudonym"),
        F.first("c.subscriber_pseudonym").alias("subscriber_pseudonym"),
        F.first("c.account_id").alias("account_id"), F.first("c.country_code").alias("country_code"),
        F.first("c.started_at").alias("started_at"), F.first("c.ended_at").alias("ended_at"),
        F.count(F.when(success, 1)).alias("logins"), F.count(F.when(same_country, 1)).alias("logins_here"),
        F.count(F.when(F.col("a.outcome") == "failure", 1)).alias("failed_logins"),
        F.collect_set(F.when(success, F.col("a.auth_country"))).alias("login_countries"),
    )
    rule = F.when(F.col("logins") == 0, "no_recent_login").when(F.col("logins_here") == 0, "login_elsewhere")
    flagged = per_call.withColumn("rule", rule).where(F.col("rule").isNotNull())
    devices = flagged.groupBy("device_pseudonym", "rule").agg(
        F.first("subscriber_pseudonym").alias("subscriber_pseudonym"), F.first("account_id").alias("account_id"),
        F.count("*").alias("calls"), F.max("failed_logins").alias("failed_logins"),
        F.min("started_at").alias("window_start"), F.max(F.coalesce("ended_at", "started_at")).alias("window_end"),
        F.sort_array(F.collect_set("country_code")).alias("call_countries"),
        F.sort_array(F.array_distinct(F.flatten(F.collect_list("login_countries")))).alias("login_countries"),
        _call_ids().alias("call_ids"),
    )
    severity = (F.when((F.col("rule") == "no_recent_login") & (F.col("failed_logins") > 0), "critical")
                .when(F.col("calls") >= 3, "high").otherwise("medium"))
    found = devices.select(
        F.lit("auth_correlation").alias("detector"), "rule", severity.alias("severity"),
        F.col("calls").cast("double").alias("score"), F.lit(1.0).alias("threshold"), "account_id",
        "subscriber_pseudonym", "device_pseudonym", "window_start", "window_end",
        F.to_json(F.struct("calls", "failed_logins", "call_countries", "login_countries", "call_ids")).alias("evidence"),
    )
    if call_prefixes is None or (ipv4_bits <= 0 and ipv6_bits <= 0):
        return found
    passed = per_call.where((F.col("logins") > 0) & (F.col("logins_here") > 0)).select("call_id")
    return found.unionByName(new_ip_range_findings(
        calls.join(passed, "call_id", "left_semi"), auth, call_prefixes, window=window, tolerance=tolerance,
        ipv4_bits=ipv4_bits, ipv6_bits=ipv6_bits))


# ----------------------------------------------------------------------------- enterprise baseline

def account_hour_features(calls: "DataFrame") -> "DataFrame":
    """Per B2B account and hour: attempts, failed, premium, international, short (completed under 30 s), distinct
    callees, devices and subscribers (consumers are excluded: one model of enterprise calling)."""
    from pyspark.sql import functions as F

    b2b = calls.where(F.col("started_at").isNotNull() & F.col("account_id").isNotNull()
                      & (F.col("account_id") != "consumer"))
    return b2b.groupBy("account_id", F.date_trunc("hour", "started_at").alias("hour")).agg(
        F.count("*").alias("attempts"),
        F.count(F.when(F.col("status") == "failed", 1)).alias("failed"),
        F.count(F.when(F.col("destination_class") == "premium", 1)).alias("premium"),
        F.count(F.when(F.col("destination_class") == "international", 1)).alias("international"),
        F.count(F.when((F.col("status") == "completed") & (F.col("duration_ms") < SHORT_CALL_MS), 1)).alias("short"),
        F.countDistinct("callee_pseudonym").alias("callees"),
        F.countDistinct("device_pseudonym").alias("devices"),
        F.countDistinct("subscriber_pseudonym").alias("subscribers"),
    )


def _usual_attempts(history: "pd.DataFrame") -> tuple["pd.Series", "pd.Series"]:
    """Median log1p(attempts) per (account, hour of day), and per account (the fallback) over the history."""
    import numpy as np

    logged = history.assign(l=np.log1p(history["attempts"].astype(float)), hod=history["hour"].dt.hour)
    return logged.groupby(["account_id", "hod"])["l"].median(), logged.groupby("account_id")["l"].median()


def _feature_matrix(features: "pd.DataFrame", usual: tuple["pd.Series", "pd.Series"]) -> "pd.DataFrame":
    import numpy as np
    import pandas as pd

    by_hour, by_account = usual
    attempts = features["attempts"].astype(float)
    log_attempts = np.log1p(attempts)
    keys = pd.MultiIndex.from_arrays([features["account_id"], features["hour"].dt.hour])
    expected = pd.Series(by_hour.reindex(keys).to_numpy(), index=features.index)
    expected = expected.fillna(features["account_id"].map(by_account)).fillna(0.0)
    return features.assign(
        log_attempts=log_attempts, relative_attempts=log_attempts - expected,
        failed_share=features["failed"] / attempts, premium_share=features["premium"] / attempts,
        international_share=features["international"] / attempts, short_share=features["short"] / attempts,
        log_callees=np.log1p(features["callees"].astype(float)), log_devices=np.log1p(features["devices"].astype(float)),
    )


def isolation_forest_findings(
    history: "pd.DataFrame", today: "pd.DataFrame", *, quantile: float, min_attempts: int, min_history: int, seed: int,
) -> "pd.DataFrame":
    """Findings (FINDING_COLUMNS) among `today`'s account-hours (`account_hour_features` rows) that an
    IsolationForest trained on `history`'s account-hours finds more anomalous than `quantile` of them.

    Score = -score_samples (higher: more anomalous), threshold = the history's `quantile` of it. Deterministic
    for `seed`. No finding (an empty frame) with fewer than `min_history` history rows.
    """
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import IsolationForest

    empty = pd.DataFrame(columns=list(FINDING_COLUMNS))
    if len(history) < min_history or today.empty:
        return empty
    usual = _usual_attempts(history)
    x_hist = _feature_matrix(history, usual)[list(IFOREST_FEATURES)].to_numpy(dtype=float)
    model = IsolationForest(n_estimators=200, random_state=seed).fit(x_hist)
    threshold = float(np.quantile(-model.score_samples(x_hist), quantile))
    scored = _feature_matrix(today, usual)
    scored["score"] = -model.score_samples(scored[list(IFOREST_FEATURES)].to_numpy(dtype=float))
    hits = scored[(scored["score"] > threshold) & (scored["attempts"] >= min_attempts)]
    if hits.empty:
        return empty
    evidence = [json.dumps({k: (round(float(r[k]), 4) if isinstance(r[k], float) else int(r[k]))
                            for k in ("attempts", "failed", "premium", "international", "short", "callees", "devices",
                                      "relative_attempts")}, sort_keys=True)
                for _, r in hits.iterrows()]
    hours = pd.to_datetime(hits["hour"])
    return pd.DataFrame({
        "detector": "account_baseline", "rule": "isolation_forest",
        "severity": np.where(hits["score"] > threshold + 0.1, "high", "medium"),
        "score": hits["score"].astype(float).to_numpy(), "threshold": threshold,
        "account_id": hits["account_id"].to_numpy(), "subscriber_pseudonym": None, "device_pseudonym": None,
        "window_start": hours.to_numpy(), "window_end": (hours + pd.Timedelta(hours=1)).to_numpy(), "evidence": evidence,
    })[list(FINDING_COLUMNS)]


# ----------------------------------------------------------------------------- findings -> rows

# ----------------------------------------------------------------------------- abuse at the door

def door_findings(quarantine: "DataFrame", manifest: "DataFrame", *, day: date, high_objects: int) -> "DataFrame":
    """Findings (FINDING_COLUMNS, detector door, rule suspected_spoofing), one per device: its uploads received on
    `day` that bronze quarantined at the door (jobs.ingest.door: replayed_nonce, upload_rate_exceeded; `quarantine`:
    bronze.quarantine, `manifest`: bronze.ingested_objects, which names the device). Severity high from
    `high_objects` uploads on (score = uploads / high_objects), else medium."""
    from pyspark.sql import functions as F

    held = (quarantine.where((F.col("upload_date") == F.lit(day)) & (F.col("record_index") == -1)
                             & F.col("reason").isin(*DOOR_REASONS)).select("object_key", "reason", "records")
            .join(manifest.where(F.col("upload_date") == F.lit(day))
                  .select("object_key", "device_pseudonym", "received_at"), on="object_key")
            .where(F.col("device_pseudonym").isNotNull()))
    per_device = held.groupBy("device_pseudonym").agg(
        F.count("*").alias("uploads"), F.sum("records").alias("records"),
        F.sum(F.when(F.col("reason") == REPLAYED_NONCE, 1).otherwise(0)).alias(REPLAYED_NONCE),
        F.sum(F.when(F.col("reason") == UPLOAD_RATE_EXCEEDED, 1).otherwise(0)).alias(UPLOAD_RATE_EXCEEDED),
        F.min("received_at").alias("window_start"), F.max("received_at").alias("window_end"))
    score = F.col("uploads") / F.lit(float(high_objects))
    return per_device.select(
        F.lit("door").alias("detector"), F.lit("suspected_spoofing").alias("rule"),
        F.when(F.col("uploads") >= F.lit(high_objects), "high").otherwise("medium").alias("severity"),
        score.alias("score"), F.lit(1.0).alias("threshold"), F.lit(None).cast("string").alias("account_id"),
        F.lit(None).cast("string").alias("subscriber_pseudonym"), "device_pseudonym", "window_start", "window_end",
        F.to_json(F.struct("uploads", "records", REPLAYED_NONCE, UPLOAD_RATE_EXCEEDED,
                           F.lit(high_objects).alias("spoofing_high_objects"))).alias("evidence"),
    )


def finding_schema() -> Any:
    from pyspark.sql import types as T

    spec = {c.name: c for c in GOLD_ANOMALIES.spark_schema().fields}
    return T.StructType([T.StructField(n, spec[n].dataType, True) for n in FINDING_COLUMNS])


def to_anomaly_rows(findings: "DataFrame", *, detection_date: date, run_id: str, detected_at: datetime) -> "DataFrame":
    """gold.anomalies rows: adds anomaly_id (SHA-256 of detector|rule|account|subscriber|device|window_start), the
    detection date and run columns."""
    from pyspark.sql import functions as F

    identity = F.concat_ws("|", *[F.coalesce(F.col(c).cast("string"), F.lit("")) for c in (
        "detector", "rule", "account_id", "subscriber_pseudonym", "device_pseudonym", "window_start")])
    return findings.withColumns({
        "anomaly_id": F.sha2(identity, 256), "detection_date": F.lit(detection_date),
        "run_id": F.lit(run_id), "detected_at": F.lit(detected_at),
    }).select(*GOLD_ANOMALIES.column_names)


def quarantine_entries(anomalies: "DataFrame", *, min_severity: str, key_id: str, now: datetime,
                       days: int) -> "DataFrame":
    """security.device_quarantine rows for the findings naming a device at or above `min_severity` ("off": none)."""
    from pyspark.sql import functions as F

    if min_severity == "off":
        return anomalies.limit(0).select(*[F.lit(None).cast(f.dataType).alias(f.name)
                                           for f in SECURITY_DEVICE_QUARANTINE.spark_schema().fields])
    eligible = [s for s in SEVERITIES if SEVERITY_RANK[s] >= SEVERITY_RANK[min_severity]]
    return anomalies.where(F.col("device_pseudonym").isNotNull() & F.col("severity").isin(*eligible)).select(
        F.sha2(F.concat_ws("|", "device_pseudonym", "anomaly_id"), 256).alias("quarantine_id"),
        "device_pseudonym", F.lit(key_id).alias("pseudonym_key_id"), "anomaly_id",
        F.concat(F.col("detector"), F.lit("/"), F.col("rule"), F.lit(" "), F.col("severity")).alias("reason"),
        "severity", F.lit(now).alias("quarantined_at"), F.lit(now + timedelta(days=days)).alias("expires_at"),
        F.lit(None).cast("timestamp").alias("released_at"), F.lit(None).cast("string").alias("released_by"),
        F.lit(None).cast("string").alias("release_reason"),
    )


def release_device(spark: "SparkSession", settings: Settings, *, device_pseudonym: str, by: str, reason: str,
                   now: datetime | None = None) -> int:
    """Release every active quarantine entry of a device; returns how many were released (0: it was not held)."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from jobs.platform import lake

    now = now or datetime.now(timezone.utc)
    if not lake.table_exists(spark, SECURITY_DEVICE_QUARANTINE, settings):
        return 0
    table = lake.read_table(spark, SECURITY_DEVICE_QUARANTINE, settings)
    held = active_quarantine(table, now=now).where(F.col("device_pseudonym") == device_pseudonym).count()
    if held:
        condition = (F.col("device_pseudonym") == device_pseudonym) & F.col("released_at").isNull() \
            & (F.col("expires_at") > F.lit(now))
        DeltaTable.forPath(spark, SECURITY_DEVICE_QUARANTINE.location(settings)).update(
            condition, {"released_at": F.lit(now), "released_by": F.lit(by), "release_reason": F.lit(reason)})
    return held


# ----------------------------------------------------------------------------- run

@dataclass(frozen=True)
class AnomalyContext:
    settings: Settings
    detection_date: date
    run_id: str = field(default_factory=lambda: f"anomalies-{uuid.uuid4().hex[:12]}")
    dag_id: str | None = None
    dag_run_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "detection_date", date.fromordinal(self.detection_date.toordinal()))


@dataclass(frozen=True)
class AnomalyReport:
    detection_date: str
    calls: int
    history_days: int  # the look-back window (anomalies.history_days)
    auth_events: int
    findings: int
    by_detector: dict[str, int]
    by_severity: dict[str, int]
    skipped: dict[str, str]  # detector -> why it did not run
    quarantined_devices: int
    siem_files: list[str]
    syslog_sent: int
    table_version: int | None
    seconds: float

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True)


def covered_dates(calls_per_date: dict[date, int], *, min_share: float = 0.1) -> list[date]:
    """History dates the lake really covers: those with at least `min_share` of the median date's calls.

    A date silver holds only a few late-arriving calls of (before the lake started, an ingestion outage) is not
    a day without calls, and counting its hours as zeros would drag every baseline to 0.
    """
    import numpy as np

    if not calls_per_date:
        return []
    typical = float(np.median(list(calls_per_date.values())))
    return sorted(d for d, n in calls_per_date.items() if n >= min_share * typical)


def detect(
    spark: "SparkSession", calls: "DataFrame", auth: "DataFrame | None", *, detection_date: date, config: AnomalySettings,
    call_prefixes: "DataFrame | None" = None,
) -> tuple["DataFrame", dict[str, str]]:
    """All findings (FINDING_COLUMNS) for `detection_date` from `calls` (silver.calls rows of that date and of the
    history before it) and `auth` (bronze.auth_events, or None); plus the detectors skipped and why.
    `call_prefixes`: (call_id, src_ip_prefix) of the calls (`call_source_prefixes`), for new_ip_range when enabled.

    The history is the `config.history_days` dates before `detection_date` that the calls cover (`covered_dates`).
    Collects only per-date counts and the enterprise account-hour features (accounts x hours) to the driver.
    """
    from pyspark.sql import functions as F

    window_dates = [detection_date - timedelta(days=i) for i in range(config.history_days, 0, -1)]
    today = calls.where(F.col("call_date") == F.lit(detection_date))
    past = calls.where(F.col("call_date").isin(window_dates))
    per_date = {r[0]: int(r[1]) for r in past.groupBy("call_date").count().collect()}  # <= history_days rows
    history_dates = covered_dates(per_date)
    past = past.where(F.col("call_date").isin(history_dates)) if history_dates else past.limit(0)
    skipped: dict[str, str] = {}
    parts = [consumption_anomalies(today, max_session_kbps=config.max_session_kbps,
                                   max_user_daily_mb=config.max_user_daily_mb)]
    if history_dates:
        parts.append(attempt_spikes(
            hourly_attempts(today), hourly_attempts(past), history_dates=history_dates,
            sensitivity=float(config.spike_sensitivity), min_attempts=config.spike_min_attempts,
            min_scale=float(config.spike_min_scale), min_slots=config.baseline_min_slots))
    else:  # the lake's first day: every busy account would look like a spike against nothing
        skipped["attempt_spike"] = f"no call history in the {config.history_days} days before"
    window = timedelta(hours=config.auth_window_hours)
    day_start = datetime(detection_date.year, detection_date.month, detection_date.day)
    logins = None
    if auth is not None:
        logins = auth.where((F.col("auth_ts") >= F.lit(day_start - window))
                            & (F.col("auth_ts") < F.lit(day_start + timedelta(days=1))))
    if logins is None or logins.limit(1).count() == 0:
        skipped["auth_correlation"] = "no authentication log covers the day"
    else:
        parts.append(auth_correlation(today, logins, window=window,
                                      tolerance=timedelta(seconds=config.auth_tolerance_seconds),
                                      call_prefixes=call_prefixes, ipv4_bits=config.auth_ipv4_range_bits,
                                      ipv6_bits=config.auth_ipv6_range_bits))
    features = account_hour_features(today.unionByName(past)).toPandas()  # B2B accounts x hours: small
    is_today = features["hour"].dt.date == detection_date
    features_history, features_today = features[~is_today].reset_index(drop=True), features[is_today].reset_index(drop=True)
    if len(features_history) < config.iforest_min_history_hours:
        skipped["account_baseline"] = (f"{len(features_history)} enterprise account-hours of history, "
                                       f"needs {config.iforest_min_history_hours}")
    else:
        found = isolation_forest_findings(
            features_history, features_today, quantile=float(config.iforest_quantile),
            min_attempts=config.iforest_min_attempts, min_history=config.iforest_min_history_hours,
            seed=config.iforest_seed)
        if not found.empty:
            parts.append(spark.createDataFrame(found, finding_schema()))
    findings = parts[0]
    for part in parts[1:]:
        findings = findings.unionByName(part)
    return findings, skipped


def run(spark: "SparkSession", ctx: AnomalyContext, *, key_id: str) -> AnomalyReport:
    """Detect D's anomalies into gold.anomalies (D's partition replaced), quarantine devices, export to the SIEM.

    `key_id`: the active pseudonym key id (the quarantine list records which key its pseudonyms are under).
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from jobs.platform import lake, lineage
    from jobs.security import siem
    from jobs.platform.spark import row_cache_level

    settings, config, day = ctx.settings, ctx.settings.anomalies, ctx.detection_date
    started = datetime.now(timezone.utc)
    t0 = time.monotonic()
    for spec in (SILVER_CALLS, BRONZE_AUTH_EVENTS, GOLD_ANOMALIES, SECURITY_DEVICE_QUARANTINE):
        lake.ensure_table(spark, spec, settings)
    before = {s.name: lake.table_version(spark, s, settings)
              for s in (GOLD_ANOMALIES, SECURITY_DEVICE_QUARANTINE)}
    inputs = {s.name: lake.table_version(spark, s, settings) for s in (SILVER_CALLS, BRONZE_AUTH_EVENTS)}
    first = day - timedelta(days=config.history_days)
    calls = (lake.read_table(spark, SILVER_CALLS, settings)
             .where(F.col("call_date").between(F.lit(first), F.lit(day))).persist(row_cache_level()))
    auth = lake.read_table(spark, BRONZE_AUTH_EVENTS, settings).where(
        F.col("auth_date").between(F.lit(first), F.lit(day)))
    call_prefixes = None
    if (config.auth_ipv4_range_bits > 0 or config.auth_ipv6_range_bits > 0) \
            and lake.table_exists(spark, BRONZE_CALL_EVENTS, settings):
        # D's calls' source prefixes; device clocks may put a call_start event a day off its corrected date
        inputs[BRONZE_CALL_EVENTS.name] = lake.table_version(spark, BRONZE_CALL_EVENTS, settings)
        call_prefixes = call_source_prefixes(lake.read_table(spark, BRONZE_CALL_EVENTS, settings).where(
            F.col("event_date").between(F.lit(day - timedelta(days=1)), F.lit(day + timedelta(days=1)))))
    findings, skipped = detect(spark, calls, auth, detection_date=day, config=config, call_prefixes=call_prefixes)
    if lake.table_exists(spark, BRONZE_QUARANTINE, settings) and lake.table_exists(spark, BRONZE_INGESTED_OBJECTS, settings):
        for spec in (BRONZE_QUARANTINE, BRONZE_INGESTED_OBJECTS):
            lake.ensure_table(spark, spec, settings)  # adds the door's registry columns to an older manifest
            inputs[spec.name] = lake.table_version(spark, spec, settings)
        findings = findings.unionByName(door_findings(
            lake.read_table(spark, BRONZE_QUARANTINE, settings), lake.read_table(spark, BRONZE_INGESTED_OBJECTS, settings),
            day=day, high_objects=settings.door.spoofing_high_objects))
    rows = to_anomaly_rows(findings, detection_date=day, run_id=ctx.run_id, detected_at=started).persist(
        StorageLevel.MEMORY_AND_DISK)
    lake.replace_partitions(spark, rows, GOLD_ANOMALIES, settings, where=f"detection_date = DATE'{day.isoformat()}'")
    alerts = [r.asDict() for r in rows.orderBy("detector", "rule", "window_start", "anomaly_id").collect()]
    held = quarantine_entries(rows, min_severity=config.quarantine_severity, key_id=key_id, now=started,
                              days=config.quarantine_days)
    already = lake.read_table(spark, SECURITY_DEVICE_QUARANTINE, settings).select("anomaly_id", "device_pseudonym")
    new_held = held.join(already, on=["anomaly_id", "device_pseudonym"], how="left_anti").persist(
        StorageLevel.MEMORY_AND_DISK)
    n_held = new_held.count()
    if n_held:
        lake.merge_insert_new(spark, new_held, SECURITY_DEVICE_QUARANTINE, settings)
    new_held.unpersist()
    n_calls = calls.where(F.col("call_date") == F.lit(day)).count()
    n_auth = auth.where(F.col("auth_date") == F.lit(day)).count()
    rows.unpersist()
    calls.unpersist()
    export = siem.export_alerts(alerts, config=config, run_id=ctx.run_id, detection_date=day)
    by_detector: dict[str, int] = {}
    by_severity: dict[str, int] = {}
    for alert in alerts:
        by_detector[alert["detector"]] = by_detector.get(alert["detector"], 0) + 1
        by_severity[alert["severity"]] = by_severity.get(alert["severity"], 0) + 1
    versions = {s.name: lake.table_version(spark, s, settings) for s in (GOLD_ANOMALIES, SECURITY_DEVICE_QUARANTINE)}
    report = AnomalyReport(
        detection_date=day.isoformat(), calls=n_calls, history_days=config.history_days, auth_events=n_auth,
        findings=len(alerts), by_detector=dict(sorted(by_detector.items())), by_severity=dict(sorted(by_severity.items())),
        skipped=skipped, quarantined_devices=n_held, siem_files=[str(p) for p in export.files],
        syslog_sent=export.syslog_sent, table_version=versions[GOLD_ANOMALIES.name],
        seconds=round(time.monotonic() - t0, 1),
    )
    lineage.record_run(spark, settings, lineage.LineageRecord(
        run_id=ctx.run_id, job="anomalies", dag_id=ctx.dag_id, dag_run_id=ctx.dag_run_id, logical_date=day,
        inputs=tuple(lineage.TableInput(table=name, version=v) for name, v in inputs.items()),
        outputs=tuple(lineage.TableOutput(table=name, version_before=before[name], version_after=v)
                      for name, v in versions.items()),
        metrics={k: v for k, v in json.loads(report.to_json()).items() if k not in ("table_version", "seconds")},
        rows_in=n_calls, rows_out=len(alerts), started_at=started, finished_at=datetime.now(timezone.utc),
    ))
    return report
