"""Kopf handlers: watch events in, reconcilers out.

All handlers are level-triggered `on.event` handlers: no per-object kopf
state (annotations, status.kopf) and no finalizers; owner references and the
garbage collector handle deletion. An Upstream is (re)applied when its
generation is ahead of status.observedGeneration, on the operator's first
sight of it (start-up, so restarts converge), and when an owned object is
deleted or edited by someone else (drift repair: Deployments, Services,
ConfigMaps and NetworkPolicies).
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from mcp_operator import naming
from mcp_operator.context import OperatorContext
from mcp_operator.upstreams import needs_apply

log = logging.getLogger("mcp_operator.handlers")

OWNED: dict[str, Any] = {
    naming.MANAGED_BY: naming.COMPONENT,
    naming.UPSTREAM_LABEL: kopf.PRESENT,
}


def _ctx(memo: Any) -> OperatorContext:
    ctx: OperatorContext = memo.ctx
    return ctx


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.enabled = False  # we post our own, meaningful Events
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    settings.batching.idle_timeout = 30


@kopf.on.login()
def login(memo: Any, **_: Any) -> kopf.ConnectionInfo:
    """Use the same credentials as the rest of the operator (kubeconfig flag or in-cluster)."""
    config = _ctx(memo).kube.api.configuration
    header = config.get_api_key_with_prefix("BearerToken") or config.get_api_key_with_prefix("authorization")
    scheme, _sep, token = (header or "").rpartition(" ")
    return kopf.ConnectionInfo(
        server=config.host,
        ca_path=config.ssl_ca_cert,
        insecure=not config.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=config.cert_file,
        private_key_path=config.key_file,
        username=config.username or None,
        password=config.password or None,
    )


@kopf.on.event(naming.GROUP, naming.VERSION, naming.UPSTREAMS)
async def upstream_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    ctx = _ctx(memo)
    ctx.publisher.poke()
    upstream: dict[str, Any] = dict(event["object"])
    meta = upstream["metadata"]
    if event["type"] == "DELETED":
        ctx.reconciler.forget(meta["namespace"], meta["name"])
        return
    # type None: initial listing (start-up); otherwise only when the spec moved.
    if event["type"] is None or needs_apply(upstream):
        await ctx.reconciler.reconcile(meta["namespace"], meta["name"], apply=True, check=True)


@kopf.on.event(naming.GROUP, naming.VERSION, naming.PROFILES)
async def profile_event(memo: Any, **_: Any) -> None:
    _ctx(memo).publisher.poke()


@kopf.on.event(naming.GROUP, naming.VERSION, naming.TENANTS)
async def tenant_event(memo: Any, **_: Any) -> None:
    _ctx(memo).publisher.poke()


async def _owned_event(event: kopf.RawEvent, memo: Any) -> None:
    ctx = _ctx(memo)
    obj: dict[str, Any] = dict(event["object"])
    deleted = event["type"] == "DELETED"
    if not deleted and (event["type"] is None or ctx.reconciler.is_own_write(obj)):
        return
    meta = obj["metadata"]
    upstream = meta.get("labels", {}).get(naming.UPSTREAM_LABEL)
    if upstream:
        await ctx.reconciler.repair(meta["namespace"], upstream, obj, deleted)


@kopf.on.event("apps", "v1", "deployments", labels=OWNED)
async def deployment_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    await _owned_event(event, memo)


@kopf.on.event("", "v1", "services", labels=OWNED)
async def service_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    await _owned_event(event, memo)


@kopf.on.event("", "v1", "configmaps", labels=OWNED)
async def configmap_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    await _owned_event(event, memo)


@kopf.on.event("networking.k8s.io", "v1", "networkpolicies", labels=OWNED)
async def network_policy_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    await _owned_event(event, memo)
