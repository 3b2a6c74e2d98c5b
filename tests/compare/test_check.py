"""``python -m compare check``: grading, naming the slip, and a grader that cannot be fooled."""

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from compare import check
from compare.check import (
    SLIPS,
    format_output,
    format_results,
    grade,
    match_slip,
    parse_spec,
    run_checks,
    slipped_step,
)
from compare.cli import main
from em import MixtureParams, e_step, m_step

IMPLS = "tests/compare/student/impls.py"
ATTACKS = "tests/compare/student/attacks.py"
SYNTHETIC = ("synthetic A", "synthetic B", "synthetic C")


@functools.cache
def graded(name, spec=IMPLS, timeout=10.0, allow=False):
    return grade(f"{spec}:{name}", timeout=timeout, allow_suite_imports=allow)


def failed(results):
    return [r.name for r in results if not r.passed]


def slips_by_data_set(results):
    """{data set: slip key} over the failed results that name a slip."""
    return {r.name.split(" (")[0].split(":")[0]: r.slip.key for r in results if r.slip}


def cli(*args, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "compare", "check", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def processes_running(argument):
    """Processes whose command line is `sleep ARGUMENT`."""
    wanted = f"sleep\0{argument}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes() == wanted:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


# ---------------------------------------------------------------------- what it grades
def test_a_correct_step_passes_everything():
    results = graded("correct").results
    assert len(results) == 23 and failed(results) == []
    assert not any(r.slip for r in results)
    assert "Slip found" not in format_results(results)


def test_weights_divided_by_20_fail_off_the_chapter_and_are_named():
    """The chapter has N = 20, so only other data sets can show it."""
    results = graded("divided_by_20").results
    bad = failed(results)
    assert not any(name.startswith("chapter") for name in bad)
    assert "synthetic A (N=137, 12 flips, K=2): weights on the simplex, biases in [0, 1]" in bad
    assert "synthetic B (N=250, 5-30 flips, K=3): one step equals the reference EM" in bad
    assert slips_by_data_set(results) == dict.fromkeys(SYNTHETIC, "weights_divided")
    text = format_results(results)
    assert "slip:     the weights divided by 20 instead of the sum of the expected counts" in text
    assert "Footnote 8" in text and text.endswith("14 passed, 9 failed\n")


def test_biases_not_normalised_by_the_trials():
    results = graded("not_normalised_by_trials").results
    bad = failed(results)
    assert "chapter Table 6.4: updated biases" in bad
    assert "chapter (6.14): updated weights" not in bad  # the weights are right
    table = next(r for r in results if r.name == "chapter Table 6.4: updated biases")
    assert "0.3536485" in table.expected and "3.5364" in table.obtained
    assert table.slip.key == "not_by_trials"


def test_swapped_axis():
    results = graded("swapped_axis").results
    bad = failed(results)
    assert {"chapter (6.14): updated weights", "chapter Table 6.4: updated biases"} <= set(bad)
    assert set(slips_by_data_set(results).values()) == {"wrong_axis"}


@pytest.mark.parametrize(
    ("impl", "key"),
    [
        ("divided_by_20", "weights_divided"),
        ("no_weights_in_e_step", "no_weights"),
        ("swapped_axis", "wrong_axis"),
        ("hard_coded_trials", "trials_both"),
        ("hard_coded_trials_in_m_step", "trials_m"),
        ("hard_coded_trials_in_e_step", "trials_e"),
        ("not_normalised_by_trials", "not_by_trials"),
        ("swapped_return", "swapped"),
    ],
)
def test_each_slip_is_named_with_why(impl, key):
    results = graded(impl).results
    named = slips_by_data_set(results)
    assert named and set(named.values()) == {key}
    assert all(r.slip is not None for r in results if not r.passed and r.name[:11] in SYNTHETIC)
    text = format_results(results)
    why = SLIPS[key].why.split()[:4]
    assert "Slip found (" in text and " ".join(why) in " ".join(text.split())


def test_an_unknown_mistake_names_no_slip():
    results = graded("off_by_a_little").results
    assert failed(results) and not any(r.slip for r in results)
    assert "Slip found" not in format_results(results)


def test_an_e_step_without_weights_fails_on_every_data_set():
    """Unequal starts everywhere: no synthetic set hides it behind equal weights."""
    results = graded("no_weights_in_e_step").results
    bad = failed(results)
    for name in ("chapter",) + SYNTHETIC:
        assert any(b.startswith(name) and "one step equals the reference" in b for b in bad)


def test_a_hard_coded_10_is_named_where_trials_differ_not_on_the_chapter():
    results = graded("hard_coded_trials").results
    assert not any(name.startswith("chapter") for name in failed(results))
    one_step = {r.name: r for r in results if r.name.endswith(": one step")}
    for name in ("synthetic A (N=137, 12 flips, K=2)", "synthetic B (N=250, 5-30 flips, K=3)"):
        r = one_step[f"{name}: one step"]
        assert "non-finite values" in r.obtained and r.slip.key == "trials_both"
    assert slips_by_data_set(results)["synthetic C"] == "trials_both"  # 8 flips: finite


# ---------------------------------------------------------------------- the slips themselves
def test_the_unslipped_step_is_the_reference_em():
    for ds in check._datasets():
        w, p = slipped_step(ds.heads, ds.trials, ds.init.weights, ds.init.p)
        ref = m_step(e_step(ds.data, ds.init), ds.init)
        np.testing.assert_allclose(w, ref.weights, rtol=1e-12)
        np.testing.assert_allclose(p, ref.p, rtol=1e-12)
    with pytest.raises(ValueError, match="unknown slip 'typo'"):
        slipped_step([1], [2], [1.0], [0.5], "typo")


def test_every_slip_shows_on_every_synthetic_set_from_its_start():
    for ds in check._datasets()[1:]:
        assert len(set(ds.init.weights.tolist())) == ds.init.n_components  # unequal
        ref = slipped_step(ds.heads, ds.trials, ds.init.weights, ds.init.p)
        for key in SLIPS:
            w, p = slipped_step(ds.heads, ds.trials, ds.init.weights, ds.init.p, key)
            same = np.allclose(w, ref[0], rtol=1e-6) and np.allclose(p, ref[1], rtol=1e-6)
            assert not same, (ds.name, key)


def test_a_symmetric_start_would_hide_the_missing_weights():
    ds = check._datasets()[1]
    equal = MixtureParams([0.5, 0.5], ds.init.p)
    ref = slipped_step(ds.heads, ds.trials, equal.weights, equal.p)
    slip = slipped_step(ds.heads, ds.trials, equal.weights, equal.p, "no_weights")
    np.testing.assert_allclose(slip, ref, rtol=1e-12)


def test_the_chapters_data_cannot_show_a_hard_coded_n_or_10():
    ds = check._datasets()[0]
    ref = slipped_step(ds.heads, ds.trials, ds.init.weights, ds.init.p)
    for key in ("weights_divided", "trials_e", "trials_m", "trials_both"):
        got = slipped_step(ds.heads, ds.trials, ds.init.weights, ds.init.p, key)
        np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_match_slip_names_each_variant_and_nothing_else():
    ds = check._datasets()[3]  # 8 flips: every variant is finite
    args = (ds.heads, ds.trials, ds.init)
    for key in SLIPS:
        w, p = slipped_step(ds.heads, ds.trials, ds.init.weights, ds.init.p, key)
        assert match_slip(*args, w, p).key == key
    w, p = slipped_step(ds.heads, ds.trials, ds.init.weights, ds.init.p)
    assert match_slip(*args, w, p) is None  # right
    assert match_slip(*args, w, p + 0.01) is None  # wrong, but no known slip
    assert match_slip(*args, w * 8, p).title.startswith("the weights divided by 125 ")


# ---------------------------------------------------------------------- what crosses over
@pytest.mark.parametrize("impl", ["namedtuple_return", "ndarray_subclass_return", "list_return"])
def test_legitimate_return_types_pass(impl):
    results = graded(impl, ATTACKS).results
    assert len(results) == 23 and failed(results) == []


def test_the_grader_accepts_plain_numbers_only():
    def frame(**fields):
        return json.dumps({"id": 7, "ok": True, **fields}).encode()

    good = [{"shape": [2], "data": [0.25, 0.75]}, {"shape": [2], "data": [0.5, 1]}]
    reply = check._parse_reply(frame(values=good), 7)
    assert reply.status == "ok" and reply.arrays[1][1].tolist() == [0.5, 1.0]
    big = {"shape": [10_000_000], "data": None}  # only the shape of a huge array
    assert check._parse_reply(frame(values=[big, good[1]]), 7).arrays[0] == ((10_000_000,), None)
    bad = [
        frame(values=good)[:-1],  # cut short
        b"[" * 100_000 + b"]" * 100_000,  # nested too deep
        json.dumps({"id": 8, "ok": True, "values": good}).encode(),  # out of turn
        json.dumps({"id": True, "ok": True, "values": good}).encode(),
        frame(values=good[:1]),
        frame(values=[{"shape": [2], "data": [0.25, "0.75"]}, good[1]]),
        frame(values=[{"shape": [2], "data": [0.25, True]}, good[1]]),
        frame(values=[{"shape": [3], "data": [0.25, 0.75]}, good[1]]),
        frame(values=[{"shape": [-2], "data": None}, good[1]]),
        frame(values=[{"shape": [1] * 33, "data": None}, good[1]]),
        frame(values=[{"__reduce__": "os._exit"}, good[1]]),
        json.dumps({"id": 7, "ok": False}).encode(),
    ]
    for body in bad:
        with pytest.raises(check._Failure):
            check._parse_reply(body, 7)
    raised = json.dumps({"id": 7, "ok": False, "raised": "E: a\nPASS  fake"}).encode()
    assert check._parse_reply(raised, 7).message == "E: a PASS  fake"  # one line


def test_a_reduce_payload_runs_nowhere_and_fails():
    """An old grader unpickled it: os._exit(0) in the grader, exit status 0, no output."""
    out = cli(f"{ATTACKS}:reduce_payload")
    assert out.returncode == 1 and out.stdout.endswith("0 passed, 5 failed\n")
    assert "not numeric arrays: TypeError" in out.stdout


@pytest.mark.parametrize(
    ("impl", "message"),
    [
        ("exits", "the function's process exited with status 0 without answering"),
        ("system_exit", "raised SystemExit: 0 (line"),
        ("keyboard_interrupt", "raised KeyboardInterrupt (line"),
        ("huge_array", "expected shapes (3,) and (3,), got (10000000,) and (3,)"),
        ("writes_junk", "the function's process wrote junk on the grader's channel"),
        ("monkeypatches_numpy", "non-finite values: weights [nan, nan, nan]"),
        ("prints_fake_pass", "one step equals the reference EM"),
        ("floods_stdout", "raised OSError: [Errno 27] File too large"),
    ],
)
def test_an_attack_fails_and_is_reported(impl, message):
    results = graded(impl, ATTACKS).results
    assert results and not all(r.passed for r in results)
    assert message in format_results(results)


def test_a_process_that_keeps_dying_is_restarted_only_a_few_times(monkeypatch):
    results = graded("exits", ATTACKS).results  # one call per data set: each restarts
    assert all("exited with status 0 without answering" in r.obtained for r in results)
    monkeypatch.setattr(check, "MAX_RESTARTS", 1)
    results = run_checks(f"{ATTACKS}:exits")
    assert ["without answering" in r.obtained for r in results] == [True] * 3 + [False] * 2
    assert all("not run: the function's process broke down in 2 calls" in r.obtained
               for r in results[3:])  # fmt: skip


def test_what_the_function_prints_is_shown_apart_and_marked():
    out = cli(f"{ATTACKS}:prints_fake_pass")
    assert out.returncode == 1
    assert "23 passed, 0 failed" not in out.stdout and out.stdout.endswith(" failed\n")
    assert "prints_fake_pass wrote" in out.stderr and "  | 23 passed, 0 failed" in out.stderr
    assert format_output(graded("correct")) == ""


def test_closing_its_own_stdout_does_not_matter():
    results = graded("closes_stdout", ATTACKS).results
    assert len(results) == 23 and failed(results) == []


def test_a_child_that_dies_before_loading_is_a_load_error(monkeypatch, capsys):
    monkeypatch.setattr(check, "CHILD", Path("/nonexistent/_check_child.py"))
    results = run_checks(IMPLS)
    assert [r.name for r in results] == ["load the function"]
    assert "exited with status 2 without answering" in results[0].obtained
    assert main(["check", IMPLS]) == 2
    assert capsys.readouterr().err.startswith("error: cannot load ")


def test_the_time_limit_covers_half_a_reply():
    start = time.monotonic()
    results = run_checks(f"{ATTACKS}:half_a_frame_then_sleeps", timeout=0.5)
    assert time.monotonic() - start < 30
    assert "no answer within 0.5 s" in results[0].obtained
    assert all(not r.passed for r in results)


def test_raising_wrong_shapes_and_hanging_are_reported_not_fatal():
    raised = graded("raises").results
    assert all(not r.passed for r in raised)
    assert "ZeroDivisionError: oops" in raised[0].obtained
    shaped = graded("wrong_shape").results
    assert "expected shapes (3,) and (3,), got (4,) and (3,)" in shaped[0].obtained
    hung = graded("hangs", timeout=0.5).results
    assert "no answer within 0.5 s" in hung[0].obtained
    assert all(not r.passed for r in hung)


# ---------------------------------------------------------------------- processes
def test_forked_children_are_killed_and_do_not_hold_the_output():
    """3 `sleep` per call once left 627 orphans and kept captured output open for 122 s."""
    outsider = subprocess.Popen(["sleep", "97.533"])  # not the student's: must survive
    try:
        start = time.monotonic()
        out = cli(f"{ATTACKS}:forks_sleepers")
        assert time.monotonic() - start < 90
        assert out.returncode == 0 and out.stdout.endswith("23 passed, 0 failed\n")
        assert processes_running("97.531") == []
        assert outsider.poll() is None and processes_running("97.533") == [outsider.pid]
    finally:
        outsider.kill()
        outsider.wait()


def test_a_child_in_its_own_process_group_is_killed_too():
    results = graded("forks_into_own_group", ATTACKS).results
    assert failed(results) == []
    assert processes_running("97.532") == []


def test_a_process_escaping_to_its_own_session_does_not_hold_the_output():
    """Out of reach of the kill (a known limit), but the check does not wait for it."""
    try:
        start = time.monotonic()
        out = cli(f"{ATTACKS}:escapes_with_setsid")
        assert time.monotonic() - start < 60 and out.returncode == 0
    finally:
        for pid in processes_running("97.534"):  # started by this test, through the student
            os.kill(pid, signal.SIGKILL)


def test_a_signal_to_the_grader_is_one_line_not_a_pass():
    out = cli(f"{ATTACKS}:interrupts_the_grader")
    assert out.returncode == 130 and out.stderr == "error: interrupted\n"
    assert processes_running("97.535") == []  # the session was killed on the way out


def test_an_interrupt_while_cleaning_up_waits_until_the_session_is_dead(monkeypatch):
    runner = check._Runner(parse_spec(IMPLS), 10.0, False)
    assert runner.start() is None
    pid, real_kill = runner.proc.pid, check._kill_session

    def interrupted_kill(sid):
        os.kill(os.getpid(), signal.SIGINT)  # arrives while the grader cleans up
        real_kill(sid)

    monkeypatch.setattr(check, "_kill_session", interrupted_kill)
    with pytest.raises(KeyboardInterrupt):
        runner.close()
    assert runner.proc is None and not Path(f"/proc/{pid}").exists()


def test_the_reference_is_never_in_the_grader_while_the_function_runs(monkeypatch):
    """Before each call, the grader has not computed that call's answer (a reader of the
    grader's memory finds nothing to copy); calls whose answer is their input are exempt."""
    computed, leaks = [], []
    real_reference, real_call = check._reference, check._Runner.call

    def reference(data, params):
        new = real_reference(data, params)
        computed.append(np.r_[new.weights, new.p])
        return new

    def call(self, heads, trials, weights, p):
        before = list(computed)
        reply = real_call(self, heads, trials, weights, p)
        answer = np.concatenate([a for _, a in reply.arrays])
        if not np.allclose(answer, np.r_[weights, p], rtol=1e-9, atol=0):
            same = [c for c in before if c.shape == answer.shape]
            leaks.extend(c for c in same if np.allclose(c, answer, rtol=1e-12, atol=0))
        return reply

    monkeypatch.setattr(check, "_reference", reference)
    monkeypatch.setattr(check._Runner, "call", call)
    results = run_checks(f"{IMPLS}:correct")
    assert failed(results) == [] and len(computed) == 200 and leaks == []


# ---------------------------------------------------------------------- the suite is off limits
def test_importing_the_reference_is_refused_unless_allowed():
    refused = graded("imports_reference", ATTACKS).results
    assert "raised ImportError: importing 'compare' is refused" in refused[0].obtained
    allowed = graded("imports_reference", ATTACKS, allow=True).results
    assert len(allowed) == 23 and failed(allowed) == []


def test_the_suite_is_refused_from_any_folder(tmp_path):
    """Outside the repository, `em` comes from the installed package: refused too."""
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-m", "compare", "check", f"{root / ATTACKS}:imports_reference"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=120,
    )
    assert out.returncode == 1 and "importing 'compare' is refused" in out.stdout


