"""The usage and anomaly dashboard: one static, self-contained HTML page with plots and client-side filters.

    voiplake dashboard --out DIR [--from 2026-11-01 --to 2026-11-30] [--role noc_operator] [--as USER]

writes DIR/index.html, which opens offline (plotly.js is embedded inline, no network): usage per day and
platform, per region, per carrier; anomalies over time (score, coloured by detector) and per detector and
severity; the most severe findings as a table. Filters (select elements) by region, device type, platform,
carrier and network class re-filter the embedded data and redraw every plot (`Plotly.react`) in the browser.
The filter state lives in the URL (`index.html#platform=ios&region=DE`, a query string works too), so a view
can be bookmarked or sent.

What it shows, and from where (privacy):

- usage only from gold.hourly_geo_usage, the k-anonymous aggregate (every row covers >= k subscribers; each call
  counted in exactly one row), summed per call date x region x platform x carrier x network class: sums of
  k-anonymous rows, never a row-level table. "region" is the row's country (ISO 3166, US-CA for California),
  "carrier" its MCC-MNC ("*" where the k-anonymity generalization dropped it);
- anomalies from gold.anomalies: detector, rule, severity, score, window, account id and the device pseudonym
  (security needs to act on it; pseudonyms are keyed HMACs, never an MSISDN, IMEI or IP). Evidence keys that carry
  network addresses (IP prefixes) are left out. A finding's region / platform / carrier / network class are those
  of most of its subject's calls that day in silver.calls (device, else subscriber, else B2B account), only as
  these dimension values; "unknown" where the role may not read silver.calls or the subject made no call.
- "device type" is the client kind derived from the platform (smartphone app: ios, android; web browser: web):
  the lake keeps no device model (data minimization).

Reading goes through the acting role like every other read (lake_layout.access): the role must read
gold.hourly_geo_usage and gold.anomalies; only columns within its clearance are selected; the export is recorded in
audit.access_log (action "export") with the tables and columns the plans scanned (jobs.platform.access_log.plan_reads).

Pure transforms (`usage_cube`, `anomaly_dimensions`, `public_evidence`, `render_html`) are tested on tiny frames;
`render(spark, settings, ...)` does the reading, writing and access logging.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from lake_layout.config import Settings
from lake_layout.tables import GOLD_ANOMALIES, GOLD_HOURLY_GEO_USAGE, SILVER_CALLS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

DASHBOARD_FILE = "index.html"
DEFAULT_ROLE = "noc_operator"  # network operations and security are its users (lake_layout/access_policy.toml)
MAX_ANOMALIES = 5000  # findings embedded (most severe first); the page says when there were more
TABLE_ROWS = 50  # findings listed in the table under the plots (after filtering)
UNKNOWN = "unknown"

# Filter key (URL parameter) -> label. Order = order of the select elements.
DIMENSIONS: tuple[tuple[str, str], ...] = (
    ("region", "Region (country)"), ("device_type", "Device type"), ("platform", "Platform"),
    ("carrier", "Carrier (MCC-MNC)"), ("network", "Network class"),
)
DEVICE_TYPES = {"ios": "smartphone app", "android": "smartphone app", "web": "web browser"}
USAGE_COLUMNS = ("call_date", "region", "device_type", "platform", "carrier", "network", "calls", "failed_calls",
                 "total_minutes", "data_bytes")
ANOMALY_COLUMNS = ("detection_date", "detector", "rule", "severity", "score", "threshold", "account_id",
                   "device_pseudonym", "window_start", "window_end", "region", "device_type", "platform", "carrier",
                   "network", "evidence")
# Evidence keys naming network addresses: never shown on the dashboard (IP prefixes are personal data).
_ADDRESS_KEY = re.compile(r"(^|_)(ip|ips|ip_prefix|ip_prefixes|ip_ranges?|address(es)?)(_|$)")
SEVERITY_ORDER = ("critical", "high", "medium", "low")


def _device_type(platform: "Any") -> "Any":
    from pyspark.sql import functions as F

    expr = F.lit(UNKNOWN)
    for value, kind in DEVICE_TYPES.items():
        expr = F.when(platform == value, F.lit(kind)).otherwise(expr)
    return expr


# ----------------------------------------------------------------------------- pure transforms

def usage_cube(usage: "DataFrame") -> "DataFrame":
    """gold.hourly_geo_usage rows -> USAGE_COLUMNS: calls, failed calls, talk minutes and media bytes summed per
    call date x region (country) x device type x platform x carrier x network class.

    Every call is in exactly one gold row, so the sums are the calls of the group; the output has at most
    dates x countries x platforms x carriers x network classes rows (no geo zone, no hour), whatever the volume."""
    from pyspark.sql import functions as F

    return (
        usage.select(
            "call_date", F.col("country_code").alias("region"), _device_type(F.col("platform")).alias("device_type"),
            "platform", F.col("carrier_mccmnc").alias("carrier"), F.col("network_class").alias("network"),
            "calls", "failed_calls", "total_minutes", "data_bytes")
        .groupBy("call_date", "region", "device_type", "platform", "carrier", "network")
        .agg(F.sum("calls").alias("calls"), F.sum("failed_calls").alias("failed_calls"),
             F.sum("total_minutes").alias("total_minutes"), F.sum("data_bytes").alias("data_bytes"))
        .select(*USAGE_COLUMNS)
    )


def anomaly_dimensions(anomalies: "DataFrame", calls: "DataFrame | None") -> "DataFrame":
    """gold.anomalies rows (anomaly_id unique) -> ANOMALY_COLUMNS: the finding plus the region, device type,
    platform, carrier and network class of most of its subject's calls on the detection date (`calls`: silver.calls
    rows).

    The subject is the device when the finding names one, else the subscriber, else the B2B account (a consumer
    account is no subject: "consumer" is every consumer). Ties go to the larger value (deterministic). Without
    `calls`, or without a call of the subject, the dimensions are "unknown". Only the dimension values leave
    silver; `device_pseudonym` and `evidence` may be absent from `anomalies` (a role below confidential): null."""
    from pyspark.sql import functions as F

    for optional in ("device_pseudonym", "subscriber_pseudonym", "evidence"):
        if optional not in anomalies.columns:
            anomalies = anomalies.withColumn(optional, F.lit(None).cast("string"))
    dims = ("region", "platform", "carrier", "network")
    if calls is None:
        found = anomalies.withColumns({d: F.lit(UNKNOWN) for d in dims})
    else:
        per_call = calls.select(
            "call_date", "device_pseudonym", "subscriber_pseudonym", "account_id",
            F.coalesce("country_code", F.lit(UNKNOWN)).alias("region"), F.coalesce("platform", F.lit(UNKNOWN)).alias("platform"),
            F.coalesce("carrier_mccmnc", F.lit("*")).alias("carrier"),
            F.coalesce("network_class", F.lit(UNKNOWN)).alias("network"))
        # One pass for the three kinds of subject: rows exploded to (priority, kind, key), device first.
        candidates = F.explode(F.array(*[
            F.struct(F.lit(priority).alias("priority"), F.lit(kind).alias("kind"), F.col(column).alias("key"))
            for priority, (kind, column) in enumerate((("device", "device_pseudonym"), ("subscriber", "subscriber_pseudonym"),
                                                       ("account", "account_id")))]))

        def subjects(df: "DataFrame", *keep: str) -> "DataFrame":
            out = df.select(*keep, candidates.alias("s")).select(*keep, "s.priority", "s.kind", "s.key")
            return out.where(F.col("key").isNotNull() & ~((F.col("kind") == "account") & (F.col("key") == "consumer")))

        usual = (subjects(per_call, "call_date", *dims).groupBy("call_date", "kind", "key", *dims).count()
                 .groupBy("call_date", "kind", "key")
                 .agg(F.max_by(F.struct(*dims), F.struct("count", *dims)).alias("dims")))  # ties: larger values
        wanted = subjects(anomalies, "anomaly_id", "detection_date")
        best = (wanted.join(usual, (wanted["detection_date"] == usual["call_date"]) & (wanted["kind"] == usual["kind"])
                            & (wanted["key"] == usual["key"]))
                .groupBy("anomaly_id").agg(F.min_by("dims", "priority").alias("dims")))
        found = (anomalies.join(best, "anomaly_id", "left")
                 .withColumns({d: F.coalesce(F.col("dims").getField(d), F.lit(UNKNOWN)) for d in dims}))
    return found.withColumn("device_type", _device_type(F.col("platform"))).select(*ANOMALY_COLUMNS)


def public_evidence(evidence: str | None) -> dict[str, Any]:
    """A finding's evidence JSON as shown on the dashboard: every key except those naming network addresses
    (ip, ip_prefix, ip_ranges, ...: personal data that the dashboard never shows). Unparsable: {}."""
    try:
        parsed = json.loads(evidence) if evidence else {}
    except ValueError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    return {k: v for k, v in parsed.items() if not _ADDRESS_KEY.search(k.lower())}


# ----------------------------------------------------------------------------- the page

@dataclass(frozen=True)
class DashboardData:
    """What the page embeds: the usage cube and the findings (each a list of rows in its column order)."""

    start: date
    end: date
    generated_at: datetime
    generated_by: str
    role: str
    usage: tuple[tuple[Any, ...], ...]
    anomalies: tuple[tuple[Any, ...], ...]
    anomalies_truncated: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)  # e.g. a table not written yet, a column above clearance

    def filter_values(self) -> dict[str, list[str]]:
        """Per filter key, the values present in the usage cube or the findings, sorted."""
        u = {c: i for i, c in enumerate(USAGE_COLUMNS)}
        a = {c: i for i, c in enumerate(ANOMALY_COLUMNS)}
        return {key: sorted({str(r[u[key]]) for r in self.usage} | {str(r[a[key]]) for r in self.anomalies})
                for key, _ in DIMENSIONS}


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 4)
    return value


def _embedded(data: DashboardData) -> str:
    """The page's data as JSON, safe inside a <script> element (no "</" sequence can close it)."""
    ev = ANOMALY_COLUMNS.index("evidence")
    anomalies = [[public_evidence(v) if i == ev else _json_value(v) for i, v in enumerate(row)] for row in data.anomalies]
    payload = {
        "dimensions": [{"key": k, "label": label} for k, label in DIMENSIONS],
        "values": data.filter_values(),
        "usage": {"columns": list(USAGE_COLUMNS), "rows": [[_json_value(v) for v in r] for r in data.usage]},
        "anomalies": {"columns": list(ANOMALY_COLUMNS), "rows": anomalies},
        "severities": list(SEVERITY_ORDER), "table_rows": TABLE_ROWS,
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=False).replace("</", "<\\/")


