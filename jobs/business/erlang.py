"""Erlang B: blocking probability of a loss system and the channels a grade of service needs.

Erlang's loss formula gives the probability that a call offered to `n` channels carrying `A` Erlangs of
Poisson traffic finds every channel busy and is lost (blocked calls cleared):

    B(A, n) = (A^n / n!) / sum_{k=0..n} A^k / k!

Evaluated literally it overflows for realistic trunk groups (A^n and n! for n in the thousands), so it is
computed with the recurrence

    B(A, 0) = 1,    B(A, n) = A * B(A, n-1) / (n + A * B(A, n-1))

which only ever handles numbers in [0, 1] and n: stable for A = 5000 Erlangs and beyond.
Pure Python, no Spark: used by jobs.business.capacity_busy_hour and unit-tested against published tables.
"""

from __future__ import annotations

import math


def _check_traffic(traffic: float) -> float:
    traffic = float(traffic)
    if not math.isfinite(traffic) or traffic < 0:
        raise ValueError(f"offered traffic must be a finite number of Erlangs >= 0, got {traffic!r}")
    return traffic


def erlang_b(traffic: float, channels: int) -> float:
    """Blocking probability of `channels` channels offered `traffic` Erlangs.

    Contract: result in [0, 1]; 1 for 0 channels; 0 for 0 traffic on >= 1 channel; decreasing in
    `channels`, increasing in `traffic`; no overflow for any finite traffic.
    """
    traffic = _check_traffic(traffic)
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 0:
        raise ValueError(f"channels must be an integer >= 0, got {channels!r}")
    blocking = 1.0
    for n in range(1, channels + 1):
        carried = traffic * blocking
        blocking = carried / (n + carried)
    return blocking


def erlang_b_channels(traffic: float, *, blocking: float) -> int:
    """The smallest number of channels n with erlang_b(traffic, n) <= blocking (the grade of service).

    Contract: `blocking` in (0, 1); 0 channels for 0 traffic; otherwise n >= 1 and
    erlang_b(traffic, n - 1) > blocking. Runs the recurrence once, so it costs O(n).
    """
    traffic = _check_traffic(traffic)
    target = float(blocking)
    if not 0 < target < 1:
        raise ValueError(f"blocking (grade of service) must be in (0, 1), got {blocking!r}")
    if traffic == 0:
        return 0
    b, n = 1.0, 0
    while b > target:
        n += 1
        carried = traffic * b
        b = carried / (n + carried)
    return n
