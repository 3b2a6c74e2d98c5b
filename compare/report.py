"""Write the report: results.json, report.md, report.html, figures, posteriors, manifest.

Everything is written into a temporary folder beside DIR and moved into place at the
end, so an interrupted run leaves no half report; a non-empty DIR is refused unless
``force`` is given, and ``force`` replaces only a report the suite wrote (compare/output.py).
"""

from __future__ import annotations

import base64
import html
import json
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from compare import plots
from compare.analysis import ReportOptions, run_analysis, run_selection, validate_options
from compare.output import check_out_dir, staging
from em import BinomialData, mixture_pmf
from models import save_posterior

__all__ = ["write_report", "check_out_dir", "render_markdown", "render_html"]

_PACKAGES = (
    "numpy",
    "scipy",
    "pymc",
    "pytensor",
    "arviz",
    "arviz-base",
    "arviz-stats",
    "xarray",
    "matplotlib",
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
) -> dict:
    """Run the analysis and write the report into ``out``; returns the results.

    With ``select`` (several K) the report adds model selection over those K, and its
    detailed comparison is for the K that BIC prefers.
    """
    out = Path(out)
    validate_options(opts)
    start = time.perf_counter()
    with staging(out, force=force, inputs=[data.source]) as tmp:  # compare/output.py
        if select and len(select) > 1:
            results, art = run_selection(data, opts, select)
        else:
            results, art = run_analysis(data, opts)
        (tmp / "figures").mkdir()
        figures = _figures(data, results, art, tmp / "figures")
        save_posterior(art["idata"], tmp / "posterior.nc")
        save_posterior(art["idata_ordered"], tmp / "posterior_ordered.nc")
        text = json.dumps(results, indent=2, allow_nan=False) + "\n"
        (tmp / "results.json").write_text(text)
        blocks = _blocks(results, figures, command)
        (tmp / "report.md").write_text(render_markdown(blocks))
        (tmp / "report.html").write_text(render_html(blocks, tmp))
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


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


# ---------------------------------------------------------------------- figures
def _figures(data: BinomialData, r: dict, art: dict, folder: Path) -> dict:
    figs = {}
    figs["trace_raw"] = plots.trace_plot(
        art["p_raw"], art["w_raw"], folder / "trace_raw.png", "Exchangeable model, raw labels"
    )
    figs["trace_relabelled"] = plots.trace_plot(
        art["p_rel"],
        art["w_rel"],
        folder / "trace_relabelled.png",
        "Exchangeable model, relabelled",
    )
    figs["trace_ordered"] = plots.trace_plot(
        art["p_ord"], art["w_ord"], folder / "trace_ordered.png", "Ordered model"
    )
    figs["pairs_raw"] = plots.pair_plot(
        art["p_raw"], folder / "pairs_raw.png", "p_i against p_j per chain (raw labels)"
    )
    figs["pairs_relabelled"] = plots.pair_plot(
        art["p_rel"], folder / "pairs_relabelled.png", "p_i against p_j per chain (relabelled)"
    )
    figs["em_paths"] = plots.em_paths_plot(
        [run.trace for run in art["target"].runs], folder / "em_paths.png"
    )
    figs["pmf"] = plots.pmf_plot(_pmf_panels(data, art), folder / "pmf.png")
    if "model_selection" in r:
        figs["model_selection"] = plots.selection_plot(
            r["model_selection"], folder / "model_selection.png"
        )
    if art["post_resp"] is not None:
        labels = [f"{h}/{n}" for h, n in zip(data.heads, data.trials, strict=True)]
        figs["responsibilities"] = plots.responsibilities_plot(
            labels, art["em_resp"], art["post_resp"], folder / "responsibilities.png"
        )
    return figs


