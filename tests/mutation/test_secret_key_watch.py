"""auth/secret_keys.py's watch in process, against a real kube-apiserver: the keys of exactly the
referenced Secrets are installed, follow edits and deletion, stop working when the reference goes,
and a Secret the gateway may not read (or a cluster it cannot reach) is reported and retried
(mutation-tested; tests/gateway/test_secret_keys.py covers the same through a gateway process)."""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from mcp_gateway.auth.apikeys import KeyHasher
from mcp_gateway.auth.secret_keys import SecretContents, SecretKey, SecretKeyTable, SecretKeyWatch
from mcp_gateway.config import parse_config
from mcp_gateway.config_source import ConfigHolder

from tests.support.kube import write_kubeconfig
from tests.support.processes import free_port

pytestmark = pytest.mark.late_tools  # a kube-apiserver (built in the background by make test)

HASHER = KeyHasher(b"pepper-0123456789abcdef")
ALICE = "alice-key-0123456789abcdef"
BOB = "bob-key-0123456789abcdef"
CAROL = "carol-key-0123456789abcdef"
LOGGER = "mcp_gateway.auth.secrets"


def routing(refs: dict[str, list[str]]) -> str:
    """A routing config whose tenants (id -> `namespace/name` Secret refs) take keys from Secrets."""
    tenants = [
        {
            "id": tenant,
            "apiKeys": {"secretRefs": [dict(zip(("namespace", "name"), r.split("/"), strict=True)) for r in secrets]},
        }
        for tenant, secrets in refs.items()
    ]
    return yaml.safe_dump({"tenants": tenants})


