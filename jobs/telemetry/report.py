"""Telemetry overhead report: what the SDK costs the phone and the network, per platform, app version and
network class (`voiplake report telemetry --out DIR [--from D --to D]`).

DIR/index.html is one self-contained page (plotly.js inline, opens offline) with four plots, and DIR/telemetry.json
holds the same numbers. All from bronze, over the upload (collector receive) dates of the period:

* bytes per call: the landing objects' bytes (retried uploads included, they cost the same) shared out evenly over
  the events each object carried, summed per group and divided by the group's distinct calls;
* batches per day: distinct upload batches per device and upload date, averaged over the devices of the group;
* deferred uploads: the share of batches whose send time came more than `DEFERRED_AFTER` after their newest event.
  The upload says nothing about the network or the battery at send time, so a held-back batch is how an SDK
  waiting for Wi-Fi or charging shows up in the lake; it is counted under the network class of the batch's newest
  event (the network the phone was on when it started to wait);
* late arrivals: how long after the event (device time corrected by the batch's clock offset) the collector
  received it, in LATE_BUCKETS.

Network classes are lake_layout.reporting_units.NETWORK_CLASSES ('unknown' when a client reported none). Pure
transforms (`call_overhead`, `batch_overhead`, `late_arrivals`, `render_html`) are tested on tiny frames; `render`
reads, writes and returns the paths.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lake_layout.config import Settings
from lake_layout.reporting_units import NETWORK_CLASSES
from lake_layout.tables import BRONZE_CALL_EVENTS, BRONZE_INGESTED_OBJECTS

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

REPORT_FILE = "index.html"
DATA_FILE = "telemetry.json"
DEFERRED_AFTER = timedelta(minutes=15)
# (label, upper bound in seconds; None = no bound), in order
LATE_BUCKETS: tuple[tuple[str, int | None], ...] = (
    ("< 1 min", 60), ("1-15 min", 900), ("15 min-1 h", 3600), ("1-6 h", 6 * 3600), ("6-24 h", 86400), (">= 1 day", None))
GROUP = ("platform", "app_version", "network_class")


def network_class(column: str = "network_type") -> "Column":
    """NETWORK_CLASSES of a network_type column; 'unknown' for none or an unlisted one."""
    from pyspark.sql import functions as F

    mapping = F.create_map(*[F.lit(x) for pair in NETWORK_CLASSES.items() for x in pair])
    return F.coalesce(mapping[F.col(column)], F.lit("unknown"))


def _grouped(df: "DataFrame") -> "DataFrame":
    from pyspark.sql import functions as F

    return (df.withColumn("network_class", network_class())
            .withColumn("app_version", F.coalesce(F.col("app_version"), F.lit("unknown"))))


def call_overhead(events: "DataFrame", objects: "DataFrame") -> "DataFrame":
    """(platform, app_version, network_class, calls, telemetry_bytes, bytes_per_call): each object's bytes shared
    evenly over the accepted events it carried; calls counted by distinct call_id."""
    from pyspark.sql import functions as F

    per_object = events.groupBy("object_key").agg(F.count("*").alias("_n"))
    share = (objects.select("object_key", "size_bytes").join(per_object, "object_key")
             .select("object_key", (F.col("size_bytes") / F.col("_n")).alias("_share")))
    return (_grouped(events).join(share, "object_key").groupBy(*GROUP)
            .agg(F.countDistinct("call_id").alias("calls"), F.sum("_share").alias("telemetry_bytes"))
            .withColumn("bytes_per_call", F.col("telemetry_bytes") / F.col("calls")))


def batch_overhead(events: "DataFrame", *, deferred_after: timedelta = DEFERRED_AFTER) -> "DataFrame":
    """(platform, app_version, network_class, batches, device_days, batches_per_device_day, deferred_share): a batch
    belongs to the network class of its newest event and to its device's upload (receive) date."""
    from pyspark.sql import functions as F

    batches = (_grouped(events).groupBy("device_pseudonym", "batch_id").agg(
        F.first("platform").alias("platform"), F.first("app_version").alias("app_version"),
        F.max_by("network_class", "event_ts_device").alias("network_class"),
        F.max("event_ts_device").alias("newest_event"), F.min("sent_at_device").alias("sent_at_device"),
        F.to_date(F.min("received_at")).alias("upload_date")))
    held = F.col("sent_at_device") > F.col("newest_event") + F.expr(f"INTERVAL {int(deferred_after.total_seconds())} SECONDS")
    return (batches.groupBy(*GROUP).agg(
        F.count("*").alias("batches"),
        F.countDistinct("device_pseudonym", "upload_date").alias("device_days"),
        F.avg(F.when(held, 1.0).otherwise(0.0)).alias("deferred_share"))
        .withColumn("batches_per_device_day", F.col("batches") / F.col("device_days")))


