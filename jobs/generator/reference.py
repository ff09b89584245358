"""Reference data of the generated world: home markets (numbering plans, carriers, cities, public address space),
address pools, media relays by region, and the hour-of-day shape of call volume."""

from __future__ import annotations

import ipaddress
import math
import random
from dataclasses import dataclass
from functools import cache
from itertools import accumulate

from jobs.generator.common import _digits


@dataclass(frozen=True)
class City:
    name: str
    country_code: str  # where a device in this city is: ISO 3166-1 alpha-2, "US-CA" for California
    latitude: float
    longitude: float
    utc_offset_h: float  # standard time; DST is irrelevant for a diurnal shape
    area_codes: tuple[str, ...] = ()  # NANP cities: local numbers use these


@dataclass(frozen=True)
class Market:
    """A home market: numbering plan, carriers, cities, public address space, nearest media-relay region."""

    home: str  # subscribers' home country code: ISO 3166-1 alpha-2, "US-CA" for California
    jurisdiction: str  # "EU" | "US-CA" | "US-other" | "other"
    weight: float
    calling_code: str
    mobile_plan: tuple[tuple[str, int], ...]  # (prefix after the calling code, digits that follow)
    landline_plan: tuple[tuple[str, int], ...]
    cities: tuple[City, ...]
    carriers: tuple[str, ...]  # MCC-MNC, most subscribed first
    mobile_v4: tuple[str, ...]
    mobile_v6: tuple[str, ...]
    fixed_v4: tuple[str, ...]
    fixed_v6: tuple[str, ...]
    relay_region: str


def _nanp(*area_codes: str) -> tuple[tuple[str, int], ...]:
    return tuple((code, 7) for code in area_codes)


_DE_MOBILE_PLAN = tuple((prefix, 8) for prefix in (
    "151", "152", "157", "159", "160", "162", "163", "170", "171", "172", "173", "174", "175", "176", "177", "178",
    "179",
))
_US_MOBILE_V4 = ("172.56.0.0/14", "166.128.0.0/9", "174.192.0.0/10")
_US_MOBILE_V6 = ("2607:fb90::/32", "2600:380::/26", "2600:1000::/28")
_US_CARRIERS = ("310260", "310410", "311480")

MARKETS: tuple[Market, ...] = (
    Market("DE", "EU", 0.22, "49", _DE_MOBILE_PLAN, (("30", 8), ("89", 8)),
           (City("Berlin", "DE", 52.5200, 13.4050, 1.0), City("Munich", "DE", 48.1372, 11.5756, 1.0)),
           ("26201", "26202", "26203"),
           ("80.187.0.0/16", "109.40.0.0/16", "176.0.0.0/16"), ("2a01:598::/32", "2a01:59f::/32"),
           ("91.0.0.0/10", "79.192.0.0/10"), ("2003::/19",), "eu-central"),
    Market("FR", "EU", 0.10, "33", (("6", 8), ("7", 8)), (("1", 8),),
           (City("Paris", "FR", 48.8566, 2.3522, 1.0),),
           ("20801", "20810", "20820", "20815"),
           ("92.184.0.0/15", "37.160.0.0/12"), ("2a01:cd00::/28",),
           ("90.0.0.0/9", "82.64.0.0/10"), ("2a01:cb00::/24", "2a01:e00::/26"), "eu-central"),
    Market("ES", "EU", 0.08, "34", (("6", 8),), (("91", 7),),
           (City("Madrid", "ES", 40.4168, -3.7038, 1.0),),
           ("21407", "21401", "21403"),
           ("88.0.0.0/13", "37.132.0.0/14"), ("2a0c:5a80::/29",),
           ("83.32.0.0/11",), ("2a02:9000::/23",), "eu-central"),
    Market("GB", "other", 0.08, "44", (("7", 9),), (("20", 8),),
           (City("London", "GB", 51.5074, -0.1278, 0.0),),
           ("23430", "23410", "23415", "23420"),
           ("31.94.0.0/16", "92.40.0.0/14"), ("2a01:4c8::/32",),
           ("86.128.0.0/10",), ("2a00:23c0::/26",), "eu-central"),
    Market("US-CA", "US-CA", 0.14, "1", _nanp("415", "628", "213", "310", "323"), _nanp("415", "213"),
           (City("San Francisco", "US-CA", 37.7749, -122.4194, -8.0, ("415", "628")),
            City("Los Angeles", "US-CA", 34.0522, -118.2437, -8.0, ("213", "310", "323"))),
           _US_CARRIERS, _US_MOBILE_V4, _US_MOBILE_V6, ("73.0.0.0/8",), ("2601::/20",), "us-west"),
    Market("US", "US-other", 0.14, "1", _nanp("212", "646", "917", "312", "773"), _nanp("212", "312"),
           (City("New York", "US", 40.7128, -74.0060, -5.0, ("212", "646", "917")),
            City("Chicago", "US", 41.8781, -87.6298, -6.0, ("312", "773"))),
           _US_CARRIERS, _US_MOBILE_V4, _US_MOBILE_V6, ("73.0.0.0/8", "24.0.0.0/12"), ("2601::/20",), "us-east"),
    Market("BR", "other", 0.08, "55", (("119", 8),), (("11", 8),),
           (City("São Paulo", "BR", -23.5505, -46.6333, -3.0),),
           ("72406", "72405", "72402"),
           ("179.96.0.0/13", "191.8.0.0/13"), ("2804:18::/32",),
           ("187.0.0.0/11",), ("2804:14c::/32",), "sa-east"),
    Market("IN", "other", 0.08, "91", (("9", 9),), (("22", 8),),
           (City("Mumbai", "IN", 19.0760, 72.8777, 5.5),),
           ("405874", "40492", "40420"),
           ("49.32.0.0/11", "106.192.0.0/11"), ("2409:4000::/22",),
           ("122.160.0.0/12",), ("2401:4900::/32",), "ap-south"),
    Market("JP", "other", 0.08, "81", (("90", 8), ("80", 8), ("70", 8)), (("3", 8),),
           (City("Tokyo", "JP", 35.6762, 139.6503, 9.0),),
           ("44010", "44020", "44050"),
           ("1.66.0.0/15", "126.0.0.0/8"), ("2001:268::/32",),
           ("153.128.0.0/9",), ("240b:10::/28",), "ap-northeast"),
)
MARKETS_BY_HOME = {m.home: m for m in MARKETS}

