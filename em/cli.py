"""Command line: ``python -m em chapter`` and ``python -m em fit DATA --components K``.

Exit status 0 on success, 2 on bad input (one line on stderr naming the argument or the
row), 1 if the EM invariant breaks (a bug, reported in one line too), 130 when
interrupted (Ctrl-C), without a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from em import _validation as v
from em.data import load_data
from em.fitting import METHODS, EMInvariantError, FitResult, fit_data
from em.selection import parse_components, select_components

__all__ = ["main", "build_parser", "format_fit"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit status 2."""

    def error(self, message):  # noqa: D102 - argparse hook
        raise _UsageError(f"{self.prog}: {message}")


class _UsageError(Exception):
    pass


_TOL_HELP = (
    "a run has converged when its certified gap, the log-likelihood (or log-posterior) "
    "still to gain, is at most T nats; absolute, whatever the number of sequences "
    "(default 1e-9)"
)


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m em`` argument parser."""
    parser = _Parser(
        prog="python -m em",
        description="Handwritten EM for finite binomial mixtures.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    ch = sub.add_parser("chapter", help="the chapter's Tables 6.1-6.4, then EM to convergence")
    ch.add_argument("--tol", default="1e-9", metavar="T", help=_TOL_HELP)
    ch.add_argument("--max-iter", default="1000", help="maximum iterations (default 1000)")

    f = sub.add_parser("fit", help="fit a K-component binomial mixture by EM with restarts")
    f.add_argument("data", metavar="DATA", help="'chapter' or a CSV with heads,trials[,count]")
    f.add_argument(
        "--components",
        required=True,
        metavar="K",
        help="number of components, or a range such as 1-4 (model selection)",
    )
    f.add_argument("--restarts", default="10", metavar="R", help="seeded random starts (10)")
    f.add_argument("--seed", default="0", metavar="S", help="root seed (default 0)")
    f.add_argument("--tol", default="1e-9", metavar="T", help=_TOL_HELP)
    f.add_argument("--max-iter", default="1000", metavar="M", help="max iterations (1000)")
    f.add_argument(
        "--method",
        default="newton",
        choices=METHODS,
        help="newton: EM steps, then Newton steps with the exact Hessian (default); "
        "em: plain EM, step after step",
    )
    f.add_argument("--init-weights", metavar="W,...", help="your starting weights")
    f.add_argument("--init-p", metavar="P,...", help="your starting biases")
    f.add_argument("--fix", choices=["weights", "p"], help="hold weights or biases fixed")
    f.add_argument("--prior-weights", metavar="ALPHA", help="Dirichlet alpha (MAP-EM)")
    f.add_argument("--prior-p", metavar="A,B", help="Beta(a, b) on every bias (MAP-EM)")
    f.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _int(text: str, name: str, minimum: int) -> int:
    return v.parse_int(text, name, minimum)


def _float(text: str, name: str) -> float:
    return v.check_tol(v.parse_float(text, name), name)


def _options(args, k: int) -> dict:
    """CLI strings to :func:`em.fit_data` options, each checked under its flag's name."""
    opts = {
        "restarts": _int(args.restarts, "--restarts", 0),
        "seed": _int(args.seed, "--seed", 0),
        "tol": _float(args.tol, "--tol"),
        "max_iter": _int(args.max_iter, "--max-iter", 0),
        "method": args.method,
        "fix": args.fix,
    }
    if args.init_weights is not None:
        w = v.parse_float_list(args.init_weights, "--init-weights")
        opts["init_weights"] = v.check_weights(w, k, "--init-weights")
    if args.init_p is not None:
        p = v.parse_float_list(args.init_p, "--init-p")
        opts["init_p"] = v.check_p(p, k, "--init-p")
    if args.prior_weights is not None:
        alpha = v.parse_float_list(args.prior_weights, "--prior-weights")
        opts["prior_weights"] = v.check_prior_weights(
            alpha[0] if len(alpha) == 1 else alpha, k, "--prior-weights"
        )
    if args.prior_p is not None:
        ab = v.parse_float_list(args.prior_p, "--prior-p")
        opts["prior_p"] = v.check_prior_p(ab, "--prior-p")
    if args.fix == "p" and args.init_p is None:
        raise ValueError("--fix p needs --init-p: the biases to hold fixed")
    if opts["restarts"] == 0 and args.init_weights is None and args.init_p is None:
        raise ValueError("--restarts 0 needs a start: give --init-weights or --init-p")
    return {"n_components": k, **opts}


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
    for i, o in enumerate(res.optima, 1):
        ps = ", ".join(f"{x:.4f}" for x in o.reduced.p)
        lines.append(
            f"  {i:<2d} {o.objective:<16.7f} {o.fraction:<9.2f} {o.reduced.n_components:<7d} {ps}"
        )
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
        ks = parse_components(args.components)
        if len(ks) > 1:
            for flag, value in (("--init-weights", args.init_weights), ("--init-p", args.init_p)):
                if value is not None:
                    raise ValueError(f"{flag} needs a single --components K, not a range")
        opts = [_options(args, k) for k in ks]
        data = load_data(args.data)
        v.check_n_components(max(ks), data, "--components")  # K is bounded by the data
        if len(ks) > 1:
            return _select(data, ks, opts[0], args.json)
        res = fit_data(data, **opts[0])
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
