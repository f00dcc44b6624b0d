"""The kind signals of the structural reranking (discovery/structure.py): which of the catalog's
kinds a request names, tools acting on another kind moved down, the tools of a named kind brought
into the candidates, and a connect operation's HTTP method not read as the request's verb."""

from __future__ import annotations

import pytest
from mcp_gateway.discovery import structure
from mcp_gateway.discovery.index import ToolDoc, ToolIndex, allow_all
from mcp_gateway.discovery.text import name_terms

NAMESPACED = {"type": "object", "properties": {"namespace": {"type": "string"}}, "required": ["namespace"]}
CLUSTER = {"type": "object", "properties": {"name": {"type": "string"}}}


def rest(*names: str, extra: dict[str, str] | None = None) -> list[ToolDoc]:
    """Tools named as an OpenAPI conversion names them, described as the Kubernetes ones are
    ("delete the specified Node"), with `extra` words added to some descriptions."""
    docs = []
    for n in names:
        verb, _, base = structure._tool_words(n, ())
        kind = "".join(w.title() for w in structure._kind_words(base))
        description = f"{verb} the specified {kind}{(extra or {}).get(n, '')}"
        docs.append(ToolDoc.from_tool(n, None, description, NAMESPACED if "Namespaced" in n else CLUSTER))
    return docs


def ops(
    group: str, kind: str, namespaced: bool, verbs: tuple[str, ...] = ("list", "read", "create", "delete")
) -> list[str]:
    where = "Namespaced" if namespaced else ""
    return [f"{verb}{group}V1{where}{kind}" for verb in verbs]


RBAC = [
    *ops("RbacAuthorization", "Role", True),
    *ops("RbacAuthorization", "RoleBinding", True),
    *ops("RbacAuthorization", "ClusterRole", False),
    *ops("RbacAuthorization", "ClusterRoleBinding", False),
    *ops("Core", "Secret", True),
    *ops("Core", "Node", False),
    *ops("Core", "Namespace", False),
    *ops("Core", "PersistentVolumeClaim", True),
    *ops("Apps", "Deployment", True),
    *ops("Core", "Service", True),
]


def names(index: ToolIndex, query: str, limit: int = 5) -> list[str]:
    return [hit.name for hit in index.search(query, limit, allow_all)]


def test_kinds_are_read_from_names_after_the_api_version() -> None:
    index = ToolIndex(rest(*RBAC, "listNetworkingV1beta1IPAddress", "readNetworkingV1beta1IPAddress"))
    assert {"role", "rolebind", "clusterrole", "clusterrolebind", "persistentvolumeclaim", "ipaddress"} <= (
        index.kinds.keys
    )
    # initials of a kind of three words or more, and the abbreviations text.py knows, when the kind exists
    short = index.kinds.abbreviations
    assert short["pvc"] == "persistentvolumeclaim" and short["crb"] == "clusterrolebind"
    assert short["deploy"] == "deployment" and "sts" not in short  # no StatefulSet in this catalog


@pytest.mark.parametrize(
    ("query", "kinds"),
    [
        ("list the cluster role bindings", {"clusterrolebind"}),  # longest first: not role, not cluster role
        ("who holds the admin role", {"role"}),
        ("delete the PersistentVolumeClaims of the app", {"persistentvolumeclaim"}),
        ("resize my pvcs", {"persistentvolumeclaim"}),  # an abbreviation, plural
        ("which secrets are in the payments namespace", {"secret"}),  # the namespace says where
        ("make a new namespace for team blue", {"namespace"}),
        ("list all namespaces", {"namespace"}),  # "all namespaces" is the kind when nothing else is named
        ("list secrets across all namespaces", {"secret"}),
        ("what happened in the payments namespace", set()),
        ("show the role bindings in namespace prod", {"rolebind"}),
    ],
)
def test_the_kinds_a_request_names(query: str, kinds: set[str]) -> None:
    index = ToolIndex(rest(*RBAC))
    assert structure.parse_request(query, index.kinds).kinds == kinds


