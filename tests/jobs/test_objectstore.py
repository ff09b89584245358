"""Listing the landing zone past one page (S3Proxy returns URL-encoded continuation tokens)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from jobs.objectstore import ensure_bucket, list_keys, s3_client


def test_list_keys_pages_past_a_thousand_objects_with_keys_that_need_encoding(settings) -> None:  # type: ignore[no-untyped-def]
    client = s3_client(settings.object_store)
    bucket = "list-keys-test"
    ensure_bucket(client, bucket)
    keys = [f"uploads/upload_date=2026-11-24/hour={i % 24:02d}/{i:05d}.pb.gz" for i in range(1_050)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=b"x"), keys))
    client.put_object(Bucket=bucket, Key="other/outside.pb.gz", Body=b"x")
    listed = [k for k, size in list_keys(client, bucket, "uploads/") if size == 1]
    assert sorted(listed) == sorted(keys) and len(set(listed)) == len(listed)
