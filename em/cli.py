"""Command line: ``python -m em chapter`` and ``python -m em fit DATA --components K``.

Exit status 0 on success, 2 on bad input (one line on stderr naming the argument or the
row), 1 if the EM invariant breaks (a bug, reported in one line too), 130 when
interrupted (Ctrl-C), without a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from em import _validation as v
from em import options as o
from em.data import load_data, load_rows
from em.fitting import EMInvariantError, FitResult, fit_data
from em.selection import select_components

__all__ = ["main", "build_parser", "format_fit"]


# The one-line usage errors of both commands (compare's CLI reuses them).
_Parser, _UsageError = o.Parser, o.UsageError


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m em`` argument parser (options from :mod:`em.options`)."""
    parser = o.Parser(
        prog="python -m em",
        description="Handwritten EM for finite binomial mixtures.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=o.Parser)

    ch = sub.add_parser("chapter", help="the chapter's Tables 6.1-6.4, then EM to convergence")
    o.TOL.add(ch)
    o.MAX_ITER.add(ch)

    f = sub.add_parser("fit", help="fit a K-component binomial mixture by EM with restarts")
    f.add_argument("data", metavar="DATA", help=o.DATA)
    for option in (o.COMPONENTS, o.RESTARTS, o.SEED, o.TOL, o.MAX_ITER, o.METHOD):
        option.add(f)
    for option in (o.INIT_WEIGHTS, o.INIT_P, o.FIX, o.PRIOR_WEIGHTS, o.PRIOR_P):
        option.add(f)
    f.add_argument(
        "--assignments",
        metavar="OUT.csv",
        help="write which coin: one row per input row, heads,trials[,count] and "
        "P(coin 1)...P(coin K) at the best fit",
    )
    f.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _int(text: str, name: str, minimum: int) -> int:
    return o.integer(text, name, minimum)


def _float(text: str, name: str) -> float:
    return o.tolerance(text, name)


def _options(args, k: int) -> dict:
    """CLI strings to :func:`em.fit_data` options, each checked under its flag's name."""
    opts = {
        "restarts": o.integer(args.restarts, "--restarts", 0),
        "seed": o.integer(args.seed, "--seed", 0),
        "tol": o.tolerance(args.tol),
        "max_iter": o.integer(args.max_iter, "--max-iter", 0),
        "method": args.method,
        "fix": args.fix,
    }
    if args.init_weights is not None:
        w = o.floats(args.init_weights, "--init-weights")
        opts["init_weights"] = v.check_weights(w, k, "--init-weights")
    if args.init_p is not None:
        opts["init_p"] = v.check_p(o.floats(args.init_p, "--init-p"), k, "--init-p")
    if args.prior_weights is not None:
        opts["prior_weights"] = o.prior_weights(args.prior_weights, k)
    if args.prior_p is not None:
        opts["prior_p"] = o.prior_p(args.prior_p)
    if args.fix == "p" and args.init_p is None:
        raise ValueError("--fix p needs --init-p: the biases to hold fixed")
    if opts["restarts"] == 0 and args.init_weights is None and args.init_p is None:
        raise ValueError("--restarts 0 needs a start: give --init-weights or --init-p")
    return {"n_components": k, **opts}


def write_assignments(res: FitResult, data_spec, path) -> None:
    """One row per input row: heads, trials (count) and P(coin j | row) at the best fit.

    Written atomically (a temporary file beside ``path``, then renamed).
    """
    heads, trials, counts = load_rows(data_spec)
    proba = res.predict_proba(heads, trials)
    k = res.n_components
    with_counts = not np.all(counts == 1)
    header = ["heads", "trials", *(["count"] if with_counts else [])]
    header += [f"P(coin {j + 1})" for j in range(k)]
    cols = [heads, trials, *([counts] if with_counts else [])]
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", newline="") as fh:
            fh.write(",".join(header) + "\n")
            ints = np.column_stack(cols)
            for lo in range(0, heads.size, 100_000):
                block = [
                    ",".join(map(str, row_i)) + "," + ",".join(f"{x:.17g}" for x in row_p)
                    for row_i, row_p in zip(
                        ints[lo : lo + 100_000].tolist(),
                        proba[lo : lo + 100_000].tolist(),
                        strict=True,
                    )
                ]
                fh.write("\n".join(block) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ValueError(f"--assignments: cannot write {str(path)!r}: {exc.strerror}") from None


def format_fit(res: FitResult) -> str:
    """A readable summary of a fit (components in order of increasing p)."""
    d = res.data
    opts = res.options
    lines = [
        f"data: {d.source} ({d.n_sequences} sequences, {d.n_outcomes} distinct outcomes, "
        f"trials {int(d.trials.min())}-{d.max_trials})",
        f"EM ({opts['method']}), K = {res.n_components}: {len(res.runs)} runs, seed "
        f"{res.seed}; converged = certified gap <= {opts['tol']:g} nats",
        "",
        "component  weight      p",
    ]
    for j in range(res.n_components):
        lines.append(f"{j + 1:>9d}  {res.weights[j]:.7f}   {res.p[j]:.7f}")
    lines.append(f"log-likelihood  {res.log_likelihood:.7f}")
    if res.log_posterior is not None:
        lines.append(f"log-posterior   {res.log_posterior:.7f}")
    state = "converged" if res.converged else "NOT converged"
    lines.append(f"iterations      {res.n_iter} ({res.n_estep} E-steps), {state}")
    lines.append(
        f"gap             {_gap(res.gap)} ({res.certificate.kind}: {res.certificate.detail})"
    )
    lines.append(
        f"runs converged  {res.n_converged} of {len(res.runs)}"
        + (f", largest gap {_gap(res.max_converged_gap)}" if res.n_converged else "")
    )
    lines += ["", "distinct optima of the converged runs (modulo labels and tied components):"]
    lines.append("  #  objective        fraction  eff. K  p (reduced)")
    for i, opt in enumerate(res.optima, 1):
        ps = ", ".join(f"{x:.4f}" for x in opt.reduced.p)
        k = opt.reduced.n_components
        lines.append(f"  {i:<2d} {opt.objective:<16.7f} {opt.fraction:<9.2f} {k:<7d} {ps}")
    stuck = [r for r in res.runs if not r.converged]
    if stuck:
        lines += ["", "runs that did not converge (in no optimum):"]
        for r in stuck:
            lines.append(
                f"  {r.start:<10s} objective {r.objective:.7f}, gap {_gap(r.gap)} "
                f"after {r.n_iter} iterations ({r.certificate.kind})"
            )
    if res.warnings:
        lines += ["", "warnings:"]
        lines += [f"  {w['code']}: {w['message']}" for w in res.warnings]
    return "\n".join(lines) + "\n"


def _gap(x) -> str:
    return "unknown" if x is None or not math.isfinite(x) else f"{x:.3g} nats"


def _select(data, ks, opts, as_json: bool) -> int:
    opts = {key: value for key, value in opts.items() if key != "n_components"}
    table, preferred, fits = select_components(data, ks, **opts)
    if as_json:
        out = {
            "model_selection": table,
            "preferred": preferred,
            "fits": [f.to_dict() for f in fits],
        }
        sys.stdout.write(json.dumps(out, allow_nan=False) + "\n")
        return 0
    lines = [
        f"data: {data.source} ({data.n_sequences} sequences); EM with "
        f"{opts['restarts']} restarts per K, seed {opts['seed']}",
        "",
        "   K  log-likelihood    params  AIC           BIC           ICL           eff. K",
    ]
    for row, fit in zip(table, fits, strict=True):
        lines.append(
            f"  {row['k']:>2d}  {row['log_likelihood']:<16.7f}  {row['n_parameters']:<6d}  "
            f"{row['aic']:<12.4f}  {row['bic']:<12.4f}  {row['icl']:<12.4f}  "
            f"{fit.optima[0].reduced.n_components}"
        )
    lines.append("")
    lines.append(
        "preferred (lowest): " + ", ".join(f"{c.upper()} K = {k}" for c, k in preferred.items())
    )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (130 when interrupted by Ctrl-C, SIGINT)."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "chapter":
            from em.chapter import render_chapter  # scipy.stats: a second, only here

            text = render_chapter(
                tol=_float(args.tol, "--tol"), max_iter=_int(args.max_iter, "--max-iter", 0)
            )
            sys.stdout.write(text)
            return 0
        ks = o.components(args.components)
        if len(ks) > 1:
            for flag, value in (
                ("--init-weights", args.init_weights),
                ("--init-p", args.init_p),
                ("--assignments", args.assignments),
            ):
                if value is not None:
                    raise ValueError(f"{flag} needs a single --components K, not a range")
        opts = [_options(args, k) for k in ks]
        data = load_data(args.data)
        v.check_n_components(max(ks), data, "--components")  # K is bounded by the data
        if len(ks) > 1:
            return _select(data, ks, opts[0], args.json)
        res = fit_data(data, **opts[0])
        if args.assignments is not None:
            write_assignments(res, args.data, args.assignments)
    except (_UsageError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except EMInvariantError as exc:
        print(f"internal error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        sys.stdout.write(json.dumps(res.to_dict(), allow_nan=False) + "\n")
    else:
        sys.stdout.write(format_fit(res))
    return 0
