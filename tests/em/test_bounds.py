"""How many components the data allow: K <= max(distinct outcomes, 10), within memory."""

import time

import pytest

import em._validation as v
from em import BinomialData, fit, fit_data
from em.cli import main


def test_k_up_to_ten_works_above_the_distinct_outcomes():
    """K > distinct outcomes is the documented, legitimate case: kept for small K."""
    data = BinomialData.from_sequences([2, 2, 7], 10)  # 2 distinct outcomes
    res = fit_data(data, 10, restarts=2)
    assert {w["code"] for w in res.warnings} >= {"more_components_than_outcomes", "collapsed"}
    with pytest.raises(ValueError, match="n_components must be at most 10 for these data, got 11"):
        fit_data(data, 11)


def test_k_up_to_the_distinct_outcomes_when_there_are_more_than_ten():
    data = BinomialData.from_sequences(list(range(13)), 12)  # 13 distinct outcomes
    assert v.check_n_components(13, data) == 13
    with pytest.raises(ValueError, match="at most 13 for these data, got 14 .*13 distinct"):
        fit_data(data, 14)


def test_absurd_k_is_refused_at_once():
    t0 = time.perf_counter()
    for k in (10**6, 10**12):
        with pytest.raises(ValueError, match=f"n_components must be at most 10.*got {k}"):
            fit([1, 2, 3], 10, k)
    assert time.perf_counter() - t0 < 1.0


def test_k_within_the_data_but_past_the_memory_is_refused(monkeypatch):
    data = BinomialData.from_sequences(list(range(101)), 100)  # 101 distinct outcomes
    monkeypatch.setattr(v, "memory_bytes", lambda: v.BYTES_PER_CELL * 50 * 101)
    assert v.check_n_components(50, data) == 50
    with pytest.raises(ValueError, match="n_components = 51 with 101 distinct outcomes needs"):
        v.check_n_components(51, data)
    monkeypatch.setattr(v, "memory_bytes", lambda: None)  # unknown: no memory bound
    assert v.check_n_components(101, data) == 101


def test_without_data_only_k_itself_is_checked():
    assert v.check_n_components(10**6) == 10**6
    with pytest.raises(ValueError, match="n_components must be an integer >= 1, got 0"):
        v.check_n_components(0)


@pytest.mark.parametrize(
    ("components", "message"),
    [
        ("1000000", "--components must be at most 10 for these data, got 1000000"),
        ("1-12", "--components must be at most 10 for these data, got 12"),
    ],
)
def test_cli_names_the_flag(capsys, components, message):
    assert main(["fit", "chapter", "--components", components]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"error: {message} (the larger of their 5 distinct")
    assert err.count("\n") == 1
