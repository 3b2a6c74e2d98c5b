"""The report's sections, built from an :class:`Analysis` for both templates.

A section is a title and a list of blocks; a block is one of ``("p", text)``,
``("ul", items)``, ``("table", header, rows)``, ``("img", file, caption)``, ``("code",
text)``. Markdown and HTML render the same sections (``compare/templates``), so the two
reports cannot say different things.
"""

from __future__ import annotations

import numpy as np

from compare.conclusions import conclusions
from compare.settings import CI_PROB
from compare.stages.uncertainty import draw_stats

__all__ = ["sections", "Untrusted"]


class Untrusted(str):
    """Text that comes from the user's data or command line (a file name, say).

    The Markdown renderer neutralises markup in it; the HTML one escapes everything anyway.
    """


def _f(x, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    return f"{x:.{digits}g}"


def _vec(xs, digits: int = 4) -> str:
    return ", ".join(_f(float(x), digits) for x in xs)


def _pct() -> int:
    return round(CI_PROB * 100)


def header(a, figures: dict) -> dict:
    """Title, data and priors, the conclusions."""
    d, o = a.data, a.options
    prior = o.prior
    intro = (
        f"{d.n_sequences} sequences, {d.n_outcomes} distinct outcomes, trials "
        f"{int(d.trials.min())}-{d.max_trials}; seed {o.seed}; priors Dirichlet("
        f"{_vec(prior.alpha, 3)}) on the weights and Beta({_f(prior.a, 3)}, {_f(prior.b, 3)}) "
        "on every bias."
    )
    return {
        "title": Untrusted(f"EM against the posterior: {d.source}, K = {o.components}"),
        "level": 1,
        "blocks": [("p", intro), ("h", "Conclusions"), ("ul", [f.text for f in conclusions(a)])],
    }


def selection(a, figures: dict) -> dict | None:
    """How many components (with a range of K)."""
    sel = a.selection
    if sel is None:
        return None
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
            _f(m["effective_components"]),
            _f(m["converged"]),
            ", ".join(c.upper() for c in m["preferred_by"]),
        ]
        for m in sel.rows
    ]
    header_row = [
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
        "EM certified",
        "preferred by",
    ]
    blocks = [
        (
            "p",
            "AIC, BIC and ICL of EM's best certified fit per K (lower is better; 2K - 1 free "
            "parameters; ICL at the reduced fit when components coincide), and the "
            "per-sequence PSIS-LOO of the exchangeable model (higher is better). The rest of "
            f"the report is for K = {sel.detailed_k}, the BIC choice.",
        ),
        ("table", header_row, rows),
    ]
    if sel.compare:
        rows = [
            [
                c["model"],
                _f(c.get("elpd"), 6),
                _f(c.get("elpd_diff"), 4),
                _f(c.get("dse"), 3),
                _f(c.get("weight"), 3),
            ]
            for c in sel.compare
        ]
        blocks.append(("p", "ArviZ's comparison (az.compare, PSIS-LOO, one term per sequence):"))
        blocks.append(("table", ["model", "elpd", "elpd_diff", "dse", "stacking weight"], rows))
    if "model_selection" in figures:
        blocks.append(("img", figures["model_selection"], "Criteria against K"))
    return {"title": "How many components", "blocks": blocks}


def em(a, figures: dict) -> dict:
    """EM's runs, certificates and optima."""
    fit = a.em.target
    blocks = [
        (
            "p",
            f"MAP-EM under the model's priors (the objective PyMC's mode search maximises), "
            f"{len(fit.runs)} runs ({a.options.restarts} seeded random starts), method "
            f"'{fit.options['method']}'. A run has converged when its certified gap, the "
            f"log-posterior still to gain, is at most {fit.options['tol']:g} nats: "
            f"{fit.n_converged} of {len(fit.runs)} did.",
        )
    ]
    rows = [
        [
            str(i + 1),
            _f(o.log_likelihood, 10),
            _f(o.log_posterior, 10),
            _f(o.fraction, 3),
            _f(o.gap, 2),
            str(o.reduced.n_components),
            _vec(o.params.p),
            _vec(o.params.weights),
        ]
        for i, o in enumerate(fit.optima)
    ]
    blocks.append(
        (
            "table",
            [
                "optimum",
                "log-likelihood",
                "log-posterior",
                "basin fraction",
                "largest gap",
                "effective K",
                "p",
                "weights",
            ],
            rows,
        )
    )
    stuck = [r for r in fit.runs if not r.converged]
    if stuck:
        rows = [
            [r.start, _f(r.objective, 10), _f(r.gap, 2), r.certificate.kind, str(r.n_iter)]
            for r in stuck
        ]
        blocks.append(("p", "Runs that did not converge (in no optimum, no basin fraction):"))
        blocks.append(("table", ["run", "log-posterior", "gap", "certificate", "iterations"], rows))
    for w in fit.warnings:
        blocks.append(("p", f"Warning ({w['code']}): {w['message']}"))
    if "em_paths" in figures:
        blocks.append(("img", figures["em_paths"], "EM objective path of every restart"))
    return {"title": "EM", "blocks": blocks}


