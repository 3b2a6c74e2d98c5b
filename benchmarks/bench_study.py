"""Simulation-study throughput with 1 and with 2 Dask worker processes; prints both.

The same study (examples/study_small.toml's cells, 8 replicates each, 300 + 300 draws) runs
on a local cluster of 1 and then of 2 worker processes, each into a fresh folder. Printed:
replicates per minute (whole run: cluster start, compiles, replicates), the scaling
efficiency (rate with 2 / (2 x rate with 1)), and how many replicates compiled a model
against how many reused one: each worker compiles once per (K, trials).

Run: ``make bench`` or ``.venv/bin/python benchmarks/bench_study.py [--replicates R]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from compare.study import load_rows, load_spec, run_study

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=8)
    args = parser.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)
    spec = replace(load_spec(ROOT / "examples" / "study_small.toml"), replicates=args.replicates)
    total = len(spec.tasks())
    import dask
    import nutpie

    print(
        f"python {platform.python_version()}, dask {dask.__version__}, nutpie "
        f"{nutpie.__version__}, {platform.machine()}, {os.cpu_count()} cores"
    )
    print(
        f"{len(spec.cells)} cells x {spec.replicates} replicates = {total}, "
        f"{spec.chains} chains x ({spec.tune} + {spec.draws}) draws per replicate"
    )
    print(
        f"  {'workers':>7s}  {'wall s':>7s}  {'replicates/min':>14s}  {'compiled':>8s}  "
        f"{'reused':>6s}  {'s/replicate compiled':>20s}  {'s/replicate reused':>18s}"
    )
    rates = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            run_study(spec, Path(tmp) / "study", workers=workers)
            wall = time.perf_counter() - t0
            rows = load_rows(Path(tmp) / "study")
        rates[workers] = total / wall * 60
        comp = rows[rows["compiled_models"] > 0]
        reused = rows[rows["compiled_models"] == 0]
        print(
            f"  {workers:>7d}  {wall:>7.1f}  {rates[workers]:>14.1f}  {len(comp):>8d}  "
            f"{len(reused):>6d}  {comp['seconds'].mean():>20.2f}  "
            f"{reused['seconds'].mean():>18.2f}"
        )
    eff = rates[2] / (2 * rates[1])
    print(
        f"  scaling efficiency with 2 workers: {eff:.2f} (rate {rates[2]:.1f} / 2 x {rates[1]:.1f})"
    )


if __name__ == "__main__":
    main()
