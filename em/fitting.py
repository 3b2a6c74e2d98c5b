"""The EM loop, restarts and the identification of distinct local optima."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from em import _validation as v
from em.core import EStep, MixtureParams, Prior, e_step, log_likelihood, log_prior, m_step
from em.data import BinomialData

__all__ = [
    "EMInvariantError",
    "Run",
    "Optimum",
    "FitResult",
    "fit",
    "fit_data",
    "run_em",
    "run_em_batch",
    "reduce_params",
]

#: A log-likelihood change below this many nats is treated as no change when deciding
#: whether components coincide (the fit is equivalent to one with fewer components).
COLLAPSE_NATS = 1e-4

#: How far the objective may fall, relative to max(1, |objective|), before the EM
#: invariant (the objective never decreases) counts as broken: float rounding only.
MONOTONE_RTOL = 1e-10

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
        EM updates performed.
    converged : bool
        Whether the objective's change fell below the tolerance within ``max_iter``.
    trace : ndarray
        The objective at theta^(0), theta^(1), ..., theta^(n_iter).
    """

    start: str
    init: MixtureParams
    params: MixtureParams
    log_likelihood: float
    log_posterior: float | None
    n_iter: int
    converged: bool
    trace: np.ndarray

    @property
    def objective(self) -> float:
        """What EM maximised: ``log_posterior`` for MAP-EM, else ``log_likelihood``."""
        return self.log_likelihood if self.log_posterior is None else self.log_posterior

    def to_dict(self) -> dict:
        """Plain-Python form for JSON."""
        return {
            "start": self.start,
            "log_likelihood": self.log_likelihood,
            "log_posterior": self.log_posterior,
            "weights": self.params.weights.tolist(),
            "p": self.params.p.tolist(),
            "n_iter": self.n_iter,
            "converged": self.converged,
            "init": self.init.to_dict(),
            "trace": self.trace.tolist(),
        }


@dataclass(frozen=True, eq=False)
class Optimum:
    """A distinct local optimum (modulo label permutation and coinciding components).

    Attributes
    ----------
    params : MixtureParams
        The best run's estimate that reached it (all K components, sorted by p).
    reduced : MixtureParams
        The same mixture with coinciding components merged and empty ones dropped.
    log_likelihood, log_posterior : float, float or None
        At ``params``.
    fraction : float
        Share of the runs that reached this optimum (its basin's share of the starts).
    runs : tuple of int
        Indices into :attr:`FitResult.runs`.
    """

    params: MixtureParams
    reduced: MixtureParams
    log_likelihood: float
    log_posterior: float | None
    fraction: float
    runs: tuple[int, ...]

    def to_dict(self) -> dict:
        """Plain-Python form for JSON."""
        return {
            "log_likelihood": self.log_likelihood,
            "log_posterior": self.log_posterior,
            "weights": self.params.weights.tolist(),
            "p": self.params.p.tolist(),
            "fraction": self.fraction,
            "n_runs": len(self.runs),
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
        The best run's estimate (components sorted by p).
    log_likelihood, log_posterior, n_iter, converged, trace
        Those of the best run (see :class:`Run`).
    runs : tuple of Run
        Every run, the caller's start first, then the seeded random ones.
    optima : tuple of Optimum
        Distinct optima, best first.
    warnings : tuple of dict
        Each ``{"code": ..., "message": ...}``; codes: ``collapsed``,
        ``not_identifiable``, ``more_components_than_outcomes``, ``not_converged``.
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
    converged: bool
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
    def restarts(self) -> tuple[Run, ...]:
        """Every run (the caller's start first); the name the CLI's JSON uses."""
        return self.runs

    @property
    def collapsed(self) -> bool:
        """Whether the best fit is equivalent to one with fewer components."""
        return any(w["code"] == "collapsed" for w in self.warnings)

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
            "converged": self.converged,
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
    tol: float = 1e-10,
    max_iter: int = 1000,
    start: str = "user",
) -> Run:
    """Iterate E- and M-steps from ``init`` until the objective stops increasing.

    Converged when the objective rises by at most ``tol * max(1, |objective|)`` in one
    iteration. Every iteration checks the EM invariant: a fall of more than
    ``MONOTONE_RTOL * max(1, |objective|)`` raises :class:`EMInvariantError`.
    """
    batch = MixtureParams(init.weights[None], init.p[None])
    return run_em_batch(
        data, batch, prior=prior, fix=fix, tol=tol, max_iter=max_iter, starts=[start]
    )[0]


