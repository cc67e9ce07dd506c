# The two set-up commands are `make demo` and `make test`; each creates .venv and installs when needed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

# Configuration (see .env.example); the environment wins over these defaults.
export LANDING_DIR ?= $(CURDIR)/data/landing
export WAREHOUSE_PATH ?= $(CURDIR)/data/warehouse.duckdb
export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home

DEMO_DIR ?= $(CURDIR)/data/demo
DEMO_VISITORS ?= 3000
DEMO_SEED ?= 7
# fake: TikTok deliveries go to the fake Events API started for the demo; dry-run: recorded, not sent
DEMO_TIKTOK ?= fake
# postgres: the demo on PostgreSQL (WAREHOUSE_URL's empty database, else a throwaway server); empty: WAREHOUSE_URL decides
DEMO_WAREHOUSE ?=
PORT ?= 3000

# Segment's browser SDK for tests/test_segment_sdk_browser.py (`make browser` fetches it)
SEGMENT_SDK_VERSION ?= 1.84.3
SEGMENT_SDK_DIR ?= tests/.sdk/analytics-next-$(SEGMENT_SDK_VERSION)

.PHONY: help install browser demo test lint run dev dev-demo bench bench-pipeline bench-freshness stripe-receiver collector clean

help:
	@echo "make demo      generate a simulated world, run the pipeline through Dagster, print the report"
	@echo "make test      run the whole test suite"
	@echo "make lint      ruff's lint and format checks"
	@echo "make run       materialise every asset once over LANDING_DIR and WAREHOUSE_PATH"
	@echo "make dev       the Dagster UI on http://127.0.0.1:$(PORT) over the same configuration"
	@echo "make dev-demo  the Dagster UI over the demo's data"
	@echo "make bench     the benchmarks, printing their figures"
	@echo "make stripe-receiver PORT=8787   the Stripe webhook receiver on 127.0.0.1 (needs STRIPE_WEBHOOK_SECRET)"
	@echo "make collector PORT=8788         the tracking collector on 127.0.0.1 (needs COLLECTOR_WRITE_KEYS)"
	@echo "make browser   installs Debian's Chromium and fetches Segment's analytics-next for the browser tests"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed, found " + sys.version' 
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO_DIR)
	$(PY) -m simulator.demo --dir $(DEMO_DIR) --visitors $(DEMO_VISITORS) --seed $(DEMO_SEED) --tiktok $(DEMO_TIKTOK) \
		$(if $(DEMO_WAREHOUSE),--warehouse $(DEMO_WAREHOUSE))
	@echo
	@echo "The run is recorded in the Dagster instance at $(DAGSTER_HOME)."
	@echo "Open the Dagster UI over the demo's data with:  make dev-demo   (then http://127.0.0.1:$(PORT))"
	@echo "Query the marts with DuckDB:  $(PY) -c \"import duckdb; print(duckdb.connect('$(DEMO_DIR)/analytics.duckdb', read_only=True).sql('from marts.attributed_purchases limit 5'))\""

# the suite's files spread over the cores, at most 4 (a file's tests and fixtures stay together); PYTEST_ARGS= runs it
# serially
PYTEST_ARGS ?= -n auto --maxprocesses 4 --dist loadfile
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# the lint and format gate (.ci/run runs it before the suite); `$(VENV)/bin/ruff format .` fixes the format
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

run: $(STAMP)
	$(PY) -m orchestration.run

dev: $(STAMP)
	$(PY) -c 'from orchestration.instance import prepare_dagster_home; prepare_dagster_home()'
	$(VENV)/bin/dagster dev -m orchestration.definitions -h 127.0.0.1 -p $(PORT)

dev-demo:
	$(MAKE) dev LANDING_DIR=$(DEMO_DIR)/landing WAREHOUSE_PATH=$(DEMO_DIR)/warehouse.duckdb

# Each benchmark prints the machine's core count and compares against a baseline measured in the same run.
BENCH_CONVERSIONS ?= 100000
BENCH_EDGES ?= 1000000
BENCH_WEBHOOKS ?= 20000
BENCH_TRACKING_EVENTS ?= 200000
bench: $(STAMP)
	$(PY) -m bench.tiktok_delivery --conversions $(BENCH_CONVERSIONS)
	$(PY) -m bench.identity --edges $(BENCH_EDGES)
	$(PY) -m bench.stripe_webhooks --requests $(BENCH_WEBHOOKS)
	$(PY) -m bench.collector --events $(BENCH_TRACKING_EVENTS)

# the whole pipeline through Dagster at scale: full run, no-new-data run, +1% run (several minutes, ~2 GB of disk);
# then DuckDB and PostgreSQL side by side over the same world (bench/warehouses.py)
BENCH_PIPELINE_EVENTS ?= 1000000
bench-pipeline: $(STAMP)
	$(PY) -m bench.pipeline --tracking-events $(BENCH_PIPELINE_EVENTS)
	$(PY) -m bench.warehouses --tracking-events $(BENCH_PIPELINE_EVENTS)
	$(MAKE) bench-freshness

# seconds from a purchase's webhook to TikTok with the product running by itself over a history (about 10 minutes)
BENCH_FRESHNESS_EVENTS ?= 1000000
bench-freshness: $(STAMP)
	$(PY) -m bench.freshness --tracking-events $(BENCH_FRESHNESS_EVENTS)

# the webhook receiver: WORKERS processes on 127.0.0.1:PORT (HOST=0.0.0.0 behind a proxy)
HOST ?= 127.0.0.1
WORKERS ?= 2
stripe-receiver: $(STAMP)
	$(PY) -m ingestion.stripe_receiver --host $(HOST) --port $(PORT) --workers $(WORKERS)

# the tracking collector, same options
collector: $(STAMP)
	$(PY) -m ingestion.collector --host $(HOST) --port $(PORT) --workers $(WORKERS)

# the browser test drives Debian's Chromium (a browser a test tool downloads itself does not work here)
# and Segment's own browser SDK (analytics-next, pinned), fetched from npm, against which the collector is tested
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@chromium --version
	@test -f $(SEGMENT_SDK_DIR)/dist/umd/index.js || { mkdir -p $(SEGMENT_SDK_DIR) && cd $(SEGMENT_SDK_DIR) && \
		npm pack --silent @segment/analytics-next@$(SEGMENT_SDK_VERSION) >/dev/null && \
		tar xzf segment-analytics-next-$(SEGMENT_SDK_VERSION).tgz --strip-components=1 && rm -f *.tgz; }
	@echo "Segment analytics-next $(SEGMENT_SDK_VERSION) in $(SEGMENT_SDK_DIR)"

clean:
	rm -rf data dbt_project/target dbt_project/logs .pytest_cache
