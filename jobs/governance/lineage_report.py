"""The auditors' lineage report: one self-contained HTML file with the lineage graph drawn as SVG.

    voiplake report lineage --out DIR [--from 2026-11-01 --to 2026-11-30]

The report shows, for a period (default the last 30 days):

- the lineage graph of every table that has lineage, down to the landing objects: a picture (inline SVG), one
  node per table and one node per upload date of landing objects ("landing: N objects (date)", a sample of their
  SHA-256s in the node's tooltip and in the landing table below the graph); edges are labelled by the jobs that
  read one node to write the other;
- per registry table: its highest sensitivity and the number of columns per classification, its retention tier
  and its period per jurisdiction (lake_layout/retention_policy.toml), the last writes from Delta's
  `DESCRIBE HISTORY` (version, timestamp, operation, operation metrics) and its quality results;
- the quality-gate results, the privacy budget spent, the data-subject requests and the retention actions of
  the period (audit.quality_results, audit.privacy_budget, audit.dsr_requests, audit.retention_actions); an
  empty or not yet written table reads "No ... in the period".

The graph walks audit.lineage with the same code as `voiplake lineage TABLE`
(`jobs.platform.lineage.upstream_graph_from_rows`), from each table's newest version and from every version a run wrote
in the period, and merges the walks into one table-level graph.

Why the SVG is laid out here and not by Graphviz: `dot` is not on the machines the suite runs on, and the
Debian `graphviz` package (or a PyPI binding needing it) would add a system install step to every CI run for
one picture. The graph is small and already layered by construction (landing -> bronze -> silver -> gold /
audit: a table's column is the length of the longest lineage path from landing to it), so a layered layout
with one barycenter ordering sweep per column (Sugiyama's heuristic, the core of `dot` itself) gives a readable,
deterministic drawing in ~100 lines of pure Python that tests can check node by node.

Pure functions build the report from plain Python data (`lineage_graph`, `layout`, `render_svg`,
`render_html`); `render(spark, settings, ...)` does the reading, writes the file and records the report in
audit.access_log as an export by the acting user in role auditor (it reads audit tables only, within the
auditor's clearance: no pseudonym column is read).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from lake_layout.config import Settings
from lake_layout.registry import Classification, Sensitivity, TableSpec

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from jobs.platform.lineage import LineageNode

REPORT_FILE = "lineage-report.html"
REPORT_ROLE = "auditor"
DEFAULT_DAYS = 30
HISTORY_VERSIONS = 5  # last writes shown per table
SAMPLE_SHAS = 5  # SHA-256s shown per landing node
MAX_ROWS = 500  # rows shown per audit section (the count says when there are more)

# Fill colour of a node by layer. Distinct, saturated colours: the browser test finds them in the screenshot.
LAYER_FILL = {
    "landing": "#2a9d8f", "bronze": "#b5651d", "reference": "#6d597a", "silver": "#8d99ae",
    "gold": "#e9b949", "audit": "#457b9d", "security": "#9d0208",
}
OTHER_FILL = "#777777"
_DARK_TEXT = {"silver", "gold"}
LAYER_ORDER = ("landing", "bronze", "reference", "silver", "gold", "audit", "security")

NODE_W, NODE_H, COL_GAP, ROW_GAP, MARGIN = 250, 44, 70, 18, 24


# ----------------------------------------------------------------------------- the data the report shows

@dataclass(frozen=True)
class HistoryEntry:
    """One row of Delta's DESCRIBE HISTORY."""

    version: int
    timestamp: datetime
    operation: str
    metrics: dict[str, str]


@dataclass(frozen=True)
class TableFacts:
    """What the report says about one registry table."""

    name: str
    layer: str
    description: str
    retention_tier: str
    highest_sensitivity: str
    columns_per_classification: dict[str, int]  # classification -> column count, registry order, zeros omitted
    retention_periods: dict[str, int] | None  # jurisdiction -> days, when the retention policy is available
    exists: bool
    history: tuple[HistoryEntry, ...] = ()


