# `make test` and `make report` set everything up on a fresh machine: they create .venv
# (Python >= 3.12) if it is missing, install the project with its test extras, then run.
.DEFAULT_GOAL := help
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The first interpreter >= 3.12 found; pyenv users get it from .python-version.
PYTHON ?= $(shell for p in python3.12 python3.13 python3.14 python3 python; do \
	  command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null \
	  && { echo $$p; break; }; done)

.PHONY: help test report readme bench notebook lint clean

help:
	@echo "make test    set up .venv and run the whole test suite"
	@echo "make report  set up .venv and write the EM-versus-Bayes report to reports/chapter/"
	@echo "make readme  run make report; regenerate README.md's example outputs and benchmark quotes"
	@echo "make bench   run the four benchmark scripts (prints their figures, records them in benchmarks/results/)"
	@echo "make notebook  install the notebook extra and execute examples/walkthrough.ipynb"

$(PY):
	@test -n "$(PYTHON)" || { echo "error: no Python >= 3.12 found (install one, e.g. pyenv install 3.12)" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,bench]"
	@touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

# The main job: EM against the PyMC posterior on the chapter's data, into reports/chapter/
# (--force: this target regenerates that folder; the same seed gives the same numbers).
report: $(STAMP)
	$(PY) -m compare report chapter --components 3 --seed 0 --out reports/chapter --force

# The README's make-report conclusions, regenerated from the report (tests/test_readme.py
# fails when they drift).
readme: report
	$(PY) -c "from tests.test_readme import update; update()"

# Each script's figures are also recorded in benchmarks/results/NAME.txt, which the README
# quotes (make readme pastes them; tests/test_readme.py checks the quotes).
BENCHES := bench_em bench_csv bench_models bench_study
bench: $(STAMP)
	@mkdir -p benchmarks/results
	@for b in $(BENCHES); do \
	  echo "$(PY) benchmarks/$$b.py"; \
	  $(PY) benchmarks/$$b.py > benchmarks/results/$$b.txt.tmp || exit 1; \
	  mv benchmarks/results/$$b.txt.tmp benchmarks/results/$$b.txt; \
	  cat benchmarks/results/$$b.txt; \
	done

# The walk-through notebook: examples/walkthrough.py (the source) executed into
# examples/walkthrough.ipynb, figures and tables inline (tests/test_walkthrough.py keeps
# the two in step).
notebook: $(STAMP)
	$(PY) -m pip install --quiet -e ".[notebook]"
	cd examples && ../$(VENV)/bin/jupytext --to ipynb --set-kernel python3 --execute walkthrough.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
