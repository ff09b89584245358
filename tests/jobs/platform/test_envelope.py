"""Envelope encryption of restricted columns (jobs.platform.envelope): cells, key providers, bronze, rotation, Vault."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import time
import urllib.request
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from infra.objectstore import free_port
from jobs.platform.envelope import (
    DECRYPTED_PREFIX,
    DataKey,
    DecryptionError,
    KeyProvider,
    LocalKeyProvider,
    VaultTransitProvider,
    cell_dek_id,
    decrypt_cell,
    decrypt_table_columns,
    encrypt_cell,
    register_data_key,
    rotate_data_keys,
    unwrap_data_keys,
)
from jobs.platform.keys import KeyRing, load_key_material
from lake_layout.config import PROJECT_ROOT, KeySettings, LandingSettings, Settings
from lake_layout.tables import BRONZE_CALL_EVENTS, SECURITY_DATA_KEYS

DAY = date(2026, 11, 24)


def _ring(*ids: str) -> KeyRing:
    return KeyRing(active=ids[-1], keys={i: secrets.token_bytes(32) for i in ids})


# ----------------------------------------------------------------------------- cells

def test_cell_roundtrip_names_its_dek_and_is_bound_to_column_and_row() -> None:
    dek = DataKey.generate(DAY)
    assert dek.dek_id.startswith("dek-20261124-") and dek.key.hex() not in repr(dek)
    blob = encrypt_cell(AESGCM(dek.key), dek.dek_id, column="ip_encrypted", row_id="e-1", payload={"src_ip": "10.1.2.3"})
    assert blob[0] == 0x01 and cell_dek_id(blob) == dek.dek_id
    assert b"10.1.2.3" not in blob
    keys = {dek.dek_id: dek.key}
    assert decrypt_cell(blob, keys, column="ip_encrypted", row_id="e-1") == {"src_ip": "10.1.2.3"}
    # Moved to another row or column: the associated data differs.
    with pytest.raises(DecryptionError, match="failed authentication"):
        decrypt_cell(blob, keys, column="ip_encrypted", row_id="e-2")
    with pytest.raises(DecryptionError, match="failed authentication"):
        decrypt_cell(blob, keys, column="location_encrypted", row_id="e-1")
    # Any flipped bit, in the ciphertext or in the authenticated header.
    for position in (len(blob) - 1, len(blob) - 20, 3):
        tampered = bytearray(blob)
        tampered[position] ^= 0x01
        with pytest.raises(DecryptionError):
            decrypt_cell(bytes(tampered), {**keys, cell_dek_id(bytes(tampered)): dek.key}, column="ip_encrypted", row_id="e-1")
    # Relabelled with another DEK id of the same length, even one whose key is known: refused.
    other = DataKey.generate(DAY)
    relabelled = blob[:2] + other.dek_id.encode() + blob[2 + len(dek.dek_id):]
    with pytest.raises(DecryptionError):
        decrypt_cell(relabelled, {other.dek_id: dek.key}, column="ip_encrypted", row_id="e-1")
    with pytest.raises(DecryptionError, match="not among the unwrapped"):
        decrypt_cell(blob, {}, column="ip_encrypted", row_id="e-1")
    with pytest.raises(DecryptionError, match="format byte 02"):
        cell_dek_id(b"\x02" + blob[1:])


# ----------------------------------------------------------------------------- local provider

def test_local_provider_wrap_unwrap_and_tamper(tmp_path: Path) -> None:
    provider = LocalKeyProvider(_ring("enc-1"))
    assert isinstance(provider, KeyProvider)
    dek = secrets.token_bytes(32)
    kek_id, wrapped = provider.wrap(dek, context="dek-a")
    assert kek_id == "enc-1" and dek not in wrapped
    assert provider.unwrap(kek_id, wrapped, context="dek-a") == dek
    with pytest.raises(DecryptionError, match="failed authentication"):
        provider.unwrap(kek_id, wrapped, context="dek-b")  # wrong AAD: another DEK id
    with pytest.raises(DecryptionError, match="failed authentication"):
        provider.unwrap(kek_id, wrapped[:-1] + bytes([wrapped[-1] ^ 1]), context="dek-a")
    with pytest.raises(DecryptionError, match="not in the local key ring"):
        provider.unwrap("enc-9", wrapped, context="dek-a")
    with pytest.raises(DecryptionError, match="failed authentication"):  # same id, another key
        LocalKeyProvider(_ring("enc-1")).unwrap(kek_id, wrapped, context="dek-a")


def test_local_rotation_adds_a_kek_to_the_key_file_and_rewraps(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    material = load_key_material(path)
    provider = LocalKeyProvider.from_key_file(path)
    dek = secrets.token_bytes(32)
    old_kek, wrapped = provider.wrap(dek, context="dek-a")
    assert provider.rotate() == "enc-2" and provider.active_kek_id == "enc-2"
    reloaded = load_key_material(path)
    assert sorted(reloaded.column_encryption.keys) == ["enc-1", "enc-2"] and reloaded.column_encryption.active == "enc-2"
    assert reloaded.pseudonym == material.pseudonym  # other rings untouched
    new_kek, rewrapped = provider.rewrap(old_kek, wrapped, context="dek-a")
    assert new_kek == "enc-2" and rewrapped != wrapped
    only_new = LocalKeyProvider(KeyRing(active="enc-2", keys={"enc-2": reloaded.column_encryption.keys["enc-2"]}))
    assert only_new.unwrap(new_kek, rewrapped, context="dek-a") == dek


# ----------------------------------------------------------------------------- bronze end to end

@pytest.fixture(scope="module")
def envelope_lake(spark: Any, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A small generated day ingested into a lake of its own, with its own key file and landing bucket.

    Returns the settings, the provider and the generator's original values per event id."""
    from jobs.ingest import bronze as bronze_ingest
    from jobs.generator.day import generate_day
    from jobs.platform.objectstore import ensure_bucket, s3_client
    from jobs.telemetry.codec import decode_object

    tmp = tmp_path_factory.mktemp("envelope")
    env_settings = replace(
        settings.with_lake_root(str(tmp / "lake")), keys=KeySettings(file=str(tmp / "keys.json")),
        landing=LandingSettings(bucket="voiplake-envelope-test", prefix="uploads"),
        environments=replace(settings.environments, test_lake_root=str(tmp / "lake-test")),
    )
    keys = load_key_material(Path(env_settings.keys.file))
    generated = generate_day(DAY, events=240, seed=11, keys=keys, prefix="uploads")
    client = s3_client(env_settings.object_store)
    ensure_bucket(client, env_settings.landing.bucket)
    originals: dict[str, dict[str, Any]] = {}
    for obj in generated.objects:
        client.put_object(Bucket=env_settings.landing.bucket, Key=obj.key, Body=obj.body)
        upload = decode_object(obj.key, obj.body, keys.device_key)
        for event in upload.events:
            originals[event["event_id"]] = {k: event.get(k) for k in ("src_ip", "dst_ip", "latitude", "longitude")}
    # Uploads of a test build and of a test tenant (lake_layout/test_tenants.toml) in the same landing zone.
    test_uploads = _test_environment_uploads(keys)
    for key, body, _ in test_uploads:
        client.put_object(Bucket=env_settings.landing.bucket, Key=key, Body=body)
    provider = LocalKeyProvider.from_key_file(Path(env_settings.keys.file))
    report = bronze_ingest.run(spark, bronze_ingest.IngestContext(settings=env_settings, upload_date=DAY), keys, provider)
    assert report.records_accepted > 100
    return {"settings": env_settings, "provider": provider, "originals": originals, "report": report,
            "test_uploads": test_uploads, "keys": keys}


