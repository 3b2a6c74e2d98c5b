"""AIC, BIC and ICL over a range of K (em side)."""

import json

import numpy as np
import pytest
from scipy.special import xlogy

from em import BinomialData, fit_data, information_criteria, parse_components, select_components
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
    from em import e_step

    resp = e_step(data, fit.params).resp
    entropy = -(data.counts @ xlogy(resp, resp).sum(axis=1))
    assert row["icl"] == pytest.approx(row["bic"] + 2 * entropy)
    one = information_criteria(fit_data(data, 1))
    assert one["entropy"] == 0.0 and one["icl"] == one["bic"]


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
