"""Quotas and support triggers: month-to-date usage against account / subscriber quotas, quality triggers with the
minimum-calls guard, once-per-period firing across reruns and later days, and delivery through the file sink
and a webhook sink against a real HTTP receiver on a loopback port (503s retried, 4xx not)."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from jobs.business import support_triggers as st
from jobs.business.support_sinks import IDEMPOTENCY_HEADER, WebhookSink, event_json
from lake_layout.config import PROJECT_ROOT, QuotaSettings, SettingsError, load_settings
from lake_layout.tables import AUDIT_LINEAGE, GOLD_SUPPORT_TRIGGERS, SILVER_CALLS

NOV = [date(2026, 11, d) for d in range(1, 31)]


def quotas(**changes: Any) -> QuotaSettings:
    base = QuotaSettings(
        period="month", account_minutes=1000, subscriber_minutes=50, thresholds_percent=(100, 80),
        max_failure_rate=Decimal("0.2"), max_short_call_ratio=Decimal("0.3"), short_call_seconds=10, min_calls=10,
        sink="file", file_path="/nonexistent/triggers.jsonl", webhook_url="", webhook_timeout_seconds=Decimal("2"),
        webhook_max_retries=3, webhook_backoff_seconds=Decimal("0.01"), accounts=(("acct-0001", 100),),
    )
    return replace(base, **changes)


_ids = iter(range(10**6))


def call(day: date, account: str | None, subscriber: str, *, seconds: float, status: str = "completed") -> dict[str, Any]:
    n = next(_ids)
    start = datetime(day.year, day.month, day.day, 9, tzinfo=timezone.utc) + timedelta(seconds=n)
    end = start + timedelta(seconds=seconds)
    row: dict[str, Any] = {c: None for c in SILVER_CALLS.column_names}
    row.update(
        call_id=f"c{n}", call_date=day, status=status, started_at=start, ended_at=end,
        duration_ms=int(seconds * 1000) if status == "completed" else 0, subscriber_pseudonym=subscriber,
        device_pseudonym="d" * 32, pseudonym_key_id="psn-1", platform="android", schema_version=2, country_code="DE",
        account_id=account, telemetry_level="basic", clock_offset_ms=0, event_count=2, duplicate_events=0,
        first_received_at=end, last_received_at=end, record_hash="h", silver_run_id="r",
    )
    return row


def minutes(day: date, account: str | None, subscriber: str, m: float) -> dict[str, Any]:
    return call(day, account, subscriber, seconds=m * 60)


def silver(spark, rows):  # type: ignore[no-untyped-def]
    return spark.createDataFrame(rows, SILVER_CALLS.spark_schema())


# ----------------------------------------------------------------------------- configuration

def test_quota_settings_load_from_toml_with_overrides_and_env(tmp_path: Path) -> None:
    settings = load_settings(env={})
    assert settings.quotas.thresholds_percent == (80, 100) and settings.quotas.sink == "file"
    assert settings.quotas.account_quota("acct-0001") == 5000  # [quotas.accounts."acct-0001"]
    assert settings.quotas.account_quota("acct-0999") == settings.quotas.account_minutes
    env = load_settings(env={"VOIPLAKE_QUOTAS_THRESHOLDS_PERCENT": "100, 50",
                             "VOIPLAKE_QUOTAS_ACCOUNTS": "acct-0002:7, acct-0003:0"}).quotas
    assert env.thresholds_percent == (50, 100) and env.accounts == (("acct-0002", 7), ("acct-0003", 0))
    text = (PROJECT_ROOT / "infra" / "voiplake.toml").read_text()
    bad = tmp_path / "bad.toml"
    override = '[quotas.accounts."acct-0001"]\nminutes = 5000'
    assert text.count(override) == 1
    bad.write_text(text.replace(override, override + "\nhours = 3"))
    with pytest.raises(SettingsError, match=r'quotas.accounts.acct-0001: expected a table with exactly one key'):
        load_settings(bad, env={})
    with pytest.raises(SettingsError, match="quotas.thresholds_percent: expected"):
        load_settings(env={"VOIPLAKE_QUOTAS_THRESHOLDS_PERCENT": "eighty"})
    with pytest.raises(SettingsError, match="quotas.sink = 'webhook' needs quotas.webhook_url"):
        load_settings(env={"VOIPLAKE_QUOTAS_SINK": "webhook"})
    with pytest.raises(SettingsError, match="quotas.max_failure_rate must be a decimal in"):
        load_settings(env={"VOIPLAKE_QUOTAS_MAX_FAILURE_RATE": "1.5"})
    # no sub-tables at all: no overrides (and nothing else about loading changes)
    plain = tmp_path / "plain.toml"
    plain.write_text(text.replace(override, ""))
    assert load_settings(plain, env={}).quotas.accounts == ()


# ----------------------------------------------------------------------------- transforms

def test_quota_triggers_per_account_with_override_and_per_subscriber(spark) -> None:  # type: ignore[no-untyped-def]
    d1, d2, d3 = NOV[1], NOV[2], NOV[3]
    rows = [
        # acct-0001 (override 100 min): 80 min by the end of d2 -> exactly 80 %, not 100 %
        minutes(d1, "acct-0001", "sa", 40), minutes(d2, "acct-0001", "sb", 40),
        minutes(d3, "acct-0001", "sb", 500),  # after the evaluated day: not counted
        minutes(date(2026, 10, 31), "acct-0001", "sa", 900),  # previous period: not counted
        call(d2, "acct-0001", "sa", seconds=0, status="failed"),
        call(d2, "acct-0001", "sa", seconds=0, status="open"),
        # acct-0002 (default 1000 min): 10 % of the account, but subscriber sc at 100 / 50 min = 200 %
        minutes(d1, "acct-0002", "sc", 60), minutes(d2, "acct-0002", "sc", 40),
        # subscriber sd: 39.99 min of 50 = 79.98 % -> nothing (exact comparison in milliseconds)
        call(d2, "acct-0002", "sd", seconds=39.99 * 60),
        # consumers and calls without an account are no B2B account: no quota at all
        minutes(d2, "consumer", "se", 5000), minutes(d2, None, "sf", 5000),
    ]
    usage = st.month_to_date_usage(silver(spark, rows), evaluated=d2)
    fired = st.quota_triggers(usage, quotas=quotas(), evaluated=d2).collect()
    got = {(r["scope"], r["account_id"], r["subscriber_pseudonym"], r["threshold"]): r.asDict() for r in fired}
    assert set(got) == {
        ("account", "acct-0001", None, "80"),
        ("subscriber", "acct-0001", "sa", "80"), ("subscriber", "acct-0001", "sb", "80"),  # 40 of 50 min each
        ("subscriber", "acct-0002", "sc", "80"), ("subscriber", "acct-0002", "sc", "100"),
    }
    account = got[("account", "acct-0001", None, "80")]
    assert (account["quota_minutes"], account["usage_ms"], account["calls"]) == (100, 80 * 60_000, 2)
    assert (account["numerator"], account["denominator"], account["observed"]) == (80 * 60_000, 100 * 60_000, 80.0)
    assert account["period"] == "2026-11" and account["call_date"] == d2 and account["kind"] == "quota_threshold"
    assert got[("subscriber", "acct-0002", "sc", "100")]["observed"] == 200.0
    # a quota of 0 (override or default) never fires
    none = quotas(accounts=(("acct-0001", 0),), subscriber_minutes=0)
    assert st.quota_triggers(usage, quotas=none, evaluated=d2).count() == 0


def test_quality_triggers_exact_ratios_and_minimum_calls(spark) -> None:  # type: ignore[no-untyped-def]
    day = NOV[5]
    long_call = lambda acct, n: [call(day, acct, f"s{acct}{i}", seconds=300) for i in range(n)]  # noqa: E731
    failed = lambda acct, n: [call(day, acct, f"f{acct}{i}", seconds=0, status="failed") for i in range(n)]  # noqa: E731
    rows = [
        *long_call("acct-q1", 8), *failed("acct-q1", 2),  # 2 / 10 = 0.2 exactly: not above the maximum
        *long_call("acct-q2", 8), *failed("acct-q2", 3),  # 3 / 11 > 0.2 over 11 calls: fires
        *long_call("acct-q3", 3), *failed("acct-q3", 6),  # 6 / 9 but only 9 calls < min_calls 10: guarded
        *[call(day, "acct-q3", "x", seconds=0, status=s) for s in ("open", "incomplete", "orphan_end")],  # not counted
        # acct-q4: 10 completed, 4 shorter than 10 s (one exactly 10 s is not short): 4 / 10 > 0.3 fires
        *[call(day, "acct-q4", "y", seconds=5) for _ in range(4)], call(day, "acct-q4", "y", seconds=10),
        *long_call("acct-q4", 5),
        # acct-q5: 3 short of 10 completed = 0.3 exactly: not above
        *[call(day, "acct-q5", "z", seconds=9.999) for _ in range(3)], *long_call("acct-q5", 7),
        # acct-q6: all 9 completed calls short, but fewer than min_calls completed
        *[call(day, "acct-q6", "w", seconds=1) for _ in range(9)], *failed("acct-q6", 1),
        # consumers are not evaluated; another day does not count
        *failed("consumer", 50), *[call(NOV[6], "acct-q1", "v", seconds=0, status="failed") for _ in range(20)],
    ]
    q = quotas()
    quality = st.daily_quality(silver(spark, rows), evaluated=day, short_call_seconds=q.short_call_seconds)
    fired = {(r["kind"], r["account_id"]): r.asDict() for r in st.quality_triggers(quality, quotas=q, evaluated=day).collect()}
    assert set(fired) == {("failure_rate", "acct-q2"), ("short_call_ratio", "acct-q4")}
    failure = fired[("failure_rate", "acct-q2")]
    assert (failure["numerator"], failure["denominator"], failure["calls"], failure["threshold"]) == (3, 11, 11, "0.2")
    assert failure["observed"] == pytest.approx(3 / 11) and failure["subscriber_pseudonym"] is None
    short = fired[("short_call_ratio", "acct-q4")]
    assert (short["numerator"], short["denominator"], short["threshold"], short["period"]) == (4, 10, "0.3", "2026-11")
    # with a lower minimum the guarded accounts fire too
    low = quotas(min_calls=9)
    fired_low = {(r["kind"], r["account_id"]) for r in st.quality_triggers(quality, quotas=low, evaluated=day).collect()}
    assert {("failure_rate", "acct-q3"), ("short_call_ratio", "acct-q6")} <= fired_low


def test_trigger_ids_are_the_event_identity(spark) -> None:  # type: ignore[no-untyped-def]
    rows = [minutes(NOV[1], "acct-0001", "sa", 85), minutes(NOV[2], "acct-0001", "sa", 20)]
    df = silver(spark, rows)
    q = quotas(subscriber_minutes=0)
    both = st.support_triggers(df, quotas=q, evaluated=[NOV[1], NOV[2]]).collect()
    by_threshold = {r["threshold"]: r for r in both}
    # the 80 % event seen on both days is one event, first detected on day 1; 100 % is a different event
    assert len(both) == 2 and by_threshold["80"]["call_date"] == NOV[1] and by_threshold["100"]["call_date"] == NOV[2]
    for threshold, row in by_threshold.items():  # the id is the identity's hash: the same on every run and day
        identity = f"quota_threshold|account|acct-0001||2026-11|{threshold}"
        assert row["trigger_id"] == hashlib.sha256(identity.encode()).hexdigest()


# ----------------------------------------------------------------------------- sinks (no Spark)

class Receiver:
    """A real HTTP receiver on 127.0.0.1:<free port>: answers the first `fail_first` POSTs with 503 (or every POST
    with `status` if set), then accepts; keeps accepted events by Idempotency-Key (a second copy is a duplicate)."""

    def __init__(self) -> None:
        self.fail_first = 0
        self.status: int | None = None
        self.requests: list[tuple[str, int]] = []  # (idempotency key, status answered)
        self.accepted: dict[str, dict[str, Any]] = {}
        self.duplicates = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                key = self.headers[IDEMPOTENCY_HEADER]
                if receiver.status is not None:
                    code = receiver.status
                elif len(receiver.requests) < receiver.fail_first:
                    code = 503
                else:
                    code = 200
                    if key in receiver.accepted:
                        receiver.duplicates += 1
                    else:
                        receiver.accepted[key] = json.loads(body)
                receiver.requests.append((key, code))
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/support/events"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def reset(self, *, fail_first: int = 0, status: int | None = None) -> None:
        self.fail_first, self.status, self.requests, self.accepted, self.duplicates = fail_first, status, [], {}, 0


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_webhook_retries_5xx_with_exponential_backoff_and_not_4xx(receiver: Receiver) -> None:
    waits: list[float] = []
    sink = WebhookSink(receiver.url, timeout_seconds=2, max_retries=3, backoff_seconds=0.25, sleep=waits.append)
    event = {"trigger_id": "t-1", "kind": "quota_threshold", "call_date": date(2026, 11, 2)}
    receiver.reset(fail_first=2)
    result = sink.deliver(event)
    assert (result.delivered, result.attempts, result.error) == (True, 3, None)
    assert waits == [0.25, 0.5] and receiver.requests == [("t-1", 503), ("t-1", 503), ("t-1", 200)]
    assert receiver.accepted == {"t-1": {"trigger_id": "t-1", "kind": "quota_threshold", "call_date": "2026-11-02"}}
    receiver.reset(fail_first=10)
    gave_up = sink.deliver(event)
    assert (gave_up.delivered, gave_up.attempts, gave_up.transient) == (False, 4, True) and "HTTP 503" in (gave_up.error or "")
    receiver.reset(status=422)
    refused = sink.deliver(event)
    assert (refused.delivered, refused.attempts, refused.transient) == (False, 1, False) and refused.error.startswith("HTTP 422")
    assert len(receiver.requests) == 1


def test_delivery_stops_after_a_transient_failure_and_goes_on_after_a_refusal(receiver: Receiver) -> None:
    detected = datetime(2026, 11, 2, 9, tzinfo=timezone.utc)
    rows = [{**dict.fromkeys(GOLD_SUPPORT_TRIGGERS.column_names), "trigger_id": f"t{i}", "detected_at": detected, "attempts": 0}
            for i in range(3)]
    sink = WebhookSink(receiver.url, max_retries=1, backoff_seconds=0)
    receiver.reset(status=503)  # receiver down: the first event uses its retries, the others wait for the next run
    out, delivered, failed = st.deliver_events(rows, sink)
    assert (delivered, failed, [r["attempts"] for r in out], len(receiver.requests)) == (0, 1, [2, 0, 0], 2)
    assert out[0]["last_error"].startswith("HTTP 503") and out[1]["last_attempt_at"] is None
    receiver.reset(status=404)  # each event refused once, none stops the others
    out, delivered, failed = st.deliver_events(out, sink)
    assert (delivered, failed, [r["attempts"] for r in out], len(receiver.requests)) == (0, 3, [3, 1, 1], 3)
    receiver.reset()
    out, delivered, failed = st.deliver_events(out, sink)
    assert (delivered, failed) == (3, 0) and all(r["delivered_at"] and r["last_error"] is None for r in out)
    assert receiver.accepted["t1"]["detected_at"] == "2026-11-02T09:00:00+00:00"
    assert st.deliver_events(out, sink)[1:] == (0, 0)  # delivered rows are not sent again


def test_webhook_retries_connection_errors(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    waits: list[float] = []
    result = WebhookSink(f"http://127.0.0.1:{port}/", max_retries=2, backoff_seconds=1, sleep=waits.append).deliver({"trigger_id": "x"})
    assert (result.delivered, result.attempts, result.transient, waits) == (False, 3, True, [1, 2])
    assert "ConnectError" in (result.error or "")


# ----------------------------------------------------------------------------- the job on a lake

@pytest.fixture(scope="module")
def lake(spark, settings, tmp_path_factory):  # type: ignore[no-untyped-def]
    """A lake with November calls: acct-0001 (quota 100 min) at 85 min on Nov 2, 95 on Nov 3, 105 on Nov 4;
    its subscriber sa at 50 of 60 min on Nov 2 (sb: 45 by Nov 3); on Nov 3 acct-0002 fails 5 of 12 calls,
    acct-0003 has 6 of 10 completed calls shorter than 10 s. File sink (the default) in a temp dir."""
    from jobs.platform import lake as lake_io

    tmp = tmp_path_factory.mktemp("support")
    q = quotas(subscriber_minutes=60, file_path=str(tmp / "support" / "triggers.jsonl"))
    s = replace(settings.with_lake_root(str(tmp / "lake")), quotas=q)
    d2, d3, d4 = NOV[1], NOV[2], NOV[3]
    rows = [
        minutes(d2, "acct-0001", "sa", 50), minutes(d2, "acct-0001", "sb", 35),
        minutes(d3, "acct-0001", "sb", 10), minutes(d4, "acct-0001", "sc", 10),
        *[minutes(d3, "acct-0002", f"q{i}", 3) for i in range(7)],
        *[call(d3, "acct-0002", "q", seconds=0, status="failed") for _ in range(5)],
        *[call(d3, "acct-0003", "r", seconds=4) for _ in range(6)], *[minutes(d3, "acct-0003", "r", 2) for _ in range(4)],
    ]
    lake_io.replace_partitions(spark, silver(spark, rows), SILVER_CALLS, s, where="true")
    return s


def _table(spark, s) -> dict[tuple[str, str | None, str], dict[str, Any]]:  # type: ignore[no-untyped-def]
    from jobs.platform import lake as lake_io

    return {(r["kind"], r["subscriber_pseudonym"], r["threshold"]): r.asDict()
            for r in lake_io.read_table(spark, GOLD_SUPPORT_TRIGGERS, s).collect()}


def test_triggers_fire_once_per_period_and_are_delivered(spark, lake, receiver: Receiver, capsys) -> None:  # type: ignore[no-untyped-def]
    from pyspark.sql import functions as F

    from jobs.platform import lake as lake_io
    from jobs.cli.business import support_triggers_command

    d2, d3, d4 = NOV[1], NOV[2], NOV[3]
    webhook = WebhookSink(receiver.url, timeout_seconds=2, max_retries=3, backoff_seconds=0.01)

    # Nov 2: the account's 80 % (85 of 100 min) and subscriber sa's 80 % (50 of 60 min); nothing of later days.
    # The receiver refuses them (400): one attempt each, no retry, the error recorded, both left undelivered.
    receiver.reset(status=400)
    first = st.run(spark, st.SupportTriggersContext(settings=lake, evaluated_dates=(d2,), sink=webhook, run_id="st-1"))
    assert (first.new_triggers, first.new_by_kind, first.delivered, first.failed, first.undelivered) == (
        2, {"quota_threshold": 2}, 0, 2, 2)
    assert len(receiver.requests) == 2
    table = _table(spark, lake)
    assert set(table) == {("quota_threshold", None, "80"), ("quota_threshold", "sa", "80")}
    account = table[("quota_threshold", None, "80")]
    assert (account["usage_ms"], account["quota_minutes"], account["call_date"], account["run_id"]) == (85 * 60_000, 100, d2, "st-1")
    assert (account["attempts"], account["delivered_at"], account["sink"]) == (1, None, f"webhook:{receiver.url}")
    assert account["last_error"].startswith("HTTP 400")

    # Rerun of Nov 2 together with Nov 3 (the next day), the receiver failing its first 2 POSTs with 503: the 80 %
    # events are not fired again (the account is at 95 % on Nov 3), Nov 3's quality events are new; the two
    # undelivered events and the two new ones each reach the receiver exactly once, with the table's content.
    receiver.reset(fail_first=2)
    second = st.run(spark, st.SupportTriggersContext(settings=lake, evaluated_dates=(d2, d3), sink=webhook, run_id="st-2"))
    assert second.new_by_kind == {"failure_rate": 1, "short_call_ratio": 1}
    assert (second.delivered, second.failed, second.undelivered) == (4, 0, 0)
    table = _table(spark, lake)
    assert len(table) == 4 and all(r["delivered_at"] is not None and r["last_error"] is None for r in table.values())
    assert receiver.duplicates == 0 and set(receiver.accepted) == {r["trigger_id"] for r in table.values()}
    for row in table.values():
        assert receiver.accepted[row["trigger_id"]] == json.loads(event_json(st.event_of(row)))
    assert [code for _, code in receiver.requests] == [503, 503, 200, 200, 200, 200]
    # attempts add up over runs: the first pending event (oldest) took 2 retries on top of its refused attempt
    assert sorted(r["attempts"] for r in table.values()) == [1, 1, 2, 4]
    failure, short = table[("failure_rate", None, "0.2")], table[("short_call_ratio", None, "0.3")]
    assert (failure["account_id"], failure["numerator"], failure["denominator"], failure["call_date"]) == ("acct-0002", 5, 12, d3)
    assert (short["account_id"], short["numerator"], short["denominator"], short["run_id"]) == ("acct-0003", 6, 10, "st-2")
    assert table[("quota_threshold", None, "80")]["run_id"] == "st-1"  # detected once, by the first run

    # Nov 4 from the command line: 105 % fires the 100 % event (its own event in the same period), delivered by
    # the default file sink
    capsys.readouterr()
    assert support_triggers_command(lake, d4) == 0
    out = Path(lake.quotas.file_path)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"support triggers for {d4}: 1 new (quota_threshold 1); delivered 1, failed 0, undelivered 0 via file:{out}"
    assert printed[1].split() == ["acct-0001", "quota_threshold", "account", "threshold", "100", "observed", "105"]
    hundred = _table(spark, lake)[("quota_threshold", None, "100")]
    assert (hundred["usage_ms"], hundred["observed"], hundred["attempts"]) == (105 * 60_000, 105.0, 1)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == [json.loads(event_json(st.event_of(hundred)))]  # one JSON line: only the undelivered event

    lineage = lake_io.read_table(spark, AUDIT_LINEAGE, lake).where(F.col("job") == "support_triggers")
    rows = {r["run_id"]: r for r in lineage.collect()}
    assert sorted(r["rows_out"] for r in rows.values()) == [1, 2, 2] and {"st-1", "st-2"} < set(rows)
    third = next(r for k, r in rows.items() if k not in ("st-1", "st-2"))
    assert "gold.support_triggers" in third["outputs_json"] and "silver.calls" in third["inputs_json"]
