"""Translate an Upstream's spec into the adapter's config file (see
`mcp_adapter.config`) plus the container env that feeds it.

Secret values are never copied: a value from a Secret becomes a container env
var with `valueFrom.secretKeyRef`, and the config refers to it as
`{fromEnv: VAR}`. Only plain `value`s the user wrote in the spec land in the
ConfigMap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mcp_adapter.config import HttpSource
from pydantic import ValidationError

from mcp_operator.naming import OPENAPI_SPEC_DIR

Spec = dict[str, Any]


@dataclass
class AdapterInputs:
    """Everything the Deployment needs besides the config text itself."""

    config: dict[str, Any]
    env: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    image: str | None = None


def source_type(spec: Spec) -> str:
    for kind in ("stdio", "mcp", "openapi", "http"):
        if kind in spec:
            return kind
    raise ValueError("set exactly one of spec.stdio, spec.mcp, spec.openapi or spec.http")


def _env_name(*parts: str) -> str:
    return "_".join(re.sub(r"[^A-Za-z0-9]", "_", p).upper() for p in parts)


class _Builder:
    def __init__(self) -> None:
        self.env: list[dict[str, Any]] = []

    def from_ref(self, var: str, ref_kind: str, ref: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        """Expose a Secret/ConfigMap key as container env `var`; return the config's reference to it."""
        selector = {"name": ref["name"], "key": ref["key"]}
        if ref.get("optional") is not None:
            selector["optional"] = bool(ref["optional"])
        self.env.append({"name": var, "valueFrom": {ref_kind: selector}})
        value: dict[str, Any] = {"fromEnv": var}
        if prefix:
            value["prefix"] = prefix
        if ref.get("optional"):
            value["optional"] = True
        return value

    def headers(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, header in enumerate(items):
            if "secretKeyRef" in header:
                var = _env_name("UPSTREAM_HEADER", str(i))
                out[header["name"]] = self.from_ref(
                    var, "secretKeyRef", header["secretKeyRef"], header.get("prefix", "")
                )
            else:
                out[header["name"]] = header.get("prefix", "") + header.get("value", "")
        return out


def _common(name: str, spec: Spec) -> dict[str, Any]:
    source: dict[str, Any] = {"name": name, "timeoutSeconds": spec.get("timeoutSeconds", 60)}
    if spec.get("prefix"):
        source["prefix"] = spec["prefix"]
    return source


def _stdio(builder: _Builder, source: dict[str, Any], spec: Spec) -> None:
    stdio = spec["stdio"]
    source.update(type="stdio", command=stdio["command"], args=list(stdio.get("args", [])))
    source["scope"] = spec.get("scope", "shared")
    if stdio.get("workingDir"):
        source["cwd"] = stdio["workingDir"]
    env: dict[str, Any] = {}
    for item in stdio.get("env", []):
        if "valueFrom" in item:
            ref_kind, ref = next(iter(item["valueFrom"].items()))
            env[item["name"]] = builder.from_ref(_env_name("UPSTREAM_ENV", item["name"]), ref_kind, ref)
        else:
            env[item["name"]] = item.get("value", "")
    source["env"] = env


def _mcp(builder: _Builder, source: dict[str, Any], spec: Spec) -> None:
    remote = spec["mcp"]
    source.update(type="mcp", url=remote["url"], headers=builder.headers(remote.get("headers", [])))
    source["scope"] = spec.get("scope", "shared")
    # exchanged / connection: the caller's token the gateway sends (spec.tokenExchange / spec.connection)
    if remote.get("auth"):
        source["auth"] = {"type": remote["auth"]["type"]}


def _auth(builder: _Builder, auth: dict[str, Any]) -> dict[str, Any]:
    secret = auth.get("secretName", "")

    def ref(var: str, key: str) -> dict[str, Any]:
        return builder.from_ref(var, "secretKeyRef", {"name": secret, "key": key})

    kind = auth["type"]
    # The caller's token the gateway sends: exchanged (spec.tokenExchange) or connection (spec.connection).
    if kind in ("exchanged", "connection"):
        return {"type": kind}
    if kind == "bearer":
        return {"type": "bearer", "token": ref("UPSTREAM_AUTH_TOKEN", auth.get("tokenKey", "token"))}
    if kind == "basic":
        return {
            "type": "basic",
            "username": ref("UPSTREAM_AUTH_USERNAME", auth.get("usernameKey", "username")),
            "password": ref("UPSTREAM_AUTH_PASSWORD", auth.get("passwordKey", "password")),
        }
    api_key = auth["apiKey"]
    return {
        "type": "apiKey",
        "name": api_key["name"],
        "in": api_key.get("in", "header"),
        "value": ref("UPSTREAM_AUTH_APIKEY", api_key.get("valueKey", "apiKey")),
    }


def _openapi(builder: _Builder, inputs: AdapterInputs, source: dict[str, Any], spec: Spec) -> None:
    openapi = spec["openapi"]
    document = openapi["spec"]
    if "url" in document:
        location = document["url"]
    else:
        ref = document["configMapKeyRef"]
        inputs.volumes.append(
            {
                "name": "openapi-spec",
                "configMap": {"name": ref["name"], "items": [{"key": ref["key"], "path": ref["key"]}]},
            }
        )
        inputs.mounts.append({"name": "openapi-spec", "mountPath": OPENAPI_SPEC_DIR, "readOnly": True})
        location = f"{OPENAPI_SPEC_DIR}/{ref['key']}"
    source.update(type="openapi", spec=location)
    _http_common(builder, source, openapi)
    for key in ("include", "exclude"):
        if openapi.get(key):
            source[key] = {k: list(v) for k, v in openapi[key].items() if v}


def _http_common(builder: _Builder, source: dict[str, Any], block: Spec) -> None:
    """What openapi and http sources share: where they may call and with which credentials."""
    source["headers"] = builder.headers(block.get("headers", []))
    if block.get("baseUrl"):
        source["baseUrl"] = block["baseUrl"]
    if block.get("allowPrivateNetwork"):
        source["allowPrivateNetwork"] = True
    if block.get("allowedNetworks"):
        source["allowedNetworks"] = list(block["allowedNetworks"])
    if block.get("auth"):
        source["auth"] = _auth(builder, block["auth"])


def _http_tool(tool: Spec) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool["name"], "method": tool.get("method", "GET"), "url": tool["url"]}
    for key in ("description", "inputSchema", "query", "headers"):
        if key in tool:
            out[key] = tool[key]
    # The adapter's `body` is a word or a mapping; the CRD splits them (a structural schema has one type).
    if tool.get("bodyFields"):
        out["body"] = dict(tool["bodyFields"])
    elif tool.get("body"):
        out["body"] = tool["body"]
    return out


