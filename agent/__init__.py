"""The PDV agent: local store, sync engine and tray (later issues)."""

__version__ = "0.1.0"
