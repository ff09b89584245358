"""Access audit trail and landing integrity chain: tamper-evident, verified by `voiplake audit verify`."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from jobs.platform import hashchain
from jobs.platform.hashchain import EMPTY, GENESIS_HASH, Head, append, verify
from lake_layout.access import PolicyError, load_policy, may_read_table, readable_columns
from lake_layout.tables import BRONZE_CALL_EVENTS, GOLD_HOURLY_GEO_USAGE, SILVER_CALLS

T0 = datetime(2026, 11, 24, 8, 30, 0, 123456, tzinfo=timezone.utc)


def _chain(n: int = 5) -> list[dict[str, Any]]:
    return append(EMPTY, [{"user": f"u{i}", "rows": i * 10, "at": T0, "day": date(2026, 11, 24)} for i in range(n)])


def _kinds(problems: list[hashchain.Problem]) -> set[tuple[str, int | None]]:
    return {(p.kind, p.seq) for p in problems}


# ----------------------------------------------------------------------------- the chain, plain Python

def test_an_intact_chain_verifies_and_links_each_entry_to_the_previous() -> None:
    rows = _chain()
    assert [r["seq"] for r in rows] == [0, 1, 2, 3, 4]
    assert rows[0]["prev_hash"] == GENESIS_HASH
    assert all(b["prev_hash"] == a["entry_hash"] for a, b in zip(rows, rows[1:]))
    head = Head(4, rows[-1]["entry_hash"])
    assert verify(rows, chain="t", anchor=head) == []
    # Continuing from the head gives the same chain as appending everything at once.
    assert append(Head(2, rows[2]["entry_hash"]), [{k: v for k, v in r.items() if k not in hashchain.CHAIN_COLUMNS}
                                                   for r in rows[3:]]) == rows[3:]
    # A naive timestamp read back by Spark (local zone) hashes like the aware one written.
    assert hashchain.canonical_json({"at": T0}) == hashchain.canonical_json({"at": T0.astimezone().replace(tzinfo=None)})


def test_an_altered_entry_is_detected() -> None:
    rows = _chain()
    rows[2] = {**rows[2], "rows": 999}
    assert _kinds(verify(rows, chain="t", anchor=Head(4, rows[-1]["entry_hash"]))) == {("altered", 2)}


def test_a_removed_entry_is_detected() -> None:
    rows = _chain()
    del rows[1]
    assert _kinds(verify(rows, chain="t", anchor=Head(4, rows[-1]["entry_hash"]))) == {("removed", 2), ("prev_mismatch", 2)}


def test_reordering_is_detected() -> None:
    rows = _chain()
    a, b = rows[1], rows[3]
    rows[1], rows[3] = {**b, "seq": 1}, {**a, "seq": 3}  # contents swapped, seq kept contiguous
    kinds = _kinds(verify(rows, chain="t", anchor=Head(4, rows[-1]["entry_hash"])))
    assert ("altered", 1) in kinds and ("altered", 3) in kinds


def test_a_truncated_tail_is_detected_only_against_the_anchor() -> None:
    rows = _chain()
    anchor = Head(4, rows[-1]["entry_hash"])
    assert verify(rows[:3], chain="t", anchor=None) == [
        hashchain.Problem("t", None, "no_anchor", "no head anchor found: tail truncation cannot be ruled out")]
    assert _kinds(verify(rows[:3], chain="t", anchor=anchor)) == {("truncated", 2)}
    # A chain rebuilt from scratch is internally valid, but not the anchored one.
    forged = append(EMPTY, [{"user": "x", "rows": 0, "at": T0, "day": date(2026, 11, 24)}] * 5)
    assert _kinds(verify(forged, chain="t", anchor=anchor)) == {("rewritten", 4)}
    assert _kinds(verify(rows, chain="t", anchor=Head(2, rows[2]["entry_hash"]))) == {("unanchored", 3)}
    assert verify([], chain="t", anchor=None) == []


# ----------------------------------------------------------------------------- the policy file

def test_policy_roles_and_their_tables() -> None:
    assert not may_read_table(BRONZE_CALL_EVENTS, "analyst") and readable_columns(BRONZE_CALL_EVENTS, "analyst") == []
    assert may_read_table(GOLD_HOURLY_GEO_USAGE, "analyst")
    governance = ("analyst", "billing", "noc_operator", "auditor", "lawful_intercept")
    # Among the roles, only noc_operator (and lawful intercept under a warrant) reads row-level silver.
    assert [r for r in governance if may_read_table(SILVER_CALLS, r)] == ["noc_operator", "lawful_intercept"]
    assert "mos" in readable_columns(SILVER_CALLS, "noc_operator")
    assert may_read_table("audit.access_log", "auditor") and not may_read_table("gold.hourly_geo_usage", "auditor")
    assert may_read_table("gold.billing_usage", "billing") and not may_read_table("silver.calls", "billing")


def test_a_bad_policy_is_refused_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "policy.toml"
    bad.write_text('default_role = "x"\n[roles.x]\nclearance = "secret"\nread = ["*"]\nmay_decrypt = false\n')
    with pytest.raises(PolicyError, match=r"roles.x.clearance: 'secret'"):
        load_policy(bad)
    bad.write_text('default_role = "x"\n[roles.x]\nclearance = "internal"\nread = ["*"]\nmay_decrypt = true\n')
    with pytest.raises(PolicyError, match="may_decrypt needs clearance 'restricted'"):
        load_policy(bad)


# ----------------------------------------------------------------------------- access log through `voiplake query`

def test_queries_and_denials_are_logged_and_tampering_is_reported(spark, settings, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from jobs.platform import lake
    from jobs.cli.governance import audit_verify_command
    from jobs.cli.query import query_command
    from lake_layout.tables import AUDIT_ACCESS_LOG

    s = settings.with_lake_root(str(tmp_path / "lake"))
    for spec in (BRONZE_CALL_EVENTS, SILVER_CALLS, GOLD_HOURLY_GEO_USAGE):
        lake.ensure_table(spark, spec, s)
    silver_path = SILVER_CALLS.location(s)
    runs = [
        ("analyst", "SELECT platform, count(*) AS n FROM bronze.call_events GROUP BY platform", 2),
        ("analyst", "SELECT call_id, mos FROM silver.calls", 2),
        ("analyst", "SELECT call_date, sum(calls) AS calls FROM gold.hourly_geo_usage GROUP BY call_date", 0),
        ("noc_operator", "SELECT count(call_id) AS n, avg(mos) AS mos FROM silver.calls", 0),
        ("analyst", f"SELECT count(call_id) FROM delta.`{silver_path}`", 2),  # around the views: the plan says silver.calls
    ]
    for role, sql, code in runs:
        assert query_command(spark, s, sql, role=role, user="alice", fmt="csv") == code, sql
    capsys.readouterr()

    log = [r.asDict() for r in lake.read_table(spark, AUDIT_ACCESS_LOG, s).orderBy("seq").collect()]
    assert [r["seq"] for r in log] == [0, 1, 2, 3, 4]
    assert [(r["user"], r["role"], r["action"], r["allowed"]) for r in log] == [
        ("alice", "analyst", "query", False), ("alice", "analyst", "query", False), ("alice", "analyst", "query", True),
        ("alice", "noc_operator", "query", True), ("alice", "analyst", "query", False)]
    assert [r["statement"] for r in log] == [sql for _, sql, _ in runs]
    assert log[0]["reason"] == "bronze.call_events is closed to role 'analyst' (see lake_layout/access_policy.toml)"
    assert json.loads(log[0]["tables"]) == ["bronze.call_events"] and log[0]["row_count"] is None
    assert log[1]["reason"].startswith("silver.calls is closed to role 'analyst'")
    assert json.loads(log[2]["tables"]) == ["gold.hourly_geo_usage"] and log[2]["row_count"] == 0
    assert {"gold.hourly_geo_usage.call_date", "gold.hourly_geo_usage.calls"} <= set(json.loads(log[2]["columns"]))
    assert json.loads(log[3]["tables"]) == ["silver.calls"] and log[3]["row_count"] == 1  # one aggregate row
    assert {"silver.calls.call_id", "silver.calls.mos"} <= set(json.loads(log[3]["columns"]))
    assert "silver.calls.subscriber_pseudonym" not in json.loads(log[3]["columns"])  # only what the plan scans
    assert json.loads(log[4]["tables"]) == ["silver.calls"] and log[4]["reason"].startswith("silver.calls closed to role 'analyst'")
    assert log[0]["prev_hash"] == GENESIS_HASH and all(b["prev_hash"] == a["entry_hash"] for a, b in zip(log, log[1:]))

    # The untouched entries still verify after the Delta round trip: exactly the three tampering findings remain.
    location = AUDIT_ACCESS_LOG.location(s)
    spark.sql(f"UPDATE delta.`{location}` SET row_count = 99 WHERE seq = 3")
    spark.sql(f"DELETE FROM delta.`{location}` WHERE seq = 1")
    assert audit_verify_command(s) == 5
    out = capsys.readouterr().out
    assert "audit.access_log: 3 problem(s)" in out
    assert "audit.access_log seq 2: removed: entries 1 are missing before seq 2" in out
    assert "audit.access_log seq 2: prev_mismatch" in out and "audit.access_log seq 3: altered" in out
    # Tail truncation is shown by the head anchor (test_a_truncated_tail_is_detected_only_against_the_anchor).
    assert hashchain.read_anchor(hashchain.anchor_path(s, AUDIT_ACCESS_LOG)) == Head(4, log[-1]["entry_hash"])


# ----------------------------------------------------------------------------- landing integrity

def test_landing_objects_are_chained_once_and_a_changed_object_is_reported(spark, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    from jobs.platform import lake
    from jobs.ingest.landing_integrity import record_new_objects, verify_landing
    from jobs.platform.objectstore import ensure_bucket, s3_client
    from lake_layout.tables import AUDIT_LANDING_INTEGRITY, BRONZE_INGESTED_OBJECTS

    s = settings.with_lake_root(str(tmp_path / "lake"))
    day = date(2026, 11, 24)
    client = s3_client(s.object_store)
    ensure_bucket(client, s.landing.bucket)
    prefix = f"audit-test-{uuid.uuid4().hex[:8]}/{day}"
    bodies = {f"{prefix}/a.gz": b"first upload", f"{prefix}/b.gz": b"second upload, longer"}
    for key, body in bodies.items():
        client.put_object(Bucket=s.landing.bucket, Key=key, Body=body)
    now = datetime.now(timezone.utc)
    manifest = [
        {"object_key": key, "upload_date": day, "size_bytes": len(body), "sha256": hashlib.sha256(body).hexdigest(),
         "encoding": "protobuf", "status": "accepted", "records_received": 1, "records_accepted": 1,
         "records_quarantined": 0, "ingest_run_id": "bronze_ingest-test", "ingested_at": now}
        for key, body in bodies.items()
    ]
    lake.ensure_table(spark, BRONZE_INGESTED_OBJECTS, s)
    lake.conform(spark.createDataFrame(manifest, BRONZE_INGESTED_OBJECTS.spark_schema()), BRONZE_INGESTED_OBJECTS) \
        .write.format("delta").mode("append").save(BRONZE_INGESTED_OBJECTS.location(s))

    assert record_new_objects(spark, s, upload_date=day) == 2
    assert record_new_objects(spark, s, upload_date=day) == 0  # a rerun chains nothing twice
    chained = lake.read_table(spark, AUDIT_LANDING_INTEGRITY, s).orderBy("seq").collect()
    assert [(r["seq"], r["object_key"], r["sha256"]) for r in chained] == [
        (i, m["object_key"], m["sha256"]) for i, m in enumerate(manifest)]
    assert verify_landing(spark, s) == ([], 2)

    client.put_object(Bucket=s.landing.bucket, Key=f"{prefix}/b.gz", Body=b"second upload, tampered")
    client.delete_object(Bucket=s.landing.bucket, Key=f"{prefix}/a.gz")
    problems, checked = verify_landing(spark, s)
    assert checked == 2 and [(p.kind, p.seq) for p in problems] == [("object_missing", 0), ("object_changed", 1)]
    assert f"s3://{s.landing.bucket}/{prefix}/b.gz: SHA-256" in problems[1].detail
    assert hashchain.read_anchor(hashchain.anchor_path(s, AUDIT_LANDING_INTEGRITY)) == Head(1, chained[-1]["entry_hash"])
