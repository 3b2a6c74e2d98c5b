"""Binomial data compressed to distinct (heads, trials) outcomes with occurrence counts.

Table 6.1 of the chapter lists each distinct outcome once with the number of times it
occurred; every computation in this package works on that compressed form, so one EM
iteration costs O(distinct outcomes x K) whatever the number of sequences N.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.special import gammaln

__all__ = ["BinomialData", "CHAPTER_HEADS", "CHAPTER_TRIALS", "load_data"]

#: Section 6.3: heads in 20 sequences of 10 flips, in the chapter's order.
CHAPTER_HEADS = (6, 5, 4, 2, 2, 6, 5, 5, 4, 2, 5, 2, 4, 4, 6, 4, 5, 6, 3, 3)
CHAPTER_TRIALS = 10

# Above this many bins, (heads, trials) pairs are compressed with np.unique, not np.bincount.
_MAX_BINCOUNT_BINS = 1 << 24


@dataclass(frozen=True, eq=False)
class BinomialData:
    """Distinct binomial outcomes with their occurrence counts.

    Build it with :meth:`from_sequences`, :meth:`from_counts`, :meth:`chapter` or
    :func:`load_data`; the constructor assumes validated, compressed input.

    Attributes
    ----------
    heads : ndarray of int64, shape (n_outcomes,)
        Successes of each distinct outcome.
    trials : ndarray of int64, shape (n_outcomes,)
        Trials of each distinct outcome.
    counts : ndarray of int64, shape (n_outcomes,)
        How many sequences had that outcome (all >= 1).
    source : str
        Where the data came from (``"chapter"``, a file path or ``"array"``).
    """

    heads: np.ndarray
    trials: np.ndarray
    counts: np.ndarray
    source: str = "array"

    def __post_init__(self):
        for name in ("heads", "trials", "counts"):
            arr = np.array(getattr(self, name), dtype=np.int64)
            arr.flags.writeable = False
            object.__setattr__(self, name, arr)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_sequences(cls, heads, trials, *, source: str = "array") -> BinomialData:
        """Compress one (heads, trials) pair per sequence.

        Parameters
        ----------
        heads : array-like of int, shape (n_sequences,)
            Successes in each sequence.
        trials : int or array-like of int, shape (n_sequences,)
            Trials in each sequence; a scalar means the same for all.
        source : str, optional
            A label for reports.

        Raises
        ------
        ValueError
            Naming the first bad element: negative, non-integer or non-finite values,
            ``heads > trials``, ``trials < 1``, mismatched lengths or no data.
        """
        h = _as_int_array(heads, "heads")
        if h.size == 0:
            raise ValueError("heads is empty: need at least one sequence")
        if np.ndim(trials) == 0:
            n = _as_int_array(np.asarray([trials]), "trials")[0]
            if n < 1:
                raise ValueError(f"trials must be >= 1, got {n}")
            tally = _bincount(h, "heads")
            if tally.size > n + 1:
                i = int(np.argmax(h > n))
                raise ValueError(f"heads[{i}] = {h[i]} exceeds trials = {n}")
            outcomes = np.flatnonzero(tally)
            return cls(outcomes, np.full(outcomes.size, n), tally[outcomes], source)
        t = _as_int_array(trials, "trials")
        if t.shape != h.shape:
            raise ValueError(
                f"trials must be a scalar or have the length of heads ({h.size}), got {t.size}"
            )
        return cls._compress(h, t, np.ones_like(h), source)

    @classmethod
    def from_counts(cls, heads, trials, counts, *, source: str = "array") -> BinomialData:
        """Build from outcomes with multiplicities (repeated outcomes are merged)."""
        h = _as_int_array(heads, "heads")
        c = _as_int_array(counts, "counts")
        t = _as_int_array(np.broadcast_to(trials, h.shape), "trials")
        if not (h.shape == t.shape == c.shape):
            raise ValueError(
                f"heads, trials and counts must have one length, got {h.size}, {t.size}, {c.size}"
            )
        if h.size == 0 or c.sum() == 0:
            raise ValueError("counts: need at least one sequence (all counts are 0 or empty)")
        return cls._compress(h, t, c, source)

    @classmethod
    def _compress(cls, h, t, c, source) -> BinomialData:
        _check_pairs(h, t)
        if c.size and c.min() < 0:
            i = int(np.argmax(c < 0))
            raise ValueError(f"counts[{i}] = {c[i]} is negative")
        width = int(t.max()) + 1
        key = t * width + h
        if width * width <= max(_MAX_BINCOUNT_BINS, 4 * key.size):
            tally = np.bincount(key, weights=None if np.all(c == 1) else c, minlength=0)
            tally = tally.astype(np.int64)
            keys = np.flatnonzero(tally)
            tally = tally[keys]
        else:
            keys, inverse = np.unique(key, return_inverse=True)
            tally = np.bincount(inverse, weights=c).astype(np.int64)
            keep = tally > 0
            keys, tally = keys[keep], tally[keep]
        return cls(keys % width, keys // width, tally, source)

    @classmethod
    def chapter(cls) -> BinomialData:
        """The 20 sequences of 10 flips of the chapter's Section 6.3."""
        return cls.from_sequences(CHAPTER_HEADS, CHAPTER_TRIALS, source="chapter")

    # ------------------------------------------------------------------ views
    @property
    def n_outcomes(self) -> int:
        """Number of distinct (heads, trials) outcomes."""
        return int(self.heads.size)

    @cached_property
    def n_sequences(self) -> int:
        """Number of sequences N (sum of the counts)."""
        return int(self.counts.sum())

    @property
    def max_trials(self) -> int:
        """Largest number of trials of any sequence."""
        return int(self.trials.max())

    def expand(self) -> tuple[np.ndarray, np.ndarray]:
        """Return one (heads, trials) pair per sequence, sorted by outcome."""
        return np.repeat(self.heads, self.counts), np.repeat(self.trials, self.counts)

    def summary(self) -> dict:
        """Size and source, for JSON output (the outcomes themselves can be millions)."""
        return {
            "source": self.source,
            "n_sequences": self.n_sequences,
            "n_outcomes": self.n_outcomes,
            "min_trials": int(self.trials.min()),
            "max_trials": self.max_trials,
        }

    def to_dict(self) -> dict:
        """Every distinct outcome with its count, as plain lists."""
        return {
            "source": self.source,
            "heads": self.heads.tolist(),
            "trials": self.trials.tolist(),
            "counts": self.counts.tolist(),
        }

    # Quantities every E-step needs, computed once per data set.
    @cached_property
    def _design(self) -> np.ndarray:
        """Rows [heads, trials - heads, 1] as float, shape (3, n_outcomes)."""
        h = self.heads.astype(np.float64)
        return np.ascontiguousarray(np.vstack([h, self.trials - h, np.ones_like(h)]))

    @cached_property
    def _stats_t(self) -> np.ndarray:
        """Columns [count, count * heads, count * trials], shape (n_outcomes, 3)."""
        c = self.counts.astype(np.float64)
        return np.ascontiguousarray(np.column_stack([c, c * self.heads, c * self.trials]))

    @cached_property
    def _counts_f(self) -> np.ndarray:
        """Counts as float64, shape (n_outcomes,)."""
        return self.counts.astype(np.float64)

    @cached_property
    def _log_binom_coef(self) -> float:
        """Sum over sequences of log C(trials, heads): the constant of the log pmf."""
        h, n = self.heads.astype(np.float64), self.trials.astype(np.float64)
        lc = gammaln(n + 1) - gammaln(h + 1) - gammaln(n - h + 1)
        return float(self.counts.astype(np.float64) @ lc)