def run_em_batch(
    data: BinomialData,
    inits: MixtureParams,
    *,
    prior: Prior | None = None,
    fix: str | None = None,
    tol: float = 1e-10,
    max_iter: int = 1000,
    starts: list[str],
) -> list[Run]:
    """:func:`run_em` from R starting points at once (``inits`` of shape (R, K)).

    The R runs advance in lockstep through the same batched E- and M-steps, so numpy's
    per-call overhead is paid once per iteration, not once per run; a run that has
    converged keeps its parameters while the others go on. Each run's result is what
    :func:`run_em` alone would give.
    """
    n_runs = len(starts)
    params = inits
    expect = e_step(data, params)
    obj = expect.log_likelihood + log_prior(params, prior)
    alive = np.arange(n_runs)  # original index of each row still iterating
    history = [(alive, obj)]
    final_obj = obj.copy()
    final_ll = np.array(expect.log_likelihood, dtype=float)
    final_w, final_p = params.weights.copy(), params.p.copy()
    n_iter = np.zeros(n_runs, dtype=np.int64)
    converged = np.zeros(n_runs, dtype=bool)
    for it in range(1, max_iter + 1):
        params = m_step(expect, params, prior=prior, fix=fix)
        expect = e_step(data, params)
        new = expect.log_likelihood
        if prior is not None:
            new = new + log_prior(params, prior)
        # Change of the objective relative to max(1, |objective|).
        rel = new - obj
        rel /= np.maximum(np.abs(new), 1.0)
        worst = _min(rel)
        if worst < -MONOTONE_RTOL:
            r = int(np.argmin(rel))
            raise EMInvariantError(
                f"EM objective decreased at iteration {it}: {obj[r]!r} -> {new[r]!r} "
                f"(start {starts[alive[r]]}, weights={params.weights[r].tolist()}, "
                f"p={params.p[r].tolist()})"
            )
        history.append((alive, new))
        obj = new
        last = it == max_iter
        if last or worst <= tol:  # some run has converged (or all must stop)
            done = rel <= tol
            rows = np.arange(alive.size) if last else np.flatnonzero(done)
            idx = alive[rows]
            n_iter[idx] = it
            converged[idx] = done[rows]
            final_obj[idx], final_ll[idx] = new[rows], expect.log_likelihood[rows]
            final_w[idx], final_p[idx] = params.weights[rows], params.p[rows]
            keep = ~done
            if last or not keep.any():
                break
            # Drop the finished runs from the batch.
            alive, obj, params = alive[keep], obj[keep], params[keep]
            expect = _take(expect, keep)
    trace_arr = np.full((len(history), n_runs), np.nan)
    for i, (rows, values) in enumerate(history):
        trace_arr[i, rows] = values
    final = MixtureParams(final_w, final_p)
    if prior is None or len(set(prior.alpha)) == 1:
        # Exchangeable components: list them by increasing p. An asymmetric Dirichlet
        # tells the components apart by label, so then the labels are kept.
        final = final.sorted()
    return [
        Run(
            start=starts[r],
            init=inits[r],
            params=final[r],
            log_likelihood=float(final_ll[r]),
            log_posterior=None if prior is None else float(final_obj[r]),
            n_iter=int(n_iter[r]),
            converged=bool(converged[r]),
            trace=trace_arr[: n_iter[r] + 1, r].copy(),
        )
        for r in range(n_runs)
    ]


def _take(expect: EStep, rows: np.ndarray) -> EStep:
    """The E-step of a subset of the batch."""
    return EStep(
        log_likelihood=expect.log_likelihood[rows],
        resp=expect.resp[rows],
        expected_counts=expect.expected_counts[rows],
        expected_successes=expect.expected_successes[rows],
        expected_trials=expect.expected_trials[rows],
        counts=expect.counts,
    )


# ---------------------------------------------------------------------- optima
def reduce_params(
    data: BinomialData, params: MixtureParams, *, nats: float = COLLAPSE_NATS
) -> MixtureParams:
    """Merge coinciding components and drop empty ones while the likelihood allows it.

    Repeatedly tries dropping the lightest component and merging the two closest in p
    (weights added, p weight-averaged); a change is kept when it lowers the
    log-likelihood by less than ``nats``. The result is sorted by p.
    """
    current = params.sorted()
    ll = log_likelihood(data, current)
    while current.n_components > 1:
        w, p = current.weights, current.p
        j = int(np.argmin(w))  # drop the lightest component
        keep = np.arange(w.size) != j
        i = int(np.argmin(np.diff(p)))  # or merge the closest neighbours (sorted by p)
        wm = w[i] + w[i + 1]
        pm = (w[i] * p[i] + w[i + 1] * p[i + 1]) / wm if wm > 0 else 0.5 * (p[i] + p[i + 1])
        candidates = MixtureParams(
            np.stack([w[keep] / w[keep].sum(), np.concatenate([w[:i], [wm], w[i + 2 :]])]),
            np.stack([p[keep], np.concatenate([p[:i], [pm], p[i + 2 :]])]),
        )
        loss = ll - log_likelihood(data, candidates)
        c = int(np.argmin(loss))
        if not loss[c] < nats:
            break
        best = candidates[c]
        current = best.sorted()
    return current


