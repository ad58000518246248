# The two commands of the README: `make demo` and `make test`. Both set up what is missing first:
# Debian packages (scripts/system-deps.sh) and the Python environment in .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck layers bench bench-gunicorn bench-pool clean

$(STAMP): pyproject.toml scripts/system-deps.sh
	./scripts/system-deps.sh
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "postfork needs Python 3.11+")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

# The story and its fix, side by side, in about 2.5 minutes (postfork bench --quick).
demo: $(STAMP)
	$(BIN)/postfork bench --quick --json bench-results/quick.json --plot bench-results/quick.png

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

# The full run recorded in benchmarks/README.md (about 9 minutes each).
bench: $(STAMP)
	$(BIN)/postfork bench --json benchmarks/results/bench-uwsgi.json --plot benchmarks/results/bench-uwsgi.png

bench-gunicorn: $(STAMP)
	$(BIN)/postfork bench --server gunicorn --json benchmarks/results/bench-gunicorn.json --plot benchmarks/results/bench-gunicorn.png

bench-pool: $(STAMP)
	$(BIN)/python benchmarks/pool_overhead.py --iterations 20000 --json benchmarks/results/pool_overhead.json

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