def test_a_students_own_module_called_models_is_not_the_suite():
    results = run_checks("tests/compare/student/own_models/step.py")
    assert len(results) == 23 and failed(results) == []


def test_a_file_importing_em_cannot_be_loaded(capsys):
    assert main(["check", "tests/compare/student/imports_em.py"]) == 2
    err = capsys.readouterr().err
    assert "importing 'em' is refused" in err and err.count("\n") == 1
    assert main(["check", "tests/compare/student/imports_em.py", "--allow-suite-imports"]) == 0


# ---------------------------------------------------------------------- the command line
def test_cli_exit_status_and_template(capsys):
    assert main(["check", f"{IMPLS}:correct"]) == 0
    assert "23 passed, 0 failed" in capsys.readouterr().out
    assert main(["check", f"{IMPLS}:swapped_axis"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  chapter (6.14): updated weights" in out and "expected:" in out
    # the student template: documented, not yet written; the function defaults to em_step
    assert main(["check", "examples/em_step_template.py"]) == 1
    assert "NotImplementedError" in capsys.readouterr().out


def test_the_function_name_defaults_to_em_step(capsys):
    assert parse_spec(IMPLS) == check.FunctionSpec("file", IMPLS, "em_step")
    assert parse_spec("pkg.mod") == check.FunctionSpec("module", "pkg.mod", "em_step")
    assert parse_spec("pkg.mod:step") == check.FunctionSpec("module", "pkg.mod", "step")
    assert main(["check", IMPLS]) == 0
    assert capsys.readouterr().out.endswith("23 passed, 0 failed\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["impls.py"], "cannot load impls.py: no such file 'impls.py'"),
        (["missing.py:em_step"], "cannot load missing.py:em_step: no such file 'missing.py'"),
        ([f"{IMPLS}:nothing"], "has no function 'nothing'"),
        ([f"{IMPLS}:not-a-name"], "'not-a-name' is not a function name"),
        (["no such module"], "is neither a file nor a module name"),
        ([IMPLS, "--timeout", "inf"], "--timeout must be a finite number of seconds > 0"),
        ([IMPLS, "--timeout", "nan"], "--timeout must be a finite number of seconds > 0"),
        ([IMPLS, "--timeout", "0"], "got '0'"),
        ([IMPLS, "--timeout", "-1"], "got '-1'"),
        ([IMPLS, "--timeout", "soon"], "got 'soon'"),
        ([IMPLS, "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_cli_bad_usage_is_one_line_and_status_2(capsys, args, message):
    assert main(["check", *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.err.count("\n") == 1 and captured.out == ""


def test_the_api_refuses_bad_arguments_with_value_error():
    with pytest.raises(ValueError, match="timeout must be a finite number"):
        run_checks(IMPLS, timeout=float("inf"))
    with pytest.raises(ValueError, match="no such file"):
        run_checks("nowhere.py")


def test_module_spec_through_the_entry_point():
    out = cli("tests.compare.student.impls:correct")
    assert out.returncode == 0 and "23 passed, 0 failed" in out.stdout
    assert cli("tests.compare.student.impls").returncode == 0  # em_step by default


def test_the_child_gets_a_clean_environment(monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    assert "SECRET_TOKEN" not in check._clean_env()
    results = run_checks(f"{ATTACKS}:reads_environment")
    assert len(results) == 23 and failed(results) == []
