"""PyMC models of the binomial mixture (the Bayesian side).

Depends on PyMC and numpy; takes ``em``'s data object without importing ``em``, and
never imports ``compare``.
"""

from models.binomial_mixture import (
    COMPONENT,
    DEFAULT_SAMPLER,
    OUTCOME,
    SAMPLERS,
    MapResult,
    MixtureModel,
    check_prior,
    load_posterior,
    save_posterior,
)

__all__ = [
    "COMPONENT",
    "DEFAULT_SAMPLER",
    "OUTCOME",
    "SAMPLERS",
    "MapResult",
    "MixtureModel",
    "check_prior",
    "load_posterior",
    "save_posterior",
]
