# The two commands: `make run` (the app with demo data) and `make test` (the whole suite).
# Both create .venv on first use and reinstall when a requirements file changes.

PYTHON ?= python3
PORT ?= 8000
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test bench lint format migrate demo browsers system-deps assets screenshots clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

## Front-end packages from npm (Chart.js), installed exactly as package-lock.json says.
ASSETS_STAMP := node_modules/.installed
$(ASSETS_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(ASSETS_STAMP)
assets: $(ASSETS_STAMP)

## Debian's Pango and fonts, which WeasyPrint needs to draw PDFs (most machines have them).
system-deps:
	@ldconfig -p | grep -q libpangoft2-1.0 && fc-list 2>/dev/null | grep -qi dejavu || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
			libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core fontconfig >/dev/null; }

migrate: $(STAMP) $(ASSETS_STAMP)
	$(BIN)/python manage.py migrate --noinput

# DEBUG off while seeding: Django would otherwise keep every SQL statement in memory.
demo: migrate
	DEBUG=false $(BIN)/python manage.py seed_demo
	DEBUG=false $(BIN)/python manage.py seed_sync_demo

## Web server on http://127.0.0.1:$(PORT) (8000), a Celery worker, Celery beat and the QuickBooks simulator
## (127.0.0.1:8765); Ctrl-C stops all four.
run: system-deps demo
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho --procfile Procfile.dev start --port $(PORT)

## The whole suite: SQLite unless DATABASE_URL is set; TEST_WORKERS processes (pytest-xdist).
TEST_WORKERS ?= 2
test: $(STAMP) $(ASSETS_STAMP) system-deps
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

## The scale benchmark (issue 6) on PostgreSQL: 100k customers / 1M invoices, results in bench/results/.
## BENCH_ARGS="--small" for the CI size, "--skip-seed --database-url URL" to measure a loaded database.
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

## The browser tests again, saving a screenshot of each main page to docs/screenshots/.
screenshots: $(STAMP) $(ASSETS_STAMP) browsers
	CONCORD_SCREENSHOTS=1 $(BIN)/python -m pytest tests/browser $(PYTEST_ARGS)

## Debian's Chromium for the browser tests (they skip without it, except in CI).
browsers:
	@command -v chromium >/dev/null 2>&1 || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
	@chromium --version

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var .pytest_cache node_modules
