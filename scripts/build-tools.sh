#!/usr/bin/env bash
# Builds the binaries the tests need (kube-apiserver, kube-controller-manager, etcd, helm,
# promtool and prometheus; for the node: kubelet, kube-proxy, kube-scheduler, CoreDNS, a
# pause binary and the NetworkPolicy agent) from Go modules, and downloads Keycloak (the tests' OIDC provider) with Maven;
# all cached outside the repo, keyed by version.
# A second run finds them and returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
# The pause binary is keyed by its source (it is ours, not a pinned release).
PAUSE_VERSION=$(sha256sum "$here/pause/main.go" | cut -c1-12)
# The policy agent: the pinned module behind a command of ours (scripts/netpol/main.go).
NETPOL_VERSION=$KUBE_NETWORK_POLICIES_VERSION-$(sha256sum "$here/netpol/main.go" | cut -c1-12)

cache=${MCP_GATEWAY_CACHE:-$HOME/.cache/mcp-gateway}
bin=$cache/bin
mkdir -p "$bin" "$cache/build"
export GOFLAGS=-buildvcs=false CGO_ENABLED=0

log() { echo "build-tools: $*" >&2; }

# gobuild OUT ARGS...: go build into OUT.partial, then rename, so an interrupted build
# never leaves a truncated binary that a later run would take as cached.
gobuild() {
  local out=$1
  shift
  go build -trimpath -ldflags=-s -o "$out.partial" "$@" && mv "$out.partial" "$out"
}

KUBE_CONTROL=(kube-apiserver kube-controller-manager)
KUBE_NODE=(kubelet kube-proxy kube-scheduler kubectl)

