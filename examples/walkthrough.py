# %% [markdown]
# # Chapter 6, step by step, with the suite
#
# This notebook follows Section 6.3 of the chapter: one E-step, one M-step, EM to the
# optimum (and how we know it is the optimum), then EM against the Bayesian posterior.
# `examples/walkthrough.ipynb` is this file executed (`make notebook`); the file itself is a
# jupytext "percent" script that also runs as `python examples/walkthrough.py`.

# %%
import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from em import BinomialData, MixtureParams, e_step, fit_data, m_step, run_em

try:  # in Jupyter: rich tables and images inline
    from IPython import get_ipython
    from IPython.display import Image, display

    IN_NOTEBOOK = get_ipython() is not None
except ImportError:  # the script without the notebook extra
    IN_NOTEBOOK = False
if not IN_NOTEBOOK:  # as a script: plain text, figures named
    display, Image = print, (lambda filename: f"[figure: {filename}]")

pd.set_option("display.precision", 7)
np.set_printoptions(precision=7)

# %% [markdown]
# ## The data, compressed as in Table 6.1
# 20 sequences of 10 flips; each distinct number of heads is kept once, with its count.

# %%
data = BinomialData.chapter()
display(pd.DataFrame({"heads": data.heads, "occurrences": data.counts}))

# %% [markdown]
# ## One E-step from the chapter's start (6.6)
# Posteriors per outcome (Table 6.1), expected counts (6.10), expected outcome counts
# (Table 6.2) and expected heads per coin (Table 6.3).

# %%
start = MixtureParams(weights=[0.25, 0.5, 0.25], p=[0.4, 0.5, 0.65])
expect = e_step(data, start)
coins = ["c_1", "c_2", "c_3"]
display(pd.DataFrame(expect.resp, index=data.heads, columns=coins).rename_axis("Table 6.1"))
counts = expect.expected_counts
print("(6.10) expected sequences per coin:", counts, "sum", counts.sum())
display(
    pd.DataFrame(expect.expected_outcome_counts, index=data.heads, columns=coins).rename_axis(
        "Table 6.2"
    )
)
print("Table 6.3 expected heads per coin:", expect.expected_successes)
assert np.allclose(expect.resp[0], [0.5674795, 0.4124300, 0.0200905], atol=5e-8)

# %% [markdown]
# ## One M-step
# Weights: expected counts divided by their sum (footnote 8); biases: expected heads over
# expected flips (6.15).

# %%
new = m_step(expect, start)
print("(6.14) weights", new.weights)
print("Table 6.4 biases", new.p)
assert np.allclose(new.p, [0.3536485, 0.4278732, 0.5128013], atol=5e-8)

# %% [markdown]
# ## Plain EM to the optimum, and how we know it got there
# A small last step is not a small distance to the optimum. EM reports a *certified gap*:
# the log-likelihood still to gain, estimated from the exact gradient and Hessian (the
# Newton decrement) or, where they are singular, from the rate at which EM's steps shrink
# (Aitken). A run has converged when the gap is at most 1e-9 nats.

# %%
run = run_em(data, start, method="em")
print(f"plain EM: {run.n_iter} steps, gap {run.gap:.2g} nats ({run.certificate.detail})")
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.semilogy(np.maximum(run.trace[-1] - run.trace, 1e-16), marker=".")
ax.set_xlabel("iteration")
ax.set_ylabel("log-likelihood still to gain (nats)")
ax.set_title("Plain EM from the chapter's start")
plt.show()

# %% [markdown]
# ## Restarts, certified optima, and the collapse
# Ten seeded restarts with the default method (EM steps, then Newton steps with the exact
# Hessian). On these data the three coins collapse onto one: the data are under-dispersed,
# so the best "three coins" are one coin three times, and the result says so.

# %%
res = fit_data(data, 3, restarts=10, seed=0)
display(
    pd.DataFrame(
        [
            {
                "objective": o.log_likelihood,
                "basin fraction": o.fraction,
                "effective K": o.reduced.n_components,
                "p (reduced)": np.round(o.reduced.p, 7).tolist(),
                "largest gap": o.gap,
            }
            for o in res.optima
        ]
    )
)
print("runs converged:", res.n_converged, "of", len(res.runs))
print("warnings:", [w["code"] for w in res.warnings])
one = fit_data(data, 1)
print("one coin: p =", one.p, "log-likelihood", one.log_likelihood)

# %% [markdown]
# ## A picture of the likelihood
# For K = 2 the profile log-likelihood over (p_1, p_2), maximised over the weight, shows
# the collapse: the maximum sits on the diagonal, on a cross-shaped ridge.

# %%
from compare.landscape import landscape_figure, profile_landscapes  # noqa: E402

two = fit_data(data, 2, restarts=10, seed=0)
folder = tempfile.mkdtemp()
name = landscape_figure(
    profile_landscapes(data, two.params), two.runs, None, os.path.join(folder, "landscape.png")
)
display(Image(filename=os.path.join(folder, name)))

# %% [markdown]
# ## EM against the posterior
# The comparison report: EM, PyMC's mode search (each end point certified), NUTS on the
# exchangeable and the ordered model, labels, sampler health, identifiability. Few draws
# here so that the notebook runs quickly; `make report` uses the defaults.

# %%
from compare.options import ReportOptions  # noqa: E402
from compare.report import write_report  # noqa: E402

draws = int(os.environ.get("WALKTHROUGH_DRAWS", "300"))
out = os.path.join(tempfile.mkdtemp(), "chapter-report")
results = write_report(data, ReportOptions(components=3, draws=draws, tune=draws), out)
for line in results["conclusions"]:
    print("-", line)
for figure in ("landscape.png", "trace_ordered.png"):
    display(Image(filename=os.path.join(out, "figures", figure)))
