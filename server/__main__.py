"""`python -m server ...` runs the server CLI."""

import sys

from .cli import main

sys.exit(main())
