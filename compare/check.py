"""Check a student's EM step against the chapter and the reference EM.

The function under test has the signature documented in ``examples/em_step_template.py``::

    em_step(heads, trials, weights, p) -> (new_weights, new_p)

one EM iteration; ``heads`` and ``trials`` are integer arrays with one entry per
sequence, ``weights`` and ``p`` float arrays with one entry per component. It runs in a
separate process, one call at a time with a time limit, so a function that raises,
returns the wrong thing or hangs is reported, never fatal.
"""

from __future__ import annotations

import importlib
import importlib.util
import multiprocessing as mp
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from em import BinomialData, MixtureParams, e_step, log_likelihood, m_step
from em.chapter import CHAPTER_INIT
from em.data import CHAPTER_HEADS, CHAPTER_TRIALS

__all__ = ["CheckResult", "run_checks", "format_results", "load_function"]

# The chapter's printed values: (6.14) and Table 6.4 (7 decimals).
EQ_6_14 = np.array([0.3337246, 0.5261878, 0.1400877])
TABLE_6_4 = np.array([0.3536485, 0.4278732, 0.5128013])
PRINTED = 5e-8  # half a unit in the 7th decimal
ITERATIONS = 50
REL_TOL = 1e-8


@dataclass(frozen=True)
class CheckResult:
    """One graded check: its name, whether it passed, and what was expected and obtained."""

    name: str
    passed: bool
    expected: str = ""
    obtained: str = ""


def load_function(spec: str):
    """``path/to/file.py:name`` or ``package.module:name`` to the function."""
    if ":" not in spec:
        raise ValueError(f"expected PATH_OR_MODULE:FUNCTION, got {spec!r}")
    where, name = spec.rsplit(":", 1)
    if where.endswith(".py") or Path(where).is_file():
        path = Path(where)
        if not path.is_file():
            raise ValueError(f"no such file {where!r}")
        loader_spec = importlib.util.spec_from_file_location(f"_checked_{path.stem}", path)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[loader_spec.name] = module
        loader_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    if not hasattr(module, name):
        raise ValueError(f"{where!r} has no function {name!r}")
    return getattr(module, name)


# ---------------------------------------------------------------------- the worker process
def _worker(spec: str, conn) -> None:
    try:
        fn = load_function(spec)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, whatever it is
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ok", None))
    while True:
        try:
            args = conn.recv()
        except EOFError:
            return
        try:
            out = fn(*args)
            conn.send(("ok", out))
        except BaseException as exc:  # noqa: BLE001
            tb = traceback.extract_tb(exc.__traceback__)
            where = f" (line {tb[-1].lineno})" if tb else ""
            conn.send(("error", f"{type(exc).__name__}: {exc}{where}"))


class _Runner:
    """Calls the function in a child process; restarts it after a time-out."""

    def __init__(self, spec: str, timeout: float):
        self.spec, self.timeout = spec, timeout
        self.proc = self.conn = None
        self.hung = False
        self.load_error = self._start()

    def _start(self) -> str | None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(self.spec, child), daemon=True)
        self.proc.start()
        self.conn = parent
        if not parent.poll(max(self.timeout, 30.0)):
            self.close()
            return "loading the function timed out"
        status, msg = parent.recv()
        return msg if status == "error" else None

    def call(self, *args) -> tuple[str, object]:
        if self.hung:  # do not wait out the time limit again for every check
            return "error", f"not run: an earlier call took longer than {self.timeout:g} s"
        if self.proc is None or not self.proc.is_alive():
            err = self._start()
            if err:
                return "error", err
        self.conn.send(args)
        if not self.conn.poll(self.timeout):
            self.close()
            self.hung = True
            return "error", f"no answer within {self.timeout:g} s (time limit per call)"
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            self.close()
            return "error", "the function's process died"

    def close(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.proc = None


# ---------------------------------------------------------------------- checks
def _reference_step(heads, trials, w, p) -> MixtureParams:
    data = BinomialData.from_sequences(heads, trials)
    params = MixtureParams(w, p)
    return m_step(e_step(data, params), params)


def _as_pair(out, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The function's answer as two float arrays of shape (K,), or ValueError saying why."""
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise ValueError(f"expected a pair (new_weights, new_p), got {type(out).__name__}")
    try:
        w, p = (np.asarray(x, dtype=float) for x in out)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not numeric arrays: {exc}") from None
    if w.shape != (k,) or p.shape != (k,):
        raise ValueError(f"expected shapes ({k},) and ({k},), got {w.shape} and {p.shape}")
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(p))):
        raise ValueError(f"non-finite values: weights {w.tolist()}, p {p.tolist()}")
    return w, p


