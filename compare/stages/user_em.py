"""Bring your own EM: judge an estimate from any program beside the built-in EM.

The estimate (weights and p, and optionally the log-likelihood its program reported) is
checked three ways: is the claimed log-likelihood right (recomputed here with the full
binomial log pmf); how far is the point from an optimum (its certified gap, and the optimum
that certified EM reaches from it); and does it agree with the posterior mode under the
same rules as the built-in EM.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compare.agreement import compare_fits
from compare.settings import CI_PROB, TOLERANCES
from compare.stages.agreement import Agreement
from compare.stages.identifiability import Identifiability
from compare.stages.labels import Labels
from em import BinomialData, MixtureParams, Run, log_likelihood, log_prior, run_em
from em import _validation as v

__all__ = ["UserEstimate", "UserEM", "read_estimate", "user_em_stage"]

#: A claimed log-likelihood is right when it is within this many nats, relative to
#: max(1, |log-likelihood|), of the recomputed one (rounding and printing).
CLAIM_RTOL = 1e-6


@dataclass(frozen=True, eq=False)
class UserEstimate:
    """An estimate from another program: ``params`` and the log-likelihood it claimed."""

    params: MixtureParams
    claimed: float | None
    source: str


def read_estimate(path, k: int) -> UserEstimate:
    """Read ``{"weights": [...], "p": [...], "log_likelihood": ...}`` (the last optional).

    Raises ValueError with one line naming the file and the key for anything else.
    """
    where = f"--em-result {path}"
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{where}: cannot read it: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(raw, dict) or "weights" not in raw or "p" not in raw:
        raise ValueError(f"{where}: expected an object with keys 'weights' and 'p'")
    return estimate_from(raw["weights"], raw["p"], raw.get("log_likelihood"), k, where)


def estimate_from(weights, p, claimed, k: int, where: str) -> UserEstimate:
    """Check an estimate's values (K weights on the simplex, K biases in [0, 1])."""
    w = v.check_weights(weights, k, f"{where}: weights")
    pp = v.check_p(p, k, f"{where}: p")
    if claimed is not None:
        if isinstance(claimed, bool) or not isinstance(claimed, (int, float)):
            raise ValueError(f"{where}: log_likelihood must be a number, got {claimed!r}")
        if not np.isfinite(claimed):
            raise ValueError(f"{where}: log_likelihood must be finite, got {claimed!r}")
        claimed = float(claimed)
    return UserEstimate(MixtureParams(w, pp), claimed, where)


@dataclass(frozen=True, eq=False)
class UserEM:
    """The verdicts on an estimate from another program.

    Attributes
    ----------
    estimate : UserEstimate
    log_likelihood : float
        Recomputed at the estimate (full binomial log pmf, coefficient included).
    claim : str
        ``"right"``, ``"without the binomial coefficient"``, ``"wrong"`` or ``"none"``.
    at_point : Run
        The certificate at the estimate itself (no step taken).
    optimum : Run
        Certified EM (the same objective as the built-in comparison) from the estimate.
    comparison : dict
        The optimum reached from the estimate's *point* against the posterior mode.
    agree : bool or None
        The estimate agrees with the posterior mode (None if no mode is certified).
    in_intervals : list of bool or None
        Per parameter, whether the estimate lies in the relabelled posterior's interval
        (None where labels are not identified).
    """

    estimate: UserEstimate
    log_likelihood: float
    claim: str
    coefficient: float
    at_point: Run
    optimum: Run
    comparison: dict | None
    agree: bool | None
    in_intervals: dict | None

    @property
    def distance(self) -> float:
        """Nats between the estimate's objective and the optimum EM reaches from it."""
        return float(self.optimum.objective - self.at_point.objective)

    def to_dict(self) -> dict:
        """results.json's ``user_em`` section."""
        gap = self.at_point.certificate.to_dict()
        return {
            "source": self.estimate.source,
            "weights": self.estimate.params.weights.tolist(),
            "p": self.estimate.params.p.tolist(),
            "log_likelihood_claimed": self.estimate.claimed,
            "log_likelihood": self.log_likelihood,
            "claim": self.claim,
            "binomial_coefficient_constant": self.coefficient,
            "gap": gap["gap"],
            "certificate": gap,
            "distance_to_optimum": self.distance,
            "optimum": {
                "weights": self.optimum.params.weights.tolist(),
                "p": self.optimum.params.p.tolist(),
                "log_likelihood": self.optimum.log_likelihood,
                "log_posterior": self.optimum.log_posterior,
                "converged": self.optimum.converged,
                "gap": self.optimum.certificate.to_dict()["gap"],
                "n_iter": self.optimum.n_iter,
            },
            "comparison": self.comparison,
            "agree": self.agree,
            "in_posterior_intervals": self.in_intervals,
            "ci_prob": CI_PROB,
        }


def _claim(claimed: float | None, ll: float, coef: float) -> str:
    if claimed is None:
        return "none"
    tol = CLAIM_RTOL * max(1.0, abs(ll))
    if abs(claimed - ll) <= tol:
        return "right"
    if abs(claimed - (ll - coef)) <= tol:
        return "without the binomial coefficient"
    return "wrong"


def _intervals(est: MixtureParams, labels: Labels) -> dict | None:
    if not labels.identified:
        return None
    lo_q, hi_q = (1 - CI_PROB) / 2, (1 + CI_PROB) / 2
    # The relabelled draws follow EM's components, by increasing p: so does the estimate,
    # each weight staying with its own bias.
    est = est.sorted()
    out = {}
    for name, draws, values in (("p", labels.p, est.p), ("weights", labels.weights, est.weights)):
        flat = draws.reshape(-1, draws.shape[-1])
        lo, hi = np.quantile(flat, [lo_q, hi_q], axis=0)
        out[name] = [bool(a <= x <= b) for x, a, b in zip(values, lo, hi, strict=True)]
    return out


def user_em_stage(
    data: BinomialData,
    estimate: UserEstimate,
    prior,
    agreement: Agreement,
    ident: Identifiability,
    labels: Labels,
) -> UserEM:
    """Judge ``estimate``: its claim, its distance to an optimum, its agreement."""
    params = estimate.params
    ll = float(log_likelihood(data, params))
    coef = float(data._log_binom_coef)
    at_point = run_em(data, params, prior=prior, max_iter=0, start="your estimate")
    optimum = run_em(data, params, prior=prior, start="your estimate")
    comparison = agree = None
    mode = agreement.mode
    if mode is not None and mode.polished.converged:
        obj = ll + float(log_prior(params, prior))
        comparison = compare_fits(
            params.sorted(),
            obj,
            ll,
            mode.polished.params,
            mode.polished.objective,
            mode.polished.log_likelihood,
            trials=data.trials,
            counts=data.counts,
            identifiable=ident.identifiable,
            tolerances=TOLERANCES,
        )
        agree = bool(comparison["agree"])
    return UserEM(
        estimate,
        ll,
        _claim(estimate.claimed, ll, coef),
        coef,
        at_point,
        optimum,
        comparison,
        agree,
        _intervals(params, labels),
    )
