"""Sampler health on planted draws (no sampling): every warning seen firing and not firing."""

import json
import math
import pickle

import arviz as az
import numpy as np
import pytest
import xarray as xr

from compare import health, settings
from compare.health import (
    SUMMARY_COLUMNS,
    as_datatree,
    health_conclusion,
    sampler_health,
    summary_rows,
)

CHAINS, DRAWS, K = 4, 1000, 3


def _rng(*key):
    return np.random.default_rng(np.random.SeedSequence(20240611, spawn_key=key))


def _ar1(rng, phi, shape):
    """AR(1) chains along axis 1 with unit stationary variance."""
    x = np.empty(shape)
    x[:, 0] = rng.normal(size=(shape[0], *shape[2:]))
    eps = rng.normal(size=shape) * np.sqrt(1 - phi**2)
    for t in range(1, shape[1]):
        x[:, t] = phi * x[:, t - 1] + eps[:, t]
    return x


def _tree(p, w=None, *, diverging=None, energy=None, rng=None):
    """A DataTree like the models': posterior w, p over component; sample_stats."""
    rng = rng if rng is not None else _rng(99)
    c, d = p.shape[:2]
    if w is None:
        w = rng.dirichlet(np.ones(p.shape[-1]), size=(c, d))
    if diverging is None:
        diverging = np.zeros((c, d), dtype=bool)
    if energy is None:
        energy = rng.normal(size=(c, d))
    tree = as_datatree({"w": w, "p": p})
    tree["sample_stats"] = xr.Dataset(
        {"diverging": (("chain", "draw"), diverging), "energy": (("chain", "draw"), energy)}
    )
    return tree


@pytest.fixture(scope="module")
def healthy():
    rng = _rng(0)
    p = 0.4 + 0.05 * rng.normal(size=(CHAINS, DRAWS, K))
    return _tree(p, rng=rng)


# ---------------------------------------------------------------------- healthy
def test_healthy_chains_pass(healthy):
    h = sampler_health(healthy, ["w", "p"])
    assert h.reliable and h.warnings == ()
    assert h.divergences == 0 and h.transitions == CHAINS * DRAWS
    assert h.max_rhat < settings.RHAT_MAX
    assert h.min_ess_bulk > settings.ESS_MIN_PER_CHAIN * CHAINS
    assert h.min_ess_tail > settings.ESS_MIN_PER_CHAIN * CHAINS
    assert h.min_ebfmi > settings.EBFMI_MIN
    assert h.not_checked == ()
    assert [v.name for v in h.variables] == ["w", "p"]
    assert h.variables[1].labels() == ["p[0]", "p[1]", "p[2]"]


def test_numbers_are_arviz_own(healthy):
    h = sampler_health(healthy, ["w", "p"])
    for var in h.variables:
        rhat = az.rhat(healthy, var_names=[var.name])[var.name].values
        bulk = az.ess(healthy, var_names=[var.name], method="bulk")[var.name].values
        tail = az.ess(healthy, var_names=[var.name], method="tail")[var.name].values
        np.testing.assert_allclose(var.rhat, rhat, rtol=1e-12)
        np.testing.assert_allclose(var.ess_bulk, bulk, rtol=1e-12)
        np.testing.assert_allclose(var.ess_tail, tail, rtol=1e-12)
    table = az.summary(healthy, var_names=["w", "p"], round_to="none")
    assert h.max_rhat == pytest.approx(table["r_hat"].max(), rel=1e-12)
    assert h.min_ess_bulk == pytest.approx(table["ess_bulk"].min(), rel=1e-12)
    assert h.min_ess_tail == pytest.approx(table["ess_tail"].min(), rel=1e-12)
    assert h.max_rhat_at == table["r_hat"].idxmax()
    bfmi = az.bfmi(healthy)["energy"].values
    np.testing.assert_allclose(h.ebfmi, bfmi, rtol=1e-12)
    e = healthy["sample_stats"]["energy"].values
    # Betancourt (2016), as Stan computes it
    centred = e - e.mean(axis=1, keepdims=True)
    by_hand = np.sum(np.diff(e, axis=1) ** 2, axis=1) / np.sum(centred**2, axis=1)
    np.testing.assert_allclose(h.ebfmi, by_hand, rtol=1e-12)