def _as_int_array(values, name: str) -> np.ndarray:
    """1-D int64 array of non-negative integers, or a ValueError naming the element."""
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an array of integers") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "b":
        return arr.astype(np.int64)
    if arr.dtype.kind != "f":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            bad = next(i for i, v in enumerate(arr) if not _is_number(v))
            raise ValueError(f"{name}[{bad}] = {_item(arr[bad])!r} is not a number") from None
    bad = ~np.isfinite(arr) | (arr != np.floor(arr))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name}[{i}] = {_item(arr[i])!r} is not an integer")
    return arr.astype(np.int64)


def _item(value):
    """A numpy scalar as the plain Python value, for messages."""
    return value.item() if isinstance(value, np.generic) else value


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _bincount(h: np.ndarray, name: str) -> np.ndarray:
    """np.bincount, with a negative value reported by position."""
    try:
        return np.bincount(h)
    except ValueError:
        i = int(np.argmax(h < 0))
        raise ValueError(f"{name}[{i}] = {h[i]} is negative") from None


def _check_pairs(h: np.ndarray, t: np.ndarray) -> None:
    for name, arr in (("heads", h), ("trials", t)):
        if arr.size and arr.min() < 0:
            i = int(np.argmax(arr < 0))
            raise ValueError(f"{name}[{i}] = {arr[i]} is negative")
    if t.size and t.min() < 1:
        i = int(np.argmax(t < 1))
        raise ValueError(f"trials[{i}] = {t[i]}: every sequence needs at least one trial")
    over = h > t
    if over.any():
        i = int(np.argmax(over))
        raise ValueError(f"heads[{i}] = {h[i]} exceeds trials[{i}] = {t[i]}")


