"""The PDV agent: local store, sync engine and tray (later issues)."""
