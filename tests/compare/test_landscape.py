"""The profile log-likelihood landscape: exact against brute force and scipy, its structure
on cases whose answer is known, and the figure."""

import json

import numpy as np
import pytest
from matplotlib.image import imread
from scipy.optimize import minimize

from compare.landscape import (
    TOL,
    Landscape,
    default_grid,
    landscape_figure,
    profile_landscape,
    profile_landscapes,
)
from em import BinomialData, MixtureParams, fit_data, log_likelihood
from tests.conftest import simulate


def data_from(rng, n, weights, p, trials=12):
    return BinomialData.from_sequences(simulate(rng, n, trials, weights, p), trials)


def absolute(ls):
    return ls.profile + ls.max_log_likelihood


def grid_params(ls, others=()):
    """The parameter set at every grid point: p_i along columns, p_j along rows."""
    x, y = np.meshgrid(ls.p_i, ls.p_j)
    cols = [x, y] + [np.full_like(x, v) for v in others]
    p = np.stack(cols, axis=-1)
    order = list(ls.pair) + [c for c in range(ls.n_components) if c not in ls.pair]
    return MixtureParams(ls.weights, p[..., np.argsort(order)])


@pytest.fixture(scope="module")
def separated():
    rng = np.random.default_rng(7)
    data = data_from(rng, 1500, [0.4, 0.6], [0.2, 0.75])
    return data, fit_data(data, 2)


@pytest.fixture(scope="module")
def overlapping():
    rng = np.random.default_rng(8)
    data = data_from(rng, 3000, [0.6, 0.4], [0.35, 0.6])
    return data, fit_data(data, 2)


# ---------------------------------------------------------------------- exactness
def brute_force_k2(data, p1, p2):
    """max over w of l(w, p) on a dense grid of w, refined once around its best point."""
    w = np.linspace(0.0, 1.0, 4001)
    for _ in range(2):
        ll = log_likelihood(
            data, MixtureParams(np.column_stack([w, 1 - w]), np.tile([p1, p2], (w.size, 1)))
        )
        best = w[int(np.argmax(ll))]
        w = np.clip(np.linspace(best - 5e-4, best + 5e-4, 4001), 0.0, 1.0)
    return float(np.max(ll))


def test_k2_profile_equals_a_brute_force_maximisation_over_the_weight(rng):
    data = data_from(rng, 150, [0.3, 0.7], [0.3, 0.65], trials=10)
    best = fit_data(data, 2).params
    ls = profile_landscape(data, best, grid=np.linspace(0.05, 0.95, 10))
    assert ls.gap <= TOL
    brute = np.array([[brute_force_k2(data, x, y) for x in ls.p_i] for y in ls.p_j])
    ours = absolute(ls)
    # ours is certified within TOL of the maximum; brute force can only be below it
    assert np.all(brute - ours <= TOL + 1e-9)
    assert np.all(ours - brute <= 1e-7)
    # the absolute level is em's log-likelihood (binomial coefficients) at the weights found
    np.testing.assert_allclose(ours, log_likelihood(data, grid_params(ls)), rtol=0, atol=1e-9)


def scipy_max_weights(data, p):
    """max over the simplex of l(w, p) by SLSQP, from the centre and from each vertex."""
    k = len(p)

    def neg(w):
        return -log_likelihood(data, MixtureParams(np.clip(w, 0, 1) / np.sum(np.clip(w, 0, 1)), p))

    cons = ({"type": "eq", "fun": lambda w: np.sum(w) - 1.0},)
    starts = [np.full(k, 1 / k)] + [np.eye(k)[j] * 0.9 + 0.1 / k for j in range(k)]
    results = [
        minimize(
            neg,
            w0,
            method="SLSQP",
            bounds=[(0, 1)] * k,
            constraints=cons,
            options={"ftol": 1e-14, "maxiter": 500},
        )
        for w0 in starts
    ]
    return -min(r.fun for r in results)


