"""Binomial data compressed to distinct (heads, trials) outcomes with occurrence counts.

Table 6.1 of the chapter lists each distinct outcome once with the number of times it
occurred; every computation in this package works on that compressed form, so one EM
iteration costs O(distinct outcomes x K) whatever the number of sequences N.

Supported ranges, checked wherever data come in (arrays, the constructor, CSV files), so
that every integer inside them is handled exactly:

- ``1 <= trials <= MAX_TRIALS = 2^31 - 1`` and ``0 <= heads <= trials``: the PyMC model
  holds heads and trials as int32, and the compression key ``trials x (max trials + 1) +
  heads`` stays below 2^62;
- at most ``MAX_SEQUENCES = 2^53 - 1`` sequences in all (the sum of the counts): EM counts
  in float64, which holds every count and every partial sum exactly up to there.
"""

from __future__ import annotations

import csv
import os
import stat
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from numbers import Rational

import numpy as np
from scipy.special import gammaln

from em import _validation as v

__all__ = [
    "BinomialData",
    "CHAPTER_HEADS",
    "CHAPTER_TRIALS",
    "MAX_SEQUENCES",
    "MAX_TRIALS",
    "load_data",
    "load_rows",
]

#: Section 6.3: heads in 20 sequences of 10 flips, in the chapter's order.
CHAPTER_HEADS = (6, 5, 4, 2, 2, 6, 5, 5, 4, 2, 5, 2, 4, 4, 6, 4, 5, 6, 3, 3)
CHAPTER_TRIALS = 10

#: Most trials a sequence may have: 2^31 - 1, the int32 the PyMC model stores them in.
MAX_TRIALS = 2**31 - 1
#: Most sequences a data set may have (the sum of the counts): 2^53 - 1, the largest
#: integer below which float64, EM's type for counts, represents every integer.
MAX_SEQUENCES = 2**53 - 1

_TRIALS_LIMIT = f"the largest supported number of trials, {MAX_TRIALS} (2^31 - 1)"
_COUNT_LIMIT = f"the largest supported number of sequences, {MAX_SEQUENCES} (2^53 - 1)"
_LIMITS = {"heads": _TRIALS_LIMIT, "trials": _TRIALS_LIMIT, "counts": _COUNT_LIMIT}

# Above this many bins, (heads, trials) pairs are compressed with np.unique, not np.bincount.
_MAX_BINCOUNT_BINS = 1 << 24
# Heads against one number of trials are tallied in chunks this long (cache-sized): each
# chunk's maximum is checked before np.bincount sizes its output by it.
_CHUNK = 1 << 17

_min, _max = np.minimum.reduce, np.maximum.reduce


