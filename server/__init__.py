"""PDV Sync server: the shared sync server of the shop (FastAPI + peewee)."""

from protocol.version import __version__

__all__ = ["__version__"]
