"""The E-step and the M-step of EM for a K-component binomial mixture, as pure functions.

State in, state out, nothing hidden: :func:`e_step` maps (data, parameters) to the
expected sufficient statistics of Section 6.3, :func:`m_step` maps those statistics to
new parameters. Everything is computed in log space with a max-shift (the logsumexp
trick), and the log-likelihood is the full binomial log pmf, binomial coefficient
included, so it is the same number a PyMC model of the mixture reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.special import gammaln, xlogy

from em import _validation as v
from em.data import BinomialData

__all__ = [
    "MixtureParams",
    "Prior",
    "EStep",
    "e_step",
    "m_step",
    "log_likelihood",
    "log_prior",
    "objective",
    "mixture_pmf",
    "responsibilities",
]

# Stands in for log(0) inside the matrix product, where 0 * log(0) must be 0, not NaN.
# Any term carrying it is < -1e250, whose exp is exactly 0.
_LOG_ZERO = -1e250

# ufunc reductions called directly: the ndarray methods add a Python-level wrapper, which
# is a visible share of an iteration on compressed data (a few outcomes, a few components).
_min, _max, _sum = np.minimum.reduce, np.maximum.reduce, np.add.reduce


@dataclass(frozen=True, eq=False)
class MixtureParams:
    """Parameters of a K-component binomial mixture.

    Attributes
    ----------
    weights : ndarray of shape (..., K)
        Mixture weights w_j = P(Y = c_j), on the simplex.
    p : ndarray of shape (..., K)
        Component biases phi_j = P(heads | c_j), in [0, 1].

    Leading dimensions, if any, index a batch of parameter sets (e.g. one per restart);
    every function of :mod:`em.core` carries them through.

    Raises
    ------
    ValueError
        Naming the argument and the element: shapes that differ, a p outside [0, 1] or
        NaN, a negative or non-finite weight, weights of a parameter set that do not sum
        to 1 (within float rounding, ``WEIGHT_SUM_ATOL``), or a masked array with masked
        values.
    """

    weights: np.ndarray
    p: np.ndarray

    def __post_init__(self):
        for name, arr in zip(("weights", "p"), v.check_mixture(self.weights, self.p), strict=True):
            arr.flags.writeable = False
            object.__setattr__(self, name, arr)

    @property
    def n_components(self) -> int:
        """Number of components K."""
        return int(self.p.shape[-1])

    def sorted(self) -> MixtureParams:
        """The same mixture with components in order of increasing p (then weight)."""
        order = np.lexsort((self.weights, self.p), axis=-1)
        return MixtureParams(
            np.take_along_axis(self.weights, order, -1), np.take_along_axis(self.p, order, -1)
        )

    @classmethod
    def unchecked(cls, weights, p) -> MixtureParams:
        """Hold any numbers as parameters, unchecked (copied to read-only float64 arrays).

        For a caller that must keep what may not be a mixture, e.g. a student's EM step being
        graded; what :mod:`em.core` computes from such parameters is not checked either.
        Everything else should use the checked constructor ``MixtureParams(weights, p)``.
        """
        arrays = [np.array(x, dtype=np.float64) for x in (weights, p)]
        for arr in arrays:
            arr.flags.writeable = False
        return cls._trusted(*arrays)

    @classmethod
    def _trusted(cls, weights: np.ndarray, p: np.ndarray) -> MixtureParams:
        """Wrap float64 arrays this package has just computed, without copying or checking."""
        self = object.__new__(cls)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "p", p)
        return self

    def __getitem__(self, index) -> MixtureParams:
        """Select along the leading batch dimensions."""
        if isinstance(index, tuple) or self.weights.ndim < 2:  # may reach the component axis
            return MixtureParams(self.weights[index], self.p[index])
        # Whole parameter sets of these parameters: as valid as they are, no check needed.
        w, p = self.weights[index], self.p[index]
        for arr in (w, p):
            if arr.flags.owndata:
                arr.flags.writeable = False
        return MixtureParams._trusted(w, p)

    def to_dict(self) -> dict:
        """Plain lists, for JSON."""
        return {"weights": self.weights.tolist(), "p": self.p.tolist()}


@dataclass(frozen=True)
class Prior:
    """Dirichlet(alpha) prior on the weights and Beta(a, b) on every bias.

    With ``alpha = 1`` and ``a = b = 1`` the prior is flat and MAP-EM is ML-EM.
    Densities are on the constrained scale (no Jacobian), as PyMC's
    ``logp(jacobian=False)``, which ``find_MAP`` maximises.
    """

    alpha: tuple[float, ...]
    a: float = 1.0
    b: float = 1.0


class EStep(NamedTuple):
    """What one E-step computes (Section 6.3).

    Attributes
    ----------
    log_likelihood : float
        Full log-likelihood at the parameters the E-step was run with.
    resp : ndarray of shape (n_outcomes, K)
        Posterior P(Y = c_j | outcome) for each distinct outcome (Table 6.1).
    expected_counts : ndarray of shape (K,)
        E[#sequences from c_j] (Eq. 6.10); sums to N.
    expected_successes : ndarray of shape (K,)
        E[heads from c_j] (Table 6.3).
    expected_trials : ndarray of shape (K,)
        E[flips from c_j]; with 10 flips per sequence, 10 x ``expected_counts``.
    counts : ndarray of shape (n_outcomes,)
        Occurrences of each outcome (the ``counts`` of the data).
    """

    log_likelihood: float
    resp: np.ndarray
    expected_counts: np.ndarray
    expected_successes: np.ndarray
    expected_trials: np.ndarray
    counts: np.ndarray

    @property
    def expected_outcome_counts(self) -> np.ndarray:
        """E[#(outcome, c_j)] = count x posterior, shape (n_outcomes, K) (Table 6.2)."""
        return self.counts[:, None] * self.resp


def _joint_log(data: BinomialData, params: MixtureParams) -> np.ndarray:
    """Log w_j + h log p_j + (n - h) log(1 - p_j), without log C(n, h).

    Returns shape (K, B, M), components first, with the batch dimensions of ``params``
    flattened to B: reductions over components then run over K contiguous slabs and the
    product is a plain 2-D BLAS call, which is what keeps an iteration cheap.
    """
    k = params.p.shape[-1]
    p = params.p.reshape(-1, k).T  # (K, B) views
    w = params.weights.reshape(-1, k).T
    logs = np.empty((3,) + p.shape)  # rows log p, log(1 - p), log w: contiguous slabs
    if _min(p, axis=None) > 0.0 and _max(p, axis=None) < 1.0 and _min(w, axis=None) > 0.0:
        np.log(p, out=logs[0])
        np.negative(p, out=logs[1])
        np.log1p(logs[1], out=logs[1])
        np.log(w, out=logs[2])
    else:  # some log(0): use a finite stand-in so that 0 * log(0) stays 0 in the product
        with np.errstate(divide="ignore"):
            np.log(p, out=logs[0])
            np.log1p(-p, out=logs[1])
            np.log(w, out=logs[2])
        np.maximum(logs, _LOG_ZERO, out=logs)
    out = np.dot(logs.reshape(3, -1).T, data._design)  # (K * B, 3) @ (3, M)
    return out.reshape(p.shape + (data.n_outcomes,))


def _impossible(data: BinomialData, params: MixtureParams) -> ValueError:
    """The error for an outcome that has probability 0 under every component."""
    shift = _joint_log(data, params).max(axis=0)
    i = int(np.argmin(shift.min(axis=0)))
    return ValueError(
        f"outcome heads={data.heads[i]}, trials={data.trials[i]} has probability 0 "
        f"under weights={params.weights.tolist()}, p={params.p.tolist()}"
    )


def e_step(data: BinomialData, params: MixtureParams) -> EStep:
    """Compute the posteriors and expected sufficient statistics at ``params``.

    Parameters
    ----------
    data : BinomialData
        Distinct outcomes with counts.
    params : MixtureParams
        The current estimate theta^(l). Leading batch dimensions (several parameter
        sets, e.g. one per restart) are carried through every output.

    Returns
    -------
    EStep
        Posteriors (Table 6.1), expected counts (6.10), expected successes (Table 6.3),
        expected trials and the log-likelihood at ``params``.

    Raises
    ------
    ValueError
        If some observed outcome has probability 0 under ``params`` (log-likelihood
        -inf), e.g. heads > 0 when every component with positive weight has p = 0.
    """
    batch = params.p.shape[:-1]
    work = _joint_log(data, params)  # (K, B, M)
    k, m = work.shape[0], work.shape[2]
    shift = _max(work, axis=0)  # (B, M)
    work -= shift
    np.exp(work, out=work)
    total = _sum(work, axis=0)
    work /= total
    np.log(total, out=total)
    total += shift
    ll = data._log_binom_coef + total @ data._counts_f  # (B,)
    if _min(ll, axis=None) < 0.5 * _LOG_ZERO:  # some outcome got only log(0) terms
        raise _impossible(data, params)
    stats = (work.reshape(-1, m) @ data._stats_t).reshape(k, -1, 3)  # counts, heads, flips
    stats = stats.transpose(1, 2, 0).reshape(batch + (3, k))
    return EStep(
        log_likelihood=ll.reshape(batch) if batch else float(ll[0]),
        resp=work.transpose(1, 2, 0).reshape(batch + (m, k)),
        expected_counts=stats[..., 0, :],
        expected_successes=stats[..., 1, :],
        expected_trials=stats[..., 2, :],
        counts=data.counts,
    )


def m_step(
    expectations: EStep,
    params: MixtureParams,
    *,
    prior: Prior | None = None,
    fix: str | None = None,
) -> MixtureParams:
    """Maximise the expected complete-data log-likelihood (or log-posterior).

    Parameters
    ----------
    expectations : EStep
        Output of :func:`e_step` at ``params``.
    params : MixtureParams
        The parameters the E-step was run with; kept for a component with no expected
        trials (its bias is not determined by the data) and for a fixed group.
    prior : Prior, optional
        For MAP-EM: w_j = (E[n_j] + alpha_j - 1) / (N + sum(alpha) - K) and
        p_j = (E[heads_j] + a - 1) / (E[flips_j] + a + b - 2).
    fix : {None, "weights", "p"}
        Hold that group at its value in ``params``.

    Returns
    -------
    MixtureParams
        theta^(l+1). Weights are normalised by their own sum (footnote 8), not by N.
    """
    nk = expectations.expected_counts
    sk = expectations.expected_successes
    tk = expectations.expected_trials
    if prior is not None:
        nk = nk + (np.asarray(prior.alpha) - 1.0)
        sk = sk + (prior.a - 1.0)
        tk = tk + (prior.a + prior.b - 2.0)
    if fix == "weights":
        weights = params.weights
    else:
        weights = nk / _sum(nk, axis=-1, keepdims=True)
    if fix == "p":
        p = params.p
    else:
        if _min(tk, axis=None) > 0:
            p = sk / tk
        else:  # no expected flips: the data say nothing about p_j, keep it
            empty = tk <= 0
            p = np.where(empty, params.p, sk / np.where(empty, 1.0, tk))
        np.minimum(p, 1.0, out=p)  # sk <= tk up to rounding; both >= 0
    return MixtureParams._trusted(weights, p)


def log_likelihood(data: BinomialData, params: MixtureParams):
    """Full log-likelihood sum_i log sum_j w_j Binom(h_i | n_i, p_j), coefficient included.

    A float, or an array over the leading batch dimensions of ``params``; -inf where an
    observed outcome is impossible.
    """
    work = _joint_log(data, params)  # (K, B, M)
    shift = work.max(axis=0)
    total = np.exp(work - shift).sum(axis=0)
    ll = data._log_binom_coef + (np.log(total) + shift) @ data._counts_f
    ll = np.where(ll < 0.5 * _LOG_ZERO, -np.inf, ll).reshape(params.p.shape[:-1])
    return float(ll) if ll.ndim == 0 else ll


def log_prior(params: MixtureParams, prior: Prior | None):
    """Log density of the Dirichlet(alpha) x Beta(a, b)^K prior (normalised, no Jacobian).

    0 without a prior; an array over leading batch dimensions of ``params``.
    """
    if prior is None:
        return 0.0
    alpha = np.asarray(prior.alpha, dtype=float)
    w, p = params.weights, params.p
    log_dir = gammaln(alpha.sum()) - gammaln(alpha).sum() + xlogy(alpha - 1.0, w).sum(axis=-1)
    a, b = prior.a, prior.b
    log_beta = (
        xlogy(a - 1.0, p) + xlogy(b - 1.0, 1.0 - p) - (gammaln(a) + gammaln(b) - gammaln(a + b))
    ).sum(axis=-1)
    out = log_dir + log_beta
    return float(out) if np.ndim(out) == 0 else out


def objective(data: BinomialData, params: MixtureParams, prior: Prior | None = None) -> float:
    """What EM maximises: the log-likelihood, plus the log prior for MAP-EM."""
    return log_likelihood(data, params) + log_prior(params, prior)


def mixture_pmf(params: MixtureParams, trials: int) -> np.ndarray:
    """P(heads = 0..trials) under the mixture, shape (trials + 1,)."""
    h = np.arange(trials + 1, dtype=float)
    log_c = gammaln(trials + 1.0) - gammaln(h + 1.0) - gammaln(trials - h + 1.0)
    comp = np.exp(
        log_c[:, None] + xlogy(h[:, None], params.p) + xlogy(trials - h[:, None], 1 - params.p)
    )
    return comp @ params.weights


def responsibilities(params: MixtureParams, heads, trials) -> np.ndarray:
    """P(coin j | sequence i) for sequences given one by one, shape (n, K).

    The posterior of Table 6.1, per sequence in the order given (not per distinct
    outcome); ``trials`` is an int or one per sequence. The binomial coefficient cancels.
    Bad input is a ValueError naming it, as is a sequence impossible under every component.
    """
    data = BinomialData.from_sequences(heads, trials)  # validates heads and trials
    h = np.asarray(heads).astype(np.float64)[:, None]
    n = np.broadcast_to(np.asarray(trials).astype(np.float64), h.shape[:1])[:, None]
    with np.errstate(divide="ignore"):
        log = np.log(params.weights) + xlogy(h, params.p) + xlogy(n - h, 1.0 - params.p)
    top = log.max(axis=1, keepdims=True)
    if not np.all(np.isfinite(top)):
        raise _impossible(data, params)
    out = np.exp(log - top)
    return out / out.sum(axis=1, keepdims=True)
