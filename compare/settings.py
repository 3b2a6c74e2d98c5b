"""Every setting the comparison's verdicts rest on, defined once and read everywhere.

Thresholds come with their sources; changing one here changes it in the analysis, the
report's text and the study alike.
"""

from __future__ import annotations

__all__ = [
    "CI_PROB",
    "CI_KIND",
    "TOLERANCES",
    "RHAT_MAX",
    "ESS_MIN_PER_CHAIN",
    "EBFMI_MIN",
    "ALPHA",
]

#: Interval probability of every posterior interval in the report (ArviZ 1.x's default).
CI_PROB = 0.89
#: Interval kind: equal-tailed.
CI_KIND = "eti"

#: What "EM agrees with the posterior mode" means. Objective values in nats; parameters
#: and total variation between the fitted pmfs absolute.
TOLERANCES = {"objective": 1e-4, "parameters": 2e-3, "total_variation": 1e-3}

#: Sampler health (Vehtari et al. 2021, Bayesian Analysis; Betancourt 2016): rank-normalised
#: split R-hat above this is a warning;
RHAT_MAX = 1.01
#: bulk or tail ESS below this many per chain is a warning;
ESS_MIN_PER_CHAIN = 100
#: E-BFMI below this is a warning (any post-warm-up divergence is one too).
EBFMI_MIN = 0.3

#: Level of the overdispersion test.
ALPHA = 0.05
