"""Subscriber directory export -> reference.subscriber_consent on the real object store."""

from __future__ import annotations

import gzip
from dataclasses import replace
from datetime import date, datetime, timezone

from jobs import lake, reference_ingest
from jobs.bronze_ingest import pseudonymize
from jobs.generate_telemetry import generate_day
from jobs.objectstore import ensure_bucket, s3_client
from lake_layout.tables import REFERENCE_SUBSCRIBER_CONSENT

DAY = date(2026, 11, 20)


def test_directory_export_is_pseudonymized_accounted_and_idempotent(spark, settings, keys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    local = settings.with_lake_root(str(tmp_path / "lake"))
    day = generate_day(DAY, events=2000, seed=3, keys=keys, prefix=local.landing.prefix)
    assert day.consent_changes
    body = gzip.decompress(day.directory_body) + b'{"msisdn": "12345", "account_id": "consumer"}\nnot json\n'
    client = s3_client(local.object_store)
    ensure_bucket(client, local.landing.bucket)
    client.put_object(Bucket=local.landing.bucket, Key=day.directory_key, Body=gzip.compress(body))

    report = reference_ingest.run(spark, local, keys, export_date=DAY)
    n_states = len(day.population.subscribers) + len(day.consent_changes)
    assert (report.records_accepted, report.records_rejected, report.records_read) == (n_states, 2, n_states + 2)
    assert report.rejected_by_reason == {"malformed_json": 1, "missing_jurisdiction": 1}
    table = lake.read_table(spark, REFERENCE_SUBSCRIBER_CONSENT, local)
    rows = table.collect()
    assert len(rows) == n_states == report.records_new
    raw = {s.msisdn for s in day.population.subscribers}
    assert not any(isinstance(v, str) and v in raw for r in rows for v in r.asDict().values())

    # the change is a second state, in force from its time on
    change = day.consent_changes[0]
    sub = pseudonymize("msisdn", change.msisdn, keys.pseudonym.active_key)
    states = sorted((r for r in rows if r.subscriber_pseudonym == sub), key=lambda r: r.effective_from)
    assert len(states) == 2
    assert states[1].effective_from.replace(tzinfo=timezone.utc) == datetime.fromtimestamp(change.effective_from_ms / 1000, timezone.utc)
    assert states[1].diagnostics_opt_out == change.diagnostics_opt_out
    in_force = {r.effective_from: r.effective_to for r in reference_ingest.consent_in_force(table).where(f"subscriber_pseudonym = '{sub}'").collect()}
    assert in_force[states[0].effective_from] == states[1].effective_from and in_force[states[1].effective_from] is None

    version = lake.table_version(spark, REFERENCE_SUBSCRIBER_CONSENT, local)
    again = reference_ingest.run(spark, local, keys, export_date=DAY)
    assert again.records_new == 0 and lake.table_version(spark, REFERENCE_SUBSCRIBER_CONSENT, local) == version

    missing = reference_ingest.run(spark, local, keys, export_date=date(2026, 11, 21))
    assert missing.object_key is None and missing.records_read == 0
