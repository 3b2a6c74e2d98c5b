"""The EM loop with a certified stopping rule, restarts and the distinct local optima.

A run stops when a *certificate* (:mod:`em.certify`) says that at most ``tol`` nats of
the objective remain to be gained: the distance to the optimum, not the size of the last
step. The default method (``"newton"``) takes EM steps until the Hessian of the objective
is negative definite, then Newton steps with the exact Hessian and a backtracking line
search; where the optimum lies on a face of the parameter space (tied, empty or boundary
components) it certifies there. ``method="em"`` is plain EM, step after step, as the
chapter does it. Either way every accepted step raises the objective (the EM invariant).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from em import _validation as v
from em.certify import (
    COLLAPSE_NATS,
    Certificate,
    Face,
    accept,
    aitken_gap,
    face_newton,
    lindsay_escape,
    newton_system,
    noise,
    propose_face,
    step_size,
    trial_point,
    verify_face,
)
from em.core import EStep, MixtureParams, Prior, e_step, log_prior, m_step, responsibilities
from em.data import BinomialData
from em.derivatives import gradient_hessian

__all__ = [
    "EMInvariantError",
    "Run",
    "Optimum",
    "FitResult",
    "METHODS",
    "fit",
    "fit_data",
    "run_em",
    "run_em_batch",
    "reduce_params",
    "reduced_mixture",
]

#: The stopping rules: "newton" (EM, then Newton polish; the default), "em" (plain EM).
METHODS = ("newton", "em")

#: Default tolerance: nats of objective still to gain, whatever N is.
TOL = 1e-9

#: How far the objective may fall, relative to the size of its terms, before the EM
#: invariant (the objective never decreases) counts as broken: float rounding only.
MONOTONE_RTOL = 1e-12

#: Iterations between two attempts to certify a run on a face of the parameter space.
FACE_RETRY = 10

#: No face is tried before this iteration: a random start is rarely next to one.
FIRST_FACE = 5

#: Escapes from a collapsed saddle (a new component where D > 0) allowed per run.
MAX_ESCAPES = 5

_min = np.minimum.reduce

# Restarts run together in batches of at most this many (run, component, outcome) cells.
_BATCH_ELEMENTS = 1 << 21


class EMInvariantError(RuntimeError):
    """The EM objective decreased from one iteration to the next beyond float tolerance."""


@dataclass(frozen=True, eq=False)
class Run:
    """One EM run from one starting point.

    Attributes
    ----------
    start : str
        ``"user"`` for the caller's starting point, ``"random i"`` for the i-th seeded one.
    init : MixtureParams
        The starting point theta^(0), in the order given.
    params : MixtureParams
        The final estimate, components in order of increasing p (in the order of the
        prior's labels when ``prior_weights`` is not symmetric).
    log_likelihood : float
        Full log-likelihood at ``params``.
    log_posterior : float or None
        Log-likelihood plus log prior density (MAP-EM); None without a prior.
    n_iter : int
        Accepted updates (EM or Newton steps).
    n_estep : int
        E-step evaluations, line-search trials included: the cost of the run.
    converged : bool
        Whether the certificate's gap is at most the tolerance.
    certificate : Certificate
        The estimate of the objective still to gain at ``params`` and how it was made.
    trace : ndarray
        The objective at theta^(0), theta^(1), ..., theta^(n_iter).
    path : MixtureParams
        The parameters at theta^(0), ..., theta^(n_iter), shape (n_iter + 1, K), components
        in the order of ``params``.
    """

    start: str
    init: MixtureParams
    params: MixtureParams
    log_likelihood: float
    log_posterior: float | None
    n_iter: int
    n_estep: int
    converged: bool
    certificate: Certificate
    trace: np.ndarray
    path: MixtureParams

    @property
    def objective(self) -> float:
        """What EM maximised: ``log_posterior`` for MAP-EM, else ``log_likelihood``."""
        return self.log_likelihood if self.log_posterior is None else self.log_posterior

    @property
    def gap(self) -> float:
        """Nats of objective still to gain, by the certificate (``inf`` if unknown)."""
        return self.certificate.gap

    def to_dict(self) -> dict:
        """Plain-Python form for JSON."""
        return {
            "start": self.start,
            "log_likelihood": self.log_likelihood,
            "log_posterior": self.log_posterior,
            "weights": self.params.weights.tolist(),
            "p": self.params.p.tolist(),
            "n_iter": self.n_iter,
            "n_estep": self.n_estep,
            "converged": self.converged,
            "gap": self.certificate.to_dict()["gap"],
            "certificate": self.certificate.to_dict(),
            "init": self.init.to_dict(),
            "trace": self.trace.tolist(),
        }


@dataclass(frozen=True, eq=False)
class Optimum:
    """A distinct local optimum (modulo labels and tied components), reached by certified runs.

    Attributes
    ----------
    params : MixtureParams
        The best run's estimate that reached it (all K components, sorted by p).
    reduced : MixtureParams
        The same mixture with tied components merged and empty ones dropped.
    log_likelihood, log_posterior : float, float or None
        At ``params``.
    fraction : float
        Share of all runs that converged to it (its basin's share of the starts).
    runs : tuple of int
        Indices into :attr:`FitResult.runs`.
    gap : float
        The largest certified gap among those runs.
    """

    params: MixtureParams
    reduced: MixtureParams
    log_likelihood: float
    log_posterior: float | None
    fraction: float
    runs: tuple[int, ...]
    gap: float

    @property
    def objective(self) -> float:
        """``log_posterior`` for MAP-EM, else ``log_likelihood``."""
        return self.log_likelihood if self.log_posterior is None else self.log_posterior

    def to_dict(self) -> dict:
        """Plain-Python form for JSON."""
        return {
            "log_likelihood": self.log_likelihood,
            "log_posterior": self.log_posterior,
            "weights": self.params.weights.tolist(),
            "p": self.params.p.tolist(),
            "fraction": self.fraction,
            "n_runs": len(self.runs),
            "gap": self.gap,
            "effective_components": self.reduced.n_components,
            "reduced": self.reduced.to_dict(),
        }


@dataclass(frozen=True, eq=False)
class FitResult:
    """EM with restarts: the best run, every run, and the distinct optima.

    Attributes
    ----------
    data : BinomialData
    n_components : int
    params : MixtureParams
        The best run's estimate (components sorted by p): the best converged run's, or
        the best run's if none converged.
    log_likelihood, log_posterior, n_iter, n_estep, converged, certificate, trace
        Those of the best run (see :class:`Run`).
    runs : tuple of Run
        Every run, the caller's start first, then the seeded random ones.
    optima : tuple of Optimum
        Distinct optima reached by converged runs, best first.
    warnings : tuple of dict
        Each ``{"code": ..., "message": ...}``; codes: ``collapsed``,
        ``not_identifiable``, ``more_components_than_outcomes``, ``not_converged``,
        ``runs_not_converged``.
    seed : int
        The root entropy of the ``np.random.SeedSequence`` every random start came from.
    options : dict
        The options the fit ran with.
    """

    data: BinomialData
    n_components: int
    params: MixtureParams
    log_likelihood: float
    log_posterior: float | None
    n_iter: int
    n_estep: int
    converged: bool
    certificate: Certificate
    trace: np.ndarray
    runs: tuple[Run, ...]
    optima: tuple[Optimum, ...]
    warnings: tuple[dict, ...]
    seed: int
    options: dict = field(default_factory=dict)

    @property
    def weights(self) -> np.ndarray:
        """Best estimate of the mixture weights."""
        return self.params.weights

    @property
    def p(self) -> np.ndarray:
        """Best estimate of the component biases."""
        return self.params.p

    @property
    def gap(self) -> float:
        """The best run's certified gap in nats."""
        return self.certificate.gap

    @property
    def objective(self) -> float:
        """``log_posterior`` for MAP-EM, else ``log_likelihood``."""
        return self.log_likelihood if self.log_posterior is None else self.log_posterior

    @property
    def restarts(self) -> tuple[Run, ...]:
        """Every run (the caller's start first); the name the CLI's JSON uses."""
        return self.runs

    @property
    def n_converged(self) -> int:
        """How many runs converged."""
        return sum(r.converged for r in self.runs)

    @property
    def max_converged_gap(self) -> float | None:
        """The largest gap among the converged runs (None if none converged)."""
        gaps = [r.gap for r in self.runs if r.converged]
        return max(gaps) if gaps else None

    @property
    def collapsed(self) -> bool:
        """Whether the best fit is equivalent to one with fewer components."""
        return any(w["code"] == "collapsed" for w in self.warnings)

    def predict_proba(self, heads, trials) -> np.ndarray:
        """P(coin j | sequence) at the best estimate, one row per sequence given.

        Parameters
        ----------
        heads : array-like of int, shape (n,)
        trials : int or array-like of int, shape (n,)

        Returns
        -------
        ndarray of shape (n, K)
            Rows sum to 1; columns in the order of :attr:`params` (increasing p).
        """
        return responsibilities(self.params, heads, trials)

    def to_dict(self) -> dict:
        """Plain-Python form for JSON (``python -m em fit --json``)."""
        return {
            "data": self.data.summary(),
            "n_components": self.n_components,
            "weights": self.weights.tolist(),
            "p": self.p.tolist(),
            "log_likelihood": self.log_likelihood,
            "log_posterior": self.log_posterior,
            "n_iter": self.n_iter,
            "n_estep": self.n_estep,
            "converged": self.converged,
            "gap": self.certificate.to_dict()["gap"],
            "certificate": self.certificate.to_dict(),
            "n_converged": self.n_converged,
            "max_converged_gap": self.max_converged_gap,
            "trace": self.trace.tolist(),
            "restarts": [r.to_dict() for r in self.runs],
            "optima": [o.to_dict() for o in self.optima],
            "warnings": list(self.warnings),
            "seed": self.seed,
            "options": self.options,
        }


# ---------------------------------------------------------------------- runs
def run_em(
    data: BinomialData,
    init: MixtureParams,
    *,
    prior: Prior | None = None,
    fix: str | None = None,
    tol: float = TOL,
    max_iter: int = 1000,
    method: str = "newton",
    start: str = "user",
) -> Run:
    """Iterate from ``init`` until the certified gap is at most ``tol`` nats.

    See :func:`run_em_batch`; this runs one starting point.
    """
    batch = MixtureParams(init.weights[None], init.p[None])
    return run_em_batch(
        data,
        batch,
        prior=prior,
        fix=fix,
        tol=tol,
        max_iter=max_iter,
        method=method,
        starts=[start],
    )[0]


class _Batch:
    """The runs still iterating: their rows, parameters, E-steps and objectives."""

    def __init__(self, rows, weights, p, expect: EStep, obj):
        self.rows, self.weights, self.p, self.expect, self.obj = rows, weights, p, expect, obj

    @property
    def params(self) -> MixtureParams:
        return MixtureParams._trusted(self.weights, self.p)

    def keep(self, mask) -> _Batch:
        return _Batch(
            self.rows[mask],
            self.weights[mask],
            self.p[mask],
            _take(self.expect, mask),
            self.obj[mask],
        )


class _Log:
    """What each run has done so far, indexed by its original row."""

    def __init__(self, n: int):
        self.trace: list[list[float]] = [[] for _ in range(n)]
        self.path: list[list[np.ndarray]] = [[] for _ in range(n)]  # (weights, p) rows
        self.increments: list[list[float]] = [[] for _ in range(n)]  # of plain EM steps
        self.gains: list[list[float]] = [[] for _ in range(n)]  # of every step
        self.squarem = np.zeros(n, dtype=bool)
        self.fixed = np.zeros(n, dtype=bool)  # the last EM step changed nothing
        self.escapes = np.zeros(n, dtype=np.int64)
        self.n_iter = np.zeros(n, dtype=np.int64)
        self.n_estep = np.zeros(n, dtype=np.int64)
        self.next_face = np.full(n, FIRST_FACE, dtype=np.int64)
        self.final: list[tuple | None] = [None] * n


#: At most this many EM steps open a run of method "newton" before it is certified, for as
#: long as EM itself converges fast (certifying costs an exact Hessian per run and step).
WARMUP_MAX = 8


def run_em_batch(
    data: BinomialData,
    inits: MixtureParams,
    *,
    prior: Prior | None = None,
    fix: str | None = None,
    tol: float = TOL,
    max_iter: int = 1000,
    method: str = "newton",
    starts: list[str],
) -> list[Run]:
    """EM from R starting points at once (``inits`` of shape (R, K)), certified.

    Every iteration first certifies each run (:mod:`em.certify`): a run whose gap is at
    most ``tol`` nats stops, converged. The others take one step: a Newton step with a
    line search where the Hessian is negative definite (method ``"newton"``), else an EM
    step. Runs advance in lockstep through the same batched E-steps, so numpy's per-call
    overhead is paid once per iteration, not once per run; each run's result is what
    :func:`run_em` alone would give. A run still uncertified after ``max_iter`` steps stops
    with ``converged=False`` and its best gap estimate.

    Raises
    ------
    EMInvariantError
        If an accepted step lowers the objective beyond float rounding (a bug).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    log = _Log(len(starts))
    expect = e_step(data, inits)
    obj = np.asarray(expect.log_likelihood + log_prior(inits, prior), dtype=float)
    batch = _Batch(np.arange(len(starts)), inits.weights.copy(), inits.p.copy(), expect, obj)
    log.n_estep += 1
    for r, o in zip(batch.rows, obj, strict=True):
        log.trace[r].append(float(o))
        log.path[r].append(np.concatenate([batch.weights[r], batch.p[r]]))
    for it in range(max_iter + 1):
        if _warming_up(log, batch, it, method, max_iter):
            done, newton = np.zeros(batch.rows.size, dtype=bool), _no_newton(batch)
        else:
            done, newton = _certify(data, batch, log, prior, fix, tol, method, it, it == max_iter)
        if done.all():
            break
        if done.any():
            keep = ~done
            batch = batch.keep(keep)
            newton = tuple(a[keep] for a in newton)
        _step(data, batch, newton, log, prior, fix, method, it + 1, starts)
    return [_make_run(data, r, starts[r], inits[r], log, prior) for r in range(len(starts))]


def _warming_up(log: _Log, batch: _Batch, it: int, method: str, max_iter: int) -> bool:
    """Whether step ``it`` is an EM step taken without certifying first.

    The first step is EM's whatever the start. With method "newton", EM steps continue
    (at most ``WARMUP_MAX``) while some run's EM increments still shrink by more than half
    per step: there EM gains digits cheaply, and the Hessian is worth its cost only once
    EM slows down. Plain EM (method "em") is certified at every step after the first.
    """
    if it >= max_iter:
        return False
    if it == 0:
        return True
    if method != "newton" or it >= WARMUP_MAX:
        return False
    return any(_em_is_fast(log.increments[r]) for r in batch.rows)


def _em_is_fast(increments) -> bool:
    d = increments[-2:]
    return len(d) < 2 or 0 < d[1] < 0.5 * d[0]


def _no_newton(batch: _Batch) -> tuple:
    """What :func:`_certify` returns for :func:`_step` when no run can take a Newton step."""
    b, k = batch.p.shape
    zeros = np.zeros(b)
    return np.zeros((b, 2 * k)), zeros, zeros, np.zeros(b, dtype=bool)


def _free(k: int, fix: str | None) -> tuple[np.ndarray, bool]:
    """Free coordinates of (eta, lambda) and whether the eta gauge is among them."""
    if k == 1:  # one weight, fixed at 1: its eta is all gauge
        fix = "weights"
    eta = [] if fix == "weights" else list(range(k))
    lam = [] if fix == "p" else list(range(k, 2 * k))
    return np.array(eta + lam, dtype=np.int64), fix != "weights"


def _certify(data, batch: _Batch, log: _Log, prior, fix, tol, method, it, last):
    """Certify every run of the batch; record those that are done.

    Returns the mask of finished runs and, for every run, its Newton gap, step and
    whether -H is positive definite (what :func:`_step` needs).
    """
    k = batch.p.shape[-1]
    g, h = gradient_hessian(data, batch.params, prior, batch.expect)
    idx, gauge = _free(k, fix)
    gap, step, definite, saddle = newton_system(g, h, idx, gauge, data.n_sequences)
    done = np.zeros(batch.rows.size, dtype=bool)
    faces = method == "newton" and fix is None and not last
    near = np.zeros_like(done)
    converged = definite & (gap <= tol)
    if faces and converged.any():
        near[converged] = _near_face(batch.weights[converged], batch.p[converged])
    due = it >= log.next_face[batch.rows]
    simple = definite & ~near
    for i in np.flatnonzero(~simple | last):
        r = batch.rows[i]
        cert = None
        if definite[i]:
            cert = Certificate(float(gap[i]), "newton", _NEWTON_DETAIL)
            if faces and gap[i] <= tol:  # a converged run next to a face: certify there
                cert = _adopt_face(data, batch, i, log, prior, tol) or cert
        elif faces and due[i]:
            cert = _adopt_face(data, batch, i, log, prior, tol)
            if cert is None:
                log.next_face[r] = it + FACE_RETRY
        if cert is None and not definite[i]:
            cert = _aitken(log, r, noise(data, batch.obj[i]), saddle[i])
        if cert is None:
            why = (
                "no estimate holds: the Hessian has an ascent direction (not yet near a maximum)"
                if saddle[i]
                else "no estimate holds: the Hessian is singular and EM shows no stable rate"
            )
            cert = Certificate(float("inf"), "none", why)
        if cert.gap <= tol or last:
            done[i] = True
            _finish(batch, i, log, cert, cert.gap <= tol)
    for i in np.flatnonzero(simple & (gap <= tol) & ~done):
        done[i] = True
        _finish(batch, i, log, Certificate(float(gap[i]), "newton", _NEWTON_DETAIL), True)
    slope = np.einsum("bi,bi->b", g, step)
    curvature = np.einsum("bi,bij,bj->b", step, h, step)
    return done, (step, slope, curvature, definite | saddle)


def _finish(batch: _Batch, i: int, log: _Log, cert: Certificate, converged: bool) -> None:
    """Record run i's final state."""
    log.final[batch.rows[i]] = (
        batch.weights[i].copy(),
        batch.p[i].copy(),
        float(batch.obj[i]),
        float(batch.expect.log_likelihood[i]),
        cert,
        converged,
    )


def _near_face(weights: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Rows that may sit next to a face (a cheap filter before a face is offered).

    A small weight, a bias near 0 or 1, or two biases within 0.1 of each other in logit.
    """
    q = np.sort(p, axis=-1)
    # logit(b) - logit(a) < 0.1 for a < b in (0, 1): b (1 - a) < e^0.1 a (1 - b)
    close = (q[:, 1:] * (1 - q[:, :-1]) < np.exp(0.1) * q[:, :-1] * (1 - q[:, 1:])).any(axis=-1)
    edge = (q[:, 0] < 1e-3) | (q[:, -1] > 1 - 1e-3)
    return (weights.min(axis=-1) < 1e-3) | edge | close


def _aitken(log: _Log, r: int, resolution: float, saddle: bool) -> Certificate | None:
    """The rate-based certificate of run r's plain EM steps, or None.

    An exact EM fixed point counts only where the Hessian shows no ascent direction (EM
    can sit at a saddle from a symmetric start); a linear rate is evidence enough, since
    EM converging towards a point at a stable rate is not leaving it.
    """
    gap, rate = aitken_gap(log.increments[r], resolution, log.fixed[r] and not saddle)
    if not np.isfinite(gap):
        return None
    if rate == 0.0:
        return Certificate(
            0.0,
            "aitken",
            "an exact EM fixed point (the last EM step changed "
            "nothing) where the Hessian has no ascent direction",
        )
    return Certificate(
        gap, "aitken", f"Aitken extrapolation of the EM increments (rate {rate:.6g} per step)"
    )


_NEWTON_DETAIL = "Newton decrement g'(-H)^-1 g / 2, exact gradient and Hessian (negative definite)"


def _adopt_face(data, batch: _Batch, i: int, log: _Log, prior, tol) -> Certificate | None:
    """Move run i onto the face it is near, if the optimum there is a verified local max.

    Returns the face certificate and updates the run in place, or None (run unchanged).
    """
    r = batch.rows[i]
    params = MixtureParams._trusted(batch.weights[i].copy(), batch.p[i].copy())
    # How near a face must be to be tried: 1e-4 nats, or ten times the gain EM still
    # expects when it creeps (a slow linear rate), so that a slow approach is cut short.
    remaining, _ = aitken_gap(log.gains[r], noise(data, batch.obj[i]))
    nats = COLLAPSE_NATS if not np.isfinite(remaining) else max(COLLAPSE_NATS, 10 * remaining)
    face, start, evals = propose_face(data, params, prior, nats)
    log.n_estep[r] += evals
    if face.interior:
        return None
    found, evals = face_newton(data, start, face, prior, None, tol=tol)
    log.n_estep[r] += evals
    if found is None:
        return None
    new, expect, obj, gap, h = found
    if obj < batch.obj[i] - noise(data, batch.obj[i]):
        return None
    if verify_face(data, new, face, prior, None, h):
        if log.escapes[r] < MAX_ESCAPES:  # a collapsed saddle: put a spare component
            log.escapes[r] += 1  # where Lindsay's gradient function says it gains
            out = lindsay_escape(data, new, face, prior)
            if out is not None:
                ex = e_step(data, out)
                log.n_estep[r] += 1
                _move(batch, i, log, out, ex, float(ex.log_likelihood + log_prior(out, prior)))
        return None
    new = _park_empty(new, face)
    if not np.array_equal(new.weights, batch.weights[i]) or not np.array_equal(new.p, batch.p[i]):
        _move(batch, i, log, new, expect, obj)
    detail = (
        f"Newton decrement on the face ({face.describe()}; {face.n_effective} effective "
        "component(s)), verified a local maximum of the whole model"
    )
    return Certificate(gap, "newton-face", detail, face)


def _move(batch: _Batch, i: int, log: _Log, params: MixtureParams, expect, obj: float) -> None:
    """Put run i at a point found off the EM path (a face optimum, an escape): an update."""
    r = batch.rows[i]
    batch.weights[i], batch.p[i], batch.obj[i] = params.weights, params.p, obj
    _put(batch.expect, i, expect)
    log.n_iter[r] += 1
    log.trace[r].append(obj)
    log.path[r].append(np.concatenate([params.weights, params.p]))
    log.increments[r].clear()
    log.gains[r].clear()
    log.squarem[r] = False
    log.fixed[r] = False


def _park_empty(params: MixtureParams, face: Face) -> MixtureParams:
    """Give each empty component the bias of the nearest group (the likelihood is unchanged).

    A component of weight 0 has no identified bias; placing it on a support point of the
    fitted mixture makes a collapse read as one (every component at the common bias).
    """
    if not face.empty:
        return params
    p = params.p.copy()
    support = np.array([p[g[0]] for g in face.groups])
    for j in face.empty:
        p[j] = support[np.argmin(np.abs(support - p[j]))]
    return MixtureParams._trusted(params.weights, p)


def _step(data, batch: _Batch, newton, log: _Log, prior, fix, method, it, starts) -> None:
    """One accepted update per run, in place.

    With method "newton": a Newton step where -H is positive definite, a step along the
    direction of positive curvature at a saddle, each with a backtracking line search;
    else, where plain EM has slowed down (increments shrinking by less than half), a
    SQUAREM cycle; else an EM step. With method "em": an EM step.
    """
    step, slope, curvature, steerable = newton
    old = batch.obj.copy()
    kind = np.zeros(batch.rows.size, dtype=np.int8)  # 0 EM, 1 Newton, 2 SQUAREM
    if method == "newton" and steerable.any():
        rows = np.flatnonzero(steerable)
        ok, evals = _newton_search(
            data, batch, rows, step[rows], slope[rows], curvature[rows], prior
        )
        log.n_estep[batch.rows[rows]] += evals
        kind[rows[ok]] = 1
    if method == "newton":
        for i, r in enumerate(batch.rows.tolist()):
            log.squarem[r] = kind[i] == 0 and (log.squarem[r] or _em_is_slowing(log.increments[r]))
        rows = np.flatnonzero(log.squarem[batch.rows] & (kind == 0))
        if rows.size:
            log.n_estep[batch.rows[rows]] += _squarem(data, batch, rows, prior, fix)
            kind[rows] = 2
    em_rows = np.flatnonzero(kind == 0)
    if em_rows.size:
        sub = batch.keep(em_rows)
        params = m_step(sub.expect, sub.params, prior=prior, fix=fix)
        log.fixed[sub.rows] = np.all(params.weights == sub.weights, axis=-1) & np.all(
            params.p == sub.p, axis=-1
        )
        _assign(data, batch, em_rows, params, e_step(data, params), prior)
        log.n_estep[sub.rows] += 1
    _check_invariant(data, batch, old, it, starts)
    log.n_iter[batch.rows] += 1
    log.fixed[batch.rows[kind != 0]] = False
    points = np.concatenate([batch.weights, batch.p], axis=-1)
    objs, gains = batch.obj.tolist(), (batch.obj - old).tolist()
    for i, (r, em_step) in enumerate(zip(batch.rows.tolist(), (kind == 0).tolist(), strict=True)):
        log.trace[r].append(objs[i])
        log.path[r].append(points[i])
        log.gains[r].append(gains[i])
        if em_step:
            log.increments[r].append(gains[i])
        else:
            log.increments[r].clear()


def _em_is_slowing(increments) -> bool:
    """Plain EM steps whose increments shrink by less than half: SQUAREM pays off."""
    d = increments[-2:]
    return len(d) == 2 and d[1] > 0.5 * d[0] > 0


def _assign(data, batch: _Batch, rows, params: MixtureParams, expect: EStep, prior) -> None:
    """Put new parameters and their E-step into ``rows`` of the batch."""
    batch.weights[rows], batch.p[rows] = params.weights, params.p
    batch.obj[rows] = expect.log_likelihood + log_prior(params, prior)
    _put(batch.expect, rows, expect)


def _squarem(data, batch: _Batch, rows, prior, fix) -> np.ndarray:
    """One SQUAREM cycle (Varadhan & Roland 2008, SqS3) for ``rows``; E-steps spent per row.

    theta1 = F(theta0), theta2 = F(theta1); r = theta1 - theta0, v = theta2 - 2 theta1 +
    theta0; alpha = -|r| / |v|, at most -1; the proposal theta0 - 2 alpha r + alpha^2 v is
    stabilised by one more EM step. If that is infeasible or lowers the objective below
    theta0's, alpha is halved towards -1, where the cycle is two plain EM steps plus a
    third: so every accepted cycle keeps EM's monotonicity. In (weights, p).
    """
    sub = batch.keep(rows)
    theta0 = np.concatenate([sub.weights, sub.p], axis=-1)
    p1 = m_step(sub.expect, sub.params, prior=prior, fix=fix)
    e1 = e_step(data, p1)
    p2 = m_step(e1, p1, prior=prior, fix=fix)
    theta1 = np.concatenate([p1.weights, p1.p], axis=-1)
    r = theta1 - theta0
    v = np.concatenate([p2.weights, p2.p], axis=-1) - 2 * theta1 + theta0
    norm_v = np.linalg.norm(v, axis=-1)
    alpha = np.minimum(-np.linalg.norm(r, axis=-1) / np.where(norm_v > 0, norm_v, 1.0), -1.0)
    alpha[norm_v == 0] = -1.0
    evals = np.ones(rows.size, dtype=np.int64)
    pending = np.ones(rows.size, dtype=bool)
    k = sub.p.shape[-1]
    while pending.any():
        j = np.flatnonzero(pending)
        a = alpha[j, None]
        prop = theta0[j] - 2 * a * r[j] + a**2 * v[j]
        w, p = prop[:, :k], prop[:, k:]
        feasible = (w.min(axis=-1) >= 0) & (p.min(axis=-1) >= 0) & (p.max(axis=-1) <= 1)
        last = alpha[j] == -1.0  # theta2 itself: always feasible
        w = np.where(last[:, None], p2.weights[j], w)
        p = np.where(last[:, None], p2.p[j], p)
        try_ = feasible | last
        alpha[j[~try_]] = np.maximum((alpha[j[~try_]] - 1.0) / 2.0, -1.0)
        alpha[j[~try_]] = np.where(alpha[j[~try_]] > -1.0 + 1e-12, alpha[j[~try_]], -1.0)
        t = j[try_]
        if t.size == 0:
            continue
        w_t = w[try_] / w[try_].sum(axis=-1, keepdims=True)
        prop_params = MixtureParams._trusted(w_t, p[try_])
        stab = m_step(e_step(data, prop_params), prop_params, prior=prior, fix=fix)
        expect = e_step(data, stab)
        evals[t] += 2
        obj = expect.log_likelihood + log_prior(stab, prior)
        good = (obj >= sub.obj[t] - noise(data, sub.obj[t])) | (alpha[t] == -1.0)
        if good.all():
            _assign(data, batch, rows[t], stab, expect, prior)
        elif good.any():
            _assign(data, batch, rows[t[good]], stab[good], _take(expect, good), prior)
        pending[t[good]] = False
        bad = t[~good]
        alpha[bad] = np.where(
            (alpha[bad] - 1.0) / 2.0 > -1.0 + 1e-12, (alpha[bad] - 1.0) / 2.0, -1.0
        )
    return evals


def _newton_search(
    data, batch: _Batch, rows, step, slope, curvature, prior
) -> tuple[np.ndarray, np.ndarray]:
    """Backtracking line search along ``step`` for ``rows``; updates the accepted rows.

    A trial t is accepted when the objective rises by at least ARMIJO times the model's
    gain ``t slope + t^2 max(curvature, 0) / 2`` (or, when that gain is below rounding,
    does not fall). Returns which rows accepted a step and the E-step evaluations each
    spent.
    """
    t = step_size(step)
    pending = np.ones(rows.size, dtype=bool)
    ok = np.zeros(rows.size, dtype=bool)
    evals = np.zeros(rows.size, dtype=np.int64)
    for _ in range(30):
        sub = np.flatnonzero(pending)
        if sub.size == 0:
            break
        i = rows[sub]
        trial = trial_point(batch.weights[i], batch.p[i], t[sub, None] * step[sub])
        expect = e_step(data, trial)
        new = expect.log_likelihood + log_prior(trial, prior)
        evals[sub] += 1
        ts = t[sub]
        model = ts * slope[sub] + 0.5 * ts**2 * np.maximum(curvature[sub], 0.0)
        good = accept(new, batch.obj[i], model, noise(data, batch.obj[i]))
        b = i[good]
        batch.weights[b], batch.p[b], batch.obj[b] = trial.weights[good], trial.p[good], new[good]
        _put(batch.expect, b, _take(expect, good))
        ok[sub[good]] = True
        pending[sub[good]] = False
        t[sub[~good]] /= 2
    return ok, evals


def _check_invariant(data, batch: _Batch, old, it, starts) -> None:
    """The objective must not fall beyond float rounding at an accepted step."""
    fall = old - batch.obj
    limit = MONOTONE_RTOL * (np.abs(old) + abs(data._log_binom_coef) + 1.0)
    bad = np.flatnonzero(~(fall <= limit))
    if bad.size:
        i = int(bad[0])
        raise EMInvariantError(
            f"EM objective decreased at iteration {it}: {old[i]!r} -> {batch.obj[i]!r} "
            f"(start {starts[batch.rows[i]]}, weights={batch.weights[i].tolist()}, "
            f"p={batch.p[i].tolist()})"
        )


def _take(expect: EStep, rows) -> EStep:
    """The E-step of a subset of the batch."""
    return EStep(
        log_likelihood=np.asarray(expect.log_likelihood)[rows],
        resp=expect.resp[rows],
        expected_counts=expect.expected_counts[rows],
        expected_successes=expect.expected_successes[rows],
        expected_trials=expect.expected_trials[rows],
        counts=expect.counts,
    )


def _put(expect: EStep, rows, src: EStep) -> None:
    """Overwrite ``rows`` of a batched E-step with ``src``, in place."""
    for name in (
        "log_likelihood",
        "resp",
        "expected_counts",
        "expected_successes",
        "expected_trials",
    ):
        getattr(expect, name)[rows] = getattr(src, name)


def _make_run(data, r: int, start: str, init: MixtureParams, log: _Log, prior) -> Run:
    w, p, obj, ll, cert, converged = log.final[r]
    k = w.size
    path = np.asarray(log.path[r])
    order = np.arange(k)
    if prior is None or len(set(prior.alpha)) == 1:
        # Exchangeable components: list them by increasing p. An asymmetric Dirichlet
        # tells the components apart by label, so then the labels are kept.
        order = np.lexsort((w, p))
        if cert.face is not None:
            cert = Certificate(cert.gap, cert.kind, cert.detail, _relabel(cert.face, order))
    params = MixtureParams(w[order], p[order])
    return Run(
        start=start,
        init=init,
        params=params,
        log_likelihood=ll,
        log_posterior=None if prior is None else obj,
        n_iter=int(log.n_iter[r]),
        n_estep=int(log.n_estep[r]),
        converged=bool(converged),
        certificate=cert,
        trace=np.asarray(log.trace[r]),
        path=MixtureParams._trusted(path[:, order], path[:, k + order]),  # accepted iterates
    )


def reduced_mixture(data: BinomialData, run: Run) -> MixtureParams:
    """A run's mixture with tied components merged and empty ones dropped, sorted by p.

    From the certificate's face where there is one, else :func:`reduce_params`
    (components merged or dropped while that costs less than 1e-4 nats).
    """
    params, cert = run.params, run.certificate
    if cert.face is not None:
        w, p = params.weights, params.p
        groups = [list(g) for g in cert.face.groups]
        return MixtureParams(
            [float(w[g].sum()) for g in groups], [float(p[g[0]]) for g in groups]
        ).sorted()
    return reduce_params(data, params)


def _relabel(face: Face, order: np.ndarray) -> Face:
    """The face with component j renamed to its position in ``order``."""
    where = np.argsort(order)
    return Face(
        tuple(tuple(sorted(int(where[j]) for j in g)) for g in face.groups),
        tuple(sorted(int(where[j]) for j in face.empty)),
        face.bounds,
    )


# ---------------------------------------------------------------------- optima
def reduce_params(
    data: BinomialData, params: MixtureParams, *, nats: float = COLLAPSE_NATS
) -> MixtureParams:
    """The mixture with near-coinciding components merged and near-empty ones dropped.

    Greedily drops the lightest component, ties the two closest in p or puts an extreme
    bias on the boundary, while each change lowers the log-likelihood by less than
    ``nats`` (:func:`em.certify.propose_face`); tied components are then merged (weights
    added). The result is sorted by p.
    """
    face, point, _ = propose_face(data, params.sorted(), None, nats)
    w, p = point.weights, point.p
    return MixtureParams(
        [float(w[list(g)].sum()) for g in face.groups], [float(p[g[0]]) for g in face.groups]
    ).sorted()


def _same_mixture(a: MixtureParams, b: MixtureParams, atol: float) -> bool:
    """Same size and, after matching components (Hungarian), parameters within atol."""
    if a.n_components != b.n_components:
        return False
    cost = np.abs(a.p[:, None] - b.p[None, :]) + np.abs(a.weights[:, None] - b.weights[None, :])
    rows, cols = linear_sum_assignment(cost)
    return bool(
        np.max(np.abs(a.p[rows] - b.p[cols])) <= atol
        and np.max(np.abs(a.weights[rows] - b.weights[cols])) <= atol
    )


def _find_optima(data: BinomialData, runs: list[Run], atol: float) -> tuple[Optimum, ...]:
    """Group the converged runs by the optimum they reached, best first.

    Two converged runs reached the same optimum when their reduced mixtures (tied
    components merged, empty ones dropped: :func:`reduced_mixture`) have as many
    components and, after matching, parameters within ``atol``. Runs that did not converge
    are in no optimum and count towards no basin.
    """
    order = sorted(
        (i for i in range(len(runs)) if runs[i].converged), key=lambda i: -runs[i].objective
    )
    groups: list[tuple[MixtureParams, MixtureParams, list[int]]] = []
    for i in order:
        params = runs[i].params
        # Cheap test first: the same raw parameters as a group's first run.
        match = next((g for g in groups if _same_mixture(g[0], params, atol)), None)
        if match is None:
            reduced = reduced_mixture(data, runs[i])
            match = next((g for g in groups if _same_mixture(g[1], reduced, atol)), None)
            if match is None:
                groups.append((params, reduced, [i]))
                continue
        match[2].append(i)
    return tuple(
        Optimum(
            params=runs[members[0]].params,
            reduced=reduced,
            log_likelihood=runs[members[0]].log_likelihood,
            log_posterior=runs[members[0]].log_posterior,
            fraction=len(members) / len(runs),
            runs=tuple(sorted(members)),
            gap=max(runs[i].gap for i in members),
        )
        for _, reduced, members in groups
    )


# ---------------------------------------------------------------------- fit
def _diagnose(
    data: BinomialData, k: int, best: Run, runs: list[Run], optima: tuple[Optimum, ...]
) -> list[dict]:
    out = []
    top = optima[0] if optima and best.converged else None
    reduced = top.reduced if top is not None else None
    if reduced is not None and reduced.n_components < k:
        out.append(
            {
                "code": "collapsed",
                "message": (
                    f"the {k}-component fit is equivalent to one with {reduced.n_components} "
                    f"component(s) (p = {', '.join(f'{x:.6g}' for x in reduced.p)}): fitted "
                    "components coincide or are empty, so their separate weights and biases "
                    "are not identified"
                ),
                "effective_components": reduced.n_components,
            }
        )
    if data.max_trials < 2 * k - 1:
        out.append(
            {
                "code": "not_identifiable",
                "message": (
                    f"a binomial mixture of {k} components needs trials >= 2K - 1 = {2 * k - 1} "
                    f"to be identifiable (Teicher, 1963); the largest trials here is "
                    f"{data.max_trials}"
                ),
            }
        )
    if k > data.n_outcomes:
        out.append(
            {
                "code": "more_components_than_outcomes",
                "message": (
                    f"K = {k} exceeds the {data.n_outcomes} distinct outcome(s): the maximum "
                    "is not unique"
                ),
            }
        )
    stuck = [r for r in runs if not r.converged]
    if not best.converged:
        out.append(
            {
                "code": "not_converged",
                "message": (
                    f"no run reached a certified gap <= tol within max_iter; the best stopped "
                    f"after {best.n_iter} iterations with gap {_gap_text(best.gap)} "
                    f"({best.certificate.kind}: {best.certificate.detail})"
                ),
            }
        )
    elif stuck:
        out.append(
            {
                "code": "runs_not_converged",
                "message": (
                    f"{len(stuck)} of {len(runs)} runs stopped at max_iter without a certified "
                    f"gap <= tol (largest gap {_gap_text(max(r.gap for r in stuck))}); "
                    "they are in no optimum"
                ),
            }
        )
    return out


def _gap_text(gap: float) -> str:
    return f"{gap:.3g} nats" if np.isfinite(gap) else "unknown"


def _default_p(data: BinomialData, k: int) -> np.ndarray:
    """Evenly spaced quantiles of the observed proportions, kept inside (0, 1)."""
    props = (data.heads + 0.5) / (data.trials + 1.0)
    order = np.argsort(props)
    cum = np.cumsum(data.counts[order]) / data.n_sequences
    q = (np.arange(k) + 0.5) / k
    return props[order][np.searchsorted(cum, q)]


def _starts(data, k, restarts, seq, w0, p0, fix) -> list[tuple[str, MixtureParams]]:
    """The caller's start (if any), then ``restarts`` seeded random ones."""
    starts: list[tuple[str, MixtureParams]] = []
    if w0 is not None or p0 is not None:
        starts.append(
            (
                "user",
                MixtureParams(
                    w0 if w0 is not None else np.full(k, 1.0 / k),
                    p0 if p0 is not None else _default_p(data, k),
                ),
            )
        )
    for i, child in enumerate(seq.spawn(restarts)):
        rng = np.random.default_rng(child)
        w = rng.dirichlet(np.ones(k))  # a valid mixture by construction
        p = rng.uniform(0.0, 1.0, size=k)
        if fix == "weights":
            w = w0 if w0 is not None else np.full(k, 1.0 / k)
        if fix == "p":
            p = p0
        starts.append((f"random {i + 1}", MixtureParams._trusted(w, p)))
    if not starts:
        raise ValueError("restarts = 0 needs a starting point: give init_weights or init_p")
    return starts


def fit_data(
    data: BinomialData,
    n_components: int,
    *,
    restarts: int = 10,
    seed: int | None = 0,
    tol: float = TOL,
    max_iter: int = 1000,
    method: str = "newton",
    init_weights=None,
    init_p=None,
    fix: str | None = None,
    prior_weights=None,
    prior_p=None,
    optimum_atol: float = 1e-3,
) -> FitResult:
    """Fit a binomial mixture by EM with restarts to compressed data.

    See :func:`fit` for the parameters; this takes a :class:`BinomialData`.
    """
    k = v.check_n_components(n_components, data)
    restarts = v.check_positive_int(restarts, "restarts", minimum=0)
    max_iter = v.check_positive_int(max_iter, "max_iter", minimum=0)
    tol = v.check_tol(tol)
    optimum_atol = v.check_tol(optimum_atol, "optimum_atol")
    method = v.check_method(method, METHODS)
    fix = v.check_fix(fix)
    if seed is not None:
        seed = v.check_positive_int(seed, "seed", minimum=0)
    w0 = None if init_weights is None else v.check_weights(init_weights, k)
    p0 = None if init_p is None else v.check_p(init_p, k)
    alpha = v.check_prior_weights(prior_weights, k)
    beta = v.check_prior_p(prior_p)
    prior = None
    if alpha is not None or beta is not None:
        a, b = beta if beta is not None else (1.0, 1.0)
        prior = Prior(tuple((alpha if alpha is not None else np.ones(k)).tolist()), a, b)
    if fix == "p" and p0 is None:
        raise ValueError("fix='p' needs init_p: the biases to hold fixed")

    seq = np.random.SeedSequence(seed)
    starts = _starts(data, k, restarts, seq, w0, p0, fix)
    # All starts in lockstep, in batches small enough to keep (batch, K, M) arrays modest.
    size = max(1, _BATCH_ELEMENTS // (k * data.n_outcomes))
    runs: list[Run] = []
    for lo in range(0, len(starts), size):
        chunk = starts[lo : lo + size]
        inits = MixtureParams(
            np.stack([s.weights for _, s in chunk]), np.stack([s.p for _, s in chunk])
        )
        runs += run_em_batch(
            data,
            inits,
            prior=prior,
            fix=fix,
            tol=tol,
            max_iter=max_iter,
            method=method,
            starts=[label for label, _ in chunk],
        )
    optima = _find_optima(data, runs, optimum_atol)
    # The best converged run (the first of equals: the caller's start); else the best run.
    pool = [r for r in runs if r.converged] or runs
    best = max(pool, key=lambda r: r.objective)
    options = {
        "restarts": restarts,
        "tol": tol,
        "max_iter": max_iter,
        "method": method,
        "fix": fix,
        "init_weights": None if w0 is None else w0.tolist(),
        "init_p": None if p0 is None else p0.tolist(),
        "prior_weights": None if alpha is None else alpha.tolist(),
        "prior_p": None if beta is None else list(beta),
        "optimum_atol": optimum_atol,
    }
    return FitResult(
        data=data,
        n_components=k,
        params=best.params,
        log_likelihood=best.log_likelihood,
        log_posterior=best.log_posterior,
        n_iter=best.n_iter,
        n_estep=best.n_estep,
        converged=best.converged,
        certificate=best.certificate,
        trace=best.trace,
        runs=tuple(runs),
        optima=optima,
        warnings=tuple(_diagnose(data, k, best, runs, optima)),
        seed=int(seq.entropy),
        options=options,
    )


def fit(
    heads,
    trials,
    n_components: int,
    *,
    counts=None,
    restarts: int = 10,
    seed: int | None = 0,
    **options,
) -> FitResult:
    """Fit a K-component binomial mixture by EM, with seeded restarts and certified optima.

    Parameters
    ----------
    heads : array-like of int, shape (n,)
        Successes per sequence (or per distinct outcome, with ``counts``).
    trials : int or array-like of int, shape (n,)
        Trials per sequence; a scalar means the same for all.
    n_components : int
        K >= 1.
    counts : array-like of int, shape (n,), optional
        Multiplicity of each row (outcomes with counts, as in Table 6.1).
    restarts : int, default 10
        Seeded random starts (weights ~ Dirichlet(1), p ~ Uniform(0, 1)), run beside the
        caller's own start if ``init_weights`` or ``init_p`` is given.
    seed : int or None, default 0
        Root of the ``np.random.SeedSequence`` each random start is spawned from, so the
        same call gives the same numbers; None draws fresh entropy, which the result
        records in ``seed``.
    **options
        ``tol`` (1e-9: a run has converged when its certified gap, the objective still to
        gain, is at most this many nats; absolute, whatever N is), ``max_iter`` (1000
        accepted steps), ``method`` (``"newton"``: EM steps, then Newton steps with the
        exact Hessian and a line search; ``"em"``: plain EM), ``init_weights``, ``init_p``,
        ``fix`` (``"weights"`` or ``"p"``), ``prior_weights`` (Dirichlet alpha, >= 1),
        ``prior_p`` ((a, b) of a Beta prior, each >= 1), ``optimum_atol`` (1e-3: parameter
        tolerance when grouping converged runs into optima).

    Returns
    -------
    FitResult
        Best estimate, every run with its certificate, the distinct optima of the
        converged runs with their basin fractions, and warnings (collapsed, not
        identifiable, not converged).

    Raises
    ------
    ValueError
        For bad data or options, with a message naming the argument or the element.
    EMInvariantError
        If the objective ever decreases beyond float tolerance (a bug, never expected).

    Examples
    --------
    >>> from em import fit
    >>> res = fit([6, 5, 4, 2, 2, 6, 5, 5, 4, 2], 10, 2, seed=1)
    >>> res.converged and res.gap <= 1e-9
    True
    """
    if counts is None:
        data = BinomialData.from_sequences(heads, trials)
    else:
        data = BinomialData.from_counts(heads, trials, counts)
    return fit_data(data, n_components, restarts=restarts, seed=seed, **options)
