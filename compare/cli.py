"""``python -m compare report DATA --components K --seed S --out DIR [...]``.

Exit status 0 on success and 2 on bad input, with one line on stderr naming the flag or
the data row.
"""

from __future__ import annotations

import _thread
import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from em import load_data
from em import options as o
from models import DEFAULT_SAMPLER, SAMPLERS

_Parser, _UsageError = o.Parser, o.UsageError

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m compare`` argument parser."""
    parser = _Parser(prog="python -m compare", description="EM against the posterior.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    r = sub.add_parser("report", help="run EM and the PyMC model, write the report into DIR")
    r.add_argument("data", metavar="DATA", help=o.DATA)
    o.COMPONENTS.add(r)
    o.SEED.add(r)
    r.add_argument("--out", metavar="DIR", help="report folder (default reports/<data name>-K<K>)")
    o.RESTARTS.add(r)
    r.add_argument("--draws", default="1000", metavar="D", help="draws per chain (1000)")
    r.add_argument("--tune", default="1000", metavar="T", help="tuning steps per chain (1000)")
    r.add_argument("--chains", default="4", metavar="C", help="chains (4)")
    r.add_argument(
        "--sampler",
        default=DEFAULT_SAMPLER,
        metavar="NAME",
        help=f"{' or '.join(SAMPLERS)} (default {DEFAULT_SAMPLER})",
    )
    o.PRIOR_WEIGHTS.add(r, default="1", help=o.PRIOR_WEIGHTS.help + " (default 1: flat)")
    o.PRIOR_P.add(r, default="1,1", help=o.PRIOR_P.help + " (default 1,1: flat)")
    r.add_argument(
        "--em-result",
        metavar="FILE.json|FILE.py[:FUNCTION]|MODULE[:FUNCTION]",
        help="judge another EM beside the built-in one: a JSON file with weights, p and "
        "optionally log_likelihood, or a function fit(heads, trials, n_components, seed) "
        "-> (weights, p), run in a child process (FUNCTION: fit)",
    )
    r.add_argument(
        "--em-timeout",
        default="600",
        metavar="S",
        help="time limit of --em-result's function, in seconds (600)",
    )
    r.add_argument("--force", action="store_true", help="replace a non-empty DIR")
    s = sub.add_parser("study", help="a simulation study over a grid of true mixtures (Dask)")
    s.add_argument("spec", metavar="SPEC", help="TOML file: [[cells]], replicates, [fit]")
    s.add_argument("--out", required=True, metavar="DIR", help="study folder (resumable)")
    s.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="an existing dask.distributed scheduler, e.g. tcp://host:8786",
    )
    s.add_argument(
        "--workers",
        default="2",
        metavar="N",
        help="worker processes of the local cluster (default 2)",
    )
    s.add_argument("--seed", metavar="S", help="root seed (default: the SPEC's, else 0)")
    c = sub.add_parser("check", help="check an em_step(heads, trials, weights, p) function")
    c.add_argument(
        "function",
        metavar="FILE.py[:FUNCTION]|MODULE[:FUNCTION]",
        help="e.g. examples/em_step_template.py or mypkg.em:my_step (FUNCTION: em_step)",
    )
    c.add_argument(
        "--timeout",
        default="10",
        metavar="S",
        help="time limit per call in seconds, the whole exchange included (default 10)",
    )
    c.add_argument(
        "--allow-suite-imports",
        action="store_true",
        help="let the function import em, compare and models (refused by default)",
    )
    return parser


def _user_estimate(spec: str, data, opts, timeout: float):
    """--em-result: a JSON file, or another program's fit run in a child process."""
    from compare.stages.user_em import estimate_from, read_estimate

    k = opts.components
    if spec.endswith(".json"):
        return read_estimate(spec, k)
    from compare.analysis import analysis_seeds
    from compare.check import run_fit
    from compare.stages.fits import seed_int

    if data.n_sequences > 10**6:
        raise ValueError(
            "--em-result FUNCTION: at most 10^6 sequences are passed to a function; write "
            "the estimate to a JSON file instead"
        )
    heads, trials = data.expand()
    seed = seed_int(analysis_seeds(opts.seed)[8])
    weights, p = run_fit(spec, heads, trials, k, seed, timeout=timeout)
    return estimate_from(weights, p, None, k, f"--em-result {spec}")


def _study(args) -> int:
    from compare.study import load_spec, run_study

    workers = o.integer(args.workers, "--workers", 1)
    seed = None if args.seed is None else o.integer(args.seed, "--seed", 0)
    spec = load_spec(args.spec, seed=seed)
    # Dask's log lines stay off the terminal: read when distributed is imported, here and in
    # the worker processes (setLevel covers a distributed imported already).
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
    logging.getLogger("distributed").setLevel(logging.ERROR)
    summary = run_study(spec, args.out, scheduler=args.scheduler, workers=workers)
    print(f"study written to {args.out}/ (study.md, study.html, summary.json, replicates/)")
    for cell in summary["cells"]:
        glob = cell.get("em_global", {}).get("rate", float("nan"))
        agree = cell.get("map_em_agree", {}).get("rate", float("nan"))
        print(
            f"- {cell['name']}: {cell['replicates']} replicates ({cell['failed']} failed), "
            f"EM global optimum {glob:.2f}, MAP/EM agree {agree:.2f}"
        )
    return 0


