"""Reading a big CSV: ``python -m em fit`` against pyarrow's reader plus ``em.fit``, side by side.

Both sides are whole processes given the same ``heads,trials`` file of 10^7 rows (10 flips
per sequence, a seeded two-coin mixture), K = 2 and the default options:

- ``em fit``: ``python -m em fit FILE --components 2``;
- ``pyarrow + em.fit``: a script that reads FILE with ``pyarrow.csv.read_csv`` and fits the
  arrays, ``em.fit(heads, trials, 2)``.

Both call the same fit, so the ratios are about reading. For each, the wall time and the
peak resident memory of the process (``os.wait4``'s ru_maxrss) over several repeats,
interleaved, after one untimed run of each (to warm the page cache); best and median.
Targets: ``em fit`` takes at most 2x the time and 1.5x the memory of the script. The
script's ``to_numpy`` imports pandas; a third line, for information, takes the columns
straight out of their Arrow buffers (no pandas), a tighter floor.

Run: ``.venv/bin/python benchmarks/bench_csv.py [--rows N] [--repeats R] [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SCRIPT = """\
import sys
import pyarrow.csv
import em
table = pyarrow.csv.read_csv(sys.argv[1])
res = em.fit(table["heads"].to_numpy(), table["trials"].to_numpy(), 2)
print(f"log-likelihood  {res.log_likelihood:.7f}")
"""

# The same without ``to_numpy``, which imports pandas (about 0.5 s and 60 MiB here): a
# tighter floor, printed for information (the target is against SCRIPT).
SCRIPT_NO_PANDAS = """\
import sys
import numpy as np
import pyarrow.csv
import em
table = pyarrow.csv.read_csv(sys.argv[1])
def column(name):
    chunks = table[name].chunks
    return np.concatenate([np.frombuffer(c.buffers()[1], np.int64, len(c), c.offset * 8)
                           for c in chunks])
res = em.fit(column("heads"), column("trials"), 2)
print(f"log-likelihood  {res.log_likelihood:.7f}")
"""


def write_csv(path: Path, rows: int, seed: int = 20261201) -> None:
    """``heads,trials`` rows of 10 flips from a seeded mixture (weights 0.4/0.6, p 0.3/0.7)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    coin = rng.random(rows) < 0.4
    heads = rng.binomial(10, np.where(coin, 0.3, 0.7))
    lines = np.array([f"{h},10\n".encode() for h in range(11)], dtype=object)
    with open(path, "wb") as fh:
        fh.write(b"heads,trials\n")
        for start in range(0, rows, 1 << 20):
            fh.write(b"".join(lines[heads[start : start + (1 << 20)]]))


def measure(argv: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MiB and stdout of one process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {err.decode()}")
    return wall, usage.ru_maxrss / 1024.0, out.decode()  # ru_maxrss: KiB on Linux


def loglik(text: str) -> str:
    m = re.search(r"log-likelihood\s+(\S+)", text)
    return m.group(1) if m else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10**7, help="rows of the CSV (10^7)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each (5)")
    parser.add_argument("--quick", action="store_true", help="10^6 rows, 3 repeats")
    parser.add_argument("--file", type=Path, help="use (or create) this CSV instead of a temp one")
    args = parser.parse_args()
    rows, repeats = (10**6, 3) if args.quick else (args.rows, args.repeats)
    import pyarrow

    print(
        f"python {platform.python_version()}, numpy {np.__version__}, pyarrow "
        f"{pyarrow.__version__}, {platform.machine()}, {os.cpu_count()} cores"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = args.file or Path(tmp) / "big.csv"
        if not path.exists():
            write_csv(path, rows)
        size = path.stat().st_size
        commands = {
            "python -m em fit": [sys.executable, "-m", "em", "fit", str(path), "--components", "2"],
            "pyarrow.csv.read_csv + em.fit": [sys.executable, "-c", SCRIPT, str(path)],
            "  the same without pandas": [sys.executable, "-c", SCRIPT_NO_PANDAS, str(path)],
        }
        results = {name: [] for name in commands}
        fits = {name: loglik(measure(argv)[2]) for name, argv in commands.items()}  # warm-up
        for _ in range(repeats):
            for name, argv in commands.items():
                results[name].append(measure(argv)[:2])
    print(
        f"{path.name}: {rows:.0e} rows of heads,trials ({size / 2**20:.0f} MiB), K = 2, "
        f"default options, {repeats} runs each (whole processes)"
    )
    print(f"    {'':32s}{'wall best':>10s}{'median':>8s}{'peak RSS best':>15s}{'median':>8s}")
    stats = {}
    for name, runs in results.items():
        wall, rss = (np.array(x) for x in zip(*runs, strict=True))
        stats[name] = (wall.min(), np.median(wall), rss.min(), np.median(rss))
        print(
            f"    {name:32s}{wall.min():>9.2f}s{np.median(wall):>7.2f}s"
            f"{rss.min():>12.0f} MiB{np.median(rss):>6.0f} MiB"
        )
    ours, ref = stats["python -m em fit"], stats["pyarrow.csv.read_csv + em.fit"]
    t_best, t_med = ours[0] / ref[0], ours[1] / ref[1]
    m_best, m_med = ours[2] / ref[2], ours[3] / ref[3]
    print(
        f"    time   em fit / script = {t_best:.2f} best, {t_med:.2f} median (target <= 2): "
        f"{'met' if t_best <= 2 else 'NOT met'}"
    )
    print(
        f"    memory em fit / script = {m_best:.2f} best, {m_med:.2f} median (target <= 1.5): "
        f"{'met' if m_best <= 1.5 else 'NOT met'}"
    )
    floor = stats["  the same without pandas"]
    print(
        f"    (against the script without pandas: time {ours[0] / floor[0]:.2f} best, "
        f"memory {ours[2] / floor[2]:.2f} best)"
    )
    same = len(set(fits.values())) == 1
    print(f"    same fit: log-likelihood {' vs '.join(fits.values())} ({'yes' if same else 'NO'})")


if __name__ == "__main__":
    main()
