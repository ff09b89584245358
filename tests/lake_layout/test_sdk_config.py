"""The central SDK configuration: the checked-in file loads, validation names the bad key, versions by time."""

from __future__ import annotations

import json
import tomllib
from copy import deepcopy
from datetime import UTC, datetime

import pytest

from jobs.telemetry.codec import EVENT_FIELDS
from lake_layout.sdk_config import (
    DEFAULT_SDK_CONFIG,
    PLATFORMS,
    TELEMETRY_LEVELS,
    SdkConfigError,
    document_sha256,
    load_sdk_config,
    parse_sdk_config,
    published_document,
)


def _raw() -> dict:  # type: ignore[type-arg]
    return tomllib.loads(DEFAULT_SDK_CONFIG.read_text())


def test_checked_in_config_is_valid_for_every_platform_and_level() -> None:
    config = load_sdk_config(known_fields=EVENT_FIELDS)
    version = config.in_force(datetime(2026, 11, 26, tzinfo=UTC))
    for platform in PLATFORMS:
        for level in TELEMETRY_LEVELS:
            policy = version.policy(platform, level)
            assert "imei" not in policy.allowed_fields  # never collected under the central configuration
            assert ("mos" in policy.allowed_fields) == (level == "diagnostic")
    # web overrides only what it names; the rest comes from the level's defaults
    assert "carrier_mccmnc" not in version.policy("web", "basic").allowed_fields
    assert version.policy("web", "diagnostic").quality_sample_interval_seconds == 10
    assert version.policy("web", "diagnostic").daily_background_upload_bytes == \
        version.policy("ios", "diagnostic").daily_background_upload_bytes


def test_in_force_picks_the_latest_version_started_before() -> None:
    raw = _raw()
    newer = deepcopy(raw["version"][0])
    newer["id"], newer["effective_from"] = "2026.2", "2026-06-01T00:00:00Z"
    newer["basic"]["daily_background_upload_bytes"] = 1000
    config = parse_sdk_config({"version": [raw["version"][0], newer]})
    assert config.in_force(datetime(2026, 5, 31, 23, 59, tzinfo=UTC)).version_id == "2026.1"
    assert config.in_force(datetime(2026, 6, 1, tzinfo=UTC)).version_id == "2026.2"
    assert config.policy("android", "basic", datetime(2026, 7, 1, tzinfo=UTC)).daily_background_upload_bytes == 1000
    with pytest.raises(LookupError, match="no SDK configuration was in force"):
        config.in_force(datetime(2025, 12, 31, tzinfo=UTC))


@pytest.mark.parametrize(("change", "message"), [
    (lambda v: v["basic"].update(batch_max_events=0), r"2026\.1\).ios\.basic: batch_max_events must be a positive"),
    (lambda v: v["basic"].pop("daily_background_upload_bytes"), r"ios\.basic: missing key\(s\) \['daily_background_upload_bytes'\]"),
    (lambda v: v["diagnostic"].update(sample_rate=3), r"ios\.diagnostic: unknown key\(s\) \['sample_rate'\]"),
    (lambda v: v["basic"].update(constrained_sample_interval_seconds=1), r"constrained_sample_interval_seconds must be >="),
    (lambda v: v["basic"].update(constrained_networks=["6g"]), r"unknown network type\(s\) \['6g'\]"),
    (lambda v: v["basic"]["allowed_fields"].remove("msisdn"), r"lacks required field\(s\) \['msisdn'\]"),
    (lambda v: v["basic"]["allowed_fields"].append("heart_rate"), r"ios\.basic\.allowed_fields: unknown field\(s\) \['heart_rate'\]"),
    (lambda v: v["platforms"].update(symbian={}), r"unknown platform\(s\) \['symbian'\]"),
    (lambda v: v.update(effective_from="2026-01-01T00:00:00"), r"must carry a time zone"),
])
def test_validation_names_version_and_key(change, message) -> None:  # type: ignore[no-untyped-def]
    raw = _raw()
    change(raw["version"][0])
    with pytest.raises(SdkConfigError, match=message):
        parse_sdk_config(raw, known_fields=EVENT_FIELDS)


def test_versions_must_be_in_time_order_with_unique_ids() -> None:
    raw = _raw()
    older = deepcopy(raw["version"][0])
    older["id"], older["effective_from"] = "2025.9", "2025-09-01T00:00:00Z"
    with pytest.raises(SdkConfigError, match="strictly increasing effective_from"):
        parse_sdk_config({"version": [raw["version"][0], older]})
    with pytest.raises(SdkConfigError, match="duplicate"):
        parse_sdk_config({"version": [raw["version"][0], raw["version"][0]]})


def test_published_document_is_canonical_and_complete() -> None:
    version = load_sdk_config().versions[0]
    doc = published_document(version)
    parsed = json.loads(doc)
    assert doc == json.dumps(parsed, sort_keys=True, separators=(",", ":")).encode()
    assert parsed["version"] == "2026.1" and parsed["effective_from"] == "2026-01-01T00:00:00Z"
    assert set(parsed["platforms"]) == set(PLATFORMS)
    assert parsed["platforms"]["web"]["basic"]["allowed_fields"] == list(version.policy("web", "basic").allowed_fields)
    assert document_sha256(doc) == document_sha256(published_document(load_sdk_config().versions[0]))
