"""Report folders on disk: nothing lost, nothing half written, one writer at a time.

Most tests write with a fake analysis (a callback writing two files, or a fake
write_report behind the CLI), so they take milliseconds; kills and races run in
subprocesses.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import compare.cli as cli
import compare.report as report_mod
from compare import output
from compare.cli import main
from compare.output import MARKER, check_out_dir, staging

ROOT = Path(__file__).resolve().parents[2]


def fake_report(out, text="new", **kwargs):
    """What write_report does to the disk, without the analysis."""
    with staging(out, **kwargs) as tmp:
        (tmp / "report.md").write_text(text)
        (tmp / "figures").mkdir()
        (tmp / "figures" / "pmf.png").write_bytes(b"png")
    return out


def beside(path):
    """Everything in the folder holding ``path``."""
    return sorted(p.name for p in Path(path).parent.iterdir())


@pytest.fixture
def fake_cli(monkeypatch):
    """The CLI with a fake write_report; ``calls`` records whether the data were read."""
    calls = []

    def load_data(spec):
        calls.append(("load_data", spec))
        from em import BinomialData

        return BinomialData.chapter()

    def write_report(data, opts, out, *, force=False, command=None, select=None, user=None):
        calls.append(("write_report", str(out)))
        fake_report(out, force=force, inputs=[data.source])
        return {"conclusions": ["fake."]}

    monkeypatch.setattr(cli, "load_data", load_data)
    monkeypatch.setattr(report_mod, "write_report", write_report)
    return calls


def run_cli(capsys, *argv):
    code = main(["report", *argv])
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------- writing
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o755), (0o027, 0o750)])
def test_the_folder_gets_the_usual_permissions_and_a_marker(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        out = fake_report(tmp_path / "rep")
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == mode  # not 0700, as tempfile.mkdtemp gives
    assert (out / "figures").stat().st_mode & 0o777 == mode
    marker = json.loads((out / MARKER).read_text())
    assert marker["complete"] is True
    assert marker["files"] == [MARKER, "figures/pmf.png", "report.md"]
    assert beside(out) == ["rep"]  # no temporary folder, no lock file


def test_force_replaces_a_report_of_the_suite_only(tmp_path):
    out = fake_report(tmp_path / "rep", text="old")
    with pytest.raises(ValueError, match="holds an earlier report; give --force to replace it"):
        fake_report(out)
    assert (out / "report.md").read_text() == "old"
    fake_report(out, force=True)
    assert (out / "report.md").read_text() == "new"
    assert beside(out) == ["rep"]


def test_force_refuses_a_folder_holding_files_the_suite_did_not_write(tmp_path):
    out = fake_report(tmp_path / "rep", text="old")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"holds 'notes.txt', which this suite did not write"):
        fake_report(out, force=True)
    assert (out / "notes.txt").read_text() == "mine" and (out / "report.md").read_text() == "old"
    (out / "notes.txt").unlink()
    (out / "figures" / "extra").mkdir()  # an empty folder of the user's counts too
    with pytest.raises(ValueError, match=r"holds 'figures/extra'"):
        fake_report(out, force=True)

    data = tmp_path / "data"
    data.mkdir()
    (data / "x.csv").write_text("heads,trials\n1,2\n")
    with pytest.raises(ValueError, match=r"holds 'x.csv', which this suite did not write"):
        fake_report(data, force=True)
    assert (data / "x.csv").is_file() and beside(data) == ["data", "rep"]


def test_an_empty_folder_is_written_into_without_force(tmp_path):
    (tmp_path / "rep").mkdir()
    out = fake_report(tmp_path / "rep")
    assert (out / "report.md").read_text() == "new"


def test_a_report_written_before_the_marker_is_recognised_by_its_manifest(tmp_path):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "report.md").write_text("old")
    manifest = {"packages": {"binomial-mixture-suite": "0.1.0"}, "files": ["report.md"]}
    (out / "manifest.json").write_text(
        json.dumps(manifest | {"files": ["report.md", "manifest.json"]})
    )
    fake_report(out, force=True)
    assert (out / "report.md").read_text() == "new"

    other = tmp_path / "other"
    other.mkdir()
    (other / "manifest.json").write_text(json.dumps({"packages": {"numpy": "2"}, "files": []}))
    with pytest.raises(ValueError, match="which this suite did not write"):
        fake_report(other, force=True)
    assert (other / "manifest.json").is_file()


def test_an_exception_in_the_analysis_leaves_out_untouched(tmp_path):
    out = fake_report(tmp_path / "rep", text="old")
    with pytest.raises(KeyboardInterrupt), staging(out, force=True) as tmp:
        (tmp / "report.md").write_text("half")
        raise KeyboardInterrupt
    assert (out / "report.md").read_text() == "old" and beside(out) == ["rep"]


# ---------------------------------------------------------------------- --out checks (CLI)
def test_out_containing_the_input_is_refused_before_the_data_are_read(
    tmp_path, monkeypatch, capsys, fake_cli
):
    monkeypatch.chdir(tmp_path)
    Path("data").mkdir()
    Path("data/x.csv").write_text("heads,trials\n4,10\n")
    for out in ("data", "data/..", str(tmp_path / "data")):
        code, _, err = run_cli(capsys, "data/x.csv", "--components", "2", "--out", out, "--force")
        assert code == 2 and err.count("\n") == 1, err
        assert "contains the input 'data/x.csv'" in err or "current folder" in err, err
    assert Path("data/x.csv").read_text() == "heads,trials\n4,10\n" and fake_cli == []
    # a folder beside the data is fine
    code, out, _ = run_cli(capsys, "data/x.csv", "--components", "2", "--out", "reports/x")
    assert code == 0 and "report written to reports/x/" in out
    assert [c[0] for c in fake_cli] == ["load_data", "write_report"]


@pytest.fixture
def read_only(tmp_path):
    """A read-only folder; for root, immutable as well (root ignores the mode bits)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    immutable = False
    if os.geteuid() == 0:
        done = subprocess.run(["chattr", "+i", str(ro)], capture_output=True, check=False)
        if done.returncode != 0:
            ro.chmod(0o755)
            pytest.skip("running as root without chattr: no folder is read-only")
        immutable = True
    yield ro
    if immutable:
        subprocess.run(["chattr", "-i", str(ro)], check=True)
    ro.chmod(0o755)


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("/proc/x", "'/proc/x' cannot be created: cannot write in '/proc'"),
        ("afile/x", "is a file, not a folder"),
        ("afile", "'afile' exists and is not a folder"),
        ("ro", "'ro' is not writable"),
        ("ro/new", "cannot write in"),
        ("a" * 300, "is 300 bytes long; the file system allows 255"),
        ("b" * 250, "the folder name is 250 bytes long; at most 238 fit"),
        (".", "'.' is the current folder or one of its parents"),
        ("..", "'..' is the current folder or one of its parents"),
        ("", "--out: the folder name is empty"),
    ],
)
def test_an_unusable_out_is_one_line_before_the_data_are_read(
    tmp_path, monkeypatch, capsys, fake_cli, read_only, out, message
):
    monkeypatch.chdir(tmp_path)
    Path("afile").write_text("a file")
    code, stdout, err = run_cli(capsys, "chapter", "--components", "2", "--out", out)
    assert code == 2 and stdout == "" and err.count("\n") == 1 and message in err, err
    assert fake_cli == []  # nothing read, no analysis
    assert sorted(os.listdir(tmp_path)) == ["afile", "ro"] and os.listdir(read_only) == []


