"""Typed settings: one TOML file (infra/voiplake.toml) plus environment overrides.

`load_settings()` validates at load and names the bad key in its error. Every other
module takes a `Settings` (or a piece of it) instead of reading files or the
environment itself.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "infra" / "voiplake.toml"


class SettingsError(ValueError):
    """The configuration is incomplete or malformed."""


@dataclass(frozen=True)
class LakeSettings:
    root: str

    def __post_init__(self) -> None:
        if not self.root:
            raise SettingsError("lake.root must not be empty")


@dataclass(frozen=True)
class LandingSettings:
    bucket: str
    prefix: str

    @property
    def s3a_uri(self) -> str:
        return f"s3a://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class ObjectStoreSettings:
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    data_dir: str

    @property
    def port(self) -> int:
        port = self.endpoint.rsplit(":", 1)[-1].rstrip("/")
        if not port.isdigit():
            raise SettingsError(f"object_store.endpoint {self.endpoint!r} must end in :PORT")
        return int(port)


@dataclass(frozen=True)
class KeySettings:
    file: str


@dataclass(frozen=True)
class SparkSettings:
    master: str
    shuffle_partitions: int
    driver_memory: str
    ivy_dir: str


@dataclass(frozen=True)
class GeneratorSettings:
    events: int
    seed: int


@dataclass(frozen=True)
class Settings:
    lake: LakeSettings
    landing: LandingSettings
    object_store: ObjectStoreSettings
    keys: KeySettings
    spark: SparkSettings
    generator: GeneratorSettings

    def with_lake_root(self, root: str) -> "Settings":
        return replace(self, lake=LakeSettings(root=root))


_SECTIONS: dict[str, type] = {
    "lake": LakeSettings,
    "landing": LandingSettings,
    "object_store": ObjectStoreSettings,
    "keys": KeySettings,
    "spark": SparkSettings,
    "generator": GeneratorSettings,
}
# Keys holding local paths: resolved against the project root when relative.
_PATH_KEYS = {("lake", "root"), ("object_store", "data_dir"), ("keys", "file"), ("spark", "ivy_dir")}


def _resolve_path(value: str) -> str:
    if "://" in value:
        return value
    path = Path(value)
    return str(path if path.is_absolute() else (PROJECT_ROOT / path).resolve())


def _coerce(section: str, key: str, raw: Any, target: type) -> Any:
    try:
        if target is int:
            return int(raw)
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{section}.{key}: expected {target.__name__}, got {raw!r}") from exc


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load settings from `path` (default: $VOIPLAKE_CONFIG or infra/voiplake.toml), then apply
    VOIPLAKE_<SECTION>_<KEY> environment overrides."""
    env = os.environ if env is None else env
    path = path or Path(env.get("VOIPLAKE_CONFIG", DEFAULT_CONFIG))
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise SettingsError(f"settings file {path} not found") from exc
    unknown = set(raw) - set(_SECTIONS)
    if unknown:
        raise SettingsError(f"unknown section(s) {sorted(unknown)} in {path}; known: {sorted(_SECTIONS)}")
    built: dict[str, Any] = {}
    for section, cls in _SECTIONS.items():
        given = dict(raw.get(section, {}))
        declared = {f.name: f for f in fields(cls)}
        extra = set(given) - set(declared)
        if extra:
            raise SettingsError(f"unknown key(s) {sorted(extra)} in [{section}] of {path}")
        values: dict[str, Any] = {}
        for name, field in declared.items():
            override = env.get(f"VOIPLAKE_{section}_{name}".upper())
            value = override if override is not None else given.get(name)
            if value is None:
                raise SettingsError(f"missing setting {section}.{name} in {path}")
            target = int if field.type in ("int", int) else str
            value = _coerce(section, name, value, target)
            if (section, name) in _PATH_KEYS:
                value = _resolve_path(value)
            values[name] = value
        built[section] = cls(**values)
    return Settings(**built)
