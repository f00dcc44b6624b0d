#!/usr/bin/env bash
# Builds the gateway, operator and adapter images from docker/*.Dockerfile with docker
# (when its daemon answers) or podman, tagged as the chart's kind values expect
# (ghcr.io/mcp-gateway/mcp-<component>:dev).
#
#   scripts/build-images.sh [--local-bases] [--save DIR] [--engine docker|podman]
#                           [--registry R] [--tag T] [gateway operator adapter]
#
# --local-bases  make the base images on this machine instead of pulling public ones:
#                a Debian root filesystem (mmdebstrap) with Python for PYTHON_IMAGE, and a
#                root filesystem holding node and npm (the pinned npm packages of
#                scripts/versions.env) for NODE_IMAGE; both imported with `podman import`
#                and passed as build args. The Dockerfiles stay standard: without the flag
#                they build FROM their public bases. Also a PostgreSQL stand-in,
#                localhost/mcp-postgres-standin:15 (Debian's postgresql-15 with the official
#                image's POSTGRES_* contract, scripts/postgres-standin-entrypoint.sh), for the
#                Compose test (POSTGRES_IMAGE in deploy/compose/compose.yaml) and the pod tests
#                (saved as DIR/mcp-postgres.tar with --save).
# --save DIR     also write each image as an archive DIR/mcp-<component>.tar (OCI with
#                podman), e.g. for `ctr images import`; unchanged images are not re-saved.
#
# Cached by content: each image carries a label with a hash of its Dockerfile, the build
# context (what .dockerignore lets in), the build args and the bases; an image whose label
# matches is not rebuilt. Local bases are cached as tarballs in ~/.cache/mcp-gateway/images.
# Podman builds use chroot isolation and the host's CA bundle and pip.conf (mounted
# read-only for pip in the build stage, never part of an image). scripts/setup-containers.sh
# installs podman and mmdebstrap. Builds take the machine-wide lock /tmp/mcp-heavy.lock.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
# shellcheck source=versions.env
source scripts/versions.env

REGISTRY=ghcr.io/mcp-gateway
TAG=dev
ENGINE=${MCP_CONTAINER_ENGINE:-}
LOCAL_BASES=false
SAVE_DIR=""
CACHE=${MCP_GATEWAY_CACHE:-$HOME/.cache/mcp-gateway}/images
LOCK=/tmp/mcp-heavy.lock
COMPONENTS=()
LABEL=dev.mcpgateway.source-hash
# The build context: keep in step with .dockerignore (a test checks the Dockerfiles' COPY sources).
CONTEXT=(pyproject.toml README.md common/mcp_common adapter/mcp_adapter gateway/mcp_gateway operator/mcp_operator)
PYTHON_PACKAGES=python3,python3-venv,python3-pip,python-is-python3,ca-certificates,passwd
# Debian marks its Python as externally managed; the Dockerfiles' RUN steps use pip as the
# python image allows, so the marker goes (only venvs are installed into anyway).
PYTHON_HOOK='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED'

log() { echo "build-images: $*" >&2; }
die() { log "$*"; exit 1; }

while (($#)); do
  case $1 in
    --local-bases) LOCAL_BASES=true ;;
    --save) SAVE_DIR=${2:?--save needs a directory}; shift ;;
    --engine) ENGINE=${2:?--engine needs docker or podman}; shift ;;
    --registry) REGISTRY=${2:?--registry needs a value}; shift ;;
    --tag) TAG=${2:?--tag needs a value}; shift ;;
    gateway | operator | adapter) COMPONENTS+=("$1") ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done
