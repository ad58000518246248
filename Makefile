# The two commands of the README: `make demo` and `make test`. Both set up what is missing first:
# Debian packages (scripts/system-deps.sh) and the Python environment in .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test docs docs-check test-lows test-asgi test-django test-cluster test-partition test-stress test-dist test-bench lint typecheck layers bench bench-gunicorn bench-asgi bench-orm bench-pool clean

$(STAMP): pyproject.toml tools/pyproject.toml scripts/system-deps.sh
	./scripts/system-deps.sh
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "postfork needs Python 3.11+")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e . -e ./tools --group dev
	touch $(STAMP)

# The story and its fix, side by side, in about 2.5 minutes (postfork bench --quick).
demo: $(STAMP)
	$(BIN)/postfork bench --quick --json bench-results/quick.json --plot bench-results/quick.png

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python scripts/async_to_sync.py --check
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q

# ASGI: FastAPI and Starlette apps on the asyncio pool under uvicorn --workers, gunicorn's
# uvicorn worker and its own ASGI worker, and hypercorn, recycling; the asyncio fork matrix.
test-asgi: $(STAMP)
	$(BIN)/pytest -q tests/asgi

# Django's own test suite (backends, basic, transactions, select_for_update, queries,
# model_fields, aggregation; async, async_queryset, asgi, handlers) on postfork.django and on
# stock Django's MySQL backend, side by side: the installed Django (5.2) and 4.2 LTS (in
# .venv-django42). About 3 minutes.
DJANGO42 := .venv-django42
$(DJANGO42)/.installed: pyproject.toml
	test -x $(DJANGO42)/bin/python || $(PYTHON) -m venv $(DJANGO42)
	$(DJANGO42)/bin/python -m pip install --quiet --upgrade pip
	$(DJANGO42)/bin/python -m pip install --quiet -e '.[mysqlclient,pymysql]' 'Django>=4.2,<4.3'
	touch $@

test-django: $(STAMP) $(DJANGO42)/.installed
	$(BIN)/python scripts/django_suite.py --json benchmarks/results/django-suite-5.2.json
	$(BIN)/python scripts/django_suite.py --python $(DJANGO42)/bin/python --json benchmarks/results/django-suite-4.2.json

# The topology on real clusters: a three-node Galera cluster (galera-4, rsync state transfer) and
# replicas behind HAProxy, all on loopback; installs those Debian packages first. About 1 minute.
test-cluster: $(STAMP)
	./scripts/system-deps.sh galera-4 rsync haproxy
	$(BIN)/pytest -q tests/cluster

# Real network partitions: servers in network namespaces of the tests' own, behind veth pairs,
# their packets dropped with nftables (keepalive, TCP_USER_TIMEOUT, deadlines, a cut replica).
# Needs root; installs nftables first. About 30 seconds.
test-partition: $(STAMP)
	./scripts/system-deps.sh nftables iproute2
	$(BIN)/pytest -q tests/partition

# postfork bench end to end: every scenario, the ORM scenarios, a refused rate (1.5 minutes).
test-bench: $(STAMP)
	$(BIN)/pytest -q -m bench_tool tests/e2e

# The distribution: sdist and wheel built (python -m build) and checked (twine check --strict),
# the wheel installed into a fresh virtualenv, each public module imported with only its extra.
# The support matrix's lows (noxfile.py): the lowest versions pyproject.toml claims, pinned, in
# a virtualenv of their own; the pool, SQLAlchemy, Django, TLS, fork safety and the ORM apps
# under uWSGI and gunicorn. make test runs the newest.
test-lows: $(STAMP)
	$(BIN)/nox -s lows

test-dist: $(STAMP)
	$(BIN)/pytest -q tests/dist

# The timing-sensitive tests, 3 rounds beside one CPU hog per core: a race that shows here is a
# bug to fix, never to retry. About 15 minutes on 2 cores; not part of .ci/run's budget.
test-stress: $(STAMP)
	$(BIN)/python scripts/stress.py --rounds 3

# The documentation site (MkDocs + Material, the API pages from the docstrings) into site/,
# every warning an error: a broken link or anchor, a page missing from the navigation. Its
# Python examples run in make test (tests/docs).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The built site in headless Chromium (Debian's): every page loads without a console error or a
# failed request, the navigation, the search and the API pages work.
docs-check: docs
	./scripts/system-deps.sh chromium
	$(BIN)/python scripts/check_site.py --site site --chromium /usr/bin/chromium

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

# The asyncio scenarios (the service's ASGI twin) under gunicorn's uvicorn worker, about 9 minutes.
bench-asgi: $(STAMP)
	$(BIN)/postfork bench --server gunicorn-uvicorn --json benchmarks/results/bench-gunicorn-uvicorn.json --plot benchmarks/results/bench-gunicorn-uvicorn.png

# The ORM scenarios (SQLAlchemy and Django, stock and on postfork), about 9 minutes.
bench-orm: $(STAMP)
	$(BIN)/postfork bench --orm --scenarios no-recycle --no-storms --json benchmarks/results/bench-orm.json --plot benchmarks/results/bench-orm.png

# Instructions per checkout under callgrind (valgrind), then wall clock local and through the
# proxy: the thread pool against its peers, then the asyncio pool against its own.
bench-pool: $(STAMP)
	./scripts/system-deps.sh valgrind
	$(BIN)/python benchmarks/pool_overhead.py --iterations 20000 --json benchmarks/results/pool_overhead.json
	$(BIN)/python benchmarks/pool_overhead.py --asyncio --iterations 20000 --json benchmarks/results/pool_overhead_async.json

clean:
	rm -rf $(VENV) $(DJANGO42) .cache build dist site src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
