"""Label matching and relabelling on draws whose answer is known (no sampling)."""

import numpy as np
import pytest

from compare.agreement import compare_fits, match_components, pmf_distance
from compare.diagnostics import chain_modes, overdispersion_test, rhat_ess
from compare.labels import (
    apply_permutations,
    draw_responsibilities,
    hungarian_permutations,
    stephens_permutations,
    switching_summary,
)
from em import BinomialData, MixtureParams
from tests.conftest import simulate


def fake_posterior(rng, chains=4, draws=300, p=(0.2, 0.8), w=(0.4, 0.6), sd=0.02):
    pd = rng.normal(p, sd, size=(chains, draws, len(p))).clip(0.001, 0.999)
    wd = rng.dirichlet(np.asarray(w) * 400, size=(chains, draws))
    return wd, pd


def test_a_planted_swap_between_chains_is_detected_and_undone(rng):
    w, p = fake_posterior(rng)
    sw_w, sw_p = w.copy(), p.copy()
    sw_w[2], sw_p[2] = w[2][:, ::-1], p[2][:, ::-1]  # chain 2 with its labels swapped
    perms = hungarian_permutations(sw_p, np.array([0.2, 0.8]))
    summary = switching_summary(perms)
    assert summary["detected"] and summary["between_chains"] and not summary["within_chains"]
    assert summary["chains"][2]["non_identity_fraction"] == 1.0
    assert all(summary["chains"][c]["non_identity_fraction"] == 0.0 for c in (0, 1, 3))
    np.testing.assert_array_equal(apply_permutations(sw_p, perms), p)
    np.testing.assert_array_equal(apply_permutations(sw_w, perms), w)  # weights follow p
    # the raw chains disagree, the relabelled ones do not
    raw = rhat_ess({"p": sw_p})["p"]["max_rhat"]
    fixed = rhat_ess({"p": apply_permutations(sw_p, perms)})["p"]["max_rhat"]
    assert raw > 1.5 and fixed < 1.01


def test_a_planted_swap_within_a_chain_is_detected(rng):
    w, p = fake_posterior(rng)
    p = p.copy()
    p[1, 150:] = p[1, 150:, ::-1]  # chain 1 switches half-way
    summary = switching_summary(hungarian_permutations(p, np.array([0.2, 0.8])))
    assert summary["within_chains"] and summary["detected"]
    assert summary["chains"][1]["off_modal_fraction"] == pytest.approx(0.5)


def test_no_switching_when_labels_hold(rng):
    _, p = fake_posterior(rng)
    summary = switching_summary(hungarian_permutations(p, np.array([0.2, 0.8])))
    assert not summary["detected"]


def test_stephens_fixes_a_swap_hungarian_was_not_given(rng):
    """Started from identity permutations, the KL algorithm finds the swapped chain."""
    heads = simulate(rng, 200, 12, [0.4, 0.6], [0.2, 0.8])
    data = BinomialData.from_sequences(heads, 12)
    w, p = fake_posterior(rng, draws=100)
    w[3], p[3] = w[3][:, ::-1].copy(), p[3][:, ::-1].copy()
    resp = draw_responsibilities(data, w, p)
    assert resp.shape == (4, 100, data.n_outcomes, 2)
    identity = np.broadcast_to(np.arange(2), (4, 100, 2)).copy()
    perms, sweeps = stephens_permutations(resp, data.counts, identity)
    relabelled = apply_permutations(p, perms)
    # one consistent labelling across chains (which one is arbitrary)
    assert np.all(np.diff(np.sign(relabelled[..., 1] - relabelled[..., 0]).reshape(-1)) == 0)
    assert sweeps >= 2


def test_chain_modes_cluster_chains(rng):
    w, p = fake_posterior(rng)
    assert chain_modes(w, p)["n_modes"] == 1
    p2 = p.copy()
    p2[3] = rng.normal((0.5, 0.9), 0.02, size=(300, 2))
    modes = chain_modes(w, p2)
    assert modes["n_modes"] == 2 and modes["chain_mode"] == [0, 0, 0, 1]


def test_overdispersion_test_on_known_cases(rng):
    one_coin = BinomialData.from_sequences(rng.binomial(10, 0.4, size=2000), 10)
    two_coins = BinomialData.from_sequences(simulate(rng, 2000, 10, [0.5, 0.5], [0.2, 0.7]), 10)
    assert not overdispersion_test(one_coin)["overdispersed"]
    res = overdispersion_test(two_coins)
    assert res["overdispersed"] and res["p_value"] < 1e-10 and res["dispersion_ratio"] > 2
    chapter = overdispersion_test(BinomialData.chapter())
    assert chapter["dispersion_ratio"] == pytest.approx(0.836, abs=1e-3)


def test_agreement_verdicts():
    a = MixtureParams([0.4, 0.6], [0.2, 0.8])
    b = MixtureParams([0.6, 0.4], [0.8, 0.2])  # the same mixture, labels swapped
    assert match_components(a.p, b.p).tolist() == [1, 0]
    assert pmf_distance(a, b, [10], [5])["max"] == pytest.approx(0.0, abs=1e-15)
    same = compare_fits(
        a, -10.0, -11.0, b, -10.0, -11.0, trials=[10], counts=[5], identifiable=True
    )
    assert same["agree"] and same["max_abs_p_difference"] == 0.0
    off = MixtureParams([0.45, 0.55], [0.2, 0.8])
    diff = compare_fits(
        a, -10.0, -11.0, off, -10.00001, -11.0, trials=[10], counts=[5], identifiable=True
    )
    assert not diff["agree"] and not diff["checks"]["parameters"]
    # the same numbers, judged as a non-identifiable fit: parameters are not judged
    lenient = compare_fits(
        a, -10.0, -11.0, off, -10.00001, -11.0, trials=[10], counts=[5], identifiable=False
    )
    assert lenient["judged_on"] == ["objective", "total_variation"]
    assert lenient["agree"] == (lenient["total_variation"]["max"] <= 1e-3)
