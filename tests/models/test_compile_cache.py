"""Draws do not depend on whether PyTensor compiled the model cold or linked it from cache.

With numba's fastmath, a graph compiled cold and the same graph linked from the compile
cache gave log-densities differing in the last bits (up to 3e-14), so NUTS draws and
results.json differed between a first and a second run (issue: 34-38 values of a
``--components 1-3`` report). :func:`models.reproducible_compilation` turns fastmath off;
this test samples in two fresh processes sharing one empty compile folder.
"""

import hashlib
import os
import subprocess
import sys

import pytest

CHILD = r"""
import hashlib, numpy as np
from em import BinomialData
from models import MixtureModel
digest = hashlib.sha256()
for k in (1, 2):
    idata = MixtureModel(BinomialData.chapter(), k).sample(
        draws=30, tune=30, chains=2, cores=1, seed=3
    )
    for group, name in [("posterior", "p"), ("posterior", "w"), ("sample_stats", "energy")]:
        digest.update(np.ascontiguousarray(idata[group][name].values).tobytes())
print(digest.hexdigest())
"""


def _draws_digest(compiledir) -> str:
    env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={compiledir}")
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=900
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_cold_and_warm_compile_cache_give_identical_draws(tmp_path):
    cold = _draws_digest(tmp_path)  # an empty compile folder: everything compiles
    assert any(tmp_path.iterdir()), "the first run filled no compile cache"
    warm = _draws_digest(tmp_path)  # the same folder: linked from the cache
    assert cold == warm
    assert len(cold) == len(hashlib.sha256().hexdigest())