def test_to_dict_is_plain_json(healthy):
    d = sampler_health(healthy, ["p"]).to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text) == d
    assert d["reliable"] is True and d["warnings"] == [] and d["failed"] == []
    assert isinstance(d["divergences"], int) and isinstance(d["max_rhat"], float)
    assert d["variables"][0]["name"] == "p" and len(d["variables"][0]["rhat"]) == K

    def plain(x):
        if isinstance(x, dict):
            return all(isinstance(k, str) and plain(v) for k, v in x.items())
        if isinstance(x, list):
            return all(plain(v) for v in x)
        return x is None or type(x) in (bool, int, float, str)

    assert plain(d)


def test_warnings_are_tagged_strings(healthy):
    p = healthy["posterior"]["p"].values.copy()
    p[2] += 0.3
    flags = np.zeros((CHAINS, DRAWS), dtype=bool)
    flags[0, 0] = True
    h = sampler_health(_tree(p, diverging=flags), ["p"])
    assert h.failed[:2] == ("divergences", "rhat") and all(isinstance(w, str) for w in h.warnings)
    joined = "; ".join(h.warnings)  # what a caller that only wants text does
    assert joined.startswith("1 of 4000") and "R-hat above" in joined
    assert not any(w.endswith(".") for w in h.warnings)  # joins into one sentence
    again = pickle.loads(pickle.dumps(h))
    assert again == h and again.warnings[1].kind == "rhat"
    d = h.to_dict()
    assert d["failed"][:2] == ["divergences", "rhat"] and type(d["warnings"][0]) is str
    assert h.min_bfmi == h.min_ebfmi


# ---------------------------------------------------------------------- R-hat
def test_a_chain_stuck_elsewhere_raises_rhat(healthy):
    p = healthy["posterior"]["p"].values.copy()
    p[2] += 0.3  # chain 2 explores another region
    h = sampler_health(_tree(p), ["p"])
    assert h.warned("rhat") and not h.reliable
    assert h.max_rhat > settings.RHAT_MAX
    msg = next(w.message for w in h.warnings if w.kind == "rhat")
    assert "R-hat above 1.01" in msg and "have not mixed" in msg and "3 of 3" in msg
    assert not sampler_health(healthy, ["p"]).warned("rhat")


def test_chains_constant_at_different_values_are_stuck():
    # ArviZ gives NaN here (zero within-chain variance): not a silent pass
    p = np.zeros((CHAINS, DRAWS, 2))
    p[1, :, 0] = 1.0
    p[..., 1] = 0.4 + 0.05 * _rng(9).normal(size=(CHAINS, DRAWS))
    h = sampler_health({"p": p})
    assert h.variables[0].undefined == ("p[0]",) and h.variables[0].rhat[0] is None
    assert h.warned("rhat") and not h.reliable
    assert "R-hat is undefined for p[0]: every chain is constant there" in h.warnings[0].message
    assert "R-hat undefined (p[0]: stuck chains)" in health_conclusion(h, "ordered")
    json.dumps(h.to_dict(), allow_nan=False)
    p[1, :, 0] = 0.0  # the same element constant everywhere: not judged, no warning
    assert sampler_health({"p": p}).reliable


