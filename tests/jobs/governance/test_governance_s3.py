"""Erasure and retention on the real store: a DSR delete and a retention purge on an s3a:// lake behind S3Proxy, then
every object under each touched table's prefix read back through boto3 (data files through Parquet, since
compressed pages hide raw bytes; the transaction log as text) must hold no pseudonym of the erased or expired
subject, while a kept subject's pseudonym is still found (the scan can see what it looks for)."""

from __future__ import annotations

import io
import json
import uuid
from datetime import date, datetime, timezone
from typing import Any

import pyarrow.parquet as pq
import pytest

from jobs.governance import dsr, retention
from jobs.governance.forensics import subject_pseudonyms
from jobs.platform import lake
from jobs.platform.keys import KeyMaterial
from jobs.platform.objectstore import ensure_bucket, list_keys, s3_client
from lake_layout.config import Settings
from lake_layout.registry import TableSpec
from lake_layout.tables import (
    AUDIT_LINEAGE,
    BRONZE_CALL_EVENTS,
    GOLD_HOURLY_GEO_USAGE,
    GOLD_PUBLIC_USAGE_STATS,
    REFERENCE_SUBSCRIBER_CONSENT,
    SILVER_CALLS,
)

BUCKET = "governance-s3-test"
SUBJECT, KEPT = "+4915112345678", "+4915187654321"
D1 = date(2026, 3, 1)
AS_OF = date(2026, 9, 1)  # EU silver rows of March are past their 180 days; US-CA rows (365 days) are not


def _ts(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=timezone.utc)


def _row(spec: TableSpec, **values: Any) -> dict[str, Any]:
    defaults = {"string": "x", "int": 0, "long": 0, "boolean": False, "date": D1, "timestamp": _ts(D1), "double": 0.0,
                "binary": b"\x01cipher"}
    return {c.name: values.get(c.name, None if c.nullable else defaults[c.type]) for c in spec.columns}


def _write(spark, spec: TableSpec, settings: Settings, rows: list[dict[str, Any]]) -> None:  # type: ignore[no-untyped-def]
    lake.ensure_table(spark, spec, settings)
    lake.conform(spark.createDataFrame(rows, spec.spark_schema()), spec).write.format("delta").mode("append") \
        .save(spec.location(settings))


