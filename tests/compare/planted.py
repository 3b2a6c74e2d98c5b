"""Hand-built analyses for fast tests of verdicts, conclusions and rendering (no sampling).

The stages are the real stage functions, fed with a real (fast) EM fit, planted posterior
draws and planted mode searches: only the PyMC parts are replaced.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from compare.analysis import Analysis
from compare.options import ReportOptions
from compare.stages.agreement import agreement_stage
from compare.stages.fits import EMStage, MAPStage, Mode
from compare.stages.health import health_stage
from compare.stages.identifiability import identifiability_stage
from compare.stages.labels import labels_stage
from compare.stages.multimodality import multimodality_stage
from compare.stages.sampling import Posterior, SamplingStage
from compare.stages.uncertainty import uncertainty_stage
from em import BinomialData, MixtureParams, fit_data, run_em
from models import MapResult


def draws_around(rng, params: MixtureParams, chains=4, draws=300, sd=0.02, conc=400.0):
    """Posterior-like draws centred on ``params`` (no switching)."""
    k = params.n_components
    p = rng.normal(params.p, sd, size=(chains, draws, k)).clip(1e-3, 1 - 1e-3)
    w = rng.dirichlet(np.asarray(params.weights) * conc + 1e-3, size=(chains, draws))
    return w, p


def idata_with_stats(w, p, *, diverging=None, energy=None, rng=None):
    """A DataTree holding the draws and sample stats (divergences, energy)."""
    chains, draws, k = p.shape
    rng = rng or np.random.default_rng(0)
    diverging = np.zeros((chains, draws), bool) if diverging is None else diverging
    energy = (
        rng.normal(size=(chains, draws)).cumsum(axis=1) * 0.1 + rng.normal(size=(chains, draws))
        if energy is None
        else energy
    )
    dims = ("chain", "draw", "component")
    return xr.DataTree.from_dict(
        {
            "posterior": xr.Dataset({"w": (dims, w), "p": (dims, p)}),
            "sample_stats": xr.Dataset(
                {"diverging": (("chain", "draw"), diverging), "energy": (("chain", "draw"), energy)}
            ),
        }
    )


def fake_search(data, start: str, params: MixtureParams, prior) -> Mode:
    """A 'PyMC search' that ended at ``params``, polished by certified MAP-EM."""
    from em import log_likelihood, log_prior

    obj = float(log_likelihood(data, params) + log_prior(params, prior))
    search = MapResult(
        start=start,
        init_weights=params.weights,
        init_p=params.p,
        weights=params.weights,
        p=params.p,
        log_posterior=obj,
        log_likelihood=float(log_likelihood(data, params)),
        success=True,
        message="planted",
    )
    return Mode(search, run_em(data, params, prior=prior, start=start))


def build(
    data: BinomialData,
    k: int,
    *,
    draws=None,
    ordered=None,
    searches=(),
    restarts=6,
    max_iter=1000,
    seed=0,
    rng=None,
    idata=None,
    idata_ordered=None,
    em_options=None,
) -> Analysis:
    """An Analysis from real EM fits, planted draws and planted mode searches."""
    rng = rng or np.random.default_rng(seed)
    opts = ReportOptions(components=k, seed=seed, restarts=restarts, draws=300, tune=0)
    prior = opts.prior
    more = em_options or {}
    ml = fit_data(data, k, restarts=restarts, seed=seed, max_iter=max_iter, **more)
    map_em = fit_data(
        data,
        k,
        restarts=restarts,
        seed=seed + 1,
        max_iter=max_iter,
        prior_weights=list(prior.alpha),
        prior_p=(prior.a, prior.b),
        **more,
    )
    em = EMStage(ml, map_em, True)
    modes = [
        fake_search(data, f"EM optimum {i + 1}", o.params, prior)
        for i, o in enumerate(map_em.optima)
    ]
    modes += [fake_search(data, label, params, prior) for label, params in searches]
    if not modes:
        modes = [fake_search(data, "EM best (not converged)", map_em.params, prior)]
    modes.sort(key=lambda m: -m.polished.objective)
    maps = MAPStage(tuple(modes))
    if draws is None:
        draws = draws_around(rng, map_em.params)
    if ordered is None:
        w_o, p_o = draws_around(rng, map_em.params)
        ordered = (w_o, np.sort(p_o, axis=-1))
    sampling = SamplingStage(
        Posterior("exchangeable", draws[0], draws[1], idata),
        Posterior("ordered", ordered[0], ordered[1], idata_ordered),
        {
            "sampler": "planted",
            "draws": draws[1].shape[1],
            "tune": 0,
            "chains": draws[1].shape[0],
            "target_accept": 0.9,
        },
    )
    ident = identifiability_stage(data, em)
    labels = labels_stage(data, em, sampling, ident)
    return Analysis(
        data=data,
        options=opts,
        em=em,
        map=maps,
        sampling=sampling,
        identifiability=ident,
        agreement=agreement_stage(data, em, maps, ident),
        labels=labels,
        health=health_stage(sampling, labels),
        multimodality=multimodality_stage(em, maps, labels),
        uncertainty=uncertainty_stage(data, em, ident, labels),
    )
