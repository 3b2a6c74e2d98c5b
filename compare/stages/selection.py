"""How many components: AIC, BIC and ICL of certified EM fits, PSIS-LOO of the posterior."""

from __future__ import annotations

from dataclasses import dataclass

from compare.selection import arviz_compare, weighted_loo
from em import BinomialData, FitResult, information_criteria
from em import fit_data as _fit
from models import MixtureModel

__all__ = ["Selection", "criteria_stage", "selection_stage"]


@dataclass(frozen=True, eq=False)
class Selection:
    """Criteria per K and the K each prefers.

    Attributes
    ----------
    rows : tuple of dict
        Per K: ``k``, ``log_likelihood``, ``aic``, ``bic``, ``icl``, the PSIS-LOO figures,
        ``effective_components``, ``converged`` and ``preferred_by``.
    preferred : dict
        Criterion -> K (lowest AIC/BIC/ICL, highest elpd_loo).
    compare : list of dict or None
        ArviZ's ``az.compare`` table (None when too large to write out per sequence).
    detailed_k : int
        The K the rest of the report is about: BIC's choice.
    """

    rows: tuple[dict, ...]
    preferred: dict
    compare: list | None
    detailed_k: int

    def to_dict(self) -> dict:
        """The ``model_selection*`` keys of results.json."""
        return {
            "model_selection": list(self.rows),
            "model_selection_preferred": dict(self.preferred),
            "model_selection_compare": self.compare,
            "model_selection_detailed_k": self.detailed_k,
        }


def criteria_stage(
    data: BinomialData, ks: list[int], restarts: int, seed: int
) -> tuple[list, list]:
    """Certified EM for every K (restarts seeded as ``em fit --seed``): rows and fits."""
    fits: list[FitResult] = [_fit(data, k, restarts=restarts, seed=seed) for k in ks]
    rows = []
    for fit in fits:
        row = information_criteria(fit)
        row["converged"] = fit.converged
        row["effective_components"] = fit.optima[0].reduced.n_components if fit.optima else None
        rows.append(row)
    return rows, fits


def selection_stage(
    data: BinomialData, rows: list[dict], idatas: dict, opts, seed, detailed_k: int
) -> Selection:
    """Add PSIS-LOO per K (sampling the models not yet sampled) and the preferences."""
    for k, child in zip([r["k"] for r in rows], seed.spawn(len(rows)), strict=True):
        if k not in idatas:
            model = MixtureModel(data, k, prior_weights=opts.prior_weights, prior_p=opts.prior_p)
            idatas[k] = model.sample(
                seed=child,
                draws=opts.draws,
                tune=opts.tune,
                chains=opts.chains,
                sampler=opts.sampler,
                target_accept=opts.target_accept,
            )
    rows = [{**r, **weighted_loo(data, idatas[r["k"]])} for r in rows]
    preferred = {c: min(rows, key=lambda r, c=c: r[c])["k"] for c in ("aic", "bic", "icl")}
    preferred["loo"] = max(rows, key=lambda r: r["elpd_loo"])["k"]
    for row in rows:
        row["preferred_by"] = [c for c, k in preferred.items() if k == row["k"]]
    return Selection(tuple(rows), preferred, arviz_compare(data, idatas), detailed_k)
