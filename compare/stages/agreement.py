"""Does EM's estimate agree with the posterior mode? Judged between certified modes only.

The posterior mode is the highest certified mode found: EM's best optimum or a mode that
certified MAP-EM reaches from the end point of one of PyMC's searches. Three outcomes:

- EM's best optimum *is* that mode (objective, fitted pmf and, where identifiable, every
  parameter within the tolerances): **agree**;
- EM, started from a search's end point, converges (certified) to an objective above EM's
  best by more than the tolerance: **EM missed a higher mode**, which none of its restarts
  reached;
- EM's best run did not converge, or no search ends at a certified mode: **not
  converged** (``em_not_converged``, ``map_not_converged``), never a disagreement.

Anything else (modes of equal height with different parameters) is a disagreement.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from compare.agreement import compare_fits
from compare.settings import TOLERANCES
from compare.stages.fits import EMStage, MAPStage, Mode
from compare.stages.identifiability import Identifiability
from em import BinomialData

__all__ = ["Agreement", "agreement_stage"]


@dataclass(frozen=True, eq=False)
class Agreement:
    """The verdict on EM against the posterior mode, and the numbers behind it.

    Attributes
    ----------
    status : str
        ``"agree"``, ``"disagree"``, ``"em_missed_mode"``, ``"em_not_converged"`` or
        ``"map_not_converged"`` (no search of PyMC's ends, after polishing, at a certified
        mode: nothing to compare EM with).
    best : dict or None
        EM's best optimum against the highest certified mode (:func:`compare_fits`).
    mode : Mode or None
        The search whose certified mode is highest.
    per_optimum : tuple of dict
        Each EM optimum against the mode reached from PyMC's search started there.
    em_objective : float
        EM's best objective (log-posterior density).
    basins : tuple of float
        Basin fractions of EM's optima (for a missed mode: where the restarts went).
    """

    status: str
    best: dict | None
    mode: Mode | None
    per_optimum: tuple[dict, ...]
    em_objective: float
    basins: tuple[float, ...]
    tolerances: dict = field(default_factory=lambda: dict(TOLERANCES))

    @property
    def agree(self) -> bool | None:
        """True or False; None when EM or every mode search did not converge (no verdict)."""
        if self.status in ("em_not_converged", "map_not_converged"):
            return None
        return self.status == "agree"

    @property
    def missed_by(self) -> float | None:
        """Nats by which the missed mode is above EM's best (None unless one was missed)."""
        if self.status != "em_missed_mode":
            return None
        return self.mode.polished.objective - self.em_objective

    def to_dict(self) -> dict:
        """results.json's ``agreement`` section (``agree``: true, false or null)."""
        best = None
        if self.best is not None:
            best = {
                "em_objective": self.em_objective,
                "map_objective": self.mode.polished.objective,
                "map_start": self.mode.search.start,
                "map_search_objective": self.mode.search.log_posterior,
                "map_search_shortfall": self.mode.shortfall,
                **self.best,
            }
        return {
            "objective": "log_posterior",
            "em_fit": "MAP-EM under the model's priors (certified)",
            "tolerances": dict(self.tolerances),
            "status": self.status,
            "agree": self.agree,
            "best": best,
            "per_optimum": list(self.per_optimum),
            "map_above_em": self.status == "em_missed_mode",
            "missed_by": self.missed_by,
            "em_basin_fractions": list(self.basins),
        }


def _compare(data: BinomialData, em_params, em_run_obj, em_ll, mode: Mode, identifiable: bool):
    run = mode.polished
    return compare_fits(
        em_params,
        em_run_obj,
        em_ll,
        run.params,
        run.objective,
        run.log_likelihood,
        trials=data.trials,
        counts=data.counts,
        identifiable=identifiable,
    )


def _per_optimum(data, em: EMStage, maps: MAPStage, ident: Identifiability) -> list[dict]:
    rows = []
    for i, opt in enumerate(em.target.optima):
        mode = next((m for m in maps.modes if m.search.start == f"EM optimum {i + 1}"), None)
        if mode is None:
            continue
        identifiable = ident.condition_holds and opt.reduced.n_components == ident.k
        row = _compare(data, opt.params, opt.objective, opt.log_likelihood, mode, identifiable)
        rows.append(
            {
                "optimum": i + 1,
                "em": {
                    "weights": opt.params.weights.tolist(),
                    "p": opt.params.p.tolist(),
                    "objective": opt.objective,
                    "log_likelihood": opt.log_likelihood,
                    "fraction": opt.fraction,
                },
                "map": mode.to_dict(),
                **row,
            }
        )
    return rows


def agreement_stage(
    data: BinomialData, em: EMStage, maps: MAPStage, ident: Identifiability
) -> Agreement:
    """Compare EM's best certified optimum with the highest certified mode."""
    target = em.target
    basins = tuple(o.fraction for o in target.optima)
    if not target.converged:
        return Agreement("em_not_converged", None, None, (), target.objective, basins)
    certified = [m for m in maps.modes if m.polished.converged]
    if not certified:
        return Agreement("map_not_converged", None, None, (), target.objective, basins)
    mode = certified[0]
    tol = TOLERANCES["objective"]
    if mode.polished.objective > target.objective + tol:
        status = "em_missed_mode"
        best = _compare(data, target.params, target.objective, target.log_likelihood, mode, False)
    else:
        best = _compare(
            data, target.params, target.objective, target.log_likelihood, mode, ident.identifiable
        )
        status = "agree" if best["agree"] else "disagree"
    return Agreement(
        status, best, mode, tuple(_per_optimum(data, em, maps, ident)), target.objective, basins
    )
