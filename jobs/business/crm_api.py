"""Read-only CRM API for resellers: aggregated usage per account from gold.account_usage_daily (FastAPI).

    GET /v1/accounts                                   the caller's accounts with usage in the lake
    GET /v1/accounts/{account_id}/usage?from=&to=      one account's daily usage
    GET /v1/usage/summary?from=&to=                    totals per account and overall
    GET /healthz                                       liveness and the data version served (no token)

Authentication: `Authorization: Bearer <token>`; the token (issued by `voiplake api token --reseller R`, stored
only as its SHA-256, jobs.business.api_tokens) identifies the reseller. A missing or unknown token gets 401. An account the
caller does not own gets 404 whether or not it exists (403 would confirm that another reseller has it).

Isolation by construction: at start-up (`load_snapshot`) the table is read once through
`jobs.business.account_usage.reseller_usage`, the same ownership gate as the extract, into one in-memory Arrow table per
reseller. A request only ever touches its own reseller's table, so no query parameter can reach another
reseller's rows. The snapshot grows with accounts x days, not with calls; restart the server to serve a newer
table version (the version served is in /healthz and every response).

The OpenAPI document is served at /openapi.json and committed as docs/crm_api.openapi.json
(`voiplake api openapi --out docs/crm_api.openapi.json`); a test keeps the two equal.
"""

# No `from __future__ import annotations`: FastAPI resolves the endpoint closures' annotations at runtime.

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any, Callable

from fastapi import Depends, FastAPI, HTTPException, Path as PathParam, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from jobs.business.account_usage import MEASURES, REPORT_COLUMNS
from jobs.business.api_tokens import TokenStore
from lake_layout.config import PROJECT_ROOT, Settings
from lake_layout.resellers import Reseller, ResellerPolicy, load_policy

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import SparkSession

API_TITLE = "voiplake CRM API"
API_VERSION = "1.0.0"
MAX_RANGE_DAYS = 366
OPENAPI_FILE = PROJECT_ROOT / "docs" / "crm_api.openapi.json"


# ----------------------------------------------------------------------------- the data served

def _empty_usage() -> "pa.Table":
    import pyarrow as pa

    types = {"reseller_id": pa.string(), "account_id": pa.string(), "call_date": pa.date32()}
    return pa.schema([(c, types.get(c, pa.int64())) for c in REPORT_COLUMNS]).empty_table()


@dataclass(frozen=True)
class UsageSnapshot:
    """Each reseller's rows of gold.account_usage_daily (REPORT_COLUMNS), as read at `loaded_at`."""

    by_reseller: dict[str, "pa.Table"]
    table_version: int | None = None
    loaded_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def usage_of(self, reseller_id: str) -> "pa.Table":
        table = self.by_reseller.get(reseller_id)
        return _empty_usage() if table is None else table


def load_snapshot(spark: "SparkSession", settings: Settings, policy: ResellerPolicy) -> UsageSnapshot:
    """Read gold.account_usage_daily once per reseller through `reseller_usage` (the ownership gate)."""
    import pyarrow as pa

    from jobs.platform import lake
    from jobs.business.account_usage import reseller_usage
    from lake_layout.tables import GOLD_ACCOUNT_USAGE_DAILY

    if not lake.table_exists(spark, GOLD_ACCOUNT_USAGE_DAILY, settings):
        return UsageSnapshot({r.id: _empty_usage() for r in policy.resellers}, None)
    version = lake.table_version(spark, GOLD_ACCOUNT_USAGE_DAILY, settings)
    usage = lake.read_table(spark, GOLD_ACCOUNT_USAGE_DAILY, settings)
    schema = _empty_usage().schema
    tables = {}
    for reseller in policy.resellers:
        scoped = reseller_usage(usage, reseller=reseller).orderBy("account_id", "call_date").toArrow()
        tables[reseller.id] = pa.Table.from_batches(scoped.to_batches(), schema=scoped.schema).cast(schema)
    return UsageSnapshot(tables, version)


# ----------------------------------------------------------------------------- response models

class AccountInfo(BaseModel):
    account_id: str = Field(examples=["acct-0007"])
    first_call_date: date
    last_call_date: date
    days_with_usage: int