def test_a_huge_rhat_is_printed_readably():
    p = np.zeros((CHAINS, DRAWS, 1))
    p[1, DRAWS // 2 :] = 1.0
    h = sampler_health({"p": p})
    assert h.warned("rhat") and h.max_rhat > 1e6
    assert "e+" in h.warnings[0].message


def test_rhat_threshold_is_read_from_settings(healthy, monkeypatch):
    p = healthy["posterior"]["p"].values.copy()
    p[2] += 0.02
    tree = _tree(p)
    r = sampler_health(tree, ["p"]).max_rhat
    assert r > 1.0
    monkeypatch.setattr(settings, "RHAT_MAX", r + 0.01)
    assert not sampler_health(tree, ["p"]).warned("rhat")
    monkeypatch.setattr(settings, "RHAT_MAX", r - 1e-6)
    h = sampler_health(tree, ["p"])
    assert h.warned("rhat") and h.rhat_max == r - 1e-6


# ---------------------------------------------------------------------- ESS
def test_strong_autocorrelation_gives_low_ess(healthy):
    p = 0.4 + 0.05 * _ar1(_rng(1), 0.99, (CHAINS, DRAWS, K))
    h = sampler_health(_tree(p), ["p"])
    assert h.warned("ess_bulk") and h.warned("ess_tail")
    assert h.min_ess_bulk < 100 and h.ess_min == 400
    kinds = {w.kind: w.message for w in h.warnings}
    assert "Bulk effective sample size (ESS) is too low" in kinds["ess_bulk"]
    assert "100 per chain x 4 chains" in kinds["ess_bulk"]
    assert "tail quantiles" in kinds["ess_tail"]
    good = sampler_health(healthy, ["p"])
    assert not good.warned("ess_bulk") and not good.warned("ess_tail")


def test_ess_threshold_is_per_chain_and_from_settings(healthy, monkeypatch):
    two = {"p": healthy["posterior"]["p"].values[:2]}
    assert sampler_health(two).ess_min == 200
    h = sampler_health(healthy, ["p"])
    monkeypatch.setattr(settings, "ESS_MIN_PER_CHAIN", math.ceil(h.min_ess_bulk / CHAINS) + 1)
    assert sampler_health(healthy, ["p"]).warned("ess_bulk")


# ---------------------------------------------------------------------- divergences
def test_divergences_warn(healthy):
    p = healthy["posterior"]["p"].values
    flags = np.zeros((CHAINS, DRAWS), dtype=bool)
    flags[1, [10, 500]] = True
    flags[3, 7] = True
    h = sampler_health(_tree(p, diverging=flags), ["p"])
    assert h.divergences == 3 and h.warned("divergences")
    assert h.warnings[0].message.startswith("3 of 4000 (0.07%) transitions after warm-up")
    assert not sampler_health(healthy, ["p"]).warned("divergences")


# ---------------------------------------------------------------------- E-BFMI
def test_low_ebfmi_warns(healthy):
    p = healthy["posterior"]["p"].values
    energy = _rng(2).normal(size=(CHAINS, DRAWS))
    energy[1] = _ar1(_rng(3), 0.99, (1, DRAWS))[0]  # energy barely moves between draws
    h = sampler_health(_tree(p, energy=energy), ["p"])
    assert h.warned("ebfmi") and h.min_ebfmi < 0.1
    assert h.ebfmi[1] == h.min_ebfmi and min(h.ebfmi[i] for i in (0, 2, 3)) > 1
    msg = next(w.message for w in h.warnings if w.kind == "ebfmi")
    assert "E-BFMI below 0.3 in 1 of 4 chains" in msg and "chain 1" in msg
    assert not sampler_health(healthy, ["p"]).warned("ebfmi")


def test_ebfmi_threshold_is_read_from_settings(healthy, monkeypatch):
    monkeypatch.setattr(settings, "EBFMI_MIN", 10.0)
    assert sampler_health(healthy, ["p"]).warned("ebfmi")


# ---------------------------------------------------------------------- what is judged
def _switched(rng):
    """Exchangeable draws whose chains sit in different labellings; and the sorted p."""
    base = np.array([0.2, 0.5, 0.8])
    p = base + 0.02 * rng.normal(size=(CHAINS, DRAWS, K))
    perms = [(0, 1, 2), (1, 0, 2), (2, 1, 0), (0, 2, 1)]
    raw = np.stack([p[c][:, perms[c]] for c in range(CHAINS)])
    return raw, np.sort(raw, axis=-1)


def test_label_switching_judged_on_invariant_arrays():
    raw, relabelled = _switched(_rng(4))
    tree = _tree(raw)
    assert sampler_health(tree, ["p"]).warned("rhat")  # raw labels: meaningless R-hat
    h = sampler_health(tree, [], invariant={"p_relabelled": relabelled})
    assert h.reliable and h.divergences == 0 and h.ebfmi is not None
    assert [(v.name, v.source) for v in h.variables] == [("p_relabelled", "invariant")]
    both = sampler_health(tree, ["w"], invariant={"sorted": relabelled})
    assert [v.source for v in both.variables] == ["posterior", "invariant"]
    # a mapping in var_names' place is judged instead of the posterior
    short = sampler_health(tree, {"p_relabelled": relabelled})
    assert short.variables == h.variables and short.reliable


def test_a_mapping_of_arrays_is_judged_without_sample_stats(healthy):
    p = healthy["posterior"]["p"].values
    h = sampler_health({"p": p, "w": healthy["posterior"]["w"].values}, ["p"])
    assert [v.name for v in h.variables] == ["p"]
    assert h.divergences is None and h.ebfmi is None and h.reliable
    assert any("divergences" in s for s in h.not_checked)
    assert any("E-BFMI" in s for s in h.not_checked)
    ref = sampler_health(healthy, ["p"])
    assert h.variables[0].rhat == ref.variables[0].rhat


def test_arrays_alone_without_a_datatree(healthy):
    p = healthy["posterior"]["p"].values
    h = sampler_health(None, {"p": p})
    assert h.reliable and h.divergences is None and [v.name for v in h.variables] == ["p"]
    assert sampler_health(None, [], invariant={"p": p}).variables == h.variables
    with pytest.raises(ValueError, match="no DataTree to take posterior variables from"):
        sampler_health(None, ["p"])
    with pytest.raises(ValueError, match="nothing to judge"):
        sampler_health(None)


def test_constant_elements_are_not_judged():
    rng = _rng(5)
    p = 0.4 + 0.05 * rng.normal(size=(CHAINS, DRAWS, 1))
    w = np.ones((CHAINS, DRAWS, 1))  # K = 1: the weight is always 1
    h = sampler_health({"w": w, "p": p})
    assert h.reliable and h.variables[0].rhat == (None,) and h.variables[0].constant == 1
    assert any("constant" in s for s in h.not_checked)


def test_one_chain_has_no_rhat():
    p = 0.4 + 0.05 * _rng(6).normal(size=(1, DRAWS, K))
    h = sampler_health({"p": p})
    assert h.max_rhat is None and h.ess_min == 100 and h.reliable
    assert any("R-hat (needs at least 2 chains)" in s for s in h.not_checked)


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (({"p": np.zeros(10)},), {}, r"idata\['p'\]: expected a \(chain, draw, \.\.\.\) array"),
        (({"p": np.zeros((2, 3))},), {}, "at least 1 chain and 4 draws"),
        (({"p": np.full((2, 10), np.nan)},), {}, r"non-finite value at index \(0, 0\)"),
        (({"p": np.zeros((2, 10))}, ["q"]), {}, "'q' is not among the arrays"),
        (({"p": np.zeros((2, 10))}, []), {}, "nothing to judge"),
        (({"p": np.zeros((2, 10)), "w": np.zeros((3, 10))},), {}, "disagree on"),
        (("draws",), {}, "expected a DataTree or a mapping"),
        (({"p": np.ones((2, 10))},), {"invariant": {"p": np.ones((2, 10))}}, "already taken"),
        (({"p": np.ones((2, 10))},), {"invariant": {"x": np.ones((2, 9))}}, "disagree on"),
        (({"p": [["a"] * 5] * 2},), {}, "not a numeric array"),
    ],
)
def test_bad_input_is_a_clear_value_error(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        sampler_health(*args, **kwargs)


def test_bad_datatree_input(healthy):
    with pytest.raises(ValueError, match="'q' is not in the posterior"):
        sampler_health(healthy, ["q"])
    with pytest.raises(ValueError, match="no posterior group"):
        sampler_health(xr.DataTree.from_dict({"sample_stats": healthy["sample_stats"]}), ["p"])
    bad = _tree(healthy["posterior"]["p"].values)
    bad["sample_stats"]["energy"][0, 3] = np.inf
    with pytest.raises(ValueError, match=r"sample_stats\['energy'\]: non-finite"):
        sampler_health(bad, ["p"])


# ---------------------------------------------------------------------- words
def test_conclusion_of_a_healthy_model(healthy):
    text = health_conclusion(sampler_health(healthy, ["w", "p"]), "ordered-biases", ordered=True)
    assert text.startswith("The ordered-biases model's sampler passed every check:")
    assert "no divergent transitions after warm-up (of 4000)" in text
    assert "largest R-hat 1.00" in text and "judged on w, p" in text
    assert "unreliable" not in text and "Not checked" not in text


def test_conclusion_of_a_collapsed_ordered_model(healthy):
    p = healthy["posterior"]["p"].values.copy()
    p[0] += 0.3
    flags = np.zeros((CHAINS, DRAWS), dtype=bool)
    flags[0, :21] = True
    h = sampler_health(_tree(p, diverging=flags), ["p"])
    text = health_conclusion(
        h,
        "ordered-biases",
        ordered=True,
        collapsed=True,
        effective_components=1,
        target_accept=0.9,
        tune=1000,
    )
    assert text.startswith("The ordered-biases model's draws are unreliable: 21 divergent")
    assert f"R-hat {h.max_rhat:.3f} > 1.01" in text
    assert "ordering boundary" in text
    assert "a higher target_accept (now 0.9)" in text and "more tuning (now 1000)" in text
    assert "fewer components (the data support 1)" in text and "informative priors" in text


def test_conclusion_names_other_causes(healthy):
    p = healthy["posterior"]["p"].values
    flags = np.zeros((CHAINS, DRAWS), dtype=bool)
    flags[2, 5] = True
    text = health_conclusion(sampler_health(_tree(p, diverging=flags), ["p"]), "exchangeable")
    assert "high curvature" in text and "ordering boundary" not in text
    assert "fewer components" not in text and "target_accept" in text
    slow = 0.4 + 0.05 * _ar1(_rng(7), 0.99, (CHAINS, DRAWS, K))
    h = sampler_health({"p": slow})
    text = health_conclusion(h, "exchangeable", collapsed=True)
    assert "ridge" in text and "more tuning" in text
    assert text.endswith("(no sample_stats['energy']).")  # what was not checked is said


# ---------------------------------------------------------------------- summary table
def test_summary_rows_carry_ess_tail_and_mcse(healthy):
    rows = summary_rows(healthy, ["p"])
    assert [r["parameter"] for r in rows] == ["p[0]", "p[1]", "p[2]"]
    assert all(tuple(r) == SUMMARY_COLUMNS for r in rows)
    table = az.summary(
        healthy, var_names=["p"], ci_prob=settings.CI_PROB, ci_kind="eti", round_to="none"
    )
    lb = f"eti{round(100 * settings.CI_PROB)}_lb"
    for row, (_, ref) in zip(rows, table.iterrows(), strict=True):
        assert all(type(v) is float for k, v in row.items() if k != "parameter")
        for key in ("mean", "sd", "ess_bulk", "ess_tail", "r_hat", "mcse_mean", "mcse_sd"):
            assert row[key] == pytest.approx(ref[key], rel=1e-12)
        assert row["ci_lower"] == pytest.approx(ref[lb], rel=1e-12)
    x = healthy["posterior"]["p"].values[..., 0].ravel()
    tail = (1 - settings.CI_PROB) / 2
    lo, hi = np.quantile(x, [tail, 1 - tail])
    assert rows[0]["ci_lower"] == pytest.approx(lo, abs=2e-3)
    assert rows[0]["ci_upper"] == pytest.approx(hi, abs=2e-3)


def test_summary_rows_from_relabelled_arrays(monkeypatch):
    _, relabelled = _switched(_rng(8))
    rows = summary_rows({"p": relabelled})
    assert [r["parameter"] for r in rows] == ["p[0]", "p[1]", "p[2]"]
    assert rows[0]["mean"] == pytest.approx(relabelled[..., 0].mean(), rel=1e-12)
    monkeypatch.setattr(settings, "CI_PROB", 0.5)
    narrow = summary_rows({"p": relabelled})
    assert narrow[0]["ci_upper"] - narrow[0]["ci_lower"] < rows[0]["ci_upper"] - rows[0]["ci_lower"]


def test_summary_rows_bad_input(healthy):
    with pytest.raises(ValueError, match="'q' is not in the posterior"):
        summary_rows(healthy, ["q"])
    with pytest.raises(ValueError, match="expected a DataTree or a mapping"):
        summary_rows(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="non-finite"):
        summary_rows({"p": np.full((2, 10), np.inf)})


def test_constant_draws_summarise_to_none():
    rows = summary_rows({"w": np.ones((2, 50, 1))})
    assert rows[0]["mean"] == 1.0 and rows[0]["r_hat"] is None


# ---------------------------------------------------------------------- conversion
def test_as_datatree_names_component_dims(healthy):
    tree = as_datatree({"p": np.zeros((2, 5, 3)), "pmf": np.zeros((2, 5, 11))})
    assert tree["posterior"]["p"].dims == ("chain", "draw", "component")
    assert tree["posterior"]["pmf"].dims == ("chain", "draw", "pmf_dim_0")
    with_stats = as_datatree({"p": healthy["posterior"]["p"].values}, sample_stats=healthy)
    assert int(with_stats["sample_stats"]["diverging"].sum()) == 0
    with pytest.raises(ValueError, match="sample_stats group"):
        as_datatree({"p": np.zeros((2, 5, 3))}, sample_stats=as_datatree({"p": np.zeros((2, 5))}))


def test_module_exports():
    assert set(health.__all__) >= {"sampler_health", "SamplerHealth", "health_conclusion"}
