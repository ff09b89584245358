"""Landing-object codec: what a client uploads and the collector stores, encoded and decoded.

Two encodings of one logical upload (see docs/landing_format.md):
  * native clients (iOS, Android): gzip(SignedUpload protobuf), key suffix `.pb.gz`
  * web clients: gzip(JSON {"format_version", "header", "events", "signature"}), key suffix `.json.gz`

The signature is HMAC-SHA256 with the device's key over `signing_input(header, payload)`: for
protobuf the header and payload bytes as sent; for JSON their canonical serialization.

`decode_object` never raises on bad input: it raises `UploadRejected` with a reason code, which
the bronze job turns into a quarantine record.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from google.protobuf.message import DecodeError

from jobs.telemetry import upload_pb2 as pb

FORMAT_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = (1, 2, 3)  # = the in-field versions of schemas/manifest.toml (voiplake schema check)
SIGNATURE_ALG = "hmac-sha256"
_SIGNING_DOMAIN = b"voiplake-upload-v1\x00"
_ATTESTATION_DOMAIN = b"voiplake-attestation-v1\x00"

PLATFORMS = {pb.IOS: "ios", pb.ANDROID: "android", pb.WEB: "web"}
PLATFORM_CODES = {v: k for k, v in PLATFORMS.items()}
EVENT_TYPES = {pb.CALL_START: "call_start", pb.CALL_END: "call_end", pb.CALL_FAILURE: "call_failure"}
EVENT_TYPE_CODES = {v: k for k, v in EVENT_TYPES.items()}
NETWORK_TYPES = {
    pb.WIFI: "wifi", pb.NR_5G: "5g", pb.LTE: "lte", pb.UMTS_3G: "3g", pb.GSM_2G: "2g", pb.ETHERNET: "ethernet",
}
NETWORK_TYPE_CODES = {v: k for k, v in NETWORK_TYPES.items()}


class UploadRejected(Exception):
    """A whole landing object is unusable; `reason` is a machine-readable quarantine code."""

    def __init__(self, reason: str, detail: str, *, header: "Header | None" = None, event_count: int = 0):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.header = header
        self.event_count = event_count


@dataclass(frozen=True)
class Attestation:
    """The attestation service's signed verdict on a device (schema 3, BatchHeader.attestation); see
    jobs.telemetry.attestation for issuing and checking it."""

    device_id: str
    nonce: bytes
    verdict: str
    issued_at_ms: int
    request_hash: bytes  # SHA-256 of the batch payload it vouches for
    key_id: str
    signature: bytes


@dataclass(frozen=True)
class Header:
    batch_id: str
    device_id: str
    platform: str
    app_version: str
    schema_version: int
    sent_at_ms: int
    payload_sha256: bytes
    event_count: int
    time_sync: tuple[tuple[int, int, int], ...] = ()  # (device_ms, server_ms, rtt_ms)
    attestation: Attestation | None = None  # schema 3 clients; encoders add it only when set
    build_environment: str = ""  # schema 3: "test" from test builds; "" (not sent) or "production" otherwise


@dataclass(frozen=True)
class DecodedUpload:
    header: Header
    events: list[dict[str, Any]] = field(default_factory=list)
    encoding: str = "protobuf"


def signing_input(header: bytes, payload: bytes) -> bytes:
    """Length-prefixed so that no (header, payload) split can be confused with another."""
    return _SIGNING_DOMAIN + len(header).to_bytes(4, "big") + header + payload


def attestation_signing_input(
    device_id: str, nonce: bytes, verdict: str, issued_at_ms: int, request_hash: bytes, key_id: str
) -> bytes:
    """What the attestation service signs: every field but the signature, each length-prefixed."""
    parts = (device_id.encode(), nonce, verdict.encode(), issued_at_ms.to_bytes(8, "big", signed=True), request_hash,
             key_id.encode())
    return _ATTESTATION_DOMAIN + b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


# ----------------------------------------------------------------------------- encoding

def payload_bytes(events: list[dict[str, Any]], *, encoding: str) -> bytes:
    """The bytes a batch's payload_sha256 covers (and an attestation verdict is bound to): the serialized
    EventBatch for "protobuf", the canonical JSON event list for "json"."""
    if encoding == "protobuf":
        return pb.EventBatch(events=[_event_to_pb(e) for e in events]).SerializeToString()
    if encoding == "json":
        return _canonical([_event_to_json(e) for e in events])
    raise ValueError(f"encoding must be protobuf or json, got {encoding!r}")


def encode_protobuf(header: Header, events: list[dict[str, Any]], *, device_key: bytes, key_id: str) -> bytes:
    """gzip(SignedUpload) as an iOS / Android client sends it."""
    payload = payload_bytes(events, encoding="protobuf")
    hdr = pb.BatchHeader(
        batch_id=header.batch_id, device_id=header.device_id, platform=PLATFORM_CODES[header.platform],
        app_version=header.app_version, schema_version=header.schema_version, sent_at_ms=header.sent_at_ms,
        payload_sha256=hashlib.sha256(payload).digest(), event_count=len(events),
        time_sync=[pb.TimeSyncSample(device_ms=d, server_ms=s, rtt_ms=r) for d, s, r in header.time_sync],
        attestation=_attestation_to_pb(header.attestation), build_environment=header.build_environment,
    ).SerializeToString()
    signed = pb.SignedUpload(
        format_version=FORMAT_VERSION, header=hdr, payload=payload, signature_alg=SIGNATURE_ALG, key_id=key_id,
        signature=hmac.new(device_key, signing_input(hdr, payload), hashlib.sha256).digest(),
    )
    return gzip.compress(signed.SerializeToString(), mtime=0)


def _attestation_to_pb(a: Attestation | None) -> pb.AttestationVerdict | None:
    if a is None:
        return None
    return pb.AttestationVerdict(device_id=a.device_id, nonce=a.nonce, verdict=a.verdict, issued_at_ms=a.issued_at_ms,
                                 request_hash=a.request_hash, key_id=a.key_id, signature=a.signature)


def _attestation_to_json(a: Attestation) -> dict[str, Any]:
    return {"device_id": a.device_id, "nonce": a.nonce.hex(), "verdict": a.verdict, "issued_at_ms": a.issued_at_ms,
            "request_hash": a.request_hash.hex(), "key_id": a.key_id, "signature": base64.b64encode(a.signature).decode()}


def _json_header(header: Header, events_bytes: bytes, n: int) -> dict[str, Any]:
    doc = {
        "batch_id": header.batch_id, "device_id": header.device_id, "platform": header.platform,
        "app_version": header.app_version, "schema_version": header.schema_version,
        "sent_at_ms": header.sent_at_ms, "payload_sha256": hashlib.sha256(events_bytes).hexdigest(),
        "event_count": n, "time_sync": [list(s) for s in header.time_sync],
    }
    if header.attestation is not None:  # only schema 3 clients send the keys at all
        doc["attestation"] = _attestation_to_json(header.attestation)
    if header.build_environment:
        doc["build_environment"] = header.build_environment
    return doc


def encode_json(header: Header, events: list[dict[str, Any]], *, device_key: bytes, key_id: str) -> bytes:
    """gzip(JSON) as a web client sends it."""
    json_events = [_event_to_json(e) for e in events]
    events_bytes = _canonical(json_events)
    hdr = _json_header(header, events_bytes, len(events))
    signature = hmac.new(device_key, signing_input(_canonical(hdr), events_bytes), hashlib.sha256).digest()
    doc = {
        "format_version": FORMAT_VERSION, "header": hdr, "events": json_events,
        "signature": {"alg": SIGNATURE_ALG, "key_id": key_id, "value": base64.b64encode(signature).decode()},
    }
    return gzip.compress(_canonical(doc), mtime=0)


def _event_to_pb(e: dict[str, Any]) -> pb.CallEvent:
    fields = {k: v for k, v in e.items() if v is not None}
    if "event_type" in fields:
        fields["event_type"] = EVENT_TYPE_CODES.get(fields["event_type"], 0)
    if "network_type" in fields:
        fields["network_type"] = NETWORK_TYPE_CODES.get(fields["network_type"], 0)
    return pb.CallEvent(**fields)


def _event_to_json(e: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in e.items() if v is not None}


# ----------------------------------------------------------------------------- decoding

def _gunzip(blob: bytes) -> bytes:
    try:
        return gzip.decompress(blob)
    except (OSError, EOFError, zlib.error) as exc:
        # Truncated uploads end in EOFError, flipped bytes in a CRC or zlib error.
        raise UploadRejected("corrupt_compression", f"gzip stream unreadable: {exc}") from None


def decode_object(
    key: str, blob: bytes, device_key: Callable[[str, str], bytes | None]
) -> DecodedUpload:
    """Decode and verify one landing object.

    `device_key(device_id, key_id)` returns the device's signing key, or None if unknown.
    Raises UploadRejected for anything that makes the object as a whole untrustworthy.
    """
    raw = _gunzip(blob)
    if key.endswith(".json.gz"):
        return _decode_json(raw, device_key)
    if key.endswith(".pb.gz"):
        return _decode_protobuf(raw, device_key)
    raise UploadRejected("unknown_encoding", f"object key {key!r} is neither .pb.gz nor .json.gz")


def _check_header(header: Header, payload_ok: bool) -> None:
    if header.schema_version not in SUPPORTED_SCHEMA_VERSIONS:
        raise UploadRejected(
            "unsupported_schema_version",
            f"schema_version {header.schema_version}; supported {SUPPORTED_SCHEMA_VERSIONS[0]}-{SUPPORTED_SCHEMA_VERSIONS[-1]}",
            header=header, event_count=header.event_count,
        )
    if not payload_ok:
        raise UploadRejected(
            "checksum_mismatch", "payload SHA-256 differs from the header's", header=header, event_count=header.event_count
        )


def _verify(header: Header, key_id: str, alg: str, signature: bytes, signed: bytes, device_key: Callable[[str, str], bytes | None], n: int) -> None:
    if alg != SIGNATURE_ALG:
        raise UploadRejected("unsupported_signature", f"signature algorithm {alg!r}", header=header, event_count=n)
    key = device_key(header.device_id, key_id)
    if key is None:
        raise UploadRejected("unknown_signing_key", f"no device key for key id {key_id!r}", header=header, event_count=n)
    expected = hmac.new(key, signed, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise UploadRejected("bad_signature", "HMAC does not verify: payload or header altered", header=header, event_count=n)


def _decode_protobuf(raw: bytes, device_key: Callable[[str, str], bytes | None]) -> DecodedUpload:
    signed = pb.SignedUpload()
    try:
        signed.ParseFromString(raw)
        hdr = pb.BatchHeader()
        hdr.ParseFromString(signed.header)
    except DecodeError as exc:
        raise UploadRejected("undecodable_envelope", f"not a SignedUpload protobuf: {exc}") from None
    if signed.format_version != FORMAT_VERSION:
        raise UploadRejected("unsupported_format_version", f"format_version {signed.format_version}; supported {FORMAT_VERSION}")
    if not hdr.batch_id or not hdr.device_id or hdr.platform not in PLATFORMS:
        raise UploadRejected("wrong_schema", "SignedUpload header lacks batch_id, device_id or platform")
    header = Header(
        batch_id=hdr.batch_id, device_id=hdr.device_id, platform=PLATFORMS[hdr.platform],
        app_version=hdr.app_version, schema_version=hdr.schema_version, sent_at_ms=hdr.sent_at_ms,
        payload_sha256=bytes(hdr.payload_sha256), event_count=hdr.event_count,
        time_sync=tuple((s.device_ms, s.server_ms, s.rtt_ms) for s in hdr.time_sync),
        attestation=Attestation(
            device_id=hdr.attestation.device_id, nonce=bytes(hdr.attestation.nonce), verdict=hdr.attestation.verdict,
            issued_at_ms=hdr.attestation.issued_at_ms, request_hash=bytes(hdr.attestation.request_hash),
            key_id=hdr.attestation.key_id, signature=bytes(hdr.attestation.signature),
        ) if hdr.HasField("attestation") else None,
        build_environment=hdr.build_environment,
    )
    _check_header(header, hashlib.sha256(signed.payload).digest() == header.payload_sha256)
    _verify(header, signed.key_id, signed.signature_alg, signed.signature, signing_input(signed.header, signed.payload), device_key, header.event_count)
    batch = pb.EventBatch()
    try:
        batch.ParseFromString(signed.payload)
    except DecodeError as exc:
        raise UploadRejected("undecodable_payload", f"signed payload is not an EventBatch: {exc}", header=header, event_count=header.event_count) from None
    events = [_pb_event_to_dict(e) for e in batch.events]
    return DecodedUpload(header=header, events=events, encoding="protobuf")


# field name -> whether the field tracks presence (declared `optional` in the .proto)
_PB_EVENT_FIELDS = {f.name: f.has_presence for f in pb.CallEvent.DESCRIPTOR.fields}
EVENT_FIELDS = tuple(_PB_EVENT_FIELDS)


def _pb_event_to_dict(e: pb.CallEvent) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, has_presence in _PB_EVENT_FIELDS.items():
        if has_presence:
            out[name] = getattr(e, name) if e.HasField(name) else None
        else:
            value = getattr(e, name)
            out[name] = value if value not in ("", 0) else None  # proto3 default = not sent
    out["event_type"] = EVENT_TYPES.get(e.event_type)
    out["network_type"] = NETWORK_TYPES.get(e.network_type)
    return out


def _decode_json(raw: bytes, device_key: Callable[[str, str], bytes | None]) -> DecodedUpload:
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UploadRejected("undecodable_envelope", f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or not {"header", "events", "signature"} <= set(doc):
        raise UploadRejected("wrong_schema", "JSON upload lacks header, events or signature")
    if doc.get("format_version") != FORMAT_VERSION:
        raise UploadRejected("unsupported_format_version", f"format_version {doc.get('format_version')!r}; supported {FORMAT_VERSION}")
    h, events, sig = doc["header"], doc["events"], doc["signature"]
    try:
        header = Header(
            batch_id=str(h["batch_id"]), device_id=str(h["device_id"]), platform=str(h["platform"]),
            app_version=str(h["app_version"]), schema_version=int(h["schema_version"]),
            sent_at_ms=int(h["sent_at_ms"]), payload_sha256=bytes.fromhex(h["payload_sha256"]),
            event_count=int(h["event_count"]), time_sync=tuple(tuple(int(x) for x in s) for s in h.get("time_sync", [])),  # type: ignore[misc]
            attestation=_json_attestation(h["attestation"]) if h.get("attestation") is not None else None,
            build_environment=str(h.get("build_environment", "")),
        )
        signature = base64.b64decode(sig["value"])
        alg, key_id = str(sig["alg"]), str(sig["key_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UploadRejected("wrong_schema", f"JSON header or signature malformed: {exc!r}") from None
    if header.platform not in PLATFORM_CODES or not isinstance(events, list):
        raise UploadRejected("wrong_schema", f"platform {header.platform!r} or events not a list")
    events_bytes = _canonical(events)
    _check_header(header, hashlib.sha256(events_bytes).digest() == header.payload_sha256)
    _verify(header, key_id, alg, signature, signing_input(_canonical(h), events_bytes), device_key, len(events))
    return DecodedUpload(header=header, events=[_json_event(e) for e in events], encoding="json")


def _json_attestation(a: Any) -> Attestation:
    """Raises KeyError / TypeError / ValueError on a malformed verdict (the caller's wrong_schema)."""
    return Attestation(
        device_id=str(a["device_id"]), nonce=bytes.fromhex(a["nonce"]), verdict=str(a["verdict"]),
        issued_at_ms=int(a["issued_at_ms"]), request_hash=bytes.fromhex(a["request_hash"]), key_id=str(a["key_id"]),
        signature=base64.b64decode(a["signature"], validate=True),
    )


def _json_event(e: Any) -> dict[str, Any]:
    if not isinstance(e, dict):
        return {"_malformed": True}
    return {name: e.get(name) for name in _PB_EVENT_FIELDS}


__all__ = [
    "EVENT_FIELDS", "EVENT_TYPES", "NETWORK_TYPES", "PLATFORMS", "SUPPORTED_SCHEMA_VERSIONS", "Attestation",
    "DecodedUpload", "Header", "UploadRejected", "attestation_signing_input", "decode_object", "encode_json",
    "encode_protobuf", "payload_bytes",
]
