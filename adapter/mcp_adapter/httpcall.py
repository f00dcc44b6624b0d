"""Performing one HTTP request for an `openapi` or `http` tool, and shaping the tool result.

A JSON response becomes `structuredContent` (objects as-is, anything else
under `result`) plus the JSON as text; other bodies become text. A non-2xx
status becomes an `isError` result with the status and a bounded excerpt.

Outbound requests go through `egress.guarded_client`: a target resolving to
a loopback, link-local (including cloud metadata 169.254.169.254), private or
otherwise non-public address is refused unless the source allows it, and the
connection goes to the very address that was checked (no DNS rebinding gap).
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any
from urllib.parse import urlsplit

import httpx
import mcp_types as types

from mcp_adapter.config import ApiKeyAuth, BasicAuth, BearerAuth, EnvValue, resolve
from mcp_adapter.egress import AddressPolicy, BlockedAddress, guarded_client, resolve_checked

logger = logging.getLogger(__name__)

__all__ = ["BlockedAddress", "HttpExecutor", "check_public"]


async def check_public(url: str, policy: AddressPolicy | None = None) -> None:
    """Raise `BlockedAddress` unless every address `url`'s host resolves to is allowed (default: public only)."""
    await resolve_checked(urlsplit(url).hostname or "", policy or AddressPolicy())


def auth_material(auth: BearerAuth | BasicAuth | ApiKeyAuth | None) -> tuple[dict[str, str], dict[str, str]]:
    """Headers and query parameters that authenticate upstream requests."""
    if auth is None:
        return {}, {}
    if isinstance(auth, BearerAuth):
        return {"Authorization": f"Bearer {resolve(auth.token)}"}, {}
    if isinstance(auth, BasicAuth):
        pair = f"{resolve(auth.username)}:{resolve(auth.password)}".encode()
        token = base64.b64encode(pair).decode()
        from mcp_common.jsonlog import register_secret

        register_secret(token)
        return {"Authorization": f"Basic {token}"}, {}
    value = resolve(auth.value) or ""
    return ({auth.name: value}, {}) if auth.location == "header" else ({}, {auth.name: value})


def resolve_headers(headers: dict[str, EnvValue]) -> dict[str, str]:
    return {k: v for k, v in ((k, resolve(v)) for k, v in headers.items()) if v is not None}


class HttpExecutor:
    def __init__(
        self,
        source: str,
        *,
        auth: BearerAuth | BasicAuth | ApiKeyAuth | None,
        headers: dict[str, EnvValue],
        allow_private: bool,
        timeout: float,
        max_excerpt: int,
        allowed_networks: list[str] | None = None,
    ) -> None:
        self.source = source
        auth_headers, self.auth_query = auth_material(auth)
        self.headers = {**resolve_headers(headers), **auth_headers}
        self.policy = AddressPolicy.of(allow_private, allowed_networks or [])
        self.max_excerpt = max_excerpt
        self.client = guarded_client(self.policy, timeout)

    async def close(self) -> None:
        await self.client.aclose()

    async def execute(
        self,
        method: str,
        url: str,
        *,
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        body: Any = None,
        has_body: bool = False,
    ) -> types.CallToolResult:
        params = {k: _query_value(v) for k, v in (query or {}).items() if v is not None}
        params.update(self.auth_query)
        try:
            response = await self.client.request(
                method,
                url,
                params=params,
                headers={**self.headers, **(headers or {})},
                json=body if has_body else None,
            )
        except BlockedAddress as exc:
            return _error(f"request refused: {exc}")
        except httpx.TimeoutException:
            return _error(f"{method} {_redact(url)} timed out (timeoutSeconds)")
        except httpx.HTTPError as exc:
            return _error(f"{method} {_redact(url)} failed: {type(exc).__name__}: {exc}")
        return self._shape(method, url, response)

    def _shape(self, method: str, url: str, response: httpx.Response) -> types.CallToolResult:
        text = response.text
        if not response.is_success:
            excerpt = text[: self.max_excerpt] + ("…" if len(text) > self.max_excerpt else "")
            return types.CallToolResult(
                content=[
                    types.TextContent(
                        type="text", text=f"HTTP {response.status_code} from {method} {_redact(url)}: {excerpt}"
                    )
                ],
                structured_content={"status": response.status_code, "body": excerpt},
                is_error=True,
            )
        if "json" in response.headers.get("content-type", "") and text.strip():
            try:
                data = response.json()
            except ValueError:
                data = None
            if data is not None:
                structured = data if isinstance(data, dict) else {"result": data}
                return types.CallToolResult(
                    content=[types.TextContent(type="text", text=json.dumps(data, ensure_ascii=False))],
                    structured_content=structured,
                )
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text or f"HTTP {response.status_code}")]
        )


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value)
    return value


def _redact(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}{parts.path}"


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)
