"""How many components, on the Bayesian side: PSIS-LOO per K and ArviZ's comparison.

The posterior's ``log_likelihood`` group holds one term per distinct outcome: the
log-likelihood of one sequence with that outcome. Identical sequences have identical
leave-one-out terms, so PSIS-LOO is computed once per distinct outcome and each term is
weighted by its count: the per-sequence LOO at the cost of the compressed one (a test
checks it equals ArviZ's LOO on the sequences written out one by one).
"""

from __future__ import annotations

import math
import warnings

import arviz as az
import numpy as np
import xarray as xr
from scipy.special import logsumexp

from em import BinomialData

__all__ = ["weighted_loo", "arviz_compare"]

# az.compare needs the per-sequence terms written out; above this many numbers
# (sequences x draws) it is skipped and the weighted LOO stands alone.
_MAX_EXPANDED = 20_000_000


def _tree(idata, values: np.ndarray, dim: str) -> xr.DataTree:
    return xr.DataTree.from_dict(
        {
            "posterior": idata["posterior"].to_dataset(),
            "log_likelihood": xr.Dataset({"heads": (("chain", "draw", dim), values)}),
        }
    )


def weighted_loo(data: BinomialData, idata) -> dict:
    """Per-sequence PSIS-LOO from the per-outcome terms, weighted by the counts."""
    ll = np.asarray(idata["log_likelihood"]["heads"].transpose("chain", "draw", "outcome"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ warns about high Pareto k; reported below
        res = az.loo(_tree(idata, ll, "outcome"), pointwise=True)
    elpd_i = np.asarray(res.elpd_i.values, dtype=float)
    k_i = np.asarray(res.pareto_k.values, dtype=float)
    c = data.counts.astype(float)
    n = c.sum()
    elpd = float(c @ elpd_i)
    mean = elpd / n
    se = float(np.sqrt(n * (c @ (elpd_i - mean) ** 2) / (n - 1))) if n > 1 else 0.0
    flat = ll.reshape(-1, ll.shape[-1])
    lpd_i = logsumexp(flat, axis=0) - np.log(flat.shape[0])
    return {
        "elpd_loo": elpd,
        "se": se,
        "p_loo": float(c @ (lpd_i - elpd_i)),
        "max_pareto_k": float(np.max(k_i)),
        "good_k": float(res.good_k),
        "n_high_pareto_k": int(c[k_i > res.good_k].sum()),
    }


def arviz_compare(data: BinomialData, idatas: dict[int, object]) -> list[dict] | None:
    """``az.compare`` of the models, with one pointwise term per sequence; None if too big."""
    first = next(iter(idatas.values()))
    n_draws = first["posterior"].sizes["chain"] * first["posterior"].sizes["draw"]
    if data.n_sequences * n_draws > _MAX_EXPANDED or len(idatas) < 2:
        return None
    trees = {}
    for k, idata in idatas.items():
        ll = np.asarray(idata["log_likelihood"]["heads"].transpose("chain", "draw", "outcome"))
        trees[f"K={k}"] = _tree(idata, np.repeat(ll, data.counts, axis=-1), "sequence")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = az.compare(trees, round_to="none")
    rows = []
    for name, row in table.iterrows():
        rec = {"model": str(name)}
        for col in ("rank", "elpd", "se", "p", "elpd_diff", "dse", "weight"):
            if col in row:
                value = float(row[col])
                rec[col] = value if math.isfinite(value) else None
        rows.append(rec)
    return rows