def _http(builder: _Builder, source: dict[str, Any], spec: Spec) -> None:
    http = spec["http"]
    source.update(type="http", tools=[_http_tool(tool) for tool in http["tools"]])
    _http_common(builder, source, http)
    check_http_source(source)


def check_http_source(source: dict[str, Any]) -> None:
    """Refuse what the adapter would refuse at start (as a ValueError naming spec.http fields), so the
    Upstream says InvalidSpec instead of running an adapter that crash-loops."""
    try:
        HttpSource.model_validate(source)
    except ValidationError as exc:
        problems = [f"spec.http.{_loc(err['loc'])}: {err['msg'].removeprefix('Value error, ')}" for err in exc.errors()]
        raise ValueError("; ".join(problems)) from None
    for i, tool in enumerate(source["tools"]):
        if not re.match(r"^https?://", tool["url"]) and not source.get("baseUrl"):
            raise ValueError(
                f"spec.http.tools[{i}].url {tool['url']!r} is relative: set spec.http.baseUrl or give an absolute URL"
            )


def _loc(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text.replace(".body", ".body/bodyFields") if text.endswith(".body") else text


def build(name: str, namespace: str, spec: Spec) -> AdapterInputs:
    """The adapter config for Upstream `namespace/name` and the env/volumes it relies on."""
    builder = _Builder()
    source = _common(name, spec)
    inputs = AdapterInputs(config={})
    kind = source_type(spec)
    if kind == "stdio":
        _stdio(builder, source, spec)
        inputs.image = spec["stdio"].get("image")
    elif kind == "mcp":
        _mcp(builder, source, spec)
    elif kind == "http":
        _http(builder, source, spec)
    else:
        _openapi(builder, inputs, source, spec)
    inputs.env = builder.env
    inputs.config = {
        # Only the gateway can reach the adapter (its NetworkPolicy), so the caller identity it sends in
        # x-mcp-caller (per-caller isolation) can be trusted.
        "server": {"name": f"{namespace}/{name}", "trustCallerHeader": True},
        "sources": [source],
        "logLevel": "INFO",
    }
    return inputs
