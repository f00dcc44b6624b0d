"""Secrets from files: `MCP_GATEWAY_<NAME>_FILE=/run/secrets/x` sets `MCP_GATEWAY_<NAME>` to
the file's content (trailing newline dropped), the convention Docker Compose and Swarm
secrets, and images such as the official postgres one, follow. The secret then never sits
in the container's environment as declared, nor in `docker inspect`."""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

# The settings that hold secrets; only these are read from files.
SECRET_NAMES = ("DATABASE_URL", "KEY_PEPPER", "SESSION_KEYS", "ADMIN_TOKEN", "CONNECTION_KEYS")


class SecretFileError(ValueError):
    pass


def load(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Fill each `MCP_GATEWAY_<NAME>` from `MCP_GATEWAY_<NAME>_FILE`; the names set. Both set is an error."""
    env = os.environ if environ is None else environ
    loaded = []
    for name in SECRET_NAMES:
        variable = f"MCP_GATEWAY_{name}"
        path = env.get(f"{variable}_FILE")
        if not path:
            continue
        if env.get(variable):
            raise SecretFileError(f"set {variable} or {variable}_FILE, not both")
        try:
            value = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise SecretFileError(f"{variable}_FILE: cannot read {path}: {exc.strerror}") from None
        if not value:
            raise SecretFileError(f"{variable}_FILE: {path} is empty")
        env[variable] = value
        loaded.append(variable)
    return loaded
