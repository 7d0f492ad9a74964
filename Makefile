# Everything a fresh machine (Python 3.11, make, git) needs: `make run` serves the sample scenario,
# `make test` runs the linters and every test. Both create .venv on first use.
VENV   ?= .venv
PYTHON ?= python3
PORT   ?= 8000
BIN    := $(VENV)/bin

.PHONY: install run test lint bench geodata clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The sample scenario on 127.0.0.1:$(PORT), public read on, loaded into data/truce.sqlite on first start.
run: install
	@echo "Truce on http://127.0.0.1:$(PORT)  (map: /map, API docs: /docs, health: /health)"
	@echo "Writes need a key: start with TRUCE_API_KEYS=<secret>:admin make run"
	TRUCE_PUBLIC_READ=true TRUCE_LOAD_SCENARIO=true $(BIN)/truce serve --host 127.0.0.1 --port $(PORT)

lint: install
	$(BIN)/ruff check app tests bench scripts
	$(BIN)/ruff format --check app tests bench scripts
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile

test: lint
	$(BIN)/pytest -n 2 -q

bench: install
	$(BIN)/python bench/bench_engine.py

geodata: install
	$(BIN)/python scripts/build_geodata.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
