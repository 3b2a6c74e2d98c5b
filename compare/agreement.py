"""Does EM's estimate agree with the posterior mode? Objective, parameters and fitted pmf."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from compare.settings import TOLERANCES
from em import MixtureParams, mixture_pmf

__all__ = ["TOLERANCES", "match_components", "pmf_distance", "compare_fits"]


def match_components(p_a, p_b) -> np.ndarray:
    """Permutation of b's components that best matches a's (Hungarian on |p_a - p_b|^2)."""
    p_a, p_b = np.asarray(p_a, float), np.asarray(p_b, float)
    rows, cols = linear_sum_assignment((p_a[:, None] - p_b[None, :]) ** 2)
    perm = np.empty(p_a.size, dtype=np.int64)
    perm[rows] = cols
    return perm


def pmf_distance(a: MixtureParams, b: MixtureParams, trials, counts) -> dict:
    """Total-variation distance between two fitted pmfs over heads = 0..n.

    One distance per number of trials n in the data; returns the maximum and the mean
    weighted by the sequences with each n.
    """
    trials = np.asarray(trials)
    counts = np.asarray(counts)
    values, weights = [], []
    for n in np.unique(trials):
        tv = 0.5 * float(np.abs(mixture_pmf(a, int(n)) - mixture_pmf(b, int(n))).sum())
        values.append(tv)
        weights.append(counts[trials == n].sum())
    values = np.asarray(values)
    return {"max": float(values.max()), "mean": float(np.average(values, weights=weights))}


def compare_fits(
    em_params: MixtureParams,
    em_objective: float,
    em_loglik: float,
    map_params: MixtureParams,
    map_objective: float,
    map_loglik: float,
    *,
    trials,
    counts,
    identifiable: bool,
    tolerances: dict = TOLERANCES,
) -> dict:
    """One EM optimum against one MAP: differences and a verdict.

    Where the fit is not identifiable (coinciding components, weights free along a ridge)
    the verdict rests on what is identified, the objective and the fitted pmf; the
    parameter differences are still reported.
    """
    perm = match_components(em_params.p, map_params.p)
    dp = float(np.max(np.abs(em_params.p - map_params.p[perm])))
    dw = float(np.max(np.abs(em_params.weights - map_params.weights[perm])))
    tv = pmf_distance(em_params, map_params, trials, counts)
    d_obj = float(map_objective - em_objective)
    d_ll = float(map_loglik - em_loglik)
    checks = {
        "objective": abs(d_obj) <= tolerances["objective"],
        "total_variation": tv["max"] <= tolerances["total_variation"],
        "parameters": max(dp, dw) <= tolerances["parameters"],
    }
    judged = ["objective", "total_variation"] + (["parameters"] if identifiable else [])
    return {
        "objective_difference": d_obj,
        "log_likelihood_difference": d_ll,
        "max_abs_p_difference": dp,
        "max_abs_weight_difference": dw,
        "matching": perm.tolist(),
        "total_variation": tv,
        "identifiable": identifiable,
        "checks": checks,
        "judged_on": judged,
        "agree": all(checks[c] for c in judged),
    }
