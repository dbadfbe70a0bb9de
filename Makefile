# mriqc-nb: the two commands of the README, plus helpers.
#   make book   -- set up .venv from the repo's own files and build the book (laptop profile;
#                  it loads the networks in results/laptop-runs: MRIQC_NB_TRAIN_HERE=1 trains them)
#   make test   -- set up .venv and run the whole test suite (unit tests + every chapter)
#   make check  -- unit tests only (no chapters): the quick edit-test loop
# Everything is installed into a local virtual environment from pyproject.toml, pinned by
# requirements/constraints.txt. Override the interpreter with `make PYTHON=python3.12 ...`.

PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.mriqc-nb-installed
# Profile used to execute the chapters when building the book: smoke | laptop | colab | paper
PROFILE ?= laptop
# Extra options for jupyter-book (CI adds -W: Sphinx warnings are errors)
JB_OPTS ?= -W --keep-going

.PHONY: book test check venv lock clean bench model experiments

venv: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e ".[cpu,book,test]"
	touch $(STAMP)

# Sphinx and jupyter-cache decide what to re-execute from each chapter's source only, so
# pages executed under one profile would be kept under another: start the build afresh when
# PROFILE changes (`make clean` forces a full re-execution, e.g. after changing the package).
# EXECUTED=<folder>: chapters already executed under this PROFILE (papermill's copies, as the
# notebook tests write them) go into the execution cache first (tools/seed_book_cache.py).
book: $(STAMP)
	@if [ "$$(cat _build/.profile 2>/dev/null)" != "$(PROFILE)" ]; then rm -rf _build; fi
	mkdir -p _build && echo "$(PROFILE)" > _build/.profile
	$(if $(EXECUTED),$(BIN)/python tools/seed_book_cache.py "$(EXECUTED)" --cache _build/.jupyter_cache)
	MRIQC_NB_PROFILE=$(PROFILE) $(BIN)/jupyter-book build . $(JB_OPTS)
	@echo "Open _build/html/index.html"

test: $(STAMP)
	$(BIN)/python -m pytest

# The edit-test loop: unit tests only, without executing the chapters (a few minutes).
check: $(STAMP)
	$(BIN)/python -m pytest -m "not notebooks" -q

# The built-in screening model (mriqc_nb/models/default, with its MODEL_CARD.md), trained with
# the book's recipe on the laptop profile (60 rounds: 45 minutes on 2 shared cores of an Intel
# Xeon with AVX-512 on 2026-12-04, most of it training; more on older CPUs).
MODEL_STAGE   ?= recipe
MODEL_PROFILE ?= laptop
model: $(STAMP)
	$(BIN)/python tools/make_model.py --stage $(MODEL_STAGE) --profile $(MODEL_PROFILE)

# Every method for three seeds on the laptop profile -> results/laptop.tsv (+ .json sidecar);
# resumable. Hours on a laptop CPU (tools/experiments.py prints the time of each method).
# Then the recipe's rows with the checks at the scan's own resolution ->
# results/laptop-checks.tsv (the scans' measures are kept: a few minutes the first time).
SEEDS ?= 0 1 2
experiments: $(STAMP)
	$(BIN)/python tools/experiments.py --profile laptop --seeds $(SEEDS)
	$(BIN)/python tools/checks_on_benchmark.py --profile laptop --seeds $(SEEDS)

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

lock: $(STAMP)
	( echo "# Pinned versions of the book and CI environment (pip constraints file)."; \
	  echo "# Regenerate with: make lock   (pip freeze of a fresh .venv built from pyproject.toml)"; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v -i '^mriqc-nb' ) > requirements/constraints.txt

clean:
	rm -rf _build .pytest_cache
