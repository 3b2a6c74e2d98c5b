"""Simulation studies: how often EM and Bayes agree over many simulated data sets.

A SPEC (TOML) declares a grid of cells, each a true mixture with a number of sequences and
of trials; every replicate simulates a data set, fits EM with restarts and the Bayesian
model, and records one row. Replicates are Dask tasks (a local cluster by default, or an
existing ``dask.distributed`` scheduler); each streams its row into DIR as a Parquet file
when it finishes, so a rerun resumes where an interrupted one stopped.

Replicate (i, r) draws every random number from ``np.random.SeedSequence(seed,
spawn_key=(i, r))``: it can be rerun alone, and the results do not depend on the number
of workers or on the order in which tasks finish.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import signal
import socket
import sys
import threading
import time
import tomllib
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from compare import output

__all__ = ["StudySpec", "check_study_dir", "load_spec", "run_replicate", "run_study", "summarise"]

SPEC_FILE = "spec.toml"
STUDY_FILE = "study.json"
PROBE_TIMEOUT = 3.0  # seconds for the --scheduler's host to accept a TCP connection
SCHEDULER_TIMEOUT = 3.0  # seconds for the Dask scheduler to answer then
ROWS_DIR = "replicates"
_FIT_DEFAULTS = {
    "components": None,
    "restarts": 10,
    "reference_restarts": 50,
    "draws": 300,
    "tune": 300,
    "chains": 4,
}


@dataclass(frozen=True)
class Cell:
    """One true mixture and design."""

    name: str
    weights: tuple[float, ...]
    p: tuple[float, ...]
    trials: int
    n: int
    components: tuple[int, ...]  # the fitted K (or a range)


@dataclass(frozen=True)
class StudySpec:
    """A parsed, validated SPEC."""

    cells: tuple[Cell, ...]
    replicates: int
    seed: int
    restarts: int
    reference_restarts: int
    draws: int
    tune: int
    chains: int
    text: str = field(repr=False)

    @property
    def digest(self) -> str:
        """SHA-256 of the SPEC as parsed (not of its formatting)."""
        payload = json.dumps(
            {
                "cells": [c.__dict__ for c in self.cells],
                "replicates": self.replicates,
                "seed": self.seed,
                "restarts": self.restarts,
                "reference_restarts": self.reference_restarts,
                "draws": self.draws,
                "tune": self.tune,
                "chains": self.chains,
            },
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    def tasks(self) -> list[tuple[int, int]]:
        """Every (cell index, replicate index)."""
        return [(i, r) for i in range(len(self.cells)) for r in range(self.replicates)]


def _int(value, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{where} must be an integer >= {minimum}, got {value!r}")
    return value


def _cell(c, where: str, j: int, default_components) -> Cell:
    """One [[cells]] table, checked; a ValueError names it (``where``) and the bad key."""
    from em import parse_components

    if not isinstance(c, dict):
        raise ValueError(f"{where} must be a table ([[cells]]), got {c!r}")
    for key in c:
        if key not in {"name", "weights", "p", "trials", "n", "components"}:
            raise ValueError(f"{where}: unknown key {key!r}")
    for key in ("weights", "p", "trials", "n"):
        if key not in c:
            raise ValueError(f"{where}: missing key {key!r}")
    w, p = c["weights"], c["p"]
    if (
        not isinstance(w, list)
        or not isinstance(p, list)
        or len(w) != len(p)
        or not w
        or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in w + p)
    ):
        raise ValueError(f"{where}: weights and p must be lists of numbers of one length")
    if not all(math.isfinite(x) for x in w + p):
        raise ValueError(f"{where}: weights and p must be finite numbers, got {w} and {p}")
    if abs(sum(w) - 1) > 1e-9 or min(w) < 0:
        raise ValueError(f"{where}: weights must be >= 0 and sum to 1, got {w}")
    if min(p) < 0 or max(p) > 1:
        raise ValueError(f"{where}: p must lie in [0, 1], got {p}")
    trials = _int(c["trials"], f"{where}.trials", 1)
    n = _int(c["n"], f"{where}.n", 1)
    comp = c.get("components", default_components)
    comp = len(w) if comp is None else comp
    try:
        ks = tuple(parse_components(comp))
    except ValueError:
        raise ValueError(
            f"{where}: components must be an integer >= 1 or 'LOW-HIGH', got {comp!r}"
        ) from None
    name = str(c.get("name", f"cell {j}"))
    return Cell(name, tuple(map(float, w)), tuple(map(float, p)), trials, n, ks)


def load_spec(path, seed: int | None = None) -> StudySpec:
    """Read and check a SPEC; a ValueError names the file and the bad key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text)
    except FileNotFoundError:
        raise ValueError(f"SPEC: no such file {str(path)!r}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"SPEC: cannot read {str(path)!r}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    known = {"replicates", "seed", "fit", "cells"}
    for key in raw:
        if key not in known:
            raise ValueError(f"{path}: unknown key {key!r} (expected {', '.join(sorted(known))})")
    fit = dict(_FIT_DEFAULTS)
    if not isinstance(raw.get("fit", {}), dict):
        raise ValueError(f"{path}: fit must be a table ([fit]), got {raw['fit']!r}")
    for key, value in raw.get("fit", {}).items():
        if key not in _FIT_DEFAULTS:
            raise ValueError(f"{path}: unknown key fit.{key}")
        fit[key] = value
    for key, minimum in (
        ("restarts", 1),
        ("reference_restarts", 1),
        ("draws", 1),
        ("tune", 0),
        ("chains", 1),
    ):
        _int(fit[key], f"{path}: fit.{key}", minimum)
    replicates = _int(raw.get("replicates", None), f"{path}: replicates", 1)
    root_seed = seed if seed is not None else _int(raw.get("seed", 0), f"{path}: seed", 0)
    cells_raw = raw.get("cells")
    if not isinstance(cells_raw, list) or not cells_raw:
        raise ValueError(f"{path}: needs at least one [[cells]] table")
    cells = [_cell(c, f"{path}: cells[{j}]", j, fit["components"]) for j, c in enumerate(cells_raw)]
    return StudySpec(
        tuple(cells),
        replicates,
        root_seed,
        fit["restarts"],
        fit["reference_restarts"],
        fit["draws"],
        fit["tune"],
        fit["chains"],
        text,
    )


# ---------------------------------------------------------------------- one replicate
# Compiled models, one per (K, trials) in each worker process: compiled once, reused by
# every replicate the process runs (the data are swapped in, not recompiled).
_COMPILED: dict = {}
COMPILE_EVENTS: list[tuple[int, int]] = []


class _AllOutcomes:
    """Every outcome 0..n of one number of trials, with counts (zeros allowed).

    The data shape is the same for every replicate of a cell, so one compiled model
    serves them all.
    """

    def __init__(self, trials: int, counts: np.ndarray):
        self.heads = np.arange(trials + 1)
        self.trials = np.full(trials + 1, trials)
        self.counts = counts


def _compiled(k: int, trials: int):
    key = (k, trials)
    if key not in _COMPILED:
        import nutpie

        from models import MixtureModel, reproducible_compilation

        mm = MixtureModel(_AllOutcomes(trials, np.ones(trials + 1, dtype=np.int64)), k)
        with reproducible_compilation():
            _COMPILED[key] = (mm, nutpie.compile_pymc_model(mm.model))
        COMPILE_EVENTS.append(key)
    return _COMPILED[key]


def run_replicate(spec: StudySpec, i: int, r: int) -> dict:
    """Simulate replicate r of cell i, fit EM and the model, and return one flat row.

    A failure is recorded in the row (``status = "error"``), never raised.
    """
    cell = spec.cells[i]
    row = {
        "cell": i,
        "cell_name": cell.name,
        "replicate": r,
        "status": "ok",
        "error": "",
        "seed": spec.seed,
        "n": cell.n,
        "trials": cell.trials,
        "k_true": len(cell.p),
        "separation": float(np.min(np.diff(np.sort(cell.p)))) if len(cell.p) > 1 else 1.0,
    }
    start = time.perf_counter()
    try:
        row.update(_replicate(spec, cell, i, r))
    except Exception as exc:  # noqa: BLE001 - recorded, the study goes on
        row["status"] = "error"
        row["error"] = f"{type(exc).__name__}: {exc}"[:500]
    row["seconds"] = time.perf_counter() - start
    row["worker_pid"] = os.getpid()
    return row


def _replicate(spec: StudySpec, cell: Cell, i: int, r: int) -> dict:
    """One replicate through the report's own stages (compare/stages), nothing re-done here.

    EM (certified, ML and MAP-EM), PyMC's mode search with certified polishing, the
    agreement verdict, identifiability, labels and sampler health are the stage functions
    the report runs; only the sampler differs (nutpie on a model compiled once per worker,
    with this replicate's counts swapped in) and the ordered model is not sampled.
    """
    from compare.options import ReportOptions
    from compare.stages.agreement import agreement_stage
    from compare.stages.fits import em_stage, map_stage, seed_int
    from compare.stages.health import health_stage
    from compare.stages.identifiability import identifiability_stage
    from compare.stages.labels import labels_stage
    from compare.stages.sampling import Posterior, SamplingStage, draws_of
    from em import BinomialData, MixtureParams

    ss = np.random.SeedSequence(spec.seed, spawn_key=(i, r))
    s_data, s_em, s_ref, s_map, s_post = ss.spawn(5)
    rng = np.random.default_rng(s_data)
    z = rng.choice(len(cell.weights), size=cell.n, p=cell.weights)
    heads = rng.binomial(cell.trials, np.asarray(cell.p)[z])
    data = BinomialData.from_sequences(heads, cell.trials)
    truth = MixtureParams(cell.weights, cell.p)
    out: dict = {}

    t0 = time.perf_counter()
    em_seed = seed_int(s_em)  # every EM fit of the replicate: the same restarts
    choice, ml = _choose_k(data, cell, spec.restarts, em_seed)
    out.update(choice)
    k = out["k_fit"]
    opts = ReportOptions(
        components=k,
        seed=spec.seed,
        restarts=spec.restarts,
        draws=spec.draws,
        tune=spec.tune,
        chains=spec.chains,
        sampler="nutpie",
        map_random_starts=2,
    )
    em = em_stage(data, opts, em_seed, ml)
    out.update(_em_row(data, opts, em, truth, spec.reference_restarts, s_ref))
    out["em_seconds"] = time.perf_counter() - t0

    # Bayesian side: compiled once per (K, trials) in this process.
    t1 = time.perf_counter()
    n_before = len(COMPILE_EVENTS)
    mm, compiled = _compiled(k, cell.trials)
    counts = np.bincount(heads, minlength=cell.trials + 1).astype(np.int64)
    mm.set_counts(counts)
    maps = map_stage(data, opts, mm, em, s_map)
    ident = identifiability_stage(data, em, seed_int(s_map.spawn(1)[0]))
    agreement = agreement_stage(data, em, maps, ident)
    out["map_em_agree"] = _flag(agreement.agree)
    out["map_em_status"] = agreement.status
    out["map_em_objective_difference"] = (
        np.nan if agreement.best is None else agreement.best["objective_difference"]
    )
    idata = _sample(spec, compiled, counts, s_post)
    w, p = draws_of(idata)
    sampling = SamplingStage(Posterior("exchangeable", w, p, idata), None, {})
    labels = labels_stage(data, em, sampling, ident)
    health = health_stage(sampling, labels, summary=False).exchangeable
    out["labels_identified"] = labels.identified
    out["label_switching"] = _flag(labels.detected)
    out["rhat_invariant"] = _nan(health.max_rhat)
    out["sampler_reliable"] = health.reliable
    out["divergences"] = health.divergences if health.divergences is not None else -1
    out.update(_posterior_row(labels, em, truth, k))
    if len(cell.components) > 1:  # the K that PSIS-LOO prefers, per sequence
        out["k_loo"] = _loo_choice(spec, cell, counts, s_post)
    out["mcmc_seconds"] = time.perf_counter() - t1
    out["compiled_models"] = len(COMPILE_EVENTS) - n_before  # 0: all reused in this process
    return out


def _choose_k(data, cell: Cell, restarts: int, em_seed: int) -> tuple[dict, object]:
    """The K each criterion prefers (``k_*`` columns) and the ML fit made for BIC's K.

    BIC's K is the one fitted; the fit is None with one K (no selection, nothing fitted).
    """
    from compare.stages.selection import criteria_stage

    if len(cell.components) == 1:
        k = cell.components[0]
        return {"k_aic": k, "k_bic": k, "k_icl": k, "k_fit": k}, None
    rows, fits = criteria_stage(data, list(cell.components), restarts, em_seed)
    preferred = {c: min(rows, key=lambda row, c=c: row[c])["k"] for c in ("aic", "bic", "icl")}
    ml = fits[[r["k"] for r in rows].index(preferred["bic"])]
    return {**{f"k_{c}": kk for c, kk in preferred.items()}, "k_fit": preferred["bic"]}, ml


def _flag(value) -> float:
    """A verdict for a Parquet column: 1.0, 0.0, or NaN where none is drawn."""
    return np.nan if value is None else float(bool(value))


def _nan(value) -> float:
    return np.nan if value is None else float(value)


def _em_row(data, opts, em, truth, reference_restarts: int, s_ref) -> dict:
    """EM's certified result against the best optimum known (the same procedure, more starts).

    The best known comes from ``reference_restarts`` more certified MAP-EM starts, plus one
    at the truth when K matches. EM reached the global optimum when its best run is
    certified and within the agreement tolerance of the best certified objective known.
    """
    from scipy.stats import norm

    from compare.agreement import match_components
    from compare.settings import CI_PROB, TOLERANCES
    from em import fit_data, standard_errors

    target, prior = em.target, opts.prior
    k = opts.components
    extra = {"init_weights": truth.weights, "init_p": truth.p} if k == truth.n_components else {}
    ref = fit_data(
        data,
        k,
        restarts=reference_restarts,
        seed=int(s_ref.generate_state(1)[0]),
        prior_weights=list(prior.alpha),
        prior_p=(prior.a, prior.b),
        **extra,
    )
    certified = [f.objective for f in (target, ref) if f.converged]
    best_known = max(certified) if certified else np.nan
    out = {
        "em_converged": target.converged,
        "em_runs_converged": target.n_converged,
        "em_max_gap": _nan(target.max_converged_gap),
        "em_log_likelihood": target.log_likelihood,
        "em_objective": target.objective,
        "best_known_objective": best_known,
        "em_global": bool(
            target.converged and target.objective >= best_known - TOLERANCES["objective"]
        ),
        "em_collapsed": target.collapsed,
    }
    if k == truth.n_components and em.ml.converged:
        ml = em.ml
        perm = match_components(truth.p, ml.p)
        out["em_error_p"] = float(np.max(np.abs(ml.p[perm] - truth.p)))
        out["em_error_w"] = float(np.max(np.abs(ml.weights[perm] - truth.weights)))
        se = standard_errors(data, ml.params)
        zq = float(norm.ppf(0.5 + CI_PROB / 2))
        if not se.singular:
            lo, hi = ml.p[perm] - zq * se.p[perm], ml.p[perm] + zq * se.p[perm]
            out["em_coverage_p"] = float(np.mean((lo <= truth.p) & (truth.p <= hi)))
    return out


def _posterior_row(labels, em, truth, k: int) -> dict:
    """Errors and coverage of the relabelled posterior against the truth (K matching)."""
    from compare.agreement import match_components
    from compare.settings import CI_PROB

    if not labels.identified or k != truth.n_components:
        return {}
    perm = match_components(truth.p, em.target.p)  # EM's labels matched to the truth
    flat = labels.p.reshape(-1, k)[:, perm]
    lo, hi = np.quantile(flat, [(1 - CI_PROB) / 2, (1 + CI_PROB) / 2], axis=0)
    return {
        "posterior_coverage_p": float(np.mean((lo <= truth.p) & (truth.p <= hi))),
        "posterior_error_p": float(np.max(np.abs(flat.mean(axis=0) - truth.p))),
        "posterior_error_w": float(
            np.max(np.abs(labels.weights.reshape(-1, k)[:, perm].mean(axis=0) - truth.weights))
        ),
    }


def _sample(spec: StudySpec, compiled, counts: np.ndarray, seed: np.random.SeedSequence):
    """NUTS (nutpie) on a compiled model with these counts swapped in."""
    import nutpie

    return nutpie.sample(
        compiled.with_data(counts=counts),
        draws=spec.draws,
        tune=spec.tune,
        chains=spec.chains,
        seed=int(seed.generate_state(1)[0]),
        cores=1,  # one core per worker process: parallelism comes from the workers
        progress_bar=False,
    )


def _loo_choice(spec: StudySpec, cell: Cell, counts: np.ndarray, seed) -> int:
    """Sample each candidate K's model (compiled once per process) and pick the best LOO."""
    from compare.selection import weighted_loo

    best, best_elpd = None, -np.inf
    for k, child in zip(cell.components, seed.spawn(len(cell.components)), strict=True):
        mm, compiled = _compiled(k, cell.trials)
        mm.set_counts(counts)
        idata = _sample(spec, compiled, counts, child)
        mm.add_derived(idata)
        elpd = weighted_loo(mm, idata)["elpd_loo"]
        if elpd > best_elpd:
            best, best_elpd = k, elpd
    return best


# ---------------------------------------------------------------------- the study
def _row_path(out: Path, i: int, r: int) -> Path:
    return out / ROWS_DIR / f"cell{i:03d}-rep{r:05d}.parquet"


def _write_row(out: Path, row: dict) -> None:
    import pandas as pd

    path = _row_path(out, row["cell"], row["replicate"])
    tmp = path.with_suffix(".tmp")
    pd.DataFrame([row]).to_parquet(tmp, index=False)
    os.replace(tmp, path)


def check_study_dir(spec: StudySpec, out) -> Path:
    """Check ``--out`` of a study before anything is started or written; return the folder.

    Accepted: a new or empty folder, a folder holding a study of this SPEC (resumed), and
    one left by a run killed while preparing it (spec.toml or study.json, no replicate yet:
    prepared again). Refused with one line: a file, a folder holding anything else, a study
    of another SPEC, and replicates whose study.json is missing or cannot be read. A
    symbolic link is followed (a study writes into its folder, it never replaces it).

    Parameters
    ----------
    spec : StudySpec
        The SPEC to run.
    out : str or os.PathLike
        The ``--out`` argument.

    Returns
    -------
    pathlib.Path
        The folder, absolute.

    Raises
    ------
    ValueError
        One line naming ``--out`` or the file at fault.
    """
    target = output.resolve_out(out, replace=False)
    _check_study_state(spec, target, output.show(out))
    return target


def _check_study_state(spec: StudySpec, target: Path, shown: str) -> None:
    if os.path.lexists(target) and not target.is_dir():
        raise ValueError(f"--out: {shown} exists and is not a folder (a study writes a folder)")
    if not target.is_dir() or not any(target.iterdir()):
        return
    names = {p.name for p in target.iterdir()}
    if not names & {SPEC_FILE, STUDY_FILE}:
        if _only_preparation(spec, target, names):
            return  # an empty replicates/: killed while preparing
        raise ValueError(f"--out: {shown} is not empty and holds no study; give another folder")
    stored, problem = _stored_digest(target)
    if stored is None:
        if _only_preparation(spec, target, names):
            return  # killed while preparing: nothing to lose, prepare it again
        raise ValueError(
            f"--out: {str(target / STUDY_FILE)!r} {problem}, so the SPEC of the study in "
            f"{shown} cannot be told; give another folder"
        )
    if stored != spec.digest:
        raise ValueError(
            f"--out: {shown} holds a study of a different SPEC "
            "(give another DIR, or the SPEC it was run with)"
        )


def _stored_digest(target: Path) -> tuple[str | None, str]:
    """The SPEC digest in DIR/study.json, or None and what is wrong with the file."""
    try:
        info = json.loads((target / STUDY_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, "is missing"
    except UnicodeDecodeError:
        return None, "is not valid JSON (truncated or overwritten?)"
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror})"
    except ValueError:
        return None, "is not valid JSON (truncated or overwritten?)"
    digest = info.get("spec_sha256") if isinstance(info, dict) else None
    if not isinstance(digest, str):
        return None, "has no spec_sha256"
    return digest, ""


def _only_preparation(spec: StudySpec, target: Path, names: set[str]) -> bool:
    """DIR holds only what preparing writes, no replicate, and this SPEC's text if any."""
    if not names <= {SPEC_FILE, STUDY_FILE, ROWS_DIR, f".{SPEC_FILE}.tmp", f".{STUDY_FILE}.tmp"}:
        return False
    rows = target / ROWS_DIR
    if os.path.lexists(rows) and (not rows.is_dir() or any(rows.iterdir())):
        return False
    try:
        return (target / SPEC_FILE).read_text(encoding="utf-8") == spec.text
    except FileNotFoundError:
        return True
    except (OSError, UnicodeDecodeError):
        return False


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.parent / f".{path.name}.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _prepare(spec: StudySpec, out: Path) -> None:
    """Write study.json, then spec.toml, each atomically (with the lock held)."""
    (out / ROWS_DIR).mkdir(parents=True, exist_ok=True)
    if _stored_digest(out)[0] != spec.digest:
        payload = {"spec_sha256": spec.digest, "seed": spec.seed}
        _write_atomic(out / STUDY_FILE, json.dumps(payload, indent=2) + "\n")
    if not (out / SPEC_FILE).is_file():
        _write_atomic(out / SPEC_FILE, spec.text)


def _progress(done: int, total: int, start: float, resumed: int) -> None:
    elapsed = time.perf_counter() - start
    fresh = done - resumed
    left = (elapsed / fresh) * (total - done) if fresh else float("nan")
    width = 30
    bar = "#" * int(width * done / total) + "-" * (width - int(width * done / total))
    eta = f"{left:5.0f} s left" if math.isfinite(left) else "  ... left"
    sys.stderr.write(f"\r[{bar}] {done}/{total} replicates, {elapsed:5.0f} s, {eta}")
    sys.stderr.flush()


def run_study(spec: StudySpec, out, *, scheduler: str | None = None, workers: int = 2) -> dict:
    """Run every replicate not yet in DIR, on Dask; write the study report; return the summary.

    ``out`` is checked (:func:`check_study_dir`) and the cluster reached before anything is
    written, so a bad DIR or an unreachable scheduler leaves nothing behind; one run at a
    time writes into DIR (a lock beside it, as for reports).
    """
    target = check_study_dir(spec, out)
    client = cluster = None
    if _todo(spec, target):
        client, cluster = _connect(scheduler, workers)
    try:
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(
                f"--out: {output.show(out)} cannot be created ({exc.strerror})"
            ) from None
        with output.locked(target, out):
            _check_study_state(spec, target, output.show(out))  # again, under the lock
            _prepare(spec, target)
            if client is not None:
                _run(spec, target, client)
            summary = summarise(target, spec)
            _write_study_report(target, spec, summary)
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    return summary


def _todo(spec: StudySpec, out: Path) -> list[tuple[int, int]]:
    return [(i, r) for i, r in spec.tasks() if not _row_path(out, i, r).is_file()]


def _connect(scheduler: str | None, workers: int):
    """A client of ``scheduler`` (answering within seconds), else of a local cluster."""
    if scheduler:
        _probe(scheduler)  # before importing Dask: a refused port fails at once
        return _client_within(scheduler, SCHEDULER_TIMEOUT), None
    from dask.distributed import Client, LocalCluster

    with _workers_ignore_ctrl_c():
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,  # no dashboard; its HTTP server (metrics) on a free port,
            scheduler_kwargs={"dashboard_address": ":0"},  # not 8787 (a warning if taken)
        )
    return Client(cluster, set_as_default=False), cluster


