"""Structured JSON logs on stderr, one object per line, with secrets masked.

Every component calls `configure()` once at start-up. Values registered with
`register_secret()` (API keys, env values, auth headers) are replaced by
`***` in any message or field before a record is written, so a secret that
slips into an exception text still never reaches the log.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any

_MASK = "***"
_secrets: set[str] = set()
_lock = threading.Lock()

# Attributes every LogRecord has; anything else was passed through `extra=`.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def register_secret(value: str | None) -> None:
    """Mask `value` in every later log line. Short values are ignored: masking
    "a" or "1" would garble ordinary text without protecting anything."""
    if value and len(value) >= 6:
        with _lock:
            _secrets.add(value)


def mask(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, _MASK)
    return text


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(_masked(entry), default=str)


def configure(level: str | int = "INFO", component: str | None = None) -> None:
    """Send every logger's records to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    if component:
        handler.addFilter(_ComponentFilter(component))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn installs its own handlers; route them through ours instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "kopf"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True


# Loggers that write one line per request or per upstream HTTP call: an access log, by another name.
PER_REQUEST_LOGGERS = ("uvicorn.access", "httpx", "httpx2")
ACCESS_LOG_ENV = "MCP_GATEWAY_ACCESS_LOG"


def env_flag(value: str | None) -> bool:
    """A boolean environment variable: 1/true/yes/on (any case) is true, anything else false."""
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def access_log(enabled: bool, level: str | int = "INFO") -> None:
    """Per-request lines only when asked for (or at DEBUG): at INFO they cost 10-20 % of throughput.

    Errors and refusals are logged by the components themselves at INFO and above, so they stay.
    """
    debug = logging.getLevelName(level) == logging.DEBUG if isinstance(level, str) else level <= logging.DEBUG
    quiet = not (enabled or debug)
    for name in PER_REQUEST_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.NOTSET)


class _ComponentFilter(logging.Filter):
    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def filter(self, record: logging.LogRecord) -> bool:
        record.component = self.component
        return True
