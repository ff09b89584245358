"""Envelope encryption of restricted columns: AES-256-GCM data keys wrapped by a key provider's KEK.

The scheme, as cloud KMSs and Vault Transit recommend it:

* every ingest run makes a fresh random AES-256 **data key** (DEK) and encrypts the restricted cells of the
  rows it writes (original IPs, precise location) with it, on the Spark workers (the plaintext DEK travels
  only in the `mapInArrow` closure);
* the DEK is stored only **wrapped** (encrypted) by a **key-encryption key** (KEK) that a `KeyProvider` holds,
  in the small registry table `security.data_keys`, beside the KEK id that wrapped it;
* every ciphertext cell names its DEK (cell format below), and rows carry it in `encryption_key_id`; a reader
  unwraps each DEK once through the provider and decrypts;
* rotating the KEK (`voiplake keys rotate`) makes a new KEK version and re-wraps the DEKs: only
  `security.data_keys` changes, the data tables are not rewritten, old ciphertexts still decrypt.

Cell format, version 1 (all of it authenticated: the header is part of the GCM associated data)::

    0x01 | len(dek_id) (1 byte) | dek_id (ASCII) | nonce (12 bytes) | AES-256-GCM ciphertext + tag

with associated data = header || column name || 0x00 || row id, so a cell cannot be moved to another
column or row, or relabelled with another DEK id, without failing authentication.

Providers: `LocalKeyProvider` (the KEK ring is the key file's `column_encryption` ring, jobs.platform.keys) and
`VaultTransitProvider` (a HashiCorp Vault / OpenBao Transit key through hvac; the DEK id is the key-derivation
context, so a wrapped DEK only unwraps under its own id).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Protocol, runtime_checkable

from jobs.platform.keys import KeyMaterial, KeyRing, load_key_material, rotate, save_key_material
from lake_layout.config import EncryptionSettings, Settings
from lake_layout.tables import SECURITY_DATA_KEYS

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

CELL_FORMAT_V1 = 0x01
NONCE_BYTES = 12
DEK_BYTES = 32
_DEK_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class DecryptionError(ValueError):
    """A cell or wrapped key failed authentication, has an unknown format, or names an unknown key."""


# ----------------------------------------------------------------------------- data keys and cells

@dataclass(frozen=True)
class DataKey:
    """A plaintext DEK with its id. Lives in driver/worker memory only; `repr` never shows the key."""

    dek_id: str
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not _DEK_ID.match(self.dek_id):
            raise ValueError(f"DEK id {self.dek_id!r} must be 1-128 characters of [A-Za-z0-9._:-]")
        if len(self.key) != DEK_BYTES:
            raise ValueError(f"a DEK is {DEK_BYTES} bytes (AES-256), got {len(self.key)}")

    @staticmethod
    def generate(scope_day: date | None = None) -> "DataKey":
        """A fresh random AES-256 key; the id says when it was made for, plus 48 random bits."""
        day = (scope_day or datetime.now(timezone.utc).date()).strftime("%Y%m%d")
        return DataKey(dek_id=f"dek-{day}-{uuid.uuid4().hex[:12]}", key=secrets.token_bytes(DEK_BYTES))


_CELL_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=True)  # = json.dumps(..., same options), built once


def _cell_header(dek_id: str) -> bytes:
    raw = dek_id.encode("ascii")
    return bytes((CELL_FORMAT_V1, len(raw))) + raw


def _cell_aad(header: bytes, column: str, row_id: str) -> bytes:
    return header + column.encode() + b"\x00" + row_id.encode()


def cell_dek_id(blob: bytes) -> str:
    """The DEK id a ciphertext cell names (raises DecryptionError on an unknown format)."""
    if len(blob) < 2 or blob[0] != CELL_FORMAT_V1:
        raise DecryptionError(f"unknown restricted-cell format byte {blob[:1].hex() or '(empty)'}; supported: 01")
    end = 2 + blob[1]
    if len(blob) < end + NONCE_BYTES + 16:
        raise DecryptionError("restricted cell is truncated")
    return blob[2:end].decode("ascii")


def encrypt_cell(aead: Any, dek_id: str, *, column: str, row_id: str, payload: Mapping[str, Any]) -> bytes:
    """One restricted cell: `payload` (JSON) under the DEK behind `aead` (an AESGCM), bound to column and row."""
    header = _cell_header(dek_id)
    nonce = os.urandom(NONCE_BYTES)
    plaintext = _CELL_JSON.encode(payload).encode()
    return header + nonce + aead.encrypt(nonce, plaintext, _cell_aad(header, column, row_id))


def decrypt_cell(blob: bytes, data_keys: Mapping[str, bytes], *, column: str, row_id: str) -> dict[str, Any]:
    """Inverse of `encrypt_cell`; raises DecryptionError if the cell was altered, moved, or its DEK is unknown."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    dek_id = cell_dek_id(blob)
    if dek_id not in data_keys:
        raise DecryptionError(f"cell names DEK {dek_id!r}, which is not among the unwrapped data keys")
    header_len = 2 + blob[1]
    header, nonce, ciphertext = blob[:header_len], blob[header_len:header_len + NONCE_BYTES], blob[header_len + NONCE_BYTES:]
    try:
        plaintext = AESGCM(data_keys[dek_id]).decrypt(nonce, ciphertext, _cell_aad(header, column, row_id))
    except InvalidTag:
        raise DecryptionError(f"{column} cell of row {row_id!r} failed authentication (altered, moved or wrong key)") from None
    return dict(json.loads(plaintext))


