"""Label matching and relabelling on draws whose answer is known (no sampling)."""

import itertools
import json
import math

import numpy as np
import pytest

from compare import labels
from compare.agreement import compare_fits, match_components, pmf_distance
from compare.diagnostics import chain_modes, overdispersion_test, rhat_ess
from compare.diagnostics import invariant_draws as diagnostics_invariant_draws
from compare.labels import (
    AMBIGUITY_NATS,
    analyse_labels,
    apply_permutations,
    coclustering,
    draw_responsibilities,
    hungarian_permutations,
    identification,
    invariant_draws,
    kl_match,
    ordering_check,
    pmf_draws,
    stephens_permutations,
    stephens_relabel,
    switching_summary,
    switching_verdict,
)
from em import BinomialData, MixtureParams, e_step, fit_data, mixture_pmf
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


# ---------------------------------------------------------------------------------------
# Labels that mean something (compare issue, item 3): planted draws, no sampling.
# ---------------------------------------------------------------------------------------
SEPARATED = ([0.2, 0.3, 0.5], [0.15, 0.5, 0.85])
CLOSE = ([0.7, 0.3], [0.40, 0.50])


def planted(rng, w, p, *, chains=4, draws=500, sd_p=0.02, conc=400):
    """Draws around (w, p) in one fixed labelling: p ~ N(p, sd_p), w ~ Dirichlet(conc w)."""
    pd = rng.normal(p, sd_p, size=(chains, draws, len(p))).clip(1e-3, 1 - 1e-3)
    wd = rng.dirichlet(np.asarray(w) * conc, size=(chains, draws))
    return wd, pd


def planted_case(rng, w, p, *, n_seq=300, trials=10, **kw):
    """Data simulated from (w, p) at N = n_seq, the draws, and (w, p) as the reference."""
    data = BinomialData.from_sequences(simulate(rng, n_seq, trials, w, p), trials)
    wd, pd = planted(rng, w, p, **kw)
    return data, wd, pd, MixtureParams(w, p)


def permute_chain(w, p, chain, perm, draws=slice(None)):
    w, p = w.copy(), p.copy()
    w[chain, draws], p[chain, draws] = w[chain, draws][..., perm], p[chain, draws][..., perm]
    return w, p


def test_matching_on_p_alone_is_sorting(rng):
    """The issue's point: Hungarian on p relabels every draw into the reference's p order."""
    p = rng.uniform(size=(2, 50, 3))
    for ref in (np.array([0.1, 0.5, 0.9]), np.array([0.9, 0.2, 0.5]), np.full(3, 0.415)):
        rel = apply_permutations(p, hungarian_permutations(p, ref))
        if np.ptp(ref) > 0:
            np.testing.assert_array_equal(rel[..., np.argsort(ref)], np.sort(p, axis=-1))
        else:  # three equal p: any permutation is as good, so the "match" says nothing
            np.testing.assert_array_equal(np.sort(rel, axis=-1), np.sort(p, axis=-1))


def test_kl_match_is_the_brute_force_minimum_and_margin(rng):
    data, w, p, ref = planted_case(rng, *SEPARATED, draws=20, sd_p=0.15, conc=5)
    match = kl_match(data, w, p, ref)
    q = e_step_resp(data, ref)
    np.testing.assert_array_equal(match.classification, q)
    c = data.counts[:, None].astype(float)
    for ch, d in itertools.product(range(4), range(20)):
        r = e_step_resp(data, MixtureParams(w[ch, d], p[ch, d]))
        perms = list(itertools.permutations(range(3)))
        kl = [float(np.sum(c * r[:, perm] * np.log(r[:, perm] / q))) for perm in perms]
        order = np.argsort(kl)
        assert list(match.permutations[ch, d]) == list(perms[order[0]])
        assert match.margin[ch, d] == pytest.approx(kl[order[1]] - kl[order[0]], abs=1e-8)
        for j in order[:2]:  # costs are cross-entropies: their differences are KL's
            diff = match.labelling_cost(perms[j])[ch, d] - match.chosen_cost()[ch, d]
            assert diff == pytest.approx(kl[j] - kl[order[0]], abs=1e-8)


def e_step_resp(data, params):
    return e_step(data, params).resp