def table_facts(spec: TableSpec, *, exists: bool, history: Sequence[HistoryEntry] = (),
                retention_periods: dict[str, int] | None = None) -> TableFacts:
    """The classification summary of `spec` (highest sensitivity, columns per classification) with its history."""
    counts = {c.value: n for c in Classification if (n := sum(col.classification is c for col in spec.columns))}
    highest = max((col.sensitivity for col in spec.columns), key=lambda s: s.rank, default=Sensitivity.PUBLIC)
    return TableFacts(name=spec.name, layer=spec.layer, description=spec.description,
                      retention_tier=spec.retention_tier.value, highest_sensitivity=highest.value,
                      columns_per_classification=counts, retention_periods=retention_periods, exists=exists,
                      history=tuple(history))


@dataclass(frozen=True)
class LandingGroup:
    """The landing objects of one upload date (or of one landing prefix whose keys carry no date)."""

    node_id: str
    upload_date: date | None
    uris: tuple[str, ...]
    objects: tuple[tuple[str, str], ...]  # (key, sha256), sorted by key

    @property
    def label(self) -> str:
        when = self.upload_date.isoformat() if self.upload_date else "undated"
        return f"landing: {len(self.objects):,} objects ({when})"


@dataclass(frozen=True)
class LineageGraph:
    """Table-level lineage: nodes are table names and landing groups' node ids; edges carry the jobs."""

    tables: tuple[str, ...]
    landing: tuple[LandingGroup, ...]
    edges: dict[tuple[str, str], tuple[str, ...]]  # (source node, target table) -> jobs, sorted
    versions: dict[str, int] = field(default_factory=dict)  # table -> newest lineage-recorded version

    @property
    def node_ids(self) -> list[str]:
        return [g.node_id for g in self.landing] + list(self.tables)


_DATE_IN_URI = re.compile(r"upload_date=(\d{4}-\d{2}-\d{2})")


def _upload_date(key: str, uri: str) -> date | None:
    from lake_layout.landing import parse_landing_key

    parsed = parse_landing_key(key)
    if parsed is not None:
        return parsed.upload_date
    match = _DATE_IN_URI.search(uri) or _DATE_IN_URI.search(key)
    return date.fromisoformat(match[1]) if match else None


def lineage_graph(rows: list[dict[str, Any]], *, start: date, end: date) -> LineageGraph:
    """Merge the upstream walks of every written table into one graph (pure).

    Walked: each table's newest lineage-recorded version and every version written by a run that finished
    within [start, end]. Landing objects are grouped per upload date (from the key's `upload_date=`, else the
    input's uri); each object counted once however many walks reach it.
    """
    from jobs.platform.lineage import table_writers, upstream_graph_from_rows

    writers = table_writers(rows)
    edges: dict[tuple[str, str], set[str]] = {}
    tables: set[str] = set()
    landing: dict[str, tuple[date | None, set[str], dict[str, str]]] = {}
    walked: set[tuple[str, int | None]] = set()

    def visit(node: "LineageNode") -> None:
        if node.table is None:
            return
        tables.add(node.table)
        if (node.table, node.version) in walked:
            return
        walked.add((node.table, node.version))
        job = node.run["job"] if node.run else "?"
        for child in node.children:
            if child.table is not None:
                edges.setdefault((child.table, node.table), set()).add(job)
                visit(child)
                continue
            uri = child.landing_uri or ""
            by_date: dict[date | None, list[tuple[str, str]]] = {}
            for key, sha in child.objects:
                by_date.setdefault(_upload_date(key, uri), []).append((key, sha))
            for day, objects in (by_date or {_upload_date("", uri): []}).items():
                node_id = f"landing:{day.isoformat()}" if day else f"landing:{uri}"
                _, uris, objs = landing.setdefault(node_id, (day, set(), {}))
                uris.add(uri)
                objs.update(objects)
                edges.setdefault((node_id, node.table), set()).add(job)

    for table, runs in sorted(writers.items()):
        versions = {runs[-1][0]} | {v for v, r in runs if start <= _as_date(r["finished_at"]) <= end}
        for version in sorted(versions):
            visit(upstream_graph_from_rows(rows, table, version=version, writers=writers))
    groups = tuple(
        LandingGroup(node_id=nid, upload_date=day, uris=tuple(sorted(uris)), objects=tuple(sorted(objs.items())))
        for nid, (day, uris, objs) in sorted(landing.items(), key=lambda kv: (kv[1][0] or date.max, kv[0]))
    )
    return LineageGraph(tables=tuple(sorted(tables, key=_table_order)), landing=groups,
                        edges={k: tuple(sorted(v)) for k, v in sorted(edges.items())},
                        versions={t: runs[-1][0] for t, runs in writers.items()})


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return datetime.fromisoformat(str(value)).date()


