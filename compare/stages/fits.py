"""The point estimates: EM with restarts (ML and MAP-EM) and PyMC's search for the mode.

PyMC's search (L-BFGS-B, as ``pm.find_MAP``) stops on its own criteria, which at large N
can leave it short of the mode by more than the agreement tolerance. So each search's end
point is also polished by certified MAP-EM (the same objective: the log-posterior density
on the constrained scale), and the comparison is between modes, each certified; how far the
search stopped short is reported beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compare.options import ReportOptions
from em import BinomialData, FitResult, MixtureParams, Run, fit_data, run_em
from models import MapResult, MixtureModel

__all__ = ["EMStage", "MAPStage", "Mode", "em_stage", "map_stage", "fit_summary", "seed_int"]


def seed_int(ss: np.random.SeedSequence) -> int:
    """An int seed drawn from a SeedSequence child."""
    return int(ss.generate_state(1, dtype=np.uint32)[0])


@dataclass(frozen=True, eq=False)
class EMStage:
    """EM with restarts under both objectives.

    Attributes
    ----------
    ml : FitResult
        Maximum likelihood.
    map_em : FitResult
        MAP-EM under the model's priors: the objective PyMC's mode search maximises, so the
        fit every comparison with the posterior mode is made with.
    flat : bool
        Flat priors (then the two fits have the same optima).
    """

    ml: FitResult
    map_em: FitResult
    flat: bool

    @property
    def target(self) -> FitResult:
        """The fit compared with the posterior: MAP-EM."""
        return self.map_em

    def to_dict(self) -> dict:
        """results.json's ``em`` section."""
        return {
            "ml": fit_summary(self.ml),
            "map_em": fit_summary(self.map_em),
            "priors_flat": self.flat,
            "compared_with_the_posterior": "map_em",
        }


def fit_summary(res: FitResult) -> dict:
    """A fit for results.json: the best run, its certificate, every run, the optima."""
    return {
        "weights": res.weights.tolist(),
        "p": res.p.tolist(),
        "log_likelihood": res.log_likelihood,
        "log_posterior": res.log_posterior,
        "n_iter": res.n_iter,
        "n_estep": res.n_estep,
        "converged": res.converged,
        "gap": res.certificate.to_dict()["gap"],
        "certificate": res.certificate.to_dict(),
        "n_runs": len(res.runs),
        "n_converged": res.n_converged,
        "max_converged_gap": res.max_converged_gap,
        "seed": res.seed,
        "method": res.options["method"],
        "tol": res.options["tol"],
        "optima": [o.to_dict() for o in res.optima],
        "runs": [
            {k: v for k, v in r.to_dict().items() if k not in ("trace", "init")} for r in res.runs
        ],
        "warnings": list(res.warnings),
    }


def em_stage(
    data: BinomialData, opts: ReportOptions, seed: int, ml: FitResult | None = None
) -> EMStage:
    """ML-EM and MAP-EM, each with ``opts.restarts`` restarts seeded by ``seed``.

    The restarts are those of ``em fit --seed SEED`` (children of ``SeedSequence(seed)``), so
    the report's fit, its figures and ICL are the ones ``em fit`` prints for the same seed.
    ``ml``: that ML fit when model selection has already made it (it is not made again).
    """
    k, prior = opts.components, opts.prior
    if ml is None:
        ml = fit_data(data, k, restarts=opts.restarts, seed=seed)
    map_em = fit_data(
        data,
        k,
        restarts=opts.restarts,
        seed=seed,
        prior_weights=list(prior.alpha),
        prior_p=(prior.a, prior.b),
    )
    return EMStage(ml=ml, map_em=map_em, flat=opts.flat_prior)


@dataclass(frozen=True, eq=False)
class Mode:
    """Where one PyMC search ended, and the certified mode EM reaches from there.

    Attributes
    ----------
    search : MapResult
        PyMC's search from one start (L-BFGS-B on the unconstrained parameters).
    polished : Run
        Certified MAP-EM from the search's end point.
    """

    search: MapResult
    polished: Run

    @property
    def shortfall(self) -> float:
        """Nats by which the search stopped below the certified mode (>= 0 up to rounding)."""
        return float(self.polished.objective - self.search.log_posterior)

    def to_dict(self) -> dict:
        """The search and the mode, for results.json."""
        return self.search.to_dict() | {
            "certified_mode": {
                "weights": self.polished.params.weights.tolist(),
                "p": self.polished.params.p.tolist(),
                "log_posterior": self.polished.objective,
                "log_likelihood": self.polished.log_likelihood,
                "converged": self.polished.converged,
                "gap": self.polished.certificate.to_dict()["gap"],
            },
            "search_shortfall": self.shortfall,
        }


@dataclass(frozen=True, eq=False)
class MAPStage:
    """PyMC's mode search from EM's optima and random starts, each end point certified.

    Attributes
    ----------
    modes : tuple of Mode
        One per start, best certified objective first.
    """

    modes: tuple[Mode, ...]

    @property
    def results(self) -> tuple[MapResult, ...]:
        """The raw searches, in the order of :attr:`modes`."""
        return tuple(m.search for m in self.modes)

    @property
    def best(self) -> Mode:
        """The highest certified mode."""
        return self.modes[0]

    def to_dict(self) -> dict:
        """results.json's ``map`` section."""
        return {
            "method": "L-BFGS-B on the unconstrained parameters, maximising "
            "logp(jacobian=False), as pm.find_MAP does; each end point then polished by "
            "certified MAP-EM",
            "results": [m.to_dict() for m in self.modes],
        }


def map_stage(
    data: BinomialData, opts: ReportOptions, model: MixtureModel, em: EMStage, seed
) -> MAPStage:
    """PyMC's search from every EM optimum and ``opts.map_random_starts`` random starts."""
    starts = [
        (f"EM optimum {i + 1}", o.params.weights, o.params.p)
        for i, o in enumerate(em.target.optima)
    ]
    if not starts:  # no EM run converged: start from EM's best point all the same
        starts = [("EM best (not converged)", em.target.weights, em.target.p)]
    searches = model.find_map(starts, n_random=opts.map_random_starts, seed=seed)
    prior = opts.prior
    modes = [
        Mode(mp, run_em(data, MixtureParams(mp.weights, mp.p), prior=prior, start=mp.start))
        for mp in searches
    ]
    modes.sort(key=lambda m: -m.polished.objective)
    return MAPStage(tuple(modes))
