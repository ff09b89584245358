"""Attested clients (`AttestationPlan`): schema 3 builds that attach a verdict of the simulated attestation service
(jobs.telemetry.attestation) to each upload, bad verdicts, and abuse at the door (replayed nonces, bursts)."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from jobs.generator.calls import _Batch
from jobs.generator.common import DAY_MS
from jobs.generator.population import Device
from jobs.platform.keys import KeyMaterial
from jobs.telemetry.codec import payload_bytes

# Batches with a bad verdict, and the quarantine reason bronze must give each (jobs.telemetry.attestation).
EXPECTED_ATTESTATION_REASONS = {
    "missing": "attestation_missing",  # an attested build that sent no verdict
    "forged": "attestation_bad_signature",  # a verdict not signed by the attestation service
    "stale": "attestation_stale",  # a verdict issued days before the upload (replayed from an old request)
    "failed_integrity": "attestation_failed_integrity",  # a rooted / emulated device: FAILS_INTEGRITY
    "wrong_device": "attestation_wrong_device",  # a verdict lifted from another device
}
ATTESTATION_FAULTS = tuple(EXPECTED_ATTESTATION_REASONS)
ATTESTED_APP_VERSIONS = {"ios": "6.1.0", "android": "6.1.0", "web": "2026.1"}  # the builds that send schema 3
ATTESTED_SCHEMA_VERSION = 3
STALE_VERDICT_DAYS = (2, 5)


@dataclass(frozen=True)
class AttestationPlan:
    """Attested clients (schema 3); `generate_day` has none by default (no device then sends schema 3).

    Every device that would send schema 2 runs the attested build instead (ATTESTED_APP_VERSIONS): before each
    upload it gets a verdict (MEETS_DEVICE_INTEGRITY, issued 1-60 s before the send, a fresh 16-byte nonce, bound
    to the batch payload) from the simulated attestation service (jobs.telemetry.attestation) and sends it in the
    header; schema 1 devices stay legacy clients without one. The counts are batches given a bad verdict (see
    EXPECTED_ATTESTATION_REASONS), chosen among attested batches that are otherwise clean and uploaded once.
    Draws from a random stream of its own: the events and batches of the day are the same with or without it.

    Abuse at the door (jobs.ingest.door), from a further stream of its own (0: the output is as without these fields):
    `replayed_nonce` clean attested batches get a valid verdict that reuses the nonce of an earlier clean batch of
    the same device (bronze: replayed_nonce); `burst_uploads` re-uploads of one clean attested batch within its
    receive hour (same body: counted against door.max_batches_per_device_hour, not replays). Their objects carry
    `door_fault` "replayed_nonce" / "burst".
    """

    missing: int = 0
    forged: int = 0
    stale: int = 0
    failed_integrity: int = 0
    wrong_device: int = 0
    replayed_nonce: int = 0
    burst_uploads: int = 0

    def __post_init__(self) -> None:
        for name in (*ATTESTATION_FAULTS, "replayed_nonce", "burst_uploads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"AttestationPlan.{name} must be a non-negative integer, got {value!r}")


def _apply_attestation(plan: AttestationPlan, batches: list[_Batch], day: date, seed: int, keys: KeyMaterial) -> None:
    """Upgrade schema 2 devices to the attested build and attach each batch's verdict (bad ones per `plan`)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from jobs.telemetry.attestation import AttestationService

    rng = random.Random(f"voiplake-attestation:{seed}:{day.isoformat()}")
    service = AttestationService.from_keys(keys)
    upgraded: dict[str, Device] = {}
    for batch in batches:
        device = batch.device
        if device.schema_version == 2:
            if device.device_id not in upgraded:
                upgraded[device.device_id] = replace(device, schema_version=ATTESTED_SCHEMA_VERSION,
                                                     app_version=ATTESTED_APP_VERSIONS[device.platform])
            batch.device = upgraded[device.device_id]
    attested = [b for b in batches if b.device.schema_version == ATTESTED_SCHEMA_VERSION]
    clean = [b for b in attested if b.fault is None and b.retry_received_ms is None and not b.storm_received_ms
             and not b.bad and not b.time_faults]
    wanted = [kind for kind in ATTESTATION_FAULTS for _ in range(getattr(plan, kind))]
    if len(wanted) > len(clean):
        raise ValueError(f"AttestationPlan asks for {len(wanted)} bad verdicts but only {len(clean)} attested batches "
                         "are clean single uploads; lower the plan or generate more events")
    for batch, kind in zip(rng.sample(clean, len(wanted)), wanted):
        batch.attestation_fault = kind
    others = sorted({b.device.device_id for b in attested})
    for batch in attested:
        fault = batch.attestation_fault
        if fault == "missing":
            continue
        encoding = "json" if batch.device.platform == "web" else "protobuf"
        issued = batch.send_ms - rng.randint(1_000, 60_000)
        if fault == "stale":
            issued -= rng.randint(*STALE_VERDICT_DAYS) * DAY_MS
        device_id = batch.device.device_id
        if fault == "wrong_device":
            device_id = next((d for d in others if d != device_id), f"{device_id}-other")
        signer = service
        if fault == "forged":  # a self-made key claiming the service's key id
            signer = AttestationService(service.key_id, Ed25519PrivateKey.from_private_bytes(rng.randbytes(32)))
        batch.attestation = signer.issue(
            device_id=device_id, nonce=rng.randbytes(16),
            verdict="FAILS_INTEGRITY" if fault == "failed_integrity" else "MEETS_DEVICE_INTEGRITY",
            issued_at_ms=issued, payload=payload_bytes(batch.events, encoding=encoding),
        )
    if plan.replayed_nonce or plan.burst_uploads:
        _apply_door_abuse(plan, [b for b in clean if b.attestation_fault is None], day, seed, service)


