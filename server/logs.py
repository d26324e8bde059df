"""Logging setup: verbose in development, quiet in production, optional rotating file."""

from __future__ import annotations

import logging
import logging.handlers
import re

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
    for handler in handlers:
        handler.addFilter(RedactKeys())
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    # peewee logs every SQL statement at DEBUG, with parameters: never in our logs.
    logging.getLogger("peewee").setLevel(logging.INFO)
    logging.getLogger("peewee.pool").setLevel(logging.INFO)


# A key sent in a query string (the WebSocket accepts `?apiKey=`) must not reach a log line:
# uvicorn logs every request path with its query string.
_KEY_IN_QUERY = re.compile(
    r"([?&](?:apikey|api_key|api-key|x-api-key|key)=)[^&\s\"']*", re.IGNORECASE
)


def redact(text: str) -> str:
    return _KEY_IN_QUERY.sub(r"\1[redacted]", text)


class RedactKeys(logging.Filter):
    """Rewrites a record's message and string arguments so no query-string key survives."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def redact_server_logs() -> None:
    """Install the filter on uvicorn's loggers (call after uvicorn configured its logging)."""
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactKeys) for f in logger.filters):
            logger.addFilter(RedactKeys())
