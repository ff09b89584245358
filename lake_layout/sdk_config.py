"""The central SDK configuration (lake_layout/sdk_config.toml): typed, validated, versioned.

`load_sdk_config()` reads the file and validates every key at load, naming the version and key that is wrong.
`SdkConfig.in_force(at)` answers "which configuration applied at time t" (the version with the latest
effective_from <= t); `SdkConfig.policy(platform, level, at)` gives one platform and telemetry level's rules.
`published_document(version)` is the canonical JSON clients fetch; `sdk_config_key` / `SDK_CONFIG_LATEST_KEY` are
where `voiplake sdk-config publish` puts it in the landing bucket (beside the directory and auth exports of
lake_layout.landing). Imports nothing heavy: the bronze job and the generator read it too.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

DEFAULT_SDK_CONFIG = Path(__file__).resolve().parent / "sdk_config.toml"
PLATFORMS = ("ios", "android", "web")
TELEMETRY_LEVELS = ("basic", "diagnostic")
# Fields every event needs to be an event at all (bronze quarantines events without them).
REQUIRED_FIELDS = frozenset({"event_id", "call_id", "event_type", "event_ms", "msisdn"})
NETWORK_TYPES = ("wifi", "5g", "lte", "3g", "2g", "ethernet")

# Object-store layout (landing bucket): one immutable document per version plus a pointer to the one in force.
#     sdk-config/versions/<id>.json    canonical JSON (published_document)
#     sdk-config/latest.json           {"version", "key", "sha256", "effective_from"}
SDK_CONFIG_PREFIX = "sdk-config"
SDK_CONFIG_LATEST_KEY = f"{SDK_CONFIG_PREFIX}/latest.json"


def sdk_config_key(version_id: str, *, prefix: str = SDK_CONFIG_PREFIX) -> str:
    """Key of one published configuration version in the landing bucket."""
    return f"{prefix.strip('/')}/versions/{version_id}.json"


class SdkConfigError(ValueError):
    """The SDK configuration file is incomplete or malformed."""


@dataclass(frozen=True)
class ClientPolicy:
    """What one platform's clients at one telemetry level may collect and how they upload (see sdk_config.toml)."""

    allowed_fields: tuple[str, ...]
    quality_sample_interval_seconds: int
    constrained_sample_interval_seconds: int
    constrained_networks: tuple[str, ...]
    high_latency_rtt_ms: int
    batch_max_events: int
    upload_interval_seconds: int
    uploads_during_calls: bool
    daily_background_upload_bytes: int

    def __post_init__(self) -> None:
        missing = REQUIRED_FIELDS - set(self.allowed_fields)
        if missing:
            raise ValueError(f"allowed_fields lacks required field(s) {sorted(missing)}")
        if len(set(self.allowed_fields)) != len(self.allowed_fields):
            raise ValueError("allowed_fields lists a field twice")
        for name in ("quality_sample_interval_seconds", "constrained_sample_interval_seconds", "high_latency_rtt_ms",
                     "batch_max_events", "upload_interval_seconds", "daily_background_upload_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.constrained_sample_interval_seconds < self.quality_sample_interval_seconds:
            raise ValueError("constrained_sample_interval_seconds must be >= quality_sample_interval_seconds "
                             "(constrained networks sample less often, never more)")
        unknown = set(self.constrained_networks) - set(NETWORK_TYPES)
        if unknown:
            raise ValueError(f"constrained_networks has unknown network type(s) {sorted(unknown)}; known: {list(NETWORK_TYPES)}")
        if not isinstance(self.uploads_during_calls, bool):
            raise ValueError(f"uploads_during_calls must be true or false, got {self.uploads_during_calls!r}")

    def to_json(self) -> dict[str, Any]:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}


@dataclass(frozen=True)
class SdkConfigVersion:
    version_id: str
    effective_from: datetime  # timezone-aware UTC
    note: str
    policies: tuple[tuple[tuple[str, str], ClientPolicy], ...]  # ((platform, level), policy), every pair once

    def policy(self, platform: str, level: str) -> ClientPolicy:
        for key, policy in self.policies:
            if key == (platform, level):
                return policy
        raise KeyError(f"no policy for platform {platform!r}, level {level!r} in SDK config {self.version_id}; "
                       f"platforms {list(PLATFORMS)}, levels {list(TELEMETRY_LEVELS)}")


@dataclass(frozen=True)
class SdkConfig:
    versions: tuple[SdkConfigVersion, ...]  # ascending effective_from

    def __post_init__(self) -> None:
        if not self.versions:
            raise SdkConfigError("the SDK configuration has no [[version]]")
        ids = [v.version_id for v in self.versions]
        if len(set(ids)) != len(ids):
            raise SdkConfigError(f"duplicate SDK config version id(s) in {ids}")
        starts = [v.effective_from for v in self.versions]
        if starts != sorted(starts) or len(set(starts)) != len(starts):
            raise SdkConfigError("SDK config versions must be listed by strictly increasing effective_from")

    def in_force(self, at: datetime) -> SdkConfigVersion:
        """The version in force at `at` (timezone-aware): the latest effective_from <= at."""
        if at.tzinfo is None:
            raise ValueError("in_force needs a timezone-aware time")
        current = [v for v in self.versions if v.effective_from <= at]
        if not current:
            raise LookupError(f"no SDK configuration was in force at {at.isoformat()}: the first version "
                              f"({self.versions[0].version_id}) starts {self.versions[0].effective_from.isoformat()}")
        return current[-1]

    def policy(self, platform: str, level: str, at: datetime) -> ClientPolicy:
        return self.in_force(at).policy(platform, level)

    def version(self, version_id: str) -> SdkConfigVersion:
        for v in self.versions:
            if v.version_id == version_id:
                return v
        raise KeyError(f"unknown SDK config version {version_id!r}; known: {[v.version_id for v in self.versions]}")