# ----------------------------------------------------------------------------- key providers

@runtime_checkable
class KeyProvider(Protocol):
    """Holds key-encryption keys; wraps and unwraps data keys. The KEK never leaves the provider's custody
    (for Vault it never leaves the server)."""

    name: str  # "local" | "vault": stored in security.data_keys.provider

    def wrap(self, dek: bytes, *, context: str) -> tuple[str, bytes]:
        """(kek_id, wrapped) of `dek` under the active KEK; `context` (the DEK id) is bound to the result."""
        ...

    def unwrap(self, kek_id: str, wrapped: bytes, *, context: str) -> bytes:
        """The plaintext DEK; raises DecryptionError on a wrong context, altered bytes or unknown KEK."""
        ...

    def rewrap(self, kek_id: str, wrapped: bytes, *, context: str) -> tuple[str, bytes]:
        """Re-encrypt a wrapped DEK under the active KEK (for Vault without the DEK leaving the server)."""
        ...

    def rotate(self) -> str:
        """Make a new KEK version active (old versions stay usable for unwrap); returns its id."""
        ...

    @property
    def active_kek_id(self) -> str: ...


def kek_version(kek_id: str) -> int | None:
    """The version number at the end of a KEK id (enc-3 -> 3, transit/k:v2 -> 2)."""
    match = re.search(r"(\d+)$", kek_id)
    return int(match.group(1)) if match else None


class LocalKeyProvider:
    """KEKs from the local key file's `column_encryption` ring; AES-256-GCM wrap with the DEK id as AAD.

    Wrapped form: nonce (12 bytes) || ciphertext+tag. `rotate` adds a fresh key to the ring and saves the
    file (jobs.platform.keys.rotate), so old KEK ids keep unwrapping what they wrapped.
    """

    name = "local"

    def __init__(self, ring: KeyRing, *, key_file: Path | None = None) -> None:
        self._ring = ring
        self._key_file = key_file

    @classmethod
    def from_key_file(cls, path: Path) -> "LocalKeyProvider":
        return cls(load_key_material(path).column_encryption, key_file=path)

    @property
    def active_kek_id(self) -> str:
        return self._ring.active

    @staticmethod
    def _aad(context: str) -> bytes:
        return b"voiplake-dek-wrap:v1:" + context.encode()

    def wrap(self, dek: bytes, *, context: str) -> tuple[str, bytes]:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(NONCE_BYTES)
        return self._ring.active, nonce + AESGCM(self._ring.active_key).encrypt(nonce, dek, self._aad(context))

    def unwrap(self, kek_id: str, wrapped: bytes, *, context: str) -> bytes:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if kek_id not in self._ring.keys:
            raise DecryptionError(f"KEK {kek_id!r} is not in the local key ring {sorted(self._ring.keys)}")
        try:
            return AESGCM(self._ring.keys[kek_id]).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], self._aad(context))
        except InvalidTag:
            raise DecryptionError(f"wrapped DEK {context!r} failed authentication under KEK {kek_id!r}") from None

    def rewrap(self, kek_id: str, wrapped: bytes, *, context: str) -> tuple[str, bytes]:
        return self.wrap(self.unwrap(kek_id, wrapped, context=context), context=context)

    def rotate(self) -> str:
        if self._key_file is None:
            raise RuntimeError("this LocalKeyProvider has no key file to save a rotated ring to")
        material: KeyMaterial = rotate(load_key_material(self._key_file, create=False), "column_encryption")
        save_key_material(material, self._key_file)
        self._ring = material.column_encryption
        return self._ring.active


