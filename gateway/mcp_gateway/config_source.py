"""Where the routing config comes from, and how changes reach a running gateway.

`ConfigHolder` keeps the last good config. Sources feed it text; invalid text
is logged and ignored so a bad edit never takes the gateway down.
- `FileSource` polls a file's mtime (about once a second).
- `ConfigMapSource` watches one ConfigMap through the API server (key
  `routing.yaml`) in a thread, so every replica sees a change within seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mcp_gateway.background import cancel_and_wait
from mcp_gateway.config import RoutingConfig, parse_config

log = logging.getLogger("mcp_gateway.config")

CONFIGMAP_KEY = "routing.yaml"


class ConfigHolder:
    """The current routing config plus listeners notified on every change."""

    def __init__(self, config: RoutingConfig | None = None) -> None:
        self.config = config or RoutingConfig()
        self.digest = ""
        self.generation = 0
        self._listeners: list[Callable[[RoutingConfig], None]] = []

    def on_change(self, listener: Callable[[RoutingConfig], None]) -> None:
        self._listeners.append(listener)

    def apply_text(self, text: str, origin: str) -> bool:
        """Validate and install `text`; keep the last good config when it is invalid."""
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest == self.digest:
            return False
        try:
            config = parse_config(text)
        except (ValueError, ValidationError) as exc:
            log.error(
                "routing config from %s is invalid; keeping the last good config (generation %d): %s",
                origin,
                self.generation,
                short_error(exc),
                extra={"event": "config_rejected", "origin": origin},
            )
            self.digest = digest  # don't log the same bad text every second
            return False
        self.install(config, digest, origin)
        return True

    def install(self, config: RoutingConfig, digest: str, origin: str) -> None:
        self.config = config
        self.digest = digest
        self.generation += 1
        log.info(
            "routing config loaded from %s: %d tenants, %d profiles (generation %d)",
            origin,
            len(config.tenants),
            len(config.profiles),
            self.generation,
            extra={"event": "config_loaded", "origin": origin},
        )
        for listener in self._listeners:
            try:
                listener(config)
            except Exception:
                log.exception("config listener failed")


def short_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:10])
    return str(exc)


class FileSource:
    """Reload the config file whenever its mtime or size changes."""

    def __init__(self, path: str | Path, holder: ConfigHolder, interval: float = 1.0) -> None:
        self.path = Path(path)
        self.holder = holder
        self.interval = interval
        self._stamp: tuple[float, int] | None = None
        self._task: asyncio.Task[None] | None = None

    def load_now(self) -> bool:
        stat = self.path.stat()
        self._stamp = (stat.st_mtime, stat.st_size)
        return self.holder.apply_text(self.path.read_text(), str(self.path))

    def poll_once(self) -> None:
        try:
            stat = self.path.stat()
        except OSError as exc:
            log.warning("routing config %s unreadable: %s; keeping the last good config", self.path, exc)
            return
        stamp = (stat.st_mtime, stat.st_size)
        if stamp != self._stamp:
            self._stamp = stamp
            self.holder.apply_text(self.path.read_text(), str(self.path))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.poll_once()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)


def kube_core_api(kubeconfig: str | None) -> Any:
    """A CoreV1Api client: from `kubeconfig`, else in-cluster, else ~/.kube/config."""
    from kubernetes import client, config

    if kubeconfig:
        api_client = config.new_client_from_config(config_file=kubeconfig)
    else:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        api_client = client.ApiClient()
    return client.CoreV1Api(api_client)


class ConfigMapSource:
    """Watch `namespace/name` and apply its `routing.yaml` on every change.

    The kubernetes client is synchronous, so the watch runs in a daemon
    thread and hands text to the event loop. The watch is re-established
    after errors and after its server-side timeout.
    """

    def __init__(self, ref: str, holder: ConfigHolder, kubeconfig: str | None = None) -> None:
        namespace, sep, name = ref.partition("/")
        if not sep or not namespace or not name:
            raise ValueError(f"--routing-configmap must be NAMESPACE/NAME, got {ref!r}")
        self.namespace, self.name = namespace, name
        self.holder = holder
        self.kubeconfig = kubeconfig
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _core_api(self) -> Any:
        return kube_core_api(self.kubeconfig)

    def _deliver(self, obj: Any) -> None:
        data = (obj.data or {}) if obj is not None else {}
        text = data.get(CONFIGMAP_KEY)
        if text is None:
            log.error("ConfigMap %s/%s has no key %s", self.namespace, self.name, CONFIGMAP_KEY)
            return
        origin = f"configmap {self.namespace}/{self.name}"
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.holder.apply_text, text, origin)

    def load_now(self) -> bool:
        """Read once synchronously (at start-up, before serving); False when the ConfigMap does not exist yet.

        A missing ConfigMap is normal in a cluster (the operator may start after the gateway):
        the gateway then serves, reports not ready, and the watch picks the ConfigMap up.
        """
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        ref = f"{self.namespace}/{self.name}"
        try:
            obj = self._core_api().read_namespaced_config_map(self.name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                log.warning(
                    "routing ConfigMap %s does not exist yet; not ready until it is created (watching it)",
                    ref,
                    extra={"event": "config_missing"},
                )
                return False
            raise ValueError(f"cannot read ConfigMap {ref}: HTTP {exc.status} {exc.reason}") from None
        except HTTPError as exc:
            raise ValueError(f"cannot reach the API server to read ConfigMap {ref}: {exc}") from None
        data = obj.data or {}
        if CONFIGMAP_KEY not in data:
            raise ValueError(f"ConfigMap {self.namespace}/{self.name} has no key {CONFIGMAP_KEY}")
        self.holder.apply_text(data[CONFIGMAP_KEY], f"configmap {ref}")
        return True

    def _watch_forever(self) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            try:
                api = self._core_api()
                watcher = watch.Watch()
                for event in watcher.stream(
                    api.list_namespaced_config_map,
                    self.namespace,
                    field_selector=f"metadata.name={self.name}",
                    timeout_seconds=60,
                ):
                    if self._stop.is_set():
                        watcher.stop()
                        break
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._deliver(event["object"])
            except Exception as exc:
                log.warning("ConfigMap watch %s/%s failed: %s; retrying", self.namespace, self.name, exc)
                self._stop.wait(1.0)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._watch_forever, name="configmap-watch", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
