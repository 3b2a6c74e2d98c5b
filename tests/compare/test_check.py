"""``python -m compare check`` on a correct EM step and on typical wrong ones."""

import subprocess
import sys

import pytest

from compare.check import run_checks
from compare.cli import main

IMPLS = "tests/compare/student/impls.py"


def failed(results):
    return [r.name for r in results if not r.passed]


def test_a_correct_step_passes_everything():
    results = run_checks(f"{IMPLS}:correct")
    assert len(results) == 23 and failed(results) == []


def test_weights_divided_by_20_fail_off_the_chapter():
    """The chapter has N = 20, so only other data sets can show it."""
    bad = failed(run_checks(f"{IMPLS}:divided_by_20"))
    assert not any(name.startswith("chapter") for name in bad)
    assert "synthetic A (N=137, 12 flips, K=2): weights on the simplex, biases in [0, 1]" in bad
    assert "synthetic B (N=250, 5-30 flips, K=3): one step equals the reference EM" in bad


def test_biases_not_normalised_by_the_trials():
    results = run_checks(f"{IMPLS}:not_normalised_by_trials")
    bad = failed(results)
    assert "chapter Table 6.4: updated biases" in bad
    assert "chapter (6.14): updated weights" not in bad  # the weights are right
    table = next(r for r in results if r.name == "chapter Table 6.4: updated biases")
    assert "0.3536485" in table.expected and "3.5364" in table.obtained


def test_swapped_axis():
    bad = failed(run_checks(f"{IMPLS}:swapped_axis"))
    assert {"chapter (6.14): updated weights", "chapter Table 6.4: updated biases"} <= set(bad)


def test_raising_wrong_shapes_and_hanging_are_reported_not_fatal():
    raised = run_checks(f"{IMPLS}:raises")
    assert all(not r.passed for r in raised)
    assert "ZeroDivisionError: oops" in raised[0].obtained
    shaped = run_checks(f"{IMPLS}:wrong_shape")
    assert "expected shapes (3,) and (3,), got (4,) and (3,)" in shaped[0].obtained
    hung = run_checks(f"{IMPLS}:hangs", timeout=0.5)
    assert "no answer within 0.5 s" in hung[0].obtained
    assert all(not r.passed for r in hung)


def test_cli_exit_status_and_template(capsys):
    assert main(["check", f"{IMPLS}:correct"]) == 0
    assert "23 passed, 0 failed" in capsys.readouterr().out
    assert main(["check", f"{IMPLS}:swapped_axis"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  chapter (6.14): updated weights" in out and "expected:" in out
    # the student template: documented, not yet written
    assert main(["check", "examples/em_step_template.py:em_step"]) == 1
    assert "NotImplementedError" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("impls.py", "expected PATH_OR_MODULE:FUNCTION"),
        ("missing.py:em_step", "cannot load missing.py:em_step"),
        (f"{IMPLS}:nothing", "has no function 'nothing'"),
    ],
)
def test_cli_bad_spec_is_one_line_and_status_2(capsys, spec, message):
    assert main(["check", spec]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_module_spec_through_the_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "compare", "check", "tests.compare.student.impls:correct"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and "23 passed, 0 failed" in out.stdout
