"""Tarone's overdispersion test: formula, independent score computation, size and power."""

import json
import math

import numpy as np
import pytest
from scipy.stats import betabinom, binom, norm

import compare.overdispersion as od
from compare.diagnostics import overdispersion_test as pearson_test
from compare.overdispersion import OverdispersionTest, overdispersion_test
from compare.settings import ALPHA
from em import BinomialData

# Tarone.test (R, Ben O'Neill) documents this example: z = 2.5988, proportion 0.4359756.
R_TRIALS = [30, 32, 40, 28, 29, 35, 30, 34, 31, 39]
R_HEADS = [9, 10, 22, 15, 8, 19, 16, 19, 15, 10]


def _issue_trials(n_seq: int) -> np.ndarray:
    """The issue's design: 80% of sequences with 1 flip, 20% with 40."""
    return np.r_[np.ones(n_seq * 4 // 5, dtype=int), np.full(n_seq - n_seq * 4 // 5, 40)]


def _tarone_by_hand(heads, trials) -> tuple[float, float, float]:
    """Tarone's (1979) S and Z written out over sequences, as the paper states them."""
    y, n = np.asarray(heads, float), np.asarray(trials, float)
    p = y.sum() / n.sum()
    s = sum((yi - ni * p) ** 2 for yi, ni in zip(y, n, strict=True)) / (p * (1 - p)) - n.sum()
    return p, s, s / math.sqrt(2 * sum(ni * (ni - 1) for ni in n))


# ---------------------------------------------------------------- the statistic
def test_matches_the_papers_formula_and_a_published_example():
    data = BinomialData.from_sequences(R_HEADS, R_TRIALS)
    res = overdispersion_test(data)
    p, s, z = _tarone_by_hand(R_HEADS, R_TRIALS)
    assert res.p_hat == pytest.approx(p, rel=1e-14) == pytest.approx(0.4359756, abs=1e-7)
    assert res.statistic == pytest.approx(s, rel=1e-12)
    assert res.z == pytest.approx(z, rel=1e-12) == pytest.approx(2.5988, abs=1e-4)
    # R's Tarone.test prints the two-sided 0.009355; the test is one-sided (large Z).
    assert res.p_value_normal == pytest.approx(0.009355 / 2, rel=1e-3)
    assert res.verdict is True and res.p_value <= ALPHA


def _bb_score_parts(y: int, n: int, p: float, h: float = 1e-4) -> tuple[float, float]:
    """d/d theta and d/dp of scipy's beta-binomial log pmf at theta = 0 (finite differences).

    The beta-binomial with mean p and a = p / theta, b = (1 - p) / theta tends to the
    binomial as theta -> 0; second-order one-sided differences in theta.
    """

    def f(t):
        return binom.logpmf(y, n, p) if t == 0 else betabinom.logpmf(y, n, p / t, (1 - p) / t)

    d_theta = (-3 * f(0) + 4 * f(h) - f(2 * h)) / (2 * h)
    d_p = (binom.logpmf(y, n, p + 1e-6) - binom.logpmf(y, n, p - 1e-6)) / 2e-6
    return d_theta, d_p


def test_z_is_the_beta_binomial_score_statistic():
    """Score and efficient information computed from scipy's beta-binomial, not Tarone's S."""
    rng = np.random.default_rng(np.random.SeedSequence(11))
    trials = rng.integers(1, 16, size=25)
    heads = rng.binomial(trials, 0.35)
    p = heads.sum() / trials.sum()
    score = sum(_bb_score_parts(y, n, p)[0] for y, n in zip(heads, trials, strict=True))
    # Expected information under Binomial(n_i, p), by summing over every outcome.
    i_tt = i_tp = i_pp = 0.0
    for n in trials:
        for y in range(n + 1):
            u_t, u_p = _bb_score_parts(y, n, p)
            w = binom.pmf(y, n, p)
            i_tt, i_tp, i_pp = i_tt + w * u_t**2, i_tp + w * u_t * u_p, i_pp + w * u_p**2
    z = score / math.sqrt(i_tt - i_tp**2 / i_pp)
    res = overdispersion_test(BinomialData.from_sequences(heads, trials))
    assert res.statistic / 2 == pytest.approx(score, rel=1e-5)
    assert res.z == pytest.approx(z, rel=1e-5)


def test_pearson_cannot_reject_bernoulli_rows_tarone_ignores_them():
    """One flip per sequence: Pearson's X^2 is exactly N (the issue); Tarone calls it untestable."""
    heads = np.r_[np.zeros(30, int), np.ones(30, int)]
    data = BinomialData.from_sequences(heads, 1)
    assert pearson_test(data)["statistic"] == pytest.approx(60)
    res = overdispersion_test(data)
    assert not res.testable and res.verdict is None and res.z is None


# ---------------------------------------------------------------- verdicts and wording
#: One flip each from two very different coins (p = 0.05 and 0.95): still not testable.
BERNOULLI_TWO_COINS = np.random.default_rng(0).binomial(1, np.repeat([0.05, 0.95], 50))


@pytest.mark.parametrize(
    ("heads", "trials", "words"),
    [
        (BERNOULLI_TWO_COINS, 1, "one flip"),
        ([0, 0, 0], [5, 7, 2], "every flip is tails (p_hat = 0)"),
        ([5, 7, 2], [5, 7, 2], "every flip is heads (p_hat = 1)"),
        ([3], 10, "one sequence"),
    ],
)
def test_not_testable(heads, trials, words):
    res = overdispersion_test(BinomialData.from_sequences(heads, trials))
    assert not res.testable and res.verdict is None and words in res.reason
    assert res.text.startswith("overdispersion is not testable here: ")
    out = res.to_dict()
    assert out["overdispersed"] is None and out["p_value"] is None and out["z"] is None
    json.dumps(out, allow_nan=False)


@pytest.mark.parametrize(
    ("heads", "trials"),
    [([1, 3], [1, 10]), ([0, 1, 1, 0, 30], [1, 1, 1, 1, 40]), ([0, 10], [10, 10])],
)
def test_testable_edges(heads, trials):
    """Mostly Bernoulli rows with one longer sequence, or two sequences, are testable."""
    res = overdispersion_test(BinomialData.from_sequences(heads, trials))
    assert res.testable and res.reason is None and res.verdict in (True, False)
    assert 0 < res.p_value <= 1 and math.isfinite(res.z)


def test_evidence_and_no_evidence_wording():
    chapter = overdispersion_test(BinomialData.chapter())
    assert chapter.verdict is False and chapter.p_value > 0.5
    assert chapter.text.startswith("no evidence of overdispersion relative to one binomial (")
    assert f"p = {chapter.p_value:.3g})" in chapter.text and "not proof" in chapter.text
    rng = np.random.default_rng(np.random.SeedSequence(3))
    coin = rng.integers(0, 2, size=200)
    two = BinomialData.from_sequences(rng.binomial(10, np.where(coin, 0.2, 0.8)), 10)
    res = overdispersion_test(two)
    assert res.verdict is True and res.exceedances == 0
    assert res.text.startswith("evidence of overdispersion relative to one binomial (")
    assert f"p <= {1 / (res.draws + 1):.2g})" in res.text
    for r in (chapter, res):
        out = r.to_dict()
        assert out["overdispersed"] is r.verdict and out["text"] == r.text
        assert json.loads(json.dumps(out, allow_nan=False)) == out
        assert all(isinstance(v, (str, int, float, bool, type(None))) for v in out.values())


def test_level_is_inclusive_and_read_from_settings():
    data = BinomialData.from_sequences(R_HEADS, R_TRIALS)
    res = overdispersion_test(data)
    assert res.alpha == ALPHA
    assert overdispersion_test(data, alpha=res.p_value).verdict is True
    assert overdispersion_test(data, alpha=res.p_value * 0.999).verdict is False


def test_same_seed_same_numbers_other_seed_other_draws():
    data = BinomialData.from_sequences(R_HEADS, R_TRIALS)
    a, b = overdispersion_test(data, seed=5), overdispersion_test(data, seed=5)
    assert a == b and a.seed == 5
    assert overdispersion_test(data, seed=6).exceedances != a.exceedances


def test_bootstrap_agrees_with_the_normal_tail_where_that_is_accurate():
    """Many long sequences: Z is close to N(0, 1), so both p-values must nearly agree."""
    rng = np.random.default_rng(np.random.SeedSequence(8))
    trials = rng.integers(20, 41, size=3000)
    coin = rng.random(3000) < 0.5
    data = BinomialData.from_sequences(rng.binomial(trials, np.where(coin, 0.4, 0.43)), trials)
    res = overdispersion_test(data, draws=9999)  # Monte Carlo error about 0.005
    assert 0.02 < res.p_value_normal < 0.98
    assert res.p_value == pytest.approx(res.p_value_normal, abs=0.03)


def test_blocks_of_draws_give_the_same_draws(monkeypatch):
    """One group of trials: splitting the draws into blocks does not change the stream."""
    rng = np.random.default_rng(np.random.SeedSequence(9))
    data = BinomialData.from_sequences(rng.binomial(30, 0.4, size=25), 30)
    whole = overdispersion_test(data)
    monkeypatch.setattr(od, "_BLOCK", 25 * 7)  # 7 draws per block
    assert overdispersion_test(data) == whole


@pytest.mark.parametrize(
    "trials",
    [
        np.full(100, 2),  # 100 sequences > 3 outcomes: drawn as outcome counts
        np.r_[np.full(10, 30), np.full(3, 7)],  # few long sequences: drawn one by one
        _issue_trials(50),  # both
    ],
)
def test_bootstrap_draws_match_a_direct_simulation(trials):
    """The grouped, centred bootstrap statistic against sequence-by-sequence draws."""
    data = BinomialData.from_sequences(np.zeros(trials.size, dtype=int), trials)
    got = od._bootstrap_x(data, 0.3, 20000, 0)
    y = np.random.default_rng(1).binomial(trials, 0.3, size=(20000, trials.size))
    p = y.sum(axis=1, keepdims=True) / trials.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        want = ((y - trials * p) ** 2).sum(axis=1) / (p * (1 - p))[:, 0]
    want = want[(p[:, 0] > 0) & (p[:, 0] < 1)]
    got = got[np.isfinite(got)]
    se = math.hypot(got.std() / math.sqrt(got.size), want.std() / math.sqrt(want.size))
    assert abs(got.mean() - want.mean()) < 4 * se
    assert np.quantile(got, 0.95) == pytest.approx(np.quantile(want, 0.95), rel=0.03)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 0}, "alpha must be a number in (0, 1), got 0"),
        ({"alpha": 1.5}, "alpha must be a number in (0, 1), got 1.5"),
        ({"alpha": float("nan")}, "alpha must be a number in (0, 1), got nan"),
        ({"alpha": "x"}, "alpha must be a number in (0, 1), got 'x'"),
        ({"alpha": True}, "alpha must be a number in (0, 1), got True"),
        ({"draws": 18}, "draws must be an integer >= 19, got 18"),
        ({"draws": 98, "alpha": 0.01}, "draws must be an integer >= 99, got 98"),
        ({"draws": 2.5}, "draws must be an integer >= 19, got 2.5"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"seed": "a"}, "seed must be an integer >= 0, got 'a'"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, message):
    with pytest.raises(ValueError) as err:
        overdispersion_test(BinomialData.chapter(), **kwargs)
    assert str(err.value) == message


