"""EM speed against the floors it is measured by; prints every figure side by side.

(a) Reaching the MLE on overlapping data (N = 6000 sequences of 12 flips from weights
    0.7/0.3, biases 0.48/0.62, ``numpy.random.default_rng(0)``), from each of the 10
    seeded random starts of ``em.fit``: E-step evaluations and wall time per restart until
    the log-likelihood is within 1e-8 nats of the MLE, for plain EM, for the default
    method (certified: it stops on its own) and for ``scipy.optimize`` BFGS on the
    unconstrained log-likelihood. The MLE comes from an independent Newton solve in this
    script (naive log-likelihood, finite differences). Target: default <= 100 E-steps.
(b) One full ``em.fit`` with the default options (10 seeded restarts, every one certified)
    on N = 10^7 simulated sequences of 10 flips, K = 3, against one ``np.bincount`` pass
    over the same array (the least any method pays to read the data). Target: <= 2x.
(c) The time of one EM iteration (``e_step`` then ``m_step``) when every sequence has a
    different number of trials (N = 10^6 distinct outcomes, K = 3), against one iteration
    of scikit-learn's ``GaussianMixture(n_components=3)`` on 10^6 one-dimensional points.
    Target: no slower.

Timings are the best of several repeats (the least disturbed by other work on the
machine), medians beside them. Run: ``make bench`` or
``.venv/bin/python benchmarks/bench_em.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, logsumexp, softmax
from scipy.stats import binom

import em
from em import BinomialData, MixtureParams, e_step, m_step, run_em
from em.derivatives import gradient_hessian


def _times(fn, repeats: int) -> np.ndarray:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return np.asarray(out)


def _paired_times(fn_a, fn_b, repeats: int) -> tuple[np.ndarray, np.ndarray]:
    """Times of two functions called in turn, ``repeats`` times each."""
    pairs = [(_times(fn_a, 1)[0], _times(fn_b, 1)[0]) for _ in range(repeats)]
    return tuple(np.asarray(t) for t in zip(*pairs, strict=True))


def _simulate(rng, n_seq, trials, weights=(0.3, 0.5, 0.2), p=(0.2, 0.5, 0.8)):
    z = rng.choice(len(weights), size=n_seq, p=weights)
    return rng.binomial(trials, np.asarray(p)[z])


def _naive_ll(heads, trials, theta) -> float:
    """Log-likelihood of a 2-component mixture at (logit w1, logit p1, logit p2)."""
    w1 = expit(theta[0])
    comp = binom.logpmf(heads[:, None], np.asarray(trials)[:, None], expit(theta[None, 1:]))
    return float(logsumexp(comp + np.log([w1, 1 - w1]), axis=1).sum())


def _newton_mle(heads, trials, theta) -> tuple[np.ndarray, float]:
    """The MLE by Newton's method on the naive log-likelihood, finite-difference derivatives."""
    eye = np.eye(3) * 1e-4

    def f(x):
        return _naive_ll(heads, trials, x)

    for _ in range(50):
        grad = np.array([(f(theta + u) - f(theta - u)) / 2e-4 for u in eye])
        hess = np.array(
            [
                [
                    (f(theta + u + v) - f(theta + u - v) - f(theta - u + v) + f(theta - u - v))
                    / 4e-8
                    for v in eye
                ]
                for u in eye
            ]
        )
        step = np.linalg.solve(hess, -grad)
        theta = theta + step
        if np.abs(step).max() < 1e-10:
            break
    return theta, f(theta)


