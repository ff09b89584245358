"""Which uploads are test data (lake_layout.environments). That they reach only the test lake is proven on a real
bronze run in tests/jobs/platform/test_envelope.py (test_test_builds_and_tenants_reach_only_the_test_lake)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from lake_layout.config import PROJECT_ROOT, EnvironmentSettings, Settings, SettingsError
from lake_layout.environments import PRODUCTION, TEST, NonProductionRegistry, RegistryError, load_registry


def test_registry_decides_by_build_device_and_tenant(tmp_path: Path) -> None:
    registry = NonProductionRegistry(accounts=frozenset({"acct-qa-0001"}), devices=frozenset({"lab-7"}))
    assert registry.environment(build_environment="test", device_id="d", accounts=[]) == (TEST, "test build")
    assert registry.environment(build_environment="", device_id="lab-7", accounts=[]) == (TEST, "test device")
    assert registry.environment(build_environment="production", device_id="d",
                                accounts=["acct-0001", "acct-qa-0001"]) == (TEST, "test tenant")
    assert registry.environment(build_environment="", device_id="d", accounts=["acct-0001", None]) == (PRODUCTION, "")
    bad = tmp_path / "bad.toml"
    bad.write_text('acounts = ["x"]\n')
    with pytest.raises(RegistryError, match="unknown key"):
        load_registry(bad)
    with pytest.raises(RegistryError, match="cannot read"):
        load_registry(tmp_path / "missing.toml")
    assert "acct-qa-0001" in load_registry(PROJECT_ROOT / "lake_layout" / "test_tenants.toml").accounts


def test_test_lake_must_differ_from_production(base_settings: Settings) -> None:
    assert base_settings.test_lake().lake.root == base_settings.environments.test_lake_root
    same = replace(base_settings, environments=EnvironmentSettings(test_lake_root=base_settings.lake.root,
                                                                   test_registry="x"))
    with pytest.raises(SettingsError, match="must differ"):
        same.test_lake()
