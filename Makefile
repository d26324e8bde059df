# PDV Sync tasks. Every target installs what it needs on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run server test test-fast lint format bench package clean screenshots

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[server,agent,dev]'
	@touch $(STAMP)

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

lint: install
	$(BIN)/ruff check protocol server agent tests bench
	$(BIN)/ruff format --check protocol server agent tests bench

format: install
	$(BIN)/ruff format protocol server agent tests bench
	$(BIN)/ruff check --fix protocol server agent tests bench

bench: install
	$(BIN)/python -m bench.server_bench
	$(BIN)/python -m bench.agent_bench

# The agent bundle (PyInstaller) + its self-test + the NSIS installer script compiled
# against it. On Windows this is the real installer; here it proves spec and script build.
package: install
	@command -v makensis >/dev/null || { echo "makensis missing: apt-get install -y nsis"; exit 1; }
	$(BIN)/python installer/build

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache

# Pictures of the real tray app (each badge, the menu, details, settings) under Xvfb with a
# trayer panel, into docs/screenshots/. Says which apt-get packages are missing, if any.
screenshots: install
	$(BIN)/python scripts/screenshots.py
