"""Argument checks shared by the API and the CLI.

Every check raises ``ValueError`` with a one-line message that names the argument and
echoes the bad value, so the CLI can print it as it is and exit with status 2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "check_n_components",
    "check_positive_int",
    "check_tol",
    "check_weights",
    "check_p",
    "check_prior_weights",
    "check_prior_p",
    "check_fix",
    "parse_float_list",
]


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


def check_n_components(value) -> int:
    """Return the number of components K >= 1."""
    return check_positive_int(value, "n_components")


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
    return a, b


def check_fix(value) -> str | None:
    """Return which parameter group is held fixed: None, 'weights' or 'p'."""
    if value in (None, "", "none"):
        return None
    if value not in ("weights", "p"):
        raise ValueError(f"fix must be 'weights' or 'p', got {_fmt(value)}")
    return value


def parse_float_list(text: str, name: str) -> list[float]:
    """Parse a comma-separated CLI list such as ``0.25,0.5,0.25``."""
    parts = [s.strip() for s in str(text).split(",")]
    try:
        values = [float(s) for s in parts]
    except ValueError:
        raise ValueError(f"{name} must be comma-separated numbers, got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name} must be finite numbers, got {text!r}")
    return values


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
