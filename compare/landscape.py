"""A picture of the likelihood: the profile log-likelihood over a pair of component biases.

For fixed biases p the log-likelihood of a binomial mixture is concave in the weights, so the
profile

    l(p_i, p_j) = max over the weights w of l(w, p)

(the other biases held at EM's best fit when K >= 3) is exact and cheap on a grid. It shows
every local optimum, the two symmetric copies of each mode (swap the labels) and the ridge
along the diagonal p_i = p_j, where two coinciding coins are one coin.

:func:`profile_landscape` computes it for one pair, :func:`profile_landscapes` for every pair,
and :func:`landscape_figure` draws them, with every EM restart's path and the posterior draws
of each chain on top, as one PNG.

How the weights are maximised, exactly
--------------------------------------
At each grid point the problem is max over the simplex of ``sum_m c_m log(sum_k w_k f_km)``
(f the component pmfs of the M distinct outcomes, c their counts). It is concave, and with
``g_k = sum_m c_m f_km / mix_m`` and N the number of sequences, concavity gives, for every w
on the simplex,

    l(w*) - l(w) <= max_k g_k(w) - N,

since the tangent plane at w bounds l from above and ``sum_k w_k g_k = N`` (this is Lindsay's
gradient function evaluated at the atoms). The right-hand side, computable at every grid
point, is the *certified gap*: each point is iterated until it is at most ``tol`` nats
(default 1e-6), or until no step raises the objective in floating point. The largest gap
over the grid is returned (:attr:`Landscape.gap`): every profile value is within that many
nats below the exact one (plus rounding, about N x 1e-15).

- K = 2: one weight w in [0, 1]; ``dl/dw`` is decreasing, so the maximiser is 0, 1 or the
  root of ``dl/dw``, found by Newton steps on log w kept inside a shrinking bracket
  (bisection when a step leaves it): quadratic convergence, never worse than bisection.
- K >= 3: sequential quadratic programming on the simplex (as mix-SQP, Kim et al. 2020):
  the quadratic model of the objective, from its exact gradient and Hessian, is maximised
  over the simplex exactly by solving it on every face (2^K - 1 small linear systems,
  batched over the grid), then the objective is maximised exactly along that step (the
  same one-dimensional solver as for K = 2). Gains are measured as
  ``sum_m c_m log1p(change of mix_m / mix_m)``, which keeps their own precision at large N;
  below rounding, a full step is taken if it lowers the certificate; a weight-only EM step
  (never decreasing) is the last resort.

Weight-only EM alone (``em.m_step(..., fix="p")``) is not used: its rate is the fraction of
missing information, close to 1 wherever the two components overlap. Measured on a 241 x 241
grid at N = 10^6 (12 flips, w = 0.7/0.3, p = 0.48/0.62) it still had gaps of 68 nats after
3000 iterations, where the solvers here certified 1e-6 nats within 18 (K = 2) and 10
(K = 3) iterations.

The grid
--------
By default (:func:`default_grid`) 101 evenly spaced values over (0, 1), for the whole square,
and 71 across each side of a box around the best fit's mode (where the profile is within 32
nats of the fit, found on a small local grid first), so the mode is resolved at any N: at
N = 10^6 it is about 0.01 wide. The box is :attr:`Landscape.window`, the zoomed panel of the
figure.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import BoundaryNorm, ListedColormap  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from scipy.special import xlogy  # noqa: E402

from em import BinomialData, MixtureParams  # noqa: E402
from em._validation import check_positive_int, check_tol  # noqa: E402

__all__ = [
    "Landscape",
    "default_grid",
    "profile_landscape",
    "profile_landscapes",
    "landscape_figure",
]

#: Certified accuracy of every profile value, nats (see the module docstring).
TOL = 1e-6
#: Grid values stay this far inside (0, 1), where every outcome has positive probability.
_EDGE = 1e-6
#: Default grid: this many evenly spaced values over (0, 1) ...
_N_COARSE = 101
#: ... and this many across each side of the box around the best fit's mode.
_N_LOCAL = 71
#: The box is found on a local grid of this many values per axis, first spanning this many
#: binomial standard errors each side of the fitted biases, widened 3-fold until the mode
#: (all within the zoom's deepest level) no longer touches its edge.
_N_PROBE = 41
_PROBE_SE = 10.0
_PROBE_WIDENINGS = 7
#: Work arrays of the solver hold about this many float64 values (grid points x K x M).
_CHUNK_ELEMENTS = 1 << 22
#: Contour levels of the zoomed panel, nats below the maximum; the last sets the box.
_ZOOM_LEVELS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


@dataclass(frozen=True, eq=False)
class Landscape:
    """The profile log-likelihood over one pair of component biases, on a grid.

    Attributes
    ----------
    pair : tuple of int
        The components (i, j) whose biases vary: p_i along x, p_j along y.
    p_i, p_j : ndarray of shape (n,)
        Grid values of p_i and of p_j, increasing, inside (0, 1). The same values on both
        axes, so the symmetric copy of every grid point is a grid point too.
    profile : ndarray of shape (n, n)
        ``profile[b, a]`` is the profile log-likelihood at p_i = ``p_i[a]``,
        p_j = ``p_j[b]`` (rows index p_j: matplotlib's orientation), minus its maximum on
        the grid; so it is <= 0 and 0 at the grid's best point.
    weights : ndarray of shape (n, n, K)
        The maximising weights at each grid point.
    max_log_likelihood : float
        The largest profile value on the grid (full log-likelihood, binomial coefficients
        included, as ``em.log_likelihood``).
    argmax : tuple of float
        (p_i, p_j) at that grid point.
    gap : float
        Certified bound, in nats, on how far any profile value lies below the exact one.
    base : MixtureParams
        The fit the landscape is drawn at; for K >= 3 the components other than the pair
        keep its biases.
    window : tuple of tuple of float
        ((x0, x1), (y0, y1)): a box around ``base``'s (p_i, p_j) holding its mode, for a
        zoomed view (see :func:`landscape_figure`).
    """

    pair: tuple[int, int]
    p_i: np.ndarray
    p_j: np.ndarray
    profile: np.ndarray
    weights: np.ndarray
    max_log_likelihood: float
    argmax: tuple[float, float]
    gap: float
    base: MixtureParams
    window: tuple[tuple[float, float], tuple[float, float]]

    @property
    def n_components(self) -> int:
        """Number of components K of the base fit."""
        return self.base.n_components

    def to_dict(self) -> dict:
        """A summary in plain Python, for JSON (not the grid itself)."""
        return {
            "pair": list(self.pair),
            "grid_size": int(self.p_i.size),
            "max_log_likelihood": self.max_log_likelihood,
            "argmax": list(self.argmax),
            "gap": self.gap,
            "window": [list(side) for side in self.window],
            "base": self.base.to_dict(),
        }


# ---------------------------------------------------------------------- arguments
def _check_data(data) -> BinomialData:
    if not isinstance(data, BinomialData):
        raise ValueError(f"data must be an em.BinomialData, got {type(data).__name__}")
    return data


def _check_best(best) -> MixtureParams:
    if not isinstance(best, MixtureParams):
        raise ValueError(f"best must be an em.MixtureParams, got {type(best).__name__}")
    w, p = best.weights, best.p
    if p.ndim != 1 or w.shape != p.shape:
        raise ValueError(
            f"best must be one parameter set (weights and p of shape (K,)), "
            f"got weights {w.shape} and p {p.shape}"
        )
    if p.size < 2:
        raise ValueError(f"best has {p.size} component: a landscape needs K >= 2")
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(p))):
        raise ValueError("best has non-finite weights or p")
    if np.any(p < 0) or np.any(p > 1):
        raise ValueError(f"best.p must lie in [0, 1], got {p.tolist()}")
    if np.any(w < 0) or abs(float(w.sum()) - 1.0) > 1e-6:
        raise ValueError(f"best.weights must be >= 0 and sum to 1, got {w.tolist()}")
    return best


def _check_pair(pair, k: int) -> tuple[int, int]:
    try:
        items = list(pair)
    except TypeError:
        items = []
    whole = [
        isinstance(v, (int, np.integer))
        or (isinstance(v, (float, np.floating)) and float(v).is_integer())
        for v in items
    ]
    if len(items) != 2 or not all(whole) or isinstance(pair, (str, bytes)):
        raise ValueError(f"pair must be two component indices, got {pair!r}")
    i, j = (int(v) for v in items)
    if not (0 <= i < k and 0 <= j < k) or i == j:
        raise ValueError(
            f"pair must be two different component indices in 0..{k - 1}, got {pair!r}"
        )
    return i, j


def _check_grid(grid) -> np.ndarray:
    try:
        values = np.asarray(grid, dtype=float)
    except (TypeError, ValueError):
        raise ValueError("grid must be an array of values in (0, 1)") from None
    if values.ndim != 1 or values.size < 2:
        raise ValueError(f"grid must be one-dimensional with >= 2 values, got shape {values.shape}")
    if not np.all(np.isfinite(values)) or values.min() <= 0 or values.max() >= 1:
        raise ValueError("grid values must lie strictly inside (0, 1)")
    return np.unique(values)


# ---------------------------------------------------------------------- grid
def _standard_error(data: BinomialData, p: float, w: float) -> float:
    """A binomial standard error of a fitted bias from its share of the flips."""
    flips = float(data.counts @ data.trials) * max(w, 0.0) + 1.0
    q = min(max(p, 1.0 / flips), 1.0 - 1.0 / flips)
    return float(np.sqrt(q * (1.0 - q) / flips))


def _probe_axis(centre: float, half: float) -> np.ndarray:
    values = np.append(centre + half * np.linspace(-1.0, 1.0, _N_PROBE), centre)
    return np.unique(np.clip(values, _EDGE, 1.0 - _EDGE))


def _region_box(xs, ys, ll, centre, mirror) -> tuple[tuple, bool]:
    """Box around the points within the zoom's depth of the peak, on the best fit's side.

    Returns the bounding box (padded by 10%, at least 1e-4, inside [0, 1]) of the grid
    points nearer to ``centre`` than to ``mirror`` whose profile is within
    ``_ZOOM_LEVELS[-1]`` nats of the largest such value, and whether those points touch an
    edge of the grid other than the ends of (0, 1).
    """
    x, y = np.meshgrid(xs, ys)  # x[b, a] = xs[a]: the profile's orientation
    to_centre = (x - centre[0]) ** 2 + (y - centre[1]) ** 2
    near = to_centre <= (x - mirror[0]) ** 2 + (y - mirror[1]) ** 2
    inside = near & (ll >= ll[near].max() - _ZOOM_LEVELS[-1])
    edges = (
        (inside[:, 0].any() and xs[0] > _EDGE)
        or (inside[:, -1].any() and xs[-1] < 1.0 - _EDGE)
        or (inside[0].any() and ys[0] > _EDGE)
        or (inside[-1].any() and ys[-1] < 1.0 - _EDGE)
    )
    box = []
    for axis, c in ((x, centre[0]), (y, centre[1])):
        lo, hi = min(float(axis[inside].min()), c), max(float(axis[inside].max()), c)
        pad = max(0.1 * (hi - lo), 1e-4)
        box.append((max(0.0, lo - pad), min(1.0, hi + pad)))
    return tuple(box), bool(edges)


def _centre(best: MixtureParams, pair) -> tuple[float, float]:
    """The fitted (p_i, p_j), kept ``_EDGE`` inside (0, 1)."""
    return tuple(float(np.clip(best.p[c], _EDGE, 1.0 - _EDGE)) for c in pair)


def _mode_box(data, best, pair, tol, max_iter, method) -> tuple:
    """A box around the best fit's mode: where the profile is within 32 nats of its peak.

    Found on a small local grid around (p_i, p_j), restricted to the points nearer to it
    than to its mirror image (p_j, p_i), and widened until the region no longer touches the
    local grid's edge. At a collapse (coinciding components) the region is a cross spanning
    the square, and so is the box.
    """
    centre = _centre(best, pair)
    half = [
        _PROBE_SE * _standard_error(data, centre[n], float(best.weights[c]))
        for n, c in enumerate(pair)
    ]
    for _ in range(_PROBE_WIDENINGS):
        xs, ys = _probe_axis(centre[0], half[0]), _probe_axis(centre[1], half[1])
        ll = _profile(data, best, pair, xs, ys, tol, max_iter, method)[0]
        box, touches = _region_box(xs, ys, ll, centre, centre[::-1])
        if not touches:
            break
        half = [3.0 * h for h in half]
    return box


def _grid_for(box, centre) -> np.ndarray:
    """The default grid: even over (0, 1), dense across the box, and the fitted biases."""
    parts = [(np.arange(_N_COARSE) + 0.5) / _N_COARSE, np.asarray(centre, dtype=float)]
    parts += [np.linspace(lo, hi, _N_LOCAL) for lo, hi in box]
    values = np.concatenate(parts)
    return np.unique(values[(values >= _EDGE) & (values <= 1.0 - _EDGE)])


def default_grid(data, best, pair=(0, 1)) -> np.ndarray:
    """The grid :func:`profile_landscape` uses by default (the same on both axes).

    The union of ``_N_COARSE`` evenly spaced values over (0, 1), which shows the whole
    square (every restart's path, the diagonal and both symmetric modes), and ``_N_LOCAL``
    values across each side of a box around the best fit's mode (the region within 32 nats
    of it, found on a small local grid first: see :attr:`Landscape.window`), and the two
    fitted biases themselves, so the best fit is a grid point. At large N the
    mode is a tiny fraction of the square (about 0.005 wide at N = 10^6 sequences of 12
    flips): the box resolves it at any N. Values are kept ``_EDGE`` inside (0, 1).

    Parameters
    ----------
    data : BinomialData
    best : MixtureParams
        The fit (one parameter set, K >= 2).
    pair : tuple of int
        The two components.

    Returns
    -------
    ndarray
        Increasing values inside (0, 1); about 240 of them.
    """
    data, best = _check_data(data), _check_best(best)
    pair = _check_pair(pair, best.n_components)
    method = "two" if best.n_components == 2 else "sqp"
    return _grid_for(_mode_box(data, best, pair, TOL, 200, method), _centre(best, pair))


# ---------------------------------------------------------------------- solver
def _log_pmf(data: BinomialData, p: np.ndarray) -> np.ndarray:
    """log P(outcome m | p) without the binomial coefficient, shape (len(p), M)."""
    h, t = data.heads.astype(float), data.trials.astype(float)
    return xlogy(h, p[:, None]) + xlogy(t - h, 1.0 - p[:, None])


def _gradient(f: np.ndarray, mix: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """g_k = sum_m c_m f_km / mix_m, shape (G, K)."""
    return np.matmul(f, (counts / mix)[:, :, None])[:, :, 0]


def _mix(f: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The mixture's (scaled) probability of each outcome, shape (G, M)."""
    return np.matmul(w[:, None, :], f)[:, 0, :]


def _ll(mix: np.ndarray, counts: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(mix) @ counts


def _line_max(base, step, counts, t_max, tol, max_iter, *, start=None, ends=True):
    """argmax over t in [0, t_max] of sum_m c_m log(base_m + t step_m), per row.

    The function is concave in t: its slope is decreasing, so the maximiser is 0, t_max or
    the slope's root, found from ``start`` (default the middle) by Newton steps on log t,
    ``t exp(slope / (t curvature))``, kept inside a shrinking bracket (bisection when a step
    leaves it). On log t the step is the same near the root (quadratic convergence) and
    nearly 3-fold where plain Newton would only double t, which it does for a long way
    below a root set by log terms. A row stops once the tangent bound on what is left to
    gain is at most ``tol``: slope x distance to the far end of [0, t_max] if ``ends`` (the
    certificate for K = 2), else to the far end of the bracket.
    """
    cs = counts * step
    with np.errstate(divide="ignore", invalid="ignore"):  # a probability 0 at an end: -inf
        at0 = np.where(cs == 0, 0.0, cs / base).sum(axis=1)
        at1 = np.where(cs == 0, 0.0, cs / (base + t_max[:, None] * step)).sum(axis=1)
    start = 0.5 * t_max if start is None else np.minimum(start, 0.5 * t_max)
    t = np.where(at0 <= 0, 0.0, np.where(at1 >= 0, t_max, start))
    lo, hi = np.zeros_like(t), t_max.copy()
    act = np.flatnonzero((at0 > 0) & (at1 < 0))
    for _ in range(max_iter):
        if act.size == 0:
            break
        ta, d = t[act], step[act]
        with np.errstate(divide="ignore", invalid="ignore"):  # a probability 0 by rounding
            q = d / (base[act] + ta[:, None] * d)
            slope, curv = q @ counts, (q * q) @ counts
        rising = slope > 0
        lo[act] = np.where(rising, ta, lo[act])
        hi[act] = np.where(rising, hi[act], ta)
        far_up, far_down = (t_max[act], 0.0) if ends else (hi[act], lo[act])
        left = np.where(rising, (far_up - ta) * slope, (far_down - ta) * slope)
        done = (left <= tol) | (hi[act] - lo[act] <= 4 * np.finfo(float).eps * t_max[act])
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            newton = ta * np.exp(np.minimum(slope / (curv * ta), 50.0))
        inside = (newton > lo[act]) & (newton < hi[act])
        t[act] = np.where(done, ta, np.where(inside, newton, 0.5 * (lo[act] + hi[act])))
        act = act[~done]
    return t


def _solve_two(f: np.ndarray, counts: np.ndarray, tol: float, max_iter: int) -> np.ndarray:
    """K = 2: the weight of component 0 maximising l, shape (G,).

    ``mix = f_1 + w (f_0 - f_1)``, so this is :func:`_line_max` over w in [0, 1], whose
    stopping rule is then exactly the certificate ``max_k g_k - N``.
    """
    return _line_max(f[:, 1], f[:, 0] - f[:, 1], counts, np.ones(len(f)), tol, max_iter)


_FACES: dict[int, list[np.ndarray]] = {}


def _faces(k: int) -> list[np.ndarray]:
    """Every non-empty subset of the K components, as boolean masks."""
    if k not in _FACES:
        _FACES[k] = [
            np.array(bits, dtype=bool) for bits in itertools.product((False, True), repeat=k)
        ][1:]
    return _FACES[k]


def _qp_target(f, w, mix, g, counts, n) -> np.ndarray:
    """Maximiser over the simplex of the quadratic model of l at w (exact, face by face).

    Drops the constraint sum(w) = 1 in favour of the term -N sum(w), whose maximiser over
    w >= 0 is on the simplex; the model then has gradient g - N and Hessian -A with
    A = F diag(c / mix^2) F^T. Returns points w + d with d solving the model on each face.
    """
    a = np.matmul(f * (counts / mix**2)[:, None, :], f.transpose(0, 2, 1))
    grad = g - n
    ridge = 1e-12 * np.trace(a, axis1=1, axis2=2)[:, None, None]  # coinciding components
    best_model, target = np.full(len(w), -np.inf), w.copy()
    for face in _faces(w.shape[1]):
        a_ss = a[:, face][:, :, face] + ridge * np.eye(int(face.sum()))
        rhs = grad[:, face] + np.matmul(a[:, face][:, :, ~face], w[:, ~face, None])[:, :, 0]
        d = -w
        d[:, face] = np.linalg.solve(a_ss, rhs[:, :, None])[:, :, 0]
        point = w + d
        model = (grad * d).sum(axis=1) - 0.5 * np.einsum("gk,gkl,gl->g", d, a, d)
        better = (point[:, face] >= 0).all(axis=1) & (model > best_model)
        best_model = np.where(better, model, best_model)
        target[better] = point[better]
    return target


def _gain(f, w, mix, cand, counts) -> np.ndarray:
    """l(cand) - l(w), computed from the change of each outcome's probability.

    ``sum_m c_m log1p((F (cand - w))_m / mix_m)`` keeps the precision of the gain itself,
    where the difference of two log-likelihoods of size ~N would lose it in rounding: near
    the optimum a Newton step gains far less than the last digit of l at large N.
    """
    change = np.maximum(_mix(f, cand - w) / mix, -1.0)  # >= -1 but for rounding
    with np.errstate(divide="ignore"):
        return np.log1p(change) @ counts


def _direction(w: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step from w to the normalised target, and the largest multiple keeping w >= 0."""
    total = target.sum(axis=1, keepdims=True)
    d = np.where(total > 0, target / np.where(total > 0, total, 1.0) - w, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        limits = np.where(d < 0, w / -d, np.inf)
    return d, np.minimum(limits.min(axis=1), 1e6)


def _sqp_step(f, w, mix, counts, n, tol):
    """One SQP step with an exact line search; returns (w, mix, moved).

    A step is taken where it raises l (measured by :func:`_gain`). Where no step does in
    floating point, the full step is taken if it lowers the certificate ``max_k g_k``;
    failing that, a weight-only EM step (``w_k g_k / N``, never decreasing) if it gains.
    """
    g = _gradient(f, mix, counts)
    d, t_max = _direction(w, _qp_target(f, w, mix, g, counts, n))
    t = _line_max(mix, _mix(f, d), counts, t_max, 0.1 * tol, 30, start=1.0, ends=False)
    cand = np.maximum(w + t[:, None] * d, 0.0)
    cand /= cand.sum(axis=1, keepdims=True)
    up = _gain(f, w, mix, cand, counts) > 0
    new_w = np.where(up[:, None], cand, w)
    todo = np.flatnonzero(~up)
    if todo.size:
        full = np.maximum(w[todo] + np.minimum(1.0, t_max[todo])[:, None] * d[todo], 0.0)
        full /= full.sum(axis=1, keepdims=True)
        cert = _gradient(f[todo], _mix(f[todo], full), counts).max(axis=1)
        lower = cert < g[todo].max(axis=1)
        new_w[todo[lower]] = full[lower]
        todo = todo[~lower]
    if todo.size:
        em = w[todo] * g[todo] / n
        gains = _gain(f[todo], w[todo], mix[todo], em, counts) > 0
        new_w[todo[gains]] = em[gains]
        todo = todo[~gains]
    moved = np.ones(len(w), dtype=bool)
    moved[todo] = False  # nothing raises l in floating point: as good as it gets
    return new_w, _mix(f, new_w), moved


def _start(f: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Start at the best of the simplex's centre and the centres of its faces."""
    k = f.shape[1]
    w = np.full(f.shape[:2], 1.0 / k)
    ll = _ll(_mix(f, w), counts)
    for face in _faces(k)[:-1]:
        cand = np.broadcast_to(face / face.sum(), w.shape)
        cand_ll = _ll(_mix(f, cand), counts)
        better = cand_ll > ll
        w[better], ll = cand[better], np.where(better, cand_ll, ll)
    return w


def _solve_simplex(f: np.ndarray, counts: np.ndarray, tol: float, max_iter: int) -> np.ndarray:
    """K >= 2: maximising weights by SQP with an EM fallback; shape (G, K)."""
    n = counts.sum()
    w = _start(f, counts)
    mix = _mix(f, w)
    act = np.arange(len(w))
    for _ in range(max_iter):
        gap = _gradient(f[act], mix[act], counts).max(axis=1) - n
        act = act[gap > tol]
        if act.size == 0:
            break
        w_a, mix_a, moved = _sqp_step(f[act], w[act], mix[act], counts, n, tol)
        w[act], mix[act] = w_a, mix_a
        act = act[moved]
    return w


def _maximise(f, counts, tol, max_iter, method):
    """Maximising weights for a block of grid points, shape (G, K)."""
    if method == "two":
        w0 = _solve_two(f, counts, tol, max_iter)
        return np.stack([w0, 1.0 - w0], axis=1)
    return _solve_simplex(f, counts, tol, max_iter)


def _profile_rows(data, log_x, log_y, log_other, tol, max_iter, method):
    """Profile, weights (solver order) and certified gaps: rows p_j = y, columns p_i = x."""
    (n_x, m), n_y = log_x.shape, len(log_y)
    pair_logs = [
        np.broadcast_to(log_x[None, :, :], (n_y, n_x, m)),  # component i: p_i = x
        np.broadcast_to(log_y[:, None, :], (n_y, n_x, m)),  # component j: p_j = y
    ]
    others = [np.broadcast_to(row, (n_y, n_x, m)) for row in log_other]
    logf = np.stack(pair_logs + others, axis=2).reshape(-1, 2 + len(others), m)
    shift = logf.max(axis=1)  # (G, M): scale each outcome's pmfs so the largest is 1
    f = np.exp(logf - shift[:, None, :])
    counts = data.counts.astype(float)
    w = _maximise(f, counts, tol, max_iter, method)
    mix = _mix(f, w)
    gap = _gradient(f, mix, counts).max(axis=1) - counts.sum()
    ll = _ll(mix, counts) + shift @ counts + data._log_binom_coef
    shape = (n_y, n_x)
    return ll.reshape(shape), w.reshape(shape + (w.shape[1],)), gap.reshape(shape)


def _profile(data, best, pair, xs, ys, tol, max_iter, method):
    """Profile log-likelihood, maximising weights and certified gaps on xs (p_i) x ys (p_j)."""
    k = best.n_components
    log_x, log_y = _log_pmf(data, xs), _log_pmf(data, ys)
    others = [c for c in range(k) if c not in pair]
    log_other = _log_pmf(data, best.p[others]) if others else np.empty((0, data.n_outcomes))
    step = max(1, _CHUNK_ELEMENTS // (xs.size * k * data.n_outcomes))
    blocks = [
        _profile_rows(data, log_x, log_y[lo : lo + step], log_other, tol, max_iter, method)
        for lo in range(0, ys.size, step)
    ]
    ll, weights, gap = (np.concatenate(parts) for parts in zip(*blocks, strict=True))
    return ll, _to_pair_order(weights, pair, k), gap


def _to_pair_order(weights: np.ndarray, pair, k: int) -> np.ndarray:
    """Weights in the solver's order (i, j, others) back to component order."""
    order = list(pair) + [c for c in range(k) if c not in pair]
    out = np.empty_like(weights)
    out[..., order] = weights
    return out


# ---------------------------------------------------------------------- API
def profile_landscape(
    data: BinomialData,
    best: MixtureParams,
    *,
    pair=(0, 1),
    grid=None,
    tol: float = TOL,
    max_iter: int = 200,
    method: str = "auto",
) -> Landscape:
    """The profile log-likelihood over (p_i, p_j), maximised over the weights.

    Parameters
    ----------
    data : BinomialData
    best : MixtureParams
        The fit to draw the landscape at (e.g. ``em.fit_data(data, K).params``): one
        parameter set, K >= 2. For K >= 3 the components other than ``pair`` keep its
        biases; their weights are maximised over with the pair's.
    pair : tuple of int, optional
        Components (i, j): p_i along x, p_j along y.
    grid : array-like, optional
        Values in (0, 1) used on both axes; default :func:`default_grid`.
    tol : float, optional
        Certified accuracy, nats: iteration stops at a grid point once the bound on its
        remaining gain is at most ``tol`` (see the module docstring).
    max_iter : int, optional
        Iteration cap per grid point; :attr:`Landscape.gap` says what was reached.
    method : {"auto", "two", "sqp"}, optional
        The weight solver: bracketed Newton on the one free weight (K = 2), or SQP on the
        simplex (any K). ``"auto"``: the first for K = 2, the second otherwise.

    Returns
    -------
    Landscape

    Raises
    ------
    ValueError
        For data that is not a ``BinomialData``, a ``best`` that is not one valid
        parameter set with K >= 2, a bad pair, grid, tolerance or method.

    Notes
    -----
    Cost: O(grid points x K x distinct outcomes) per iteration (times 2^K for K >= 3),
    independent of the number of sequences.
    """
    data, best = _check_data(data), _check_best(best)
    k = best.n_components
    pair = _check_pair(pair, k)
    tol, max_iter = check_tol(tol), check_positive_int(max_iter, "max_iter")
    if method not in ("auto", "two", "sqp"):
        raise ValueError(f"method must be 'auto', 'two' or 'sqp', got {method!r}")
    if method == "two" and k != 2:
        raise ValueError(f"method 'two' solves K = 2 only, got K = {k}")
    method = method if method != "auto" else ("two" if k == 2 else "sqp")
    box = _mode_box(data, best, pair, tol, max_iter, method)
    values = _grid_for(box, _centre(best, pair)) if grid is None else _check_grid(grid)
    ll, weights, gap = _profile(data, best, pair, values, values, tol, max_iter, method)
    b, a = np.unravel_index(int(np.argmax(ll)), ll.shape)
    top = float(ll[b, a])
    return Landscape(
        pair=pair,
        p_i=values,
        p_j=values.copy(),
        profile=ll - top,
        weights=weights,
        max_log_likelihood=top,
        argmax=(float(values[a]), float(values[b])),
        gap=float(max(gap.max(), 0.0)),
        base=best,
        window=box,
    )


def profile_landscapes(data: BinomialData, best: MixtureParams, **options) -> tuple:
    """:func:`profile_landscape` for every pair i < j of components, in order.

    ``options`` are passed on (``grid``, ``tol``, ``max_iter``, ``method``).
    """
    best = _check_best(best)
    k = best.n_components
    return tuple(
        profile_landscape(data, best, pair=(i, j), **options)
        for i in range(k)
        for j in range(i + 1, k)
    )


# ---------------------------------------------------------------------- figure
#: Fixed resolution and metadata: the same landscapes give the same bytes, 1000 px wide.
_DPI = 100
_META = {"Software": None}
#: A panel zoomed on the best fit is added when its window is narrower than this.
_ZOOM_BELOW = 0.4
#: At most this many contour lines in the whole square (powers of 2 from 0.5 nats on,
#: every second, third, ... one when the range is large).
_MAX_LINES = 12
_FONTS = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "figure.titlesize": 12,
}


def _paths(runs, k: int) -> list[np.ndarray]:
    """Each run's path of biases, shape (n_iter + 1, K), from Run objects or MixtureParams."""
    out = []
    for r, run in enumerate(runs):
        params = getattr(run, "path", run)
        p = getattr(params, "p", None)
        if p is None or np.ndim(p) != 2 or np.shape(p)[1] != k:
            raise ValueError(
                f"runs[{r}] must be an em.Run or a MixtureParams path of shape (n, {k})"
            )
        p = np.asarray(p, dtype=float)
        if not np.all(np.isfinite(p)):
            raise ValueError(f"runs[{r}]: the path has non-finite biases")
        out.append(p)
    return out


def _draws(draws_p, k: int) -> np.ndarray | None:
    if draws_p is None:
        return None
    try:
        arr = np.asarray(draws_p, dtype=float)
    except (TypeError, ValueError):
        raise ValueError("draws_p must be an array of shape (chain, draw, K)") from None
    if arr.ndim != 3 or arr.shape[2] != k or arr.shape[1] == 0:
        raise ValueError(f"draws_p must have shape (chain, draw, {k}), got {arr.shape}")
    if not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1:
        raise ValueError("draws_p must be finite biases in [0, 1]")
    return arr


def _check_figure_args(landscapes, path) -> tuple[list[Landscape], Path]:
    items = list(landscapes) if isinstance(landscapes, Sequence) else [landscapes]
    if not items or not all(isinstance(ls, Landscape) for ls in items):
        raise ValueError("landscapes must be one or more Landscape (from profile_landscape)")
    if len({ls.n_components for ls in items}) != 1:
        raise ValueError("landscapes must all come from fits with the same K")
    out = Path(path)
    if not out.parent.is_dir():
        raise ValueError(f"path: no such folder {str(out.parent)!r}")
    return items, out


def _levels(depth_max: float, zoom: bool) -> list[float]:
    """Contour levels in nats below the maximum (powers of 2 from 0.5), below depth_max.

    Empty if the profile is within 0.5 nats of its maximum everywhere.
    """
    if zoom:
        return [v for v in _ZOOM_LEVELS if v < depth_max]
    levels = [0.5 * 2.0**e for e in range(64) if 0.5 * 2.0**e < depth_max]
    return levels[:: max(1, math.ceil(len(levels) / _MAX_LINES))]


def _level_label(value: float) -> str:
    return f"{value:g}" if value < 1e5 else f"{value:.0e}"


def _contours(ax, ls: Landscape, zoom: bool) -> None:
    depth = -ls.profile
    top = float(depth.max())
    levels = _levels(top, zoom)
    if not levels:  # e.g. a component outside the pair explains all the data
        ax.text(
            0.5,
            0.04,
            f"flat: everywhere within {top:.2g} nats of the maximum",
            transform=ax.transAxes,
            ha="center",
            fontsize=10,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
            zorder=7,
        )
        return
    bounds = [0.0] + levels + [top * 1.001 + 1e-9]
    cmap = ListedColormap(plt.get_cmap("Greys")(np.linspace(0.0, 0.6, len(bounds) - 1)))
    ax.contourf(ls.p_i, ls.p_j, depth, levels=bounds, cmap=cmap, norm=BoundaryNorm(bounds, cmap.N))
    lines = ax.contour(ls.p_i, ls.p_j, depth, levels=levels, colors="0.25", linewidths=0.7)
    ax.clabel(lines, fmt=_level_label, fontsize=10, inline=True)


def _overlay(ax, ls: Landscape, paths, draws, max_draws: int, zoom: bool) -> None:
    i, j = ls.pair
    ax.plot([0, 1], [0, 1], ls="--", color="black", lw=1.0, zorder=2)
    if draws is not None:
        keep = np.unique(np.linspace(0, draws.shape[1] - 1, max_draws).round().astype(int))
        for c in range(draws.shape[0]):
            ax.scatter(
                draws[c, keep, i],
                draws[c, keep, j],
                s=6,
                alpha=0.35,
                color=f"C{c % 10}",
                linewidths=0,
                zorder=3,
            )
    for p in paths:  # in the zoom, paths mostly cross it from far away: lighter
        ax.plot(p[:, i], p[:, j], color="black", lw=0.9, alpha=0.35 if zoom else 0.8, zorder=4)
        ax.plot(p[0, i], p[0, j], "o", mfc="white", mec="black", ms=6, zorder=5)
        ax.plot(p[-1, i], p[-1, j], "s", color="black", ms=4, zorder=5)
    bi, bj = float(ls.base.p[i]), float(ls.base.p[j])
    ax.plot(bj, bi, "*", color="white", mec="red", mew=1.5, ms=15, zorder=6)
    ax.plot(bi, bj, "*", color="red", mec="black", ms=15, zorder=6)  # on top at a collapse


def _panel(ax, ls: Landscape, paths, draws, max_draws: int, zoom: bool) -> None:
    _contours(ax, ls, zoom)
    _overlay(ax, ls, paths, draws, max_draws, zoom)
    i, j = ls.pair
    if zoom:
        (x0, x1), (y0, y1) = ls.window
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_title(f"p[{i}] against p[{j}], near EM's best fit")
    else:
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_title(f"p[{i}] against p[{j}]")
    ax.set_xlabel(f"p[{i}]")
    ax.set_ylabel(f"p[{j}]")


def _legend_handles(n_chains: int) -> list:
    handles = [
        Patch(
            facecolor=plt.get_cmap("Greys")(0.3),
            edgecolor="0.25",
            label="profile log-lik., contours in nats below its maximum",
        ),
        Line2D([], [], ls="--", color="black", label="diagonal p_i = p_j"),
        Line2D([], [], ls="", marker="*", color="red", mec="black", ms=12, label="EM's best fit"),
        Line2D(
            [],
            [],
            ls="",
            marker="*",
            color="white",
            mec="red",
            ms=12,
            label="the same fit, labels swapped",
        ),
        Line2D([], [], color="black", lw=0.9, label="EM restart path"),
        Line2D([], [], ls="", marker="o", mfc="white", mec="black", label="path start"),
        Line2D([], [], ls="", marker="s", color="black", ms=5, label="path end"),
    ]
    handles += [
        Line2D([], [], ls="", marker="o", color=f"C{c % 10}", ms=5, label=f"chain {c} draws")
        for c in range(n_chains)
    ]
    return handles


def landscape_figure(
    landscapes, runs, draws_p, path, *, title: str | None = None, max_draws: int = 400
) -> str:
    """Draw profile landscapes with EM's restart paths and posterior draws, as one PNG.

    One panel per landscape (pair of components) over the whole unit square; where the
    best fit's mode is small (its window narrower than 0.4, i.e. large N), a second panel
    beside it zooms on the window. Each panel has filled and labelled contours of the
    profile in nats below its maximum (0.5, 1, 2, 4, ... ; up to 32 in the zoom), the
    diagonal p_i = p_j, EM's best fit (red star) and its mirror image with the labels
    swapped (open star), every restart's path (line; circle at the start, square at the
    end) and each chain's draws (thinned to ``max_draws`` per chain, one colour per chain).

    Parameters
    ----------
    landscapes : Landscape or sequence of Landscape
        From :func:`profile_landscape` / :func:`profile_landscapes`, one K.
    runs : sequence
        ``em.Run`` objects (e.g. ``fit.runs``) or their ``path`` (MixtureParams of shape
        (n_iter + 1, K)); may be empty. For K >= 3 a path is drawn projected on the pair.
    draws_p : array-like of shape (chain, draw, K), or None
        Posterior draws of the biases. Pass the raw draws to see label switching (chains
        visiting both copies of the mode), relabelled ones to see a single mode.
    path : str or Path
        The PNG to write; its folder must exist.
    title : str, optional
        The figure's title (default: what is drawn).
    max_draws : int, optional
        Draws shown per chain, evenly spaced.

    Returns
    -------
    str
        The file name written (as the functions of :mod:`compare.plots`).

    Raises
    ------
    ValueError
        Naming the argument: no landscapes, paths or draws of the wrong K or shape,
        non-finite values, a missing folder.
    """
    items, out = _check_figure_args(landscapes, path)
    k = items[0].n_components
    paths, draws = _paths(runs, k), _draws(draws_p, k)
    max_draws = check_positive_int(max_draws, "max_draws")
    panels = [pan for ls in items for pan in [(ls, False)] + ([(ls, True)] if _zoomed(ls) else [])]
    ncols = 1 if len(panels) == 1 else 2
    nrows = math.ceil(len(panels) / ncols)
    width = 6.5 if ncols == 1 else 10.0
    with plt.rc_context(_FONTS):
        fig, axes = plt.subplots(
            nrows,
            ncols,
            figsize=(width, (5.6 if ncols == 1 else 4.6) * nrows + 1.6),
            squeeze=False,
            layout="constrained",
        )
        for ax, (ls, zoom) in zip(axes.flat, panels, strict=False):
            _panel(ax, ls, paths, draws, max_draws, zoom)
        for ax in list(axes.flat)[len(panels) :]:
            ax.set_visible(False)
        n_chains = 0 if draws is None else draws.shape[0]
        fig.legend(handles=_legend_handles(n_chains), loc="outside lower center", ncols=2)
        default = "Profile log-likelihood over pairs of biases, weights maximised"
        if k > 2:
            default += "\n(the other biases held at EM's best fit)"
        fig.suptitle(title or default)
        fig.savefig(out, dpi=_DPI, metadata=_META)
        plt.close(fig)
    return out.name


def _zoomed(ls: Landscape) -> bool:
    """Whether the best fit's window is small enough to deserve a zoomed panel."""
    (x0, x1), (y0, y1) = ls.window
    return max(x1 - x0, y1 - y0) < _ZOOM_BELOW