# ---------------------------------------------------------------------- files
_COLUMNS = ("heads", "trials", "count")


def load_data(spec: str | os.PathLike) -> BinomialData:
    """Load the built-in ``"chapter"`` data set or a CSV file.

    The CSV has a header ``heads,trials`` (one row per sequence) or
    ``heads,trials,count`` (distinct outcomes with multiplicities).

    Raises
    ------
    ValueError
        With the file's line number for a bad row, a missing or unknown column, an empty
        file, or a file that cannot be read.
    """
    if str(spec) == "chapter":
        return BinomialData.chapter()
    path = os.fspath(spec)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except FileNotFoundError:
        raise ValueError(f"DATA: no such file {path!r} (give 'chapter' or a CSV path)") from None
    except IsADirectoryError:
        raise ValueError(f"DATA: {path!r} is a directory, not a CSV file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"DATA: cannot read {path!r}: {exc}") from None
    numbered = [(i + 1, r) for i, r in enumerate(rows) if any(cell.strip() for cell in r)]
    if not numbered:
        raise ValueError(f"{path}: the file is empty (expected a header 'heads,trials')")
    header_line, header = numbered[0]
    names = [cell.strip().lower() for cell in header]
    for name in names:
        if name not in _COLUMNS:
            raise ValueError(
                f"{path}: line {header_line}: unknown column {name!r} "
                "(expected heads,trials or heads,trials,count)"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: line {header_line}: a column is named twice: {','.join(names)}")
    for needed in ("heads", "trials"):
        if needed not in names:
            raise ValueError(
                f"{path}: line {header_line}: missing column {needed!r} "
                f"(header is {','.join(names)!r})"
            )
    body = numbered[1:]
    if not body:
        raise ValueError(f"{path}: no data rows after the header")
    cols = {name: j for j, name in enumerate(names)}
    values = np.empty((len(body), 3), dtype=np.int64)
    values[:, 2] = 1
    for r, (line, row) in enumerate(body):
        if len(row) != len(names):
            raise ValueError(f"{path}: line {line}: expected {len(names)} values, got {len(row)}")
        for name, j in cols.items():
            values[r, _COLUMNS.index(name)] = _parse_cell(row[j], name, path, line)
        h, t = values[r, 0], values[r, 1]
        if t < 1:
            raise ValueError(f"{path}: line {line}: trials = {t}, must be >= 1")
        if h > t:
            raise ValueError(f"{path}: line {line}: heads = {h} exceeds trials = {t}")
    if values[:, 2].sum() == 0:
        raise ValueError(f"{path}: every count is 0, no sequences")
    return BinomialData.from_counts(values[:, 0], values[:, 1], values[:, 2], source=path)


def _parse_cell(text: str, name: str, path: str, line: int) -> int:
    s = text.strip()
    try:
        value = int(s)
    except ValueError:
        try:
            f = float(s)
        except ValueError:
            f = None
        if f is None or not np.isfinite(f) or not f.is_integer():
            raise ValueError(
                f"{path}: line {line}: {name} = {s!r} is not a non-negative integer"
            ) from None
        value = int(f)
    if value < 0:
        raise ValueError(f"{path}: line {line}: {name} = {value} is negative")
    return value
