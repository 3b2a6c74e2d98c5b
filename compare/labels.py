"""Label switching: what the draws say about labels, and only where labels mean something.

Arrays of draws have shape (chain, draw, K). A permutation ``perm`` (K,) relabels one draw
by ``x[perm]``: relabelled component j is the draw's component ``perm[j]``. Every
permutation is applied to the weights and the biases together.

The functions come in four groups, meant to be called in this order (or all at once with
:func:`analyse_labels`):

1. :func:`identification` decides from the reference fit (EM's estimate) whether the
   labels are identified at all. At a collapsed fit (coinciding or empty components) or
   when Teicher's condition fails they are not: no matching or relabelled per-component
   summary means anything there.
2. Label-invariant quantities, meaningful always: :func:`log_likelihood_draws`,
   :func:`pmf_draws` (both in :func:`invariant_draws`) and :func:`coclustering`.
3. Where the labels are identified: :func:`kl_match` (Stephens' criterion against the
   reference's classification probabilities, which carries the weights as well as the
   biases), :func:`stephens_relabel` (Stephens' iterative relabelling from that match)
   and :func:`switching_verdict` (between and within chains, ambiguous draws set apart).
4. :func:`ordering_check` for the ordered-biases model: the share of draws whose adjacent
   biases are pressed against each other, i.e. whether the ordering cuts through a mode.

Every function over draws works in chunks of at most ``chunk_numbers`` numbers (draws x
outcomes x K), so 4 x 1000 draws of 10^4 outcomes never sit in memory at once.

:func:`hungarian_permutations` (matching on p alone) and :func:`switching_summary` are
kept for the existing report; in one dimension the former only sorts the draws by p.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
from scipy.linalg.blas import dsyrk
from scipy.optimize import linear_sum_assignment
from scipy.special import gammaln, xlogy

from em import BinomialData, MixtureParams, e_step, log_likelihood, reduce_params

__all__ = [
    "AMBIGUITY_NATS",
    "CACHE_NUMBERS",
    "CHUNK_NUMBERS",
    "DECIDED_SHARE",
    "PRESSED_SD",
    "PRESSED_SHARE",
    "WITHIN_SHARE",
    "ChainSwitching",
    "Identification",
    "LabelAnalysis",
    "OrderingCheck",
    "Relabelling",
    "Switching",
    "analyse_labels",
    "apply_permutations",
    "coclustering",
    "draw_responsibilities",
    "hungarian_permutations",
    "identification",
    "invariant_draws",
    "kl_match",
    "log_likelihood_draws",
    "match_permutations",
    "ordered_boundary_check",
    "ordering_check",
    "pmf_draws",
    "stephens_permutations",
    "stephens_relabel",
    "switching_summary",
    "switching_verdict",
]

#: Largest block of draws x outcomes x K computed at once (32 MB of float64).
CHUNK_NUMBERS = 4_000_000
#: Responsibilities of all draws are kept between Stephens' sweeps up to this many numbers
#: (160 MB); above it they are recomputed chunk by chunk at every sweep.
CACHE_NUMBERS = 20_000_000
#: A draw's labelling is decided when it beats every other labelling by this many nats of
#: count-weighted KL divergence (19 : 1 odds); closer than that the draw sits between two
#: labellings of overlapping components and is ambiguous, not switched.
AMBIGUITY_NATS = math.log(19.0)
#: Within-chain switching: more than this share of a chain's draws decidedly (by
#: ``AMBIGUITY_NATS``) in a labelling other than the chain's modal one.
WITHIN_SHARE = 0.01
#: A chain's modal labelling counts (between chains) when at least this share of its draws
#: is decided; the posterior tells the labels apart when this share of all draws is.
DECIDED_SHARE = 0.5
#: Ordered model: adjacent biases are pressed when their gap is at most this many
#: posterior standard deviations of p (pooled over the pair) ...
PRESSED_SD = 0.5
#: ... and the ordering cuts through a mode when more than this share of draws is pressed.
PRESSED_SHARE = 0.05

_TINY = 1e-300  # stands in for log(0) in log Q: finite, and 0 * log(_TINY) = 0
_ORDER_ROUNDING = 1e-9  # ordered draws may decrease by rounding this much (a gap of 0)


# ---------------------------------------------------------------------- validation
def _check_p(p, name: str = "p") -> np.ndarray:
    """Biases as floats of shape (chain, draw, K) in [0, 1], or a ValueError naming one."""
    p = np.asarray(p, dtype=float)
    if p.ndim != 3 or 0 in p.shape:
        raise ValueError(f"{name} must have shape (chain, draw, K), none of them 0, got {p.shape}")
    _check_values(p, name, (p >= 0) & (p <= 1), "outside [0, 1]")
    return p


def _check_draws(w, p, *, name_w: str = "w", name_p: str = "p") -> tuple[np.ndarray, np.ndarray]:
    """Float arrays of shape (chain, draw, K), or a ValueError naming the first bad draw."""
    p = _check_p(p, name_p)
    w = np.asarray(w, dtype=float)
    if w.shape != p.shape:
        raise ValueError(f"{name_w} and {name_p} must have one shape, got {w.shape} and {p.shape}")
    _check_values(w, name_w, w >= 0, "negative")
    sums = w.sum(axis=-1)
    bad = np.abs(sums - 1.0) > 1e-6
    if np.any(bad):
        c, d = np.argwhere(bad)[0]
        raise ValueError(f"{name_w}[{c}, {d}] sums to {float(sums[c, d])!r}, not 1")
    return w, p


def _check_values(x: np.ndarray, name: str, ok: np.ndarray, what: str) -> None:
    bad = ~(np.isfinite(x) & ok)
    if np.any(bad):
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        at = ", ".join(map(str, idx))
        raise ValueError(f"{name}[{at}] = {float(x[idx])!r} is non-finite or {what}")


def _check_reference(reference, k: int | None = None) -> MixtureParams:
    """One mixture (1-D weights and p, of K components if ``k`` is given)."""
    try:
        ref = MixtureParams(reference.weights, reference.p)
    except (AttributeError, TypeError, ValueError):
        raise ValueError(
            f"reference must have numeric weights and p, got {type(reference).__name__}"
        ) from None
    if ref.p.ndim != 1 or ref.weights.shape != ref.p.shape or (k is not None and ref.p.size != k):
        want = "K" if k is None else f"K = {k}"
        raise ValueError(
            f"reference must be one mixture of {want} components (1-D weights and p of one "
            f"length), got weights of shape {ref.weights.shape} and p {ref.p.shape}"
        )
    _check_values(ref.p, "reference.p", (ref.p >= 0) & (ref.p <= 1), "outside [0, 1]")
    _check_values(ref.weights, "reference.weights", ref.weights >= 0, "negative")
    if abs(ref.weights.sum() - 1.0) > 1e-6:
        raise ValueError(f"reference.weights sum to {float(ref.weights.sum())!r}, not 1")
    return ref


def _check_perms(perms, shape: tuple) -> np.ndarray:
    perms = np.asarray(perms)
    if perms.shape != shape or not np.issubdtype(perms.dtype, np.integer):
        raise ValueError(f"permutations must be integers of shape {shape}, got {perms.shape}")
    ok = np.all(np.sort(perms, axis=-1) == np.arange(shape[-1]), axis=-1)
    if not np.all(ok):
        c, d = np.argwhere(~ok)[0]
        raise ValueError(f"permutations[{c}, {d}] = {perms[c, d].tolist()} is not a permutation")
    return perms.astype(np.int64)


def _check_positive(value: float, name: str, *, upper: float | None = None) -> float:
    value = float(value)
    if not np.isfinite(value) or value < 0 or (upper is not None and value > upper):
        bound = f" and <= {upper}" if upper is not None else ""
        raise ValueError(f"{name} must be finite, >= 0{bound}, got {value!r}")
    return value


# ---------------------------------------------------------------------- identification
@dataclass(frozen=True)
class Identification:
    """Whether the reference fit identifies its components' labels.

    Attributes
    ----------
    identified : bool
        ``teicher_condition and not collapsed``. When False, no matching, relabelling or
        per-component summary is meaningful: only label-invariant quantities are.
    collapsed : bool
        The reference reduces (:func:`em.reduce_params`) to fewer components: some
        coincide (equal p, weights free along a ridge) or are empty.
    teicher_condition : bool
        max trials >= 2K - 1 (Teicher, 1963), without which no binomial K-mixture is
        identifiable.
    components, effective_components : int
        K and the number of components after reduction.
    max_trials, required_trials : int
        The data's largest number of trials and 2K - 1.
    reason : str
        Why the labels are not identified ("" when they are).
    """

    identified: bool
    collapsed: bool
    teicher_condition: bool
    components: int
    effective_components: int
    max_trials: int
    required_trials: int
    reason: str

    def to_dict(self) -> dict:
        """Plain values, for JSON."""
        return asdict(self)


def identification(data: BinomialData, reference) -> Identification:
    """Decide whether the labels of ``reference`` (e.g. EM's best fit) are identified.

    Parameters
    ----------
    data : BinomialData
    reference : MixtureParams or any object with 1-D ``weights`` and ``p``
        The fit the draws would be matched to.

    Returns
    -------
    Identification
    """
    ref = _check_reference(reference)
    k = ref.n_components
    reduced = reduce_params(data, ref)
    collapsed = reduced.n_components < k
    teicher = data.max_trials >= 2 * k - 1
    reasons = []
    if collapsed:
        reasons.append(
            f"the {k} components reduce to {reduced.n_components} "
            f"(p = {', '.join(f'{x:.4f}' for x in reduced.p)})"
        )
    if not teicher:
        reasons.append(f"max trials {data.max_trials} < 2K - 1 = {2 * k - 1} (Teicher, 1963)")
    return Identification(
        identified=not reasons,
        collapsed=collapsed,
        teicher_condition=teicher,
        components=k,
        effective_components=reduced.n_components,
        max_trials=data.max_trials,
        required_trials=2 * k - 1,
        reason="; ".join(reasons),
    )


# ---------------------------------------------------------------------- chunks of draws
def _draw_step(per_draw: int, chunk_numbers: int) -> int:
    if isinstance(chunk_numbers, bool) or not isinstance(chunk_numbers, int | np.integer):
        raise ValueError(f"chunk_numbers must be an integer >= 1, got {chunk_numbers!r}")
    if chunk_numbers < 1:
        raise ValueError(f"chunk_numbers must be an integer >= 1, got {chunk_numbers!r}")
    return max(1, int(chunk_numbers) // max(per_draw, 1))


class _Responsibilities:
    """P(coin | outcome) of every draw, served in chunks of draws (flattened chain x draw).

    Kept in memory between passes when all of them take at most ``cache_numbers``
    numbers; recomputed chunk by chunk (em's batched E-step) otherwise.
    """

    def __init__(self, data, w, p, chunk_numbers=CHUNK_NUMBERS, cache_numbers=CACHE_NUMBERS):
        k = w.shape[-1]
        self.data, self.w, self.p = data, w.reshape(-1, k), p.reshape(-1, k)
        self.n_draws, self.k = self.w.shape
        per_draw = data.n_outcomes * k
        self.step = _draw_step(per_draw, chunk_numbers)
        self._cache = None
        if self.n_draws * per_draw <= cache_numbers:
            self._cache = np.concatenate([r for _, r in self._compute()], axis=0)

    def _compute(self) -> Iterator[tuple[slice, np.ndarray]]:
        for start in range(0, self.n_draws, self.step):
            sl = slice(start, min(start + self.step, self.n_draws))
            yield sl, e_step(self.data, MixtureParams(self.w[sl], self.p[sl])).resp

    def __iter__(self) -> Iterator[tuple[slice, np.ndarray]]:
        if self._cache is None:
            yield from self._compute()
            return
        for start in range(0, self.n_draws, self.step):
            sl = slice(start, min(start + self.step, self.n_draws))
            yield sl, self._cache[sl]


# ---------------------------------------------------------------------- label-invariant
def log_likelihood_draws(
    data: BinomialData, w, p, *, chunk_numbers: int = CHUNK_NUMBERS
) -> np.ndarray:
    """Full log-likelihood of the data at every draw, shape (chain, draw).

    Label-invariant. Computed by :func:`em.log_likelihood` over chunks of draws.
    """
    w, p = _check_draws(w, p)
    k = p.shape[-1]
    fw, fp = w.reshape(-1, k), p.reshape(-1, k)
    step = _draw_step(data.n_outcomes * k, chunk_numbers)
    out = np.empty(fw.shape[0])
    for s in range(0, fw.shape[0], step):
        out[s : s + step] = log_likelihood(data, MixtureParams(fw[s : s + step], fp[s : s + step]))
    return out.reshape(p.shape[:2])


def pmf_draws(w, p, trials: int, *, chunk_numbers: int = CHUNK_NUMBERS) -> np.ndarray:
    """Fitted pmf P(heads = 0..trials) at every draw, shape (chain, draw, trials + 1).

    Label-invariant: the mixture, not its components. Equals :func:`em.mixture_pmf` draw
    by draw.
    """
    w, p = _check_draws(w, p)
    if isinstance(trials, bool) or not isinstance(trials, int | np.integer) or trials < 0:
        raise ValueError(f"trials must be an integer >= 0, got {trials!r}")
    trials = int(trials)
    k = p.shape[-1]
    fw, fp = w.reshape(-1, k), p.reshape(-1, k)
    h = np.arange(trials + 1, dtype=float)[:, None]  # (H, 1)
    log_c = gammaln(trials + 1.0) - gammaln(h + 1.0) - gammaln(trials - h + 1.0)
    step = _draw_step((trials + 1) * k, chunk_numbers)
    out = np.empty((fw.shape[0], trials + 1))
    for s in range(0, fw.shape[0], step):
        pc = fp[s : s + step, None, :]  # (t, 1, K)
        comp = np.exp(log_c + xlogy(h, pc) + xlogy(trials - h, 1.0 - pc))  # (t, H, K)
        out[s : s + step] = np.einsum("thk,tk->th", comp, fw[s : s + step])
    return out.reshape(p.shape[:2] + (trials + 1,))


def _most_common_trials(data: BinomialData) -> int:
    """The number of trials most sequences have (the smallest such on a tie)."""
    tally = np.bincount(data.trials, weights=data.counts)
    return int(np.argmax(tally))


def invariant_draws(
    data: BinomialData, w, p, n: int | None = None, *, chunk_numbers: int = CHUNK_NUMBERS
) -> dict:
    """Label-invariant quantities per draw: ``log_likelihood`` and ``pmf``.

    A chunked drop-in for :func:`compare.diagnostics.invariant_draws` (same arguments and
    keys). ``n`` is the number of trials of the pmf; by default the number most
    sequences have.

    Returns
    -------
    dict
        ``{"log_likelihood": (chain, draw), "pmf": (chain, draw, n + 1)}``.
    """
    n = _most_common_trials(data) if n is None else n
    return {
        "log_likelihood": log_likelihood_draws(data, w, p, chunk_numbers=chunk_numbers),
        "pmf": pmf_draws(w, p, n, chunk_numbers=chunk_numbers),
    }


def _outcome_subset(data: BinomialData, outcomes) -> BinomialData:
    if outcomes is None:
        return data
    idx = np.asarray(outcomes)
    if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"outcomes must be a non-empty 1-D array of integer indices, got {idx!r}")
    bad = (idx < 0) | (idx >= data.n_outcomes)
    if np.any(bad):
        i = int(np.argmax(bad))
        raise ValueError(f"outcomes[{i}] = {idx[i]} is not in 0..{data.n_outcomes - 1}")
    return BinomialData(data.heads[idx], data.trials[idx], data.counts[idx], data.source)


def coclustering(
    data: BinomialData, w, p, *, outcomes=None, chunk_numbers: int = CHUNK_NUMBERS
) -> np.ndarray:
    """Posterior probability that two sequences come from the same coin, per outcome pair.

    ``out[m, m'] = mean over draws of sum_j r_mj r_m'j``, with ``r_mj`` = P(coin j |
    outcome m) at the draw: the probability that two distinct sequences, with outcomes m
    and m', were produced by one coin. Label-invariant (a relabelling permutes j in both
    factors), so it is meaningful at a collapsed fit too, where it is flat. The diagonal
    is for two distinct sequences with the same outcome: 1 only if that outcome comes from
    one coin for certain.

    Parameters
    ----------
    data : BinomialData
    w, p : ndarray of shape (chain, draw, K)
    outcomes : array of int, optional
        Indices of the distinct outcomes to include (default all of them). The result is
        M x M: restrict it when there are many outcomes (10^4 outcomes make 800 MB).
    chunk_numbers : int
        Largest number of draws x outcomes x K held at once.

    Returns
    -------
    ndarray of shape (M, M), over ``data``'s distinct outcomes (or ``outcomes``)
        Symmetric, clipped to [0, 1] against rounding.
    """
    w, p = _check_draws(w, p)
    sub = _outcome_subset(data, outcomes)
    resp = _Responsibilities(sub, w, p, chunk_numbers, cache_numbers=0)
    m = sub.n_outcomes
    acc = np.zeros((m, m), order="F")  # BLAS updates its upper triangle in place
    for _, r in resp:
        x = np.asfortranarray(r.transpose(1, 0, 2).reshape(m, -1))  # (M, t K)
        acc = dsyrk(1.0 / resp.n_draws, x, beta=1.0, c=acc, overwrite_c=1)
    return np.clip(_symmetrise_upper(acc), 0.0, 1.0, out=acc)  # rounding: 1 + 7e-16 seen


def _symmetrise_upper(a: np.ndarray, block: int = 512) -> np.ndarray:
    """Copy the upper triangle onto the lower one in place, a block of columns at a time."""
    for s in range(0, a.shape[0], block):
        e = min(s + block, a.shape[0])
        a[s:e, :s] = a[:s, s:e].T
        diag = a[s:e, s:e]
        lower = np.tril_indices(e - s, -1)
        diag[lower] = diag.T[lower]
    return a


# ---------------------------------------------------------------------- matching
@dataclass(frozen=True, eq=False)
class Relabelling:
    """One permutation per draw, with what each labelling costs.

    Attributes
    ----------
    permutations : ndarray of int, shape (chain, draw, K)
        Apply with :func:`apply_permutations` (weights and p alike).
    cost : ndarray of shape (chain, draw, K, K)
        ``cost[c, d, i, k]`` = -sum_m count_m r_mi log q_mk: the count-weighted cross-
        entropy (nats) of giving the draw's component i the label k, against the
        classification probabilities q (the reference's, or Stephens' mean). The cost of a
        labelling is the sum over its pairs; cost differences are differences of
        sum_m count_m KL(r_m || q_m).
    margin : ndarray of shape (chain, draw)
        Cost of the runner-up labelling minus that of the chosen one (>= 0; inf if K = 1).
        A small margin is a draw between two labellings (overlapping components).
    classification : ndarray of shape (M, K)
        q: for a fixed pivot, the reference's P(coin | outcome); for Stephens, the mean over
        draws of the relabelled responsibilities at the final permutations (the
        posterior's Table 6.1, relabelled; the q of ``cost`` once converged).
    criterion : str
    sweeps : int
        Stephens' sweeps (0 for a match to a fixed pivot).
    converged : bool
        Stephens: no permutation changed in the last sweep (True for a fixed pivot).
    """

    permutations: np.ndarray
    cost: np.ndarray
    margin: np.ndarray
    classification: np.ndarray
    criterion: str
    sweeps: int = 0
    converged: bool = True

    def labelling_cost(self, perm) -> np.ndarray:
        """Cost (nats) of relabelling every draw with the one permutation ``perm``."""
        perm = np.asarray(perm)
        return self.cost[..., perm, np.arange(perm.size)].sum(axis=-1)

    def chosen_cost(self) -> np.ndarray:
        """Cost of each draw's own permutation, shape (chain, draw)."""
        k = self.permutations.shape[-1]
        picked = np.take_along_axis(self.cost, self.permutations[..., None, :], axis=-2)
        return picked.reshape(self.permutations.shape[:2] + (k,)).sum(axis=-1)


def _kl_cost(resp: np.ndarray, weighted_log_q: np.ndarray) -> np.ndarray:
    """cost[t, i, k] = -sum_m r[t, m, i] c_m log q[m, k], shape (t, K, K)."""
    return -np.matmul(resp.transpose(0, 2, 1), weighted_log_q)


def _assign(cost: np.ndarray, *, runner_up: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Best permutation per (t, K, K) cost matrix and, optionally, the runner-up's margin.

    The runner-up differs from the best in at least one pair: it is the best assignment
    with one of the best's pairs forbidden, minimised over those pairs (Murty's first
    partition), each solved by ``linear_sum_assignment``.
    """
    t, k, _ = cost.shape
    perms = np.empty((t, k), dtype=np.int64)
    margin = np.full(t, np.inf) if runner_up else None
    for i in range(t):
        rows, cols = linear_sum_assignment(cost[i])
        perms[i, cols] = rows
        if not runner_up or k == 1:
            continue
        best = cost[i, rows, cols].sum()
        second = np.inf
        for r, c in zip(rows, cols, strict=True):
            masked = cost[i].copy()
            masked[r, c] = np.inf
            rr, cc = linear_sum_assignment(masked)
            second = min(second, masked[rr, cc].sum())
        margin[i] = max(second - best, 0.0)
    return perms, margin


def _log_q(q: np.ndarray) -> np.ndarray:
    return np.log(np.clip(q, _TINY, None))


def kl_match(
    data: BinomialData, w, p, reference, *, chunk_numbers: int = CHUNK_NUMBERS
) -> Relabelling:
    """Match every draw to ``reference`` by Stephens' criterion with a fixed pivot.

    Each draw gets the permutation minimising sum_m count_m KL(r_m(draw) || q_m), with
    q_m the reference's classification probabilities P(coin | outcome m) (em's E-step)
    and r_m the draw's, relabelled: a linear assignment per draw (Stephens, 2000, JRSS B
    62:795-809, with q held at the pivot). The responsibilities carry the weights as well
    as the biases, so components with close p and distinct weights are told apart, which
    matching on p alone cannot do. Outcomes are weighted by their counts: the compressed
    data give the per-sequence criterion.

    Parameters
    ----------
    data : BinomialData
    w, p : ndarray of shape (chain, draw, K)
    reference : MixtureParams or any object with 1-D ``weights`` and ``p``
        E.g. EM's best estimate. Use it only where :func:`identification` says the labels
        are identified.
    chunk_numbers : int
        Largest number of draws x outcomes x K held at once.

    Returns
    -------
    Relabelling
        With the margin of every draw over its runner-up labelling.
    """
    w, p = _check_draws(w, p)
    ref = _check_reference(reference, p.shape[-1])
    q = e_step(data, ref).resp
    weighted = data.counts.astype(float)[:, None] * _log_q(q)
    resp = _Responsibilities(data, w, p, chunk_numbers, cache_numbers=0)
    cost = np.empty((resp.n_draws, resp.k, resp.k))
    for sl, r in resp:
        cost[sl] = _kl_cost(r, weighted)
    perms, margin = _assign(cost, runner_up=True)
    shape = p.shape[:2]
    return Relabelling(
        permutations=perms.reshape(p.shape),
        cost=cost.reshape(shape + (resp.k, resp.k)),
        margin=margin.reshape(shape),
        classification=q,
        criterion="Stephens (2000) KL criterion against the reference's classification",
    )


def stephens_relabel(
    data: BinomialData,
    w,
    p,
    init,
    *,
    max_iter: int = 100,
    chunk_numbers: int = CHUNK_NUMBERS,
    cache_numbers: int = CACHE_NUMBERS,
) -> Relabelling:
    """Stephens' (2000) iterative KL relabelling, in chunks of draws.

    Each sweep sets q = the mean over draws of the relabelled responsibilities, then gives
    every draw the permutation minimising sum_m count_m KL(r_m || q_m); it stops when no
    permutation changes. The same algorithm as :func:`stephens_permutations`, which needs
    every draw's responsibilities at once: here they are recomputed chunk by chunk when
    they exceed ``cache_numbers`` (one E-step per chunk and sweep).

    Parameters
    ----------
    data : BinomialData
    w, p : ndarray of shape (chain, draw, K)
    init : ndarray of int, shape (chain, draw, K)
        Starting permutations, e.g. :func:`kl_match`'s.
    max_iter : int
        Largest number of sweeps.
    chunk_numbers, cache_numbers : int
        Block size of a computation, and the most numbers kept between sweeps.

    Returns
    -------
    Relabelling
        Costs and margins against the final q; ``converged`` says whether the last sweep
        changed nothing.
    """
    w, p = _check_draws(w, p)
    perms = _check_perms(init, p.shape).reshape(-1, p.shape[-1])
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    resp = _Responsibilities(data, w, p, chunk_numbers, cache_numbers)
    counts = data.counts.astype(float)[:, None]
    q_sum = np.zeros((data.n_outcomes, resp.k))
    for sl, r in resp:
        q_sum += np.take_along_axis(r, perms[sl, None, :], axis=-1).sum(axis=0)
    cost = np.empty((resp.n_draws, resp.k, resp.k))
    converged, sweeps = False, 0
    for sweeps in range(1, max_iter + 1):  # noqa: B007 - read after the loop
        weighted = counts * _log_q(q_sum / resp.n_draws)
        new = np.empty_like(perms)
        q_sum = np.zeros_like(q_sum)
        for sl, r in resp:
            cost[sl] = _kl_cost(r, weighted)
            new[sl], _ = _assign(cost[sl], runner_up=False)
            q_sum += np.take_along_axis(r, new[sl, None, :], axis=-1).sum(axis=0)
        converged = bool(np.array_equal(new, perms))
        perms = new
        if converged:
            break
    _, margin = _assign(cost, runner_up=True)
    shape = p.shape[:2]
    return Relabelling(
        permutations=perms.reshape(p.shape),
        cost=cost.reshape(shape + (resp.k, resp.k)),
        margin=margin.reshape(shape),
        classification=q_sum / resp.n_draws,
        criterion="Stephens (2000) KL relabelling",
        sweeps=sweeps,
        converged=converged,
    )


# ---------------------------------------------------------------------- switching verdict
@dataclass(frozen=True)
class ChainSwitching:
    """How one chain's draws are labelled.

    Attributes
    ----------
    chain : int
    modal_permutation : list of int
        The most common permutation among the chain's decided draws (among all draws if
        none is decided).
    decided_fraction : float
        Share of draws whose labelling beats every other by the margin.
    off_modal_fraction : float
        Share of draws whose own labelling beats the modal one by the margin: decidedly in
        another labelling. Ambiguous draws never count here.
    n_switches : int
        Changes of labelling along the chain's decided draws.
    within : bool
        ``off_modal_fraction > within_threshold``.
    """

    chain: int
    modal_permutation: list
    decided_fraction: float
    off_modal_fraction: float
    n_switches: int
    within: bool


@dataclass(frozen=True)
class Switching:
    """The switching verdict of a :class:`Relabelling`.

    Attributes
    ----------
    between_chains : bool
        Chains with a decided labelling (``decided_fraction >= DECIDED_SHARE``) have
        different modal permutations.
    within_chains : bool
        Some chain's ``within`` is True.
    detected : bool
        Either of the two.
    distinguishable : bool
        At least ``DECIDED_SHARE`` of all draws are decided: the posterior tells the
        labellings apart. When False the components overlap so much that relabelled
        per-component summaries mean little even at an identified fit.
    decided_fraction : float
        Over all draws.
    margin_nats, within_threshold, decided_share : float
        The thresholds used.
    chains : tuple of ChainSwitching
    """

    between_chains: bool
    within_chains: bool
    detected: bool
    distinguishable: bool
    decided_fraction: float
    margin_nats: float
    within_threshold: float
    decided_share: float
    chains: tuple

    def to_dict(self) -> dict:
        """Plain values, for JSON."""
        return asdict(self) | {"chains": [asdict(c) for c in self.chains]}


def _chain_switching(
    c: int, relab: Relabelling, chosen: np.ndarray, margin: float, within_threshold: float
) -> ChainSwitching:
    perms = relab.permutations[c]
    decided = relab.margin[c] >= margin
    pool = perms[decided] if np.any(decided) else perms
    rows, freq = np.unique(pool, axis=0, return_counts=True)
    modal = rows[np.argmax(freq)]
    gain = relab.labelling_cost(modal)[c] - chosen[c]  # >= 0 where the chosen one is best
    off = float(np.mean(gain >= margin))
    seq = perms[decided]
    switches = int(np.sum(np.any(seq[1:] != seq[:-1], axis=-1))) if seq.shape[0] > 1 else 0
    return ChainSwitching(
        chain=c,
        modal_permutation=modal.tolist(),
        decided_fraction=float(np.mean(decided)),
        off_modal_fraction=off,
        n_switches=switches,
        within=off > within_threshold,
    )


def switching_verdict(
    relabelling: Relabelling,
    *,
    margin: float = AMBIGUITY_NATS,
    within_threshold: float = WITHIN_SHARE,
    decided_share: float = DECIDED_SHARE,
) -> Switching:
    """Whether labels switch between and within chains, ambiguous draws set apart.

    A draw is *decided* when its labelling beats every other by ``margin`` nats of
    count-weighted KL divergence: the expected log-likelihood ratio, under the reference's
    classification, of the draw's allocations labelled one way rather than the other. The
    default log(19) is 19 : 1 odds. Draws near the boundary between two labellings of
    overlapping components are ambiguous, legitimately: they are neither switched nor
    counted against the chain's modal labelling. Switching *within* a chain: more than
    ``within_threshold`` of its draws decidedly (by ``margin``) in a labelling other than
    its modal one; *between* chains: chains whose labelling is decided have different
    modal permutations.

    Parameters
    ----------
    relabelling : Relabelling
        Normally :func:`kl_match`'s (the verdict is relative to the reference).
    margin : float
        Nats; 0 counts every draw as decided.
    within_threshold : float
        Share of a chain's draws, in [0, 1].
    decided_share : float
        Share of decided draws for a chain to count between chains, and of all draws for
        ``distinguishable``, in [0, 1].

    Returns
    -------
    Switching
    """
    margin = _check_positive(margin, "margin")
    within_threshold = _check_positive(within_threshold, "within_threshold", upper=1.0)
    decided_share = _check_positive(decided_share, "decided_share", upper=1.0)
    n_chain = relabelling.permutations.shape[0]
    chosen = relabelling.chosen_cost()
    chains = tuple(
        _chain_switching(c, relabelling, chosen, margin, within_threshold) for c in range(n_chain)
    )
    decided_modals = {
        tuple(ch.modal_permutation) for ch in chains if ch.decided_fraction >= decided_share
    }
    decided_all = float(np.mean(relabelling.margin >= margin))
    between = len(decided_modals) > 1
    within = any(ch.within for ch in chains)
    return Switching(
        between_chains=between,
        within_chains=within,
        detected=between or within,
        distinguishable=decided_all >= decided_share,
        decided_fraction=decided_all,
        margin_nats=margin,
        within_threshold=within_threshold,
        decided_share=decided_share,
        chains=chains,
    )


# ---------------------------------------------------------------------- ordered model
@dataclass(frozen=True)
class OrderingCheck:
    """Whether the ordering constraint p_1 <= ... <= p_K cuts through a mode.

    Attributes
    ----------
    pressed_fraction : list of float
        Per adjacent pair (j, j + 1): share of draws with p_{j+1} - p_j <= ``tau_sd`` x
        ``scale[j]``.
    scale : list of float
        Pooled posterior sd of the pair, sqrt((sd_j^2 + sd_{j+1}^2) / 2), over all draws.
    tau_sd, threshold : float
        The thresholds used.
    cuts_through : bool
        Some pair's ``pressed_fraction`` exceeds ``threshold``: draws pile against the
        boundary p_j = p_{j+1}, so the constraint splits one mode rather than separating
        modes, and its per-component summaries are those of a truncated mode.
    """

    pressed_fraction: list
    scale: list
    tau_sd: float
    threshold: float
    cuts_through: bool

    def to_dict(self) -> dict:
        """Plain values, for JSON."""
        return asdict(self)


def ordering_check(p, *, tau_sd: float = PRESSED_SD, threshold: float = PRESSED_SHARE):
    """Share of draws whose adjacent biases are pressed together, and the verdict.

    When the ordered model's modes are well separated, the gap between adjacent biases is
    many posterior sds wide and no draw comes near the boundary. When the unconstrained
    mode sits on the diagonal p_j = p_{j+1} (coinciding or overlapping components), the
    constraint folds it: gaps pile up near 0. With the defaults (gap <= 0.5 pooled sd in
    more than 5% of draws) a pair is flagged when its modes are less than about 2.8
    sd apart (gap ~ N(delta, 2 sd^2): P(gap <= 0.5 sd) = 5% at delta = 2.83 sd), i.e. when
    about 2% or more of the unconstrained mode would lie across the boundary; two
    coinciding components give about 23%.

    Parameters
    ----------
    p : ndarray of shape (chain, draw, K)
        Draws of the ordered-biases model (non-decreasing along K; a decrease of up to
        1e-9, rounding, counts as a gap of 0).
    tau_sd : float
        "Pressed" gap in pooled posterior sds.
    threshold : float
        Share of pressed draws above which the ordering cuts through a mode, in [0, 1].

    Returns
    -------
    OrderingCheck
    """
    p = _check_p(p)
    tau_sd = _check_positive(tau_sd, "tau_sd")
    threshold = _check_positive(threshold, "threshold", upper=1.0)
    gaps = np.diff(p, axis=-1)  # (chain, draw, K - 1)
    if np.any(gaps < -_ORDER_ROUNDING):
        c, d, j = np.argwhere(gaps < -_ORDER_ROUNDING)[0]
        raise ValueError(
            f"p[{c}, {d}] is not in increasing order (p[{j}] = {float(p[c, d, j])!r} > "
            f"p[{j + 1}] = {float(p[c, d, j + 1])!r}): pass the ordered model's draws"
        )
    flat = p.reshape(-1, p.shape[-1])
    if flat.shape[0] < 2:
        raise ValueError("p must hold at least 2 draws to have a posterior sd")
    sd = flat.std(axis=0, ddof=1)
    scale = np.sqrt(0.5 * (sd[:-1] ** 2 + sd[1:] ** 2))
    pressed = (gaps <= tau_sd * scale).mean(axis=(0, 1))
    return OrderingCheck(
        pressed_fraction=pressed.tolist(),
        scale=scale.tolist(),
        tau_sd=tau_sd,
        threshold=threshold,
        cuts_through=bool(np.any(pressed > threshold)),
    )


# ---------------------------------------------------------------------- all at once
@dataclass(frozen=True, eq=False)
class LabelAnalysis:
    """Everything :func:`analyse_labels` finds.

    Attributes
    ----------
    identification : Identification
    identified : bool
        The labels mean something: the reference identifies them and (when matched) the
        posterior tells them apart. When False summarise only ``log_likelihood``, ``pmf``
        and ``coclustering``; :meth:`relabel` refuses.
    log_likelihood : ndarray of shape (chain, draw)
    pmf : ndarray of shape (chain, draw, pmf_trials + 1)
    pmf_trials : int
    coclustering : ndarray of shape (M, M)
        See :func:`coclustering`; over ``coclustering_outcomes`` if given.
    match : Relabelling or None
        :func:`kl_match` to the reference; None when the fit does not identify labels.
    switching : Switching or None
        :func:`switching_verdict` of ``match``.
    relabelling : Relabelling or None
        :func:`stephens_relabel` started from ``match``.
    """

    identification: Identification
    identified: bool
    log_likelihood: np.ndarray
    pmf: np.ndarray
    pmf_trials: int
    coclustering: np.ndarray
    match: Relabelling | None
    switching: Switching | None
    relabelling: Relabelling | None

    def relabel(self, x) -> np.ndarray:
        """Apply Stephens' permutations to a (chain, draw, K) array (weights or p)."""
        if not self.identified:
            raise ValueError(f"the labels are not identified: {self.reason()}")
        return apply_permutations(x, self.relabelling.permutations)

    def reason(self) -> str:
        """Why the labels are not identified ("" when they are)."""
        if self.identification.reason:
            return self.identification.reason
        if self.switching is not None and not self.switching.distinguishable:
            return (
                f"only {self.switching.decided_fraction:.0%} of the draws are decided "
                f"between labellings (margin {self.switching.margin_nats:.2f} nats)"
            )
        return ""

    def to_dict(self) -> dict:
        """The verdicts and co-clustering as plain values, for JSON (no per-draw arrays)."""
        relab = None
        if self.relabelling is not None:
            changed = np.any(self.relabelling.permutations != self.match.permutations, axis=-1)
            relab = {
                "criterion": self.relabelling.criterion,
                "sweeps": self.relabelling.sweeps,
                "converged": self.relabelling.converged,
                "changed_from_match": float(np.mean(changed)),
            }
        return {
            "identified": self.identified,
            "reason": self.reason(),
            "identification": self.identification.to_dict(),
            "switching": None if self.switching is None else self.switching.to_dict(),
            "relabelling": relab,
            "pmf_trials": self.pmf_trials,
            "coclustering": self.coclustering.tolist(),
        }


