"""telemetry_compliance: a generated day with labelled non-compliant clients, decoded by bronze's own decoder,
comes out with exactly those devices flagged for exactly their breach; the configuration in force decides."""

from __future__ import annotations

import json
import os
import tomllib
from copy import deepcopy
from datetime import UTC, date, datetime

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from jobs.ingest.door import ROW_EVENT, ROW_OBJECT
from jobs.ingest.bronze import decode_object_rows
from jobs.platform.identifiers import pseudonymize
from jobs.generator.day import generate_day
from jobs.generator.noncompliance import NonCompliancePlan
from jobs.platform.keys import new_key_material
from jobs.telemetry.codec import EVENT_FIELDS
from jobs.telemetry.compliance import POLICY_SCHEMA, compliance_rows, device_compliance, policy_frame
from lake_layout.sdk_config import (
    DEFAULT_SDK_CONFIG,
    document_sha256,
    load_sdk_config,
    parse_sdk_config,
    published_document,
)
from lake_layout.tables import BRONZE_CALL_EVENTS, BRONZE_INGESTED_OBJECTS, GOLD_TELEMETRY_COMPLIANCE

DAY = date(2026, 11, 24)
KEYS = new_key_material()
CONFIG = load_sdk_config(known_fields=EVENT_FIELDS)
PLAN = NonCompliancePlan(disallowed_fields=1, fast_sampling=1, tracking_on_2g=1, uploads_during_calls=1, over_cap=1)
CHECK_OF = {"disallowed_fields": "dropped_field_events", "fast_sampling": "fast_sampling_calls",
            "tracking_on_2g": "constrained_tracking_calls", "uploads_during_calls": "batches_during_calls",
            "over_cap": "over_cap"}


def _bronze(spark, generated, config=CONFIG):  # type: ignore[no-untyped-def]
    """bronze.call_events and bronze.ingested_objects rows of a generated day, as bronze's decoder makes them."""
    aead = AESGCM(os.urandom(32))
    events, objects = [], []
    now = datetime(2026, 11, 25, 1, tzinfo=UTC)
    for obj in generated.objects:
        for row in decode_object_rows(obj.key, obj.body, keys=KEYS, run_id="r", aead=aead, dek_id="d", now=now,
                                      sdk_config=config):
            target = events if row["row_kind"] == ROW_EVENT else objects if row["row_kind"] == ROW_OBJECT else None
            if target is not None:
                target.append(row)
    def frame(rows, spec):  # type: ignore[no-untyped-def]
        names = spec.column_names
        # The ciphertext columns play no part here; leaving them out keeps the Spark tasks small.
        return spark.createDataFrame([tuple(None if n.endswith("_encrypted") else r.get(n) for n in names) for r in rows],
                                     spec.spark_schema())
    return frame(events, BRONZE_CALL_EVENTS), frame(objects, BRONZE_INGESTED_OBJECTS), events


def _policies(spark, config=CONFIG):  # type: ignore[no-untyped-def]
    return spark.createDataFrame(policy_frame(config), POLICY_SCHEMA)


def _device(device_id: str) -> str:
    return pseudonymize("device", device_id, KEYS.pseudonym.active_key)


@pytest.fixture(scope="module")
def broken_day(spark):  # type: ignore[no-untyped-def]
    generated = generate_day(DAY, events=1500, seed=11, keys=KEYS, prefix="uploads", noncompliance=PLAN)
    events, objects, raw_events = _bronze(spark, generated)
    devices = device_compliance(events, objects, policies=_policies(spark)).localCheckpoint()
    return generated, devices, raw_events


