"""How far each model's draws can be trusted, judged on what means something in each.

The exchangeable model's component-specific draws switch labels, so their raw R-hat and ESS
mean nothing: it is judged on label-invariant quantities (the log-likelihood and the fitted
pmf), and on the relabelled draws where the labels are identified. The ordered model is
judged on its own weights and biases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compare.health import SamplerHealth, sampler_health, summary_rows
from compare.stages.labels import Labels
from compare.stages.sampling import SamplingStage

__all__ = ["Health", "health_stage"]


@dataclass(frozen=True, eq=False)
class Health:
    """Sampler health of both models."""

    exchangeable: SamplerHealth
    ordered: SamplerHealth | None
    #: ArviZ's summary (az.summary) per parameter: (which draws, row) pairs, the relabelled
    #: draws where labels are identified, then the ordered model's.
    summary: tuple[tuple[str, dict], ...] = ()

    def to_dict(self) -> dict:
        """results.json's ``sampler_health`` section."""
        return {
            "summary": [{"draws": label, **_plain(row)} for label, row in self.summary],
            "exchangeable": self.exchangeable.to_dict()
            | {
                "judged_on": "label-invariant log-likelihood and fitted pmf (and the "
                "relabelled draws where labels are identified)"
            },
            "ordered": None
            if self.ordered is None
            else self.ordered.to_dict() | {"judged_on": "w and p of the ordered model"},
        }


def _plain(row: dict) -> dict:
    """Numbers as floats, NaN (or a missing figure) as None, for JSON."""
    out = {}
    for key, value in row.items():
        if value is None or isinstance(value, str):
            out[key] = value
        else:
            value = float(value)
            out[key] = value if np.isfinite(value) else None
    return out


def health_stage(sampling: SamplingStage, labels: Labels, *, summary: bool = True) -> Health:
    """Divergences, R-hat, ESS and E-BFMI of both models; with ``summary``, az.summary rows."""
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
    rows: list[tuple[str, dict]] = []
    if summary and labels.identified:
        relabelled = {"w": labels.weights, "p": labels.p}
        rows += [("relabelled", r) for r in summary_rows(relabelled, ["p", "w"])]
    if summary and post_ord is not None:
        rows += [("ordered model", r) for r in summary_rows(ordered_arrays, ["p", "w"])]
    return Health(sampler_health(post.idata, [], invariant=invariant), ordered, tuple(rows))