def agreement(a, figures: dict) -> dict:
    """EM's optima against the certified modes of PyMC's searches."""
    agr = a.agreement
    tol = agr.tolerances
    blocks = [
        (
            "p",
            f"Agreement means: objective within {tol['objective']:g} nats, fitted pmfs within "
            f"total variation {tol['total_variation']:g}, and (where the fit is identifiable) "
            f"every parameter within {tol['parameters']:g} after matching. Each PyMC search "
            "(L-BFGS-B, as pm.find_MAP) is polished by certified MAP-EM from its end point, so "
            f"modes are compared, not stopping points. Verdict: {agr.status.replace('_', ' ')}.",
        )
    ]
    rows = [
        [
            str(row["optimum"]),
            _f(row["em"]["objective"], 10),
            _f(row["map"]["certified_mode"]["log_posterior"], 10),
            _f(row["objective_difference"], 3),
            _f(row["max_abs_p_difference"], 3),
            _f(row["total_variation"]["max"], 3),
            _f(row["identifiable"]),
            "agree" if row["agree"] else "DISAGREE",
        ]
        for row in agr.per_optimum
    ]
    blocks.append(
        (
            "table",
            [
                "EM optimum",
                "EM objective",
                "mode from there",
                "difference",
                "max abs dp",
                "TV of pmfs",
                "identifiable",
                "verdict",
            ],
            rows,
        )
    )
    rows = [
        [
            m.search.start,
            _f(m.search.log_posterior, 10),
            _f(m.polished.objective, 10),
            _f(m.shortfall, 2),
            _vec(m.polished.params.p),
            _vec(m.polished.params.weights),
            _f(m.polished.converged),
        ]
        for m in a.map.modes
    ]
    blocks.append(
        (
            "table",
            [
                "PyMC search start",
                "search log-posterior",
                "certified mode",
                "search shortfall",
                "p",
                "weights",
                "certified",
            ],
            rows,
        )
    )
    if "pmf" in figures:
        blocks.append(("img", figures["pmf"], "Fitted pmfs against the observed frequencies"))
    if "landscape" in figures:
        blocks.append(("img", figures["landscape"], "Profile log-likelihood, EM paths, draws"))
    return {"title": "EM against the posterior mode", "blocks": blocks}


def posterior(a, figures: dict) -> dict:
    """ArviZ's summaries of the draws, relabelled only where the labels are identified."""
    s, lab = a.sampling.settings, a.labels
    blocks = [
        (
            "p",
            f"NUTS ({s['sampler']}), {s['chains']} chains x ({s['tune']} tune + {s['draws']} "
            f"draws), target_accept {s['target_accept']}. Summaries by az.summary: "
            f"{_pct()}% equal-tailed intervals, Monte Carlo standard errors, bulk and tail ESS, "
            "rank-normalised split R-hat.",
        )
    ]
    rows = []
    for label, r in a.health.summary:
        rows.append(
            [
                label,
                r["parameter"],
                _f(r["mean"]),
                _f(r["sd"], 3),
                f"{_f(r['ci_lower'])} to {_f(r['ci_upper'])}",
                _f(r["mcse_mean"], 2),
                _f(r["ess_bulk"], 4),
                _f(r["ess_tail"], 4),
                _f(r["r_hat"], 4),
            ]
        )
    header_row = [
        "draws",
        "parameter",
        "mean",
        "sd",
        f"ETI{_pct()}",
        "MCSE",
        "ESS bulk",
        "ESS tail",
        "R-hat",
    ]
    blocks.append(("table", header_row, rows))
    if not lab.identified:
        blocks.append(("p", f"No relabelled per-component summary: {lab.reason}."))
    ll = draw_stats(lab.invariant["log_likelihood"][..., None])
    blocks.append(
        (
            "p",
            f"Label-invariant: log-likelihood mean {_f(ll['mean'][0], 8)}, "
            f"sd {_f(ll['sd'][0], 3)}.",
        )
    )
    for name, caption in _POSTERIOR_FIGURES:
        if name in figures:
            blocks.append(("img", figures[name], caption))
    return {"title": "Posterior", "blocks": blocks}