def _client_within(scheduler: str, seconds: float):
    """A Dask client of ``scheduler``, or a ValueError after ``seconds``.

    Dask's own timeout covers connecting, not an endpoint that accepts the connection and
    then says nothing (it waits for ever): the client is made in a thread, left behind if
    it does not return in time.
    """
    from dask.distributed import Client

    box: dict = {}

    def connect():
        try:
            box["client"] = Client(scheduler, timeout=seconds, set_as_default=False)
        except Exception as exc:  # noqa: BLE001 - reported below, in the calling thread
            box["error"] = exc

    thread = threading.Thread(target=connect, name="connect to --scheduler", daemon=True)
    thread.start()
    thread.join(seconds + 0.5)
    if thread.is_alive():
        raise ValueError(
            f"--scheduler: {scheduler!r} accepts connections but does not answer as a Dask "
            f"scheduler within {seconds:g} s"
        )
    exc = box.get("error")
    if isinstance(exc, (OSError, ValueError)):  # TimeoutError is an OSError
        raise ValueError(f"--scheduler: cannot connect to {scheduler!r} ({exc})") from None
    if exc is not None:  # e.g. another service on that port: Dask misreads its bytes
        raise ValueError(
            f"--scheduler: {scheduler!r} does not answer as a Dask scheduler ({type(exc).__name__})"
        ) from None
    return box["client"]


