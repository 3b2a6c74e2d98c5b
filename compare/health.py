"""Sampler health: divergences, R-hat, ESS and E-BFMI, judged and put into words.

``pm.sample(compute_convergence_checks=False)`` silences PyMC's own warnings; this module
replaces them. :func:`sampler_health` measures, with ArviZ,

- the post-warm-up divergent transitions (``sample_stats["diverging"]``),
- the largest rank-normalised split R-hat and the smallest bulk and tail ESS
  (Vehtari et al. 2021) of the quantities the caller names,
- the E-BFMI of every chain (``sample_stats["energy"]``; Betancourt 2016),

and warns, in the terms ArviZ and Stan use, when R-hat exceeds ``RHAT_MAX``, an ESS falls
below ``ESS_MIN_PER_CHAIN`` per chain, any transition diverged or a chain's E-BFMI is
below ``EBFMI_MIN`` (all three in :mod:`compare.settings`, read at every call).
:func:`health_conclusion` turns the result into the report's sentence: reliable or not,
the likely cause and what to try. :func:`summary_rows` is ArviZ's summary table (with
``ess_tail`` and the MCSEs) as plain rows.

Under label switching, R-hat and ESS of component-specific quantities are meaningless, so
the caller chooses what is judged: posterior variables by name, and/or arrays of shape
(chain, draw, ...) such as the label-invariant log-likelihood or relabelled draws::

    sampler_health(idata_ord, var_names=["w", "p"])                      # ordered model
    sampler_health(idata, var_names=[], invariant={"log_likelihood": ll, "pmf": pmf})
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import arviz as az
import numpy as np
import xarray as xr

from compare import settings

__all__ = [
    "HealthWarning",
    "VariableHealth",
    "SamplerHealth",
    "SUMMARY_COLUMNS",
    "as_datatree",
    "sampler_health",
    "health_conclusion",
    "summary_rows",
]

#: Keys of every row :func:`summary_rows` returns, in table order.
SUMMARY_COLUMNS = (
    "parameter",
    "mean",
    "sd",
    "ci_lower",
    "ci_upper",
    "mcse_mean",
    "mcse_sd",
    "ess_bulk",
    "ess_tail",
    "r_hat",
)
_SAMPLE_DIMS = ("chain", "draw")
_MIN_DRAWS = 4  # split R-hat halves every chain; ArviZ gives NaN below this


# ---------------------------------------------------------------------- results
class HealthWarning(str):
    """One failed check: the warning's text (a ``str``), tagged with the check it comes from.

    Being a string, a tuple of them joins, prints and serialises as text. The text has no
    final full stop, so that ``"; ".join(warnings)`` reads as one sentence.

    Attributes
    ----------
    kind : str
        ``"divergences"``, ``"rhat"``, ``"ess_bulk"``, ``"ess_tail"`` or ``"ebfmi"``.
    """

    kind: str

    def __new__(cls, kind: str, message: str) -> HealthWarning:
        """Tag ``message`` with ``kind``."""
        obj = super().__new__(cls, message)
        obj.kind = kind
        return obj

    def __reduce__(self):
        return (HealthWarning, (self.kind, str(self)))

    @property
    def message(self) -> str:
        """The text as a plain ``str``."""
        return str(self)


@dataclass(frozen=True)
class VariableHealth:
    """R-hat and ESS of one judged array, per element (row-major over its trailing dims).

    Attributes
    ----------
    name : str
        The variable or array name.
    source : str
        ``"posterior"`` (a variable of the DataTree) or ``"invariant"`` (an array passed in).
    shape : tuple of int
        Its trailing (non-sample) shape.
    rhat, ess_bulk, ess_tail : tuple of (float or None)
        Per element; None where the element is constant (not judged) or, for R-hat, where
        there is a single chain.
    constant : int
        How many elements have identical draws everywhere and are therefore not judged.
    undefined : tuple of str
        Labels of the non-constant elements ArviZ gives no R-hat for (NaN, with at least
        2 chains): every chain constant yet the chains apart, i.e. stuck chains. They fail
        the R-hat check.
    """

    name: str
    source: str
    shape: tuple[int, ...]
    rhat: tuple[float | None, ...]
    ess_bulk: tuple[float | None, ...]
    ess_tail: tuple[float | None, ...]
    constant: int
    undefined: tuple[str, ...] = ()

    def labels(self) -> list[str]:
        """Element labels, ``name[i,j]`` (just ``name`` for a scalar)."""
        if not self.shape:
            return [self.name]
        return [f"{self.name}[{','.join(map(str, i))}]" for i in np.ndindex(*self.shape)]

    def to_dict(self) -> dict:
        """Plain lists, floats, ints and None."""
        out = asdict(self)
        out["shape"] = list(self.shape)
        out["undefined"] = list(self.undefined)
        for key in ("rhat", "ess_bulk", "ess_tail"):
            out[key] = list(out[key])
        return out


@dataclass(frozen=True)
class SamplerHealth:
    """What :func:`sampler_health` measured and concluded.

    Attributes
    ----------
    chains, draws : int
        Size of the judged draws.
    divergences : int or None
        Post-warm-up divergent transitions; None without ``sample_stats["diverging"]``.
    transitions : int or None
        Post-warm-up transitions in ``sample_stats`` (chains x draws there).
    max_rhat, min_ess_bulk, min_ess_tail : float or None
        Worst values over every judged element (None if none could be computed).
    max_rhat_at, min_ess_bulk_at, min_ess_tail_at : str or None
        Which element, e.g. ``"p[1]"``.
    ebfmi : tuple of float, or None
        E-BFMI per chain; None without ``sample_stats["energy"]``.
    min_ebfmi : float or None
        The smallest of them.
    rhat_max, ess_min, ebfmi_min : float
        Thresholds applied (``ess_min`` is ``ESS_MIN_PER_CHAIN`` x chains).
    variables : tuple of VariableHealth
        Per-variable details.
    warnings : tuple of HealthWarning
        Every failed check (strings tagged with their ``kind``), in the order
        divergences, R-hat, ESS bulk, ESS tail, E-BFMI.
    not_checked : tuple of str
        Checks that could not be made, and why.
    """

    chains: int
    draws: int
    divergences: int | None
    transitions: int | None
    max_rhat: float | None
    max_rhat_at: str | None
    min_ess_bulk: float | None
    min_ess_bulk_at: str | None
    min_ess_tail: float | None
    min_ess_tail_at: str | None
    ebfmi: tuple[float, ...] | None
    min_ebfmi: float | None
    rhat_max: float
    ess_min: float
    ebfmi_min: float
    variables: tuple[VariableHealth, ...]
    warnings: tuple[HealthWarning, ...]
    not_checked: tuple[str, ...]

    @property
    def reliable(self) -> bool:
        """True when no check failed."""
        return not self.warnings

    @property
    def failed(self) -> tuple[str, ...]:
        """The kinds of the failed checks, in the order of :attr:`warnings`."""
        return tuple(w.kind for w in self.warnings)

    @property
    def min_bfmi(self) -> float | None:
        """Alias of :attr:`min_ebfmi` (the name the interim module used)."""
        return self.min_ebfmi

    def warned(self, kind: str) -> bool:
        """Whether the check ``kind`` (see :class:`HealthWarning`) failed."""
        return kind in self.failed

    def to_dict(self) -> dict:
        """Every number as plain floats, ints, bools, strings, lists and None (JSON-ready)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["ebfmi"] = None if self.ebfmi is None else list(self.ebfmi)
        out["variables"] = [v.to_dict() for v in self.variables]
        out["warnings"] = [w.message for w in self.warnings]
        out["failed"] = list(self.failed)
        out["not_checked"] = list(self.not_checked)
        out["reliable"] = self.reliable
        return out


