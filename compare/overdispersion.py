"""Is there anything for a mixture to explain? Tarone's score test for overdispersion.

(Interim version; see the overdispersion branch for the full module and its size tests.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from compare.settings import ALPHA
from em import BinomialData

__all__ = ["OverdispersionTest", "overdispersion_test"]


@dataclass(frozen=True)
class OverdispersionTest:
    """Tarone's (1979) score test of one binomial against beta-binomial alternatives."""

    statistic: float | None
    z: float | None
    p_value: float | None
    p_pooled: float
    testable: bool
    reason: str
    alpha: float

    @property
    def verdict(self) -> bool | None:
        """True: evidence of overdispersion; False: no evidence; None: not testable."""
        return None if not self.testable else bool(self.p_value < self.alpha)

    @property
    def text(self) -> str:
        """The finding, as evidence and not proof."""
        if not self.testable:
            return f"overdispersion is not testable here: {self.reason}"
        what = "evidence" if self.verdict else "no evidence"
        return (
            f"{what} of overdispersion relative to one binomial "
            f"(Tarone's test, p = {self.p_value:.3g})"
        )

    def to_dict(self) -> dict:
        """Plain form for results.json."""
        return {
            "test": "Tarone (1979) score test for binomial overdispersion, one-sided",
            "statistic": self.statistic,
            "z": self.z,
            "p_value": self.p_value,
            "p_pooled": self.p_pooled,
            "testable": self.testable,
            "reason": self.reason,
            "alpha": self.alpha,
            "overdispersed": self.verdict,
            "text": self.text,
        }


def overdispersion_test(data: BinomialData, alpha: float = ALPHA) -> OverdispersionTest:
    """Tarone's Z = S / sqrt(2 sum n(n - 1)), S = sum (y - n p)^2 / (p (1 - p)) - sum n."""
    h, n, c = (np.asarray(a, dtype=float) for a in (data.heads, data.trials, data.counts))
    p = float((c * h).sum() / (c * n).sum())
    denom = float((c * n * (n - 1)).sum())
    if denom == 0:
        return OverdispersionTest(
            None,
            None,
            None,
            p,
            False,
            "every sequence has one trial: a mixture of Bernoullis is a Bernoulli",
            alpha,
        )
    if p in (0.0, 1.0):
        return OverdispersionTest(
            None,
            None,
            None,
            p,
            False,
            f"every trial came out {'tails' if p == 0 else 'heads'}",
            alpha,
        )
    s = float((c * (h - n * p) ** 2).sum() / (p * (1 - p)) - (c * n).sum())
    z = s / np.sqrt(2 * denom)
    return OverdispersionTest(s, float(z), float(norm.sf(z)), p, True, "", alpha)