def test_identification_says_yes_and_no(rng):
    data, _, _, ref = planted_case(rng, *SEPARATED)
    assert identification(data, ref).identified
    chapter = BinomialData.chapter()
    collapsed = identification(chapter, fit_data(chapter, 3, restarts=10, seed=0).params)
    assert not collapsed.identified and collapsed.collapsed
    assert collapsed.effective_components == 1 and "reduce to 1" in collapsed.reason
    short = BinomialData.from_sequences(simulate(rng, 300, 2, [0.5, 0.5], [0.1, 0.9]), 2)
    teicher = identification(short, MixtureParams([0.5, 0.5], [0.1, 0.9]))
    assert not teicher.identified and not teicher.teicher_condition and not teicher.collapsed
    empty = identification(data, MixtureParams([0.5, 0.5, 0.0], SEPARATED[1]))
    assert not empty.identified and empty.collapsed


def test_between_chain_switching_only(rng):
    data, w0, p0, ref = planted_case(rng, *SEPARATED)
    w, p = permute_chain(w0, p0, 1, [1, 0, 2])
    w, p = permute_chain(w, p, 2, [2, 1, 0])
    res = analyse_labels(data, w, p, ref)
    sw = res.switching
    assert res.identified and sw.distinguishable
    assert sw.detected and sw.between_chains and not sw.within_chains
    assert [c.modal_permutation for c in sw.chains] == [[0, 1, 2], [1, 0, 2], [2, 1, 0], [0, 1, 2]]
    assert all(c.off_modal_fraction == 0 and c.n_switches == 0 for c in sw.chains)
    np.testing.assert_array_equal(res.relabel(p), p0)  # undone, weights with the biases
    np.testing.assert_array_equal(res.relabel(w), w0)
    assert res.relabelling.converged
    # and where it must not trigger: the same draws unpermuted
    clean = switching_verdict(kl_match(data, w0, p0, ref))
    assert not clean.detected and not clean.between_chains


def test_one_chain_switching_midway(rng):
    data, w0, p0, ref = planted_case(rng, *SEPARATED)
    w, p = permute_chain(w0, p0, 1, [1, 0, 2], draws=slice(250, None))
    sw = switching_verdict(kl_match(data, w, p, ref))
    assert sw.detected and sw.within_chains and not sw.between_chains
    assert [c.within for c in sw.chains] == [False, True, False, False]
    assert sw.chains[1].off_modal_fraction == pytest.approx(0.5)
    assert sw.chains[1].n_switches == 1
    np.testing.assert_array_equal(analyse_labels(data, w, p, ref).relabel(p), p0)


def test_close_p_distinct_weights_is_no_switching(rng):
    """Labels fixed by construction; p-only matching reports switching, the KL match not."""
    data, w, p, ref = planted_case(rng, *CLOSE, n_seq=100, draws=1000, sd_p=0.05, conc=230)
    flipped = np.mean(p[..., 0] > p[..., 1], axis=1)  # 7-9% of each chain's draws
    assert np.all((flipped > 0.05) & (flipped < 0.12))
    p_only = switching_summary(hungarian_permutations(p, ref.p))
    assert p_only["within_chains"] and p_only["detected"]
    np.testing.assert_allclose([c["off_modal_fraction"] for c in p_only["chains"]], flipped)
    res = analyse_labels(data, w, p, ref)
    assert res.identified and not res.switching.detected
    assert all(c.modal_permutation == [0, 1] for c in res.switching.chains)
    assert max(c.off_modal_fraction for c in res.switching.chains) < labels.WITHIN_SHARE
    # the per-component summaries keep the weights where they were planted
    assert np.all(res.relabel(w)[..., 0].mean(axis=1) > 0.68)
    # and a real switch between these close components is seen
    ws, ps = permute_chain(w, p, 2, [1, 0], draws=slice(500, None))
    sw = switching_verdict(kl_match(data, ws, ps, ref))
    assert sw.within_chains and [c.within for c in sw.chains] == [False, False, True, False]
    assert sw.chains[2].off_modal_fraction == pytest.approx(0.5, abs=0.01)


