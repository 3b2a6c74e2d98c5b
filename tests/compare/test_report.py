"""The whole report on cases whose answer is known; reproducibility; safety; CLI errors."""

import json

import numpy as np
import pytest

import compare.report as report_mod
from compare.cli import main
from compare.options import ReportOptions
from compare.output import write_marker
from compare.report import write_report
from em import BinomialData
from tests.conftest import simulate

SMALL = {"draws": 150, "tune": 150, "chains": 4, "restarts": 6}
KEYS = (
    "data",
    "em",
    "map",
    "posterior",
    "agreement",
    "label_switching",
    "sampler_health",
    "multimodality",
    "identifiability",
    "uncertainty",
    "conclusions",
)
FILES = (
    "report.md",
    "report.html",
    "results.json",
    "manifest.json",
    "posterior.nc",
    "posterior_ordered.nc",
    "figures/em_paths.png",
    "figures/pmf.png",
    "figures/responsibilities.png",
)


@pytest.fixture(scope="module")
def separated(tmp_path_factory):
    rng = np.random.default_rng(21)
    data = BinomialData.from_sequences(simulate(rng, 300, 20, [0.4, 0.6], [0.2, 0.8]), 20)
    out = tmp_path_factory.mktemp("sep") / "report"
    results = write_report(data, ReportOptions(components=2, seed=3, **SMALL), out)
    return out, results


@pytest.fixture(scope="module")
def chapter(tmp_path_factory):
    out = tmp_path_factory.mktemp("chapter") / "report"
    results = write_report(
        BinomialData.chapter(), ReportOptions(components=3, seed=1, **SMALL), out
    )
    return out, results


@pytest.mark.slow
def test_outputs_and_keys(separated):
    out, results = separated
    for name in FILES:
        assert (out / name).is_file(), name
    on_disk = json.loads((out / "results.json").read_text())
    assert tuple(k for k in KEYS if k in on_disk) == KEYS
    for path in (
        ("agreement", "agree"),
        ("label_switching", "detected"),
        ("identifiability", "collapsed"),
        ("identifiability", "overdispersed"),
    ):
        assert isinstance(on_disk[path[0]][path[1]], bool), path
    assert all(isinstance(s, str) and s.endswith(".") for s in on_disk["conclusions"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["packages"]["pymc"]
    assert manifest["data_sha256"] == on_disk["data"]["sha256"]
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 5 and "<img" in html


@pytest.mark.slow
def test_separated_mixture_em_and_map_agree_tightly(separated):
    _, r = separated
    best = r["agreement"]["best"]
    assert r["agreement"]["agree"] is True and best["identifiable"]
    assert abs(best["objective_difference"]) < 1e-6
    assert best["max_abs_p_difference"] < 1e-3 and best["total_variation"]["max"] < 1e-4
    ident = r["identifiability"]
    assert not ident["collapsed"] and ident["overdispersed"] is True and ident["condition_holds"]
    assert r["label_switching"]["ordered_model"]["cuts_through"] is False
    np.testing.assert_allclose(r["posterior"]["ordered_model"]["p"]["mean"], [0.2, 0.8], atol=0.03)
    assert r["em"]["map_em"]["n_converged"] == r["em"]["map_em"]["n_runs"]
    assert r["em"]["map_em"]["max_converged_gap"] <= 1e-9


@pytest.mark.slow
def test_collapsed_fit_is_flagged(chapter):
    _, r = chapter
    ident = r["identifiability"]
    assert ident["collapsed"] and ident["effective_components"] == 1
    assert ident["overdispersed"] is False and not ident["identifiable"]
    assert r["agreement"]["agree"] is True and not r["agreement"]["best"]["identifiable"]
    assert r["agreement"]["best"]["judged_on"] == ["objective", "total_variation"]
    assert r["label_switching"]["detected"] is None and r["label_switching"]["reason"]
    assert r["posterior"]["relabelled"] is None
    assert any("not identifiable" in s for s in r["conclusions"])
    assert any("labels are not identified" in s for s in r["conclusions"])


@pytest.mark.slow
def test_same_command_gives_identical_results_json(chapter, tmp_path):
    out, _ = chapter
    again = tmp_path / "again"
    write_report(BinomialData.chapter(), ReportOptions(components=3, seed=1, **SMALL), again)
    assert (again / "results.json").read_bytes() == (out / "results.json").read_bytes()


def test_non_empty_dir_is_refused_and_interrupted_runs_leave_nothing(tmp_path, monkeypatch):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "keep.txt").write_text("earlier results")
    write_marker(out)  # an earlier report: --force replaces only those (test_output.py)
    opts = ReportOptions(components=1, restarts=1, draws=5, tune=5, chains=1)
    with pytest.raises(ValueError, match="holds an earlier report; give --force"):
        write_report(BinomialData.chapter(), opts, out)
    assert (out / "keep.txt").read_text() == "earlier results"

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_mod, "run_analysis", boom)
    with pytest.raises(KeyboardInterrupt):
        write_report(BinomialData.chapter(), opts, out, force=True)
    assert (out / "keep.txt").read_text() == "earlier results"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]  # no temporary folder left


