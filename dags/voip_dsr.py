"""Data-subject requests (GDPR art. 15/17/20, CCPA 1798.105/110) on demand: export or erase one subscriber.

What triggers what
------------------
* Nothing on a clock (schedule None): the privacy desk triggers one run per request with a conf payload
      airflow dags trigger voip_dsr --conf '{"subscriber": "+4915112345678", "request_id": "DSR-2026-0042",
                                              "action": "export"}'
  `action` is `export` (right of access / portability) or `delete` (right to erasure). The params are validated
  before the run starts: an E.164 MSISDN, a request id without spaces or path separators, a known action.
* `handle_request` runs jobs.governance.dsr through jobs.pipeline.runner.run_dsr. An export writes JSON lines + CSV per table and a
  manifest to build/dsr/<request_id>/. A delete erases the subject from every table holding personal data
  (lake_layout.dsr_scope), VACUUMs them with RETAIN 0 HOURS and records the receipt in audit.dsr_requests; the
  task's outlets are those tables' Assets, so downstream DAGs see the change.
* A delete that a legal hold covers is refused: nothing is deleted, the refused receipt names the holds, and the
  task fails without retries (retrying cannot lift a hold). Re-trigger with the same request id once the hold is
  released: a request id is idempotent (a completed delete re-run finds nothing more).
* One run at a time (max_active_runs 1): the VACUUM with RETAIN 0 HOURS must not race another writer of the same
  tables. Schedule deletions outside the daily pipeline's window.

Privacy of the trigger itself: Airflow keeps a run's conf (the MSISDN) in its metadata database. The lake never
stores it (only pseudonyms); delete the DAG run (`airflow dags delete-runs` / the UI) once the request is closed.
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import Asset, Param, dag

from jobs.platform.airflow_tasks import spark_task
from lake_layout.config import load_settings
from lake_layout.dsr_scope import dsr_scopes
from lake_layout.tables import AUDIT_ACCESS_LOG, AUDIT_DSR_REQUESTS

DAG_ID = "voip_dsr"
_SETTINGS = load_settings()
# Tables a delete can change, plus the receipt and the access log every request writes.
OUTLETS = [Asset(name=spec.name, uri=spec.asset_uri(_SETTINGS))
           for spec in [s.spec for s in dsr_scopes() if s.changed_by_delete] + [AUDIT_DSR_REQUESTS, AUDIT_ACCESS_LOG]]

PARAMS = {
    "subscriber": Param(type="string", pattern=r"^\+[1-9]\d{7,14}$",
                        description="The subject's MSISDN in E.164 (e.g. +4915112345678)"),
    "request_id": Param(type="string", pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
                        description="The privacy desk's request id (receipt key in audit.dsr_requests)"),
    "action": Param("export", type="string", enum=["export", "delete"], description="export | delete"),
    "role": Param("data_engineer", type="string", description="Acting role (lake_layout/access_policy.toml)"),
}


@dag(
    dag_id=DAG_ID,
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["privacy", "dsr"],
    params=PARAMS,
    default_args={"retries": 0},
    doc_md=__doc__,
)
def voip_dsr() -> None:
    @spark_task(_SETTINGS, outlets=OUTLETS)
    def handle_request(*, params=None, dag_run=None, spark=None) -> dict[str, object]:  # type: ignore[no-untyped-def]
        from jobs.pipeline.runner import run_dsr

        assert params is not None
        actor = f"airflow:{DAG_ID}:{dag_run.run_id}" if dag_run else f"airflow:{DAG_ID}"
        return run_dsr(action=params["action"], msisdn=params["subscriber"], request_id=params["request_id"],
                       actor=actor, role=params["role"])

    handle_request()


voip_dsr()