def _probe(scheduler: str) -> None:
    """Fail at once on a TCP address that refuses or does not answer.

    Dask retries until its timeout whatever the error; a refused port fails here at once.
    """
    parts = urllib.parse.urlsplit(scheduler if "://" in scheduler else f"tcp://{scheduler}")
    try:
        port = parts.port
    except ValueError:
        return  # Dask's message says what is wrong with the address
    if parts.scheme not in ("tcp", "tls", "ws", "wss") or not parts.hostname or port is None:
        return
    try:
        with socket.create_connection((parts.hostname, port), timeout=PROBE_TIMEOUT):
            pass
    except OSError as exc:
        why = exc.strerror or str(exc) or type(exc).__name__
        raise ValueError(f"--scheduler: cannot reach {scheduler!r} ({why})") from None


@contextlib.contextmanager
def _workers_ignore_ctrl_c():
    """Start worker processes with SIGINT ignored (inherited through exec).

    Ctrl-C reaches every process of the terminal's group; the workers would print their own
    tracebacks. The command stops them instead. Ctrl-C is ignored while they start.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _run(spec: StudySpec, out: Path, client) -> None:
    """Submit what is missing; write each row as it finishes, with a progress bar."""
    from dask.distributed import as_completed

    todo = _todo(spec, out)
    total = len(spec.tasks())
    resumed = total - len(todo)
    start = time.perf_counter()
    futures = [
        client.submit(
            run_replicate, spec, i, r, pure=False, key=f"replicate-{i}-{r}-{spec.digest[:8]}"
        )
        for i, r in todo
    ]
    done = resumed
    _progress(done, total, start, resumed)
    try:
        for fut in as_completed(futures, loop=client.loop):
            _write_row(out, fut.result())
            done += 1
            _progress(done, total, start, resumed)
    finally:
        sys.stderr.write("\n")  # end the progress bar's line


# ---------------------------------------------------------------------- the report
def _wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default)."""
    if n == 0:
        return (float("nan"), float("nan"))
    phat = successes / n
    denom = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def load_rows(out):
    """Every replicate's row in DIR, sorted by (cell, replicate)."""
    import pandas as pd

    files = sorted((Path(out) / ROWS_DIR).glob("*.parquet"))
    if not files:
        return pd.DataFrame()
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True).sort_values(
        ["cell", "replicate"], ignore_index=True
    )


