"""Label switching, only where the labels mean something.

Where the fit is collapsed or not identifiable, the components have no identity in the data:
no relabelling can create one, so no switching verdict is drawn and no per-component
summary is shown; only label-invariant quantities are (the fitted pmf, the log-likelihood,
co-clustering probabilities). Otherwise each draw is matched to EM's best estimate on the
classification probabilities (weights and biases together), relabelled by Stephens'
algorithm, and the switching between and within chains is summarised. The ordered model gets
its own check: whether its draws pile against the ordering boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compare import labels as lab
from compare.stages.fits import EMStage
from compare.stages.identifiability import Identifiability
from compare.stages.sampling import SamplingStage
from em import BinomialData, MixtureParams

__all__ = ["Labels", "labels_stage"]


@dataclass(frozen=True, eq=False)
class Labels:
    """What the exchangeable model's labels do, and the draws relabelled where they can be.

    Attributes
    ----------
    identified : bool
        Whether the components have an identity in the data and the posterior tells the
        labellings apart (else no verdict is drawn).
    reason : str
        Why not, when they have none.
    reference : MixtureParams or None
        EM's best estimate, the draws' reference labelling.
    analysis : compare.labels.LabelAnalysis
        Matching (Stephens' criterion, EM as a fixed pivot), the switching verdict,
        Stephens' relabelling, and the label-invariant draws and co-clustering.
    weights, p : ndarray (chain, draw, K) or None
        Relabelled draws.
    ordered : compare.labels.OrderingCheck or None
        Whether the ordered model's draws pile against the ordering boundary (None when
        the ordered model was not sampled, as in a simulation study).
    coclustering_outcomes : ndarray of int
        The distinct outcomes (the most frequent, at most COCLUSTERING_MAX) whose
        co-clustering probabilities are computed.
    """

    identified: bool
    reason: str
    reference: MixtureParams | None
    analysis: lab.LabelAnalysis
    weights: np.ndarray | None
    p: np.ndarray | None
    ordered: lab.OrderingCheck | None
    coclustering_outcomes: np.ndarray

    @property
    def switching(self) -> dict | None:
        """The switching verdict (None where the labels are not identified)."""
        sw = self.analysis.switching
        return None if sw is None or not self.identified else sw.to_dict()

    @property
    def detected(self) -> bool | None:
        """Switching seen (True/False), or None where the labels are not identified."""
        sw = self.switching
        return None if sw is None else bool(sw["detected"])

    @property
    def permutations(self) -> np.ndarray | None:
        """Stephens' permutation of each draw (None where labels are not identified)."""
        return self.analysis.relabelling.permutations if self.identified else None

    @property
    def resp(self) -> np.ndarray | None:
        """Posterior mean P(coin j | outcome) from the relabelled draws."""
        return self.analysis.relabelling.classification if self.identified else None

    @property
    def invariant(self) -> dict:
        """Label-invariant draws: ``log_likelihood`` (chain, draw), ``pmf`` (chain, draw, n+1)."""
        return {"log_likelihood": self.analysis.log_likelihood, "pmf": self.analysis.pmf}

    @property
    def invariant_trials(self) -> int:
        """The number of trials n of the fitted pmf's draws."""
        return self.analysis.pmf_trials

    @property
    def method(self) -> str:
        """How the draws were relabelled."""
        if not self.identified:
            return "none: the labels are not identified"
        return (
            "matched to EM's estimate by Stephens' (2000) criterion with EM as a fixed pivot "
            "(count-weighted KL divergence of the classification probabilities), then "
            "Stephens' relabelling"
        )

    def to_dict(self) -> dict:
        """results.json's ``label_switching`` section."""
        d = self.analysis.to_dict()
        return {
            "identified": self.identified,
            "reason": self.reason,
            "detected": self.detected,
            "reference": None
            if self.reference is None
            else {
                "weights": self.reference.weights.tolist(),
                "p": self.reference.p.tolist(),
                "what": "EM's best optimum",
            },
            "relabelling": self.method,
            "relabelling_details": d["relabelling"],
            "switching": self.switching,
            "ordered_model": None if self.ordered is None else self.ordered.to_dict(),
            "invariant_pmf_trials": self.invariant_trials,
            "coclustering": {
                "outcomes": self.coclustering_outcomes.tolist(),
                "probability": d["coclustering"],
            },
        }


