"""Render Tenants, Profiles and Upstreams into the gateway's routing document
(docs/routing-config.md) and compute each Profile's and Tenant's status.

A pure function of the objects, so it is easy to test and safe to run after
any change. One broken Profile (unknown tenant, missing or foreign Upstream,
duplicate id, invalid settings) is left out with Ready=False; it never stops
the others from being routed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mcp_gateway.config import Profile as GatewayProfile
from mcp_gateway.config import Tenant as GatewayTenant
from pydantic import ValidationError

from mcp_operator import workload
from mcp_operator.conditions import Condition
from mcp_operator.settings import Settings

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name); namespace "" for Tenants


@dataclass
class ObjectStatus:
    """The status the operator wants an object to have (conditions are merged later)."""

    obj: Obj
    conditions: list[Condition]
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> Condition:
        return self.conditions[0]


@dataclass
class Rendered:
    document: dict[str, Any]
    profiles: dict[Key, ObjectStatus]
    tenants: dict[str, ObjectStatus]


def _order(obj: Obj) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return (meta.get("creationTimestamp", ""), meta.get("namespace", ""), meta["name"])


def _live(objs: list[Obj]) -> list[Obj]:
    return sorted((o for o in objs if not o["metadata"].get("deletionTimestamp")), key=_order)


def _ready(obj: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in (obj.get("status") or {}).get("conditions", [])
    )


def _pydantic_problem(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'spec'}: {err['msg'].removeprefix('Value error, ')}"
        for err in exc.errors()[:5]
    )


def namespace_owners(tenants: list[Obj]) -> tuple[dict[str, str], dict[str, ObjectStatus]]:
    """Which tenant owns each namespace (oldest claim wins) and each Tenant's status."""
    owners: dict[str, str] = {}
    statuses: dict[str, ObjectStatus] = {}
    for tenant in _live(tenants):
        name = tenant["metadata"]["name"]
        lost = []
        for namespace in tenant.get("spec", {}).get("namespaces", []):
            if owners.setdefault(namespace, name) != name:
                lost.append(f"namespace {namespace!r} already belongs to tenant {owners[namespace]!r}")
        owned = [n for n, t in owners.items() if t == name]
        if lost:
            ready = Condition("Ready", False, "NamespaceConflict", "; ".join(lost) + "; remove it from one of them")
        else:
            ready = Condition("Ready", True, "NamespacesOwned", f"owns {len(owned)} namespaces")
        statuses[name] = ObjectStatus(tenant, [ready], {"namespaces": sorted(owned)})
    return owners, statuses


