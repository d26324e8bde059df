"""`pdvsync-agent`: the PDV agent's entry point (the agent itself is built in issue 3)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print(
        "pdvsync-agent: the PDV agent is not part of this release yet; "
        "only the sync server (pdvsync-server) is available.",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