def _test_environment_uploads(keys: Any) -> list[tuple[str, bytes, list[str]]]:
    """(object key, body, event ids) of an attested test build's upload and of a test tenant's production build."""
    from jobs.telemetry.attestation import AttestationService
    from jobs.telemetry.codec import Header, encode_json, payload_bytes
    from lake_layout.landing import landing_object_key

    t0 = 1_795_478_400_000 + 8 * 3_600_000  # 2026-11-24T08:00:00Z
    kid = keys.device_master.active
    out = []
    for n, (name, account, build, schema) in enumerate([("beta", "acct-0001", "test", 3), ("qa", "acct-qa-0001", "", 2)]):
        events = [{"event_id": f"{name}-{i}", "call_id": name, "event_type": "call_start", "event_ms": t0 + i,
                   "msisdn": "+4915112345678", "account_id": account, "telemetry_level": "basic"} for i in range(2)]
        attestation = AttestationService.from_keys(keys).issue(
            device_id=f"dev-{name}", nonce=bytes([n]) * 16, verdict="MEETS_DEVICE_INTEGRITY", issued_at_ms=t0,
            payload=payload_bytes(events, encoding="json")) if schema == 3 else None
        header = Header(f"b-{name}", f"dev-{name}", "web", "2026.1", schema, t0 + 9_000, b"", 2, (), attestation, build)
        out.append((landing_object_key("uploads", received_at_ms=t0 + 10_000 + n, batch_id=f"b-{name}", encoding="json"),
                     encode_json(header, events, device_key=keys.device_key(f"dev-{name}", kid), key_id=kid),
                     [e["event_id"] for e in events]))
    return out