def _layer(node_id: str) -> str:
    return "landing" if node_id.startswith("landing:") else node_id.split(".", 1)[0]


def _table_order(name: str) -> tuple[int, str]:
    layer = _layer(name)
    return (LAYER_ORDER.index(layer) if layer in LAYER_ORDER else len(LAYER_ORDER), name)


# ----------------------------------------------------------------------------- layout and SVG

def layout(graph: LineageGraph) -> dict[str, tuple[int, int]]:
    """(column, row) of every node: column = longest lineage path from landing (cycles ignored), rows ordered
    within a column by the mean row of the node's sources (one barycenter sweep, left to right)."""
    sources: dict[str, list[str]] = {n: [] for n in graph.node_ids}
    for (src, dst) in graph.edges:
        if src != dst:
            sources[dst].append(src)
    column: dict[str, int] = {}

    def depth(node: str, path: frozenset[str]) -> int:
        if node not in column:
            preds = [s for s in sources[node] if s not in path]
            column[node] = 0 if node.startswith("landing:") else 1 + max(
                (depth(s, path | {node}) for s in preds), default=0)
        return column[node]

    for node in graph.node_ids:
        depth(node, frozenset())
    positions: dict[str, tuple[int, int]] = {}
    for col in range(max(column.values(), default=-1) + 1):
        members = [n for n in graph.node_ids if column[n] == col]  # landing by date, tables by layer then name
        placed = [positions[s][1] for n in members for s in sources[n] if s in positions]

        def barycenter(n: str, fallback: float) -> float:
            rows = [positions[s][1] for s in sources[n] if s in positions]
            return sum(rows) / len(rows) if rows else fallback

        if placed:
            members.sort(key=lambda n: (barycenter(n, float(max(placed)) + 1), _table_order(n)))
        for row, n in enumerate(members):
            positions[n] = (col, row)
    return positions


