"""Write the report: results.json, report.md, report.html, figures, posteriors, manifest.

Everything is written into a temporary folder beside DIR and moved into place at the
end, so an interrupted run leaves no half report; a non-empty DIR is refused unless
``force`` is given, and ``force`` replaces only a report the suite wrote (compare/output.py).
Markdown and HTML are rendered from the same sections (:mod:`compare.sections`) through
Jinja2 templates (``compare/templates``); the HTML is autoescaped and the Markdown has
markup in data-derived text neutralised.
"""

from __future__ import annotations

import base64
import json
import platform
import re
import sys
import time
from importlib import metadata
from pathlib import Path

import jinja2
import numpy as np

from compare import plots
from compare.analysis import Analysis, run_analysis
from compare.health import as_datatree
from compare.landscape import landscape_figure, profile_landscapes
from compare.options import ReportOptions, validate_options
from compare.output import check_out_dir, staging
from compare.sections import Untrusted, sections
from compare.settings import CI_PROB
from compare.stages.labels import annotate_posterior
from em import BinomialData, mixture_pmf
from models import save_posterior

__all__ = ["write_report", "check_out_dir", "render_markdown", "render_html", "write_figures"]

_PACKAGES = (
    "numpy",
    "scipy",
    "pymc",
    "pytensor",
    "arviz",
    "arviz-base",
    "arviz-stats",
    "arviz-plots",
    "xarray",
    "matplotlib",
    "jinja2",
    "nutpie",
    "h5netcdf",
    "binomial-mixture-suite",
)