def _bfgs_evals(data, init, target) -> tuple[int, float]:
    """E-step evaluations BFGS needs to get within 1e-8 nats of the MLE, and its time."""
    k = init.n_components
    seen = []

    def loss(x):
        params = MixtureParams(softmax(np.r_[0.0, x[: k - 1]]), expit(x[k - 1 :]))
        ll = em.log_likelihood(data, params)
        g, _ = gradient_hessian(data, params)
        seen.append(ll)
        # chain rule: eta_j = x_j for j >= 1 (eta_0 = 0), lambda = x
        return -ll, -np.r_[g[1:k], g[k:]]

    x0 = np.r_[np.log(init.weights[1:] / init.weights[0]), np.log(init.p / (1 - init.p))]
    t0 = time.perf_counter()
    minimize(loss, x0, jac=True, method="BFGS", options={"gtol": 1e-10, "maxiter": 5000})
    elapsed = time.perf_counter() - t0
    hit = next((i + 1 for i, v in enumerate(seen) if v >= target), None)
    return (hit if hit is not None else -len(seen)), elapsed


def bench_overlapping(repeats: int) -> None:
    rng = np.random.default_rng(0)
    n_seq, trials = 6000, 12
    z = rng.choice(2, size=n_seq, p=[0.7, 0.3])
    heads = rng.binomial(trials, np.array([0.48, 0.62])[z])
    data = BinomialData.from_sequences(heads, trials)
    res = em.fit(heads, trials, 2)
    w, p = res.weights, res.p
    theta, ll_star = _newton_mle(
        heads, np.full(n_seq, trials), np.r_[np.log(w[0] / w[1]), np.log(p / (1 - p))]
    )
    target = ll_star - 1e-8
    rows = {"plain EM": [], "default (certified)": [], "scipy BFGS": []}
    for run in res.runs:
        init = run.init
        plain = run_em(data, init, method="em", tol=0.0, max_iter=20000)
        hit = int(np.argmax(plain.trace >= target)) if plain.trace.max() >= target else None
        steps = hit if hit is not None else 20000
        t_plain = _times(
            lambda i=init, s=steps: run_em(data, i, method="em", tol=0.0, max_iter=s), repeats
        )
        rows["plain EM"].append((steps + 1, t_plain.min(), ll_star - plain.trace[steps]))
        alone = run_em(data, init)
        t_def = _times(lambda i=init: run_em(data, i), repeats)
        rows["default (certified)"].append(
            (alone.n_estep, t_def.min(), ll_star - alone.log_likelihood)
        )
        n_bfgs, t_bfgs = _bfgs_evals(data, init, target)
        rows["scipy BFGS"].append((n_bfgs, t_bfgs, None))
    print(
        f"(a) overlapping: N = {n_seq} x {trials} flips, weights 0.7/0.3, p 0.48/0.62, K = 2; "
        f"MLE (independent Newton solve) log-likelihood {ll_star:.9f}"
    )
    print("    per restart, to within 1e-8 nats of the MLE (10 restarts)")
    print(f"    {'':22s}{'E-steps median':>15s}{'max':>7s}{'time median':>13s}{'max':>9s}")
    for name, vals in rows.items():
        n = np.array([abs(v[0]) for v in vals])
        t = np.array([v[1] for v in vals]) * 1e3
        missed = sum(v[0] <= 0 for v in vals)
        flag = f"  ({missed} of {len(vals)} stopped short of it)" if missed else ""
        print(
            f"    {name:22s}{np.median(n):>15.0f}{n.max():>7d}{np.median(t):>11.1f}ms"
            f"{t.max():>7.1f}ms{flag}"
        )
    worst = max(v[2] for v in rows["default (certified)"])
    met = max(v[0] for v in rows["default (certified)"]) <= 100 and worst <= 1e-8
    print(
        f"    default: every restart certified ({res.n_converged}/{len(res.runs)}), largest "
        f"distance to the MLE {worst:.1e} nats; target <= 100 E-steps: "
        f"{'met' if met else 'NOT met'}"
    )


