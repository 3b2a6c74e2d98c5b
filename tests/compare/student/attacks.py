"""em_step functions that try to fool, hang or break the grader (``compare check``).

Loaded by path (tests/compare/student/attacks.py:NAME), so ``impls`` is a neighbour.
None of them may pass wrongly, hang the grader or crash it with a traceback; the ones that
compute the step correctly (whatever else they do) must still pass.
"""

import json
import os
import signal
import subprocess
import sys
import time
from typing import NamedTuple

import numpy as np
from impls import correct

SLEEP = "97.531"  # the tests look for `sleep 97.531` processes left behind
ESCAPED_SLEEP = "97.532"


class Step(NamedTuple):
    new_weights: np.ndarray
    new_p: np.ndarray


class Tagged(np.ndarray):
    """An ndarray subclass, as some libraries return."""


def namedtuple_return(heads, trials, weights, p):
    return Step(*correct(heads, trials, weights, p))


def ndarray_subclass_return(heads, trials, weights, p):
    w, q = correct(heads, trials, weights, p)
    return w.view(Tagged), np.ma.masked_array(q)


def list_return(heads, trials, weights, p):
    w, q = correct(heads, trials, weights, p)
    return [float(x) for x in w], list(q)


class Payload:
    """Would run os._exit(0) in whoever unpickles it: an old grader exited 0, silent."""

    def __reduce__(self):
        return (os._exit, (0,))


def reduce_payload(heads, trials, weights, p):
    return Payload(), Payload()


def exits(heads, trials, weights, p):
    os._exit(0)


def system_exit(heads, trials, weights, p):
    raise SystemExit(0)


def keyboard_interrupt(heads, trials, weights, p):
    raise KeyboardInterrupt


def prints_fake_pass(heads, trials, weights, p):
    print("PASS  chapter (6.14): updated weights\n23 passed, 0 failed", flush=True)
    print("23 passed, 0 failed", file=sys.stderr, flush=True)
    w, q = correct(heads, trials, weights, p)
    return w, q * 0.5


def closes_stdout(heads, trials, weights, p):
    for fd in (0, 1, 2):
        try:
            os.close(fd)
        except OSError:
            pass
    return correct(heads, trials, weights, p)


def forks_sleepers(heads, trials, weights, p):
    for _ in range(3):
        subprocess.Popen(["sleep", SLEEP])
    return correct(heads, trials, weights, p)


def forks_into_own_group(heads, trials, weights, p):
    if not getattr(forks_into_own_group, "done", False):
        forks_into_own_group.done = True
        if os.fork() == 0:  # leaves the process group, not the session
            os.setpgid(0, 0)
            os.execvp("sleep", ["sleep", ESCAPED_SLEEP])
    return correct(heads, trials, weights, p)


def monkeypatches_numpy(heads, trials, weights, p):
    np.allclose = lambda *a, **k: True
    np.isfinite = lambda x: np.ones(np.shape(x), dtype=bool)
    np.asarray = lambda *a, **k: np.zeros(3)
    json.dumps = lambda *a, **k: '{"id": 1, "ok": true}'
    return [np.nan] * len(weights), [np.nan] * len(weights)


def huge_array(heads, trials, weights, p):
    return np.zeros(10_000_000), p


def writes_junk(heads, trials, weights, p):
    for fd in range(3, 20):
        try:
            os.write(fd, b"garbage " * 512)
        except OSError:
            pass
    return correct(heads, trials, weights, p)


def half_a_frame_then_sleeps(heads, trials, weights, p):
    for fd in range(3, 20):
        try:
            os.write(fd, b"EMCK\x10\x00\x00\x00{")
        except OSError:
            pass
    time.sleep(1000)


def imports_reference(heads, trials, weights, p):
    from compare.check import _reference
    from em import BinomialData, MixtureParams

    new = _reference(BinomialData.from_sequences(heads, trials), MixtureParams(weights, p))
    return new.weights, new.p


def interrupts_the_grader(heads, trials, weights, p):
    os.kill(os.getppid(), signal.SIGINT)
    os.execvp("sleep", ["sleep", "97.535"])  # still there when the grader cleans up


def reads_environment(heads, trials, weights, p):
    if "SECRET_TOKEN" in os.environ:
        raise RuntimeError("the grader's environment leaked into the child")
    return correct(heads, trials, weights, p)


def escapes_with_setsid(heads, trials, weights, p):
    if not getattr(escapes_with_setsid, "done", False):
        escapes_with_setsid.done = True
        if os.fork() == 0:  # a new session: out of reach of the grader's kill
            os.setsid()
            os.execvp("sleep", ["sleep", "97.534"])
    return correct(heads, trials, weights, p)


def floods_stdout(heads, trials, weights, p):
    for _ in range(20):
        sys.stdout.write("x" * (1 << 20))
    return correct(heads, trials, weights, p)
