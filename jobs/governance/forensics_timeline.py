"""One ordered timeline of a call or a subscriber across platforms and layers (`voiplake forensics timeline`).

For an outage or a fraud investigation: what arrived when, what the lake made of it, and what it rejected.

    voiplake forensics timeline --call-id C [--from D --to D] [--out timeline.jsonl]
    voiplake forensics timeline --subscriber +4915... --from 2026-11-01 --to 2026-11-30

Entries, each with its time (UTC), layer, source table and the Delta version read, kind, call id and platform:

    landing  object_received    an upload of the subject's events reached the collector (sha256 from the manifest)
             object_ingested    bronze processed it (status, records accepted / quarantined)
             object_chained     its audit.landing_integrity entry (seq, sha256 matches the manifest or not)
    bronze   call_start | call_end | call_failure   at the corrected time (device time + clock_offset_ms), with
                                the device time, offset, app version, network, received_at, object key and index
    bronze   bronze_quarantined a record of the same upload bronze rejected, with its reason
    silver   silver_quarantined one of the events silver rejected (impossible time), with its reason
    silver   call_started | call_ended   the silver.calls row (status, duration, failure reason)
    gold     call_rated         the gold.billing_rated_calls row (rating rule, charge)

Ordered by time, then layer (landing, bronze, silver, gold), then kind: a call's start comes before its end,
and the bronze event before the silver row made from it at the same corrected time. A subscriber is found
through its pseudonym under every key id; the MSISDN is written nowhere and restricted columns are never read.
Objects rejected as a whole (unreadable uploads) name no subscriber and so appear in no subscriber's timeline.

`build_timeline` is pure (DataFrames in, the ordered entries out); `run` reads through the registry at pinned
Delta versions and records the read in audit.access_log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from jobs.platform import lake
from jobs.platform.access_log import plan_reads, record_access
from jobs.governance.forensics import REDACTED_SUBJECT, record_forensic_access, require_forensics_role, subject_pseudonyms
from jobs.platform.keys import KeyMaterial
from lake_layout.access import AccessDenied, role as access_role
from lake_layout.config import Settings
from lake_layout.registry import TableSpec
from lake_layout.tables import (
    AUDIT_LANDING_INTEGRITY, BRONZE_CALL_EVENTS, BRONZE_INGESTED_OBJECTS, BRONZE_QUARANTINE,
    GOLD_BILLING_RATED_CALLS, SILVER_CALLS, SILVER_QUARANTINE,
)

if TYPE_CHECKING:
    from pyspark.sql import Column as SparkColumn
    from pyspark.sql import DataFrame, SparkSession

LAYERS = ("landing", "bronze", "silver", "gold")
KINDS = ("object_received", "object_ingested", "object_chained", "call_start", "call_end", "call_failure",
         "bronze_quarantined", "silver_quarantined", "call_started", "call_ended", "call_rated")
ENTRY_COLUMNS = ("at", "layer", "source", "delta_version", "kind", "call_id", "platform", "detail")
TIMELINE_TABLES = (BRONZE_CALL_EVENTS, BRONZE_INGESTED_OBJECTS, AUDIT_LANDING_INTEGRITY, BRONZE_QUARANTINE,
                   SILVER_QUARANTINE, SILVER_CALLS, GOLD_BILLING_RATED_CALLS)


class TimelineError(ValueError):
    """A timeline cannot be made as asked (no subject, bad period, bronze missing)."""


@dataclass(frozen=True)
class TimelineSubject:
    """Whose timeline: one call id, or a subscriber's pseudonyms; the period [start, end) in UTC (optional for a
    call, required for a subscriber)."""

    call_id: str | None = None
    pseudonyms: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        if (self.call_id is None) == (not self.pseudonyms):
            raise TimelineError("a timeline is of one call (--call-id) or one subscriber (--subscriber), not both or neither")
        if self.pseudonyms and (self.start is None or self.end is None):
            raise TimelineError("a subscriber's timeline needs a period: --from and --to")
        if (self.start is None) != (self.end is None):
            raise TimelineError("give both --from and --to, or neither")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise TimelineError(f"the period ends ({self.end}) before it starts ({self.start})")

    @staticmethod
    def period(start: date, end: date) -> tuple[datetime, datetime]:
        """[start 00:00, end + 1 day 00:00) UTC for inclusive UTC days."""
        return (datetime.combine(start, time(), timezone.utc),
                datetime.combine(end + timedelta(days=1), time(), timezone.utc))


# ---------------------------------------------------------------------------------------------- transforms


def _detail(**columns: "SparkColumn") -> "SparkColumn":
    """A map<string,string> of the summary fields (null values are dropped when rendered)."""
    from pyspark.sql import functions as F

    pairs: list[Any] = []
    for name, column in columns.items():
        pairs += [F.lit(name), column.cast("string")]
    return F.create_map(*pairs)


def _entries(df: "DataFrame", *, at: "SparkColumn", layer: str, source: str, version: int, kind: "SparkColumn | str",
             call_id: "SparkColumn", platform: "SparkColumn", detail: "SparkColumn") -> "DataFrame":
    from pyspark.sql import functions as F

    return df.select(
        at.cast("timestamp").alias("at"), F.lit(layer).alias("layer"), F.lit(source).alias("source"),
        F.lit(version).cast("long").alias("delta_version"),
        (F.lit(kind) if isinstance(kind, str) else kind).alias("kind"),
        call_id.cast("string").alias("call_id"), platform.cast("string").alias("platform"), detail.alias("detail"))


def corrected_time() -> "SparkColumn":
    """The event's time on the server clock: event_ts_device + clock_offset_ms (0 when the batch had none),
    the correction jobs.curate.silver_calls applies."""
    from pyspark.sql import functions as F

    return F.timestamp_millis(F.unix_millis("event_ts_device") + F.coalesce(F.col("clock_offset_ms"), F.lit(0)))


def subject_events(events: "DataFrame", subject: TimelineSubject) -> "DataFrame":
    """The subject's bronze events with `event_at` (corrected time): the call's events, or the subscriber's (by
    pseudonym) in the period by corrected time. Only unrestricted columns are kept."""
    from pyspark.sql import functions as F

    keep = ["event_id", "call_id", "event_type", "event_ts_device", "event_date", "clock_offset_ms", "platform",
            "app_version", "network_type", "received_at", "object_key", "record_index", "duration_ms",
            "failure_reason", "batch_id"]
    selected = events
    if subject.call_id is not None:
        selected = selected.where(F.col("call_id") == subject.call_id)
    else:
        selected = selected.where(F.col("subscriber_pseudonym").isin(list(subject.pseudonyms)))
    if subject.start is not None and subject.end is not None:
        # event_date is the device's day: a day either side covers any plausible clock offset, and prunes partitions
        selected = selected.where(F.col("event_date").between(
            F.lit((subject.start - timedelta(days=1)).date()), F.lit((subject.end + timedelta(days=1)).date())))
    selected = selected.select(*keep).withColumn("event_at", corrected_time())
    if subject.start is not None and subject.end is not None:
        selected = selected.where((F.col("event_at") >= F.lit(subject.start)) & (F.col("event_at") < F.lit(subject.end)))
    return selected


def subject_calls(calls: "DataFrame", subject: TimelineSubject) -> "DataFrame":
    """The subject's silver.calls rows: the call, or the subscriber's calls with a start or end in the period."""
    from pyspark.sql import functions as F

    if subject.call_id is not None:
        return calls.where(F.col("call_id") == subject.call_id)
    selected = calls.where(F.col("subscriber_pseudonym").isin(list(subject.pseudonyms)))
    assert subject.start is not None and subject.end is not None
    selected = selected.where(F.col("call_date").between(  # calls starting the day before may end in the period
        F.lit((subject.start - timedelta(days=1)).date()), F.lit(subject.end.date())))
    in_period = lambda c: (F.col(c) >= F.lit(subject.start)) & (F.col(c) < F.lit(subject.end))  # noqa: E731
    return selected.where(in_period("started_at") | in_period("ended_at"))


def build_timeline(*, events: "DataFrame", subject: TimelineSubject, versions: Mapping[str, int],
                   calls: "DataFrame | None" = None, ingested_objects: "DataFrame | None" = None,
                   landing_integrity: "DataFrame | None" = None, bronze_quarantine: "DataFrame | None" = None,
                   silver_quarantine: "DataFrame | None" = None, rated_calls: "DataFrame | None" = None) -> "DataFrame":
    """The subject's timeline entries (ENTRY_COLUMNS), ordered by time, layer, kind, call id, then source position.

    `events` is bronze.call_events (required); the other tables may be None when they do not exist. `versions`
    maps each given table's name to the Delta version its frame was read at (stamped on every entry). Contract:
    every entry's time lies in the subject's period (when it has one); entries come only from the subject's
    events and calls and what links to them (their landing objects, quarantine rows, rating rows)."""
    from pyspark.sql import functions as F

    ev = subject_events(events, subject)
    parts = [_entries(
        ev, at=F.col("event_at"), layer="bronze", source=BRONZE_CALL_EVENTS.name,
        version=versions[BRONZE_CALL_EVENTS.name], kind=F.col("event_type"), call_id=F.col("call_id"),
        platform=F.col("platform"),
        detail=_detail(device_time=F.col("event_ts_device"), clock_offset_ms=F.col("clock_offset_ms"),
                       app_version=F.col("app_version"), network=F.col("network_type"),
                       received_at=F.col("received_at"), object_key=F.col("object_key"),
                       record_index=F.col("record_index"), duration_ms=F.col("duration_ms"),
                       failure_reason=F.col("failure_reason"), event_id=F.col("event_id")))]

    objects = ev.groupBy("object_key").agg(F.min("received_at").alias("received_at"),
                                           F.first("platform", ignorenulls=True).alias("platform"),
                                           F.count(F.lit(1)).alias("subject_events"))
    manifest = None
    if ingested_objects is not None:
        manifest = ingested_objects.join(objects.select("object_key", "platform"), "object_key")
        parts.append(_entries(
            manifest, at=F.col("ingested_at"), layer="landing", source=BRONZE_INGESTED_OBJECTS.name,
            version=versions[BRONZE_INGESTED_OBJECTS.name], kind="object_ingested", call_id=F.lit(None),
            platform=F.col("platform"),
            detail=_detail(object_key=F.col("object_key"), status=F.col("status"),
                           records_received=F.col("records_received"), records_accepted=F.col("records_accepted"),
                           records_quarantined=F.col("records_quarantined"), ingest_run_id=F.col("ingest_run_id"))))
    received = objects if manifest is None else objects.join(
        manifest.select("object_key", "sha256", "size_bytes", "encoding"), "object_key", "left")
    has = set(received.columns)
    parts.append(_entries(
        received, at=F.col("received_at"), layer="landing",
        source=(BRONZE_INGESTED_OBJECTS if manifest is not None else BRONZE_CALL_EVENTS).name,
        version=versions[(BRONZE_INGESTED_OBJECTS if manifest is not None else BRONZE_CALL_EVENTS).name],
        kind="object_received", call_id=F.lit(None),
        platform=F.col("platform"),
        detail=_detail(object_key=F.col("object_key"), subject_events=F.col("subject_events"),
                       sha256=F.col("sha256") if "sha256" in has else F.lit("not in bronze.ingested_objects"),
                       size_bytes=F.col("size_bytes") if "size_bytes" in has else F.lit(None),
                       encoding=F.col("encoding") if "encoding" in has else F.lit(None))))
    if landing_integrity is not None:
        chained = landing_integrity.join(objects.select("object_key", "platform"), "object_key")
        if manifest is not None:
            chained = chained.join(manifest.select("object_key", F.col("sha256").alias("manifest_sha256")),
                                   "object_key", "left")
        else:
            chained = chained.withColumn("manifest_sha256", F.lit(None).cast("string"))
        parts.append(_entries(
            chained, at=F.col("recorded_at"), layer="landing", source=AUDIT_LANDING_INTEGRITY.name,
            version=versions[AUDIT_LANDING_INTEGRITY.name], kind="object_chained", call_id=F.lit(None),
            platform=F.col("platform"),
            detail=_detail(object_key=F.col("object_key"), seq=F.col("seq"), sha256=F.col("sha256"),
                           sha256_matches_manifest=F.col("sha256") == F.col("manifest_sha256"))))
    if bronze_quarantine is not None:
        rejected = bronze_quarantine.join(objects.select("object_key", "received_at", "platform").withColumnRenamed(
            "platform", "object_platform"), "object_key")
        parts.append(_entries(
            rejected, at=F.col("received_at"), layer="bronze", source=BRONZE_QUARANTINE.name,
            version=versions[BRONZE_QUARANTINE.name], kind="bronze_quarantined", call_id=F.lit(None),
            platform=F.coalesce(F.col("platform"), F.col("object_platform")),
            detail=_detail(reason=F.col("reason"), detail=F.col("detail"), object_key=F.col("object_key"),
                           record_index=F.col("record_index"), event_id=F.col("event_id"), records=F.col("records"))))
    if silver_quarantine is not None:
        rejected = silver_quarantine.drop("call_id", "object_key", "record_index").join(
            ev.select("event_id", "call_id", "event_at", "platform", "object_key", "record_index"), "event_id")
        parts.append(_entries(
            rejected, at=F.col("event_at"), layer="silver", source=SILVER_QUARANTINE.name,
            version=versions[SILVER_QUARANTINE.name], kind="silver_quarantined", call_id=F.col("call_id"),
            platform=F.col("platform"),
            detail=_detail(reason=F.col("reason"), detail=F.col("detail"), event_id=F.col("event_id"),
                           object_key=F.col("object_key"), record_index=F.col("record_index"))))
    if calls is not None:
        rows = subject_calls(calls, subject)
        version = versions[SILVER_CALLS.name]
        common = dict(layer="silver", source=SILVER_CALLS.name, version=version, call_id=F.col("call_id"),
                      platform=F.col("platform"))
        parts.append(_entries(
            rows.where(F.col("started_at").isNotNull()), at=F.col("started_at"), kind="call_started",
            detail=_detail(status=F.col("status"), app_version=F.col("app_version"),
                           network_class=F.col("network_class"), telemetry_level=F.col("telemetry_level"),
                           destination_class=F.col("destination_class"), account_id=F.col("account_id"),
                           event_count=F.col("event_count"), duplicate_events=F.col("duplicate_events")),
            **common))  # type: ignore[arg-type]
        parts.append(_entries(
            rows.where(F.col("ended_at").isNotNull()), at=F.col("ended_at"), kind="call_ended",
            detail=_detail(status=F.col("status"), duration_ms=F.col("duration_ms"),
                           failure_reason=F.col("failure_reason"), started_at=F.col("started_at")),
            **common))  # type: ignore[arg-type]
        if rated_calls is not None:
            call_ids = rows.select("call_id", "platform").unionByName(ev.select("call_id", "platform")).dropDuplicates(["call_id"])
            rated = rated_calls.join(call_ids, "call_id")
            parts.append(_entries(
                rated, at=F.col("started_at"), layer="gold", source=GOLD_BILLING_RATED_CALLS.name,
                version=versions[GOLD_BILLING_RATED_CALLS.name], kind="call_rated", call_id=F.col("call_id"),
                platform=F.col("platform"),
                detail=_detail(rating_rule=F.col("rating_rule"), charge_minor=F.col("charge_minor"),
                               currency=F.col("currency"), invoice_period=F.col("invoice_period"),
                               is_adjustment=F.col("is_adjustment"), rated_at=F.col("rated_at"))))

    timeline = parts[0]
    for part in parts[1:]:
        timeline = timeline.unionByName(part)
    if subject.start is not None and subject.end is not None:
        timeline = timeline.where((F.col("at") >= F.lit(subject.start)) & (F.col("at") < F.lit(subject.end)))
    layer_rank = F.array_position(F.array(*[F.lit(x) for x in LAYERS]), F.col("layer"))
    kind_rank = F.array_position(F.array(*[F.lit(x) for x in KINDS]), F.col("kind"))
    # one subject's entries: a single sorted partition is a total order without orderBy's sampling job
    return timeline.coalesce(1).sortWithinPartitions(
        F.col("at").asc_nulls_last(), layer_rank, kind_rank, F.col("call_id").asc_nulls_first(),
        F.col("detail")["object_key"], F.col("detail")["record_index"].cast("int"))


# ---------------------------------------------------------------------------------------------- output


def entry_dicts(timeline: "DataFrame") -> list[dict[str, Any]]:
    """The ordered entries as dicts (one subject's timeline: small by construction), null details dropped."""
    out = []
    for row in timeline.collect():
        entry = row.asDict()
        entry["at"] = entry["at"].replace(tzinfo=timezone.utc).isoformat(timespec="milliseconds") if entry["at"] else None
        entry["detail"] = {k: v for k, v in sorted((entry["detail"] or {}).items()) if v is not None}
        out.append(entry)
    return out


def render_rows(entries: Sequence[dict[str, Any]]) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Columns and rows for jobs.cli.common.render: the detail map as `key=value` pairs."""
    rows = [(e["at"], e["layer"], f"{e['source']}@v{e['delta_version']}", e["kind"], e["call_id"], e["platform"],
             " ".join(f"{k}={v}" for k, v in e["detail"].items())) for e in entries]
    return ["at", "layer", "source", "kind", "call_id", "platform", "detail"], rows


def write_jsonl(entries: Sequence[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for entry in entries:
            f.write(json.dumps(entry, sort_keys=True, default=str) + "\n")


# ---------------------------------------------------------------------------------------------- run


@dataclass(frozen=True)
class TimelineReport:
    entries: list[dict[str, Any]]
    versions: dict[str, int]
    skipped_tables: dict[str, str]


def read_pinned(spark: "SparkSession", spec: TableSpec, settings: Settings, version: int) -> "DataFrame":
    """`spec` as of Delta `version` (time travel), so every entry names exactly what it was read from."""
    return spark.read.format("delta").option("versionAsOf", version).load(spec.location(settings))


def run(spark: "SparkSession", settings: Settings, keys: KeyMaterial, *, call_id: str | None = None,
        msisdn: str | None = None, start: date | None = None, end: date | None = None,
        role: str = "security", user: str = "unknown") -> TimelineReport:
    """Read the timeline tables at their current Delta versions (pinned for the whole read), build the subject's
    timeline and record the read in audit.access_log (action export; refusals too)."""
    statement = ("voiplake forensics timeline " + (f"--call-id {call_id}" if call_id else f"--subscriber {REDACTED_SUBJECT}")
                 + (f" --from {start} --to {end}" if start and end else "") + f" --role {role}")
    try:
        require_forensics_role(role)
    except AccessDenied as exc:
        record_forensic_access(spark, settings, user=user, role=role, statement=statement, selections=[], rows=None,
                               reason=str(exc))
        raise
    period = TimelineSubject.period(start, end) if start is not None and end is not None else (None, None)
    if (start is None) != (end is None):
        raise TimelineError("give both --from and --to, or neither")
    pseudonyms = tuple(sorted(set(subject_pseudonyms(keys, msisdn).values()))) if msisdn else ()
    subject = TimelineSubject(call_id=call_id, pseudonyms=pseudonyms, start=period[0], end=period[1])

    allowed = access_role(role)
    frames: dict[str, "DataFrame"] = {}
    versions: dict[str, int] = {}
    skipped: dict[str, str] = {}
    for spec in TIMELINE_TABLES:
        version = lake.table_version(spark, spec, settings)
        if not allowed.may_read_table(spec.name):
            skipped[spec.name] = f"closed to role {role}"
        elif version is None:
            skipped[spec.name] = "table does not exist"
        else:
            frames[spec.name], versions[spec.name] = read_pinned(spark, spec, settings, version), version
    if BRONZE_CALL_EVENTS.name not in frames:
        raise TimelineError(f"bronze.call_events is not readable ({skipped[BRONZE_CALL_EVENTS.name]}): no timeline")
    timeline = build_timeline(
        events=frames[BRONZE_CALL_EVENTS.name], subject=subject, versions=versions,
        calls=frames.get(SILVER_CALLS.name), ingested_objects=frames.get(BRONZE_INGESTED_OBJECTS.name),
        landing_integrity=frames.get(AUDIT_LANDING_INTEGRITY.name),
        bronze_quarantine=frames.get(BRONZE_QUARANTINE.name), silver_quarantine=frames.get(SILVER_QUARANTINE.name),
        rated_calls=frames.get(GOLD_BILLING_RATED_CALLS.name))
    tables, columns = plan_reads(timeline, settings)  # exactly what the plan scans: no restricted column
    entries = entry_dicts(timeline)
    record_access(spark, settings, user=user, role=role, action="export", sql=statement, tables=tables,
                  columns=columns, rows=len(entries), allowed=True, reason=None)
    return TimelineReport(entries, versions, skipped)
