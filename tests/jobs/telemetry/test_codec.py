"""Landing-object codec: round trips and every object-level rejection reason."""

from __future__ import annotations

import gzip
import hashlib
import json

import pytest

from jobs.telemetry import upload_pb2 as pb
from jobs.telemetry.codec import Header, UploadRejected, decode_object, encode_json, encode_protobuf

KEY = b"k" * 32
HEADER = Header("batch-1", "device-1", "android", "6.0.0", 2, 1_795_478_400_000, b"", 0, ((1_795_478_400_000, 1_795_478_400_900, 40),))
EVENTS = [
    {"event_id": "e1", "call_id": "c1", "event_type": "call_start", "event_ms": 1_795_478_400_000, "msisdn": "+4915112345678",
     "network_type": "lte", "signal_metric": "lte_rsrp_dbm", "signal_value": -101.0, "telemetry_level": "basic"},
    {"event_id": "e2", "call_id": "c1", "event_type": "call_end", "event_ms": 1_795_478_460_000, "msisdn": "+4915112345678",
     "duration_ms": 0, "telemetry_level": "basic", "latitude": 0.0},
]


def device_key(device_id: str, key_id: str) -> bytes | None:
    return KEY if key_id == "dev-1" else None


@pytest.mark.parametrize("encode,suffix", [(encode_protobuf, ".pb.gz"), (encode_json, ".json.gz")])
def test_round_trip_keeps_values_and_presence(encode, suffix) -> None:  # type: ignore[no-untyped-def]
    blob = encode(HEADER, EVENTS, device_key=KEY, key_id="dev-1")
    decoded = decode_object("x" + suffix, blob, device_key)
    assert decoded.header.device_id == "device-1"
    assert decoded.header.time_sync == HEADER.time_sync
    assert [e["event_type"] for e in decoded.events] == ["call_start", "call_end"]
    # A zero duration and a zero latitude are values, not "not sent".
    assert decoded.events[1]["duration_ms"] == 0
    assert decoded.events[1]["latitude"] == 0.0
    assert decoded.events[0]["duration_ms"] is None
    assert decoded.events[0]["signal_value"] == -101.0


@pytest.mark.parametrize("encode,suffix", [(encode_protobuf, ".pb.gz"), (encode_json, ".json.gz")])
def test_wrong_key_is_bad_signature(encode, suffix) -> None:  # type: ignore[no-untyped-def]
    blob = encode(HEADER, EVENTS, device_key=b"z" * 32, key_id="dev-1")
    with pytest.raises(UploadRejected) as err:
        decode_object("x" + suffix, blob, device_key)
    assert err.value.reason == "bad_signature"
    assert err.value.event_count == 2


def test_unknown_key_id() -> None:
    blob = encode_protobuf(HEADER, EVENTS, device_key=KEY, key_id="dev-9")
    with pytest.raises(UploadRejected, match="unknown_signing_key"):
        decode_object("x.pb.gz", blob, device_key)


def test_tampered_payload_with_recomputed_checksum_fails_signature() -> None:
    signed = pb.SignedUpload.FromString(gzip.decompress(encode_protobuf(HEADER, EVENTS, device_key=KEY, key_id="dev-1")))
    batch = pb.EventBatch.FromString(signed.payload)
    batch.events[1].duration_ms = 99_000  # inflate a call
    signed.payload = batch.SerializeToString()
    header = pb.BatchHeader.FromString(signed.header)
    header.payload_sha256 = hashlib.sha256(signed.payload).digest()
    signed.header = header.SerializeToString()
    with pytest.raises(UploadRejected) as err:
        decode_object("x.pb.gz", gzip.compress(signed.SerializeToString()), device_key)
    assert err.value.reason == "bad_signature"


def test_payload_changed_without_checksum_is_checksum_mismatch() -> None:
    doc = json.loads(gzip.decompress(encode_json(HEADER, EVENTS, device_key=KEY, key_id="dev-1")))
    doc["events"][0]["msisdn"] = "+4915199999999"
    with pytest.raises(UploadRejected, match="checksum_mismatch"):
        decode_object("x.json.gz", gzip.compress(json.dumps(doc).encode()), device_key)


def test_truncated_and_corrupt_objects() -> None:
    blob = encode_protobuf(HEADER, EVENTS, device_key=KEY, key_id="dev-1")
    with pytest.raises(UploadRejected, match="corrupt_compression"):
        decode_object("x.pb.gz", blob[: len(blob) // 2], device_key)
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0xFF
    with pytest.raises(UploadRejected, match="corrupt_compression"):
        decode_object("x.pb.gz", bytes(flipped), device_key)


def test_wrong_schema_and_versions() -> None:
    with pytest.raises(UploadRejected, match="wrong_schema"):
        decode_object("x.json.gz", gzip.compress(b'{"kind": "crash_report"}'), device_key)
    with pytest.raises(UploadRejected, match="undecodable_envelope"):
        decode_object("x.pb.gz", gzip.compress(b"\xff\xff\xff\xff"), device_key)
    v7 = Header(**{**HEADER.__dict__, "schema_version": 7})
    with pytest.raises(UploadRejected) as err:
        decode_object("x.pb.gz", encode_protobuf(v7, EVENTS, device_key=KEY, key_id="dev-1"), device_key)
    assert err.value.reason == "unsupported_schema_version"
    assert "supported 1-3" in err.value.detail
