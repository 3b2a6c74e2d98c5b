"""Label switching: matching draws to a reference, relabelling, and the switching summary.

Arrays of draws have shape (chain, draw, K). A permutation ``perm`` (K,) relabels one draw
by ``x[perm]``: relabelled component j is the draw's component ``perm[j]``. Every
permutation is applied to the weights and the biases together.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from em import MixtureParams, e_step

__all__ = [
    "hungarian_permutations",
    "stephens_permutations",
    "apply_permutations",
    "draw_responsibilities",
    "switching_summary",
]


def hungarian_permutations(p: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """For each draw, the permutation closest to ``reference`` in squared distance on p.

    Solved by Hungarian assignment (``scipy.optimize.linear_sum_assignment``) per draw.
    With a cost on p alone, in one dimension, the optimum matches the draw's biases to the
    reference's in sorted order.

    Parameters
    ----------
    p : ndarray of shape (chain, draw, K)
    reference : ndarray of shape (K,)

    Returns
    -------
    ndarray of int, shape (chain, draw, K)
    """
    p = np.asarray(p, dtype=float)
    ref = np.asarray(reference, dtype=float)
    k = ref.size
    flat = p.reshape(-1, k)
    perms = np.empty(flat.shape, dtype=np.int64)
    cost = (flat[:, :, None] - ref[None, None, :]) ** 2  # (T, draw comp, ref comp)
    for t in range(flat.shape[0]):
        rows, cols = linear_sum_assignment(cost[t])
        perms[t, cols] = rows
    return perms.reshape(p.shape)


def apply_permutations(x: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Relabel draws: ``out[c, d, j] = x[c, d, perms[c, d, j]]``."""
    return np.take_along_axis(np.asarray(x), perms, axis=-1)


def draw_responsibilities(data, w, p) -> np.ndarray:
    """P(coin j | outcome m) for every draw, shape (chain, draw, M, K): em's batched E-step."""
    return e_step(data, MixtureParams(w, p)).resp


def stephens_permutations(
    resp: np.ndarray, counts: np.ndarray, init: np.ndarray, *, max_iter: int = 100
) -> tuple[np.ndarray, int]:
    """Stephens' (2000) relabelling by Kullback-Leibler divergence.

    Minimises the divergence between each draw's classification probabilities and their
    relabelled mean.
    Stephens, M. (2000). Dealing with label switching in mixture models. JRSS B 62, 795-809.
    Each sweep sets Q = mean over draws of the relabelled responsibilities, then gives each
    draw the permutation that minimises sum_m count_m KL(P_m || Q_m) (an assignment
    problem); it stops when no permutation changes. Outcomes are weighted by their counts,
    so the compressed data give the per-sequence criterion.

    Parameters
    ----------
    resp : ndarray of shape (chain, draw, M, K)
        Raw (unrelabelled) responsibilities of each draw.
    counts : ndarray of shape (M,)
    init : ndarray of int, shape (chain, draw, K)
        Starting permutations (e.g. the Hungarian match to EM's estimate).

    Returns
    -------
    (permutations, sweeps)
    """
    shape = init.shape
    k = shape[-1]
    flat_resp = np.asarray(resp).reshape(-1, resp.shape[-2], k)
    weighted = flat_resp * np.asarray(counts, dtype=float)[None, :, None]
    perms = init.reshape(-1, k).copy()
    sweeps = 0
    for sweeps in range(1, max_iter + 1):  # noqa: B007 - read after the loop
        relabelled = np.take_along_axis(flat_resp, perms[:, None, :], axis=-1)
        log_q = np.log(np.clip(relabelled.mean(axis=0), 1e-300, None))  # (M, K)
        cost = -np.einsum("tmi,mk->tik", weighted, log_q)  # draw comp i -> label k
        new = np.empty_like(perms)
        for t in range(perms.shape[0]):
            rows, cols = linear_sum_assignment(cost[t])
            new[t, cols] = rows
        if np.array_equal(new, perms):
            break
        perms = new
    return perms.reshape(shape), sweeps


def switching_summary(perms: np.ndarray, *, within_threshold: float = 0.05) -> dict:
    """Summarise the permutations of every chain.

    Per chain: the share of draws needing a non-identity permutation, the chain's most
    common permutation and the share of draws off it. Labels switch between chains when
    their most common permutations differ, and within one when more than
    ``within_threshold`` of its draws are off its most common permutation.
    """
    n_chain, _, k = perms.shape
    identity = np.arange(k)
    chains = []
    for c in range(n_chain):
        rows, freq = np.unique(perms[c], axis=0, return_counts=True)
        modal = rows[np.argmax(freq)]
        chains.append(
            {
                "chain": c,
                "non_identity_fraction": float(np.mean(np.any(perms[c] != identity, axis=-1))),
                "modal_permutation": modal.tolist(),
                "off_modal_fraction": float(1 - freq.max() / perms.shape[1]),
                "distinct_permutations": int(rows.shape[0]),
            }
        )
    between = len({tuple(ch["modal_permutation"]) for ch in chains}) > 1
    within = any(ch["off_modal_fraction"] > within_threshold for ch in chains)
    return {
        "between_chains": between,
        "within_chains": within,
        "detected": between or within,
        "within_threshold": within_threshold,
        "chains": chains,
    }


def match_permutations(data, w: np.ndarray, p: np.ndarray, reference: MixtureParams) -> np.ndarray:
    """Per draw, the permutation whose classification probabilities best match the reference's.

    Minimises the count-weighted cross-entropy sum_m c_m sum_j r_ref[m, j] log r[m, perm[j]]
    (Stephens' criterion with a fixed pivot), so weights and biases both count.
    (Interim; see the labels branch.)
    """
    ref = e_step(data, reference).resp * np.asarray(data.counts, dtype=float)[:, None]
    k = p.shape[-1]
    flat_w, flat_p = w.reshape(-1, k), p.reshape(-1, k)
    perms = np.empty(flat_p.shape, dtype=np.int64)
    for lo in range(0, flat_p.shape[0], 4096):
        resp = e_step(data, MixtureParams(flat_w[lo : lo + 4096], flat_p[lo : lo + 4096])).resp
        cost = -np.einsum("mj,tmi->tij", ref, np.log(np.clip(resp, 1e-300, None)))
        for t in range(cost.shape[0]):
            rows, cols = linear_sum_assignment(cost[t])
            perms[lo + t, cols] = rows
    return perms.reshape(p.shape)


def ordered_boundary_check(p: np.ndarray, *, share: float = 0.05) -> dict:
    """Whether the ordered model's draws pile against p_j = p_{j+1} (interim)."""
    k = p.shape[-1]
    if k < 2:
        return {"pressed_share": [], "threshold": share, "cuts_through_a_mode": False}
    gaps = np.diff(p, axis=-1).reshape(-1, k - 1)
    scale = p.reshape(-1, k).std(axis=0).mean()
    pressed = (gaps < 0.1 * scale).mean(axis=0)
    return {
        "pressed_share": pressed.tolist(),
        "threshold": share,
        "cuts_through_a_mode": bool(np.any(pressed > share)),
    }
