import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(42)


def simulate(rng, n_seq, trials, weights, p):
    """Heads of n_seq sequences from a binomial mixture (trials: int or array)."""
    z = rng.choice(len(weights), size=n_seq, p=weights)
    return rng.binomial(trials, np.asarray(p)[z])