#: Co-clustering is computed for at most this many outcomes (the most frequent).
COCLUSTERING_MAX = 60


def _not_identified_reason(ident: Identifiability) -> str:
    if not ident.converged:
        return "EM's best run is not certified, so there is no reference labelling"
    if ident.collapsed:
        return (
            f"the fit collapses onto {ident.effective_components} component(s): the "
            f"{ident.k} components coincide or are empty and have no identity in the data"
        )
    return (
        f"a {ident.k}-component binomial mixture needs trials >= {2 * ident.k - 1} to be "
        f"identifiable (Teicher, 1963); the largest trials here is {ident.max_trials}"
    )


def labels_stage(
    data: BinomialData, em: EMStage, sampling: SamplingStage, ident: Identifiability
) -> Labels:
    """Match, relabel and summarise the exchangeable model's draws where labels exist."""
    post = sampling.exchangeable
    top = np.argsort(-data.counts, kind="stable")[:COCLUSTERING_MAX]
    outcomes = np.sort(top)
    ref = em.target.params
    la = lab.analyse_labels(data, post.weights, post.p, ref, coclustering_outcomes=outcomes)
    identified = bool(ident.identifiable and la.identified)
    reason = (
        ""
        if identified
        else (_not_identified_reason(ident) if not ident.identifiable else la.reason())
    )
    return Labels(
        identified=identified,
        reason=reason,
        reference=ref if identified else None,
        analysis=la,
        weights=la.relabel(post.weights) if identified else None,
        p=la.relabel(post.p) if identified else None,
        ordered=None if sampling.ordered is None else lab.ordering_check(sampling.ordered.p),
        coclustering_outcomes=outcomes,
    )


def annotate_posterior(idata, labels: Labels):
    """The exchangeable model's DataTree as it is saved: raw draws plus what labels allow.

    Where the labels are identified: a ``posterior_relabelled`` group (w and p relabelled
    to EM's estimate), a ``relabelling`` group (the permutation applied to each draw) and
    ``responsibilities`` computed from the relabelled draws, so that the file is right as
    stored. Where they are not, the label-dependent ``responsibilities`` are replaced by the
    label-invariant ``co_clustering`` probabilities (when given). Returns a new DataTree.
    """
    import xarray as xr

    tree = idata.copy()
    post = tree["posterior"]
    coords = {"chain": post["chain"].values, "draw": post["draw"].values}
    dims = ("chain", "draw", "component")
    if labels.identified:
        comp = {"component": post["component"].values}
        tree["posterior_relabelled"] = xr.Dataset(
            {"w": (dims, labels.weights), "p": (dims, labels.p)}, coords={**coords, **comp}
        )
        tree["relabelling"] = xr.Dataset(
            {"permutation": (dims, labels.permutations)},
            coords={**coords, **comp},
            attrs={
                "note": "relabelled[c, d, j] = raw[c, d, permutation[c, d, j]]",
                "method": labels.method,
            },
        )
        if labels.resp is not None:
            tree["responsibilities"] = xr.Dataset(
                {"mean": (("outcome", "component"), labels.resp)},
                coords={"outcome": np.arange(labels.resp.shape[0]), **comp},
                attrs={"note": "posterior mean of P(coin j | outcome) over the relabelled draws"},
            )
    else:
        if "responsibilities" in tree.children:
            del tree["responsibilities"]
        outcomes = labels.coclustering_outcomes
        tree["co_clustering"] = xr.Dataset(
            {"probability": (("outcome", "outcome_other"), labels.analysis.coclustering)},
            coords={"outcome": outcomes, "outcome_other": outcomes},
            attrs={
                "note": "posterior probability that two outcomes (indices into the data's "
                "distinct outcomes) come from the same coin (label-invariant); the labels "
                "are not identified: " + labels.reason
            },
        )
    return tree