def test_k3_profile_equals_scipy_on_a_few_points(rng):
    data = data_from(rng, 600, [0.3, 0.4, 0.3], [0.15, 0.5, 0.85])
    best = fit_data(data, 3).params
    values = np.array([0.05, 0.3, 0.52, 0.9])
    ls = profile_landscape(data, best, pair=(0, 2), grid=values)
    assert ls.gap <= TOL
    ours = absolute(ls)
    zero_weight = 0
    for b, y in enumerate(values):
        for a, x in enumerate(values):
            p = np.array([x, best.p[1], y])
            reference = scipy_max_weights(data, p)
            assert reference - ours[b, a] <= TOL + 1e-9  # ours is certified
            assert ours[b, a] - reference <= 1e-6  # and scipy finds the same maximum
            zero_weight += bool(np.any(ls.weights[b, a] < 1e-12))
    assert zero_weight > 0  # some maxima are on a face of the simplex: those were tested too
    # the component outside the pair keeps best's bias
    np.testing.assert_allclose(
        absolute(ls), log_likelihood(data, grid_params(ls, [best.p[1]])), atol=1e-9
    )


def test_the_simplex_solver_agrees_with_the_one_weight_solver_at_k2(overlapping):
    data, fit = overlapping
    grid = np.linspace(0.02, 0.98, 40)
    one = profile_landscape(data, fit.params, grid=grid, method="two")
    sqp = profile_landscape(data, fit.params, grid=grid, method="sqp")
    assert one.gap <= TOL and sqp.gap <= TOL
    np.testing.assert_allclose(absolute(one), absolute(sqp), rtol=0, atol=2 * TOL)


@pytest.mark.parametrize("k, method", [(2, "two"), (3, "sqp")])
def test_the_certified_gap_bounds_what_an_unfinished_solve_misses(k, method):
    rng = np.random.default_rng(11)
    weights, p = ([0.4, 0.6], [0.2, 0.75]) if k == 2 else ([0.3, 0.4, 0.3], [0.15, 0.5, 0.85])
    data = data_from(rng, 1500, weights, p)
    best = fit_data(data, k).params
    grid = np.linspace(0.05, 0.95, 19)
    exact = profile_landscape(data, best, grid=grid, method=method)
    early = profile_landscape(data, best, grid=grid, method=method, max_iter=1)
    assert exact.gap <= TOL  # converged: certified
    assert early.gap > 100 * TOL  # stopped early: the certificate says so
    shortfall = absolute(exact) - absolute(early)
    assert shortfall.max() > TOL
    assert np.all(shortfall <= early.gap + TOL)


# ---------------------------------------------------------------------- structure
def test_k2_profile_is_symmetric_under_swapping_the_labels(separated):
    data, fit = separated
    ls = profile_landscape(data, fit.params)
    np.testing.assert_array_equal(ls.p_i, ls.p_j)
    np.testing.assert_allclose(ls.profile, ls.profile.T, rtol=0, atol=2 * TOL)
    # both symmetric modes are maxima, the diagonal between them far below
    diagonal = np.diag(ls.profile)
    assert diagonal.max() < -100


@pytest.mark.parametrize("case", ["separated", "overlapping"])
def test_the_profile_peaks_at_em_s_optimum(case, request):
    data, fit = request.getfixturevalue(case)
    assert not fit.warnings
    p_hat = np.sort(fit.params.p)
    # the default grid holds EM's fit: the peak is there, to the certified accuracy
    ls = profile_landscape(data, fit.params)
    assert abs(ls.max_log_likelihood - fit.log_likelihood) <= 2 * TOL
    # an even grid that does not: the peak is within one spacing of EM's optimum
    grid = np.linspace(0.0025, 0.9975, 200)
    even = profile_landscape(data, fit.params, grid=grid)
    spacing = grid[1] - grid[0]
    assert np.all(np.abs(np.sort(even.argmax) - p_hat) <= spacing)
    assert even.max_log_likelihood <= fit.log_likelihood + TOL