# ---------------------------------------------------------------------- conversion
def as_datatree(
    arrays: Mapping[str, np.ndarray], *, sample_stats: xr.DataTree | None = None
) -> xr.DataTree:
    """A DataTree whose ``posterior`` holds (chain, draw, ...) arrays, e.g. relabelled draws.

    Parameters
    ----------
    arrays : mapping of str to array
        Each of shape (chain, draw, ...). ``w`` and ``p`` (and any 3-d array whose last
        axis matches theirs) get the models' ``component`` dimension; other trailing axes
        are named ``<name>_dim_<i>``.
    sample_stats : DataTree, optional
        A DataTree whose ``sample_stats`` group is copied in (divergences mark the trace
        plot; energy feeds the energy plot).

    Returns
    -------
    xarray.DataTree

    Raises
    ------
    ValueError
        If an array is not (chain, draw, ...), has fewer than 4 draws, is not finite, or the
        arrays disagree on (chain, draw).
    """
    checked = _checked_arrays(arrays, "arrays")
    variables = {name: (_dims(name, a), a) for name, a in checked.items()}
    coords = {}
    for dims, a in variables.values():
        coords.update({d: np.arange(n) for d, n in zip(dims, a.shape, strict=True)})
    posterior = xr.Dataset(variables, coords=coords)
    tree = {"posterior": posterior}
    if sample_stats is not None:
        if not isinstance(sample_stats, xr.DataTree) or "sample_stats" not in sample_stats:
            raise ValueError("sample_stats: expected a DataTree with a sample_stats group")
        tree["sample_stats"] = sample_stats["sample_stats"].to_dataset()
    return xr.DataTree.from_dict(tree)


