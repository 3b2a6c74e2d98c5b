"""Standard errors from the observed information: against finite differences and known cases."""

import numpy as np
import pytest
from scipy.special import expit, softmax

from em import BinomialData, MixtureParams, fit_data, log_likelihood, standard_errors
from em.uncertainty import observed_information
from tests.conftest import simulate


@pytest.fixture(scope="module")
def three():
    rng = np.random.default_rng(1)
    data = BinomialData.from_sequences(
        simulate(rng, 500, 15, [0.3, 0.5, 0.2], [0.15, 0.5, 0.85]), 15
    )
    return data, fit_data(data, 3, tol=1e-14)


def test_information_is_the_negative_hessian(three):
    data, res = three
    k = 3
    w, p = res.weights, res.p
    theta0 = np.r_[np.log(w[:-1] / w[-1]), np.log(p / (1 - p))]

    def ll(theta):
        return log_likelihood(
            data, MixtureParams(softmax(np.r_[theta[: k - 1], 0.0]), expit(theta[k - 1 :]))
        )

    eps, dim = 1e-4, theta0.size
    hess = np.empty((dim, dim))
    for i in range(dim):
        for j in range(dim):
            a, b = np.eye(dim)[i] * eps, np.eye(dim)[j] * eps
            hess[i, j] = (
                ll(theta0 + a + b) - ll(theta0 + a - b) - ll(theta0 - a + b) + ll(theta0 - a - b)
            ) / (4 * eps**2)
    np.testing.assert_allclose(observed_information(data, res.params), -hess, atol=1e-3)


def test_one_binomial_gives_the_textbook_standard_error():
    data = BinomialData.chapter()
    se = standard_errors(data, fit_data(data, 1).params)
    assert not se.singular
    assert se.p[0] == pytest.approx(np.sqrt(0.415 * 0.585 / 200), rel=1e-10)
    assert se.weights[0] == 0.0


def test_standard_errors_are_positive_and_scale_like_one_over_root_n(three):
    data, res = three
    se = standard_errors(data, res.params)
    assert not se.singular and np.all(se.p > 0) and np.all(se.weights > 0)
    big = BinomialData.from_counts(data.heads, data.trials, data.counts * 4)
    se4 = standard_errors(big, res.params)  # the same estimate with 4x the data
    np.testing.assert_allclose(se4.p, se.p / 2, rtol=1e-10)
    assert se.covariance.shape == (6, 6)


def test_collapsed_and_boundary_fits_have_no_standard_errors():
    chapter = BinomialData.chapter()
    se = standard_errors(chapter, fit_data(chapter, 3).params)
    assert se.singular and "singular" in se.reason and se.p is None
    edge = standard_errors(chapter, MixtureParams([0.0, 1.0], [0.2, 0.415]))
    assert edge.singular and "weight is 0" in edge.reason
    bound = standard_errors(
        BinomialData.from_sequences([0, 0, 3], 5), MixtureParams([0.6, 0.4], [0.0, 0.6])
    )
    assert bound.singular and "boundary" in bound.reason
