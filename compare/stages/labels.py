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

import math
from dataclasses import dataclass

import numpy as np

from compare import labels as lab
from compare.diagnostics import invariant_draws
from compare.stages.fits import EMStage
from compare.stages.identifiability import Identifiability
from compare.stages.sampling import SamplingStage
from em import BinomialData, MixtureParams

__all__ = ["Labels", "labels_stage"]

# Stephens' relabelling holds every draw's responsibilities; above this many numbers
# (chain x draw x outcomes x K) only the matching to EM's estimate is used.
_MAX_STEPHENS = 20_000_000


@dataclass(frozen=True, eq=False)
class Labels:
    """What the exchangeable model's labels do, and the draws relabelled where they can be.

    Attributes
    ----------
    identified : bool
        Whether the components have an identity in the data (else no verdict is drawn).
    reason : str
        Why not, when they have none.
    reference : MixtureParams or None
        EM's best estimate, the draws' reference labelling.
    permutations : ndarray of int (chain, draw, K) or None
        The relabelling applied to each draw.
    switching : dict or None
        Per chain: the share of draws needing a permutation, the modal permutation; and
        between/within-chain verdicts.
    method : str
    weights, p : ndarray (chain, draw, K) or None
        Relabelled draws.
    resp : ndarray (outcome, K) or None
        Posterior mean responsibilities from the relabelled draws.
    invariant : dict
        Label-invariant draws: ``log_likelihood`` (chain, draw) and ``pmf`` (chain, draw, n+1)
        over heads = 0..n for the most common number of trials n.
    invariant_trials : int
    ordered : dict
        The ordered model's boundary check.
    """

    identified: bool
    reason: str
    reference: MixtureParams | None
    permutations: np.ndarray | None
    switching: dict | None
    method: str
    weights: np.ndarray | None
    p: np.ndarray | None
    resp: np.ndarray | None
    invariant: dict
    invariant_trials: int
    ordered: dict

    @property
    def detected(self) -> bool | None:
        """Switching seen (True/False), or None where the labels are not identified."""
        return None if self.switching is None else bool(self.switching["detected"])

    def to_dict(self) -> dict:
        """results.json's ``label_switching`` section."""
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
            "switching": self.switching,
            "ordered_model": self.ordered,
            "invariant_pmf_trials": self.invariant_trials,
        }


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
    n_common = int(data.trials[np.argmax(data.counts)])
    invariant = invariant_draws(data, post.weights, post.p, n_common)
    ordered = lab.ordered_boundary_check(sampling.ordered.p)
    if not ident.identifiable:
        return Labels(
            False,
            _not_identified_reason(ident),
            None,
            None,
            None,
            "none: the labels are not identified",
            None,
            None,
            None,
            invariant,
            n_common,
            ordered,
        )
    ref = em.target.params
    perms = lab.match_permutations(data, post.weights, post.p, ref)
    method = "matched to EM's estimate on the classification probabilities"
    resp = None
    if math.prod(post.p.shape) * data.n_outcomes <= _MAX_STEPHENS:
        raw = lab.draw_responsibilities(data, post.weights, post.p)
        perms, _ = lab.stephens_permutations(raw, data.counts, perms)
        method += ", then Stephens' (2000) KL relabelling"
        resp = np.take_along_axis(raw, perms[:, :, None, :], axis=-1).mean(axis=(0, 1))
    w_rel = lab.apply_permutations(post.weights, perms)
    p_rel = lab.apply_permutations(post.p, perms)
    return Labels(
        True,
        "",
        ref,
        perms,
        lab.switching_summary(perms),
        method,
        w_rel,
        p_rel,
        resp,
        invariant,
        n_common,
        ordered,
    )


def annotate_posterior(idata, labels: Labels, co_clustering=None):
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
        if co_clustering is not None:
            m = co_clustering.shape[0]
            tree["co_clustering"] = xr.Dataset(
                {"probability": (("outcome", "outcome_other"), co_clustering)},
                coords={"outcome": np.arange(m), "outcome_other": np.arange(m)},
                attrs={
                    "note": "posterior probability that two outcomes come from the same coin "
                    "(label-invariant); the labels are not identified: " + labels.reason
                },
            )
    return tree
