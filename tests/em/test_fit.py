"""The EM loop: monotonicity, restarts, optima, fixed parameters, MAP-EM, degenerate cases."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from scipy.special import expit, softmax

from em import (
    BinomialData,
    EMInvariantError,
    MixtureParams,
    fit,
    fit_data,
    log_likelihood,
    objective,
    run_em,
)
from em import fit as fit_module_fit
from tests.conftest import simulate


@pytest.fixture(scope="module")
def separated():
    rng = np.random.default_rng(7)
    heads = simulate(rng, 3000, 20, [0.3, 0.7], [0.2, 0.75])
    return BinomialData.from_sequences(heads, 20)


def test_objective_never_decreases(rng):
    """The EM invariant (cf. sklearn's test_monotonic_likelihood), for ML and MAP-EM."""
    heads = simulate(rng, 500, 10, [0.2, 0.5, 0.3], [0.15, 0.5, 0.8])
    for opts in ({}, {"prior_weights": 2.0, "prior_p": (2.0, 2.0)}):
        res = fit(heads, 10, 3, restarts=8, seed=3, tol=0.0, max_iter=200, **opts)
        for run in res.runs:
            steps = np.diff(run.trace)
            assert steps.min() >= -1e-10 * np.abs(run.trace).max()
            assert run.trace[-1] > run.trace[0]


def test_a_decreasing_step_is_an_error(monkeypatch):
    import em.fitting as fit_mod

    def bad_m_step(expect, params, **kw):  # moves away from the optimum
        return MixtureParams(params.weights, np.clip(params.p * 0.5, 0, 1))

    monkeypatch.setattr(fit_mod, "m_step", bad_m_step)
    with pytest.raises(EMInvariantError, match="decreased at iteration 1"):
        run_em(BinomialData.chapter(), MixtureParams([0.5, 0.5], [0.4, 0.6]))


def test_trace_starts_at_init_and_ends_at_the_result(separated):
    init = MixtureParams([0.5, 0.5], [0.3, 0.6])
    run = run_em(separated, init)
    assert run.converged and run.n_iter == len(run.trace) - 1
    assert run.trace[0] == pytest.approx(log_likelihood(separated, init), rel=1e-14)
    assert run.trace[-1] == pytest.approx(run.log_likelihood, rel=1e-14)
    assert run.log_likelihood == pytest.approx(log_likelihood(separated, run.params), rel=1e-14)


def test_recovers_a_separated_mixture_and_sorts_by_p(separated):
    res = fit_data(separated, 2, init_weights=[0.5, 0.5], init_p=[0.9, 0.1])
    np.testing.assert_allclose(res.p, [0.2, 0.75], atol=0.02)
    np.testing.assert_allclose(res.weights, [0.3, 0.7], atol=0.03)
    assert res.p[0] < res.p[1] and res.warnings == ()
    assert len(res.optima) == 1 and res.optima[0].fraction == 1.0


def test_restarts_are_kept_and_seeded(separated):
    a = fit_data(separated, 2, restarts=6, seed=11, init_p=[0.4, 0.6])
    b = fit_data(separated, 2, restarts=6, seed=11, init_p=[0.4, 0.6])
    c = fit_data(separated, 2, restarts=6, seed=12, init_p=[0.4, 0.6])
    assert len(a.runs) == 7 and a.runs[0].start == "user"
    assert [r.start for r in a.runs[1:]] == [f"random {i}" for i in range(1, 7)]
    for ra, rb in zip(a.runs, b.runs, strict=True):
        np.testing.assert_array_equal(ra.init.p, rb.init.p)
        np.testing.assert_array_equal(ra.trace, rb.trace)
    assert not np.array_equal(a.runs[1].init.p, c.runs[1].init.p)
    assert a.seed == 11
    assert sum(o.fraction for o in a.optima) == pytest.approx(1.0)
    # best = the highest objective among all runs
    assert a.log_likelihood == max(r.log_likelihood for r in a.runs)


def test_a_restart_reruns_alone_with_the_same_result(separated):
    """Restarts run batched; each run ends where run_em from its start ends alone.

    The path is the same up to float rounding (a batched matrix product may round its last
    bit differently), which can change an accept/reject decision late in a run, so the
    comparison is of the certified end points, not of every step.
    """
    res = fit_data(separated, 3, restarts=5, seed=4)
    for run in res.runs:
        alone = run_em(separated, run.init)
        assert alone.converged and run.converged
        assert alone.objective == pytest.approx(run.objective, abs=1e-9)
        np.testing.assert_allclose(alone.trace[:5], run.trace[:5], rtol=1e-12)
        np.testing.assert_allclose(alone.params.p, run.params.p, atol=1e-5)


def test_distinct_optima_are_found_with_basin_fractions():
    """Two clusters at 0.1 and 0.9 and a K = 2 start that puts both coins on one of
    them gives a worse local optimum; random restarts find the global one."""
    data = BinomialData.from_counts([1, 2, 8, 9, 5], 10, [30, 30, 30, 30, 4])
    res = fit_data(data, 3, restarts=30, seed=5)
    objs = [o.log_likelihood for o in res.optima]
    assert objs == sorted(objs, reverse=True)
    assert res.log_likelihood == objs[0]
    for o in res.optima:
        assert len(o.runs) == round(o.fraction * len(res.runs))
        for i in o.runs:  # every member sits at its optimum's fitted mixture
            assert res.runs[i].log_likelihood == pytest.approx(o.log_likelihood, abs=1e-3)


def test_two_coin_example_with_equal_fixed_weights():
    """Do & Batzoglou (2008), Nat. Biotechnol. 26:897, Fig. 1b: five sets of 10 tosses
    with 5, 9, 8, 4, 7 heads; start theta_A = 0.6, theta_B = 0.5 with equal, fixed
    weights; one iteration gives 0.71 and 0.58, ten give 0.80 and 0.52."""
    data = BinomialData.from_sequences([5, 9, 8, 4, 7], 10)
    init = MixtureParams([0.5, 0.5], [0.6, 0.5])
    one = run_em(data, init, fix="weights", tol=0.0, max_iter=1)
    ten = run_em(data, init, fix="weights", tol=0.0, max_iter=10)
    assert np.round(one.params.p, 2).tolist() == [0.58, 0.71]  # sorted by p
    assert np.round(ten.params.p, 2).tolist() == [0.52, 0.80]
    assert ten.params.weights.tolist() == [0.5, 0.5]
    res = fit_data(data, 2, fix="weights", restarts=3)
    assert all(r.params.weights.tolist() == [0.5, 0.5] for r in res.runs)


def test_fixed_biases():
    data = BinomialData.chapter()
    res = fit_data(data, 2, fix="p", init_p=[0.3, 0.6], restarts=4)
    assert all(r.params.p.tolist() == [0.3, 0.6] for r in res.runs)
    assert res.weights.sum() == pytest.approx(1.0)


def _maximise(data, k, prior, start: MixtureParams):
    """Independent check: maximise the objective with scipy in softmax/logit coordinates."""

    def neg(x):
        params = MixtureParams(softmax(np.r_[0.0, x[: k - 1]]), expit(x[k - 1 :]))
        return -objective(data, params, prior)

    x0 = np.r_[np.log(start.weights[1:] / start.weights[0]), np.log(start.p / (1 - start.p))]
    return -minimize(
        neg, x0, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000}
    ).fun