def test_a_tool_acting_on_another_kind_than_the_one_named_moves_down(monkeypatch: pytest.MonkeyPatch) -> None:
    # "role bindings" also says "role": on words alone `…Role` comes first.
    index = ToolIndex(rest(*RBAC))
    query = "show the role bindings in namespace prod"
    assert names(index, query)[0] == "readRbacAuthorizationV1NamespacedRoleBinding"
    monkeypatch.setattr(structure, "W_KIND", 0.0)
    assert names(index, query)[0] == "readRbacAuthorizationV1NamespacedRole"


def test_tools_of_a_named_kind_join_the_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    # The ranking's candidates (here: every tool but the Namespace kind's, as when many
    # `…Namespaced…` names outscore them on the word) gain the named kind's tools, at the end.
    index = ToolIndex(rest(*RBAC))
    query = "list all the namespaces"
    scores = index.scores(query)
    request = structure.parse_request(query, index.kinds)
    kind = {i for i, n in enumerate(index.names) if "V1Namespace" in n and "Namespaced" not in n}
    best = sorted(((i, s) for i, s in scores.items() if i not in kind), key=lambda item: -item[1])
    best = best[: structure.DEPTH]
    wider = structure.with_named_kinds(request, best, scores, index.kinds, lambda i: True)
    assert wider[: len(best)] == best and {i for i, _ in wider[len(best) :]} == kind & set(scores)
    assert "listCoreV1Namespace" in {index.names[i] for i, _ in wider}
    hidden = structure.with_named_kinds(request, best, scores, index.kinds, lambda i: i not in kind)
    assert hidden == best  # a tool the caller may not see is never added
    monkeypatch.setattr(structure, "RECALL", 0)
    assert structure.with_named_kinds(request, best, scores, index.kinds, lambda i: True) == best


def test_a_connect_operations_http_method_is_not_its_verb() -> None:
    assert "get" not in name_terms("connectCoreV1GetNamespacedPodExec")
    assert "get" in name_terms("getCoreV1APIResources")
    pod = [*ops("Core", "Pod", True, ("list", "read", "create", "delete", "patch"))]
    connect = [f"connectCoreV1{m}NamespacedPod{sub}" for m in ("Get", "Post") for sub in ("Exec", "Attach", "Proxy")]
    index = ToolIndex(rest(*pod, *connect))
    assert names(index, "get the details of pod web")[0] == "readCoreV1NamespacedPod"


def test_a_subresource_without_its_kind_in_the_catalog_is_read_as_that_kinds() -> None:
    # The caller sees `…DeploymentStatus` but no `…Deployment` operation: a status, not a kind of its own.
    index = ToolIndex(
        rest(
            "readAppsV1NamespacedDeploymentStatus",
            "patchAppsV1NamespacedDeploymentStatus",
            *ops("RbacAuthorization", "ClusterRole", False),
            *ops("Batch", "CronJob", True),
        )
    )
    status = index.shapes[0]
    assert status is not None and status.kind == "deploymentstatus" and not status.listed
    for query in ("is the rollout of my deployment finished", "status of the deployment and the cronjob"):
        assert structure.agreement(structure.parse_request(query, index.kinds), status) == 0.0


def test_the_only_operation_on_its_object_still_has_a_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    # `readCoreV1NamespacedEndpoints` is the only Endpoints tool: its verb says little, its kind does.
    pod = ops("Core", "Pod", True, ("list", "read", "create", "delete"))
    index = ToolIndex(rest(*pod, "readCoreV1NamespacedEndpoints"))
    endpoints = index.shapes[-1]
    assert endpoints is not None and endpoints.loose and endpoints.kind == "endpoint"
    assert "endpoint" not in index.kinds.keys  # it names no kind a request is matched against
    request = structure.parse_request("read the logs of pod web", index.kinds)
    assert structure.agreement(request, endpoints) == -structure.W_KIND
    assert structure.agreement(structure.parse_request("read the service's addresses", index.kinds), endpoints) == 0
    monkeypatch.setattr(structure, "LOOSE", False)
    assert ToolIndex(rest(*pod, "readCoreV1NamespacedEndpoints")).shapes[-1] is None
