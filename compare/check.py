"""Check a student's EM step against the chapter and the reference EM, and name the slip.

The function under test has the signature documented in ``examples/em_step_template.py``::

    em_step(heads, trials, weights, p) -> (new_weights, new_p)

one EM iteration; ``heads`` and ``trials`` are integer arrays with one entry per
sequence, ``weights`` and ``p`` float arrays with one entry per component.

The function runs in a child process (``compare/_check_child.py``): a fresh interpreter
(``python -I``) with a clean environment, in its own session, which refuses imports of the
suite (``em``, ``compare``, ``models``) unless ``allow_suite_imports``. Only plain data
crosses the boundary: JSON frames with a length header, read against a deadline that
covers the whole exchange, so a function that raises, returns the wrong thing, hangs,
exits, forks, floods or corrupts its channel is reported, never fatal, and cannot make the
grader run its code. The child's session is killed at the end. The reference answer for
an input is computed only after the student's answer to it has arrived, so it is never in
the grader's memory while the student's code runs. Needs a POSIX system.

When an answer is wrong, it is compared with the reference EM carrying one typical slip
(:data:`SLIPS`); a match is named in the report with the reason, citing the chapter.
"""

from __future__ import annotations

import json
import math
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy.special import gammaln, logsumexp, xlog1py, xlogy

from em import BinomialData, MixtureParams, e_step, log_likelihood, m_step
from em.chapter import CHAPTER_INIT
from em.data import CHAPTER_HEADS, CHAPTER_TRIALS

__all__ = [
    "CheckResult",
    "Grading",
    "Slip",
    "SLIPS",
    "grade",
    "run_checks",
    "format_results",
    "format_output",
    "parse_spec",
    "check_timeout",
    "match_slip",
    "slipped_step",
]

# The chapter's printed values: (6.14) and Table 6.4 (7 decimals).
EQ_6_14 = np.array([0.3337246, 0.5261878, 0.1400877])
TABLE_6_4 = np.array([0.3536485, 0.4278732, 0.5128013])
PRINTED = 5e-8  # half a unit in the 7th decimal
CHAPTER_N = len(CHAPTER_HEADS)
ITERATIONS = 50
REL_TOL = 1e-8
SLIP_RTOL = 1e-6  # a slip "matches" within this: students compute it in their own ways
DEFAULT_FUNCTION = "em_step"
LOAD_TIMEOUT = 30.0  # at least this long to import the student's module (scipy is slow cold)
MAX_RESTARTS = 3  # after a call kills the process, restart it at most this many times
MAX_REPLY = 1 << 20
SHOWN_LINES = 20  # lines of the function's own output shown by the command line

CHILD = Path(__file__).with_name("_check_child.py")
_MAGIC = b"EMCK"
_HEADER = struct.Struct("<4sI")
_CHILD_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR")


@dataclass(frozen=True)
class Slip:
    """A known wrong variant of the step: what it is and why it is wrong."""

    key: str
    title: str
    why: str


@dataclass(frozen=True)
class CheckResult:
    """One graded check: its name, whether it passed, and what was expected and obtained.

    ``slip`` is the known slip the function's answer matched on that data set, if any.
    """

    name: str
    passed: bool
    expected: str = ""
    obtained: str = ""
    slip: Slip | None = None


@dataclass(frozen=True)
class Grading:
    """The graded checks, and the head of what the function wrote to stdout and stderr."""

    results: list[CheckResult]
    output: str = ""
    output_bytes: int = 0


