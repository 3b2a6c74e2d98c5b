"""Simulation studies on Dask: a tiny study, resume, workers, bad SPECs."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

import compare.study as study
from compare import output
from compare.cli import main
from compare.study import check_study_dir, load_rows, load_spec, run_replicate, run_study

TINY = """
replicates = 2
seed = 7
[fit]
restarts = 4
reference_restarts = 8
draws = 60
tune = 60
chains = 2
[[cells]]
name = "separated"
weights = [0.5, 0.5]
p = [0.2, 0.8]
trials = 10
n = 60
[[cells]]
name = "one coin, K = 1-2"
weights = [1.0]
p = [0.4]
trials = 8
n = 40
components = "1-2"
"""
VOLATILE = ["seconds", "em_seconds", "mcmc_seconds", "worker_pid", "compiled_models"]


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def one_worker(spec_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("study1") / "study"
    summary = run_study(load_spec(spec_file), out, workers=1)
    return out, summary


@pytest.mark.slow
def test_tiny_study(one_worker):
    out, summary = one_worker
    rows = load_rows(out)
    assert len(rows) == 4 and set(rows["status"]) == {"ok"}
    for name in (
        "study.md",
        "study.html",
        "summary.json",
        "spec.toml",
        "figures/em_global_vs_separation.png",
        "figures/coverage_vs_n.png",
        "figures/agreement_vs_n.png",
    ):
        assert (out / name).is_file(), name
    sep = summary["cells"][0]
    assert sep["em_global"]["of"] == 2 and sep["map_em_agree"]["rate"] == 1.0
    assert 0 <= sep["em_global"]["ci95"][0] <= sep["em_global"]["rate"]
    one = rows[rows["cell"] == 1]
    assert set(one["k_bic"]) == {1}  # one coin: BIC picks K = 1
    assert set(one["k_loo"]) <= {1, 2} and one["k_loo"].notna().all()
    # compiled once per (K, trials) in the worker process, not once per replicate
    assert rows["compiled_models"].sum() == 3 and rows["worker_pid"].nunique() == 1  # 3 models


@pytest.mark.slow
def test_results_do_not_depend_on_the_number_of_workers(one_worker, spec_file, tmp_path):
    out1, _ = one_worker
    out2 = tmp_path / "two"
    run_study(load_spec(spec_file), out2, workers=2)
    a, b = load_rows(out1).drop(columns=VOLATILE), load_rows(out2).drop(columns=VOLATILE)
    pd.testing.assert_frame_equal(a, b)
    # and any replicate reruns alone with the same numbers
    alone = pd.DataFrame([run_replicate(load_spec(spec_file), 0, 1)]).drop(columns=VOLATILE)
    ref = a[(a["cell"] == 0) & (a["replicate"] == 1)].reset_index(drop=True).dropna(axis=1)
    pd.testing.assert_frame_equal(alone[ref.columns], ref, check_dtype=False)


@pytest.mark.slow
def test_resume_after_a_killed_run(spec_file, tmp_path):
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "compare",
        "study",
        str(spec_file),
        "--out",
        str(out),
        "--workers",
        "1",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 240
    rows_dir = out / "replicates"
    while time.time() < deadline:
        if rows_dir.is_dir() and any(rows_dir.glob("*.parquet")):
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = {p.name: p.stat().st_mtime_ns for p in rows_dir.glob("*.parquet")}
    assert 1 <= len(first) < 4
    assert main(["study", str(spec_file), "--out", str(out), "--workers", "1"]) == 0
    after = {p.name: p.stat().st_mtime_ns for p in rows_dir.glob("*.parquet")}
    assert len(after) == 4
    assert all(after[name] == mtime for name, mtime in first.items())  # not recomputed


def test_a_different_spec_in_dir_is_refused(spec_file, tmp_path, capsys):
    out = tmp_path / "s"
    out.mkdir()
    (out / "spec.toml").write_text(TINY)
    (out / "study.json").write_text('{"spec_sha256": "something else", "seed": 7}')
    assert main(["study", str(spec_file), "--out", str(out)]) == 2
    assert "holds a study of a different SPEC" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("replicates = 2\n", "needs at least one [[cells]] table"),
        (
            "replicates = 0\n[[cells]]\nweights=[1.0]\np=[0.5]\ntrials=5\nn=10\n",
            "replicates must be an integer >= 1, got 0",
        ),
        (
            "replicates = 1\n[[cells]]\nweights=[0.6, 0.6]\np=[0.5, 0.7]\ntrials=5\nn=10\n",
            "cells[0]: weights must be >= 0 and sum to 1",
        ),
        (
            "replicates = 1\n[[cells]]\nweights=[1.0]\np=[1.5]\ntrials=5\nn=10\n",
            "cells[0]: p must lie in [0, 1]",
        ),
        (
            "replicates = 1\n[[cells]]\nweights=[1.0]\np=[0.5]\nn=10\n",
            "cells[0]: missing key 'trials'",
        ),
        (
            "replicates = 1\n[[cells]]\nweights=[1.0]\np=[0.5]\ntrials=5\nn=10\ncomponents='x'\n",
            "cells[0]: components must be an integer >= 1 or 'LOW-HIGH'",
        ),
        ("replicates = 1\ncolour = 'red'\n", "unknown key 'colour'"),
        (
            "replicates = 1\n[fit]\ndraws = 0\n[[cells]]\nweights=[1.0]\np=[0.5]\ntrials=5\nn=9\n",
            "fit.draws must be an integer >= 1, got 0",
        ),
        ("replicates = [", "not valid TOML"),
        (
            "replicates = 1\n[[cells]]\nweights=[nan, 0.5]\np=[0.2, 0.7]\ntrials=5\nn=10\n",
            "cells[0]: weights and p must be finite numbers, got [nan, 0.5] and [0.2, 0.7]",
        ),
        (
            "replicates = 1\n[[cells]]\nweights=[1.0]\np=[nan]\ntrials=5\nn=10\n",
            "cells[0]: weights and p must be finite numbers",
        ),
        (
            "replicates = 1\n[[cells]]\nweights=[0.5, 0.5]\np=[inf, 0.2]\ntrials=5\nn=10\n",
            "cells[0]: weights and p must be finite numbers",
        ),
        (
            "replicates = 1\n[[cells]]\nweights=[true]\np=[0.5]\ntrials=5\nn=10\n",
            "cells[0]: weights and p must be lists of numbers of one length",
        ),
        ("replicates = 1\nfit = 3\n", "fit must be a table ([fit]), got 3"),
        ("replicates = 1\ncells = [1]\n", "cells[0] must be a table ([[cells]]), got 1"),
    ],
)
def test_malformed_spec_is_one_line_and_status_2(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["study", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not Path(tmp_path / "o").exists()


@pytest.mark.slow
def test_an_existing_scheduler_gets_the_same_tasks(one_worker, spec_file, tmp_path):
    from dask.distributed import LocalCluster

    with LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": ":0"},  # 8787 may be taken: a warning
    ) as cluster:
        out = tmp_path / "remote"
        assert (
            main(
                [
                    "study",
                    str(spec_file),
                    "--out",
                    str(out),
                    "--scheduler",
                    cluster.scheduler_address,
                ]
            )
            == 0
        )
    out1, _ = one_worker
    pd.testing.assert_frame_equal(
        load_rows(out1).drop(columns=VOLATILE), load_rows(out).drop(columns=VOLATILE)
    )


def test_a_failing_replicate_is_recorded_and_the_study_goes_on(spec_file, monkeypatch):
    import compare.study as study

    def broken(*args):
        raise RuntimeError("sampler exploded")

    monkeypatch.setattr(study, "_replicate", broken)
    row = run_replicate(load_spec(spec_file), 1, 0)
    assert row["status"] == "error" and row["error"] == "RuntimeError: sampler exploded"
    assert row["cell"] == 1 and row["replicate"] == 0 and row["seconds"] >= 0


def test_a_spec_with_finite_numbers_is_accepted(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text("replicates = 1\n[[cells]]\nweights=[0.5, 0.5]\np=[0.0, 1.0]\ntrials=5\nn=10\n")
    assert load_spec(path).cells[0].p == (0.0, 1.0)


# ---------------------------------------------------------------------- --out of a study
@pytest.fixture
def no_cluster(monkeypatch):
    """run_study without Dask: no cluster, no replicate, no report; records the calls."""
    calls = []

    class Client:
        def close(self):
            calls.append("close")

    def connect(scheduler, workers):
        calls.append(scheduler)
        return Client(), None

    monkeypatch.setattr(study, "_connect", connect)
    monkeypatch.setattr(study, "_run", lambda spec, out, client: calls.append("run"))
    monkeypatch.setattr(study, "_write_study_report", lambda out, spec, summary: None)
    return calls


def study_cli(capsys, *argv):
    code = main(["study", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_out_given_as_a_file_is_one_line(spec_file, tmp_path, capsys, no_cluster):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    code, _, err = study_cli(capsys, str(spec_file), "--out", str(afile))
    assert code == 2 and err.count("\n") == 1 and "exists and is not a folder" in err, err
    assert afile.read_text() == "mine" and no_cluster == []


def test_a_folder_holding_something_else_is_refused(spec_file, tmp_path, capsys, no_cluster):
    out = tmp_path / "s"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, _, err = study_cli(capsys, str(spec_file), "--out", str(out))
    assert code == 2 and "is not empty and holds no study" in err and no_cluster == []
    assert os.listdir(out) == ["notes.txt"]


def test_a_truncated_study_json_names_the_file(spec_file, tmp_path, capsys, no_cluster):
    out = tmp_path / "s"
    (out / "replicates").mkdir(parents=True)
    (out / "replicates" / "cell000-rep00000.parquet").write_bytes(b"a row")
    (out / "spec.toml").write_text(TINY)
    (out / "study.json").write_text('{"spec_sha256": "ab')
    code, _, err = study_cli(capsys, str(spec_file), "--out", str(out))
    assert code == 2 and err.count("\n") == 1, err
    assert f"{str(out / 'study.json')!r} is not valid JSON" in err and no_cluster == []
    (out / "study.json").unlink()
    code, _, err = study_cli(capsys, str(spec_file), "--out", str(out))
    assert code == 2 and "study.json' is missing" in err


@pytest.mark.parametrize(
    "left",
    [
        {"spec.toml": TINY},  # killed between spec.toml and study.json (the old order)
        {"spec.toml": TINY, "study.json": '{"spec_sha'},  # killed while writing study.json
        {"study.json": '{"spec_sha'},
        {},  # killed right after creating replicates/
    ],
)
def test_a_study_killed_while_being_prepared_is_resumed(
    spec_file, tmp_path, capsys, no_cluster, left
):
    out = tmp_path / "s"
    (out / "replicates").mkdir(parents=True)
    for name, text in left.items():
        (out / name).write_text(text)
    code, stdout, err = study_cli(capsys, str(spec_file), "--out", str(out))
    assert code == 0 and "study written to" in stdout, err
    assert no_cluster == [None, "run", "close"]  # all four replicates were still to run
    spec = load_spec(spec_file)
    assert json.loads((out / "study.json").read_text())["spec_sha256"] == spec.digest
    assert (out / "spec.toml").read_text() == TINY


def test_a_spec_toml_of_another_spec_without_study_json_is_kept(
    spec_file, tmp_path, capsys, no_cluster
):
    out = tmp_path / "s"
    out.mkdir()
    (out / "spec.toml").write_text("replicates = 9  # the user's own SPEC\n")
    code, _, err = study_cli(capsys, str(spec_file), "--out", str(out))
    assert code == 2 and "study.json' is missing" in err
    assert (out / "spec.toml").read_text() == "replicates = 9  # the user's own SPEC\n"


def test_a_study_out_that_is_a_link_is_followed(spec_file, tmp_path, no_cluster):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to("real")
    assert check_study_dir(load_spec(spec_file), tmp_path / "link") == real
    run_study(load_spec(spec_file), tmp_path / "link")
    assert (real / "study.json").is_file() and (tmp_path / "link").is_symlink()


def test_one_study_at_a_time_writes_into_a_folder(spec_file, tmp_path, capsys, no_cluster):
    out = tmp_path / "s"
    with output.locked(output.resolve_out(out, replace=False)):
        code, _, err = study_cli(capsys, str(spec_file), "--out", str(out))
    assert code == 2 and err.count("\n") == 1 and "another run is writing" in err, err
    code, _, _ = study_cli(capsys, str(spec_file), "--out", str(out))
    assert code == 0 and sorted(os.listdir(tmp_path)) == ["s"]  # no lock file left


def answer_garbage(server):
    """Another service: it answers every connection with bytes that are not Dask's."""
    with contextlib.suppress(OSError):
        while True:
            conn, _ = server.accept()
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n" * 4)


