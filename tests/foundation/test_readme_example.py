"""The README's full CRD example is accepted by the real API server, so the
documentation cannot drift from the schema."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from kubernetes import client as k8s

from tests.support.kube import ControlPlane

README = Path(__file__).resolve().parents[2] / "README.md"


def _example_documents() -> list[dict[str, object]]:
    text = README.read_text()
    block = re.search(r"A full example:\s*```yaml\n(.*?)```", text, re.DOTALL)
    assert block, "README lost its 'A full example' yaml block"
    return [doc for doc in yaml.safe_load_all(block.group(1)) if doc]


def test_readme_crd_example_is_valid(kube: ControlPlane) -> None:
    namespace = kube.namespace("readme")
    documents = _example_documents()
    assert [d["kind"] for d in documents] == ["Tenant", "Upstream", "Profile"]
    with kube.api_client() as api:
        custom = k8s.CustomObjectsApi(api)
        for doc in documents:
            group, version = str(doc["apiVersion"]).split("/")
            plural = str(doc["kind"]).lower() + "s"
            metadata = doc["metadata"]
            assert isinstance(metadata, dict)
            if doc["kind"] == "Tenant":
                metadata["name"] = f"readme-{namespace}"
                doc["spec"]["namespaces"] = [namespace]  # type: ignore[index]
                custom.create_cluster_custom_object(group, version, plural, doc, dry_run="All")
            else:
                metadata["namespace"] = namespace
                custom.create_namespaced_custom_object(group, version, namespace, plural, doc, dry_run="All")
