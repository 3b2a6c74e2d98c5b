"""The comparison as a short pipeline of typed stages, held by one :class:`Analysis`.

Each stage is a function returning a frozen dataclass (``compare/stages/``); the
conclusions are derived from the :class:`Analysis` (:mod:`compare.conclusions`) and the
report renders it (:mod:`compare.report`). Every random choice comes from
``options.seed``. EM's restarts (ML-EM, MAP-EM, and every K of model selection) are seeded
with it as ``em fit --seed`` seeds them, so that both print the same fit; everything else
comes from the children of :func:`analysis_seeds`: 2 PyMC's mode search, 3 and 4 NUTS on the
exchangeable and ordered models, 6 model selection's posteriors, 7 the overdispersion test's
bootstrap, 8 the seed given to an --em-result function (0, 1 and 5 are unused).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np

from compare.options import ReportOptions, validate_options
from compare.settings import CI_KIND, CI_PROB
from compare.stages.agreement import Agreement, agreement_stage
from compare.stages.fits import EMStage, MAPStage, em_stage, map_stage, seed_int
from compare.stages.health import Health, health_stage
from compare.stages.identifiability import Identifiability, identifiability_stage
from compare.stages.labels import Labels, labels_stage
from compare.stages.multimodality import Multimodality, multimodality_stage
from compare.stages.sampling import SamplingStage, sampling_stage
from compare.stages.selection import Selection, criteria_stage, selection_stage
from compare.stages.uncertainty import Uncertainty, draw_stats, uncertainty_stage
from compare.stages.user_em import UserEM, UserEstimate, user_em_stage
from em import BinomialData, e_step
from models import MixtureModel

__all__ = ["Analysis", "run_analysis", "data_hash"]


def data_hash(data: BinomialData) -> str:
    """SHA-256 of the compressed data (outcomes and counts), independent of row order."""
    h = hashlib.sha256()
    for arr in (data.heads, data.trials, data.counts):
        h.update(np.ascontiguousarray(arr, dtype="<i8").tobytes())
    return h.hexdigest()


@dataclass(frozen=True, eq=False)
class Analysis:
    """Everything the report says, stage by stage."""

    data: BinomialData
    options: ReportOptions
    em: EMStage
    map: MAPStage
    sampling: SamplingStage
    identifiability: Identifiability
    agreement: Agreement
    labels: Labels
    health: Health
    multimodality: Multimodality
    uncertainty: Uncertainty
    selection: Selection | None = None
    user_em: UserEM | None = None

    def to_dict(self) -> dict:
        """results.json: every number of the report, and its conclusions."""
        from compare.conclusions import conclusions

        d = self.data
        out = {
            "data": {
                **d.summary(),
                "sha256": data_hash(d),
                **(d.to_dict() if d.n_outcomes <= 1000 else {}),
            },
            "options": self.options.to_dict(),
            "em": self.em.to_dict(),
            "map": self.map.to_dict(),
            "posterior": self._posterior(),
            "agreement": self.agreement.to_dict(),
            "label_switching": self.labels.to_dict(),
            "sampler_health": self.health.to_dict(),
            "multimodality": self.multimodality.to_dict(),
            "identifiability": self.identifiability.to_dict(),
            "uncertainty": self.uncertainty.to_dict(),
        }
        if self.selection is not None:
            out.update(self.selection.to_dict())
        if self.user_em is not None:
            out["user_em"] = self.user_em.to_dict()
        out["conclusions"] = [f.text for f in conclusions(self)]
        return out

    def _posterior(self) -> dict:
        s, lab = self.sampling, self.labels
        return {
            **s.to_dict(),
            "divergences": self.health.exchangeable.divergences,
            "divergences_ordered": self.health.ordered.divergences,
            "ci_prob": CI_PROB,
            "ci_kind": "equal-tailed" if CI_KIND == "eti" else CI_KIND,
            "relabelled": None
            if not lab.identified
            else {"w": draw_stats(lab.weights), "p": draw_stats(lab.p)},
            "raw": {"w": draw_stats(s.exchangeable.weights), "p": draw_stats(s.exchangeable.p)},
            "ordered_model": {"w": draw_stats(s.ordered.weights), "p": draw_stats(s.ordered.p)},
            "log_likelihood": draw_stats(lab.invariant["log_likelihood"][..., None]),
            "responsibilities_relabelled": None if lab.resp is None else lab.resp.tolist(),
            "em_responsibilities": e_step(self.data, self.em.target.params).resp.tolist(),
            "files": {"exchangeable": "posterior.nc", "ordered": "posterior_ordered.nc"},
        }


#: The branch of ``SeedSequence(seed)`` that every random choice but EM's restarts comes from.
#: EM's restarts are its children (0,), (1,), ... (one per restart); no restart reaches this
#: key, so no other choice shares a stream with a restart.
OTHER_CHOICES_KEY = 2**32


def analysis_seeds(seed: int) -> list[np.random.SeedSequence]:
    """The nine children the report's random choices other than EM's restarts come from."""
    return np.random.SeedSequence(seed, spawn_key=(OTHER_CHOICES_KEY,)).spawn(9)


def run_analysis(
    data: BinomialData,
    opts: ReportOptions,
    ks: list[int] | None = None,
    user: UserEstimate | None = None,
) -> Analysis:
    """Run every stage.

    With several ``ks``, model selection comes first and the rest is for BIC's K. With
    ``user`` (an estimate from another EM), it is judged beside the built-in EM.
    """
    validate_options(opts)
    seeds = analysis_seeds(opts.seed)
    rows, ml = None, None
    if ks is not None and len(ks) > 1:
        rows, fits = criteria_stage(data, ks, opts.restarts, opts.seed)
        best = min(range(len(ks)), key=lambda i: rows[i]["bic"])
        opts, ml = replace(opts, components=rows[best]["k"]), fits[best]
    k, prior = opts.components, opts.prior
    em = em_stage(data, opts, opts.seed, ml)
    models = [
        MixtureModel(data, k, ordered=o, prior_weights=list(prior.alpha), prior_p=opts.prior_p)
        for o in (False, True)
    ]
    maps = map_stage(data, opts, models[0], em, seeds[2])
    sampling = sampling_stage(opts, models[0], models[1], seeds[3:5])
    ident = identifiability_stage(data, em, seed_int(seeds[7]))
    labels = labels_stage(data, em, sampling, ident)
    selection = None
    if rows is not None:
        idatas = {k: sampling.exchangeable.idata}
        selection = selection_stage(data, rows, idatas, opts, seeds[6], k)
    agreement = agreement_stage(data, em, maps, ident)
    return Analysis(
        data=data,
        options=opts,
        em=em,
        map=maps,
        sampling=sampling,
        identifiability=ident,
        agreement=agreement,
        labels=labels,
        health=health_stage(sampling, labels),
        multimodality=multimodality_stage(em, maps, labels),
        uncertainty=uncertainty_stage(data, em, ident, labels),
        selection=selection,
        user_em=None
        if user is None
        else user_em_stage(data, user, prior, agreement, ident, labels),
    )