_CSS = """
body { font-family: system-ui, sans-serif; margin: 20px; color: #1d1d1d; background: #fff; }
h1 { margin: 0 0 4px; } .meta, .note { color: #555; margin: 2px 0; } .note { font-style: italic; }
.filters { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; padding: 10px; background: #f3f4f6; }
.filters label { display: flex; flex-direction: column; font-size: 12px; font-weight: 600; }
.filters select { min-width: 150px; font-size: 13px; }
.cards { display: flex; gap: 12px; margin: 8px 0 12px; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; min-width: 130px; }
.card b { display: block; font-size: 22px; } .card span { font-size: 12px; color: #555; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 10px; }
.plot { height: 340px; border: 1px solid #eee; }
table { border-collapse: collapse; font-size: 12px; margin-top: 8px; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #eee; } td.evidence { max-width: 520px; overflow-wrap: anywhere; font-family: monospace; }
"""

# The page's script: reads the filter state from the URL, filters the embedded rows, (re)draws every plot with
# Plotly.react and writes the totals; a change of a select updates the URL hash (and a hash change the view).
_JS = r"""
(function () {
  const DATA = JSON.parse(document.getElementById('dashboard-data').textContent);
  const DIMS = DATA.dimensions.map(d => d.key);
  const rows = (t) => t.rows.map(r => Object.fromEntries(t.columns.map((c, i) => [c, r[i]])));
  const USAGE = rows(DATA.usage), ANOMALIES = rows(DATA.anomalies);
  const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf',
                   '#bcbd22', '#7f7f7f'];
  const SEVERITY_COLOURS = {critical: '#7f0000', high: '#d62728', medium: '#ff7f0e', low: '#f2c744'};
  const LAYOUT = {margin: {l: 60, r: 20, t: 40, b: 60}, paper_bgcolor: '#ffffff', plot_bgcolor: '#fafafa',
                  font: {size: 12}, legend: {orientation: 'h', y: -0.2}};
  const CONFIG = {displaylogo: false, responsive: true, displayModeBar: false};  // drag to zoom, double-click resets

  function readState() {
    const params = new URLSearchParams(location.search);
    new URLSearchParams(location.hash.replace(/^#/, '')).forEach((v, k) => params.set(k, v));
    const state = {};
    DIMS.forEach(k => { state[k] = params.get(k) || 'all'; });
    return state;
  }
  function writeState(state) {
    const params = new URLSearchParams();
    DIMS.forEach(k => { if (state[k] !== 'all') params.set(k, state[k]); });
    history.replaceState(null, '', '#' + params.toString());
  }
  const keep = (state) => (row) => DIMS.every(k => state[k] === 'all' || String(row[k]) === state[k]);
  function sumBy(items, key, value) {
    const out = new Map();
    items.forEach(r => out.set(r[key], (out.get(r[key]) || 0) + r[value]));
    return out;
  }
  const sorted = (m) => Array.from(m.keys()).sort();
  const total = (items, value) => items.reduce((s, r) => s + r[value], 0);
  const fmt = (x, digits) => x.toLocaleString('en-US', {maximumFractionDigits: digits || 0});

  function setSums(id, traces) {
    const sums = traces.map(t => ({name: t.name || '', sum: (t.y || t.x || []).reduce((s, v) => s + (+v || 0), 0)}));
    document.getElementById(id).dataset.traces = JSON.stringify(sums);
  }
  function react(id, traces, layout) {
    setSums(id, traces);
    Plotly.react(id, traces, Object.assign({}, LAYOUT, layout), CONFIG);
  }

  function draw() {
    const state = readState();
    DIMS.forEach(k => {
      const sel = document.getElementById('filter-' + k);
      if (![...sel.options].some(o => o.value === state[k])) sel.add(new Option(state[k] + ' (no data)', state[k]));
      sel.value = state[k];
    });
    const usage = USAGE.filter(keep(state)), anomalies = ANOMALIES.filter(keep(state));
    const calls = total(usage, 'calls');
    document.getElementById('total-calls').textContent = fmt(calls);
    document.getElementById('total-failed').textContent = fmt(total(usage, 'failed_calls'));
    document.getElementById('total-minutes').textContent = fmt(total(usage, 'total_minutes'), 1);
    document.getElementById('total-anomalies').textContent = fmt(anomalies.length);
    document.body.dataset.calls = String(calls);
    document.body.dataset.anomalies = String(anomalies.length);
    document.body.dataset.state = JSON.stringify(state);

    const dates = sorted(new Map(usage.map(r => [r.call_date, 1])));
    const platforms = sorted(new Map(usage.map(r => [r.platform, 1])));
    react('plot-daily', platforms.map(p => {
      const per = sumBy(usage.filter(r => r.platform === p), 'call_date', 'calls');
      const colour = COLOURS[DATA.values.platform.indexOf(p) % 10];  // a platform keeps its colour under filters
      return {type: 'bar', name: p, x: dates, y: dates.map(d => per.get(d) || 0), marker: {color: colour}};
    }), {title: {text: 'Calls per day by platform'}, barmode: 'stack', xaxis: {type: 'category'}});

    const byRegion = sumBy(usage, 'region', 'calls'), regions = sorted(byRegion);
    const failedRegion = sumBy(usage, 'region', 'failed_calls');
    react('plot-region', [
      {type: 'bar', name: 'calls', x: regions, y: regions.map(r => byRegion.get(r)), marker: {color: '#1f77b4'}},
      {type: 'bar', name: 'failed calls', x: regions, y: regions.map(r => failedRegion.get(r)), marker: {color: '#d62728'}},
    ], {title: {text: 'Calls by region'}, barmode: 'group'});

    const byCarrier = sumBy(usage, 'carrier', 'total_minutes');
    const carriers = Array.from(byCarrier.keys()).sort((a, b) => byCarrier.get(b) - byCarrier.get(a)).slice(0, 15).reverse();
    react('plot-carrier', [{type: 'bar', orientation: 'h', name: 'talk minutes', y: carriers,
                            x: carriers.map(c => byCarrier.get(c)), marker: {color: '#2ca02c'}}],
          {title: {text: 'Talk minutes by carrier (top 15)'}, margin: {l: 90, r: 20, t: 40, b: 40},
           yaxis: {type: 'category'}});

    const detectors = sorted(new Map(anomalies.map(r => [r.detector, 1])));
    const allDetectors = sorted(new Map(ANOMALIES.map(r => [r.detector, 1])));
    react('plot-anomaly-time', detectors.map(d => {
      const i = allDetectors.indexOf(d);
      const mine = anomalies.filter(r => r.detector === d);
      return {type: 'scatter', mode: 'markers', name: d, x: mine.map(r => r.window_start), y: mine.map(r => r.score),
              text: mine.map(r => `${r.rule} · ${r.severity} · ${r.account_id || ''} ${r.device_pseudonym || ''}`),
              marker: {size: 11, color: COLOURS[(i + 3) % 10], line: {width: 1, color: '#333'}}};
    }), {title: {text: 'Anomalies: score over time by detector'}, yaxis: {type: 'log', title: {text: 'score'}}});

    react('plot-anomaly-severity', DATA.severities.slice().reverse().map(s => {
      const per = sumBy(anomalies.filter(r => r.severity === s).map(r => ({d: r.detector, n: 1})), 'd', 'n');
      return {type: 'bar', name: s, x: allDetectors, y: allDetectors.map(d => per.get(d) || 0),
              marker: {color: SEVERITY_COLOURS[s]}};
    }), {title: {text: 'Anomalies by detector and severity'}, barmode: 'stack'});

    const rank = (s) => DATA.severities.indexOf(s);
    const top = anomalies.slice().sort((a, b) => rank(a.severity) - rank(b.severity) || b.score - a.score)
      .slice(0, DATA.table_rows);
    const body = document.querySelector('#anomaly-table tbody');
    body.replaceChildren(...top.map(r => {
      const tr = document.createElement('tr');
      [r.severity, r.detector + '/' + r.rule, fmt(r.score, 2), r.window_start, r.account_id || '',
       r.device_pseudonym ? r.device_pseudonym.slice(0, 16) + '…' : '', r.region, r.platform, r.carrier,
       JSON.stringify(r.evidence)].forEach((v, i) => {
        const td = document.createElement('td');
        td.textContent = v;
        if (i === 9) td.className = 'evidence';
        tr.appendChild(td);
      });
      return tr;
    }));
    document.getElementById('anomaly-count').textContent =
      anomalies.length > top.length ? `${top.length} most severe of ${anomalies.length}` : `${anomalies.length}`;
  }

  DIMS.forEach(k => document.getElementById('filter-' + k).addEventListener('change', () => {
    const state = readState();
    DIMS.forEach(d => { state[d] = document.getElementById('filter-' + d).value; });
    writeState(state);
    draw();
  }));
  window.addEventListener('hashchange', draw);
  draw();
})();
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def plotly_js() -> str:
    """The plotly.js bundle shipped with the plotly package (embedded: the page works offline)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def render_html(data: DashboardData, *, plotly_bundle: str | None = None) -> str:
    """The dashboard as one HTML document: plotly.js, the data (JSON) and the filter script inline.

    `plotly_bundle`: the plotly.js source (default: the installed plotly package's)."""
    values = data.filter_values()
    selects = "".join(
        f'<label for="filter-{key}">{_e(label)}<select id="filter-{key}" name="{key}"><option value="all">all</option>'
        + "".join(f'<option value="{_e(v)}">{_e(v)}</option>' for v in values[key]) + "</select></label>"
        for key, label in DIMENSIONS)
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in data.notes)
    if data.anomalies_truncated:
        notes += f'<p class="note">Only the {MAX_ANOMALIES:,} most severe findings of the period are included.</p>'
    bundle = (plotly_bundle if plotly_bundle is not None else plotly_js()).replace("</script", "<\\/script")
    headers = "".join(f"<th>{h}</th>" for h in ("severity", "detector/rule", "score", "window start", "account",
                                                "device", "region", "platform", "carrier", "evidence"))
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>voiplake dashboard {data.start} to {data.end}</title><style>{_CSS}</style>",
        f"<script>{bundle}</script></head><body>",
        f'<h1>voiplake usage and anomalies</h1><p class="meta">Call dates {data.start} to {data.end} (UTC). Generated '
        f"{data.generated_at:%Y-%m-%d %H:%M:%S} UTC by {_e(data.generated_by)} (role {_e(data.role)}). Usage from the "
        "k-anonymous gold.hourly_geo_usage; anomalies from gold.anomalies (subjects as pseudonyms only).</p>",
        notes,
        f'<form class="filters" id="filters" onsubmit="return false">{selects}</form>',
        '<div class="cards"><div class="card"><b id="total-calls">0</b><span>calls</span></div>'
        '<div class="card"><b id="total-failed">0</b><span>failed calls</span></div>'
        '<div class="card"><b id="total-minutes">0</b><span>talk minutes</span></div>'
        '<div class="card"><b id="total-anomalies">0</b><span>anomalies</span></div></div>',
        '<h2>Usage</h2><div class="grid"><div class="plot" id="plot-daily"></div><div class="plot" id="plot-region"></div>'
        '<div class="plot" id="plot-carrier"></div></div>',
        '<h2>Anomalies</h2><div class="grid"><div class="plot" id="plot-anomaly-time"></div>'
        '<div class="plot" id="plot-anomaly-severity"></div></div>',
        f'<h3>Findings (<span id="anomaly-count">0</span>)</h3><table id="anomaly-table"><thead><tr>{headers}</tr>'
        "</thead><tbody></tbody></table>",
        f'<script type="application/json" id="dashboard-data">{_embedded(data)}</script>',
        f"<script>{_JS}</script>",
        "</body></html>",
    ])