def _node_xy(pos: tuple[int, int]) -> tuple[int, int]:
    return MARGIN + pos[0] * (NODE_W + COL_GAP), MARGIN + pos[1] * (NODE_H + ROW_GAP)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def render_svg(graph: LineageGraph, positions: dict[str, tuple[int, int]]) -> str:
    """The graph as an SVG element: a <g class="node" data-node=...> per node (link to its section, tooltip
    in <title>), a <path class="edge"> per edge with the jobs in its tooltip."""
    if not positions:
        return '<p class="empty">No lineage recorded yet (audit.lineage is empty).</p>'
    cols = max(c for c, _ in positions.values()) + 1
    rows = max(r for _, r in positions.values()) + 1
    width = 2 * MARGIN + cols * NODE_W + (cols - 1) * COL_GAP
    height = 2 * MARGIN + rows * NODE_H + (rows - 1) * ROW_GAP
    groups = {g.node_id: g for g in graph.landing}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="lineage graph">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>']
    for (src, dst), jobs in graph.edges.items():
        if src == dst or src not in positions or dst not in positions:
            continue
        (sx, sy), (dx, dy) = _node_xy(positions[src]), _node_xy(positions[dst])
        x1, y1, x2, y2 = sx + NODE_W, sy + NODE_H / 2, dx, dy + NODE_H / 2
        if x2 <= x1:  # same or earlier column (a cycle): loop around above
            x2, bend = dx + NODE_W / 2, -60
            d = f"M{x1},{y1} C{x1 + 60},{y1 + bend} {x2},{dy + bend} {x2},{dy}"
        else:
            mid = (x1 + x2) / 2
            d = f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"
        out.append(f'<path class="edge" data-source="{_e(src)}" data-target="{_e(dst)}" d="{d}" fill="none" '
                   f'stroke="#555" stroke-width="1.4" marker-end="url(#arrow)"><title>{_e(src)} → {_e(dst)} '
                   f'by {_e(", ".join(jobs))}</title></path>')
    for node, pos in positions.items():
        x, y = _node_xy(pos)
        layer = _layer(node)
        fill = LAYER_FILL.get(layer, OTHER_FILL)
        ink = "#1d1d1d" if layer in _DARK_TEXT else "#ffffff"
        if node in groups:
            g = groups[node]
            title, subtitle, href = g.label, f"SHA-256 {g.objects[0][1][:16]}…" if g.objects else "", f"#{_anchor(node)}"
            tooltip = (f"{g.label}\n{', '.join(g.uris)}\nSHA-256 sample:\n"
                       + "\n".join(f"{sha}  {key}" for key, sha in g.objects[:SAMPLE_SHAS]))
        else:
            version = graph.versions.get(node)
            writers = sorted({j for (s, d), jobs in graph.edges.items() if d == node for j in jobs})
            title = node
            subtitle = f"v{version}" if version is not None else "no recorded writer"
            subtitle += f" · {', '.join(writers)}" if writers else ""
            href, tooltip = f"#{_anchor(node)}", f"{node} (newest lineage-recorded version {version})"
        # a long title (e.g. "landing: 12,345 objects (2026-11-24)") is squeezed into the box rather than spilling
        fit = f'textLength="{NODE_W - 20}" lengthAdjust="spacingAndGlyphs"' if len(title) > 32 else ""
        out.append(
            f'<g class="node" data-node="{_e(node)}" data-layer="{layer}"><a href="{href}">'
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6" fill="{fill}" stroke="#222" '
            f'stroke-width="1"/><text x="{x + 10}" y="{y + 18}" fill="{ink}" font-size="12.5" {fit} '
            f'font-weight="600">{_e(title)}</text><text x="{x + 10}" y="{y + 35}" fill="{ink}" '
            f'font-size="11">{_e(subtitle[:44])}</text></a><title>{_e(tooltip)}</title></g>')
    out.append("</svg>")
    return "\n".join(out)


# ----------------------------------------------------------------------------- HTML

@dataclass(frozen=True)
class AuditRows:
    """Rows of one audit table within the period (only the columns the auditor role may read)."""

    table: str
    present: bool  # the registry declares it and it has been written
    columns: tuple[str, ...] = ()
    rows: tuple[tuple[Any, ...], ...] = ()
    truncated: bool = False  # the period has more than the rows shown (MAX_ROWS)


@dataclass(frozen=True)
class ReportData:
    start: date
    end: date
    generated_at: datetime
    generated_by: str
    graph: LineageGraph
    tables: tuple[TableFacts, ...]
    quality: AuditRows  # failed expectations
    quality_summary: AuditRows  # per table and suite: runs, expectations, failed
    budget: AuditRows
    dsr: AuditRows
    retention: AuditRows


def _anchor(node: str) -> str:
    return "t-" + re.sub(r"[^A-Za-z0-9_-]+", "-", node)


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        return _e(value.strftime("%Y-%m-%d %H:%M:%S"))
    if isinstance(value, dict):
        return _e(", ".join(f"{k}={v}" for k, v in sorted(value.items())))
    return _e(value)


def _table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, css: str = "") -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _audit_section(title: str, anchor: str, rows: AuditRows, *, empty: str) -> str:
    out = [f'<section id="{anchor}" class="audit"><h2>{_e(title)}</h2>']
    if not rows.present or not rows.rows:
        note = "" if rows.present else f" ({rows.table} has not been written yet)"
        out.append(f'<p class="empty">{_e(empty)}{_e(note)}</p>')
    else:
        n = len(rows.rows)
        count = f"More than {n:,} rows (the first {n:,} shown)" if rows.truncated else f"{n:,} row{'s' if n != 1 else ''}"
        out.append(f"<p>{count} from {_e(rows.table)} in the period.</p>")
        out.append(_table(rows.columns, rows.rows))
    out.append("</section>")
    return "\n".join(out)