def write_report(
    data: BinomialData,
    opts: ReportOptions,
    out,
    *,
    force: bool = False,
    command: list[str] | None = None,
    select: list[int] | None = None,
    user=None,
) -> dict:
    """Run the analysis and write the report into ``out``; returns results.json's content.

    With ``select`` (several K) the report adds model selection over those K, and its
    detailed comparison is for the K that BIC prefers. ``user``: an estimate from another
    EM (:class:`compare.stages.user_em.UserEstimate`), judged beside the built-in one.
    """
    out = Path(out)
    validate_options(opts)
    start = time.perf_counter()
    with staging(out, force=force, inputs=[data.source]) as tmp:  # compare/output.py
        analysis = run_analysis(data, opts, select, user)
        results = analysis.to_dict()
        _write_folder(analysis, results, tmp, command)
        manifest = {
            "command": command if command is not None else sys.argv,
            "seed": opts.seed,
            "data_sha256": results["data"]["sha256"],
            "data_source": data.source,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "packages": {name: _version(name) for name in _PACKAGES},
            "run_time_seconds": round(time.perf_counter() - start, 2),
            "files": sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
            + ["manifest.json"],
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return results


def _write_folder(analysis: Analysis, results: dict, folder: Path, command) -> None:
    """Everything but the manifest: figures, posteriors, results.json, report.md/.html."""
    (folder / "figures").mkdir()
    figures = write_figures(analysis, folder / "figures")
    tree = annotate_posterior(analysis.sampling.exchangeable.idata, analysis.labels)
    save_posterior(tree, folder / "posterior.nc")
    save_posterior(analysis.sampling.ordered.idata, folder / "posterior_ordered.nc")
    (folder / "results.json").write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
    secs = sections(analysis, figures, command)
    (folder / "report.md").write_text(render_markdown(secs))
    (folder / "report.html").write_text(render_html(secs, folder / "figures"))


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


# ---------------------------------------------------------------------- figures
def write_figures(a: Analysis, folder: Path) -> dict:
    """Every figure of the report, as PNG files in ``folder``; name -> file name."""
    figs = {
        "em_paths": plots.em_paths_plot(
            [run.trace for run in a.em.target.runs], folder / "em_paths.png"
        ),
        "pmf": plots.pmf_plot(_pmf_panels(a), folder / "pmf.png"),
    }
    if a.selection is not None:
        figs["model_selection"] = plots.selection_plot(
            list(a.selection.rows), folder / "model_selection.png"
        )
    if a.labels.resp is not None:
        labels = [f"{h}/{n}" for h, n in zip(a.data.heads, a.data.trials, strict=True)]
        from em import e_step

        figs["responsibilities"] = plots.responsibilities_plot(
            labels,
            e_step(a.data, a.em.target.params).resp,
            a.labels.resp,
            folder / "responsibilities.png",
        )
    post = a.sampling.exchangeable
    if a.em.ml.converged and a.options.components > 1:  # the profile log-likelihood
        landscapes = profile_landscapes(a.data, a.em.ml.params)
        figs["landscape"] = landscape_figure(
            landscapes, a.em.target.runs, post.p, folder / "landscape.png"
        )
    figs.update(_arviz_views(a, folder))
    return figs


def _arviz_views(a: Analysis, folder: Path) -> dict:
    """ArviZ's standard views: trace, rank, pair, forest, energy (arviz-plots)."""
    post, ordered = a.sampling.exchangeable, a.sampling.ordered
    if post.idata is None or ordered.idata is None:
        return {}
    wp = ["w", "p"] if a.options.components > 1 else ["p"]
    figs = {
        "trace": plots.plot_trace(
            post.idata,
            folder / "trace_raw.png",
            var_names=wp,
            title="Exchangeable model, labels as sampled",
        ),
        "trace_ordered": plots.plot_trace(
            ordered.idata, folder / "trace_ordered.png", var_names=wp, title="Ordered model"
        ),
        "rank_ordered": plots.plot_rank(
            ordered.idata, folder / "rank_ordered.png", var_names=wp, title="Ordered model"
        ),
        "energy": plots.plot_energy(
            post.idata, folder / "energy.png", title="Exchangeable model: energy"
        ),
        "energy_ordered": plots.plot_energy(
            ordered.idata, folder / "energy_ordered.png", title="Ordered model: energy"
        ),
    }
    if a.options.components > 1:
        figs["pair"] = plots.plot_pair(
            post.idata, folder / "pairs_raw.png", title="p_i against p_j, labels as sampled"
        )
    forest = ordered.idata
    if a.labels.identified:
        relabelled = as_datatree({"w": a.labels.weights, "p": a.labels.p}, sample_stats=post.idata)
        figs["trace_relabelled"] = plots.plot_trace(
            relabelled, folder / "trace_relabelled.png", var_names=wp, title="Relabelled draws"
        )
        figs["rank_relabelled"] = plots.plot_rank(
            relabelled, folder / "rank_relabelled.png", var_names=wp, title="Relabelled draws"
        )
        forest = relabelled
    figs["forest"] = plots.plot_forest(
        forest,
        folder / "forest.png",
        var_names=wp,
        title="Relabelled draws" if a.labels.identified else "Ordered model",
    )
    return figs


def _pmf_panels(a: Analysis) -> list[dict]:
    data = a.data
    pred = a.sampling.exchangeable.idata["predictive"]
    trial_values = pred["trials"].values
    totals = {int(n): int(data.counts[data.trials == n].sum()) for n in trial_values}
    common = sorted(totals, key=lambda n: (-totals[n], n))[:3]
    lo_q, hi_q = (1 - CI_PROB) / 2, (1 + CI_PROB) / 2
    panels = []
    for n in sorted(common):
        t = int(np.flatnonzero(trial_values == n)[0])
        sel = data.trials == n
        observed = np.zeros(n + 1)
        observed[data.heads[sel]] = data.counts[sel] / totals[n]
        if "pmf" in pred:
            draws = pred["pmf"].values[:, :, t, : n + 1].reshape(-1, n + 1)
            lower, upper = np.quantile(draws, [lo_q, hi_q], axis=0)
        else:
            lower = upper = pred["pmf_mean"].values[t, : n + 1]
        panels.append(
            {
                "n": n,
                "count": totals[n],
                "observed": observed,
                "em": mixture_pmf(a.em.target.params, n),
                "map": mixture_pmf(a.agreement.mode.polished.params, n)
                if a.agreement.mode is not None
                else mixture_pmf(a.map.best.polished.params, n),
                "posterior_mean": pred["pmf_mean"].values[t, : n + 1],
                "posterior_lower": lower,
                "posterior_upper": upper,
                "ci_prob": CI_PROB,
            }
        )
    return panels


# ---------------------------------------------------------------------- rendering
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#!])")


def _md(text) -> str:
    """Neutralise Markdown and inline HTML in text from the data or the command line."""
    return _MD_SPECIAL.sub(r"\\\1", text) if isinstance(text, Untrusted) else str(text)


def _fence(text) -> str:
    """A code fence longer than any run of backticks in ``text``."""
    longest = max((len(m) for m in re.findall(r"`+", str(text))), default=0)
    return "`" * max(3, longest + 1)


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("compare", "templates"),
    autoescape=jinja2.select_autoescape(["html.j2"]),
    keep_trailing_newline=True,
    trim_blocks=False,
)
_ENV.filters["md"] = _md
_ENV.filters["fence"] = _fence


def render_markdown(secs: list[dict]) -> str:
    """Sections to Markdown (figures linked)."""
    return _ENV.get_template("report.md.j2").render(sections=secs)


def render_html(secs: list[dict], figure_folder: Path) -> str:
    """Sections to one self-contained HTML page (figures embedded as base64 PNG)."""
    images = {
        b[1]: base64.b64encode((Path(figure_folder) / b[1]).read_bytes()).decode()
        for sec in secs
        for b in sec["blocks"]
        if b[0] == "img"
    }
    title = secs[0]["title"] if secs else "report"
    return _ENV.get_template("report.html.j2").render(sections=secs, images=images, title=title)
