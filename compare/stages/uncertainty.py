"""EM's standard errors beside the posterior's spread, where both mean something."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from compare.settings import CI_PROB
from compare.stages.fits import EMStage
from compare.stages.identifiability import Identifiability
from compare.stages.labels import Labels
from em import BinomialData, StandardErrors, standard_errors

__all__ = ["Uncertainty", "uncertainty_stage", "draw_stats"]


def draw_stats(x: np.ndarray, prob: float = CI_PROB) -> dict:
    """Mean, sd and the equal-tailed interval of each trailing element of (chain, draw, K)."""
    flat = x.reshape(-1, x.shape[-1])
    lo, hi = np.quantile(flat, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    pct = round(prob * 100)
    return {
        "mean": flat.mean(axis=0).tolist(),
        "sd": flat.std(axis=0, ddof=1).tolist(),
        f"eti{pct}_lower": lo.tolist(),
        f"eti{pct}_upper": hi.tolist(),
    }


@dataclass(frozen=True, eq=False)
class Uncertainty:
    """Standard errors of EM's ML estimate (observed information) and the posterior's sd."""

    estimate: dict
    se: StandardErrors
    posterior: dict | None
    comparable: bool
    note: str

    def to_dict(self) -> dict:
        """results.json's ``uncertainty`` section."""
        z = float(norm.ppf(0.5 + CI_PROB / 2))
        intervals = None
        if not self.se.singular:
            intervals = {
                key: [
                    [float(x - z * s), float(x + z * s)]
                    for x, s in zip(self.estimate[key], getattr(self.se, key), strict=True)
                ]
                for key in ("p", "weights")
            } | {"kind": f"Wald, estimate +/- {z:.3f} SE ({round(CI_PROB * 100)}%)"}
        return {
            "em_estimate": self.estimate,
            "em_standard_errors": self.se.to_dict(),
            "em_intervals": intervals,
            "posterior": self.posterior,
            "comparable": self.comparable,
            "note": self.note,
        }


def uncertainty_stage(
    data: BinomialData, em: EMStage, ident: Identifiability, labels: Labels
) -> Uncertainty:
    """Standard errors at EM's ML fit; the relabelled posterior's sd where labels exist."""
    ml = em.ml
    se = standard_errors(data, ml.params)
    posterior = None
    if labels.identified:
        posterior = {"w": draw_stats(labels.weights), "p": draw_stats(labels.p)}
    comparable = bool(ident.identifiable and not se.singular and ml.converged)
    if comparable:
        note = ""
    elif not ml.converged:
        note = "not compared: EM's ML fit is not certified"
    else:
        note = "not compared: " + (se.reason or "the fit is not identifiable")
    return Uncertainty(
        {"weights": ml.weights.tolist(), "p": ml.p.tolist()}, se, posterior, comparable, note
    )