((${#COMPONENTS[@]})) || COMPONENTS=(gateway operator adapter)

if [[ -z $ENGINE ]]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    ENGINE=docker
  elif command -v podman >/dev/null; then
    ENGINE=podman
  else
    die "no container engine: start docker, or install podman with scripts/setup-containers.sh"
  fi
fi
case $ENGINE in
  docker | podman) command -v "$ENGINE" >/dev/null || die "$ENGINE is not installed" ;;
  *) die "--engine must be docker or podman, not '$ENGINE'" ;;
esac
if $LOCAL_BASES; then
  [[ $ENGINE == podman ]] || die "--local-bases needs podman (podman import); found engine $ENGINE"
  command -v mmdebstrap >/dev/null || die "mmdebstrap is missing: run scripts/setup-containers.sh"
fi

sha() { sha256sum | cut -c1-16; }
# timed CMD...: run CMD and log how long it took (explicit status: callers use it in `||` lists).
timed() {
  local start=$SECONDS status=0
  "$@" || status=$?
  log "$(basename "$1") ${2:-} took $((SECONDS - start)) s (exit $status)"
  return "$status"
}
exists() { "$ENGINE" image inspect "$1" >/dev/null 2>&1; }
label_of() { "$ENGINE" image inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null || true; }
# heavy CMD...: run CMD holding the machine-wide lock for CPU-heavy work; says how long it waited.
heavy() {
  local asked=$SECONDS status=0
  exec 9>>"$LOCK"
  flock 9
  ((SECONDS - asked < 2)) || log "waited $((SECONDS - asked)) s for $LOCK"
  "$@" || status=$?
  flock -u 9
  return "$status"
}

# The apt sources mmdebstrap uses: the machine's own (so a mirror or proxy it uses applies).
debian_sources() {
  local file
  for file in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    [[ -s $file ]] && { echo "$file"; return; }
  done
  die "no Debian apt sources found (/etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list)"
}

# import_base NAME KEY TARBALL-MAKER: localhost/mcp-base-NAME:KEY from a cached tarball,
# made by the function TARBALL-MAKER (given the path) when missing.
import_base() {
  local name=$1 key=$2 make=$3 image="localhost/mcp-base-$1:$2" tarball="$CACHE/bases/$1-$2.tar"
  if ! exists "$image"; then
    if [[ ! -s $tarball ]]; then
      mkdir -p "$CACHE/bases"
      log "making base $name ($key)"
      rm -rf "$tarball.part.tar"
      "$make" "$tarball.part.tar" # mmdebstrap picks its output format from the extension
      mv "$tarball.part.tar" "$tarball"
    fi
    podman import --quiet "$tarball" "$image" >/dev/null
  fi
  echo "$image"
}

make_python_base() {
  heavy timed mmdebstrap --quiet --variant=minbase --include="$PYTHON_PACKAGES" \
    --customize-hook="$PYTHON_HOOK" bookworm "$1" "$(debian_sources)"
}

POSTGRES_PACKAGES=postgresql-15,ca-certificates
POSTGRES_ENTRYPOINT=scripts/postgres-standin-entrypoint.sh
# The official image's layout: PGDATA owned by postgres (a new named volume copies it up).
POSTGRES_HOOK='mkdir -p "$1/var/lib/postgresql/data" "$1/var/run/postgresql" && chmod 700 "$1/var/lib/postgresql/data" && chroot "$1" chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql'
make_postgres_base() {
  heavy timed mmdebstrap --quiet --variant=minbase --include="$POSTGRES_PACKAGES" \
    --customize-hook="$POSTGRES_HOOK" \
    --customize-hook="copy-in $POSTGRES_ENTRYPOINT /usr/local/bin" \
    --customize-hook='chmod 755 "$1/usr/local/bin/postgres-standin-entrypoint.sh"' \
    bookworm "$1" "$(debian_sources)"
}
# postgres_standin KEY: localhost/mcp-postgres-standin:15 (entry point, user, port) from a cached root filesystem.
postgres_standin() {
  local key=$1 image=localhost/mcp-postgres-standin:15 tarball="$CACHE/bases/postgres-$1.tar"
  [[ $(label_of "$image") == "$key" ]] && return
  if [[ ! -s $tarball ]]; then
    mkdir -p "$CACHE/bases"
    log "making the PostgreSQL stand-in ($key)"
    rm -rf "$tarball.part.tar"
    make_postgres_base "$tarball.part.tar"
    mv "$tarball.part.tar" "$tarball"
  fi
  podman import --quiet --change 'USER postgres' --change 'ENV PGDATA=/var/lib/postgresql/data' \
    --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'EXPOSE 5432' --change 'ENTRYPOINT ["/usr/local/bin/postgres-standin-entrypoint.sh"]' \
    --change "LABEL $LABEL=$key" "$tarball" "$image" >/dev/null
}

NODE_HOME=${MCP_GATEWAY_CACHE:-$HOME/.cache/mcp-gateway}/node22
make_node_base() {
  local root
  root=$(mktemp -d)
  mkdir -p "$root/usr/local/bin" "$root/usr/local/lib/node_modules"
  cp "$NODE_HOME/bin/node" "$root/usr/local/bin/node"
  cp -a "$NODE_HOME/lib/node_modules/npm" "$root/usr/local/lib/node_modules/npm"
  tar -C "$root" --numeric-owner --owner=0 --group=0 -cf "$1" usr
  rm -rf "$root"
}

PYTHON_ARGS=()
NODE_ARGS=(--build-arg "NODE_VERSION=${NODE22_PACKAGE##*@}")
BASES_KEY=public
if $LOCAL_BASES; then
  # A base's key names its recipe: change the packages, the hook or the layout, and it is remade.
  python_key=$(printf '%s\n' "$PYTHON_PACKAGES" bookworm "$PYTHON_HOOK" "$(cat "$(debian_sources)")" | sha)
  if [[ ! -x $NODE_HOME/bin/node || $(cat "$NODE_HOME/.pin" 2>/dev/null) != "$NODE22_PACKAGE $NPM_PACKAGE" ]]; then
    scripts/setup-node.sh
  fi
  node_key=$(printf '%s\n' "$NODE22_PACKAGE" "$NPM_PACKAGE" usr/local/bin/node usr/local/lib/node_modules/npm | sha)
  python_image=$(import_base python "$python_key" make_python_base)
  node_image=$(import_base node "$node_key" make_node_base)
  PYTHON_ARGS+=(--build-arg "PYTHON_IMAGE=$python_image")
  NODE_ARGS+=(--build-arg "NODE_IMAGE=$node_image")
  BASES_KEY="$python_key $node_key"
  postgres_key=$(printf '%s\n' "$POSTGRES_PACKAGES" bookworm "$POSTGRES_HOOK" "$(cat "$POSTGRES_ENTRYPOINT")" \
    "$(cat "$(debian_sources)")" | sha)
  postgres_standin "$postgres_key"
fi

ENGINE_ARGS=()
if [[ $ENGINE == podman ]]; then
  # chroot isolation: RUN steps under runc would try to set RLIMIT_NPROC, which needs a capability.
  # No intermediate layers: with the vfs driver each one is a full copy of the root filesystem,
  # and the content hash above already decides when to build.
  ENGINE_ARGS+=(--isolation chroot --layers=false)
  $LOCAL_BASES && ENGINE_ARGS+=(--pull=never)
  # The host's trust settings, for pip in the build stage (e.g. behind a TLS-inspecting proxy).
  [[ -d /etc/ssl/certs ]] && ENGINE_ARGS+=(-v /etc/ssl/certs:/etc/ssl/certs:ro)
  [[ -f /etc/pip.conf ]] && ENGINE_ARGS+=(-v /etc/pip.conf:/etc/pip.conf:ro)
fi

# The build args of component $1 (only the adapter has a Node.js stage).
build_args() {
  echo "${PYTHON_ARGS[@]}"
  [[ $1 == adapter ]] && echo "${NODE_ARGS[@]}"
  return 0
}

# Hash of everything that goes into the image of component $1.
source_hash() {
  {
    echo "$1 $ENGINE $BASES_KEY"
    build_args "$1"
    sha256sum "docker/$1.Dockerfile" .dockerignore
    find "${CONTEXT[@]}" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' ! -path '*/.mypy_cache/*' -print0 |
      LC_ALL=C sort -z | xargs -0 sha256sum
  } | sha
}

save() {
  local component=$1 image=$2 key=$3 archive="$SAVE_DIR/mcp-$1.tar"
  [[ -s $archive && $(cat "$archive.key" 2>/dev/null) == "$key" ]] && return
  mkdir -p "$SAVE_DIR"
  local start=$SECONDS
  rm -f "$archive" "$archive.key"
  if [[ $ENGINE == podman ]]; then
    podman save --quiet --format oci-archive -o "$archive" "$image"
  else
    docker save -o "$archive" "$image"
  fi
  echo "$key" >"$archive.key"
  log "saved $archive ($((SECONDS - start)) s)"
}

for component in "${COMPONENTS[@]}"; do
  image="$REGISTRY/mcp-$component:$TAG"
  key=$(source_hash "$component")
  if exists "$image" && [[ $(label_of "$image") == "$key" ]]; then
    log "$image is up to date ($key)"
  else
    log "building $image ($key) with $ENGINE"
    previous=$("$ENGINE" image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
    args=("${PYTHON_ARGS[@]}")
    [[ $component == adapter ]] && args+=("${NODE_ARGS[@]}")
    heavy timed "$ENGINE" build "${ENGINE_ARGS[@]}" "${args[@]}" --label "$LABEL=$key" \
      -f "docker/$component.Dockerfile" -t "$image" .
    # The image this one replaces is now untagged: drop it (vfs keeps a full copy of each).
    [[ -z $previous ]] || "$ENGINE" image rm "$previous" >/dev/null 2>&1 || true
  fi
  [[ -n $SAVE_DIR ]] && save "$component" "$image" "$key"
done
# The pod tests run PostgreSQL as a pod (tests/pods/): its stand-in goes to containerd too.
if $LOCAL_BASES && [[ -n $SAVE_DIR ]]; then
  save postgres localhost/mcp-postgres-standin:15 "$postgres_key"
fi
exit 0