_RATES = (
    ("em_global", "EM's best restart reached the best known optimum (certified)"),
    ("map_em_agree", "MAP and EM agree (where EM converged)"),
    ("label_switching", "label switching seen (where labels are identified)"),
    ("sampler_reliable", "sampler without warnings"),
)


def summarise(out, spec: StudySpec) -> dict:
    """Per-cell rates with 95% Wilson intervals, coverage and errors."""
    rows = load_rows(out)
    cells = []
    for i, cell in enumerate(spec.cells):
        sub = rows[rows["cell"] == i] if len(rows) else rows
        ok = sub[sub["status"] == "ok"] if len(sub) else sub
        entry = {
            "cell": i,
            "name": cell.name,
            "n": cell.n,
            "trials": cell.trials,
            "weights": list(cell.weights),
            "p": list(cell.p),
            "separation": float(np.min(np.diff(np.sort(cell.p)))) if len(cell.p) > 1 else 1.0,
            "replicates": int(len(sub)),
            "failed": int(len(sub) - len(ok)),
        }
        for col, _ in _RATES:
            if len(ok) and col in ok:
                judged = ok[col].dropna().astype(float)  # NaN: no verdict drawn there
                if not len(judged):
                    continue
                s = int((judged > 0.5).sum())
                entry[col] = {
                    "rate": s / len(judged),
                    "ci95": list(_wilson(s, len(judged))),
                    "count": s,
                    "of": int(len(judged)),
                }
        for col in (
            "em_coverage_p",
            "posterior_coverage_p",
            "em_error_p",
            "posterior_error_p",
            "rhat_invariant",
            "seconds",
        ):
            if len(ok) and col in ok and ok[col].notna().any():
                entry[col] = float(ok[col].mean())
        for col in ("k_aic", "k_bic", "k_icl", "k_loo"):
            if len(ok) and col in ok:
                entry[col] = {str(k): int(v) for k, v in ok[col].value_counts().items()}
        cells.append(entry)
    errors = (
        []
        if not len(rows)
        else [
            {"cell": int(x.cell), "replicate": int(x.replicate), "error": x.error}
            for x in rows[rows["status"] == "error"].itertuples()
        ]
    )
    return {"cells": cells, "errors": errors, "total_replicates": int(len(rows))}


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def _rate_figures(out: Path, cells: list[dict]) -> dict:
    """Rate figures, with Wilson intervals; their file names by rate.

    EM's global optimum against the separation of the biases, MAP/EM agreement against N.
    """
    import matplotlib.pyplot as plt

    figs = {}
    for key, xkey, label, name in (
        (
            "em_global",
            "separation",
            "separation of the true biases (min |p_i - p_j|)",
            "em_global_vs_separation.png",
        ),
        ("map_em_agree", "n", "sequences N", "agreement_vs_n.png"),
    ):
        fig, ax = plt.subplots(figsize=(5.5, 3.4))
        xs = [c[xkey] for c in cells if key in c]
        ys = [c[key]["rate"] for c in cells if key in c]
        lo = [max(0.0, c[key]["rate"] - c[key]["ci95"][0]) for c in cells if key in c]
        hi = [max(0.0, c[key]["ci95"][1] - c[key]["rate"]) for c in cells if key in c]
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", capsize=3)
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel(label)
        ax.set_ylabel(dict(_RATES)[key] + " (rate)")
        if xkey == "n":
            ax.set_xscale("log")
        _save(fig, out / "figures" / name)
        figs[key] = name
    return figs


