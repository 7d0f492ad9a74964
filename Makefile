# Everything a fresh machine (Python 3.11, make, git) needs: `make run` serves the sample scenario,
# `make test` runs the linters and every test. Both create .venv on first use; run as root, they
# also install Debian's npm (the map's assets), chromium (the browser tests) and PostGIS for the
# PostgreSQL 15 server (the PostGIS store's tests) when missing, and start that server.
VENV   ?= .venv
PYTHON ?= python3
PORT   ?= 8000
BIN    := $(VENV)/bin

.PHONY: install run test lint bench bench-http bench-store geodata clean assets browser postgis

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The sample scenario on 127.0.0.1:$(PORT), public read on, loaded into data/truce.sqlite on first start.
run: install assets
	@echo "Truce on http://127.0.0.1:$(PORT)  (map: /map, API docs: /docs, health: /health)"
	@echo "Writes need a key: $(BIN)/truce keys create --role admin  (shown once; or TRUCE_API_KEYS=<secret>:admin make run)"
	TRUCE_PUBLIC_READ=true TRUCE_LOAD_SCENARIO=true $(BIN)/truce serve --host 127.0.0.1 --port $(PORT)

lint: install
	$(BIN)/ruff check app tests bench scripts
	$(BIN)/ruff format --check app tests bench scripts
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile

test: lint assets browser postgis
	$(BIN)/pytest -n 2 -q

bench: install
	$(BIN)/python bench/bench_engine.py

# The HTTP benchmark drives its closed-loop runs with Debian's wrk (installed as root when
# missing; without it, bench_http.py uses its own, heavier, Python client).
bench-http: install
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; \
	  fi; }
	$(BIN)/python bench/bench_http.py

# The PostGIS store's benchmark (bench/bench_store.py): SQLite and PostGIS side by side.
bench-store: install postgis
	$(BIN)/python bench/bench_store.py

geodata: install
	$(BIN)/python scripts/build_geodata.py

# The map's front-end assets (Leaflet and plugins) from the npm registry into node_modules/, copied
# to app/static/vendor/ (both git-ignored; nothing is fetched at run time), and Debian's chromium
# for the browser tests. As root, missing system packages are installed with apt-get. The copy
# step runs Node.js once: it precompiles leaflet-measure's templates, so the map's CSP forbids eval.
NPM ?= npm
ASSETS_STAMP := app/static/vendor/.installed

assets: $(ASSETS_STAMP)

$(ASSETS_STAMP): package.json package-lock.json app/assets.py | install
	@command -v $(NPM) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; \
	  else \
	    echo "npm is needed for the map's assets: apt-get install nodejs npm" >&2; exit 1; \
	  fi; }
	$(NPM) ci --ignore-scripts --no-audit --no-fund
	$(BIN)/python -m app.assets
	touch $@

browser:
	@if [ -x /usr/bin/chromium ]; then \
	  /usr/bin/chromium --version; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
	  echo "the browser tests need Debian's chromium: sudo apt-get install -y chromium" >&2; \
	fi

# PostgreSQL 15 with PostGIS 3 on 127.0.0.1:$(PG_PORT) for the PostGIS store's tests (they make
# and drop their own databases as `postgres`, and their own temporary clusters for the replica
# and multi-host tests). As root, Debian's postgresql-15-postgis-3 is installed when missing and
# the server is started when it does not answer.
PG_PORT ?= 5432
PG_CONTROL := /usr/share/postgresql/15/extension/postgis.control

postgis:
	@if [ ! -f $(PG_CONTROL) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15-postgis-3; \
	  else \
	    echo "the PostGIS tests need Debian's postgresql-15-postgis-3: sudo apt-get install -y postgresql-15-postgis-3" >&2; exit 1; \
	  fi; \
	fi
	@if ! pg_isready -q -h 127.0.0.1 -p $(PG_PORT); then \
	  if [ "$$(id -u)" = 0 ]; then \
	    pg_ctlcluster 15 main start 2>/dev/null || service postgresql start; \
	  fi; \
	  for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p $(PG_PORT) && break; sleep 1; done; \
	  pg_isready -h 127.0.0.1 -p $(PG_PORT) || { echo "PostgreSQL does not answer on 127.0.0.1:$(PG_PORT)" >&2; exit 1; }; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis node_modules app/static/vendor
