# navitune: `make run` runs the default sweep, `make test` runs the tests; both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
# the job image of hydra/launcher=kfp (hydra.launcher.image); `make image IMAGE=<registry>/navitune-job:<tag>`
IMAGE  ?= navitune-job:latest

.PHONY: setup run test test-fast lint-imports bench tunability drift image clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/python -m experiment -m

test: setup lint-imports
	$(BIN)/python -m pytest

test-fast: setup lint-imports
	$(BIN)/python -m pytest -m "not slow"

lint-imports: setup  # the import rules of docs/architecture.md (.importlinter): no cycle, no upward import
	$(BIN)/lint-imports --no-logo

bench: setup
	$(BIN)/python -m experiment.bench sim
	$(BIN)/python -m experiment.bench sweep

tunability: setup
	$(BIN)/python -m experiment.tunability --all --plot docs/tunability.png > docs/tunability.json

drift: setup  # each month's 1-D optima of the drifting year (docs/retune.md), ~15 min on 2 cores
	$(BIN)/python -m experiment.tunability --scenario drifting --plot docs/drift.png --json docs/drift.json > /dev/null

image:  # needs docker; push $(IMAGE) to a registry the cluster pulls from
	docker build -t $(IMAGE) .

clean:
	rm -rf $(VENV) outputs/runs outputs/sweeps outputs/*.duckdb