def test_map_em_reaches_the_posterior_mode(separated):
    res = fit_data(separated, 2, prior_weights=[3.0, 2.0], prior_p=(2.0, 3.0), tol=1e-14)
    assert res.log_posterior is not None
    assert res.log_posterior == pytest.approx(
        res.log_likelihood
        + objective(separated, res.params, res_prior(res))
        - log_likelihood(separated, res.params),
        rel=1e-12,
    )
    best = _maximise(separated, 2, res_prior(res), res.params)
    assert res.log_posterior >= best - 1e-6


def res_prior(res):
    from em import Prior

    o = res.options
    return Prior(tuple(o["prior_weights"]), *o["prior_p"])


def test_flat_prior_map_em_is_ml_em(separated):
    ml = fit_data(separated, 2, seed=1)
    flat = fit_data(separated, 2, seed=1, prior_weights=1.0, prior_p=(1, 1))
    np.testing.assert_allclose(flat.p, ml.p, rtol=1e-12)
    assert flat.log_posterior == pytest.approx(ml.log_likelihood + np.log(1.0), abs=1e-9)


# ----------------------------------------------------------------------- degenerate cases
def test_k_equal_one_is_the_binomial_mle():
    data = BinomialData.from_sequences([3, 4, 9, 0], [10, 12, 10, 5])
    res = fit_data(data, 1)
    assert res.p[0] == pytest.approx(16 / 37, rel=1e-14) and res.weights.tolist() == [1.0]
    assert res.converged and res.n_iter <= 2 and res.warnings == ()


def test_k_above_the_distinct_outcomes_gives_numbers_and_warnings():
    data = BinomialData.from_sequences([2, 2, 7, 7, 7], 10)
    res = fit_data(data, 4)
    assert np.all(np.isfinite(res.p)) and np.all(np.isfinite(res.weights))
    codes = {w["code"] for w in res.warnings}
    assert {"collapsed", "more_components_than_outcomes"} <= codes
    assert res.optima[0].reduced.n_components == 2
    two = fit_data(data, 2)  # the same fit with the number of components it really has
    np.testing.assert_allclose(res.optima[0].reduced.p, two.p, atol=1e-3)
    assert res.log_likelihood == pytest.approx(two.log_likelihood, abs=1e-4)


