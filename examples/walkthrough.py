# %% [markdown]
# # Chapter 6, step by step, with the suite
#
# A jupytext "percent" notebook: open it in Jupyter with jupytext, or run it as a script
# (`python examples/walkthrough.py`). It follows Section 6.3 of the chapter: one E-step,
# one M-step, EM to convergence, then EM against the Bayesian posterior.

# %%
import os
import tempfile

import numpy as np

from em import BinomialData, MixtureParams, e_step, fit_data, m_step, standard_errors

np.set_printoptions(precision=7, suppress=True)

# %% [markdown]
# ## The data, compressed as in Table 6.1
# 20 sequences of 10 flips; each distinct number of heads is kept once, with its count.

# %%
data = BinomialData.chapter()
print("outcomes:", data.heads, "counts:", data.counts, "N =", data.n_sequences)

# %% [markdown]
# ## One E-step from the chapter's start (6.6)
# Posteriors per outcome (Table 6.1), expected counts (6.10), expected outcome counts
# (Table 6.2) and expected heads per coin (Table 6.3).

# %%
start = MixtureParams(weights=[0.25, 0.5, 0.25], p=[0.4, 0.5, 0.65])
expect = e_step(data, start)
print("Table 6.1\n", expect.resp)
print("(6.10)", expect.expected_counts, "sum", expect.expected_counts.sum())
print("Table 6.2\n", expect.expected_outcome_counts)
print("Table 6.3", expect.expected_successes)
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
# ## EM to convergence, with restarts
# Every restart is kept; distinct optima are grouped. On these data the three coins
# collapse onto one (the data are under-dispersed), and the result says so.

# %%
res = fit_data(data, 3, restarts=10, seed=0)
print("best: weights", res.weights, "p", res.p, "log-likelihood", res.log_likelihood)
print("optima:", [(round(o.log_likelihood, 7), o.fraction) for o in res.optima])
print("warnings:", [w["code"] for w in res.warnings])
print("standard errors:", standard_errors(data, res.params).reason)
one = fit_data(data, 1)
print("one coin: p =", one.p, "+/-", standard_errors(data, one.params).p)

# %% [markdown]
# ## EM against the posterior
# The comparison report: EM, the PyMC model's MAP and NUTS (exchangeable and ordered
# biases), label switching, multimodality, identifiability. Few draws here so the
# notebook runs quickly; `make report` uses the defaults.

# %%
from compare.options import ReportOptions  # noqa: E402
from compare.report import write_report  # noqa: E402

draws = int(os.environ.get("WALKTHROUGH_DRAWS", "300"))
out = os.path.join(tempfile.mkdtemp(), "chapter-report")
results = write_report(data, ReportOptions(components=3, draws=draws, tune=draws), out)
for line in results["conclusions"]:
    print("-", line)
print("report written to", out)
