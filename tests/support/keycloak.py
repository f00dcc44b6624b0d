"""A real OIDC provider for the tests: Keycloak, started like PostgreSQL.

scripts/build-tools.sh downloads and pre-builds it (in-memory H2 database, health endpoints);
`start_keycloak()` runs it on loopback ports, waits until it is ready, and imports the realm
of tests/data/keycloak/mcp-realm.json through the admin REST API: the pre-registered public
client `mcp-client` (authorization code + PKCE), the client scope `mcp:tools` that puts the
gateway's audience `mcp-gateway` in access tokens, another API's audience (`reports`), and the
users alice (groups admins, dev) and bob (dev). Anonymous dynamic client registration (RFC 7591)
is allowed from loopback only: Keycloak's default "Trusted Hosts" policy trusts no host, so the
realm's policy is given 127.0.0.1 and localhost (its other default anonymous policies stay on:
consent required, full scope disabled, realm default scopes only, at most 200 clients).
"""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import ManagedProcess, free_port, start_process
from tests.support.tools import require_tool

REALM_FILE = Path(__file__).resolve().parents[1] / "data" / "keycloak" / "mcp-realm.json"
REALM = "mcp"
GATEWAY_AUDIENCE = "mcp-gateway"
PUBLIC_CLIENT = "mcp-client"
REDIRECT_URI = "http://127.0.0.1/mcp-callback"
# The tests' own confidential clients (password grant), secrets as in the realm file.
DIRECT_CLIENT = ("test-direct", "test-direct-secret")
SHORT_LIVED_CLIENT = ("test-short-lived", "test-short-lived-secret")
PASSWORDS = {"alice": "alice-password", "bob": "bob-password"}
_ADMIN = ("admin", "admin-password-for-tests")
# Start-up takes ~25 CPU-seconds; on 2 cores shared with the rest of the suite that can take minutes.
READY_SECONDS = 600
# pytest-timeout for tests that use Keycloak: the first one may wait for its start-up.
TEST_TIMEOUT_SECONDS = READY_SECONDS + 300
_KEY_PROVIDER = "org.keycloak.keys.KeyProvider"
_REGISTRATION_POLICY = "org.keycloak.services.clientregistration.policy.ClientRegistrationPolicy"
LOOPBACK_HOSTS = ["127.0.0.1", "localhost"]


