"""Convergence and multimodality diagnostics (ArviZ) and the overdispersion test."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import xarray as xr
from scipy.stats import chi2

from compare.settings import CI_PROB
from em import BinomialData, MixtureParams, log_likelihood, mixture_pmf

__all__ = [
    "CI_PROB",
    "rhat_ess",
    "invariant_draws",
    "chain_modes",
    "multimodal_intervals",
    "overdispersion_test",
]


def _dataset(arrays: dict) -> xr.Dataset:
    out = {}
    for name, arr in arrays.items():
        dims = ("chain", "draw") + tuple(f"{name}_dim_{i}" for i in range(arr.ndim - 2))
        out[name] = (dims, arr)
    return xr.Dataset(out)


def rhat_ess(arrays: dict) -> dict:
    """Rank-normalised split R-hat and bulk/tail ESS (ArviZ) of each (chain, draw, ...) array.

    Returns ``{name: {"rhat": [...], "ess_bulk": [...], "ess_tail": [...]}}`` with one value
    per trailing element, and the worst of each under ``"max_rhat"``/``"min_ess_bulk"``.
    """
    ds = _dataset(arrays)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant draws: R-hat is NaN
        rhat = az.rhat(ds)
        bulk = az.ess(ds, method="bulk")
        tail = az.ess(ds, method="tail")
    out = {}
    for name in arrays:
        r = np.atleast_1d(rhat[name].values).astype(float)
        b = np.atleast_1d(bulk[name].values).astype(float)
        t = np.atleast_1d(tail[name].values).astype(float)
        out[name] = {
            "rhat": _finite_list(r),
            "ess_bulk": _finite_list(b),
            "ess_tail": _finite_list(t),
            "max_rhat": _finite(np.nanmax(r) if np.any(np.isfinite(r)) else np.nan),
            "min_ess_bulk": _finite(np.nanmin(b) if np.any(np.isfinite(b)) else np.nan),
        }
    return out


def _finite(x: float):
    """A float for JSON, or None where the statistic is undefined (e.g. constant draws)."""
    x = float(x)
    return x if np.isfinite(x) else None


def _finite_list(a: np.ndarray) -> list:
    return [_finite(x) for x in a.reshape(-1)]


def invariant_draws(data: BinomialData, w: np.ndarray, p: np.ndarray, n: int) -> dict:
    """Label-invariant quantities per draw.

    The total log-likelihood and the fitted pmf over heads = 0..n (n: the most common
    number of trials).
    """
    params = MixtureParams(w, p)
    ll = np.asarray(log_likelihood(data, params))
    flat = params.weights.reshape(-1, params.n_components)
    flat_p = params.p.reshape(-1, params.n_components)
    pmf = np.stack([mixture_pmf(MixtureParams(a, b), n) for a, b in zip(flat, flat_p, strict=True)])
    return {"log_likelihood": ll, "pmf": pmf.reshape(w.shape[:2] + (n + 1,))}


def chain_modes(w: np.ndarray, p: np.ndarray, *, threshold: float = 2.0) -> dict:
    """Cluster chains by their relabelled location.

    Two chains share a mode when, for every parameter, their means differ by less than
    ``threshold`` pooled within-chain standard deviations; clusters are the connected
    groups (single linkage).
    """
    x = np.concatenate([p, w], axis=-1)  # (chain, draw, 2K)
    means, sds = x.mean(axis=1), x.std(axis=1, ddof=1)
    n = x.shape[0]
    parent = list(range(n))

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for a in range(n):
        for b in range(a + 1, n):
            pooled = np.sqrt(0.5 * (sds[a] ** 2 + sds[b] ** 2)) + 1e-12
            if np.all(np.abs(means[a] - means[b]) / pooled < threshold):
                parent[root(b)] = root(a)
    labels = [root(i) for i in range(n)]
    ids = {r: j for j, r in enumerate(dict.fromkeys(labels))}
    return {
        "n_modes": len(ids),
        "chain_mode": [ids[r] for r in labels],
        "chain_mean_p": means[:, : p.shape[-1]].tolist(),
        "threshold_sd": threshold,
    }


def multimodal_intervals(p: np.ndarray, prob: float = CI_PROB) -> dict:
    """ArviZ's multimodal HDI of each component's p: the intervals and how many there are."""
    ds = xr.Dataset({"p": (("chain", "draw", "component"), p)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # "found more modes than 10": the ten highest are kept, which is what is reported
        warnings.filterwarnings("ignore", message="found more modes than", category=UserWarning)
        hdi = az.hdi(ds, prob=prob, method="multimodal")["p"].transpose("component", ...)
    out = []
    for j in range(p.shape[-1]):
        rows = hdi.values[j]  # (mode, 2), NaN where there is no such mode
        rows = rows[np.all(np.isfinite(rows), axis=-1)]
        out.append([[float(a), float(b)] for a, b in rows])
    return {"prob": prob, "intervals": out, "n_intervals": [len(r) for r in out]}


def overdispersion_test(data: BinomialData) -> dict:
    """Pearson's dispersion test of one binomial against extra-binomial variation.

    X^2 = sum_i (h_i - n_i p)^2 / (n_i p (1 - p)) over sequences, with p the pooled
    proportion; under a single binomial X^2 ~ chi^2 with N - 1 degrees of freedom. A
    mixture of distinct coins inflates the variance, so only overdispersed data (a small
    upper-tail p-value) can favour one; under-dispersed data point to one coin.
    """
    h, n, c = (np.asarray(a, dtype=float) for a in (data.heads, data.trials, data.counts))
    p_hat = float((c * h).sum() / (c * n).sum())
    df = max(data.n_sequences - 1, 1)
    if p_hat in (0.0, 1.0):
        stat = 0.0
    else:
        stat = float((c * (h - n * p_hat) ** 2 / (n * p_hat * (1 - p_hat))).sum())
    p_value = float(chi2.sf(stat, df))
    return {
        "test": "Pearson dispersion, chi-square with N - 1 degrees of freedom",
        "p_pooled": p_hat,
        "statistic": stat,
        "df": df,
        "dispersion_ratio": stat / df,
        "p_value": p_value,
        "alpha": 0.05,
        "overdispersed": p_value < 0.05,
    }