def test_a_deep_new_out_is_created(tmp_path, monkeypatch, capsys, fake_cli):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "chapter", "--components", "2", "--out", "a/b/c")
    assert code == 0 and err == "" and (tmp_path / "a/b/c/report.md").is_file()


def test_a_symbolic_link_out_is_refused_and_its_target_kept(
    tmp_path, monkeypatch, capsys, fake_cli
):
    monkeypatch.chdir(tmp_path)
    fake_report(tmp_path / "real", text="old")
    Path("link").symlink_to("real")
    code, _, err = run_cli(capsys, "chapter", "--components", "2", "--out", "link", "--force")
    assert code == 2 and "'link' is a symbolic link (to 'real')" in err and fake_cli == []
    assert Path("link").is_symlink() and (tmp_path / "real/report.md").read_text() == "old"
    # the folder itself is replaced as usual
    code, _, _ = run_cli(capsys, "chapter", "--components", "2", "--out", "real", "--force")
    assert code == 0 and (tmp_path / "real/report.md").read_text() == "new"
    assert Path("link").is_symlink()


def test_a_run_already_writing_out_is_one_line(tmp_path, monkeypatch, capsys, fake_cli):
    monkeypatch.chdir(tmp_path)
    target = output.resolve_out("rep")
    with output.locked(target):
        code, _, err = run_cli(capsys, "chapter", "--components", "2", "--out", "rep", "--force")
        assert code == 2 and err.count("\n") == 1 and "another run is writing 'rep'" in err
        assert fake_cli == [] and not Path("rep").exists()
    assert beside(target) == []  # the lock file goes with the lock
    code, _, _ = run_cli(capsys, "chapter", "--components", "2", "--out", "rep", "--force")
    assert code == 0 and Path("rep/report.md").is_file() and beside(target) == ["rep"]