def test_a_collapsed_fit_gets_no_matching_verdict(rng):
    data = BinomialData.chapter()
    fit = fit_data(data, 3, restarts=10, seed=0)
    w = rng.dirichlet([1.0, 1.0, 1.0], size=(4, 300))  # exchangeable draws on the ridge
    p = rng.normal(0.415, 0.05, size=(4, 300, 3))
    res = analyse_labels(data, w, p, fit.params)
    assert not res.identified and res.identification.collapsed
    assert res.match is None and res.switching is None and res.relabelling is None
    with pytest.raises(ValueError, match="labels are not identified: the 3 components reduce"):
        res.relabel(p)
    # label-invariant quantities are there, and flat: no pair of outcomes is set apart
    # (within 0.1 of the ridge's E[sum w_j^2] = 1/2; separated coins span 0 to 1, below)
    assert res.log_likelihood.shape == (4, 300) and res.pmf.shape == (4, 300, 11)
    assert np.all(np.abs(res.coclustering - 0.5) < 0.1)
    out = json.loads(json.dumps(res.to_dict()))
    assert out["identified"] is False and out["switching"] is None


def test_coclustering_separates_coins_where_they_differ(rng):
    data, w, p, ref = planted_case(rng, [0.5, 0.5], [0.1, 0.9], n_seq=400)
    cc = coclustering(data, w, p)
    low, high = data.heads <= 2, data.heads >= 8
    assert cc[np.ix_(low, low)].min() > 0.95 and cc[np.ix_(high, high)].min() > 0.95
    assert cc[np.ix_(low, high)].max() < 0.05
    np.testing.assert_allclose(cc, cc.T)