@pytest.mark.parametrize(
    ("address", "message", "seconds"),
    [
        # refused or unknown: at once, before Dask is imported
        ("tcp://127.0.0.1:{refusing}", "cannot reach 'tcp://127.0.0.1:", 5),
        ("127.0.0.1:{refusing}", "(Connection refused)", 5),
        ("tcp://no-such-host.invalid:8786", "cannot reach 'tcp://no-such-host.invalid:8786'", 5),
        # a port that says nothing, or something else: Dask's import, then 3 s at most
        ("tcp://127.0.0.1:{silent}", "does not answer as a Dask scheduler within 3 s", 10),
        ("tcp://127.0.0.1:{other}", "does not answer as a Dask scheduler (", 10),
        ("nonsense", "missing port number", 10),
        ("foo://x:1", "unknown address scheme 'foo'", 10),
    ],
)
def test_an_unreachable_scheduler_is_one_line_within_10_s_and_leaves_nothing(
    spec_file, tmp_path, capsys, address, message, seconds
):
    with socket.socket() as refusing, socket.socket() as silent, socket.socket() as other:
        refusing.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # accepts TCP connections, never answers Dask's handshake
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        threading.Thread(target=answer_garbage, args=(other,), daemon=True).start()
        ports = {
            name: sock.getsockname()[1]
            for name, sock in (("refusing", refusing), ("silent", silent), ("other", other))
        }
        out = tmp_path / "new" / "s"
        start = time.monotonic()
        code, _, err = study_cli(
            capsys, str(spec_file), "--out", str(out), "--scheduler", address.format(**ports)
        )
        assert time.monotonic() - start < seconds
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: --scheduler: "), err
    assert message in err, err
    assert os.listdir(tmp_path) == []  # not even the parent folder


@pytest.mark.slow
def test_ctrl_c_stops_a_study_with_130_and_no_traceback(spec_file, tmp_path):
    out = tmp_path / "s"
    proc = subprocess.Popen(
        [sys.executable, "-m", "compare", "study", str(spec_file), "--out", str(out)]
        + ["--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # Ctrl-C reaches the whole group: the workers too
    )
    deadline = time.time() + 240
    while not any((out / "replicates").glob("*.parquet")):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    assert proc.returncode == 130 and "Traceback" not in err and "WARNING" not in err, err
    assert lines[-1] == "error: interrupted" and not lines[-2].startswith("error"), err
    rows = load_rows(out)  # what finished is kept, and the folder resumes
    assert 1 <= len(rows) < 4 and check_study_dir(load_spec(spec_file), out) == out
