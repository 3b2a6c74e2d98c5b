"""The walk-through notebook (jupytext percent format) runs from top to bottom."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_walkthrough_executes():
    env = dict(os.environ, WALKTHROUGH_DRAWS="60", MPLBACKEND="Agg")
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "walkthrough.py")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Table 6.4 biases [0.3536485 0.4278732 0.5128013]" in out.stdout
    assert "collapsed" in out.stdout and "report written to" in out.stdout