def scan_prefix(client, spec: TableSpec, settings: Settings, needles: set[str]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Every object under the table's prefix: which hold any of `needles`, in a Parquet column value or in the
    bytes (the log's JSON, checkpoints, and uncompressed pages alike)."""
    location = spec.location(settings)
    bucket, _, prefix = location.removeprefix("s3a://").partition("/")
    hits: dict[str, list[str]] = {}
    objects = 0
    for key, _size in list_keys(client, bucket, prefix.rstrip("/") + "/"):
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        objects += 1
        found = {n for n in needles if n.encode() in body}
        if key.endswith(".parquet"):
            table = pq.read_table(io.BytesIO(body))
            for column in table.column_names:
                found |= needles & {v for v in table.column(column).to_pylist() if isinstance(v, str)}
        if found:
            hits[key] = sorted(found)
    return {"objects": objects, "hits": hits}


@pytest.fixture(scope="module")
def s3_lake(spark, settings: Settings, keys: KeyMaterial) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    s = settings.with_lake_root(f"s3a://{BUCKET}/lake-{uuid.uuid4().hex[:8]}")
    client = s3_client(s.object_store)
    ensure_bucket(client, BUCKET)
    me = subject_pseudonyms(keys, SUBJECT)[keys.pseudonym.active]
    kept = subject_pseudonyms(keys, KEPT)[keys.pseudonym.active]
    return {"settings": s, "client": client, "me": me, "kept": kept}


def test_dsr_delete_and_vacuum_leave_no_object_with_the_subject_on_s3(spark, keys, s3_lake) -> None:  # type: ignore[no-untyped-def]
    s, client, me, kept = s3_lake["settings"], s3_lake["client"], s3_lake["me"], s3_lake["kept"]
    s = s.with_lake_root(s.lake.root + "/dsr")
    calls = [("c-me", me, kept), ("c-kept", kept, None), ("c-to-me", kept, me)]
    _write(spark, SILVER_CALLS, s, [_row(SILVER_CALLS, call_id=c, subscriber_pseudonym=caller, callee_pseudonym=callee,
                                         device_pseudonym=f"dev-{c}", account_id="acct-1", duration_ms=60_000,
                                         pseudonym_key_id=keys.pseudonym.active) for c, caller, callee in calls])
    _write(spark, BRONZE_CALL_EVENTS, s, [_row(BRONZE_CALL_EVENTS, event_id=f"e-{c}", call_id=c, subscriber_pseudonym=caller,
                                               callee_pseudonym=callee, pseudonym_key_id=keys.pseudonym.active,
                                               object_key=f"landing/{c}.pb", record_index=0)
                                          for c, caller, callee in calls])
    before = scan_prefix(client, SILVER_CALLS, s, {me})
    assert before["hits"], "the scan must see the subject before the erasure"

    report = dsr.delete(spark, s, keys, msisdn=SUBJECT, request_id="REQ-S3", actor="privacy-desk")
    assert json.loads(report.receipt["tables"])  # the receipt names the tables it erased from
    for spec in (SILVER_CALLS, BRONZE_CALL_EVENTS):
        after = scan_prefix(client, spec, s, {me, kept})
        assert after["objects"] > 0
        assert not {key: found for key, found in after["hits"].items() if me in found}, (spec.name, after["hits"])
        assert any(kept in found for found in after["hits"].values()), spec.name  # kept rows are still there
    remaining = {r.call_id: (r.subscriber_pseudonym, r.callee_pseudonym)
                 for r in lake.read_table(spark, SILVER_CALLS, s).collect()}
    assert remaining == {"c-kept": (kept, None), "c-to-me": (kept, None)}  # callee redacted, caller's row kept


def test_retention_purge_and_vacuum_leave_no_object_with_the_expired_subject_on_s3(spark, keys, s3_lake) -> None:  # type: ignore[no-untyped-def]
    s, client, me, kept = s3_lake["settings"], s3_lake["client"], s3_lake["me"], s3_lake["kept"]
    s = s.with_lake_root(s.lake.root + "/retention")
    _write(spark, REFERENCE_SUBSCRIBER_CONSENT, s, [
        _row(REFERENCE_SUBSCRIBER_CONSENT, subscriber_pseudonym=me, jurisdiction="EU", effective_from=_ts(date(2026, 1, 1)),
             source_object_key="eu"),
        _row(REFERENCE_SUBSCRIBER_CONSENT, subscriber_pseudonym=kept, jurisdiction="US-CA", effective_from=_ts(date(2026, 1, 1)),
             source_object_key="ca")])
    _write(spark, SILVER_CALLS, s, [_row(SILVER_CALLS, call_id=c, subscriber_pseudonym=who, call_date=D1, started_at=_ts(D1))
                                    for c, who in (("c-eu", me), ("c-ca", kept))])
    # The day's aggregates exist (retention purges a day's rows only once they are published).
    _write(spark, GOLD_HOURLY_GEO_USAGE, s, [_row(GOLD_HOURLY_GEO_USAGE, call_date=D1, period_start=_ts(D1))])
    _write(spark, GOLD_PUBLIC_USAGE_STATS, s, [_row(GOLD_PUBLIC_USAGE_STATS, period=D1)])
    _write(spark, AUDIT_LINEAGE, s, [
        _row(AUDIT_LINEAGE, run_id=f"r-{job}", job=job, inputs_json="[]", metrics_json=json.dumps({"call_dates": [str(D1)]}),
             outputs_json=json.dumps({table.name: {"version_before": 0, "version_after": 1}}))
        for job, table in (("gold_hourly_geo", GOLD_HOURLY_GEO_USAGE), ("public_usage_stats", GOLD_PUBLIC_USAGE_STATS))])
    assert scan_prefix(client, SILVER_CALLS, s, {me})["hits"]

    report = retention.run(spark, s, as_of=AS_OF, run_id="s3", tables=(SILVER_CALLS,), landing=False)
    done = {a["action"] for a in report.actions if a["table_name"] == SILVER_CALLS.name}
    assert {"delete", "vacuum"} <= done, report.actions
    after = scan_prefix(client, SILVER_CALLS, s, {me, kept})
    assert not {key: found for key, found in after["hits"].items() if me in found}, after["hits"]
    assert any(kept in found for found in after["hits"].values())
    assert {r.call_id for r in lake.read_table(spark, SILVER_CALLS, s).collect()} == {"c-ca"}
