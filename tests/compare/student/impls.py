"""em_step implementations for the checker's tests: one right, several typically wrong."""

import time

import numpy as np
from scipy.stats import binom


def _posteriors(heads, trials, weights, p):
    joint = weights[None, :] * binom.pmf(heads[:, None], trials[:, None], p[None, :])
    return joint / joint.sum(axis=1, keepdims=True)


def correct(heads, trials, weights, p):
    r = _posteriors(heads, trials, weights, p)
    nk = r.sum(axis=0)
    return nk / nk.sum(), (r * heads[:, None]).sum(axis=0) / (r * trials[:, None]).sum(axis=0)


def divided_by_20(heads, trials, weights, p):
    r = _posteriors(heads, trials, weights, p)
    nk = r.sum(axis=0)
    return nk / 20, (r * heads[:, None]).sum(axis=0) / (r * trials[:, None]).sum(axis=0)


def not_normalised_by_trials(heads, trials, weights, p):
    r = _posteriors(heads, trials, weights, p)
    nk = r.sum(axis=0)
    return nk / nk.sum(), (r * heads[:, None]).sum(axis=0) / nk


def swapped_axis(heads, trials, weights, p):
    joint = weights[None, :] * binom.pmf(heads[:, None], trials[:, None], p[None, :])
    r = joint / joint.sum(axis=0, keepdims=True)  # normalised over sequences, not coins
    nk = r.sum(axis=0)
    return nk / nk.sum(), (r * heads[:, None]).sum(axis=0) / (r * trials[:, None]).sum(axis=0)


def raises(heads, trials, weights, p):
    raise ZeroDivisionError("oops")


def wrong_shape(heads, trials, weights, p):
    return np.ones(len(weights) + 1) / (len(weights) + 1), p


def hangs(heads, trials, weights, p):
    while True:
        time.sleep(0.05)
