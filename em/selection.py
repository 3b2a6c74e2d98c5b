"""How many components: AIC, BIC and ICL of EM fits over a range of K.

All three are on the "lower is better" scale, with N the number of sequences and
2K - 1 free parameters (K - 1 weights, K biases):

- AIC = -2 log L + 2 (2K - 1)
- BIC = -2 log L + (2K - 1) log N
- ICL = BIC + 2 EN, EN = -sum_i sum_j r_ij log r_ij the entropy of the classification
  (Biernacki, Celeux & Govaert, 2000), which penalises components that overlap.
"""

from __future__ import annotations

import re

import numpy as np
from scipy.special import xlogy

from em.core import e_step
from em.data import BinomialData
from em.fitting import FitResult, fit_data

__all__ = ["parse_components", "information_criteria", "select_components"]


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
        return list(range(lo, hi + 1))
    if re.fullmatch(r"\d+", s) and int(s) >= 1:
        return [int(s)]
    raise ValueError(f"--components must be an integer >= 1 or a range like 1-4, got {s!r}")


def information_criteria(fit: FitResult) -> dict:
    """AIC, BIC and ICL of a fit (its best estimate), with the log-likelihood and entropy."""
    data: BinomialData = fit.data
    k = fit.n_components
    d = 2 * k - 1
    n = data.n_sequences
    ll = fit.log_likelihood
    resp = e_step(data, fit.params).resp
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
    }


def select_components(data: BinomialData, ks, **options) -> tuple[list[dict], dict, list]:
    """EM with restarts for each K; criteria per K and the K each prefers (lowest).

    Returns ``(table, preferred, fits)``.
    """
    fits = [fit_data(data, k, **options) for k in ks]
    table = [information_criteria(f) for f in fits]
    preferred = {c: min(table, key=lambda row, c=c: row[c])["k"] for c in ("aic", "bic", "icl")}
    return table, preferred, fits