def _same_mixture(a: MixtureParams, b: MixtureParams, atol: float) -> bool:
    return (
        a.n_components == b.n_components
        and np.max(np.abs(a.p - b.p)) <= atol
        and np.max(np.abs(a.weights - b.weights)) <= atol
    )


def _find_optima(
    data: BinomialData, runs: list[Run], *, nats: float, atol: float
) -> tuple[Optimum, ...]:
    """Group runs that reached the same optimum, best first.

    Two runs reached the same optimum when their reduced mixtures (coinciding components
    merged, empty ones dropped, see :func:`reduce_params`) have as many components and
    parameters within ``atol``. Everything is sorted by p, so the labels cannot matter,
    and merging first makes the free weights of coinciding components not matter either.
    Objective values are not compared: EM stops on the change of the objective, so runs
    to one optimum end at slightly different values.
    """
    order = sorted(range(len(runs)), key=lambda i: -runs[i].objective)
    groups: list[tuple[MixtureParams, MixtureParams, list[int]]] = []
    for i in order:
        params = runs[i].params
        # Cheap test first: the same raw parameters as a group's best run.
        match = next((g for g in groups if _same_mixture(g[0], params, atol)), None)
        if match is None:
            reduced = reduce_params(data, params, nats=nats)
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
        )
        for _, reduced, members in groups
    )


# ---------------------------------------------------------------------- fit
def _diagnose(data: BinomialData, k: int, best: Run, reduced: MixtureParams) -> list[dict]:
    out = []
    if reduced.n_components < k:
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
    if not best.converged:
        out.append(
            {
                "code": "not_converged",
                "message": (
                    f"the best run stopped after max_iter = {best.n_iter} iterations without "
                    "meeting the tolerance"
                ),
            }
        )
    return out


def _default_p(data: BinomialData, k: int) -> np.ndarray:
    """Evenly spaced quantiles of the observed proportions, kept inside (0, 1)."""
    props = (data.heads + 0.5) / (data.trials + 1.0)
    order = np.argsort(props)
    cum = np.cumsum(data.counts[order]) / data.n_sequences
    q = (np.arange(k) + 0.5) / k
    return props[order][np.searchsorted(cum, q)]


def fit_data(
    data: BinomialData,
    n_components: int,
    *,
    restarts: int = 10,
    seed: int | None = 0,
    tol: float = 1e-10,
    max_iter: int = 1000,
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
    k = v.check_n_components(n_components)
    restarts = v.check_positive_int(restarts, "restarts", minimum=0)
    max_iter = v.check_positive_int(max_iter, "max_iter", minimum=0)
    tol = v.check_tol(tol)
    optimum_atol = v.check_tol(optimum_atol, "optimum_atol")
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
        w = rng.dirichlet(np.ones(k))
        p = rng.uniform(0.0, 1.0, size=k)
        if fix == "weights":
            w = w0 if w0 is not None else np.full(k, 1.0 / k)
        if fix == "p":
            p = p0
        starts.append((f"random {i + 1}", MixtureParams(w, p)))
    if not starts:
        raise ValueError("restarts = 0 needs a starting point: give init_weights or init_p")

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
            starts=[label for label, _ in chunk],
        )
    optima = _find_optima(data, runs, nats=COLLAPSE_NATS, atol=optimum_atol)
    best = max(runs, key=lambda r: r.objective)  # the first of equals: the caller's start
    options = {
        "restarts": restarts,
        "tol": tol,
        "max_iter": max_iter,
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
        converged=best.converged,
        trace=best.trace,
        runs=tuple(runs),
        optima=optima,
        warnings=tuple(_diagnose(data, k, best, optima[0].reduced)),
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
    """Fit a K-component binomial mixture by EM, with seeded restarts.

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
        ``tol`` (1e-10, relative change of the objective), ``max_iter`` (1000),
        ``init_weights``, ``init_p``, ``fix`` (``"weights"`` or ``"p"``), ``prior_weights``
        (Dirichlet alpha, >= 1), ``prior_p`` ((a, b) of a Beta prior, each >= 1),
        ``optimum_atol`` (1e-3: parameter tolerance when grouping runs into optima).

    Returns
    -------
    FitResult
        Best estimate, every run, the distinct optima with their basin fractions, and
        warnings (collapsed, not identifiable, not converged).

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
    >>> round(res.log_likelihood, 4) <= 0
    True
    """
    if counts is None:
        data = BinomialData.from_sequences(heads, trials)
    else:
        data = BinomialData.from_counts(heads, trials, counts)
    return fit_data(data, n_components, restarts=restarts, seed=seed, **options)
