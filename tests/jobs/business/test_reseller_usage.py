"""Resellers: the ownership policy, gold.account_usage_daily, the usage-report extract and the CRM API.

One tiny lake is built once for the module: hand-made silver calls of two resellers' accounts, a direct account,
a look-alike account id outside every range, and consumers, over three days. Every figure is checked against a
plain-Python aggregation of the same calls (`expected_rows`), and the API is exercised over HTTP against a real
uvicorn server on a free loopback port.
"""

from __future__ import annotations

import csv
import hashlib
import json
import threading
import time
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from jobs.business import account_usage
from jobs.business.api_tokens import TokenStore, issue_token, token_hash
from lake_layout.config import CrmApiSettings, Settings
from lake_layout.resellers import DEFAULT_POLICY_FILE, PolicyError, ResellerPolicy, load_policy, parse_policy
from lake_layout.tables import AUDIT_LINEAGE, GOLD_ACCOUNT_USAGE_DAILY, SILVER_CALLS

D1, D2, D3 = date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 25)
POLICY_TOML = """
[[resellers]]
id = "alpha"
name = "Alpha Partners"
account_ranges = ["acct-0001..acct-0003"]
accounts = ["acct-0100"]

[[resellers]]
id = "beta"
name = "Beta Telecom"
account_ranges = ["acct-0004..acct-0006"]
"""
ALPHA = {"acct-0001", "acct-0002", "acct-0003", "acct-0100"}
BETA = {"acct-0004", "acct-0005", "acct-0006"}
DIRECT = "acct-0050"
LOOKALIKE = "acct-00010"  # sorts between acct-0001 and acct-0003 as a string, but has 5 digits: nobody's


# ----------------------------------------------------------------------------- the calls and their oracle

def call(n: int, account: str | None, day: date, *, status: str = "completed", minutes: float = 1.0,
         data_bytes: int | None = 1000, subscriber: str = "s1") -> dict[str, Any]:
    row: dict[str, Any] = {c: None for c in SILVER_CALLS.column_names}
    start = datetime(day.year, day.month, day.day, 9, tzinfo=timezone.utc) + timedelta(minutes=n)
    row.update(
        call_id=f"c{n}", call_date=day, status=status, started_at=start, ended_at=start + timedelta(minutes=minutes),
        duration_ms=int(minutes * 60_000) if status == "completed" else 0, subscriber_pseudonym=subscriber,
        device_pseudonym="d" * 32, pseudonym_key_id="psn-1", platform="ios", schema_version=2, account_id=account,
        data_bytes=data_bytes, telemetry_level="basic", clock_offset_ms=0, event_count=2, duplicate_events=0,
        first_received_at=start, last_received_at=start, record_hash="h", silver_run_id="r",
    )
    return row


def silver_calls() -> list[dict[str, Any]]:
    spec = [
        # alpha
        ("acct-0001", D1, "completed", 2.0, 500, "u1"), ("acct-0001", D1, "completed", 3.5, 700, "u2"),
        ("acct-0001", D1, "failed", 0.0, None, "u1"), ("acct-0001", D2, "incomplete", 0.0, 10, "u3"),
        ("acct-0003", D1, "completed", 1.0, None, "u4"), ("acct-0100", D2, "completed", 10.0, 5000, "u5"),
        ("acct-0100", D2, "completed", 0.5, 100, "u5"), ("acct-0002", D3, "completed", 4.0, 40, "u6"),
        # beta
        ("acct-0004", D1, "completed", 7.0, 9999, "v1"), ("acct-0005", D2, "failed", 0.0, 1, "v2"),
        ("acct-0006", D2, "completed", 2.0, 2, "v3"),
        # direct, look-alike, consumers (excluded), an account_id null (excluded)
        (DIRECT, D1, "completed", 5.0, 50, "w1"), (LOOKALIKE, D2, "completed", 6.0, 60, "w2"),
        ("consumer", D1, "completed", 30.0, 123456, "x1"), ("consumer", D2, "failed", 0.0, None, "x2"),
        (None, D2, "completed", 8.0, 80, "x3"),
    ]
    return [call(n, a, d, status=s, minutes=m, data_bytes=b, subscriber=u) for n, (a, d, s, m, b, u) in enumerate(spec)]


