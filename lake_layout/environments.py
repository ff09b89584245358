"""Production versus test data: which uploads belong to the test environment.

An upload is test data when its build says so (BatchHeader.build_environment = "test", schema 3) or when the
registry (lake_layout/test_tenants.toml, environments.test_registry) lists its device or the account of any of its
events. Bronze ingests test uploads into the test lake (environments.test_lake_root) with the same table layout,
so production tables never hold them and no production job reads them.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRODUCTION, TEST = "production", "test"
ENVIRONMENTS = (PRODUCTION, TEST)
TEST_BUILD = "test"  # BatchHeader.build_environment of a test build


class RegistryError(ValueError):
    """The test tenant registry file is malformed."""


@dataclass(frozen=True)
class NonProductionRegistry:
    """Test tenants (account ids) and test devices (raw device ids of lab handsets)."""

    accounts: frozenset[str] = frozenset()
    devices: frozenset[str] = frozenset()

    def environment(self, *, build_environment: str, device_id: str, accounts: Iterable[Any]) -> tuple[str, str]:
        """(environment, why) of one upload: TEST when its build, device or an event's account is a test one."""
        if build_environment == TEST_BUILD:
            return TEST, "test build"
        if device_id in self.devices:
            return TEST, "test device"
        if any(isinstance(a, str) and a in self.accounts for a in accounts):
            return TEST, "test tenant"
        return PRODUCTION, ""


def load_registry(path: Path) -> NonProductionRegistry:
    """The registry file, validated (a missing file is an error: a typo must not route test data to production)."""
    try:
        raw: Mapping[str, Any] = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RegistryError(f"cannot read the test tenant registry {path}: {exc}") from None
    unknown = set(raw) - {"accounts", "devices"}
    if unknown:
        raise RegistryError(f"{path}: unknown key(s) {sorted(unknown)}; known: accounts, devices")
    out = {}
    for key in ("accounts", "devices"):
        values = raw.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise RegistryError(f"{path}: {key} must be a list of non-empty strings")
        out[key] = frozenset(values)
    return NonProductionRegistry(**out)


__all__ = ["ENVIRONMENTS", "PRODUCTION", "TEST", "NonProductionRegistry", "RegistryError", "load_registry"]