# ---------------------------------------------------------------------- the slips
SLIPS: dict[str, Slip] = {
    s.key: s
    for s in [
        Slip(
            "weights_divided",
            "the weights divided by {c} instead of the sum of the expected counts",
            "Footnote 8 of Section 6.3: divide each expected count E[#c_j] of (6.10) by "
            "their sum over the coins, which is the number of sequences of the data at hand "
            "(the chapter's 20 only for the chapter's data). Divided by a fixed number, the "
            "new weights stop summing to 1 as soon as N differs.",
        ),
        Slip(
            "no_weights",
            "the E-step without the weights (posteriors from the likelihoods alone)",
            "Bayes' rule in (6.8)-(6.9) multiplies each likelihood by the mixture weight w_j, "
            "the prior of coin c_j, before normalising; without it the posteriors of Table "
            "6.1 are those of equal weights, so the current weights never reach the update. "
            "It shows only when the current weights are unequal.",
        ),
        Slip(
            "wrong_axis",
            "the posteriors normalised over the sequences instead of over the coins",
            "(6.9) divides the joint P(x_i, c_j) by the marginal P(x_i), a sum over the "
            "coins, so each sequence's posteriors (a row of Table 6.1) sum to 1. Normalised "
            "over the sequences instead, every expected count E[#c_j] of (6.10) is 1 and all "
            "new weights are 1/K.",
        ),
        Slip(
            "trials_e",
            "a hard-coded number of trials (10, the chapter's) in the E-step",
            "The chapter's sequences all have 10 flips, so (6.7) uses Binomial(x_i | 10, "
            "phi_j); in general sequence i has its own trials_i. With 10, a sequence with "
            "more heads than 10 has probability 0 under every coin, and 0/0 is NaN.",
        ),
        Slip(
            "trials_m",
            "a hard-coded number of trials (10, the chapter's) in the M-step",
            "(6.15) divides coin j's expected heads by its expected number of flips, which "
            "is n x E[#c_j] only when every sequence has n flips (10 in the chapter); in "
            "general it is the sum over sequences of posterior_ij x trials_i.",
        ),
        Slip(
            "trials_both",
            "a hard-coded number of trials (10, the chapter's) in both steps",
            "The chapter's sequences all have 10 flips; here they have others. The binomial "
            "likelihood of (6.7) needs each sequence's own trials_i, and the denominator of "
            "(6.15) is the expected number of flips, the sum of posterior_ij x trials_i. "
            "With 10, more than 10 heads has probability 0 under every coin: 0/0 is NaN.",
        ),
        Slip(
            "not_by_trials",
            "the biases not divided by the trials (heads per sequence, not per flip)",
            "(6.15) divides coin j's expected heads (Table 6.3) by its expected number of "
            "flips, trials x E[#c_j] (10 x 6.6744913 for c_1 in the chapter). Divided by "
            "E[#c_j] alone it is heads per sequence, 3.5364850 instead of 0.3536485: not "
            "a probability.",
        ),
        Slip(
            "swapped",
            "the weights and the biases swapped in the return value",
            "em_step returns (new_weights, new_p): the weights of (6.14) first, then the "
            "biases of Table 6.4; yours come back as (new_p, new_weights).",
        ),
    ]
}
_TRIALS_SLIPS = ("trials_e", "trials_m", "trials_both")


