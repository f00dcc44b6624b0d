#!/usr/bin/env bash
# mcp-gateway on a local kind cluster, end to end (docs/kind.md explains each step):
# cluster -> images built and loaded -> chart installed -> example applied ->
# API key minted -> one MCP tool call through the gateway.
# Needs: docker (or podman with KIND_EXPERIMENTAL_PROVIDER=podman), kind, kubectl,
# helm 3, curl, and this repository's Python environment (.venv, scripts/setup-python.sh)
# for the MCP client. The stdio example runs `npx` inside the adapter pod, so the
# cluster needs to reach the npm registry.
# Re-running is safe: every step is create-or-update.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=versions.env
source scripts/versions.env

CLUSTER=${KIND_CLUSTER:-mcp-gateway}
NAMESPACE=${MCP_NAMESPACE:-mcp-system}
RELEASE=${MCP_RELEASE:-mcp-gateway}
TAG=dev
REGISTRY=ghcr.io/mcp-gateway
GATEWAY_URL=http://localhost:8080
PYTHON=${PYTHON:-.venv/bin/python}

step() { printf '\n==> %s\n' "$*" >&2; }
need() { command -v "$1" >/dev/null || { echo "kind-up: '$1' is not installed: $2" >&2; exit 1; }; }
need docker "install Docker Desktop / docker engine (or podman, then export KIND_EXPERIMENTAL_PROVIDER=podman)"
need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
need kubectl "https://kubernetes.io/docs/tasks/tools/"
need helm "https://helm.sh/docs/intro/install/"
need curl "install curl from your package manager"
[[ -x $PYTHON ]] || { echo "kind-up: $PYTHON not found: run scripts/setup-python.sh first (the MCP client runs from it)" >&2; exit 1; }

step "1/7 kind cluster '$CLUSTER' (kind-config.yaml: gateway on $GATEWAY_URL)"
if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --config kind-config.yaml --wait 120s
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

step "2/7 building images (docker/*.Dockerfile, the same build as make images; unchanged ones are kept)"
scripts/build-images.sh --engine "${KIND_EXPERIMENTAL_PROVIDER:-docker}" --registry "$REGISTRY" --tag "$TAG"

step "3/7 loading images into the kind node (no registry involved)"
for component in gateway operator adapter; do
  kind load docker-image --name "$CLUSTER" "$REGISTRY/mcp-$component:$TAG"
done

step "4/7 helm install (CRDs, operator, gateway)"
helm upgrade --install "$RELEASE" charts/mcp-gateway \
  --namespace "$NAMESPACE" --create-namespace \
  --values charts/mcp-gateway/ci/kind-values.yaml \
  --wait --timeout 5m
kubectl rollout status "deployment/$RELEASE-operator" -n "$NAMESPACE" --timeout=120s

step "5/7 applying an example: tenant 'acme', a stdio upstream (server-everything via npx), profile 'acme-demo'"
kubectl apply -f examples/k8s/namespace.yaml -f examples/k8s/tenant.yaml -f examples/k8s/secret-api-keys.yaml \
  -f examples/k8s/upstream-stdio.yaml
kubectl apply -f - <<'YAML'
apiVersion: mcpgateway.dev/v1alpha1
kind: Profile
metadata:
  name: acme-demo
  namespace: acme-tools
spec:
  upstreams:
    - name: everything
  auth:
    mode: apiKey
YAML
# The adapter pod downloads the server with npx on first start: allow a few minutes.
kubectl wait --for=condition=Ready upstream/everything -n acme-tools --timeout=300s
kubectl wait --for=condition=Ready profile/acme-demo -n acme-tools --timeout=120s
kubectl rollout status "deployment/$RELEASE-gateway" -n "$NAMESPACE" --timeout=120s

step "6/7 minting an API key for tenant 'acme' through the admin API"
ADMIN_TOKEN=$(kubectl get secret "$RELEASE-gateway" -n "$NAMESPACE" -o jsonpath='{.data.admin-token}' | base64 -d)
API_KEY=$(curl -fsS -X POST "$GATEWAY_URL/admin/v1/tenants/acme/keys" \
  -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
  -d '{"name": "kind-demo", "profiles": ["acme-demo"]}' |
  "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["key"])')

step "7/7 calling the 'echo' tool through $GATEWAY_URL/acme-demo/mcp with an MCP client"
MCP_URL="$GATEWAY_URL/acme-demo/mcp" MCP_KEY="$API_KEY" "$PYTHON" - <<'PY'
import asyncio, os

import httpx
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


async def main() -> None:
    headers = {"Authorization": f"Bearer {os.environ['MCP_KEY']}"}
    async with httpx.AsyncClient(headers=headers, timeout=60) as http, Client(
        streamable_http_client(os.environ["MCP_URL"], http_client=http)
    ) as client:
        tools = await client.list_tools()
        print("tools:", ", ".join(sorted(t.name for t in tools.tools)))
        result = await client.call_tool("echo", {"message": "hello from kind"})
        print("echo ->", result.content[0].text)


asyncio.run(main())
PY

cat <<EOF2

mcp-gateway is running in kind.
  endpoint:  $GATEWAY_URL/acme-demo/mcp
  API key:   $API_KEY
  client config (streamable HTTP):
    {"mcpServers": {"acme-demo": {"type": "http", "url": "$GATEWAY_URL/acme-demo/mcp",
      "headers": {"Authorization": "Bearer $API_KEY"}}}}
Tear down with: kind delete cluster --name $CLUSTER
EOF2
