"""Lineage: one audit.lineage row per job run that wrote data, mirrored as OpenLineage events.

A row says what the run read (landing objects with their SHA-256, or table + Delta version), what it
wrote (table + Delta version before / after), row counts in and out, the code version and the times.
The same run is emitted as OpenLineage START / COMPLETE events (openlineage-python, file transport by
default) so any OpenLineage consumer (Marquez, DataHub, ...) can ingest it.

`upstream_graph(spark, settings, "gold.hourly_geo_usage")` walks the rows back to the landing objects;
`voiplake lineage TABLE` prints it.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lake_layout.config import PROJECT_ROOT, Settings
from lake_layout.tables import AUDIT_LINEAGE, TABLES_BY_NAME

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

PRODUCER = "https://github.com/voiplake/voiplake"
SAMPLE_OBJECTS = 3


@cache
def code_version() -> str:
    """git commit of the checkout that runs (with -dirty for uncommitted tracked changes), else the package version."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        from importlib.metadata import version

        return f"voiplake-{version('voiplake')}"


@dataclass(frozen=True)
class LandingInput:
    uri: str
    objects: tuple[tuple[str, str], ...]  # (object key, sha256)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "landing", "uri": self.uri, "objects": [{"key": k, "sha256": s} for k, s in self.objects]}


@dataclass(frozen=True)
class TableInput:
    table: str
    version: int | None

    def to_json(self) -> dict[str, Any]:
        return {"kind": "table", "table": self.table, "version": self.version}


@dataclass(frozen=True)
class TableOutput:
    table: str
    version_before: int | None
    version_after: int | None


@dataclass(frozen=True)
class LineageRecord:
    run_id: str
    job: str
    dag_id: str | None
    dag_run_id: str | None
    logical_date: date | None
    inputs: tuple[LandingInput | TableInput, ...]
    outputs: tuple[TableOutput, ...]
    metrics: dict[str, Any]
    rows_in: int
    rows_out: int
    started_at: datetime
    finished_at: datetime

    def __post_init__(self) -> None:
        for out in self.outputs:
            if out.table not in TABLES_BY_NAME:
                raise ValueError(f"lineage output {out.table!r} is not a registry table")


def record_run(spark: "SparkSession", settings: Settings, record: LineageRecord) -> None:
    """Write the audit.lineage row (idempotent on run_id) and emit the OpenLineage events.

    Lineage is a compliance record: a failure to write either is an error, not a warning.
    """
    from jobs.platform import lake

    lake.merge_insert_new(spark, spark.createDataFrame([lineage_row(record)], AUDIT_LINEAGE.spark_schema()), AUDIT_LINEAGE, settings)
    emit_openlineage(settings, record)


def lineage_row(record: LineageRecord) -> dict[str, Any]:
    """The audit.lineage row of a run (inputs, outputs and metrics as JSON)."""
    return {
        "run_id": record.run_id, "job": record.job, "dag_id": record.dag_id, "dag_run_id": record.dag_run_id,
        "logical_date": None if record.logical_date is None else date.fromordinal(record.logical_date.toordinal()),
        "inputs_json": json.dumps([i.to_json() for i in record.inputs]),
        "outputs_json": json.dumps({o.table: {"version_before": o.version_before, "version_after": o.version_after} for o in record.outputs}),
        "metrics_json": json.dumps(record.metrics, default=str, sort_keys=True),
        "started_at": record.started_at, "finished_at": record.finished_at, "code_version": code_version(),
        "rows_in": int(record.rows_in), "rows_out": int(record.rows_out),
    }


# ----------------------------------------------------------------------------- OpenLineage

def dataset_name(location: str) -> tuple[str, str]:
    """OpenLineage (namespace, name) of a storage location: s3a://bucket/path -> (s3://bucket, path)."""
    if "://" in location:
        scheme, rest = location.split("://", 1)
        bucket, _, path = rest.partition("/")
        return f"{'s3' if scheme in ('s3a', 's3') else scheme}://{bucket}", path
    return "file", location