@dataclass(frozen=True, eq=False)
class BinomialData:
    """Distinct binomial outcomes with their occurrence counts.

    Build it with :meth:`from_sequences`, :meth:`from_counts`, :meth:`chapter` or
    :func:`load_data`. The constructor takes outcomes that are already distinct: it checks
    them as the others do (ranges, ``heads <= trials``, counts >= 1) but merges nothing.

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

    Raises
    ------
    ValueError
        Naming the first bad element (see :meth:`from_counts`), or a count of 0.
    """

    heads: np.ndarray
    trials: np.ndarray
    counts: np.ndarray
    source: str = "array"

    def __post_init__(self):
        h, t, c = _as_outcomes(self.heads, self.trials, self.counts)
        if _min(c) < 1:
            i = int(np.argmax(c < 1))
            raise ValueError(
                f"counts[{i}] = {c[i]}: every outcome needs a count >= 1 "
                "(BinomialData.from_counts drops zero counts)"
            )
        self._set(np.array(h), np.array(t), np.array(c))

    def _set(self, heads: np.ndarray, trials: np.ndarray, counts: np.ndarray) -> None:
        for name, arr in (("heads", heads), ("trials", trials), ("counts", counts)):
            arr.flags.writeable = False
            object.__setattr__(self, name, arr)

    @classmethod
    def _trusted(cls, heads, trials, counts, source: str) -> BinomialData:
        """Wrap int64 arrays this module has just checked and compressed, as they are."""
        self = object.__new__(cls)
        object.__setattr__(self, "source", source)
        self._set(heads, trials, counts)
        return self

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
            ``heads > trials``, ``trials < 1`` or above ``MAX_TRIALS``, masked values,
            mismatched lengths or no data.
        """
        h = _as_int_array(heads, "heads")
        if h.size == 0:
            raise ValueError("heads is empty: need at least one sequence")
        if np.ndim(trials) == 0:
            n = _scalar_trials(trials)
            outcomes, tally = _tally(h, n)
            return cls._trusted(outcomes, np.full(outcomes.size, n, np.int64), tally, source)
        t = _as_int_array(trials, "trials")
        if t.shape != h.shape:
            raise ValueError(
                f"trials must be a scalar or have the length of heads ({h.size}), got {t.size}"
            )
        _check_pairs(h, t)
        return cls._trusted(*_compress(h, t, None), source)

    @classmethod
    def from_counts(cls, heads, trials, counts, *, source: str = "array") -> BinomialData:
        """Build from outcomes with multiplicities (repeated outcomes are merged).

        Raises
        ------
        ValueError
            As :meth:`from_sequences`, and for a negative count or counts that sum to 0 or
            to more than ``MAX_SEQUENCES``.
        """
        h, t, c = _as_outcomes(heads, trials, counts)
        return cls._trusted(*_compress(h, t, c), source)

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


# ---------------------------------------------------------------------- arrays
class _NotANumber(ValueError):
    pass


class _NotAnInteger(ValueError):
    pass


class _TooLarge(ValueError):
    pass


def _text_to_int(text: str) -> int:
    """The integer a CSV cell or a string element spells, exactly.

    Plain decimal only: ``12``, ``+12``, ``-3``, and integer-valued decimals such as
    ``12.0`` or ``1.2e1``. No underscores (``5_0``), hexadecimal, non-ASCII digits,
    ``nan`` or ``inf``, which Python's int() or float() would take.
    """
    s = text.strip()
    if v._INT_RE.fullmatch(s):
        if len(s.lstrip("+-").lstrip("0")) > 30:
            raise _TooLarge(s)
        return int(s)
    if not v._FLOAT_RE.fullmatch(s):
        raise _NotANumber(s)
    d = Decimal(s)
    if d.is_zero():
        return 0
    if d.adjusted() > 30:
        raise _TooLarge(s)
    if d != d.to_integral_value():
        raise _NotAnInteger(s)
    return int(d)


def _object_to_int(x) -> int:
    """One element of an object or string array as an exact int, or a _NotA... error."""
    if isinstance(x, bool | int):
        return int(x)
    if isinstance(x, bytes):
        x = x.decode("ascii", errors="replace")
    if isinstance(x, str):
        return _text_to_int(x)
    if isinstance(x, float | Decimal):
        if not (x == x and abs(x) != float("inf")):
            raise _NotAnInteger(x)
        if x != int(x):
            raise _NotAnInteger(x)
        return int(x)
    if isinstance(x, Rational):
        if x.denominator != 1:
            raise _NotAnInteger(x)
        return int(x.numerator)
    raise _NotANumber(x)


def _parse_objects(arr: np.ndarray, name: str) -> np.ndarray:
    """Object or string elements as int64, each converted exactly."""
    out = np.empty(arr.size, dtype=np.int64)
    for i, x in enumerate(arr.tolist()):
        try:
            value = _object_to_int(x)
        except _NotAnInteger:
            raise ValueError(f"{name}[{i}] = {_short(x)!r} is not an integer") from None
        except _TooLarge:
            if str(x).strip().startswith("-"):
                raise ValueError(f"{name}[{i}] = {_short(x)!r} is negative") from None
            raise ValueError(f"{name}[{i}] = {_short(x)!r} exceeds {_LIMITS[name]}") from None
        except (_NotANumber, TypeError, ValueError, ArithmeticError):
            raise ValueError(f"{name}[{i}] = {_short(x)!r} is not a number") from None
        if value > MAX_SEQUENCES:
            raise ValueError(f"{name}[{i}] = {value} exceeds {_LIMITS[name]}")
        if value < 0:
            raise ValueError(f"{name}[{i}] = {value} is negative")
        out[i] = value
    return out


def _short(x):
    """A value for a message, long strings cut."""
    if isinstance(x, str) and len(x) > 40:
        return f"{x[:20]}...{x[-10:]} ({len(x)} characters)"
    return x


def _as_int_array(values, name: str) -> np.ndarray:
    """1-D int64 array of integers, or a ValueError naming the element.

    Integer arrays pass through without a copy (int64) or a pass over them; floats must be
    integer-valued and at most ``MAX_SEQUENCES`` (beyond it float64 skips integers); strings
    and Python objects are converted one by one, exactly. A masked array with masked values
    is refused: the mask would otherwise be ignored.
    """
    values = v.unmasked(
        values, name, "masks are not honoured, remove those sequences from every array first"
    )
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must be an array of integers") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    kind = arr.dtype.kind
    if kind == "i":
        return arr.astype(np.int64, copy=False)
    if kind == "b":
        return arr.astype(np.int64)
    if kind == "u":
        big = arr > MAX_SEQUENCES
        if arr.dtype.itemsize == 8 and big.any():  # would wrap in int64
            i = int(np.argmax(big))
            raise ValueError(f"{name}[{i}] = {arr[i]} exceeds {_LIMITS[name]}")
        return arr.astype(np.int64)
    if kind == "f":
        return _float_to_int(arr, name)
    if kind in "OUS":
        return _parse_objects(arr, name)
    raise ValueError(f"{name} must be an array of integers, got dtype {arr.dtype}")


def _float_to_int(arr: np.ndarray, name: str) -> np.ndarray:
    bad = ~np.isfinite(arr) | (arr != np.floor(arr))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name}[{i}] = {_item(arr[i])!r} is not an integer")
    big = arr > MAX_SEQUENCES
    if big.any():
        i = int(np.argmax(big))
        raise ValueError(f"{name}[{i}] = {_item(arr[i])!r} exceeds {_LIMITS[name]}")
    neg = arr < -MAX_SEQUENCES
    if neg.any():
        i = int(np.argmax(neg))
        raise ValueError(f"{name}[{i}] = {_item(arr[i])!r} is negative")
    return arr.astype(np.int64)


def _item(value):
    """A numpy scalar as the plain Python value, for messages."""
    return value.item() if isinstance(value, np.generic) else value


def _scalar_trials(trials) -> int:
    """One number of trials for every sequence, checked."""
    try:
        n = int(_as_int_array(np.asarray([trials], dtype=object), "trials")[0])
    except ValueError as exc:
        raise ValueError(str(exc).replace("trials[0]", "trials", 1)) from None
    if n < 1:
        raise ValueError(f"trials must be >= 1, got {n}")
    if n > MAX_TRIALS:
        raise ValueError(f"trials = {n} exceeds {_TRIALS_LIMIT}")
    return n


def _tally(h: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of ``h`` with their counts, every value checked to lie in 0..n.

    Nothing is allocated for a value above n before it is refused: with few possible values,
    each cache-sized chunk's maximum is checked before np.bincount sizes its tally by it (as
    fast as one np.bincount over the whole array).
    """
    if n >= _CHUNK:
        _check_heads(h, n, 0)
        if n + 1 <= max(_MAX_BINCOUNT_BINS, 4 * h.size):
            tally = np.bincount(h)
            outcomes = np.flatnonzero(tally)
            return outcomes, tally[outcomes].astype(np.int64, copy=False)
        outcomes, tally = np.unique(h, return_counts=True)
        return outcomes, tally.astype(np.int64, copy=False)
    tally = np.zeros(n + 1, dtype=np.int64)
    for start in range(0, h.size, _CHUNK):
        part = h[start : start + _CHUNK]
        if _max(part) > n:
            _check_heads(part, n, start)
        try:
            counts = np.bincount(part)
        except ValueError:  # a negative value
            _check_heads(part, n, start)
            raise
        tally[: counts.size] += counts
    outcomes = np.flatnonzero(tally)
    return outcomes, tally[outcomes]


