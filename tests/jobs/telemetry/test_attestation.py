"""Device attestation: verdicts in the upload header, checked by bronze; the generator's attested clients."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import date, datetime, timezone
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from jobs.ingest.bronze import decode_object_rows
from jobs.platform.envelope import DataKey
from jobs.generator.attested import ATTESTATION_FAULTS, EXPECTED_ATTESTATION_REASONS, AttestationPlan
from jobs.generator.day import GeneratedDay, generate_day
from jobs.platform.keys import KeyMaterial
from jobs.telemetry.attestation import ATTESTATION_REASONS, AttestationPolicy, AttestationService, check_attestation
from jobs.telemetry.codec import Header, decode_object, encode_json, encode_protobuf, payload_bytes
from lake_layout.config import AttestationSettings, SettingsError, load_settings

T0 = 1_795_478_400_000 + 10 * 3_600_000  # 2026-11-24T10:00:00Z
NOW = datetime(2026, 11, 25, 1, 0, tzinfo=timezone.utc)
DAY = date(2026, 11, 24)
EVENTS = [{"event_id": "e-1", "call_id": "c-1", "event_type": "call_start", "event_ms": T0, "msisdn": "+4915112345678",
           "telemetry_level": "basic"}]
SETTINGS = AttestationSettings(required_from_schema_version=3, max_age_seconds=3600, max_future_seconds=60,
                               accepted_verdicts="MEETS_DEVICE_INTEGRITY, MEETS_STRONG_INTEGRITY")


def _header(keys: KeyMaterial, *, schema: int = 3, verdict: str = "MEETS_DEVICE_INTEGRITY", issued: int = T0 - 5_000,
            device: str = "dev-1", payload_events: list[dict[str, object]] = EVENTS, encoding: str = "protobuf",
            service: AttestationService | None = None, attested: bool = True) -> Header:
    service = service or AttestationService.from_keys(keys)
    att = service.issue(device_id=device, nonce=b"n" * 16, verdict=verdict, issued_at_ms=issued,
                        payload=payload_bytes(payload_events, encoding=encoding)) if attested else None
    return Header("b-1", "dev-1", "android", "6.1.0", schema, T0, b"", 1, (), att)


def _decoded(keys: KeyMaterial, header: Header, encoding: str = "protobuf") -> Header:
    kid = keys.device_master.active
    encode = encode_protobuf if encoding == "protobuf" else encode_json
    blob = encode(header, EVENTS, device_key=keys.device_key("dev-1", kid), key_id=kid)
    return decode_object(f"x.{'pb' if encoding == 'protobuf' else 'json'}.gz", blob,
                         lambda d, k: keys.device_key(d, k)).header


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_verdict_travels_in_the_signed_header(keys: KeyMaterial, encoding: str) -> None:
    sent = _header(keys, encoding=encoding)
    got = _decoded(keys, sent, encoding)
    assert got.attestation == sent.attestation and got.schema_version == 3
    policy = AttestationPolicy.from_settings(SETTINGS, keys)
    assert check_attestation(got, received_ms=T0 + 1_000, policy=policy) is None


def test_check_attestation_reasons(keys: KeyMaterial) -> None:
    policy = AttestationPolicy.from_settings(SETTINGS, keys)
    received = T0 + 1_000

    def reason(header: Header, policy: AttestationPolicy = policy) -> str | None:
        problem = check_attestation(_decoded(keys, header), received_ms=received, policy=policy)
        return problem[0] if problem else None

    assert reason(_header(keys)) is None
    assert reason(_header(keys, attested=False)) == "attestation_missing"
    # a legacy client (schema 2) predates attestation: accepted without a verdict, unless the policy says otherwise
    assert reason(_header(keys, schema=2, attested=False)) is None
    assert reason(_header(keys, schema=2, attested=False),
                  replace(policy, required_from_schema_version=1)) == "attestation_missing"
    forger = AttestationService(AttestationService.from_keys(keys).key_id, Ed25519PrivateKey.generate())
    assert reason(_header(keys, service=forger)) == "attestation_bad_signature"
    assert reason(_header(keys), replace(policy, public_keys=())) == "attestation_bad_signature"
    assert reason(_header(keys, device="dev-2")) == "attestation_wrong_device"
    assert reason(_header(keys, payload_events=[{**EVENTS[0], "event_id": "e-2"}])) == "attestation_not_bound"
    assert reason(_header(keys, verdict="MEETS_BASIC_INTEGRITY")) == "attestation_failed_integrity"
    assert reason(_header(keys, issued=received - 3_600_000)) is None  # exactly max_age old
    assert reason(_header(keys, issued=received - 3_600_001)) == "attestation_stale"
    assert reason(_header(keys, issued=received + 61_000)) == "attestation_stale"  # beyond the clock tolerance
    # a verdict altered after issuing (here: its verdict upgraded) no longer verifies
    good = _header(keys, verdict="MEETS_BASIC_INTEGRITY")
    assert good.attestation is not None
    upgraded = replace(good, attestation=replace(good.attestation, verdict="MEETS_STRONG_INTEGRITY"))
    assert reason(upgraded) == "attestation_bad_signature"


def test_attestation_settings_are_validated() -> None:
    with pytest.raises(SettingsError, match="attestation.accepted_verdicts"):
        replace(SETTINGS, accepted_verdicts="MEETS_EVERYTHING")
    with pytest.raises(SettingsError, match="attestation.required_from_schema_version"):
        replace(SETTINGS, required_from_schema_version=0)
    loaded = load_settings(env={"VOIPLAKE_ATTESTATION_REQUIRED_FROM_SCHEMA_VERSION": "1"}).attestation
    assert loaded.required_from_schema_version == 1 and "MEETS_DEVICE_INTEGRITY" in loaded.verdicts


@pytest.fixture(scope="module")
def attested_day(keys: KeyMaterial) -> GeneratedDay:
    return generate_day(DAY, events=1_500, seed=11, keys=keys, prefix="uploads",
                        attestation=AttestationPlan(missing=1, forged=1, stale=1, failed_integrity=1, wrong_device=2))


def _ingest(day: GeneratedDay, keys: KeyMaterial, policy: AttestationPolicy | None) -> list[list[dict[str, Any]]]:
    dek = DataKey.generate()
    aead = AESGCM(dek.key)
    return [list(decode_object_rows(o.key, o.body, keys=keys, run_id="r", aead=aead, dek_id=dek.dek_id, now=NOW,
                                    attestation=policy)) for o in day.objects]


def test_bronze_quarantines_exactly_the_bad_verdicts(attested_day: GeneratedDay, keys: KeyMaterial) -> None:
    policy = AttestationPolicy.from_settings(load_settings(env={}).attestation, keys)
    faults = Counter(o.attestation_fault for o in attested_day.objects if o.attestation_fault)
    assert faults == {"missing": 1, "forged": 1, "stale": 1, "failed_integrity": 1, "wrong_device": 2}
    schemas: Counter[int] = Counter()
    for obj, rows in zip(attested_day.objects, _ingest(attested_day, keys, policy)):
        manifest = rows[-1]
        assert manifest["records_received"] == manifest["records_accepted"] + manifest["records_quarantined"]
        held = [r for r in rows if r["row_kind"] == "quarantine" and r["reason"] in ATTESTATION_REASONS]
        if obj.attestation_fault is None:
            assert not held, (obj.key, held)
            assert manifest["status"] == "accepted"
        else:
            assert [(r["reason"], r["records"], r["record_index"]) for r in held] == [
                (EXPECTED_ATTESTATION_REASONS[obj.attestation_fault], obj.event_count, -1)]
            assert manifest["records_accepted"] == 0
        schemas.update(r["schema_version"] for r in rows if r["row_kind"] == "event")
    # legacy schema 1 clients are ingested without a verdict, attested ones (schema 3) with one; nobody sends 2
    assert schemas[1] > 0 and schemas[3] > 0 and schemas[2] == 0


def test_requiring_verdicts_from_every_version_holds_legacy_batches(
    attested_day: GeneratedDay, keys: KeyMaterial,
) -> None:
    strict_settings = replace(load_settings(env={}).attestation, required_from_schema_version=1)
    strict = AttestationPolicy.from_settings(strict_settings, keys)
    legacy = 0
    for rows in _ingest(attested_day, keys, strict):
        decoded_version = next((r["schema_version"] for r in rows if r["row_kind"] != "object"), None)
        if decoded_version == 1:
            legacy += 1
            assert [r["reason"] for r in rows if r["row_kind"] == "quarantine"] == ["attestation_missing"]
            assert rows[-1]["records_accepted"] == 0
    assert legacy > 0


def test_default_day_is_unattested_and_passes_the_default_policy(keys: KeyMaterial) -> None:
    day = generate_day(DAY, events=600, seed=11, keys=keys, prefix="uploads")
    assert all(o.attestation_fault is None for o in day.objects)
    policy = AttestationPolicy.from_settings(load_settings(env={}).attestation, keys)
    reasons = {r["reason"] for rows in _ingest(day, keys, policy) for r in rows if r["row_kind"] == "quarantine"}
    assert not reasons & set(ATTESTATION_REASONS)
    # the plan draws from a stream of its own: the same events, only the attested builds' headers differ
    attested = generate_day(DAY, events=600, seed=11, keys=keys, prefix="uploads", attestation=AttestationPlan())
    assert [o.key for o in attested.objects] == [o.key for o in day.objects]
    assert len(ATTESTATION_FAULTS) == len(EXPECTED_ATTESTATION_REASONS)
