"""Qt tray of the agent (issue 4)."""
