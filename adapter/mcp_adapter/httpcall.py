"""Performing one HTTP request for an `openapi` or `http` tool, and shaping the tool result.

A JSON response becomes `structuredContent` (objects as-is, anything else
under `result`) plus the JSON as text; other bodies become text. A non-2xx
status becomes an `isError` result with the status and a bounded excerpt.
Bodies are read as a stream and at most `maxResponseBytes` of them are kept:
a larger one becomes a text result of its first bytes plus a second text block
saying it was truncated (a cut JSON document is not parsed).

Path parameters are substituted as one percent-encoded segment each
(`path_segment`); `.` and `..` are refused, since an HTTP client removes such
dot-segments and the call would reach a different path on the upstream.

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
from urllib.parse import quote, urlsplit

import httpx
import mcp_types as types

from mcp_adapter.config import (
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    EnvValue,
    ExchangedAuth,
    HttpSource,
    OpenApiSource,
    resolve,
)
from mcp_adapter.egress import AddressPolicy, BlockedAddress, guarded_client, resolve_checked
from mcp_adapter.exchanged import exchanged_header

logger = logging.getLogger(__name__)

__all__ = ["BlockedAddress", "HttpExecutor", "PathValueError", "check_public", "path_segment"]

DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024
_DOT_SEGMENTS = (".", "..")


class PathValueError(ValueError):
    """An argument that cannot be a path segment; the message says which and why."""


def path_segment(name: str, value: Any) -> str:
    """`value` as one percent-encoded path segment; `PathValueError` for `.` and `..`.

    `quote(safe="")` leaves dots alone and httpx resolves dot-segments, so `..` would climb
    one segment up the upstream's path (e.g. `/users/{id}/keys` with id `..` is `/keys`).
    """
    text = str(value)
    if text in _DOT_SEGMENTS:
        raise PathValueError(
            f"argument {name!r} is {text!r}, which cannot be a path segment (it would move up the URL path); "
            "pass the identifier itself"
        )
    return quote(text, safe="")


def tool_error(message: str) -> types.CallToolResult:
    """An `isError` tool result: the model reads the message and can correct its arguments."""
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


async def check_public(url: str, policy: AddressPolicy | None = None) -> None:
    """Raise `BlockedAddress` unless every address `url`'s host resolves to is allowed (default: public only)."""
    await resolve_checked(urlsplit(url).hostname or "", policy or AddressPolicy())


def auth_material(
    auth: BearerAuth | BasicAuth | ApiKeyAuth | ExchangedAuth | None,
) -> tuple[dict[str, str], dict[str, str]]:
    """Headers and query parameters that authenticate upstream requests (per request for `exchanged`)."""
    if auth is None or isinstance(auth, ExchangedAuth):
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


_NO_BEARER = {
    "exchanged": "source {source!r} calls its API with the caller's exchanged token (auth type exchanged), "
    "and this request brought none: call it through the gateway, on an Upstream with tokenExchange",
    "connection": "source {source!r} calls its API with the token of the caller's own connected account "
    "(auth type connection), and this request brought none: call it through the gateway, on an Upstream "
    "with connection",
}


class HttpExecutor:
    def __init__(
        self,
        source: str,
        *,
        auth: BearerAuth | BasicAuth | ApiKeyAuth | ExchangedAuth | None,
        headers: dict[str, EnvValue],
        allow_private: bool,
        timeout: float,
        max_excerpt: int,
        allowed_networks: list[str] | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.source = source
        auth_headers, self.auth_query = auth_material(auth)
        self.exchanged = auth.type if isinstance(auth, ExchangedAuth) else None
        self.headers = {**resolve_headers(headers), **auth_headers}
        self.policy = AddressPolicy.of(allow_private, allowed_networks or [])
        self.max_excerpt = max_excerpt
        self.max_response_bytes = max_response_bytes
        self.client = guarded_client(self.policy, timeout)

    @classmethod
    def for_source(cls, cfg: HttpSource | OpenApiSource) -> HttpExecutor:
        """The executor of an `http` or `openapi` source, configured from the source's own settings."""
        return cls(
            cfg.name,
            auth=cfg.auth,
            headers=cfg.headers,
            allow_private=cfg.allow_private_network,
            allowed_networks=cfg.allowed_networks,
            timeout=cfg.timeout_seconds,
            max_excerpt=cfg.max_excerpt_bytes,
            max_response_bytes=cfg.max_response_bytes,
        )

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
        outgoing = {**self.headers, **(headers or {})}
        if self.exchanged:
            bearer = exchanged_header()
            if bearer is None:
                return tool_error(_NO_BEARER[self.exchanged].format(source=self.source))
            outgoing.update(bearer)
        request = self.client.build_request(
            method, url, params=params, headers=outgoing, json=body if has_body else None
        )
        try:
            response = await self.client.send(request, stream=True)
            try:
                content, truncated = await _read_capped(response, self.max_response_bytes)
            finally:
                await response.aclose()
        except BlockedAddress as exc:
            return tool_error(f"request refused: {exc}")
        except httpx.TimeoutException:
            return tool_error(f"{method} {_redact(url)} timed out (timeoutSeconds)")
        except httpx.HTTPError as exc:
            return tool_error(f"{method} {_redact(url)} failed: {type(exc).__name__}: {exc}")
        text = content.decode(response.encoding or "utf-8", errors="replace")
        if truncated:
            return self._truncated(method, url, response, text)
        return self._shape(method, url, response, text)

    def _truncated(self, method: str, url: str, response: httpx.Response, text: str) -> types.CallToolResult:
        if not response.is_success:
            return self._shape(method, url, response, text + "…")
        note = (
            f"[truncated: the response of {method} {_redact(url)} is larger than {self.max_response_bytes} bytes "
            "(maxResponseBytes on the source); only its beginning is shown above]"
        )
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text), types.TextContent(type="text", text=note)],
            structured_content={"truncated": True, "maxResponseBytes": self.max_response_bytes},
        )

    def _shape(self, method: str, url: str, response: httpx.Response, text: str) -> types.CallToolResult:
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
                data = json.loads(text)
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


async def _read_capped(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """At most `limit` bytes of the body, and whether there was more (the rest is never read)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        if size + len(chunk) > limit:
            chunks.append(chunk[: limit - size])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False
