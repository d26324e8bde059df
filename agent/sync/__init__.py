"""Sync engine of the agent (issue 3)."""
