# Two commands on a fresh machine: `make demo` (full GSOCseq run on the demo region) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: env demo test test-fast lint bench clean

# Bytecode is compiled once at install (--compile-bytecode) and for the project before the tests:
# where PYTHONDONTWRITEBYTECODE is set (as on the CI machines), every process the tests start (CLI
# runs, dask workers, Prefect server and serve, moto) would otherwise recompile each module it
# imports (≈ 5 CPU-s per process for the scientific stack).
$(STAMP): pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m pip install -q 'uv>=0.9,<1'
	@test -x $(PY) || uv venv -q -p python3.11 $(VENV) || python3 -m venv $(VENV)
	UV_PROJECT_ENVIRONMENT=$(VENV) uv sync -q --locked --extra test --compile-bytecode
	@touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/gsocseq run --region demo --out file://$(CURDIR)/demo-output

test: $(STAMP)
	$(VENV)/bin/ruff check gsocseq flows tests benchmarks infra scripts
	$(VENV)/bin/lint-imports
	bash scripts/ensure-browser.sh $(PY)
	$(PY) -m compileall -q -j 0 gsocseq flows tests
	$(PY) -m pytest -q --durations=40

test-fast: $(STAMP)
	$(PY) -m compileall -q -j 0 gsocseq flows tests
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check gsocseq flows tests benchmarks infra scripts
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) benchmarks/bench_rothc.py

clean:
	rm -rf $(VENV) demo-output
