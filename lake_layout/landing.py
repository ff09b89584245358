"""The landing zone's object-key layout: the one place it is written.

    <prefix>/upload_date=YYYY-MM-DD/hour=HH/<received_at_ms>-<batch_id>.<pb|json>.gz    client uploads
    directory/export_date=YYYY-MM-DD/subscribers.jsonl.gz                              subscriber directory
    auth/login_date=YYYY-MM-DD/auth.jsonl.gz                                             authentication log

`upload_date` / `hour` are the collector's receive time in UTC. The collector names objects
after its receive time, so `received_at_ms` travels with the object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

ENCODING_SUFFIX = {"protobuf": ".pb.gz", "json": ".json.gz"}

_KEY_RE = re.compile(
    r"(?:^|/)upload_date=(?P<date>\d{4}-\d{2}-\d{2})/hour=(?P<hour>\d{2})/"
    r"(?P<received>\d{13})-(?P<batch>[^/]+?)(?P<suffix>\.pb\.gz|\.json\.gz)$"
)


@dataclass(frozen=True)
class LandingKey:
    upload_date: date
    hour: int
    received_at_ms: int
    batch_id: str
    encoding: str


def landing_object_key(prefix: str, *, received_at_ms: int, batch_id: str, encoding: str) -> str:
    received = datetime.fromtimestamp(received_at_ms / 1000, tz=UTC)
    return (
        f"{prefix.strip('/')}/upload_date={received:%Y-%m-%d}/hour={received:%H}/"
        f"{received_at_ms:013d}-{batch_id}{ENCODING_SUFFIX[encoding]}"
    )


def upload_date_prefix(prefix: str, day: date) -> str:
    """Key prefix of every object the collector received on `day` (UTC)."""
    return f"{prefix.strip('/')}/upload_date={day:%Y-%m-%d}/"


def parse_landing_key(key: str) -> LandingKey | None:
    """The parts of a well-formed landing key, or None if the key does not follow the layout."""
    match = _KEY_RE.search(key)
    if match is None:
        return None
    return LandingKey(
        upload_date=date.fromisoformat(match["date"]),
        hour=int(match["hour"]),
        received_at_ms=int(match["received"]),
        batch_id=match["batch"],
        encoding="json" if match["suffix"] == ".json.gz" else "protobuf",
    )


# The subscriber directory (CRM) exports its consent history once a day into the landing bucket, beside
# the uploads:
#
#     <directory prefix>/export_date=YYYY-MM-DD/subscribers.jsonl.gz
DIRECTORY_PREFIX = "directory"
DIRECTORY_EXPORT_FILE = "subscribers.jsonl.gz"


def directory_export_key(day: date, *, prefix: str = DIRECTORY_PREFIX) -> str:
    """Key of the subscriber directory export of `day` under `prefix` (the directory's prefix root):
    gzip JSON Lines, one consent state per line."""
    root = prefix.strip("/")
    if not root:
        raise ValueError("the directory export prefix must not be empty (the bucket root holds no exports)")
    return f"{root}/export_date={day.isoformat()}/{DIRECTORY_EXPORT_FILE}"


# The identity provider exports the day's authentication log (login success / failure per subscriber, device,
# IP and time) into the landing bucket as well:
#
#     <auth prefix>/login_date=YYYY-MM-DD/auth.jsonl.gz
AUTH_PREFIX = "auth"
AUTH_LOG_FILE = "auth.jsonl.gz"


def auth_log_key(day: date, *, prefix: str = AUTH_PREFIX) -> str:
    """Key of the authentication log of `day` (UTC login times) under `prefix`: gzip JSON Lines, one login attempt
    per line."""
    root = prefix.strip("/")
    if not root:
        raise ValueError("the auth log prefix must not be empty (the bucket root holds no auth logs)")
    return f"{root}/login_date={day.isoformat()}/{AUTH_LOG_FILE}"
