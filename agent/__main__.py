"""`python -m agent ...` runs the agent CLI."""

import sys

from .cli import main

sys.exit(main())
