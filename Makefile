# Two commands do all the set-up on a fresh machine with Python 3.11+:
#   make run    create .venv, install coopflow, run the daemon on the shipped agreement (SQLite)
#   make test   create .venv, install coopflow with its test extras, run the whole suite
#   make lint   ruff and mypy, as configured in pyproject.toml (.ci/run runs it before the tests)
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: run test lint check clean

$(BIN)/coopflow: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,postgres]'
	touch $@

run: $(BIN)/coopflow
	$(BIN)/coopflow run -c config.yaml

check: $(BIN)/coopflow
	$(BIN)/coopflow check -c config.yaml

test: $(BIN)/coopflow
	$(BIN)/python -m pytest -q

lint: $(BIN)/coopflow
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) coopflow.db coopflow.db-wal coopflow.db-shm logs
