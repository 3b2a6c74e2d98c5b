"""The report's figures: written, readable at the page's width, the same bytes twice."""

import struct

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr

from compare import plots
from compare.health import as_datatree

CHAINS, DRAWS, K = 4, 100, 2


def _rng(*key):
    return np.random.default_rng(np.random.SeedSequence(77, spawn_key=key))


@pytest.fixture(scope="module")
def draws():
    rng = _rng(0)
    p = np.sort(rng.beta(5, 5, size=(CHAINS, DRAWS, K)), axis=-1)
    w = rng.dirichlet(np.ones(K), size=(CHAINS, DRAWS))
    return w, p


@pytest.fixture(scope="module")
def idata(draws):
    w, p = draws
    rng = _rng(1)
    tree = as_datatree({"w": w, "p": p})
    tree["sample_stats"] = xr.Dataset(
        {
            "diverging": (("chain", "draw"), rng.random((CHAINS, DRAWS)) < 0.01),
            "energy": (("chain", "draw"), rng.normal(size=(CHAINS, DRAWS))),
        }
    )
    return tree


def png_width(path) -> int:
    with open(path, "rb") as fh:
        head = fh.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">I", head[16:20])[0]


def small_texts(fig) -> list[tuple[str, float]]:
    """Every visible text under MIN_FONT_PT, tick labels included (after a draw)."""
    fig.canvas.draw()
    return [
        (t.get_text(), t.get_fontsize())
        for t in fig.findobj(matplotlib.text.Text)
        if t.get_visible() and t.get_text().strip() and t.get_fontsize() < plots.MIN_FONT_PT
    ]


@pytest.fixture
def seen(monkeypatch):
    """Small texts of every figure saved through plots._save."""
    found = []
    save = plots._save

    def spy(fig, path):
        found.append(small_texts(fig))
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", spy)
    return found


def _calls(idata, draws, panels):
    w, p = draws
    rows = [
        {"k": k, "aic": 10.0 + k, "bic": 11.0 + k, "icl": 12.0 + k, "elpd_loo": -5.0, "se": 1.0}
        for k in (1, 2, 3)
    ]
    resp = _rng(2).dirichlet(np.ones(K), size=40)
    return {
        "trace": lambda f: plots.plot_trace(idata, f, title="Trace"),
        "rank": lambda f: plots.plot_rank(idata, f, title="Rank"),
        "pair": lambda f: plots.plot_pair(idata, f, title="Pairs"),
        "forest": lambda f: plots.plot_forest(idata, f, title="Forest"),
        "energy": lambda f: plots.plot_energy(idata, f, title="Energy"),
        "trace_plot": lambda f: plots.trace_plot(p, w, f, "Relabelled"),
        "pair_plot": lambda f: plots.pair_plot(p, f, "Pairs"),
        "em_paths": lambda f: plots.em_paths_plot([np.linspace(-9, -1, 30)] * 12, f),
        "pmf": lambda f: plots.pmf_plot(panels, f),
        "responsibilities": lambda f: plots.responsibilities_plot(
            [f"{h}/{40}" for h in range(40)], resp, resp[::-1], f
        ),
        "selection": lambda f: plots.selection_plot(rows, f),
    }


@pytest.fixture(scope="module")
def panels():
    out = []
    for n in (10, 12):
        pmf = _rng(3, n).dirichlet(np.ones(n + 1))
        out.append(
            {
                "n": n,
                "count": 20,
                "observed": pmf,
                "em": pmf,
                "map": pmf,
                "posterior_mean": pmf,
                "posterior_lower": 0.8 * pmf,
                "posterior_upper": 1.2 * pmf,
            }
        )
    return out


