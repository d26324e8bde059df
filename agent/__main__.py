"""`python -m agent ...` runs the agent CLI."""

import sys

from .memory import lean_process

lean_process()  # before anything imports what the agent never uses, before any thread

from .cli import main  # noqa: E402

sys.exit(main())
