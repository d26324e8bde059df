"""`python -m agent ...` runs the agent CLI."""

import sys

from .cli import entry

sys.exit(entry())
