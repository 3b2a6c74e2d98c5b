"""How many modes: EM's certified optima, PyMC's certified modes, the chains' locations."""

from __future__ import annotations

from dataclasses import dataclass

from compare.diagnostics import chain_modes, multimodal_intervals
from compare.settings import TOLERANCES
from compare.stages.fits import EMStage, MAPStage
from compare.stages.labels import Labels

__all__ = ["Multimodality", "multimodality_stage"]


@dataclass(frozen=True, eq=False)
class Multimodality:
    """The modes each method found.

    Attributes
    ----------
    em : dict
        EM's distinct certified optima with basin fractions, and the runs in none.
    map_modes : int
        Distinct certified modes PyMC's searches led to (objective within the tolerance).
    chains : dict or None
        The relabelled chains clustered by location (None where labels are not identified:
        chains are then compared on the label-invariant log-likelihood only).
    hdi : dict or None
        ArviZ's multimodal HDI of each relabelled p.
    """

    em: dict
    map_modes: int
    chains: dict | None
    hdi: dict | None

    def to_dict(self) -> dict:
        """results.json's ``multimodality`` section."""
        return {
            "em_optima": self.em["optima"],
            "em_distinct_optima": len(self.em["optima"]),
            "em_runs_converged": self.em["converged"],
            "em_runs": self.em["runs"],
            "em_runs_in_no_optimum": self.em["runs"] - self.em["converged"],
            "map_modes": self.map_modes,
            "posterior_chain_modes": self.chains,
            "hdi_relabelled": self.hdi,
        }


def multimodality_stage(em: EMStage, maps: MAPStage, labels: Labels) -> Multimodality:
    """Count the modes each method reached."""
    target = em.target
    optima = [
        {
            "log_likelihood": o.log_likelihood,
            "log_posterior": o.log_posterior,
            "fraction": o.fraction,
            "effective_components": o.reduced.n_components,
            "p": o.params.p.tolist(),
            "weights": o.params.weights.tolist(),
            "gap": o.gap,
        }
        for o in target.optima
    ]
    objs = sorted(m.polished.objective for m in maps.modes if m.polished.converged)
    distinct = sum(
        1 for i, x in enumerate(objs) if i == 0 or x - objs[i - 1] > TOLERANCES["objective"]
    )
    chains = hdi = None
    if labels.identified:
        chains = chain_modes(labels.weights, labels.p)
        hdi = multimodal_intervals(labels.p)
    return Multimodality(
        {"optima": optima, "converged": target.n_converged, "runs": len(target.runs)},
        int(distinct),
        chains,
        hdi,
    )