def late_arrivals(events: "DataFrame") -> "DataFrame":
    """(platform, app_version, network_class, bucket, events): events by how late the collector received them
    (received_at - (event_ts_device + clock_offset_ms)), in LATE_BUCKETS."""
    from pyspark.sql import functions as F

    corrected_ms = F.col("event_ts_device").cast("double") * 1000 + F.coalesce(F.col("clock_offset_ms"), F.lit(0))
    late_s = F.greatest(F.lit(0.0), (F.col("received_at").cast("double") * 1000 - corrected_ms) / 1000)
    bucket = None
    for label, upper in reversed(LATE_BUCKETS):
        bucket = F.lit(label) if bucket is None else F.when(late_s < upper, F.lit(label)).otherwise(bucket)  # type: ignore[arg-type]
    return _grouped(events).withColumn("bucket", bucket).groupBy(*GROUP, "bucket").agg(F.count("*").alias("events"))


# ----------------------------------------------------------------------------- HTML

@dataclass(frozen=True)
class TelemetryOverhead:
    """The report's numbers (small: one row per group, collected from the aggregates)."""

    period: tuple[str, str]
    calls: list[dict[str, Any]]
    batches: list[dict[str, Any]]
    late: list[dict[str, Any]]

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True, default=str)


def _label(row: dict[str, Any]) -> str:
    return f"{row['platform']} {row['app_version']}"


def _bars(rows: list[dict[str, Any]], value: str, *, percent: bool = False) -> list[Any]:
    """One bar trace per network class over 'platform app_version' on the x axis."""
    import plotly.graph_objects as go

    builds = sorted({_label(r) for r in rows})
    traces = []
    for cls in sorted({r["network_class"] for r in rows}):
        by_build = {_label(r): r[value] for r in rows if r["network_class"] == cls}
        ys = [(by_build.get(b) or 0) * (100 if percent else 1) for b in builds]
        traces.append(go.Bar(name=cls, x=builds, y=ys))
    return traces