def _log_binom_pmf(heads, trials, p):
    """log Binomial(heads | trials, p), -inf where heads > trials (no coin can give it)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        coef = gammaln(trials + 1.0) - gammaln(heads + 1.0) - gammaln(trials - heads + 1.0)
        out = coef + xlogy(heads, p) + xlog1py(trials - heads, -p)
    return np.where(heads > trials, -np.inf, out)


def slipped_step(heads, trials, weights, p, slip: str | None = None):
    """One EM step per sequence, with the slip ``slip`` (a key of :data:`SLIPS`) or none.

    With ``slip=None`` it is the reference step (a test checks it equals
    ``em.m_step(em.e_step(...))``); each key changes exactly one thing (for
    ``"weights_divided"``: by the chapter's N = 20). Returns
    ``(new_weights, new_p)`` as the student's function would; NaN where the slip gives 0/0.
    """
    if slip is not None and slip not in SLIPS:
        raise ValueError(f"unknown slip {slip!r}; known: {', '.join(SLIPS)}")
    heads = np.asarray(heads, dtype=float)[:, None]
    trials = np.asarray(trials, dtype=float)[:, None]
    e_trials = (
        np.full_like(trials, CHAPTER_TRIALS) if slip in ("trials_e", "trials_both") else trials
    )
    m_trials = (
        np.full_like(trials, CHAPTER_TRIALS) if slip in ("trials_m", "trials_both") else trials
    )
    with np.errstate(all="ignore"):
        log_w = np.zeros(len(weights)) if slip == "no_weights" else np.log(weights)
        joint = log_w + _log_binom_pmf(heads, e_trials, np.asarray(p, dtype=float))
        axis = 0 if slip == "wrong_axis" else 1
        resp = np.exp(joint - logsumexp(joint, axis=axis, keepdims=True))
        counts = resp.sum(axis=0)
        new_w = counts / (CHAPTER_N if slip == "weights_divided" else counts.sum())
        flips = counts if slip == "not_by_trials" else (resp * m_trials).sum(axis=0)
        new_p = (resp * heads).sum(axis=0) / flips
    return (new_p, new_w) if slip == "swapped" else (new_w, new_p)


def _close(a, b, rtol: float = SLIP_RTOL) -> bool:
    return bool(np.allclose(a, b, rtol=rtol, atol=1e-10))


def _weights_divided(w, p, ref: MixtureParams, n_seq: int) -> Slip | None:
    """Right biases and weights proportional to the right ones, not summing to 1."""
    total = float(w.sum())
    if not total > 0 or abs(total - 1) < 1e-6 or not _close(p, ref.p):
        return None
    if not _close(w / total, ref.weights):
        return None
    c = n_seq / total
    shown = f"{round(c)}" if abs(c - round(c)) < 1e-6 * c else f"{c:.6g}"
    base = SLIPS["weights_divided"]
    return replace(base, title=base.title.format(c=shown))


def match_slip(heads, trials, init: MixtureParams, w, p, keys=None) -> Slip | None:
    """The first slip of :data:`SLIPS` (or of ``keys``) whose step gives ``(w, p)``.

    None if ``(w, p)`` is the reference step itself or matches none of them.
    """
    ref_w, ref_p = slipped_step(heads, trials, init.weights, init.p)
    if _close(w, ref_w, REL_TOL) and _close(p, ref_p, REL_TOL):
        return None
    for key in keys or SLIPS:
        if key == "weights_divided":
            found = _weights_divided(w, p, MixtureParams.unchecked(ref_w, ref_p), len(heads))
        elif key == "wrong_axis":  # the column sums of column-normalised posteriors are 1
            k = len(w)
            found = SLIPS[key] if _close(w, 1 / k) and not _close(ref_w, 1 / k) else None
        else:
            sw, sp = slipped_step(heads, trials, init.weights, init.p, key)
            ok = np.all(np.isfinite(sw)) and np.all(np.isfinite(sp))
            found = SLIPS[key] if ok and _close(w, sw) and _close(p, sp) else None
        if found is not None:
            return found
    return None


# ---------------------------------------------------------------------- arguments
@dataclass(frozen=True)
class FunctionSpec:
    """Where the function is: ``kind`` ``"file"`` (a path) or ``"module"`` (a name)."""

    kind: str
    where: str
    name: str


def parse_spec(spec: str, default: str = DEFAULT_FUNCTION) -> FunctionSpec:
    """``FILE.py[:FUNCTION]`` or ``MODULE[:FUNCTION]``; FUNCTION defaults to ``default``.

    Raises
    ------
    ValueError
        One line saying what is wrong: no such file, not a module name, not a name.
    """
    spec = str(spec)
    where, name = spec, default
    if not (spec.endswith(".py") or Path(spec).is_file()) and ":" in spec:
        where, name = spec.rsplit(":", 1)
    if not name.isidentifier():
        raise ValueError(f"{name!r} is not a function name (expected FILE.py[:FUNCTION])")
    if where.endswith(".py") or Path(where).is_file() or "/" in where or os.sep in where:
        if not Path(where).is_file():
            raise ValueError(f"no such file {where!r}")
        return FunctionSpec("file", where, name)
    if not all(part.isidentifier() for part in where.split(".")):
        raise ValueError(f"{where!r} is neither a file nor a module name")
    return FunctionSpec("module", where, name)


def check_timeout(value, name: str = "timeout") -> float:
    """``value`` as a finite number of seconds > 0, else ValueError naming ``name``."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")
    return seconds


# ---------------------------------------------------------------------- the child process
class _Failure(Exception):
    """The exchange with the child broke: it died, timed out or sent malformed data."""


class _TimedOut(_Failure):
    pass


@dataclass(frozen=True)
class _Reply:
    """A checked answer: ``status`` ok / raised / error, and the arrays or the message."""

    status: str
    message: str = ""
    arrays: tuple = ()