def _check(args) -> int:
    """Grade the function: 0 if every check passed, 1 if some failed (2: bad usage)."""
    from compare.check import check_timeout, format_output, format_results, grade, parse_spec

    timeout = check_timeout(args.timeout, "--timeout")
    try:
        spec = parse_spec(args.function)
    except ValueError as exc:
        raise ValueError(f"cannot load {args.function}: {exc}") from None
    try:
        grading = grade(
            args.function, timeout=timeout, allow_suite_imports=args.allow_suite_imports
        )
    except KeyboardInterrupt:  # Ctrl-C, or SIGINT from the checked function: not a pass
        print("error: interrupted", file=sys.stderr)
        return 130
    results = grading.results
    if len(results) == 1 and results[0].name == "load the function":
        raise ValueError(f"cannot load {args.function}: {results[0].obtained}")
    sys.stderr.write(format_output(grading, spec.name))
    sys.stdout.write(format_results(results))
    return 0 if results and all(r.passed for r in results) else 1


class _Interrupted(BaseException):
    """Ctrl-C, raised as this rather than as a KeyboardInterrupt.

    PyMC catches a KeyboardInterrupt while sampling, keeps the draws so far and carries
    on: the report would be written from chains cut short.
    """


@contextlib.contextmanager
def _ctrl_c():
    """Within: SIGINT raises :class:`_Interrupted` in this process, wherever it lands.

    Forked sampler processes get a KeyboardInterrupt, as PyMC expects there. One raised
    inside a finalizer, where Python prints and drops it, is delivered again.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # e.g. a background job: keep so
    ):
        yield
        return
    pid = os.getpid()

    def on_sigint(signum, frame):
        if os.getpid() != pid:
            raise KeyboardInterrupt
        raise _Interrupted

    def again():
        if active:
            _thread.interrupt_main(signal.SIGINT)

    def unraisable(info):
        if isinstance(info.exc_value, _Interrupted):  # again, once out of this hook
            threading.Timer(0.05, again).start()
        else:
            hook(info)

    active = [True]
    hook, previous = sys.unraisablehook, signal.signal(signal.SIGINT, on_sigint)
    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        active.clear()
        signal.signal(signal.SIGINT, previous)
        sys.unraisablehook = hook


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (130 after Ctrl-C, with one line, no traceback)."""
    try:
        with _ctrl_c():
            return _main(argv)
    except (KeyboardInterrupt, _Interrupted):
        print("error: interrupted", file=sys.stderr)
        return 130


def _main(argv: list[str] | None) -> int:
    from compare.options import ReportOptions, validate_options
    from compare.output import check_out_dir
    from compare.report import write_report

    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(argv)
        if args.command == "check":
            return _check(args)
        if args.command == "study":
            return _study(args)
        ks = o.components(args.components)
        alpha = o.floats(args.prior_weights, "--prior-weights")
        if len(ks) > 1 and len(alpha) > 1:
            raise ValueError("--prior-weights with a range of --components takes one number")
        if len(ks) > 1 and args.em_result is not None:
            raise ValueError("--em-result needs a single --components K, not a range")
        opts = ReportOptions(
            components=ks[0],
            seed=o.integer(args.seed, "--seed", 0),
            restarts=o.integer(args.restarts, "--restarts", 0),
            draws=o.integer(args.draws, "--draws", 1),
            tune=o.integer(args.tune, "--tune", 0),
            chains=o.integer(args.chains, "--chains", 1),
            sampler=args.sampler,
            prior_weights=tuple(o.prior_weights(args.prior_weights, ks[0]))
            if len(alpha) > 1
            else alpha[0],
            prior_p=o.prior_p(args.prior_p),
        )
        validate_options(opts)
        out = (
            Path(args.out)
            if args.out is not None
            else Path("reports") / (f"{Path(args.data).stem}-K{opts.components}")
        )
        if args.out is not None and not args.out.strip():
            raise ValueError("--out: the folder name is empty")
        em_timeout = None
        if args.em_result is not None:
            from compare.check import check_timeout

            em_timeout = check_timeout(args.em_timeout, "--em-timeout")
        check_out_dir(out, args.force, inputs=[args.data])  # before the data are read
        data = load_data(args.data)
        user = None
        if args.em_result is not None:
            user = _user_estimate(args.em_result, data, opts, em_timeout)
        # PyMC logs the sampler's progress; the report holds what matters.
        logging.getLogger("pymc").setLevel(logging.WARNING)
        results = write_report(
            data,
            opts,
            out,
            force=args.force,
            command=["python", "-m", "compare", *argv],
            select=ks if len(ks) > 1 else None,
            user=user,
        )
    except (_UsageError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report written to {out}/ (report.md, report.html, results.json)")
    for line in results["conclusions"]:
        print(f"- {line}")
    return 0
