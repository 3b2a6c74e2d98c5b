"""``python -m em``: output, JSON keys and one-line errors with exit status 2."""

import json
import subprocess
import sys

import pytest

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
