"""Can the data tell the components apart? Teicher's condition, collapse, overdispersion."""

from __future__ import annotations

from dataclasses import dataclass

from compare.overdispersion import OverdispersionTest, overdispersion_test
from compare.stages.fits import EMStage
from em import BinomialData, MixtureParams

__all__ = ["Identifiability", "identifiability_stage"]


@dataclass(frozen=True, eq=False)
class Identifiability:
    """What the data can identify about a K-component fit.

    Attributes
    ----------
    k : int
    max_trials : int
    condition_holds : bool
        Largest trials >= 2K - 1 (Teicher, 1963).
    converged : bool
        Whether EM's best fit is certified (the rest is judged on it).
    collapsed : bool
        EM's best optimum reduces to fewer components (tied or empty ones).
    reduced : MixtureParams or None
        That reduced mixture (None if EM did not converge).
    overdispersion : OverdispersionTest
    """

    k: int
    max_trials: int
    condition_holds: bool
    converged: bool
    collapsed: bool
    reduced: MixtureParams | None
    overdispersion: OverdispersionTest

    @property
    def identifiable(self) -> bool:
        """The components can be told apart: the condition holds and the fit is not collapsed."""
        return self.condition_holds and self.converged and not self.collapsed

    @property
    def effective_components(self) -> int | None:
        """Components of the reduced mixture."""
        return None if self.reduced is None else self.reduced.n_components

    def to_dict(self) -> dict:
        """results.json's ``identifiability`` section."""
        od = self.overdispersion.to_dict()
        return {
            "condition": "max trials >= 2K - 1 (Teicher, 1963)",
            "max_trials": self.max_trials,
            "required_trials": 2 * self.k - 1,
            "condition_holds": self.condition_holds,
            "em_converged": self.converged,
            "collapsed": self.collapsed,
            "effective_components": self.effective_components,
            "reduced_p": None if self.reduced is None else self.reduced.p.tolist(),
            "reduced_weights": None if self.reduced is None else self.reduced.weights.tolist(),
            "identifiable": self.identifiable,
            "overdispersed": od["overdispersed"],
            "overdispersion_test": od,
        }


def identifiability_stage(data: BinomialData, em: EMStage, seed: int = 0) -> Identifiability:
    """Judge EM's best certified optimum and the data's dispersion (``seed``: bootstrap)."""
    target = em.target
    k = target.n_components
    top = target.optima[0] if target.optima and target.converged else None
    return Identifiability(
        k=k,
        max_trials=data.max_trials,
        condition_holds=data.max_trials >= 2 * k - 1,
        converged=top is not None,
        collapsed=top is not None and top.reduced.n_components < k,
        reduced=None if top is None else top.reduced,
        overdispersion=overdispersion_test(data, seed=seed),
    )
