"""Every finding on a planted case where it must come out true and one where it must not.

Hand-built analyses (tests/compare/planted.py): real EM, planted draws and mode searches,
no sampling, so each test runs in well under a second.
"""

import dataclasses
import re

import numpy as np
import pytest

from compare.conclusions import conclusions
from compare.report import render_html, render_markdown
from compare.sections import sections
from em import BinomialData, MixtureParams
from tests.compare.planted import build, draws_around, idata_with_stats
from tests.conftest import simulate


def codes(a):
    return {f.code for f in conclusions(a)}


@pytest.fixture(scope="module")
def separated_data():
    rng = np.random.default_rng(21)
    return BinomialData.from_sequences(simulate(rng, 300, 20, [0.4, 0.6], [0.2, 0.8]), 20)


@pytest.fixture(scope="module")
def separated(separated_data):
    return build(separated_data, 2)


@pytest.fixture(scope="module")
def chapter():
    rng = np.random.default_rng(3)
    piled = rng.normal(0.415, 0.05, size=(4, 300, 3))
    w = rng.dirichlet(np.ones(3), size=(4, 300))
    return build(BinomialData.chapter(), 3, draws=(w, piled), ordered=(w, np.sort(piled, -1)))


def test_separated_fit_agrees_and_is_identified(separated):
    c = codes(separated)
    assert {"agree", "em_converged", "no_label_switching", "ordering_separates"} <= c
    assert not c & {"collapsed", "not_identifiable", "labels_not_identified", "em_missed_mode"}
    assert separated.agreement.agree is True
    assert separated.identifiability.overdispersion.verdict is True
    coins = next(f.text for f in conclusions(separated) if f.code == "fitted_coins")
    assert re.search(r"coin 1: p = 0\.1\d+ \(89% interval 0\.1\d+-0\.2\d+\), weight 0\.4", coins)
    assert re.search(r"coin 2: p = 0\.[78]\d+ \(89% interval", coins)


def test_collapsed_fit_draws_no_label_verdict(chapter):
    c = codes(chapter)
    assert {"collapsed", "labels_not_identified", "ordering_cuts_a_mode", "agree"} <= c
    assert "label_switching" not in c and "no_label_switching" not in c
    assert chapter.labels.detected is None and chapter.labels.weights is None
    d = chapter.to_dict()
    assert d["label_switching"]["detected"] is None and d["label_switching"]["reason"]
    assert d["posterior"]["relabelled"] is None  # no per-component summary
    assert d["identifiability"]["collapsed"] is True
    assert d["identifiability"]["overdispersed"] is False  # no evidence, not proof
    assert any("no evidence of overdispersion" in s.lower() for s in d["conclusions"])


def test_em_not_converged_is_no_disagreement(separated_data):
    a = build(separated_data, 2, max_iter=2)
    assert a.agreement.status == "em_not_converged" and a.agreement.agree is None
    c = codes(a)
    assert {"em_not_converged", "agreement_no_verdict"} <= c
    assert not c & {"agree", "disagree", "em_missed_mode"}
    assert a.to_dict()["agreement"]["agree"] is None


@pytest.fixture(scope="module")
def three_clusters():
    """Three tight clusters for two components: two local maxima, 25 nats apart."""
    rng = np.random.default_rng(5)
    heads = simulate(rng, 600, 30, [0.35, 0.3, 0.35], [0.03, 0.5, 0.97])
    return BinomialData.from_sequences(heads, 30)


def test_a_missed_mode_is_reported_only_when_certified_and_higher(three_clusters):
    data = three_clusters
    high = MixtureParams([0.35, 0.65], [0.04, 0.75])  # near the higher maximum
    low_start = {"init_p": [0.24, 0.97], "init_weights": [0.65, 0.35]}
    stuck = build(data, 2, restarts=0, em_options=low_start, searches=[("random 1", high)])
    assert stuck.em.target.converged and len(stuck.em.target.optima) == 1
    assert stuck.agreement.status == "em_missed_mode" and stuck.agreement.agree is False
    assert stuck.agreement.missed_by > 20
    text = next(f.text for f in conclusions(stuck) if f.code == "em_missed_mode")
    assert "'random 1'" in text and "none of EM's 1 restarts reached it" in text
    found = build(data, 2, restarts=10, searches=[("random 1", high)])  # restarts find it
    assert found.agreement.status == "agree" and "em_missed_mode" not in codes(found)
    # a search that ends at the lower maximum is no evidence of a missed mode
    low = MixtureParams([0.65, 0.35], [0.24, 0.97])
    same = build(data, 2, restarts=0, em_options=low_start, searches=[("random 1", low)])
    assert same.agreement.status == "agree"


def test_an_uncertified_mode_is_no_missed_mode_and_no_disagreement(three_clusters):
    from compare.stages.agreement import agreement_stage
    from compare.stages.fits import MAPStage

    high = MixtureParams([0.35, 0.65], [0.04, 0.75])
    low_start = {"init_p": [0.24, 0.97], "init_weights": [0.65, 0.35]}
    stuck = build(three_clusters, 2, restarts=0, em_options=low_start, searches=[("r", high)])
    assert stuck.agreement.status == "em_missed_mode"  # the planted case, certified
    mode = stuck.map.modes[0]
    uncertified = dataclasses.replace(
        mode, polished=dataclasses.replace(mode.polished, converged=False)
    )
    agr = agreement_stage(three_clusters, stuck.em, MAPStage((uncertified,)), stuck.identifiability)
    assert agr.status == "map_not_converged" and agr.agree is None and agr.missed_by is None
    planted = dataclasses.replace(stuck, agreement=agr)
    c = codes(planted)
    assert "agreement_no_verdict" in c and "em_missed_mode" not in c and "disagree" not in c


