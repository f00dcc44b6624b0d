"""`helm lint` and `helm template` on the chart: defaults, every feature on, and
the guard rails (schema, fail messages) a user hits when values are wrong."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from mcp_gateway.config import RoutingConfig
from mcp_operator import workload
from mcp_operator.adapter_config import AdapterInputs
from mcp_operator.naming import ADAPTER_PORT, UPSTREAM_LABEL
from mcp_operator.routing import render as render_routing
from mcp_operator.settings import parse

from tests.chart.support import (
    CHART,
    KUBE_VERSION,
    VALUES_FULL,
    VALUES_KIND,
    by_kind,
    helm,
    one,
    render,
    template,
)

STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    specs = [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in by_kind(docs, "Deployment")]
    return specs + [(d["metadata"]["name"], d["spec"]) for d in by_kind(docs, "Pod")]


def env_of(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0].get("env", [])}


@pytest.mark.parametrize("values", [(), (VALUES_FULL,), (VALUES_KIND,)], ids=["default", "full", "kind"])
def test_helm_lint_strict_passes(values: tuple[Any, ...]) -> None:
    args = ["lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION]
    for path in values:
        args += ["--values", str(path)]
    result = helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_default_render_has_the_core_objects_only() -> None:
    docs = render()
    kinds = sorted({d["kind"] for d in docs})
    assert kinds == sorted(
        {
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "NetworkPolicy",
            "Pod",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Secret",
            "Service",
            "ServiceAccount",
        }
    )
    names = {d["metadata"]["name"] for d in by_kind(docs, "Deployment")}
    assert names == {"mcp-gateway-gateway", "mcp-gateway-operator"}


def test_every_object_carries_the_standard_labels_and_release_namespace() -> None:
    for doc in render(VALUES_FULL, namespace="tools"):
        labels = doc["metadata"].get("labels", {})
        missing = [key for key in STANDARD_LABELS if key not in labels]
        assert not missing, f"{doc['kind']}/{doc['metadata']['name']} lacks labels {missing}"
        assert labels["team"] == "platform"  # commonLabels
        name = doc["metadata"]["name"]
        if name.endswith(("-operator-workloads", "-operator-tenant-events")):
            # The operator's Roles in the watched namespaces (team-a, team-b) and "default".
            assert doc["metadata"]["namespace"] in ("team-a", "team-b", "default"), name
        elif doc["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert doc["metadata"]["namespace"] == "tools", name


@pytest.mark.parametrize("values", [(), (VALUES_FULL,)], ids=["default", "full"])
def test_every_pod_is_locked_down(values: tuple[Any, ...]) -> None:
    for name, spec in pod_specs(render(*values)):
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, name
        assert pod_sc["runAsUser"] != 0, name
        assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert "add" not in sc["capabilities"], name
            assert container["resources"]["requests"]["memory"], name
            assert container["resources"]["limits"]["memory"], name


def test_gateway_secrets_are_generated_random_and_wired_into_the_gateway() -> None:
    values: dict[str, list[str]] = {"admin-token": [], "api-key-pepper": []}
    for docs in (render(), render()):
        secret = one(docs, "Secret", "-gateway")
        assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        env = env_of(one(docs, "Deployment", "-gateway"))
        for key, variable, length in (
            ("admin-token", "MCP_GATEWAY_ADMIN_TOKEN", 48),
            ("api-key-pepper", "MCP_GATEWAY_KEY_PEPPER", 64),
        ):
            value = base64.b64decode(secret["data"][key]).decode()
            assert len(value) == length and value.isalnum()
            values[key].append(value)
            assert env[variable]["valueFrom"]["secretKeyRef"] == {"name": secret["metadata"]["name"], "key": key}
    for key, seen in values.items():
        assert seen[0] != seen[1], f"{key} must never be a fixed default"


def test_existing_secrets_replace_generated_ones() -> None:
    docs = render(VALUES_FULL)
    assert not by_kind(docs, "Secret"), "no Secret is generated when every gateway secret comes from an existing one"
    env = env_of(one(docs, "Deployment", "-gateway"))
    assert env["MCP_GATEWAY_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "mcp-admin", "key": "token"}
    assert env["MCP_GATEWAY_KEY_PEPPER"]["valueFrom"]["secretKeyRef"] == {"name": "mcp-admin", "key": "pepper"}
    assert env["MCP_GATEWAY_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "mcp-postgres", "key": "url"}
    assert env["UPSTREAM_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "upstream-credentials"


def test_only_the_missing_secret_is_generated() -> None:
    docs = render(sets=("gateway.adminToken.existingSecret=my-admin",))
    assert sorted(one(docs, "Secret", "-gateway")["data"]) == ["api-key-pepper"]
    env = env_of(one(docs, "Deployment", "-gateway"))
    assert env["MCP_GATEWAY_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "my-admin", "key": "admin-token"}


def test_without_database_no_dsn_is_passed() -> None:
    env = env_of(one(render(), "Deployment", "-gateway"))
    assert "MCP_GATEWAY_DATABASE_URL" not in env


def test_gateway_watches_the_routing_configmap_the_operator_renders() -> None:
    docs = render(VALUES_FULL, namespace="tools")
    args = one(docs, "Deployment", "-gateway")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--routing-configmap=tools/mcp-full-routes" in args
    role = one(docs, "Role", "-gateway")
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["mcp-full-routes"],
            "verbs": ["get", "list", "watch"],
        }
    ]
    operator = one(docs, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
    assert "--routing-configmap=tools/mcp-full-routes" in operator["args"]


def test_gateway_reads_only_the_listed_api_key_secrets() -> None:
    sets = (
        "gateway.apiKeySecrets[0].namespace=acme,gateway.apiKeySecrets[0].name=keys-b",
        "gateway.apiKeySecrets[1].namespace=acme,gateway.apiKeySecrets[1].name=keys-a",
        "gateway.apiKeySecrets[2].namespace=globex,gateway.apiKeySecrets[2].name=keys",
    )
    docs = render(namespace="tools", sets=sets)
    roles = {
        d["metadata"]["namespace"]: d for d in by_kind(docs, "Role") if d["metadata"]["name"].endswith("-api-keys")
    }
    assert {ns: r["rules"] for ns, r in roles.items()} == {
        ns: [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": names, "verbs": ["get", "list", "watch"]}]
        for ns, names in {"acme": ["keys-a", "keys-b"], "globex": ["keys"]}.items()
    }
    bindings = [d for d in by_kind(docs, "RoleBinding") if d["metadata"]["name"].endswith("-api-keys")]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["acme", "globex"]
    assert all(
        b["subjects"] == [{"kind": "ServiceAccount", "name": "mcp-gateway-gateway", "namespace": "tools"}]
        for b in bindings
    )
    assert not [d for d in by_kind(render(), "Role") if d["metadata"]["name"].endswith("-api-keys")]


def test_gateway_may_read_the_listed_token_exchange_secrets() -> None:
    sets = (
        "gateway.apiKeySecrets[0].namespace=acme,gateway.apiKeySecrets[0].name=keys",
        "gateway.tokenExchangeSecrets[0].namespace=acme,gateway.tokenExchangeSecrets[0].name=orders-exchange",
    )
    roles = [
        d for d in by_kind(render(namespace="tools", sets=sets), "Role") if d["metadata"]["name"].endswith("-keys")
    ]
    assert [r["rules"][0]["resourceNames"] for r in roles] == [["keys", "orders-exchange"]]


def test_full_values_turn_on_every_optional_feature() -> None:
    docs = render(VALUES_FULL)
    gateway = one(docs, "Deployment", "-gateway")
    assert "replicas" not in gateway["spec"], "the HPA owns the replica count"
    container = gateway["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == (
        "registry.internal.example:5000/mcp-gateway@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )
    assert container["ports"][0]["containerPort"] == 9090
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}
    ingress = one(docs, "Ingress")
    assert [r["host"] for r in ingress["spec"]["rules"]] == ["mcp.example.com", "mcp-internal.example.com"]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    route = one(docs, "HTTPRoute")
    assert route["spec"]["parentRefs"][0]["name"] == "public-gateway"
    assert route["spec"]["rules"][0]["backendRefs"] == [{"name": "mcp-full-gateway", "port": 443}]
    assert route["spec"]["rules"][0]["timeouts"] == {"request": "1h"}
    monitor = one(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert one(docs, "PodDisruptionBudget")["spec"] == {
        "minAvailable": 2,
        "selector": one(docs, "PodDisruptionBudget")["spec"]["selector"],
    }
    policy = one(docs, "NetworkPolicy", "-gateway")
    peers = [rule["from"][0]["namespaceSelector"]["matchLabels"] for rule in policy["spec"]["ingress"]]
    assert peers == [{"kubernetes.io/metadata.name": "ingress-nginx"}, {"kubernetes.io/metadata.name": "monitoring"}]
    service = one(docs, "Service", "-gateway")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["loadBalancerSourceRanges"] == ["10.0.0.0/8"]
    operator_args = one(docs, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in operator_args and "--namespace=team-b" in operator_args


def test_metrics_get_their_own_port_that_ingress_and_routes_never_publish() -> None:
    edge = ("gateway.ingress.enabled=true", "gateway.httpRoute.enabled=true", "gateway.httpRoute.parentRefs[0].name=gw")
    docs = render(
        sets=("gateway.serviceMonitor.enabled=true", "gateway.networkPolicy.ingressFrom[0].podSelector.x=y", *edge)
    )
    container = one(docs, "Deployment", "-gateway")["spec"]["template"]["spec"]["containers"][0]
    assert "--metrics-port=9091" in container["args"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": 8080, "metrics": 9091}
    main, metrics = one(docs, "Service", "-gateway"), one(docs, "Service", "-gateway-metrics")
    assert [p["name"] for p in main["spec"]["ports"]] == ["http"]
    assert metrics["spec"]["type"] == "ClusterIP" and metrics["spec"]["ports"][0]["targetPort"] == "metrics"
    assert (
        one(docs, "Ingress")["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]
        == "mcp-gateway-gateway"
    )
    assert one(docs, "HTTPRoute")["spec"]["rules"][0]["backendRefs"][0]["name"] == "mcp-gateway-gateway"
    monitor = one(docs, "ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= metrics["metadata"]["labels"].items()
    assert not selector.items() <= main["metadata"]["labels"].items()  # it scrapes the metrics Service only
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    rules = one(docs, "NetworkPolicy", "-gateway")["spec"]["ingress"]
    assert [(r["ports"][0]["port"], "from" in r) for r in rules] == [("http", True), ("metrics", False)]

    legacy = render(sets=("gateway.metrics.port=null", "gateway.serviceMonitor.enabled=true", *edge))
    container = one(legacy, "Deployment", "-gateway")["spec"]["template"]["spec"]["containers"][0]
    assert not any(a.startswith("--metrics-port") for a in container["args"])
    assert [p["name"] for p in container["ports"]] == ["http"]
    assert [d["metadata"]["name"] for d in by_kind(legacy, "Service")] == ["mcp-gateway-gateway"]
    endpoint = one(legacy, "ServiceMonitor")["spec"]["endpoints"][0]
    assert endpoint["port"] == "http"
    # There /metrics needs the admin token: Prometheus sends it from the gateway's Secret.
    assert endpoint["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": "mcp-gateway-gateway", "key": "admin-token"},
    }


def test_public_url_private_jwks_and_limits_commit_reach_the_gateway() -> None:
    docs = render(
        sets=(
            "gateway.publicUrl=https://mcp.example.com/",
            "gateway.allowPrivateJwks=true",
            "gateway.limitsCommit=sync",
            "gateway.maxAdminRequestBytes=131072",
        )
    )
    gateway = one(docs, "Deployment", "-gateway")
    assert env_of(gateway)["MCP_GATEWAY_PUBLIC_URL"]["value"] == "https://mcp.example.com"
    operator_args = one(docs, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--gateway-url=https://mcp.example.com" in operator_args  # what Profile status shows
    flags = [a for a in operator_args if a.startswith("--gateway-settings=")]
    routing = render_routing([], [], [], parse(flags)).document  # the operator's own parsing and rendering
    settings = RoutingConfig.model_validate(routing).gateway
    assert settings.allow_private_jwks is True and settings.limits_commit == "sync"
    assert settings.max_admin_request_bytes == 131072

    defaults = render()
    assert "MCP_GATEWAY_PUBLIC_URL" not in env_of(one(defaults, "Deployment", "-gateway"))
    operator_args = one(defaults, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not any(a.startswith("--gateway-settings") for a in operator_args)


def test_tracing_reaches_the_gateway_and_the_adapters_only_when_an_endpoint_is_given() -> None:
    docs = render(
        sets=("gateway.tracing.endpoint=http://jaeger.observability:4318/", "gateway.tracing.samplingRatio=0.25")
    )
    env = env_of(one(docs, "Deployment", "-gateway"))
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://jaeger.observability:4318"
    assert env["OTEL_TRACES_SAMPLER"]["value"] == "parentbased_traceidratio"
    assert env["OTEL_TRACES_SAMPLER_ARG"]["value"] == "0.25"
    operator_args = one(docs, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]["args"]
    adapters = parse([a for a in operator_args if a.startswith("--adapter-")])  # the operator's own parsing
    assert adapters.adapter_otlp_endpoint == "http://jaeger.observability:4318"
    assert adapters.adapter_trace_sampling_ratio == 0.25
    defaults = render()
    assert not any(name.startswith("OTEL_") for name in env_of(one(defaults, "Deployment", "-gateway")))
    operator_args = one(defaults, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not any(a.startswith("--adapter-otlp") for a in operator_args)


def test_helm_test_hook_checks_the_gateway_through_its_service() -> None:
    pod = one(render(), "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["args"][0]
    assert "/healthz" in script and "http://mcp-gateway-gateway.mcp.svc:80" in script


def test_a_wrong_value_type_is_refused_with_its_path() -> None:
    result = template(sets=("gateway.replicaCount=two",))
    assert result.returncode != 0
    assert "/gateway/replicaCount" in result.stderr and "want integer" in result.stderr


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("gateway.replicaz=2", "additional properties 'replicaz' not allowed"),
        ("gateway.service.type=External", "/gateway/service/type"),
        ("gateway.image.digest=latest", "/gateway/image/digest"),
        ("operator.logLevel=loud", "/operator/logLevel"),
        ("gateway.publicUrl=mcp.example.com", "/gateway/publicUrl"),
        ("gateway.metrics.port=80", "/gateway/metrics/port"),
        ("gateway.limitsCommit=never", "/gateway/limitsCommit"),
        ("gateway.maxAdminRequestBytes=100", "/gateway/maxAdminRequestBytes"),
        ("gateway.tracing.endpoint=jaeger:4318", "/gateway/tracing/endpoint"),
        ("gateway.tracing.samplingRatio=2", "/gateway/tracing/samplingRatio"),
    ],
)
def test_schema_refuses_unknown_keys_and_bad_values(setting: str, message: str) -> None:
    result = template(sets=(setting,))
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("gateway.replicaCount=3",), "needs PostgreSQL"),
        (("gateway.autoscaling.enabled=true",), "gateway.database.existingSecret"),
        (("gateway.httpRoute.enabled=true",), "needs gateway.httpRoute.parentRefs"),
        (("gateway.podDisruptionBudget.minAvailable=1",), "not both"),
        (("gateway.metrics.port=8080",), "gateway.metrics.port must differ from gateway.containerPort"),
    ],
)
def test_inconsistent_values_fail_with_a_fix(sets: tuple[str, ...], message: str) -> None:
    result = template(sets=sets)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def operator_rbac(docs: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(kind, namespace) -> rules of the operator's ClusterRole and Roles."""
    return {
        (d["kind"], d["metadata"].get("namespace", "")): d["rules"]
        for d in docs
        if d["kind"] in ("ClusterRole", "Role") and "-operator" in d["metadata"]["name"]
    }