class AccountList(BaseModel):
    reseller_id: str
    reseller_name: str
    data_version: int | None = Field(description="Delta version of gold.account_usage_daily served")
    accounts: list[AccountInfo]


class DailyUsage(BaseModel):
    call_date: date
    calls: int = Field(description="Calls of any status")
    completed_calls: int
    failed_calls: int
    talk_ms: int = Field(description="Talk time of completed calls, milliseconds")
    data_bytes: int = Field(description="Media bytes sent + received")
    active_users: int = Field(description="Distinct subscribers with a call that day")


class AccountUsage(BaseModel):
    reseller_id: str
    account_id: str
    date_from: date = Field(alias="from")
    date_to: date = Field(alias="to")
    data_version: int | None
    days: list[DailyUsage]


class UsageTotals(BaseModel):
    calls: int
    completed_calls: int
    failed_calls: int
    talk_ms: int
    data_bytes: int
    active_user_days: int = Field(description="Sum over days of distinct daily users (a user active on 3 days counts 3)")
    peak_daily_active_users: int = Field(description="Largest active_users of one account on one day of the range")


class AccountTotals(UsageTotals):
    account_id: str
    days_with_usage: int


class UsageSummary(BaseModel):
    reseller_id: str
    date_from: date = Field(alias="from")
    date_to: date = Field(alias="to")
    data_version: int | None
    accounts: list[AccountTotals]
    total: UsageTotals


class Health(BaseModel):
    status: str
    data_version: int | None
    loaded_at: datetime


class ErrorBody(BaseModel):
    detail: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or invalid bearer token"},
    422: {"description": "Invalid parameters (dates, range longer than 366 days, from after to)"},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "No such account among yours"}}


# ----------------------------------------------------------------------------- the app

def _totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    out = {m: sum(int(r[m]) for r in rows) for m in MEASURES if m != "active_users"}
    out["active_user_days"] = sum(int(r["active_users"]) for r in rows)
    out["peak_daily_active_users"] = max((int(r["active_users"]) for r in rows), default=0)
    return out


