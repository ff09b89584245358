"""Log integrity of the landing zone: each ingested object's SHA-256 in a hash chain (audit.landing_integrity).

`record_new_objects` runs at the end of every bronze ingestion: objects of the upload date that are in
bronze.ingested_objects but not yet chained get one entry each (key, SHA-256, size, run), so a rerun adds
nothing and an ingestion interrupted before chaining is caught up by the next one.

`verify_landing` checks the chain (jobs.platform.hashchain) and re-reads every chained object from the object store,
recomputing its SHA-256: a changed object, a missing object, and a changed, removed or reordered entry are
each reported.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING

from jobs.platform import hashchain
from lake_layout.config import Settings
from lake_layout.tables import AUDIT_LANDING_INTEGRITY, AUDIT_RETENTION_ACTIONS, BRONZE_INGESTED_OBJECTS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def unchained_objects(ingested: "DataFrame", chained: "DataFrame | None") -> "DataFrame":
    """Ingested objects (bronze.ingested_objects rows) without a chain entry yet, in key order."""
    todo = ingested if chained is None else ingested.join(chained.select("object_key"), "object_key", "left_anti")
    return todo.select("object_key", "sha256", "size_bytes", "upload_date", "ingest_run_id").orderBy("object_key")


def record_new_objects(spark: "SparkSession", settings: Settings, *, upload_date: date) -> int:
    """Chain every ingested object of `upload_date` not chained yet; returns how many were added.

    The list is one upload date's objects (thousands of short rows at most), collected to compute the chain."""
    from pyspark.sql import functions as F

    from jobs.platform import lake

    if not lake.table_exists(spark, BRONZE_INGESTED_OBJECTS, settings):
        return 0
    ingested = lake.read_table(spark, BRONZE_INGESTED_OBJECTS, settings).where(F.col("upload_date") == F.lit(upload_date))
    chained = lake.read_table(spark, AUDIT_LANDING_INTEGRITY, settings) if lake.table_exists(spark, AUDIT_LANDING_INTEGRITY, settings) else None
    now = datetime.now(timezone.utc)
    entries = [
        {"object_key": r["object_key"], "bucket": settings.landing.bucket, "sha256": r["sha256"],
         "size_bytes": int(r["size_bytes"]), "upload_date": r["upload_date"], "ingest_run_id": r["ingest_run_id"],
         "recorded_at": now}
        for r in unchained_objects(ingested, chained).collect()
    ]
    return len(hashchain.append_to_table(spark, settings, AUDIT_LANDING_INTEGRITY, entries))


def object_sha256(client: object, bucket: str, key: str) -> tuple[str, int]:
    """SHA-256 hex and size of an object, streamed in 1 MiB chunks."""
    body = client.get_object(Bucket=bucket, Key=key)["Body"]  # type: ignore[attr-defined]
    digest, size = hashlib.sha256(), 0
    for chunk in iter(lambda: body.read(1 << 20), b""):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


EXPIRED_IN = " in "  # separates the cutoff from the expired day prefixes in a retention action's predicate


def expired_landing_prefixes(spark: "SparkSession", settings: Settings) -> dict[str, set[str]]:
    """Per landing bucket, the day prefixes whose objects a retention run expired (from the `expire_objects`
    actions' predicates, written by jobs.governance.retention): `voiplake audit verify` does not report their objects as
    missing. Held objects under those prefixes were kept and are still verified."""
    from jobs.platform import lake

    if not lake.table_exists(spark, AUDIT_RETENTION_ACTIONS, settings):
        return {}
    rows = (lake.read_table(spark, AUDIT_RETENTION_ACTIONS, settings)
            .where("action = 'expire_objects' AND files_removed > 0").select("table_name", "predicate").collect())
    out: dict[str, set[str]] = {}
    for r in rows:
        _, sep, listed = (r["predicate"] or "").partition(EXPIRED_IN)
        if sep and r["table_name"].startswith("landing:"):
            out.setdefault(r["table_name"].removeprefix("landing:"), set()).update(
                p.strip() for p in listed.split(",") if p.strip().endswith("/"))
    return out


def verify_landing(spark: "SparkSession", settings: Settings) -> tuple[list[hashchain.Problem], int]:
    """Problems of the chain and of the objects it covers, and how many objects were re-hashed.

    An object a retention run expired (`expired_landing_prefixes`) is gone by policy, not missing:
    it is neither re-hashed nor reported; its chain entry is still verified."""
    from botocore.exceptions import ClientError

    from jobs.platform import lake
    from jobs.platform.objectstore import s3_client

    problems = hashchain.verify_table(spark, settings, AUDIT_LANDING_INTEGRITY)
    if not lake.table_exists(spark, AUDIT_LANDING_INTEGRITY, settings):
        return problems, 0
    client, checked = s3_client(settings.object_store), 0
    expired = expired_landing_prefixes(spark, settings)
    rows = (lake.read_table(spark, AUDIT_LANDING_INTEGRITY, settings)
            .select("seq", "bucket", "object_key", "sha256", "size_bytes").orderBy("seq").toLocalIterator())
    for r in rows:
        checked += 1
        uri = f"s3://{r['bucket']}/{r['object_key']}"
        try:
            sha, size = object_sha256(client, r["bucket"], r["object_key"])
        except ClientError as exc:
            if any(r["object_key"].startswith(p) for p in expired.get(r["bucket"], ())):
                checked -= 1  # expired by retention: nothing to re-hash
                continue
            problems.append(hashchain.Problem(AUDIT_LANDING_INTEGRITY.name, int(r["seq"]), "object_missing",
                                              f"{uri} cannot be read: {exc.response.get('Error', {}).get('Code', exc)}"))
            continue
        if sha != r["sha256"]:
            problems.append(hashchain.Problem(AUDIT_LANDING_INTEGRITY.name, int(r["seq"]), "object_changed",
                                              f"{uri}: SHA-256 {sha[:16]}… ({size} bytes) differs from the recorded "
                                              f"{r['sha256'][:16]}… ({r['size_bytes']} bytes)"))
    return problems, checked
