"""Tenant API keys from Kubernetes Secrets (`tenants[].apiKeys.secretRefs` in the routing config).

The routing config names Secrets, never their contents. `SecretKeyWatch` watches
exactly the Secrets named there, each with its own watch (fieldSelector
`metadata.name=...`, so an RBAC Role with `resourceNames` suffices), and hands
every change to `SecretKeyTable`. Each value of such a Secret is one API key of
the tenant; the data key (e.g. `ci-bot`) names the caller
(`secret:<namespace>/<name>/<key>`) in audit records, quotas and metrics.

Only keyed hashes (HMAC-SHA256 with the gateway's pepper) are kept in memory;
the values are dropped as soon as they are hashed and are never logged. A key
removed from its Secret, a Secret deleted, or a reference removed from the
routing config stops working as soon as the watch reports it (seconds).

Labels (read by policy rules as `key.labels`, like an admin-API key's) come from the
Secret's annotations, since Kubernetes labels are for selecting objects and their
values are too narrow: `labels.mcpgateway.dev/<label>: <value>` labels every key of
the Secret, and `mcpgateway.dev/key-labels` (a JSON object: data key -> labels) adds
to or overrides them per key. Labels that are not valid (apikeys.check_labels) keep
the keys they would label out of service, so a typo cannot slip a key past a deny rule.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from mcp_gateway.auth.apikeys import KeyHasher, check_labels
from mcp_gateway.config import RoutingConfig
from mcp_gateway.config_source import ConfigHolder, kube_core_api

log = logging.getLogger("mcp_gateway.auth.secrets")

MIN_KEY_LENGTH = 16
WATCH_SECONDS = 15  # the watch is re-opened this often, which also bounds how long a stopped one lingers
FORBIDDEN_RETRY_SECONDS = 10.0
LABEL_PREFIX = "labels.mcpgateway.dev/"  # annotation prefix: a label of every key in the Secret
KEY_LABELS = "mcpgateway.dev/key-labels"  # annotation: JSON object, data key -> {label: value}


@dataclass(frozen=True)
class SecretKey:
    tenant: str
    secret: str  # namespace/name
    name: str  # the data key inside the Secret
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)  # from the Secret's annotations

    @property
    def caller(self) -> str:
        return f"secret:{self.secret}/{self.name}"


class SecretKeyTable:
    """Keyed hashes of the keys in every watched Secret, looked up by the hash of a presented key."""

    def __init__(self, hasher: KeyHasher) -> None:
        self.hasher = hasher
        self._by_hash: dict[str, SecretKey] = {}
        self._by_secret: dict[str, set[str]] = {}

    def replace(
        self,
        secret: str,
        tenant: str,
        values: Mapping[str, str],
        labels: Mapping[str, Mapping[str, str]] | None = None,
    ) -> tuple[bool, list[str]]:
        """Install the keys now in `secret` (data key -> value), with their labels (data key -> labels).

        Returns whether anything changed, and the data keys ignored for being too short.
        """
        known = secret in self._by_secret
        before = {d: self._by_hash[d] for d in self._by_secret.get(secret, set())}
        self.drop(secret)
        hashes: set[str] = set()
        short: list[str] = []
        for name, value in values.items():
            if len(value) < MIN_KEY_LENGTH:
                short.append(name)
                continue
            digest = self.hasher.hash(value)
            self._by_hash[digest] = SecretKey(tenant, secret, name, dict((labels or {}).get(name, {})))
            hashes.add(digest)
        self._by_secret[secret] = hashes
        return not known or before != {d: self._by_hash[d] for d in hashes}, short

    def count(self, secret: str) -> int:
        return len(self._by_secret.get(secret, ()))

    def drop(self, secret: str) -> None:
        for digest in self._by_secret.pop(secret, set()):
            self._by_hash.pop(digest, None)

    def lookup(self, key: str) -> SecretKey | None:
        # The dict is keyed by an HMAC the caller cannot steer without the pepper, so a lookup
        # reveals nothing through timing that a constant-time compare would hide.
        return self._by_hash.get(self.hasher.hash(key))

    @property
    def secrets(self) -> set[str]:
        return set(self._by_secret)


def decode_values(data: Mapping[str, str] | None) -> dict[str, str]:
    """A Secret's `data` (base64) as text; trailing newlines (from `--from-file`) are not part of a key."""
    values: dict[str, str] = {}
    for name, encoded in (data or {}).items():
        try:
            values[name] = base64.b64decode(encoded).decode().strip()
        except (binascii.Error, UnicodeDecodeError):
            log.warning("value %r of an API-key Secret is not UTF-8 text; ignored", name)
    return values


def key_labels(
    annotations: Mapping[str, str] | None, names: Collection[str]
) -> tuple[dict[str, dict[str, str]], list[str]]:
    """The labels of each data key in `names` from the Secret's annotations, and what was wrong.

    A data key whose labels are not valid is left out of the answer (its key must not work
    unlabelled); so is every key when the Secret-wide labels are not valid.
    """
    annotations = annotations or {}
    shared = {k.removeprefix(LABEL_PREFIX): v for k, v in annotations.items() if k.startswith(LABEL_PREFIX)}
    try:
        shared = check_labels(shared)
    except ValueError as exc:
        return {}, [f"annotations {LABEL_PREFIX}*: {exc}; none of its keys work until this is fixed"]
    per_key: Any = {}
    if KEY_LABELS in annotations:
        try:
            per_key = json.loads(annotations[KEY_LABELS])
        except ValueError:
            per_key = None
        if not isinstance(per_key, dict) or not all(isinstance(v, dict) for v in per_key.values()):
            expected = '{"<data key>": {"<label>": "<value>"}}'
            return {}, [
                f"annotation {KEY_LABELS}: expected a JSON object {expected}; none of its keys work until fixed"
            ]
    found: dict[str, dict[str, str]] = {}
    problems = [f"annotation {KEY_LABELS} names {k!r}, which is not a data key of the Secret (ignored)"
                for k in per_key if k not in names]  # fmt: skip
    for name in names:
        try:
            found[name] = check_labels({**shared, **per_key.get(name, {})})
        except ValueError as exc:
            problems.append(f"labels of key {name!r}: {exc}; that key does not work until this is fixed")
    return found, problems