def expected_rows(calls: list[dict[str, Any]], policy: ResellerPolicy) -> dict[tuple[str, date], dict[str, Any]]:
    """The table's contract in plain Python, independent of Spark."""
    out: dict[tuple[str, date], dict[str, Any]] = {}
    users: dict[tuple[str, date], set[str]] = {}
    for c in calls:
        if c["account_id"] in (None, "consumer"):
            continue
        key = (c["account_id"], c["call_date"])
        row = out.setdefault(key, {"reseller_id": policy.owner_of(c["account_id"]), "calls": 0, "completed_calls": 0,
                                   "failed_calls": 0, "talk_ms": 0, "data_bytes": 0})
        row["calls"] += 1
        row["completed_calls"] += c["status"] == "completed"
        row["failed_calls"] += c["status"] == "failed"
        row["talk_ms"] += c["duration_ms"] if c["status"] == "completed" else 0
        row["data_bytes"] += c["data_bytes"] or 0
        users.setdefault(key, set()).add(c["subscriber_pseudonym"])
    for key, row in out.items():
        row["active_users"] = len(users[key])
    return out


# ----------------------------------------------------------------------------- the lake, built once

@pytest.fixture(scope="module")
def reseller_lake(spark, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from jobs.platform import lake

    tmp = tmp_path_factory.mktemp("resellers")
    (tmp / "resellers.toml").write_text(POLICY_TOML)
    s = replace(settings.with_lake_root(str(tmp / "lake")),
                crm_api=CrmApiSettings(resellers_file=str(tmp / "resellers.toml"),
                                       tokens_file=str(tmp / "secrets" / "api_tokens.json"), port=8765))
    policy = load_policy(s.crm_api.resellers_file)
    calls = silver_calls()
    lake.replace_partitions(spark, spark.createDataFrame(calls, SILVER_CALLS.spark_schema()), SILVER_CALLS, s, where="true")
    # The policy comes from settings.crm_api.resellers_file, as in the DAG task.
    report = account_usage.run(spark, account_usage.AccountUsageContext(settings=s, call_dates=(D1, D2, D3)))
    return {"settings": s, "policy": policy, "calls": calls, "expected": expected_rows(calls, policy),
            "report": report, "tmp": tmp}


def test_gold_rows_equal_the_hand_computation(spark, reseller_lake) -> None:  # type: ignore[no-untyped-def]
    from jobs.platform import lake

    s, expected = reseller_lake["settings"], reseller_lake["expected"]
    table = lake.read_table(spark, GOLD_ACCOUNT_USAGE_DAILY, s)
    assert table.columns == GOLD_ACCOUNT_USAGE_DAILY.column_names
    rows = table.collect()
    got = {(r["account_id"], r["call_date"]): {k: r[k] for k in ("reseller_id", *account_usage.MEASURES)} for r in rows}
    assert len(rows) == len(got)  # one row per account and day
    assert got == expected
    # spot checks by hand: acct-0001 on D1 = 3 calls, 2 completed (2 + 3.5 min), 1 failed, 1200 bytes, 2 users
    assert got[("acct-0001", D1)] == {"reseller_id": "alpha", "calls": 3, "completed_calls": 2, "failed_calls": 1,
                                      "talk_ms": 330_000, "data_bytes": 1200, "active_users": 2}
    assert got[(DIRECT, D1)]["reseller_id"] is None and got[(LOOKALIKE, D2)]["reseller_id"] is None
    assert not any(a == "consumer" for a, _ in got)
    first = reseller_lake["report"]
    assert (first.rows, first.rows_by_reseller) == (len(expected), {"alpha": 5, "beta": 3, "direct": 2})
    assert first.calls_read == len(reseller_lake["calls"]) and first.accounts == len(ALPHA | BETA) + 2
    runs = lake.read_table(spark, AUDIT_LINEAGE, s).where("job = 'account_usage'").collect()
    assert len(runs) == 1 and json.loads(runs[0]["inputs_json"])[0]["table"] == "silver.calls"
    assert json.loads(runs[0]["outputs_json"])["gold.account_usage_daily"]["version_after"] == first.table_version
    metrics = json.loads(runs[0]["metrics_json"])  # which ownership policy the reseller_id column came from
    assert metrics["policy_sha256"] == hashlib.sha256(POLICY_TOML.encode()).hexdigest()


# ----------------------------------------------------------------------------- the extract

def test_usage_report_extract_holds_exactly_the_resellers_rows(reseller_lake, capsys) -> None:  # type: ignore[no-untyped-def]
    import pyarrow.parquet as pq

    from jobs.cli.business import extract_usage_report_command

    s, expected, tmp = reseller_lake["settings"], reseller_lake["expected"], reseller_lake["tmp"]
    out = tmp / "alpha.csv"
    assert extract_usage_report_command(s, "alpha", D1, D2, out) == 0
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == account_usage.REPORT_COLUMNS
    got = {(r["account_id"], date.fromisoformat(r["call_date"])): r for r in rows}
    want = {k: v for k, v in expected.items() if k[0] in ALPHA and D1 <= k[1] <= D2}
    assert set(got) == set(want)  # D3 (outside the range) and every non-alpha account absent
    for key, row in want.items():
        assert {m: int(got[key][m]) for m in account_usage.MEASURES} == {m: row[m] for m in account_usage.MEASURES}
        assert got[key]["reseller_id"] == "alpha"
    text = out.read_text()
    for foreign in (*BETA, DIRECT, LOOKALIKE, "consumer"):
        assert foreign not in text  # no other reseller's (or direct, or consumer) row leaks
    assert "wrote 4 rows (3 accounts of alpha" in capsys.readouterr().out

    beta_out = tmp / "beta.parquet"
    assert extract_usage_report_command(s, "beta", D1, D3, beta_out) == 0
    table = pq.read_table(beta_out).to_pylist()
    assert {(r["account_id"], r["call_date"]) for r in table} == {k for k in expected if k[0] in BETA}
    assert sum(r["talk_ms"] for r in table) == 9 * 60_000 and {r["reseller_id"] for r in table} == {"beta"}


def test_usage_report_refuses_unknown_reseller_and_bad_arguments(reseller_lake, capsys) -> None:  # type: ignore[no-untyped-def]
    from jobs.cli.business import extract_usage_report_command

    s, tmp = reseller_lake["settings"], reseller_lake["tmp"]
    assert extract_usage_report_command(s, "gamma", D1, D2, tmp / "x.csv") == 2
    assert "unknown reseller 'gamma'; known: ['alpha', 'beta']" in capsys.readouterr().err
    assert extract_usage_report_command(s, "alpha", D2, D1, tmp / "x.csv") == 2
    assert extract_usage_report_command(s, "alpha", D1, D2, tmp / "x.xlsx") == 2
    assert not (tmp / "x.csv").exists() and not (tmp / "x.xlsx").exists()


def test_spark_ownership_predicate_agrees_with_the_policy(spark, reseller_lake) -> None:  # type: ignore[no-untyped-def]
    from pyspark.sql import functions as F

    policy: ResellerPolicy = reseller_lake["policy"]
    ids = sorted(ALPHA | BETA) + [DIRECT, LOOKALIKE, "acct-0000", "acct-0007", "acct-000a", "xacct-0001", "consumer", "acct-01"]
    df = spark.createDataFrame([(i,) for i in ids] + [(None,)], "account_id string")
    got = df.select("account_id", account_usage.reseller_id_column(policy).alias("owner"),
                    *[account_usage.ownership_predicate(r).alias(r.id) for r in policy.resellers]).collect()
    for row in got:
        assert row["owner"] == policy.owner_of(row["account_id"])
        for r in policy.resellers:
            assert row[r.id] is r.owns(row["account_id"])
    assert {r["account_id"] for r in got if r["owner"] == "alpha"} == ALPHA


# ----------------------------------------------------------------------------- the policy

def test_committed_policy_loads() -> None:
    policy = load_policy(DEFAULT_POLICY_FILE)
    assert policy.ids and policy.owner_of("consumer") is None
    assert all(policy.owner_of(a) == r.id for r in policy.resellers for a in r.accounts)


@pytest.mark.parametrize(("toml_entries", "message"), [
    ([("a1", ["acct-0001"], []), ("b1", ["acct-0001"], [])], "account acct-0001 is owned by two resellers (a1 and b1)"),
    ([("a1", ["acct-0005"], []), ("b1", [], ["acct-0001..acct-0009"])], "account acct-0005 is owned by two resellers (a1 lists it, b1 owns range acct-0001..acct-0009)"),
    ([("a1", [], ["acct-0001..acct-0005"]), ("b1", [], ["acct-0005..acct-0009"])], "account ranges acct-0001..acct-0005 and acct-0005..acct-0009 overlap (resellers a1 and b1)"),
    ([("a1", [], ["acct-0001..acct-0005", "acct-0003..acct-0004"])], "overlap (reseller a1)"),
    ([("a1", [], ["acct-0009..acct-0001"])], "first account is after the last"),
    ([("a1", [], ["acct-0001..acct-010"])], "same prefix and number of digits"),
    ([("a1", [], ["acct-*"])], "must look like 'acct-0001..acct-0010'"),
    ([("a1", ["consumer"], [])], "'consumer' is not a B2B account id"),
    ([("a1", [], [])], "owns no accounts"),
    ([("a1", ["acct-0001"], []), ("a1", ["acct-0002"], [])], "reseller id 'a1' is declared twice"),
    ([("A 1", ["acct-0001"], [])], "reseller id 'A 1' must be"),
])
def test_policy_validation_errors_name_the_problem(toml_entries: list[tuple[str, list[str], list[str]]], message: str) -> None:
    raw = {"resellers": [{"id": i, "name": f"Reseller {i}", "accounts": a, "account_ranges": r} for i, a, r in toml_entries]}
    with pytest.raises(PolicyError) as err:
        parse_policy(raw, source="test.toml")
    assert message in str(err.value) and "test.toml" in str(err.value)


def test_policy_file_errors(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text('[[resellers]]\nid = "a1"\nname = "A"\naccounts = ["acct-1"]\nowner = "x"\n')
    with pytest.raises(PolicyError, match=r"unknown key\(s\) \['owner'\]"):
        load_policy(tmp_path / "p.toml")
    with pytest.raises(PolicyError, match="not found"):
        load_policy(tmp_path / "missing.toml")


# ----------------------------------------------------------------------------- tokens

def test_tokens_are_stored_only_as_sha256(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "tokens.json"
    token = issue_token(path, "alpha")
    stored = path.read_text()
    assert token not in stored and token_hash(token) in stored and (path.stat().st_mode & 0o777) == 0o600
    store = TokenStore.load(path)
    assert store.authenticate(token) == "alpha"
    assert store.authenticate(token + "x") is None and store.authenticate("") is None and store.authenticate(None) is None
    assert TokenStore.load(path, resellers=("beta",)).authenticate(token) is None  # reseller gone from the policy


# ----------------------------------------------------------------------------- the API, over HTTP

@pytest.fixture(scope="module")
def api(spark, reseller_lake) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    import uvicorn

    from infra.objectstore import free_port
    from jobs.business.crm_api import create_app, load_snapshot

    s, policy = reseller_lake["settings"], reseller_lake["policy"]
    tokens = {rid: issue_token(s.crm_api.tokens_file, rid) for rid in policy.ids}
    app = create_app(s, policy=policy, snapshot=load_snapshot(spark, s, policy))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="crm-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("CRM API server did not start")
        time.sleep(0.05)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield {"client": client, "tokens": tokens, "settings": s}
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_api_rejects_requests_without_a_valid_token(api) -> None:  # type: ignore[no-untyped-def]
    client = api["client"]
    for headers in ({}, bearer("vlk_not-a-token"), {"Authorization": "Basic YWxwaGE6eA=="}, {"Authorization": "Bearer"}):
        response = client.get("/v1/accounts", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/v1/usage/summary?from=2026-11-23&to=2026-11-24").status_code == 401
    assert client.get("/v1/accounts/acct-0001/usage?from=2026-11-23&to=2026-11-24").status_code == 401
    assert client.get("/healthz").json()["status"] == "ok"  # liveness needs no token


def test_api_shows_a_reseller_only_its_own_accounts(api, reseller_lake) -> None:  # type: ignore[no-untyped-def]
    client, tokens, expected = api["client"], api["tokens"], reseller_lake["expected"]
    body = client.get("/v1/accounts", headers=bearer(tokens["alpha"])).json()
    assert body["reseller_id"] == "alpha" and body["reseller_name"] == "Alpha Partners"
    assert [a["account_id"] for a in body["accounts"]] == sorted(ALPHA)
    acct1 = next(a for a in body["accounts"] if a["account_id"] == "acct-0001")
    assert (acct1["first_call_date"], acct1["last_call_date"], acct1["days_with_usage"]) == ("2026-11-23", "2026-11-24", 2)
    beta = client.get("/v1/accounts", headers=bearer(tokens["beta"])).json()
    assert [a["account_id"] for a in beta["accounts"]] == sorted(BETA)

    usage = client.get("/v1/accounts/acct-0001/usage", params={"from": "2026-11-23", "to": "2026-11-25"},
                       headers=bearer(tokens["alpha"]))
    assert usage.status_code == 200
    days = usage.json()["days"]
    assert [d["call_date"] for d in days] == ["2026-11-23", "2026-11-24"]
    for d in days:
        want = expected[("acct-0001", date.fromisoformat(d["call_date"]))]
        assert {m: d[m] for m in account_usage.MEASURES} == {m: want[m] for m in account_usage.MEASURES}

    summary = client.get("/v1/usage/summary", params={"from": "2026-11-23", "to": "2026-11-24"},
                         headers=bearer(tokens["alpha"])).json()
    in_range = [v for (a, d), v in expected.items() if a in ALPHA and D1 <= d <= D2]
    assert summary["total"]["calls"] == sum(v["calls"] for v in in_range) == 7
    assert summary["total"]["talk_ms"] == sum(v["talk_ms"] for v in in_range) == (2 + 3.5 + 1 + 10 + 0.5) * 60_000
    assert summary["total"]["active_user_days"] == sum(v["active_users"] for v in in_range) == 5
    assert summary["total"]["peak_daily_active_users"] == 2  # acct-0001 on D1: u1 and u2
    assert [a["account_id"] for a in summary["accounts"]] == ["acct-0001", "acct-0003", "acct-0100"]
    served = json.dumps(summary) + json.dumps(body)
    assert not any(foreign in served for foreign in (*BETA, DIRECT, LOOKALIKE, "consumer"))


def test_api_answers_404_for_another_resellers_account_like_a_missing_one(api) -> None:  # type: ignore[no-untyped-def]
    client, tokens = api["client"], api["tokens"]
    params = {"from": "2026-11-23", "to": "2026-11-25"}
    others = client.get("/v1/accounts/acct-0004/usage", params=params, headers=bearer(tokens["alpha"]))
    missing = client.get("/v1/accounts/acct-9999/usage", params=params, headers=bearer(tokens["alpha"]))
    direct = client.get(f"/v1/accounts/{DIRECT}/usage", params=params, headers=bearer(tokens["alpha"]))
    assert others.status_code == missing.status_code == direct.status_code == 404
    assert others.json()["detail"] == "no account acct-0004 among yours"  # same wording as for a missing account
    assert client.get("/v1/accounts/acct-0004/usage", params=params, headers=bearer(tokens["beta"])).status_code == 200
    bad_range = client.get("/v1/usage/summary", params={"from": "2026-11-25", "to": "2026-11-23"}, headers=bearer(tokens["alpha"]))
    assert bad_range.status_code == 422


def test_api_reissued_token_revokes_the_old_one(api) -> None:  # type: ignore[no-untyped-def]
    client, tokens, s = api["client"], api["tokens"], api["settings"]
    old = tokens["beta"]
    new = issue_token(s.crm_api.tokens_file, "beta")
    tokens["beta"] = new
    assert client.get("/v1/accounts", headers=bearer(old)).status_code == 401
    assert client.get("/v1/accounts", headers=bearer(new)).json()["reseller_id"] == "beta"


def test_served_openapi_spec_matches_the_committed_file(api) -> None:  # type: ignore[no-untyped-def]
    from jobs.business.crm_api import OPENAPI_FILE

    served = api["client"].get("/openapi.json").json()
    committed = json.loads(OPENAPI_FILE.read_text())
    assert served == committed, "regenerate: voiplake api openapi --out docs/crm_api.openapi.json"
    assert set(served["paths"]) == {"/healthz", "/v1/accounts", "/v1/accounts/{account_id}/usage", "/v1/usage/summary"}
    assert served["components"]["securitySchemes"]["ResellerToken"] == {
        "type": "http", "scheme": "bearer", "description": "Reseller API token from `voiplake api token --reseller R`"}
    assert all(set(op) == {"get"} for op in served["paths"].values())  # read-only
