"""Every in-field upload schema version, as its own clients encode it, through bronze -> silver: one normalized call.

The schema 1 client is encoded with message classes built from schemas/v1.proto itself (not the current generated
code), so the test proves that the lake still reads what the oldest installed apps send, and a compatible v3
candidate's bytes prove that today's reader skips what it does not know.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from jobs.curate import silver_calls as sc
from jobs.ingest.bronze import decode_object_rows
from jobs.platform.identifiers import pseudonymize
from jobs.platform.envelope import DataKey
from jobs.platform.keys import KeyMaterial
from jobs.telemetry import codec
from jobs.telemetry import upload_pb2 as pb
from jobs.telemetry.attestation import AttestationPolicy, AttestationService
from jobs.telemetry.schema_compat import compile_descriptor_set, load_manifest, message_classes
from lake_layout.config import load_settings
from lake_layout.landing import landing_object_key
from lake_layout.tables import BRONZE_CALL_EVENTS, REFERENCE_SUBSCRIBER_CONSENT, SILVER_CALLS

T0 = 1_795_478_400_000 + 9 * 3_600_000  # 2026-11-24T09:00:00Z
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
MSISDN, DEVICE = "+4915112345678", "device-upgrading"
COMMON = {  # what every schema version carries
    "msisdn": MSISDN, "callee_msisdn": "+4930123456", "account_id": "acct-0001", "src_ip": "198.51.100.77",
    "dst_ip": "3.120.1.9", "network_type": "lte", "signal_metric": "lte_rsrp_dbm", "signal_value": -99.0,
    "latitude": 52.520008, "longitude": 13.404954, "country_code": "DE", "carrier_mccmnc": "26201",
}
V2_ONLY_MEASURES = ("bytes_sent", "bytes_received", "data_bytes", "mos", "jitter_ms", "quality_samples")
VERSION_MARKERS = ("call_id", "platform", "app_version", "schema_version", "record_hash", "silver_run_id")


def _call(version: int, tag: str) -> list[dict[str, Any]]:
    start = {**COMMON, "event_id": f"{tag}-s", "call_id": f"call-{tag}", "event_type": "call_start", "event_ms": T0}
    end = {**COMMON, "event_id": f"{tag}-e", "call_id": f"call-{tag}", "event_type": "call_end",
           "event_ms": T0 + 95_000, "duration_ms": 80_000}
    if version == 1:
        start["imei"] = end["imei"] = "490154203237518"
    else:
        for e in (start, end):
            e.update(telemetry_level="diagnostic", diagnostics_opt_out=False)
        end.update(bytes_sent=400_000, bytes_received=410_000, mos=4.2, jitter_ms=11)
    return [start, end]


def _header(version: int, tag: str, platform: str, keys: KeyMaterial) -> codec.Header:
    attestation = None
    if version >= 3:  # attested builds: the service's verdict on this device, bound to this payload
        encoding = "json" if platform == "web" else "protobuf"
        attestation = AttestationService.from_keys(keys).issue(
            device_id=DEVICE, nonce=tag.encode().ljust(16, b"-"), verdict="MEETS_DEVICE_INTEGRITY",
            issued_at_ms=T0 + 90_000, payload=codec.payload_bytes(_call(version, tag), encoding=encoding))
    return codec.Header(batch_id=f"batch-{tag}", device_id=DEVICE, platform=platform, attestation=attestation,
                        app_version={1: "5.0.3", 2: "6.0.0", 3: "6.1.0"}[version], schema_version=version,
                        sent_at_ms=T0 + 100_000, payload_sha256=b"", event_count=2,
                        time_sync=((T0 + 99_000, T0 + 99_050, 100),))  # device clock right: offset 0


def _encode_with(classes: dict[str, Any], header: codec.Header, events: list[dict[str, Any]], *, key: bytes,
                 key_id: str) -> bytes:
    """gzip(SignedUpload) the way a client built from an older .proto encodes it (its own message classes)."""
    import gzip

    def event(e: dict[str, Any]) -> Any:
        fields = {k: v for k, v in e.items() if v is not None}
        fields["event_type"] = codec.EVENT_TYPE_CODES[fields["event_type"]]
        fields["network_type"] = codec.NETWORK_TYPE_CODES[fields["network_type"]]
        return classes["CallEvent"](**fields)

    payload = classes["EventBatch"](events=[event(e) for e in events]).SerializeToString()
    header_message = classes["BatchHeader"](
        batch_id=header.batch_id, device_id=header.device_id, platform=codec.PLATFORM_CODES[header.platform],
        app_version=header.app_version, schema_version=header.schema_version, sent_at_ms=header.sent_at_ms,
        payload_sha256=hashlib.sha256(payload).digest(), event_count=len(events),
        time_sync=[classes["TimeSyncSample"](device_ms=d, server_ms=s, rtt_ms=r) for d, s, r in header.time_sync],
    )
    if header.attestation is not None:
        a = header.attestation
        header_message.attestation.CopyFrom(classes["AttestationVerdict"](
            device_id=a.device_id, nonce=a.nonce, verdict=a.verdict, issued_at_ms=a.issued_at_ms,
            request_hash=a.request_hash, key_id=a.key_id, signature=a.signature))
    hdr = header_message.SerializeToString()
    signed = classes["SignedUpload"](
        format_version=codec.FORMAT_VERSION, header=hdr, payload=payload, signature_alg=codec.SIGNATURE_ALG,
        key_id=key_id, signature=hmac.new(key, codec.signing_input(hdr, payload), hashlib.sha256).digest())
    return gzip.compress(signed.SerializeToString(), mtime=0)


@pytest.fixture(scope="module")
def version_classes() -> dict[int, dict[str, Any]]:
    return {v.number: message_classes(compile_descriptor_set(v.path)) for v in load_manifest().in_field}


def _uploads(keys: KeyMaterial, version_classes: dict[int, dict[str, Any]]) -> list[tuple[str, bytes]]:
    kid = keys.device_master.active
    key = keys.device_key(DEVICE, kid)
    objects = []
    received = T0 + 120_000  # all received together: receipt metadata cannot tell the calls apart
    for version in sorted(version_classes):
        tag = f"v{version}-native"
        body = _encode_with(version_classes[version], _header(version, tag, "android", keys), _call(version, tag),
                            key=key, key_id=kid)
        objects.append((landing_object_key("uploads", received_at_ms=received, batch_id=tag,
                                           encoding="protobuf"), body))
        tag = f"v{version}-web"  # web clients send JSON: the same field names, whatever the version
        body = codec.encode_json(_header(version, tag, "web", keys), _call(version, tag), device_key=key, key_id=kid)
        objects.append((landing_object_key("uploads", received_at_ms=received, batch_id=tag,
                                           encoding="json"), body))
    return objects


def test_every_in_field_version_normalizes_to_the_same_silver_call(spark, keys, version_classes) -> None:  # type: ignore[no-untyped-def]
    assert sorted(version_classes) == [1, 2, 3]  # the in-field versions of schemas/manifest.toml
    policy = AttestationPolicy.from_settings(load_settings(env={}).attestation, keys)  # schema 3 must be attested
    # bronze's per-object decode (what decode_uploads runs in each Arrow batch), here on the driver: 4 objects
    dek = DataKey.generate()
    decoded = [row for key, blob in _uploads(keys, version_classes)
               for row in decode_object_rows(key, blob, keys=keys, run_id="versions", aead=AESGCM(dek.key),
                                             dek_id=dek.dek_id, now=NOW, attestation=policy)]
    assert [r["status"] for r in decoded if r["row_kind"] == "object"] == ["accepted"] * 6
    bronze = spark.createDataFrame([{c: r.get(c) for c in BRONZE_CALL_EVENTS.column_names}
                                    for r in decoded if r["row_kind"] == "event"], BRONZE_CALL_EVENTS.spark_schema())
    subscriber = pseudonymize("msisdn", MSISDN, keys.pseudonym.active_key)
    consent = spark.createDataFrame([{
        "subscriber_pseudonym": subscriber, "pseudonym_key_id": keys.pseudonym.active, "account_id": "acct-0001",
        "department": None, "jurisdiction": "EU", "home_country": "DE", "subscriber_created_on": date(2024, 1, 1),
        "account_created_on": date(2024, 1, 1), "effective_from": datetime(2024, 1, 1, tzinfo=timezone.utc),
        "telemetry_level": "diagnostic", "diagnostics_opt_out": False, "source_object_key": "directory/x.jsonl.gz",
    }], REFERENCE_SUBSCRIBER_CONSENT.spark_schema())
    calls = (
        bronze.transform(sc.correct_clock).transform(sc.deduplicate_events).transform(sc.normalize_network)
        .transform(lambda df: sc.sessionize_calls(df, incomplete_after=timedelta(hours=6), watermark=NOW))
        .transform(lambda df: sc.apply_consent(df, consent))
        .transform(lambda df: sc.locate_cells(df, resolution=7))
        .transform(lambda df: sc.to_silver_rows(df, run_id="versions"))
    )
    rows = {r["call_id"]: r.asDict() for r in calls.collect()}
    assert sorted(rows) == [f"call-v{v}-{kind}" for v in (1, 2, 3) for kind in ("native", "web")]

    compared = [c for c in SILVER_CALLS.column_names if c not in VERSION_MARKERS and c not in V2_ONLY_MEASURES]
    normalized = {call: tuple(row[c] for c in compared) for call, row in rows.items()}
    assert len(set(normalized.values())) == 1, {call: dict(zip(compared, n)) for call, n in normalized.items()}
    one = rows["call-v1-native"]
    assert (one["status"], one["duration_ms"], one["network_class"], one["telemetry_level"]) == (
        "completed", 80_000, "cellular_4g", "diagnostic")
    assert one["subscriber_pseudonym"] == subscriber and one["h3_cell"] is not None
    assert {rows[c]["schema_version"] for c in rows} == {1, 2, 3}
    # What only schema 2 can say is there for schema 2 and absent (not zero) for schema 1.
    assert rows["call-v2-native"]["mos"] == 4.2 and rows["call-v3-web"]["data_bytes"] == 810_000
    assert all(rows[c][m] is None for c in ("call-v1-native", "call-v1-web") for m in V2_ONLY_MEASURES if m in rows[c])


def test_current_reader_skips_fields_of_a_compatible_newer_version(tmp_path: Path) -> None:
    current = load_manifest().version(load_manifest().current).path.read_text()
    newer = tmp_path / "v3.proto"
    newer.write_text(current.replace("message CallEvent {\n",
                                     "message CallEvent {\n  optional uint32 packet_loss_permille = 40;\n"))
    v3 = message_classes(compile_descriptor_set(newer, out_dir=tmp_path))
    event = _call(2, "v3")[1]
    sent = v3["CallEvent"](**{**{k: v for k, v in event.items() if k not in ("event_type", "network_type")},
                              "event_type": pb.CALL_END, "network_type": pb.LTE, "packet_loss_permille": 7})
    read = pb.CallEvent()
    read.ParseFromString(sent.SerializeToString())
    decoded = codec._pb_event_to_dict(read)
    assert {k: decoded[k] for k in event} == event
    assert read.SerializeToString() == sent.SerializeToString()  # the unknown field is kept, not lost
