# One command per task. Each bootstraps its own .venv from pyproject.toml.
PYTHON ?= python3
VENV   ?= .venv
DATA   ?= ./data
HOST   ?= 127.0.0.1
PORT   ?= 8080
BIN     = $(VENV)/bin

.PHONY: serve test bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

serve: $(BIN)/.installed  ## start the server on SQLite with a demo workspace
	$(BIN)/inbox demo --data-dir $(DATA)
	INBOX_OUTBOUND_ALLOW_PRIVATE=$${INBOX_OUTBOUND_ALLOW_PRIVATE:-true} \
	  $(BIN)/inbox serve --data-dir $(DATA) --host $(HOST) --port $(PORT)   # the demo: local receivers allowed (docs/tour.sh)

test: $(BIN)/.installed  ## lint, type-check the permission core, run the test suite
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

bench: $(BIN)/.installed  ## every benchmark on loopback (< 10 min); writes docs/performance.md and .png
	$(BIN)/python bench/suite.py

clean:
	rm -rf $(VENV) .pytest_cache