def _check_heads(h: np.ndarray, n: int, offset: int) -> None:
    """Raise for the first element of ``h`` outside 0..n (index shifted by ``offset``)."""
    bad = (h < 0) | (h > n)
    if bad.any():
        i = int(np.argmax(bad))
        if h[i] < 0:
            raise ValueError(f"heads[{offset + i}] = {h[i]} is negative")
        raise ValueError(f"heads[{offset + i}] = {h[i]} exceeds trials = {n}")


def _check_pairs(h: np.ndarray, t: np.ndarray) -> None:
    for name, arr in (("heads", h), ("trials", t)):
        if arr.size and _min(arr) < 0:
            i = int(np.argmax(arr < 0))
            raise ValueError(f"{name}[{i}] = {arr[i]} is negative")
    if t.size and _min(t) < 1:
        i = int(np.argmax(t < 1))
        raise ValueError(f"trials[{i}] = {t[i]}: every sequence needs at least one trial")
    if t.size and _max(t) > MAX_TRIALS:
        i = int(np.argmax(t > MAX_TRIALS))
        raise ValueError(f"trials[{i}] = {t[i]} exceeds {_TRIALS_LIMIT}")
    over = h > t
    if over.any():
        i = int(np.argmax(over))
        raise ValueError(f"heads[{i}] = {h[i]} exceeds trials[{i}] = {t[i]}")


