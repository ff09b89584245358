"""Listing the landing zone past one page (S3Proxy returns URL-encoded continuation tokens)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from jobs.platform.objectstore import ensure_bucket, list_keys, list_level, s3_client


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


def test_landing_reader_lists_hour_by_hour_and_still_sees_every_object_of_the_day(settings, spark) -> None:  # type: ignore[no-untyped-def]
    """read_landing lists the day's children (hour folders, strays) rather than the day flat: nothing under the
    day prefix is missed, stray keys included (bronze quarantines those as unknown_object_key)."""
    from dataclasses import replace
    from datetime import date

    from jobs.ingest.bronze import _landing_has_objects, read_landing

    client = s3_client(settings.object_store)
    bucket = "landing-reader-test"
    ensure_bucket(client, bucket)
    day = "uploads/upload_date=2026-11-24/"
    wanted = [f"{day}hour={h:02d}/{h:05d}-b.pb.gz" for h in (0, 7, 23)] + [
        f"{day}stray.json.gz", f"{day}other/deeper/x.pb.gz", f"{day}hour=07/{'9' * 13}-second.json.gz"]
    unwanted = [f"{day}hour=07/notes.txt", f"{day}readme.txt", "uploads/upload_date=2026-11-25/hour=00/00000-b.pb.gz",
                "uploads/upload_date=2026-11-26/hour=00/readme.txt"]
    for key in wanted + unwanted:
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    s = replace(settings, landing=replace(settings.landing, bucket=bucket, prefix="uploads"))

    rows = read_landing(spark, s, date(2026, 11, 24)).collect()
    assert sorted(r.object_key for r in rows) == sorted(wanted) and {bytes(r.content) for r in rows} == {b"x"}
    assert [_landing_has_objects(s, date(2026, 11, d)) for d in (24, 25, 26, 27)] == [True, True, False, False]


def test_list_keys_pages_through_a_level_past_folders_and_files(settings) -> None:  # type: ignore[no-untyped-def]
    """A level of more than one page, with folders sorting among its files: nothing listed twice or missed, the
    first hit found lazily, and a prefix that is not a folder ("d/a" also takes "d/ab/...") as a flat listing would."""
    client = s3_client(settings.object_store)
    bucket = "list-levels-test"
    ensure_bucket(client, bucket)
    keys = [f"d/a/{i:05d}.txt" for i in range(1_100)] + [f"d/a/{i:05d}/inner.gz" for i in (3, 998, 999, 1_050)] + [
        "d/a/zz/last.gz", "d/ab/other.gz", "d/top.gz", "e/else.gz"]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=b"x"), keys))
    listed = [k for k, _ in list_keys(client, bucket, "d/")]
    assert sorted(listed) == sorted(k for k in keys if k.startswith("d/")) and len(set(listed)) == len(listed)
    assert sorted(k for k, _ in list_keys(client, bucket, "d/a")) == sorted(k for k in keys if k.startswith("d/a"))
    assert [k for k, _ in list_keys(client, bucket, "d/top.gz")] == ["d/top.gz"]
    assert next(k for k, _ in list_keys(client, bucket, "d/a/") if k.endswith(".gz")) == "d/a/00003/inner.gz"
    objects, folders = list_level(client, bucket, "d/a/")
    assert len(objects) == 1_100 and folders == [f"d/a/{i:05d}/" for i in (3, 998, 999, 1_050)] + ["d/a/zz/"]
