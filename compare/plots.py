"""The report's figures, written as PNG.

The standard views of MCMC draws come from arviz-plots: trace with densities
(:func:`plot_trace`), rank (:func:`plot_rank`), pair (:func:`plot_pair`), forest
(:func:`plot_forest`) and energy (:func:`plot_energy`). Each takes a DataTree (the sampler's
output) or a mapping of (chain, draw, K) arrays such as ``{"w": w, "p": p}`` (relabelled
draws; :func:`compare.health.as_datatree` builds the tree, with the sampler's
``sample_stats`` if divergences are to be marked). Only the figures no library draws are
drawn here by hand: EM's objective paths, the fitted pmfs, the responsibilities and the
model-selection criteria.

Every figure is sized for the report page (at most ``WIDTH_PX`` = 1000 pixels wide at
``DPI``, so it is shown unscaled) with every text at least ``MIN_FONT_PT`` = 10 points, and
saved with fixed metadata: the same input gives the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import arviz as az  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from compare import settings  # noqa: E402
from compare.health import as_datatree  # noqa: E402

__all__ = [
    "DPI",
    "WIDTH_PX",
    "MIN_FONT_PT",
    "plot_trace",
    "plot_rank",
    "plot_pair",
    "plot_forest",
    "plot_energy",
    "trace_plot",
    "pair_plot",
    "selection_plot",
    "em_paths_plot",
    "pmf_plot",
    "responsibilities_plot",
]

#: Resolution of every PNG; with WIDTH_PX it fixes the figure width in inches.
DPI = 100
#: Widest figure, in pixels (the report's HTML page shows images up to about 1000 px).
WIDTH_PX = 1000
#: Smallest text anywhere in a figure, in points.
MIN_FONT_PT = 10
_WIDTH = 0.96 * WIDTH_PX / DPI  # inches, leaving room for the tight bounding box
# Fixed metadata so the same figures give the same bytes.
_META = {"Software": None}
_RC = {
    "font.size": 11,
    "axes.titlesize": 11,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "legend.title_fontsize": 10,
    "figure.titlesize": 13,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
}


class _Labeller(az.labels.BaseLabeller):
    """``p[0]`` on one line everywhere (ArviZ's vertical labels put the index below)."""

    def make_label_vert(self, var_name, sel, isel):
        """The flat label."""
        return self.make_label_flat(var_name, sel, isel)


@contextmanager
def _style(subplots: int = 0):
    """Fonts and resolution; ArviZ may draw ``subplots`` panels (its default cap is 40)."""
    limit = max(subplots, az.rcParams["plot.max_subplots"])
    with matplotlib.rc_context(_RC), az.rc_context({"plot.max_subplots": limit}):
        yield


def _save(fig, path: Path) -> str:
    fig.savefig(path, dpi=DPI, bbox_inches="tight", metadata=_META)
    plt.close(fig)
    return Path(path).name


def _save_pc(pc, path: Path, title: str | None) -> str:
    fig = pc.viz["figure"].item()
    if title:
        fig.suptitle(title)
    return _save(fig, path)


# ---------------------------------------------------------------------- ArviZ views
def _tree(data, var_names: Sequence[str] | None) -> tuple[xr.DataTree, list[str]]:
    """The DataTree to draw (coordinates on every dimension) and the variables to draw."""
    if isinstance(data, Mapping) and not isinstance(data, xr.DataTree):  # a tree is a mapping
        data = as_datatree(data)
    if not isinstance(data, xr.DataTree):
        raise ValueError(
            f"data: expected a DataTree or a mapping of arrays, got {type(data).__name__}"
        )
    if "posterior" not in data:
        raise ValueError("data: the DataTree has no posterior group")
    available = list(data["posterior"].data_vars)
    names = available if var_names is None else list(var_names)
    for name in names:
        if name not in available:
            raise ValueError(f"var_names: {name!r} is not in the posterior (has: {available})")
    if not names:
        raise ValueError("var_names: nothing to draw")
    groups = {}
    for group in ("posterior", "sample_stats"):
        if group in data:
            ds = data[group].to_dataset()
            missing = {d: np.arange(n) for d, n in ds.sizes.items() if d not in ds.coords}
            groups[group] = ds.assign_coords(missing)
    return xr.DataTree.from_dict(groups), names


def _n_elements(tree: xr.DataTree, names: list[str]) -> int:
    post = tree["posterior"]
    return sum(
        math.prod(n for d, n in post[v].sizes.items() if d not in ("chain", "draw")) for v in names
    )


def plot_trace(
    data: xr.DataTree | Mapping[str, np.ndarray],
    path: Path,
    *,
    title: str | None = None,
    var_names: Sequence[str] | None = None,
) -> str:
    """Trace and per-chain density of every element (``az.plot_trace_dist``), one row each.

    Divergent transitions are marked when ``data`` carries ``sample_stats``.

    Parameters
    ----------
    data : DataTree or mapping of str to array
        Draws, (chain, draw, ...) per variable.
    path : Path
        The PNG to write.
    title : str, optional
        Figure title.
    var_names : sequence of str, optional
        Variables to draw (default: all in the posterior).

    Returns
    -------
    str
        The file name written.

    Raises
    ------
    ValueError
        On draws of the wrong shape or unknown variables.
    """
    tree, names = _tree(data, var_names)
    rows = _n_elements(tree, names)
    with _style(2 * rows):
        pc = az.plot_trace_dist(
            tree,
            var_names=names,
            compact=False,
            labeller=_Labeller(),
            figure_kwargs={"figsize": (_WIDTH, 0.5 + 1.45 * rows), "layout": "constrained"},
        )
        pc.add_legend("chain")
        return _save_pc(pc, path, title)


def plot_rank(
    data: xr.DataTree | Mapping[str, np.ndarray],
    path: Path,
    *,
    title: str | None = None,
    var_names: Sequence[str] | None = None,
) -> str:
    """Rank ECDF-difference plot per element (``az.plot_rank``): chains that mix overlap.

    Parameters and return value as for :func:`plot_trace`.
    """
    tree, names = _tree(data, var_names)
    n = _n_elements(tree, names)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    with _style(n):
        pc = az.plot_rank(
            tree,
            var_names=names,
            labeller=_Labeller(),
            col_wrap=cols,
            figure_kwargs={"figsize": (_WIDTH, 0.6 + 2.4 * rows), "layout": "constrained"},
        )
        pc.add_legend("chain")
        return _save_pc(pc, path, title)


def plot_pair(
    data: xr.DataTree | Mapping[str, np.ndarray],
    path: Path,
    *,
    title: str | None = None,
    var_names: Sequence[str] | None = ("p",),
    diagonal: bool = True,
) -> str:
    """Every pair of elements against each other, one colour per chain (``az.plot_pair``).

    With ``diagonal`` the line x = y is drawn in every scatter panel: for the biases it is
    where two components coincide (the ordering boundary; label switching mirrors the
    draws across it).

    Parameters and return value as for :func:`plot_trace`; ``var_names`` defaults to
    ``("p",)``.
    """
    tree, names = _tree(data, var_names)
    n = _n_elements(tree, names)
    if n < 2:
        raise ValueError(f"var_names: a pair plot needs at least 2 quantities, got {n}")
    side = min(_WIDTH, 1.0 + 2.7 * n)
    with _style(n * n):
        pc = az.plot_pair(
            tree,
            var_names=names,
            labeller=_Labeller(),
            aes={"color": ["chain"]},
            visuals={"divergence": "sample_stats" in tree},
            figure_kwargs={"figsize": (side, side), "layout": "constrained"},
        )
        pc.add_legend("chain")
        fig = pc.viz["figure"].item()
        if diagonal:
            for ax in fig.axes:
                if ax.collections:  # the scatter panels
                    ax.axline((0, 0), slope=1, color="black", lw=0.8)
        return _save_pc(pc, path, title)


def plot_forest(
    data: xr.DataTree | Mapping[str, np.ndarray],
    path: Path,
    *,
    title: str | None = None,
    var_names: Sequence[str] | None = None,
    combined: bool = False,
) -> str:
    """Equal-tailed intervals per element, per chain unless ``combined`` (``az.plot_forest``).

    The thick bar is the central 50%, the thin one ``settings.CI_PROB``; the point the
    median.

    Parameters and return value as for :func:`plot_trace`.
    """
    tree, names = _tree(data, var_names)
    n = _n_elements(tree, names)
    per = 1 if combined else tree["posterior"].sizes["chain"]
    with _style(n):
        pc = az.plot_forest(
            tree,
            var_names=names,
            combined=combined,
            labeller=_Labeller(),
            ci_kind=settings.CI_KIND,
            ci_probs=[0.5, settings.CI_PROB],
            point_estimate="median",
            **({} if combined else {"aes": {"color": ["chain"]}}),
            figure_kwargs={
                "figsize": (_WIDTH, 0.8 + n * max(0.45, 0.16 * per)),
                "layout": "constrained",
            },
        )
        if not combined:
            pc.add_legend("chain")
        return _save_pc(pc, path, title)


def plot_energy(idata: xr.DataTree, path: Path, *, title: str | None = None) -> str:
    """Marginal and transition energy with each chain's E-BFMI (``az.plot_energy``).

    The E-BFMI panel marks ``settings.EBFMI_MIN``.

    Parameters
    ----------
    idata : DataTree
        With ``sample_stats["energy"]``.
    path : Path
        The PNG to write.
    title : str, optional
        Figure title.

    Returns
    -------
    str
        The file name written.

    Raises
    ------
    ValueError
        Without sample_stats energy.
    """
    if not isinstance(idata, xr.DataTree) or "sample_stats" not in idata:
        raise ValueError("idata: expected a DataTree with a sample_stats group")
    if "energy" not in idata["sample_stats"].data_vars:
        raise ValueError("idata: sample_stats has no energy (not an HMC/NUTS run?)")
    stats = idata["sample_stats"].to_dataset()
    missing = {d: np.arange(n) for d, n in stats.sizes.items() if d not in stats.coords}
    tree = xr.DataTree.from_dict({"sample_stats": stats[["energy"]].assign_coords(missing)})
    with _style():
        pc = az.plot_energy(
            tree,
            threshold=settings.EBFMI_MIN,
            figure_kwargs={"figsize": (_WIDTH, 3.6), "layout": "constrained"},
        )
        return _save_pc(pc, path, title)


# ---------------------------------------------------------------------- compatibility
def trace_plot(p: np.ndarray, w: np.ndarray, path: Path, title: str) -> str:
    """Traces of w and p, (chain, draw, K) arrays: :func:`plot_trace` on ``{"w", "p"}``."""
    return plot_trace({"w": w, "p": p}, path, title=title)


def pair_plot(p: np.ndarray, path: Path, title: str) -> str:
    """p_i against p_j per chain, (chain, draw, K): :func:`plot_pair` on ``{"p": p}``.

    With a single component there is no pair; the trace of p is drawn instead.
    """
    if np.shape(p)[-1] < 2:
        return plot_trace({"p": p}, path, title=title)
    return plot_pair({"p": p}, path, title=title)


# ---------------------------------------------------------------------- hand-drawn
def em_paths_plot(traces: list[np.ndarray], path: Path) -> str:
    """The EM objective per iteration for every restart: distance to the best value found."""
    best = max(float(t[-1]) for t in traces)
    with _style():
        fig, ax = plt.subplots(figsize=(_WIDTH * 0.75, 4.4), layout="constrained")
        for i, t in enumerate(traces):
            gap = np.maximum(best - np.asarray(t), 1e-12)
            ax.plot(np.arange(len(t)), gap, lw=1, label=f"run {i}" if len(traces) <= 12 else None)
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel("best objective - objective (nats)")
        ax.set_title("EM objective path of every restart")
        if len(traces) <= 12:
            ax.legend(ncol=2, loc="upper right")
        return _save(fig, path)


def pmf_plot(panels: list[dict], path: Path) -> str:
    """Observed frequencies against the fitted pmfs, one panel per number of trials.

    Each panel: ``n``, ``observed`` (frequencies), ``em``, ``map``, ``posterior_mean``,
    ``posterior_lower``, ``posterior_upper`` (arrays over heads = 0..n).
    """
    with _style():
        fig, axes = plt.subplots(
            len(panels), 1, figsize=(_WIDTH, 4.2 * len(panels)), squeeze=False,
            layout="constrained",
        )  # fmt: skip
        for ax, panel in zip(axes[:, 0], panels, strict=True):
            _pmf_panel(ax, panel)
        fig.suptitle("Fitted pmfs against the observed frequencies")
        return _save(fig, path)


def _pmf_panel(ax, panel: dict) -> None:
    h = np.arange(panel["n"] + 1)
    ax.bar(h, panel["observed"], color="0.8", label=f"observed ({panel['count']} seq.)")
    ax.fill_between(
        h,
        panel["posterior_lower"],
        panel["posterior_upper"],
        alpha=0.25,
        color="C2",
        label=f"posterior predictive {settings.CI_PROB:.0%}",
    )
    ax.plot(h, panel["posterior_mean"], "o-", color="C2", ms=4, label="posterior mean")
    ax.plot(h, panel["em"], "s--", color="C0", ms=4, label="EM")
    ax.plot(h, panel["map"], "x:", color="C3", ms=6, label="MAP")
    ax.set_xlabel(f"heads (of {panel['n']})")
    ax.set_ylabel("probability")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))