def test_bad_data_is_a_value_error():
    with pytest.raises(ValueError, match="data must be an em.BinomialData, got list"):
        overdispersion_test([1, 2, 3])
    assert overdispersion_test(BinomialData.chapter(), draws=19).draws == 19  # the least


# ---------------------------------------------------------------- size and power
def _rates(trials, weights, p, replicates: int, key: int, draws: int = 199) -> dict:
    """Share of simulated data sets each test rejects at ALPHA; every draw seeded."""
    rng = np.random.default_rng(np.random.SeedSequence(2026, spawn_key=(key,)))
    trials = np.asarray(trials)
    hits = {"bootstrap": 0, "normal": 0, "pearson": 0}
    for r in range(replicates):
        coin = rng.choice(len(weights), size=trials.size, p=weights)
        data = BinomialData.from_sequences(rng.binomial(trials, np.asarray(p)[coin]), trials)
        res = overdispersion_test(data, draws=draws, seed=r)
        assert res.testable
        hits["bootstrap"] += res.verdict
        hits["normal"] += res.p_value_normal < ALPHA
        hits["pearson"] += pearson_test(data)["overdispersed"]
    return {name: count / replicates for name, count in hits.items()}


MIXED_5_30 = np.random.default_rng(np.random.SeedSequence(7)).integers(5, 31, size=50)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("key", "trials", "p"),
    [
        (0, _issue_trials(200), 0.3),  # the issue: 80% one flip, 20% forty
        (1, _issue_trials(20), 0.3),
        (2, np.full(20, 10), 0.415),  # the chapter's design
        (3, MIXED_5_30, 0.3),
        (4, np.full(5, 10), 0.3),  # small N
        (5, np.r_[np.ones(18, dtype=int), 40, 40], 0.3),  # two informative sequences
        (6, np.full(200, 2), 0.05),  # thin: about 20 heads in all
    ],
)
def test_size_holds_when_trials_vary(key, trials, p):
    rates = _rates(trials, [1.0], [p], 1500, key)
    assert 0.03 <= rates["bootstrap"] <= 0.07, rates


@pytest.mark.slow
def test_size_check_catches_a_test_that_misses_it():
    """The same check fails Pearson's test on the issue's design and Tarone's normal tail
    where two sequences carry all the information."""
    assert _rates(_issue_trials(200), [1.0], [0.3], 1500, 0)["pearson"] < 0.03
    assert _rates(np.r_[np.ones(18, dtype=int), 40, 40], [1.0], [0.3], 1500, 5)["normal"] < 0.03


@pytest.mark.slow
def test_power_on_the_issues_example():
    """Two coins p = 0.3 / 0.4, 200 sequences, 80% of one flip: Pearson about 0.11."""
    rates = _rates(_issue_trials(200), [0.5, 0.5], [0.3, 0.4], 400, 10)
    assert rates["bootstrap"] > 0.35 and rates["pearson"] < 0.2, rates


def test_result_type():
    res = overdispersion_test(BinomialData.chapter())
    assert isinstance(res, OverdispersionTest)
    with pytest.raises(AttributeError):
        res.z = 0.0  # frozen
    assert norm.sf(res.z) == res.p_value_normal
