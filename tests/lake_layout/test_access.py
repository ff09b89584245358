"""Sensitivity levels, signaling / media reasons and role clearance from the registry."""

from __future__ import annotations

import pytest

from lake_layout.access import ROLES, AccessDenied, forbidden_columns, readable_columns, require_decrypt
from lake_layout.registry import Classification, Column, Plane, Sensitivity
from lake_layout.tables import ALL_TABLES, BRONZE_CALL_EVENTS, GOLD_HOURLY_GEO_USAGE, SILVER_CALLS


def test_every_column_has_one_of_the_four_sensitivity_levels() -> None:
    levels = {c.sensitivity for spec in ALL_TABLES for c in spec.columns}
    assert levels <= set(Sensitivity)
    assert levels == set(Sensitivity)  # the lake really uses all four


def test_restricted_columns_are_ciphertext_and_the_originals_are_named() -> None:
    restricted = {(spec.name, c.name) for spec in ALL_TABLES for c in spec.columns if c.sensitivity is Sensitivity.RESTRICTED}
    assert ("bronze.call_events", "ip_encrypted") in restricted
    assert all(c.type == "binary" for spec in ALL_TABLES for c in spec.columns if c.sensitivity is Sensitivity.RESTRICTED)
    with pytest.raises(ValueError, match="ciphertext only"):
        Column("src_ip", "string", Classification.RESTRICTED, "an original IP in clear")


def test_signaling_and_media_fields_say_why() -> None:
    planes = {c.name: c.plane for c in SILVER_CALLS.columns if c.plane}
    assert planes["started_at"] is Plane.SIGNALING and planes["callee_pseudonym"] is Plane.SIGNALING
    assert planes["mos"] is Plane.MEDIA and planes["data_bytes"] is Plane.MEDIA
    assert all(c.plane_reason for spec in ALL_TABLES for c in spec.columns if c.plane)
    with pytest.raises(ValueError, match="needs plane_reason"):
        Column("jitter_ms", "int", Classification.INTERNAL, "jitter", plane=Plane.MEDIA)


def test_clearance_decides_the_readable_columns() -> None:
    assert readable_columns(GOLD_HOURLY_GEO_USAGE, "public") == GOLD_HOURLY_GEO_USAGE.column_names
    assert readable_columns(SILVER_CALLS, "public") == []
    finance = forbidden_columns(SILVER_CALLS, "finance")
    assert finance["subscriber_pseudonym"] is Sensitivity.CONFIDENTIAL and "h3_cell" in finance
    assert "account_id" in readable_columns(SILVER_CALLS, "finance")
    assert readable_columns(BRONZE_CALL_EVENTS, "analyst") == []  # the policy closes bronze to analysts
    assert "ip_encrypted" not in readable_columns(BRONZE_CALL_EVENTS, "data_engineer")
    assert "src_ip_prefix" in readable_columns(BRONZE_CALL_EVENTS, "data_engineer")
    assert readable_columns(BRONZE_CALL_EVENTS, "security") == BRONZE_CALL_EVENTS.column_names
    # Among roles open to every table, clearance is monotone: a role sees everything a lower-clearance role sees.
    ordered = sorted((r for r in ROLES.values() if r.read == ("*",) and not r.deny), key=lambda r: r.clearance.rank)
    assert [r.name for r in ordered] == ["data_engineer", "security"]
    for lower, higher in zip(ordered, ordered[1:]):
        for spec in ALL_TABLES:
            assert set(readable_columns(spec, lower.name)) <= set(readable_columns(spec, higher.name))


def test_decryption_is_for_security_and_lawful_intercept_only() -> None:
    require_decrypt("security")
    require_decrypt("lawful_intercept")
    assert sorted(r.name for r in ROLES.values() if r.may_decrypt) == ["lawful_intercept", "security"]
    with pytest.raises(AccessDenied, match="may not decrypt"):
        require_decrypt("analyst")
    with pytest.raises(AccessDenied, match="unknown role"):
        readable_columns(SILVER_CALLS, "intern")


def test_legal_hold_authority_comes_from_the_policy(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from lake_layout.access import PolicyError, load_policy

    assert sorted(r.name for r in ROLES.values() if r.may_hold) == ["auditor", "lawful_intercept", "security"]
    bad = tmp_path / "policy.toml"
    bad.write_text('default_role = "a"\n[roles.a]\nclearance = "internal"\nread = ["gold.*"]\nmay_decrypt = false\n'
                   'may_hold = "yes"\n')
    with pytest.raises(PolicyError, match="may_hold: expected true or false"):
        load_policy(bad)
