"""Auth log ingestion: pseudonymized at the door with bronze's keys; unusable lines are quarantined, not dropped."""

from __future__ import annotations

import gzip
import json
from datetime import date

import pytest

from jobs.ingest.auth import REJECT_REASON, auth_event_rows, parse_auth_line
from jobs.platform.identifiers import pseudonymize
from jobs.generator.day import generate_day
from jobs.generator.scenarios import ScenarioPlan

GOOD = {"event_id": "e1", "ts": "2026-11-24T03:04:05.678Z", "msisdn": "+4915112345678", "device_id": "dev-1",
        "ip": "80.187.12.34", "country_code": "DE", "outcome": "success", "failure_reason": None}


@pytest.mark.parametrize(("override", "detail"), [
    ({"msisdn": "0151-1234"}, "msisdn is not E.164"),
    ({"ip": "999.1.1.1"}, "ip is not an IP address"),
    ({"outcome": "maybe"}, "outcome 'maybe'"),
    ({"ts": "yesterday"}, "ts is not ISO-8601"),
    ({"ts": "2026-11-24T03:04:05"}, "ts has no UTC offset"),
    ({"device_id": None}, "device_id is missing"),
])
def test_unusable_lines_say_why_without_echoing_identifiers(override: dict[str, object], detail: str) -> None:
    record, problem = parse_auth_line(json.dumps({**GOOD, **override}))
    assert record is None and problem is not None and problem.startswith(detail)
    assert "+49151" not in problem
    assert parse_auth_line("not json")[1] == "not JSON" and parse_auth_line("[1]")[1] == "not a JSON object"
    assert parse_auth_line(json.dumps(GOOD))[1] is None


def test_auth_rows_use_bronze_pseudonyms_and_account_for_every_line(spark, keys) -> None:  # type: ignore[no-untyped-def]
    day = generate_day(date(2026, 11, 24), events=400, seed=9, keys=keys, prefix="uploads",
                       scenarios=ScenarioPlan(compromised_accounts=1))
    lines = gzip.decompress(day.auth_body).decode().splitlines() + ["{broken", json.dumps({**GOOD, "ip": "x"})]
    frame = spark.createDataFrame([(day.auth_key, i, v) for i, v in enumerate(lines)],
                                  "object_key string, line_index int, value string")
    rows = {r["line_index"]: r for r in auth_event_rows(frame, keys=keys, run_id="t").collect()}
    assert len(rows) == len(lines)  # events + quarantined = lines read
    bad = [i for i, r in rows.items() if r["reject_reason"]]
    assert bad == [len(lines) - 2, len(lines) - 1] and {rows[i]["reject_reason"] for i in bad} == {REJECT_REASON}
    key = keys.pseudonym.active_key
    for i, line in enumerate(lines[:-2]):
        raw, row = json.loads(line), rows[i]
        assert row["subscriber_pseudonym"] == pseudonymize("msisdn", raw["msisdn"], key)
        assert row["device_pseudonym"] == pseudonymize("device", raw["device_id"], key)
        assert row["pseudonym_key_id"] == keys.pseudonym.active and row["outcome"] == raw["outcome"]
        assert row["ip_prefix"].endswith("/24") or row["ip_prefix"].endswith("/48")
        assert raw["msisdn"] not in json.dumps(row.asDict(), default=str)
        assert row["auth_ts"].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" == raw["ts"]
    assert any(r["outcome"] == "failure" for r in rows.values())  # the intruder's failed attempts are kept


def test_run_ingests_the_days_auth_log_into_bronze(spark, settings, keys) -> None:  # type: ignore[no-untyped-def]
    from jobs.ingest import auth as auth_ingest
    from jobs.platform import lake
    from jobs.platform.objectstore import ensure_bucket, s3_client
    from lake_layout.tables import BRONZE_AUTH_EVENTS, BRONZE_QUARANTINE

    day = generate_day(date(2026, 10, 3), events=200, seed=2, keys=keys, prefix=settings.landing.prefix,
                       scenarios=ScenarioPlan())
    lines = gzip.decompress(day.auth_body).decode().splitlines() + ["{broken"]
    client = s3_client(settings.object_store)
    ensure_bucket(client, settings.landing.bucket)
    client.put_object(Bucket=settings.landing.bucket, Key=day.auth_key,
                      Body=gzip.compress(("\n".join(lines) + "\n").encode()))
    assert auth_ingest.run(spark, settings, keys, login_date=date(2026, 10, 4)).object_key is None  # none that day
    report = auth_ingest.run(spark, settings, keys, login_date=day.day, run_id="auth-t")
    assert (report.lines, report.events, report.quarantined, report.written) == (len(lines), len(lines) - 1, 1,
                                                                                 len(lines) - 1)
    stored = lake.read_table(spark, BRONZE_AUTH_EVENTS, settings).where(f"object_key = '{day.auth_key}'")
    assert sorted(r["line_index"] for r in stored.select("line_index").collect()) == list(range(len(lines) - 1))
    bad = lake.read_table(spark, BRONZE_QUARANTINE, settings).where(f"object_key = '{day.auth_key}'").collect()
    assert [(r["record_index"], r["reason"], r["records"]) for r in bad] == [(len(lines) - 1, REJECT_REASON, 1)]