def test_test_builds_and_tenants_reach_only_the_test_lake(spark: Any, envelope_lake: dict[str, Any]) -> None:
    """lake_layout.environments: the test uploads are in the test lake's bronze tables and in no production table."""
    from jobs.ingest import bronze as bronze_ingest
    from jobs.platform import lake as lake_io
    from lake_layout.tables import BRONZE_INGESTED_OBJECTS, BRONZE_QUARANTINE

    prod, test = envelope_lake["settings"], envelope_lake["settings"].test_lake()
    uploads = envelope_lake["test_uploads"]
    report = envelope_lake["report"]
    assert (report.objects_routed_to_test, report.records_routed_to_test) == (2, 4)

    def column(spec: Any, s: Settings, name: str) -> set[str]:
        return {r[0] for r in lake_io.read_table(spark, spec, s).select(name).collect()}

    test_keys, test_events = {k for k, _, _ in uploads}, {e for _, _, ids in uploads for e in ids}
    assert column(BRONZE_CALL_EVENTS, test, "event_id") == test_events
    assert column(BRONZE_INGESTED_OBJECTS, test, "object_key") == test_keys
    assert not column(BRONZE_CALL_EVENTS, prod, "event_id") & test_events
    for spec in (BRONZE_INGESTED_OBJECTS, BRONZE_QUARANTINE):
        assert not column(spec, prod, "object_key") & test_keys
    assert len(column(BRONZE_INGESTED_OBJECTS, prod, "object_key")) == report.objects_new
    # objects_listed is the reader's own listing (every object of the day, ingested before or not)
    assert report.objects_listed == report.objects_new + report.objects_routed_to_test
    # a rerun finds every object in one of the two manifests: nothing is ingested again, in either lake
    again = bronze_ingest.run(spark, bronze_ingest.IngestContext(settings=prod, upload_date=DAY, run_id="bronze-rerun"),
                              envelope_lake["keys"], envelope_lake["provider"])
    assert (again.objects_new, again.objects_routed_to_test) == (0, 0)
    assert again.objects_listed == report.objects_listed


def _decrypted(spark: Any, lake: dict[str, Any], provider: KeyProvider) -> list[tuple[Any, ...]]:
    """Every bronze row (retried uploads repeat an event id) as (event_id, decrypted src, dst, lat, lon, coarse
    lat, lon, encryption_key_id), sorted."""
    from jobs.platform import lake as lake_io

    bronze = lake_io.read_table(spark, BRONZE_CALL_EVENTS, lake["settings"])
    out = decrypt_table_columns(spark, lake["settings"], provider, bronze)
    names = ["src_ip", "dst_ip", "latitude", "longitude"]
    rows = out.select("event_id", *[DECRYPTED_PREFIX + n for n in names], "latitude", "longitude", "encryption_key_id").collect()
    return sorted((tuple(r) for r in rows), key=repr)


