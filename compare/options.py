"""The options of ``python -m compare report``, checked in one place."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from em import Prior
from em import _validation as v
from models import DEFAULT_SAMPLER, SAMPLERS

__all__ = ["ReportOptions", "validate_options"]


@dataclass(frozen=True)
class ReportOptions:
    """Options of ``python -m compare report`` (defaults are the CLI's)."""

    components: int
    seed: int = 0
    restarts: int = 10
    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    sampler: str = DEFAULT_SAMPLER
    prior_weights: float | tuple = 1.0
    prior_p: tuple = (1.0, 1.0)
    map_random_starts: int = 4
    target_accept: float = 0.9

    @property
    def prior(self) -> Prior:
        """The model's priors as EM's :class:`em.Prior` (alpha broadcast to K)."""
        alpha = np.broadcast_to(np.asarray(self.prior_weights, dtype=float), (self.components,))
        a, b = (float(x) for x in self.prior_p)
        return Prior(tuple(alpha.tolist()), a, b)

    @property
    def flat_prior(self) -> bool:
        """Dirichlet(1) and Beta(1, 1): the posterior mode is the MLE."""
        prior = self.prior
        return set(prior.alpha) == {1.0} and (prior.a, prior.b) == (1.0, 1.0)

    def to_dict(self) -> dict:
        """Plain-Python form for results.json (priors broadcast)."""
        prior = self.prior
        return asdict(self) | {"prior_weights": list(prior.alpha), "prior_p": [prior.a, prior.b]}


def validate_options(opts: ReportOptions) -> None:
    """Raise ValueError naming the CLI flag for a bad option.

    The priors must have a mode for EM and PyMC's search to be compared: Dirichlet alpha
    >= 1 and Beta a, b >= 1 (below 1 the density is unbounded at the boundary).
    """
    for name, flag, minimum in (
        ("components", "--components", 1),
        ("seed", "--seed", 0),
        ("restarts", "--restarts", 0),
        ("draws", "--draws", 1),
        ("tune", "--tune", 0),
        ("chains", "--chains", 1),
        ("map_random_starts", "map_random_starts", 0),
    ):
        value = getattr(opts, name)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ValueError(f"{flag} must be an integer >= {minimum}, got {value!r}")
    if opts.sampler not in SAMPLERS:
        raise ValueError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {opts.sampler!r}")
    if not 0 < opts.target_accept < 1:
        raise ValueError(f"target_accept must be in (0, 1), got {opts.target_accept!r}")
    v.check_prior_weights(opts.prior_weights, opts.components, "--prior-weights")
    v.check_prior_p(opts.prior_p, "--prior-p")
