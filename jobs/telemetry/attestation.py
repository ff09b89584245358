"""Device attestation verdicts: issued by a (simulated) attestation service, checked by bronze.

A schema 3 client asks the platform's attestation service (Play Integrity on Android, App Attest on iOS, a
web-integrity service for browsers) to vouch for the device before each upload: the service returns a verdict
on the device, bound to the batch by the SHA-256 of its payload and to the request by a fresh nonce, signed with
the service's Ed25519 key. The lake holds only the service's public keys; a verdict is valid when

* its signature verifies under the public key named by `key_id`;
* it attests the device that signed the batch (`device_id`) and this batch's payload (`request_hash`);
* its verdict is one of the accepted ones (a rooted / emulated device gets FAILS_INTEGRITY or BASIC only);
* it was issued at most `max_age` before the collector received the batch, and not in its future.

The simulated service's key pair is derived from the lake's key file (so the generator and bronze agree without
another secret to ship); in production `public_keys` would be the platform vendors' published keys.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from jobs.platform.keys import KeyMaterial
from jobs.telemetry.codec import Attestation, Header, attestation_signing_input
from lake_layout.config import AttestationSettings

# Quarantine reasons (bronze.quarantine.reason) of an object whose batch fails attestation.
ATTESTATION_MISSING = "attestation_missing"
ATTESTATION_BAD_SIGNATURE = "attestation_bad_signature"
ATTESTATION_WRONG_DEVICE = "attestation_wrong_device"
ATTESTATION_NOT_BOUND = "attestation_not_bound"
ATTESTATION_FAILED_INTEGRITY = "attestation_failed_integrity"
ATTESTATION_STALE = "attestation_stale"
ATTESTATION_REASONS = (ATTESTATION_MISSING, ATTESTATION_BAD_SIGNATURE, ATTESTATION_WRONG_DEVICE, ATTESTATION_NOT_BOUND,
                       ATTESTATION_FAILED_INTEGRITY, ATTESTATION_STALE)
_SERVICE_DOMAIN = b"voiplake-simulated-attestation-service\x00"


def _service_key_id(device_key_id: str) -> str:
    return f"att-{device_key_id}"


@dataclass(frozen=True)
class AttestationService:
    """The simulated attestation service: one Ed25519 signing key per generation of the lake's key file."""

    key_id: str
    private_key: Ed25519PrivateKey

    @classmethod
    def from_keys(cls, keys: KeyMaterial, key_id: str | None = None) -> "AttestationService":
        device_key_id = key_id.removeprefix("att-") if key_id else keys.device_master.active
        seed = hmac.new(keys.device_master.get(device_key_id), _SERVICE_DOMAIN, hashlib.sha256).digest()
        return cls(_service_key_id(device_key_id), Ed25519PrivateKey.from_private_bytes(seed))

    def issue(self, *, device_id: str, nonce: bytes, verdict: str, issued_at_ms: int, payload: bytes) -> Attestation:
        """A signed verdict on `device_id` for the batch whose payload bytes (protobuf EventBatch, or the canonical
        JSON events for web) are `payload`. Ed25519 is deterministic: same inputs, same token."""
        request_hash = hashlib.sha256(payload).digest()
        signed = attestation_signing_input(device_id, nonce, verdict, issued_at_ms, request_hash, self.key_id)
        signature = self.private_key.sign(signed)
        return Attestation(device_id, nonce, verdict, issued_at_ms, request_hash, self.key_id, signature)


def public_keys(keys: KeyMaterial) -> dict[str, bytes]:
    """key id -> raw Ed25519 public key of every service key generation the lake trusts."""
    out = {}
    for device_key_id in keys.device_master.keys:
        service = AttestationService.from_keys(keys, _service_key_id(device_key_id))
        out[service.key_id] = service.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return out


@dataclass(frozen=True)
class AttestationPolicy:
    """What bronze requires (from settings.attestation) and the service keys it trusts."""

    required_from_schema_version: int
    max_age: timedelta
    max_future: timedelta
    accepted_verdicts: frozenset[str]
    public_keys: tuple[tuple[str, bytes], ...]  # (key id, raw Ed25519 public key)

    def __post_init__(self) -> None:
        if self.max_age <= timedelta(0) or self.max_future < timedelta(0):
            raise ValueError(
                f"AttestationPolicy needs max_age > 0 and max_future >= 0, got {self.max_age}, {self.max_future}")

    @classmethod
    def from_settings(cls, settings: AttestationSettings, keys: KeyMaterial) -> "AttestationPolicy":
        return cls(settings.required_from_schema_version, timedelta(seconds=settings.max_age_seconds),
                   timedelta(seconds=settings.max_future_seconds), settings.verdicts,
                   tuple(sorted(public_keys(keys).items())))


def check_attestation(header: Header, *, received_ms: int, policy: AttestationPolicy) -> tuple[str, str] | None:
    """(reason, detail) when the batch may not be ingested for want of a valid, fresh verdict, else None.

    `header` must already be authenticated (device signature verified): its payload_sha256 is then the payload's.
    A batch older than policy.required_from_schema_version without a verdict passes (its client predates
    attestation); a verdict present is always checked. Details never echo device identifiers."""
    att = header.attestation
    if att is None:
        if header.schema_version >= policy.required_from_schema_version:
            return ATTESTATION_MISSING, (f"schema {header.schema_version} batch without an attestation verdict "
                                         f"(required from schema {policy.required_from_schema_version})")
        return None
    key = dict(policy.public_keys).get(att.key_id)
    if key is None:
        return ATTESTATION_BAD_SIGNATURE, f"unknown attestation service key {att.key_id[:40]!r}"
    signed = attestation_signing_input(att.device_id, att.nonce, att.verdict, att.issued_at_ms, att.request_hash,
                                       att.key_id)
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(att.signature, signed)
    except InvalidSignature:
        return ATTESTATION_BAD_SIGNATURE, "verdict signature does not verify under the attestation service key"
    if att.device_id != header.device_id:
        return ATTESTATION_WRONG_DEVICE, "verdict attests another device than the one that signed the batch"
    if not hmac.compare_digest(att.request_hash, header.payload_sha256):
        return ATTESTATION_NOT_BOUND, "verdict was issued for another batch (request hash differs from the payload's)"
    if att.verdict not in policy.accepted_verdicts:
        accepted = sorted(policy.accepted_verdicts)
        return ATTESTATION_FAILED_INTEGRITY, f"verdict {att.verdict[:40]!r}; accepted {accepted}"
    age_ms = received_ms - att.issued_at_ms
    max_age_s, max_future_s = int(policy.max_age.total_seconds()), int(policy.max_future.total_seconds())
    if age_ms > policy.max_age / timedelta(milliseconds=1):
        return ATTESTATION_STALE, f"verdict issued {age_ms // 1000} s before receipt; max {max_age_s} s"
    if -age_ms > policy.max_future / timedelta(milliseconds=1):
        return ATTESTATION_STALE, f"verdict issued {-age_ms // 1000} s after receipt (clock tolerance {max_future_s} s)"
    return None


__all__ = [
    "ATTESTATION_REASONS", "AttestationPolicy", "AttestationService", "check_attestation", "public_keys",
]
