"""reference_ingest: directory export lines -> pseudonymized consent history, on the real object store."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime

from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from jobs.platform import lake
from jobs.ingest import reference as reference_ingest
from jobs.platform.identifiers import pseudonymize
from jobs.generator.day import generate_day
from jobs.platform.objectstore import ensure_bucket, s3_client
from lake_layout.tables import AUDIT_LINEAGE, REFERENCE_SUBSCRIBER_CONSENT

DAY = date(2026, 11, 20)
MSISDN = "+4915112345678"
GOOD = {
    "msisdn": MSISDN, "account_id": "acct-0001", "department": "sales", "jurisdiction": "EU", "home_country": "DE",
    "subscriber_created_on": "2024-03-05", "account_created_on": "2021-01-10", "effective_from": "2024-03-05T00:00:00Z",
    "telemetry_level": "diagnostic", "diagnostics_opt_out": False,
}


def _line(**over: object) -> str:
    return json.dumps({k: v for k, v in {**GOOD, **over}.items() if v is not ...})


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=None)  # Spark hands back naive UTC (session time zone)


def test_parse_directory_lines_types_fields_and_names_every_rejection(spark) -> None:  # type: ignore[no-untyped-def]
    cases = [
        (_line(), None),
        (_line(department=None, account_id="consumer", account_created_on=...,
               effective_from="2026-11-20T13:14:15.678Z", telemetry_level="basic", diagnostics_opt_out=True), None),
        ("not json {", "malformed_json"),
        ("[1, 2]", "malformed_json"),
        (_line(msisdn=...), "missing_msisdn"),
        (_line(msisdn=None), "missing_msisdn"),
        (_line(jurisdiction=" "), "missing_jurisdiction"),
        (_line(msisdn="0151-1234"), "invalid_msisdn"),
        (_line(msisdn=4915112345678), "invalid_msisdn"),  # a number, not an E.164 string
        (_line(jurisdiction="Mars"), "invalid_jurisdiction"),
        (_line(telemetry_level="verbose"), "invalid_telemetry_level"),
        (_line(diagnostics_opt_out="maybe"), "invalid_diagnostics_opt_out"),
        (_line(subscriber_created_on="05.03.2024"), "invalid_subscriber_created_on"),
        (_line(account_created_on="2021-02-30"), "invalid_account_created_on"),
        (_line(effective_from="yesterday"), "invalid_effective_from"),
        (_line(effective_from="2024-03-05T00:00:00"), "invalid_effective_from"),  # no zone: ambiguous
    ]
    lines = spark.createDataFrame([(i, text) for i, (text, _) in enumerate(cases)], "n int, value string")
    out = reference_ingest.parse_directory_lines(lines.orderBy("n").coalesce(1)).collect()
    assert [r.reject_reason for r in out] == [reason for _, reason in cases]

    first, second = out[0], out[1]
    assert (first.msisdn, first.subscriber_created_on, first.account_created_on, first.effective_from) == \
           (MSISDN, date(2024, 3, 5), date(2021, 1, 10), datetime(2024, 3, 5))
    assert (first.telemetry_level, first.diagnostics_opt_out, first.department) == ("diagnostic", False, "sales")
    # a consumer's account is their subscription; the change keeps its milliseconds
    assert (second.account_created_on, second.effective_from, second.diagnostics_opt_out, second.department) == \
           (date(2024, 3, 5), _utc("2026-11-20T13:14:15.678"), True, None)


def test_pseudonyms_match_bronze_and_the_msisdn_is_dropped(spark, keys) -> None:  # type: ignore[no-untyped-def]
    lines = spark.createDataFrame([(_line(),), (_line(msisdn="0151-1234"),)], "value string")
    out = reference_ingest.pseudonymize_subscribers(reference_ingest.parse_directory_lines(lines), keys=keys)
    assert "msisdn" not in out.columns
    rows = sorted(out.collect(), key=lambda r: r.reject_reason or "")
    assert rows[0].subscriber_pseudonym == pseudonymize("msisdn", MSISDN, keys.pseudonym.active_key)
    assert rows[1].reject_reason == "invalid_msisdn" and rows[1].subscriber_pseudonym is None


def test_consent_in_force_closes_each_state_at_the_next(spark) -> None:  # type: ignore[no-untyped-def]
    t = lambda text: datetime.fromisoformat(text)
    consent = spark.createDataFrame(
        [("a", t("2024-01-01 00:00:00"), "diagnostic", False), ("a", t("2026-11-20 12:00:00"), "basic", False),
         ("a", t("2026-11-20 18:30:00.250"), "basic", True), ("b", t("2025-06-01 00:00:00"), "basic", False)],
        "subscriber_pseudonym string, effective_from timestamp, telemetry_level string, diagnostics_opt_out boolean",
    )
    expected = spark.createDataFrame(
        [("a", t("2024-01-01 00:00:00"), "diagnostic", False, t("2026-11-20 12:00:00")),
         ("a", t("2026-11-20 12:00:00"), "basic", False, t("2026-11-20 18:30:00.250")),
         ("a", t("2026-11-20 18:30:00.250"), "basic", True, None),
         ("b", t("2025-06-01 00:00:00"), "basic", False, None)],
        "subscriber_pseudonym string, effective_from timestamp, telemetry_level string, diagnostics_opt_out boolean, "
        "effective_to timestamp",
    )
    newest_first = consent.orderBy(F.col("effective_from").desc())  # input order must not matter
    assertDataFrameEqual(reference_ingest.consent_in_force(newest_first), expected)


def test_directory_export_is_pseudonymized_accounted_and_idempotent(  # type: ignore[no-untyped-def]
    spark, settings, keys, object_store, tmp_path
) -> None:
    local = settings.with_lake_root(str(tmp_path / "lake"))
    day = generate_day(DAY, events=2000, seed=3, keys=keys, prefix=local.landing.prefix)
    assert day.consent_changes
    malformed = (
        b'not json\n'
        + _line(msisdn=...).encode() + b"\n"
        + _line(msisdn="0151-1234").encode() + b"\n"
        + b"\n"  # blank lines are not records
    )
    client = s3_client(object_store)
    ensure_bucket(client, local.landing.bucket)
    client.put_object(Bucket=local.landing.bucket, Key=day.directory_key,
                      Body=gzip.compress(gzip.decompress(day.directory_body) + malformed, mtime=0))

    report = reference_ingest.run(spark, local, keys, export_date=DAY)
    n_states = len(day.population.subscribers) + len(day.consent_changes)
    assert report.object_key == day.directory_key
    assert (report.records_read, report.records_accepted, report.records_rejected) == (n_states + 3, n_states, 3)
    assert report.rejected_by_reason == {"malformed_json": 1, "missing_msisdn": 1, "invalid_msisdn": 1}
    assert report.records_written == n_states

    table = lake.read_table(spark, REFERENCE_SUBSCRIBER_CONSENT, local)
    rows = table.collect()
    assert len(rows) == n_states
    assert {r.pseudonym_key_id for r in rows} == {keys.pseudonym.active}
    assert {r.source_object_key for r in rows} == {day.directory_key}
    by_subscriber = {pseudonymize("msisdn", s.msisdn, keys.pseudonym.active_key): s for s in day.population.subscribers}
    assert {r.subscriber_pseudonym for r in rows} == set(by_subscriber)
    for r in rows:
        s = by_subscriber[r.subscriber_pseudonym]
        assert (r.account_id, r.jurisdiction, r.home_country, r.subscriber_created_on) == \
               (s.account_id, s.jurisdiction, s.home_country, s.created_on)
        assert r.account_created_on <= r.subscriber_created_on

    # No raw MSISDN (nor its digits) in any string column of any row.
    raw = {s.msisdn for s in day.population.subscribers} | {MSISDN}
    string_columns = [f.name for f in table.schema.fields if f.dataType.simpleString() == "string"]
    for r in rows:
        for name in string_columns:
            value = r[name] or ""
            assert not any(m in value or m[1:] in value for m in raw), f"{name} holds a raw MSISDN"

    # The consent change is the subscriber's second state, in force from its time on.
    change = day.consent_changes[0]
    sub = pseudonymize("msisdn", change.msisdn, keys.pseudonym.active_key)
    states = sorted((r for r in rows if r.subscriber_pseudonym == sub), key=lambda r: r.effective_from)
    assert len(states) == 2
    changed_at = datetime.fromtimestamp(change.effective_from_ms / 1000, UTC).replace(tzinfo=None)
    assert states[1].effective_from == changed_at
    assert (states[1].telemetry_level, states[1].diagnostics_opt_out) == \
           (change.telemetry_level, change.diagnostics_opt_out)
    in_force = {r.effective_from: r.effective_to
                for r in reference_ingest.consent_in_force(table).where(f"subscriber_pseudonym = '{sub}'").collect()}
    assert in_force == {states[0].effective_from: changed_at, changed_at: None}

    lineage = lake.read_table(spark, AUDIT_LINEAGE, local).where("job = 'reference_ingest'").collect()
    assert len(lineage) == 1 and json.loads(lineage[0].metrics_json)["records_rejected"] == 3

    # A rerun reads the same export and writes nothing.
    version = lake.table_version(spark, REFERENCE_SUBSCRIBER_CONSENT, local)
    again = reference_ingest.run(spark, local, keys, export_date=DAY)
    assert (again.records_read, again.records_written, again.table_version) == (n_states + 3, 0, version)
    assert lake.read_table(spark, REFERENCE_SUBSCRIBER_CONSENT, local).count() == n_states

    # No export for a date: nothing to do, and the report says so.
    missing = reference_ingest.run(spark, local, keys, export_date=date(2026, 11, 21))
    assert (missing.object_key, missing.records_read, missing.records_written) == (None, 0, 0)
    assert missing.table_version == version
