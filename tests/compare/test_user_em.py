"""Bring your own EM: the claim, the distance to an optimum and the agreement, each planted."""

import json

import numpy as np
import pytest

from compare.conclusions import conclusions
from compare.stages.user_em import estimate_from, read_estimate, user_em_stage
from em import BinomialData, MixtureParams, fit_data, log_likelihood, run_em
from tests.compare.planted import build
from tests.conftest import simulate


@pytest.fixture(scope="module")
def base():
    rng = np.random.default_rng(21)
    data = BinomialData.from_sequences(simulate(rng, 300, 20, [0.4, 0.6], [0.2, 0.8]), 20)
    return build(data, 2)


def judge(a, weights, p, claimed=None):
    est = estimate_from(weights, p, claimed, 2, "test")
    return user_em_stage(a.data, est, a.options.prior, a.agreement, a.identifiability, a.labels)


def test_a_correct_estimate_and_claim(base):
    mle = fit_data(base.data, 2).params
    ll = float(log_likelihood(base.data, mle))
    u = judge(base, mle.weights, mle.p, ll)
    assert u.claim == "right" and u.agree is True
    assert abs(u.distance) < 1e-8 and u.optimum.converged
    assert u.in_intervals == {"p": [True, True], "weights": [True, True]}
    d = u.to_dict()
    for key in ("log_likelihood_claimed", "log_likelihood", "gap", "optimum", "agree"):
        assert key in d


def test_a_claim_without_the_binomial_coefficient_is_named(base):
    mle = fit_data(base.data, 2).params
    ll = float(log_likelihood(base.data, mle))
    u = judge(base, mle.weights, mle.p, ll - base.data._log_binom_coef)
    assert u.claim == "without the binomial coefficient"
    wrong = judge(base, mle.weights, mle.p, ll + 0.5)
    assert wrong.claim == "wrong"


def test_an_estimate_short_of_its_optimum_is_measured_and_does_not_agree(base):
    start = MixtureParams([0.5, 0.5], [0.45, 0.55])
    short = run_em(base.data, start, method="em", tol=0.0, max_iter=2).params
    u = judge(base, short.weights, short.p)
    assert u.claim == "none" and u.agree is False
    true_gap = fit_data(base.data, 2).log_likelihood - float(log_likelihood(base.data, short))
    assert u.distance == pytest.approx(true_gap, rel=1e-6)
    assert u.at_point.certificate.gap > 1e-6


def test_the_finding_reads_as_one_sentence(base):
    import dataclasses

    mle = fit_data(base.data, 2).params
    u = judge(base, mle.weights, mle.p, None)
    a = dataclasses.replace(base, user_em=u)
    text = next(f.text for f in conclusions(a) if f.code == "user_em")
    assert text.startswith("Your EM's estimate:") and "agrees" in text and text.endswith(".")
    assert a.to_dict()["user_em"]["agree"] is True


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not valid JSON"),
        ('{"weights": [0.5, 0.5]}', "expected an object with keys 'weights' and 'p'"),
        ('{"weights": [0.5, 0.6], "p": [0.2, 0.8]}', "weights must sum to 1"),
        ('{"weights": [0.5, 0.5], "p": [0.2, 1.8]}', r"p must lie in \[0, 1\]"),
        ('{"weights": [1.0], "p": [0.2]}', "weights must have 2 values"),
        ('{"weights": [0.5, 0.5], "p": [0.2, 0.8], "log_likelihood": "x"}', "must be a number"),
    ],
)
def test_bad_estimates_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "est.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        read_estimate(path, 2)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_an_estimate_file_round_trips(tmp_path):
    path = tmp_path / "est.json"
    path.write_text(json.dumps({"weights": [0.4, 0.6], "p": [0.2, 0.8], "log_likelihood": -1.5}))
    est = read_estimate(path, 2)
    assert est.claimed == -1.5 and est.params.p.tolist() == [0.2, 0.8]


def test_another_programs_fit_runs_in_a_child(tmp_path):
    """--em-result MODULE:FUNCTION: the callable runs like a student's em_step, isolated."""
    from compare.check import run_fit

    (tmp_path / "theirs.py").write_text(
        "import numpy as np\n"
        "def fit(heads, trials, n_components, seed):\n"
        "    return np.full(n_components, 1 / n_components), np.linspace(0.2, 0.8, n_components)\n"
        "def broken(heads, trials, n_components, seed):\n"
        "    raise RuntimeError('diverged')\n"
        "def shapes(heads, trials, n_components, seed):\n"
        "    return [1.0], [0.5, 0.5, 0.5]\n"
    )
    heads, trials = np.array([1, 2, 8, 9]), np.full(4, 10)
    w, p = run_fit(str(tmp_path / "theirs.py"), heads, trials, 2, 0, timeout=60)
    assert w.tolist() == [0.5, 0.5] and p.tolist() == [0.2, 0.8]
    with pytest.raises(ValueError, match="RuntimeError: diverged"):
        run_fit(f"{tmp_path / 'theirs.py'}:broken", heads, trials, 2, 0, timeout=60)
    with pytest.raises(ValueError, match="weights must be 2 numbers"):
        run_fit(f"{tmp_path / 'theirs.py'}:shapes", heads, trials, 2, 0, timeout=60)


def test_interval_check_keeps_each_weight_with_its_bias():
    # A heavier low-p coin: sorting weights on their own would pair 0.3 with p = 0.3.
    rng = np.random.default_rng(5)
    data = BinomialData.from_sequences(simulate(rng, 400, 20, [0.7, 0.3], [0.3, 0.75]), 20)
    a = build(data, 2)
    mle = fit_data(data, 2).params
    flipped = judge(a, mle.weights[::-1], mle.p[::-1])  # the same mixture, other labels
    assert flipped.in_intervals == {"p": [True, True], "weights": [True, True]}
    swapped = judge(a, mle.weights[::-1], mle.p)  # each bias with the other's weight
    assert swapped.in_intervals["p"] == [True, True]
    assert swapped.in_intervals["weights"] == [False, False]