def render_html(data: TelemetryOverhead) -> str:
    """The whole page: a summary table per group and four plotly figures, plotly.js inline (works offline)."""
    import plotly.graph_objects as go
    from plotly.io import to_html

    figures = []
    specs = (
        ("Telemetry bytes per call", "bytes", _bars(data.calls, "bytes_per_call")),
        ("Upload batches per device and day", "batches", _bars(data.batches, "batches_per_device_day")),
        (f"Uploads deferred (sent > {int(DEFERRED_AFTER.total_seconds() // 60)} min after their newest event)", "%",
         _bars(data.batches, "deferred_share", percent=True)),
    )
    for title, unit, traces in specs:
        fig = go.Figure(traces, layout={"title": title, "barmode": "group", "yaxis": {"title": unit}, "height": 420,
                                        "legend": {"title": {"text": "network class"}}})
        figures.append(fig)
    # Late arrivals: one stacked bar per build, share of its events per bucket (all network classes together).
    builds = sorted({_label(r) for r in data.late})
    totals = {b: sum(r["events"] for r in data.late if _label(r) == b) for b in builds}
    late = go.Figure(layout={"title": "Late arrivals: receive time - corrected event time", "barmode": "stack",
                             "yaxis": {"title": "% of events"}, "height": 420})
    for label, _ in LATE_BUCKETS:
        ys = [100 * sum(r["events"] for r in data.late if _label(r) == b and r["bucket"] == label) / totals[b]
              if totals[b] else 0 for b in builds]
        late.add_trace(go.Bar(name=label, x=builds, y=ys))
    figures.append(late)
    parts = [to_html(fig, full_html=False, include_plotlyjs="inline" if i == 0 else False, div_id=f"plot-{i}")
             for i, fig in enumerate(figures)]
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
            r["platform"], r["app_version"], r["network_class"], r["calls"], f"{r['bytes_per_call']:.0f}")) + "</tr>"
        for r in sorted(data.calls, key=lambda r: (r["platform"], r["app_version"], r["network_class"])))
    start, end = (html.escape(d) for d in data.period)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>voiplake telemetry overhead {start} - {end}</title>
<style>body{{font-family:sans-serif;margin:24px;color:#222}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}} .plot{{margin-bottom:24px}}</style></head>
<body><h1>Telemetry overhead, uploads received {start} to {end}</h1>
<p>Per platform, app version and network class, from bronze (landing-object bytes, batches, receive times).
Deferred uploads: batches sent more than {int(DEFERRED_AFTER.total_seconds() // 60)} minutes after their newest
event, which is how waiting for Wi-Fi or charging shows in the lake (the upload carries no network or battery
state).</p>
{''.join(f'<div class="plot">{p}</div>' for p in parts)}
<h2>Bytes per call</h2><table><tr><th>platform</th><th>app version</th><th>network class</th><th>calls</th>
<th>bytes per call</th></tr>{rows}</table></body></html>
"""


def overhead(events: "DataFrame", objects: "DataFrame", *, period: tuple[date, date]) -> TelemetryOverhead:
    """Compute and collect the three aggregates (one row per group and bucket: bounded by the builds in the field)."""
    def rows(df: "DataFrame") -> list[dict[str, Any]]:
        return [r.asDict() for r in df.collect()]

    return TelemetryOverhead(period=(period[0].isoformat(), period[1].isoformat()),
                             calls=rows(call_overhead(events, objects)), batches=rows(batch_overhead(events)),
                             late=rows(late_arrivals(events)))


def render(spark: "SparkSession", settings: Settings, out: Path, *, date_from: date, date_to: date) -> dict[str, str]:
    """Write DIR/index.html and DIR/telemetry.json for uploads received date_from..date_to (inclusive)."""
    from pyspark.sql import functions as F

    from jobs.platform import lake

    if date_to < date_from:
        raise ValueError(f"--to {date_to} is before --from {date_from}")
    start = datetime(date_from.year, date_from.month, date_from.day, tzinfo=timezone.utc)
    end = datetime(date_to.year, date_to.month, date_to.day, tzinfo=timezone.utc) + timedelta(days=1)
    for spec in (BRONZE_CALL_EVENTS, BRONZE_INGESTED_OBJECTS):
        lake.ensure_table(spark, spec, settings)
    events = lake.read_table(spark, BRONZE_CALL_EVENTS, settings).where(
        (F.col("received_at") >= F.lit(start)) & (F.col("received_at") < F.lit(end)))
    objects = lake.read_table(spark, BRONZE_INGESTED_OBJECTS, settings).where(
        F.col("upload_date").between(F.lit(date_from), F.lit(date_to)))
    data = overhead(events, objects, period=(date_from, date_to))
    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT_FILE).write_text(render_html(data))
    (out / DATA_FILE).write_text(data.to_json())
    return {"report": str(out / REPORT_FILE), "data": str(out / DATA_FILE)}
