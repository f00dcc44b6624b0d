"""The test control plane is a real one: schema validation, RBAC, the
Deployment controller and the garbage collector all work."""

from __future__ import annotations

import time

import pytest
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from tests.support.kube import ControlPlane, write_kubeconfig


def _deployment(name: str) -> k8s.V1Deployment:
    labels = {"app": name}
    return k8s.V1Deployment(
        metadata=k8s.V1ObjectMeta(name=name),
        spec=k8s.V1DeploymentSpec(
            replicas=1,
            selector=k8s.V1LabelSelector(match_labels=labels),
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=labels),
                spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="main", image="example/app:1")]),
            ),
        ),
    )


def _wait(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"condition not met within {timeout}s")


def test_deployment_controller_creates_replicaset(kube: ControlPlane) -> None:
    namespace = kube.namespace("found")
    with kube.api_client() as api:
        apps = k8s.AppsV1Api(api)
        apps.create_namespaced_deployment(namespace, _deployment("web"))

        def has_replicaset() -> bool:
            items = apps.list_namespaced_replica_set(namespace, label_selector="app=web").items
            return bool(items) and items[0].metadata.owner_references[0].name == "web"

        _wait(has_replicaset)


def test_garbage_collector_deletes_owned_objects(kube: ControlPlane) -> None:
    namespace = kube.namespace("found")
    with kube.api_client() as api:
        core = k8s.CoreV1Api(api)
        owner = core.create_namespaced_config_map(
            namespace, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="owner"), data={"a": "1"})
        )
        reference = k8s.V1OwnerReference(api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid)
        core.create_namespaced_config_map(
            namespace,
            k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="owned", owner_references=[reference]), data={"b": "2"}),
        )
        core.delete_namespaced_config_map("owner", namespace)

        def owned_gone() -> bool:
            names = [cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items]
            return "owned" not in names

        _wait(owned_gone)


def test_schema_validation_refuses_bad_objects(kube: ControlPlane) -> None:
    namespace = kube.namespace("found")
    bad = _deployment("bad")
    bad.spec.replicas = -1
    with kube.api_client() as api, pytest.raises(ApiException) as refused:
        k8s.AppsV1Api(api).create_namespaced_deployment(namespace, bad)
    assert refused.value.status == 422
    assert "spec.replicas" in str(refused.value.body)


def test_rbac_limits_a_service_account(kube: ControlPlane, tmp_path: object) -> None:
    namespace = kube.namespace("found")
    with kube.api_client() as api:
        core = k8s.CoreV1Api(api)
        account = k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name="reader"))
        core.create_namespaced_service_account(namespace, account)
        rbac = k8s.RbacAuthorizationV1Api(api)
        rbac.create_namespaced_role(
            namespace,
            k8s.V1Role(
                metadata=k8s.V1ObjectMeta(name="cm-reader"),
                rules=[k8s.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["list"])],
            ),
        )
        rbac.create_namespaced_role_binding(
            namespace,
            k8s.V1RoleBinding(
                metadata=k8s.V1ObjectMeta(name="cm-reader"),
                role_ref=k8s.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="cm-reader"),
                subjects=[k8s.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=namespace)],
            ),
        )
        token = core.create_namespaced_service_account_token(
            "reader", namespace, k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[]))
        ).status.token

    from pathlib import Path

    from kubernetes import config as k8s_config

    kubeconfig = write_kubeconfig(
        Path(str(tmp_path)) / "reader.kubeconfig", kube.server, token, user="reader", ca_file=kube.ca_file
    )
    with k8s_config.new_client_from_config(config_file=str(kubeconfig)) as reader_api:
        reader = k8s.CoreV1Api(reader_api)
        assert reader.list_namespaced_config_map(namespace).items is not None
        with pytest.raises(ApiException) as denied:
            reader.list_namespaced_secret(namespace)
        assert denied.value.status == 403
