"""The PyMC model: compressed likelihood, agreement with em/, MAP, posterior, storage.

Kept small (few draws); the sampling tests are marked slow but run in `make test`.
"""

import subprocess
import sys

import numpy as np
import pymc as pm
import pytest
from scipy.special import gammaln

from em import BinomialData, fit_data
from models import MixtureModel, load_posterior, save_posterior
from tests.conftest import simulate


@pytest.fixture(scope="module")
def mixed_trials():
    rng = np.random.default_rng(3)
    trials = rng.integers(5, 15, size=60)
    return BinomialData.from_sequences(simulate(rng, 60, trials, [0.4, 0.6], [0.2, 0.7]), trials)


@pytest.fixture(scope="module")
def separated():
    rng = np.random.default_rng(8)
    return BinomialData.from_sequences(simulate(rng, 400, 12, [0.35, 0.65], [0.2, 0.7]), 12)


def _full_model(data, k):
    """The one-row-per-sequence model the compressed one must equal."""
    heads, trials = data.expand()
    with pm.Model(coords={"component": range(k)}) as model:
        w = pm.Dirichlet("w", a=np.ones(k), dims="component")
        p = pm.Beta("p", alpha=1.0, beta=1.0, dims="component")
        pm.Mixture(
            "heads", w=w, comp_dists=pm.Binomial.dist(n=trials[:, None], p=p), observed=heads
        )
    return model


def test_compressed_logp_equals_the_one_row_per_sequence_model(mixed_trials):
    k = 3
    compressed = MixtureModel(mixed_trials, k).model
    full = _full_model(mixed_trials, k)
    f_c, f_f = compressed.compile_logp(), full.compile_logp()  # what NUTS sees
    g_c, g_f = compressed.compile_dlogp(), full.compile_dlogp()
    rng = np.random.default_rng(0)
    for _ in range(5):
        point = {"w_simplex__": rng.normal(size=k - 1), "p_logodds__": rng.normal(size=k)}
        assert f_c(point) == pytest.approx(f_f(point), rel=1e-12)
        np.testing.assert_allclose(g_c(point), g_f(point), rtol=1e-10)
    assert len(compressed.coords["outcome"]) == mixed_trials.n_outcomes  # one term each


def test_model_log_likelihood_equals_em_at_em_estimate(mixed_trials):
    res = fit_data(mixed_trials, 2, seed=1)
    mm = MixtureModel(mixed_trials, 2)
    assert mm.log_likelihood(res.weights, res.p) == pytest.approx(res.log_likelihood, abs=1e-8)
    # flat priors: the log-posterior density adds log Gamma(K) (Dirichlet(1)) and 0 (Beta(1, 1))
    assert mm.log_posterior(res.weights, res.p) == pytest.approx(
        res.log_likelihood + gammaln(2), abs=1e-8
    )


def test_priors_match_map_em(separated):
    mm = MixtureModel(separated, 2, prior_weights=[3.0, 3.0], prior_p=(2.0, 4.0))
    res = fit_data(separated, 2, prior_weights=3.0, prior_p=(2.0, 4.0), tol=1e-13)
    assert mm.log_posterior(res.weights, res.p) == pytest.approx(res.log_posterior, abs=1e-8)


def test_map_em_and_find_map_agree(separated):
    prior = {"prior_weights": 2.0, "prior_p": (2.0, 2.0)}
    res = fit_data(separated, 2, tol=1e-13, **prior)
    mm = MixtureModel(separated, 2, **prior)
    maps = mm.find_map([("em", res.weights, res.p)], n_random=2, seed=4)
    assert [m.start for m in maps].count("em") == 1 and len(maps) == 3
    best = maps[0]
    assert best.success
    assert best.log_posterior == pytest.approx(res.log_posterior, abs=1e-6)
    np.testing.assert_allclose(best.p, res.p, atol=1e-4)
    np.testing.assert_allclose(best.weights, res.weights, atol=1e-4)
    assert best.log_likelihood == pytest.approx(mm.log_likelihood(best.weights, best.p))


