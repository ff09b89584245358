"""Identifiers at the door: keyed pseudonyms, truncated IP prefixes, coarse coordinates, the E.164 check.

Bronze, the authentication-log and reference ingestions, forensics, DSR and the detector evaluation all derive
the same pseudonym from the same raw value and key, so the functions live here, below every domain.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import socket
from typing import Any

E164 = re.compile(r"^\+[1-9]\d{7,14}$")
# Plain coordinates are kept at 2 decimals (0.01 deg: ~1.1 km of latitude), enough for silver's H3 cells at
# resolution 7 (~1.2 km edge); the precise original is only in the restricted location_encrypted.
LOCATION_DECIMALS = 2


def pseudonymize(kind: str, value: str, key: bytes) -> str:
    """Keyed HMAC-SHA256 pseudonym (128 bits, hex), domain-separated by `kind` (msisdn, device)."""
    return hmac.digest(key, f"{kind}:{value}".encode(), "sha256").hex()[:32]


# IP parsing by the C library (inet_pton / inet_ntop) where it agrees with `ipaddress` (plain dotted quads and
# IPv6 without a zone), `ipaddress` for the rest (zones, malformed input). `make bench` profile: `ipaddress`
# parsing each IP twice (validate, truncate) was ~40% of bronze's decode CPU; tests/jobs/ingest/test_bronze_ingest.py
# checks both paths give the same answers.
_V6_KEEP = 6  # /48 = the first 6 of 16 bytes


def _is_ip(value: Any) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6) if isinstance(value, str) else ():
        try:
            socket.inet_pton(family, value)
            return True
        except (OSError, ValueError):
            pass
    try:  # also what a JSON upload may send that is not a string (ipaddress takes an int as an address)
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def truncate_ip(ip: str) -> str:
    """Network prefix for analytics: /24 for IPv4, /48 for IPv6 (raises ValueError if not an IP)."""
    try:
        packed = socket.inet_pton(socket.AF_INET, ip)
        return f"{packed[0]}.{packed[1]}.{packed[2]}.0/24"
    except (OSError, ValueError, TypeError):
        pass
    try:
        packed = socket.inet_pton(socket.AF_INET6, ip)
        return socket.inet_ntop(socket.AF_INET6, packed[:_V6_KEEP] + bytes(16 - _V6_KEEP)) + "/48"
    except (OSError, ValueError, TypeError):
        pass
    addr = ipaddress.ip_address(ip)
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


def coarse_coordinate(value: float | None) -> float | None:
    return None if value is None else round(value, LOCATION_DECIMALS)
