"""PyMC model timings; prints the figures side by side.

(1) Compile-plus-sample time of the chapter data (K = 3, 4 chains x 1000 tune + 1000
    draws) with nutpie and with PyMC's own NUTS, each in a fresh process: once cold (an
    empty PyTensor compile cache) and once warm (the cache the cold run filled).
(2) Posterior sampling time for N = 20 against N = 10^6 sequences (K = 3, 10 flips), in
    one run: the likelihood is evaluated once per distinct outcome, so the ratio should
    stay near 1 (target <= 1.5).

Run: ``make bench`` or ``.venv/bin/python benchmarks/bench_models.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from em import BinomialData
from models import MixtureModel
t1 = time.perf_counter()
mm = MixtureModel(BinomialData.chapter(), 3)
idata = mm.sample(draws={draws}, tune={tune}, chains=4, seed=1, sampler="{sampler}")
t2 = time.perf_counter()
div = int(idata["sample_stats"]["diverging"].sum())
print(json.dumps({{"import": t1 - t0, "build_and_sample": t2 - t1, "divergences": div}}))
"""


def run_child(sampler: str, compiledir: str, draws: int, tune: int) -> dict:
    env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={compiledir}")
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(sampler=sampler, draws=draws, tune=tune)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["process"] = time.perf_counter() - t0
    return res


def bench_samplers(draws: int, tune: int) -> None:
    print(
        f"(1) chapter data, K = 3, 4 chains x ({tune} tune + {draws} draws), "
        "model build + compile + sample, seconds"
    )
    print(
        f"    {'sampler':10s}{'cold':>8s}{'warm':>8s}{'whole process cold/warm':>28s}"
        f"{'divergences':>13s}"
    )
    for sampler in ("nutpie", "pymc"):
        with tempfile.TemporaryDirectory() as cache:
            cold = run_child(sampler, cache, draws, tune)
            warm = run_child(sampler, cache, draws, tune)
        print(
            f"    {sampler:10s}{cold['build_and_sample']:>8.1f}{warm['build_and_sample']:>8.1f}"
            f"{cold['process']:>17.1f} / {warm['process']:<8.1f}{warm['divergences']:>10d}"
        )


def bench_scaling(draws: int, tune: int) -> None:
    import numpy as np

    from em import BinomialData
    from models import DEFAULT_SAMPLER, MixtureModel

    rng = np.random.default_rng(5)
    print(
        f"(2) sampling time against N, K = 3, 10 flips, {DEFAULT_SAMPLER}, 4 chains x "
        f"({tune} + {draws}); second call (the first compiles)"
    )
    times = {}
    for n in (20, 10**6):
        z = rng.choice(3, size=n, p=[0.3, 0.5, 0.2])
        heads = rng.binomial(10, np.array([0.2, 0.5, 0.8])[z])
        data = BinomialData.from_sequences(heads, 10)
        mm = MixtureModel(data, 3)
        mm.sample(draws=draws, tune=tune, seed=1)
        t0 = time.perf_counter()
        mm.sample(draws=draws, tune=tune, seed=2)
        times[n] = time.perf_counter() - t0
        print(f"    N = {n:>8d} ({data.n_outcomes:>2d} distinct outcomes): {times[n]:6.2f} s")
    ratio = times[10**6] / times[20]
    print(
        f"    ratio N=1e6 / N=20 = {ratio:.2f} (target <= 1.5): "
        f"{'met' if ratio <= 1.5 else 'NOT met'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 + 200 draws")
    args = parser.parse_args()
    draws = tune = 200 if args.quick else 1000
    import nutpie
    import pymc
    import pytensor

    print(
        f"python {platform.python_version()}, pymc {pymc.__version__}, pytensor "
        f"{pytensor.__version__}, nutpie {nutpie.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} cores",
        flush=True,
    )
    bench_samplers(draws, tune)
    bench_scaling(draws, tune)


if __name__ == "__main__":
    main()