def test_compiled_search_reaches_what_find_map_reaches(separated):
    mm = MixtureModel(separated, 2, prior_weights=2.0, prior_p=(2.0, 2.0))
    start = [("start", [0.5, 0.5], [0.3, 0.6])]
    (ours,) = mm.find_map(start, n_random=0)
    (theirs,) = mm.find_map(start, n_random=0, method="find_MAP")
    assert ours.success and theirs.success
    assert ours.log_posterior == pytest.approx(theirs.log_posterior, abs=1e-7)
    np.testing.assert_allclose(ours.p, theirs.p, atol=1e-4)
    np.testing.assert_allclose(ours.weights, theirs.weights, atol=1e-4)


def test_ordered_map_from_a_collapsed_start():
    data = BinomialData.chapter()
    mm = MixtureModel(data, 3, ordered=True)
    (res,) = mm.find_map([("collapsed", [0.3, 0.4, 0.3], [0.415, 0.415, 0.415])], n_random=0)
    assert np.all(np.diff(res.p) >= 0) and np.isfinite(res.log_posterior)
    assert res.log_likelihood == pytest.approx(-35.1526058, abs=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prior_weights": 0.0}, "prior_weights: Dirichlet alpha must be > 0"),
        ({"prior_weights": [1.0, -1.0]}, "prior_weights: Dirichlet alpha must be > 0"),
        ({"prior_weights": [1.0, 1.0, 1.0]}, "prior_weights must be a number or 2 numbers"),
        ({"prior_p": (0.0, 1.0)}, "prior_p: Beta parameters must be > 0, got a=0, b=1"),
        ({"prior_p": (1.0, -2.0)}, "prior_p: Beta parameters must be > 0"),
        ({"prior_p": 3.0}, "prior_p must be two numbers"),
        ({"n_components": 0}, "n_components must be an integer >= 1, got 0"),
    ],
)
def test_bad_priors_are_rejected(kwargs, message):
    args = {"n_components": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        MixtureModel(BinomialData.chapter(), **args)


def test_data_without_counts_is_rejected():
    with pytest.raises(ValueError, match="data must have heads, trials and counts"):
        MixtureModel(object(), 2)


def test_importing_models_imports_neither_em_nor_compare():
    code = (
        "import sys, models\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'em', 'compare'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------- posterior
@pytest.fixture(scope="module")
def posterior():
    data = BinomialData.from_counts([2, 3, 4, 5, 6, 9], 10, [4, 2, 5, 5, 4, 3])
    mm = MixtureModel(data, 2)
    return data, mm, mm.sample(draws=60, tune=60, chains=4, seed=11)


@pytest.mark.slow
def test_sampling_is_seeded(posterior):
    data, mm, idata = posterior
    again = mm.sample(draws=60, tune=60, chains=4, seed=11)
    np.testing.assert_array_equal(again["posterior"]["p"].values, idata["posterior"]["p"].values)
    other = mm.sample(draws=60, tune=60, chains=4, seed=12)
    assert not np.array_equal(other["posterior"]["p"].values, idata["posterior"]["p"].values)
    assert idata["posterior"].sizes["chain"] == 4 and idata["posterior"].sizes["draw"] == 60


@pytest.mark.slow
def test_derived_groups(posterior):
    data, mm, idata = posterior
    ll = idata["log_likelihood"]["heads"]  # per sequence, per distinct outcome
    assert ll.dims == ("chain", "draw", "outcome")
    w = idata["posterior"]["w"].values
    p = idata["posterior"]["p"].values
    for c, d in [(0, 0), (3, 59), (1, 17)]:
        total = float(ll.values[c, d] @ data.counts)
        assert total == pytest.approx(mm.log_likelihood(w[c, d], p[c, d]), rel=1e-10)
    resp = idata["responsibilities"]["mean"].values
    assert resp.shape == (data.n_outcomes, 2)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-12)
    pmf = idata["predictive"]["pmf"].values
    assert pmf.shape == (4, 60, 1, 11)
    np.testing.assert_allclose(pmf.sum(axis=-1), 1.0, rtol=1e-10)
    np.testing.assert_allclose(idata["predictive"]["pmf_mean"].values, pmf.mean(axis=(0, 1)))


@pytest.mark.slow
def test_ordered_variant_keeps_p_sorted_in_every_draw():
    data = BinomialData.chapter()
    idata = MixtureModel(data, 3, ordered=True).sample(draws=50, tune=50, chains=4, seed=2)
    p = idata["posterior"]["p"].values
    assert p.shape == (4, 50, 3)
    assert np.all(np.diff(p, axis=-1) > 0)


@pytest.mark.slow
def test_nutpie_sampler_and_bad_sampler_arguments(posterior):
    data, mm, _ = posterior
    idata = mm.sample(draws=30, tune=30, chains=4, seed=1, sampler="nutpie")
    assert idata["posterior"].sizes["draw"] == 30
    for kwargs, message in [
        ({"sampler": "metropolis"}, "sampler must be one of nutpie, pymc, got 'metropolis'"),
        ({"draws": 0}, "draws must be an integer >= 1, got 0"),
        ({"chains": 0}, "chains must be an integer >= 1, got 0"),
        ({"tune": -1}, "tune must be an integer >= 0, got -1"),
        ({"target_accept": 1.5}, r"target_accept must be in \(0, 1\)"),
    ]:
        with pytest.raises(ValueError, match=message):
            mm.sample(**kwargs)


@pytest.mark.slow
def test_netcdf_round_trip(posterior, tmp_path):
    _, _, idata = posterior
    path = tmp_path / "posterior.nc"
    save_posterior(idata, path)
    back = load_posterior(path)
    assert set(back.children) == set(idata.children)
    for group in ("posterior", "log_likelihood", "responsibilities", "predictive"):
        for name, var in idata[group].data_vars.items():
            np.testing.assert_array_equal(back[group][name].values, var.values)


def test_one_component_has_its_weight_fixed_at_one():
    data = BinomialData.chapter()
    mm = MixtureModel(data, 1)
    assert [rv.name for rv in mm.model.free_RVs] == ["p"]
    (best, *_) = mm.find_map(n_random=2, seed=0)
    assert best.weights.tolist() == [1.0] and best.p == pytest.approx([0.415], abs=1e-6)
    assert best.log_likelihood == pytest.approx(-35.1526058, abs=1e-6)


def test_set_counts_reaches_every_compiled_function():
    class Outcomes:
        heads, trials = np.arange(6), np.full(6, 5)
        counts = np.array([3, 1, 0, 2, 5, 4])

    mm = MixtureModel(Outcomes(), 2)
    w, p = np.array([0.3, 0.7]), np.array([0.2, 0.7])
    before = mm.log_likelihood(w, p)  # compiles the constrained clone
    mm.find_map(n_random=1)  # compiles the MAP functions
    new = np.array([0, 2, 6, 1, 1, 0])
    mm.set_counts(new)
    Outcomes.counts = new
    fresh = MixtureModel(Outcomes(), 2)
    assert mm.log_likelihood(w, p) == pytest.approx(fresh.log_likelihood(w, p), rel=1e-12)
    assert mm.log_likelihood(w, p) != pytest.approx(before)
    assert mm.find_map(n_random=1, seed=3)[0].log_posterior == pytest.approx(
        fresh.find_map(n_random=1, seed=3)[0].log_posterior, rel=1e-9
    )
    with pytest.raises(ValueError, match="counts must be 6 integers >= 0"):
        mm.set_counts([1, 2])
