"""The report's figures (matplotlib, written as PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = [
    "selection_plot",
    "trace_plot",
    "pair_plot",
    "em_paths_plot",
    "pmf_plot",
    "responsibilities_plot",
]

_DPI = 90
# Fixed metadata so the same figures give the same bytes.
_META = {"Software": None}


def _save(fig, path: Path) -> str:
    fig.savefig(path, dpi=_DPI, bbox_inches="tight", metadata=_META)
    plt.close(fig)
    return path.name


def trace_plot(p: np.ndarray, w: np.ndarray, path: Path, title: str) -> str:
    """Traces of p_j and w_j per chain (one line per chain)."""
    k = p.shape[-1]
    fig, axes = plt.subplots(
        k, 2, figsize=(9, 1.6 * k + 0.6), sharex=True, squeeze=False, layout="constrained"
    )
    for j in range(k):
        for c in range(p.shape[0]):
            axes[j, 0].plot(p[c, :, j], lw=0.5, alpha=0.8, label=f"chain {c}")
            axes[j, 1].plot(w[c, :, j], lw=0.5, alpha=0.8)
        axes[j, 0].set_ylabel(f"p[{j}]")
        axes[j, 1].set_ylabel(f"w[{j}]")
    axes[0, 0].legend(fontsize=6, ncol=min(4, p.shape[0]), loc="upper right")
    axes[-1, 0].set_xlabel("draw")
    axes[-1, 1].set_xlabel("draw")
    fig.suptitle(title)
    return _save(fig, path)


def pair_plot(p: np.ndarray, path: Path, title: str) -> str:
    """p_i against p_j for every pair, one colour per chain, with the diagonal p_i = p_j."""
    k = p.shape[-1]
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)] or [(0, 0)]
    fig, axes = plt.subplots(
        1, len(pairs), figsize=(3.4 * len(pairs), 3.4), squeeze=False, layout="constrained"
    )
    for ax, (i, j) in zip(axes[0], pairs, strict=True):
        for c in range(p.shape[0]):
            ax.scatter(p[c, :, i], p[c, :, j], s=2, alpha=0.4, label=f"chain {c}")
        ax.plot([0, 1], [0, 1], color="black", lw=0.8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel(f"p[{i}]")
        ax.set_ylabel(f"p[{j}]")
    axes[0, 0].legend(fontsize=6, markerscale=4)
    fig.suptitle(title)
    return _save(fig, path)


def em_paths_plot(traces: list[np.ndarray], path: Path) -> str:
    """The EM objective per iteration for every restart: distance to the best value found."""
    best = max(float(t[-1]) for t in traces)
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for i, t in enumerate(traces):
        gap = np.maximum(best - np.asarray(t), 1e-12)
        ax.plot(np.arange(len(t)), gap, lw=0.9, label=f"run {i}" if len(traces) <= 12 else None)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("best objective - objective (nats)")
    ax.set_title("EM objective path of every restart")
    if len(traces) <= 12:
        ax.legend(fontsize=6, ncol=2)
    return _save(fig, path)


def pmf_plot(panels: list[dict], path: Path) -> str:
    """Observed frequencies against the fitted pmfs, one panel per number of trials.

    Each panel: ``n``, ``observed`` (frequencies), ``em``, ``map``, ``posterior_mean``,
    ``posterior_lower``, ``posterior_upper`` (arrays over heads = 0..n).
    """
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.5 * len(panels), 3.6), squeeze=False, layout="constrained"
    )
    for ax, panel in zip(axes[0], panels, strict=True):
        h = np.arange(panel["n"] + 1)
        ax.bar(h, panel["observed"], color="0.8", label=f"observed ({panel['count']} seq.)")
        ax.fill_between(
            h,
            panel["posterior_lower"],
            panel["posterior_upper"],
            step=None,
            alpha=0.25,
            color="C2",
            label="posterior predictive 89%",
        )
        ax.plot(h, panel["posterior_mean"], "o-", color="C2", ms=3, label="posterior mean")
        ax.plot(h, panel["em"], "s--", color="C0", ms=3, label="EM")
        ax.plot(h, panel["map"], "x:", color="C3", ms=5, label="MAP")
        ax.set_xlabel(f"heads (of {panel['n']})")
        ax.set_ylabel("probability")
        ax.legend(fontsize=7)
    fig.suptitle("Fitted pmfs against the observed frequencies")
    return _save(fig, path)


def responsibilities_plot(outcomes: list[str], em_resp, post_resp, path: Path) -> str:
    """P(coin j | outcome): EM's (Table 6.1) beside the relabelled posterior mean."""
    em_resp, post_resp = np.asarray(em_resp), np.asarray(post_resp)
    m, k = em_resp.shape
    show = min(m, 40)
    x = np.arange(show)
    fig, axes = plt.subplots(
        1, k, figsize=(3.6 * k, 3.2), squeeze=False, sharey=True, layout="constrained"
    )
    for j, ax in enumerate(axes[0]):
        ax.plot(x, em_resp[:show, j], "s-", ms=3, label="EM")
        ax.plot(x, post_resp[:show, j], "o--", ms=3, label="posterior (relabelled)")
        ax.set_title(f"component {j}")
        ax.set_xticks(x)
        ax.set_xticklabels(outcomes[:show], rotation=90, fontsize=6)
        ax.set_ylim(-0.02, 1.02)
    axes[0, 0].set_ylabel("P(coin | outcome)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Responsibilities per distinct outcome")
    return _save(fig, path)


def selection_plot(rows: list[dict], path: Path) -> str:
    """AIC, BIC, ICL and -2 elpd_loo (+/- 2 SE) against K, all lower-is-better."""
    ks = [r["k"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for key, style in (("aic", "o-"), ("bic", "s-"), ("icl", "^-")):
        ax.plot(ks, [r[key] for r in rows], style, label=key.upper())
    dev = np.array([-2 * r["elpd_loo"] for r in rows])
    err = np.array([2 * 2 * r["se"] for r in rows])
    ax.errorbar(ks, dev, yerr=err, fmt="D--", capsize=3, label="-2 elpd_loo (+/- 2 SE)")
    ax.set_xticks(ks)
    ax.set_xlabel("K (components)")
    ax.set_ylabel("criterion (lower is better)")
    ax.legend(fontsize=8)
    return _save(fig, path)
