"""AIC, BIC and ICL over a range of K (em side)."""

import json

import numpy as np
import pytest
from scipy.special import xlogy
from scipy.stats import binom

from em import (
    BinomialData,
    fit_data,
    information_criteria,
    parse_components,
    reduce_params,
    select_components,
)
from em.cli import main
from tests.conftest import simulate


def test_parse_components():
    assert parse_components("3") == [3]
    assert parse_components("1-4") == [1, 2, 3, 4]
    assert parse_components(" 2 - 2 ") == [2]
    for bad in ("0", "4-1", "0-3", "x", "1-", "2.5"):
        with pytest.raises(ValueError, match="--components"):
            parse_components(bad)


def test_criteria_formulas():
    data = BinomialData.chapter()
    fit = fit_data(data, 2)
    row = information_criteria(fit)
    ll, n = fit.log_likelihood, 20
    assert row["n_parameters"] == 3  # 2K - 1, not 2K or 2K + 1
    assert row["aic"] == pytest.approx(-2 * ll + 6)
    assert row["bic"] == pytest.approx(-2 * ll + 3 * np.log(n))
    # The chapter's data collapse onto one coin: ICL is that of the reduced fit (EN = 0).
    assert fit.collapsed and row["effective_components"] == 1
    assert row["entropy"] == 0.0 and row["icl"] == row["bic"]
    one = information_criteria(fit_data(data, 1))
    assert one["entropy"] == 0.0 and one["icl"] == one["bic"]


def _entropy_by_hand(heads, trials, weights, p) -> float:
    """-sum_i sum_j r_ij log r_ij over sequences, from scipy's binomial pmf."""
    h, n = np.asarray(heads)[:, None], np.asarray(trials).reshape(-1, 1)
    joint = np.asarray(weights) * binom.pmf(h, n, np.asarray(p))
    resp = joint / joint.sum(axis=1, keepdims=True)
    return float(-np.sum(xlogy(resp, resp)))


def test_icl_entropy_on_a_fit_that_does_not_collapse():
    rng = np.random.default_rng(np.random.SeedSequence(4))
    heads = simulate(rng, 300, 10, [0.4, 0.6], [0.25, 0.7])
    fit = fit_data(BinomialData.from_sequences(heads, 10), 2)
    row = information_criteria(fit)
    assert not fit.collapsed and row["effective_components"] == 2
    entropy = _entropy_by_hand(heads, 10, fit.weights, fit.p)
    assert entropy > 10  # overlapping coins: the entropy term matters
    assert row["entropy"] == pytest.approx(entropy, rel=1e-10)
    assert row["icl"] == pytest.approx(row["bic"] + 2 * entropy, rel=1e-12)


def test_icl_is_the_same_on_every_point_of_the_ridge():
    """The chapter's data with K = 3 from different seeds: one coin, different weight splits."""
    data = BinomialData.chapter()
    fits = [fit_data(data, 3, seed=s) for s in range(6)]
    weights = np.array([np.sort(f.weights) for f in fits])
    assert all(f.collapsed for f in fits) and np.ptp(weights[:, -1]) > 0.2
    raw = [_entropy_by_hand(*data.expand(), f.weights, f.p) for f in fits]  # what ICL used to take
    assert np.ptp(raw) > 5  # 93.2 to 115.4 in ICL before
    rows = [information_criteria(f) for f in fits]
    assert {r["effective_components"] for r in rows} == {1}
    assert all(r["entropy"] == 0.0 and r["n_parameters"] == 5 for r in rows)
    assert np.ptp([r["icl"] for r in rows]) < 1e-9
    assert rows[0]["icl"] == pytest.approx(85.28387303275, abs=1e-9)


def test_icl_of_a_partial_collapse_is_that_of_the_merged_fit():
    """Two coins fitted with K = 3: two components tie with weights split differently."""
    data = BinomialData.from_counts([1, 2, 8, 9], 10, [20, 20, 20, 20])
    fits = [fit_data(data, 3, seed=s) for s in range(4)]
    assert all(f.optima[0].reduced.n_components == 2 for f in fits)
    assert np.ptp([np.sort(f.weights)[0] for f in fits]) > 0.05
    rows = [information_criteria(f) for f in fits]
    two = fit_data(data, 2)
    entropy = _entropy_by_hand(*data.expand(), two.weights, two.p)
    for row in rows:
        assert row["effective_components"] == 2 and row["n_parameters"] == 5
        assert row["entropy"] == pytest.approx(entropy, rel=1e-6)
        assert row["icl"] == pytest.approx(rows[0]["icl"], abs=1e-7)
        assert row["icl"] == pytest.approx(row["bic"] + 2 * row["entropy"], rel=1e-12)


def test_icl_of_an_unconverged_fit_uses_its_reduction():
    """No run converged (no optimum): the estimate itself is reduced."""
    data = BinomialData.chapter()
    fit = fit_data(data, 3, max_iter=3, restarts=2)
    assert not fit.converged and fit.optima == ()
    reduced = reduce_params(data, fit.params)
    row = information_criteria(fit)
    assert row["effective_components"] == reduced.n_components
    assert row["entropy"] == pytest.approx(
        _entropy_by_hand(*data.expand(), reduced.weights, reduced.p), rel=1e-10, abs=1e-12
    )


def test_two_separated_coins_are_preferred():
    rng = np.random.default_rng(4)
    data = BinomialData.from_sequences(simulate(rng, 400, 10, [0.5, 0.5], [0.15, 0.75]), 10)
    table, preferred, fits = select_components(data, [1, 2, 3, 4], restarts=5)
    assert preferred == {"aic": 2, "bic": 2, "icl": 2}
    assert [row["k"] for row in table] == [1, 2, 3, 4] and len(fits) == 4


def test_cli_range(capsys):
    assert main(["fit", "chapter", "--components", "1-3"]) == 0
    out = capsys.readouterr().out
    assert "preferred (lowest): AIC K = 1, BIC K = 1, ICL K = 1" in out
    assert main(["fit", "chapter", "--components", "1-2", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert [r["k"] for r in res["model_selection"]] == [1, 2] and len(res["fits"]) == 2
    assert set(res["preferred"]) == {"aic", "bic", "icl"}
    assert main(["fit", "chapter", "--components", "1-3", "--init-p", "0.5"]) == 2
    assert "--init-p needs a single --components K" in capsys.readouterr().err


def test_a_huge_range_is_refused_before_it_is_built():
    with pytest.raises(ValueError, match="at most 30 values of K"):
        parse_components("1-1000000000000")
    assert parse_components("2-31") == list(range(2, 32))
