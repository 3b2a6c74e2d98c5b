"""How far is an EM iterate from its optimum? Certificates of the remaining gain, in nats.

Three estimates, each used where it is valid:

- ``"newton"``: at an interior point where the Hessian of the objective in unconstrained
  coordinates (:mod:`em.derivatives`) is negative definite, the Newton decrement
  ``gap = g^T (-H)^{-1} g / 2``: the gain the quadratic model predicts (Boyd &
  Vandenberghe, *Convex Optimization*, 9.5.1). It is invariant to affine
  reparametrisation and exact to second order near a non-degenerate optimum.
- ``"newton-face"``: where components coincide, are empty or have a bias at 0 or 1, the
  Hessian is singular and the optimum lies on a *face* of the parameter space: tied
  biases, zero weights, biases on the boundary. There the decrement is taken on the face
  (the reduced mixture), and the point is verified to be a local maximum of the whole
  model: the first-order (KKT) conditions on the active constraints, and a Hessian with
  no positive eigenvalue, so that no split of tied components and no move off the
  boundary gains.
- ``"aitken"``: elsewhere, for plain EM steps, the rate-based extrapolation of the
  objective sequence: with increments d_k shrinking at a stable ratio rho, the remaining
  gain is d_k rho / (1 - rho) (Aitken's delta-squared; Boehning et al. 1994). Used only
  where the Hessian has no positive eigenvalue (not at a saddle).

``"none"`` means no estimate holds (``gap`` is infinite): the run is not converged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, gammaln, xlogy

from em.core import MixtureParams, Prior, e_step, log_likelihood, log_prior
from em.data import BinomialData
from em.derivatives import gradient_hessian

__all__ = [
    "COLLAPSE_NATS",
    "gradient_function",
    "lindsay_escape",
    "Certificate",
    "Face",
    "newton_system",
    "aitken_gap",
    "propose_face",
    "face_basis",
    "verify_face",
]

#: A face is proposed when moving onto it costs less than this many nats of objective.
COLLAPSE_NATS = 1e-4
#: Smallest eigenvalue of -H, relative to the largest, for -H to count as positive definite.
ND_RTOL = 1e-9
#: Largest eigenvalue of H, relative to the largest in magnitude, still counted as <= 0.
NSD_RTOL = 1e-8
#: Largest first-order gain per unit move off an active constraint still counted as none.
KKT_ATOL = 1e-9
#: Rounding of an objective value, relative to the magnitude of its terms.
NOISE_RTOL = 1e-13


@dataclass(frozen=True)
class Face:
    """A face of the parameter space: which components are tied, empty or on the boundary.

    Attributes
    ----------
    groups : tuple of tuple of int
        Components sharing one bias (a singleton for an ordinary component), each with
        positive weight, in order of increasing bias.
    empty : tuple of int
        Components with weight 0 (their bias does not enter the likelihood).
    bounds : tuple of float or None
        Per group: None for an interior bias, 0.0 or 1.0 for a bias on the boundary.
    """

    groups: tuple[tuple[int, ...], ...]
    empty: tuple[int, ...]
    bounds: tuple[float | None, ...]

    @property
    def n_effective(self) -> int:
        """Components of the reduced mixture (tied groups merged, empty ones dropped)."""
        return len(self.groups)

    @property
    def interior(self) -> bool:
        """No tie, no empty component, no bias on the boundary."""
        return (
            not self.empty
            and all(len(g) == 1 for g in self.groups)
            and not any(b is not None for b in self.bounds)
        )

    def describe(self) -> str:
        """One line: what is tied, empty or on the boundary (components numbered from 1)."""
        parts = []
        for g, b in zip(self.groups, self.bounds, strict=True):
            if len(g) > 1:
                parts.append("components " + ", ".join(str(j + 1) for j in g) + " tied")
            if b is not None:
                what = "bias" if len(g) == 1 else "their bias"
                who = f"component {g[0] + 1} " if len(g) == 1 else ""
                parts.append(f"{who}{what} at {b:g}")
        if self.empty:
            parts.append("weight 0 for component(s) " + ", ".join(str(j + 1) for j in self.empty))
        return "; ".join(parts) if parts else "interior"

    def to_dict(self) -> dict:
        """Plain-Python form for JSON."""
        return {
            "groups": [list(g) for g in self.groups],
            "empty": list(self.empty),
            "bounds": list(self.bounds),
            "effective_components": self.n_effective,
        }


@dataclass(frozen=True)
class Certificate:
    """An estimate of the objective still to be gained, and how it was made.

    Attributes
    ----------
    gap : float
        Nats still to gain (``inf`` when no estimate holds).
    kind : str
        ``"newton"``, ``"newton-face"``, ``"aitken"`` or ``"none"``.
    detail : str
        One line saying what the estimate rests on.
    face : Face or None
        For ``"newton-face"``, the face the optimum lies on.
    """

    gap: float
    kind: str
    detail: str
    face: Face | None = None

    def to_dict(self) -> dict:
        """Plain-Python form for JSON (an infinite gap becomes None)."""
        return {
            "gap": self.gap if np.isfinite(self.gap) else None,
            "kind": self.kind,
            "detail": self.detail,
            "face": None if self.face is None else self.face.to_dict(),
        }


def noise(data: BinomialData, obj) -> np.ndarray:
    """Rounding error of an objective value: NOISE_RTOL times the size of its terms."""
    return NOISE_RTOL * (np.abs(obj) + abs(data._log_binom_coef) + 1.0)


# ---------------------------------------------------------------------- Newton
def newton_system(g: np.ndarray, h: np.ndarray, idx: np.ndarray, gauge: bool, scale: float):
    """Newton decrement and step on the coordinates ``idx`` of a batch.

    Parameters
    ----------
    g, h : ndarray of shape (B, D) and (B, D, D)
        Gradient and Hessian of the objective.
    idx : ndarray of int
        Free coordinates (the same for every row).
    gauge : bool
        Whether ``idx`` holds all the eta (softmax) coordinates, along which the objective
        is constant; that direction is then lifted out of the null space of -H.
    scale : float
        The Hessian's natural size (the number of sequences): eigenvalues are compared with
        the larger of it and the largest eigenvalue, so rounding noise in a Hessian that
        is exactly 0 (a flat direction) counts as 0.

    Returns
    -------
    gap : ndarray (B,)
        Half the Newton decrement squared where -H is positive definite, else ``inf``.
    step : ndarray (B, D)
        Where -H is positive definite, the Newton step; where H has a clearly positive
        eigenvalue (a saddle), a Levenberg-Marquardt step; else 0. Zero outside ``idx``.
    definite : ndarray of bool (B,)
        Whether -H is positive definite.
    saddle : ndarray of bool (B,)
        Whether H has a clearly positive eigenvalue (an ascent direction of curvature).
    """
    if idx.size == g.shape[1]:
        gs, a = g, -h
    else:
        gs, a = g[:, idx], -h[:, idx[:, None], idx[None, :]]
    if gauge:  # the eta block's constant direction: H u = 0 and g . u = 0
        k = g.shape[1] // 2
        # Lifted on the eta block's own scale, so it does not swamp that block's curvature.
        lift = np.abs(a.diagonal(axis1=1, axis2=2)[:, :k]).mean(axis=-1) / k + 1e-300
        a[:, :k, :k] += lift[:, None, None]
    vals, vecs, s, flat = scaled_eigh(a, scale)
    top = np.maximum(vals[:, -1], 1.0)
    definite = (vals[:, 0] > ND_RTOL * top) & ~flat
    saddle = vals[:, 0] < -NSD_RTOL * top
    proj = np.matmul((s * gs)[:, None, :], vecs)[:, 0]  # V^T (s g)
    # Newton where -H > 0; at a saddle, Levenberg-Marquardt: -H shifted by mu, twice its
    # most negative scaled eigenvalue, which follows the gradient and amplifies it along
    # the directions of positive curvature.
    shift = np.where(saddle, -2.0 * vals[:, 0], 0.0)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        coef = np.where((definite | saddle)[:, None], proj / np.maximum(vals + shift, 1e-300), 0.0)
    step_free = s * np.matmul(vecs, coef[:, :, None])[:, :, 0]
    gap = np.where(definite, 0.5 * (gs * step_free).sum(axis=-1), np.inf)
    if idx.size == g.shape[1]:
        step = step_free
    else:
        step = np.zeros_like(g)
        step[:, idx] = step_free
    return np.maximum(gap, 0.0), step, definite, saddle


def scaled_eigh(a: np.ndarray, scale: float):
    """Eigen-decomposition of ``a`` (B, D, D) after Jacobi scaling, ``s a s``.

    ``s = |diag(a)|^(-1/2)`` puts every coordinate on its own scale, so a curvature that is
    small only because a component's weight is small still counts; the signs of the
    eigenvalues do not change (Sylvester's law of inertia). A coordinate whose diagonal
    is below ``1e-13 * scale`` is flat (an exactly constant direction plus rounding): it is
    left out (``s = 0``) and its row is reported in ``flat``.

    Returns ``(vals, vecs, s, flat)``: eigenvalues ascending and eigenvectors of the
    scaled matrix, the scaling (B, D), and whether some coordinate was flat (B,).
    """
    diag = np.abs(a.diagonal(axis1=1, axis2=2))
    zero = diag <= 1e-13 * scale
    s = 1.0 / np.sqrt(np.where(zero, np.inf, diag))
    vals, vecs = np.linalg.eigh(s[:, :, None] * a * s[:, None, :])
    return vals, vecs, s, zero.any(axis=-1)


def aitken_gap(increments, resolution: float, fixed: bool = False) -> tuple[float, float]:
    """Remaining gain extrapolated from the last increments of consecutive EM steps.

    With increments d_k falling at a stable ratio rho < 1 (the last two ratios within 5%
    of each other), the rest of the geometric series is d_k rho / (1 - rho). Increments
    below ``resolution`` (the objective's rounding) carry no rate: no estimate. ``fixed``
    (the last EM step left the parameters exactly as they were: an EM fixed point) gives
    0. Otherwise ``inf``: no estimate. Returns ``(gap, rate)``.
    """
    if fixed:
        return 0.0, 0.0
    d = np.asarray(increments[-3:], dtype=float)
    if d.size < 3 or np.any(d <= resolution):
        return float("inf"), float("nan")
    r1, r2 = d[1] / d[0], d[2] / d[1]
    if not (0.0 < r2 < 1.0) or abs(r2 - r1) > 0.05 * r2:
        return float("inf"), float(r2)
    return float(d[-1] * r2 / (1.0 - r2)), float(r2)


# ---------------------------------------------------------------------- faces
def _trivial_face(params: MixtureParams) -> Face:
    """The face a point is on exactly: exact ties, zero weights, biases at 0 or 1."""
    w, p = params.weights, params.p
    alive = [j for j in np.argsort(p, kind="stable") if w[j] > 0]
    groups: list[list[int]] = []
    for j in alive:
        if groups and p[groups[-1][0]] == p[j]:
            groups[-1].append(int(j))
        else:
            groups.append([int(j)])
    bounds = tuple(float(p[g[0]]) if p[g[0]] in (0.0, 1.0) else None for g in groups)
    empty = tuple(int(j) for j in range(w.size) if w[j] <= 0)
    return Face(tuple(tuple(g) for g in groups), empty, bounds)


def _candidates(face: Face, params: MixtureParams, prior: Prior | None):
    """One-step reductions of a face: drop the lightest group, tie the closest, snap one."""
    w, p = params.weights, params.p
    alpha = np.ones(w.size) if prior is None else np.asarray(prior.alpha, dtype=float)
    a, b = (1.0, 1.0) if prior is None else (prior.a, prior.b)
    weight = [float(w[list(g)].sum()) for g in face.groups]
    out = []
    if len(face.groups) > 1:
        j = int(np.argmin(weight))
        if np.all(alpha[list(face.groups[j])] == 1.0):  # zero weight has density > 0
            out.append(_drop(face, params, j))
        gaps = [
            abs(p[face.groups[i + 1][0]] - p[face.groups[i][0]])
            for i in range(len(face.groups) - 1)
        ]
        out.append(_tie(face, params, int(np.argmin(gaps))))
    interior = [i for i, bd in enumerate(face.bounds) if bd is None]
    if interior and a == 1.0:
        out.append(_snap(face, params, interior[0], 0.0))
    if interior and b == 1.0:
        out.append(_snap(face, params, interior[-1], 1.0))
    return out


def _drop(face: Face, params: MixtureParams, i: int):
    w, p = params.weights.copy(), params.p.copy()
    members = list(face.groups[i])
    w[members] = 0.0
    w /= w.sum()
    groups = face.groups[:i] + face.groups[i + 1 :]
    bounds = face.bounds[:i] + face.bounds[i + 1 :]
    empty = tuple(sorted(face.empty + tuple(members)))
    return Face(groups, empty, bounds), MixtureParams._trusted(w, p), "drop"


def _tie(face: Face, params: MixtureParams, i: int):
    w, p = params.weights, params.p.copy()
    members = list(face.groups[i] + face.groups[i + 1])
    bound = face.bounds[i] if face.bounds[i] is not None else face.bounds[i + 1]
    total = w[members].sum()
    p[members] = bound if bound is not None else float(w[members] @ p[members] / total)
    groups = face.groups[:i] + (tuple(members),) + face.groups[i + 2 :]
    bounds = face.bounds[:i] + (bound,) + face.bounds[i + 2 :]
    return Face(groups, face.empty, bounds), MixtureParams._trusted(w.copy(), p), "tie"


def _snap(face: Face, params: MixtureParams, i: int, value: float):
    p = params.p.copy()
    p[list(face.groups[i])] = value
    bounds = face.bounds[:i] + (value,) + face.bounds[i + 1 :]
    point = MixtureParams._trusted(params.weights.copy(), p)
    return Face(face.groups, face.empty, bounds), point, "snap"


def propose_face(
    data: BinomialData, params: MixtureParams, prior: Prior | None, nats: float
) -> tuple[Face, MixtureParams, int]:
    """The face a point is close to, and the point moved onto it.

    Starting from the exact degeneracies of ``params``, greedily applies the cheapest of
    (drop the lightest group, tie the two groups closest in bias, put the lowest or highest
    bias on the boundary) while it changes the objective by less than ``nats``, preferring
    a tie. A face is thus proposed only for a point already close to it. Returns the
    face, the point on it and the number of objective evaluations.
    """
    face = _trivial_face(params)
    current = params
    obj = float(log_likelihood(data, current) + log_prior(current, prior))
    evals = 1
    while True:
        cands = _candidates(face, current, prior)
        if not cands:
            break
        batch = MixtureParams(
            np.stack([c[1].weights for c in cands]), np.stack([c[1].p for c in cands])
        )
        with np.errstate(divide="ignore"):
            values = np.asarray(log_likelihood(data, batch)) + np.asarray(log_prior(batch, prior))
        evals += 1
        cheap = [i for i in range(len(cands)) if abs(obj - values[i]) < nats]
        if not cheap:
            break
        # A tie first: it keeps every component (a collapsed fit then shows all of them at
        # the common bias); else the cheapest change.
        ties = [i for i in cheap if cands[i][2] == "tie"]
        best = ties[0] if ties else min(cheap, key=lambda i: abs(obj - values[i]))
        face, current, _ = cands[best]
        obj = float(values[best])
    return face, current, evals


def face_basis(face: Face, params: MixtureParams, fix: str | None) -> np.ndarray:
    """Directions of (eta, lambda) that move within the face, shape (2K, D').

    A group's weight moves with the ratios inside it held (its members' eta together),
    except the heaviest group's (the gauge); an interior group's bias moves with its
    members tied (their lambda together).
    """
    k = params.n_components
    w = params.weights
    heaviest = int(np.argmax([w[list(g)].sum() for g in face.groups]))
    cols = []
    if fix != "weights":
        for i, g in enumerate(face.groups):
            if i != heaviest:
                col = np.zeros(2 * k)
                col[list(g)] = 1.0
                cols.append(col)
    if fix != "p":
        for g, bound in zip(face.groups, face.bounds, strict=True):
            if bound is None:
                col = np.zeros(2 * k)
                col[[k + j for j in g]] = 1.0
                cols.append(col)
    return np.array(cols).T if cols else np.zeros((2 * k, 0))


def component_log_pmf(data: BinomialData, p: np.ndarray) -> np.ndarray:
    """log Binom(h_m | n_m, p_j) for each outcome and component, shape (M, K)."""
    h = data.heads.astype(float)[:, None]
    n = data.trials.astype(float)[:, None]
    log_c = gammaln(n + 1.0) - gammaln(h + 1.0) - gammaln(n - h + 1.0)
    return log_c + xlogy(h, p[None, :]) + xlogy(n - h, 1.0 - p[None, :])


def _kkt_violation(data: BinomialData, params: MixtureParams, face: Face, prior) -> float:
    """Largest first-order gain from leaving an active constraint (<= 0 at a maximum).

    For an empty component j, the gain of giving it weight: Lindsay's (1983) gradient
    function D(p_j) = sum_m c_m (f(x_m; p_j) / f_mix(x_m) - 1). For a bias at 0 (or 1),
    the derivative of the objective pointing into (0, 1).
    """
    comp = component_log_pmf(data, params.p)
    with np.errstate(divide="ignore"):
        log_mix = np.log(np.exp(comp) @ params.weights)
    c = data._counts_f
    worst = -np.inf
    if face.empty:
        worst = float(gradient_function(data, params, params.p[list(face.empty)]).max())
    a, b = (1.0, 1.0) if prior is None else (prior.a, prior.b)
    h, n = data.heads, data.trials.astype(float)
    for g, bound in zip(face.groups, face.bounds, strict=True):
        if bound is None:
            continue
        wg = float(params.weights[list(g)].sum())
        if bound == 0.0:  # d/dp at 0: only h = 0 (-n) and h = 1 (+n) move
            slope = n * ((h == 1).astype(float) - (h == 0))
            gain = wg * float(c @ (slope * np.exp(-log_mix))) - (b - 1.0) * len(g)
        else:  # -d/dp at 1: h = n (-n) and h = n - 1 (+n)
            slope = n * ((h == data.trials - 1).astype(float) - (h == data.trials))
            gain = wg * float(c @ (slope * np.exp(-log_mix))) - (a - 1.0) * len(g)
        worst = max(worst, gain)
    return worst


def gradient_function(data: BinomialData, params: MixtureParams, phi: np.ndarray) -> np.ndarray:
    """Lindsay's (1983) gradient function D(phi) = sum_m c_m (f(x_m; phi) / f_mix(x_m) - 1).

    The derivative of the log-likelihood when a little weight moves from the fitted
    mixture to a new component at bias phi. A mixture is the maximum-likelihood mixing
    distribution over all mixtures exactly when D <= 0 on [0, 1]; where D > 0, a component
    at phi gains. ``phi`` of shape (G,); returns shape (G,).
    """
    comp = component_log_pmf(data, params.p)
    with np.errstate(divide="ignore"):
        log_mix = np.log(np.exp(comp) @ params.weights)
    at = component_log_pmf(data, np.asarray(phi, dtype=float))
    return data._counts_f @ (np.exp(at - log_mix[:, None]) - 1.0)


def lindsay_escape(
    data: BinomialData, params: MixtureParams, face: Face, prior: Prior | None
) -> MixtureParams | None:
    """Leave a collapsed saddle by giving a spare component the bias where D is largest.

    At a face optimum with fewer effective components than K (tied or empty ones) that is
    not a maximum, a spare component (an empty one, or the lightest member of a tie, whose
    weight goes back to its group) is moved to phi* = argmax D(phi) (a grid of 401 points,
    refined, inside (0, 1)), and given the weight eps maximising the log-likelihood of
    (1 - eps) G + eps delta(phi*): a concave problem in eps whose slope at 0 is
    D(phi*) > 0 (the vertex direction method; Boehning 1995). Maximum likelihood only (or a
    flat prior). Returns the new point, or None if D <= 0 everywhere.
    """
    if prior is not None and (set(prior.alpha) != {1.0} or (prior.a, prior.b) != (1.0, 1.0)):
        return None
    ties = [g for g in face.groups if len(g) > 1]
    if not face.empty and not ties:
        return None
    w, p = params.weights.copy(), params.p.copy()
    if face.empty:
        spare = face.empty[0]
    else:
        group = min(ties, key=lambda g: float(w[list(g)].sum()))
        spare = min(group, key=lambda j: w[j])
        mates = [j for j in group if j != spare]
        w[mates] += w[spare] * w[mates] / w[mates].sum()
    w[spare] = 0.0
    base = MixtureParams._trusted(w, p)
    # Interior points only: EM cannot move a bias off 0 or 1 (a bias on the boundary is
    # for the face logic to propose and verify).
    grid = np.linspace(0.0, 1.0, 401)[1:-1]
    d = gradient_function(data, base, grid)
    i = int(np.argmax(d))
    fine = np.linspace(grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)], 101)
    df = gradient_function(data, base, fine)
    phi, best = float(fine[np.argmax(df)]), float(df.max())
    if not best > KKT_ATOL * max(1.0, data.n_sequences):
        return None
    f_new = np.exp(component_log_pmf(data, np.array([phi]))[:, 0])
    f_mix = np.exp(component_log_pmf(data, p)) @ w
    c = data._counts_f
    lo, hi = 0.0, 1.0  # bisection on the slope of the concave l(eps)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        slope = c @ ((f_new - f_mix) / ((1 - mid) * f_mix + mid * f_new))
        lo, hi = (mid, hi) if slope > 0 else (lo, mid)
    eps = 0.5 * (lo + hi)
    w *= 1.0 - eps
    w[spare] = eps
    p[spare] = phi
    return MixtureParams._trusted(w, p)


def _finite_coordinates(face: Face, params: MixtureParams, fix: str | None) -> np.ndarray:
    """Coordinates of (eta, lambda) that are finite on the face, gauge removed."""
    k = params.n_components
    ref = int(np.argmax(params.weights))
    empty = set(face.empty)
    bound = {j for g, b in zip(face.groups, face.bounds, strict=True) if b is not None for j in g}
    eta = [] if fix == "weights" else [j for j in range(k) if j != ref and j not in empty]
    lam = [] if fix == "p" else [k + j for j in range(k) if j not in empty | bound]
    return np.array(eta + lam, dtype=np.int64)


def verify_face(
    data: BinomialData,
    params: MixtureParams,
    face: Face,
    prior: Prior | None,
    fix: str | None,
    h: np.ndarray,
) -> str:
    """Why ``params`` (the optimum on ``face``) is not a local maximum; "" if it is one.

    Checks the first-order conditions on the active constraints and that the Hessian
    ``h`` (2K, 2K) has no clearly positive eigenvalue on the finite coordinates, so no
    split of tied components and no other direction gains to second order.
    """
    kkt = _kkt_violation(data, params, face, prior)
    if kkt > KKT_ATOL * max(1.0, data.n_sequences):
        return f"a constraint is not active at the optimum (first-order gain {kkt:.3g})"
    idx = _finite_coordinates(face, params, fix)
    if idx.size:
        vals = scaled_eigh(-h[np.ix_(idx, idx)][None], data.n_sequences)[0][0]
        if vals[0] < -NSD_RTOL * max(vals[-1], 1.0):
            return f"a direction of positive curvature (scaled {-vals[0]:.3g}): a saddle"
    return ""


def face_newton(
    data: BinomialData,
    params: MixtureParams,
    face: Face,
    prior: Prior | None,
    fix: str | None,
    *,
    tol: float,
    max_steps: int = 50,
):
    """Newton's method with a line search restricted to ``face``, from ``params``.

    Returns ``(found, evaluations)``: ``found`` is ``(params, expect, objective, gap,
    hessian)`` at the optimum on the face (gap <= tol * POLISH), or None if the face's
    Hessian is not negative definite or the search stalls.
    """
    basis = face_basis(face, params, fix)
    expect = e_step(data, params)
    obj = float(expect.log_likelihood + log_prior(params, prior))
    evals = 1
    for _ in range(max_steps + 1):
        g, h = gradient_hessian(data, params, prior, expect)
        if basis.shape[1] == 0:
            return (params, expect, obj, 0.0, h), evals
        gap, step, definite, _ = newton_system(
            (g @ basis)[None],
            (basis.T @ h @ basis)[None],
            np.arange(basis.shape[1]),
            False,
            data.n_sequences,
        )
        if not definite[0]:
            return None, evals
        if gap[0] <= tol * POLISH:
            return (params, expect, obj, float(gap[0]), h), evals
        move = basis @ step[0]
        t = float(step_size(move[None])[0])
        for _ in range(MAX_HALVINGS):
            trial = trial_point(params.weights[None], params.p[None], t * move[None])[0]
            ex = e_step(data, trial)
            new = float(ex.log_likelihood + log_prior(trial, prior))
            evals += 1
            if accept(new, obj, t * 2 * gap[0], noise(data, obj)):
                params, expect, obj = trial, ex, new
                break
            t /= 2
        else:
            return None, evals
    return None, evals


#: On a face, Newton goes on to this fraction of the tolerance: a step or two more, which
#: puts tied biases at their common value to many digits.
POLISH = 1e-3
#: Largest move of any unconstrained coordinate in one Newton trial.
STEP_CAP = 4.0
#: Line-search halvings before a Newton step is given up for an EM step.
MAX_HALVINGS = 30
#: Armijo's sufficient-increase fraction.
ARMIJO = 1e-4
#: Trial biases are kept this far (in logit units) from 0 and 1: expit rounds beyond ~36.
LOGIT_CAP = 30.0
_P_LO, _P_HI = float(expit(-LOGIT_CAP)), float(expit(LOGIT_CAP))


def step_size(step: np.ndarray) -> np.ndarray:
    """First trial length of each row's step: 1, or less so no coordinate moves > STEP_CAP."""
    biggest = np.abs(step).max(axis=-1)
    return np.minimum(1.0, STEP_CAP / np.maximum(biggest, 1e-300))


def trial_point(weights: np.ndarray, p: np.ndarray, move: np.ndarray) -> MixtureParams:
    """The parameters (B, K) moved by ``move`` (B, 2K) in (eta, lambda).

    Coordinates that do not move stay exactly as they are (a weight of 0 or a bias at 0 or
    1 included); moved biases are kept within expit(+-LOGIT_CAP) of 0 and 1.
    """
    k = p.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.log(weights) + move[..., :k]  # log 0 + 0 stays log 0
        lam = np.log(p) - np.log1p(-p) + move[..., k:]
    w = np.exp(eta - eta.max(axis=-1, keepdims=True))
    w /= w.sum(axis=-1, keepdims=True)
    new_p = np.where(move[..., k:] == 0.0, p, np.clip(expit(lam), _P_LO, _P_HI))
    return MixtureParams._trusted(w, new_p)


def accept(new, old, predicted, tolerance):
    """Armijo's test, or no fall beyond rounding when the predicted gain is below it."""
    new, old = np.asarray(new), np.asarray(old)
    return (new >= old + ARMIJO * predicted) | ((predicted < tolerance) & (new >= old - tolerance))
