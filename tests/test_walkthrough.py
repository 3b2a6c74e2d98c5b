"""The walk-through: the percent script runs, and the committed notebook is that script executed."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "walkthrough.py"
NOTEBOOK = ROOT / "examples" / "walkthrough.ipynb"


def percent_cells(text: str) -> list[tuple[str, str]]:
    """(cell type, source) of a jupytext percent script, as jupytext converts it."""
    cells, kind, lines = [], None, []

    def close():
        if kind is not None:
            body = "\n".join(lines).strip("\n")
            if kind == "markdown":
                body = "\n".join(re.sub(r"^# ?", "", line) for line in body.split("\n"))
            cells.append((kind, body))

    for line in text.splitlines():
        m = re.match(r"^# %%(?: \[(\w+)\])?\s*$", line)
        if m:
            close()
            kind, lines = m.group(1) or "code", []
        else:
            lines.append(line)
    close()
    return cells


@pytest.mark.slow
def test_walkthrough_executes():
    env = dict(os.environ, WALKTHROUGH_DRAWS="60", MPLBACKEND="Agg")
    out = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Table 6.4 biases [0.3536485 0.4278732 0.5128013]" in out.stdout
    assert "collapsed" in out.stdout and "EM and the posterior mode agree" in out.stdout


def test_notebook_is_the_script_executed():
    """examples/walkthrough.ipynb has the script's cells, in order, each code cell run, with
    figures and tables inline (make notebook rebuilds it)."""
    nb = json.loads(NOTEBOOK.read_text())
    ours = percent_cells(SCRIPT.read_text())
    theirs = [(c["cell_type"], "".join(c["source"]).strip("\n")) for c in nb["cells"]]
    assert theirs == ours, "examples/walkthrough.ipynb is out of date: run make notebook"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["execution_count"] for c in code), "not executed: run make notebook"
    kinds = {key for c in code for o in c.get("outputs", []) for key in o.get("data", {})}
    assert {"image/png", "text/html"} <= kinds  # figures and tables inline
    errors = [o for c in code for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors
