"""PyMC models of the binomial mixture (the Bayesian side); see issue: models/."""