def bench_fit(n_seq: int, repeats: int) -> None:
    rng = np.random.default_rng(20261123)
    heads = _simulate(rng, n_seq, 10)
    res = em.fit(heads, 10, 3)  # warm-up, and the numbers reported below
    # Interleaved, so that both see the same state of the machine (memory, caches).
    t_count, t_fit = _paired_times(
        lambda: np.bincount(heads), lambda: em.fit(heads, 10, 3), repeats
    )
    ratio = t_fit.min() / t_count.min()
    print(
        f"(b) N = {n_seq:.0e} sequences x 10 flips, K = 3, default options "
        f"({len(res.runs)} restarts, {res.n_converged} certified, largest gap "
        f"{res.max_converged_gap:.1e} nats <= tol {res.options['tol']:g})"
    )
    print(f"    {'':28s}{'best':>10s}{'median':>10s}")
    print(
        f"    {'np.bincount(heads)':28s}{t_count.min() * 1e3:>8.1f}ms"
        f"{np.median(t_count) * 1e3:>8.1f}ms"
    )
    print(
        f"    {'em.fit(heads, 10, 3)':28s}{t_fit.min() * 1e3:>8.1f}ms"
        f"{np.median(t_fit) * 1e3:>8.1f}ms"
    )
    print(f"    fit / bincount = {ratio:.2f} (target <= 2): {'met' if ratio <= 2 else 'NOT met'}")
    print(
        f"    fit: p = {np.round(res.p, 4).tolist()}, weights = "
        f"{np.round(res.weights, 4).tolist()}, slowest run {max(r.n_estep for r in res.runs)} "
        f"E-steps, distinct optima: {len(res.optima)}"
    )


def bench_iteration(n_seq: int, repeats: int, iters: int) -> None:
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(20261124)
    trials = rng.permutation(np.arange(1, n_seq + 1))  # every sequence its own trials
    heads = _simulate(rng, n_seq, trials)
    data = BinomialData.from_sequences(heads, trials)
    params = MixtureParams([0.3, 0.4, 0.3], [0.3, 0.5, 0.7])
    e_step(data, params)  # warm-up: builds the data's cached design arrays

    def em_iterations():
        theta = params
        for _ in range(iters):
            theta = m_step(e_step(data, theta), theta)

    t_em = _times(em_iterations, repeats) / iters

    labels = rng.choice(3, size=n_seq, p=[0.3, 0.5, 0.2])
    x = (rng.normal(size=n_seq) + np.array([-3.0, 0.0, 3.0])[labels])[:, None]

    def sk_fit(max_iter):
        gm = GaussianMixture(
            3, max_iter=max_iter, tol=0.0, init_params="random", random_state=0, n_init=1
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: we stop it on purpose
            gm.fit(x)

    sk_fit(1)
    t1 = _times(lambda: sk_fit(1), repeats)
    tn = _times(lambda: sk_fit(1 + iters), repeats)
    t_sk = (tn - t1) / iters  # set-up and initialisation cancel out
    ratio = t_em.min() / t_sk.min()
    print(
        f"(c) one iteration, N = {n_seq:.0e}, K = 3, {data.n_outcomes} distinct outcomes "
        f"(every sequence its own trials)"
    )
    print(f"    {'':38s}{'best':>10s}{'median':>10s}")
    print(
        f"    {'em: e_step + m_step':38s}{t_em.min() * 1e3:>8.1f}ms{np.median(t_em) * 1e3:>8.1f}ms"
    )
    print(
        f"    {'sklearn GaussianMixture(3), 1-D points':38s}{t_sk.min() * 1e3:>8.1f}ms"
        f"{np.median(t_sk) * 1e3:>8.1f}ms"
    )
    print(f"    em / sklearn = {ratio:.2f} (target <= 1): {'met' if ratio <= 1 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10x smaller data, fewer repeats")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    repeats = 3 if args.quick else 7
    import sklearn

    print(
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"scikit-learn {sklearn.__version__}, {platform.machine()}, {os.cpu_count()} cores"
    )
    bench_overlapping(2 if args.quick else 3)
    bench_fit(10**7 // scale, repeats)
    bench_iteration(10**6 // scale, repeats, iters=5)


if __name__ == "__main__":
    main()
