"""The E-step, M-step and log-likelihood against independent computations."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from scipy.stats import beta as beta_dist
from scipy.stats import binom, dirichlet

from em import (
    BinomialData,
    MixtureParams,
    Prior,
    e_step,
    log_likelihood,
    log_prior,
    m_step,
    mixture_pmf,
)


def scipy_loglik(heads, trials, weights, p):
    """Per-sequence log pmf with scipy.stats.binom, summed: the reference."""
    comp = binom.logpmf(np.asarray(heads)[:, None], np.asarray(trials)[:, None], p)
    return logsumexp(comp + np.log(weights), axis=1).sum()


def test_log_likelihood_matches_scipy_binom_including_coefficient(rng):
    trials = rng.integers(1, 40, size=300)
    heads = rng.binomial(trials, 0.37)
    data = BinomialData.from_sequences(heads, trials)
    params = MixtureParams([0.2, 0.5, 0.3], [0.25, 0.45, 0.6])
    ref = scipy_loglik(heads, trials, params.weights, params.p)
    assert log_likelihood(data, params) == pytest.approx(ref, rel=1e-13)
    assert e_step(data, params).log_likelihood == pytest.approx(ref, rel=1e-13)


def test_log_likelihood_value_from_the_notes():
    """pymc6-arviz1.md, section 1: pm.Mixture gives -37.383342 at this point."""
    data = BinomialData.chapter()
    params = MixtureParams([0.2, 0.5, 0.3], [0.25, 0.45, 0.6])
    assert round(log_likelihood(data, params), 6) == -37.383342


def test_log_prior_matches_scipy_densities():
    params = MixtureParams([0.2, 0.5, 0.3], [0.25, 0.45, 0.6])
    prior = Prior(alpha=(2.0, 3.0, 1.5), a=2.0, b=5.0)
    ref = dirichlet.logpdf(params.weights, prior.alpha) + beta_dist.logpdf(params.p, 2, 5).sum()
    assert log_prior(params, prior) == pytest.approx(ref, rel=1e-13)
    # Flat priors: log Gamma(K) for the Dirichlet(1), 0 for Beta(1, 1) (PyMC's convention).
    flat = Prior(alpha=(1.0, 1.0, 1.0))
    assert log_prior(params, flat) == pytest.approx(np.log(2.0), rel=1e-14)


def test_batched_e_step_equals_one_at_a_time(rng):
    data = BinomialData.from_sequences(rng.binomial(12, 0.4, size=50), 12)
    w = rng.dirichlet(np.ones(3), size=(2, 4))
    p = rng.uniform(size=(2, 4, 3))
    batch = e_step(data, MixtureParams(w, p))
    assert batch.resp.shape == (2, 4, data.n_outcomes, 3)
    for i in range(2):
        for j in range(4):
            one = e_step(data, MixtureParams(w[i, j], p[i, j]))
            np.testing.assert_allclose(batch.resp[i, j], one.resp, rtol=1e-13)
            np.testing.assert_allclose(batch.expected_counts[i, j], one.expected_counts)
            assert batch.log_likelihood[i, j] == pytest.approx(one.log_likelihood, rel=1e-14)
    np.testing.assert_allclose(log_likelihood(data, MixtureParams(w, p)), batch.log_likelihood)


def test_m_step_with_prior_is_the_closed_form_mode():
    data = BinomialData.chapter()
    params = MixtureParams([0.25, 0.5, 0.25], [0.4, 0.5, 0.65])
    expect = e_step(data, params)
    prior = Prior(alpha=(2.0, 2.0, 2.0), a=3.0, b=2.0)
    new = m_step(expect, params, prior=prior)
    nk, sk, tk = expect.expected_counts, expect.expected_successes, expect.expected_trials
    np.testing.assert_allclose(new.weights, (nk + 1) / (20 + 3))
    np.testing.assert_allclose(new.p, (sk + 2) / (tk + 3))


def test_fixed_groups_are_held():
    data = BinomialData.chapter()
    params = MixtureParams([0.25, 0.5, 0.25], [0.4, 0.5, 0.65])
    expect = e_step(data, params)
    assert m_step(expect, params, fix="weights").weights.tolist() == [0.25, 0.5, 0.25]
    assert m_step(expect, params, fix="p").p.tolist() == [0.4, 0.5, 0.65]


def test_empty_component_keeps_its_bias_and_gets_zero_weight():
    data = BinomialData.chapter()
    params = MixtureParams([0.0, 0.6, 0.4], [0.9, 0.3, 0.5])
    expect = e_step(data, params)
    assert np.all(np.isfinite(expect.resp)) and expect.expected_counts[0] == 0.0
    new = m_step(expect, params)
    assert new.weights[0] == 0.0 and new.p[0] == 0.9
    assert np.all(np.isfinite(new.p)) and np.all(np.isfinite(new.weights))


@pytest.mark.parametrize("heads", [0, 10])
def test_all_tails_or_all_heads_gives_p_at_the_boundary_not_nan(heads):
    data = BinomialData.from_sequences([heads] * 5, 10)
    params = MixtureParams([0.5, 0.5], [0.3, 0.6])
    for _ in range(3):
        expect = e_step(data, params)
        params = m_step(expect, params)
    assert np.all(params.p == heads / 10)
    expect = e_step(data, params)  # log(0) terms at p in {0, 1}
    assert expect.log_likelihood == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.isfinite(expect.resp))


def test_impossible_outcome_is_a_value_error():
    data = BinomialData.from_sequences([0, 3], 10)
    with pytest.raises(ValueError, match="heads=3, trials=10 has probability 0"):
        e_step(data, MixtureParams([1.0], [0.0]))
    assert log_likelihood(data, MixtureParams([1.0], [0.0])) == -np.inf


def test_mixture_pmf_sums_to_one_and_matches_scipy():
    params = MixtureParams([0.3, 0.7], [0.2, 0.6])
    pmf = mixture_pmf(params, 10)
    ref = 0.3 * binom.pmf(np.arange(11), 10, 0.2) + 0.7 * binom.pmf(np.arange(11), 10, 0.6)
    np.testing.assert_allclose(pmf, ref, rtol=1e-12)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-14)


# ----------------------------------------------------------------------- properties
@st.composite
def problems(draw):
    k = draw(st.integers(1, 4))
    n_seq = draw(st.integers(1, 40))
    trials = draw(st.lists(st.integers(1, 30), min_size=n_seq, max_size=n_seq))
    heads = [draw(st.integers(0, t)) for t in trials]
    raw_w = draw(st.lists(st.floats(0.01, 1.0), min_size=k, max_size=k))
    p = draw(st.lists(st.floats(0.001, 0.999), min_size=k, max_size=k))
    w = np.asarray(raw_w) / np.sum(raw_w)
    return np.asarray(heads), np.asarray(trials), MixtureParams(w, p)


@settings(max_examples=60, deadline=None)
@given(problems())
def test_posteriors_and_counts_are_distributions(problem):
    heads, trials, params = problem
    data = BinomialData.from_sequences(heads, trials)
    expect = e_step(data, params)
    np.testing.assert_allclose(expect.resp.sum(axis=1), 1.0, rtol=1e-12)
    assert expect.expected_counts.sum() == pytest.approx(len(heads), rel=1e-12)
    new = m_step(expect, params)
    assert new.weights.sum() == pytest.approx(1.0, rel=1e-14)
    assert np.all((new.p >= 0) & (new.p <= 1))
    assert expect.log_likelihood == pytest.approx(
        scipy_loglik(heads, trials, params.weights, params.p), rel=1e-10, abs=1e-10
    )


@settings(max_examples=40, deadline=None)
@given(problems(), st.randoms(use_true_random=False))
def test_reordering_data_and_relabelling_components_change_nothing(problem, rnd):
    heads, trials, params = problem
    order = list(range(len(heads)))
    rnd.shuffle(order)
    perm = list(range(params.n_components))
    rnd.shuffle(perm)
    a = e_step(BinomialData.from_sequences(heads, trials), params)
    b = e_step(
        BinomialData.from_sequences(heads[order], trials[order]),
        MixtureParams(params.weights[perm], params.p[perm]),
    )
    assert b.log_likelihood == pytest.approx(a.log_likelihood, rel=1e-12)
    np.testing.assert_allclose(b.resp, a.resp[:, perm], rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(b.expected_counts, a.expected_counts[perm], rtol=1e-10)


# ----------------------------------------------------------------------- parameters are checked
@pytest.mark.parametrize(
    ("weights", "p", "message"),
    [
        ([0.5, 0.5], [0.3, 1.2], r"p\[1\] = 1.2 is outside \[0, 1\]"),
        ([0.5, 0.5], [0.3, np.nan], r"p\[1\] = nan is outside \[0, 1\]"),
        ([0.5, 0.5], [-0.1, 0.5], r"p\[0\] = -0.1 is outside \[0, 1\]"),
        ([5.0, 5.0], [0.3, 0.5], "weights must sum to 1 over the components, got 10.0"),
        ([0.5, 0.49], [0.3, 0.5], "weights must sum to 1 over the components, got 0.99"),
        ([1.5, -0.5], [0.3, 0.5], r"weights\[1\] = -0.5 is not a number >= 0"),
        ([np.inf, 0.5], [0.3, 0.5], r"weights\[0\] = inf is not a number >= 0"),
        ([0.5, 0.5], [0.3], r"one shape \(\.\.\., K\).*got \(2,\) and \(1,\)"),
        ([], [], "K >= 1 components"),
        (0.5, 0.5, "K >= 1 components"),
        (["a", "b"], [0.3, 0.5], "weights must be an array of numbers"),
        ([0.5, 0.5j], [0.3, 0.5], "weights must be an array of numbers"),
        (np.ma.array([0.5, 0.5], mask=[0, 1]), [0.3, 0.5], "weights is a masked array with 1"),
        ([0.5, 0.5], np.ma.masked_invalid([0.3, np.nan]), "p is a masked array with 1 masked"),
    ],
)
def test_bad_parameters_are_value_errors_naming_the_argument(weights, p, message):
    with pytest.raises(ValueError, match=message):
        MixtureParams(weights, p)


def test_e_step_never_sees_bad_parameters():
    """Before: NaN arrays for p > 1 or NaN, and a log-likelihood of +9.69 for weights x 10."""
    data = BinomialData.chapter()
    with pytest.raises(ValueError, match="weights must sum to 1"):
        e_step(data, MixtureParams([2.5, 5.0, 2.5], [0.4, 0.5, 0.65]))
    with pytest.raises(ValueError, match=r"p\[2\] = 1.65 is outside"):
        e_step(data, MixtureParams([0.25, 0.5, 0.25], [0.4, 0.5, 1.65]))


def test_batches_and_float_rounding_pass(rng):
    w = rng.dirichlet(np.ones(3), size=(4, 1000))  # one set per posterior draw
    params = MixtureParams(w, rng.uniform(size=(4, 1000, 3)))
    assert params.weights.shape == (4, 1000, 3) and not params.weights.flags.writeable
    tenths = [0.1] * 10  # sums to 0.9999999999999999
    assert MixtureParams(tenths, np.linspace(0, 1, 10)).n_components == 10
    assert MixtureParams(np.ma.array([0.5, 0.5]), [0.0, 1.0]).p.tolist() == [0.0, 1.0]
    w[2, 7] = [0.5, 0.5, 0.1]
    with pytest.raises(ValueError, match=r"got 1.1 for weights\[2, 7, :\]"):
        MixtureParams(w, np.full((4, 1000, 3), 0.5))


def test_parameters_are_copied_not_frozen_in_place():
    w = np.array([0.5, 0.5])
    params = MixtureParams(w, [0.2, 0.8])
    w[0] = 0.9  # the caller's array stays writeable and the parameters do not change
    assert params.weights.tolist() == [0.5, 0.5]


def test_em_loop_checks_parameters_once_per_run_not_per_iteration(monkeypatch):
    """The loop builds parameters through MixtureParams._trusted, unchecked."""
    import em._validation as v
    from em.chapter import CHAPTER_INIT
    from em.fitting import run_em

    calls = []
    original = v.check_mixture

    def counting(weights, p):
        calls.append(1)
        return original(weights, p)

    monkeypatch.setattr(v, "check_mixture", counting)
    counts = []
    for max_iter in (3, 1000):
        calls.clear()
        run = run_em(BinomialData.chapter(), CHAPTER_INIT, max_iter=max_iter, method="em")
        counts.append((run.n_iter, len(calls)))
    assert counts[0][0] == 3 and counts[1][0] > 10  # plain EM: about 40 iterations
    assert counts[0][1] == counts[1][1] <= 5


def test_unchecked_parameters_hold_anything_on_request():
    """For callers that must keep what is not a mixture (grading a student's step)."""
    w = np.array([5.0, 5.0])
    params = MixtureParams.unchecked(w, [0.3, 1.2])
    assert params.weights.tolist() == [5.0, 5.0] and params.p.tolist() == [0.3, 1.2]
    assert not params.weights.flags.writeable and w.flags.writeable  # a copy
    with pytest.raises(ValueError, match="weights must sum to 1"):
        MixtureParams(params.weights, [0.3, 0.5])
