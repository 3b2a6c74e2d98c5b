"""EM speed against the floors it is measured by; prints both figures side by side.

(a) One full ``em.fit`` with the default options (10 seeded restarts) on N = 10^7
    simulated sequences of 10 flips, K = 3, against one ``np.bincount`` pass over the
    same array (the least any method pays to read the data). Target: <= 2x.
(b) The time of one EM iteration (``e_step`` then ``m_step``) when every sequence has a
    different number of trials (N = 10^6 distinct outcomes, K = 3), against one iteration
    of scikit-learn's ``GaussianMixture(n_components=3)`` on 10^6 one-dimensional points.
    Target: no slower.

Each figure is the best of several repeats (the least disturbed by other work on the
machine); the medians are printed beside them. Run: ``make bench`` or
``.venv/bin/python benchmarks/bench_em.py [--quick]``.
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings

import numpy as np

import em
from em import BinomialData, MixtureParams, e_step, m_step


def _times(fn, repeats: int) -> np.ndarray:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return np.asarray(out)


def _simulate(rng, n_seq, trials, weights=(0.3, 0.5, 0.2), p=(0.2, 0.5, 0.8)):
    z = rng.choice(len(weights), size=n_seq, p=weights)
    return rng.binomial(trials, np.asarray(p)[z])


def bench_fit(n_seq: int, repeats: int) -> None:
    rng = np.random.default_rng(20261123)
    heads = _simulate(rng, n_seq, 10)
    res = em.fit(heads, 10, 3)  # warm-up, and the numbers reported below
    t_count = _times(lambda: np.bincount(heads), repeats)
    t_fit = _times(lambda: em.fit(heads, 10, 3), repeats)
    ratio = t_fit.min() / t_count.min()
    print(
        f"(a) N = {n_seq:.0e} sequences x 10 flips, K = 3, default options "
        f"({len(res.runs)} restarts, tol {res.options['tol']:g})"
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
        f"{np.round(res.weights, 4).tolist()}, slowest run {max(r.n_iter for r in res.runs)} "
        f"iterations, distinct optima: {len(res.optima)}"
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
        f"(b) one iteration, N = {n_seq:.0e}, K = 3, {data.n_outcomes} distinct outcomes "
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
        f"scikit-learn {sklearn.__version__}, {platform.machine()}"
    )
    bench_fit(10**7 // scale, repeats)
    bench_iteration(10**6 // scale, repeats, iters=5)


if __name__ == "__main__":
    main()
