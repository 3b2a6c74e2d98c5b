"""em_step implementations for the checker's tests: one right, and each typical slip.

Every slip that ``compare check`` names (``compare.check.SLIPS``) has one here, written
as a student would write it.
"""

import time

import numpy as np
from scipy.special import comb


def _joint(heads, trials, weights, p):
    return weights[None, :] * (
        comb(trials[:, None], heads[:, None])
        * p[None, :] ** heads[:, None]
        * (1 - p[None, :]) ** (trials - heads)[:, None]
    )


def _posteriors(heads, trials, weights, p):
    joint = _joint(heads, trials, weights, p)
    return joint / joint.sum(axis=1, keepdims=True)


def correct(heads, trials, weights, p):
    r = _posteriors(heads, trials, weights, p)
    nk = r.sum(axis=0)
    return nk / nk.sum(), (r * heads[:, None]).sum(axis=0) / (r * trials[:, None]).sum(axis=0)


em_step = correct  # the default function name


def divided_by_20(heads, trials, weights, p):
    r = _posteriors(heads, trials, weights, p)
    nk = r.sum(axis=0)
    return nk / 20, (r * heads[:, None]).sum(axis=0) / (r * trials[:, None]).sum(axis=0)


def not_normalised_by_trials(heads, trials, weights, p):
    r = _posteriors(heads, trials, weights, p)
    nk = r.sum(axis=0)
    return nk / nk.sum(), (r * heads[:, None]).sum(axis=0) / nk


def swapped_axis(heads, trials, weights, p):
    joint = _joint(heads, trials, weights, p)
    r = joint / joint.sum(axis=0, keepdims=True)  # normalised over sequences, not coins
    nk = r.sum(axis=0)
    return nk / nk.sum(), (r * heads[:, None]).sum(axis=0) / (r * trials[:, None]).sum(axis=0)


def no_weights_in_e_step(heads, trials, weights, p):
    joint = _joint(heads, trials, np.ones_like(weights), p)  # the likelihoods alone
    r = joint / joint.sum(axis=1, keepdims=True)
    nk = r.sum(axis=0)
    return nk / nk.sum(), (r * heads[:, None]).sum(axis=0) / (r * trials[:, None]).sum(axis=0)


def hard_coded_trials(heads, trials, weights, p):
    n = 10  # as in the chapter
    joint = (
        weights * comb(n, heads[:, None]) * p ** heads[:, None] * (1 - p) ** (n - heads)[:, None]
    )
    with np.errstate(invalid="ignore"):
        r = joint / joint.sum(axis=1, keepdims=True)
    nk = r.sum(axis=0)
    return nk / nk.sum(), (r * heads[:, None]).sum(axis=0) / (n * nk)


def hard_coded_trials_in_m_step(heads, trials, weights, p):
    r = _posteriors(heads, trials, weights, p)
    nk = r.sum(axis=0)
    return nk / nk.sum(), (r * heads[:, None]).sum(axis=0) / (10 * nk)


def swapped_return(heads, trials, weights, p):
    new_weights, new_p = correct(heads, trials, weights, p)
    return new_p, new_weights


def raises(heads, trials, weights, p):
    raise ZeroDivisionError("oops")


def wrong_shape(heads, trials, weights, p):
    return np.ones(len(weights) + 1) / (len(weights) + 1), p


def hangs(heads, trials, weights, p):
    while True:
        time.sleep(0.05)


def off_by_a_little(heads, trials, weights, p):
    """Wrong, but like none of the known slips."""
    new_weights, new_p = correct(heads, trials, weights, p)
    return new_weights, new_p * 0.99


def hard_coded_trials_in_e_step(heads, trials, weights, p):
    n = 10  # as in the chapter, in the likelihood only
    joint = (
        weights * comb(n, heads[:, None]) * p ** heads[:, None] * (1 - p) ** (n - heads)[:, None]
    )
    with np.errstate(invalid="ignore"):
        r = joint / joint.sum(axis=1, keepdims=True)
    nk = r.sum(axis=0)
    return nk / nk.sum(), (r * heads[:, None]).sum(axis=0) / (r * trials[:, None]).sum(axis=0)