def test_disagreement_on_parameters_between_modes_of_equal_height(separated):
    mode = separated.agreement.mode
    other = dataclasses.replace(
        mode.polished, params=MixtureParams(mode.polished.params.weights, [0.25, 0.8])
    )
    planted = dataclasses.replace(mode, polished=other)
    from compare.stages.agreement import agreement_stage
    from compare.stages.fits import MAPStage

    agr = agreement_stage(
        separated.data, separated.em, MAPStage((planted,)), separated.identifiability
    )
    assert agr.status == "disagree" and agr.agree is False
    assert not agr.best["checks"]["parameters"] and agr.best["checks"]["objective"]


def test_teicher_condition():
    data = BinomialData.from_sequences([0, 1, 2, 1, 2, 0, 2], 2)
    c = codes(build(data, 2))
    assert "not_identifiable" in c and "labels_not_identified" in c


def test_overdispersion_not_testable_with_one_flip_each():
    data = BinomialData.from_sequences([0, 1, 1, 0, 1, 1, 1, 0], 1)
    a = build(data, 1)
    assert a.identifiability.overdispersion.verdict is None
    assert a.to_dict()["identifiability"]["overdispersed"] is None
    assert any("not testable" in f.text for f in conclusions(a))


def test_between_chain_switching_is_seen(separated_data, separated):
    rng = np.random.default_rng(8)
    w, p = draws_around(rng, separated.em.target.params)
    w[2], p[2] = w[2][:, ::-1], p[2][:, ::-1]
    a = build(separated_data, 2, draws=(w, p))
    assert a.labels.detected is True and a.labels.switching["between_chains"]
    assert "label_switching" in codes(a)
    np.testing.assert_allclose(a.labels.p[2].mean(axis=0), a.labels.p[0].mean(axis=0), atol=0.01)


def test_unreliable_sampler_is_called_so(separated_data, separated):
    rng = np.random.default_rng(9)
    w, p = draws_around(rng, separated.em.target.params)
    div = np.zeros(p.shape[:2], bool)
    div[1, 10:15] = True
    bad = idata_with_stats(w, p, diverging=div, rng=rng)
    a = build(separated_data, 2, draws=(w, p), idata=bad)
    assert not a.health.exchangeable.reliable
    assert "exchangeable_sampler_unreliable" in codes(a)
    good = build(separated_data, 2, draws=(w, p), idata=idata_with_stats(w, p, rng=rng))
    assert good.health.exchangeable.divergences == 0
    assert "exchangeable_sampler_ok" in codes(good)


def test_markdown_and_html_render_the_same_conclusions(separated):
    secs = sections(separated, {})
    md = render_markdown(secs)
    html = render_html(secs, ".")
    for f in conclusions(separated):
        assert f.text in md
    assert html.count("<li>") == len(conclusions(separated))
    assert md.startswith("# EM against the posterior")


def test_markup_in_the_data_name_is_neutralised(separated_data):
    data = BinomialData.from_counts(
        separated_data.heads,
        separated_data.trials,
        separated_data.counts,
        source="<img src=x onerror=alert(1)> [x](javascript:y) *bold* `code` | pipe",
    )
    a = build(data, 2)
    md = render_markdown(sections(a, {}))
    title = md.splitlines()[0]
    for markup in (r"<img", r"\[x\]\(", r"\*bold\*", r"`code`", r"\| pipe"):
        assert not re.search(r"(?<!\\)" + markup, title), markup  # each one escaped
    assert "\\<img" in title
    html = render_html(sections(a, {}), ".")
    assert "<img src=x" not in html and "&lt;img src=x" in html


def test_which_coin_section(separated, chapter):
    secs = {s["title"]: s for s in sections(separated, {})}
    table = next(b for b in secs["Which coin"]["blocks"] if b[0] == "table")
    assert "EM P(coin 1)" in table[1] and "posterior P(coin 2)" in table[1]
    extreme = next(r for r in table[2] if r[0] == "0")  # 0 heads of 20: surely coin 1
    assert float(extreme[3]) > 0.95 and float(extreme[5]) > 0.95
    secs = {s["title"]: s for s in sections(chapter, {})}
    text = secs["Which coin"]["blocks"][0][1]
    assert "labels are not identified" in text and "same coin" in text
    table = next(b for b in secs["Which coin"]["blocks"] if b[0] == "table")
    values = [float(c) for row in table[2] for c in row[1:]]
    assert all(0.3 < x < 0.7 for x in values)  # one coin: any two sequences ~ as likely


def test_summary_table_is_in_results_json_as_rendered(separated, chapter):
    collapsed = chapter.health.to_dict()["summary"]  # labels not identified: no relabelling
    assert collapsed and {r["draws"] for r in collapsed} == {"ordered model"}
    rows = separated.health.to_dict()["summary"]
    assert {r["draws"] for r in rows} == {"relabelled", "ordered model"}
    for r in rows:
        assert {"parameter", "mean", "sd", "mcse_mean", "ess_bulk", "ess_tail", "r_hat"} <= set(r)
    md = render_markdown(sections(separated, {}))
    first = next(r for r in rows if r["draws"] == "relabelled")
    assert f"| relabelled | {first['parameter']} |" in md


def test_summary_rows_are_plain_json_numbers():
    import json

    from compare.stages.health import _plain

    row = _plain({"parameter": "w[0]", "mean": np.float64(1.0), "r_hat": np.nan, "mcse": None})
    assert row == {"parameter": "w[0]", "mean": 1.0, "r_hat": None, "mcse": None}
    json.dumps(row, allow_nan=False)