def _parse_time(where: str, raw: Any) -> datetime:
    if isinstance(raw, datetime):
        value = raw
    else:
        try:
            value = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        except ValueError as exc:
            raise SdkConfigError(f"{where}.effective_from: expected an ISO-8601 time, got {raw!r}") from exc
    if value.tzinfo is None:
        raise SdkConfigError(f"{where}.effective_from must carry a time zone (e.g. 2026-01-01T00:00:00Z), got {raw!r}")
    return value


_POLICY_KEYS = {f.name for f in fields(ClientPolicy)}


def _policy(where: str, given: Mapping[str, Any]) -> ClientPolicy:
    unknown = set(given) - _POLICY_KEYS
    if unknown:
        raise SdkConfigError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(_POLICY_KEYS)}")
    missing = _POLICY_KEYS - set(given)
    if missing:
        raise SdkConfigError(f"{where}: missing key(s) {sorted(missing)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in given.items()}
    try:
        return ClientPolicy(**values)
    except (TypeError, ValueError) as exc:
        raise SdkConfigError(f"{where}: {exc}") from None


def parse_sdk_config(raw: Mapping[str, Any], *, known_fields: tuple[str, ...] | None = None,
                     source: str = "sdk config") -> SdkConfig:
    """Validate the TOML document `raw`; `known_fields` (CallEvent field names) also checks allowed_fields."""
    unknown_top = set(raw) - {"version"}
    if unknown_top:
        raise SdkConfigError(f"{source}: unknown top-level key(s) {sorted(unknown_top)}; expected [[version]] tables")
    versions = []
    for index, v in enumerate(raw.get("version", [])):
        vid = v.get("id")
        where = f"{source}: version[{index}]" + (f" ({vid})" if vid else "")
        if not isinstance(vid, str) or not vid.replace(".", "").replace("-", "").isalnum():
            raise SdkConfigError(f"{where}: id must be a non-empty string of letters, digits, '.' and '-', got {vid!r}")
        extra = set(v) - {"id", "effective_from", "note", "basic", "diagnostic", "platforms"}
        if extra:
            raise SdkConfigError(f"{where}: unknown key(s) {sorted(extra)}")
        if "effective_from" not in v:
            raise SdkConfigError(f"{where}: missing effective_from")
        overrides = v.get("platforms", {})
        if set(overrides) - set(PLATFORMS):
            raise SdkConfigError(f"{where}.platforms: unknown platform(s) {sorted(set(overrides) - set(PLATFORMS))}; "
                                 f"known: {list(PLATFORMS)}")
        policies = []
        for platform in PLATFORMS:
            extra_levels = set(overrides.get(platform, {})) - set(TELEMETRY_LEVELS)
            if extra_levels:
                raise SdkConfigError(f"{where}.platforms.{platform}: unknown level(s) {sorted(extra_levels)}")
            for level in TELEMETRY_LEVELS:
                merged = {**v.get(level, {}), **overrides.get(platform, {}).get(level, {})}
                policy = _policy(f"{where}.{platform}.{level}", merged)
                if known_fields is not None and set(policy.allowed_fields) - set(known_fields):
                    raise SdkConfigError(
                        f"{where}.{platform}.{level}.allowed_fields: unknown field(s) "
                        f"{sorted(set(policy.allowed_fields) - set(known_fields))}; CallEvent has {list(known_fields)}")
                policies.append(((platform, level), policy))
        versions.append(SdkConfigVersion(version_id=vid, effective_from=_parse_time(where, v["effective_from"]),
                                         note=str(v.get("note", "")), policies=tuple(policies)))
    return SdkConfig(versions=tuple(versions))


def load_sdk_config(path: Path | None = None, *, known_fields: tuple[str, ...] | None = None) -> SdkConfig:
    """Load and validate the SDK configuration (default: lake_layout/sdk_config.toml)."""
    path = path or DEFAULT_SDK_CONFIG
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise SdkConfigError(f"SDK configuration file {path} not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SdkConfigError(f"SDK configuration file {path} is not valid TOML: {exc}") from exc
    return parse_sdk_config(raw, known_fields=known_fields, source=str(path))


def published_document(version: SdkConfigVersion) -> bytes:
    """What clients fetch: canonical JSON (sorted keys, no spaces, ASCII) of one version, every platform and level
    spelled out (no defaults left for the client to merge)."""
    doc = {
        "version": version.version_id,
        "effective_from": version.effective_from.isoformat().replace("+00:00", "Z"),
        "note": version.note,
        "platforms": {p: {lvl: version.policy(p, lvl).to_json() for lvl in TELEMETRY_LEVELS} for p in PLATFORMS},
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def document_sha256(document: bytes) -> str:
    return hashlib.sha256(document).hexdigest()
