"""``python -m em``: output, JSON keys and one-line errors with exit status 2."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import em.cli
from em.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_chapter_command_prints_the_tables(capsys):
    code, out, err = run(capsys, "chapter")
    assert code == 0 and err == ""
    for text in (
        "Table 6.1",
        "Table 6.2",
        "Table 6.3",
        "Table 6.4",
        "(6.10)",
        "(6.14)",
        "0.5674795",
        "0.3337246",
        "0.3536485",
        "converged after",
    ):
        assert text in out


def test_fit_json_has_the_documented_keys(capsys):
    code, out, _ = run(
        capsys,
        "fit",
        "chapter",
        "--components",
        "3",
        "--restarts",
        "4",
        "--seed",
        "2",
        "--prior-weights",
        "2",
        "--prior-p",
        "2,2",
        "--json",
    )
    assert code == 0
    res = json.loads(out)
    for key in (
        "weights",
        "p",
        "log_likelihood",
        "log_posterior",
        "n_iter",
        "converged",
        "trace",
        "restarts",
        "optima",
        "warnings",
    ):
        assert key in res
    assert len(res["restarts"]) == 4 and res["log_posterior"] is not None
    for r in res["restarts"]:
        assert {"log_likelihood", "weights", "p", "n_iter", "converged"} <= set(r)
    for o in res["optima"]:
        assert {"log_likelihood", "weights", "p", "fraction"} <= set(o)
    assert res["p"] == sorted(res["p"])
    assert res["trace"][-1] == pytest.approx(res["log_posterior"])


def test_fit_json_is_reproducible(capsys):
    argv = ["fit", "chapter", "--components", "2", "--seed", "5", "--json"]
    _, first, _ = run(capsys, *argv)
    _, second, _ = run(capsys, *argv)
    assert first == second


def test_fit_table_with_init_and_fixed_weights(capsys, tmp_path):
    path = tmp_path / "coins.csv"
    path.write_text("heads,trials\n5,10\n9,10\n8,10\n4,10\n7,10\n")
    code, out, _ = run(
        capsys,
        "fit",
        str(path),
        "--components",
        "2",
        "--init-weights",
        "0.5,0.5",
        "--init-p",
        "0.6,0.5",
        "--fix",
        "weights",
    )
    assert code == 0
    assert "0.5000000   0.5" in out and "log-likelihood" in out and "distinct optima" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["fit", "chapter", "--components", "0"],
            "--components must be an integer >= 1 or a range like 1-4, got '0'",
        ),
        (["fit", "chapter", "--components", "two"], "--components must be an integer >= 1"),
        (["fit", "chapter"], "the following arguments are required: --components"),
        (["fit", "chapter", "--components", "2", "-K", "2"], "unrecognized arguments: -K 2"),
        (
            ["fit", "chapter", "--components", "2", "--init-weights", "0.3,0.3"],
            "--init-weights must sum to 1",
        ),
        (
            ["fit", "chapter", "--components", "2", "--init-weights", "0.5,x"],
            "--init-weights must be comma-separated numbers",
        ),
        (
            ["fit", "chapter", "--components", "2", "--init-p", "0.5,1.2"],
            r"--init-p must lie in \[0, 1\]",
        ),
        (
            ["fit", "chapter", "--components", "2", "--init-p=-0.1,0.5"],
            r"--init-p must lie in \[0, 1\]",
        ),
        (["fit", "chapter", "--components", "2", "--prior-p", "2"], "--prior-p must be two"),
        (
            ["fit", "chapter", "--components", "2", "--prior-p", "a,b"],
            "--prior-p must be comma-separated numbers",
        ),
        (["fit", "chapter", "--components", "2", "--prior-weights", "-1"], "must be > 0"),
        (
            ["fit", "chapter", "--components", "2", "--prior-weights", "1,2,3"],
            "--prior-weights must be a number or 2 numbers",
        ),
        (["fit", "chapter", "--components", "2", "--tol", "abc"], "--tol must be a number"),
        (["fit", "chapter", "--components", "2", "--max-iter", "-5"], "--max-iter must be"),
        (["fit", "chapter", "--components", "2", "--restarts", "1.5"], "--restarts must be"),
        (["fit", "chapter", "--components", "2", "--fix", "both"], "invalid choice: 'both'"),
        (["fit", "chapter", "--components", "2", "--fix", "p"], "--fix p needs --init-p"),
        (["fit", "missing.csv", "--components", "2"], "no such file 'missing.csv'"),
        (["chapter", "--tol", "-1"], "--tol must be a finite number >= 0"),
    ],
)
def test_bad_input_is_one_line_and_status_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert __import__("re").search(message, err), err


def test_bad_csv_row_through_the_cli(capsys, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("heads,trials\n3,10\n12,10\n")
    code, _, err = run(capsys, "fit", str(path), "--components", "2")
    assert code == 2 and err == f"error: {path}: line 3: heads = 12 exceeds trials = 10\n"


def test_module_entry_point_exit_status_and_no_traceback(tmp_path):
    ok = subprocess.run(
        [sys.executable, "-m", "em", "fit", "chapter", "--components", "1"],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "0.4150000" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "em", "fit", "chapter", "--components", "-1"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().count("\n") == 0


# ----------------------------------------------------------------------- hostile input
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["fit", "chapter", "--components", "2", "--restarts", "1_0"], "--restarts must be an"),
        (["fit", "chapter", "--components", "2", "--seed", "0x1"], "--seed must be an integer"),
        (["fit", "chapter", "--components", "2", "--max-iter", "\u0663"], "--max-iter must be"),
        (["fit", "chapter", "--components", "2", "--tol", "1_0"], "--tol must be a number"),
        (["fit", "chapter", "--components", "2", "--tol", "nan"], "--tol must be a number"),
        (["fit", "chapter", "--components", "2", "--init-p", "0.5,0_5"], "comma-separated"),
        (["fit", "chapter", "--components", "2", "--init-p", "0.5,nan"], "must be finite"),
        (["fit", "/dev/null", "--components", "2"], "'/dev/null' is a character device"),
        (["fit", "chapter", "--components", "1000000"], "--components must be at most 10"),
    ],
)
def test_hostile_arguments_are_one_line_and_status_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("error: ") and message in err, err


def test_plain_integer_flags_still_work(capsys):
    code, out, _ = run(capsys, "fit", "chapter", "--components", "2", "--restarts", "+3")
    assert code == 0 and "3 runs" in out


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("1,4000000000\n2,10\n3,10\n", "line 2: trials = 4000000000 exceeds"),
        ("1,100000000000\n2,10\n12,10\n", "line 2: trials = 100000000000 exceeds"),
        ("2,10\n12,10\n1,1e11\n", "line 3: heads = 12 exceeds trials = 10"),
        ("5_0,100\n", "line 2: heads = '5_0' is not a non-negative integer"),
    ],
)
def test_large_and_odd_values_in_a_file(capsys, tmp_path, rows, message):
    path = tmp_path / "big.csv"
    path.write_text("heads,trials\n" + rows)
    code, out, err = run(capsys, "fit", str(path), "--components", "2")
    assert code == 2 and out == "" and err.startswith(f"error: {path}: {message}")
    assert err.count("\n") == 1


def test_count_near_2_63_is_refused_up_front(capsys, tmp_path):
    """It used to exit 1 with 'internal error: EM objective decreased'."""
    path = tmp_path / "c.csv"
    path.write_text(f"heads,trials,count\n3,10,{2**63 - 1}\n4,10,5\n")
    code, _, err = run(capsys, "fit", str(path), "--components", "2")
    assert code == 2 and "line 2: count = 9223372036854775807 exceeds" in err


def test_excel_csv_with_a_byte_order_mark(capsys, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfheads,trials\r\n3,10\r\n5,10\r\n")
    code, out, _ = run(capsys, "fit", str(path), "--components", "1")
    assert code == 0 and "2 sequences" in out


# ----------------------------------------------------------------------- Ctrl-C
def test_keyboard_interrupt_is_status_130_and_one_line(capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(em.cli, "fit_data", interrupted)
    code, out, err = run(capsys, "fit", "chapter", "--components", "2")
    assert (code, out, err) == (130, "", "interrupted\n")


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc")
def test_sigint_during_python_m_em_exits_130_without_a_traceback(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("heads,trials\n3,10\n5,10\n7,10\n2,10\n")
    argv = [sys.executable, "-m", "em", "fit", str(path), "--components", "3"]
    # a fit that runs for minutes: the interrupt must arrive while it runs
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # child: SIG_DFL
    try:
        proc = subprocess.Popen(
            argv + ["--restarts", "1000000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        # em imports pyarrow inside load_data: once it is mapped, main() is running
        deadline = time.monotonic() + 120
        while "libarrow" not in Path(f"/proc/{proc.pid}/maps").read_text():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130 and out == b"" and err == b"interrupted\n"


def test_assignments_give_which_coin_per_input_row(capsys, tmp_path):
    """--assignments: one row per input row, in order, Bayes' rule at the best fit."""
    import csv

    import numpy as np
    from scipy.stats import binom

    from em import fit_data, load_data

    data_csv = tmp_path / "d.csv"
    rows = [(0, 10), (10, 10), (3, 12), (9, 12), (1, 10), (8, 10), (2, 10), (9, 10)]
    data_csv.write_text("heads,trials\n" + "".join(f"{h},{t}\n" for h, t in rows))
    out = tmp_path / "a.csv"
    assert main(["fit", str(data_csv), "--components", "2", "--assignments", str(out)]) == 0
    capsys.readouterr()
    got = list(csv.reader(out.read_text().splitlines()))
    assert got[0] == ["heads", "trials", "P(coin 1)", "P(coin 2)"]
    assert [(int(r[0]), int(r[1])) for r in got[1:]] == rows
    res = fit_data(load_data(data_csv), 2)
    for (h, t), r in zip(rows, got[1:], strict=True):
        joint = res.weights * binom.pmf(h, t, res.p)
        np.testing.assert_allclose([float(r[2]), float(r[3])], joint / joint.sum(), rtol=1e-12)
    counted = tmp_path / "c.csv"
    counted.write_text("heads,trials,count\n0,10,3\n10,10,2\n")
    assert main(["fit", str(counted), "--components", "2", "--assignments", str(out)]) == 0
    capsys.readouterr()
    got = list(csv.reader(out.read_text().splitlines()))
    assert got[0][:3] == ["heads", "trials", "count"] and [r[2] for r in got[1:]] == ["3", "2"]


def test_assignments_errors_are_one_line(capsys, tmp_path):
    code = main(["fit", "chapter", "--components", "1-2", "--assignments", str(tmp_path / "a")])
    assert code == 2 and "--assignments needs a single --components K" in capsys.readouterr().err
    code = main(["fit", "chapter", "--components", "2", "--assignments", "/proc/x/a.csv"])
    err = capsys.readouterr().err
    assert (
        code == 2 and err.startswith("error: --assignments: cannot write") and err.count("\n") == 1
    )
