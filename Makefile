# hookwall — every target creates what it needs; nothing is installed by hand.
VENV      ?= .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
ARGS      ?=
BENCH_ROWS ?= 1000000

.PHONY: venv run test lint typecheck check lock clean bench schema

venv: $(STAMP)

# The venv is rebuilt whenever the lock file or the project metadata (the version too) changes.
# Its messages go to stderr, so that `make run | jq` reads only hookwall's JSON lines.
$(STAMP): requirements-dev.lock pyproject.toml src/hookwall/__init__.py
	@{ PY_BIN=$$(scripts/find-python) || exit 1; \
	  echo "using $$PY_BIN ($$($$PY_BIN -V))"; \
	  [ -x $(PY) ] || $$PY_BIN -m venv $(VENV) || exit 1; \
	  echo "installing the locked dependencies and hookwall into $(VENV)"; \
	  $(PY) -m pip install --quiet --upgrade --require-hashes --no-deps -r requirements-dev.lock \
	    && $(PY) -m pip install --quiet --no-deps --no-build-isolation -e .; } >&2
	@touch $(STAMP)

# JSON log lines also on a terminal: what the README's walkthrough shows, and what `| jq`
# reads (ARGS="--log-format console" for a person's lines; `hookwall run` picks by itself).
run: venv ## run the proxy on 127.0.0.1:8080 with the built-in default policy
	@$(VENV)/bin/hookwall run --log-format json $(ARGS)

test: venv ## the whole suite
	$(PY) -m pytest $(ARGS)

bench: venv ## benchmark scripts (loopback only, a few minutes)
	$(PY) -m bench.noisy_neighbour
	$(PY) -m bench.bench --json bench-results.json $(BENCH_ARGS)  # BENCH_ARGS=--quick: smoke run
	$(PY) -m bench.workers  # hookwall run --workers 1 vs 2, side by side
	$(PY) -m bench.store_queries --rows $(BENCH_ROWS)  # ~1.6 GB in a temp dir at 1M rows

# The policy's JSON Schema, generated from the code that validates policies (a test keeps the
# committed copy current; policies/hookwall.schema.json links to it).
schema: venv
	$(VENV)/bin/hookwall schema > src/hookwall/policies/hookwall.schema.json.new
	mv src/hookwall/policies/hookwall.schema.json.new src/hookwall/policies/hookwall.schema.json

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	PYTHONPATH=tools $(VENV)/bin/lint-imports  # the dependency direction (ARCHITECTURE.md)

typecheck: venv
	$(VENV)/bin/mypy

check: lint typecheck test

# Re-pin dependencies (needs network access to PyPI); commit both lock files.
lock: venv
	$(PY) -m pip install --quiet uv
	printf 'setuptools>=75\n' > .build-req.in
	$(VENV)/bin/uv pip compile pyproject.toml .build-req.in --extra dev --extra redis --extra uvloop --generate-hashes --universal --python-version 3.12 --no-header -o requirements-dev.lock
	$(VENV)/bin/uv pip compile pyproject.toml .build-req.in --extra redis --extra uvloop --generate-hashes --universal --python-version 3.12 --no-header -o requirements.lock
	rm -f .build-req.in

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache build src/*.egg-info
