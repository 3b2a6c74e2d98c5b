"""How many components: AIC, BIC and ICL of EM fits over a range of K.

All three are on the "lower is better" scale, with N the number of sequences and
2K - 1 free parameters (K - 1 weights, K biases):

- AIC = -2 log L + 2 (2K - 1)
- BIC = -2 log L + (2K - 1) log N
- ICL = BIC + 2 EN, EN = -sum_i sum_j r_ij log r_ij the entropy of the classification
  (Biernacki, Celeux & Govaert, 2000), which penalises components that overlap.

When the fit collapses (components coincide or are empty), the entropy is that of the
*reduced* fit, tied components merged and empty ones dropped (the best optimum's
``reduced`` mixture, from :func:`em.fitting.reduced_mixture`). Coinciding components
split their weight anywhere along a ridge of equal likelihood, and the raw entropy
depends on where EM stopped on it (on the chapter's data with K = 3, seeds 0-5 gave ICL
from 93.2 to 115.4); merged, every point of the ridge gives the same classification and
so the same ICL (85.28 there). BIC's parameter count stays 2K - 1: it is the criterion
of the K-component model, whose maximum the collapsed fit is.
"""

from __future__ import annotations

import re

import numpy as np
from scipy.special import xlogy

from em.core import MixtureParams, e_step
from em.data import BinomialData
from em.fitting import FitResult, fit_data, reduce_params

__all__ = ["parse_components", "information_criteria", "select_components", "MAX_RANGE"]

#: Model selection fits every K of a range (and samples each in a report): at most this many.
MAX_RANGE = 30


def parse_components(text) -> list[int]:
    """``3`` -> [3]; ``1-4`` -> [1, 2, 3, 4]; a ValueError names the bad value."""
    s = str(text).strip()
    m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", s)
    if m:
        lo, hi = int(m.group(1)), int(m.group(2))
        if lo < 1 or hi < lo:
            raise ValueError(
                f"--components range must be LOW-HIGH with 1 <= LOW <= HIGH, got {s!r}"
            )
        if hi - lo + 1 > MAX_RANGE:
            raise ValueError(
                f"--components range must cover at most {MAX_RANGE} values of K, got {s!r}"
            )
        return list(range(lo, hi + 1))
    if re.fullmatch(r"\d+", s) and int(s) >= 1:
        return [int(s)]
    raise ValueError(f"--components must be an integer >= 1 or a range like 1-4, got {s!r}")


def information_criteria(fit: FitResult) -> dict:
    """AIC, BIC and ICL of a fit (its best estimate), with the log-likelihood and entropy.

    Parameters
    ----------
    fit : FitResult
        EM with restarts for one K.

    Returns
    -------
    dict
        ``k``, ``log_likelihood``, ``n_parameters`` (2K - 1), ``aic``, ``bic``, ``icl``,
        ``entropy`` (the classification entropy EN of the reduced fit, in nats) and
        ``effective_components`` (the reduced fit's number of components).

    Notes
    -----
    AIC and BIC use the best fit's log-likelihood and 2K - 1 parameters. ICL = BIC + 2 EN
    with EN computed at the reduced fit (tied components merged, empty ones dropped), so
    that every point of a collapsed fit's ridge of equal likelihood gives the same ICL;
    for a fit that does not collapse the reduced fit is the fit itself.
    """
    data: BinomialData = fit.data
    k = fit.n_components
    d = 2 * k - 1
    n = data.n_sequences
    ll = fit.log_likelihood
    reduced = _reduced(fit)
    resp = e_step(data, reduced).resp
    entropy = float(-(data.counts @ xlogy(resp, resp).sum(axis=1))) + 0.0  # no -0.0
    bic = -2 * ll + d * np.log(n)
    return {
        "k": k,
        "log_likelihood": ll,
        "n_parameters": d,
        "aic": -2 * ll + 2 * d,
        "bic": float(bic),
        "icl": float(bic + 2 * entropy),
        "entropy": entropy,
        "effective_components": reduced.n_components,
    }


def _reduced(fit: FitResult) -> MixtureParams:
    """The best estimate with tied components merged and empty ones dropped.

    The best optimum's ``reduced`` mixture when that optimum is the best estimate (the
    best run converged); otherwise :func:`reduce_params` of the estimate.
    """
    if fit.optima and fit.optima[0].params is fit.params:
        return fit.optima[0].reduced
    return reduce_params(fit.data, fit.params)


def select_components(data: BinomialData, ks, **options) -> tuple[list[dict], dict, list]:
    """EM with restarts for each K; criteria per K and the K each prefers (lowest).

    Returns ``(table, preferred, fits)``.
    """
    fits = [fit_data(data, k, **options) for k in ks]
    table = [information_criteria(f) for f in fits]
    preferred = {c: min(table, key=lambda row, c=c: row[c])["k"] for c in ("aic", "bic", "icl")}
    return table, preferred, fits