@pytest.mark.slow
def test_force_replaces_the_folder(tmp_path):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "old.txt").write_text("x")
    write_marker(out)  # an earlier report
    opts = ReportOptions(components=1, restarts=1, draws=20, tune=20, chains=2)
    write_report(BinomialData.chapter(), opts, out, force=True)
    assert not (out / "old.txt").exists() and (out / "results.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--components", "0"], "--components must be an integer >= 1 or a range like 1-4"),
        (["--components", "2", "--draws", "0"], "--draws must be an integer >= 1, got 0"),
        (["--components", "2", "--chains", "x"], "--chains must be an integer >= 1"),
        (
            ["--components", "2", "--sampler", "gibbs"],
            "--sampler must be one of nutpie, pymc, got 'gibbs'",
        ),
        (["--components", "2", "--prior-weights", "0"], "--prior-weights: Dirichlet concentration"),
        (["--components", "2", "--prior-p", "1"], "--prior-p must be two numbers"),
        (["--components", "2", "--prior-p", "1,-1"], "--prior-p: Beta parameters must be > 0"),
        (["--components", "2", "--seed", "-3"], "--seed must be an integer >= 0"),
        (["--seed", "1"], "the following arguments are required: --components"),
        (
            ["--components", "1-3", "--prior-weights", "1,2,3"],
            "--prior-weights with a range of --components takes one number",
        ),
    ],
)
def test_cli_errors_are_one_line_with_status_2(capsys, tmp_path, argv, message):
    code = main(["report", "chapter", "--out", str(tmp_path / "r"), *argv])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "r").exists()


def test_cli_refuses_a_non_empty_dir_and_a_bad_csv(capsys, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("1")
    assert main(["report", "chapter", "--components", "2", "--out", str(busy)]) == 2
    assert "is not empty and holds 'x', which this suite did not write" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("heads,trials\n4,10\n11,10\n")
    assert main(["report", str(bad), "--components", "2", "--out", str(tmp_path / "o")]) == 2
    assert "line 3: heads = 11 exceeds trials = 10" in capsys.readouterr().err


@pytest.mark.slow
def test_em_standard_errors_beside_the_posterior(separated, chapter):
    _, r = separated
    unc = r["uncertainty"]
    assert unc["comparable"]
    se = np.array(unc["em_standard_errors"]["p"])
    sd = np.array(unc["posterior"]["p"]["sd"])
    np.testing.assert_allclose(se, sd, rtol=0.3)  # large-sample agreement, 150 draws x 4
    _, rc = chapter
    assert not rc["uncertainty"]["comparable"]
    assert rc["uncertainty"]["em_standard_errors"]["singular"]


@pytest.mark.slow
def test_model_selection_over_a_range(tmp_path):
    from compare.selection import weighted_loo

    rng = np.random.default_rng(9)
    data = BinomialData.from_sequences(simulate(rng, 200, 10, [0.5, 0.5], [0.15, 0.75]), 10)
    out = tmp_path / "sel"
    code = main(["report", "placeholder"])  # usage error path stays one line
    assert code == 2
    results = write_report(
        data, ReportOptions(components=1, seed=2, **SMALL), out, select=[1, 2, 3]
    )
    rows = results["model_selection"]
    assert [r["k"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert {"k", "log_likelihood", "aic", "bic", "icl", "elpd_loo", "se"} <= set(r)
    assert results["model_selection_preferred"]["bic"] == 2
    assert results["model_selection_detailed_k"] == 2 and results["options"]["components"] == 2
    assert results["model_selection_compare"][0]["model"] in {"K=2", "K=3"}
    assert (out / "figures" / "model_selection.png").is_file()
    # every K's EM is the fit `em fit --components K --seed 2` makes: the same figures, ICL
    # included, and the detailed K's fit is that row's
    from em import fit_data, information_criteria

    for r in rows:
        mine = information_criteria(fit_data(data, r["k"], restarts=SMALL["restarts"], seed=2))
        assert all(r[c] == mine[c] for c in ("log_likelihood", "aic", "bic", "icl"))
    detailed = results["em"]["ml"]["log_likelihood"]
    assert detailed == next(r["log_likelihood"] for r in rows if r["k"] == 2)
    # the weighted per-outcome LOO is ArviZ's LOO on the sequences one by one
    import arviz as az
    import xarray as xr

    from models import MixtureModel

    idata = MixtureModel(data, 2).sample(draws=100, tune=100, seed=3)
    ll = idata["log_likelihood"]["heads"].values
    expanded = xr.DataTree.from_dict(
        {
            "posterior": idata["posterior"].to_dataset(),
            "log_likelihood": xr.Dataset(
                {"heads": (("chain", "draw", "seq"), np.repeat(ll, data.counts, axis=-1))}
            ),
        }
    )
    ref = az.loo(expanded)
    ours = weighted_loo(data, idata)
    assert ours["elpd_loo"] == pytest.approx(ref.elpd, rel=1e-10)
    assert ours["se"] == pytest.approx(ref.se, rel=1e-10)
    assert ours["p_loo"] == pytest.approx(ref.p, rel=1e-8)


@pytest.mark.slow
def test_saved_posterior_is_right_as_stored(separated):
    """posterior.nc: raw draws, relabelled draws, the permutations, and responsibilities
    from the relabelled draws, so an extreme outcome is near-certain for its coin."""
    import arviz as az

    from models import load_posterior

    out, r = separated
    tree = load_posterior(out / "posterior.nc")
    for group in ("posterior", "posterior_relabelled", "relabelling", "responsibilities"):
        assert group in tree.children, group
    resp = tree["responsibilities"]["mean"].values
    heads = np.asarray(r["data"]["heads"])
    low, high = int(np.argmin(heads)), int(np.argmax(heads))
    assert resp[low, 0] > 0.95 and resp[high, 1] > 0.95
    perm = tree["relabelling"]["permutation"].values
    raw_p = tree["posterior"]["p"].transpose("chain", "draw", "component").values
    rel_p = tree["posterior_relabelled"]["p"].transpose("chain", "draw", "component").values
    np.testing.assert_array_equal(np.take_along_axis(raw_p, perm, axis=-1), rel_p)
    summary = az.summary(tree["posterior_relabelled"].to_dataset(), var_names=["p"])
    assert summary["r_hat"].max() < 1.05
