# The two commands of the README: `make demo` and `make test`. Both set up what is missing first:
# Debian packages (scripts/system-deps.sh) and the Python environment in .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck bench-pool bench-respawn clean

$(STAMP): pyproject.toml scripts/system-deps.sh
	./scripts/system-deps.sh
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "postfork needs Python 3.11+")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/postfork demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

bench-pool: $(STAMP)
	$(BIN)/python benchmarks/pool_overhead.py --iterations 20000 --json benchmarks/results/pool_overhead.json

bench-respawn: $(STAMP)
	command -v wrk >/dev/null || ./scripts/system-deps.sh wrk
	$(BIN)/python benchmarks/respawn_gap.py --json benchmarks/results/respawn_gap.json

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
