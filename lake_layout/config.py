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
class SilverSettings:
    incomplete_after_minutes: int  # a call_start with no end for this long (in data time) is closed as incomplete
    future_tolerance_seconds: int  # corrected event times later than receive time + this are impossible

    def __post_init__(self) -> None:
        if self.incomplete_after_minutes < 1:
            raise SettingsError("silver.incomplete_after_minutes must be >= 1")
        if self.future_tolerance_seconds < 0:
            raise SettingsError("silver.future_tolerance_seconds must be >= 0")


@dataclass(frozen=True)
class PrivacySettings:
    k_anonymity: int  # every published aggregate row covers at least k distinct subscribers
    h3_cell_resolution: int  # finest geo zone of gold (H3 resolution)
    h3_region_resolution: int  # the region a cell generalizes to

    def __post_init__(self) -> None:
        if self.k_anonymity < 2:
            raise SettingsError(f"privacy.k_anonymity must be >= 2, got {self.k_anonymity}")
        if not 0 <= self.h3_region_resolution < self.h3_cell_resolution <= 15:
            raise SettingsError(
                "privacy.h3_region_resolution must be coarser (smaller) than privacy.h3_cell_resolution, both in 0..15"
            )


@dataclass(frozen=True)
class LineageSettings:
    namespace: str  # OpenLineage job namespace
    openlineage_file: str  # file transport target (one JSON event per line)


@dataclass(frozen=True)
class QualitySettings:
    data_docs_dir: str  # where Great Expectations renders Data Docs (HTML) of the last run


@dataclass(frozen=True)
class Settings:
    lake: LakeSettings
    landing: LandingSettings
    object_store: ObjectStoreSettings
    keys: KeySettings
    spark: SparkSettings
    generator: GeneratorSettings
    silver: SilverSettings
    privacy: PrivacySettings
    lineage: LineageSettings
    quality: QualitySettings

    def with_lake_root(self, root: str) -> "Settings":
        return replace(self, lake=LakeSettings(root=root))


_SECTIONS: dict[str, type] = {
    "lake": LakeSettings,
    "landing": LandingSettings,
    "object_store": ObjectStoreSettings,
    "keys": KeySettings,
    "spark": SparkSettings,
    "generator": GeneratorSettings,
    "silver": SilverSettings,
    "privacy": PrivacySettings,
    "lineage": LineageSettings,
    "quality": QualitySettings,
}
# Keys holding local paths: resolved against the project root when relative.
_PATH_KEYS = {("lake", "root"), ("object_store", "data_dir"), ("keys", "file"), ("spark", "ivy_dir"),
              ("lineage", "openlineage_file"), ("quality", "data_docs_dir")}


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