def test_coclustering_against_a_direct_computation(rng):
    data, w, p, _ = planted_case(rng, *SEPARATED, draws=30, sd_p=0.1, conc=10)
    r = draw_responsibilities(data, w, p).reshape(-1, data.n_outcomes, 3)
    direct = np.einsum("tmk,tnk->mn", r, r) / r.shape[0]
    np.testing.assert_allclose(coclustering(data, w, p), direct, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(coclustering(data, w, p, chunk_numbers=7), direct, rtol=1e-12)
    idx = np.array([4, 0, 7])
    np.testing.assert_allclose(
        coclustering(data, w, p, outcomes=idx), direct[np.ix_(idx, idx)], rtol=1e-12
    )


def test_symmetrising_the_upper_triangle_block_by_block(rng):
    full = rng.normal(size=(10, 10))
    full = full + full.T
    upper = np.asfortranarray(np.triu(full) + np.tril(rng.normal(size=(10, 10)), -1))
    for block in (3, 4, 10, 512):
        np.testing.assert_array_equal(labels._symmetrise_upper(upper.copy(order="F"), block), full)


def test_ambiguous_draws_are_not_switching(rng):
    """Draws between two labellings flip at random: counted only without the margin."""
    data, w, p, ref = planted_case(rng, [0.5, 0.5], [0.2, 0.8])
    eps = rng.normal(0, 1e-7, size=(150, 2))
    w[1, :150] = 0.5 + eps[:, :1] * np.array([1, -1])  # chain 1: 30% on the boundary
    p[1, :150] = 0.5 + eps
    amb = kl_match(data, w, p, ref)
    assert np.all(amb.margin[1, :150] < 0.1) and np.all(amb.margin[1, 150:] > AMBIGUITY_NATS)
    raw = np.mean(np.any(amb.permutations[1] != [0, 1], axis=-1))
    assert raw > 0.05  # about half of the ambiguous draws come out "swapped"
    assert switching_verdict(amb, margin=0.0).within_chains  # every draw counted
    sw = switching_verdict(amb)
    assert not sw.detected and sw.distinguishable
    assert sw.chains[1].decided_fraction == pytest.approx(0.7)
    assert sw.chains[1].off_modal_fraction == 0.0
    # a chain all on the boundary: the posterior does not tell the labels apart
    w[:], p[:] = 0.5 + rng.normal(0, 1e-7, size=(4, 500, 1)) * np.array([1, -1]), 0.5
    res = analyse_labels(data, w, p, ref)
    assert res.identification.identified and not res.identified
    assert not res.switching.distinguishable and "draws are decided" in res.reason()


def test_ordering_check_flags_a_cut_mode_only(rng):
    separated = np.sort(rng.normal([0.2, 0.5, 0.8], 0.03, size=(4, 500, 3)), axis=-1)
    ok = ordering_check(separated)
    assert not ok.cuts_through and max(ok.pressed_fraction) == 0.0
    folded = np.sort(rng.normal(0.415, 0.05, size=(4, 500, 3)), axis=-1)  # a collapsed mode
    cut = ordering_check(folded)
    assert cut.cuts_through and min(cut.pressed_fraction) > 0.2
    assert len(cut.scale) == 2 and cut.threshold == labels.PRESSED_SHARE
    # two modes 2 sd apart: cut; 5 sd apart: not (the boundary is about 2.8 sd)
    for delta, verdict in ((2.0, True), (5.0, False)):
        pair = np.sort(rng.normal([0.5, 0.5 + 0.02 * delta], 0.02, size=(4, 2000, 2)), axis=-1)
        assert ordering_check(pair).cuts_through is verdict
    assert not ordering_check(rng.uniform(size=(2, 10, 1))).cuts_through  # K = 1: no pair
    rounded = separated.copy()
    rounded[0, 0, 1] = rounded[0, 0, 0] - 1e-12  # a rounding-level decrease: a gap of 0
    assert ordering_check(rounded).pressed_fraction[0] == pytest.approx(1 / 2000)
    with pytest.raises(ValueError, match=r"p\[0, 3\] is not in increasing order"):
        bad = separated.copy()
        bad[0, 3] = bad[0, 3, ::-1]
        ordering_check(bad)


def test_stephens_relabel_in_chunks_equals_the_in_memory_algorithm(rng):
    heads = simulate(rng, 200, 12, [0.4, 0.6], [0.2, 0.8])
    data = BinomialData.from_sequences(heads, 12)
    w, p = fake_posterior(rng, draws=100)
    w[3], p[3] = w[3][:, ::-1].copy(), p[3][:, ::-1].copy()
    w[1, 50:], p[1, 50:] = w[1, 50:, ::-1].copy(), p[1, 50:, ::-1].copy()
    identity = np.broadcast_to(np.arange(2), (4, 100, 2)).copy()
    resp = draw_responsibilities(data, w, p)
    perms, sweeps = stephens_permutations(resp, data.counts, identity)
    for kw in ({}, {"chunk_numbers": 50, "cache_numbers": 0}, {"chunk_numbers": 50}):
        st = stephens_relabel(data, w, p, identity, **kw)
        np.testing.assert_array_equal(st.permutations, perms)
        assert st.sweeps == sweeps and st.converged
    rel = apply_permutations(p, perms)
    assert np.all(np.diff(np.sign(rel[..., 1] - rel[..., 0]).reshape(-1)) == 0)
    relabelled_resp = np.take_along_axis(resp, perms[:, :, None, :], axis=-1)
    np.testing.assert_allclose(st.classification, relabelled_resp.mean(axis=(0, 1)), rtol=1e-12)
    capped = stephens_relabel(data, w, p, identity, max_iter=1)
    assert capped.sweeps == 1 and not capped.converged


def test_responsibility_chunks_are_bounded(rng):
    data, w, p, _ = planted_case(rng, *SEPARATED, draws=40)
    per_draw = data.n_outcomes * 3
    chunks = labels._Responsibilities(data, w, p, chunk_numbers=5 * per_draw, cache_numbers=0)
    sizes = [r.size for _, r in chunks]
    assert max(sizes) == 5 * per_draw and sum(sizes) == 160 * per_draw
    assert chunks._cache is None


def test_invariant_draws_equal_the_loop_over_draws(rng):
    data = BinomialData.from_counts([0, 3, 5, 12], [10, 10, 12, 12], [3, 4, 2, 1])
    w, p = planted(rng, [0.3, 0.7], [0.3, 0.6], chains=2, draws=15, sd_p=0.1, conc=5)
    ours = invariant_draws(data, w, p, 10)
    theirs = diagnostics_invariant_draws(data, w, p, 10)
    np.testing.assert_allclose(ours["log_likelihood"], theirs["log_likelihood"], rtol=1e-13)
    np.testing.assert_allclose(ours["pmf"], theirs["pmf"], rtol=1e-12, atol=1e-15)
    small = invariant_draws(data, w, p, 10, chunk_numbers=3)
    np.testing.assert_allclose(small["log_likelihood"], ours["log_likelihood"], rtol=1e-14)
    np.testing.assert_allclose(small["pmf"], ours["pmf"], rtol=1e-13, atol=1e-16)
    assert invariant_draws(data, w, p)["pmf"].shape == (2, 15, 11)  # 7 of 10 sequences
    np.testing.assert_allclose(
        pmf_draws(w, p, 12)[1, 4], mixture_pmf(MixtureParams(w[1, 4], p[1, 4]), 12), rtol=1e-12
    )


def test_one_component_is_trivially_labelled(rng):
    data = BinomialData.from_sequences(rng.binomial(10, 0.3, size=50), 10)
    w, p = np.ones((2, 20, 1)), rng.uniform(0.2, 0.4, size=(2, 20, 1))
    res = analyse_labels(data, w, p, MixtureParams([1.0], [0.3]))
    assert res.identified and not res.switching.detected
    assert np.all(np.isinf(res.match.margin)) and res.coclustering.shape == (data.n_outcomes,) * 2
    np.testing.assert_allclose(res.coclustering, 1.0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda d, w, p, r: kl_match(d, w[..., :2], p, r), r"w and p must have one shape"),
        (lambda d, w, p, r: kl_match(d, w, p[0], r), r"p must have shape \(chain, draw, K\)"),
        (lambda d, w, p, r: kl_match(d, w, np.where(p > 0.8, np.nan, p), r), r"p\[0, 0, 2\]"),
        (lambda d, w, p, r: kl_match(d, w * 2, p, r), r"w\[0, 0\] sums to"),
        (lambda d, w, p, r: kl_match(d, w, p, MixtureParams([1.0], [0.5])), "K = 3"),
        (lambda d, w, p, r: kl_match(d, w, p, "EM"), "reference must have numeric weights"),
        (lambda d, w, p, r: kl_match(d, w, p, r, chunk_numbers=0), "chunk_numbers"),
        (lambda d, w, p, r: stephens_relabel(d, w, p, np.zeros(p.shape, int)), "not a perm"),
        (lambda d, w, p, r: stephens_relabel(d, w, p, w), "permutations must be integers"),
        (lambda d, w, p, r: switching_verdict(kl_match(d, w, p, r), margin=-1), "margin"),
        (lambda d, w, p, r: ordering_check(np.sort(p), threshold=2.0), "threshold"),
        (lambda d, w, p, r: coclustering(d, w, p, outcomes=[0, 99]), r"outcomes\[1\] = 99"),
        (lambda d, w, p, r: pmf_draws(w, p, -1), "trials must be an integer"),
        (lambda d, w, p, r: ordering_check(p[:, :1][:1, :1]), "at least 2 draws"),
    ],
)
def test_bad_input_is_a_value_error(rng, call, message):
    data, w, p, ref = planted_case(rng, *SEPARATED, chains=1, draws=3)
    p[0, 0] = [0.1, 0.5, 0.9]
    with pytest.raises(ValueError, match=message):
        call(data, w, p, ref)


