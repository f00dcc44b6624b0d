"""The operator-facing subcommands of `mcp-gateway`: validate, keys, tools.

`validate` works offline. `keys` and `tools` talk to a running gateway's admin
API: `--url` (default $MCP_GATEWAY_URL, else http://127.0.0.1:8080), bearer token
from $MCP_GATEWAY_ADMIN_TOKEN or `--token-file`. Every command prints for a
terminal by default and JSON with `--output json`; exit codes: 0 ok, 1 the
answer is "no" (invalid files, refused request), 2 usage or connection problems.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from mcp_gateway.validate import validate_files

URL_ENV = "MCP_GATEWAY_URL"
TOKEN_ENV = "MCP_GATEWAY_ADMIN_TOKEN"  # noqa: S105 - a variable name
DEFAULT_URL = "http://127.0.0.1:8080"
_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class CliError(Exception):
    """A problem the user fixes (message says how); exit code 2."""


def add_commands(sub: Any) -> None:
    validate = sub.add_parser("validate", help="check routing/local configs or Tenant/Profile/Upstream manifests")
    validate.add_argument("files", nargs="+", metavar="FILE")
    _output(validate)

    keys = sub.add_parser("keys", help="create, list or revoke API keys (admin API)")
    key_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = key_sub.add_parser("create", help="mint a key (the secret is shown once)")
    create.add_argument("--tenant", required=True)
    create.add_argument("--profile", action="append", default=[], help="restrict to this profile (repeatable)")
    create.add_argument("--name", default="", help="a name for the key")
    create.add_argument(
        "--label", action="append", default=[], metavar="NAME=VALUE", help="a label policy rules read (repeatable)"
    )
    create.add_argument("--expires-in", help="lifetime, e.g. 3600, 90m, 12h, 30d (default: never)")
    listing = key_sub.add_parser("list", help="list a tenant's keys (prefix and metadata only)")
    listing.add_argument("--tenant", required=True)
    revoke = key_sub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")
    for parser in (create, listing, revoke):
        _admin_options(parser)

    tools = sub.add_parser("tools", help="list the tools a profile exposes, and those its policy hides")
    tools.add_argument("profile")
    tools.add_argument("--search", metavar="QUERY", help="rank the profile's tools for QUERY, as search_tools does")
    tools.add_argument("--limit", type=int, default=10, help="with --search: how many tools (1-50)")
    tools.add_argument(
        "--as",
        dest="as_claims",
        metavar="CLAIMS",
        help="what a caller with these claims would see: a JSON object, or @FILE holding one",
    )
    _admin_options(tools)


def _output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", "-o", choices=["text", "json"], default="text")


def _admin_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=os.environ.get(URL_ENV, DEFAULT_URL), help=f"gateway base URL (${URL_ENV})")
    parser.add_argument("--token-file", help=f"file holding the admin token (default: ${TOKEN_ENV})")
    _output(parser)


def run(args: argparse.Namespace) -> int:
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {"validate": cmd_validate, "tools": cmd_tools}
    try:
        if args.command == "keys":
            return {"create": cmd_keys_create, "list": cmd_keys_list, "revoke": cmd_keys_revoke}[args.keys_command](
                args
            )
        return handlers[args.command](args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _emit_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


# --- validate -------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    reports = validate_files(args.files)
    valid = all(r.valid for r in reports)
    if args.output == "json":
        _emit_json({"valid": valid, "files": [r.as_json() for r in reports]})
        return 0 if valid else 1
    for report in reports:
        what = f"{report.kind}" + (f", {len(report.objects)} objects" if report.objects else "")
        if report.valid:
            print(f"ok    {report.file} ({what})")
            continue
        count = len(report.problems)
        print(f"FAIL  {report.file} ({what}): {count} problem{'s' if count > 1 else ''}")
        for problem in report.problems:
            print(f"      {problem.path}: {problem.message}")
    bad = sum(1 for r in reports if not r.valid)
    print(f"\n{len(reports) - bad} of {len(reports)} file(s) valid" if bad else f"\nall {len(reports)} file(s) valid")
    return 0 if valid else 1


# --- admin API calls ---------------------------------------------------------------------


def _token(args: argparse.Namespace) -> str:
    if args.token_file:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as exc:
            raise CliError(f"cannot read --token-file {args.token_file}: {exc.strerror or exc}") from None
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise CliError(f"no admin token: set {TOKEN_ENV} or pass --token-file FILE")
    return token


def _call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    url = args.url.rstrip("/") + "/admin/v1" + path
    try:
        response = httpx.request(
            method, url, json=body, headers={"Authorization": f"Bearer {_token(args)}"}, timeout=30
        )
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach the gateway at {args.url} ({type(exc).__name__}); check --url") from None
    try:
        data = response.json()
    except ValueError:
        data = {"detail": response.text[:500]}
    if response.status_code == 401:
        raise CliError("the admin token was refused; check MCP_GATEWAY_ADMIN_TOKEN / --token-file")
    return response.status_code, data


def _refused(args: argparse.Namespace, status: int, data: Any) -> int:
    detail = data.get("detail", data) if isinstance(data, dict) else data
    if args.output == "json":
        _emit_json({"error": detail, "status": status})
    else:
        print(f"error: the gateway refused ({status}): {detail}", file=sys.stderr)
    return 1


def _duration(text: str | None) -> int | None:
    if text is None:
        return None
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) <= 0:
        raise CliError(f"--expires-in {text!r}: use a positive number with an optional unit s, m, h or d (e.g. 30d)")
    return int(match.group(1)) * _UNIT[match.group(2)]


def _labels(pairs: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise CliError(f"--label {pair!r}: use NAME=VALUE, e.g. --label team=payments")
        labels[name.strip()] = value
    return labels


def cmd_keys_create(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"name": args.name, "profiles": args.profile}
    if args.label:
        body["labels"] = _labels(args.label)
    if (seconds := _duration(args.expires_in)) is not None:
        body["expiresInSeconds"] = seconds
    status, data = _call(args, "POST", f"/tenants/{args.tenant}/keys", body)
    if status != 201:
        return _refused(args, status, data)
    if args.output == "json":
        _emit_json(data)
        return 0
    print(f"Created API key {data['id']} for tenant {args.tenant}")
    print(f"  profiles: {', '.join(data.get('profiles') or []) or 'all of the tenant'}")
    print(f"  expires:  {data.get('expiresAt') or 'never'}")
    if data.get("labels"):
        print(f"  labels:   {_label_text(data['labels'])}")
    print(f"\n  {data['key']}\n")
    print("Store it now: the gateway keeps only a hash and cannot show it again.", file=sys.stderr)
    return 0


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=False)]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip())


def cmd_keys_list(args: argparse.Namespace) -> int:
    status, data = _call(args, "GET", f"/tenants/{args.tenant}/keys")
    if status != 200:
        return _refused(args, status, data)
    if args.output == "json":
        _emit_json(data)
        return 0
    if not data:
        print(f"tenant {args.tenant} has no API keys (create one: mcp-gateway keys create --tenant {args.tenant})")
        return 0
    rows = [
        [
            k["id"],
            k.get("prefix", ""),
            k.get("name", ""),
            ",".join(k.get("profiles") or []) or "*",
            _state(k),
            (k.get("expiresAt") or "never")[:19],
            _label_text(k.get("labels") or {}) or "-",
        ]
        for k in data
    ]
    _table(rows, ["ID", "PREFIX", "NAME", "PROFILES", "STATE", "EXPIRES", "LABELS"])
    return 0


def _label_text(labels: dict[str, str]) -> str:
    return ",".join(f"{name}={value}" for name, value in labels.items())


def _state(key: dict[str, Any]) -> str:
    if key.get("revokedAt"):
        return "revoked"
    return "active"


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    status, data = _call(args, "DELETE", f"/keys/{args.key_id}")
    if status != 200:
        return _refused(args, status, data)
    if args.output == "json":
        _emit_json(data)
    else:
        print(f"Revoked API key {args.key_id} (tenant {data.get('tenant')}); it stops working at once.")
    return 0


def cmd_tools(args: argparse.Namespace) -> int:
    if args.search is not None:
        return _search_tools(args)
    if args.as_claims is not None:
        return _tools_as(args, _claims(args.as_claims))
    status, data = _call(args, "GET", f"/profiles/{args.profile}/tools")
    if status != 200:
        return _refused(args, status, data)
    if args.output == "json":
        _emit_json(data)
        return 0
    tools = data["tools"]
    shown = [t for t in tools if t["allowed"]]
    hidden = len(tools) - len(shown)
    print(f"Profile {data['profile']} (tenant {data['tenant']}): {len(shown)} tools exposed, {hidden} hidden")
    rows = [
        [_tool_name(t), t["upstream"], "exposed" if t["allowed"] else "hidden", _short(t["description"])] for t in tools
    ]
    if rows:
        _table(rows, ["TOOL", "UPSTREAM", "STATUS", "DESCRIPTION"])
    return 0


def _claims(text: str) -> dict[str, Any]:
    """`--as`: a JSON object, or @FILE holding one."""
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as exc:
            raise CliError(f"--as: cannot read {text[1:]!r}: {exc.strerror}") from None
    try:
        claims = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f'--as: not JSON ({exc.msg}); e.g. --as \'{{"sub": "alice", "groups": ["ops"]}}\'') from None
    if not isinstance(claims, dict):
        raise CliError('--as: the claims must be a JSON object, e.g. {"sub": "alice"}')
    return claims


def _tools_as(args: argparse.Namespace, claims: dict[str, Any]) -> int:
    status, data = _call(args, "POST", f"/profiles/{args.profile}/tools/as", {"claims": claims})
    if status != 200:
        return _refused(args, status, data)
    if args.output == "json":
        _emit_json(data)
        return 0
    tools = data["tools"]
    shown = [t for t in tools if t["allowed"]]
    print(
        f"Profile {data['profile']} as {data['caller']}: {len(shown)} tools listed, {len(tools) - len(shown)} hidden "
        f"({len(data['rules'])} policy rules; calls may still be refused on their arguments)"
    )
    rows = [[_tool_name(t), t["upstream"], _status_as(t), _short(t["description"], 48)] for t in tools]
    if rows:
        _table(rows, ["TOOL", "UPSTREAM", "STATUS", "DESCRIPTION"])
    return 0


def _status_as(tool: dict[str, Any]) -> str:
    if tool["allowed"]:
        return "listed"
    if tool.get("hiddenBy") == "globs":
        return "hidden (policy globs)"
    return f"hidden (rule {tool['rule']})" if tool.get("rule") else "hidden (no allow rule)"


def _search_tools(args: argparse.Namespace) -> int:
    query = urlencode({"q": args.search, "limit": args.limit})
    if args.as_claims is not None:  # that caller's search_tools, its policy rules applied
        body = {"claims": _claims(args.as_claims)}
        status, data = _call(args, "POST", f"/profiles/{args.profile}/tools/search/as?{query}", body)
    else:  # the operator's view: the profile's globs only
        status, data = _call(args, "GET", f"/profiles/{args.profile}/tools/search?{query}")
    if status != 200:
        return _refused(args, status, data)
    if args.output == "json":
        _emit_json(data)
        return 0
    ranked = f", ranked {data['ranking']}" if data.get("ranking") else ""
    who = f" as {data['caller']}" if data.get("caller") else ""
    found = f"{data['total']} tools for {data['query']!r}"
    print(f"Profile {data['profile']}{who} (discovery {data['mode']}{ranked}): {found}")
    rows = [[f"{t['score']:.2f}", t["name"], _short(t["description"])] for t in data["tools"]]
    if rows:
        _table(rows, ["SCORE", "TOOL", "DESCRIPTION"])
    return 0


def _tool_name(tool: dict[str, Any]) -> str:
    """The exposed name, and the upstream's own one when a tool override renamed it."""
    real = tool.get("upstreamName")
    return f"{tool['name']} (upstream: {real})" if real else str(tool["name"])


def _short(text: str, width: int = 60) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"