def _matches_generator(decrypted: list[tuple[Any, ...]], originals: dict[str, dict[str, Any]], dek_id: str) -> int:
    """Assert every decrypted row holds the generator's original values; returns how many rows had a location."""
    located = 0
    for event_id, src, dst, lat, lon, coarse_lat, coarse_lon, key_id in decrypted:
        want = originals[event_id]
        assert (src, dst, lat, lon) == (want["src_ip"], want["dst_ip"], want["latitude"], want["longitude"])
        if want["latitude"] is not None:
            located += 1
            assert key_id == dek_id
            # The plain columns are the coarse 2-decimal values; the precise ones exist only encrypted.
            assert (coarse_lat, coarse_lon) == (round(want["latitude"], 2), round(want["longitude"], 2))
    return located


def test_bronze_restricted_columns_decrypt_to_the_generator_values(spark: Any, envelope_lake: dict[str, Any]) -> None:
    from jobs.platform import lake as lake_io

    settings, originals = envelope_lake["settings"], envelope_lake["originals"]
    data_keys = lake_io.read_table(spark, SECURITY_DATA_KEYS, settings).collect()
    assert len(data_keys) == 1 and data_keys[0]["provider"] == "local" and data_keys[0]["kek_id"] == "enc-1"
    dek_id = data_keys[0]["dek_id"]
    assert data_keys[0]["created_by_run"].startswith("bronze_ingest-") and data_keys[0]["wrapped_key"] is not None
    decrypted = _decrypted(spark, envelope_lake, envelope_lake["provider"])
    assert len(decrypted) == envelope_lake["report"].records_accepted
    assert _matches_generator(decrypted, originals, dek_id) > 50
    # Every ciphertext cell names the DEK of the run.
    cells = lake_io.read_table(spark, BRONZE_CALL_EVENTS, settings).select("ip_encrypted", "location_encrypted").collect()
    assert {cell_dek_id(bytes(c)) for row in cells for c in row if c is not None} == {dek_id}


def test_rotation_rewraps_data_keys_without_rewriting_bronze(spark: Any, envelope_lake: dict[str, Any]) -> None:
    from jobs.platform import lake as lake_io

    settings, provider = envelope_lake["settings"], envelope_lake["provider"]
    bronze_version = lake_io.table_version(spark, BRONZE_CALL_EVENTS, settings)
    wrapped_before = {r["dek_id"]: bytes(r["wrapped_key"]) for r in lake_io.read_table(spark, SECURITY_DATA_KEYS, settings).collect()}

    report = rotate_data_keys(spark, settings, provider)

    assert (report.kek_before, report.kek_after, report.deks_rewrapped) == ("enc-1", "enc-2", 1)
    assert report.data_keys_version_after == report.data_keys_version_before + 1
    assert lake_io.table_version(spark, BRONZE_CALL_EVENTS, settings) == bronze_version  # bronze not rewritten
    rows = lake_io.read_table(spark, SECURITY_DATA_KEYS, settings).collect()
    assert [(r["kek_id"], r["kek_version"]) for r in rows] == [("enc-2", 2)] and rows[0]["rewrapped_at"] is not None
    assert bytes(rows[0]["wrapped_key"]) != wrapped_before[rows[0]["dek_id"]]
    # The DEKs are now wrapped by the new KEK alone: a provider that only has enc-2 decrypts all old data...
    ring = load_key_material(Path(settings.keys.file)).column_encryption
    only_new = LocalKeyProvider(KeyRing(active="enc-2", keys={"enc-2": ring.keys["enc-2"]}))
    after = _decrypted(spark, envelope_lake, only_new)
    assert len(after) == envelope_lake["report"].records_accepted
    assert _matches_generator(after, envelope_lake["originals"], rows[0]["dek_id"]) > 50
    # ...and one that only has the retired enc-1 cannot unwrap anything any more.
    only_old = LocalKeyProvider(KeyRing(active="enc-1", keys={"enc-1": ring.keys["enc-1"]}))
    with pytest.raises(DecryptionError, match="not in the local key ring"):
        unwrap_data_keys(spark, settings, only_old, [rows[0]["dek_id"]])


def test_decrypt_check_counts_cells_and_refuses_without_the_key(spark: Any, envelope_lake: dict[str, Any]) -> None:
    from jobs.platform.envelope import decrypt_check
    from jobs.pipeline.runner import gate_scope

    settings = envelope_lake["settings"]
    where = gate_scope("bronze.call_events", upload_date=DAY)
    assert where is not None
    check = decrypt_check(spark, settings, envelope_lake["provider"], where=where)
    assert check["ok"] and check["rows"] == envelope_lake["report"].records_accepted
    assert check["decrypted"] == check["cells"] and check["cells"]["location_encrypted"] > 50
    assert "." not in "".join(map(str, check.values())).replace(where, "")  # no IP or coordinate in the report
    stranger = decrypt_check(spark, settings, LocalKeyProvider(_ring("enc-1", "enc-2")), where=where)
    assert not stranger["ok"] and "DecryptionError" in stranger["error"]


def test_a_bronze_table_from_before_location_encrypted_gains_the_column(spark: Any, settings: Settings, tmp_path: Path) -> None:
    from jobs.platform import lake as lake_io

    lake_settings = settings.with_lake_root(str(tmp_path / "lake"))
    older = replace(BRONZE_CALL_EVENTS, columns=tuple(c for c in BRONZE_CALL_EVENTS.columns if c.name != "location_encrypted"))
    lake_io.ensure_table(spark, older, lake_settings)
    lake_io.ensure_table(spark, BRONZE_CALL_EVENTS, lake_settings)
    schema = lake_io.read_table(spark, BRONZE_CALL_EVENTS, lake_settings).schema
    assert "location_encrypted" in schema.fieldNames() and schema["location_encrypted"].nullable


# ----------------------------------------------------------------------------- Vault Transit, for real

def _vault_binary() -> str | None:
    """$VOIPLAKE_VAULT_BIN, build/vault/vault (`make vault`), the build script's per-machine cache, or PATH."""
    cache = Path(os.environ.get("VOIPLAKE_TOOLS_CACHE", Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "voiplake"))
    candidates = [os.environ.get("VOIPLAKE_VAULT_BIN"), str(PROJECT_ROOT / "build" / "vault" / "vault"),
                  *sorted(str(p) for p in cache.glob("vault-*/vault"))]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("vault") or shutil.which("bao")