def budget_spent(budget: AuditRows) -> list[tuple[str, str, str, str, int]]:
    """(dataset, period, epsilon spent, cap, refusals) per dataset and period; epsilons summed exactly."""
    from jobs.privacy.budget import exact, exact_str

    if not budget.rows:
        return []
    idx = {c: i for i, c in enumerate(budget.columns)}
    spent: dict[tuple[str, str], list[Any]] = {}
    for row in budget.rows:
        key = (str(row[idx["dataset"]]), str(row[idx["period"]]))
        acc = spent.setdefault(key, [Fraction(0), row[idx["cap"]], 0])
        if row[idx["status"]] == "spent":
            acc[0] += exact(str(row[idx["epsilon"]]))
        else:
            acc[2] += 1
        acc[1] = row[idx["cap"]]  # rows are in recording order: the latest cap wins
    return [(d, p, exact_str(eps), str(cap), refused) for (d, p), (eps, cap, refused) in sorted(spent.items())]


def _table_section(facts: TableFacts, graph: LineageGraph, quality_summary: AuditRows) -> str:
    counts = ", ".join(f"{n} {c}" for c, n in facts.columns_per_classification.items())
    out = [f'<section id="{_anchor(facts.name)}" class="table-section" data-table="{_e(facts.name)}">',
           f"<h3>{_e(facts.name)}</h3><p class=\"desc\">{_e(facts.description)}</p><dl>",
           f'<dt>Classification</dt><dd class="classification">highest sensitivity <b>{_e(facts.highest_sensitivity)}'
           f"</b>; columns: {_e(counts)}</dd>",
           f'<dt>Retention tier</dt><dd class="retention-tier">{_e(facts.retention_tier)}</dd>']
    if facts.retention_periods:
        periods = ", ".join(f"{j}: {d} days" for j, d in facts.retention_periods.items())
        out.append(f'<dt>Retention period</dt><dd class="retention-periods">{_e(periods)}</dd>')
    sources = sorted({(s, j) for (s, d), jobs in graph.edges.items() if d == facts.name for j in jobs})
    if sources:
        upstream = "; ".join(f"{s} by {j}" for s, j in sources)
        out.append(f"<dt>Lineage</dt><dd>from {_e(upstream)}</dd>")
    if quality_summary.rows:
        idx = {c: i for i, c in enumerate(quality_summary.columns)}
        mine = [r for r in quality_summary.rows if r[idx["table_name"]] == facts.name]
        if mine:
            text = "; ".join(f"{r[idx['suite']]}: {r[idx['expectations']]} checked, {r[idx['failed']]} failed "
                             f"in {r[idx['runs']]} run(s)" for r in mine)
            out.append(f'<dt>Quality (period)</dt><dd class="quality">{_e(text)}</dd>')
    out.append("</dl>")
    if not facts.exists:
        out.append('<p class="empty">Not written yet: no Delta history.</p>')
    elif facts.history:
        out.append("<h4>Last writes (Delta history)</h4>")
        out.append(_table(["version", "timestamp", "operation", "operation metrics"],
                          [(h.version, h.timestamp, h.operation, h.metrics) for h in facts.history], css="history"))
    out.append("</section>")
    return "\n".join(out)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #1d1d1d; }
