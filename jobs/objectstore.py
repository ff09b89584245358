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

    Pages by StartAfter (the last key seen), not by continuation token: S3Proxy returns the token URL-encoded,
    boto3 sends it back as is and gets the same page again ("same next token received twice") once a prefix
    holds more than one page (1,000 objects)."""
    start_after = ""
    while True:
        page = client.list_objects_v2(Bucket=bucket, Prefix=prefix, **({"StartAfter": start_after} if start_after else {}))
        contents = page.get("Contents", [])
        for obj in contents:
            if not obj["Key"].endswith("/"):
                yield obj["Key"], int(obj["Size"])
        if not page.get("IsTruncated") or not contents:
            return
        start_after = contents[-1]["Key"]


def any_key_ending(client: "S3Client", bucket: str, prefix: str, suffix: str) -> bool:
    """Whether some object under `prefix` has a key ending in `suffix`, found level by level with '/'-delimited
    listings (depth first, the first hit wins).

    A flat listing would do, but S3Proxy's filesystem store builds every page from all the keys under the
    prefix: its first page of a 3M-event landing day (82,700 objects) took 5.9 s, a delimited page of the same
    day under 0.01 s (make bench)."""
    pending = [prefix]
    while pending:
        level = pending.pop()
        start_after = ""
        while True:
            page = client.list_objects_v2(Bucket=bucket, Prefix=level, Delimiter="/",
                                          **({"StartAfter": start_after} if start_after else {}))
            contents = page.get("Contents", [])
            if any(obj["Key"].endswith(suffix) for obj in contents):
                return True
            children = [p["Prefix"] for p in page.get("CommonPrefixes", [])]
            pending.extend(reversed(children))
            seen = [obj["Key"] for obj in contents] + children
            if not page.get("IsTruncated") or not seen:
                break
            start_after = max(seen)
    return False
