"""kind-config.yaml and scripts/kind-up.sh, checked offline (kind needs a container
engine): the config is a valid kind v1alpha4 Cluster, and the config, the script and
the chart's kind values agree on ports and image names."""

from __future__ import annotations

import re
import subprocess

import yaml

from tests.chart.support import REPO, VALUES_KIND, by_kind, render

KIND_UP = REPO / "scripts" / "kind-up.sh"


def kind_config() -> dict:
    return yaml.safe_load((REPO / "kind-config.yaml").read_text())


def script_var(name: str) -> str:
    match = re.search(rf"^{name}=\$?\{{?[^}}\n]*?:-([^}}\n]+)\}}?$|^{name}=([^\s$]+)$", KIND_UP.read_text(), re.M)
    assert match, f"{name}= not found in {KIND_UP}"
    return match.group(1) or match.group(2)


def test_kind_config_is_a_v1alpha4_cluster_with_a_control_plane() -> None:
    config = kind_config()
    assert config["kind"] == "Cluster"
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert [n["role"] for n in config["nodes"]].count("control-plane") == 1
    allowed_node_keys = {"role", "image", "extraPortMappings", "extraMounts", "labels", "kubeadmConfigPatches"}
    for node in config["nodes"]:
        assert set(node) <= allowed_node_keys
        for mapping in node.get("extraPortMappings", []):
            assert set(mapping) <= {"containerPort", "hostPort", "listenAddress", "protocol"}
            assert 30000 <= mapping["containerPort"] <= 32767, "the gateway is a NodePort"


def test_port_mapping_matches_the_gateway_nodeport_and_the_script_url() -> None:
    mapping = kind_config()["nodes"][0]["extraPortMappings"][0]
    service = next(d for d in by_kind(render(VALUES_KIND), "Service") if d["metadata"]["name"].endswith("-gateway"))
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["ports"][0]["nodePort"] == mapping["containerPort"]
    assert script_var("GATEWAY_URL") == f"http://localhost:{mapping['hostPort']}"
    assert kind_config()["name"] == script_var("CLUSTER")


def test_script_builds_and_loads_exactly_the_images_the_chart_runs() -> None:
    registry, tag = script_var("REGISTRY"), script_var("TAG")
    built = {f"{registry}/mcp-{component}:{tag}" for component in ("gateway", "operator", "adapter")}
    docs = render(VALUES_KIND)
    images = {c["image"] for d in by_kind(docs, "Deployment") for c in d["spec"]["template"]["spec"]["containers"]}
    operator = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-operator"))
    args = operator["spec"]["template"]["spec"]["containers"][0]["args"]
    images |= {a.split("=", 1)[1] for a in args if a.startswith("--adapter-image=")}
    assert images == built
    assert "--image-pull-policy=Never" in args, "kind images are loaded, never pulled"
    for component in ("gateway", "operator", "adapter"):
        assert (REPO / "docker" / f"{component}.Dockerfile").exists()


def test_script_is_valid_bash_and_fails_fast() -> None:
    result = subprocess.run(["bash", "-n", str(KIND_UP)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "set -euo pipefail" in KIND_UP.read_text()
    for path in re.findall(r"examples/k8s/[\w.-]+\.yaml", KIND_UP.read_text()):
        assert (REPO / path).exists(), path
