"""Run the real helm binary against the chart and read what it renders."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.tools import require_tool

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "mcp-gateway"
HERE = Path(__file__).resolve().parent
VALUES_FULL = HERE / "values-full.yaml"
VALUES_KIND = CHART / "ci" / "kind-values.yaml"
# `helm template` has no cluster to ask; render for the Kubernetes the tests run.
KUBE_VERSION = "1.35.4"


@dataclass
class HelmResult:
    returncode: int
    stdout: str
    stderr: str


def helm_binary() -> str:
    return str(require_tool("helm"))


def helm(*args: str, kubeconfig: str | None = None, timeout: float = 120) -> HelmResult:
    """Run helm with an isolated home so the user's repos and plugins play no part."""
    env = dict(os.environ)
    home = REPO / "tests" / "artifacts" / "helm-home"
    env.update(
        HELM_CACHE_HOME=str(home / "cache"),
        HELM_CONFIG_HOME=str(home / "config"),
        HELM_DATA_HOME=str(home / "data"),
    )
    if kubeconfig:
        env["KUBECONFIG"] = kubeconfig
    proc = subprocess.run([helm_binary(), *args], capture_output=True, text=True, env=env, timeout=timeout, check=False)
    return HelmResult(proc.returncode, proc.stdout, proc.stderr)


def template(
    *values_files: Path, namespace: str = "mcp", release: str = "mcp-gateway", sets: tuple[str, ...] = ()
) -> HelmResult:
    args = ["template", release, str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION]
    for path in values_files:
        args += ["--values", str(path)]
    for item in sets:
        args += ["--set", item]
    return helm(*args)


def render(
    *values_files: Path, namespace: str = "mcp", release: str = "mcp-gateway", sets: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Rendered manifests as dicts; fails the test with helm's message when rendering fails."""
    result = template(*values_files, namespace=namespace, release=release, sets=sets)
    assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    found = [doc for doc in by_kind(docs, kind) if doc["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"expected one {kind} named *{name_suffix}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


STANDIN_CRDS = HERE / "standin-crds"


def install_crds(api: Any, paths: list[Path], timeout: float = 30.0) -> None:
    """Create CRDs (already-present ones are fine) and wait until each is Established."""
    import time

    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    ext = k8s.ApiextensionsV1Api(api)
    names = []
    for path in paths:
        doc = yaml.safe_load(path.read_text())
        try:
            ext.create_custom_resource_definition(doc)
        except ApiException as exc:
            if exc.status != 409:
                raise
        names.append(doc["metadata"]["name"])
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            crd: Any = ext.read_custom_resource_definition(name)
            conditions = (crd.status and crd.status.conditions) or []
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                break
            assert time.monotonic() < deadline, f"CRD {name} not Established after {timeout}s"
            time.sleep(0.1)


def create_all(api: Any, docs: list[dict[str, Any]], namespace: str, *, dry_run: bool) -> list[str]:
    """Create every object through the real API server; return one line per refusal."""
    from kubernetes.client.exceptions import ApiException
    from kubernetes.dynamic import DynamicClient

    dynamic = DynamicClient(api)
    errors = []
    for doc in docs:
        resource = dynamic.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        kwargs: dict[str, Any] = {"body": doc}
        if resource.namespaced:
            kwargs["namespace"] = doc["metadata"].get("namespace", namespace)
        if dry_run:
            kwargs["dry_run"] = "All"
        try:
            resource.create(**kwargs)
        except ApiException as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: HTTP {exc.status}: {_reason(exc)}")
    return errors


def _reason(exc: Any) -> str:
    import json

    try:
        return str(json.loads(exc.body).get("message", exc.body))
    except (TypeError, ValueError):
        return str(exc.body)
