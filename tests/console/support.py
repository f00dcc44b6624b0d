"""Helpers for console tests: the gateway stack under test, logins, screenshots."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
from playwright.async_api import Page

from tests.gateway.support import ADMIN_TOKEN, GatewayProc, Spawn, start_feature, start_gateway, write_config
from tests.support.processes import ARTIFACTS, free_port

HOSTILE_SERVER = Path(__file__).resolve().parent / "servers" / "hostile_server.py"
SCREENSHOTS = ARTIFACTS / "screenshots"
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Stack:
    gateway: GatewayProc
    feature_url: str
    hostile_url: str

    @property
    def base(self) -> str:
        return self.gateway.base

    def console(self, path: str = "/") -> str:
        return f"{self.base}/console{path}"


# Judges only callers whose claims name the interns group: the console's own views are unaffected.
CONSOLE_RULE = {
    "name": "interns-no-add",
    "effect": "deny",
    "when": 'name == "add" && has(claims.groups) && "interns" in claims.groups',
    "kinds": ["tool"],
}

# Judges only API keys labelled team=contractors: their refused reads show in the audit page.
CONSOLE_RESOURCE_RULE = {
    "name": "contractors-no-binary",
    "effect": "deny",
    "when": 'name.endsWith("binary") && has(key.labels.team) && key.labels.team == "contractors"',
    "kinds": ["resource"],
}


CONSOLE_LIMIT = {"name": "adds-per-user", "tools": ["add"], "rate": {"calls": 600, "per": "minute"}}


def start_hostile(spawn: Spawn) -> str:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    spawn([sys.executable, str(HOSTILE_SERVER), "--port", str(port)], name="hostile", ready_url=url)
    return url


def routing(feature: str, hostile: str) -> dict[str, object]:
    dead = f"http://127.0.0.1:{free_port()}/mcp"  # nothing listens there: an upstream that is down
    return {
        "tenants": [
            {"id": "acme", "displayName": "Acme Corp", "limits": {"quota": {"daily": 1000, "monthly": 20000}}},
            {"id": "globex", "displayName": "Globex"},
        ],
        "profiles": [
            {
                "id": "acme-tools",
                "tenant": "acme",
                "upstreams": [{"name": "feature", "url": feature}, {"name": "hostile", "url": hostile}],
                "policy": {"tools": {"deny": ["slow", "protocol_*"]}, "rules": [CONSOLE_RULE, CONSOLE_RESOURCE_RULE]},
                "limits": {
                    "rate": {"perSecond": 50, "burst": 100},
                    "quota": {"daily": 500},
                    "timeoutSeconds": 20,
                    "callLimits": [
                        {"name": "adds-per-user", "tools": ["add"], "rate": {"calls": 600, "per": "minute"}}
                    ],
                },
            },
            {"id": "acme-legacy", "tenant": "acme", "upstreams": [{"name": "legacy", "url": dead}]},
            {"id": "globex-main", "tenant": "globex", "upstreams": [{"name": "feature", "url": feature}]},
        ],
    }


def start_stack(spawn: Spawn, tmp_path: Path, dsn: str | None) -> Stack:
    feature = start_feature(spawn)[1]
    hostile = start_hostile(spawn)
    config = write_config(tmp_path / "routing.yaml", routing(feature, hostile))
    return Stack(start_gateway(spawn, config, dsn=dsn), feature, hostile)


async def shot(page: Page, name: str) -> Path:
    """A full-page screenshot for reviewers, under tests/artifacts/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def login(page: Page, stack: Stack, token: str = ADMIN_TOKEN) -> None:
    await page.goto(stack.console("/"))
    assert page.url == stack.console("/login"), "an anonymous visit should land on the login page"
    await page.fill("#token", token)
    await page.click("#login-submit")
    await page.wait_for_url(stack.console("/"))


def csrf_of(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "page has no CSRF field"
    return match.group(1)


def http_login(stack: Stack, token: str) -> httpx.Client:
    """An HTTP client logged in to the console (for requests a browser form would not make)."""
    client = httpx.Client(base_url=stack.base, timeout=20)
    form = client.get("/console/login")
    response = client.post("/console/login", data={"token": token, "csrf": csrf_of(form.text)})
    assert response.status_code == 303, response.text
    return client
