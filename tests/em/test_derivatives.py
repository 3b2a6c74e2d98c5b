"""The exact gradient and Hessian against central finite differences of the objective."""

import numpy as np
import pytest

from em import BinomialData, MixtureParams, Prior, objective
from em.derivatives import from_unconstrained, gradient_hessian, to_unconstrained


@pytest.fixture(scope="module")
def varied():
    rng = np.random.default_rng(3)
    trials = rng.integers(3, 15, 300)
    heads = rng.binomial(trials, rng.choice([0.2, 0.6], 300))
    return BinomialData.from_sequences(heads, trials)


@pytest.mark.parametrize("prior", [None, Prior((2.0, 1.5, 3.0), 2.0, 1.5)])
def test_gradient_and_hessian_match_finite_differences(varied, prior):
    params = MixtureParams([0.2, 0.5, 0.3], [0.3, 0.45, 0.7])
    theta0 = to_unconstrained(params)

    def f(theta):
        return objective(varied, from_unconstrained(theta), prior)

    g, h = gradient_hessian(varied, params, prior)
    eye = np.eye(theta0.size)
    e1, e2 = 1e-5, 1e-4
    g_fd = np.array([(f(theta0 + e1 * u) - f(theta0 - e1 * u)) / (2 * e1) for u in eye])
    h_fd = np.array(
        [
            [
                (
                    f(theta0 + e2 * (u + v))
                    - f(theta0 + e2 * (u - v))
                    - f(theta0 - e2 * (u - v))
                    + f(theta0 - e2 * (u + v))
                )
                / (4 * e2 * e2)
                for v in eye
            ]
            for u in eye
        ]
    )
    np.testing.assert_allclose(g, g_fd, atol=1e-6)
    np.testing.assert_allclose(h, h_fd, atol=1e-3 * np.abs(h).max())


def test_the_gauge_direction_is_flat(varied):
    """Adding a constant to every softmax logit changes nothing: H u = 0, g . u = 0."""
    g, h = gradient_hessian(varied, MixtureParams([0.2, 0.5, 0.3], [0.3, 0.45, 0.7]))
    u = np.r_[np.ones(3), np.zeros(3)]
    assert abs(g @ u) < 1e-9 * np.abs(g).max()
    np.testing.assert_allclose(h @ u, 0.0, atol=1e-9 * np.abs(h).max())


def test_batches_are_row_by_row(varied):
    w = np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    p = np.array([[0.3, 0.45, 0.7], [0.1, 0.5, 0.9]])
    g, h = gradient_hessian(varied, MixtureParams(w, p))
    for i in range(2):
        gi, hi = gradient_hessian(varied, MixtureParams(w[i], p[i]))
        np.testing.assert_allclose(g[i], gi, rtol=1e-12)
        np.testing.assert_allclose(h[i], hi, rtol=1e-12, atol=1e-12)


def test_empty_component_and_boundary_bias_have_zero_rows():
    data = BinomialData.from_sequences([0, 0, 3, 4, 5], 6)
    g, h = gradient_hessian(data, MixtureParams([0.5, 0.0, 0.5], [0.0, 0.3, 0.7]))
    assert np.all(np.isfinite(g)) and np.all(np.isfinite(h))
    for j in (1, 3 + 0, 3 + 1):  # eta of the empty one; lambda of p = 0 and of the empty one
        assert g[j] == 0.0 and np.all(h[j] == 0.0)