@dataclass(frozen=True)
class SecretContents:
    values: dict[str, str]  # data key -> API key, only the keys whose labels are valid
    labels: dict[str, dict[str, str]]  # data key -> its labels
    problems: list[str]  # what is wrong with the label annotations, for the log


def secret_contents(data: Mapping[str, str] | None, annotations: Mapping[str, str] | None) -> SecretContents:
    labels, problems = key_labels(annotations, set(data or {}))
    values = {name: value for name, value in decode_values(data).items() if name in labels}
    return SecretContents(values, labels, problems)


class SecretKeyWatch:
    """Keeps `SecretKeyTable` equal to the Secrets the routing config references."""

    def __init__(
        self, holder: ConfigHolder, table: Callable[[], SecretKeyTable], kubeconfig: str | None = None
    ) -> None:
        self.holder = holder
        self._table = table  # read at start: the gateway creates it when it starts
        self.kubeconfig = kubeconfig
        self._owners: dict[str, str] = {}
        self._stops: dict[str, threading.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def table(self) -> SecretKeyTable:
        return self._table()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.holder.on_change(self.sync)
        self.sync(self.holder.config)

    async def stop(self) -> None:
        for stop in self._stops.values():
            stop.set()
        self._stops.clear()

    def sync(self, config: RoutingConfig) -> None:
        """Follow a routing-config change: watch new references, forget removed ones at once."""
        self._owners = config.key_secrets()
        for secret in [s for s in self._stops if s not in self._owners]:
            self._stops.pop(secret).set()
            self.table.drop(secret)
            log.info("stopped watching API-key Secret %s (no longer referenced)", secret)
        for secret in self._owners:
            if secret not in self._stops:
                stop = self._stops[secret] = threading.Event()
                threading.Thread(target=self._watch, args=(secret, stop), name="key-secret", daemon=True).start()

    def _apply(self, secret: str, stop: threading.Event, contents: SecretContents | None) -> None:
        """On the event loop: install what the watch saw, unless the reference went away meanwhile."""
        tenant = self._owners.get(secret)
        if stop.is_set() or tenant is None:
            return
        if contents is None:
            self.table.drop(secret)
            log.info("API-key Secret %s is gone; its keys no longer work", secret)
            return
        changed, short = self.table.replace(secret, tenant, contents.values, contents.labels)
        if not changed:  # a re-opened watch replays the same keys: stay quiet
            return
        count = self.table.count(secret)
        log.info("API-key Secret %s: %d keys for tenant %s", secret, count, tenant, extra={"event": "key_secret"})
        if short:
            log.warning(
                "API keys %s in Secret %s are shorter than %d characters and are ignored",
                sorted(short),
                secret,
                MIN_KEY_LENGTH,
                extra={"event": "secret_key_too_short"},
            )
        for problem in contents.problems:
            log.error(
                "API-key Secret %s: %s",
                secret,
                problem,
                extra={"event": "key_secret_bad_labels"},
            )

    def _deliver(self, secret: str, stop: threading.Event, obj: Any) -> None:
        annotations = obj.metadata.annotations if obj is not None and obj.metadata is not None else None
        contents = None if obj is None else secret_contents(obj.data, annotations)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._apply, secret, stop, contents)

    def _watch(self, secret: str, stop: threading.Event) -> None:
        from kubernetes import watch
        from kubernetes.client.rest import ApiException

        namespace, _, name = secret.partition("/")
        api: Any = None
        delay = 1.0  # after errors: doubles up to 30 s, so a cluster without access is not hammered
        while not stop.is_set():
            try:
                # One client per watch thread, for its whole life: a client owns a connection pool (and,
                # once used asynchronously, a thread pool), so it is never rebuilt per watch or per error.
                api = api or kube_core_api(self.kubeconfig)
                watcher = watch.Watch()
                for event in watcher.stream(
                    api.list_namespaced_secret,
                    namespace,
                    field_selector=f"metadata.name={name}",
                    timeout_seconds=WATCH_SECONDS,
                ):
                    if stop.is_set():
                        watcher.stop()
                        break
                    delay = 1.0
                    kind = event["type"]
                    if kind in ("ADDED", "MODIFIED"):
                        self._deliver(secret, stop, event["object"])
                    elif kind == "DELETED":
                        self._deliver(secret, stop, None)
            except ApiException as exc:
                if exc.status == 403:
                    log.error(
                        "the gateway may not read Secret %s (HTTP 403): grant it get/list/watch on that Secret "
                        "(Helm: add it to gateway.apiKeySecrets); tenant %s's keys from it do not work meanwhile",
                        secret,
                        self._owners.get(secret, "?"),
                        extra={"event": "key_secret_forbidden"},
                    )
                    stop.wait(FORBIDDEN_RETRY_SECONDS)
                else:
                    log.warning("watch of API-key Secret %s failed (HTTP %s); retrying", secret, exc.status)
                    stop.wait(delay)
                    delay = min(delay * 2, 30.0)
            except Exception as exc:
                log.warning("watch of API-key Secret %s failed: %s; retrying", secret, type(exc).__name__)
                stop.wait(delay)
                delay = min(delay * 2, 30.0)
        if api is not None:
            api.api_client.close()