def _datasets() -> list[tuple[str, np.ndarray, np.ndarray, MixtureParams]]:
    """The chapter's data and seeded synthetic ones (N != 20, varying trials, K = 2..4)."""
    rng = np.random.default_rng(20261123)
    out = [("chapter", np.asarray(CHAPTER_HEADS), np.full(20, CHAPTER_TRIALS), CHAPTER_INIT)]
    specs = [
        (
            "synthetic A (N=137, 12 flips, K=2)",
            137,
            lambda n: np.full(n, 12),
            [0.35, 0.65],
            [0.25, 0.7],
            MixtureParams([0.5, 0.5], [0.4, 0.6]),
        ),
        (
            "synthetic B (N=250, 5-30 flips, K=3)",
            250,
            lambda n: rng.integers(5, 31, n),
            [0.2, 0.5, 0.3],
            [0.1, 0.45, 0.8],
            MixtureParams([0.3, 0.4, 0.3], [0.2, 0.5, 0.7]),
        ),
        (
            "synthetic C (N=1000, 8 flips, K=4)",
            1000,
            lambda n: np.full(n, 8),
            [0.1, 0.2, 0.3, 0.4],
            [0.1, 0.35, 0.6, 0.9],
            MixtureParams([0.25] * 4, [0.2, 0.4, 0.6, 0.8]),
        ),
    ]
    for name, n, trials_fn, w, p, init in specs:
        trials = trials_fn(n)
        z = rng.choice(len(w), size=n, p=w)
        out.append((name, rng.binomial(trials, np.asarray(p)[z]), trials, init))
    return out


def _fmt(a) -> str:
    return np.array2string(np.asarray(a), precision=7, floatmode="fixed", separator=", ")


def run_checks(spec: str, *, timeout: float = 10.0) -> list[CheckResult]:
    """Run every check on the function named by ``spec``; a list of graded results."""
    runner = _Runner(spec, timeout)
    try:
        if runner.load_error:
            return [CheckResult("load the function", False, spec, runner.load_error)]
        return _checks(runner)
    finally:
        runner.close()


def _call(runner: _Runner, heads, trials, params: MixtureParams):
    status, out = runner.call(heads.copy(), trials.copy(), params.weights.copy(), params.p.copy())
    if status != "ok":
        timed_out = "time limit" in str(out) or str(out).startswith("not run")
        raise ValueError(str(out) if timed_out else f"raised {out}")
    return _as_pair(out, params.n_components)


