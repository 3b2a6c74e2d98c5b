"""A student's own helper module that happens to be called ``models`` (not the suite's)."""

import numpy as np
from scipy.special import comb


def posteriors(heads, trials, weights, p):
    joint = weights * comb(trials[:, None], heads[:, None]) * p ** heads[:, None]
    joint = joint * (1 - p) ** (trials - heads)[:, None]
    return joint / joint.sum(axis=1, keepdims=True)


def new_biases(r, heads, trials):
    return (r * heads[:, None]).sum(axis=0) / (r * trials[:, None]).sum(axis=0)


__all__ = ["np", "posteriors", "new_biases"]
