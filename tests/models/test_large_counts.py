"""The model's counts hold every count em accepts (they wrapped at 2^31 as int32)."""

import numpy as np
import pytest

from em import BinomialData, MixtureParams, log_likelihood
from em.data import MAX_SEQUENCES
from models import MixtureModel


def test_counts_of_2_31_and_more_are_exact_in_the_model():
    data = BinomialData.from_counts([3, 7, 5], 10, [10**12, 2**31, 5])
    mm = MixtureModel(data, 2)
    stored = mm.model["counts"].get_value()
    assert stored.dtype == np.float64 and stored.tolist() == [10**12, 5, 2**31]
    w, p = [0.4, 0.6], [0.3, 0.7]
    expected = log_likelihood(data, MixtureParams(w, p))  # about -2.4e12; int32 gave +1.5e10
    assert expected < -1e12
    assert mm.log_likelihood(w, p) == pytest.approx(expected, rel=1e-12)
    assert mm.log_posterior(w, p) == pytest.approx(expected, rel=1e-12)  # flat priors

    mm.set_counts([MAX_SEQUENCES - 2, 1, 1])  # swapped in, still exact
    assert mm.model["counts"].get_value().tolist() == [MAX_SEQUENCES - 2, 1, 1]
    big = BinomialData.from_counts([3, 5, 7], 10, [MAX_SEQUENCES - 2, 1, 1])
    assert mm.log_likelihood(w, p) == pytest.approx(
        log_likelihood(big, MixtureParams(w, p)), rel=1e-12
    )


def test_counts_past_2_53_are_refused():
    class Outcomes:  # any object with the three arrays will do
        heads, trials, counts = np.array([3]), np.array([10]), np.array([2**53])

    with pytest.raises(ValueError, match=r"counts\[0\] = 9007199254740992 exceeds 2\^53 - 1"):
        MixtureModel(Outcomes(), 1)
    mm = MixtureModel(BinomialData.from_counts([3], 10, [4]), 1)
    with pytest.raises(ValueError, match="exceeds 2\\^53 - 1"):
        mm.set_counts([2**60])
