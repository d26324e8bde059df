"""Local SQLite store of the agent (issue 3)."""
