"""Write a CSV of sequences simulated from a true binomial mixture (heads,trials per row).

    .venv/bin/python examples/simulate.py overlap.csv --n 6000 --trials 12 \
        --weights 0.7,0.3 --p 0.48,0.62 --seed 0

Each sequence picks its coin with probability ``weights`` and flips it ``trials`` times;
every random number comes from ``np.random.default_rng(np.random.SeedSequence(seed))``, so
the same command writes the same file. An existing OUT is kept unless ``--force``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def simulate(n: int, trials: int, weights, p, seed: int = 0) -> np.ndarray:
    """Heads of ``n`` sequences of ``trials`` flips from the mixture (weights, p)."""
    weights, p = np.asarray(weights, float), np.asarray(p, float)
    if weights.shape != p.shape or weights.ndim != 1 or weights.size == 0:
        raise ValueError("--weights and --p must be lists of the same length")
    if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0):
        raise ValueError(f"--weights must be >= 0 and sum to 1, got {weights.tolist()}")
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"--p must lie in [0, 1], got {p.tolist()}")
    if n < 1 or trials < 1:
        raise ValueError("--n and --trials must be >= 1")
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    coin = rng.choice(weights.size, size=n, p=weights / weights.sum())
    return rng.binomial(trials, p[coin])


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas, got {text!r}"
        ) from None


def main(argv=None) -> int:
    """Write the simulated sequences to OUT.csv; the exit status."""
    ap = argparse.ArgumentParser(prog="examples/simulate.py", description=__doc__.split("\n")[0])
    ap.add_argument("out", metavar="OUT.csv")
    ap.add_argument("--n", type=int, required=True, help="number of sequences")
    ap.add_argument("--trials", type=int, required=True, help="flips per sequence")
    ap.add_argument("--weights", type=_floats, required=True, help="true weights, e.g. 0.7,0.3")
    ap.add_argument("--p", type=_floats, required=True, help="true biases, e.g. 0.48,0.62")
    ap.add_argument("--seed", type=int, default=0, help="root seed (0)")
    ap.add_argument("--force", action="store_true", help="replace an existing OUT")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"error: {out} exists (--force replaces it)", file=sys.stderr)
        return 2
    try:
        heads = simulate(args.n, args.trials, args.weights, args.p, args.seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = np.column_stack([heads, np.full(args.n, args.trials)])
    np.savetxt(out, rows, fmt="%d", delimiter=",", header="heads,trials", comments="")
    print(f"wrote {out}: {args.n} sequences of {args.trials} flips")
    return 0


if __name__ == "__main__":
    sys.exit(main())
