"""Sampler health (interim; see the health branch): divergences, R-hat, ESS, E-BFMI."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compare.diagnostics import rhat_ess
from compare.settings import EBFMI_MIN, ESS_MIN_PER_CHAIN, RHAT_MAX

__all__ = ["SamplerHealth", "sampler_health"]


@dataclass(frozen=True)
class SamplerHealth:
    """How far a model's draws can be trusted."""

    divergences: int
    max_rhat: float | None
    min_ess_bulk: float | None
    min_ess_tail: float | None
    min_bfmi: float | None
    chains: int
    warnings: tuple[str, ...]

    @property
    def reliable(self) -> bool:
        """No warning fired."""
        return not self.warnings

    def to_dict(self) -> dict:
        """Plain form for results.json."""
        return {
            "divergences": self.divergences,
            "max_rhat": self.max_rhat,
            "min_ess_bulk": self.min_ess_bulk,
            "min_ess_tail": self.min_ess_tail,
            "min_bfmi": self.min_bfmi,
            "reliable": self.reliable,
            "warnings": list(self.warnings),
        }


def _bfmi(energy: np.ndarray) -> np.ndarray:
    return np.square(np.diff(energy, axis=1)).mean(axis=1) / energy.var(axis=1)


def sampler_health(idata, arrays: dict) -> SamplerHealth:
    """Judge ``arrays`` (name -> (chain, draw, ...)) and the DataTree's sample stats."""
    diag = rhat_ess(arrays)
    rhat = [d["max_rhat"] for d in diag.values() if d["max_rhat"] is not None]
    bulk = [x for d in diag.values() for x in d["ess_bulk"] if x is not None]
    tail = [x for d in diag.values() for x in d["ess_tail"] if x is not None]
    chains = next(iter(arrays.values())).shape[0]
    div, bfmi = 0, None
    if idata is not None and "sample_stats" in idata:
        stats = idata["sample_stats"]
        div = int(np.asarray(stats["diverging"]).sum())
        if "energy" in stats:
            bfmi = float(_bfmi(np.asarray(stats["energy"].transpose("chain", "draw"))).min())
    out = SamplerHealth(
        div,
        max(rhat) if rhat else None,
        min(bulk) if bulk else None,
        min(tail) if tail else None,
        bfmi,
        chains,
        (),
    )
    warnings = []
    if div:
        warnings.append(f"{div} divergent transitions after warm-up")
    if out.max_rhat is not None and out.max_rhat > RHAT_MAX:
        warnings.append(f"R-hat {out.max_rhat:.3f} > {RHAT_MAX}")
    need = ESS_MIN_PER_CHAIN * chains
    if out.min_ess_bulk is not None and min(out.min_ess_bulk, out.min_ess_tail or np.inf) < need:
        warnings.append(f"ESS below {need} ({ESS_MIN_PER_CHAIN} per chain)")
    if bfmi is not None and bfmi < EBFMI_MIN:
        warnings.append(f"E-BFMI {bfmi:.2f} < {EBFMI_MIN}")
    return SamplerHealth(
        *[
            getattr(out, f)
            for f in (
                "divergences",
                "max_rhat",
                "min_ess_bulk",
                "min_ess_tail",
                "min_bfmi",
                "chains",
            )
        ],
        tuple(warnings),
    )
