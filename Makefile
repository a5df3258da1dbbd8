# labchat: `make run` starts a server, `make test` runs every test. Only Python 3.11+ and make needed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 0.0.0.0
PORT   ?= 8080
STAMP  := $(VENV)/.installed

.PHONY: run client test lint bench fast pure clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)  ## start a relay server on $(HOST):$(PORT)
	$(BIN)/labchat-server $(HOST) -p $(PORT)

client: $(STAMP)  ## open the full-screen client: make client SERVER=127.0.0.1 CPORT=5000
	$(BIN)/labchat $(or $(SERVER),127.0.0.1) $(PORT) $(or $(CPORT),5000)

test: $(STAMP)  ## lint, then the whole test suite
	$(BIN)/ruff check labchat tests
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check labchat tests
	$(BIN)/mypy

bench: $(STAMP)  ## measure throughput and latency (see docs/performance.md)
	$(BIN)/labchat-bench

fast: $(STAMP)  ## optional: compile the protocol core with mypyc (needs a C compiler; docs/performance.md)
	$(BIN)/python -m labchat.compile

pure: $(STAMP)  ## back to pure Python: remove what `make fast` built
	$(BIN)/python -m labchat.compile --clean

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache .mypy_cache *.egg-info labchat/_compiled.json
	find labchat -name '*.so' -delete
