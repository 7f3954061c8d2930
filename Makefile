# One-command set-up: `make run` serves the demo, `make test` runs the suite. Only Python 3.11+ is needed.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)
FLASK := $(BIN)/flask --app api

.PHONY: venv migrate seed run demo simulate test bench-review bench-import bench-bot bench-his bench-settle bench-settle-profile clean

venv: $(STAMP)
$(STAMP): requirements.txt
	@test -n "$(PYTHON)" || { echo "需要 Python 3.11 或更高版本 (Python 3.11+ is required)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

# Migrating and seeding are skipped when nothing they depend on changed (per database: the stamp names it).
INSTANCE := $(or $(INSTANCE_PATH),instance)
DB_STAMP := $(INSTANCE)/.seeded-$(shell printf '%s' "$$DATABASE_URL" | cksum | cut -d' ' -f1)
DEMO := $(wildcard fixtures/demo/*.csv fixtures/demo/policies/*.toml migrations/versions/*.py)

migrate: venv
	$(FLASK) db upgrade

seed: venv
	$(FLASK) db upgrade
	$(FLASK) registry import fixtures/demo
	@mkdir -p $(INSTANCE) && touch $(DB_STAMP)

$(DB_STAMP): $(STAMP) $(DEMO)
	@$(MAKE) --no-print-directory seed

run: $(DB_STAMP)
	@echo "家庭共济 service: http://127.0.0.1:$${PORT:-5000}/  (staff console: /staff; API docs: /api/docs; Ctrl-C stops everything)"
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m api.embedded $(BIN)/honcho start -f Procfile

# the service as `make run` starts it, with a small crowd of simulated mini-program users (clients/simulate.py)
demo: $(DB_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m api.embedded $(BIN)/python -m clients.demo

# the crowd against a service already running (`make run` in another terminal): FAMILIES=N SIM_SECONDS=S (not SECONDS: bash keeps its own)
simulate: venv
	$(BIN)/python -m clients.simulate --families $${FAMILIES:-5} --seconds $${SIM_SECONDS:-20} --prepare

test: venv
	$(BIN)/python -m pytest

bench-review: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m api.embedded $(BIN)/python -m tests.bench.review

bench-bot: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m api.embedded $(BIN)/python -m tests.bench.bot

bench-his: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m api.embedded $(BIN)/python -m tests.bench.his

# gunicorn as `make run` starts it (Procfile web); DATABASE_URL set: its schema is dropped and rebuilt
bench-settle: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m api.embedded $(BIN)/python -m tests.bench.settle $(ARGS)

bench-settle-profile: venv
	$(BIN)/python -m api.embedded $(BIN)/python -m tests.bench.settle_profile $(ARGS)

bench-import: venv
	$(BIN)/python -m tests.bench.registry_import

clean:
	rm -rf $(VENV) instance