def _one_line(text, limit: int = 400) -> str:
    flat = "".join(c if c.isprintable() else " " for c in str(text))
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _clean_env() -> dict[str, str]:
    env = {k: os.environ[k] for k in _CHILD_ENV if k in os.environ}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def _kill_session(sid: int) -> None:
    """SIGKILL the process group ``sid`` and, where /proc shows them, the rest of its session.

    Returns once they are dead (zombies at most), or after a second.
    """
    try:
        os.killpg(sid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    members = _session_members(sid)
    for pid in members:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + 1.0
    while members and time.monotonic() < deadline:
        members = [pid for pid in members if _process_state(pid) not in ("", "Z", "X")]
        if members:
            time.sleep(0.005)


def _process_state(pid: int) -> str:
    """The state letter of ``pid`` in /proc ("" if it is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def _session_members(sid: int) -> list[int]:
    """The processes of session ``sid``, as far as /proc shows (none without /proc)."""
    try:
        entries = [int(e) for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []
    members = []
    for pid in entries:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:
                members.append(pid)
        except (OSError, ValueError, IndexError):
            continue
    return members


class _Runner:
    """Calls the function in a child process, one JSON frame each way, against deadlines."""

    def __init__(self, spec: FunctionSpec, timeout: float, allow_suite_imports: bool):
        self.spec, self.timeout, self.allow = spec, timeout, allow_suite_imports
        self.proc = self.out = None
        self.calls = self.restarts = 0
        self.stopped = ""  # why no more calls are made
        self.output, self.output_bytes = b"", 0

    def start(self) -> str | None:
        """Start the child and load the function; the error message if that failed."""
        request_r, self.request_w = os.pipe()
        self.reply_r, reply_w = os.pipe()
        self.out = tempfile.TemporaryFile()
        flags = ["--allow-suite-imports"] if self.allow else []
        spec = self.spec
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-B", str(CHILD), str(request_r), str(reply_w)]
            + [spec.kind, spec.where, spec.name, *flags],
            pass_fds=(request_r, reply_w),
            stdin=subprocess.DEVNULL,
            stdout=self.out,
            stderr=subprocess.STDOUT,
            env=_clean_env(),
            start_new_session=True,
        )
        os.close(request_r)
        os.close(reply_w)
        os.set_blocking(self.request_w, False)
        os.set_blocking(self.reply_r, False)
        try:
            reply = self._exchange(None, 0, max(self.timeout, LOAD_TIMEOUT))
        except _Failure as exc:
            self.close()
            return f"loading the function failed: {exc}"
        if reply.status != "ok":
            self.close()
            return reply.message
        return None

    def call(self, heads, trials, weights, p) -> _Reply:
        """The function's answer to one call, or why there is none."""
        if self.stopped:
            return _Reply("error", f"not run: {self.stopped}")
        if self.proc is None:
            err = self.start()
            if err:
                self.stopped = f"restarting the function's process failed: {err}"
                return _Reply("error", self.stopped)
        self.calls += 1
        request = {"heads": heads, "trials": trials, "weights": weights, "p": p}
        body = json.dumps({"id": self.calls, **{k: v.tolist() for k, v in request.items()}})
        try:
            return self._exchange(body.encode(), self.calls, self.timeout)
        except _TimedOut:
            self.close()
            self.stopped = f"an earlier call took longer than {self.timeout:g} s"
            return _Reply("error", f"no answer within {self.timeout:g} s (time limit per call)")
        except _Failure as exc:
            self.close()
            self.restarts += 1
            if self.restarts > MAX_RESTARTS:
                self.stopped = f"the function's process broke down in {self.restarts} calls"
            return _Reply("error", str(exc))

    def call_fit(self, heads, trials, n_components: int, seed: int) -> _Reply:
        """A whole fit, ``fit(heads, trials, n_components, seed)``, in one call."""
        self.calls += 1
        body = json.dumps(
            {
                "id": self.calls,
                "heads": np.asarray(heads).tolist(),
                "trials": np.asarray(trials).tolist(),
                "n_components": int(n_components),
                "seed": int(seed),
            }
        )
        try:
            return self._exchange(body.encode(), self.calls, self.timeout)
        except _TimedOut:
            return _Reply("error", f"no answer within {self.timeout:g} s (--em-timeout)")
        except _Failure as exc:
            return _Reply("error", str(exc))

    def _exchange(self, body: bytes | None, call_id: int, seconds: float) -> _Reply:
        deadline = time.monotonic() + seconds
        if body is not None:
            self._write(_HEADER.pack(_MAGIC, len(body)) + body, deadline)
        magic, size = _HEADER.unpack(self._read(_HEADER.size, deadline))
        if magic != _MAGIC or size > MAX_REPLY:
            raise _Failure("the function's process wrote junk on the grader's channel")
        return _parse_reply(self._read(size, deadline), call_id)

    def _wait(self, fd: int, event: int, deadline: float) -> None:
        poller = select.poll()
        poller.register(fd, event)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _TimedOut
            if poller.poll(min(left, 0.05) * 1000):
                return
            ended = self._ended()
            if ended:
                raise _Failure(ended)

    def _read(self, n: int, deadline: float) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            self._wait(self.reply_r, select.POLLIN, deadline)
            try:
                chunk = os.read(self.reply_r, n - len(buf))
            except BlockingIOError:
                continue
            if not chunk:
                raise self._closed()
            buf += chunk
        return bytes(buf)

    def _write(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            self._wait(self.request_w, select.POLLOUT, deadline)
            try:
                view = view[os.write(self.request_w, view) :]
            except BlockingIOError:
                continue
            except BrokenPipeError:
                raise self._closed() from None

    def _closed(self) -> _Failure:
        """The failure for an end of file: say how the process ended, if it did."""
        for _ in range(100):  # an exit closes the pipe a moment before the exit is seen
            ended = self._ended()
            if ended:
                return _Failure(ended)
            time.sleep(0.005)
        return _Failure("the function's process closed its channel")

    def _ended(self) -> str:
        """How the child ended, if it has (it is left unreaped, so its id stays its own)."""
        info = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is None or info.si_pid == 0:
            return ""
        if info.si_code == os.CLD_EXITED:
            how = f"exited with status {info.si_status}"
        else:
            how = f"was killed by {signal.Signals(info.si_status).name}"
        return f"the function's process {how} without answering"

    def close(self) -> None:
        """Kill the child's whole session, reap it, keep the head of what it printed."""
        if self.proc is None:
            return
        # A Ctrl-C (or a SIGINT from the function) is held until the session is dead.
        held = []
        try:
            previous = signal.signal(signal.SIGINT, lambda *_: held.append(True))
        except ValueError:  # not the main thread, where Python handles signals
            previous = None
        try:
            self._kill_and_collect()
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        if held and callable(previous):
            previous(signal.SIGINT, None)
        elif held and previous == signal.SIG_DFL:
            raise KeyboardInterrupt

    def _kill_and_collect(self) -> None:
        _kill_session(self.proc.pid)
        self.proc.wait()
        for fd in (self.request_w, self.reply_r):
            os.close(fd)
        self.out.seek(0, os.SEEK_END)
        self.output_bytes += self.out.tell()
        if len(self.output) < 8192:
            self.out.seek(0)
            self.output += self.out.read(8192 - len(self.output))
        self.out.close()
        self.proc = self.out = None


def _parse_reply(body: bytes, call_id: int) -> _Reply:
    """A reply frame's JSON checked down to every number; _Failure if it is not one."""
    try:
        raw = json.loads(body)
    except (ValueError, RecursionError):
        raise _Failure("the function's process sent malformed data") from None
    if not isinstance(raw, dict) or type(raw.get("id")) is not int or raw["id"] != call_id:
        raise _Failure("the function's process sent a reply out of turn")
    if raw.get("ok") is not True:
        for status in ("raised", "error"):
            if isinstance(raw.get(status), str):
                return _Reply(status, _one_line(raw[status]))
        raise _Failure("the function's process sent malformed data")
    if call_id == 0:
        return _Reply("ok")
    values = raw.get("values")
    if not isinstance(values, list) or len(values) != 2:
        raise _Failure("the function's process sent malformed data")
    return _Reply("ok", arrays=tuple(_plain_array(v) for v in values))


def _plain_array(value) -> tuple[tuple[int, ...], np.ndarray | None]:
    """``{"shape": [...], "data": [...] or null}`` as (shape, float64 array or None)."""
    shape, data = (value.get("shape"), value.get("data")) if isinstance(value, dict) else (0, 0)
    if not (isinstance(shape, list) and len(shape) <= 32):
        raise _Failure("the function's process sent malformed data")
    if not all(type(n) is int and n >= 0 for n in shape):
        raise _Failure("the function's process sent malformed data")
    if data is None:
        return tuple(shape), None
    if not isinstance(data, list) or len(data) != math.prod(shape):
        raise _Failure("the function's process sent malformed data")
    if not all(type(x) in (float, int) for x in data):
        raise _Failure("the function's process sent malformed data")
    return tuple(shape), np.array(data, dtype=np.float64).reshape(shape)


# ---------------------------------------------------------------------- checks
@dataclass(frozen=True)
class _DataSet:
    name: str
    heads: np.ndarray
    trials: np.ndarray
    init: MixtureParams

    @property
    def short(self) -> str:
        return self.name.split(" (")[0]

    @property
    def data(self) -> BinomialData:
        return BinomialData.from_sequences(self.heads, self.trials)


def _reference(data: BinomialData, params: MixtureParams) -> MixtureParams:
    """One step of the reference EM (called only once the student has answered)."""
    return m_step(e_step(data, params), params)


def _datasets() -> list[_DataSet]:
    """The chapter's data and seeded synthetic ones (N != 20, trials != 10, K = 2..4).

    The synthetic starts have unequal weights, so no slip hides behind a symmetric start.
    """
    rng = np.random.default_rng(np.random.SeedSequence(20261123))
    out = [
        _DataSet("chapter", np.asarray(CHAPTER_HEADS), np.full(20, CHAPTER_TRIALS), CHAPTER_INIT)
    ]
    specs = [
        ("synthetic A (N=137, 12 flips, K=2)", 137, lambda n: np.full(n, 12),
         [0.35, 0.65], [0.25, 0.7], MixtureParams([0.65, 0.35], [0.4, 0.6])),
        ("synthetic B (N=250, 5-30 flips, K=3)", 250, lambda n: rng.integers(5, 31, n),
         [0.2, 0.5, 0.3], [0.1, 0.45, 0.8], MixtureParams([0.2, 0.5, 0.3], [0.2, 0.5, 0.7])),
        ("synthetic C (N=1000, 8 flips, K=4)", 1000, lambda n: np.full(n, 8),
         [0.1, 0.2, 0.3, 0.4], [0.1, 0.35, 0.6, 0.9],
         MixtureParams([0.4, 0.3, 0.2, 0.1], [0.2, 0.4, 0.6, 0.8])),
    ]  # fmt: skip
    for name, n, trials_fn, w, p, init in specs:
        trials = trials_fn(n)
        z = rng.choice(len(w), size=n, p=w)
        out.append(_DataSet(name, rng.binomial(trials, np.asarray(p)[z]), trials, init))
    return out


def _fmt(a) -> str:
    return np.array2string(np.asarray(a), precision=7, floatmode="fixed", separator=", ")


def _call(runner: _Runner, heads, trials, params: MixtureParams) -> _Reply:
    return runner.call(heads.copy(), trials.copy(), params.weights.copy(), params.p.copy())


def _as_pair(reply: _Reply, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The answer as two finite float arrays of shape (K,), or ValueError saying why not."""
    if reply.status == "raised":
        raise ValueError(f"raised {reply.message}")
    if reply.status != "ok":
        raise ValueError(reply.message)
    (w_shape, w), (p_shape, p) = reply.arrays
    if w_shape != (k,) or p_shape != (k,):
        raise ValueError(f"expected shapes ({k},) and ({k},), got {w_shape} and {p_shape}")
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(p))):
        raise ValueError(f"non-finite values: weights {w.tolist()}, p {p.tolist()}")
    return w, p


def grade(spec: str, *, timeout: float = 10.0, allow_suite_imports: bool = False) -> Grading:
    """Run every check on the function named by ``spec``.

    Parameters
    ----------
    spec : str
        ``FILE.py[:FUNCTION]`` or ``MODULE[:FUNCTION]``; FUNCTION defaults to ``em_step``.
    timeout : float
        Time limit in seconds for each call, the whole exchange included (finite, > 0).
    allow_suite_imports : bool
        Let the function import ``em``, ``compare`` and ``models`` (refused by default).

    Returns
    -------
    Grading
        The graded results (a single failed "load the function" if it could not be
        loaded) and the head of what the function printed.

    Raises
    ------
    ValueError
        If ``spec`` names no file or module, or ``timeout`` is not a finite number > 0.
    """
    timeout = check_timeout(timeout)
    runner = _Runner(parse_spec(spec), timeout, allow_suite_imports)
    try:
        load_error = runner.start()
        if load_error:
            results = [CheckResult("load the function", False, spec, load_error)]
        else:
            results = [r for ds in _datasets() for r in _check_data_set(runner, ds)]
    finally:
        runner.close()
    text = runner.output.decode("utf-8", "replace")
    return Grading(results, text, runner.output_bytes)


def run_fit(spec: str, heads, trials, n_components: int, seed: int, *, timeout: float):
    """Run another program's ``fit(heads, trials, n_components, seed)`` in a child process.

    The same child as ``compare check``: a fresh interpreter in its own session, the time
    limit over the whole exchange, only plain numbers back, the session killed at the end.
    Returns ``(weights, p)`` as float arrays, or raises ValueError with one line saying
    what went wrong (it did not load, raised, timed out, returned something else).
    """
    runner = _Runner(parse_spec(spec, default="fit"), timeout, allow_suite_imports=False)
    try:
        err = runner.start()
        if err:
            raise ValueError(f"--em-result {spec}: {err}")
        reply = runner.call_fit(heads, trials, n_components, seed)
        if reply.status != "ok":
            raise ValueError(f"--em-result {spec}: {reply.message}")
        out = []
        for name, (shape, values) in zip(("weights", "p"), reply.arrays, strict=True):
            if values is None or tuple(shape) != (n_components,):
                raise ValueError(
                    f"--em-result {spec}: {name} must be {n_components} numbers, got shape "
                    f"{tuple(shape)}"
                )
            out.append(values)
        return out[0], out[1]
    finally:
        runner.close()


def run_checks(spec: str, *, timeout: float = 10.0, allow_suite_imports: bool = False):
    """The graded results of :func:`grade`, a list of :class:`CheckResult`."""
    return grade(spec, timeout=timeout, allow_suite_imports=allow_suite_imports).results


def _check_data_set(runner: _Runner, ds: _DataSet) -> list[CheckResult]:
    """Every check on one data set; the reference is computed after each answer."""
    k, chapter = ds.init.n_components, ds.name == "chapter"
    first = _call(runner, ds.heads, ds.trials, ds.init)
    try:
        w, p = _as_pair(first, k)
    except ValueError as exc:
        out = [CheckResult(f"{ds.name}: one step", False, "an answer", str(exc))]
        if chapter:
            iface = "interface: returns (new_weights, new_p) of shape (K,)"
            out.insert(0, CheckResult(iface, False, f"two finite arrays of shape ({k},)", str(exc)))
        return _with_slip(out, _probe_trials(runner, ds, first))
    perm = np.roll(np.arange(k), 1)
    relabelled = _call(
        runner, ds.heads, ds.trials, MixtureParams(ds.init.weights[perm], ds.init.p[perm])
    )
    ref = _reference(ds.data, ds.init)
    out = _first_iteration(w, p) if chapter else []
    ok_sum = abs(w.sum() - 1) < 1e-9 and np.all(w >= 0) and np.all((p >= 0) & (p <= 1))
    out.append(
        CheckResult(
            f"{ds.name}: weights on the simplex, biases in [0, 1]",
            bool(ok_sum),
            "sum(weights) = 1, 0 <= p <= 1",
            f"sum(weights) = {w.sum():.10g}, p = {_fmt(p)}",
        )
    )
    close = np.allclose(w, ref.weights, rtol=REL_TOL, atol=1e-12) and np.allclose(
        p, ref.p, rtol=REL_TOL, atol=1e-12
    )
    out.append(
        CheckResult(
            f"{ds.name}: one step equals the reference EM",
            bool(close),
            f"weights {_fmt(ref.weights)}, p {_fmt(ref.p)}",
            f"weights {_fmt(w)}, p {_fmt(p)}",
        )
    )
    out += _iterate(runner, ds, w, p, ref)
    out.append(_relabel_check(ds, w, p, relabelled, perm))
    if all(r.passed for r in out):
        return out
    slip = match_slip(ds.heads, ds.trials, ds.init, w, p) or _probe_trials(runner, ds, first)
    return _with_slip(out, slip)


def _first_iteration(w, p) -> list[CheckResult]:
    """The chapter's printed first iteration: (6.14) and Table 6.4, to 7 decimals."""
    return [
        CheckResult(
            "interface: returns (new_weights, new_p) of shape (K,)",
            True,
            "two arrays of shape (3,)",
            "ok",
        ),
        CheckResult(
            "chapter (6.14): updated weights",
            bool(np.all(np.abs(w - EQ_6_14) < PRINTED)),
            _fmt(EQ_6_14),
            _fmt(w),
        ),
        CheckResult(
            "chapter Table 6.4: updated biases",
            bool(np.all(np.abs(p - TABLE_6_4) < PRINTED)),
            _fmt(TABLE_6_4),
            _fmt(p),
        ),
    ]


def _relabel_check(ds: _DataSet, w, p, reply: _Reply, perm) -> CheckResult:
    name = f"{ds.name}: relabelling the components relabels the answer"
    try:
        wp, pp = _as_pair(reply, ds.init.n_components)
    except ValueError as exc:
        return CheckResult(name, False, "an answer", str(exc))
    same = np.allclose(wp, w[perm], rtol=1e-10) and np.allclose(pp, p[perm], rtol=1e-10)
    return CheckResult(name, bool(same), f"weights {_fmt(w[perm])}", f"weights {_fmt(wp)}")


def _with_slip(results: list[CheckResult], slip: Slip | None) -> list[CheckResult]:
    if slip is None:
        return results
    return [r if r.passed else replace(r, slip=slip) for r in results]


def _probe_trials(runner: _Runner, ds: _DataSet, reply: _Reply) -> Slip | None:
    """A hard-coded 10 flips, looked for on the sequences with at most 10 heads.

    With 10 flips hard-coded, more than 10 heads has probability 0 under every coin, so
    the answer on the whole data set is NaN: the slip shows only where the likelihood
    exists. Only tried on data with other trials than 10 and some sequence over 10 heads.
    """
    keep = ds.heads <= CHAPTER_TRIALS
    if np.all(ds.trials == CHAPTER_TRIALS) or keep.all() or not keep.any():
        return None
    k = ds.init.n_components
    if reply.status != "ok" or any(shape != (k,) for shape, _ in reply.arrays):
        return None  # it raised or had the wrong shapes: nothing to probe
    heads, trials = ds.heads[keep], ds.trials[keep]
    try:
        w, p = _as_pair(_call(runner, heads, trials, ds.init), k)
    except ValueError:
        return None
    return match_slip(heads, trials, ds.init, w, p, keys=_TRIALS_SLIPS)


def _iterate(runner: _Runner, ds: _DataSet, w, p, ref: MixtureParams) -> list[CheckResult]:
    """Iterations 2..50 from the function's own first step, beside the reference path."""
    data = ds.data
    own = MixtureParams.unchecked(w, p)
    worst = float(np.max(np.abs(np.r_[w - ref.weights, p - ref.p])))
    prev = _safe_log_likelihood(data, ds.init)
    fell = None
    for it in range(1, ITERATIONS + 1):
        if it > 1:
            try:
                w, p = _as_pair(_call(runner, ds.heads, ds.trials, own), ds.init.n_components)
            except ValueError as exc:
                return [
                    CheckResult(
                        f"{ds.name}: {ITERATIONS} iterations",
                        False,
                        "answers",
                        f"iteration {it}: {exc}",
                    )
                ]
            ref = _reference(data, ref)  # only now: never held while the function runs
            own = MixtureParams.unchecked(w, p)
            worst = max(worst, float(np.max(np.abs(np.r_[w - ref.weights, p - ref.p]))))
        ll = _safe_log_likelihood(data, own)
        if fell is None and not ll >= prev - 1e-9 * max(1.0, abs(prev)):
            fell = (it, prev, ll)
        prev = ll
    return [
        CheckResult(
            f"{ds.name}: {ITERATIONS} iterations follow the reference EM",
            worst <= 1e-7,
            "largest parameter difference <= 1e-7",
            f"{worst:.3g}",
        ),
        CheckResult(
            f"{ds.name}: the log-likelihood never decreases",
            fell is None,
            "non-decreasing over the iterations",
            "ok" if fell is None else f"iteration {fell[0]}: {fell[1]:.10g} -> {fell[2]:.10g}",
        ),
    ]


def _safe_log_likelihood(data: BinomialData, params: MixtureParams) -> float:
    """The log-likelihood at the function's answer; -inf where it is not a mixture."""
    w, p = params.weights, params.p
    if not (np.all((p >= 0) & (p <= 1)) and np.all(w >= 0)):
        return -np.inf
    with np.errstate(all="ignore"):
        return float(log_likelihood(data, params))


# ---------------------------------------------------------------------- the report
def format_results(results: list[CheckResult]) -> str:
    """The graded list, each slip found with why it is wrong, then a one-line score."""
    lines = []
    for r in results:
        lines.append(f"{'PASS' if r.passed else 'FAIL'}  {r.name}")
        if not r.passed:
            lines.append(f"        expected: {r.expected}")
            lines.append(f"        obtained: {r.obtained}")
            if r.slip is not None:
                lines.append(f"        slip:     {r.slip.title}")
    lines += _explain_slips(results)
    passed = sum(r.passed for r in results)
    lines.append(f"{passed} passed, {len(results) - passed} failed")
    return "\n".join(lines) + "\n"


def _explain_slips(results: list[CheckResult]) -> list[str]:
    where: dict[Slip, list[str]] = {}
    for r in results:
        if r.slip is not None:
            data_set = r.name.split(" (")[0].split(":")[0]
            if data_set.startswith(("interface", "chapter")):
                data_set = "chapter"
            names = where.setdefault(r.slip, [])
            if data_set not in names:
                names.append(data_set)
    lines = []
    for slip, names in where.items():
        lines.append(f"Slip found ({', '.join(names)}): {slip.title}.")
        lines += textwrap.wrap(slip.why, 96, initial_indent="  ", subsequent_indent="  ")
    return lines


def format_output(grading: Grading, function: str = DEFAULT_FUNCTION) -> str:
    """The first lines the function wrote to stdout/stderr, marked as its own ("" if none)."""
    if not grading.output_bytes:
        return ""
    lines = grading.output.splitlines()[:SHOWN_LINES]
    head = f"{function} wrote {grading.output_bytes} bytes to stdout/stderr; the first lines:"
    return "\n".join([head] + [f"  | {_one_line(line, 200)}" for line in lines]) + "\n"
