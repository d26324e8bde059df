"""The PDV agent: local store, sync engine, loopback API and tray."""

from protocol.version import __version__

__all__ = ["__version__"]