# ----------------------------------------------------------------------------- reading (I/O) and rendering

def _readable(spec: Any, role: str, wanted: Sequence[str]) -> list[str]:
    from lake_layout.access import readable_columns

    allowed = set(readable_columns(spec, role))
    return [c for c in wanted if c in allowed]


def collect(spark: "SparkSession", settings: Settings, *, start: date, end: date, role: str, user: str
            ) -> tuple[DashboardData, list["DataFrame"]]:
    """Read what the dashboard shows for call dates [start, end] as `role`; also the DataFrames read (for the
    access log). Raises AccessDenied when the role may not read gold.hourly_geo_usage or gold.anomalies."""
    from pyspark.sql import functions as F

    from jobs.platform import lake
    from lake_layout.access import AccessDenied, may_read_table

    closed = [s.name for s in (GOLD_HOURLY_GEO_USAGE, GOLD_ANOMALIES) if not may_read_table(s, role)]
    if closed:
        raise AccessDenied(f"{', '.join(closed)} closed to role {role!r} (see lake_layout/access_policy.toml)")
    notes: list[str] = []
    read: list["DataFrame"] = []
    usage_rows: list[tuple[Any, ...]] = []
    usage_needed = ["call_date", "country_code", "platform", "carrier_mccmnc", "network_class", "calls", "failed_calls",
                    "total_minutes", "data_bytes"]
    if not lake.table_exists(spark, GOLD_HOURLY_GEO_USAGE, settings):
        notes.append(f"{GOLD_HOURLY_GEO_USAGE.name} has not been written yet: no usage to show.")
    elif len(_readable(GOLD_HOURLY_GEO_USAGE, role, usage_needed)) < len(usage_needed):
        notes.append(f"Role {role!r} may not read the usage columns of {GOLD_HOURLY_GEO_USAGE.name}.")
    else:
        usage = (lake.read_table(spark, GOLD_HOURLY_GEO_USAGE, settings)
                 .where(F.col("call_date").between(F.lit(start), F.lit(end))).select(*usage_needed))
        cube = usage_cube(usage)
        read.append(cube)
        usage_rows = [tuple(r) for r in cube.orderBy(*USAGE_COLUMNS[:6]).collect()]  # dims x dates: bounded

    anomaly_rows: list[tuple[Any, ...]] = []
    truncated = False
    required = ["anomaly_id", "detection_date", "detector", "rule", "severity", "score", "threshold", "account_id",
                "window_start", "window_end"]
    optional = ["device_pseudonym", "subscriber_pseudonym", "evidence"]
    if not lake.table_exists(spark, GOLD_ANOMALIES, settings):
        notes.append(f"{GOLD_ANOMALIES.name} has not been written yet: no anomalies to show.")
    elif len(_readable(GOLD_ANOMALIES, role, required)) < len(required):
        notes.append(f"Role {role!r} may not read the findings of {GOLD_ANOMALIES.name}.")
    else:
        columns = required + _readable(GOLD_ANOMALIES, role, optional)
        if len(columns) < len(required) + len(optional):
            notes.append(f"Role {role!r} may not read pseudonyms or evidence of {GOLD_ANOMALIES.name}: not shown.")
        anomalies = (lake.read_table(spark, GOLD_ANOMALIES, settings)
                     .where(F.col("detection_date").between(F.lit(start), F.lit(end))).select(*columns))
        call_columns = ["call_date", "device_pseudonym", "subscriber_pseudonym", "account_id", "country_code",
                        "platform", "carrier_mccmnc", "network_class"]
        calls = None
        if not lake.table_exists(spark, SILVER_CALLS, settings):
            notes.append(f"{SILVER_CALLS.name} has not been written yet: anomalies have no region, platform or carrier.")
        elif len(_readable(SILVER_CALLS, role, call_columns)) < len(call_columns):
            notes.append(f"Role {role!r} may not read {SILVER_CALLS.name}: anomalies have no region, platform or carrier.")
        else:
            calls = (lake.read_table(spark, SILVER_CALLS, settings)
                     .where(F.col("call_date").between(F.lit(start), F.lit(end))).select(*call_columns))
        found = anomaly_dimensions(anomalies, calls)
        read.append(found)
        rank = F.when(F.col("severity") == "critical", 0).when(F.col("severity") == "high", 1) \
            .when(F.col("severity") == "medium", 2).otherwise(3)
        collected = found.orderBy(rank, F.col("score").desc(), "window_start").limit(MAX_ANOMALIES + 1).collect()
        truncated = len(collected) > MAX_ANOMALIES
        anomaly_rows = [tuple(r) for r in collected[:MAX_ANOMALIES]]
    data = DashboardData(start=start, end=end, generated_at=datetime.now(timezone.utc), generated_by=user, role=role,
                         usage=tuple(usage_rows), anomalies=tuple(anomaly_rows), anomalies_truncated=truncated,
                         notes=tuple(notes))
    return data, read