def test_ctrl_c_exits_130_with_one_line(capsys, monkeypatch, tmp_path):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_mod, "write_report", interrupted)
    code, out, err = run_cli(capsys, "chapter", "--components", "2", "--out", str(tmp_path / "r"))
    assert code == 130 and out == "" and err == "error: interrupted\n"


# ---------------------------------------------------------------------- kills and races
WRITER = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    from compare import output

    out, mode = sys.argv[1], sys.argv[2]
    if mode.startswith("kill-after-rename-"):
        n, real, count = int(mode[-1]), os.rename, []

        def rename(src, dst):
            real(src, dst)
            count.append(1)
            if len(count) == n:
                os.kill(os.getpid(), signal.SIGKILL)

        os.rename = rename
    if mode == "race":
        while not Path(sys.argv[3]).exists():
            time.sleep(0.005)
    try:
        with output.staging(out, force=True) as tmp:
            (tmp / "report.md").write_text(f"new {os.getpid()}")
            (tmp / "started").write_text("")
            if mode in ("wait", "race"):
                time.sleep(60 if mode == "wait" else 1.0)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    """
)


def writer(out, mode, *extra):
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(out), mode, *map(str, extra)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(predicate, seconds=30.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_kill_between_the_two_renames_is_undone_by_the_next_run(tmp_path):
    out = fake_report(tmp_path / "rep", text="old")
    proc = writer(out, "kill-after-rename-1")
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    left = beside(out)
    # no DIR; the old report, the new one and the lock file (unlocked by the kill) beside it
    assert [n.split("-")[0] for n in left] == [".rep.lock", ".rep.old", ".rep.tmp"]
    check_out_dir(out, force=True)  # the next run, before its analysis
    assert (out / "report.md").read_text() == "old" and beside(out) == ["rep"]


def test_a_kill_after_the_second_rename_keeps_the_new_report(tmp_path):
    out = fake_report(tmp_path / "rep", text="old")
    proc = writer(out, "kill-after-rename-2")
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert (out / "report.md").read_text() == f"new {proc.pid}"
    assert [n.split("-")[0] for n in beside(out)] == [".rep.lock", ".rep.old", "rep"]
    check_out_dir(out, force=True)
    assert (out / "report.md").read_text() == f"new {proc.pid}" and beside(out) == ["rep"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_temporary_folders_of_a_killed_run_are_removed_by_the_next(tmp_path, sig):
    out = fake_report(tmp_path / "rep", text="old")
    proc = writer(out, "wait")
    tmp = tmp_path / f".rep.tmp-{proc.pid}"
    wait_for(lambda: (tmp / "started").exists())
    proc.send_signal(sig)
    proc.communicate(timeout=30)
    assert proc.returncode == -sig
    assert tmp.is_dir() and (out / "report.md").read_text() == "old"
    fake_report(out, force=True)
    assert (out / "report.md").read_text() == "new" and beside(out) == ["rep"]


def test_recovery_leaves_alone_what_the_suite_did_not_write(tmp_path):
    out = fake_report(tmp_path / "rep", text="old")
    mine = tmp_path / ".rep.tmp-1"  # the suite's name, the user's files: kept
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    other = tmp_path / ".other.tmp-1"  # the suite's, but another DIR's: kept
    shutil.copytree(out, other)
    empty = tmp_path / ".rep.tmp-2"  # empty: nothing to lose, removed
    empty.mkdir()
    check_out_dir(out, force=True)
    assert (mine / "notes.txt").read_text() == "mine" and (other / "report.md").is_file()
    assert not empty.exists() and (out / "report.md").read_text() == "old"


def test_an_old_report_left_by_the_previous_version_is_restored(tmp_path):
    legacy = tmp_path / ".rep.old.ab_12cd3"
    legacy.mkdir()
    (legacy / "report.md").write_text("old")
    manifest = {"packages": {"binomial-mixture-suite": "0.1.0"}}
    (legacy / "manifest.json").write_text(
        json.dumps(manifest | {"files": ["report.md", "manifest.json"]})
    )
    out = tmp_path / "rep"
    check_out_dir(out, force=True)
    assert (out / "report.md").read_text() == "old" and beside(out) == ["rep"]


def test_two_force_runs_racing_into_a_fresh_out_give_one_report_and_one_error(tmp_path):
    out, go = tmp_path / "rep", tmp_path / "go"
    procs = [writer(out, "race", go) for _ in range(2)]
    time.sleep(0.5)  # both imported and waiting
    go.write_text("")
    results = sorted((p.communicate(timeout=30)[1], p.returncode)[::-1] for p in procs)
    (ok, ok_err), (lost, lost_err) = results
    assert ok == 0 and ok_err == ""
    assert lost == 2 and lost_err.count("\n") == 1 and "another run is writing" in lost_err
    winner = [p.pid for p in procs if p.returncode == 0][0]
    assert (out / "report.md").read_text() == f"new {winner}"
    assert json.loads((out / MARKER).read_text())["complete"] is True
    assert beside(out) == ["go", "rep"]


@pytest.mark.slow
@pytest.mark.parametrize("when", ["importing", "sampling"])
def test_ctrl_c_on_the_command_exits_130_without_a_traceback(tmp_path, when):
    out = tmp_path / "rep"
    proc = subprocess.Popen(
        [sys.executable, "-m", "compare", "report", "chapter", "--components", "2"]
        + ["--draws", "20000", "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's Ctrl-C reaches
    )
    if when == "importing":
        time.sleep(1.0)
    else:
        wait_for(lambda: any(p.name.startswith(".rep.tmp-") for p in tmp_path.iterdir()), 120)
        time.sleep(8.0)  # EM, MAP, compiling: then NUTS, where PyMC catches KeyboardInterrupt
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == "error: interrupted", err
    assert os.listdir(tmp_path) == []


def test_ctrl_c_is_not_swallowed_by_a_library_that_catches_keyboard_interrupt(
    capsys, monkeypatch, tmp_path
):
    import signal as sig

    def sampling_as_pymc_does(*args, **kwargs):
        try:
            sig.raise_signal(sig.SIGINT)
            time.sleep(0.5)
        except KeyboardInterrupt:  # PyMC keeps the draws so far and carries on
            pass
        return {"conclusions": ["written from chains cut short."]}

    monkeypatch.setattr(report_mod, "write_report", sampling_as_pymc_does)
    code, out, err = run_cli(capsys, "chapter", "--components", "2", "--out", str(tmp_path / "r"))
    assert code == 130 and out == "" and err == "error: interrupted\n"
    # outside the command Ctrl-C is a KeyboardInterrupt again, which such a library swallows
    assert sig.getsignal(sig.SIGINT) is sig.default_int_handler
    assert sampling_as_pymc_does()["conclusions"] == ["written from chains cut short."]


def test_ctrl_c_inside_a_finaliser_is_delivered_again(capsys, monkeypatch, tmp_path):
    import signal as sig

    class Finalised:
        def __del__(self):
            sig.raise_signal(sig.SIGINT)  # the handler raises in here, where Python drops it
            sum(range(10))

    def analysis(*args, **kwargs):
        Finalised()
        for _ in range(200):
            time.sleep(0.01)
        return {"conclusions": ["never interrupted."]}

    monkeypatch.setattr(report_mod, "write_report", analysis)
    code, out, err = run_cli(capsys, "chapter", "--components", "2", "--out", str(tmp_path / "r"))
    assert code == 130 and out == "" and err == "error: interrupted\n"


def test_write_report_refuses_to_replace_the_folder_of_its_data(tmp_path, monkeypatch):
    from compare.options import ReportOptions
    from em import load_data

    def analysis(*args, **kwargs):
        raise AssertionError("the analysis ran")

    monkeypatch.setattr(report_mod, "run_analysis", analysis)
    fake_report(tmp_path / "rep")
    csv = tmp_path / "rep" / "x.csv"
    csv.write_text("heads,trials\n4,10\n")
    with pytest.raises(ValueError, match=r"contains the input '.*rep/x.csv'; give another folder"):
        report_mod.write_report(load_data(csv), ReportOptions(components=1), csv.parent, force=True)
    assert csv.is_file()
