"""The report's findings, one small function each, derived from an :class:`Analysis`.

Each function returns a :class:`Finding` or None (nothing to say). Every sentence rests on
numbers in results.json and on a verdict that a test shows can come out either way.
"""

from __future__ import annotations

from dataclasses import dataclass

from compare.health import health_conclusion
from compare.settings import CI_PROB, TOLERANCES

__all__ = ["Finding", "conclusions", "FINDINGS"]


@dataclass(frozen=True)
class Finding:
    """One conclusion: a code (for scripts and tests) and one sentence."""

    code: str
    text: str


def _g(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}g}"


def _list(xs, digits: int = 4) -> str:
    return ", ".join(f"{x:.{digits}g}" for x in xs)


def fitted_coins(a) -> Finding | None:
    """The headline answer: the fitted coins, with posterior intervals where they exist."""
    fit, lab, ident = a.em.target, a.labels, a.identifiability
    if not fit.converged:
        return None
    pct = round(CI_PROB * 100)
    if ident.collapsed:
        red = ident.reduced
        weights = f", weights {_list(red.weights, 3)}" if red.n_components > 1 else ""
        return Finding(
            "fitted_coins",
            f"Fitted coins: the {fit.n_components} components collapse onto "
            f"{red.n_components} (p = {_list(red.p)}{weights}).",
        )
    coins = []
    for j in range(fit.n_components):
        if lab.identified:
            text = (
                f"coin {j + 1}: p = {fit.p[j]:.4g} ({pct}% interval {_interval(lab.p[..., j])}), "
                f"weight {fit.weights[j]:.3g} ({_interval(lab.weights[..., j])})"
            )
        else:
            text = f"coin {j + 1}: p = {fit.p[j]:.4g}, weight {fit.weights[j]:.3g}"
        coins.append(text)
    text = "Fitted coins (EM's certified optimum): " + "; ".join(coins) + "."
    return Finding("fitted_coins", text)


def _interval(x) -> str:
    import numpy as np

    lo, hi = np.quantile(np.ravel(x), [(1 - CI_PROB) / 2, (1 + CI_PROB) / 2])
    return f"{lo:.3g}-{hi:.3g}"


def em_convergence(a) -> Finding:
    """How many of EM's runs are certified, and the largest gap among them."""
    fit = a.em.target
    n, total = fit.n_converged, len(fit.runs)
    tol = fit.options["tol"]
    if n == 0:
        return Finding(
            "em_not_converged",
            f"EM did not converge: none of its {total} runs reached a certified gap <= {tol:g} "
            f"nats within {fit.options['max_iter']} iterations, so nothing below is judged "
            "on an EM optimum.",
        )
    rest = total - n
    tail = (
        f"; {rest} run(s) stopped at max_iter uncertified and count towards no optimum"
        if rest
        else ""
    )
    return Finding(
        "em_converged",
        f"EM converged in {n} of {total} runs (largest certified gap "
        f"{_g(fit.max_converged_gap, 2)} nats <= {tol:g}){tail}.",
    )


def agreement(a) -> Finding:
    """EM against the posterior mode: agree, missed mode, disagree, or no verdict."""
    agr = a.agreement
    if agr.status == "em_not_converged":
        return Finding(
            "agreement_no_verdict",
            "No verdict on EM against the posterior mode: EM's best run is not certified.",
        )
    if agr.status == "map_not_converged":
        return Finding(
            "agreement_no_verdict",
            "No verdict on EM against the posterior mode: no search of PyMC's ends, after "
            "certified MAP-EM from its end point, at a certified mode.",
        )
    best = agr.best
    if agr.status == "em_missed_mode":
        mode = agr.mode.polished
        basins = ", ".join(f"{f:.0%}" for f in agr.basins)
        return Finding(
            "em_missed_mode",
            f"EM missed a higher mode: started from the end of PyMC's search "
            f"'{agr.mode.search.start}', EM converges (certified) to p = "
            f"{_list(mode.params.p)}, {_g(agr.missed_by)} nats above EM's best; none of "
            f"EM's {len(a.em.target.runs)} restarts reached it (their basins: {basins}).",
        )
    if agr.status == "agree":
        text = (
            f"EM and the posterior mode agree: their log-posterior values differ by "
            f"{_g(abs(best['objective_difference']), 2)} nats and their fitted pmfs by a "
            f"total variation of {_g(best['total_variation']['max'], 2)}"
        )
        short = agr.mode.shortfall
        if short > TOLERANCES["objective"]:
            text += (
                f" (PyMC's own search stopped {_g(short, 2)} nats short of that mode; "
                "certified EM from its end point reaches it)"
            )
        return Finding("agree", text + ".")
    failed = [c for c in best["judged_on"] if not best["checks"][c]]
    return Finding(
        "disagree",
        f"EM and the posterior mode disagree on {', '.join(failed)}: objective difference "
        f"{_g(best['objective_difference'])} nats (mode minus EM), largest parameter "
        f"difference {_g(max(best['max_abs_p_difference'], best['max_abs_weight_difference']))}.",
    )


def collapse(a) -> Finding | None:
    """A fit equivalent to one with fewer components."""
    ident = a.identifiability
    if not ident.collapsed:
        return None
    return Finding(
        "collapsed",
        f"The {ident.k}-component fit is not identifiable: its components collapse onto "
        f"{ident.effective_components} (p = {_list(ident.reduced.p)}), so their separate "
        "weights lie on a ridge of equal likelihood and agreement is judged on the "
        "objective and the fitted pmf only.",
    )


