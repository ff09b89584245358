"""`voiplake sdk-config publish`: versions and the latest pointer on the real object store (S3Proxy)."""

from __future__ import annotations

import hashlib
import json
import tomllib
from copy import deepcopy
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from jobs.platform.objectstore import s3_client
from jobs.telemetry.sdk_config_publish import PublishRefused, publish
from lake_layout.config import LandingSettings
from lake_layout.sdk_config import DEFAULT_SDK_CONFIG, SDK_CONFIG_LATEST_KEY, parse_sdk_config, sdk_config_key


def test_publish_writes_versions_and_repoints_latest(settings) -> None:  # type: ignore[no-untyped-def]
    own = replace(settings, landing=LandingSettings(bucket="sdk-config-publish-test", prefix="uploads"))
    raw = tomllib.loads(DEFAULT_SDK_CONFIG.read_text())
    newer = deepcopy(raw["version"][0])
    newer["id"], newer["effective_from"] = "2026.2", "2026-12-01T00:00:00Z"
    config = parse_sdk_config({"version": [raw["version"][0], newer]})
    client = s3_client(own.object_store)

    report = publish(own, config, at=datetime(2026, 11, 26, tzinfo=UTC))
    assert report.written == (sdk_config_key("2026.1"), sdk_config_key("2026.2"))
    latest = json.loads(client.get_object(Bucket=own.landing.bucket, Key=SDK_CONFIG_LATEST_KEY)["Body"].read())
    assert latest["version"] == "2026.1"  # the newer one is published ahead of time, not in force yet
    body = client.get_object(Bucket=own.landing.bucket, Key=latest["key"])["Body"].read()
    assert hashlib.sha256(body).hexdigest() == latest["sha256"] == report.latest_sha256
    assert json.loads(body)["version"] == "2026.1"

    again = publish(own, config, at=datetime(2026, 12, 2, tzinfo=UTC))  # idempotent; latest moves on
    assert again.written == () and len(again.unchanged) == 2 and again.latest_version == "2026.2"

    newer["basic"]["batch_max_events"] = 50  # editing a published version in place is refused
    with pytest.raises(PublishRefused, match="2026.2.*immutable"):
        publish(own, parse_sdk_config({"version": [raw["version"][0], newer]}), at=datetime(2026, 12, 2, tzinfo=UTC))