def test_a_collapsed_fit_peaks_on_the_diagonal_with_a_cross_shaped_ridge():
    data = BinomialData.chapter()
    fit = fit_data(data, 2)
    p_hat = 83 / 200  # one coin: the pooled proportion of heads
    np.testing.assert_allclose(fit.params.p, [p_hat, p_hat], atol=1e-6)
    ls = profile_landscape(data, fit.params)
    on_diagonal = np.diag(ls.profile)
    a = int(np.argmax(on_diagonal))
    assert on_diagonal[a] >= -2 * TOL  # the maximum is attained on the diagonal ...
    assert ls.p_i[a] == pytest.approx(p_hat, abs=1e-6)  # ... at the pooled proportion
    assert abs(ls.max_log_likelihood - fit.log_likelihood) <= 2 * TOL
    # the ridge: one coin at p_hat with all the weight, the other anywhere, weight 0
    assert np.all(ls.profile[:, a] >= -2 * TOL) and np.all(ls.profile[a, :] >= -2 * TOL)
    off = ~np.isclose(ls.p_i, p_hat, atol=0.05)
    assert np.all(ls.profile[np.ix_(off, off)] < -0.1)  # anywhere off the cross is lower
    assert ls.window == ((0.0, 1.0), (0.0, 1.0))  # nothing to zoom on


def test_the_window_zooms_on_the_mode_at_large_n():
    rng = np.random.default_rng(3)
    z = rng.random(10**6) < 0.7
    data = BinomialData.from_sequences(rng.binomial(12, np.where(z, 0.48, 0.62)), 12)
    fit = fit_data(data, 2)
    ls = profile_landscape(data, fit.params)
    (x0, x1), (y0, y1) = ls.window
    assert x0 < fit.params.p[0] < x1 and y0 < fit.params.p[1] < y1
    assert max(x1 - x0, y1 - y0) < 0.05
    # the grid resolves the mode: many values inside the window, the 0.5-nat contour exists
    inside = (ls.p_i > x0) & (ls.p_i < x1)
    assert inside.sum() >= 60
    assert np.sum(ls.profile >= -0.5) >= 4
    assert ls.gap <= 2 * TOL  # rounding at N = 1e6 is ~1e-9
    np.testing.assert_array_equal(default_grid(data, fit.params), ls.p_i)


def test_k3_every_pair_at_the_best_fit(rng):
    data = data_from(rng, 900, [0.3, 0.4, 0.3], [0.15, 0.5, 0.85])
    fit = fit_data(data, 3)
    all_pairs = profile_landscapes(data, fit.params)
    assert [ls.pair for ls in all_pairs] == [(0, 1), (0, 2), (1, 2)]
    for ls in all_pairs:
        assert ls.gap <= TOL
        np.testing.assert_allclose(ls.weights.sum(axis=-1), 1.0, atol=1e-12)
        np.testing.assert_allclose(ls.profile, ls.profile.T, atol=2 * TOL)
        assert abs(ls.max_log_likelihood - fit.log_likelihood) <= 1e-3


# ---------------------------------------------------------------------- figure
def fake_draws(rng, p, sd, chains=4, draws=300):
    draws_p = rng.normal(p, sd, size=(chains, draws, len(p))).clip(0.001, 0.999)
    draws_p[1] = draws_p[1][:, ::-1]  # a chain on the other labelling
    return draws_p


def test_figure_is_written_deterministically(separated, tmp_path, rng):
    data, fit = separated
    ls = profile_landscape(data, fit.params)
    draws = fake_draws(rng, fit.params.p, 0.01)
    first = landscape_figure([ls], fit.runs, draws, tmp_path / "a.png")
    landscape_figure([ls], fit.runs, draws, tmp_path / "b.png")
    assert first == "a.png"
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    image = imread(tmp_path / "a.png")
    assert image.shape[1] == 1000  # a page's width: two panels, whole square and zoom


