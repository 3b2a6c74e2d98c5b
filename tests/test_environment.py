"""environment.yml (conda) lists the same dependencies as pyproject.toml (pip)."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# pip name -> conda-forge name, where they differ (none today)
CONDA_NAME: dict[str, str] = {}


def _split(spec: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*(.*)$", spec)
    return m.group(1).lower(), m.group(2).replace(" ", "")


def pyproject_deps(path: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    meta = tomllib.loads(path.read_text())["project"]
    specs = list(meta["dependencies"])
    for extra in meta.get("optional-dependencies", {}).values():
        specs += extra
    deps = dict(_split(s) for s in specs)
    deps["python"] = meta["requires-python"].replace(" ", "")
    return {CONDA_NAME.get(k, k): v for k, v in deps.items()}


def conda_deps(path: Path = ROOT / "environment.yml") -> dict[str, str]:
    body = path.read_text().split("\ndependencies:\n", 1)[1]
    deps = {}
    for line in body.splitlines():
        m = re.match(r"^  - ([^\s#:][^#:]*?)\s*$", line)  # top-level entries, not "- pip:"
        if m and m.group(1) != "pip":
            name, spec = _split(m.group(1))
            deps[name] = spec
    return deps


def test_environment_yml_matches_pyproject():
    assert conda_deps() == pyproject_deps()
    assert {"numpy", "scipy", "pymc", "arviz", "pytest", "hypothesis"} <= set(conda_deps())


def test_a_drift_is_seen(tmp_path):
    text = (ROOT / "environment.yml").read_text()
    drifted = tmp_path / "environment.yml"
    drifted.write_text(text.replace("  - scipy>=1.13\n", "  - scipy>=1.10\n"))
    assert conda_deps(drifted) != pyproject_deps()
    drifted.write_text(text.replace("  - h5py>=3.10\n", ""))
    assert conda_deps(drifted) != pyproject_deps()


# import name -> distribution name, where they differ
DIST_NAME = {
    "sklearn": "scikit-learn",
    "arviz_plots": "arviz-plots",
    "arviz_base": "arviz-base",
    "arviz_stats": "arviz-stats",
    "IPython": "ipython",
}
FIRST_PARTY = {"em", "models", "compare", "tests"}


def _imported_packages() -> set[str]:
    import sys

    names = set()
    for folder in ("em", "models", "compare", "benchmarks", "examples", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            for line in path.read_text().splitlines():
                m = re.match(r"^\s*(?:import\s+|from\s+(?=[\w.]+\s+import\b))([A-Za-z_]\w*)", line)
                if m:
                    names.add(m.group(1))
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    ours = [ROOT / f for f in ("em", "models", "compare", "benchmarks", "examples", "tests")]
    local = {p.stem for d in ours for p in d.rglob("*.py")} | {
        p.name for d in ours for p in d.rglob("*") if (p / "__init__.py").is_file()
    }  # test fixtures import their siblings (tests/compare/student)
    return {n for n in names if n not in stdlib and n not in FIRST_PARTY and n not in local}


def test_every_imported_package_is_declared():
    declared = set(pyproject_deps())
    missing = {DIST_NAME.get(n, n) for n in _imported_packages()} - declared
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"
