"""Small helpers every part of the generator uses: time units, seeded UUIDs and draws, a UTC day's first millisecond."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime

DAY_MS = 86_400_000
HOUR_MS = 3_600_000


def _uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _weighted(rng: random.Random, options: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


def _digits(rng: random.Random, n: int) -> str:
    return str(rng.randrange(10**n)).zfill(n)


def _day_start_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
