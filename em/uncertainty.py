"""Standard errors of an EM estimate from the observed information.

The observed information is the exact negative Hessian of the marginal log-likelihood,
computed per distinct outcome with Louis' (1982) identity

    H = sum_m c_m [ sum_j r_mj (D2 l_mj + g_mj g_mj^T) - s_m s_m^T ],   s_m = sum_j r_mj g_mj,

where l_mj = log(w_j Binom(h_m | n_m, p_j)), g_mj its gradient and r_mj the posterior
responsibility. It is taken in an unconstrained parametrisation where it is defined in the
interior (additive log-ratios of the weights against the last component, logits of the
biases), inverted, and carried to (weights, p) by the delta method. At a collapsed fit, a
weight at 0 or a bias at 0 or 1 the information is singular (or the parametrisation is not
defined) and no standard errors are given: the result says why.

Louis, T. A. (1982). Finding the observed information matrix when using the EM algorithm.
JRSS B 44, 226-233.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from em.core import MixtureParams, e_step
from em.data import BinomialData

__all__ = ["StandardErrors", "observed_information", "standard_errors"]

#: Smallest eigenvalue of the information, relative to the largest, below which it is
#: treated as singular.
SINGULAR_RTOL = 1e-10


@dataclass(frozen=True, eq=False)
class StandardErrors:
    """Standard errors of (weights, p) at an estimate, or why there are none.

    Attributes
    ----------
    weights, p : ndarray of shape (K,) or None
        Standard errors (None when the information is singular).
    covariance : ndarray of shape (2K, 2K) or None
        Covariance of (weights, p) (delta method).
    information : ndarray of shape (2K - 1, 2K - 1) or None
        Observed information in (log-ratios of weights, logits of p).
    condition : float or None
        Ratio of the information's smallest to largest eigenvalue.
    singular : bool
    reason : str
        Empty, or why no standard errors are given.
    """

    weights: np.ndarray | None
    p: np.ndarray | None
    covariance: np.ndarray | None
    information: np.ndarray | None
    condition: float | None
    singular: bool
    reason: str

    def to_dict(self) -> dict:
        """Plain-Python form for JSON."""
        return {
            "weights": None if self.weights is None else self.weights.tolist(),
            "p": None if self.p is None else self.p.tolist(),
            "condition": self.condition,
            "singular": self.singular,
            "reason": self.reason,
            "method": "observed information (exact Hessian, Louis 1982), delta method",
        }


def observed_information(data: BinomialData, params: MixtureParams) -> np.ndarray:
    """Negative Hessian of the log-likelihood in (alr(weights), logit(p)), (2K-1, 2K-1)."""
    w, p = params.weights, params.p
    k = p.size
    resp = e_step(data, params).resp  # (M, K)
    h = data.heads.astype(float)
    n = data.trials.astype(float)
    c = data.counts.astype(float)
    dim = 2 * k - 1
    # Gradient of l_mj = log w_j + log Binom(h_m | n_m, p_j), shape (M, K, dim).
    g = np.zeros((h.size, k, dim))
    eye = np.eye(k)[:, : k - 1]  # d log w_j / d eta_i = [i == j] - w_i, i < K
    g[:, :, : k - 1] = (eye - w[: k - 1])[None, :, :]
    g[:, np.arange(k), k - 1 + np.arange(k)] = h[:, None] - n[:, None] * p[None, :]
    # Second derivatives: -(diag(w) - w w^T) in eta for every j; -n p_j (1 - p_j) in lambda_j.
    ww = np.diag(w[: k - 1]) - np.outer(w[: k - 1], w[: k - 1])
    score = np.einsum("mj,mjd->md", resp, g)  # (M, dim)
    outer_g = np.einsum("mj,mjd,mje->mde", resp, g, g)  # sum_j r g g^T
    hess = np.einsum("m,mde->de", c, outer_g) - np.einsum("m,md,me->de", c, score, score)
    hess[: k - 1, : k - 1] -= c.sum() * ww
    lam = np.einsum("m,mj->j", c * n, resp) * p * (1 - p)  # sum_m c r_mj n p_j (1 - p_j)
    hess[k - 1 :, k - 1 :] -= np.diag(lam)
    return -hess


def standard_errors(data: BinomialData, params: MixtureParams) -> StandardErrors:
    """Standard errors of an estimate (e.g. ``fit(...).params``) from the observed information.

    Returns a result with ``singular=True`` and a reason, not an error, where they do not
    exist: a weight at 0, a bias at 0 or 1, or a singular information (coinciding
    components, a ridge).
    """
    w, p = params.weights, params.p
    k = p.size
    none = {"weights": None, "p": None, "covariance": None}
    if np.any(w <= 0):
        return StandardErrors(
            **none,
            information=None,
            condition=None,
            singular=True,
            reason="a weight is 0: the estimate is on the simplex's edge",
        )
    if np.any((p <= 0) | (p >= 1)):
        return StandardErrors(
            **none,
            information=None,
            condition=None,
            singular=True,
            reason="a bias is 0 or 1: the estimate is on the boundary",
        )
    info = observed_information(data, params)
    eig = np.linalg.eigvalsh(info)
    top = float(np.max(np.abs(eig))) if eig.size else 0.0
    condition = float(eig.min() / top) if top > 0 else 0.0
    if k == 1 and top > 0:
        condition = 1.0
    if eig.min() <= SINGULAR_RTOL * max(top, 1e-300):
        why = (
            "the observed information is singular (smallest/largest eigenvalue "
            f"{condition:.2g}): components coincide or the weights lie on a ridge"
        )
        return StandardErrors(
            **none, information=info, condition=condition, singular=True, reason=why
        )
    cov_theta = np.linalg.inv(info)
    # Jacobian of (w_1..w_K, p_1..p_K) with respect to (eta_1..eta_{K-1}, lambda_1..lambda_K).
    jac = np.zeros((2 * k, 2 * k - 1))
    jac[:k, : k - 1] = (np.diag(w) - np.outer(w, w))[:, : k - 1]
    jac[k:, k - 1 :] = np.diag(p * (1 - p))
    cov = jac @ cov_theta @ jac.T
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    return StandardErrors(
        weights=se[:k],
        p=se[k:],
        covariance=cov,
        information=info,
        condition=condition,
        singular=False,
        reason="",
    )