# kube_module_dir: a module (in the shared build dir, so the Go build cache is shared by
# every Kubernetes binary) requiring k8s.io/kubernetes with the staging replace lines.
kube_module_dir() {
  local dir=$cache/build/kubernetes-$KUBERNETES_VERSION staging=v0.${KUBERNETES_VERSION#v1.}
  mkdir -p "$dir"
  (
    cd "$dir"
    [[ -s go.mod ]] && exit 0 # made before (then extended by go get)
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
  )
  echo "$dir"
}

# build_kube_commands NAME...: build k8s.io/kubernetes/cmd/NAME for each NAME not yet cached.
build_kube_commands() {
  local missing=() name dir
  for name in "$@"; do [[ -x $bin/$name-$KUBERNETES_VERSION ]] || missing+=("$name"); done
  ((${#missing[@]})) || return 0
  log "building ${missing[*]} $KUBERNETES_VERSION (first run only, several minutes)"
  dir=$(kube_module_dir)
  (
    cd "$dir"
    local packages=()
    for name in "${missing[@]}"; do packages+=("k8s.io/kubernetes/cmd/$name@$KUBERNETES_VERSION"); done
    go get "${packages[@]}"
    for name in "${missing[@]}"; do
      local start=$SECONDS
      gobuild "$bin/$name-$KUBERNETES_VERSION" "k8s.io/kubernetes/cmd/$name"
      log "$name took $((SECONDS - start)) s"
    done
  )
}

# Kubernetes' own go.mod points its k8s.io/* staging modules at ./staging, which a
# module download does not contain; point them at the published v0.x releases instead.
build_kubernetes() { build_kube_commands "${KUBE_CONTROL[@]}"; }

# The node the pod tests run (tests/support/node.py): kubelet, kube-proxy, kube-scheduler, and
# kubectl for `kubectl apply -k` (tests/pods/test_examples_pods.py).
build_node() { build_kube_commands "${KUBE_NODE[@]}"; }

# CoreDNS, so pods resolve Service names (the node fixture runs it on the host).
build_coredns() {
  [[ -x $bin/coredns-$COREDNS_VERSION ]] && return
  log "building coredns $COREDNS_VERSION"
  local start=$SECONDS
  GOBIN=$cache/build/coredns-$COREDNS_VERSION go install "github.com/coredns/coredns@$COREDNS_VERSION"
  mv "$cache/build/coredns-$COREDNS_VERSION/coredns" "$bin/coredns-$COREDNS_VERSION"
  log "coredns took $((SECONDS - start)) s"
}

# The pod sandbox ("pause") binary: a tiny static program that sleeps until signalled.
# The node fixture wraps it in an image (no registry needed).
build_pause() {
  local want=$bin/pause-$PAUSE_VERSION
  [[ -x $want ]] && return
  log "building pause $PAUSE_VERSION"
  local dir=$cache/build/pause-$PAUSE_VERSION
  mkdir -p "$dir"
  cp "$here/pause/main.go" "$dir/main.go"
  printf 'module local/pause\ngo 1.22\n' >"$dir/go.mod"
  (cd "$dir" && gobuild "$want" .)
}

# The node's NetworkPolicy agent: sigs.k8s.io/kube-network-policies' controller behind our own
# small command (kubeconfig, SIGTERM; scripts/netpol/main.go says why), so the pod tests see
# the chart's NetworkPolicies enforced (the bridge CNI plugin enforces none).
build_netpol() {
  local want=$bin/kube-network-policies-$NETPOL_VERSION
  [[ -x $want ]] && return
  log "building kube-network-policies $NETPOL_VERSION"
  local dir=$cache/build/kube-network-policies-$NETPOL_VERSION start=$SECONDS
  mkdir -p "$dir"
  cp "$here/netpol/main.go" "$dir/main.go"
  (
    cd "$dir"
    printf 'module local/netpol\ngo 1.23\n' >go.mod
    go get "sigs.k8s.io/kube-network-policies@$KUBE_NETWORK_POLICIES_VERSION"
    go mod tidy
    gobuild "$want" .
  )
  log "kube-network-policies took $((SECONDS - start)) s"
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
    gobuild "$bin/etcd-$ETCD_VERSION" go.etcd.io/etcd/server/v3
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
      gobuild "$bin/$cmd-$PROMETHEUS_VERSION" -tags remove_all_sd "github.com/prometheus/prometheus/cmd/$cmd"
    done
  )
}

# Keycloak: the distribution zip from Maven Central through mvn (its configured repository),
# unpacked and pre-built (`kc.sh build`: Quarkus augmentation, ~40 CPU-seconds) for an in-memory
# H2 database and health endpoints, so each test session's `start --optimized` skips that step.
# `bin/keycloak` points at kc.sh once the build is complete.
build_keycloak() {
  local home=$cache/keycloak-$KEYCLOAK_VERSION
  if [[ ! -f $home/.built ]]; then
    if ! command -v mvn >/dev/null || ! command -v java >/dev/null; then
      log "installing Maven and Java 17 from Debian's packages"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven openjdk-17-jre-headless unzip >/dev/null
    fi
    log "downloading and building Keycloak $KEYCLOAK_VERSION (first run only, ~170 MB)"
    local dir=$cache/build/keycloak-$KEYCLOAK_VERSION
    rm -rf "$home" "$dir" && mkdir -p "$dir"
    mvn -q -B dependency:copy -Dartifact="org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip" -DoutputDirectory="$dir"
    unzip -q "$dir/keycloak-quarkus-dist-$KEYCLOAK_VERSION.zip" -d "$dir"
    "$dir/keycloak-$KEYCLOAK_VERSION/bin/kc.sh" build --db=dev-mem --cache=local --health-enabled=true >"$dir/build.log" 2>&1 ||
      { tail -n 30 "$dir/build.log" >&2; return 1; }
    mv "$dir/keycloak-$KEYCLOAK_VERSION" "$home"
    touch "$home/.built"
    rm -rf "$dir"
  fi
  ln -sfn "$home/bin/kc.sh" "$bin/keycloak"
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
    gobuild "$bin/jaeger-all-in-one-$JAEGER_VERSION" github.com/jaegertracing/jaeger/cmd/all-in-one
  )
}

# The project's images for the pod tests' node (tests/support/node.py reads the archives),
# built from local bases, cached by content (scripts/build-images.sh; needs podman and
# mmdebstrap: scripts/setup-containers.sh). Last: it takes the machine-wide lock.
build_images() {
  "$here/build-images.sh" --local-bases --save "$cache/images/archives"
}

# Stable names for the tests: symlinks to the pinned versions, made after each target so a
# test waiting for one tool does not wait for the targets after it.
link_tools() {
  local tools=(etcd:$ETCD_VERSION helm:$HELM_VERSION coredns:$COREDNS_VERSION pause:$PAUSE_VERSION
    kube-network-policies:$NETPOL_VERSION
    promtool:$PROMETHEUS_VERSION prometheus:$PROMETHEUS_VERSION jaeger-all-in-one:$JAEGER_VERSION) tool name version
  for name in "${KUBE_CONTROL[@]}" "${KUBE_NODE[@]}"; do tools+=("$name:$KUBERNETES_VERSION"); done
  for tool in "${tools[@]}"; do
    name=${tool%%:*} version=${tool#*:}
    if [[ -x $bin/$name-$version ]]; then
      ln -sf "$name-$version" "$bin/$name"
    else
      rm -f "$bin/$name" # a link to another version: tests must wait for the pinned one
    fi
  done
}

# Keycloak first: a download plus a short build, so its tests need not wait for the Go builds.
targets=${*:-keycloak kubernetes etcd helm prometheus jaeger node coredns pause netpol images}
link_tools
for t in $targets; do
  started=$SECONDS
  "build_$t"
  link_tools
  log "$t ready after $((SECONDS - started)) s"
done
