"""Exact gradient and Hessian of EM's objective in unconstrained coordinates.

The coordinates are theta = (eta, lambda): softmax logits of the weights
(w = softmax(eta)) and logits of the biases (p = expit(lambda)), 2K numbers for K
components. The objective is invariant along the gauge direction eta -> eta + c, so the
Hessian always has that null direction; :func:`free_coordinates` removes it.

Per distinct outcome m the log-likelihood is ``log sum_j exp(l_mj)`` with
``l_mj = log w_j + log Binom(h_m | n_m, p_j)``, whose Hessian is Louis' (1982) identity

    sum_j r_mj (D2 l_mj + g_mj g_mj^T) - s_m s_m^T,    s_m = sum_j r_mj g_mj,

exact at every point, not only at the optimum. Summed over outcomes with their counts it
reduces to K x K Gram matrices of the responsibilities, so a gradient and Hessian cost
O(B M K^2) for B parameter sets, M outcomes and K components.

Louis, T. A. (1982). Finding the observed information matrix when using the EM algorithm.
JRSS B 44, 226-233.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logit

from em.core import EStep, MixtureParams, Prior, e_step
from em.data import BinomialData

__all__ = ["to_unconstrained", "from_unconstrained", "gradient_hessian", "free_coordinates"]


def to_unconstrained(params: MixtureParams) -> np.ndarray:
    """(log w, logit p), shape (..., 2K); infinite where w = 0 or p is 0 or 1."""
    with np.errstate(divide="ignore"):
        return np.concatenate([np.log(params.weights), logit(params.p)], axis=-1)


def from_unconstrained(theta: np.ndarray) -> MixtureParams:
    """Inverse of :func:`to_unconstrained` (softmax of the first K, expit of the last K)."""
    k = theta.shape[-1] // 2
    eta = theta[..., :k]
    w = np.exp(eta - eta.max(axis=-1, keepdims=True))
    w /= w.sum(axis=-1, keepdims=True)
    return MixtureParams._trusted(w, expit(theta[..., k:]))


def gradient_hessian(
    data: BinomialData,
    params: MixtureParams,
    prior: Prior | None = None,
    expect: EStep | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Gradient (..., 2K) and Hessian (..., 2K, 2K) of the objective in (eta, lambda).

    The objective is the log-likelihood, plus the log prior density (constrained scale,
    no Jacobian) for MAP-EM. ``expect`` is the E-step at ``params`` if already computed.
    Leading batch dimensions of ``params`` are carried through. Components with weight 0
    or a bias at 0 or 1 get zero rows (their coordinates are at infinity).
    """
    if expect is None:
        expect = e_step(data, params)
    w, p = params.weights, params.p
    k = p.shape[-1]
    batch = p.shape[:-1]
    r = np.asarray(expect.resp).reshape((-1, data.n_outcomes, k))  # (B, M, K)
    wf, pf = w.reshape(-1, k), p.reshape(-1, k)
    nk = np.asarray(expect.expected_counts).reshape(-1, k)
    sk = np.asarray(expect.expected_successes).reshape(-1, k)
    tk = np.asarray(expect.expected_trials).reshape(-1, k)
    n_total = float(data.n_sequences)
    resid = data.heads[:, None] - data.trials[:, None] * pf[:, None, :]  # e_mk, (B, M, K)
    x = np.concatenate([r, r * resid], axis=-1)  # [r_mk, A_mk = r_mk e_mk]
    # One Gram matrix holds sum_m c r r^T, sum_m c A A^T and sum_m c r A^T.
    h = -np.matmul(x.transpose(0, 2, 1) * data._counts_f, x)
    grad_lam = sk - pf * tk  # sum_m c A_mk
    sq = np.matmul(data._counts_f, x[:, :, k:] * resid)  # sum_m c r e^2, (B, K)
    simplex = _simplex_curvature(wf)  # diag(w) - w w^T
    g = np.concatenate([nk - n_total * wf, grad_lam], axis=-1)
    diag = np.arange(k)
    h[:, :k, :k] -= n_total * simplex
    h[:, diag, diag] += nk
    h[:, k + diag, k + diag] += sq - tk * pf * (1.0 - pf)
    h[:, diag, k + diag] += grad_lam
    h[:, k + diag, diag] += grad_lam
    if prior is not None:
        _add_prior(g, h, wf, pf, simplex, prior)
    return g.reshape(batch + (2 * k,)), h.reshape(batch + (2 * k, 2 * k))


def _simplex_curvature(w: np.ndarray) -> np.ndarray:
    """diag(w) - w w^T for each row of w (B, K)."""
    return w[:, :, None] * np.eye(w.shape[-1]) - w[:, :, None] * w[:, None, :]


def _add_prior(g, h, w, p, simplex, prior: Prior) -> None:
    """Dirichlet(alpha) x Beta(a, b)^K log density: its gradient and Hessian, in place."""
    k = w.shape[-1]
    excess = np.asarray(prior.alpha, dtype=float) - 1.0
    g[:, :k] += excess - w * excess.sum()
    h[:, :k, :k] -= excess.sum() * simplex
    a1, b1 = prior.a - 1.0, prior.b - 1.0
    g[:, k:] += a1 * (1.0 - p) - b1 * p
    h[:, k:, k:] -= ((a1 + b1) * p * (1.0 - p))[:, :, None] * np.eye(k)


def free_coordinates(params: MixtureParams, fix: str | None) -> np.ndarray:
    """Indices of the free coordinates of (eta, lambda) for one parameter set.

    The gauge is removed by holding the heaviest component's eta fixed (any one would
    do: the Newton decrement does not depend on the choice). ``fix`` holds a group.
    """
    k = params.n_components
    ref = int(np.argmax(params.weights))
    eta = [] if fix == "weights" else [i for i in range(k) if i != ref]
    lam = [] if fix == "p" else list(range(k, 2 * k))
    return np.array(eta + lam, dtype=np.int64)