def _check_counts(c: np.ndarray) -> int:
    """Return the number of sequences, sum(c), after checking every count and the sum."""
    if c.size == 0:
        return 0
    if _min(c) < 0:
        i = int(np.argmax(c < 0))
        raise ValueError(f"counts[{i}] = {c[i]} is negative")
    top = int(_max(c))
    if top > MAX_SEQUENCES:
        i = int(np.argmax(c > MAX_SEQUENCES))
        raise ValueError(f"counts[{i}] = {c[i]} exceeds {_COUNT_LIMIT}")
    if top * c.size <= MAX_SEQUENCES:
        return int(c.sum())
    # Every count is below 2^53, so the first partial sum above the limit comes before
    # any int64 overflow.
    partial = np.cumsum(c)
    over = partial > MAX_SEQUENCES
    if over.any():
        i = int(np.argmax(over))
        raise ValueError(
            f"counts sum to more than {MAX_SEQUENCES} (2^53 - 1) sequences, from counts[{i}] "
            "on: EM counts in float64, exact only up to there"
        )
    return int(partial[-1])


def _as_outcomes(heads, trials, counts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked int64 (heads, trials, counts) of one length, at least one sequence."""
    h = _as_int_array(heads, "heads")
    c = _as_int_array(counts, "counts")
    if np.ndim(trials) == 0:
        t = np.full(h.shape, _scalar_trials(trials), np.int64)
    else:
        t = _as_int_array(trials, "trials")
    if not (h.shape == t.shape == c.shape):
        raise ValueError(
            f"heads, trials and counts must have one length, got {h.size}, {t.size}, {c.size}"
        )
    _check_pairs(h, t)
    if _check_counts(c) == 0:
        raise ValueError("counts: need at least one sequence (all counts are 0 or empty)")
    return h, t, c


def _compress(h: np.ndarray, t: np.ndarray, c: np.ndarray | None):
    """Distinct (heads, trials) pairs of checked arrays, with total counts (c None: 1 each).

    Outcomes with a total count of 0 are dropped. Exact: keys stay below 2^62 (trials <=
    2^31 - 1) and float64 tallies below 2^53.
    """
    width = int(_max(t)) + 1
    key = t * width + h
    if width * width <= max(_MAX_BINCOUNT_BINS, 4 * key.size):
        tally = np.bincount(key, weights=c)
        keys = np.flatnonzero(tally)
        tally = tally[keys].astype(np.int64, copy=False)
    elif c is None:
        keys, tally = np.unique(key, return_counts=True)
        tally = tally.astype(np.int64, copy=False)
    else:
        keys, inverse = np.unique(key, return_inverse=True)
        tally = np.bincount(inverse, weights=c)
        keep = np.flatnonzero(tally)
        keys, tally = keys[keep], tally[keep].astype(np.int64)
    return keys % width, keys // width, tally


# ---------------------------------------------------------------------- files
_COLUMNS = ("heads", "trials", "count")
#: Most characters in one CSV field (the csv module's default limit).
FIELD_LIMIT = 131072
# Most bytes in one line: no valid row comes near it; a longer one is refused unread.
_MAX_LINE = 4 * FIELD_LIMIT
_READ = 1 << 16  # bytes per read, line by line
_BLOCK = 1 << 24  # most bytes per block, columnar
_SMALL_BLOCK = 1 << 16  # bytes per block after a block failed: what goes line by line
_FLUSH = 1 << 16  # rows per array, line by line
_BOM = b"\xef\xbb\xbf"  # UTF-8 byte-order mark (Excel's "CSV UTF-8")
# Blocks made of these bytes only are read by pyarrow: its int64 parser then reads exactly
# what the line-by-line reader does, int(cell.strip()) (no quotes, decimals, "0x", "+",
# null markers: pyarrow refuses or misreads those, and the block goes line by line).
_COLUMNAR_BYTES = b"0123456789,- \t\n\r"


def load_data(spec: str | os.PathLike) -> BinomialData:
    """Load the built-in ``"chapter"`` data set or a CSV file.

    The CSV has a header ``heads,trials`` (one row per sequence) or
    ``heads,trials,count`` (distinct outcomes with multiplicities), in any column order,
    UTF-8 with or without a byte-order mark. Cells are plain decimal integers (``12``,
    ``12.0`` and ``1.2e1`` too; not ``1_2``). Blocks of plain rows are read by pyarrow's
    columnar CSV reader and compressed as they come; only small blocks around other rows
    (quotes, decimals, lone CR line ends, a bad row) are read line by line, by Python's csv
    module, which gives the same numbers and names the line of an error.

    Raises
    ------
    ValueError
        With the file's line number for a bad row (and for a field over 131072
        characters), a missing or unknown column, an empty file, a file that is not a
        regular file (a pipe, a device), a file larger than the machine's memory, or one
        that cannot be read.
    """
    if str(spec) == "chapter":
        return BinomialData.chapter()
    path = os.fspath(spec)
    with _open_regular(path) as fh:
        try:
            return _read_csv(fh, path)
        except MemoryError:
            raise ValueError(f"DATA: not enough memory to read {path!r}") from None
        except OSError as exc:
            raise ValueError(f"DATA: cannot read {path!r}: {exc.strerror or exc}") from None


def _max_file_bytes() -> int | None:
    """Largest CSV file accepted: the machine's memory (None: unknown, no limit)."""
    return v.memory_bytes()