def test_figure_for_one_panel_and_for_three_pairs(tmp_path, rng):
    data = BinomialData.chapter()
    fit = fit_data(data, 2)
    ls = profile_landscape(data, fit.params)
    landscape_figure(ls, [run.path for run in fit.runs], None, tmp_path / "one.png")
    assert imread(tmp_path / "one.png").shape[1] == 650  # nothing to zoom on: one panel
    data3 = data_from(rng, 600, [0.3, 0.4, 0.3], [0.15, 0.5, 0.85])
    fit3 = fit_data(data3, 3)
    pairs = profile_landscapes(data3, fit3.params, grid=np.linspace(0.01, 0.99, 60))
    landscape_figure(pairs, fit3.runs, fake_draws(rng, fit3.params.p, 0.02), tmp_path / "k3.png")
    assert (tmp_path / "k3.png").stat().st_size > 10_000


# ---------------------------------------------------------------------- bad input
def test_bad_arguments_are_named(separated, tmp_path):
    data, fit = separated
    best = fit.params
    cases = [
        (lambda: profile_landscape([1, 2], best), "data must be an em.BinomialData"),
        (lambda: profile_landscape(data, (0.5, 0.5)), "best must be an em.MixtureParams"),
        (lambda: profile_landscape(data, MixtureParams([1.0], [0.5])), "K >= 2"),
        (lambda: profile_landscape(data, MixtureParams([0.5, 0.6], [0.2, 0.7])), "sum to 1"),
        (lambda: profile_landscape(data, best, pair=(0, 0)), "pair must be two different"),
        (lambda: profile_landscape(data, best, pair=(0, 2)), "pair must be two different"),
        (lambda: profile_landscape(data, best, pair=("0", "1")), "two component indices"),
        (lambda: profile_landscape(data, best, pair=(0, 0.5)), "two component indices"),
        (lambda: profile_landscape(data, best, pair=3), "two component indices"),
        (lambda: profile_landscape(data, best, grid=[0.0, 0.5]), "strictly inside"),
        (lambda: profile_landscape(data, best, grid=[0.5]), ">= 2 values"),
        (lambda: profile_landscape(data, best, tol=-1), "tol must be"),
        (lambda: profile_landscape(data, best, method="bfgs"), "method must be"),
        (lambda: profile_landscape(data, best, max_iter=0), "max_iter must be"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    ls = profile_landscape(data, best, grid=np.linspace(0.1, 0.9, 9))
    good = np.full((2, 5, 2), 0.5)
    figure_cases = [
        (lambda: landscape_figure([], fit.runs, good, tmp_path / "x.png"), "one or more"),
        (
            lambda: landscape_figure([ls], fit.runs, np.full((2, 5, 3), 0.5), tmp_path / "x.png"),
            r"draws_p must have shape \(chain, draw, 2\)",
        ),
        (
            lambda: landscape_figure(
                [ls], fit.runs, np.full((2, 5, 2), np.nan), tmp_path / "x.png"
            ),
            "finite",
        ),
        (
            lambda: landscape_figure(
                [ls], [MixtureParams([[1.0]], [[0.5]])], good, tmp_path / "x.png"
            ),
            r"runs\[0\]",
        ),
        (lambda: landscape_figure([ls], fit.runs, good, tmp_path / "no" / "x.png"), "no such"),
    ]
    for call, message in figure_cases:
        with pytest.raises(ValueError, match=message):
            call()
    # and well-formed input of the same shapes goes through
    assert landscape_figure([ls], fit.runs, good, tmp_path / "x.png") == "x.png"
    assert profile_landscape(data, best, pair=(np.int64(1), 0.0), grid=[0.2, 0.7]).pair == (1, 0)


def test_summary_is_plain_json(separated):
    data, fit = separated
    ls = profile_landscape(data, fit.params, grid=np.linspace(0.1, 0.9, 17))
    assert isinstance(ls, Landscape)
    summary = json.loads(json.dumps(ls.to_dict()))
    assert summary["pair"] == [0, 1] and summary["grid_size"] == 17
    assert summary["gap"] == ls.gap <= TOL
    assert summary["argmax"] == list(ls.argmax)
    assert summary["base"]["p"] == fit.params.p.tolist()