def resources(rules: list[dict[str, Any]], verb: str) -> set[str]:
    return {r for rule in rules if verb in rule["verbs"] for r in rule["resources"]}


def test_operator_rbac_is_cluster_wide_only_without_a_namespace_list() -> None:
    """The operator's tests run it bound to exactly these templates (tests/operator/support.py render_rbac)."""
    roles = operator_rbac(render(namespace="tools"))
    assert set(roles) == {("ClusterRole", ""), ("Role", "tools")}
    cluster = roles[("ClusterRole", "")]
    assert resources(cluster, "patch") == {
        "tenants/status",
        "profiles/status",
        "upstreams/status",
        "configmaps",
        "services",
        "deployments",
        "networkpolicies",
    }
    assert not resources(cluster, "delete") and not resources(cluster, "update")
    assert "secrets" not in resources(cluster, "get")
    home = roles[("Role", "tools")]
    assert resources(home, "update") == {"leases"}
    assert next(r for r in home if r["resources"] == ["configmaps"])["resourceNames"] == ["mcp-gateway-routing"]
    # Its own Deployment only, read for the uid it puts in owner references (uninstall deletes what it made).
    owner = {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["mcp-gateway-operator"]}
    assert [r for r in home if r["resources"] == ["deployments"]] == [{**owner, "verbs": ["get"]}]


