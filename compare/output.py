"""Folders on disk: nothing the suite did not write is removed, nothing is half written.

A report folder DIR is written into a temporary folder ``.NAME.tmp-PID`` beside it and
moved into place at the end, so an interrupted run leaves no half report. Every folder
the suite writes carries a marker file, :data:`MARKER`, listing the files it wrote;
``--force`` replaces only such a folder (or an empty one), and only when it holds nothing
else. The rules, all checked before any data are read:

- ``--out`` must not contain the inputs, nor be the current folder or one of its parents;
- a symbolic link given as ``--out`` of a report is refused (the report replaces its
  folder, and which of the link or its target is meant is the user's call); a study, which
  writes into its folder, follows the link;
- the folder's name leaves room for the suite's ``.NAME.tmp-PID`` beside it, and the
  folder can be created (no file in the way, a writable parent).

Writers of one DIR are serialised by ``fcntl.flock`` on ``.NAME.lock`` beside it: a second
run gets a one-line error at once, and the lock file is removed when the run ends.

Recovery: with the lock held, every run first cleans up after a killed one. Replacing an
existing report takes two renames (DIR to ``.NAME.old-PID``, the new report to DIR); a
run killed between them leaves no DIR, and the next run renames the old report back. A
leftover ``.NAME.old-*`` beside an existing DIR and stale ``.NAME.tmp-*`` folders are
removed, but only when they carry the marker (or are empty). Folders of this kind left
by versions before the marker (``.NAME.old.XXXXXXXX``, ``.NAME.XXXXXXXX``) are recognised
by the suite's ``manifest.json``.

Linux semantics (``rename``, ``flock``) are assumed; Windows is not a target.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["MARKER", "check_out_dir", "locked", "resolve_out", "show", "staging", "write_marker"]

MARKER = ".binomial-mixture-report"
SUITE = "binomial-mixture-suite"
# ".NAME.probe-" (12 more bytes than NAME) and a pid (at most 7 digits) must fit; the
# temporary ".NAME.tmp-PID" and ".NAME.old-PID" are shorter.
NAME_ROOM = 17
_LEGACY_SUFFIX = re.compile(r"[a-z0-9_]{8}")  # tempfile.mkdtemp's names, before the marker


# ---------------------------------------------------------------------- checking --out
def show(out) -> str:
    """``out`` quoted for a one-line message, its middle elided when it is long."""
    text = os.fspath(out)
    if len(text) > 60:
        text = f"{text[:28]}...{text[-28:]}"
    return repr(text)


def resolve_out(out, *, replace: bool = True, inputs: Iterable = ()) -> Path:
    """The folder ``out`` names, absolute, after the checks that need no writing.

    Parameters
    ----------
    out : str or os.PathLike
        The ``--out`` argument.
    replace : bool
        True for a report (its folder is replaced as a whole: a symbolic link, the current
        folder and its parents are refused); False for a study, which writes into its folder
        (a link is followed).
    inputs : iterable of path-like
        Input files; a folder containing one of them is refused.

    Returns
    -------
    pathlib.Path
        The folder: its parent with symbolic links resolved, and its name.

    Raises
    ------
    ValueError
        One line naming ``--out``, for every case above, a name too long for the file
        system or a parent that is a file or cannot be written.
    """
    text = os.fspath(out)
    shown = show(text)
    if not text.strip():
        raise ValueError("--out: the folder name is empty")
    path = Path(text)
    if path.name in ("", ".", ".."):
        target = Path(os.path.realpath(path))
    else:
        target = Path(os.path.realpath(path.parent)) / path.name
    if not replace and os.path.islink(target):
        target = Path(os.path.realpath(target))
    _check_lengths(target, shown)
    if replace:
        _check_replaceable(target, shown)
    _check_inputs(target, shown, inputs)
    _check_creatable(target, shown)
    return target


def _check_lengths(target: Path, shown: str) -> None:
    name_max, path_max = _limits(target)
    for part in target.parts[1:]:
        if len(os.fsencode(part)) > name_max:
            raise ValueError(
                f"--out: {shown}: the name {part[:20] + '...'!r} is {len(os.fsencode(part))} "
                f"bytes long; the file system allows {name_max}"
            )
    if len(os.fsencode(target.name)) > name_max - NAME_ROOM:
        raise ValueError(
            f"--out: {shown}: the folder name is {len(os.fsencode(target.name))} bytes long; at "
            f"most {name_max - NAME_ROOM} fit (the file system allows {name_max}, and the suite "
            f"adds up to {NAME_ROOM} for its temporary folder beside it)"
        )
    if len(os.fsencode(str(target))) + NAME_ROOM >= path_max:
        raise ValueError(f"--out: {shown}: the path is too long for the file system")


def _limits(target: Path) -> tuple[int, int]:
    """NAME_MAX and PATH_MAX of the nearest existing folder above ``target``."""
    here = target.parent
    while not here.is_dir() and here != here.parent:
        here = here.parent
    try:
        return os.pathconf(here, "PC_NAME_MAX"), os.pathconf(here, "PC_PATH_MAX")
    except (OSError, ValueError):
        return 255, 4096


def _check_replaceable(target: Path, shown: str) -> None:
    cwd = Path(os.path.realpath(os.getcwd()))
    if target == target.parent or cwd.is_relative_to(os.path.realpath(target)):
        raise ValueError(
            f"--out: {shown} is the current folder or one of its parents, which a report "
            "cannot replace; give a folder of its own, e.g. reports/NAME"
        )
    if os.path.islink(target):
        raise ValueError(
            f"--out: {shown} is a symbolic link (to {os.readlink(target)!r}); a report "
            "replaces its folder and the suite does not replace links: give the folder itself"
        )


def _check_inputs(target: Path, shown: str, inputs: Iterable) -> None:
    real = Path(os.path.realpath(target))
    for inp in inputs:
        if os.path.exists(inp) and Path(os.path.realpath(inp)).is_relative_to(real):
            raise ValueError(
                f"--out: {shown} contains the input {os.fspath(inp)!r}; give another folder"
            )


def _check_creatable(target: Path, shown: str) -> None:
    """A folder that exists is writable; otherwise its nearest existing parent is."""
    if target.is_dir():
        if not os.access(target, os.W_OK):
            raise ValueError(f"--out: {shown} is not writable")
        if not os.access(target, os.R_OK | os.X_OK):
            raise ValueError(f"--out: {shown} is not readable")
        return
    if os.path.lexists(target):
        return  # a file: refused by check_contents, with its own message
    here = target.parent
    while not os.path.lexists(here):
        here = here.parent
    if not here.is_dir():
        raise ValueError(f"--out: {shown} cannot be created: {str(here)!r} is a file, not a folder")
    probe = here / f".{target.name}.probe-{os.getpid()}"  # not a name recovery removes
    try:
        os.mkdir(probe)
    except FileExistsError:
        return
    except OSError as exc:
        raise ValueError(
            f"--out: {shown} cannot be created: cannot write in {str(here)!r} ({exc.strerror})"
        ) from None
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(probe)


def check_out_dir(out, force: bool = False, *, inputs: Iterable = ()) -> Path:
    """Check ``--out`` of a report before any work is done; returns the folder.

    Besides :func:`resolve_out`'s checks: another run writing into the folder, or a
    non-empty folder without ``force``, or with ``force`` a folder holding anything the
    suite did not write, is refused. Leftovers of a killed run are recovered first (see
    the module's docstring), under the lock, when the parent folder exists.

    Parameters
    ----------
    out : str or os.PathLike
        The ``--out`` argument.
    force : bool
        Replace a report folder the suite wrote.
    inputs : iterable of path-like
        Input files, which ``out`` must not contain.

    Returns
    -------
    pathlib.Path
        The folder, as :func:`resolve_out` gives it.

    Raises
    ------
    ValueError
        One line naming ``--out``.
    """
    target = resolve_out(out, inputs=inputs)
    if target.parent.is_dir():
        with locked(target, out):
            recover(target)
            check_contents(target, out, force)
    return target


def check_contents(target: Path, out, force: bool) -> None:
    """Refuse a file, a non-empty folder without ``force``, or a folder that is not ours."""
    shown = show(out)
    if os.path.lexists(target) and not target.is_dir():
        raise ValueError(f"--out: {shown} exists and is not a folder")
    if not target.is_dir() or not any(target.iterdir()):
        return
    foreign = _foreign(target)
    if foreign is not None:
        raise ValueError(
            f"--out: {shown} is not empty and holds {foreign!r}, which this suite did not "
            "write; give another folder (--force replaces only report folders it wrote)"
        )
    if not force:
        raise ValueError(f"--out: {shown} holds an earlier report; give --force to replace it")


def _foreign(folder: Path) -> str | None:
    """The first entry of ``folder`` the suite did not write, or None."""
    written = _written(folder)
    if written is None:
        return next(iter(sorted(p.name for p in folder.iterdir())))
    parents = {str(parent) for name in written for parent in Path(name).parents}
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        for name in sorted(dirs):
            path = rel / name
            if os.path.islink(folder / path):
                files.append(name)
            elif str(path) not in parents:
                return str(path)
        for name in sorted(files):
            if str(rel / name) not in written:
                return str(rel / name)
    return None


# ---------------------------------------------------------------------- the marker
def write_marker(folder: Path, *, complete: bool = True) -> None:
    """Mark ``folder`` as written by the suite, listing the files in it when complete."""
    files = []
    if complete:
        files = sorted(
            str(p.relative_to(folder))
            for p in folder.rglob("*")
            if not p.is_dir() or p.is_symlink()
        )
    text = json.dumps({"written_by": SUITE, "complete": complete, "files": files}, indent=2)
    (folder / MARKER).write_text(text + "\n")


def _written(folder: Path) -> set[str] | None:
    """The files the suite wrote into ``folder`` (its marker's list), or None if not ours."""
    try:
        info = json.loads((folder / MARKER).read_text())
    except FileNotFoundError:
        return _legacy_written(folder)
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or info.get("written_by") != SUITE:
        return None
    files = info.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return set(files) | {MARKER}


def _legacy_written(folder: Path) -> set[str] | None:
    """A report written before the marker: its manifest.json names the suite and the files."""
    try:
        info = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not isinstance(info.get("packages"), dict):
        return None
    if SUITE not in info["packages"]:
        return None
    files = info.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return set(files) | {"manifest.json"}


def _ours(folder: Path) -> bool:
    """A leftover the suite wrote: it carries the marker (or a legacy manifest) or is empty."""
    if not folder.is_dir() or folder.is_symlink():
        return False
    try:
        return _written(folder) is not None or not any(folder.iterdir())
    except OSError:
        return False


def _remove(folder: Path) -> None:
    """Remove a folder of ours; the marker (and manifest) last, so a kill leaves it ours."""
    last = (folder / "manifest.json", folder / MARKER)
    for child in folder.iterdir():
        if child in last:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    for path in last:
        path.unlink(missing_ok=True)
    folder.rmdir()


# ---------------------------------------------------------------------- lock, recovery
@contextlib.contextmanager
def locked(target: Path, out=None) -> Iterator[None]:
    """Hold ``.NAME.lock`` beside ``target`` (``fcntl.flock``); a held lock is a ValueError.

    The lock file is removed on release; a run that finds the file replaced after locking
    it tries again, so removing it is safe.
    """
    shown = show(out if out is not None else target)
    path = target.parent / f".{target.name}.lock"
    fd = _acquire(path, shown)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)


def _acquire(path: Path, shown: str) -> int:
    busy = (
        f"--out: another run is writing {shown} (it holds {str(path)!r}); wait for it to "
        "finish or give another folder"
    )
    for _ in range(20):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise ValueError(
                f"--out: {shown}: cannot write in {str(path.parent)!r} ({exc.strerror})"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            here = os.stat(path)
        except BlockingIOError:
            os.close(fd)
            raise ValueError(busy) from None
        except FileNotFoundError:  # removed by the run that held it: try again
            os.close(fd)
            continue
        mine = os.fstat(fd)
        if (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino):
            return fd
        os.close(fd)
    raise ValueError(busy)


def _leftovers(target: Path) -> tuple[list[Path], list[Path]]:
    """Old reports and temporary folders of ``target`` beside it, that the suite wrote."""
    olds, tmps = [], []
    prefix = f".{target.name}."
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return [], []
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        rest = entry.name[len(prefix) :]
        if rest.startswith("old-") or (
            rest.startswith("old.") and _LEGACY_SUFFIX.fullmatch(rest[4:])
        ):
            olds.append(Path(entry.path))
        elif rest.startswith("tmp-") or _LEGACY_SUFFIX.fullmatch(rest):
            tmps.append(Path(entry.path))
    return [p for p in olds if _ours(p)], [p for p in tmps if _ours(p)]


def recover(target: Path) -> list[str]:
    """With the lock held, undo what a killed run left beside ``target``; say what was done.

    A missing folder is restored from the newest old report beside it; every other old
    report and temporary folder that the suite wrote is removed.
    """
    olds, tmps = _leftovers(target)
    done = []
    try:
        if olds and not os.path.lexists(target):
            newest = max(olds, key=lambda p: p.stat().st_ctime_ns)
            os.rename(newest, target)
            olds.remove(newest)
            done.append(f"restored {target.name} from {newest.name}")
        for path in olds + tmps:
            _remove(path)
            done.append(f"removed {path.name}")
    except OSError as exc:
        raise ValueError(
            f"--out: cannot clean up after an interrupted run beside {str(target)!r}: {exc}"
        ) from None
    return done


# ---------------------------------------------------------------------- writing
@contextlib.contextmanager
def staging(out, *, force: bool = False, inputs: Iterable = ()) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``out``; move it into place on success.

    Under the lock: recover, check as :func:`check_out_dir` does, create
    ``.NAME.tmp-PID`` (the usual permissions, from the umask) with the marker, and yield
    it. When the block ends without an exception the marker lists the files written and
    the folder replaces ``out``; on any exception (KeyboardInterrupt included) the
    temporary folder is removed and ``out`` is untouched.

    Parameters
    ----------
    out : str or os.PathLike
        The folder to write.
    force : bool
        Replace an earlier report of the suite.
    inputs : iterable of path-like
        Input files, which ``out`` must not contain.

    Yields
    ------
    pathlib.Path
        The temporary folder to write into.

    Raises
    ------
    ValueError
        One line naming ``--out``, as :func:`check_out_dir`.
    """
    target = resolve_out(out, inputs=inputs)
    _make_parents(target, out)
    with locked(target, out):
        recover(target)
        check_contents(target, out, force)
        tmp = _make_temp(target, out)
        try:
            yield tmp
            write_marker(tmp)
            _move_into_place(tmp, target, out)
        except BaseException:
            with contextlib.suppress(OSError):
                _remove(tmp)
            raise


def _make_parents(target: Path, out) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--out: {show(out)} cannot be created ({exc.strerror})") from None


def _make_temp(target: Path, out) -> Path:
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    try:
        os.mkdir(tmp)  # mode 0o777 less the umask (tempfile.mkdtemp would give 0o700)
    except OSError as exc:
        raise ValueError(
            f"--out: cannot create the temporary folder {str(tmp)!r} ({exc.strerror})"
        ) from None
    write_marker(tmp, complete=False)
    return tmp


def _move_into_place(tmp: Path, target: Path, out) -> None:
    """Two renames when ``target`` exists; a kill between them is undone by :func:`recover`."""
    shown = show(out)
    if not os.path.lexists(target):
        try:
            os.rename(tmp, target)
        except OSError as exc:
            raise ValueError(f"--out: cannot move the result into {shown} ({exc})") from None
        return
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    try:
        os.rename(target, old)
    except OSError as exc:
        raise ValueError(f"--out: cannot replace {shown} ({exc.strerror})") from None
    try:
        os.rename(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):  # else the next run restores it
            os.rename(old, target)
        raise ValueError(f"--out: cannot replace {shown} ({exc.strerror})") from None
    with contextlib.suppress(OSError):  # if this fails, the next run removes it
        _remove(old)
