"""Qt tray of the agent (issue 4)."""

from .sources import keep_no_sources

keep_no_sources()  # before the tray's own imports: see sources.py