def emit_openlineage(settings: Settings, record: LineageRecord) -> None:
    from openlineage.client import OpenLineageClient
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import (
        dataset_version_dataset,
        nominal_time_run,
        output_statistics_output_dataset,
        parent_run,
        schema_dataset,
        source_code_location_job,
    )
    from openlineage.client.transport.file import FileConfig, FileTransport

    target = Path(settings.lineage.openlineage_file)
    target.parent.mkdir(parents=True, exist_ok=True)
    client = OpenLineageClient(transport=FileTransport(FileConfig(log_file_path=str(target), append=True)))

    def table_facets(table: str, version: int | None) -> dict[str, Any]:
        spec = TABLES_BY_NAME[table]
        facets: dict[str, Any] = {
            "schema": schema_dataset.SchemaDatasetFacet(fields=[
                schema_dataset.SchemaDatasetFacetFields(name=c.name, type=c.type, description=c.description) for c in spec.columns
            ]),
        }
        if version is not None:
            facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=str(version))
        return facets

    inputs = []
    for i in record.inputs:
        if isinstance(i, TableInput):
            ns, name = dataset_name(TABLES_BY_NAME[i.table].location(settings))
            inputs.append(InputDataset(namespace=ns, name=name, facets=table_facets(i.table, i.version)))
        else:
            ns, name = dataset_name(i.uri)
            inputs.append(InputDataset(namespace=ns, name=name))  # one dataset per landing prefix, not per object
    outputs = []
    for o in record.outputs:
        ns, name = dataset_name(TABLES_BY_NAME[o.table].location(settings))
        outputs.append(OutputDataset(
            namespace=ns, name=name, facets=table_facets(o.table, o.version_after),
            outputFacets={"outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(rowCount=record.rows_out)},
        ))
    run_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"voiplake:{record.run_id}"))
    run_facets: dict[str, Any] = {}
    if record.logical_date is not None:
        run_facets["nominalTime"] = nominal_time_run.NominalTimeRunFacet(
            nominalStartTime=datetime.combine(record.logical_date, datetime.min.time(), timezone.utc).isoformat())
    if record.dag_id and record.dag_run_id:
        run_facets["parent"] = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=str(uuid.uuid5(uuid.NAMESPACE_URL, f"airflow:{record.dag_id}:{record.dag_run_id}"))),
            job=parent_run.Job(namespace=settings.lineage.namespace, name=record.dag_id),
        )
    # The job's code is the registry's writer of what it wrote (job names stay as recorded in audit.lineage).
    job_facets = {"sourceCodeLocation": source_code_location_job.SourceCodeLocationJobFacet(
        type="git", url=str(PROJECT_ROOT), path=TABLES_BY_NAME[record.outputs[0].table].writer_path,
        version=code_version())} if record.outputs else {}
    job = Job(namespace=settings.lineage.namespace, name=record.job, facets=job_facets)
    for state, at in ((RunState.START, record.started_at), (RunState.COMPLETE, record.finished_at)):
        client.emit(RunEvent(
            eventType=state, eventTime=at.astimezone(timezone.utc).isoformat(), run=Run(runId=run_uuid, facets=run_facets),
            job=job, producer=PRODUCER, inputs=inputs, outputs=outputs if state is RunState.COMPLETE else [],
        ))


# ----------------------------------------------------------------------------- the upstream graph

@dataclass
class LineageNode:
    label: str  # "silver.calls v4" or the landing uri
    run: dict[str, Any] | None = None  # the run that produced it
    children: list["LineageNode"] = field(default_factory=list)
    table: str | None = None  # registry table of a table node (None for landing)
    version: int | None = None  # its Delta version, when known
    landing_uri: str | None = None  # landing prefix of a landing node
    objects: tuple[tuple[str, str], ...] = ()  # (object key, sha256) of a landing node

    def to_json(self) -> dict[str, Any]:
        return {"node": self.label, "run": self.run, "upstream": [c.to_json() for c in self.children]}