def responsibilities_plot(outcomes: list[str], em_resp, post_resp, path: Path) -> str:
    """P(coin j | outcome): EM's (Table 6.1) beside the relabelled posterior mean.

    One row per component, sharing the outcome axis, so that up to 40 outcome labels fit
    the page width at a readable size.
    """
    em_resp, post_resp = np.asarray(em_resp), np.asarray(post_resp)
    m, k = em_resp.shape
    show = min(m, 40)
    x = np.arange(show)
    with _style():
        fig, axes = plt.subplots(
            k, 1, figsize=(_WIDTH, 1.0 + 2.2 * k), squeeze=False, sharex=True,
            layout="constrained",
        )  # fmt: skip
        for j, ax in enumerate(axes[:, 0]):
            ax.plot(x, em_resp[:show, j], "s-", ms=4, label="EM")
            ax.plot(x, post_resp[:show, j], "o--", ms=4, label="posterior (relabelled)")
            ax.set_ylabel(f"P(coin {j})")
            ax.set_ylim(-0.02, 1.02)
        axes[-1, 0].set_xticks(x)
        axes[-1, 0].set_xticklabels(outcomes[:show], rotation=90)
        axes[-1, 0].set_xlabel("outcome (heads/trials)")
        axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.suptitle("Responsibilities per distinct outcome")
        return _save(fig, path)


def selection_plot(rows: list[dict], path: Path) -> str:
    """AIC, BIC, ICL and -2 elpd_loo (+/- 2 SE) against K, all lower-is-better."""
    ks = [r["k"] for r in rows]
    with _style():
        fig, ax = plt.subplots(figsize=(_WIDTH * 0.75, 4.6), layout="constrained")
        for key, style in (("aic", "o-"), ("bic", "s-"), ("icl", "^-")):
            ax.plot(ks, [r[key] for r in rows], style, label=key.upper())
        dev = np.array([-2 * r["elpd_loo"] for r in rows])
        err = np.array([2 * 2 * r["se"] for r in rows])
        ax.errorbar(ks, dev, yerr=err, fmt="D--", capsize=3, label="-2 elpd_loo (+/- 2 SE)")
        ax.set_xticks(ks)
        ax.set_xlabel("K (components)")
        ax.set_ylabel("criterion (lower is better)")
        ax.legend()
        return _save(fig, path)
