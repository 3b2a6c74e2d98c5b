"""PyMC models of the binomial mixture (the Bayesian side).

Depends on PyMC and numpy; takes ``em``'s data object without importing ``em``, and
never imports ``compare``. The constants below import nothing; the model itself (and PyMC,
which takes seconds to import) loads on first use of any other name.
"""

import importlib

COMPONENT = "component"
OUTCOME = "outcome"
SAMPLERS = ("nutpie", "pymc")
#: The faster of the two on this model with a warm compile cache (cold, the two are close):
#: benchmarks/bench_models.py prints both (nutpie compiles the model at every call); the
#: README quotes the figures.
DEFAULT_SAMPLER = "pymc"

_LAZY = (
    "MapResult",
    "MixtureModel",
    "check_prior",
    "load_posterior",
    "reproducible_compilation",
    "save_posterior",
)

__all__ = [
    "COMPONENT",
    "DEFAULT_SAMPLER",
    "OUTCOME",
    "SAMPLERS",
    *_LAZY,
]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module("models.binomial_mixture"), name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")
