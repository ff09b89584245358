"""Quality gates: Great Expectations 1.x suites (expectations/<table>.json) run on what a job wrote.

`run_gate` validates a slice of a registry table, records one row per expectation in
audit.quality_results, renders Data Docs (HTML) for the run, and only then raises `QualityGateFailed`
naming each failed expectation and on how many rows it failed, so the DAG stops promotion to the
next layer with a message a data engineer can act on.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lake_layout.config import PROJECT_ROOT, Settings
from lake_layout.registry import TableSpec
from lake_layout.tables import AUDIT_QUALITY_RESULTS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"


class QualityGateFailed(Exception):
    """A suite had failing expectations; the message says which, on how many rows."""


@dataclass(frozen=True)
class ExpectationResult:
    index: int
    expectation_type: str
    column: str | None
    kwargs: dict[str, Any]
    success: bool
    element_count: int | None
    unexpected_count: int | None
    observed_value: str | None

    def describe(self) -> str:
        target = self.column or ",".join(self.kwargs.get("column_list", [])) or ",".join(
            str(self.kwargs[c]) for c in ("column_A", "column_B") if c in self.kwargs)
        if self.unexpected_count is not None and self.element_count is not None:
            return f"{self.expectation_type}({target}) on {self.unexpected_count:,} of {self.element_count:,} rows"
        return f"{self.expectation_type}({target}) observed {self.observed_value}"


@dataclass(frozen=True)
class QualityReport:
    table: str
    suite: str
    scope: str
    results: tuple[ExpectationResult, ...]

    @property
    def success(self) -> bool:
        return all(r.success for r in self.results)

    @property
    def failed(self) -> tuple[ExpectationResult, ...]:
        return tuple(r for r in self.results if not r.success)

    def failure_message(self) -> str:
        details = "; ".join(r.describe() for r in self.failed)
        return (f"quality gate {self.table} failed {len(self.failed)} of {len(self.results)} expectations "
                f"(scope {self.scope}): {details}")

    def summary(self) -> dict[str, Any]:
        return {
            "table": self.table, "suite": self.suite, "scope": self.scope, "success": self.success,
            "expectations": len(self.results), "failed": [r.describe() for r in self.failed],
        }


def suite_path(spec: TableSpec) -> Path:
    return EXPECTATIONS_DIR / f"{spec.name}.json"


def load_suite(spec: TableSpec) -> Any:
    """The table's ExpectationSuite, read from its file with GX's own (de)serialization."""
    import great_expectations as gx

    path = suite_path(spec)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no expectation suite for {spec.name}: expected {path}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"expectation suite {path} is not valid JSON: {exc}") from exc
    if raw.get("name") != spec.name:
        raise ValueError(f"expectation suite {path} is named {raw.get('name')!r}, expected {spec.name!r}")
    return gx.ExpectationSuite(**raw)


def _context(data_docs_dir: str | None) -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    if data_docs_dir is not None:
        Path(data_docs_dir).mkdir(parents=True, exist_ok=True)
        context.add_data_docs_site(site_name="voiplake", site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(Path(data_docs_dir).resolve())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
    return context


def validate_dataframe(df: "DataFrame", spec: TableSpec, *, scope: str, data_docs_dir: str | None = None) -> QualityReport:
    """Run the table's suite on `df`; one result per expectation, in suite order. Renders Data Docs
    into `data_docs_dir` when given."""
    import great_expectations as gx

    context = _context(data_docs_dir)
    suite = context.suites.add(load_suite(spec))
    asset = context.data_sources.add_spark(name="voiplake").add_dataframe_asset(name=spec.name)
    batch_definition = asset.add_batch_definition_whole_dataframe(name="slice")
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{spec.name} gate", data=batch_definition, suite=suite))
    actions = [gx.checkpoint.UpdateDataDocsAction(name="data_docs")] if data_docs_dir is not None else []
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name=f"{spec.name} checkpoint", validation_definitions=[validation], actions=actions,
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5},
    ))
    outcome = checkpoint.run(batch_parameters={"dataframe": df})
    (validation_result,) = outcome.run_results.values()
    results = []
    for r in validation_result.results:
        config = r.expectation_config
        kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
        index = next((i for i, e in enumerate(suite.expectations)
                      if e.expectation_type == config.type and _same_kwargs(e.configuration.kwargs, kwargs)), None)
        result = r.result or {}
        observed = result.get("observed_value")
        results.append(ExpectationResult(
            index=index if index is not None else len(results), expectation_type=config.type, column=kwargs.get("column"),
            kwargs=kwargs, success=bool(r.success), element_count=result.get("element_count"),
            unexpected_count=result.get("unexpected_count"),
            observed_value=None if observed is None else json.dumps(observed, default=str),
        ))
    return QualityReport(table=spec.name, suite=suite.name, scope=scope, results=tuple(sorted(results, key=lambda r: r.index)))


def _same_kwargs(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = set(a) | set(b)
    return all(a.get(k) == b.get(k) for k in keys if k not in ("batch_id", "result_format"))


def run_gate(
    spark: "SparkSession", settings: Settings, spec: TableSpec, *, where: str, run_id: str, dag_run_id: str | None = None
) -> QualityReport:
    """Validate `where` of `spec`'s table, record the results, render Data Docs, raise if anything failed."""
    from jobs.platform import lake

    version = lake.table_version(spark, spec, settings)
    df = lake.read_table(spark, spec, settings).where(where)
    report = validate_dataframe(df, spec, scope=where, data_docs_dir=settings.quality.data_docs_dir)
    now = datetime.now(timezone.utc)
    rows = [{
        "run_id": run_id, "dag_run_id": dag_run_id, "table_name": spec.name, "table_version": version, "scope": where,
        "suite": report.suite, "expectation_index": r.index, "expectation_type": r.expectation_type,
        "column_name": r.column, "kwargs_json": json.dumps(r.kwargs, sort_keys=True, default=str), "success": r.success,
        "element_count": r.element_count, "unexpected_count": r.unexpected_count, "observed_value": r.observed_value,
        "checked_at": now, "checked_date": now.date(),
    } for r in report.results]
    lake.merge_insert_new(spark, spark.createDataFrame(rows, AUDIT_QUALITY_RESULTS.spark_schema()),
                          AUDIT_QUALITY_RESULTS, settings, prune_on="checked_date")
    if not report.success:
        raise QualityGateFailed(report.failure_message())
    return report
