# Herd: `make demo` and `make test` are the two commands of the quickstart.
# Both set everything up first (scripts/setup.sh; fast when already done).
VENV   := .venv
PY     := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest

.PHONY: setup test lint unit integration e2e bench chaos demo demo-qemu clean

setup:
	@bash scripts/setup.sh

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

unit: setup
	$(PYTEST) -q tests/unit

integration: setup
	$(PYTEST) -q tests/integration

e2e: setup
	$(PYTEST) -q tests/e2e

test: setup lint
	$(PYTEST) -q -p no:cacheprovider tests

bench: setup
	$(PY) -m bench.store_bench
	$(PY) -m bench.informer_bench
	$(PY) -m bench.node_bench
	$(PY) -m bench.controllers_bench
	$(PY) -m bench.api_bench
	$(PY) -m bench.migration_bench
	$(PY) -m bench.network_bench
	$(PY) -m bench.volume_bench
	$(PY) -m bench.storage_bench
	$(PY) -m bench.metrics_bench
	$(PY) -m bench.console_bench
	$(PY) -m bench.ha_bench
	$(PY) -m bench.ui_bench
	$(PY) -m bench.report

# The fault suite over several seeds (a few minutes per seed): bench/results/chaos.*
chaos: setup
	$(PY) -m bench.chaos --seeds 5 --duration 120
	$(PY) -m bench.chaos --hypervisor qemu --seeds 3 --duration 60
	$(PY) -m bench.report

demo: setup
	@$(PY) -m ctl.demo

demo-qemu: setup
	@$(PY) -m ctl.demo_qemu

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
