"""Standard errors of an EM estimate from the observed information.

The observed information is the exact negative Hessian of the marginal log-likelihood
(Louis' 1982 identity, :mod:`em.derivatives`, the same Hessian that certifies EM's
convergence). It is taken in an unconstrained parametrisation where it is defined in the
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

from em.core import MixtureParams
from em.data import BinomialData
from em.derivatives import gradient_hessian

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
    """Negative Hessian of the log-likelihood in (alr(weights), logit(p)), (2K-1, 2K-1).

    The exact Hessian of :func:`em.derivatives.gradient_hessian` (softmax logits and
    logits) with the last component's logit held: that is the additive log-ratio
    parametrisation against the last component.
    """
    k = params.n_components
    _, hess = gradient_hessian(data, params)
    keep = [*range(k - 1), *range(k, 2 * k)]
    return -hess[np.ix_(keep, keep)]


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
