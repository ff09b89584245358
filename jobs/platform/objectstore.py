"""boto3 access to the object store (landing zone listing, reads, writes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from lake_layout.config import ObjectStoreSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client  # pragma: no cover


def s3_client(settings: ObjectStoreSettings) -> "S3Client":
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=settings.endpoint,
        aws_access_key_id=settings.access_key,
        aws_secret_access_key=settings.secret_key,
        region_name=settings.region,
        config=Config(
            s3={"addressing_style": "path"},
            # S3Proxy does not implement the newer flexible checksums.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": 5, "mode": "standard"},
            max_pool_connections=16,
        ),
    )


def ensure_bucket(client: "S3Client", bucket: str) -> None:
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        client.create_bucket(Bucket=bucket)


def list_keys(client: "S3Client", bucket: str, prefix: str) -> Iterator[tuple[str, int]]:
    """(key, size) of every object under `prefix`; directory markers are skipped.

    Walks the prefix's '/'-delimited levels depth first instead of listing it flat. S3Proxy's filesystem store
    builds every page of a listing from all the keys under its prefix, so a flat listing of a 3M-event landing day
    (82,700 objects) took 478 s in 83 pages, and its first page alone 5.9 s; a delimited page of the same day
    answered in under 0.01 s (make bench). On S3 the walk costs one request more per folder.

    Pages by StartAfter (past the last key, or past everything under the last folder), not by continuation token:
    S3Proxy returns the token URL-encoded, boto3 sends it back as is and gets the same page again ("same next
    token received twice") once a level holds more than one page (1,000 keys)."""
    pending = [prefix]
    while pending:
        folders: list[str] = []
        for objects, found in _level_pages(client, bucket, pending.pop()):
            yield from objects
            folders.extend(found)
        pending.extend(reversed(folders))


def list_level(client: "S3Client", bucket: str, prefix: str) -> tuple[list[tuple[str, int]], list[str]]:
    """One '/'-delimited level under `prefix`: its objects as (key, size), directory markers skipped, and its
    folders (prefixes ending in "/")."""
    objects: list[tuple[str, int]] = []
    folders: list[str] = []
    for page_objects, page_folders in _level_pages(client, bucket, prefix):
        objects.extend(page_objects)
        folders.extend(page_folders)
    return objects, folders


def _level_pages(client: "S3Client", bucket: str, level: str) -> Iterator[tuple[list[tuple[str, int]], list[str]]]:
    """The pages of one delimited listing, as (objects, folders) each; see list_keys for the paging."""
    start_after = ""
    while True:
        page = client.list_objects_v2(Bucket=bucket, Prefix=level, Delimiter="/",
                                      **({"StartAfter": start_after} if start_after else {}))
        contents = page.get("Contents", [])
        found = [p["Prefix"] for p in page.get("CommonPrefixes", []) if p["Prefix"] != level]
        yield [(obj["Key"], int(obj["Size"])) for obj in contents if not obj["Key"].endswith("/")], found
        # Past a folder is its prefix with the final "/" raised to "0", the next character.
        last = max([obj["Key"] for obj in contents] + [f[:-1] + "0" for f in found], default="")
        if not page.get("IsTruncated") or not last:
            return
        start_after = last
