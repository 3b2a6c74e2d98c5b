"""em/ is numpy + scipy only: importing it must not import PyMC, PyTensor, ArviZ or xarray."""

import subprocess
import sys


def test_importing_em_imports_neither_pymc_nor_arviz():
    code = (
        "import sys, em, em.cli, em.chapter\n"
        "em.fit([1, 2, 3], 5, 2, restarts=2)\n"
        "bad = sorted(m for m in sys.modules\n"
        "             if m.split('.')[0] in {'pymc', 'pytensor', 'arviz', 'arviz_base',\n"
        "                                    'arviz_stats', 'xarray', 'matplotlib'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    # and the check can fail: the same probe sees pymc once something imports it
    probe = code.replace("import sys, em,", "import sys, pymc, em,")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "pymc" in out.stdout