@pytest.fixture(scope="session")  # session scope: it is set up (or skips) before the Spark session
def vault_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real `vault server -dev` on 127.0.0.1:<free port> with Transit enabled; stopped after the session."""
    import hvac

    binary = _vault_binary()
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no Vault server binary under CI: .ci/run builds it (make vault, cached per machine)")
        pytest.skip("no Vault server binary: run `make vault` (infra/vault/build.sh builds build/vault/vault from the "
                    "Go module proxy) or set VOIPLAKE_VAULT_BIN); required under CI")
    port, token = free_port(), f"root-{secrets.token_hex(8)}"
    home = tmp_path_factory.mktemp("vault-home")  # the dev server writes ~/.vault-token
    log = open(home / "vault.log", "wb")
    process = subprocess.Popen(
        [binary, "server", "-dev", f"-dev-root-token-id={token}", f"-dev-listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, env={"HOME": str(home), "PATH": os.environ.get("PATH", "")},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/v1/sys/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"vault dev server did not start: {(home / 'vault.log').read_text()[-2000:]}")
            time.sleep(0.2)
        hvac.Client(url=url, token=token).sys.enable_secrets_engine("transit", path="transit")
        yield url, token
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_vault_transit_wrap_unwrap_rotate_rewrap(vault_server: tuple[str, str]) -> None:
    import hvac

    url, token = vault_server
    provider = VaultTransitProvider(url=url, token=token, key_name="voiplake-test", mount="transit")
    assert isinstance(provider, KeyProvider)
    dek = secrets.token_bytes(32)
    kek_id, wrapped = provider.wrap(dek, context="dek-a")
    assert kek_id == "transit/voiplake-test:v1" and wrapped.startswith(b"vault:v1:")
    assert provider.unwrap(kek_id, wrapped, context="dek-a") == dek
    with pytest.raises(DecryptionError, match="refused to unwrap"):
        provider.unwrap(kek_id, wrapped, context="dek-b")  # another DEK id derives another key
    body = base64.b64decode(wrapped.split(b":", 2)[2])
    altered = b"vault:v1:" + base64.b64encode(body[:-1] + bytes([body[-1] ^ 1]))
    with pytest.raises(DecryptionError, match="refused to unwrap"):
        provider.unwrap(kek_id, altered, context="dek-a")

    assert provider.rotate() == "transit/voiplake-test:v2" == provider.active_kek_id
    assert provider.unwrap(kek_id, wrapped, context="dek-a") == dek  # old versions still decrypt
    new_kek, rewrapped = provider.rewrap(kek_id, wrapped, context="dek-a")
    assert new_kek == "transit/voiplake-test:v2" and rewrapped.startswith(b"vault:v2:")
    # Retire v1 on the server: only the re-wrapped key still unwraps.
    hvac.Client(url=url, token=token).secrets.transit.update_key_configuration(
        name="voiplake-test", min_decryption_version=2, mount_point="transit")
    assert provider.unwrap(new_kek, rewrapped, context="dek-a") == dek
    with pytest.raises(DecryptionError):
        provider.unwrap(kek_id, wrapped, context="dek-a")
    with pytest.raises(DecryptionError, match="registry says"):
        provider.unwrap(kek_id, rewrapped, context="dek-a")


def test_vault_rotation_of_the_data_key_registry(vault_server: tuple[str, str], spark: Any, settings: Settings,
                                                 tmp_path: Path) -> None:
    """Data keys wrapped in Vault: rotate re-wraps security.data_keys; a table of cells is untouched and decrypts."""
    from jobs.platform import lake as lake_io

    url, token = vault_server
    lake_settings = settings.with_lake_root(str(tmp_path / "lake"))
    provider = VaultTransitProvider(url=url, token=token, key_name="voiplake-registry", mount="transit")
    deks = [DataKey.generate(DAY), DataKey.generate(DAY)]
    for dek in deks:
        register_data_key(spark, lake_settings, provider, dek, scope="test", run_id="run-vault")
    rows = [
        (f"e-{i}", dek.dek_id, encrypt_cell(AESGCM(dek.key), dek.dek_id, column="ip_encrypted", row_id=f"e-{i}",
                                           payload={"src_ip": f"192.0.2.{i}", "dst_ip": None}))
        for i, dek in enumerate(deks)
    ]
    cells = spark.createDataFrame(rows, "event_id string, encryption_key_id string, ip_encrypted binary")
    cells.write.format("delta").save(str(tmp_path / "lake" / "cells"))
    cells_version = spark.sql(f"DESCRIBE HISTORY delta.`{tmp_path / 'lake' / 'cells'}`").first()["version"]

    report = rotate_data_keys(spark, lake_settings, provider)

    assert report.deks_rewrapped == 2 and report.kek_after == "transit/voiplake-registry:v2"
    registry = lake_io.read_table(spark, SECURITY_DATA_KEYS, lake_settings).collect()
    assert {(r["provider"], r["kek_id"], r["kek_version"]) for r in registry} == {("vault", "transit/voiplake-registry:v2", 2)}
    assert all(bytes(r["wrapped_key"]).startswith(b"vault:v2:") for r in registry)
    assert spark.sql(f"DESCRIBE HISTORY delta.`{tmp_path / 'lake' / 'cells'}`").first()["version"] == cells_version
    stored = spark.read.format("delta").load(str(tmp_path / "lake" / "cells"))
    out = decrypt_table_columns(spark, lake_settings, provider, stored, columns=["ip_encrypted"])
    assert sorted((r["event_id"], r["decrypted_src_ip"]) for r in out.collect()) == [("e-0", "192.0.2.0"), ("e-1", "192.0.2.1")]
