"""PDV Sync server: the shared sync server of the shop (FastAPI + peewee)."""

__version__ = "0.1.0"
