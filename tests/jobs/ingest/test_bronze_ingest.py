"""bronze_ingest transforms: validation, pseudonymization, decode_uploads accounting."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from jobs.ingest.bronze import clock_offset_ms, decode_uploads, new_objects, validate_event
from jobs.platform.identifiers import pseudonymize, truncate_ip
from jobs.platform.envelope import DataKey, decrypt_cell
from jobs.platform.keys import KeyMaterial
from jobs.telemetry.codec import Header, encode_json, encode_protobuf
from lake_layout.landing import landing_object_key

T0 = 1_795_478_400_000  # 2026-11-24T00:00:00Z
NOW = datetime(2026, 11, 25, 1, 0, tzinfo=timezone.utc)
MSISDN = "+4915112345678"
HEADER = Header("b-1", "device-abc", "android", "5.0.3", 1, T0 + 5000, b"", 0, ((T0 + 4000, T0 + 4900, 100),))


def _event(i: int, **over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "event_id": f"e-{i}", "call_id": "c-1", "event_type": "call_start", "event_ms": T0 + i, "msisdn": MSISDN,
        "callee_msisdn": "+4930123456", "imei": "490154203237518", "src_ip": "198.51.100.77",
        "dst_ip": "2001:db8:abcd:12::9", "network_type": "lte", "signal_metric": "lte_rsrp_dbm", "signal_value": -99.0,
        "latitude": 52.520008, "longitude": 13.404954, "country_code": "DE", "account_id": "acct-0001",
    }
    base.update(over)
    return base


def test_pseudonyms_are_keyed_stable_and_domain_separated() -> None:
    a, b = b"a" * 32, b"b" * 32
    assert pseudonymize("msisdn", MSISDN, a) == pseudonymize("msisdn", MSISDN, a)
    assert pseudonymize("msisdn", MSISDN, a) != pseudonymize("msisdn", MSISDN, b)
    assert pseudonymize("msisdn", "x", a) != pseudonymize("device", "x", a)
    assert len(pseudonymize("msisdn", MSISDN, a)) == 32 and MSISDN[1:] not in pseudonymize("msisdn", MSISDN, a)


def test_ip_truncation() -> None:
    assert truncate_ip("198.51.100.77") == "198.51.100.0/24"
    assert truncate_ip("2001:db8:abcd:12::9") == "2001:db8:abcd::/48"
    with pytest.raises(ValueError):
        truncate_ip("999.1.1.1")


def _ipaddress_answer(text: str) -> str | None:
    """What the stdlib says: the /24 or /48 network of `text`, or None where it is not an IP."""
    import ipaddress

    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    return str(ipaddress.ip_network(f"{addr}/{24 if addr.version == 4 else 48}", strict=False))


def _agrees_with_ipaddress(text: str) -> None:
    # bronze parses IPs with inet_pton/inet_ntop (a make bench profile): it must accept, reject and truncate
    # exactly as ipaddress does.
    expected = _ipaddress_answer(text)
    if expected is None:
        with pytest.raises(ValueError):
            truncate_ip(text)
    else:
        assert truncate_ip(text) == expected
    event = {"event_id": "e", "call_id": "c", "event_type": "call_start", "event_ms": T0, "msisdn": "+4915112345678",
             "src_ip": text}
    assert validate_event(event, HEADER) == (None if expected else ("invalid_ip", "src_ip is not an IP address"))


@hyp_settings(max_examples=300, deadline=None)
@given(st.integers(0, 2 ** 32 - 1), st.sampled_from(["", "", "0", "00", "1", " "]), st.integers(0, 3))
def test_ipv4_parsing_agrees_with_ipaddress(value: int, pad: str, octet: int) -> None:
    import ipaddress

    parts = str(ipaddress.IPv4Address(value)).split(".")
    parts[octet] = pad + parts[octet]
    _agrees_with_ipaddress(".".join(parts))


def test_ip_given_as_a_number_is_judged_by_ipaddress() -> None:
    # A JSON upload can send an integer: ipaddress takes it as an address, and so does bronze.
    _agrees_with_ipaddress_value(3_325_256_815)


def _agrees_with_ipaddress_value(value: int) -> None:
    import ipaddress

    event = {"event_id": "e", "call_id": "c", "event_type": "call_start", "event_ms": T0, "msisdn": "+4915112345678",
             "src_ip": value}
    assert validate_event(event, HEADER) is None
    assert truncate_ip(value) == str(ipaddress.ip_network(f"{ipaddress.ip_address(value)}/24", strict=False))  # type: ignore[arg-type]


_HEXTET = st.sampled_from([0, 0, 0, 1, 0xFFFF, 0xDB8]) | st.integers(0, 0xFFFF)


@hyp_settings(max_examples=300, deadline=None)
@given(st.lists(_HEXTET, min_size=8, max_size=8), st.sampled_from(["compressed", "exploded", "upper", "zone", "v4"]))
def test_ipv6_parsing_agrees_with_ipaddress(hextets: list[int], form: str) -> None:
    import ipaddress

    addr = ipaddress.IPv6Address(":".join(f"{h:x}" for h in hextets))
    text = {"compressed": addr.compressed, "exploded": addr.exploded, "upper": addr.compressed.upper(),
            "zone": f"{addr.compressed}%eth0",
            "v4": f"{addr.exploded.rsplit(':', 2)[0]}:{ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)}"}[form]
    _agrees_with_ipaddress(text)


@hyp_settings(max_examples=500, deadline=None)
@given(st.text(alphabet="0123456789abcdefABCDEF:.% x", max_size=24))
def test_ip_parsing_of_arbitrary_text_agrees_with_ipaddress(text: str) -> None:
    _agrees_with_ipaddress(text)


@pytest.mark.parametrize(
    "override,reason",
    [
        ({"msisdn": "0151-1234"}, "invalid_msisdn"),
        ({"callee_msisdn": "12"}, "invalid_msisdn"),
        ({"call_id": None}, "missing_required_field"),
        ({"event_type": "call_end", "duration_ms": -5}, "invalid_duration"),
        ({"event_type": "call_end"}, "invalid_duration"),
        ({"src_ip": "999.1.1.1"}, "invalid_ip"),
        ({"latitude": 123.0}, "invalid_location"),
        ({"event_type": None}, "missing_required_field"),
        ({"event_type": "call_hold"}, "invalid_event_type"),
    ],
)
def test_validation_reasons(override: dict[str, object], reason: str) -> None:
    problem = validate_event(_event(0, **override), HEADER)
    assert problem is not None and problem[0] == reason
    assert MSISDN not in problem[1]


def test_valid_event_and_schema2_telemetry_level() -> None:
    assert validate_event(_event(0), HEADER) is None
    v2 = Header(**{**HEADER.__dict__, "schema_version": 2})
    assert validate_event(_event(0), v2) == ("invalid_value", "schema 2 requires telemetry_level basic|diagnostic")
    assert validate_event(_event(0, telemetry_level="basic"), v2) is None


def test_clock_offset_uses_lowest_rtt_sample() -> None:
    h = Header(**{**HEADER.__dict__, "time_sync": ((1000, 3000, 400), (2000, 4100, 200))})
    assert clock_offset_ms(h, 0) == 4100 - 2000 - 100
    assert clock_offset_ms(Header(**{**HEADER.__dict__, "time_sync": ()}), T0 + 7000) == 2000


def _objects(keys: KeyMaterial) -> list[tuple[str, bytes]]:
    dev_key = keys.device_key(HEADER.device_id, keys.device_master.active)
    kid = keys.device_master.active
    good = encode_protobuf(HEADER, [_event(0), _event(1, event_type="call_end", duration_ms=61_000), _event(2, msisdn="12")],
                           device_key=dev_key, key_id=kid)
    web_header = Header(**{**HEADER.__dict__, "batch_id": "b-2", "platform": "web", "schema_version": 2, "device_id": "web-1"})
    web = encode_json(web_header, [_event(3, telemetry_level="diagnostic", src_ip=None, dst_ip=None)],
                      device_key=keys.device_key("web-1", kid), key_id=kid)
    forged = encode_protobuf(HEADER, [_event(4), _event(5)], device_key=b"x" * 32, key_id=kid)
    key = lambda i, enc: landing_object_key("uploads", received_at_ms=T0 + 60_000 + i, batch_id=f"b-{i}", encoding=enc)  # noqa: E731
    return [(key(1, "protobuf"), good), (key(2, "json"), web), (key(3, "protobuf"), forged),
            (key(4, "protobuf"), good[:40]), ("uploads/stray/file.gz", b"junk")]


def test_decode_uploads_accounts_for_every_record(spark, keys) -> None:  # type: ignore[no-untyped-def]
    df = spark.createDataFrame(_objects(keys), "object_key string, content binary")
    dek = DataKey.generate()
    rows = decode_uploads(df, keys=keys, dek=dek, run_id="run-1", now=NOW).collect()
    objects = {r.object_key: r for r in rows if r.row_kind == "object"}
    assert len(objects) == 5
    for r in objects.values():
        assert r.records_received == r.records_accepted + r.records_quarantined
    by_status = sorted(r.status for r in objects.values())
    assert by_status == ["accepted", "partial", "quarantined", "quarantined", "quarantined"]

    quarantine = sorted((r.reason, r.record_index, r.records) for r in rows if r.row_kind == "quarantine")
    assert quarantine == [("bad_signature", -1, 2), ("corrupt_compression", -1, 1), ("invalid_msisdn", 2, 1),
                          ("unknown_object_key", -1, 1)]

    events = [r for r in rows if r.row_kind == "event"]
    assert sorted(e.event_id for e in events) == ["e-0", "e-1", "e-3"]
    e0 = next(e for e in events if e.event_id == "e-0")
    assert e0.subscriber_pseudonym == pseudonymize("msisdn", MSISDN, keys.pseudonym.active_key)
    assert e0.device_pseudonym == pseudonymize("device", "device-abc", keys.pseudonym.active_key)
    assert (e0.src_ip_prefix, e0.dst_ip_prefix) == ("198.51.100.0/24", "2001:db8:abcd::/48")
    assert (e0.latitude, e0.longitude) == (52.52, 13.4)  # 2 decimals; the precise values only encrypted
    assert e0.event_date.isoformat() == "2026-11-24" and e0.clock_offset_ms == 850
    assert e0.encryption_key_id == dek.dek_id
    data_keys = {dek.dek_id: dek.key}
    assert decrypt_cell(bytes(e0.ip_encrypted), data_keys, column="ip_encrypted", row_id="e-0") == {
        "src_ip": "198.51.100.77", "dst_ip": "2001:db8:abcd:12::9"}
    assert decrypt_cell(bytes(e0.location_encrypted), data_keys, column="location_encrypted", row_id="e-0") == {
        "latitude": 52.520008, "longitude": 13.404954}
    web = next(e for e in events if e.event_id == "e-3")
    assert web.platform == "web" and web.ip_encrypted is None and web.telemetry_level == "diagnostic"
    # Nothing raw survives in any column of any output row.
    for r in rows:
        text = " ".join(str(v) for v in r.asDict().values())
        assert MSISDN not in text and "490154203237518" not in text and "198.51.100.77" not in text
        assert "device-abc" not in text and "4930123456" not in text
        assert "52.520008" not in text and "13.404954" not in text and dek.key.hex() not in text


def test_decode_uploads_output_batching_changes_nothing(spark, keys) -> None:  # type: ignore[no-untyped-def]
    # Output batches are cut at `batch_rows` (worker memory, make bench): one row per batch must give the same rows.
    df = spark.createDataFrame(_objects(keys), "object_key string, content binary")
    dek = DataKey.generate()
    runs = [decode_uploads(df, keys=keys, dek=dek, run_id="run-1", now=NOW, batch_rows=n).collect() for n in (1, 20_000)]
    # Ciphertexts differ by their random nonces: compare what they decrypt to instead.
    def plain(r):  # type: ignore[no-untyped-def]
        d = r.asDict()
        for column in ("ip_encrypted", "location_encrypted"):
            if d[column] is not None:
                d[column] = decrypt_cell(bytes(d[column]), {dek.dek_id: dek.key}, column=column, row_id=d["event_id"])
        return sorted(d.items(), key=lambda kv: kv[0])
    one_per_batch, default = ([repr(plain(r)) for r in rows] for rows in runs)
    assert sorted(one_per_batch) == sorted(default) and len(default) == 12


def test_new_objects_skips_the_manifest(spark) -> None:  # type: ignore[no-untyped-def]
    landing = spark.createDataFrame([("a", b"1"), ("b", b"2"), ("c", b"3")], "object_key string, content binary")
    manifest = spark.createDataFrame([("b",)], "object_key string")
    assert sorted(r.object_key for r in new_objects(landing, manifest).collect()) == ["a", "c"]
    assert new_objects(landing, None).count() == 3


def test_lineage_lists_the_quarantine_list_it_read(base_settings) -> None:  # type: ignore[no-untyped-def]
    from datetime import date

    from jobs.ingest.bronze import lineage_inputs

    objects = [("uploads/b.pb.gz", "bb" * 32), ("uploads/a.pb.gz", "aa" * 32)]
    inputs = [i.to_json() for i in lineage_inputs(base_settings, date(2026, 11, 24), objects, quarantine_version=3)]
    assert inputs[0]["kind"] == "landing" and [o["key"] for o in inputs[0]["objects"]] == ["uploads/a.pb.gz", "uploads/b.pb.gz"]
    assert inputs[1] == {"kind": "table", "table": "security.device_quarantine", "version": 3}
    # No quarantine table yet: nothing was read from it, so only the landing objects are inputs.
    assert [i.to_json()["kind"] for i in lineage_inputs(base_settings, date(2026, 11, 24), objects,
                                                        quarantine_version=None)] == ["landing"]
