# Two commands on a fresh machine: `make demo` (full GSOCseq run on the demo region) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: env demo test test-fast lint bench clean

$(STAMP): pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m pip install -q 'uv>=0.9,<1'
	@test -x $(PY) || uv venv -q -p python3.11 $(VENV) || python3 -m venv $(VENV)
	UV_PROJECT_ENVIRONMENT=$(VENV) uv sync -q --locked --extra test
	@touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/gsocseq run --region demo --out file://$(CURDIR)/demo-output

test: $(STAMP)
	$(VENV)/bin/ruff check gsocseq flows tests benchmarks infra scripts
	bash scripts/ensure-browser.sh $(PY)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check gsocseq flows tests benchmarks infra scripts

bench: $(STAMP)
	$(PY) benchmarks/bench_rothc.py

clean:
	rm -rf $(VENV) demo-output