_POSTERIOR_FIGURES = (
    ("trace", "Trace and densities, exchangeable model, labels as sampled"),
    ("trace_relabelled", "Trace and densities, relabelled draws"),
    ("rank_relabelled", "Rank plot, relabelled draws"),
    ("trace_ordered", "Trace and densities, ordered model"),
    ("rank_ordered", "Rank plot, ordered model"),
    ("pair", "p_i against p_j per chain, labels as sampled"),
    ("forest", f"Forest plot ({_pct()}% intervals per chain)"),
    ("energy", "Energy, exchangeable model (E-BFMI)"),
    ("energy_ordered", "Energy, ordered model (E-BFMI)"),
    ("responsibilities", "Posterior responsibilities (relabelled) against EM's"),
)


def health(a, figures: dict) -> dict:
    """Sampler health of both models."""
    rows = []
    for name in ("exchangeable", "ordered"):
        h = getattr(a.health, name)
        rows.append(
            [
                name,
                str(h.divergences),
                _f(h.max_rhat),
                _f(h.min_ess_bulk, 3),
                _f(h.min_ess_tail, 3),
                _f(h.min_bfmi, 3),
                "; ".join(h.warnings) or "none",
            ]
        )
    return {
        "title": "Sampler health",
        "blocks": [
            (
                "p",
                "Post-warm-up divergences, the largest rank-normalised split R-hat, the "
                "smallest bulk and tail ESS and E-BFMI. The exchangeable model is judged on "
                "label-invariant quantities (and relabelled draws where labels are identified).",
            ),
            (
                "table",
                [
                    "model",
                    "divergences",
                    "max R-hat",
                    "min ESS bulk",
                    "min ESS tail",
                    "min E-BFMI",
                    "warnings",
                ],
                rows,
            ),
        ],
    }


def labels(a, figures: dict) -> dict:
    """Label switching."""
    lab = a.labels
    blocks = []
    if not lab.identified:
        blocks.append(("p", f"Labels not identified: {lab.reason}. No switching verdict."))
    else:
        sw = lab.switching
        blocks.append(
            (
                "p",
                f"Relabelling: {lab.method}. Detected: {_f(lab.detected)} (between chains: "
                f"{_f(sw['between_chains'])}, within chains: {_f(sw['within_chains'])}).",
            )
        )
        rows = [
            [
                str(c["chain"]),
                str(c["modal_permutation"]),
                _f(c["decided_fraction"], 3),
                _f(c["off_modal_fraction"], 3),
                str(c["n_switches"]),
            ]
            for c in sw["chains"]
        ]
        header_row = [
            "chain",
            "most common labelling",
            "draws decided",
            "decidedly off it",
            "switches",
        ]
        blocks.append(("table", header_row, rows))
    check = lab.ordered
    verdict = (
        "the ordering cuts through a mode" if check.cuts_through else "it separates the components"
    )
    blocks.append(
        (
            "p",
            f"Ordered-biases model: share of draws with adjacent biases within "
            f"{check.tau_sd:g} posterior sd {_vec(check.pressed_fraction, 3) or 'n/a'} "
            f"(threshold {check.threshold:g}): {verdict}.",
        )
    )
    return {"title": "Label switching", "blocks": blocks}


def uncertainty(a, figures: dict) -> dict:
    """EM's standard errors beside the posterior."""
    unc = a.uncertainty.to_dict()
    if not unc["comparable"]:
        why = unc["note"].removeprefix("not compared: ")
        text = f"Standard errors of EM's estimate are not compared with the posterior: {why}."
        return {"title": "EM's uncertainty against the posterior's", "blocks": [("p", text)]}
    se, post, est = unc["em_standard_errors"], unc["posterior"], unc["em_estimate"]
    rows = []
    for var, key in (("p", "p"), ("w", "weights")):
        for j in range(len(est[key])):
            lo, hi = unc["em_intervals"][key][j]
            ps = post[var]
            rows.append(
                [
                    f"{var}[{j}]",
                    _f(est[key][j]),
                    _f(se[key][j], 3),
                    f"{_f(lo)} to {_f(hi)}",
                    _f(ps["mean"][j]),
                    _f(ps["sd"][j], 3),
                    f"{_f(ps[f'eti{_pct()}_lower'][j])} to {_f(ps[f'eti{_pct()}_upper'][j])}",
                ]
            )
    return {
        "title": "EM's uncertainty against the posterior's",
        "blocks": [
            (
                "p",
                f"Observed information (exact Hessian, Louis 1982), condition "
                f"{_f(se['condition'], 2)}; {unc['em_intervals']['kind']}.",
            ),
            (
                "table",
                [
                    "parameter",
                    "EM",
                    "EM SE",
                    "EM interval",
                    "posterior mean",
                    "posterior sd",
                    f"posterior ETI{_pct()}",
                ],
                rows,
            ),
        ],
    }


