"""How far each model's draws can be trusted, judged on what means something in each.

The exchangeable model's component-specific draws switch labels, so their raw R-hat and ESS
mean nothing: it is judged on label-invariant quantities (the log-likelihood and the fitted
pmf), and on the relabelled draws where the labels are identified. The ordered model is
judged on its own weights and biases.
"""

from __future__ import annotations

from dataclasses import dataclass

from compare.health import SamplerHealth, sampler_health
from compare.stages.labels import Labels
from compare.stages.sampling import SamplingStage

__all__ = ["Health", "health_stage"]


@dataclass(frozen=True, eq=False)
class Health:
    """Sampler health of both models."""

    exchangeable: SamplerHealth
    ordered: SamplerHealth | None

    def to_dict(self) -> dict:
        """results.json's ``sampler_health`` section."""
        return {
            "exchangeable": self.exchangeable.to_dict()
            | {
                "judged_on": "label-invariant log-likelihood and fitted pmf (and the "
                "relabelled draws where labels are identified)"
            },
            "ordered": None
            if self.ordered is None
            else self.ordered.to_dict() | {"judged_on": "w and p of the ordered model"},
        }


def health_stage(sampling: SamplingStage, labels: Labels) -> Health:
    """Divergences, R-hat, ESS and E-BFMI of both models."""
    invariant = {
        "log_likelihood": labels.invariant["log_likelihood"],
        "pmf": labels.invariant["pmf"],
    }
    if labels.identified:
        invariant |= {"w_relabelled": labels.weights, "p_relabelled": labels.p}
    post, post_ord = sampling.exchangeable, sampling.ordered
    ordered = None
    if post_ord is not None:
        ordered_arrays = {"w": post_ord.weights, "p": post_ord.p}
        ordered = sampler_health(post_ord.idata, [], invariant=ordered_arrays)
    return Health(sampler_health(post.idata, [], invariant=invariant), ordered)