def create_app(settings: Settings, *, policy: ResellerPolicy | None = None, snapshot: UsageSnapshot | None = None,
               tokens: Callable[[], TokenStore] | None = None) -> FastAPI:
    """The CRM API over `snapshot` (default: empty). `policy` defaults to settings.crm_api.resellers_file; `tokens`
    to reading settings.crm_api.tokens_file on every request, so a re-issued token revokes the old one at once."""
    import pyarrow.compute as pc

    policy = policy if policy is not None else load_policy(settings.crm_api.resellers_file)
    snapshot = snapshot if snapshot is not None else UsageSnapshot({})
    token_store = tokens or (lambda: TokenStore.load(settings.crm_api.tokens_file, resellers=policy.ids))
    bearer = HTTPBearer(auto_error=False, scheme_name="ResellerToken", description="Reseller API token from `voiplake api token --reseller R`")

    app = FastAPI(
        title=API_TITLE, version=API_VERSION,
        description=("Read-only aggregated usage per B2B account for resellers. Each token belongs to one reseller, "
                     "which sees only the accounts the ownership policy gives it. Usage is per UTC call date."),
    )

    def current_reseller(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Reseller:
        reseller_id = token_store().authenticate(credentials.credentials if credentials else None)
        if reseller_id is None:
            raise HTTPException(status_code=401, detail="missing or invalid bearer token",
                                headers={"WWW-Authenticate": "Bearer"})
        return policy.reseller(reseller_id)

    def date_range(date_from: Annotated[date, Query(alias="from", description="First UTC call date (inclusive)")],
                   date_to: Annotated[date, Query(alias="to", description="Last UTC call date (inclusive)")]) -> tuple[date, date]:
        if date_from > date_to:
            raise HTTPException(status_code=422, detail=f"from {date_from} is after to {date_to}")
        if (date_to - date_from).days >= MAX_RANGE_DAYS:
            raise HTTPException(status_code=422, detail=f"a range covers at most {MAX_RANGE_DAYS} days")
        return date_from, date_to

    def rows_in(reseller: Reseller, dates: tuple[date, date], account_id: str | None = None) -> list[dict[str, Any]]:
        import pyarrow as pa

        table = snapshot.usage_of(reseller.id)
        mask = pc.and_(pc.greater_equal(table["call_date"], pa.scalar(dates[0], pa.date32())),
                       pc.less_equal(table["call_date"], pa.scalar(dates[1], pa.date32())))
        if account_id is not None:
            mask = pc.and_(mask, pc.equal(table["account_id"], account_id))
        return table.filter(mask).to_pylist()

    @app.get("/healthz", response_model=Health, tags=["meta"], summary="Liveness and the data version served")
    def health() -> dict[str, Any]:
        return {"status": "ok", "data_version": snapshot.table_version, "loaded_at": snapshot.loaded_at}

    @app.get("/v1/accounts", response_model=AccountList, responses=_ERRORS, tags=["accounts"],
             summary="Your accounts with usage in the lake")
    def accounts(reseller: Annotated[Reseller, Depends(current_reseller)]) -> dict[str, Any]:
        table = snapshot.usage_of(reseller.id)
        grouped = table.group_by("account_id").aggregate(
            [("call_date", "min"), ("call_date", "max"), ("call_date", "count")]).sort_by("account_id").to_pylist()
        return {
            "reseller_id": reseller.id, "reseller_name": reseller.name, "data_version": snapshot.table_version,
            "accounts": [{"account_id": g["account_id"], "first_call_date": g["call_date_min"],
                          "last_call_date": g["call_date_max"], "days_with_usage": g["call_date_count"]} for g in grouped],
        }

    @app.get("/v1/accounts/{account_id}/usage", response_model=AccountUsage, responses={**_ERRORS, **_NOT_FOUND},
             tags=["usage"], summary="Daily usage of one of your accounts")
    def account_usage(reseller: Annotated[Reseller, Depends(current_reseller)],
                      account_id: Annotated[str, PathParam(max_length=64, examples=["acct-0007"])],
                      dates: Annotated[tuple[date, date], Depends(date_range)]) -> dict[str, Any]:
        if not reseller.owns(account_id):
            raise HTTPException(status_code=404, detail=f"no account {account_id} among yours")
        rows = rows_in(reseller, dates, account_id)
        return {"reseller_id": reseller.id, "account_id": account_id, "from": dates[0], "to": dates[1],
                "data_version": snapshot.table_version,
                "days": [{k: r[k] for k in ("call_date", *MEASURES)} for r in sorted(rows, key=lambda r: r["call_date"])]}

    @app.get("/v1/usage/summary", response_model=UsageSummary, responses=_ERRORS, tags=["usage"],
             summary="Usage totals per account and overall over a date range")
    def usage_summary(reseller: Annotated[Reseller, Depends(current_reseller)],
                      dates: Annotated[tuple[date, date], Depends(date_range)]) -> dict[str, Any]:
        rows = rows_in(reseller, dates)
        by_account: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by_account.setdefault(r["account_id"], []).append(r)
        return {
            "reseller_id": reseller.id, "from": dates[0], "to": dates[1], "data_version": snapshot.table_version,
            "accounts": [{"account_id": a, "days_with_usage": len(rs), **_totals(rs)} for a, rs in sorted(by_account.items())],
            "total": _totals(rows),
        }

    return app


def openapi_document(settings: Settings) -> str:
    """The API's OpenAPI document as committed (stable key order, trailing newline)."""
    return json.dumps(create_app(settings).openapi(), indent=2, sort_keys=True) + "\n"


def serve(spark: "SparkSession", settings: Settings, *, port: int) -> None:
    """Load the snapshot, then serve on 127.0.0.1:`port` until interrupted."""
    import sys

    import uvicorn

    policy = load_policy(settings.crm_api.resellers_file)
    snapshot = load_snapshot(spark, settings, policy)
    rows = {rid: t.num_rows for rid, t in snapshot.by_reseller.items()}
    print(f"crm api: gold.account_usage_daily v{snapshot.table_version}, rows per reseller {rows}; "
          f"http://127.0.0.1:{port}/docs", file=sys.stderr)
    uvicorn.run(create_app(settings, policy=policy, snapshot=snapshot), host="127.0.0.1", port=port, log_level="info")
