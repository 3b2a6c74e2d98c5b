"""Run EM and the Bayesian model on one data set and compute every number of the report."""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy.stats import norm

from compare.agreement import TOLERANCES, compare_fits
from compare.diagnostics import (
    CI_PROB,
    chain_modes,
    invariant_draws,
    multimodal_intervals,
    overdispersion_test,
    rhat_ess,
)
from compare.labels import (
    apply_permutations,
    draw_responsibilities,
    hungarian_permutations,
    stephens_permutations,
    switching_summary,
)
from em import BinomialData, FitResult, MixtureParams, e_step, fit_data, standard_errors
from models import DEFAULT_SAMPLER, SAMPLERS, MixtureModel, check_prior

__all__ = ["ReportOptions", "validate_options", "run_analysis", "run_selection", "data_hash"]

# Stephens' relabelling holds every draw's responsibilities; above this many numbers
# (chain x draw x outcomes x K) it is skipped and the Hungarian match is used alone.
_MAX_STEPHENS = 20_000_000


@dataclass(frozen=True)
class ReportOptions:
    """Options of ``python -m compare report`` (defaults are the CLI's)."""

    components: int
    seed: int = 0
    restarts: int = 10
    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    sampler: str = DEFAULT_SAMPLER
    prior_weights: float | tuple = 1.0
    prior_p: tuple = (1.0, 1.0)
    map_random_starts: int = 4
    target_accept: float = 0.9


