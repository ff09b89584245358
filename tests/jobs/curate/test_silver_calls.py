"""Silver transforms on hand-built bronze events: clock correction, dedupe, impossible times,
network normalization, sessionization, consent by event time, completeness."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from jobs.curate import silver_calls as sc
from lake_layout.reporting_units import SIGNAL_SCALES
from lake_layout.tables import BRONZE_CALL_EVENTS, REFERENCE_SUBSCRIBER_CONSENT

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
SUB = "a" * 32


def event(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {c: None for c in BRONZE_CALL_EVENTS.column_names}
    row.update(
        event_id="e1", call_id="c1", event_type="call_start", event_ts_device=T0, event_date=T0.date(),
        platform="android", app_version="5.2.0", schema_version=2, subscriber_pseudonym=SUB,
        device_pseudonym="d" * 32, pseudonym_key_id="psn-1", account_id="consumer", batch_id="b1",
        sent_at_device=T0 + timedelta(minutes=10), received_at=T0 + timedelta(minutes=10), clock_offset_ms=0,
        object_key="uploads/x.pb.gz", record_index=0, ingest_run_id="r1", network_type="lte",
        signal_metric="lte_rsrp_dbm", signal_value=-100.0, country_code="DE", telemetry_level="diagnostic",
        diagnostics_opt_out=False,
    )
    row.update(overrides)
    return row


def bronze(spark, rows):  # type: ignore[no-untyped-def]
    return spark.createDataFrame(rows, BRONZE_CALL_EVENTS.spark_schema())


def pipeline(spark, rows, *, watermark=T0 + timedelta(hours=1), window=timedelta(hours=6)):  # type: ignore[no-untyped-def]
    df = bronze(spark, rows).transform(sc.correct_clock).transform(sc.deduplicate_events).transform(sc.normalize_network)
    return sc.sessionize_calls(df, incomplete_after=window, watermark=watermark)


def by_call(df) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {r["call_id"]: r for r in df.collect()}


def test_clock_correction_applies_the_batch_offset(spark) -> None:
    # A device clock a year ahead: the offset (server minus device) brings the event back to true time.
    year_ms = 365 * 24 * 3600 * 1000
    rows = [event(event_ts_device=T0 + timedelta(milliseconds=year_ms), clock_offset_ms=-year_ms)]
    out = bronze(spark, rows).transform(sc.correct_clock).first()
    assert out["event_ts"].replace(tzinfo=timezone.utc) == T0


def test_deduplicate_keeps_first_received_copy_and_counts_copies(spark) -> None:
    later = T0 + timedelta(minutes=20)
    rows = [
        event(object_key="uploads/retry.pb.gz", received_at=later),
        event(object_key="uploads/first.pb.gz"),
        event(event_id="e2", event_type="call_end", event_ts_device=T0 + timedelta(minutes=2), duration_ms=60_000, record_index=1),
    ]
    out = {r["event_id"]: r for r in bronze(spark, rows).transform(sc.deduplicate_events).collect()}
    assert set(out) == {"e1", "e2"}
    assert out["e1"]["object_key"] == "uploads/first.pb.gz" and out["e1"]["copies"] == 2
    assert out["e2"]["copies"] == 1


def test_impossible_times_get_reasons(spark) -> None:
    rows = [
        event(event_id="ok"),
        event(event_id="future", event_ts_device=T0 + timedelta(days=3)),
        event(event_id="just-inside", event_ts_device=T0 + timedelta(minutes=14)),  # receipt + 4 min
        event(event_id="ancient", event_ts_device=datetime(2015, 1, 1, tzinfo=timezone.utc), subscriber_pseudonym="b" * 32),
    ]
    accounts = spark.createDataFrame([("b" * 32, date(2020, 5, 1))], "subscriber_pseudonym string, account_created_on date")
    out = {
        r["event_id"]: r
        for r in sc.flag_impossible_times(
            bronze(spark, rows).transform(sc.correct_clock), accounts, future_tolerance=timedelta(minutes=5)
        ).collect()
    }
    assert out["ok"]["reject_reason"] is None and out["just-inside"]["reject_reason"] is None
    assert out["future"]["reject_reason"] == "future_timestamp"
    assert "after receipt" in out["future"]["reject_detail"]
    assert out["ancient"]["reject_reason"] == "before_account_creation"
    assert "2020-05-01" in out["ancient"]["reject_detail"]


@pytest.mark.parametrize(
    ("network", "metric", "value", "cls", "dbm", "quality"),
    [
        ("lte", "lte_rsrp_dbm", -84.0, "cellular_4g", -84.0, 4),
        ("lte", "lte_rsrp_dbm", -116.0, "cellular_4g", -116.0, 0),
        ("5g", "nr_rsrp_dbm", -90.0, "cellular_5g", -90.0, 2),
        ("wifi", "wifi_rssi_dbm", -60.0, "wifi", -60.0, 3),
        ("2g", "gsm_rssi_asu", 14.0, "cellular_legacy", -85.0, 4),
        ("2g", "gsm_rssi_asu", 2.0, "cellular_legacy", -109.0, 0),
        ("3g", "umts_rscp_dbm", -100.0, "cellular_legacy", -100.0, 2),
        ("ethernet", None, None, "wired", None, None),
        ("lte", "lte_rsrp_dbm", 20.0, "cellular_4g", None, None),  # outside the physical range: discarded
    ],
)
def test_normalize_network(spark, network, metric, value, cls, dbm, quality) -> None:  # type: ignore[no-untyped-def]
    out = bronze(spark, [event(network_type=network, signal_metric=metric, signal_value=value)]).transform(sc.normalize_network).first()
    assert (out["network_class"], out["signal_dbm"], out["signal_quality"]) == (cls, dbm, quality)
    if dbm is not None:
        assert SIGNAL_SCALES[metric].quality(dbm) == quality


def test_sessionize_statuses(spark) -> None:
    rows = [
        event(call_id="done", event_id="d1"),
        event(call_id="done", event_id="d2", event_type="call_end", event_ts_device=T0 + timedelta(minutes=3),
              duration_ms=150_000, bytes_sent=1000, bytes_received=2000, mos=4.1, jitter_ms=12, record_index=1),
        event(call_id="fail", event_id="f1"),
        event(call_id="fail", event_id="f2", event_type="call_failure", failure_reason="busy", record_index=1),
        event(call_id="stale", event_id="s1", event_ts_device=T0 - timedelta(hours=7)),
        event(call_id="fresh", event_id="o1", event_ts_device=T0 - timedelta(hours=1)),
        event(call_id="orphan", event_id="x1", event_type="call_end", duration_ms=1000),
        # a repeated terminal event with another id (client bug): the earliest wins, the other counts as duplicate
        event(call_id="done", event_id="d3", event_type="call_end", event_ts_device=T0 + timedelta(minutes=4),
              duration_ms=999, record_index=2),
    ]
    calls = by_call(pipeline(spark, rows, watermark=T0 + timedelta(minutes=30)))
    assert {c: r["status"] for c, r in calls.items()} == {
        "done": "completed", "fail": "failed", "stale": "incomplete", "fresh": "open", "orphan": "orphan_end",
    }
    done = calls["done"]
    assert done["duration_ms"] == 150_000 and done["event_count"] == 2 and done["duplicate_events"] == 1
    assert done["ended_at"].replace(tzinfo=timezone.utc) == T0 + timedelta(minutes=3)
    assert (done["bytes_sent"], done["bytes_received"], done["mos"]) == (1000, 2000, 4.1)
    assert calls["fail"]["duration_ms"] == 0 and calls["fail"]["failure_reason"] == "busy"
    assert calls["orphan"]["started_at"] is None and calls["orphan"]["call_date"] == T0.date()
    assert calls["stale"]["call_date"] == (T0 - timedelta(hours=7)).date()


def test_incomplete_window_boundary(spark) -> None:
    rows = [event(call_id="c", event_ts_device=T0)]
    assert pipeline(spark, rows, watermark=T0 + timedelta(hours=6), window=timedelta(hours=6)).first()["status"] == "incomplete"
    assert pipeline(spark, rows, watermark=T0 + timedelta(hours=6) - timedelta(seconds=1), window=timedelta(hours=6)).first()["status"] == "open"


def test_late_end_joins_its_start_and_retry_copies_count_as_duplicates(spark) -> None:
    rows = [
        event(event_id="s"),
        event(event_id="s", object_key="uploads/retry.pb.gz", received_at=T0 + timedelta(minutes=11)),
        event(event_id="e", event_type="call_end", event_ts_device=T0 + timedelta(minutes=1), duration_ms=50_000,
              received_at=T0 + timedelta(days=2), object_key="uploads/late.pb.gz"),
    ]
    call = pipeline(spark, rows, watermark=T0 + timedelta(days=2)).first()
    assert call["status"] == "completed" and call["duplicate_events"] == 1 and call["event_count"] == 2
    assert call["call_date"] == T0.date()
    assert call["last_received_at"].replace(tzinfo=timezone.utc) == T0 + timedelta(days=2)


def consent_rows(spark, rows):  # type: ignore[no-untyped-def]
    full = []
    for sub, effective_from, level, opt_out in rows:
        full.append({
            "subscriber_pseudonym": sub, "pseudonym_key_id": "psn-1", "account_id": "consumer", "department": None,
            "jurisdiction": "EU", "home_country": "DE", "subscriber_created_on": date(2020, 1, 1),
            "account_created_on": date(2020, 1, 1), "effective_from": effective_from, "telemetry_level": level,
            "diagnostics_opt_out": opt_out, "source_object_key": "directory/x.jsonl.gz",
        })
    return spark.createDataFrame(full, REFERENCE_SUBSCRIBER_CONSENT.spark_schema())


def test_consent_is_honoured_by_event_time(spark) -> None:
    """Opt-out at 12:30: the 12:00 call keeps diagnostics, the 13:00 one loses them although the client still sent them."""
    b, c, d = "b" * 32, "c" * 32, "d" * 32

    def call(call_id: str, sub: str, at: datetime, **kw: Any) -> list[dict[str, Any]]:
        return [
            event(call_id=call_id, event_id=call_id + "s", subscriber_pseudonym=sub, event_ts_device=at, **kw),
            event(call_id=call_id, event_id=call_id + "e", subscriber_pseudonym=sub, event_type="call_end",
                  event_ts_device=at + timedelta(minutes=2), duration_ms=100_000, mos=4.0, jitter_ms=10, record_index=1, **kw),
        ]

    rows = (
        call("before", SUB, T0) + call("after", SUB, T0 + timedelta(hours=1))
        + call("basic", b, T0) + call("unknown-v1", c, T0, schema_version=1, telemetry_level=None, diagnostics_opt_out=None)
        + call("client-says", d, T0)
    )
    consent = consent_rows(spark, [
        (SUB, datetime(2020, 1, 1, tzinfo=timezone.utc), "diagnostic", False),
        (SUB, T0 + timedelta(minutes=30), "diagnostic", True),
        (b, datetime(2020, 1, 1, tzinfo=timezone.utc), "basic", False),
    ])
    calls = by_call(sc.apply_consent(pipeline(spark, rows), consent))
    assert (calls["before"]["telemetry_level"], calls["before"]["mos"], calls["before"]["jitter_ms"]) == ("diagnostic", 4.0, 10)
    assert (calls["after"]["telemetry_level"], calls["after"]["mos"], calls["after"]["jitter_ms"]) == ("opted_out", None, None)
    assert (calls["basic"]["telemetry_level"], calls["basic"]["mos"]) == ("basic", None)
    assert (calls["unknown-v1"]["telemetry_level"], calls["unknown-v1"]["mos"]) == ("unknown", None)
    # not in the directory: the client's own report (schema 2, diagnostic) stands
    assert (calls["client-says"]["telemetry_level"], calls["client-says"]["mos"]) == ("diagnostic", 4.0)


def test_silver_rows_hold_only_declared_columns_and_a_stable_hash(spark) -> None:
    from lake_layout.tables import SILVER_CALLS

    rows = [event(latitude=52.52, longitude=13.405)]
    consent = consent_rows(spark, [])
    calls = sc.apply_consent(pipeline(spark, rows), consent).transform(lambda df: sc.locate_cells(df, resolution=7))
    first = sc.to_silver_rows(calls, run_id="r1").first()
    second = sc.to_silver_rows(calls, run_id="r2").first()
    assert list(first.asDict()) == SILVER_CALLS.column_names
    assert first["h3_cell"] == "871f1d489ffffff"  # Berlin Mitte, resolution 7
    assert first["record_hash"] == second["record_hash"]  # the run id is not content


def test_platform_completeness(spark) -> None:
    rows = [
        event(call_id="a", event_id="a1"), event(call_id="a", event_id="a2", event_type="call_end", duration_ms=1, record_index=1),
        event(call_id="b", event_id="b1", event_ts_device=T0 - timedelta(hours=8)),
        event(call_id="c", event_id="c1", platform="ios", app_version=None, event_type="call_failure", failure_reason="busy"),
    ]
    out = {(r["platform"], r["app_version"]): r for r in sc.platform_completeness(pipeline(spark, rows)).collect()}
    android = out[("android", "5.2.0")]
    assert (android["calls"], android["completed"], android["incomplete"], android["events_expected"], android["events_seen"]) == (2, 1, 1, 4, 3)
    assert android["completeness"] == pytest.approx(0.75)
    ios = out[("ios", "unknown")]
    assert (ios["ends_without_start"], ios["events_seen"], ios["completeness"]) == (1, 1, 0.5)