def _dims(name: str, a: np.ndarray) -> tuple[str, ...]:
    if name in ("w", "p") and a.ndim == 3:
        return (*_SAMPLE_DIMS, "component")
    return (*_SAMPLE_DIMS, *(f"{name}_dim_{i}" for i in range(a.ndim - 2)))


def _checked_arrays(arrays, what: str) -> dict[str, np.ndarray]:
    """Validate a mapping of (chain, draw, ...) arrays; float copies, same (chain, draw)."""
    if not isinstance(arrays, Mapping) or not arrays:
        raise ValueError(
            f"{what}: expected a non-empty mapping of name -> (chain, draw, ...) array"
        )
    out = {}
    for name, value in arrays.items():
        try:
            a = np.array(value, dtype=float)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{what}[{name!r}]: not a numeric array ({err})") from None
        out[str(name)] = _check_draws(a, f"{what}[{name!r}]")
    _same_sample_shape(out, what)
    return out


def _check_draws(a: np.ndarray, label: str) -> np.ndarray:
    if a.ndim < 2:
        raise ValueError(f"{label}: expected a (chain, draw, ...) array, got shape {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < _MIN_DRAWS:
        raise ValueError(
            f"{label}: needs at least 1 chain and {_MIN_DRAWS} draws, got shape {a.shape}"
        )
    bad = np.argwhere(~np.isfinite(a))
    if bad.size:
        raise ValueError(f"{label}: non-finite value at index {tuple(int(i) for i in bad[0])}")
    return a


def _same_sample_shape(arrays: dict[str, np.ndarray], what: str) -> None:
    shapes = {name: a.shape[:2] for name, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{n} {s}" for n, s in shapes.items())
        raise ValueError(f"{what}: arrays disagree on (chain, draw): {listed}")


# ---------------------------------------------------------------------- measuring
def sampler_health(
    idata: xr.DataTree | Mapping[str, np.ndarray] | None,
    var_names: Sequence[str] | Mapping[str, np.ndarray] | None = None,
    *,
    invariant: Mapping[str, np.ndarray] | None = None,
) -> SamplerHealth:
    """Divergences, R-hat, ESS and E-BFMI of one model's draws, judged against the settings.

    Parameters
    ----------
    idata : DataTree, mapping of str to array, or None
        The sampler's DataTree (``posterior`` and post-warm-up ``sample_stats``, as PyMC
        returns it), or just a mapping of (chain, draw, ...) arrays to judge, or None (then
        only the arrays given in ``var_names``/``invariant`` are judged). Without
        ``sample_stats`` divergences and E-BFMI are not checked, and the result says so.
    var_names : sequence of str, or mapping of str to array, optional
        Posterior variables whose R-hat and ESS are judged; None means every posterior
        variable (every array of a mapping). Pass ``[]`` to judge only ``invariant``: under
        label switching the component-specific ``w`` and ``p`` must not be judged raw.
        A mapping of arrays here means ``var_names=[], invariant=that mapping``.
    invariant : mapping of str to array, optional
        Further (chain, draw, ...) arrays to judge: label-invariant quantities (the total
        log-likelihood, the fitted pmf) or relabelled draws. Same (chain, draw) as the rest.

    Returns
    -------
    SamplerHealth

    Raises
    ------
    ValueError
        If nothing is to be judged, a variable is missing, an array has the wrong shape,
        too few draws or non-finite values, or the sample statistics are not finite.
    """
    judged, stats = _judged_arrays(idata, var_names, invariant)
    first = next(iter(judged.values()))[1]
    chains, draws = first.shape[:2]
    rmax, emin, bmin = settings.RHAT_MAX, settings.ESS_MIN_PER_CHAIN * chains, settings.EBFMI_MIN
    variables = tuple(_variable_health(name, src, a) for name, (src, a) in judged.items())
    divergences, transitions = _divergences(stats)
    ebfmi = _ebfmi(stats)
    worst = _worst(variables)
    not_checked = _not_checked(chains, divergences, ebfmi, variables)
    health = SamplerHealth(
        chains=chains,
        draws=draws,
        divergences=divergences,
        transitions=transitions,
        **worst,
        ebfmi=ebfmi,
        min_ebfmi=None if ebfmi is None else min(ebfmi),
        rhat_max=float(rmax),
        ess_min=float(emin),
        ebfmi_min=float(bmin),
        variables=variables,
        warnings=(),
        not_checked=not_checked,
    )
    return _with_warnings(health)


def _judged_arrays(idata, var_names, invariant):
    """{name: (source, array)} to judge, and the sample_stats Dataset (or None)."""
    if isinstance(var_names, Mapping):
        invariant = {**var_names, **(invariant or {})}
        var_names = []
    stats = None
    if idata is None:
        if var_names:
            raise ValueError("var_names: no DataTree to take posterior variables from")
        post = {}
    elif isinstance(idata, xr.DataTree):
        post = _posterior_arrays(idata, var_names)
        if "sample_stats" in idata:
            stats = idata["sample_stats"].to_dataset()
    elif isinstance(idata, Mapping):
        arrays = _checked_arrays(idata, "idata") if idata else {}
        names = list(arrays) if var_names is None else list(var_names)
        for name in names:
            if name not in arrays:
                raise ValueError(f"var_names: {name!r} is not among the arrays ({_listed(arrays)})")
        post = {name: arrays[name] for name in names}
    else:
        raise ValueError(
            f"idata: expected a DataTree or a mapping of arrays, got {type(idata).__name__}"
        )
    judged = {name: ("posterior", a) for name, a in post.items()}
    if invariant is not None:
        for name, a in _checked_arrays(invariant, "invariant").items():
            if name in judged:
                raise ValueError(f"invariant[{name!r}]: name already taken by a posterior variable")
            judged[name] = ("invariant", a)
    if not judged:
        raise ValueError("nothing to judge: give var_names or invariant arrays")
    _same_sample_shape({n: a for n, (_, a) in judged.items()}, "judged arrays")
    return judged, stats


def _posterior_arrays(idata: xr.DataTree, var_names) -> dict[str, np.ndarray]:
    if "posterior" not in idata:
        if var_names is not None and len(var_names) == 0:
            return {}
        raise ValueError("idata: the DataTree has no posterior group")
    post = idata["posterior"]
    names = list(post.data_vars) if var_names is None else list(var_names)
    out = {}
    for name in names:
        if name not in post.data_vars:
            raise ValueError(
                f"var_names: {name!r} is not in the posterior ({_listed(post.data_vars)})"
            )
        da = post[name]
        if not set(_SAMPLE_DIMS) <= set(da.dims):
            raise ValueError(f"var_names: posterior {name!r} has no (chain, draw) dimensions")
        values = da.transpose(*_SAMPLE_DIMS, ...).values.astype(float)
        out[name] = _check_draws(values, f"posterior[{name!r}]")
    return out


def _listed(names) -> str:
    return "has: " + (", ".join(map(str, names)) or "nothing")


def _variable_health(name: str, source: str, a: np.ndarray) -> VariableHealth:
    """ArviZ's rank-normalised split R-hat and bulk/tail ESS of every element of ``a``."""
    shape = a.shape[2:]
    flat = a.reshape(a.shape[0], a.shape[1], -1)
    ds = xr.Dataset({"x": ((*_SAMPLE_DIMS, "element"), flat)})
    constant = np.ptp(flat, axis=(0, 1)) == 0
    with warnings.catch_warnings():
        # constant elements and single chains give NaN with a RuntimeWarning; both are
        # reported as None below, never judged.
        warnings.simplefilter("ignore", RuntimeWarning)
        rhat = az.rhat(ds)["x"].values
        bulk = az.ess(ds, method="bulk")["x"].values
        tail = az.ess(ds, method="tail")["x"].values
    single_chain = a.shape[0] < 2

    def clean(values, skip_all: bool):
        return tuple(
            None if (c or skip_all or not np.isfinite(v)) else float(v)
            for v, c in zip(values, constant, strict=True)
        )

    rhat_c = clean(rhat, single_chain)
    undefined = np.flatnonzero(~constant & ~np.isfinite(rhat)) if not single_chain else []
    labels = VariableHealth(name, source, tuple(shape), (), (), (), 0).labels()
    return VariableHealth(
        name=name,
        source=source,
        shape=tuple(int(s) for s in shape),
        rhat=rhat_c,
        ess_bulk=clean(bulk, False),
        ess_tail=clean(tail, False),
        constant=int(constant.sum()),
        undefined=tuple(labels[i] for i in undefined),
    )


def _worst(variables: tuple[VariableHealth, ...]) -> dict:
    """Largest R-hat, smallest ESS bulk/tail over every judged element, with where they are."""
    out = {}
    for key, field, pick in (
        ("max_rhat", "rhat", max),
        ("min_ess_bulk", "ess_bulk", min),
        ("min_ess_tail", "ess_tail", min),
    ):
        pairs = [
            (v, label)
            for var in variables
            for v, label in zip(getattr(var, field), var.labels(), strict=True)
            if v is not None
        ]
        value, label = pick(pairs, key=lambda t: t[0]) if pairs else (None, None)
        out[key], out[f"{key}_at"] = value, label
    return out


def _divergences(stats: xr.Dataset | None) -> tuple[int | None, int | None]:
    if stats is None or "diverging" not in stats:
        return None, None
    flags = stats["diverging"].values
    return int(np.count_nonzero(flags)), int(flags.size)


def _ebfmi(stats: xr.Dataset | None) -> tuple[float, ...] | None:
    """ArviZ's E-BFMI per chain: squared energy changes over squares about the mean, summed."""
    if stats is None or "energy" not in stats:
        return None
    energy = stats["energy"].transpose(*_SAMPLE_DIMS, ...).values.astype(float)
    _check_draws(energy, "sample_stats['energy']")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant energy: 0/0
        values = az.bfmi(xr.Dataset({"energy": (_SAMPLE_DIMS, energy)}))["energy"].values
    values = np.atleast_1d(values).astype(float)
    # A chain whose energy never changed has explored nothing: E-BFMI 0, not NaN.
    return tuple(float(v) if np.isfinite(v) else 0.0 for v in values)


def _not_checked(chains, divergences, ebfmi, variables) -> tuple[str, ...]:
    out = []
    if divergences is None:
        out.append("divergences (no sample_stats['diverging'])")
    if ebfmi is None:
        out.append("E-BFMI (no sample_stats['energy'])")
    if chains < 2:
        out.append("R-hat (needs at least 2 chains)")
    skipped = [f"{v.name} ({v.constant})" for v in variables if v.constant]
    if skipped:
        out.append("R-hat and ESS of constant elements: " + ", ".join(skipped))
    return tuple(out)


# ---------------------------------------------------------------------- warnings
def _with_warnings(h: SamplerHealth) -> SamplerHealth:
    found = [
        _divergence_warning(h),
        _rhat_warning(h),
        _ess_warning(h, "bulk"),
        _ess_warning(h, "tail"),
        _ebfmi_warning(h),
    ]
    return _replace(h, warnings=tuple(w for w in found if w is not None))


def _replace(h: SamplerHealth, **changes) -> SamplerHealth:
    fields = {k: getattr(h, k) for k in h.__dataclass_fields__}
    return SamplerHealth(**{**fields, **changes})


def _divergence_warning(h: SamplerHealth) -> HealthWarning | None:
    if not h.divergences:
        return None
    pct = 100 * h.divergences / h.transitions
    return HealthWarning(
        "divergences",
        f"{h.divergences} of {h.transitions} ({pct:.2f}%) transitions after warm-up ended "
        "with a divergence: HMC is not fully able to explore the posterior distribution, so "
        "the draws may be biased",
    )


def _rhat_warning(h: SamplerHealth) -> HealthWarning | None:
    stuck = [label for var in h.variables for label in var.undefined]
    high = h.max_rhat is not None and h.max_rhat > h.rhat_max
    if not high and not stuck:
        return None
    parts = []
    if high:
        n_bad = sum(v is not None and not v <= h.rhat_max for var in h.variables for v in var.rhat)
        n_all = sum(v is not None for var in h.variables for v in var.rhat)
        parts.append(
            f"the largest rank-normalised split R-hat is {_fmt_rhat(h.max_rhat)} "
            f"({h.max_rhat_at}; {n_bad} of {n_all} quantities above)"
        )
    if stuck:
        parts.append(f"R-hat is undefined for {_some(stuck)}: every chain is constant there")
    return HealthWarning(
        "rhat",
        f"R-hat above {h.rhat_max:g}: " + "; ".join(parts) + ", indicating the chains have "
        "not mixed",
    )


def _some(labels: list[str], n: int = 4) -> str:
    return ", ".join(labels[:n]) + (f" and {len(labels) - n} more" if len(labels) > n else "")


def _ess_warning(h: SamplerHealth, kind: str) -> HealthWarning | None:
    value, at = getattr(h, f"min_ess_{kind}"), getattr(h, f"min_ess_{kind}_at")
    if value is None or not value < h.ess_min:
        return None
    what = (
        "posterior means and medians may be unreliable"
        if kind == "bulk"
        else "posterior variances and tail quantiles (interval ends) may be unreliable"
    )
    return HealthWarning(
        f"ess_{kind}",
        f"{kind.capitalize()} effective sample size (ESS) is too low: {value:.0f} ({at}), "
        f"below {h.ess_min:.0f} ({settings.ESS_MIN_PER_CHAIN} per chain x {h.chains} "
        f"chains), indicating {what}",
    )


def _ebfmi_warning(h: SamplerHealth) -> HealthWarning | None:
    if h.ebfmi is None:
        return None
    low = [i for i, v in enumerate(h.ebfmi) if v < h.ebfmi_min]
    if not low:
        return None
    worst = min(low, key=lambda i: h.ebfmi[i])
    return HealthWarning(
        "ebfmi",
        f"E-BFMI below {h.ebfmi_min:g} in {len(low)} of {h.chains} chains (smallest "
        f"{h.ebfmi[worst]:.2f}, chain {worst}): the momentum resampling explores the energy "
        "distribution poorly, so HMC may have trouble exploring the target distribution",
    )


def _fmt_rhat(x: float) -> str:
    return f"{x:.3f}" if x < 100 else f"{x:.3g}"


# ---------------------------------------------------------------------- words
def health_conclusion(
    health: SamplerHealth,
    model: str,
    *,
    ordered: bool = False,
    collapsed: bool = False,
    effective_components: int | None = None,
    target_accept: float | None = None,
    tune: int | None = None,
) -> str:
    """The report's sentences on one model's sampler: reliable or not, why, and what to try.

    Parameters
    ----------
    health : SamplerHealth
        From :func:`sampler_health`.
    model : str
        How to name the model, e.g. ``"ordered-biases"`` or ``"exchangeable"``.
    ordered : bool, default False
        Whether the model orders the biases (its boundary p_1 = p_2 attracts collapses).
    collapsed : bool, default False
        Whether the fit collapses (coinciding components; EM's ``collapsed`` warning).
    effective_components : int, optional
        How many distinct components the collapsed fit has (to suggest that K).
    target_accept, tune : optional
        The sampler settings used, so that the advice can name larger values.

    Returns
    -------
    str
    """
    if health.reliable:
        text = f"The {model} model's sampler passed every check: {_figures(health)}."
    else:
        problems = "; ".join(_problem(w.kind, health) for w in health.warnings)
        causes = _causes(health, ordered, collapsed)
        tries = _remedies(health, ordered, collapsed, effective_components, target_accept, tune)
        text = (
            f"The {model} model's draws are unreliable: {problems}. "
            f"Likely cause: {causes}. Try {_join_or(tries)}."
        )
    if health.not_checked:
        text += " Not checked: " + "; ".join(health.not_checked) + "."
    return text


def _judged_names(h: SamplerHealth) -> str:
    return ", ".join(v.name for v in h.variables)


def _figures(h: SamplerHealth) -> str:
    parts = []
    if h.divergences is not None:
        parts.append(f"no divergent transitions after warm-up (of {h.transitions})")
    if h.max_rhat is not None:
        parts.append(f"largest R-hat {h.max_rhat:.3f} (at most {h.rhat_max:g})")
    if h.min_ess_bulk is not None:
        parts.append(
            f"smallest ESS {h.min_ess_bulk:.0f} bulk and {h.min_ess_tail:.0f} tail "
            f"(at least {h.ess_min:.0f})"
        )
    if h.min_ebfmi is not None:
        parts.append(f"smallest E-BFMI {h.min_ebfmi:.2f} (at least {h.ebfmi_min:g})")
    return ", ".join(parts) + f"; R-hat and ESS judged on {_judged_names(h)}"


def _problem(kind: str, h: SamplerHealth) -> str:
    if kind == "divergences":
        return f"{h.divergences} divergent transitions after warm-up"
    if kind == "rhat":
        parts = []
        if h.max_rhat is not None and h.max_rhat > h.rhat_max:
            parts.append(f"R-hat {_fmt_rhat(h.max_rhat)} > {h.rhat_max:g} ({h.max_rhat_at})")
        stuck = [label for var in h.variables for label in var.undefined]
        if stuck:
            parts.append(f"R-hat undefined ({_some(stuck)}: stuck chains)")
        return "; ".join(parts)
    if kind in ("ess_bulk", "ess_tail"):
        which = kind.split("_")[1]
        value, at = getattr(h, f"min_ess_{which}"), getattr(h, f"min_ess_{which}_at")
        return f"ESS {which} {value:.0f} < {h.ess_min:.0f} ({at})"
    worst = min(h.ebfmi)
    return f"E-BFMI {worst:.2f} < {h.ebfmi_min:g}"


def _causes(h: SamplerHealth, ordered: bool, collapsed: bool) -> str:
    causes = []
    mixing = h.warned("rhat") or h.warned("ess_bulk") or h.warned("ess_tail")
    if ordered and collapsed:
        causes.append(
            "the fit collapses, so the posterior piles up against the ordering boundary "
            "p_1 = p_2, where the ordered transform's log-gap runs to minus infinity and the "
            "coinciding components' weights become free: a funnel whose curvature changes "
            "faster than one NUTS step size can follow"
        )
    elif collapsed:
        causes.append(
            "the fit collapses, so the weights of the coinciding components lie on a ridge "
            "of equal likelihood that the chains cross slowly"
        )
    elif h.warned("divergences"):
        causes.append(
            "regions of high curvature, typically a weight near 0 or a bias near 0 or 1, "
            "where the simplex and log-odds transforms stretch the posterior"
        )
    if h.warned("rhat") and not collapsed:
        causes.append(
            "the chains sit in different modes of the likelihood or have not left their starts"
        )
    elif mixing and not collapsed:
        causes.append("strong autocorrelation: the sampler moves slowly through the posterior")
    if h.warned("ebfmi"):
        causes.append(
            "heavy tails or a funnel in the posterior, which the momentum resampling "
            "explores poorly (low E-BFMI)"
        )
    return "; ".join(causes)


def _remedies(h, ordered, collapsed, effective, target_accept, tune) -> list[str]:
    tries = []
    if h.warned("divergences"):
        now = f" (now {target_accept:g})" if target_accept is not None else ""
        tries.append(f"a higher target_accept{now}, e.g. 0.95 to 0.99")
    if h.warned("rhat") or h.warned("ess_bulk") or h.warned("ess_tail") or h.warned("ebfmi"):
        now = f" (now {tune})" if tune is not None else ""
        tries.append(f"more tuning{now} and more draws")
    if collapsed:
        fewer = f" (the data support {effective})" if effective is not None else ""
        tries.append(f"fewer components{fewer}")
        tries.append(
            "informative priors that keep the components apart "
            "(Dirichlet alpha > 1 on the weights, Beta(a, b) with a, b > 1 on the biases)"
        )
        if ordered:
            tries.append("judging the exchangeable model on label-invariant quantities instead")
    elif h.warned("ebfmi") or h.warned("divergences"):
        tries.append("informative priors or a reparametrisation")
    return tries


def _join_or(items: list[str]) -> str:
    """``a; b; or c``: semicolons, since the items carry commas of their own."""
    if len(items) <= 1:
        return "".join(items)
    return "; ".join(items[:-1]) + "; or " + items[-1]


# ---------------------------------------------------------------------- summary table
def summary_rows(
    data: xr.DataTree | Mapping[str, np.ndarray], var_names: Sequence[str] | None = None
) -> list[dict]:
    """ArviZ's summary (``az.summary``) as plain rows for a report table.

    Equal-tailed intervals at ``settings.CI_PROB``; every value a float (None where ArviZ
    gives NaN, e.g. R-hat of constant draws).

    Parameters
    ----------
    data : DataTree or mapping of str to array
        A DataTree with a ``posterior`` group, or (chain, draw, ...) arrays such as
        relabelled draws.
    var_names : sequence of str, optional
        Variables to summarise (default: all).

    Returns
    -------
    list of dict
        One per scalar quantity, with the keys of :data:`SUMMARY_COLUMNS`: ``parameter``
        (e.g. ``"p[0]"``), ``mean``, ``sd``, ``ci_lower``, ``ci_upper``, ``mcse_mean``,
        ``mcse_sd``, ``ess_bulk``, ``ess_tail``, ``r_hat``.

    Raises
    ------
    ValueError
        On arrays of the wrong shape or with non-finite values, or unknown variables.
    """
    tree = data if isinstance(data, xr.DataTree) else as_datatree(_mapping(data))
    if "posterior" not in tree:
        raise ValueError("data: the DataTree has no posterior group")
    names = list(tree["posterior"].data_vars) if var_names is None else list(var_names)
    for name in names:
        if name not in tree["posterior"].data_vars:
            raise ValueError(
                f"var_names: {name!r} is not in the posterior ({_listed(tree['posterior'])})"
            )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant draws: NaN R-hat
        table = az.summary(
            tree,
            var_names=names,
            ci_prob=settings.CI_PROB,
            ci_kind=settings.CI_KIND,
            round_to="none",
        )
    lo, hi = _ci_columns(table.columns)
    rename = {lo: "ci_lower", hi: "ci_upper", "r_hat": "r_hat"}
    rows = []
    for label, row in table.iterrows():
        values = {rename.get(k, k): _plain(v) for k, v in row.items()}
        rows.append({"parameter": str(label), **{k: values[k] for k in SUMMARY_COLUMNS[1:]}})
    return rows


def _mapping(data) -> Mapping:
    if not isinstance(data, Mapping):
        raise ValueError(
            f"data: expected a DataTree or a mapping of arrays, got {type(data).__name__}"
        )
    return data


def _ci_columns(columns) -> tuple[str, str]:
    lo = [c for c in columns if c.endswith("_lb")]
    hi = [c for c in columns if c.endswith("_ub")]
    return lo[0], hi[0]


def _plain(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None
