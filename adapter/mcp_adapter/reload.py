"""Hot reload: poll the config file and apply a valid new version.

Polling (mtime + content) rather than inotify: it works the same on a
Kubernetes ConfigMap volume, whose files are replaced through symlink swaps.
An invalid new file is reported and ignored; the running config stays.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

from mcp_adapter.config import AdapterConfig, ConfigError, load_config

logger = logging.getLogger(__name__)


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


async def watch_config(path: Path, apply: Callable[[AdapterConfig], Awaitable[None]], interval: float = 1.0) -> None:
    last = _digest(path)
    while True:
        await anyio.sleep(interval)
        current = _digest(path)
        if current is None or current == last:
            continue
        last = current
        try:
            config = load_config(path)
        except ConfigError as exc:
            logger.error("config reload rejected; keeping the running configuration", extra={"problems": exc.problems})
            continue
        try:
            await apply(config)
            logger.info("config reloaded", extra={"path": str(path)})
        except Exception as exc:
            logger.error("config reload failed: %s", exc)