h1 { margin-bottom: 4px; } h2 { border-bottom: 2px solid #ccc; padding-bottom: 4px; margin-top: 32px; }
.meta { color: #555; } .empty { color: #777; font-style: italic; }
.graph { overflow-x: auto; border: 1px solid #ddd; padding: 8px; background: #fafafa; }
.legend span { display: inline-block; padding: 2px 8px; margin-right: 6px; border-radius: 4px; color: #fff; }
table { border-collapse: collapse; font-size: 12px; margin: 6px 0 12px; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #eee; } td { max-width: 520px; overflow-wrap: anywhere; }
dl { display: grid; grid-template-columns: 150px 1fr; gap: 2px 12px; margin: 4px 0; }
dt { font-weight: 600; } dd { margin: 0; }
.table-section { border-left: 4px solid #ddd; padding-left: 12px; margin: 18px 0; }
.desc { color: #444; margin: 2px 0 6px; }
"""


def render_html(data: ReportData) -> str:
    """The whole report as one HTML document (inline CSS and SVG, no external resources)."""
    positions = layout(data.graph)
    legend = "".join(f'<span style="background:{c};{"color:#1d1d1d" if layer in _DARK_TEXT else ""}">{layer}</span>'
                     for layer, c in LAYER_FILL.items())
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>voiplake lineage report {data.start} to {data.end}</title><style>{_CSS}</style></head><body>",
        f"<h1>voiplake lineage report</h1><p class=\"meta\">Period {data.start} to {data.end} (inclusive, UTC). "
        f"Generated {data.generated_at:%Y-%m-%d %H:%M:%S} UTC by {_e(data.generated_by)} (role {REPORT_ROLE}).</p>",
        '<nav><a href="#graph">Lineage graph</a> · <a href="#landing">Landing objects</a> · '
        '<a href="#tables">Tables</a> · <a href="#quality">Quality</a> · <a href="#budget">Privacy budget</a> · '
        '<a href="#dsr">Data-subject requests</a> · <a href="#retention">Retention actions</a></nav>',
        '<section id="graph"><h2>Lineage graph</h2>',
        f'<p>Every table with recorded lineage, down to the landing objects it was built from (grouped per upload '
        f'date). Hover a node for details, click it for its section.</p><p class="legend">{legend}</p>',
        f'<div class="graph">{render_svg(data.graph, positions)}</div></section>',
        '<section id="landing"><h2>Landing objects</h2>',
    ]
    if data.graph.landing:
        readers = {g.node_id: sorted({d for (s, d) in data.graph.edges if s == g.node_id}) for g in data.graph.landing}
        parts.append(_table(
            ["upload date", "objects", "read into", f"SHA-256 sample (first {SAMPLE_SHAS} keys)", "landing prefix"],
            [(g.upload_date or "undated", f"{len(g.objects):,}", ", ".join(readers[g.node_id]),
              " ".join(sha for _, sha in g.objects[:SAMPLE_SHAS]), ", ".join(g.uris)) for g in data.graph.landing],
            css="landing"))
        for g in data.graph.landing:
            parts.append(f'<span id="{_anchor(g.node_id)}"></span>')
    else:
        parts.append('<p class="empty">No landing objects in the lineage.</p>')
    parts.append("</section>")
    parts.append('<section id="tables"><h2>Tables</h2><p>Every registry table: classification of its columns, '
                 f"retention tier, the last {HISTORY_VERSIONS} writes from Delta history.</p>")
    parts.extend(_table_section(t, data.graph, data.quality_summary) for t in data.tables)
    parts.append("</section>")

    parts.append('<section id="quality"><h2>Quality results</h2>')
    if data.quality_summary.rows:
        parts.append(_table(data.quality_summary.columns, data.quality_summary.rows, css="quality-summary"))
        if data.quality.rows:
            parts.append("<h4>Failed expectations</h4>" + _table(data.quality.columns, data.quality.rows))
        else:
            parts.append("<p>Every expectation held.</p>")
    else:
        note = "" if data.quality_summary.present else f" ({data.quality_summary.table} has not been written yet)"
        parts.append(f'<p class="empty">No quality results in the period.{_e(note)}</p>')
    parts.append("</section>")

    parts.append('<section id="budget"><h2>Privacy budget</h2>')
    spent = budget_spent(data.budget)
    if spent:
        parts.append(_table(["dataset", "period", "epsilon spent (exact)", "cap", "refused attempts"], spent,
                            css="budget-summary"))
        parts.append(_table(data.budget.columns, data.budget.rows))
    else:
        parts.append('<p class="empty">No privacy budget spent or refused in the period.</p>')
    parts.append("</section>")
    parts.append(_audit_section("Data-subject requests", "dsr", data.dsr, empty="No actions in the period."))
    parts.append(_audit_section("Retention actions", "retention", data.retention, empty="No actions in the period."))
    parts.append("</body></html>")
    return "\n".join(parts)


# ----------------------------------------------------------------------------- reading (I/O) and rendering

def _history(spark: "SparkSession", spec: TableSpec, settings: Settings) -> tuple[HistoryEntry, ...]:
    from delta.tables import DeltaTable

    rows = (DeltaTable.forPath(spark, spec.location(settings)).history(HISTORY_VERSIONS)
            .select("version", "timestamp", "operation", "operationMetrics").collect())
    return tuple(HistoryEntry(version=int(r["version"]), timestamp=r["timestamp"], operation=r["operation"],
                              metrics=dict(r["operationMetrics"] or {})) for r in rows)


def retention_policy() -> Any:
    """The retention policy (lake_layout.retention), or None where that module is absent or its file unusable:
    the report then leaves the periods out rather than failing."""
    try:
        from lake_layout.retention import load_policy
    except ImportError:
        return None
    try:
        return load_policy()
    except ValueError:  # RetentionPolicyError: `voiplake retention` reports it; the audit report still renders
        return None


def retention_periods(spec: TableSpec, policy: Any) -> dict[str, int] | None:
    """Days kept per jurisdiction for the table's tier, plus "table-wide" (data of no one jurisdiction)."""
    if policy is None:
        return None
    from lake_layout.retention import JURISDICTIONS

    periods = {j: policy.period(spec.retention_tier, j).days for j in JURISDICTIONS}
    periods["table-wide"] = policy.table_wide(spec.retention_tier).days
    return periods


def _audit_rows(spark: "SparkSession", settings: Settings, table: str, *, time_column: str, start: date,
                end: date, order: Sequence[str]) -> AuditRows:
    """Rows of an audit table whose `time_column` falls in [start, end], only the auditor's readable columns."""
    from pyspark.sql import functions as F

    from jobs.platform import lake
    from lake_layout.access import readable_columns
    from lake_layout.tables import TABLES_BY_NAME

    spec = TABLES_BY_NAME.get(table)
    if spec is None or not lake.table_exists(spark, spec, settings):
        return AuditRows(table=table, present=False)
    columns = [c for c in readable_columns(spec, REPORT_ROLE) if c not in ("prev_hash", "entry_hash")]
    df = (lake.read_table(spark, spec, settings)
          .where(F.to_date(F.col(time_column)).between(F.lit(start), F.lit(end))).select(*columns))
    rows = df.orderBy(*order).limit(MAX_ROWS + 1).collect()  # one job; the extra row only says "more"
    return AuditRows(table=table, present=True, columns=tuple(columns), rows=tuple(tuple(r) for r in rows[:MAX_ROWS]),
                     truncated=len(rows) > MAX_ROWS)


def _quality(spark: "SparkSession", settings: Settings, start: date, end: date) -> tuple[AuditRows, AuditRows]:
    """(failed expectations, summary per table and suite) of the quality-gate runs in the period."""
    from pyspark.sql import functions as F

    from jobs.platform import lake
    from lake_layout.tables import AUDIT_QUALITY_RESULTS as Q

    if not lake.table_exists(spark, Q, settings):
        return AuditRows(table=Q.name, present=False), AuditRows(table=Q.name, present=False)
    df = lake.read_table(spark, Q, settings).where(F.col("checked_date").between(F.lit(start), F.lit(end)))
    summary = (df.groupBy("table_name", "suite")
               .agg(F.countDistinct("run_id").alias("runs"), F.count(F.lit(1)).alias("expectations"),
                    F.sum(F.when(~F.col("success"), 1).otherwise(0)).alias("failed"),
                    F.max("checked_at").alias("last_checked_at"))
               .orderBy("table_name", "suite").collect())
    failed_cols = ["checked_at", "table_name", "table_version", "scope", "suite", "expectation_type", "column_name",
                   "element_count", "unexpected_count", "observed_value", "run_id"]
    failed_total = sum(int(r["failed"]) for r in summary)
    failed_rows = (df.where(~F.col("success")).select(*failed_cols).orderBy("checked_at", "suite").limit(MAX_ROWS)
                   .collect() if failed_total else [])
    cols = ("table_name", "suite", "runs", "expectations", "failed", "last_checked_at")
    return (AuditRows(table=Q.name, present=True, columns=tuple(failed_cols), rows=tuple(tuple(r) for r in failed_rows),
                      truncated=failed_total > MAX_ROWS),
            AuditRows(table=Q.name, present=True, columns=cols, rows=tuple(tuple(r) for r in summary)))


def collect(spark: "SparkSession", settings: Settings, *, start: date, end: date, user: str) -> ReportData:
    """Read everything the report shows (lineage, registry, Delta history, audit tables in the period)."""
    from jobs.platform import lake
    from jobs.platform.lineage import lineage_rows
    from lake_layout.tables import ALL_TABLES

    graph = lineage_graph(lineage_rows(spark, settings), start=start, end=end)
    tables, policy = [], retention_policy()
    for spec in ALL_TABLES:
        exists = lake.table_exists(spark, spec, settings)
        tables.append(table_facts(spec, exists=exists, history=_history(spark, spec, settings) if exists else (),
                                  retention_periods=retention_periods(spec, policy)))
    quality, quality_summary = _quality(spark, settings, start, end)
    return ReportData(
        start=start, end=end, generated_at=datetime.now(timezone.utc), generated_by=user, graph=graph,
        tables=tuple(tables), quality=quality, quality_summary=quality_summary,
        budget=_audit_rows(spark, settings, "audit.privacy_budget", time_column="recorded_at", start=start, end=end,
                           order=["recorded_at", "release_id"]),
        dsr=_audit_rows(spark, settings, "audit.dsr_requests", time_column="requested_at", start=start, end=end,
                        order=["requested_at", "request_id", "kind"]),
        retention=_audit_rows(spark, settings, "audit.retention_actions", time_column="executed_at", start=start,
                              end=end, order=["executed_at", "run_id", "step"]),
    )


def default_period(today: date) -> tuple[date, date]:
    """The last 30 days up to and including `today`."""
    return today - timedelta(days=DEFAULT_DAYS - 1), today


def render(spark: "SparkSession", settings: Settings, *, out: Path, start: date, end: date,
           user: str | None = None) -> Path:
    """Write `out`/lineage-report.html for [start, end] and record it in audit.access_log (export, role auditor).

    Returns the report's path. Raises ValueError when start is after end.
    """
    from jobs.platform.access_log import current_user, record_access
    from lake_layout.tables import AUDIT_LINEAGE

    if start > end:
        raise ValueError(f"report period: --from {start} is after --to {end}")
    who = current_user(user)
    data = collect(spark, settings, start=start, end=end, user=who)
    out.mkdir(parents=True, exist_ok=True)
    path = out / REPORT_FILE
    path.write_text(render_html(data), encoding="utf-8")
    read = [r for r in (data.quality_summary, data.quality, data.budget, data.dsr, data.retention) if r.present]
    lineage_columns = [f"{AUDIT_LINEAGE.name}.{c}" for c in AUDIT_LINEAGE.column_names] if data.graph.tables else []
    record_access(
        spark, settings, user=who, role=REPORT_ROLE, action="export",
        sql=f"voiplake report lineage --out {out} --from {start} --to {end}",
        tables=sorted({AUDIT_LINEAGE.name, *(r.table for r in read)}),
        columns=sorted({*lineage_columns, *(f"{r.table}.{c}" for r in read for c in r.columns if c in _columns_of(r.table))}),
        rows=sum(len(r.rows) for r in read), allowed=True, reason=None,
    )
    return path


def _columns_of(table: str) -> set[str]:
    from lake_layout.tables import TABLES_BY_NAME

    spec = TABLES_BY_NAME.get(table)
    return set(spec.column_names) if spec else set()
