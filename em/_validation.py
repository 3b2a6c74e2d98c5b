"""Argument checks shared by the API and the CLI.

Every check raises ``ValueError`` with a one-line message that names the argument and
echoes the bad value, so the CLI can print it as it is and exit with status 2.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence

import numpy as np

__all__ = [
    "MIN_COMPONENT_LIMIT",
    "WEIGHT_SUM_ATOL",
    "check_mixture",
    "check_n_components",
    "check_positive_int",
    "check_tol",
    "check_weights",
    "check_p",
    "check_prior_weights",
    "check_prior_p",
    "check_fix",
    "parse_float_list",
    "parse_float",
    "parse_int",
    "memory_bytes",
]

#: K may always go up to this many components, even above the number of distinct outcomes
#: (see :func:`check_n_components`).
MIN_COMPONENT_LIMIT = 10

#: Peak bytes a fit holds per (component, distinct outcome) cell of one parameter set:
#: six float64 (K, M) arrays (the joint log-probabilities, the posteriors of the last
#: E-step beside the next one's, and log_likelihood's temporaries for two candidate
#: reductions); measured with tracemalloc on fits with K x M of 10^6 and 4 x 10^6.
BYTES_PER_CELL = 48

#: Mixture weights must sum to 1 within this (float rounding, not approximation).
WEIGHT_SUM_ATOL = 1e-9

# ufunc reductions called directly (the ndarray methods add a Python-level wrapper).
_amin, _amax, _sum = np.minimum.reduce, np.maximum.reduce, np.add.reduce

# Plain decimal numbers only (ASCII digits; no underscores, hexadecimal, "nan" or "inf"),
# which Python's int() and float() would also accept.
_INT_RE = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _fmt(value) -> str:
    """Short repr of a user value for an error message."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_positive_int(value, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise if it is not an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {_fmt(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def memory_bytes() -> int | None:
    """Physical memory of this machine in bytes, or None where the OS does not say."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):  # not POSIX
        return None
    return pages * size if pages > 0 and size > 0 else None


def check_n_components(value, data=None, name: str = "n_components") -> int:
    """Return the number of components K >= 1, bounded by the data when they are given.

    With ``data`` (anything with ``n_outcomes``, the number M of distinct outcomes), K may
    be at most ``max(M, MIN_COMPONENT_LIMIT)``: a mixture's maximum likelihood is reached
    with at most M components (Lindsay, 1983: the nonparametric MLE of the mixing
    distribution has at most M support points), so more cannot fit better; they only make
    the maximum non-unique. Up to 10 components are allowed whatever M, so that small
    over-parametrised fits keep working (the documented K > M case). K must also leave an
    EM iteration's (K x M) arrays within the machine's memory.
    """
    k = check_positive_int(value, name)
    if data is None:
        return k
    m = int(data.n_outcomes)
    limit = max(m, MIN_COMPONENT_LIMIT)
    if k > limit:
        raise ValueError(
            f"{name} must be at most {limit} for these data, got {k} (the larger of their {m} "
            f"distinct outcomes and {MIN_COMPONENT_LIMIT}: with more components than distinct "
            "outcomes the likelihood cannot rise)"
        )
    need, have = BYTES_PER_CELL * k * m, memory_bytes()
    if have is not None and need > have:
        raise ValueError(
            f"{name} = {k} with {m} distinct outcomes needs about {need / 2**30:.1f} GiB for "
            f"one EM iteration, more than this machine's memory ({have / 2**30:.1f} GiB)"
        )
    return k


def check_tol(value, name: str = "tol") -> float:
    """Return a finite tolerance >= 0."""
    try:
        tol = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number >= 0, got {_fmt(value)}") from None
    if not math.isfinite(tol) or tol < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {_fmt(value)}")
    return tol


def _float_vector(value, name: str, k: int) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {k} numbers, got {_fmt(value)}") from None
    if arr.ndim != 1 or arr.size != k:
        raise ValueError(f"{name} must have {k} values (one per component), got {_fmt(value)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {_fmt(value)}")
    return arr


def check_weights(value, k: int, name: str = "init_weights") -> np.ndarray:
    """Return mixture weights: K values in [0, 1] that sum to 1 (to 1e-6)."""
    w = _float_vector(value, name, k)
    if np.any(w < 0) or np.any(w > 1):
        raise ValueError(f"{name} must lie in [0, 1], got {_fmt(value)}")
    total = float(w.sum())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"{name} must sum to 1, got sum({name}) = {total:.6g}")
    return w / total


def check_p(value, k: int, name: str = "init_p") -> np.ndarray:
    """Return component biases: K values in [0, 1]."""
    p = _float_vector(value, name, k)
    if np.any(p < 0) or np.any(p > 1):
        raise ValueError(f"{name} must lie in [0, 1], got {_fmt(value)}")
    return p


#: Largest prior concentration (Dirichlet alpha, Beta a and b) accepted.
PRIOR_MAX = 1e6


def check_prior_weights(value, k: int, name: str = "prior_weights") -> np.ndarray | None:
    """Return the Dirichlet concentration as a K-vector (a scalar is broadcast)."""
    if value is None:
        return None
    arr = np.asarray(value, dtype=float) if _is_numeric(value) else None
    if arr is None or arr.ndim > 1:
        raise ValueError(f"{name} must be a number or {k} numbers, got {_fmt(value)}")
    if arr.ndim == 0:
        arr = np.full(k, float(arr))
    if arr.size != k:
        raise ValueError(f"{name} must be a number or {k} numbers, got {_fmt(value)}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name}: Dirichlet concentration must be > 0, got {_fmt(value)}")
    if np.any(arr < 1):
        raise ValueError(
            f"{name}: MAP-EM needs alpha >= 1, got {_fmt(value)} (with alpha < 1 the posterior "
            "density is unbounded at the edge of the simplex and has no mode)"
        )
    if np.any(arr > PRIOR_MAX):
        raise ValueError(
            f"{name}: Dirichlet alpha must be at most {PRIOR_MAX:g}, got {_fmt(value)} "
            "(larger ones are a point mass, whose log density float64 cannot hold)"
        )
    return arr


def check_prior_p(value, name: str = "prior_p") -> tuple[float, float] | None:
    """Return the Beta(a, b) prior on every bias as a pair of floats."""
    if value is None:
        return None
    arr = np.asarray(value, dtype=float) if _is_numeric(value) else None
    if arr is None or arr.shape != (2,):
        raise ValueError(f"{name} must be two numbers a,b (a Beta(a, b) prior), got {_fmt(value)}")
    a, b = float(arr[0]), float(arr[1])
    if not (math.isfinite(a) and math.isfinite(b)) or a <= 0 or b <= 0:
        raise ValueError(f"{name}: Beta parameters must be > 0, got a={a:g}, b={b:g}")
    if a < 1 or b < 1:
        raise ValueError(
            f"{name}: MAP-EM needs a >= 1 and b >= 1, got a={a:g}, b={b:g} (below 1 the "
            "posterior density is unbounded at p = 0 or 1 and has no mode)"
        )
    if max(a, b) > PRIOR_MAX:
        raise ValueError(
            f"{name}: Beta parameters must be at most {PRIOR_MAX:g}, got a={a:g}, b={b:g} "
            "(larger ones are a point mass, whose log density float64 cannot hold)"
        )
    return a, b


def check_fix(value) -> str | None:
    """Return which parameter group is held fixed: None, 'weights' or 'p'."""
    if value in (None, "", "none"):
        return None
    if value not in ("weights", "p"):
        raise ValueError(f"fix must be 'weights' or 'p', got {_fmt(value)}")
    return value


def parse_int(text, name: str, minimum: int = 0) -> int:
    """Parse a decimal integer >= ``minimum`` from a CLI string (no ``1_000``, no ``0x10``)."""
    s = str(text).strip()
    if not _INT_RE.fullmatch(s):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {_fmt(text)}")
    return check_positive_int(int(s), name, minimum=minimum)


def parse_float(text, name: str) -> float:
    """Parse a plain decimal number from a CLI string (no ``1_0``; ``nan``/``inf`` refused)."""
    s = str(text).strip()
    if not _FLOAT_RE.fullmatch(s):
        raise ValueError(f"{name} must be a number, got {_fmt(text)}")
    return float(s)


def parse_float_list(text: str, name: str) -> list[float]:
    """Parse a comma-separated CLI list such as ``0.25,0.5,0.25``."""
    parts = [s.strip() for s in str(text).split(",")]
    if not all(_FLOAT_RE.fullmatch(s) for s in parts):
        if any(s.lower().lstrip("+-") in ("nan", "inf", "infinity") for s in parts):
            raise ValueError(f"{name} must be finite numbers, got {text!r}")
        raise ValueError(f"{name} must be comma-separated numbers, got {text!r}")
    values = [float(s) for s in parts]
    if not all(math.isfinite(v) for v in values):  # e.g. 1e999
        raise ValueError(f"{name} must be finite numbers, got {text!r}")
    return values


# ---------------------------------------------------------------------- mixtures
def _index(flat: int, shape: tuple) -> str:
    """``[i]`` or ``[i, j, ...]`` of the flat index of an element, for messages."""
    return "[" + ", ".join(str(int(i)) for i in np.unravel_index(flat, shape)) + "]"


def unmasked(value, name: str, advice: str):
    """``value`` with a mask that hides nothing filled in; a ValueError if it hides values.

    Masks are not honoured anywhere, so a masked value would otherwise be used silently.
    """
    if not isinstance(value, np.ma.MaskedArray):
        return value
    masked = int(np.ma.count_masked(value))
    if masked:
        raise ValueError(f"{name} is a masked array with {masked} masked value(s): {advice}")
    return value.filled()


def _param_array(value, name: str) -> np.ndarray:
    """A fresh float64 array of a parameter group; masked values and non-numbers refused."""
    value = unmasked(value, name, "a mixture needs every value (fill or drop them first)")
    try:
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf" and arr.dtype != object:
            raise TypeError
        return arr.astype(np.float64)  # a copy, always
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an array of numbers, got {_fmt(value)}") from None


def check_mixture(weights, p) -> tuple[np.ndarray, np.ndarray]:
    """Return (weights, p) as new float64 arrays of one shape (..., K), or a ValueError.

    Every p in [0, 1]; every weight >= 0, and the weights of each parameter set (the last
    axis) summing to 1 within ``WEIGHT_SUM_ATOL``. Leading dimensions index a batch.
    """
    w, q = _param_array(weights, "weights"), _param_array(p, "p")
    if w.ndim == 0 or w.shape != q.shape or w.shape[-1] == 0:
        raise ValueError(
            "weights and p must have one shape (..., K) with K >= 1 components, "
            f"got {w.shape} and {q.shape}"
        )
    # Whole-array reductions first (a NaN fails every comparison); the element is found
    # only for the message.
    total = _sum(w, axis=-1)
    if not (
        _amin(q, axis=None) >= 0.0
        and _amax(q, axis=None) <= 1.0
        and _amin(w, axis=None) >= 0.0
        and _amax(np.abs(total - 1.0), axis=None) <= WEIGHT_SUM_ATOL
    ):
        _mixture_error(w, q, total)
    return w, q


def _mixture_error(w: np.ndarray, q: np.ndarray, total: np.ndarray):
    bad = ~((q >= 0.0) & (q <= 1.0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"p{_index(i, q.shape)} = {float(q.flat[i])!r} is outside [0, 1]")
    bad = ~((w >= 0.0) & (w < np.inf))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"weights{_index(i, w.shape)} = {float(w.flat[i])!r} is not a number >= 0")
    i = int(np.argmax(~(np.abs(total - 1.0) <= WEIGHT_SUM_ATOL)))
    where = "" if total.ndim == 0 else f" for weights{_index(i, total.shape)[:-1]}, :]"
    raise ValueError(
        f"weights must sum to 1 over the components, got {float(total.flat[i])!r}{where}"
    )


def _is_numeric(value) -> bool:
    if isinstance(value, (str, bytes)):
        return False
    if isinstance(value, (int, float, np.number)):
        return True
    if isinstance(value, (Sequence, np.ndarray)):
        try:
            np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            return False
        return True
    return False


def check_method(value, methods: Sequence[str], name: str = "method") -> str:
    """Return the method name if it is one of ``methods``."""
    if value not in methods:
        raise ValueError(f"{name} must be one of {', '.join(methods)}, got {_fmt(value)}")
    return value