def reproduce(a, figures: dict, command: list[str] | None) -> dict:
    """The command and the files."""
    return {
        "title": "Reproduce",
        "blocks": [
            ("code", Untrusted(" ".join(command) if command else "python -m compare report ...")),
            (
                "p",
                "results.json holds every number above; posterior.nc and "
                "posterior_ordered.nc the draws (netCDF, open with xarray.open_datatree); "
                "manifest.json the package versions, seed, data hash and run time. The same "
                "command on the same machine and package versions gives a byte-identical "
                "results.json.",
            ),
        ],
    }


def user_em(a, figures: dict) -> dict | None:
    """An estimate brought from another EM, judged beside the built-in one."""
    u = a.user_em
    if u is None:
        return None
    d = u.to_dict()
    rows = [
        [
            "your estimate",
            _vec(d["p"]),
            _vec(d["weights"]),
            _f(d["log_likelihood"], 10),
            _f(d["gap"], 3),
        ],
        [
            "optimum reached from it",
            _vec(d["optimum"]["p"]),
            _vec(d["optimum"]["weights"]),
            _f(d["optimum"]["log_likelihood"], 10),
            _f(d["optimum"]["gap"], 3),
        ],
    ]
    claimed = "none" if d["log_likelihood_claimed"] is None else _f(d["log_likelihood_claimed"], 10)
    blocks = [
        (
            "p",
            f"From {u.estimate.source.removeprefix('--em-result ')}. Claimed log-likelihood "
            f"{claimed}; recomputed here (full binomial log pmf) {_f(d['log_likelihood'], 10)}: "
            f"{d['claim']}. Certified EM from the estimate gains {_f(d['distance_to_optimum'], 3)} "
            f"nats. Against the posterior mode: {'agrees' if d['agree'] else 'does not agree'}.",
        ),
        ("table", ["", "p", "weights", "log-likelihood", "certified gap (nats)"], rows),
    ]
    if d["in_posterior_intervals"] is not None:
        inside = d["in_posterior_intervals"]
        blocks.append(
            (
                "p",
                f"Inside the relabelled posterior's {_pct()}% intervals (components by "
                f"increasing p): p {inside['p']}, weights {inside['weights']}.",
            )
        )
    return {"title": "Your EM", "blocks": blocks}


def which_coin(a, figures: dict) -> dict:
    """Per distinct outcome: which coin, by EM and by the posterior (or co-clustering)."""
    from em import e_step

    data, lab = a.data, a.labels
    show = min(data.n_outcomes, 40)
    order = np.argsort(-data.counts, kind="stable")[:show]
    em_resp = e_step(data, a.em.target.params).resp
    k = em_resp.shape[1]
    if lab.identified:
        rows = [
            [
                str(data.heads[m]),
                str(data.trials[m]),
                str(data.counts[m]),
                *(_f(em_resp[m, j], 3) for j in range(k)),
                *(_f(lab.resp[m, j], 3) for j in range(k)),
            ]
            for m in sorted(order)
        ]
        header_row = [
            "heads",
            "trials",
            "sequences",
            *(f"EM P(coin {j + 1})" for j in range(k)),
            *(f"posterior P(coin {j + 1})" for j in range(k)),
        ]
        text = (
            "P(coin | outcome): EM's at its best fit (Table 6.1) beside the posterior mean over "
            "the relabelled draws. `python -m em fit DATA --assignments OUT.csv` writes it for "
            "every input row."
        )
        return {"title": "Which coin", "blocks": [("p", text), ("table", header_row, rows)]}
    outcomes = [int(m) for m in lab.coclustering_outcomes]
    shown = outcomes[:12]
    cc = np.asarray(lab.analysis.coclustering)
    rows = [
        [f"{data.heads[m]}/{data.trials[m]}", *(_f(cc[i, j], 2) for j in range(len(shown)))]
        for i, m in enumerate(shown)
    ]
    header_row = ["outcome", *(f"{data.heads[m]}/{data.trials[m]}" for m in shown)]
    text = (
        f"The labels are not identified ({lab.reason}), so no outcome belongs to a coin "
        "here. Label-invariant instead: the posterior probability that two sequences with "
        "these outcomes (heads/trials) come from the same coin."
    )
    return {"title": "Which coin", "blocks": [("p", text), ("table", header_row, rows)]}


_SECTIONS = (
    header,
    selection,
    user_em,
    which_coin,
    em,
    agreement,
    posterior,
    health,
    labels,
    uncertainty,
)


def sections(a, figures: dict, command: list[str] | None = None) -> list[dict]:
    """Every section of the report, in order."""
    out = [s for s in (fn(a, figures) for fn in _SECTIONS) if s is not None]
    out.append(reproduce(a, figures, command))
    return out
