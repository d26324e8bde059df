"""Entry point of the bundled agent (the tray; `--self-test`, `status`, ... also work)."""

import sys

from agent.memory import lean_process

lean_process()  # before any thread: see agent/memory.py

from agent.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