@dataclass
class Keycloak:
    process: ManagedProcess | None  # None: one this session did not start
    base: str
    started_seconds: float

    @property
    def issuer(self) -> str:
        return f"{self.base}/realms/{REALM}"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/certs"

    @property
    def token_url(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/token"

    def oidc_settings(self, **extra: Any) -> dict[str, Any]:
        """A profile's `auth.oidc` block trusting this realm's tokens for the gateway's audience."""
        return {"issuer": self.issuer, "audience": GATEWAY_AUDIENCE, "jwksUrl": self.jwks_url, **extra}

    def token(
        self, user: str = "alice", scope: str = "mcp:tools", client: tuple[str, str] = DIRECT_CLIENT
    ) -> dict[str, Any]:
        """A token response for `user` by password grant (the tests' shortcut past the login form)."""
        client_id, secret = client
        form = {"grant_type": "password", "client_id": client_id, "client_secret": secret}
        form |= {"username": user, "password": PASSWORDS[user]} | ({"scope": scope} if scope else {})
        response = httpx.post(self.token_url, data=form, timeout=30)
        response.raise_for_status()
        return dict(response.json())

    def access_token(self, user: str = "alice", scope: str = "mcp:tools", **kwargs: Any) -> str:
        return str(self.token(user, scope, **kwargs)["access_token"])

    # -- admin REST API --------------------------------------------------------------------

    def admin(self) -> httpx.Client:
        """A client of the admin REST API, with a fresh admin token (they live 60 s)."""
        form = {"grant_type": "password", "client_id": "admin-cli", "username": _ADMIN[0], "password": _ADMIN[1]}
        response = httpx.post(f"{self.base}/realms/master/protocol/openid-connect/token", data=form, timeout=30)
        response.raise_for_status()
        headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
        return httpx.Client(base_url=f"{self.base}/admin/realms", headers=headers, timeout=30)

    def import_realm(self) -> None:
        with self.admin() as admin:
            # Creating a realm is the provider's slowest request: minutes on a busy machine.
            headers = {"Content-Type": "application/json"}
            response = admin.post("", content=REALM_FILE.read_bytes(), headers=headers, timeout=READY_SECONDS)
            response.raise_for_status()
            self._trust_loopback_registration(admin)

    def _trust_loopback_registration(self, admin: httpx.Client) -> None:
        """Anonymous client registration from (and redirect URIs on) loopback hosts only."""
        policies = admin.get(f"/{REALM}/components", params={"type": _REGISTRATION_POLICY}).json()
        trusted = [p for p in policies if p["providerId"] == "trusted-hosts" and p.get("subType") == "anonymous"]
        assert len(trusted) == 1, policies
        policy = trusted[0]
        policy["config"]["trusted-hosts"] = LOOPBACK_HOSTS
        policy["config"]["host-sending-registration-request-must-match"] = ["true"]
        policy["config"]["client-uris-must-match"] = ["true"]
        admin.put(f"/{REALM}/components/{policy['id']}", json=policy).raise_for_status()

    def registration_policies(self) -> dict[str, dict[str, list[str]]]:
        """The realm's anonymous client-registration policies: provider id -> config."""
        with self.admin() as admin:
            policies = admin.get(f"/{REALM}/components", params={"type": _REGISTRATION_POLICY}).json()
        return {p["providerId"]: p.get("config", {}) for p in policies if p.get("subType") == "anonymous"}

    def user_id(self, username: str) -> str:
        """The realm's id of a user: the `sub` of their tokens."""
        with self.admin() as admin:
            found = admin.get(f"/{REALM}/users", params={"username": username, "exact": "true"}).json()
        return str(found[0]["id"])

    def client(self, client_id: str) -> dict[str, Any] | None:
        """The realm's client with this client id, as the admin API shows it."""
        with self.admin() as admin:
            found: list[dict[str, Any]] = admin.get(f"/{REALM}/clients", params={"clientId": client_id}).json()
        return found[0] if found else None

    def signing_kids(self) -> list[str]:
        keys = httpx.get(self.jwks_url, timeout=30).json()["keys"]
        return [k["kid"] for k in keys if k.get("use") == "sig"]

    def rotate_signing_key(self) -> None:
        """A new RSA signing key; every older one removed (what an operator does after a leak)."""
        with self.admin() as admin:
            realm_id = admin.get(f"/{REALM}").json()["id"]
            old = [c for c in admin.get(f"/{REALM}/components", params={"type": _KEY_PROVIDER}).json()]
            old = [c for c in old if c["providerId"] == "rsa-generated"]
            name = f"rsa-rotated-{time.monotonic_ns()}"
            component = {
                "name": name,
                "providerId": "rsa-generated",
                "providerType": _KEY_PROVIDER,
                "parentId": realm_id,
                "config": {"priority": ["1000"], "keySize": ["2048"], "algorithm": ["RS256"]},
            }
            admin.post(f"/{REALM}/components", json=component).raise_for_status()
            for component in old:
                admin.delete(f"/{REALM}/components/{component['id']}").raise_for_status()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(grace=20)


def start_keycloak(spawned: list[ManagedProcess] | None = None) -> Keycloak:
    """Keycloak on two free loopback ports (HTTP, management), with the test realm imported.

    The process is appended to `spawned` as soon as it runs, so it can be stopped mid-start.
    """
    kc = require_tool("keycloak")
    port, management = free_port(), free_port()
    env = {
        "KC_BOOTSTRAP_ADMIN_USERNAME": _ADMIN[0],
        "KC_BOOTSTRAP_ADMIN_PASSWORD": _ADMIN[1],
        # A small heap: the default takes 70 % of the machine's memory.
        "JAVA_OPTS_KC_HEAP": "-Xms64m -Xmx768m",
    }
    cmd = [str(kc), "start", "--optimized", "--http-enabled=true", "--http-host=127.0.0.1", f"--http-port={port}"]
    cmd += [f"--http-management-port={management}", "--hostname-strict=false", "--cache=local"]
    started = time.monotonic()
    process = start_process(cmd, name="keycloak", env=env)
    if spawned is not None:
        spawned.append(process)
    try:
        _wait_ready(f"http://127.0.0.1:{management}/health/ready", process)
        keycloak = Keycloak(process, f"http://127.0.0.1:{port}", time.monotonic() - started)
        keycloak.import_realm()
    except BaseException:
        process.stop(grace=5)
        raise
    return keycloak


# Started once per test session, in the background as soon as a collected test needs it (its
# start-up then overlaps the tests that run before), and stopped when the session ends.
_session: Future[Keycloak] | None = None
_spawned: list[ManagedProcess] = []


def start_in_background() -> None:
    global _session
    if _session is not None:
        return
    future: Future[Keycloak] = Future()
    _session = future

    def run() -> None:
        try:
            future.set_result(start_keycloak(_spawned))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, name="keycloak-start", daemon=True).start()


def session_keycloak() -> Keycloak:
    """The session's Keycloak, waiting for its start-up.

    MCP_TEST_KEYCLOAK_URL names one already running with the test realm (a developer's shortcut
    past the start-up while iterating on these tests; e.g. from `python -m tests.support.keycloak`).
    """
    running = os.environ.get("MCP_TEST_KEYCLOAK_URL")
    if running:
        return Keycloak(None, running.rstrip("/"), 0.0)
    start_in_background()
    assert _session is not None
    return _session.result(timeout=READY_SECONDS + 60)


def stop_session_keycloak() -> None:
    """Stop the session's Keycloak, also one still starting (its start-up then fails)."""
    global _session
    _session = None
    while _spawned:
        _spawned.pop().stop(grace=20)


def _wait_ready(url: str, process: ManagedProcess) -> None:
    """start_process stops waiting at the first answer below 500; readiness is a 200 with status UP."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"Keycloak exited before it was ready:\n{process.log_text()[-4000:]}")
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == 200 and json.loads(response.text).get("status") == "UP":
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(1)
    raise TimeoutError(f"Keycloak was not ready within {READY_SECONDS}s")


if __name__ == "__main__":
    # Keycloak with the test realm until Ctrl-C; then MCP_TEST_KEYCLOAK_URL=<printed URL> pytest ...
    provider = start_keycloak()
    print(f"MCP_TEST_KEYCLOAK_URL={provider.base}  (ready after {provider.started_seconds:.0f} s)", flush=True)
    try:
        threading.Event().wait()
    finally:
        provider.stop()