class VaultTransitProvider:
    """KEK = a Vault (or OpenBao) Transit key, through hvac. The key is created derived (`derived=true`,
    aes256-gcm96) if missing, and the DEK id is the derivation context: a wrapped DEK only unwraps under
    its own id. Wrapped form: Vault's ciphertext string `vault:v<N>:...` (UTF-8); kek_id `<mount>/<key>:v<N>`.
    """

    name = "vault"

    def __init__(self, *, url: str, token: str, key_name: str, mount: str = "transit", timeout: float = 10.0) -> None:
        import hvac

        self._client = hvac.Client(url=url, token=token, timeout=timeout)
        self.key_name = key_name
        self.mount = mount
        self._key_ready = False

    def _transit(self) -> Any:
        return self._client.secrets.transit

    def ensure_key(self) -> None:
        """Create the Transit key (derived, aes256-gcm96) unless it exists."""
        import hvac.exceptions

        if self._key_ready:
            return
        try:
            info = self._transit().read_key(name=self.key_name, mount_point=self.mount)["data"]
        except hvac.exceptions.InvalidPath:
            self._transit().create_key(name=self.key_name, key_type="aes256-gcm96", derived=True, mount_point=self.mount)
        else:
            if not info.get("derived"):
                raise ValueError(
                    f"Vault Transit key {self.mount}/{self.key_name} must be created with derived=true "
                    "(the DEK id is its derivation context)"
                )
        self._key_ready = True

    def _kek_id(self, ciphertext: str) -> str:
        match = re.match(r"^vault:v(\d+):", ciphertext)
        if not match:
            raise DecryptionError(f"not a Vault Transit ciphertext: {ciphertext[:12]!r}...")
        return f"{self.mount}/{self.key_name}:v{match.group(1)}"

    @staticmethod
    def _b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    def _check_kek(self, kek_id: str, ciphertext: str) -> None:
        if self._kek_id(ciphertext) != kek_id:
            raise DecryptionError(f"wrapped key names {self._kek_id(ciphertext)}, the registry says {kek_id}")

    @property
    def active_kek_id(self) -> str:
        self.ensure_key()
        info = self._transit().read_key(name=self.key_name, mount_point=self.mount)["data"]
        return f"{self.mount}/{self.key_name}:v{info['latest_version']}"

    def wrap(self, dek: bytes, *, context: str) -> tuple[str, bytes]:
        self.ensure_key()
        out = self._transit().encrypt_data(
            name=self.key_name, plaintext=self._b64(dek), context=self._b64(context.encode()), mount_point=self.mount
        )["data"]["ciphertext"]
        return self._kek_id(out), out.encode()

    def unwrap(self, kek_id: str, wrapped: bytes, *, context: str) -> bytes:
        import hvac.exceptions

        ciphertext = wrapped.decode()
        self._check_kek(kek_id, ciphertext)
        try:
            out = self._transit().decrypt_data(
                name=self.key_name, ciphertext=ciphertext, context=self._b64(context.encode()), mount_point=self.mount
            )["data"]["plaintext"]
        except hvac.exceptions.InvalidRequest as exc:  # Vault answers 400 "cipher: message authentication failed"
            raise DecryptionError(f"Vault refused to unwrap DEK {context!r} under {kek_id}: {exc}") from None
        return base64.b64decode(out)

    def rewrap(self, kek_id: str, wrapped: bytes, *, context: str) -> tuple[str, bytes]:
        import hvac.exceptions

        ciphertext = wrapped.decode()
        self._check_kek(kek_id, ciphertext)
        try:
            out = self._transit().rewrap_data(
                name=self.key_name, ciphertext=ciphertext, context=self._b64(context.encode()), mount_point=self.mount
            )["data"]["ciphertext"]
        except hvac.exceptions.InvalidRequest as exc:
            raise DecryptionError(f"Vault refused to rewrap DEK {context!r} under {kek_id}: {exc}") from None
        return self._kek_id(out), out.encode()

    def rotate(self) -> str:
        self.ensure_key()
        self._transit().rotate_key(name=self.key_name, mount_point=self.mount)
        return self.active_kek_id


