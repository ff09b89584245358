"""sdk_config_publish: `voiplake sdk-config publish`, the central SDK configuration onto the object store.

Every version of lake_layout/sdk_config.toml becomes one immutable object in the landing bucket
(`sdk_config_key(version)`, canonical JSON with its SHA-256 in the object metadata), and
`SDK_CONFIG_LATEST_KEY` points at the version in force at publish time. Publishing again is a no-op for versions
already there; a published version whose bytes would change is refused (clients may have cached it: add a new
[[version]] instead).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lake_layout.config import Settings
from lake_layout.sdk_config import (
    SDK_CONFIG_LATEST_KEY,
    SdkConfig,
    document_sha256,
    published_document,
    sdk_config_key,
)


class PublishRefused(RuntimeError):
    """A published version's document would change."""


@dataclass(frozen=True)
class PublishReport:
    bucket: str
    latest_version: str
    latest_key: str
    latest_sha256: str
    written: tuple[str, ...]  # version keys written by this run
    unchanged: tuple[str, ...]  # version keys already published with the same bytes

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "written": list(self.written), "unchanged": list(self.unchanged)}


def latest_pointer(config: SdkConfig, *, at: datetime) -> bytes:
    """The `latest` pointer document: the version in force at `at`, its key and SHA-256 (canonical JSON)."""
    version = config.in_force(at)
    doc = {"version": version.version_id, "key": sdk_config_key(version.version_id),
           "sha256": document_sha256(published_document(version)),
           "effective_from": version.effective_from.isoformat().replace("+00:00", "Z")}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def publish(settings: Settings, config: SdkConfig, *, at: datetime) -> PublishReport:
    """Write every version not yet published and repoint `latest` to the version in force at `at`."""
    from botocore.exceptions import ClientError

    from jobs.platform.objectstore import ensure_bucket, s3_client

    client = s3_client(settings.object_store)
    bucket = settings.landing.bucket
    ensure_bucket(client, bucket)
    written, unchanged = [], []
    for version in config.versions:
        key = sdk_config_key(version.version_id)
        body = published_document(version)
        sha = document_sha256(body)
        try:
            existing = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                raise
            existing = None
        if existing is not None:
            if existing != body:
                raise PublishRefused(
                    f"s3://{bucket}/{key} already holds a different document for SDK config version "
                    f"{version.version_id} (sha256 {document_sha256(existing)}, now {sha}); published versions are "
                    "immutable: add a new [[version]] with a later effective_from to lake_layout/sdk_config.toml")
            unchanged.append(key)
            continue
        client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json",
                          Metadata={"sha256": sha, "version": version.version_id})
        written.append(key)
    pointer = latest_pointer(config, at=at)
    client.put_object(Bucket=bucket, Key=SDK_CONFIG_LATEST_KEY, Body=pointer, ContentType="application/json")
    doc = json.loads(pointer)
    return PublishReport(bucket=bucket, latest_version=doc["version"], latest_key=doc["key"],
                         latest_sha256=doc["sha256"], written=tuple(written), unchanged=tuple(unchanged))