def _tenant_entry(tenant: Obj, owners: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The tenant's routing entry, and problems with its API-key Secret references.

    Key Secrets are rendered as references only (namespace and name), and only from
    namespaces the tenant owns: a Tenant cannot make the gateway accept keys kept in
    another tenant's namespace.
    """
    spec = tenant.get("spec", {})
    name = tenant["metadata"]["name"]
    entry: dict[str, Any] = {"id": name}
    if spec.get("displayName"):
        entry["displayName"] = spec["displayName"]
    if spec.get("limits"):
        entry["limits"] = spec["limits"]
    keys = spec.get("apiKeys") or {}
    refs, problems = [], []
    for ref in keys.get("secretRefs") or []:
        if owners.get(ref["namespace"]) == name:
            refs.append({"namespace": ref["namespace"], "name": ref["name"]})
        else:
            problems.append(
                f"apiKeys.secretRefs: Secret {ref['namespace']}/{ref['name']} is not in a namespace this tenant owns; "
                "move the Secret into one of its namespaces"
            )
    if keys:
        entry["apiKeys"] = {"adminApi": keys.get("adminApi", True), "secretRefs": refs}
    return entry, problems


class _ProfileRenderer:
    def __init__(self, settings: Settings, owners: dict[str, str], upstreams: list[Obj]) -> None:
        self.settings = settings
        self.owners = owners
        self.upstreams = {(u["metadata"]["namespace"], u["metadata"]["name"]): u for u in _live(upstreams)}
        self.ids: dict[str, Key] = {}

    def render(self, profile: Obj) -> tuple[dict[str, Any] | None, ObjectStatus]:
        meta, spec = profile["metadata"], profile.get("spec", {})
        namespace = meta["namespace"]
        profile_id = spec.get("id") or meta["name"]
        tenant = self.owners.get(namespace)
        endpoint = f"{self.settings.gateway_url}/{profile_id}/mcp"
        fields: dict[str, Any] = {
            "profileId": profile_id,
            "tenant": tenant,
            "endpoint": endpoint,
            "upstreams": [],
            "toolCount": None,
        }

        def refused(reason: str, message: str) -> tuple[None, ObjectStatus]:
            return None, ObjectStatus(profile, [Condition("Ready", False, reason, message)], fields)

        if tenant is None:
            return refused(
                "NoTenant", f"namespace {namespace!r} is not listed in any Tenant's spec.namespaces; add it to a Tenant"
            )
        holder = self.ids.get(profile_id)
        if holder is not None and holder != (namespace, meta["name"]):
            return refused(
                "ProfileIdConflict",
                f"profile id {profile_id!r} is already used by Profile {holder[0]}/{holder[1]}; "
                "set a different spec.id",
            )
        entries, members, problems = self._upstreams(spec.get("upstreams", []), namespace, tenant)
        fields["upstreams"] = members
        if problems:
            reason = "ForeignUpstream" if any("belongs to" in p for p in problems) else "UpstreamNotFound"
            return refused(reason, "; ".join(problems))
        entry = {"id": profile_id, "tenant": tenant, "upstreams": entries}
        for key in ("auth", "policy", "limits", "retries", "discovery"):
            if spec.get(key):
                entry[key] = spec[key]
        try:
            GatewayProfile.model_validate(entry)
        except ValidationError as exc:
            # A CEL rule that does not compile gets its own reason, with the compiler's message.
            rule = any(err["loc"][:2] == ("policy", "rules") for err in exc.errors())
            reason = "InvalidPolicyRule" if rule else "InvalidProfile"
            return refused(reason, f"the gateway would reject this profile: {_pydantic_problem(exc)}")
        self.ids[profile_id] = (namespace, meta["name"])
        counts = [m.get("toolCount") for m in members]
        if all(c is not None for c in counts):
            fields["toolCount"] = sum(c or 0 for c in counts)
        waiting = [f"{m['namespace']}/{m['name']}" for m in members if not m["ready"]]
        adapters = (
            Condition("UpstreamsReady", False, "AdaptersNotReady", "waiting for the adapters of " + ", ".join(waiting))
            if waiting
            else Condition("UpstreamsReady", True, "AdaptersReady", f"all {len(members)} upstream adapters answer")
        )
        ready = Condition("Ready", True, "Routed", f"routed by the gateway at {endpoint}")
        return entry, ObjectStatus(profile, [ready, adapters], fields)

    def _upstreams(
        self, refs: list[dict[str, Any]], namespace: str, tenant: str
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
        entries, members, problems = [], [], []
        for ref in refs:
            ref_ns = ref.get("namespace") or namespace
            upstream = self.upstreams.get((ref_ns, ref["name"]))
            if upstream is None:
                problems.append(f"Upstream {ref_ns}/{ref['name']} does not exist; create it or fix spec.upstreams")
                continue
            owner = self.owners.get(ref_ns)
            if owner != tenant:
                whose = f"tenant {owner!r}" if owner else "no tenant"
                problems.append(
                    f"Upstream {ref_ns}/{ref['name']} belongs to {whose}, not to {tenant!r}; "
                    "a Profile may only use its own tenant's Upstreams"
                )
                continue
            url = workload.service_url(ref_ns, ref["name"], self.settings)
            entry = {
                "name": ref["name"],
                "url": url,
                "prefix": ref.get("prefix", "auto"),
                "timeoutSeconds": ref.get("timeoutSeconds", 30),
                # The operator's own adapter (trustCallerHeader): it keys per-caller sessions by the caller.
                "sendCallerHeader": True,
            }
            upstream_spec = upstream.get("spec") or {}
            # Retries: the Upstream's for every Profile, a Profile's upstreams[].retries overriding them field by
            # field; the gateway fills what is still unset from the Profile's spec.retries.
            retries = {**(upstream_spec.get("retries") or {}), **(ref.get("retries") or {})}
            if retries:
                entry["retries"] = retries
            # The gateway probes and breaks the circuit of the Upstream's adapter per these (health.py).
            for key in ("healthCheck", "circuitBreaker"):
                if upstream_spec.get(key):
                    entry[key] = upstream_spec[key]
            # The caller's token for the upstream (the CRD allows one of them): the client secret by reference.
            for key in ("tokenExchange", "connection"):
                if upstream_spec.get(key):
                    entry[key] = with_secret_ref(upstream_spec[key], ref_ns)
            # Tool overrides: the Upstream's for every Profile, a Profile's own entry replacing one of them.
            overrides = {**(upstream_spec.get("toolOverrides") or {}), **(ref.get("toolOverrides") or {})}
            if overrides:
                entry["toolOverrides"] = overrides
            entries.append(entry)
            status = upstream.get("status") or {}
            members.append(
                {
                    "name": ref["name"],
                    "namespace": ref_ns,
                    "url": url,
                    "ready": _ready(upstream),
                    "toolCount": status.get("toolCount"),
                }
            )
        return entries, members, problems


def with_secret_ref(spec: dict[str, Any], namespace: str) -> dict[str, Any]:
    """An Upstream's spec.tokenExchange or spec.connection as the gateway reads it: the client secret by
    reference to the Secret in the Upstream's namespace (the gateway reads it through the API), never
    its value. A connection without clientSecret is a public client."""
    entry = {k: v for k, v in spec.items() if k != "clientSecret"}
    if spec.get("clientSecret"):
        ref = spec["clientSecret"]["secretKeyRef"]
        entry["clientSecretRef"] = {"namespace": namespace, "name": ref["name"], "key": ref["key"]}
    return entry


def render(tenants: list[Obj], profiles: list[Obj], upstreams: list[Obj], settings: Settings) -> Rendered:
    owners, tenant_statuses = namespace_owners(tenants)
    tenant_entries = []
    for tenant in _live(tenants):
        entry, key_problems = _tenant_entry(tenant, owners)
        status = tenant_statuses[tenant["metadata"]["name"]]
        try:
            GatewayTenant.model_validate(entry)
        except ValidationError as exc:
            status.conditions = [Condition("Ready", False, "InvalidTenant", _pydantic_problem(exc))]
            continue
        if key_problems and status.ready.ready:
            status.conditions = [Condition("Ready", False, "SecretNotOwned", "; ".join(key_problems))]
        tenant_entries.append(entry)
    valid_tenants = {e["id"] for e in tenant_entries}
    owners = {ns: t for ns, t in owners.items() if t in valid_tenants}
    renderer = _ProfileRenderer(settings, owners, upstreams)
    profile_entries = []
    profile_statuses: dict[Key, ObjectStatus] = {}
    for profile in _live(profiles):
        routed, status = renderer.render(profile)
        if routed is not None:
            profile_entries.append(routed)
        profile_statuses[(profile["metadata"]["namespace"], profile["metadata"]["name"])] = status
    document: dict[str, Any] = {"version": 1}
    if settings.gateway_settings:
        document["gateway"] = settings.gateway_settings
    document.update(tenants=tenant_entries, profiles=profile_entries)
    return Rendered(document=document, profiles=profile_statuses, tenants=tenant_statuses)