def _apply_door_abuse(plan: AttestationPlan, clean: list[_Batch], day: date, seed: int, service: Any) -> None:
    """AttestationPlan.replayed_nonce / burst_uploads on `clean` (attested, good verdict, uploaded once)."""
    rng = random.Random(f"voiplake-door:{seed}:{day.isoformat()}")
    by_device: dict[str, list[_Batch]] = {}
    for b in sorted(clean, key=lambda b: (b.received_ms, b.batch_id)):
        by_device.setdefault(b.device.device_id, []).append(b)
    pairs = [(bs[i - 1], bs[i]) for bs in by_device.values() for i in range(1, len(bs), 2)]
    if plan.replayed_nonce > len(pairs):
        raise ValueError(f"AttestationPlan asks for {plan.replayed_nonce} replayed nonces but only {len(pairs)} devices' "
                         "clean batch pairs exist; lower the plan or generate more events")
    used: set[str] = set()
    for first, later in rng.sample(pairs, plan.replayed_nonce):
        att = later.attestation
        assert att is not None and first.attestation is not None
        encoding = "json" if later.device.platform == "web" else "protobuf"
        later.attestation = service.issue(device_id=att.device_id, nonce=first.attestation.nonce, verdict=att.verdict,
                                          issued_at_ms=att.issued_at_ms,
                                          payload=payload_bytes(later.events, encoding=encoding))
        later.door_fault = "replayed_nonce"
        used.update((first.batch_id, later.batch_id))
    if plan.burst_uploads:
        candidates = [b for b in clean if b.batch_id not in used]
        if not candidates:
            raise ValueError("AttestationPlan.burst_uploads needs a clean attested batch")
        batch = rng.choice(sorted(candidates, key=lambda b: b.batch_id))
        hour_end = (batch.received_ms // 3_600_000 + 1) * 3_600_000
        gap = max(1, (hour_end - 1 - batch.received_ms) // (plan.burst_uploads + 1))
        batch.storm_received_ms = [batch.received_ms + gap * (i + 1) for i in range(plan.burst_uploads)]
        batch.door_fault = "burst"


__all__ = [
    "ATTESTATION_FAULTS", "ATTESTED_APP_VERSIONS", "ATTESTED_SCHEMA_VERSION", "EXPECTED_ATTESTATION_REASONS",
    "AttestationPlan",
]
