"""Key provider: pseudonym keys, device signing keys and the column encryption key.

The default provider is a local JSON key file (created with fresh random keys on first use,
kept under the ignored build folder). Each key has an id so keys can rotate: new data uses the
`active` id, stored rows record the id they were made with.

Per-device signing keys are derived, not stored: device_key = HMAC-SHA256(device_master, device_id),
the way a provisioning service derives a key it hands to each install.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping


class KeyError_(LookupError):
    """A key id is not known to the provider."""


@dataclass(frozen=True)
class KeyRing:
    """A set of keys by id, one of them active."""

    active: str
    keys: Mapping[str, bytes]

    def __post_init__(self) -> None:
        if self.active not in self.keys:
            raise KeyError_(f"active key id {self.active!r} is not in the key ring {sorted(self.keys)}")

    def get(self, key_id: str) -> bytes:
        try:
            return self.keys[key_id]
        except KeyError:
            raise KeyError_(f"unknown key id {key_id!r}; known: {sorted(self.keys)}") from None

    @property
    def active_key(self) -> bytes:
        return self.keys[self.active]


@dataclass(frozen=True)
class KeyMaterial:
    """Everything the ingestion needs, small enough to ship to Spark workers in a closure."""

    pseudonym: KeyRing  # HMAC keys for MSISDN / device id pseudonyms
    device_master: KeyRing  # derives per-device signing keys
    column_encryption: KeyRing  # AES-256-GCM keys for restricted columns

    def device_key(self, device_id: str, key_id: str) -> bytes:
        return hmac.new(self.device_master.get(key_id), device_id.encode(), hashlib.sha256).digest()


def _ring_to_json(ring: KeyRing) -> dict[str, object]:
    return {"active": ring.active, "keys": {k: base64.b64encode(v).decode() for k, v in ring.keys.items()}}


def _ring_from_json(name: str, raw: Mapping[str, object]) -> KeyRing:
    try:
        keys = {str(k): base64.b64decode(str(v)) for k, v in dict(raw["keys"]).items()}  # type: ignore[call-overload]
        return KeyRing(active=str(raw["active"]), keys=keys)
    except (KeyError, TypeError, ValueError) as exc:
        raise KeyError_(f"key file section {name!r} is malformed: {exc}") from exc


def new_key_material() -> KeyMaterial:
    def ring(prefix: str) -> KeyRing:
        key_id = f"{prefix}-1"
        return KeyRing(active=key_id, keys={key_id: secrets.token_bytes(32)})

    return KeyMaterial(pseudonym=ring("psn"), device_master=ring("dev"), column_encryption=ring("enc"))


def save_key_material(material: KeyMaterial, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "pseudonym": _ring_to_json(material.pseudonym),
        "device_master": _ring_to_json(material.device_master),
        "column_encryption": _ring_to_json(material.column_encryption),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def load_key_material(path: Path, *, create: bool = True) -> KeyMaterial:
    """Read the local key file; create it with fresh random keys if missing and `create`."""
    if not path.exists():
        if not create:
            raise KeyError_(f"key file {path} does not exist")
        material = new_key_material()
        save_key_material(material, path)
        return material
    raw = json.loads(path.read_text())
    return KeyMaterial(
        pseudonym=_ring_from_json("pseudonym", raw["pseudonym"]),
        device_master=_ring_from_json("device_master", raw["device_master"]),
        column_encryption=_ring_from_json("column_encryption", raw["column_encryption"]),
    )


def rotate(material: KeyMaterial, ring_name: str) -> KeyMaterial:
    """Add a fresh key to one ring and make it active; old ids stay readable."""
    ring: KeyRing = getattr(material, ring_name)
    prefix = ring.active.rsplit("-", 1)[0]
    new_id = f"{prefix}-{len(ring.keys) + 1}"
    rotated = KeyRing(active=new_id, keys={**ring.keys, new_id: secrets.token_bytes(32)})
    return KeyMaterial(**{**material.__dict__, ring_name: rotated})
