"""A K-component binomial mixture in PyMC, with the latent coin marginalised out.

The likelihood is evaluated once per distinct (heads, trials) outcome and weighted by the
outcome's count, so a gradient costs the same for 20 sequences as for 10^6 of them. The
priors are Dirichlet(alpha) on the weights and Beta(a, b) on every bias, the
parametrisation of ``em``'s MAP-EM, so both target one objective: the log-posterior
density on the constrained scale (``logp(jacobian=False)``), which ``pm.find_MAP``
maximises.

This module takes ``em``'s data object but does not import ``em``: any object with
integer arrays ``heads``, ``trials`` and ``counts`` (distinct outcomes) will do.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import xarray as xr
from pymc.model.transform.conditioning import remove_value_transforms
from scipy.optimize import minimize
from scipy.special import gammaln, logsumexp, xlogy

from models import COMPONENT, DEFAULT_SAMPLER, OUTCOME, SAMPLERS

__all__ = [
    "COMPONENT",
    "OUTCOME",
    "SAMPLERS",
    "DEFAULT_SAMPLER",
    "MapResult",
    "MixtureModel",
    "check_prior",
    "save_posterior",
    "load_posterior",
    "reproducible_compilation",
]

# Point evaluations (log-densities, the MAP search) run the graph in Python: a few hundred
# calls cost well under a second, while compiling them first costs about 20 s in a fresh
# process. NUTS, which evaluates the gradient millions of times, compiles as PyMC chooses.
_PY_MODE = pytensor.compile.mode.Mode(linker="py", optimizer="fast_run")


def reproducible_compilation():
    """PyTensor flags under which the samplers' functions are compiled (a context manager).

    Numba's fastmath lets LLVM reassociate floating-point sums, and it does so differently
    when a graph is compiled cold (one module, inlined) than when it is linked from the
    compile cache: log-densities then differ in the last bits (up to 3e-14 here) and NUTS
    trajectories, hence results.json, differ between a cold and a warm cache. Without
    fastmath both give the same bits.
    """
    return pytensor.config.change_flags(numba__fastmath=False)


# Above this many numbers, a per-draw derived array is summarised by its mean only.
_MAX_DERIVED = 20_000_000
# Largest count the float64 count data hold exactly (em's MAX_SEQUENCES; not imported).
_MAX_COUNT = 2**53 - 1


def check_prior(prior_weights, prior_p, k: int) -> tuple[np.ndarray, float, float]:
    """Validate and broadcast the priors: (alpha as a K-vector, a, b); all must be > 0."""
    try:
        alpha = np.broadcast_to(np.asarray(prior_weights, dtype=float), (k,)).copy()
    except (TypeError, ValueError):
        raise ValueError(
            f"prior_weights must be a number or {k} numbers, got {prior_weights!r}"
        ) from None
    if not np.all(np.isfinite(alpha)) or np.any(alpha <= 0):
        raise ValueError(f"prior_weights: Dirichlet alpha must be > 0, got {alpha.tolist()}")
    try:
        a, b = (float(x) for x in prior_p)
    except (TypeError, ValueError):
        raise ValueError(f"prior_p must be two numbers a, b, got {prior_p!r}") from None
    if not (math.isfinite(a) and math.isfinite(b)) or a <= 0 or b <= 0:
        raise ValueError(f"prior_p: Beta parameters must be > 0, got a={a:g}, b={b:g}")
    return alpha, a, b


def _counts_data(counts: np.ndarray) -> np.ndarray:
    """Counts as the model stores them: float64, which holds every count exactly.

    ``pm.Data`` would store an integer array as int32 (PyMC's ``intX``), wrapping counts of
    2^31 and more; float64 is exact up to 2^53 - 1, the most sequences ``em`` accepts.
    """
    if counts.size and counts.max() > _MAX_COUNT:
        i = int(np.argmax(counts > _MAX_COUNT))
        raise ValueError(f"counts[{i}] = {counts[i]} exceeds 2^53 - 1, the largest exact count")
    return counts.astype(np.float64)


def _positive_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _seed_int(seed) -> int:
    """An int seed for PyMC from an int or a ``np.random.SeedSequence``."""
    if isinstance(seed, np.random.SeedSequence):
        return int(seed.generate_state(1)[0])
    return _positive_int(seed, "seed", 0)


def _weighted_mixture_logp(value, w, p, trials, counts):
    """count x log sum_j w_j Binomial(value | trials, p_j) for one distinct outcome."""
    mix = pm.Mixture.dist(w=w, comp_dists=pm.Binomial.dist(n=trials[..., None], p=p))
    return counts * pm.logp(mix, value)


def _component_logpmf(heads, trials, p):
    """log Binomial(heads | trials, p_j), heads/trials (M,), p (..., K) -> (..., M, K)."""
    h = np.asarray(heads, dtype=float)[:, None]
    n = np.asarray(trials, dtype=float)[:, None]
    log_c = gammaln(n + 1) - gammaln(h + 1) - gammaln(n - h + 1)
    p = np.asarray(p)[..., None, :]
    return log_c + xlogy(h, p) + xlogy(n - h, 1 - p)


@dataclass(frozen=True, eq=False)
class MapResult:
    """One ``pm.find_MAP`` run.

    Attributes
    ----------
    start : str
        Where it started (a label such as ``"em optimum 1"`` or ``"random 2"``).
    init_weights, init_p : ndarray
        The starting point.
    weights, p : ndarray
        The mode found (components by increasing p for the exchangeable model).
    log_posterior : float
        The model's log-posterior density there (constrained scale, no Jacobian).
    log_likelihood : float
        The model's log-likelihood there (full binomial log pmf).
    success : bool
        What the optimiser reported.
    message : str
        The optimiser's message.
    """

    start: str
    init_weights: np.ndarray
    init_p: np.ndarray
    weights: np.ndarray
    p: np.ndarray
    log_posterior: float
    log_likelihood: float
    success: bool
    message: str

    def to_dict(self) -> dict:
        """Plain-Python form for JSON."""
        return {
            "start": self.start,
            "weights": self.weights.tolist(),
            "p": self.p.tolist(),
            "log_posterior": self.log_posterior,
            "log_likelihood": self.log_likelihood,
            "success": self.success,
            "message": self.message,
            "init_weights": self.init_weights.tolist(),
            "init_p": self.init_p.tolist(),
        }


@dataclass(eq=False)
class MixtureModel:
    """The PyMC model of a K-component binomial mixture, on compressed data.

    Parameters
    ----------
    data : object with ``heads``, ``trials``, ``counts``
        Distinct outcomes and their counts, e.g. ``em.BinomialData``.
    n_components : int
        K >= 1.
    ordered : bool, default False
        False: exchangeable components (the posterior has K! relabelled copies of every
        mode: label switching). True: biases constrained to increase (an identifying
        constraint), through PyMC's ordered transform chained after the log-odds one.
    prior_weights : float or sequence of float, default 1
        Dirichlet concentration alpha (> 0); 1 is flat on the simplex.
    prior_p : (float, float), default (1, 1)
        Beta(a, b) on every bias (a, b > 0); (1, 1) is flat, so the MAP is the MLE.

    Attributes
    ----------
    model : pm.Model
        Free variables ``w`` (dims ``component``) and ``p`` (dims ``component``); the
        observed ``heads`` (dims ``outcome``) is a ``CustomDist`` whose log-probability is
        count x log mixture pmf of each distinct outcome.
    """

    data: object
    n_components: int
    ordered: bool = False
    prior_weights: object = 1.0
    prior_p: tuple = (1.0, 1.0)
    model: pm.Model = field(init=False, repr=False)

    def __post_init__(self):
        k = _positive_int(self.n_components, "n_components", 1)
        try:
            heads, trials, counts = (
                np.asarray(getattr(self.data, name), dtype=np.int64)
                for name in ("heads", "trials", "counts")
            )
        except AttributeError:
            raise ValueError(
                "data must have heads, trials and counts arrays (e.g. em.BinomialData)"
            ) from None
        alpha, a, b = check_prior(self.prior_weights, self.prior_p, k)
        self.alpha, self.a, self.b = alpha, a, b
        self.heads, self.trials, self.counts = heads, trials, counts
        coords = {COMPONENT: np.arange(k), OUTCOME: np.arange(heads.size)}
        with pm.Model(coords=coords) as model:
            if k == 1:  # one component: its weight is 1, nothing to sample
                w = pm.Deterministic("w", pt.ones(1), dims=COMPONENT)
            else:
                w = pm.Dirichlet("w", a=alpha, dims=COMPONENT)
            extra = {"transform": pm.distributions.transforms.ordered} if self.ordered else {}
            # float64 arrays, not Python floats: PyTensor would make 2.0 a float32 constant
            # and compute the Beta normalising constant in single precision.
            p = pm.Beta(
                "p",
                alpha=np.array(a, np.float64),
                beta=np.array(b, np.float64),
                dims=COMPONENT,
                **extra,
            )
            trials_data = pm.Data("trials", trials, dims=OUTCOME)
            counts_data = pm.Data("counts", _counts_data(counts), dims=OUTCOME)
            pm.CustomDist(
                "heads",
                w,
                p,
                trials_data,
                counts_data,
                logp=_weighted_mixture_logp,
                signature="(k),(k),(),()->()",
                observed=heads,
                dims=OUTCOME,
            )
        self.model = model

    def set_counts(self, counts) -> None:
        """Swap in new counts for the same outcomes, without rebuilding or recompiling.

        Every compiled function (log-densities, the MAP search, a nutpie model built with
        ``with_data(counts=...)``) then sees the new data. Used by simulation studies,
        where every replicate of a design has the same outcomes and new counts.
        """
        counts = np.asarray(counts, dtype=np.int64)
        if counts.shape != self.counts.shape or np.any(counts < 0):
            raise ValueError(
                f"counts must be {self.counts.size} integers >= 0, got shape {counts.shape}"
            )
        values = _counts_data(counts)
        self.counts = counts
        self.model.set_data("counts", values)
        if "_constrained" in self.__dict__:  # a clone of the model, with its own data
            self._constrained.set_data("counts", values)

    # ------------------------------------------------------------------ densities
    @cached_property
    def _constrained(self) -> pm.Model:
        return remove_value_transforms(self.model)

    @cached_property
    def _logpost_fn(self):
        return self._constrained.compile_logp(jacobian=False, mode=_PY_MODE)

    @cached_property
    def _loglik_fn(self):
        m = self._constrained
        return m.compile_logp(vars=m.observed_RVs, jacobian=False, mode=_PY_MODE)

    def _point(self, weights, p) -> dict:
        w = np.asarray(weights, dtype=float)
        p = np.asarray(p, dtype=float)
        if w.shape != (self.n_components,) or p.shape != (self.n_components,):
            raise ValueError(
                f"weights and p must have {self.n_components} values, got {w.shape}, {p.shape}"
            )
        free = {rv.name for rv in self.model.free_RVs}  # w is fixed at 1 when K = 1
        return {name: v for name, v in (("w", w), ("p", p)) if name in free}

    def log_posterior(self, weights, p) -> float:
        """Log-posterior density at (weights, p), constrained scale, no Jacobian."""
        return float(self._logpost_fn(self._point(weights, p)))

    def log_likelihood(self, weights, p) -> float:
        """The model's log-likelihood at (weights, p): full binomial log pmf, weighted."""
        return float(self._loglik_fn(self._point(weights, p)))

    # ------------------------------------------------------------------ MAP
    @cached_property
    def _map_fns(self):
        """Log-density and gradient for the MAP search, compiled once.

        ``logp(jacobian=False)`` and its gradient on the unconstrained value variables,
        and the maps between constrained and unconstrained values.
        """
        m = self.model
        logp = m.compile_logp(jacobian=False, mode=_PY_MODE)
        dlogp = m.compile_dlogp(jacobian=False, mode=_PY_MODE)
        free = [rv for rv in (m["w"], m["p"]) if rv in m.free_RVs]  # no w when K = 1
        inputs = {name: pt.dvector(name) for name in ("w", "p")}
        forward = [
            m.rvs_to_transforms[rv].forward(inputs[rv.name], *rv.owner.inputs) for rv in free
        ]
        backward = [
            m.rvs_to_transforms[rv].backward(m.rvs_to_values[rv], *rv.owner.inputs) for rv in free
        ]
        to_free = pytensor.function([inputs[rv.name] for rv in free], forward, mode=_PY_MODE)
        to_constrained = pytensor.function(
            [m.rvs_to_values[rv] for rv in free], backward, mode=_PY_MODE
        )
        return logp, dlogp, to_free, to_constrained, [rv.name for rv in free]

    def find_map(
        self, starts=(), *, n_random: int = 4, seed=0, method: str = "compiled"
    ) -> tuple[MapResult, ...]:
        """The posterior mode from each start, best first.

        The search is what ``pm.find_MAP`` does: L-BFGS-B on the unconstrained value
        variables, maximising ``model.logp(jacobian=False)``, i.e. the mode of the density
        on the constrained scale. By default the model's log-density and gradient are
        compiled once and reused for every start (``method="compiled"``); ``pm.find_MAP``
        itself (``method="find_MAP"``) compiles at every call, about 24 s the first time
        in a process on this machine. A test checks that the two reach the same mode.

        Parameters
        ----------
        starts : sequence of (label, weights, p)
            Given starting points, e.g. EM's optima.
        n_random : int, default 4
            Further random starts: weights ~ Dirichlet(1), p ~ Uniform(0, 1), each from a
            child of ``np.random.SeedSequence(seed)``.
        seed : int or np.random.SeedSequence
        method : {"compiled", "find_MAP"}
        """
        n_random = _positive_int(n_random, "n_random", 0)
        if method not in ("compiled", "find_MAP"):
            raise ValueError(f"method must be 'compiled' or 'find_MAP', got {method!r}")
        ss = (
            seed
            if isinstance(seed, np.random.SeedSequence)
            else np.random.SeedSequence(_positive_int(seed, "seed", 0))
        )
        k = self.n_components
        points = [(str(lab), np.asarray(w, float), np.asarray(p, float)) for lab, w, p in starts]
        for i, child in enumerate(ss.spawn(n_random)):
            rng = np.random.default_rng(child)
            points.append((f"random {i + 1}", rng.dirichlet(np.ones(k)), rng.uniform(size=k)))
        if not points:
            raise ValueError("find_map needs a start: give starts or n_random >= 1")
        results = [self._map_from(label, w, p, method) for label, w, p in points]
        return tuple(sorted(results, key=lambda r: -r.log_posterior))

    def _start(self, w0: np.ndarray, p0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A start strictly inside the support (and increasing p for the ordered model)."""
        w = np.clip(w0, 1e-6, None)
        w = w / w.sum()
        p = np.clip(p0, 1e-4, 1 - 1e-4)
        if self.ordered:  # the ordered transform needs strictly increasing values
            p = np.sort(p)
            for j in range(1, p.size):
                p[j] = max(p[j], p[j - 1] + 1e-6)
        return w, p

    def _map_from(self, label: str, w0, p0, method: str) -> MapResult:
        w_init, p_init = self._start(w0, p0)
        if method == "find_MAP":
            with self.model:
                res = pm.find_MAP(
                    initvals={"w": w_init, "p": p_init},
                    jitter=False,
                    progressbar=False,
                    return_inferencedata=True,
                )
            w = np.asarray(res["posterior"]["w"].values, dtype=float).reshape(-1)
            p = np.asarray(res["posterior"]["p"].values, dtype=float).reshape(-1)
            success = bool(res["optimizer_result"]["success"].values)
            message = str(res["optimizer_result"]["message"].values)
        else:
            logp, dlogp, to_free, to_constrained, free_names = self._map_fns
            names = [v.name for v in self.model.value_vars]
            given = {"w": w_init, "p": p_init}
            free = [np.asarray(a, dtype=float) for a in to_free(*(given[n] for n in free_names))]
            sizes = np.cumsum([a.size for a in free])[:-1]

            def point(x):
                return dict(zip(names, np.split(x, sizes), strict=True))

            def loss(x):
                pt_ = point(x)
                return -float(logp(pt_)), -np.asarray(dlogp(pt_), dtype=float)

            opt = minimize(loss, np.concatenate(free), jac=True, method="L-BFGS-B")
            best = point(opt.x)
            found = dict(zip(free_names, to_constrained(*best.values()), strict=True))
            w = np.asarray(found.get("w", np.ones(1)), dtype=float)
            p = np.asarray(found["p"], dtype=float)
            success, message = bool(opt.success), str(opt.message)
        if not self.ordered and len(set(self.alpha.tolist())) == 1:
            order = np.lexsort((w, p))
            w, p = w[order], p[order]
        return MapResult(
            start=label,
            init_weights=w_init,
            init_p=p_init,
            weights=w,
            p=p,
            log_posterior=self.log_posterior(w, p),
            log_likelihood=self.log_likelihood(w, p),
            success=success,
            message=message,
        )

    # ------------------------------------------------------------------ posterior
    def sample(
        self,
        *,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        seed=0,
        sampler: str = DEFAULT_SAMPLER,
        target_accept: float = 0.9,
        cores: int = 2,
    ) -> xr.DataTree:
        """NUTS draws from the posterior, with the derived groups added.

        The same ``seed`` gives identical draws. Besides PyMC's groups the result has:

        - ``log_likelihood``: ``heads`` (chain, draw, outcome), the log-likelihood of
          ONE sequence with that outcome (not weighted by its count; ``constant_data``
          holds the counts), so a per-sequence LOO weights each term by its count.
        - ``responsibilities``: ``mean`` (outcome, component), the posterior mean of
          P(coin j | outcome), the Bayesian counterpart of Table 6.1 (under label
          switching the labels mix; relabel the draws before reading it per component).
        - ``predictive``: ``pmf`` (chain, draw, trials, heads) of the posterior
          predictive pmf over heads = 0..trials for each distinct number of trials, and
          ``pmf_mean`` (trials, heads).

        Parameters
        ----------
        draws, tune, chains : int
            Kept draws per chain (>= 1), tuning steps (>= 0), chains (>= 1).
        seed : int or np.random.SeedSequence
        sampler : {"nutpie", "pymc"}
        target_accept : float in (0, 1)
        cores : int
            Parallel chains for the ``pymc`` sampler.
        """
        draws = _positive_int(draws, "draws", 1)
        tune = _positive_int(tune, "tune", 0)
        chains = _positive_int(chains, "chains", 1)
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
        if not 0 < target_accept < 1:
            raise ValueError(f"target_accept must be in (0, 1), got {target_accept!r}")
        seed_int = _seed_int(seed)
        kwargs = {}
        if self.ordered:  # an ordered transform cannot start at PyMC's default point
            kwargs["initvals"] = {"p": np.linspace(0.2, 0.8, self.n_components)}
        with warnings.catch_warnings():
            # PyMC's own multiprocess sampler forks; Python 3.12 warns about fork in
            # threaded processes. Harmless here (notes/pymc6-arviz1.md, pitfall 8).
            warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
            with self.model, reproducible_compilation():
                idata = pm.sample(
                    draws=draws,
                    tune=tune,
                    chains=chains,
                    cores=min(cores, chains),
                    random_seed=seed_int,
                    nuts_sampler=sampler,
                    target_accept=target_accept,
                    progressbar=False,
                    compute_convergence_checks=False,
                    **kwargs,
                )
        self.add_derived(idata)
        return idata

    def add_derived(self, idata: xr.DataTree) -> xr.DataTree:
        """Add ``log_likelihood``, ``responsibilities`` and ``predictive`` from the draws."""
        post = idata["posterior"]
        w = np.asarray(post["w"].transpose("chain", "draw", COMPONENT).values)
        p = np.asarray(post["p"].transpose("chain", "draw", COMPONENT).values)
        n_chain, n_draw, k = w.shape
        m = self.heads.size
        log_lik = np.empty((n_chain, n_draw, m))
        resp_sum = np.zeros((m, k))
        chunk = max(1, 2_000_000 // max(1, m * k))
        flat_w, flat_p = w.reshape(-1, k), p.reshape(-1, k)
        flat_ll = log_lik.reshape(-1, m)
        for lo in range(0, flat_w.shape[0], chunk):
            sl = slice(lo, lo + chunk)
            joint = np.log(flat_w[sl])[:, None, :] + _component_logpmf(
                self.heads, self.trials, flat_p[sl]
            )
            total = logsumexp(joint, axis=-1)  # (draws, M)
            flat_ll[sl] = total
            resp_sum += np.exp(joint - total[..., None]).sum(axis=0)
        coords = {"chain": post["chain"].values, "draw": post["draw"].values}
        idata["log_likelihood"] = xr.Dataset(
            {"heads": (("chain", "draw", OUTCOME), log_lik)},
            coords={**coords, OUTCOME: np.arange(m)},
        )
        idata["responsibilities"] = xr.Dataset(
            {"mean": ((OUTCOME, COMPONENT), resp_sum / (n_chain * n_draw))},
            coords={OUTCOME: np.arange(m), COMPONENT: np.arange(k)},
        )
        trial_values = np.unique(self.trials)
        h = np.arange(trial_values.max() + 1)
        pmf_shape = (n_chain, n_draw, trial_values.size, h.size)
        pmf_mean = np.zeros((trial_values.size, h.size))
        keep_draws = math.prod(pmf_shape) <= _MAX_DERIVED
        pmf = np.zeros(pmf_shape) if keep_draws else None
        for t, n in enumerate(trial_values):
            heads_n = np.arange(n + 1)
            comp = _component_logpmf(heads_n, np.full(n + 1, n), p)  # (C, D, n+1, K)
            values = np.exp(logsumexp(comp + np.log(w)[..., None, :], axis=-1))
            pmf_mean[t, : n + 1] = values.mean(axis=(0, 1))
            if keep_draws:
                pmf[:, :, t, : n + 1] = values
        pred = {"pmf_mean": (("trials", "heads"), pmf_mean)}
        if keep_draws:
            pred["pmf"] = (("chain", "draw", "trials", "heads"), pmf)
        idata["predictive"] = xr.Dataset(
            pred, coords={**coords, "trials": trial_values, "heads": h}
        )
        return idata


def save_posterior(idata: xr.DataTree, path) -> None:
    """Write the whole DataTree to netCDF (h5netcdf engine)."""
    idata.to_netcdf(path, engine="h5netcdf")


def load_posterior(path) -> xr.DataTree:
    """Read a DataTree written by :func:`save_posterior`, fully into memory."""
    with xr.open_datatree(path, engine="h5netcdf") as tree:
        return tree.load()
