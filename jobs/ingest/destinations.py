"""Destination classes of dialled numbers: what billing rates a call by, decided at bronze before pseudonymization.

The callee's number is pseudonymized at the door, so whatever billing needs to know about it has to be derived
there: the class of the destination, never the number. Classification uses libphonenumber's metadata (the
`phonenumbers` port, kept current with the ITU numbering plans) instead of a hand-kept prefix table:

    premium          premium-rate or shared-cost numbers, and non-geographic international networks
                     (+881 / +882 / +883 satellite and global services), which are billed at premium rates
    international    a valid number of another country calling code than the caller's
    domestic_mobile  same country calling code, a mobile number (NANP's "fixed line or mobile" counts as mobile:
                     the plan cannot tell them apart, and North American carriers rate them alike)
    domestic_fixed   same country calling code, a fixed line, toll-free, VoIP or personal number
    unknown          a number the numbering plan does not know as valid (unassigned ranges, short codes)

`on_net` (a callee who is one of our subscribers) is not decided here: it needs the subscriber directory, and
billing joins the callee pseudonym to it.
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneNumberType

from lake_layout.reporting_units import DESTINATION_CLASSES

_PREMIUM_TYPES = {PhoneNumberType.PREMIUM_RATE, PhoneNumberType.SHARED_COST}
_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE, PhoneNumberType.PAGER}
_NON_GEOGRAPHIC_REGION = "001"  # libphonenumber's region for +800, +808, +870, +878, +881, +882, +883, +888, +979


@lru_cache(maxsize=1 << 16)
def destination_class(caller_e164: str, callee_e164: str) -> str:
    """The class of `callee_e164` dialled by `caller_e164` (both E.164 strings; bronze validates them).

    Contract: returns one of DESTINATION_CLASSES other than on_net; never raises for a string input.
    """
    try:
        callee = phonenumbers.parse(callee_e164, None)
        caller = phonenumbers.parse(caller_e164, None)
    except phonenumbers.NumberParseException:
        return "unknown"
    region = phonenumbers.region_code_for_number(callee)
    if region == _NON_GEOGRAPHIC_REGION or callee.country_code in (881, 882, 883):
        return "premium"
    if not phonenumbers.is_valid_number(callee):
        return "unknown"
    kind = phonenumbers.number_type(callee)
    if kind in _PREMIUM_TYPES:
        return "premium"
    if callee.country_code != caller.country_code:
        return "international"
    return "domestic_mobile" if kind in _MOBILE_TYPES else "domestic_fixed"