def provider_from_settings(settings: Settings) -> KeyProvider:
    """The configured provider ([encryption] provider = local | vault)."""
    enc: EncryptionSettings = settings.encryption
    if enc.provider == "vault":
        return VaultTransitProvider(url=enc.vault_url, token=enc.vault_token, key_name=enc.vault_transit_key, mount=enc.vault_mount)
    return LocalKeyProvider.from_key_file(Path(settings.keys.file))


# ----------------------------------------------------------------------------- the data-key registry

def data_key_row(provider: KeyProvider, dek: DataKey, *, scope: str, run_id: str, now: datetime) -> dict[str, Any]:
    """The security.data_keys row for a new DEK: wrapped by the provider's active KEK."""
    kek_id, wrapped = provider.wrap(dek.key, context=dek.dek_id)
    return {
        "dek_id": dek.dek_id, "provider": provider.name, "kek_id": kek_id, "kek_version": kek_version(kek_id),
        "wrapped_key": wrapped, "scope": scope, "created_at": now, "created_by_run": run_id, "rewrapped_at": None,
    }


def register_data_key(
    spark: "SparkSession", settings: Settings, provider: KeyProvider, dek: DataKey, *, scope: str, run_id: str
) -> None:
    """Store `dek` wrapped in security.data_keys (idempotent on dek_id). Call before writing any cell it encrypts."""
    from jobs.platform import lake

    row = data_key_row(provider, dek, scope=scope, run_id=run_id, now=datetime.now(timezone.utc))
    lake.merge_insert_new(spark, spark.createDataFrame([row], SECURITY_DATA_KEYS.spark_schema()), SECURITY_DATA_KEYS, settings)


def unwrap_data_keys(
    spark: "SparkSession", settings: Settings, provider: KeyProvider, dek_ids: Iterable[str]
) -> dict[str, bytes]:
    """dek_id -> plaintext DEK for the given ids, each unwrapped once through the provider.

    Raises DecryptionError for an id that is not registered or was wrapped by another provider.
    """
    from pyspark.sql import functions as F

    from jobs.platform import lake

    wanted = sorted(set(dek_ids))
    if not wanted:
        return {}
    rows = {
        r["dek_id"]: r for r in lake.read_table(spark, SECURITY_DATA_KEYS, settings)
        .where(F.col("dek_id").isin(wanted)).select("dek_id", "provider", "kek_id", "wrapped_key").collect()
    }
    keys: dict[str, bytes] = {}
    for dek_id in wanted:
        row = rows.get(dek_id)
        if row is None:
            raise DecryptionError(f"DEK {dek_id!r} is not in {SECURITY_DATA_KEYS.name} (crypto-shredded or never registered)")
        if row["provider"] != provider.name:
            raise DecryptionError(f"DEK {dek_id!r} was wrapped by the {row['provider']} provider, not {provider.name}")
        keys[dek_id] = provider.unwrap(row["kek_id"], bytes(row["wrapped_key"]), context=dek_id)
    return keys


# ----------------------------------------------------------------------------- reading restricted columns

# Restricted column -> the plaintext fields its JSON payload holds (name, Spark type). decrypt_restricted
# adds them as decrypted_<field>.
RESTRICTED_PAYLOADS: dict[str, tuple[tuple[str, str], ...]] = {
    "ip_encrypted": (("src_ip", "string"), ("dst_ip", "string")),
    "location_encrypted": (("latitude", "double"), ("longitude", "double")),
}
DECRYPTED_PREFIX = "decrypted_"