def validate_options(opts: ReportOptions) -> None:
    """Raise ValueError naming the CLI flag for a bad option."""
    for name, flag, minimum in (
        ("components", "--components", 1),
        ("seed", "--seed", 0),
        ("restarts", "--restarts", 0),
        ("draws", "--draws", 1),
        ("tune", "--tune", 0),
        ("chains", "--chains", 1),
    ):
        value = getattr(opts, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{flag} must be an integer >= {minimum}, got {value!r}")
    if opts.sampler not in SAMPLERS:
        raise ValueError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {opts.sampler!r}")
    try:
        check_prior(opts.prior_weights, opts.prior_p, opts.components)
    except ValueError as exc:
        raise ValueError(
            str(exc).replace("prior_weights", "--prior-weights").replace("prior_p", "--prior-p")
        ) from None


def data_hash(data: BinomialData) -> str:
    """SHA-256 of the compressed data (outcomes and counts), independent of row order."""
    h = hashlib.sha256()
    for arr in (data.heads, data.trials, data.counts):
        h.update(np.ascontiguousarray(arr, dtype="<i8").tobytes())
    return h.hexdigest()


def _seed_int(ss: np.random.SeedSequence) -> int:
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def _em_summary(res: FitResult) -> dict:
    return {
        "weights": res.weights.tolist(),
        "p": res.p.tolist(),
        "log_likelihood": res.log_likelihood,
        "log_posterior": res.log_posterior,
        "n_iter": res.n_iter,
        "converged": res.converged,
        "seed": res.seed,
        "n_runs": len(res.runs),
        "optima": [o.to_dict() for o in res.optima],
        "runs": [
            {k: v for k, v in r.to_dict().items() if k not in ("trace", "init")} for r in res.runs
        ],
        "warnings": list(res.warnings),
    }


def _stats(x: np.ndarray, prob: float = CI_PROB) -> dict:
    """Mean, sd and the equal-tailed interval of each trailing element of (chain, draw, K)."""
    flat = x.reshape(-1, x.shape[-1])
    lo, hi = np.quantile(flat, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    return {
        "mean": flat.mean(axis=0).tolist(),
        "sd": flat.std(axis=0, ddof=1).tolist(),
        f"eti{round(prob * 100)}_lower": lo.tolist(),
        f"eti{round(prob * 100)}_upper": hi.tolist(),
    }


def _draws(idata) -> tuple[np.ndarray, np.ndarray]:
    post = idata["posterior"]
    w = np.asarray(post["w"].transpose("chain", "draw", "component").values, dtype=float)
    p = np.asarray(post["p"].transpose("chain", "draw", "component").values, dtype=float)
    return w, p


def run_analysis(data: BinomialData, opts: ReportOptions) -> tuple[dict, dict]:
    """Everything the report says, as (results, artefacts).

    ``results`` is plain JSON-able data; ``artefacts`` holds the DataTrees and arrays
    the figures and files are made from. Every random choice comes from
    ``np.random.SeedSequence(opts.seed)``.
    """
    validate_options(opts)
    k = opts.components
    alpha, a, b = check_prior(opts.prior_weights, opts.prior_p, k)
    root = np.random.SeedSequence(opts.seed)
    s_em, s_map_em, s_map, s_post, s_ord = root.spawn(5)
    flat = bool(np.all(alpha == 1) and a == 1 and b == 1)
    map_em_possible = bool(np.all(alpha >= 1) and a >= 1 and b >= 1)

    # ---------------------------------------------------------------- EM
    ml = fit_data(data, k, restarts=opts.restarts, seed=_seed_int(s_em))
    map_em = None
    if map_em_possible:
        map_em = fit_data(
            data,
            k,
            restarts=opts.restarts,
            seed=_seed_int(s_map_em),
            prior_weights=alpha.tolist(),
            prior_p=(a, b),
        )
    target = map_em if map_em is not None else ml  # EM on the MAP's objective
    best_em = target.params
    reduced = target.optima[0].reduced
    collapsed = reduced.n_components < k
    identifiable_cond = data.max_trials >= 2 * k - 1

    # ---------------------------------------------------------------- models
    prior_kw = {"prior_weights": alpha.tolist(), "prior_p": (a, b)}
    exch = MixtureModel(data, k, **prior_kw)
    ordered = MixtureModel(data, k, ordered=True, **prior_kw)
    starts = [
        (f"EM optimum {i + 1}", o.params.weights, o.params.p) for i, o in enumerate(target.optima)
    ]
    maps = exch.find_map(starts, n_random=opts.map_random_starts, seed=s_map)
    sample_kw = {
        "draws": opts.draws,
        "tune": opts.tune,
        "chains": opts.chains,
        "sampler": opts.sampler,
        "target_accept": opts.target_accept,
    }
    idata = exch.sample(seed=s_post, **sample_kw)
    idata_ord = ordered.sample(seed=s_ord, **sample_kw)

    # ---------------------------------------------------------------- agreement
    identifiable = identifiable_cond and not collapsed
    per_optimum = []
    for i, opt in enumerate(target.optima):
        mp = next(m for m in maps if m.start == f"EM optimum {i + 1}")
        em_obj = opt.log_posterior if opt.log_posterior is not None else opt.log_likelihood
        opt_identifiable = identifiable_cond and opt.reduced.n_components == k
        per_optimum.append(
            {
                "optimum": i + 1,
                "em": {
                    "weights": opt.params.weights.tolist(),
                    "p": opt.params.p.tolist(),
                    "objective": em_obj,
                    "log_likelihood": opt.log_likelihood,
                    "fraction": opt.fraction,
                },
                "map": mp.to_dict(),
                **compare_fits(
                    opt.params,
                    em_obj,
                    opt.log_likelihood,
                    MixtureParams(mp.weights, mp.p),
                    mp.log_posterior,
                    mp.log_likelihood,
                    trials=data.trials,
                    counts=data.counts,
                    identifiable=opt_identifiable,
                ),
            }
        )
    best_map = maps[0]
    em_best_obj = (
        target.log_posterior if target.log_posterior is not None else (target.log_likelihood)
    )
    overall = compare_fits(
        best_em,
        em_best_obj,
        target.log_likelihood,
        MixtureParams(best_map.weights, best_map.p),
        best_map.log_posterior,
        best_map.log_likelihood,
        trials=data.trials,
        counts=data.counts,
        identifiable=identifiable,
    )
    objective_name = "log_posterior" if map_em is not None else "log_likelihood"
    agreement = {
        "objective": objective_name,
        "em_fit": "MAP-EM under the model's priors"
        if map_em is not None
        else "ML-EM (the prior has no mode for MAP-EM)",
        "tolerances": dict(TOLERANCES),
        "best": {
            "em_objective": em_best_obj,
            "map_objective": best_map.log_posterior,
            "map_start": best_map.start,
            **overall,
        },
        "per_optimum": per_optimum,
        "map_above_em": best_map.log_posterior > em_best_obj + TOLERANCES["objective"],
        "agree": overall["agree"],
    }

    # ---------------------------------------------------------------- label switching
    w_raw, p_raw = _draws(idata)
    perms_h = hungarian_permutations(p_raw, best_em.p)
    sw_h = switching_summary(perms_h)
    resp_size = math.prod(w_raw.shape) * data.n_outcomes
    stephens = resp_raw = None
    if resp_size <= _MAX_STEPHENS:
        resp_raw = draw_responsibilities(data, w_raw, p_raw)
        perms_s, sweeps = stephens_permutations(resp_raw, data.counts, perms_h)
        perms = perms_s
        stephens = {
            "sweeps": sweeps,
            "changed_from_hungarian": float(np.mean(np.any(perms_s != perms_h, axis=-1))),
            **switching_summary(perms_s),
        }
        method = "Stephens (2000) KL relabelling, started from the Hungarian match"
    else:
        perms = perms_h
        method = "Hungarian match to EM's estimate (too many draws x outcomes for Stephens)"
    w_rel, p_rel = apply_permutations(w_raw, perms), apply_permutations(p_raw, perms)
    w_ord, p_ord = _draws(idata_ord)
    sw_ord = switching_summary(hungarian_permutations(p_ord, best_em.p))
    n_common = int(data.trials[np.argmax(data.counts)])
    inv = invariant_draws(data, w_raw, p_raw, n_common)
    diag = {
        "raw": rhat_ess({"w": w_raw, "p": p_raw}),
        "relabelled": rhat_ess({"w": w_rel, "p": p_rel}),
        "invariant": rhat_ess(inv),
        "ordered_model": rhat_ess({"w": w_ord, "p": p_ord}),
    }
    label_switching = {
        "reference": {
            "weights": best_em.weights.tolist(),
            "p": best_em.p.tolist(),
            "what": "EM's best optimum",
        },
        "detected": sw_h["detected"],
        "hungarian": sw_h,
        "stephens": stephens,
        "relabelling": method,
        "ordered_model": {"detected": sw_ord["detected"], **sw_ord},
        "rhat_ess": diag,
        "invariant_pmf_trials": n_common,
    }

    # ---------------------------------------------------------------- multimodality
    modes = chain_modes(w_rel, p_rel)
    multimodality = {
        "em_optima": [
            {
                "log_likelihood": o.log_likelihood,
                "log_posterior": o.log_posterior,
                "fraction": o.fraction,
                "effective_components": o.reduced.n_components,
                "p": o.params.p.tolist(),
                "weights": o.params.weights.tolist(),
            }
            for o in target.optima
        ],
        "em_distinct_optima": len(target.optima),
        "posterior_chain_modes": modes,
        "hdi_raw": multimodal_intervals(p_raw),
        "hdi_relabelled": multimodal_intervals(p_rel),
        "ridge": collapsed,
        "collapsed": collapsed,
        "map_modes": len({round(m.log_posterior, 4) for m in maps}),
    }
    overdisp = overdispersion_test(data)
    identifiability = {
        "condition": "max trials >= 2K - 1 (Teicher, 1963)",
        "max_trials": data.max_trials,
        "required_trials": 2 * k - 1,
        "condition_holds": identifiable_cond,
        "collapsed": collapsed,
        "effective_components": reduced.n_components,
        "reduced_p": reduced.p.tolist(),
        "reduced_weights": reduced.weights.tolist(),
        "identifiable": identifiable,
        "overdispersed": overdisp["overdispersed"],
        "overdispersion_test": overdisp,
    }

    # ---------------------------------------------------------------- posterior summaries
    # The relabelled draws' responsibilities are the raw ones with the same permutation.
    post_resp = None
    if resp_raw is not None:
        post_resp = np.take_along_axis(resp_raw, perms[:, :, None, :], axis=-1).mean(axis=(0, 1))
    em_resp = e_step(data, best_em).resp
    sstats = idata["sample_stats"]
    posterior = {
        "sampler": opts.sampler,
        "draws": opts.draws,
        "tune": opts.tune,
        "chains": opts.chains,
        "target_accept": opts.target_accept,
        "divergences": int(sstats["diverging"].sum()),
        "divergences_ordered": int(idata_ord["sample_stats"]["diverging"].sum()),
        "ci_prob": CI_PROB,
        "ci_kind": "equal-tailed",
        "relabelled": {"w": _stats(w_rel), "p": _stats(p_rel)},
        "raw": {"w": _stats(w_raw), "p": _stats(p_raw)},
        "ordered_model": {"w": _stats(w_ord), "p": _stats(p_ord)},
        "log_likelihood": _stats(inv["log_likelihood"][..., None]),
        "responsibilities_relabelled": None if post_resp is None else post_resp.tolist(),
        "em_responsibilities": em_resp.tolist(),
        "files": {"exchangeable": "posterior.nc", "ordered": "posterior_ordered.nc"},
    }

    # ---------------------------------------------------------------- uncertainty
    se = standard_errors(data, ml.params)
    z = float(norm.ppf(0.5 + CI_PROB / 2))
    uncertainty = {
        "em_estimate": {"weights": ml.weights.tolist(), "p": ml.p.tolist()},
        "em_standard_errors": se.to_dict(),
        "em_intervals": None
        if se.singular
        else {
            "p": [[float(x - z * s), float(x + z * s)] for x, s in zip(ml.p, se.p, strict=True)],
            "weights": [
                [float(x - z * s), float(x + z * s)]
                for x, s in zip(ml.weights, se.weights, strict=True)
            ],
            "kind": f"Wald, estimate +/- {z:.3f} SE ({round(CI_PROB * 100)}%)",
        },
        "posterior": {"w": _stats(w_rel), "p": _stats(p_rel)},
        "comparable": bool(identifiable and not se.singular),
        "note": ""
        if identifiable and not se.singular
        else ("not compared: " + (se.reason or "the fit is not identifiable")),
    }

    results = {
        "data": {
            **data.summary(),
            "sha256": data_hash(data),
            **(data.to_dict() if data.n_outcomes <= 1000 else {}),
        },
        "options": asdict(opts) | {"prior_weights": alpha.tolist(), "prior_p": [a, b]},
        "em": {
            "ml": _em_summary(ml),
            "map_em": None if map_em is None else _em_summary(map_em),
            "priors_flat": flat,
        },
        "map": {
            "method": "L-BFGS-B on the unconstrained parameters, maximising "
            "logp(jacobian=False), as pm.find_MAP does",
            "results": [m.to_dict() for m in maps],
        },
        "posterior": posterior,
        "agreement": agreement,
        "label_switching": label_switching,
        "multimodality": multimodality,
        "identifiability": identifiability,
        "uncertainty": uncertainty,
    }
    results["conclusions"] = conclusions(results)
    artefacts = {
        "idata": idata,
        "idata_ordered": idata_ord,
        "ml": ml,
        "target": target,
        "maps": maps,
        "w_raw": w_raw,
        "p_raw": p_raw,
        "w_rel": w_rel,
        "p_rel": p_rel,
        "p_ord": p_ord,
        "w_ord": w_ord,
        "em_resp": em_resp,
        "post_resp": post_resp,
        "best_em": best_em,
        "best_map": MixtureParams(best_map.weights, best_map.p),
    }
    return results, artefacts


def _fmt(x: float, digits: int = 4) -> str:
    return f"{x:.{digits}g}"


def conclusions(r: dict) -> list[str]:
    """One-sentence findings, each backed by a number in ``r``."""
    out = []
    ident, agr, ls = r["identifiability"], r["agreement"], r["label_switching"]
    od = ident["overdispersion_test"]
    k = r["options"]["components"]
    best = agr["best"]
    if agr["agree"]:
        out.append(
            f"EM and the posterior mode agree: their {agr['objective'].replace('_', '-')} values "
            f"differ by {_fmt(abs(best['objective_difference']), 2)} nats and their fitted pmfs "
            f"by a total variation of {_fmt(best['total_variation']['max'], 2)}."
        )
    else:
        failed = [c for c in best["judged_on"] if not best["checks"][c]]
        out.append(
            f"EM and the posterior mode disagree on {', '.join(failed)}: objective difference "
            f"{_fmt(best['objective_difference'], 3)} nats (MAP minus EM), total variation "
            f"{_fmt(best['total_variation']['max'], 3)}."
        )
    if agr["map_above_em"]:
        out.append("The MAP search found a higher mode than any EM restart: EM missed it.")
    if ident["collapsed"]:
        ps = ", ".join(f"{x:.4f}" for x in ident["reduced_p"])
        out.append(
            f"The {k}-component fit is not identifiable: its components collapse onto "
            f"{ident['effective_components']} (p = {ps}), so their separate weights lie on a "
            "ridge of equal likelihood and agreement is judged on the objective and the "
            "fitted pmf only."
        )
    if not ident["condition_holds"]:
        out.append(
            f"With at most {ident['max_trials']} trials per sequence a {k}-component binomial "
            f"mixture is not identifiable (it needs {ident['required_trials']})."
        )
    if od["overdispersed"]:
        out.append(
            f"The data are overdispersed relative to one binomial (dispersion ratio "
            f"{od['dispersion_ratio']:.3f}, p = {od['p_value']:.3g}), which a mixture of "
            "distinct coins can explain."
        )
    else:
        out.append(
            f"The data are not overdispersed relative to one binomial (dispersion ratio "
            f"{od['dispersion_ratio']:.3f}, p = {od['p_value']:.3g}): nothing in them calls "
            "for more than one coin."
        )
    diag = ls["rhat_ess"]
    raw_r, rel_r = diag["raw"]["p"]["max_rhat"], diag["relabelled"]["p"]["max_rhat"]
    inv_r = diag["invariant"]["log_likelihood"]["max_rhat"]
    if ls["detected"]:
        fr = [c["non_identity_fraction"] for c in ls["hungarian"]["chains"]]
        where = []
        if ls["hungarian"]["between_chains"]:
            where.append("between chains")
        if ls["hungarian"]["within_chains"]:
            where.append("within chains")
        out.append(
            f"Label switching is detected in the exchangeable model ({' and '.join(where)}; "
            f"{min(fr):.0%}-{max(fr):.0%} of each chain's draws need relabelling to match EM)."
        )
    else:
        out.append("No label switching is detected in the exchangeable model's chains.")
    if raw_r is not None and rel_r is not None and inv_r is not None:
        out.append(
            f"Largest R-hat of p: {raw_r:.3f} raw, {rel_r:.3f} relabelled; "
            f"{inv_r:.3f} for the label-invariant log-likelihood."
        )
    ordered = ls["ordered_model"]
    out.append(
        "The ordered-biases model shows "
        + ("label switching too." if ordered["detected"] else "no label switching.")
    )
    mm = r["multimodality"]
    out.append(
        f"EM reached {mm['em_distinct_optima']} distinct optimum(s) from "
        f"{r['em']['ml']['n_runs']} starts; the relabelled chains sit in "
        f"{mm['posterior_chain_modes']['n_modes']} mode(s)."
    )
    div = r["posterior"]["divergences"]
    if div:
        out.append(f"The exchangeable model's sampler reported {div} divergent transitions.")
    return out


def run_selection(data: BinomialData, opts: ReportOptions, ks: list[int]) -> tuple[dict, dict]:
    """Model selection over ``ks`` plus the full comparison for the K that BIC prefers.

    EM with restarts for every K gives AIC, BIC and ICL; the exchangeable model's posterior
    for every K gives the per-sequence PSIS-LOO and ArviZ's comparison. The seeds are
    children 5 (EM) and 6 (posteriors) of ``np.random.SeedSequence(opts.seed)``; children
    0-4 serve the detailed comparison, as in :func:`run_analysis`.
    """
    from compare.selection import arviz_compare, weighted_loo
    from em import select_components

    children = np.random.SeedSequence(opts.seed).spawn(7)
    table, preferred, fits = select_components(
        data, ks, restarts=opts.restarts, seed=_seed_int(children[5])
    )
    k_star = preferred["bic"]
    results, art = run_analysis(data, replace(opts, components=k_star))
    alpha = opts.prior_weights
    idatas = {}
    for k, child in zip(ks, children[6].spawn(len(ks)), strict=True):
        if k == k_star:
            idatas[k] = art["idata"]
            continue
        if np.ndim(alpha) != 0:
            raise ValueError("--prior-weights with a range of --components takes one number")
        model = MixtureModel(data, k, prior_weights=alpha, prior_p=opts.prior_p)
        idatas[k] = model.sample(
            seed=child,
            draws=opts.draws,
            tune=opts.tune,
            chains=opts.chains,
            sampler=opts.sampler,
            target_accept=opts.target_accept,
        )
    rows = []
    for row, fit in zip(table, fits, strict=True):
        loo = weighted_loo(data, idatas[row["k"]])
        rows.append({**row, **loo, "effective_components": fit.optima[0].reduced.n_components})
    preferred["loo"] = max(rows, key=lambda r: r["elpd_loo"])["k"]
    for row in rows:
        row["preferred_by"] = [c for c, k in preferred.items() if k == row["k"]]
    results["model_selection"] = rows
    results["model_selection_preferred"] = preferred
    results["model_selection_compare"] = arviz_compare(data, idatas)
    results["model_selection_detailed_k"] = k_star
    picks = ", ".join(f"{c.upper()} K = {k}" for c, k in preferred.items())
    results["conclusions"].insert(
        0,
        f"Over K = {ks[0]}..{ks[-1]} the criteria prefer {picks}; the comparison below is for "
        f"K = {k_star}, the BIC choice.",
    )
    art["selection_idatas"] = idatas
    return results, art