def analyse_labels(
    data: BinomialData,
    w,
    p,
    reference,
    *,
    pmf_trials: int | None = None,
    coclustering_outcomes=None,
    max_iter: int = 100,
    chunk_numbers: int = CHUNK_NUMBERS,
) -> LabelAnalysis:
    """Label-invariant summaries always; matching, verdict and relabelling where they mean it.

    Parameters
    ----------
    data : BinomialData
    w, p : ndarray of shape (chain, draw, K)
        Draws of the exchangeable model.
    reference : MixtureParams or any object with 1-D ``weights`` and ``p``
        EM's best estimate.
    pmf_trials : int, optional
        Trials of the fitted pmf (default: the number most sequences have).
    coclustering_outcomes : array of int, optional
        Restrict the co-clustering matrix to these distinct outcomes.
    max_iter : int
        Stephens' sweeps at most.
    chunk_numbers : int
        Largest number of draws x outcomes x K held at once.

    Returns
    -------
    LabelAnalysis
    """
    w, p = _check_draws(w, p)
    ident = identification(data, _check_reference(reference, p.shape[-1]))
    n = _most_common_trials(data) if pmf_trials is None else pmf_trials
    inv = invariant_draws(data, w, p, n, chunk_numbers=chunk_numbers)
    cocl = coclustering(data, w, p, outcomes=coclustering_outcomes, chunk_numbers=chunk_numbers)
    match = switching = relab = None
    if ident.identified:
        match = kl_match(data, w, p, reference, chunk_numbers=chunk_numbers)
        switching = switching_verdict(match)
        relab = stephens_relabel(
            data, w, p, match.permutations, max_iter=max_iter, chunk_numbers=chunk_numbers
        )
    return LabelAnalysis(
        identification=ident,
        identified=ident.identified and switching.distinguishable,
        log_likelihood=inv["log_likelihood"],
        pmf=inv["pmf"],
        pmf_trials=int(n),
        coclustering=cocl,
        match=match,
        switching=switching,
        relabelling=relab,
    )


