"""Who may read what: roles from `lake_layout/access_policy.toml`, in the sensitivity levels of `lake_layout.registry`.

Every column's sensitivity follows from its classification (`Column.sensitivity`):

    public        published aggregates (gold)                               anyone, incl. the public
    internal      operational metadata, no personal data                    every staff role
    confidential  pseudonyms, coarse location and IP prefixes (GDPR personal data)
                                                                            analysts, NOC, data engineers
    restricted    ciphertext of original IPs and precise location           security, lawful intercept; plaintext
                                                                            only through the key provider

A role has two gates, both from the policy file: the tables it may read at all (`read` / `deny` globs, e.g.
an analyst reads no bronze and no row-level silver; only `noc_operator` among the governance roles reads
silver.calls) and, within those, the columns up to its clearance.

`voiplake query --role R` exposes each table to R as a view of the columns R may read (a closed table is not
registered), so a query that names a column above R's clearance fails with a message saying which column and
why; every read and every denial is recorded in audit.access_log (jobs.platform.access_log).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from lake_layout.registry import Sensitivity, TableSpec

POLICY_FILE = Path(__file__).with_name("access_policy.toml")


class AccessDenied(PermissionError):
    """A role asked for data above its clearance or outside its tables."""


class PolicyError(ValueError):
    """The access policy file is malformed."""


@dataclass(frozen=True)
class Role:
    name: str
    clearance: Sensitivity  # the most sensitive level the role may read
    may_decrypt: bool  # may ask the key provider to decrypt restricted columns
    purpose: str
    read: tuple[str, ...] = ("*",)  # table-name globs the role may read
    deny: tuple[str, ...] = ()  # globs closed even when `read` matches
    may_hold: bool = False  # may place and release legal holds (jobs.governance.legal_holds)

    def may_read_table(self, table_name: str) -> bool:
        """True when `table_name` (layer.table) matches a `read` glob and no `deny` glob."""
        if any(fnmatchcase(table_name, g) for g in self.deny):
            return False
        return any(fnmatchcase(table_name, g) for g in self.read)


def load_policy(path: Path = POLICY_FILE) -> tuple[dict[str, Role], str]:
    """Roles and the default role from the policy file; raises PolicyError naming the bad key."""
    with path.open("rb") as f:
        raw = tomllib.load(f)
    levels = {s.value: s for s in Sensitivity}
    roles: dict[str, Role] = {}
    for name, entry in raw.get("roles", {}).items():
        where = f"{path.name}: roles.{name}"
        unknown = set(entry) - {"clearance", "read", "deny", "may_decrypt", "may_hold", "purpose"}
        if unknown:
            raise PolicyError(f"{where}: unknown key(s) {sorted(unknown)}")
        if entry.get("clearance") not in levels:
            raise PolicyError(f"{where}.clearance: {entry.get('clearance')!r}; expected one of {sorted(levels)}")
        for key in ("read", "deny"):
            globs = entry.get(key, [])
            if not isinstance(globs, list) or not all(isinstance(g, str) and g for g in globs):
                raise PolicyError(f"{where}.{key}: expected a list of table-name globs")
        if not entry.get("read"):
            raise PolicyError(f"{where}.read: a role must read at least one table")
        if not isinstance(entry.get("may_decrypt"), bool):
            raise PolicyError(f"{where}.may_decrypt: expected true or false")
        if not isinstance(entry.get("may_hold", False), bool):
            raise PolicyError(f"{where}.may_hold: expected true or false")
        if entry["may_decrypt"] and levels[entry["clearance"]] is not Sensitivity.RESTRICTED:
            raise PolicyError(f"{where}: may_decrypt needs clearance 'restricted'")
        roles[name] = Role(name, levels[entry["clearance"]], entry["may_decrypt"], str(entry.get("purpose", "")),
                           tuple(entry["read"]), tuple(entry.get("deny", [])), entry.get("may_hold", False))
    default = raw.get("default_role")
    if default not in roles:
        raise PolicyError(f"{path.name}: default_role {default!r} is not a declared role ({sorted(roles)})")
    return roles, default


ROLES, DEFAULT_ROLE = load_policy()


def role(name: str) -> Role:
    try:
        return ROLES[name]
    except KeyError:
        raise AccessDenied(f"unknown role {name!r}; known roles: {sorted(ROLES)}") from None


def may_read_table(spec: TableSpec | str, role_name: str) -> bool:
    """True when the policy opens the table to the role (columns are still limited by clearance)."""
    return role(role_name).may_read_table(spec if isinstance(spec, str) else spec.name)


def readable_columns(spec: TableSpec, role_name: str) -> list[str]:
    """The columns of `spec` the role may read, in table order (empty: the table is closed to it)."""
    r = role(role_name)
    return spec.columns_up_to(r.clearance) if r.may_read_table(spec.name) else []


def forbidden_columns(spec: TableSpec, role_name: str) -> dict[str, Sensitivity]:
    """Columns of `spec` the role may not read, with their sensitivity (every column of a closed table)."""
    allowed = set(readable_columns(spec, role_name))
    return {c.name: c.sensitivity for c in spec.columns if c.name not in allowed}


def require_hold_authority(role_name: str) -> None:
    """Raise AccessDenied unless the role may place and release legal holds (`may_hold` in the policy)."""
    if not role(role_name).may_hold:
        raise AccessDenied(f"role {role_name!r} may not place or release legal holds; only "
                           f"{sorted(r.name for r in ROLES.values() if r.may_hold)}")


def require_decrypt(role_name: str) -> None:
    """Raise AccessDenied unless the role may decrypt restricted columns."""
    if not role(role_name).may_decrypt:
        raise AccessDenied(f"role {role_name!r} may not decrypt restricted columns; only {sorted(r.name for r in ROLES.values() if r.may_decrypt)}")