def _open_regular(path):
    """The file opened for reading, if it is a regular file within the size limit.

    Opened without blocking (a FIFO with no writer would block ``open`` forever) and
    checked on the open descriptor, so what is checked is what is read.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ValueError(f"DATA: no such file {path!r} (give 'chapter' or a CSV path)") from None
    except IsADirectoryError:
        raise ValueError(f"DATA: {path!r} is a directory, not a CSV file") from None
    except OSError as exc:
        raise ValueError(f"DATA: cannot read {path!r}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        _check_file(path, info.st_mode, info.st_size)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb", buffering=0)


def _check_file(path, mode: int, size: int) -> None:
    if stat.S_ISDIR(mode):
        raise ValueError(f"DATA: {path!r} is a directory, not a CSV file")
    if not stat.S_ISREG(mode):
        kind = (
            "a named pipe (FIFO)"
            if stat.S_ISFIFO(mode)
            else "a character device"
            if stat.S_ISCHR(mode)
            else "a block device"
            if stat.S_ISBLK(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "not a regular file"
        )
        raise ValueError(f"DATA: {path!r} is {kind}, not a regular file: give a CSV file")
    limit = _max_file_bytes()
    if limit is not None and size > limit:
        raise ValueError(
            f"DATA: {path!r} is {size / 2**30:.1f} GiB, more than this machine's memory "
            f"({limit / 2**30:.1f} GiB): aggregate it to heads,trials,count rows first"
        )


class _Lines:
    r"""The lines of a binary file from a byte offset, as str with their line ends.

    Lines end at ``\r\n``, ``\r`` or ``\n`` (``bytes.splitlines``), as for Python's csv
    module reading a file opened with ``newline=""``. ``line`` is the number of the last
    line returned and ``offset`` the byte offset just after it. A line that is not UTF-8 or
    is longer than ``_MAX_LINE`` bytes is a ValueError naming it.
    """

    def __init__(self, fh, path, offset: int, line: int):
        fh.seek(offset)
        self.fh, self.path, self.offset, self.line = fh, path, offset, line
        self._lines: list[bytes] = []
        self._next = 0
        self._tail, self._eof = b"", False

    def __iter__(self):
        return self

    def __next__(self) -> str:
        if self._next == len(self._lines):
            self._fill()
        raw = self._lines[self._next]
        self._next += 1
        text = raw[len(_BOM) :] if self.offset == 0 and raw.startswith(_BOM) else raw
        self.line += 1
        self.offset += len(raw)
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"{self.path}: line {self.line}: not UTF-8 text "
                f"(byte {text[exc.start]:#04x} at position {exc.start + 1})"
            ) from None

    def _fill(self) -> None:
        """Split the next chunk into whole lines (StopIteration at the end of the file)."""
        while True:
            if self._eof:
                if not self._tail:
                    raise StopIteration
                lines, self._tail = [self._tail], b""
            else:
                chunk = self.fh.read(_READ)
                self._eof = not chunk
                lines = (self._tail + chunk).splitlines(keepends=True)
                # the last line may go on in the next chunk (a CR may be half of CRLF)
                self._tail = b"" if not lines or lines[-1].endswith(b"\n") else lines.pop()
                if len(self._tail) > _MAX_LINE:
                    lines.append(self._tail)
            if lines and max(map(len, lines)) > _MAX_LINE:
                i = next(i for i, raw in enumerate(lines) if len(raw) > _MAX_LINE)
                raise ValueError(
                    f"{self.path}: line {self.line + i + 1} is longer than {_MAX_LINE} bytes "
                    f"(a field may have at most {FIELD_LIMIT} characters)"
                )
            if lines:
                self._lines, self._next = lines, 0
                return


class _Outcomes:
    """What has been read so far: blocks of rows, each compressed as it comes."""

    def __init__(self):
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.rows = 0  # data rows (zero counts included)
        self.total = 0  # sequences (the sum of the counts), checked by the readers

    def add(self, h: np.ndarray, t: np.ndarray, c: np.ndarray | None) -> None:
        """Add checked rows."""
        if h.size:
            self.parts.append(_compress(h, t, c))
            self.rows += h.size

    def result(self, path) -> BinomialData:
        if self.rows == 0:
            raise ValueError(f"{path}: no data rows after the header")
        if self.total == 0:
            raise ValueError(f"{path}: every count is 0, no sequences")
        if len(self.parts) == 1:
            return BinomialData._trusted(*self.parts[0], path)
        h, t, c = (np.concatenate(arrays) for arrays in zip(*self.parts, strict=True))
        self.parts = []
        return BinomialData._trusted(*_compress(h, t, c), path)


class _Rows(_Outcomes):
    """The rows as read, in the file's order, not compressed (for per-row output)."""

    def add(self, h: np.ndarray, t: np.ndarray, c: np.ndarray | None) -> None:
        """Add checked rows."""
        if h.size:
            self.parts.append((h, t, np.ones_like(h) if c is None else c))
            self.rows += h.size

    def result(self, path):
        if self.rows == 0:
            raise ValueError(f"{path}: no data rows after the header")
        return tuple(np.concatenate(arrays) for arrays in zip(*self.parts, strict=True))


