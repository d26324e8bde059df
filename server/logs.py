"""Logging setup: verbose in development, quiet in production, optional rotating file."""

from __future__ import annotations

import logging
import logging.handlers

from .settings import Settings


def configure_logging(settings: Settings) -> None:
    level = logging.INFO if settings.production else logging.DEBUG
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if settings.log_dir:
        settings.log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                settings.log_dir / "sync.log", maxBytes=5_000_000, backupCount=5, encoding="utf-8"
            )
        )
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers, force=True
    )
    # peewee logs every SQL statement at DEBUG, with parameters: never in our logs.
    logging.getLogger("peewee").setLevel(logging.INFO)
    logging.getLogger("peewee.pool").setLevel(logging.INFO)