def _sends_during_calls(raw_events) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Plain-Python oracle: per device, batches sent (device clock) strictly inside one of its calls."""
    calls: dict[str, dict[str, list]] = {}  # type: ignore[type-arg]
    sends: dict[str, dict[str, object]] = {}
    for e in raw_events:
        device = e["device_pseudonym"]
        if e["event_type"] in ("call_start", "call_end"):
            calls.setdefault(device, {}).setdefault(e["call_id"], []).append((e["event_type"], e["event_ts_device"]))
        sends.setdefault(device, {})[e["batch_id"]] = e["sent_at_device"]
    out = {}
    for device, batches in sends.items():
        spans = [(dict(c)["call_start"], dict(c)["call_end"]) for c in calls.get(device, {}).values()
                 if {k for k, _ in c} == {"call_start", "call_end"}]
        n = sum(1 for sent in batches.values() if any(a < sent < b for a, b in spans))  # type: ignore[operator]
        if n:
            out[device] = n
    return out


def test_bronze_drops_and_names_fields_outside_the_allowed_set(broken_day) -> None:  # type: ignore[no-untyped-def]
    generated, _, raw_events = broken_day
    label = next(lb for lb in generated.noncompliant if lb.kind == "disallowed_fields")
    mine = [e for e in raw_events if e["device_pseudonym"] == _device(label.device_id)]
    dropped = [e for e in mine if e["dropped_fields"]]
    assert len(dropped) == label.events and all(e["dropped_fields"] == "jitter_ms,mos" for e in dropped)
    assert all(e["mos"] is None and e["jitter_ms"] is None for e in mine)  # not stored
    legacy = [e for e in raw_events if e["schema_version"] == 1 and e["platform"] != "web"]
    assert legacy and all(e["dropped_fields"] == "imei" for e in legacy)  # legacy builds still send the IMEI
    diagnostic_mos = [e for e in raw_events if e["mos"] is not None]
    assert diagnostic_mos and all(e["telemetry_level"] == "diagnostic" for e in diagnostic_mos)


def test_each_labelled_device_is_flagged_for_its_breach_and_nobody_else(broken_day) -> None:  # type: ignore[no-untyped-def]
    generated, devices, raw_events = broken_day
    rows = {r["device_pseudonym"]: r for r in devices.collect()}
    expected = {_device(lb.device_id): lb for lb in generated.noncompliant}
    for psn, label in expected.items():
        row = rows[psn]
        checks = {check: row[check] for check in CHECK_OF.values()}
        assert {c for c, n in checks.items() if n} == {CHECK_OF[label.kind]}, (label.kind, checks)
        if label.kind in ("disallowed_fields", "fast_sampling", "tracking_on_2g"):
            assert checks[CHECK_OF[label.kind]] == label.events
        if label.kind == "over_cap":
            assert row["bytes_uploaded"] == label.events > row["daily_cap_bytes"]
    # Unlabelled devices: the default SDK flushes at an idle moment, but a call starting before the previous one
    # ended can still catch an upload (the oracle finds those); legacy schema-1 builds still send the IMEI.
    during = _sends_during_calls(raw_events)
    assert {psn: r["batches_during_calls"] for psn, r in rows.items() if r["batches_during_calls"]} == during
    legacy_versions = {"5.1.0", "5.0.3", "2024.11"}
    for psn, row in rows.items():
        if psn not in expected and row["dropped_field_events"]:
            assert row["app_version"] in legacy_versions and row["dropped_fields"] == ["imei"], row
        if psn not in expected:
            assert row["fast_sampling_calls"] == row["constrained_tracking_calls"] == row["over_cap"] == 0


def test_gold_rows_group_devices_and_list_the_worst_offenders(broken_day) -> None:  # type: ignore[no-untyped-def]
    generated, devices, _ = broken_day
    now = datetime(2026, 11, 25, 2, tzinfo=UTC)
    gold = compliance_rows(devices, compliance_date=DAY, run_id="run-1", computed_at=now)
    assert set(gold.columns) == set(GOLD_TELEMETRY_COMPLIANCE.column_names)
    rows = gold.collect()
    assert len({(r["platform"], r["app_version"], r["carrier_mccmnc"]) for r in rows}) == len(rows)
    assert sum(r["devices"] for r in rows) == devices.count()
    assert sum(r["devices_over_cap"] for r in rows) == 1
    assert all(r["config_versions"] == "2026.1" for r in rows)
    assert {r["carrier_mccmnc"] for r in rows if r["platform"] == "web"} == {"unknown"}
    over = next(lb for lb in generated.noncompliant if lb.kind == "over_cap")
    row = next(r for r in rows if r["worst_offenders"] and _device(over.device_id) in r["worst_offenders"])
    worst = json.loads(row["worst_offenders"])
    assert 1 <= len(worst) <= 5 and [w["violations"] for w in worst] == sorted((w["violations"] for w in worst), reverse=True)
    assert all(len(w["device_pseudonym"]) == 32 for w in worst)  # pseudonyms only, never raw device ids
    assert over.device_id not in json.dumps([r.asDict() for r in rows], default=str)
    clean = [r for r in rows if r["noncompliant_devices"] == 0]
    assert clean and all(r["worst_offenders"] is None and r["dropped_fields"] is None for r in clean)


def test_the_configuration_in_force_at_receipt_decides(spark) -> None:  # type: ignore[no-untyped-def]
    """A later version that allows uploads during calls and lowers the cap judges uploads received after it."""
    raw = tomllib.loads(DEFAULT_SDK_CONFIG.read_text())
    later = deepcopy(raw["version"][0])
    later["id"], later["effective_from"] = "2026.2", "2026-11-24T12:00:00Z"
    for level in ("basic", "diagnostic"):
        later[level]["uploads_during_calls"] = True
        later[level]["daily_background_upload_bytes"] = 100
    config = parse_sdk_config({"version": [raw["version"][0], later]})
    schema = BRONZE_CALL_EVENTS.spark_schema()
    names = BRONZE_CALL_EVENTS.column_names

    def event(i: int, device: str, kind: str, at: datetime, received: datetime, batch: str, sent: datetime):  # type: ignore[no-untyped-def]
        values = {"event_id": f"e{i}", "call_id": f"c-{device}", "event_type": kind, "event_ts_device": at,
                  "event_date": at.date(), "platform": "android", "app_version": "6.0.0", "schema_version": 2,
                  "subscriber_pseudonym": "s", "device_pseudonym": device, "pseudonym_key_id": "k",
                  "telemetry_level": "basic", "carrier_mccmnc": "26201", "batch_id": batch, "sent_at_device": sent,
                  "received_at": received, "object_key": f"o-{batch}", "record_index": i, "ingest_run_id": "r",
                  "duration_ms": 60_000 if kind == "call_end" else None}
        return tuple(values.get(n) for n in names)

    t = lambda h, m=0: datetime(2026, 11, 24, h, m, tzinfo=UTC)  # noqa: E731
    rows = []
    for device, hour in (("dev-morning", 8), ("dev-evening", 18)):
        # call hour:00-hour:01; batch A (the start) sent mid-call, batch B (the end) after it
        rows.append(event(len(rows), device, "call_start", t(hour), t(hour, 0), f"A-{device}", t(hour, 0) .replace(second=30)))
        rows.append(event(len(rows), device, "call_end", t(hour, 1), t(hour, 2), f"B-{device}", t(hour, 2)))
    events = spark.createDataFrame(rows, schema)
    objects = spark.createDataFrame([(f"o-{b}-{d}", 150) for d in ("dev-morning", "dev-evening") for b in "AB"],
                                    "object_key string, size_bytes long")
    got = {r["device_pseudonym"]: r for r in device_compliance(events, objects, policies=_policies(spark, config)).collect()}
    morning, evening = got["dev-morning"], got["dev-evening"]
    assert (morning["config_versions"], morning["batches_during_calls"], morning["over_cap"]) == ("2026.1", 1, 0)
    assert (evening["config_versions"], evening["batches_during_calls"], evening["over_cap"]) == ("2026.2", 0, 1)
    assert morning["bytes_uploaded"] == evening["bytes_uploaded"] == 300


def test_run_writes_the_day_and_records_lineage(spark, settings) -> None:  # type: ignore[no-untyped-def]
    from jobs.platform import lake
    from jobs.telemetry.compliance import ComplianceContext, run
    from lake_layout.tables import AUDIT_LINEAGE

    day = date(2031, 3, 14)  # a date no other test writes
    at = datetime(2031, 3, 14, 9, tzinfo=UTC)
    names = BRONZE_CALL_EVENTS.column_names
    base = {"call_id": "c1", "event_date": day, "platform": "ios", "app_version": "6.0.1", "schema_version": 2,
            "subscriber_pseudonym": "s", "device_pseudonym": "d" * 32, "pseudonym_key_id": "k", "telemetry_level": "basic",
            "batch_id": "b1", "sent_at_device": at, "received_at": at, "object_key": "uploads/x.pb.gz",
            "ingest_run_id": "r", "carrier_mccmnc": "310260"}
    rows = [{**base, "event_id": "e1", "event_type": "call_start", "event_ts_device": at, "record_index": 0},
            {**base, "event_id": "e2", "event_type": "call_end", "event_ts_device": at, "record_index": 1,
             "duration_ms": 60_000, "dropped_fields": "imei"}]
    def append(df, spec) -> None:  # type: ignore[no-untyped-def]
        # a plain append (one Spark job, not a MERGE's several) keeps the test fast; the date is this test's own
        lake.ensure_table(spark, spec, settings)
        lake.conform(df, spec).write.format("delta").mode("append").save(spec.location(settings))

    append(spark.createDataFrame([tuple(r.get(n) for n in names) for r in rows], BRONZE_CALL_EVENTS.spark_schema()),
           BRONZE_CALL_EVENTS)
    obj = {"object_key": "uploads/x.pb.gz", "upload_date": day, "size_bytes": 400, "sha256": "0" * 64, "encoding": "protobuf",
           "status": "accepted", "records_received": 2, "records_accepted": 2, "records_quarantined": 0,
           "ingest_run_id": "r", "ingested_at": at}
    append(spark.createDataFrame([tuple(obj.get(n) for n in BRONZE_INGESTED_OBJECTS.column_names)],
                                 BRONZE_INGESTED_OBJECTS.spark_schema()), BRONZE_INGESTED_OBJECTS)
    report = run(spark, ComplianceContext(settings=settings, upload_date=day, sdk_config=CONFIG, run_id="tc-2"))
    gold = lake.read_table(spark, GOLD_TELEMETRY_COMPLIANCE, settings).where(f"compliance_date = DATE'{day}'").collect()
    assert len(gold) == 1 and gold[0]["run_id"] == "tc-2"
    row = gold[0]
    assert (row["platform"], row["app_version"], row["carrier_mccmnc"], row["config_versions"]) == ("ios", "6.0.1", "310260", "2026.1")
    assert (row["devices"], row["noncompliant_devices"], row["dropped_field_events"], row["dropped_fields"]) == (1, 1, 1, "imei")
    assert row["bytes_uploaded"] == 400 and row["devices_over_cap"] == 0
    assert json.loads(row["worst_offenders"])[0]["device_pseudonym"] == "d" * 32
    assert report.violations["dropped_field_events"] == 1 and report.config_versions == ["2026.1"]
    lineage = lake.read_table(spark, AUDIT_LINEAGE, settings).where("run_id = 'tc-2'").collect()
    assert len(lineage) == 1 and lineage[0]["job"] == "telemetry_compliance"
    metrics = json.loads(lineage[0]["metrics_json"])
    assert metrics["sdk_config_sha256"]["2026.1"] == document_sha256(published_document(CONFIG.version("2026.1")))
    assert {i["table"] for i in json.loads(lineage[0]["inputs_json"])} == {"bronze.call_events", "bronze.ingested_objects"}
