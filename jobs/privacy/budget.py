"""Exact privacy budgets and the ledger's decision: reuse, spend or refuse a release.

Epsilon is held as a `Fraction` and written to `audit.privacy_budget` as an exact string ("0.125", or
"1/3" when the decimal would not terminate), so sums over a ledger never drift the way floats do
(0.1 + 0.2 != 0.3). Modelled on Tumult Analytics' `PureDPBudget`: a frozen value that refuses to exist
with a negative epsilon.

`decide_release` is pure: given the ledger rows of a dataset and period, the release ids actually
published, the requested budget and the cap, it returns what to do. `jobs.publish.public_usage_stats.run`
applies it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Iterable, Literal, Sequence

Exact = Fraction | Decimal | int | str


def exact(value: Exact) -> Fraction:
    """An exact Fraction from a Fraction, Decimal, int or a string "0.125" / "1/8"; floats are refused."""
    if isinstance(value, bool) or isinstance(value, float):
        raise TypeError(f"privacy budgets are exact: pass a Fraction, Decimal, int or decimal string, not {value!r}")
    if isinstance(value, str):
        try:
            return Fraction(value.strip())
        except ValueError:
            raise ValueError(f"not an exact number: {value!r} (expected e.g. '0.25' or '1/3')") from None
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError(f"not a finite number: {value}")
    return Fraction(value)


def exact_str(value: Fraction) -> str:
    """"0.125" when the decimal terminates, else "p/q"; `exact(exact_str(x)) == x` always."""
    denominator = value.denominator
    twos = fives = 0
    while denominator % 2 == 0:
        denominator //= 2
        twos += 1
    while denominator % 5 == 0:
        denominator //= 5
        fives += 1
    if denominator != 1:
        return f"{value.numerator}/{value.denominator}"
    places = max(twos, fives)
    text = format(Decimal(value.numerator * 10**places // value.denominator).scaleb(-places), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


@dataclass(frozen=True)
class PrivacyBudget:
    """A pure (delta = 0) or approximate differential privacy budget with exact epsilon and delta."""

    epsilon: Fraction
    delta: Fraction = Fraction(0)

    def __post_init__(self) -> None:
        epsilon, delta = exact(self.epsilon), exact(self.delta)
        if epsilon < 0:
            raise ValueError(f"Epsilon must be non-negative. Cannot construct a PrivacyBudget with epsilon of {exact_str(epsilon)}")
        if not 0 <= delta < 1:
            raise ValueError(f"Delta must be in [0, 1). Cannot construct a PrivacyBudget with delta of {exact_str(delta)}")
        object.__setattr__(self, "epsilon", epsilon)
        object.__setattr__(self, "delta", delta)

    @classmethod
    def of(cls, epsilon: Exact, delta: Exact = 0) -> "PrivacyBudget":
        return cls(exact(epsilon), exact(delta))

    def __add__(self, other: "PrivacyBudget") -> "PrivacyBudget":
        # basic sequential composition
        return PrivacyBudget(self.epsilon + other.epsilon, self.delta + other.delta)

    def split(self, parts: int) -> "PrivacyBudget":
        """One of `parts` equal shares (they compose back to exactly this budget)."""
        if parts < 1:
            raise ValueError(f"cannot split a budget into {parts} parts")
        return PrivacyBudget(self.epsilon / parts, self.delta / parts)

    def exceeds(self, cap: "PrivacyBudget") -> bool:
        return self.epsilon > cap.epsilon or self.delta > cap.delta

    @property
    def epsilon_str(self) -> str:
        return exact_str(self.epsilon)

    @property
    def delta_str(self) -> str:
        return exact_str(self.delta)


ZERO = PrivacyBudget(Fraction(0))


def total(budgets: Iterable[PrivacyBudget]) -> PrivacyBudget:
    result = ZERO
    for budget in budgets:
        result = result + budget
    return result


# ----------------------------------------------------------------------------- the ledger's decision

@dataclass(frozen=True)
class LedgerEntry:
    """One audit.privacy_budget row, as the decision needs it."""

    release_id: str
    dataset: str
    period: date
    budget: PrivacyBudget
    status: str  # spent | refused
    recorded_at: datetime


@dataclass(frozen=True)
class ReleaseDecision:
    action: Literal["reuse", "spend", "refuse"]
    dataset: str
    period: date
    release_id: str  # the release reused or about to be spent; for a refusal, the refused attempt's id
    requested: PrivacyBudget
    spent_before: PrivacyBudget
    cap: PrivacyBudget
    reason: str


class PrivacyBudgetExceeded(RuntimeError):
    """A release would take a dataset and period over its epsilon cap; nothing was published."""

    def __init__(self, refusals: Sequence[ReleaseDecision]) -> None:
        self.refusals = tuple(refusals)
        detail = "; ".join(
            f"{d.dataset} for {d.period}: already spent epsilon {d.spent_before.epsilon_str}, requested "
            f"{d.requested.epsilon_str}, cap {d.cap.epsilon_str}" for d in self.refusals
        )
        super().__init__(
            f"privacy budget exceeded, nothing published: {detail}. The refusal is recorded in audit.privacy_budget; "
            "publish the existing release (run without re-release) or raise dp.epsilon_cap deliberately."
        )


def release_id(dataset: str, period: date, number: int) -> str:
    return f"{dataset}/{period.isoformat()}/{number}"


def decide_release(
    entries: Iterable[LedgerEntry], *, dataset: str, period: date, requested: PrivacyBudget, cap: PrivacyBudget,
    published_release_ids: set[str], rerelease: bool, run_id: str,
) -> ReleaseDecision:
    """Reuse the published release of (dataset, period), spend `requested` on a new one, or refuse.

    - A published release exists and no re-release is asked for: reuse it, spending nothing.
    - Otherwise a new release spends `requested` if spent-before + requested <= cap, else it is refused.
    A release the ledger records as spent but whose rows were never written (a run that failed between
    the ledger and the table write) counts as spent and is not reused: its noise is lost with it.
    """
    mine = [e for e in entries if e.dataset == dataset and e.period == period]
    spent = sorted((e for e in mine if e.status == "spent"), key=lambda e: (e.recorded_at, e.release_id))
    spent_before = total(e.budget for e in spent)
    latest = spent[-1] if spent else None
    common = {"dataset": dataset, "period": period, "requested": requested, "spent_before": spent_before, "cap": cap}
    if latest is not None and latest.release_id in published_release_ids and not rerelease:
        return ReleaseDecision("reuse", release_id=latest.release_id, reason="already released: stored noisy values reused",
                               **common)  # type: ignore[arg-type]
    if latest is None:
        reason = "first release"
    elif latest.release_id in published_release_ids:
        reason = f"re-release requested (replaces {latest.release_id})"
    else:
        reason = f"{latest.release_id} was spent but never published (failed run); released again"
    if (spent_before + requested).exceeds(cap):
        return ReleaseDecision(
            "refuse", release_id=f"{dataset}/{period.isoformat()}/refused/{run_id}",
            reason=(f"would exceed the cap: spent {spent_before.epsilon_str} + requested {requested.epsilon_str} "
                    f"> cap {cap.epsilon_str} ({reason})"),
            **common,  # type: ignore[arg-type]
        )
    return ReleaseDecision("spend", release_id=release_id(dataset, period, len(spent) + 1), reason=reason, **common)  # type: ignore[arg-type]
