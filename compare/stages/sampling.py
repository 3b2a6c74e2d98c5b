"""The posterior: NUTS on the exchangeable model and on the ordered-biases model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compare.options import ReportOptions
from models import MixtureModel

__all__ = ["Posterior", "SamplingStage", "sampling_stage", "draws_of"]


@dataclass(frozen=True, eq=False)
class Posterior:
    """One model's draws.

    Attributes
    ----------
    name : str
        ``"exchangeable"`` or ``"ordered"``.
    weights, p : ndarray of shape (chain, draw, K)
        The draws, as the sampler labelled them.
    idata : xarray.DataTree or None
        PyMC's output with the derived groups (None in a hand-built analysis).
    """

    name: str
    weights: np.ndarray
    p: np.ndarray
    idata: object = None

    @property
    def chains(self) -> int:
        """Number of chains."""
        return int(self.p.shape[0])


def draws_of(idata) -> tuple[np.ndarray, np.ndarray]:
    """(weights, p) of a DataTree's posterior, each (chain, draw, component)."""
    post = idata["posterior"]
    w = np.asarray(post["w"].transpose("chain", "draw", "component").values, dtype=float)
    p = np.asarray(post["p"].transpose("chain", "draw", "component").values, dtype=float)
    return w, p


@dataclass(frozen=True, eq=False)
class SamplingStage:
    """NUTS draws from both models, with the sampler's settings."""

    exchangeable: Posterior
    ordered: Posterior
    settings: dict

    def to_dict(self) -> dict:
        """The sampler's settings for results.json (``posterior`` section)."""
        return dict(self.settings)


def sampling_stage(
    opts: ReportOptions, exchangeable: MixtureModel, ordered: MixtureModel, seeds
) -> SamplingStage:
    """Sample both models with the report's settings; seeds: two SeedSequence children."""
    settings = {
        "sampler": opts.sampler,
        "draws": opts.draws,
        "tune": opts.tune,
        "chains": opts.chains,
        "target_accept": opts.target_accept,
    }
    out = []
    for name, model, seed in (
        ("exchangeable", exchangeable, seeds[0]),
        ("ordered", ordered, seeds[1]),
    ):
        idata = model.sample(seed=seed, **settings)
        w, p = draws_of(idata)
        out.append(Posterior(name, w, p, idata))
    return SamplingStage(out[0], out[1], settings)
