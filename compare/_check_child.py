"""The child process of ``compare check``: loads the student's function and answers calls.

The grader (:mod:`compare.check`) runs this file as a script, ``python -I -B
_check_child.py REQUEST_FD REPLY_FD KIND WHERE FUNCTION [--allow-suite-imports]``, in a new
session with a clean environment; it is never imported. It uses only the standard library
and numpy, so nothing of the suite is loaded here, and it refuses imports of the suite's
own ``em``, ``compare`` and ``models`` unless ``--allow-suite-imports`` is given: a
student's function cannot call the grader's reference EM.

Everything that crosses the process boundary is plain data in frames, ``b"EMCK"``, a
4-byte little-endian length, then that many bytes of JSON. A request holds ``id``,
``heads``, ``trials``, ``weights`` and ``p``; a reply holds ``id``, ``ok`` and either
``values`` (two ``{"shape": [...], "data": [...] or null}``, float64 numbers written
exactly), ``raised`` (the exception the function raised) or ``error`` (one line each).
A request may instead hold ``n_components`` and ``seed`` (with ``heads`` and ``trials``):
then the function is a whole fit, ``fit(heads, trials, n_components, seed) -> (weights,
p)``, as ``compare report --em-result MODULE:FUNCTION`` calls it. The student's return
value is converted to float arrays here, so the grader never
unpickles or otherwise runs anything the student made. What the function prints goes to
a file of at most 16 MiB (RLIMIT_FSIZE), which the grader reads.
"""

import importlib
import importlib.abc
import importlib.util
import json
import os
import resource
import struct
import sys
import traceback

import numpy as np

MAGIC = b"EMCK"
HEADER = struct.Struct("<4sI")
MAX_REQUEST = 1 << 24
MAX_ELEMENTS = 1024  # more numbers than this in one returned array: only its shape is sent
MAX_MESSAGE = 400
MAX_OUTPUT_BYTES = 1 << 24  # the student's stdout and stderr go to a file of at most this
SUITE = ("em", "compare", "models")

# Bound before the student's code runs: a function that monkeypatches numpy cannot change
# how its own answer is converted.
_asarray, _float64 = np.asarray, np.float64
_dumps, _loads = json.dumps, json.loads


class RefuseSuite(importlib.abc.MetaPathFinder):
    """Refuse imports of the suite's packages: the reference EM is the grader's.

    Only the suite's own ``em``, ``compare`` and ``models`` are refused (a folder holding
    all three packages); a student's own module called ``models`` still imports.
    """

    def find_spec(self, fullname, path=None, target=None):  # noqa: D102 - importlib hook
        if fullname not in SUITE:  # submodules need their package, refused or allowed
            return None
        for finder in sys.meta_path:
            found = getattr(finder, "find_spec", None) if finder is not self else None
            spec = found(fullname, path, target) if found else None
            if spec is not None:
                break
        else:
            return None
        if spec.submodule_search_locations:
            roots = [os.path.dirname(loc) for loc in spec.submodule_search_locations]
        else:
            roots = [os.path.dirname(spec.origin or "")]
        if any(is_suite(root) for root in roots):
            raise ImportError(
                f"importing {fullname!r} is refused while your function is checked: write "
                "the step with numpy/scipy yourself (--allow-suite-imports lifts this)"
            )
        return None


def is_suite(folder: str) -> bool:
    """Whether ``folder`` holds the suite: the packages em, compare and models."""
    return all(os.path.isfile(os.path.join(folder, name, "__init__.py")) for name in SUITE)


def one_line(text: str) -> str:
    """``text`` on one line (control characters to spaces), at most MAX_MESSAGE long."""
    flat = "".join(c if c.isprintable() else " " for c in str(text))
    return flat if len(flat) <= MAX_MESSAGE else flat[: MAX_MESSAGE - 3] + "..."


def describe(exc: BaseException) -> str:
    """``Type: message (line N)`` for an exception raised by the student's code."""
    try:
        message = str(exc)
    except BaseException:  # noqa: BLE001 - a student's __str__ may raise anything
        message = "<unprintable>"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
    where = f" (line {frames[-1].lineno})" if frames else ""
    return one_line(f"{type(exc).__name__}{': ' if message else ''}{message}{where}")


