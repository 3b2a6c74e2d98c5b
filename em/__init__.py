"""Handwritten EM for finite binomial mixtures (numpy and scipy only).

Never imports PyMC or ArviZ: ``tests/em/test_imports.py`` checks it.
"""

from em.core import (
    EStep,
    MixtureParams,
    Prior,
    e_step,
    log_likelihood,
    log_prior,
    m_step,
    mixture_pmf,
    objective,
)
from em.data import BinomialData, load_data
from em.fitting import (
    EMInvariantError,
    FitResult,
    Optimum,
    Run,
    fit,
    fit_data,
    reduce_params,
    run_em,
)
from em.selection import information_criteria, parse_components, select_components
from em.uncertainty import StandardErrors, observed_information, standard_errors

__all__ = [
    "BinomialData",
    "EMInvariantError",
    "EStep",
    "FitResult",
    "MixtureParams",
    "Optimum",
    "Prior",
    "Run",
    "e_step",
    "fit",
    "fit_data",
    "load_data",
    "log_likelihood",
    "log_prior",
    "m_step",
    "mixture_pmf",
    "objective",
    "reduce_params",
    "run_em",
    "StandardErrors",
    "information_criteria",
    "parse_components",
    "select_components",
    "observed_information",
    "standard_errors",
]