def lineage_rows(spark: "SparkSession", settings: Settings) -> list[dict[str, Any]]:
    """Every audit.lineage row as a dict (empty when the table does not exist yet)."""
    from jobs.platform import lake

    if not lake.table_exists(spark, AUDIT_LINEAGE, settings):
        return []
    return [r.asDict() for r in lake.read_table(spark, AUDIT_LINEAGE, settings).collect()]


def upstream_graph(spark: "SparkSession", settings: Settings, table: str, *, version: int | None = None) -> LineageNode:
    """The runs that produced `table` (at `version`, default its newest lineage-recorded version), recursively
    down to the landing objects. A table version is attributed to the newest run that wrote it at or before it."""
    if table not in TABLES_BY_NAME:
        raise KeyError(f"unknown table {table!r}; known: {sorted(TABLES_BY_NAME)}")
    return upstream_graph_from_rows(lineage_rows(spark, settings), table, version=version)


def table_writers(rows: list[dict[str, Any]]) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    """table -> [(version_after, lineage row)] of the runs that wrote it, oldest version first."""
    writers: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for r in rows:
        for name, versions in json.loads(r["outputs_json"]).items():
            if versions.get("version_after") is not None:
                writers.setdefault(name, []).append((int(versions["version_after"]), r))
    for runs in writers.values():
        runs.sort(key=lambda vr: (vr[0], vr[1]["finished_at"]))
    return writers


def upstream_graph_from_rows(rows: list[dict[str, Any]], table: str, *, version: int | None = None,
                             writers: dict[str, list[tuple[int, dict[str, Any]]]] | None = None) -> LineageNode:
    """`upstream_graph` over audit.lineage rows already read (pure; `writers`: `table_writers(rows)`, if at hand)."""
    writers = table_writers(rows) if writers is None else writers

    def node(name: str, wanted: int | None, seen: frozenset[tuple[str, int]]) -> LineageNode:
        runs = [vr for vr in writers.get(name, []) if wanted is None or vr[0] <= wanted]
        if not runs:
            return LineageNode(label=f"{name} v{wanted if wanted is not None else '?'} (no recorded writer)",
                               table=name, version=wanted)
        v, r = runs[-1]
        shown = wanted if wanted is not None else v
        out = LineageNode(label=f"{name} v{shown}", table=name, version=shown, run={
            "job": r["job"], "run_id": r["run_id"], "dag_run_id": r["dag_run_id"], "code_version": r["code_version"],
            "finished_at": str(r["finished_at"]), "rows_in": r["rows_in"], "rows_out": r["rows_out"],
        })
        if (name, v) in seen:
            return out
        for i in json.loads(r["inputs_json"]):
            if i["kind"] == "table":
                out.children.append(node(i["table"], i["version"], seen | {(name, v)}))
            else:
                objects = i.get("objects", [])
                sample = ", ".join(f"{o['key']} sha256 {o['sha256'][:12]}" for o in objects[:SAMPLE_OBJECTS])
                out.children.append(LineageNode(
                    label=f"landing {i['uri']} ({len(objects):,} objects{', e.g. ' + sample if sample else ''})",
                    landing_uri=i["uri"], objects=tuple((o["key"], o["sha256"]) for o in objects)))
        return out

    return node(table, version, frozenset())


def render_graph(root: LineageNode, indent: int = 0) -> str:
    """An indented tree for the terminal."""
    line = "  " * indent + root.label
    if root.run:
        r = root.run
        line += (f"  <- {r['job']} run {r['run_id']} (code {str(r['code_version'])[:12]}, finished {r['finished_at'][:19]}, "
                 f"rows {r['rows_in']} -> {r['rows_out']})")
    return "\n".join([line, *(render_graph(c, indent + 1) for c in root.children)])