def test_verdicts_are_json_ready(rng):
    data, w, p, ref = planted_case(rng, *SEPARATED, draws=50)
    out = json.loads(json.dumps(analyse_labels(data, w, p, ref).to_dict()))
    assert out["identified"] and out["switching"]["detected"] is False
    assert out["relabelling"]["changed_from_match"] == 0.0
    assert math.isclose(out["switching"]["margin_nats"], math.log(19))
    assert len(out["coclustering"]) == data.n_outcomes


def test_interim_names_call_the_new_functions(rng):
    """compare.stages.labels calls match_permutations and ordered_boundary_check."""
    data, w, p, ref = planted_case(rng, *CLOSE, n_seq=100, draws=200, sd_p=0.05, conc=230)
    np.testing.assert_array_equal(
        labels.match_permutations(data, w, p, ref), kl_match(data, w, p, ref).permutations
    )
    folded = np.sort(rng.normal(0.415, 0.05, size=(4, 300, 3)), axis=-1)
    for draws, verdict in ((folded, True), (np.sort(p, axis=-1) + [0.0, 0.3], False)):
        old = labels.ordered_boundary_check(draws)
        new = ordering_check(draws)
        assert old["cuts_through_a_mode"] is new.cuts_through is verdict
        assert old["pressed_share"] == new.pressed_fraction and old["threshold"] == 0.05
