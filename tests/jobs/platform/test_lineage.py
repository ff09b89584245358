"""Lineage rows, OpenLineage events and the upstream graph from gold down to landing objects."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timezone
from pathlib import Path

from jobs.platform import lake, lineage
from lake_layout.tables import AUDIT_LINEAGE

T = datetime(2026, 11, 25, 1, 0, tzinfo=timezone.utc)


def record(run_id: str, job: str, inputs, outputs, rows=(10, 9)) -> lineage.LineageRecord:  # type: ignore[no-untyped-def]
    return lineage.LineageRecord(
        run_id=run_id, job=job, dag_id="voip_daily", dag_run_id="manual__1", logical_date=date(2026, 11, 24),
        inputs=inputs, outputs=outputs, metrics={"n": rows[0]}, rows_in=rows[0], rows_out=rows[1], started_at=T, finished_at=T,
    )


def test_code_version_is_the_git_commit() -> None:
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", lineage.code_version())


def test_record_run_is_idempotent_and_emits_openlineage(spark, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from lake_layout.config import LineageSettings

    local = replace(settings.with_lake_root(str(tmp_path / "lake")),
                    lineage=LineageSettings(namespace="test", openlineage_file=str(tmp_path / "ol" / "events.jsonl")))
    landing = lineage.LandingInput(uri="s3a://voiplake-landing/uploads/upload_date=2026-11-24/",
                                   objects=(("uploads/a.pb.gz", "ab" * 32), ("uploads/b.pb.gz", "cd" * 32)))
    bronze = record("bronze-1", "bronze_ingest", (landing,), (lineage.TableOutput("bronze.call_events", None, 0),))
    silver = record("silver-1", "silver_calls", (lineage.TableInput("bronze.call_events", 0),),
                    (lineage.TableOutput("silver.calls", 0, 1),))
    gold = record("gold-1", "gold_hourly_geo", (lineage.TableInput("silver.calls", 1),),
                  (lineage.TableOutput("gold.hourly_geo_usage", 2, 3),), rows=(9, 4))
    for r in (bronze, silver, gold, gold):
        lineage.record_run(spark, local, r)

    rows = {r.run_id: r for r in lake.read_table(spark, AUDIT_LINEAGE, local).collect()}
    assert sorted(rows) == ["bronze-1", "gold-1", "silver-1"]
    assert json.loads(rows["bronze-1"].inputs_json)[0]["objects"][1] == {"key": "uploads/b.pb.gz", "sha256": "cd" * 32}
    assert rows["gold-1"].code_version == lineage.code_version() and (rows["gold-1"].rows_in, rows["gold-1"].rows_out) == (9, 4)

    events = [json.loads(line) for line in Path(local.lineage.openlineage_file).read_text().splitlines()]
    gold_events = [e for e in events if e["job"]["name"] == "gold_hourly_geo"]
    assert [e["eventType"] for e in gold_events[:2]] == ["START", "COMPLETE"]
    complete = gold_events[1]
    assert complete["job"]["namespace"] == "test"
    assert complete["outputs"][0]["name"].endswith("gold/hourly_geo_usage")
    assert complete["outputs"][0]["facets"]["version"]["datasetVersion"] == "3"
    assert complete["inputs"][0]["facets"]["version"]["datasetVersion"] == "1"
    assert complete["run"]["facets"]["parent"]["job"]["name"] == "voip_daily"
    # the job's code is the registry's writer of its output, a file that exists
    code = complete["job"]["facets"]["sourceCodeLocation"]["path"]
    assert code == "jobs/publish/hourly_geo.py" and (lineage.PROJECT_ROOT / code).is_file()

    graph = lineage.upstream_graph(spark, local, "gold.hourly_geo_usage")
    text = lineage.render_graph(graph)
    lines = text.splitlines()
    assert lines[0].startswith("gold.hourly_geo_usage v3  <- gold_hourly_geo run gold-1")
    assert lines[1].strip().startswith("silver.calls v1  <- silver_calls run silver-1")
    assert lines[2].strip().startswith("bronze.call_events v0  <- bronze_ingest run bronze-1")
    assert lines[3].strip().startswith("landing s3a://voiplake-landing/uploads/upload_date=2026-11-24/ (2 objects")
    assert graph.to_json()["upstream"][0]["upstream"][0]["upstream"][0]["node"].startswith("landing ")
