"""Entry point of the bundled agent (the tray; `--self-test`, `status`, ... also work)."""

import sys

from agent.cli import entry

if __name__ == "__main__":
    sys.exit(entry())