def _read_csv(fh, path, sink: type[_Outcomes] = _Outcomes):
    lines = _Lines(fh, path, 0, 0)
    header_line, header = _read_header(lines, path)
    names = [cell.strip().lower() for cell in header]
    _check_header(names, path, header_line)
    out = sink()
    _read_body(fh, path, names, out, lines.offset, lines.line)
    return out.result(path)


def load_rows(spec: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows of DATA in their order: ``(heads, trials, counts)``, one entry per row.

    ``counts`` is 1 for every row of a ``heads,trials`` file. Read and checked as
    :func:`load_data` reads them (the same errors); used to write per-row output such as
    ``em fit --assignments``.
    """
    if str(spec) == "chapter":
        h = np.asarray(CHAPTER_HEADS, dtype=np.int64)
        return h, np.full(h.size, CHAPTER_TRIALS, dtype=np.int64), np.ones_like(h)
    path = os.fspath(spec)
    with _open_regular(path) as fh:
        try:
            return _read_csv(fh, path, _Rows)
        except MemoryError:
            raise ValueError(f"DATA: not enough memory to read {path!r}") from None
        except OSError as exc:
            raise ValueError(f"DATA: cannot read {path!r}: {exc.strerror or exc}") from None


def _csv_error(path, line: int, exc: csv.Error) -> ValueError:
    message = str(exc)
    if "field larger than field limit" in message:
        message = f"a field is longer than {FIELD_LIMIT} characters"
    return ValueError(f"{path}: line {line}: {message}")


def _next_row(reader, lines: _Lines, path) -> tuple[int, list[str]] | None:
    """The next row that is not blank, with the line it starts on; None at the end."""
    while True:
        start = lines.line + 1
        try:
            row = next(reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            raise _csv_error(path, lines.line, exc) from None
        if row and max(map(len, row)) > FIELD_LIMIT:  # if csv.field_size_limit was raised
            raise ValueError(
                f"{path}: line {start}: a field is longer than {FIELD_LIMIT} characters"
            )
        if any(map(str.strip, row)):
            return start, row


def _read_header(lines: _Lines, path) -> tuple[int, list[str]]:
    found = _next_row(csv.reader(lines), lines, path)
    if found is None:
        raise ValueError(f"{path}: the file is empty (expected a header 'heads,trials')")
    return found


def _check_header(names: list[str], path, line: int) -> None:
    for name in names:
        if name not in _COLUMNS:
            raise ValueError(
                f"{path}: line {line}: unknown column {name!r} "
                "(expected heads,trials or heads,trials,count)"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: line {line}: a column is named twice: {','.join(names)}")
    for needed in ("heads", "trials"):
        if needed not in names:
            raise ValueError(
                f"{path}: line {line}: missing column {needed!r} (header is {','.join(names)!r})"
            )


# ---------------------------------------------------------------------- columnar
def _read_body(fh, path, names, out: _Outcomes, offset: int, line: int) -> None:
    """Read the rows from ``offset`` (just after line ``line``) to the end of the file.

    Blocks of plain rows go through pyarrow. A block it cannot read exactly is retried in
    small blocks, and a small one that fails is read line by line (which names the line of
    an error); blocks then grow again, doubling, after each block pyarrow read.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    cols = [f"c{j}" for j in range(len(names))]
    options = {
        "read_options": pacsv.ReadOptions(column_names=cols, use_threads=True),
        "convert_options": pacsv.ConvertOptions(column_types=dict.fromkeys(cols, pa.int64())),
    }
    size, mark = _BLOCK, (offset, line)  # mark: a byte offset whose line number is known
    while True:
        block, eof = _read_block(fh, offset, size)
        if block is not None:
            batches = _parse_block(block, options, pa, pacsv)
            if batches is not None and _take_block(batches, names, out):
                if eof:
                    return
                offset, size = offset + len(block), min(2 * size, _BLOCK)
                continue
        if size > _SMALL_BLOCK:
            size = _SMALL_BLOCK
            continue
        line = mark[1] + _count_lines(fh, mark[0], offset)
        until = offset + (len(block) if block else 1)
        mark = _read_rows(fh, path, names, out, offset, line, until)
        if mark is None:
            return
        offset = mark[0]


def _read_block(fh, offset: int, size: int) -> tuple[bytes | None, bool]:
    """Whole lines from ``offset``, at most ``size`` bytes, and whether the file ends there.

    None for the block when a line is longer than ``size``.
    """
    fh.seek(offset)
    parts, got = [], 0
    while got < size and (chunk := fh.read(size - got)):
        parts.append(chunk)
        got += len(chunk)
    buf = b"".join(parts)
    if got < size:
        return buf, True
    cut = buf.rfind(b"\n") + 1
    return (buf[:cut], False) if cut else (None, False)


def _count_lines(fh, start: int, end: int) -> int:
    """Line ends between two byte offsets (in blocks read by pyarrow, only LF ends one)."""
    fh.seek(start)
    lines = 0
    while start < end:
        chunk = fh.read(min(_BLOCK, end - start))
        if not chunk:
            break
        lines += chunk.count(b"\n")
        start += len(chunk)
    return lines


def _parse_block(block: bytes, options: dict, pa, pacsv) -> list[list[np.ndarray]] | None:
    """A block of plain rows as batches of int64 columns, or None if it has other rows."""
    if block.translate(None, _COLUMNAR_BYTES):
        return None
    if b"\r" in block and block.count(b"\r") != block.count(b"\r\n"):
        return None  # lone CR line ends: line numbers are counted from LF
    try:
        table = pacsv.read_csv(pa.py_buffer(block), **options)
    except pa.ArrowInvalid:  # a row of the wrong length, an empty or out-of-range value
        return None
    if any(col.null_count for col in table.columns):
        return None
    return [[_int64_array(col) for col in batch.columns] for batch in table.to_batches()]


def _int64_array(arr) -> np.ndarray:
    """An Arrow int64 array without nulls as a numpy view of its data buffer.

    (``to_numpy`` would import pandas, a second or so, to look for pandas types.)
    """
    return np.frombuffer(arr.buffers()[1], np.int64, len(arr), arr.offset * 8)


def _take_block(batches: list[list[np.ndarray]], names: list[str], out: _Outcomes) -> bool:
    """Add a block's rows if every one is valid; False (nothing added) if one is not."""
    hi, ti = names.index("heads"), names.index("trials")
    ci = names.index("count") if "count" in names else None
    total = 0
    for cols in batches:
        h, t = cols[hi], cols[ti]
        c = None if ci is None else cols[ci]
        if h.size == 0:
            continue
        if _min(t) < 1 or _max(t) > MAX_TRIALS or _min(h) < 0 or (h > t).any():
            return False
        if c is None:
            total += h.size
        elif _min(c) < 0 or _max(c) > MAX_SEQUENCES or c.sum(dtype=np.float64) > 2.0**62:
            return False
        else:
            total += int(c.sum())  # exact: below 2^62 + rounding
    if out.total + total > MAX_SEQUENCES:
        return False
    out.total += total
    for cols in batches:
        out.add(cols[hi], cols[ti], None if ci is None else cols[ci])
    return True


# ---------------------------------------------------------------------- line by line
def _read_rows(fh, path, names, out: _Outcomes, offset: int, line: int, until: int):
    """Read, check and add rows from ``offset`` (just after line ``line``) on.

    Stops at the end of the file (returns None) or after the first row ending at or past
    byte ``until`` (returns the offset and line number there).
    """
    lines = _Lines(fh, path, offset, line)
    reader = csv.reader(lines)
    width, has_count = len(names), "count" in names
    hi, ti = names.index("heads"), names.index("trials")
    ci = names.index("count") if has_count else None
    rows: list[tuple[int, int, int]] = []
    try:
        while lines.offset < until:
            found = _next_row(reader, lines, path)
            if found is None:
                return None
            number, row = found
            if len(row) != width:
                raise ValueError(f"{path}: line {number}: expected {width} values, got {len(row)}")
            value = [
                _parse_cell(cell, name, path, number) for name, cell in zip(names, row, strict=True)
            ]
            h, t, c = value[hi], value[ti], 1 if ci is None else value[ci]
            _check_row(h, t, c, out.total + c, path, number)
            out.total += c
            rows.append((h, t, c))
            if len(rows) == _FLUSH:
                _flush(rows, has_count, out)
        return lines.offset, lines.line
    finally:
        _flush(rows, has_count, out)


def _flush(rows: list, has_count: bool, out: _Outcomes) -> None:
    if rows:
        arr = np.array(rows, dtype=np.int64)
        out.add(arr[:, 0], arr[:, 1], arr[:, 2] if has_count else None)
        rows.clear()


def _parse_cell(text: str, name: str, path, line: int) -> int:
    if text.isdigit() and text.isascii() and len(text) <= 30:  # most cells: plain digits
        return int(text)
    try:
        value = _text_to_int(text)
    except _TooLarge:
        s = text.strip()
        if s.startswith("-"):
            raise ValueError(f"{path}: line {line}: {name} = {_short(s)} is negative") from None
        limit = _COUNT_LIMIT if name == "count" else _TRIALS_LIMIT
        raise ValueError(f"{path}: line {line}: {name} = {_short(s)} exceeds {limit}") from None
    except ValueError:
        raise ValueError(
            f"{path}: line {line}: {name} = {_short(text.strip())!r} is not a non-negative integer"
        ) from None
    if value < 0:
        raise ValueError(f"{path}: line {line}: {name} = {value} is negative")
    return value


def _check_row(h: int, t: int, c: int, total: int, path, line: int) -> None:
    if t < 1:
        raise ValueError(f"{path}: line {line}: trials = {t}, must be >= 1")
    if t > MAX_TRIALS:
        raise ValueError(f"{path}: line {line}: trials = {t} exceeds {_TRIALS_LIMIT}")
    if h > t:
        raise ValueError(f"{path}: line {line}: heads = {h} exceeds trials = {t}")
    if c > MAX_SEQUENCES:
        raise ValueError(f"{path}: line {line}: count = {c} exceeds {_COUNT_LIMIT}")
    if total > MAX_SEQUENCES:
        raise ValueError(
            f"{path}: line {line}: the counts up to this line add up to more than "
            f"{MAX_SEQUENCES} (2^53 - 1) sequences, the most EM counts exactly"
        )
