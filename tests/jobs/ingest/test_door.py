"""Abuse at the door (jobs.ingest.door): nonce replay, per-device upload rate, accounting, and the anomaly finding that
puts the device on security.device_quarantine."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from jobs.security.anomalies import door_findings, quarantine_entries, to_anomaly_rows
from jobs.ingest.door import ROW_EVENT, ROW_OBJECT, ROW_QUARANTINE
from jobs.ingest.bronze import decoded_schema
from jobs.platform.identifiers import pseudonymize
from jobs.ingest.door import REPLAYED_NONCE, UPLOAD_RATE_EXCEEDED, apply_door, door_verdicts, without_flagged
from lake_layout.tables import BRONZE_INGESTED_OBJECTS, BRONZE_QUARANTINE

DAY = date(2026, 3, 2)
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _obj(key: str, device: str | None, batch: str | None, nonce: str | None, minute: float, *, accepted: int = 2,
         received: int = 2) -> dict[str, Any]:
    return {"row_kind": ROW_OBJECT, "environment": "production", "object_key": key, "upload_date": DAY,
            "size_bytes": 10, "sha256": "x", "encoding": "protobuf",
            "status": "accepted" if accepted == received else ("quarantined" if accepted == 0 else "partial"),
            "records_received": received, "records_accepted": accepted, "records_quarantined": received - accepted,
            "ingest_run_id": "r", "ingested_at": T0, "device_pseudonym": device, "batch_id": batch,
            "attestation_nonce": nonce, "received_at": T0 + timedelta(minutes=minute), "platform": "android",
            "schema_version": 3}


def _frame(spark: Any, rows: list[dict[str, Any]]) -> Any:
    schema = decoded_schema()
    return spark.createDataFrame([tuple(r.get(f.name) for f in schema.fields) for r in rows], schema)


def _reasons(verdicts: Any) -> dict[str, str]:
    return {r["object_key"]: r["reason"] for r in verdicts.collect()}


def test_nonce_replay_within_run_and_against_earlier_runs_but_not_a_retry(spark: Any) -> None:
    objects = _frame(spark, [
        _obj("k1", "devA", "b1", "n1", 1), _obj("k2", "devA", "b1", "n1", 2),  # a retry of b1: same verdict
        _obj("k3", "devA", "b2", "n1", 3),  # another batch reusing b1's nonce
        _obj("k4", "devB", "b3", "n1", 4),  # same nonce bytes, other device: not a replay
        _obj("k5", "devA", "b5", "n9", 5),  # n9 was used for b0 in an earlier run
        _obj("k6", "devA", "b6", "n6", 6), _obj("k7", None, None, None, 7),
        _obj("k8", "devA", "b8", "n1", 8, accepted=0),  # already wholly quarantined (e.g. stale): keeps its reason
    ])
    seen = spark.createDataFrame([("devA", "b0", "n9"), ("devA", "b6", "n6")],
                                 "device_pseudonym string, batch_id string, attestation_nonce string")
    assert _reasons(door_verdicts(objects, seen=seen, max_per_hour=100)) == {"k3": REPLAYED_NONCE, "k5": REPLAYED_NONCE}
    # without the registry only the in-run replay is found
    assert _reasons(door_verdicts(objects, seen=None, max_per_hour=100)) == {"k3": REPLAYED_NONCE}


def test_rate_cut_off_keeps_the_first_n_per_device_hour_in_receive_then_key_order(spark: Any) -> None:
    rows = [_obj(f"k{i}", "devA", f"b{i}", None, 5) for i in (3, 1, 2)]  # same receive time: key order
    rows += [_obj("k0", "devA", "b0", None, 50), _obj("k9", "devA", "b9", None, 61),  # k9 is in the next hour
             _obj("kB1", "devB", "bb1", None, 1), _obj("kB2", "devB", "bb2", None, 2),
             _obj("kx", "devA", "bx", "n1", 0), _obj("ky", "devA", "by", "n1", 0.5),  # ky: replay, not counted
             _obj("kn", None, None, None, 0)]  # schema 1-2 without an authentic device: not judged
    objects = _frame(spark, rows)
    first = _reasons(door_verdicts(objects, seen=None, max_per_hour=2))
    # devA in hour 10: kx, k1, k2, k3, k0 counted (ky is a replay) -> k2, k3, k0 over the limit
    assert first == {"ky": REPLAYED_NONCE, "k2": UPLOAD_RATE_EXCEEDED, "k3": UPLOAD_RATE_EXCEEDED,
                     "k0": UPLOAD_RATE_EXCEEDED}
    assert _reasons(door_verdicts(objects.repartition(4), seen=None, max_per_hour=2)) == first
    assert _reasons(door_verdicts(objects, seen=None, max_per_hour=5)) == {"ky": REPLAYED_NONCE}


def test_apply_door_quarantines_whole_objects_and_accounting_holds(spark: Any) -> None:
    event = {"row_kind": ROW_EVENT, "environment": "production", "event_id": "e", "object_key": "k2"}
    bad = {"row_kind": ROW_QUARANTINE, "environment": "production", "object_key": "k2", "record_index": 2,
           "reason": "invalid_msisdn", "records": 1, "upload_date": DAY, "ingest_run_id": "r"}
    decoded = _frame(spark, [
        _obj("k1", "devA", "b1", "n1", 1), {**event, "event_id": "e1", "object_key": "k1"},
        {**event, "event_id": "e2", "object_key": "k1"},
        _obj("k2", "devA", "b2", "n1", 2, accepted=2, received=3), {**event, "event_id": "e3"},
        {**event, "event_id": "e4"}, bad,
    ])
    verdicts = door_verdicts(decoded.where("row_kind = 'object'"), seen=None, max_per_hour=10)
    out = apply_door(decoded, verdicts)
    assert out.columns == decoded.columns
    events = sorted(r["event_id"] for r in out.where(f"row_kind = '{ROW_EVENT}'").collect())
    assert events == ["e1", "e2"]
    quarantine = [r.asDict() for r in out.where(f"row_kind = '{ROW_QUARANTINE}'").collect()]
    assert [(q["object_key"], q["record_index"], q["reason"], q["records"]) for q in quarantine] == \
        [("k2", -1, REPLAYED_NONCE, 3)]
    objects = {r["object_key"]: r for r in out.where(f"row_kind = '{ROW_OBJECT}'").collect()}
    assert (objects["k2"]["status"], objects["k2"]["records_accepted"], objects["k2"]["records_quarantined"]) == \
        ("quarantined", 0, 3)
    assert objects["k1"]["status"] == "accepted"
    for o in objects.values():
        assert o["records_received"] == o["records_accepted"] + o["records_quarantined"]
    assert sum(q["records"] for q in quarantine) == sum(o["records_quarantined"] for o in objects.values())
    # Bronze reads its events through the anti-join alone: the same events, the same columns.
    only_events = decoded.where(f"row_kind = '{ROW_EVENT}'")
    kept = without_flagged(only_events, verdicts)
    assert kept.columns == decoded.columns
    assert sorted(r["event_id"] for r in kept.collect()) == events


def test_spoofing_device_becomes_a_high_finding_and_a_quarantine_entry(spark: Any) -> None:
    def q(key: str, reason: str, day: date = DAY) -> tuple[Any, ...]:
        return (key, -1, reason, 4, day)

    quarantine = spark.createDataFrame(
        [q("a1", REPLAYED_NONCE), q("a2", UPLOAD_RATE_EXCEEDED), q("a3", UPLOAD_RATE_EXCEEDED),
         q("b1", UPLOAD_RATE_EXCEEDED), q("c1", "attestation_stale"), q("a0", REPLAYED_NONCE, DAY - timedelta(days=1))],
        "object_key string, record_index int, reason string, records long, upload_date date")
    manifest = spark.createDataFrame(
        [(k, d, T0 + timedelta(minutes=i), DAY) for i, (k, d) in enumerate(
            [("a1", "devA"), ("a2", "devA"), ("a3", "devA"), ("b1", "devB"), ("c1", "devC"), ("a0", "devA")])],
        "object_key string, device_pseudonym string, received_at timestamp, upload_date date")
    findings = door_findings(quarantine, manifest, day=DAY, high_objects=3)
    by_device = {r["device_pseudonym"]: r for r in findings.collect()}
    assert set(by_device) == {"devA", "devB"}
    assert by_device["devA"]["severity"] == "high" and by_device["devB"]["severity"] == "medium"
    evidence = json.loads(by_device["devA"]["evidence"])
    assert (evidence["uploads"], evidence["records"], evidence[REPLAYED_NONCE], evidence[UPLOAD_RATE_EXCEEDED]) == \
        (3, 12, 1, 2)
    now = datetime(2026, 3, 3, 2, tzinfo=UTC)
    rows = to_anomaly_rows(findings, detection_date=DAY, run_id="run", detected_at=now)
    held = [r.asDict() for r in quarantine_entries(rows, min_severity="high", key_id="psn-1", now=now, days=7).collect()]
    assert [(h["device_pseudonym"], h["reason"]) for h in held] == [("devA", "door/suspected_spoofing high")]
    assert held[0]["expires_at"] == (now + timedelta(days=7)).replace(tzinfo=None)  # session time zone UTC



def test_generated_replays_and_burst_are_caught_and_nothing_else(spark: Any, keys: Any) -> None:
    from collections import Counter

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from jobs.ingest.bronze import decode_object_rows
    from jobs.platform.envelope import DataKey
    from jobs.generator.attested import AttestationPlan
    from jobs.generator.day import generate_day
    from lake_layout.config import load_settings

    day = generate_day(DAY, events=800, seed=11, keys=keys, prefix="uploads",
                       attestation=AttestationPlan(replayed_nonce=2, burst_uploads=6))
    faults = Counter(o.door_fault for o in day.objects if o.door_fault)
    assert faults == {"replayed_nonce": 2, "burst": 7}  # the burst batch's first upload and 6 re-uploads
    dek = DataKey.generate()
    aead = AESGCM(dek.key)
    rows = [list(decode_object_rows(o.key, o.body, keys=keys, run_id="r", aead=aead, dek_id=dek.dek_id,
                                    now=datetime(2026, 3, 3, 1, tzinfo=UTC)))[-1] for o in day.objects]
    objects = _frame(spark, [{**r, "environment": "production"} for r in rows])
    fault_of = {o.key: o.door_fault for o in day.objects}
    default_limit = load_settings(env={}).door.max_batches_per_device_hour
    caught = _reasons(door_verdicts(objects, seen=None, max_per_hour=default_limit))
    assert caught == {k: REPLAYED_NONCE for k, f in fault_of.items() if f == "replayed_nonce"}
    tight = _reasons(door_verdicts(objects, seen=None, max_per_hour=3))
    rate = {k for k, reason in tight.items() if reason == UPLOAD_RATE_EXCEEDED}
    assert len(rate) >= 4 and all(fault_of[k] == "burst" for k in rate)


def test_bronze_run_quarantines_nonces_replayed_across_and_within_runs(spark: Any, settings: Any, keys: Any,
                                                                 tmp_path: Any) -> None:
    """The registry (bronze.ingested_objects.attestation_nonce) carries a device's nonces from one run to the next;
    the report counts the replay under the device's pseudonym, and the anomaly finding reads it back."""
    from dataclasses import replace
    from pathlib import Path

    from jobs.ingest import bronze as bronze_ingest
    from jobs.platform import lake
    from jobs.platform.envelope import LocalKeyProvider
    from jobs.platform.objectstore import ensure_bucket, s3_client
    from jobs.telemetry.attestation import AttestationService
    from jobs.telemetry.codec import Header, encode_json, payload_bytes
    from lake_layout.config import LandingSettings
    from lake_layout.landing import landing_object_key

    s = replace(settings.with_lake_root(str(tmp_path / "lake")),
                landing=LandingSettings(bucket="voiplake-door-test", prefix="uploads"),
                environments=replace(settings.environments, test_lake_root=str(tmp_path / "lake-test")))
    client = s3_client(s.object_store)
    ensure_bucket(client, s.landing.bucket)
    kid, service = keys.device_master.active, AttestationService.from_keys(keys)
    day1 = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0) - timedelta(days=2)

    def upload(batch: str, at: datetime) -> None:
        t = int(at.timestamp() * 1000)
        events = [{"event_id": f"{batch}-e", "call_id": batch, "event_type": "call_start", "event_ms": t - 60_000,
                   "msisdn": "+4915112345678", "telemetry_level": "basic"}]
        verdict = service.issue(device_id="dev-door", nonce=b"\x07" * 16, verdict="MEETS_DEVICE_INTEGRITY",
                                issued_at_ms=t - 5_000, payload=payload_bytes(events, encoding="json"))
        header = Header(batch, "dev-door", "web", "2026.3", 3, t - 1_000, b"", 1, (), verdict, "")
        key = landing_object_key("uploads", received_at_ms=t, batch_id=batch, encoding="json")
        client.put_object(Bucket=s.landing.bucket, Key=key,
                          Body=encode_json(header, events, device_key=keys.device_key("dev-door", kid), key_id=kid))

    device = pseudonymize("device", "dev-door", keys.pseudonym.active_key)
    # an earlier run ingested batch b-first of the device with the nonce (seeded into the registry directly)
    earlier = {"object_key": "uploads/earlier.json.gz", "upload_date": day1.date(), "size_bytes": 1, "sha256": "x",
               "encoding": "json", "status": "accepted", "records_received": 1, "records_accepted": 1,
               "records_quarantined": 0, "ingest_run_id": "earlier", "ingested_at": day1, "device_pseudonym": device,
               "batch_id": "b-first", "attestation_nonce": (b"\x07" * 16).hex(), "received_at": day1}
    lake.merge_insert_new(spark, spark.createDataFrame([tuple(earlier[c] for c in BRONZE_INGESTED_OBJECTS.column_names)],
                                                       BRONZE_INGESTED_OBJECTS.spark_schema()), BRONZE_INGESTED_OBJECTS, s)
    day2 = day1 + timedelta(days=1)
    upload("b-replay", day2)
    upload("b-again", day2 + timedelta(minutes=1))  # and once more in the same run
    provider = LocalKeyProvider.from_key_file(Path(s.keys.file))
    second = bronze_ingest.run(spark, bronze_ingest.IngestContext(settings=s, upload_date=day2.date()), keys, provider)
    assert (second.records_received, second.records_accepted, second.records_quarantined) == (2, 0, 2)
    assert second.quarantined_by_reason == {REPLAYED_NONCE: 2}
    assert second.suspected_spoofing_by_device == {device: 2}  # the pseudonym, never the raw id
    findings = door_findings(lake.read_table(spark, BRONZE_QUARANTINE, s), lake.read_table(spark, BRONZE_INGESTED_OBJECTS, s),
                             day=day2.date(), high_objects=1).collect()
    assert [(f["device_pseudonym"], f["severity"]) for f in findings] == [(device, "high")]
