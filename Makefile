# PDV Sync tasks. Every target installs what it needs on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Exact versions (with hashes) of everything the server, the agent and the dev tools need,
# on Linux and Windows alike: `make lock` writes it from pyproject.toml.
LOCK := requirements.lock
EXTRAS := --extra server --extra agent --extra dev
# Python code that lint and format cover.
CODE := protocol webapi server agent tests bench

.PHONY: install lock run server test test-fast lint format bench package clean screenshots

install: $(STAMP)

# The lock's exact versions, then the project itself without resolving anything again, so
# every machine gets the same set. The last step resolves pyproject.toml (extras included)
# against what is installed, with no index: it fails when pyproject.toml asks for something
# the lock does not have yet.
$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@$(BIN)/python -m uv pip install --dry-run --no-index --quiet --python $(BIN)/python \
		-r pyproject.toml $(EXTRAS) || { echo "$(LOCK) does not satisfy pyproject.toml: run 'make lock'"; exit 1; }
	@touch $(STAMP)

# Re-resolve the lock after a dependency change in pyproject.toml. Pins that still satisfy
# it are kept; `make lock UPGRADE=1` moves every package to its newest allowed version.
# --universal: one file valid on every platform (markers), as the Windows build needs.
lock:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m uv --version >/dev/null 2>&1 || $(BIN)/python -m pip install --quiet uv
	$(BIN)/python -m uv pip compile pyproject.toml --universal --python-version 3.11 \
		$(EXTRAS) --generate-hashes $(if $(UPGRADE),--upgrade) \
		--custom-compile-command 'make lock' --quiet -o $(LOCK)

# The main job: the sync server on the embedded SQLite default (data in ./data) and one
# agent beside it (tray when a display exists, headless otherwise). Ctrl+C stops both.
run: install
	@mkdir -p data
	@trap 'trap - INT TERM; kill 0' INT TERM; \
	$(BIN)/python -m server serve & \
	$(BIN)/python -m agent --server http://127.0.0.1:$${PORT:-3001} --machine-id $${SYNC_MACHINE_ID:-pdv-local} \
		--data-dir data/agent --log-dir data/agent/logs & \
	wait

# Only the server (what the shop's server machine runs).
server: install
	$(BIN)/python -m server serve

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Style, formatting and types (mypy's settings and packages are in pyproject.toml).
lint: install
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)
	$(BIN)/mypy

format: install
	$(BIN)/ruff format $(CODE)
	$(BIN)/ruff check --fix $(CODE)

# Every line of the performance table in one run, one summary (appended to
# bench/results/history.md). `make bench BENCH_ARGS=--quick` for a smoke run.
bench: install
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# The agent bundle (PyInstaller) + its self-test + the NSIS installer script compiled
# against it. On Windows this is the real installer; here it proves spec and script build.
package: install
	@command -v makensis >/dev/null || { echo "makensis missing: apt-get install -y nsis"; exit 1; }
	$(BIN)/python installer/build

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache

# Pictures of the real tray app (each badge, the menu, details, settings) under Xvfb with a
# trayer panel, into docs/screenshots/. Says which apt-get packages are missing, if any.
screenshots: install
	$(BIN)/python scripts/screenshots.py