# TURN / media relays by cloud region: (IPv4 ranges, IPv6 ranges).
_RELAY_RANGES = {
    "eu-central": (("3.120.0.0/14",), ("2a05:d014::/36",)),
    "us-west": (("54.183.0.0/16",), ("2600:1f1c::/36",)),
    "us-east": (("3.80.0.0/12",), ("2600:1f18::/33",)),
    "sa-east": (("18.228.0.0/16",), ("2600:1f1e::/36",)),
    "ap-south": (("13.232.0.0/14",), ("2406:da1a::/36",)),
    "ap-northeast": (("13.112.0.0/14",), ("2406:da14::/36",)),
}
_RELAYS_PER_REGION = 6


def _phone_number(rng: random.Random, market: Market, plan: tuple[tuple[str, int], ...]) -> str:
    prefix, n = rng.choice(plan)
    # First subscriber digit 2-9: NANP exchange codes cannot start with 0/1, and it is harmless elsewhere.
    return f"+{market.calling_code}{prefix}{rng.randint(2, 9)}{_digits(rng, n - 1)}"


@dataclass(frozen=True)
class _AddressPool:
    """Public address ranges of one kind (a carrier's mobile pool, broadband, relays)."""

    ranges: tuple[tuple[int, int, int], ...]  # (version, first address, size)

    @classmethod
    def of(cls, cidrs: tuple[str, ...]) -> _AddressPool:
        nets = [ipaddress.ip_network(c) for c in cidrs]
        return cls(tuple((n.version, int(n.network_address), n.num_addresses) for n in nets))

    def draw(self, rng: random.Random) -> str:
        version, first, size = rng.choice(self.ranges)
        offset = rng.randrange(1, size - 1)  # never the range's network or broadcast address
        if version == 4:
            # Hosts avoid .0 and .255 (x.y.z.0 would also read like its own /24 prefix).
            address = first + offset
            if address & 0xFF in (0, 255):
                address ^= 1
            return str(ipaddress.IPv4Address(address))
        return str(ipaddress.IPv6Address(first + offset))


@cache
def _pools(home: str) -> dict[str, _AddressPool]:
    m = MARKETS_BY_HOME[home]
    return {"mobile4": _AddressPool.of(m.mobile_v4), "mobile6": _AddressPool.of(m.mobile_v6),
            "fixed4": _AddressPool.of(m.fixed_v4), "fixed6": _AddressPool.of(m.fixed_v6)}


@cache
def _relays(region: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A small fixed fleet of media relays per region, the same for every seed and day."""
    rng = random.Random(f"voiplake-relays:{region}")
    v4, v6 = _RELAY_RANGES[region]
    return (tuple(_AddressPool.of(v4).draw(rng) for _ in range(_RELAYS_PER_REGION)),
            tuple(_AddressPool.of(v6).draw(rng) for _ in range(_RELAYS_PER_REGION)))


# Relative call volume per local hour (0-23): business lines peak in office hours, consumers in the evening.
_BUSINESS_HOURS = (0.05, 0.03, 0.02, 0.02, 0.03, 0.08, 0.25, 0.7, 1.6, 2.4, 2.6, 2.4,
                   1.7, 2.0, 2.4, 2.4, 2.1, 1.6, 0.9, 0.5, 0.35, 0.25, 0.15, 0.08)
_CONSUMER_HOURS = (0.35, 0.2, 0.1, 0.06, 0.05, 0.08, 0.2, 0.5, 0.9, 1.1, 1.2, 1.3,
                   1.4, 1.3, 1.2, 1.2, 1.3, 1.5, 1.8, 2.0, 1.9, 1.5, 1.0, 0.6)


@cache
def _hour_cum_weights(business: bool, utc_offset_h: float) -> tuple[float, ...]:
    """Cumulative weights of the 24 UTC hours for a caller living at `utc_offset_h`."""
    local = _BUSINESS_HOURS if business else _CONSUMER_HOURS
    return tuple(accumulate(local[math.floor(h + utc_offset_h) % 24] for h in range(24)))


__all__ = ["MARKETS"]