def _checks(runner: _Runner) -> list[CheckResult]:
    results: list[CheckResult] = []
    add = results.append
    data = _datasets()

    # 1. The chapter's first iteration.
    name, heads, trials, init = data[0]
    try:
        w, p = _call(runner, heads, trials, init)
        add(
            CheckResult(
                "interface: returns (new_weights, new_p) of shape (K,)",
                True,
                "two arrays of shape (3,)",
                "ok",
            )
        )
        add(
            CheckResult(
                "chapter (6.14): updated weights",
                bool(np.all(np.abs(w - EQ_6_14) < PRINTED)),
                _fmt(EQ_6_14),
                _fmt(w),
            )
        )
        add(
            CheckResult(
                "chapter Table 6.4: updated biases",
                bool(np.all(np.abs(p - TABLE_6_4) < PRINTED)),
                _fmt(TABLE_6_4),
                _fmt(p),
            )
        )
    except ValueError as exc:
        add(
            CheckResult(
                "interface: returns (new_weights, new_p) of shape (K,)",
                False,
                "two finite arrays of shape (3,)",
                str(exc),
            )
        )

    # 2. Each data set: one step, the iterated path, monotonicity, labels.
    for name, heads, trials, init in data:
        ref = _reference_step(heads, trials, init.weights, init.p)
        try:
            w, p = _call(runner, heads, trials, init)
        except ValueError as exc:
            add(CheckResult(f"{name}: one step", False, "an answer", str(exc)))
            continue
        ok_sum = abs(w.sum() - 1) < 1e-9 and np.all(w >= 0) and np.all((p >= 0) & (p <= 1))
        add(
            CheckResult(
                f"{name}: weights on the simplex, biases in [0, 1]",
                bool(ok_sum),
                "sum(weights) = 1, 0 <= p <= 1",
                f"sum(weights) = {w.sum():.10g}, p = {_fmt(p)}",
            )
        )
        close = np.allclose(w, ref.weights, rtol=REL_TOL, atol=1e-12) and np.allclose(
            p, ref.p, rtol=REL_TOL, atol=1e-12
        )
        add(
            CheckResult(
                f"{name}: one step equals the reference EM",
                bool(close),
                f"weights {_fmt(ref.weights)}, p {_fmt(ref.p)}",
                f"weights {_fmt(w)}, p {_fmt(p)}",
            )
        )
        results.extend(_iterate(runner, name, heads, trials, init))
        perm = np.roll(np.arange(init.n_components), 1)
        try:
            wp, pp = _call(runner, heads, trials, MixtureParams(init.weights[perm], init.p[perm]))
            same = np.allclose(wp, w[perm], rtol=1e-10) and np.allclose(pp, p[perm], rtol=1e-10)
            add(
                CheckResult(
                    f"{name}: relabelling the components relabels the answer",
                    bool(same),
                    f"weights {_fmt(w[perm])}",
                    f"weights {_fmt(wp)}",
                )
            )
        except ValueError as exc:
            add(
                CheckResult(
                    f"{name}: relabelling the components relabels the answer",
                    False,
                    "an answer",
                    str(exc),
                )
            )
    return results


def _iterate(runner, name, heads, trials, init) -> list[CheckResult]:
    data = BinomialData.from_sequences(heads, trials)
    ref, own = init, init
    worst, fell = 0.0, None
    prev = log_likelihood(data, own)
    for it in range(1, ITERATIONS + 1):
        ref = m_step(e_step(data, ref), ref)
        try:
            w, p = _call(runner, heads, trials, own)
        except ValueError as exc:
            return [
                CheckResult(
                    f"{name}: {ITERATIONS} iterations", False, "answers", f"iteration {it}: {exc}"
                )
            ]
        own = MixtureParams(w, p)
        worst = max(worst, float(np.max(np.abs(np.r_[w - ref.weights, p - ref.p]))))
        with np.errstate(all="ignore"):
            ll = (
                log_likelihood(data, own)
                if np.all((p >= 0) & (p <= 1)) and np.all(w >= 0)
                else -np.inf
            )
        if fell is None and not ll >= prev - 1e-9 * max(1.0, abs(prev)):
            fell = (it, prev, ll)
        prev = ll
    out = [
        CheckResult(
            f"{name}: {ITERATIONS} iterations follow the reference EM",
            worst <= 1e-7,
            "largest parameter difference <= 1e-7",
            f"{worst:.3g}",
        )
    ]
    out.append(
        CheckResult(
            f"{name}: the log-likelihood never decreases",
            fell is None,
            "non-decreasing over the iterations",
            "ok" if fell is None else f"iteration {fell[0]}: {fell[1]:.10g} -> {fell[2]:.10g}",
        )
    )
    return out


def format_results(results: list[CheckResult]) -> str:
    """The graded list, then a one-line score."""
    lines = []
    for r in results:
        lines.append(f"{'PASS' if r.passed else 'FAIL'}  {r.name}")
        if not r.passed:
            lines.append(f"        expected: {r.expected}")
            lines.append(f"        obtained: {r.obtained}")
    passed = sum(r.passed for r in results)
    lines.append(f"{passed} passed, {len(results) - passed} failed")
    return "\n".join(lines) + "\n"
