#!/usr/bin/env bash
# Builds the binaries the tests need (kube-apiserver, kube-controller-manager,
# etcd, helm) from Go modules and caches them outside the repo, keyed by version.
# A second run finds them and returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache=${MCP_GATEWAY_CACHE:-$HOME/.cache/mcp-gateway}
bin=$cache/bin
mkdir -p "$bin" "$cache/build"
export GOFLAGS=-buildvcs=false CGO_ENABLED=0

log() { echo "build-tools: $*" >&2; }

# Kubernetes' own go.mod points its k8s.io/* staging modules at ./staging, which a
# module download does not contain; point them at the published v0.x releases instead.
build_kubernetes() {
  local want="$bin/kube-apiserver-$KUBERNETES_VERSION"
  [[ -x $want && -x $bin/kube-controller-manager-$KUBERNETES_VERSION ]] && return
  log "building kube-apiserver and kube-controller-manager $KUBERNETES_VERSION (first run only, several minutes)"
  local dir=$cache/build/kubernetes-$KUBERNETES_VERSION staging=v0.${KUBERNETES_VERSION#v1.}
  mkdir -p "$dir"
  (
    cd "$dir"
    local modfile
    modfile=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    {
      echo "module local/kubebuild"
      echo "go $(sed -n 's/^go //p' "$modfile")"
      echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
      echo "replace ("
      sed -n "s#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#  \1 => \1 $staging#p" "$modfile"
      echo ")"
    } >go.mod
    go get "k8s.io/kubernetes/cmd/kube-apiserver@$KUBERNETES_VERSION" "k8s.io/kubernetes/cmd/kube-controller-manager@$KUBERNETES_VERSION"
    go build -trimpath -ldflags=-s -o "$bin/kube-apiserver-$KUBERNETES_VERSION" k8s.io/kubernetes/cmd/kube-apiserver
    go build -trimpath -ldflags=-s -o "$bin/kube-controller-manager-$KUBERNETES_VERSION" k8s.io/kubernetes/cmd/kube-controller-manager
  )
}

# etcd's server module also uses local replace lines, so build it the same way.
build_etcd() {
  [[ -x $bin/etcd-$ETCD_VERSION ]] && return
  log "building etcd $ETCD_VERSION"
  local dir=$cache/build/etcd-$ETCD_VERSION
  mkdir -p "$dir"
  (
    cd "$dir"
    printf 'module local/etcdbuild\ngo 1.25\n' >go.mod
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    go build -trimpath -ldflags=-s -o "$bin/etcd-$ETCD_VERSION" go.etcd.io/etcd/server/v3
  )
}

build_helm() {
  [[ -x $bin/helm-$HELM_VERSION ]] && return
  log "building helm $HELM_VERSION"
  GOBIN=$cache/build/helm-$HELM_VERSION go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mv "$cache/build/helm-$HELM_VERSION/helm" "$bin/helm-$HELM_VERSION"
}

# promtool (rule checks and rule unit tests) and prometheus (a real scrape in the tests),
# both from one module. remove_all_sd drops the cloud service-discovery plugins (static
# and file discovery stay), which roughly halves the build; the web UI's assets are not
# embedded without the builtinassets tag, which the tests do not need (they use the API).
build_prometheus() {
  [[ -x $bin/promtool-$PROMETHEUS_VERSION && -x $bin/prometheus-$PROMETHEUS_VERSION ]] && return
  log "building promtool and prometheus $PROMETHEUS_VERSION"
  local dir=$cache/build/prometheus-$PROMETHEUS_VERSION
  mkdir -p "$dir"
  (
    cd "$dir"
    printf 'module local/prometheusbuild\ngo 1.26\n' >go.mod
    go get "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION" "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION"
    local cmd
    for cmd in promtool prometheus; do
      go build -tags remove_all_sd -trimpath -ldflags=-s -o "$bin/$cmd-$PROMETHEUS_VERSION" "github.com/prometheus/prometheus/cmd/$cmd"
    done
  )
}

# Jaeger v1's all-in-one (collector with an OTLP/HTTP receiver, in-memory storage, query API):
# the real trace backend of the tracing tests. The 1.x all-in-one, not the 2.x `cmd/jaeger`
# (an OpenTelemetry Collector distribution) whose build takes several times longer. The UI's
# assets are not embedded by a module build (a placeholder page); the tests use the API.
build_jaeger() {
  [[ -x $bin/jaeger-all-in-one-$JAEGER_VERSION ]] && return
  log "building jaeger all-in-one $JAEGER_VERSION"
  local dir=$cache/build/jaeger-$JAEGER_VERSION
  mkdir -p "$dir"
  (
    cd "$dir"
    printf 'module local/jaegerbuild\ngo 1.23\n' >go.mod
    go get "github.com/jaegertracing/jaeger/cmd/all-in-one@$JAEGER_VERSION"
    go build -trimpath -ldflags=-s -o "$bin/jaeger-all-in-one-$JAEGER_VERSION" github.com/jaegertracing/jaeger/cmd/all-in-one
  )
}

targets=${*:-kubernetes etcd helm prometheus jaeger}
for t in $targets; do "build_$t"; done
# Stable names for the tests: symlinks to the pinned versions.
for tool in kube-apiserver:$KUBERNETES_VERSION kube-controller-manager:$KUBERNETES_VERSION etcd:$ETCD_VERSION helm:$HELM_VERSION \
  promtool:$PROMETHEUS_VERSION prometheus:$PROMETHEUS_VERSION jaeger-all-in-one:$JAEGER_VERSION; do
  name=${tool%%:*} version=${tool#*:}
  [[ -x $bin/$name-$version ]] && ln -sf "$name-$version" "$bin/$name"
done
