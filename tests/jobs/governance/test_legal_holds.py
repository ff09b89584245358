"""Legal holds: scope predicates per table, placed / released / lapsed holds from the chained log, held objects."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from typing import Any

import pytest

from jobs.platform import hashchain, lake
from jobs.governance import legal_holds
from jobs.platform.identifiers import pseudonymize
from jobs.cli.main import main as cli_main
from jobs.platform.keys import KeyMaterial
from jobs.governance.legal_holds import Hold, HoldError
from lake_layout.access import AccessDenied, require_hold_authority
from lake_layout.config import Settings
from lake_layout.registry import TableSpec
from lake_layout.tables import (
    AUDIT_LEGAL_HOLDS,
    BRONZE_CALL_EVENTS,
    BRONZE_INGESTED_OBJECTS,
    BRONZE_QUARANTINE,
    GOLD_HOURLY_GEO_USAGE,
    SILVER_CALLS,
)

SUBJECT, OTHER = "+4915112345678", "+4915187654321"
NOW = datetime(2026, 3, 10, 12, tzinfo=timezone.utc)


def _hold(**kw: Any) -> Hold:
    base: dict[str, Any] = dict(hold_id="h1", case_id="C1", subscriber_pseudonyms=frozenset(), account_id=None,
                                data_from=None, data_to=None, until=None)
    return Hold(**{**base, **kw})


def _row(spec: TableSpec, **values: Any) -> dict[str, Any]:
    defaults = {"string": "x", "int": 0, "long": 0, "boolean": False, "date": date(2026, 3, 1),
                "timestamp": NOW, "double": 0.0}
    return {c.name: values.get(c.name, None if c.nullable else defaults[c.type]) for c in spec.columns}


# ----------------------------------------------------------------------------------------------- pure

def test_a_hold_needs_a_scope_and_an_ordered_period() -> None:
    with pytest.raises(HoldError, match="needs a scope"):
        _hold()
    with pytest.raises(HoldError, match="before it starts"):
        _hold(data_from=date(2026, 3, 5), data_to=date(2026, 3, 1))


def test_scopes_combine_on_the_columns_a_table_has() -> None:
    subject = _hold(subscriber_pseudonyms=frozenset({"p1", "p2"}))
    sql = subject.covers_sql(SILVER_CALLS)
    assert sql == "(`subscriber_pseudonym` IN ('p1', 'p2') OR `callee_pseudonym` IN ('p1', 'p2'))"
    assert subject.covers_sql(GOLD_HOURLY_GEO_USAGE) is None  # anonymous aggregate: no subject rows
    assert subject.covers_sql(BRONZE_QUARANTINE) is None
    account_period = _hold(account_id="acme", data_from=date(2026, 3, 1), data_to=date(2026, 3, 2))
    assert account_period.covers_sql(BRONZE_CALL_EVENTS) == (
        "`account_id` = 'acme' AND CAST(`event_date` AS DATE) >= DATE'2026-03-01' "
        "AND CAST(`event_date` AS DATE) <= DATE'2026-03-02'")
    assert account_period.covers_sql(BRONZE_INGESTED_OBJECTS) is None  # no account column
    period = _hold(data_from=date(2026, 3, 1))
    assert period.covers_sql(BRONZE_INGESTED_OBJECTS) == "CAST(`upload_date` AS DATE) >= DATE'2026-03-01'"
    # a period holds aggregates too (the period's evidence), a subject hold does not
    assert legal_holds.held_predicate([subject, period], GOLD_HOURLY_GEO_USAGE) == (
        "(CAST(`call_date` AS DATE) >= DATE'2026-03-01')")
    assert legal_holds.held_predicate([subject], GOLD_HOURLY_GEO_USAGE) is None


def test_quotes_in_an_account_id_cannot_break_out_of_the_predicate() -> None:
    assert _hold(account_id="a' OR '1'='1").covers_sql(SILVER_CALLS) == "`account_id` = 'a'' OR ''1''=''1'"


def _entry(seq: int, hold_id: str, event: str, **kw: Any) -> dict[str, Any]:
    base = dict(seq=seq, hold_id=hold_id, event=event, case_id="C", subscriber_pseudonyms=None, account_id="acme",
                data_from=None, data_to=None, until=None, actor="a", at=NOW, reason=None)
    return {**base, **kw}


def test_active_holds_are_placed_not_released_and_not_lapsed() -> None:
    entries = [
        _entry(0, "kept", "placed"),
        _entry(1, "released", "placed"),
        _entry(2, "lapsing", "placed", until=date(2026, 3, 10)),
        _entry(3, "subject", "placed", account_id=None, subscriber_pseudonyms=json.dumps(["p1", "p2"])),
        _entry(4, "released", "released", account_id=None),
    ]
    on_10 = legal_holds.holds_from_entries(entries, on=date(2026, 3, 10))
    assert [h.hold_id for h in on_10] == ["kept", "lapsing", "subject"]
    assert on_10[2].subscriber_pseudonyms == frozenset({"p1", "p2"})
    assert [h.hold_id for h in legal_holds.holds_from_entries(entries, on=date(2026, 3, 11))] == ["kept", "subject"]


def test_only_roles_with_may_hold_place_holds() -> None:
    require_hold_authority("auditor")
    with pytest.raises(AccessDenied, match="may not place or release legal holds"):
        require_hold_authority("analyst")


# ----------------------------------------------------------------------------------------------- lake

@pytest.fixture(scope="module")
def held_lake(spark, settings: Settings, keys: KeyMaterial, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    s = settings.with_lake_root(str(tmp_path_factory.mktemp("holds") / "lake"))
    key_id = keys.pseudonym.active
    subject = pseudonymize("msisdn", SUBJECT, keys.pseudonym.get(key_id))
    other = pseudonymize("msisdn", OTHER, keys.pseudonym.get(key_id))
    events = [
        _row(BRONZE_CALL_EVENTS, event_id="e1", subscriber_pseudonym=subject, object_key="o/subject-caller",
             event_date=date(2026, 3, 1), account_id="consumer"),
        _row(BRONZE_CALL_EVENTS, event_id="e2", subscriber_pseudonym=other, callee_pseudonym=subject,
             object_key="o/subject-callee", event_date=date(2026, 3, 2), account_id="acme", record_index=1),
        _row(BRONZE_CALL_EVENTS, event_id="e3", subscriber_pseudonym=other, object_key="o/other",
             event_date=date(2026, 3, 3), account_id="acme", record_index=2),
    ]
    objects = [_row(BRONZE_INGESTED_OBJECTS, object_key=k, upload_date=d)
               for k, d in [("o/subject-caller", date(2026, 3, 1)), ("o/subject-callee", date(2026, 3, 2)),
                            ("o/other", date(2026, 3, 3)), ("o/quarantined", date(2026, 3, 3))]]
    for spec, rows in ((BRONZE_CALL_EVENTS, events), (BRONZE_INGESTED_OBJECTS, objects)):
        lake.merge_insert_new(spark, spark.createDataFrame(rows, spec.spark_schema()), spec, s)
    return {"settings": s, "subject": subject}


def test_placed_holds_are_chained_and_released_with_an_audit_entry(spark, held_lake: dict[str, Any], keys: KeyMaterial) -> None:  # type: ignore[no-untyped-def]
    s = held_lake["settings"]
    hold = legal_holds.place(spark, s, keys, case_id="CASE-7", msisdn=SUBJECT, actor="carol (auditor)",
                             reason="litigation", now=NOW)
    assert held_lake["subject"] in hold.subscriber_pseudonyms
    stored = lake.read_table(spark, AUDIT_LEGAL_HOLDS, s).collect()
    assert SUBJECT not in json.dumps([r.asDict() for r in stored], default=str)  # only pseudonyms are stored
    assert [h.hold_id for h in legal_holds.active_holds(spark, s, on=NOW.date())] == [hold.hold_id]
    assert legal_holds.held_object_keys(spark, s, [hold]) == {"o/subject-caller", "o/subject-callee"}

    legal_holds.release(spark, s, hold_id=hold.hold_id, actor="dave (auditor)", reason="case closed", now=NOW)
    assert legal_holds.active_holds(spark, s, on=NOW.date()) == []
    with pytest.raises(HoldError, match="already released"):
        legal_holds.release(spark, s, hold_id=hold.hold_id, actor="dave", reason="again", now=NOW)
    with pytest.raises(HoldError, match="no such hold"):
        legal_holds.release(spark, s, hold_id="hold-nope", actor="dave", reason="x", now=NOW)
    listed = {r["hold_id"]: r for r in legal_holds.all_holds(spark, s)}
    assert listed[hold.hold_id]["state"] == "released"
    assert listed[hold.hold_id]["released_by"] == "dave (auditor)" and listed[hold.hold_id]["release_reason"] == "case closed"
    assert hashchain.verify_table(spark, s, AUDIT_LEGAL_HOLDS) == []


def test_account_and_period_holds_keep_their_objects(spark, held_lake: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    s = held_lake["settings"]
    account = _hold(hold_id="a", account_id="acme", data_to=date(2026, 3, 2))
    assert legal_holds.held_object_keys(spark, s, [account]) == {"o/subject-callee"}
    period = _hold(hold_id="p", data_from=date(2026, 3, 3), data_to=date(2026, 3, 3))
    assert legal_holds.held_object_keys(spark, s, [period]) == {"o/other", "o/quarantined"}


def test_cli_refuses_a_role_without_hold_authority(capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli_main(["hold", "add", "--case", "C", "--account", "acme", "--role", "analyst"])
    assert rc == 2
    assert "may not place or release legal holds" in capsys.readouterr().err
