"""Who may read what: roles and their clearance, in the sensitivity levels of `lake_layout.registry`.

Every column's sensitivity follows from its classification (`Column.sensitivity`):

    public        published aggregates (gold)                               anyone, incl. the public
    internal      operational metadata, no personal data                    every staff role
    confidential  pseudonyms, coarse location and IP prefixes (GDPR personal data)
                                                                            analysts, data engineers, security
    restricted    ciphertext of original IPs and precise location           security only; plaintext only
                                                                            through the key provider

`voiplake query --role R` exposes each table to R as a view of the columns R may read, so a query that
names a column above R's clearance fails with a message saying which column and why.
"""

from __future__ import annotations

from dataclasses import dataclass

from lake_layout.registry import Sensitivity, TableSpec


class AccessDenied(PermissionError):
    """A role asked for data above its clearance."""


@dataclass(frozen=True)
class Role:
    name: str
    clearance: Sensitivity  # the most sensitive level the role may read
    may_decrypt: bool  # may ask the key provider to decrypt restricted columns
    purpose: str


ROLES: dict[str, Role] = {
    r.name: r
    for r in (
        Role("public", Sensitivity.PUBLIC, False, "Published statistics only"),
        Role("finance", Sensitivity.INTERNAL, False, "Billing and cost allocation from account-level data"),
        Role("auditor", Sensitivity.INTERNAL, False, "Lineage, quality, privacy and access records"),
        Role("analyst", Sensitivity.CONFIDENTIAL, False, "Call-level analytics on pseudonymized data"),
        Role("data_engineer", Sensitivity.CONFIDENTIAL, False, "Running and repairing the pipelines"),
        Role("security", Sensitivity.RESTRICTED, True, "Abuse and fraud investigation, forensic exports"),
    )
}
DEFAULT_ROLE = "data_engineer"


def role(name: str) -> Role:
    try:
        return ROLES[name]
    except KeyError:
        raise AccessDenied(f"unknown role {name!r}; known roles: {sorted(ROLES)}") from None


def readable_columns(spec: TableSpec, role_name: str) -> list[str]:
    """The columns of `spec` the role may read, in table order (empty: the table is closed to it)."""
    return spec.columns_up_to(role(role_name).clearance)


def forbidden_columns(spec: TableSpec, role_name: str) -> dict[str, Sensitivity]:
    """Columns of `spec` above the role's clearance, with their sensitivity."""
    allowed = set(readable_columns(spec, role_name))
    return {c.name: c.sensitivity for c in spec.columns if c.name not in allowed}


def require_decrypt(role_name: str) -> None:
    """Raise AccessDenied unless the role may decrypt restricted columns."""
    if not role(role_name).may_decrypt:
        raise AccessDenied(f"role {role_name!r} may not decrypt restricted columns; only {sorted(r.name for r in ROLES.values() if r.may_decrypt)}")