def load(kind: str, where: str, name: str):
    """The student's function from a file path or a module name."""
    if kind == "file":
        path = os.path.abspath(where)
        sys.path.insert(0, os.path.dirname(path))  # as `python FILE.py`: its neighbours
        stem = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(f"_checked_{stem}", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"{where!r} is not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    if not hasattr(module, name):
        raise AttributeError(f"{where!r} has no function {name!r}")
    fn = getattr(module, name)
    if not callable(fn):
        raise TypeError(f"{where}:{name} is not callable")
    return fn


def as_value(x) -> dict:
    """One returned array as plain data: its shape and, if small, its float64 numbers."""
    a = _asarray(x)
    if a.dtype.kind not in "biufO":
        raise TypeError(f"not real numbers (dtype {a.dtype})")
    shape = [int(n) for n in a.shape]
    if a.size > MAX_ELEMENTS:
        return {"shape": shape, "data": None}
    flat = a.astype(_float64).reshape(-1)
    return {"shape": shape, "data": [float(v) for v in flat]}


def convert(out) -> dict:
    """The reply for the function's return value ``out``."""
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        got = one_line(type(out).__name__)
        return {"ok": False, "error": f"expected a pair (new_weights, new_p), got {got}"}
    try:
        values = [as_value(x) for x in out]
    except BaseException as exc:  # noqa: BLE001 - whatever the student's objects raise
        return {"ok": False, "error": one_line(f"not numeric arrays: {describe(exc)}")}
    return {"ok": True, "values": values}


def answer(fn, request: dict) -> dict:
    """Call the function on fresh arrays built from the request; never raises."""
    try:
        heads = np.array(request["heads"], dtype=np.int64)
        trials = np.array(request["trials"], dtype=np.int64)
        if "n_components" in request:  # a whole fit: fit(heads, trials, n_components, seed)
            args = (heads, trials, int(request["n_components"]), int(request["seed"]))
        else:  # one EM step: em_step(heads, trials, weights, p)
            args = (
                heads,
                trials,
                np.array(request["weights"], dtype=_float64),
                np.array(request["p"], dtype=_float64),
            )
        out = fn(*args)
    except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt too
        return {"ok": False, "raised": describe(exc)}
    try:
        return convert(out)
    except BaseException as exc:  # noqa: BLE001
        return {"ok": False, "error": one_line(f"not a usable answer: {describe(exc)}")}


def send(fd: int, message: dict) -> None:
    """Write one frame (all of it) to ``fd``."""
    try:
        body = _dumps(message).encode()
    except BaseException as exc:  # noqa: BLE001 - e.g. a patched json
        body = _dumps({"id": message.get("id"), "ok": False, "error": describe(exc)}).encode()
    data = HEADER.pack(MAGIC, len(body)) + body
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def receive(fd: int) -> dict | None:
    """The next request from the grader, or None when it has closed the channel."""
    head = read_exact(fd, HEADER.size)
    if head is None:
        return None
    magic, size = HEADER.unpack(head)
    if magic != MAGIC or size > MAX_REQUEST:
        return None
    body = read_exact(fd, size)
    return None if body is None else _loads(body)


def read_exact(fd: int, n: int) -> bytes | None:
    """Exactly ``n`` bytes from ``fd``, or None at end of file."""
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def main(argv: list[str]) -> int:
    """Load the function, then answer requests until the grader closes the channel."""
    request_fd, reply_fd = int(argv[1]), int(argv[2])
    kind, where, name = argv[3], argv[4], argv[5]
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_OUTPUT_BYTES, MAX_OUTPUT_BYTES))
    sys.path.insert(0, os.getcwd())  # as `python -m`: modules under the current folder
    if "--allow-suite-imports" not in argv[6:]:
        sys.meta_path.insert(0, RefuseSuite())
    try:
        fn = load(kind, where, name)
    except BaseException as exc:  # noqa: BLE001 - reported to the grader, whatever it is
        send(reply_fd, {"id": 0, "ok": False, "error": describe(exc)})
        return 0
    send(reply_fd, {"id": 0, "ok": True})
    while (request := receive(request_fd)) is not None:
        reply = answer(fn, request)
        reply["id"] = request.get("id")
        send(reply_fd, reply)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