@pytest.mark.parametrize("heads", [0, 6])
def test_all_tails_or_all_heads_data(heads):
    res = fit([heads] * 8, 6, 3)
    assert np.all(np.isfinite(res.p)) and res.log_likelihood == pytest.approx(0.0, abs=1e-9)
    assert res.optima[0].reduced.p.tolist() == [heads / 6]
    assert res.collapsed


def test_identifiability_condition_is_reported():
    res = fit([0, 1, 2, 1, 2], 2, 2, restarts=3)  # trials 2 < 2K - 1 = 3
    assert "not_identifiable" in {w["code"] for w in res.warnings}
    res = fit([0, 1, 2, 1, 3], 3, 2, restarts=3)  # trials 3 = 2K - 1: identifiable
    assert "not_identifiable" not in {w["code"] for w in res.warnings}


def test_chapter_fit_collapses_to_one_coin():
    res = fit_data(BinomialData.chapter(), 3)
    assert res.collapsed
    assert res.optima[0].reduced.p == pytest.approx([0.415], abs=1e-4)
    assert len(res.optima) == 1


def test_max_iter_reached_is_reported(separated):
    res = fit_data(separated, 3, max_iter=2, restarts=2)
    assert not res.converged and all(r.n_iter == 2 for r in res.runs)
    assert "not_converged" in {w["code"] for w in res.warnings}


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 8), st.integers(1, 5)), min_size=1, max_size=9))
def test_compressed_and_uncompressed_input_give_the_same_fit(rows):
    heads = np.array([h for h, _ in rows])
    counts = np.array([c for _, c in rows])
    expanded = np.repeat(heads, counts)
    a = fit(expanded, 8, 2, restarts=3, seed=9)
    b = fit(heads, 8, 2, counts=counts, restarts=3, seed=9)
    np.testing.assert_array_equal(a.data.counts, b.data.counts)
    np.testing.assert_allclose(a.p, b.p, rtol=1e-12)
    assert a.log_likelihood == pytest.approx(b.log_likelihood, rel=1e-12)
    rng = np.random.default_rng(len(rows))
    shuffled = rng.permutation(expanded)
    c = fit(shuffled, 8, 2, restarts=3, seed=9)
    np.testing.assert_allclose(c.p, a.p, rtol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_components": 0}, "n_components must be an integer >= 1, got 0"),
        ({"n_components": 2, "restarts": -1}, "restarts must be an integer >= 0, got -1"),
        ({"n_components": 2, "tol": float("nan")}, "tol must be a finite number >= 0"),
        ({"n_components": 2, "init_weights": [0.5, 0.6]}, "init_weights must sum to 1"),
        ({"n_components": 2, "init_p": [0.5, 1.5]}, r"init_p must lie in \[0, 1\]"),
        ({"n_components": 2, "init_p": [0.5]}, "init_p must have 2 values"),
        ({"n_components": 2, "prior_weights": 0.0}, "must be > 0"),
        ({"n_components": 2, "prior_weights": 0.5}, "MAP-EM needs alpha >= 1"),
        ({"n_components": 2, "prior_p": (1.0,)}, "prior_p must be two numbers"),
        ({"n_components": 2, "prior_p": (0.5, 2.0)}, "MAP-EM needs a >= 1 and b >= 1"),
        ({"n_components": 2, "fix": "w"}, "fix must be 'weights' or 'p', got 'w'"),
        ({"n_components": 2, "fix": "p"}, "fix='p' needs init_p"),
        ({"n_components": 2, "restarts": 0}, "restarts = 0 needs a starting point"),
    ],
)
def test_api_errors_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit_module_fit([1, 2, 3], 5, **kwargs)


def test_predict_proba_is_bayes_rule_per_sequence():
    """Which coin, per sequence in the order given: w_j Binom(h | n, p_j), normalised."""
    from scipy.stats import binom

    res = fit([1, 2, 9, 8, 1, 9, 2, 5], 10, 2, seed=2)
    heads, trials = np.array([9, 0, 5, 3]), np.array([10, 10, 12, 4])
    got = res.predict_proba(heads, trials)
    joint = res.weights * binom.pmf(heads[:, None], trials[:, None], res.p)
    np.testing.assert_allclose(got, joint / joint.sum(axis=1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(res.predict_proba([9], 10)[0], got[0], rtol=1e-12)
    assert got[0, 1] > 0.99 and got[1, 0] > 0.99  # the extreme outcomes go to their coin
    with pytest.raises(ValueError, match="exceeds trials"):
        res.predict_proba([11], 10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prior_p": (1e308, 1e308)}, "Beta parameters must be at most 1e"),
        ({"prior_weights": 1e308}, "Dirichlet alpha must be at most 1e"),
    ],
)
def test_point_mass_priors_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit([1, 2, 3], 5, 2, **kwargs)
    fit([1, 2, 3], 5, 2, prior_p=(1e6, 1e6), prior_weights=1e6)  # the largest accepted