def decrypt_restricted(
    df: "DataFrame", *, data_keys: Mapping[str, bytes], columns: Iterable[str] = tuple(RESTRICTED_PAYLOADS),
    row_id_column: str = "event_id",
) -> "DataFrame":
    """Add `decrypted_<field>` columns for each restricted column in `columns` (null where the cell is null).

    `data_keys` comes from `unwrap_data_keys` (through the provider). Raises (inside the Spark task, surfaced as
    a PythonException naming DecryptionError) on a cell that fails authentication or names a DEK not given.
    Restricted: for network operations and forensics only.
    """
    from pyspark.sql import types as T
    from pyspark.sql.pandas.types import to_arrow_schema

    columns = tuple(columns)
    unknown = [c for c in columns if c not in RESTRICTED_PAYLOADS]
    if unknown:
        raise ValueError(f"not restricted columns: {unknown}; known: {sorted(RESTRICTED_PAYLOADS)}")
    added = [(c, name, kind) for c in columns for name, kind in RESTRICTED_PAYLOADS[c]]
    types = {"string": T.StringType(), "double": T.DoubleType()}
    schema = T.StructType(
        list(df.schema.fields) + [T.StructField(f"{DECRYPTED_PREFIX}{name}", types[kind], True) for _, name, kind in added]
    )
    arrow_schema = to_arrow_schema(schema, timezone="UTC")
    keys = dict(data_keys)  # shipped to the workers in the closure, like the DEK at ingest

    def decrypt_batches(batches: Iterator["pa.RecordBatch"]) -> Iterator["pa.RecordBatch"]:
        import pyarrow as pa

        for batch in batches:
            row_ids = batch.column(row_id_column).to_pylist()
            arrays = list(batch.columns)
            for column in columns:
                cells = batch.column(column).to_pylist()
                payloads = [
                    None if cell is None else decrypt_cell(bytes(cell), keys, column=column, row_id=row_id)
                    for cell, row_id in zip(cells, row_ids)
                ]
                for name, _ in RESTRICTED_PAYLOADS[column]:
                    target = arrow_schema.field(f"{DECRYPTED_PREFIX}{name}").type
                    arrays.append(pa.array([None if p is None else p.get(name) for p in payloads], type=target))
            yield pa.RecordBatch.from_arrays(arrays, schema=arrow_schema)

    return df.mapInArrow(decrypt_batches, schema)


def decrypt_table_columns(
    spark: "SparkSession", settings: Settings, provider: KeyProvider, df: "DataFrame", *,
    columns: Iterable[str] = tuple(RESTRICTED_PAYLOADS), key_id_column: str = "encryption_key_id",
) -> "DataFrame":
    """`decrypt_restricted` with the DEKs `df` names unwrapped through `provider` (collects only the distinct ids)."""
    dek_ids = [r[0] for r in df.select(key_id_column).where(f"`{key_id_column}` IS NOT NULL").distinct().collect()]
    return decrypt_restricted(df, data_keys=unwrap_data_keys(spark, settings, provider, dek_ids), columns=columns)


# ----------------------------------------------------------------------------- rotation

@dataclass(frozen=True)
class RotationReport:
    provider: str
    kek_before: str
    kek_after: str
    deks_rewrapped: int
    deks_by_kek_before: dict[str, int]
    data_keys_version_before: int | None
    data_keys_version_after: int | None
    seconds: float