def _pmf_panels(data: BinomialData, art: dict) -> list[dict]:
    pred = art["idata"]["predictive"]
    trial_values = pred["trials"].values
    totals = {int(n): int(data.counts[data.trials == n].sum()) for n in trial_values}
    common = sorted(totals, key=lambda n: (-totals[n], n))[:3]
    panels = []
    for n in sorted(common):
        t = int(np.flatnonzero(trial_values == n)[0])
        sel = data.trials == n
        observed = np.zeros(n + 1)
        observed[data.heads[sel]] = data.counts[sel] / totals[n]
        if "pmf" in pred:
            draws = pred["pmf"].values[:, :, t, : n + 1].reshape(-1, n + 1)
            lower, upper = np.quantile(draws, [0.055, 0.945], axis=0)
        else:
            lower = upper = pred["pmf_mean"].values[t, : n + 1]
        panels.append(
            {
                "n": n,
                "count": totals[n],
                "observed": observed,
                "em": mixture_pmf(art["best_em"], n),
                "map": mixture_pmf(art["best_map"], n),
                "posterior_mean": pred["pmf_mean"].values[t, : n + 1],
                "posterior_lower": lower,
                "posterior_upper": upper,
            }
        )
    return panels


# ---------------------------------------------------------------------- text
def _f(x, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    return f"{x:.{digits}g}"


def _vec(xs, digits: int = 4) -> str:
    return ", ".join(_f(x, digits) for x in xs)


def _blocks(r: dict, figures: dict, command: list[str] | None) -> list[tuple]:
    """The report as a list of blocks, rendered to Markdown and to HTML alike."""
    d, opts = r["data"], r["options"]
    k = opts["components"]
    b: list[tuple] = []
    b.append(("h1", f"EM against the posterior: {d['source']}, K = {k}"))
    b.append(
        (
            "p",
            f"{d['n_sequences']} sequences, {d['n_outcomes']} distinct outcomes, "
            f"trials {d['min_trials']}-{d['max_trials']}; seed {opts['seed']}; priors "
            f"Dirichlet({_vec(opts['prior_weights'], 3)}) on the weights and "
            f"Beta({_vec(opts['prior_p'], 3)}) on every bias.",
        )
    )
    b.append(("h2", "Conclusions"))
    b.append(("ul", r["conclusions"]))

    if "model_selection" in r:
        b.append(("h2", "How many components"))
        b.append(
            (
                "p",
                "AIC, BIC and ICL of EM's best fit per K (lower is better; 2K - 1 free "
                "parameters), and the per-sequence PSIS-LOO of the exchangeable model "
                "(higher is better). The rest of the report is for K = "
                f"{r['model_selection_detailed_k']}, the BIC choice.",
            )
        )
        rows = [
            [
                str(m["k"]),
                _f(m["log_likelihood"], 10),
                str(m["n_parameters"]),
                _f(m["aic"], 6),
                _f(m["bic"], 6),
                _f(m["icl"], 6),
                _f(m["elpd_loo"], 6),
                _f(m["se"], 3),
                _f(m["max_pareto_k"], 3),
                str(m["effective_components"]),
                ", ".join(c.upper() for c in m["preferred_by"]),
            ]
            for m in r["model_selection"]
        ]
        b.append(
            (
                "table",
                [
                    "K",
                    "log-likelihood",
                    "parameters",
                    "AIC",
                    "BIC",
                    "ICL",
                    "elpd_loo",
                    "SE",
                    "max Pareto k",
                    "effective K",
                    "preferred by",
                ],
                rows,
            )
        )
        if r["model_selection_compare"]:
            rows = [
                [
                    c["model"],
                    _f(c.get("elpd"), 6),
                    _f(c.get("elpd_diff"), 4),
                    _f(c.get("dse"), 3),
                    _f(c.get("weight"), 3),
                ]
                for c in r["model_selection_compare"]
            ]
            b.append(("p", "ArviZ's comparison (az.compare, PSIS-LOO, one term per sequence):"))
            b.append(("table", ["model", "elpd", "elpd_diff", "dse", "stacking weight"], rows))
        b.append(("img", figures["model_selection"], "Criteria against K"))

    b.append(("h2", "EM"))
    target = r["em"]["map_em"] or r["em"]["ml"]
    b.append(
        (
            "p",
            f"{target['n_runs']} runs ({opts['restarts']} seeded random starts); "
            f"best objective {_f(target['log_posterior'] or target['log_likelihood'], 10)}"
            f" after {target['n_iter']} iterations; components by increasing p.",
        )
    )
    rows = [
        [
            str(i + 1),
            _f(o["log_likelihood"], 10),
            _f(o["log_posterior"], 10),
            _f(o["fraction"], 3),
            str(o["effective_components"]),
            _vec(o["p"]),
            _vec(o["weights"]),
        ]
        for i, o in enumerate(target["optima"])
    ]
    b.append(
        (
            "table",
            [
                "optimum",
                "log-likelihood",
                "log-posterior",
                "fraction of runs",
                "effective K",
                "p",
                "weights",
            ],
            rows,
        )
    )
    for w in target["warnings"]:
        b.append(("p", f"Warning ({w['code']}): {w['message']}"))
    b.append(("img", figures["em_paths"], "EM objective path of every restart"))

    agr = r["agreement"]
    b.append(("h2", "EM against the MAP"))
    tol = agr["tolerances"]
    b.append(
        (
            "p",
            f"EM fit: {agr['em_fit']}. Agreement means: objective within "
            f"{tol['objective']:g} nats, fitted pmfs within total variation "
            f"{tol['total_variation']:g}, and (where the fit is identifiable) every "
            f"parameter within {tol['parameters']:g} after Hungarian matching on p.",
        )
    )
    rows = []
    for row in agr["per_optimum"]:
        rows.append(
            [
                str(row["optimum"]),
                _f(row["em"]["objective"], 10),
                _f(row["map"]["log_posterior"], 10),
                _f(row["objective_difference"], 3),
                _f(row["max_abs_p_difference"], 3),
                _f(row["max_abs_weight_difference"], 3),
                _f(row["total_variation"]["max"], 3),
                _f(row["identifiable"]),
                "agree" if row["agree"] else "DISAGREE",
            ]
        )
    b.append(
        (
            "table",
            [
                "EM optimum",
                "EM objective",
                "MAP objective",
                "MAP - EM",
                "max abs dp",
                "max abs dw",
                "TV of pmfs",
                "identifiable",
                "verdict",
            ],
            rows,
        )
    )
    best = agr["best"]
    b.append(
        (
            "p",
            f"Best MAP (from start '{best['map_start']}') against EM's best: "
            f"objective difference {_f(best['objective_difference'], 3)} nats, "
            f"TV {_f(best['total_variation']['max'], 3)}: "
            f"{'agree' if agr['agree'] else 'disagree'}.",
        )
    )
    rows = [
        [
            m["start"],
            _f(m["log_posterior"], 10),
            _f(m["log_likelihood"], 10),
            _vec(m["p"]),
            _vec(m["weights"]),
            _f(m["success"]),
        ]
        for m in r["map"]["results"]
    ]
    b.append(
        (
            "table",
            ["MAP start", "log-posterior", "log-likelihood", "p", "weights", "optimiser success"],
            rows,
        )
    )
    b.append(("img", figures["pmf"], "Fitted pmfs against the observed frequencies"))

    post = r["posterior"]
    b.append(("h2", "Posterior"))
    b.append(
        (
            "p",
            f"NUTS ({post['sampler']}), {post['chains']} chains x ({post['tune']} tune "
            f"+ {post['draws']} draws), target_accept {post['target_accept']}; "
            f"{post['divergences']} divergences (exchangeable), "
            f"{post['divergences_ordered']} (ordered). Intervals: "
            f"{round(post['ci_prob'] * 100)}% equal-tailed.",
        )
    )
    ls = r["label_switching"]
    diag = ls["rhat_ess"]
    rows = []
    key = f"eti{round(post['ci_prob'] * 100)}"
    for label, block, dkey in (
        ("relabelled", post["relabelled"], "relabelled"),
        ("ordered model", post["ordered_model"], "ordered_model"),
        ("raw labels", post["raw"], "raw"),
    ):
        for var in ("p", "w"):
            s = block[var]
            for j in range(k):
                rows.append(
                    [
                        label,
                        f"{var}[{j}]",
                        _f(s["mean"][j]),
                        _f(s["sd"][j]),
                        f"{_f(s[key + '_lower'][j])} to {_f(s[key + '_upper'][j])}",
                        _f(diag[dkey][var]["rhat"][j]),
                        _f(diag[dkey][var]["ess_bulk"][j], 3),
                    ]
                )
    b.append(
        (
            "table",
            ["draws", "parameter", "mean", "sd", f"{key.upper()} interval", "R-hat", "ESS bulk"],
            rows,
        )
    )
    inv = diag["invariant"]
    b.append(
        (
            "p",
            f"Label-invariant quantities: R-hat of the log-likelihood "
            f"{_f(inv['log_likelihood']['max_rhat'])}, largest R-hat of the fitted pmf "
            f"over heads = 0..{ls['invariant_pmf_trials']} {_f(inv['pmf']['max_rhat'])}.",
        )
    )
    if "responsibilities" in figures:
        b.append(
            (
                "img",
                figures["responsibilities"],
                "Posterior responsibilities (relabelled) against EM's (Table 6.1)",
            )
        )

    b.append(("h2", "Label switching"))
    b.append(
        (
            "p",
            f"Each draw is matched to the reference ({ls['reference']['what']}, "
            f"p = {_vec(ls['reference']['p'])}) by Hungarian assignment on p. Detected: "
            f"{_f(ls['detected'])} (between chains: "
            f"{_f(ls['hungarian']['between_chains'])}, within chains: "
            f"{_f(ls['hungarian']['within_chains'])}). Relabelling: {ls['relabelling']}.",
        )
    )
    rows = [
        [
            str(c["chain"]),
            _f(c["non_identity_fraction"], 3),
            str(c["modal_permutation"]),
            _f(c["off_modal_fraction"], 3),
            str(c["distinct_permutations"]),
        ]
        for c in ls["hungarian"]["chains"]
    ]
    b.append(
        (
            "table",
            [
                "chain",
                "draws needing a permutation",
                "most common permutation",
                "draws off it",
                "distinct permutations",
            ],
            rows,
        )
    )
    b.append(
        (
            "p",
            "Ordered-biases model: label switching "
            f"{'detected' if ls['ordered_model']['detected'] else 'not detected'}.",
        )
    )
    b.append(("img", figures["trace_raw"], "Traces, raw labels"))
    b.append(("img", figures["trace_relabelled"], "Traces, relabelled"))
    b.append(("img", figures["trace_ordered"], "Traces, ordered model"))
    b.append(("img", figures["pairs_raw"], "p_i against p_j per chain, raw labels"))
    b.append(("img", figures["pairs_relabelled"], "p_i against p_j per chain, relabelled"))

    unc = r["uncertainty"]
    b.append(("h2", "EM's uncertainty against the posterior's"))
    se = unc["em_standard_errors"]
    if unc["comparable"]:
        b.append(
            (
                "p",
                f"EM's standard errors from the observed information (exact Hessian, "
                f"Louis 1982; condition {_f(se['condition'], 2)}) beside the relabelled "
                f"posterior. {unc['em_intervals']['kind']}.",
            )
        )
        rows = []
        for var, key in (("p", "p"), ("w", "weights")):
            for j in range(k):
                lo, hi = unc["em_intervals"][key][j]
                ps = unc["posterior"][var]
                rows.append(
                    [
                        f"{var}[{j}]",
                        _f(unc["em_estimate"][key][j]),
                        _f(se[key][j], 3),
                        f"{_f(lo)} to {_f(hi)}",
                        _f(ps["mean"][j]),
                        _f(ps["sd"][j], 3),
                        f"{_f(ps['eti89_lower'][j])} to {_f(ps['eti89_upper'][j])}",
                    ]
                )
        b.append(
            (
                "table",
                [
                    "parameter",
                    "EM",
                    "EM SE",
                    "EM interval",
                    "posterior mean",
                    "posterior sd",
                    "posterior ETI89",
                ],
                rows,
            )
        )
    else:
        b.append(
            (
                "p",
                f"Standard errors of EM's estimate are not compared with the posterior: "
                f"{unc['note'].removeprefix('not compared: ')}.",
            )
        )

    mm, ident = r["multimodality"], r["identifiability"]
    b.append(("h2", "Multimodality and identifiability"))
    hdi = mm["hdi_relabelled"]
    b.append(
        (
            "ul",
            [
                f"EM: {mm['em_distinct_optima']} distinct optimum(s) (basin fractions "
                f"{_vec([o['fraction'] for o in mm['em_optima']], 3)}).",
                f"Posterior: the relabelled chains form {mm['posterior_chain_modes']['n_modes']} "
                f"cluster(s); multimodal {round(hdi['prob'] * 100)}% HDI of each p has "
                f"{_vec(hdi['n_intervals'])} interval(s) relabelled and "
                f"{_vec(mm['hdi_raw']['n_intervals'])} raw.",
                f"Collapsed components: {_f(ident['collapsed'])} (effective K = "
                f"{ident['effective_components']}); ridge of equal likelihood: {_f(mm['ridge'])}.",
                f"Identifiability condition trials >= 2K - 1 = {ident['required_trials']}: "
                f"{'holds' if ident['condition_holds'] else 'fails'} (max trials "
                f"{ident['max_trials']}).",
                f"Overdispersion ({ident['overdispersion_test']['test']}): X^2 = "
                f"{_f(ident['overdispersion_test']['statistic'])} on "
                f"{ident['overdispersion_test']['df']} df, p = "
                f"{_f(ident['overdispersion_test']['p_value'], 3)}: "
                f"{'overdispersed' if ident['overdispersed'] else 'not overdispersed'}.",
            ],
        )
    )

    b.append(("h2", "Reproduce"))
    cmd = " ".join(command) if command else "python -m compare report ..."
    b.append(("code", cmd))
    b.append(
        (
            "p",
            "results.json holds every number above; posterior.nc and "
            "posterior_ordered.nc the draws (netCDF, open with xarray.open_datatree); "
            "manifest.json the package versions, seed, data hash and run time.",
        )
    )
    return b


def render_markdown(blocks: list[tuple]) -> str:
    """Blocks to Markdown (figures linked)."""
    out = []
    for block in blocks:
        kind = block[0]
        if kind == "h1":
            out.append(f"# {block[1]}\n")
        elif kind == "h2":
            out.append(f"## {block[1]}\n")
        elif kind == "p":
            out.append(f"{block[1]}\n")
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in block[1]) + "\n")
        elif kind == "code":
            out.append(f"```\n{block[1]}\n```\n")
        elif kind == "table":
            header, rows = block[1], block[2]
            lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(row) + " |" for row in rows]
            out.append("\n".join(lines) + "\n")
        elif kind == "img":
            out.append(f"![{block[2]}](figures/{block[1]})\n")
    return "\n".join(out)


def render_html(blocks: list[tuple], folder: Path) -> str:
    """Blocks to one self-contained HTML page (figures embedded as base64 PNG)."""
    esc = html.escape
    body = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{esc(block[1])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{esc(block[1])}</p>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in block[1]) + "</ul>")
        elif kind == "code":
            body.append(f"<pre><code>{esc(block[1])}</code></pre>")
        elif kind == "table":
            head = "".join(f"<th>{esc(h)}</th>" for h in block[1])
            rows = "".join(
                "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in block[2]
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "img":
            data = base64.b64encode((folder / "figures" / block[1]).read_bytes()).decode()
            body.append(
                f'<figure><img alt="{esc(block[2])}" src="data:image/png;base64,{data}">'
                f"<figcaption>{esc(block[2])}</figcaption></figure>"
            )
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
        "table{border-collapse:collapse;font-size:0.85em;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
        "img{max-width:100%}figcaption{font-size:0.85em;color:#555}"
    )
    title = esc(blocks[0][1]) if blocks and blocks[0][0] == "h1" else "report"
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