@pytest.mark.parametrize(
    "name",
    [
        "trace",
        "rank",
        "pair",
        "forest",
        "energy",
        "trace_plot",
        "pair_plot",
        "em_paths",
        "pmf",
        "responsibilities",
        "selection",
    ],
)
def test_every_figure_is_written_readable_and_reproducible(
    name, idata, draws, panels, tmp_path, seen
):
    call = _calls(idata, draws, panels)[name]
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    assert call(first) == "a.png" and call(second) == "b.png"
    assert first.read_bytes() == second.read_bytes()  # same input, same bytes
    assert 300 < png_width(first) <= plots.WIDTH_PX
    assert len(seen) == 2 and seen == [[], []]  # no text under 10 pt
    assert plt.get_fignums() == []  # every figure closed


def test_the_checks_can_fail(tmp_path):
    fig, ax = plt.subplots(figsize=(14, 3))
    ax.set_title("tiny", fontsize=6)
    ax.tick_params(labelsize=7)
    small = small_texts(fig)
    assert ("tiny", 6.0) in small and any(size == 7.0 for _, size in small)
    fig.savefig(tmp_path / "wide.png", dpi=plots.DPI)
    plt.close(fig)
    assert png_width(tmp_path / "wide.png") > plots.WIDTH_PX


def test_arrays_and_datatree_draw_the_same(draws, tmp_path):
    w, p = draws
    plots.plot_trace({"w": w, "p": p}, tmp_path / "a.png")
    plots.plot_trace(as_datatree({"w": w, "p": p}), tmp_path / "b.png")
    plots.trace_plot(p, w, tmp_path / "c.png", None)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "c.png").read_bytes()


def test_relabelled_draws_carry_the_divergences(draws, idata, tmp_path):
    w, p = draws
    plain = plots.plot_trace({"p": p}, tmp_path / "plain.png")
    marked = plots.plot_trace(as_datatree({"p": p}, sample_stats=idata), tmp_path / "marked.png")
    assert (tmp_path / plain).read_bytes() != (tmp_path / marked).read_bytes()


def test_pair_plot_of_one_component_falls_back_to_the_trace(draws, tmp_path):
    _, p = draws
    assert plots.pair_plot(p[..., :1], tmp_path / "one.png", "K = 1") == "one.png"
    with pytest.raises(ValueError, match="at least 2 quantities"):
        plots.plot_pair({"p": p[..., :1]}, tmp_path / "x.png")


def test_bad_input_is_a_clear_value_error(draws, idata, tmp_path):
    w, p = draws
    out = tmp_path / "x.png"
    with pytest.raises(ValueError, match="'q' is not in the posterior"):
        plots.plot_trace(idata, out, var_names=["q"])
    with pytest.raises(ValueError, match="no posterior group"):
        plots.plot_rank(xr.DataTree.from_dict({"sample_stats": idata["sample_stats"]}), out)
    with pytest.raises(ValueError, match="expected a DataTree or a mapping"):
        plots.plot_forest(p, out)
    with pytest.raises(ValueError, match="non-finite"):
        plots.plot_trace({"p": np.full((2, 10, 2), np.nan)}, out)
    with pytest.raises(ValueError, match="sample_stats group"):
        plots.plot_energy(as_datatree({"p": p}), out)
    no_energy = as_datatree({"p": p})
    no_energy["sample_stats"] = xr.Dataset(
        {"diverging": (("chain", "draw"), np.zeros((CHAINS, DRAWS)))}
    )
    with pytest.raises(ValueError, match="no energy"):
        plots.plot_energy(no_energy, out)
    assert not out.exists()


def test_more_panels_than_arviz_default_cap(tmp_path):
    # 2 x 11 elements, each a trace and a density panel: 44 > rcParams["plot.max_subplots"]
    rng = _rng(4)
    p = rng.random((2, 20, 11))
    w = rng.dirichlet(np.ones(11), size=(2, 20))
    assert plots.plot_trace({"w": w, "p": p}, tmp_path / "k11.png") == "k11.png"
    assert png_width(tmp_path / "k11.png") <= plots.WIDTH_PX