# ---------------------------------------------------------------------- kept from before
def hungarian_permutations(p: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """For each draw, the permutation closest to ``reference`` in squared distance on p.

    Solved by Hungarian assignment (``scipy.optimize.linear_sum_assignment``) per draw.
    With a cost on p alone, in one dimension, the optimum matches the draw's biases to the
    reference's in sorted order: this is sorting, whatever the reference, and it ignores
    the weights. Use :func:`kl_match` to match components.

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
    """P(coin j | outcome m) for every draw, shape (chain, draw, M, K): em's batched E-step.

    Holds every draw at once; the functions above work in chunks instead.
    """
    return e_step(data, MixtureParams(w, p)).resp


def stephens_permutations(
    resp: np.ndarray, counts: np.ndarray, init: np.ndarray, *, max_iter: int = 100
) -> tuple[np.ndarray, int]:
    """Stephens' (2000) relabelling by Kullback-Leibler divergence, on responsibilities in memory.

    Minimises the divergence between each draw's classification probabilities and their
    relabelled mean.
    Stephens, M. (2000). Dealing with label switching in mixture models. JRSS B 62, 795-809.
    Each sweep sets Q = mean over draws of the relabelled responsibilities, then gives each
    draw the permutation that minimises sum_m count_m KL(P_m || Q_m) (an assignment
    problem); it stops when no permutation changes. Outcomes are weighted by their counts,
    so the compressed data give the per-sequence criterion. :func:`stephens_relabel` is
    the same algorithm from the draws, in chunks.

    Parameters
    ----------
    resp : ndarray of shape (chain, draw, M, K)
        Raw (unrelabelled) responsibilities of each draw.
    counts : ndarray of shape (M,)
    init : ndarray of int, shape (chain, draw, K)
        Starting permutations (e.g. the match to EM's estimate).
    max_iter : int
        Largest number of sweeps.

    Returns
    -------
    (permutations, sweeps)
    """
    shape = init.shape
    k = shape[-1]
    flat_resp = np.asarray(resp).reshape(-1, resp.shape[-2], k)
    weighted_counts = np.asarray(counts, dtype=float)[:, None]
    perms = init.reshape(-1, k).copy()
    sweeps = 0
    for sweeps in range(1, max_iter + 1):  # noqa: B007 - read after the loop
        relabelled = np.take_along_axis(flat_resp, perms[:, None, :], axis=-1)
        log_q = _log_q(relabelled.mean(axis=0))  # (M, K)
        new, _ = _assign(_kl_cost(flat_resp, weighted_counts * log_q), runner_up=False)
        if np.array_equal(new, perms):
            break
        perms = new
    return perms.reshape(shape), sweeps


def switching_summary(perms: np.ndarray, *, within_threshold: float = 0.05) -> dict:
    """Summarise the permutations of every chain (no ambiguity margin).

    Per chain: the share of draws needing a non-identity permutation, the chain's most
    common permutation and the share of draws off it. Labels switch between chains when
    their most common permutations differ, and within one when more than
    ``within_threshold`` of its draws are off its most common permutation. Kept for
    :func:`hungarian_permutations`; :func:`switching_verdict` sets ambiguous draws apart.
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


# ---------------------------------------------------------------------- interim names
def match_permutations(data, w: np.ndarray, p: np.ndarray, reference: MixtureParams) -> np.ndarray:
    """Per draw, the permutation matching the reference's classification probabilities.

    The interim name used by :mod:`compare.stages.labels`: :func:`kl_match`'s permutations
    (Stephens' direction, KL(draw || reference); the interim version minimised the
    reverse divergence). Call :func:`kl_match` for the margins the verdict needs.
    """
    return kl_match(data, w, p, reference).permutations


def ordered_boundary_check(p: np.ndarray, *, share: float = PRESSED_SHARE) -> dict:
    """Whether the ordered model's draws pile against p_j = p_{j+1}, as a dict.

    The interim name used by :mod:`compare.stages.labels`: :func:`ordering_check` with
    its old keys (``pressed_share``, ``threshold``, ``cuts_through_a_mode``) besides
    :meth:`OrderingCheck.to_dict`'s. "Pressed" is now a gap of at most 0.5 pooled
    posterior sds of the pair (it was 0.1 of the mean sd over all components).
    """
    check = ordering_check(p, threshold=share)
    return {
        "pressed_share": check.pressed_fraction,
        "cuts_through_a_mode": check.cuts_through,
        **check.to_dict(),
    }
