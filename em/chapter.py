"""The worked example of Section 6.3, computed step by step and laid out as the chapter does."""

from __future__ import annotations

import numpy as np
from scipy.stats import binom

from em.core import MixtureParams, e_step, m_step
from em.data import CHAPTER_HEADS, CHAPTER_TRIALS, BinomialData
from em.fitting import reduce_params, run_em

__all__ = ["CHAPTER_INIT", "first_iteration", "render_chapter"]

#: Eq. (6.6) and the weights beside it: biases 0.4, 0.5, 0.65; weights 0.25, 0.5, 0.25.
CHAPTER_INIT = MixtureParams(weights=[0.25, 0.5, 0.25], p=[0.4, 0.5, 0.65])


def first_iteration(data: BinomialData | None = None, init: MixtureParams = CHAPTER_INIT):
    """One E-step and one M-step from the chapter's start: ``(expectations, new_params)``."""
    data = BinomialData.chapter() if data is None else data
    expect = e_step(data, init)
    return expect, m_step(expect, init)


def _row(cells, widths) -> str:
    return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


def _f7(x: float) -> str:
    return f"{x:.7f}"


def render_chapter(tol: float = 1e-9, max_iter: int = 1000) -> str:
    """Tables 6.1-6.4, (6.7)-(6.10) and (6.14) to 7 decimals, then EM to convergence."""
    data = BinomialData.chapter()
    init = CHAPTER_INIT
    k = init.n_components
    comps = [f"c_{j + 1}" for j in range(k)]
    expect, new = first_iteration(data, init)
    out: list[str] = []
    add = out.append

    add("Chapter 6, Section 6.3: 3 coins, 20 sequences of 10 flips")
    add(f"data x = {list(CHAPTER_HEADS)}")
    add(
        "start (6.6): "
        + ", ".join(f"phi_{j + 1} = {p:g}" for j, p in enumerate(init.p))
        + "; "
        + ", ".join(f"w_{j + 1} = {w:g}" for j, w in enumerate(init.weights))
    )
    add("")

    x1 = CHAPTER_HEADS[0]
    lik = binom.pmf(x1, CHAPTER_TRIALS, init.p)
    joint = init.weights * lik
    post = joint / joint.sum()
    add(f"(6.7) likelihoods of x_1 = {x1}")
    for j in range(k):
        add(f"  P(X_1 = {x1} | Y_1 = c_{j + 1}, Phi_{j + 1} = {init.p[j]:g}) = {_f7(lik[j])}")
    add("(6.8) joint with the weights")
    for j in range(k):
        add(f"  P(X_1 = {x1}, Y_1 = c_{j + 1}) = {init.weights[j]:g} x ... = {_f7(joint[j])}")
    add("(6.9) posterior")
    for j in range(k):
        add(f"  P(Y_1 = c_{j + 1} | X_1 = {x1}) = {_f7(post[j])}")
    add("")

    widths = [8, 12] + [10] * k
    add(_row(["outcome", "occurrences", *comps], widths))
    for i in range(data.n_outcomes):
        add(
            _row(
                [data.heads[i], data.counts[i], *(_f7(v) for v in expect.resp[i])],
                widths,
            )
        )
    add("Table 6.1: Posteriors per outcome for the mixture components.")
    add("")

    nk = expect.expected_counts
    add("(6.10) expected number of sequences from each coin")
    for j in range(k):
        add(f"  E[1(Y = c_{j + 1}) | X = x] = {_f7(nk[j])}")
    add(f"  sum = {_f7(nk.sum())} (N = {data.n_sequences})")
    add("")

    widths = [8] + [10] * k
    add(_row(["outcome", *comps], widths))
    table2 = expect.expected_outcome_counts
    for i in range(data.n_outcomes):
        add(_row([data.heads[i], *(_f7(v) for v in table2[i])], widths))
    add("Table 6.2: Posterior expectations of the observed outcomes per mixture component.")
    add("")

    add(_row(comps, [10] * k))
    add(_row([_f7(v) for v in expect.expected_successes], [10] * k))
    add("Table 6.3: Expected sufficient statistics (expected heads) for each coin.")
    add("")

    add("(6.14) updated mixture weights (normalised by the sum of expected counts)")
    for j in range(k):
        add(f"  P(Y = c_{j + 1} | theta^(1)) = w_{j + 1}^(1) = {_f7(new.weights[j])}")
    add("")
    add(_row(comps, [10] * k))
    add(_row([_f7(v) for v in new.p], [10] * k))
    add("Table 6.4: New parameter values for the binomials (6.15).")
    add("")

    run = run_em(data, init, tol=tol, max_iter=max_iter, method="em")
    status = "converged" if run.converged else "stopped at max_iter"
    add(
        f"Plain EM from the same start, until at most {tol:g} nats remain to be gained: "
        f"{status} after {run.n_iter} iterations"
    )
    add(f"  (gap {run.gap:.2g} nats, {run.certificate.detail})")
    add("  iteration  log-likelihood")
    shown = sorted({0, 1, 2, 3, 5, 10, 20, run.n_iter} & set(range(run.n_iter + 1)))
    for it in shown:
        add(f"  {it:>9d}  {run.trace[it]:.7f}")
    order = np.argsort(run.params.p, kind="stable")
    add("  component  weight     p")
    for j in order:
        add(f"  {j + 1:>9d}  {_f7(run.params.weights[j])}  {_f7(run.params.p[j])}")
    reduced = reduce_params(data, run.params)
    if reduced.n_components < k:
        h, n = data.expand()
        prop = h.sum() / n.sum()
        p_list = ", ".join(f"{v:.7f}" for v in reduced.p)
        add(f"  The {k} coins collapse onto {reduced.n_components}: p = {p_list}")
        add(f"  (the single-binomial MLE is {prop:.7f}). The data are under-dispersed: variance")
        add(
            f"  {h.var():.4f} against {CHAPTER_TRIALS * prop * (1 - prop):.4f} for one "
            f"Binomial({CHAPTER_TRIALS}, {prop:g}), the opposite of what distinct coins produce."
        )
        add("  The weights of coinciding coins are not identified: they stay near their start.")
    return "\n".join(out) + "\n"
