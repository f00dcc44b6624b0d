"""examples/k8s is a GitOps-ready set: everything in it is created for real on the
real API server (with our CRDs installed by the `kube` fixture) and accepted."""

from __future__ import annotations

import uuid
from typing import Any

import yaml
from kubernetes.dynamic import DynamicClient

from tests.chart.support import REPO, create_all
from tests.support.kube import ControlPlane

EXAMPLES = REPO / "examples" / "k8s"
EXAMPLE_NAMESPACE = "acme-tools"


def load_examples() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((EXAMPLES / "kustomization.yaml").read_text())
    files = {p.name for p in EXAMPLES.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)


def test_examples_cover_every_documented_case() -> None:
    docs = load_examples()
    upstreams = [d for d in docs if d["kind"] == "Upstream"]
    assert {next(k for k in ("stdio", "mcp", "openapi") if k in u["spec"]) for u in upstreams} == {
        "stdio",
        "mcp",
        "openapi",
    }
    openapi = next(u for u in upstreams if "openapi" in u["spec"])
    ref = openapi["spec"]["openapi"]["spec"]["configMapKeyRef"]
    document = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == ref["name"])
    assert yaml.safe_load(document["data"][ref["key"]])["openapi"].startswith("3.")
    auths = [d["spec"]["auth"] for d in docs if d["kind"] == "Profile"]
    assert {tuple(a.get("methods") or [a["mode"]]) for a in auths} == {("apiKey",), ("oidc",), ("apiKey", "oidc")}
    tenant = next(d for d in docs if d["kind"] == "Tenant")
    key_secret = tenant["spec"]["apiKeys"]["secretRefs"][0]["name"]
    assert any(d["kind"] == "Secret" and d["metadata"]["name"] == key_secret for d in docs)
    # The caller's own credentials upstream: token exchange and a per-user connection, each with its
    # client secret in a Secret of the example, and an SSO profile using them.
    for key, auth in (("tokenExchange", "exchanged"), ("connection", "connection")):
        upstream = next(u for u in upstreams if key in u["spec"])
        source = next(upstream["spec"][k] for k in ("mcp", "openapi", "http") if k in upstream["spec"])
        assert source["auth"]["type"] == auth
        secret = upstream["spec"][key]["clientSecret"]["secretKeyRef"]["name"]
        assert any(d["kind"] == "Secret" and d["metadata"]["name"] == secret for d in docs)
        sso = next(d for d in docs if d["kind"] == "Profile" and d["metadata"]["name"] == "acme-sso")
        assert upstream["metadata"]["name"] in {u["name"] for u in sso["spec"]["upstreams"]}
    namespaced = [d for d in docs if d["kind"] not in ("Tenant", "Namespace")]
    assert {d["metadata"]["namespace"] for d in namespaced} == {EXAMPLE_NAMESPACE}
    assert tenant["spec"]["namespaces"] == [EXAMPLE_NAMESPACE]


def test_examples_apply_cleanly_to_the_real_api_server(kube: ControlPlane) -> None:
    namespace = kube.namespace("examples")
    tenant_name = f"acme-{uuid.uuid4().hex[:6]}"  # Tenants are cluster-scoped: keep test runs apart
    text = yaml.safe_dump_all(load_examples()).replace(EXAMPLE_NAMESPACE, namespace)
    docs = [d for d in yaml.safe_load_all(text) if d["kind"] != "Namespace"]
    for doc in docs:
        if doc["kind"] == "Tenant":
            doc["metadata"]["name"] = tenant_name
    with kube.api_client() as api:
        errors = create_all(api, docs, namespace, dry_run=False)
        assert not errors, "the API server refused:\n" + "\n".join(errors)
        dynamic = DynamicClient(api)
        profiles = dynamic.resources.get(api_version="mcpgateway.dev/v1alpha1", kind="Profile")
        stored = {p.metadata.name: p.to_dict() for p in profiles.get(namespace=namespace).items}
        assert set(stored) == {"acme-dev", "acme-sso", "acme-team"}
        # Defaults from the CRD schema were applied by the server.
        assert stored["acme-dev"]["spec"]["upstreams"][0]["prefix"] == "auto"
        assert stored["acme-sso"]["spec"]["auth"]["oidc"]["audience"] == "mcp-gateway"
        tenants = dynamic.resources.get(api_version="mcpgateway.dev/v1alpha1", kind="Tenant")
        assert tenants.get(name=tenant_name).spec.namespaces == [namespace]


def test_a_broken_example_is_refused(kube: ControlPlane) -> None:
    """The same path refuses what the CRDs forbid, so the test above can fail."""
    namespace = kube.namespace("examples")
    text = (EXAMPLES / "profile-oidc.yaml").read_text().replace(EXAMPLE_NAMESPACE, namespace)
    profile = yaml.safe_load(text)
    del profile["spec"]["auth"]["oidc"]
    with kube.api_client() as api:
        errors = create_all(api, [profile], namespace, dry_run=False)
    assert len(errors) == 1 and "auth accepting oidc needs auth.oidc" in errors[0], errors