def render(spark: "SparkSession", settings: Settings, *, out: Path, start: date, end: date, role: str = DEFAULT_ROLE,
           user: str | None = None) -> Path:
    """Write `out`/index.html for call dates [start, end] as `role`, record it in audit.access_log (export) with
    the tables and columns its plans scanned, and return its path.

    Raises ValueError when start is after end, AccessDenied when the role may not read the gold tables."""
    from jobs.platform.access_log import current_user, plan_reads, record_access

    if start > end:
        raise ValueError(f"dashboard period: --from {start} is after --to {end}")
    who = current_user(user)
    data, read = collect(spark, settings, start=start, end=end, role=role, user=who)
    out.mkdir(parents=True, exist_ok=True)
    path = out / DASHBOARD_FILE
    path.write_text(render_html(data), encoding="utf-8")
    tables: set[str] = set()
    columns: set[str] = set()
    for df in read:
        t, c = plan_reads(df, settings)
        tables.update(t)
        columns.update(c)
    record_access(spark, settings, user=who, role=role, action="export",
                  sql=f"voiplake dashboard --out {out} --from {start} --to {end} --role {role}",
                  tables=sorted(tables), columns=sorted(columns), rows=len(data.usage) + len(data.anomalies),
                  allowed=True, reason=None)
    return path