def _coverage_figure(out: Path, cells: list[dict]) -> str:
    """Coverage of the true biases against N; the figure's file name.

    EM's Wald and the posterior's equal-tailed intervals, at the report's interval
    probability, which is drawn as the nominal level.
    """
    import matplotlib.pyplot as plt

    from compare.settings import CI_PROB

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for col, mark, lab in (
        ("em_coverage_p", "o", f"EM (Wald {CI_PROB:.0%})"),
        ("posterior_coverage_p", "s", f"posterior (ETI {CI_PROB:.0%})"),
    ):
        pts = [(c["n"], c[col]) for c in cells if col in c]
        if pts:
            ax.plot(*zip(*pts, strict=True), mark, label=lab)
    ax.axhline(CI_PROB, color="0.5", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("sequences N")
    ax.set_ylabel("coverage of the true p")
    ax.legend(fontsize=8)
    _save(fig, out / "figures" / "coverage_vs_n.png")
    return "coverage_vs_n.png"


def _write_study_report(out: Path, spec: StudySpec, summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")

    from compare.report import render_html, render_markdown

    (out / "figures").mkdir(exist_ok=True)
    cells = summary["cells"]
    figs = _rate_figures(out, cells)
    figs["coverage"] = _coverage_figure(out, cells)

    def pct(entry, key):
        if key not in entry:
            return "n/a"
        e = entry[key]
        return f"{e['rate']:.2f} [{e['ci95'][0]:.2f}, {e['ci95'][1]:.2f}] ({e['count']}/{e['of']})"

    rows = []
    for c in cells:
        rows.append(
            [
                c["name"],
                str(c["n"]),
                str(c["trials"]),
                ", ".join(f"{x:g}" for x in c["p"]),
                str(c["replicates"]),
                str(c["failed"]),
                pct(c, "em_global"),
                pct(c, "map_em_agree"),
                pct(c, "label_switching"),
                f"{c.get('em_coverage_p', float('nan')):.2f}",
                f"{c.get('posterior_coverage_p', float('nan')):.2f}",
                f"{c.get('em_error_p', float('nan')):.3g}",
            ]
        )
    blocks = [
        (
            "p",
            f"{len(cells)} cells x {spec.replicates} replicates, seed {spec.seed}; EM with "
            f"{spec.restarts} restarts (best known optimum from {spec.reference_restarts} "
            f"more and a start at the truth); NUTS (nutpie) {spec.chains} chains x "
            f"({spec.tune} + {spec.draws}). Rates with 95% Wilson intervals.",
        ),
        (
            "table",
            [
                "cell",
                "N",
                "trials",
                "true p",
                "replicates",
                "failed",
                "EM global optimum",
                "MAP/EM agree",
                "label switching",
                "EM coverage",
                "posterior coverage",
                "EM max |p error|",
            ],
            rows,
        ),
        ("img", figs["em_global"], "EM's global-optimum rate against the separation"),
        ("img", figs["coverage"], "Coverage of the true biases against N"),
        ("img", figs["map_em_agree"], "MAP/EM agreement against N"),
    ]
    secs = [{"title": "Simulation study", "level": 1, "blocks": blocks}]
    if summary["errors"]:
        failed = [
            f"cell {e['cell']} replicate {e['replicate']}: {e['error']}" for e in summary["errors"]
        ]
        secs.append({"title": "Failed replicates", "blocks": [("ul", failed)]})
    (out / "study.md").write_text(render_markdown(secs))
    (out / "study.html").write_text(render_html(secs, out / "figures"))
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