class Cluster:
    """Admin access to the test cluster: namespaces and Secrets."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
        self.core = k8s.CoreV1Api(self.api)

    def namespace(self) -> str:
        name = f"keys-{uuid.uuid4().hex[:8]}"
        self.core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
        return name

    def put(
        self,
        namespace: str,
        name: str,
        values: dict[str, str],
        raw: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> None:
        data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()} | (raw or {})
        body = k8s.V1Secret(metadata=k8s.V1ObjectMeta(name=name, annotations=annotations), data=data)
        try:
            self.core.replace_namespaced_secret(name, namespace, body)
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise
            self.core.create_namespaced_secret(namespace, body)

    def token_without_grants(self, namespace: str) -> str:
        """A ServiceAccount token that may read nothing (RBAC denies every Secret)."""
        self.core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
        request = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
        return str(self.core.create_namespaced_service_account_token("nobody", namespace, request).status.token)


@pytest.fixture
def cluster(key_kubeconfig: Path) -> Iterator[Cluster]:
    cluster = Cluster(key_kubeconfig)
    yield cluster
    cluster.api.close()


@pytest.fixture
def watches() -> Iterator[Callable[..., SecretKeyWatch]]:
    """Make watches; each is stopped after the test."""
    made: list[SecretKeyWatch] = []

    def make(holder: ConfigHolder, table: SecretKeyTable, kubeconfig: Path | str) -> SecretKeyWatch:
        watch = SecretKeyWatch(holder, lambda: table, kubeconfig=str(kubeconfig))
        made.append(watch)
        return watch

    yield make
    for watch in made:
        for stop in watch._stops.values():
            stop.set()


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for `check`; the bound stays below WATCH_SECONDS (15 s) so that an edit is seen through
    its own event, not through the ADDED replay of a re-opened watch."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def messages(caplog: pytest.LogCaptureFixture, event: str | None = None) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == LOGGER and (event is None or getattr(r, "event", None) == event)
    ]


def key_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "key-secret"]


async def test_keys_follow_the_referenced_secrets(
    cluster: Cluster, watches: Callable[..., SecretKeyWatch], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    ns = cluster.namespace()
    ref, other = f"{ns}/acme-keys", f"{ns}/globex-keys"
    cluster.put(ns, "acme-keys", {"alice": ALICE, "tiny": "short", "wee": "x"}, raw={"binary": "//79"})
    cluster.put(ns, "globex-keys", {"carol": CAROL})
    cluster.put(ns, "unreferenced", {"bob": BOB})
    holder = ConfigHolder(parse_config(routing({"acme": [ref]})))
    table = SecretKeyTable(HASHER)
    watch = watches(holder, table, cluster.kubeconfig)
    before = len(key_threads())
    watch.start()
    assert watch.table is table

    await eventually(lambda: table.lookup(ALICE) is not None)
    assert table.lookup(ALICE) == SecretKey("acme", ref, "alice")
    assert table.lookup("short") is None and table.lookup(BOB) is None and table.count(ref) == 1
    assert table.secrets == {ref}
    threads = key_threads()
    assert len(threads) == before + 1 and all(t.daemon for t in threads)
    await eventually(lambda: bool(messages(caplog, "secret_key_too_short")))
    assert messages(caplog, "key_secret") == [f"API-key Secret {ref}: 1 keys for tenant acme"]
    assert messages(caplog, "secret_key_too_short") == [
        f"API keys ['tiny', 'wee'] in Secret {ref} are shorter than 16 characters and are ignored"
    ]
    assert all(ALICE not in m for m in caplog.messages)

    # An edit lands: bob replaces alice. Rewriting the same keys changes nothing and logs nothing.
    cluster.put(ns, "acme-keys", {"bob": BOB})
    await eventually(lambda: table.lookup(ALICE) is None)
    assert table.lookup(BOB) == SecretKey("acme", ref, "bob")
    await eventually(lambda: len(messages(caplog, "key_secret")) == 2)
    cluster.put(ns, "acme-keys", {"bob": BOB})
    cluster.put(ns, "acme-keys", {"bob": BOB, "alice": ALICE})
    await eventually(lambda: table.lookup(ALICE) is not None)
    assert len(messages(caplog, "key_secret")) == 3 and len(messages(caplog, "secret_key_too_short")) == 1

    # A second reference (another tenant) is watched as soon as the config names it.
    holder.install(parse_config(routing({"acme": [ref], "globex": [other]})), "d2", "test")
    await eventually(lambda: table.lookup(CAROL) is not None)
    assert table.lookup(CAROL) == SecretKey("globex", other, "carol") and len(key_threads()) == before + 2

    # Deleting the Secret ends its keys.
    cluster.core.delete_namespaced_secret("acme-keys", ns)
    await eventually(lambda: table.lookup(BOB) is None)
    assert table.lookup(ALICE) is None and table.lookup(CAROL) is not None
    assert f"API-key Secret {ref} is gone; its keys no longer work" in messages(caplog)

    # A reference removed from the config ends its keys at once, before the watch notices.
    holder.install(parse_config(routing({"acme": [ref]})), "d3", "test")
    assert table.lookup(CAROL) is None and table.secrets == set()
    assert f"stopped watching API-key Secret {other} (no longer referenced)" in messages(caplog)
    # ... and a late event of the stopped watch does not bring them back.
    cluster.put(ns, "globex-keys", {"carol": CAROL, "again": ALICE})
    cluster.put(ns, "acme-keys", {"bob": BOB})
    await eventually(lambda: table.lookup(BOB) is not None)
    assert table.lookup(CAROL) is None and table.lookup(ALICE) is None

    await watch.stop()
    assert watch._stops == {}


async def test_labels_follow_the_secret_s_annotations(
    cluster: Cluster, watches: Callable[..., SecretKeyWatch], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    ns = cluster.namespace()
    ref = f"{ns}/acme-keys"
    team = {"labels.mcpgateway.dev/team": "payments"}
    cluster.put(ns, "acme-keys", {"alice": ALICE, "bob": BOB}, annotations=team)
    table = SecretKeyTable(HASHER)
    watches(ConfigHolder(parse_config(routing({"acme": [ref]}))), table, cluster.kubeconfig).start()
    await eventually(lambda: table.lookup(ALICE) is not None)
    assert table.lookup(ALICE) == SecretKey("acme", ref, "alice", {"team": "payments"})

    # A label that is not valid takes its key out of service, said once in the log.
    bad = team | {"mcpgateway.dev/key-labels": '{"bob": {"team": "' + "x" * 129 + '"}}'}
    cluster.put(ns, "acme-keys", {"alice": ALICE, "bob": BOB}, annotations=bad)
    await eventually(lambda: table.lookup(BOB) is None)
    assert table.lookup(ALICE) is not None
    problems = messages(caplog, "key_secret_bad_labels")
    assert len(problems) == 1 and problems[0].startswith(f"API-key Secret {ref}: labels of key 'bob'")
    assert "at most 128 characters" in problems[0] and all(BOB not in m for m in caplog.messages)

    # Fixed: the key works again, with its own labels.
    cluster.put(
        ns,
        "acme-keys",
        {"alice": ALICE, "bob": BOB},
        annotations=team | {"mcpgateway.dev/key-labels": '{"bob": {"team": "search"}}'},
    )
    await eventually(lambda: table.lookup(BOB) is not None)
    assert table.lookup(BOB) == SecretKey("acme", ref, "bob", {"team": "search"})
    assert len(messages(caplog, "key_secret_bad_labels")) == 1


async def test_an_unreadable_secret_is_reported_and_retried(
    cluster: Cluster, watches: Callable[..., SecretKeyWatch], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    ns = cluster.namespace()
    ref = f"{ns}/acme-keys"
    cluster.put(ns, "acme-keys", {"alice": ALICE})
    server = yaml.safe_load(cluster.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    ca = cluster.kubeconfig.parent / "certs" / "apiserver.crt"
    denied = write_kubeconfig(tmp_path / "denied", server, cluster.token_without_grants(ns), "nobody", ca)
    table = SecretKeyTable(HASHER)
    watch = watches(ConfigHolder(parse_config(routing({"acme": [ref]}))), table, denied)
    watch.start()
    await eventually(lambda: bool(messages(caplog, "key_secret_forbidden")))
    assert messages(caplog, "key_secret_forbidden")[0] == (
        f"the gateway may not read Secret {ref} (HTTP 403): grant it get/list/watch on that Secret "
        "(Helm: add it to gateway.apiKeySecrets); tenant acme's keys from it do not work meanwhile"
    )
    assert table.lookup(ALICE) is None and table.count(ref) == 0


async def test_other_watch_failures_are_retried(
    cluster: Cluster, watches: Callable[..., SecretKeyWatch], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """A wrong token (HTTP 401) and an unreachable server are retried (every second, then slower)."""
    ns = cluster.namespace()
    ref = f"{ns}/acme-keys"
    cluster.put(ns, "acme-keys", {"alice": ALICE})
    server = yaml.safe_load(cluster.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    ca = cluster.kubeconfig.parent / "certs" / "apiserver.crt"
    holder = ConfigHolder(parse_config(routing({"acme": [ref]})))
    unauthorized = write_kubeconfig(tmp_path / "bad-token", server, "not-a-token", "x", ca)
    watches(holder, SecretKeyTable(HASHER), unauthorized).start()
    unreachable = write_kubeconfig(tmp_path / "closed", f"https://127.0.0.1:{free_port()}", "t", "x", ca)
    watches(holder, SecretKeyTable(HASHER), unreachable).start()

    def failures(text: str) -> int:
        return sum(m == f"watch of API-key Secret {ref} failed{text}; retrying" for m in messages(caplog))

    # Two failures each: the watch goes on after the first.
    await eventually(lambda: failures(" (HTTP 401)") >= 2 and failures(": MaxRetryError") >= 2)


def test_events_arriving_without_a_loop_or_after_stop_are_dropped() -> None:
    holder = ConfigHolder(parse_config(routing({"acme": ["ns/keys"]})))
    table = SecretKeyTable(HASHER)
    watch = SecretKeyWatch(holder, lambda: table)
    stop = threading.Event()
    secret: Any = k8s.V1Secret(data={"alice": base64.b64encode(ALICE.encode()).decode()})
    watch._deliver("ns/keys", stop, secret)  # not started: no loop to hand it to
    watch._owners = holder.config.key_secrets()
    watch._apply("ns/keys", stop, SecretContents({"alice": ALICE}, {"alice": {}}, []))
    assert table.lookup(ALICE) is not None
    stop.set()
    watch._apply("ns/keys", stop, None)
    assert table.lookup(ALICE) is not None
    watch._apply(
        "ns/other", threading.Event(), SecretContents({"bob": BOB}, {"bob": {}}, [])
    )  # not referenced (any more)
    assert table.lookup(BOB) is None