def rotate_data_keys(spark: "SparkSession", settings: Settings, provider: KeyProvider, *, run_id: str | None = None) -> RotationReport:
    """New KEK version, then re-wrap every DEK of this provider in security.data_keys (one MERGE of that small
    table). No data table is read or written: restricted cells keep naming the same DEK ids."""
    import time

    from pyspark.sql import functions as F

    from jobs.platform import lake

    t0 = time.monotonic()
    lake.ensure_table(spark, SECURITY_DATA_KEYS, settings)
    version_before = lake.table_version(spark, SECURITY_DATA_KEYS, settings)
    kek_before = provider.active_kek_id
    kek_after = provider.rotate()
    now = datetime.now(timezone.utc)
    rows = lake.read_table(spark, SECURITY_DATA_KEYS, settings).where(F.col("provider") == provider.name).collect()
    by_kek: dict[str, int] = {}
    rewrapped = []
    for row in rows:
        by_kek[row["kek_id"]] = by_kek.get(row["kek_id"], 0) + 1
        kek_id, wrapped = provider.rewrap(row["kek_id"], bytes(row["wrapped_key"]), context=row["dek_id"])
        rewrapped.append({**row.asDict(), "kek_id": kek_id, "kek_version": kek_version(kek_id), "wrapped_key": wrapped,
                          "rewrapped_at": now})
    if rewrapped:
        lake.upsert(spark, spark.createDataFrame(rewrapped, SECURITY_DATA_KEYS.spark_schema()), SECURITY_DATA_KEYS, settings)
    report = RotationReport(
        provider=provider.name, kek_before=kek_before, kek_after=kek_after, deks_rewrapped=len(rewrapped),
        deks_by_kek_before=dict(sorted(by_kek.items())), data_keys_version_before=version_before,
        data_keys_version_after=lake.table_version(spark, SECURITY_DATA_KEYS, settings),
        seconds=round(time.monotonic() - t0, 2),
    )
    if rewrapped:
        _record_rotation(spark, settings, report, run_id or f"keys_rotate-{uuid.uuid4().hex[:12]}", started=now)
    return report


def _record_rotation(spark: "SparkSession", settings: Settings, report: RotationReport, run_id: str, *, started: datetime) -> None:
    from jobs.platform import lineage

    lineage.record_run(spark, settings, lineage.LineageRecord(
        run_id=run_id, job="keys_rotate", dag_id=None, dag_run_id=None, logical_date=started.date(),
        inputs=(lineage.TableInput(table=SECURITY_DATA_KEYS.name, version=report.data_keys_version_before),),
        outputs=(lineage.TableOutput(table=SECURITY_DATA_KEYS.name, version_before=report.data_keys_version_before,
                                     version_after=report.data_keys_version_after),),
        metrics={"provider": report.provider, "kek_before": report.kek_before, "kek_after": report.kek_after,
                 "deks_rewrapped": report.deks_rewrapped},
        rows_in=report.deks_rewrapped, rows_out=report.deks_rewrapped,
        started_at=started, finished_at=datetime.now(timezone.utc),
    ))


# ----------------------------------------------------------------------------- forensics check

def decrypt_check(spark: "SparkSession", settings: Settings, provider: KeyProvider, *, where: str) -> dict[str, Any]:
    """Decrypt every restricted cell of bronze.call_events matching `where` through `provider` and count them.

    Prints no plaintext: the result says how many cells of each column there were, how many decrypted, and
    which DEKs (and KEKs) they used. `ok` is False (with `error`) when a DEK cannot be unwrapped or a cell
    fails authentication.
    """
    from pyspark.sql import functions as F

    from jobs.platform import lake
    from lake_layout.tables import BRONZE_CALL_EVENTS

    rows = lake.read_table(spark, BRONZE_CALL_EVENTS, settings).where(where)
    restricted = list(RESTRICTED_PAYLOADS)
    result: dict[str, Any] = {"provider": provider.name, "scope": where}
    counts = rows.agg(F.count("*").alias("rows"), *[F.count(c).alias(c) for c in restricted]).first()
    result["rows"] = int(counts["rows"])
    result["cells"] = {c: int(counts[c]) for c in restricted}
    result["rows_by_dek"] = {r[0]: int(r[1]) for r in rows.where("encryption_key_id IS NOT NULL").groupBy("encryption_key_id").count().collect()}
    try:
        decrypted = decrypt_table_columns(spark, settings, provider, rows)
        # A cell is only written when one of its fields is present, so a decrypted cell has a non-null field.
        marks = [
            F.count(F.when(F.coalesce(*[F.col(DECRYPTED_PREFIX + name).cast("string") for name, _ in RESTRICTED_PAYLOADS[c]])
                           .isNotNull(), F.lit(1))).alias(c)
            for c in restricted
        ]
        done = decrypted.agg(*marks).first()
        result["decrypted"] = {c: int(done[c]) for c in restricted}
        result["ok"] = result["decrypted"] == result["cells"]
    except Exception as exc:  # DecryptionError on the driver, or wrapped in a PythonException from a worker
        message = f"{type(exc).__name__}: {exc}"
        result["ok"], result["error"] = False, message[message.find("DecryptionError"):][:500] if "DecryptionError" in message else message[:500]
    return result