def test_listed_namespaces_get_namespaced_roles_and_globs_stay_cluster_wide() -> None:
    roles = operator_rbac(render(namespace="tools", sets=("operator.watchNamespaces={team-a,team-b}",)))
    # "default": only Events about Tenants, which the API server files there.
    namespaces = {"tools", "team-a", "team-b", "default"}
    assert set(roles) == {("ClusterRole", "")} | {("Role", ns) for ns in namespaces}
    assert resources(roles[("ClusterRole", "")], "patch") == {"tenants/status"}
    for namespace in ("team-a", "team-b"):
        assert {"deployments", "networkpolicies", "upstreams/status"} <= resources(roles[("Role", namespace)], "patch")
    assert roles[("Role", "default")] == [{"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}]
    globbed = operator_rbac(render(namespace="tools", sets=("operator.watchNamespaces={team-a,team-*}",)))
    assert set(globbed) == {("ClusterRole", ""), ("Role", "tools")}
    assert "deployments" in resources(globbed[("ClusterRole", "")], "patch")


def test_adapter_network_policies_admit_this_releases_gateway_and_operator() -> None:
    """The operator writes each adapter's NetworkPolicy from these flags: they must select the chart's pods."""
    docs = render(VALUES_FULL, namespace="tools")
    args = one(docs, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]["args"]
    flags = dict(a.removeprefix("--").split("=", 1) for a in args)
    for component in ("gateway", "operator"):
        assert flags[f"{component}-namespace"] == "tools"
        selector = dict(pair.split("=", 1) for pair in flags[f"{component}-pod-selector"].split(","))
        pod_labels = one(docs, "Deployment", f"-{component}")["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod_labels.items(), component
        assert selector["app.kubernetes.io/component"] == component
        assert selector["app.kubernetes.io/instance"] == "mcp-gateway"


def test_adapter_pod_monitor_scrapes_the_adapters_the_operator_creates() -> None:
    """The PodMonitor must select the pods the operator's own code creates, on a port they name, and their
    NetworkPolicy (written from the chart's operator flags) must let the scraper in."""
    assert not [d for d in render() if d["kind"] == "PodMonitor"]
    assert not any(a.startswith("--adapter-metrics-from") for a in operator_args_of(render()))
    docs = render(VALUES_FULL, namespace="tools")
    monitor = one(docs, "PodMonitor", "-adapters")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    settings = parse(operator_args_of(docs))  # the operator's own parsing of the chart's flags
    upstream = {"metadata": {"name": "time", "namespace": "team-a", "uid": "u-1"}, "spec": {}}
    deployment = workload.deployment(upstream, AdapterInputs(config={}), "digest", settings)
    pod = deployment["spec"]["template"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    assert (endpoint["path"], endpoint["interval"]) == ("/metrics", "15s")
    ports = pod["spec"]["containers"][0]["ports"]
    assert [p["containerPort"] for p in ports if p["name"] == endpoint["port"]] == [ADAPTER_PORT]
    # Prometheus' name for the pod label the operator sets: `upstream` carries the Upstream's name.
    meta_label = "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", UPSTREAM_LABEL)
    assert endpoint["relabelings"] == [{"sourceLabels": [meta_label], "targetLabel": "upstream"}]
    assert pod["metadata"]["labels"][UPSTREAM_LABEL] == "time"

    rules = workload.network_policy(upstream, settings)["spec"]["ingress"]
    assert len(rules) == 2 and rules[1]["ports"] == [{"port": ADAPTER_PORT, "protocol": "TCP"}]
    assert rules[1]["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        }
    ]
    assert len(workload.network_policy(upstream, parse([]))["spec"]["ingress"]) == 1  # no scraper: no rule

    # Globbed (or no) namespaces: the operator serves any namespace, so the monitor looks in all.
    globbed = render(sets=("adapter.podMonitor.enabled=true", "operator.watchNamespaces={team-*}"))
    assert one(globbed, "PodMonitor", "-adapters")["spec"]["namespaceSelector"] == {"any": True}


def operator_args_of(docs: list[dict[str, Any]]) -> list[str]:
    args: list[str] = one(docs, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


def test_access_log_is_off_by_default_and_a_value_turns_it_on() -> None:
    def gateway_args(*sets: str) -> list[str]:
        deployment = one(render(sets=sets), "Deployment", "-gateway")
        args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        return args

    assert "--access-log" not in gateway_args()
    assert "--access-log" in gateway_args("gateway.accessLog=true")


def test_connections_get_their_key_ring_sign_in_client_and_secrets() -> None:
    sign_in = "gateway.connections.userSignIn"
    sets = (
        "gateway.publicUrl=https://mcp.example.com",
        "gateway.connections.keysSecret.name=connection-keys",
        f"{sign_in}.clientId=mcp-gateway-console,{sign_in}.scopes={{openid,mcp:tools}}",
        f"{sign_in}.clientSecretRef.namespace=mcp,{sign_in}.clientSecretRef.name=console-client",
        f"{sign_in}.clientSecretRef.key=secret,gateway.connections.linkSeconds=600",
        "gateway.connectionSecrets[0].namespace=acme,gateway.connectionSecrets[0].name=crm-oauth",
        "gateway.connectionSecrets[1].namespace=mcp,gateway.connectionSecrets[1].name=console-client",
    )
    docs = render(sets=sets)
    keys = env_of(one(docs, "Deployment", "-gateway"))["MCP_GATEWAY_CONNECTION_KEYS"]
    assert keys["valueFrom"]["secretKeyRef"] == {"name": "connection-keys", "key": "keys"}
    operator_args = one(docs, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]["args"]
    flags = [a for a in operator_args if a.startswith("--gateway-settings=")]
    routing = render_routing([], [], [], parse(flags)).document  # the operator's own parsing and rendering
    connections = RoutingConfig.model_validate(routing).gateway.connections
    assert connections.link_seconds == 600 and connections.user_sign_in is not None
    assert connections.user_sign_in.scopes == ["openid", "mcp:tools"]
    assert connections.user_sign_in.client_secret_ref is not None
    roles = {
        d["metadata"]["namespace"]: d["rules"][0]["resourceNames"]
        for d in by_kind(docs, "Role")
        if d["metadata"]["name"].endswith("-api-keys")
    }
    assert roles == {"acme": ["crm-oauth"], "mcp": ["console-client"]}
    assert "MCP_GATEWAY_CONNECTION_KEYS" not in env_of(one(render(), "Deployment", "-gateway"))

    # Without the public URL or the key ring, connections cannot work: refused with the fix.
    without_url = tuple(s for s in sets if not s.startswith("gateway.publicUrl"))
    without_keys = tuple(s for s in sets if not s.startswith("gateway.connections.keysSecret"))
    for kept, message in ((without_url, "needs gateway.publicUrl"), (without_keys, "keysSecret.name")):
        result = template(sets=kept)
        assert result.returncode != 0 and message in result.stderr, result.stderr
