"""SIP trunk groups: which trunk group (and planning region) carries the calls of a country.

Capacity planning (`gold.capacity_busy_hour`, jobs.business.capacity_busy_hour) dimensions each trunk group on the
traffic of the calls made from the countries it serves (silver.calls `country_code`: where the device was,
ISO 3166, "US-CA" for California). A group is the interconnect with the local carriers of its market; the
region is the media-relay region its session border controllers sit in, so regional totals can be read off
the same table. Declared once here: nothing else writes a trunk group name.

Calls from a country without a trunk group of its own (or with no country) go to UNASSIGNED: they are still
dimensioned (they use the international default route) rather than silently missing from the plan. When
a market gets its own interconnect, add it to TRUNK_GROUPS; the next run of a date puts it on the new group.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrunkGroup:
    name: str  # e.g. "de-fra-1": market, point of interconnect, group number
    region: str  # planning / media-relay region, e.g. "eu-central"
    description: str = ""


TRUNK_GROUPS: dict[str, TrunkGroup] = {
    "DE": TrunkGroup("de-fra-1", "eu-central", "German mobile and fixed carriers, Frankfurt interconnect"),
    "FR": TrunkGroup("fr-par-1", "eu-central", "French carriers, Paris interconnect"),
    "ES": TrunkGroup("es-mad-1", "eu-central", "Spanish carriers, Madrid interconnect"),
    "GB": TrunkGroup("gb-lon-1", "eu-central", "UK carriers, London interconnect"),
    "US": TrunkGroup("us-nyc-1", "us-east", "US carriers outside California, New York interconnect"),
    "US-CA": TrunkGroup("us-lax-1", "us-west", "California, Los Angeles interconnect"),
    "BR": TrunkGroup("br-sao-1", "sa-east", "Brazilian carriers, Sao Paulo interconnect"),
    "IN": TrunkGroup("in-bom-1", "ap-south", "Indian carriers, Mumbai interconnect"),
    "JP": TrunkGroup("jp-tyo-1", "ap-northeast", "Japanese carriers, Tokyo interconnect"),
}

UNASSIGNED = TrunkGroup("intl-default", "global", "International default route: countries without their own group")


def trunk_group_for(country_code: str | None) -> TrunkGroup:
    """The trunk group serving calls made in `country_code` (UNASSIGNED if none, or no country)."""
    return TRUNK_GROUPS.get(country_code or "", UNASSIGNED)