def teicher(a) -> Finding | None:
    """Too few trials per sequence for K components."""
    ident = a.identifiability
    if ident.condition_holds:
        return None
    return Finding(
        "not_identifiable",
        f"With at most {ident.max_trials} trials per sequence a {ident.k}-component binomial "
        f"mixture is not identifiable (it needs {2 * ident.k - 1}; Teicher, 1963).",
    )


def overdispersion(a) -> Finding:
    """Evidence (or its absence) of anything for a mixture to explain."""
    test = a.identifiability.overdispersion
    text = test.text
    return Finding("overdispersion", text[0].upper() + text[1:] + ".")


def label_switching(a) -> Finding:
    """Switching in the exchangeable model, only where labels are identified."""
    lab = a.labels
    if not lab.identified:
        return Finding(
            "labels_not_identified",
            f"The exchangeable model's labels are not identified here ({lab.reason}): no "
            "switching verdict is drawn and only label-invariant quantities are summarised.",
        )
    sw = lab.switching
    if not sw["detected"]:
        return Finding(
            "no_label_switching", "No label switching is seen in the exchangeable model's chains."
        )
    where = [
        w
        for w, on in (
            ("between chains", sw["between_chains"]),
            ("within chains", sw["within_chains"]),
        )
        if on
    ]
    return Finding(
        "label_switching",
        f"Label switching is seen in the exchangeable model ({' and '.join(where)}); the "
        "draws are relabelled to EM's estimate before any per-component summary.",
    )


def ordered_model(a) -> Finding:
    """Whether the ordering separates modes or cuts through one."""
    check = a.labels.ordered
    if check.cuts_through:
        share = max(check.pressed_fraction)
        return Finding(
            "ordering_cuts_a_mode",
            f"The ordered-biases model's draws pile against the ordering boundary ({share:.0%} "
            f"of draws have adjacent biases within {check.tau_sd:g} posterior sd of each "
            "other): the ordering cuts through a mode rather than separating modes.",
        )
    return Finding(
        "ordering_separates",
        "The ordered-biases model's draws stay off the ordering boundary: the ordering "
        "separates the components.",
    )


def sampler_health(a) -> list[Finding]:
    """Each model's sampler health; an unreliable one is called so, with what to try."""
    ident, s = a.identifiability, a.sampling.settings
    out = []
    for name, label, ordered in (
        ("exchangeable", "exchangeable", False),
        ("ordered", "ordered-biases", True),
    ):
        h = getattr(a.health, name)
        text = health_conclusion(
            h,
            label,
            ordered=ordered,
            collapsed=ident.collapsed,
            effective_components=ident.effective_components,
            target_accept=s["target_accept"],
            tune=s["tune"],
        )
        code = f"{name}_sampler_ok" if h.reliable else f"{name}_sampler_unreliable"
        out.append(Finding(code, text))
    return out


def multimodality(a) -> Finding:
    """How many modes each method found."""
    mm = a.multimodality
    n = len(mm.em["optima"])
    text = (
        f"EM reached {n} distinct certified optimum(s) from {mm.em['runs']} starts; PyMC's "
        f"searches led to {mm.map_modes} certified mode(s)"
    )
    if mm.chains is not None:
        text += f"; the relabelled chains sit in {mm.chains['n_modes']} mode(s)"
    return Finding("multimodality", text + ".")


def selection(a) -> Finding | None:
    """Which K each criterion prefers (with a range of K)."""
    sel = a.selection
    if sel is None:
        return None
    ks = [r["k"] for r in sel.rows]
    picks = ", ".join(f"{c.upper()} K = {k}" for c, k in sel.preferred.items())
    return Finding(
        "model_selection",
        f"Over K = {ks[0]}..{ks[-1]} the criteria prefer {picks}; the comparison below is "
        f"for K = {sel.detailed_k}, the BIC choice.",
    )


def user_em(a) -> Finding | None:
    """The verdict on an estimate brought from another program."""
    u = a.user_em
    if u is None:
        return None
    if u.claim == "right":
        claim = "its claimed log-likelihood is right"
    elif u.claim == "none":
        claim = f"it claimed no log-likelihood (it is {u.log_likelihood:.10g})"
    elif u.claim == "wrong":
        claim = (
            f"its claimed log-likelihood {u.estimate.claimed:.10g} is wrong (recomputed: "
            f"{u.log_likelihood:.10g})"
        )
    else:
        claim = (
            f"its claimed log-likelihood leaves out the binomial coefficient (a constant of "
            f"{u.coefficient:.6g} nats: right otherwise)"
        )
    if u.optimum.converged:
        where = (
            f"it is {_g(u.distance, 2)} nats below the optimum certified EM reaches from it "
            f"(p = {_list(u.optimum.params.p)})"
        )
    else:
        where = "certified EM from it did not converge"
    verdict = {True: "agrees", False: "does not agree", None: "cannot be compared"}[u.agree]
    return Finding(
        "user_em",
        f"Your EM's estimate: {claim}; {where}; it {verdict} with the posterior mode under "
        "the same rules as the built-in EM.",
    )


#: The findings in the order the report lists them.
FINDINGS = (
    selection,
    fitted_coins,
    user_em,
    em_convergence,
    agreement,
    collapse,
    teicher,
    overdispersion,
    label_switching,
    ordered_model,
    sampler_health,
    multimodality,
)


def conclusions(a) -> list[Finding]:
    """Every finding of an analysis, in order."""
    out: list[Finding] = []
    for fn in FINDINGS:
        found = fn(a)
        if isinstance(found, list):
            out.extend(found)
        elif found is not None:
            out.append(found)
    return out
