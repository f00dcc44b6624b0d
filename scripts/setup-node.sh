#!/usr/bin/env bash
# Installs Node.js 22 (from the pinned npm package that ships the binary) plus npm,
# then the pinned conformance suites and the reference "everything" server, all in a
# cache outside the repo. Each piece carries a stamp naming its pin, so a second run
# only compares stamps and returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache=${MCP_GATEWAY_CACHE:-$HOME/.cache/mcp-gateway}
node22=$cache/node22
npmcache=$cache/npm

log() { echo "setup-node: $*" >&2; }

# True when $1/.pin holds exactly $2.
pinned() { [[ -f $1/.pin && $(<"$1/.pin") == "$2" ]]; }

# Unpacks an npm package tarball ($1 = spec) into directory $2 (replaced whole).
unpack() {
  local spec=$1 dest=$2 tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$spec" >/dev/null)
  rm -rf "$dest" && mkdir -p "$dest"
  tar xzf "$tmp"/*.tgz -C "$dest" --strip-components=1
  rm -rf "$tmp"
}

# Wrapper that runs an npm CLI script with node 22 and puts node 22 first on PATH,
# so scripts with `#!/usr/bin/env node` started by npm/npx also get node 22.
write_wrapper() {
  local name=$1 script=$2
  cat >"$node22/bin/$name" <<WRAP
#!/usr/bin/env bash
bin=\$(cd "\$(dirname "\${BASH_SOURCE[0]}")" && pwd)
PATH="\$bin:\$PATH" exec "\$bin/node" "\$bin/../lib/node_modules/npm/bin/$script" "\$@"
WRAP
  chmod +x "$node22/bin/$name"
}

install_node() {
  local pin="$NODE22_PACKAGE $NPM_PACKAGE"
  pinned "$node22" "$pin" && return
  log "installing $NODE22_PACKAGE and $NPM_PACKAGE into $node22"
  local staging=$node22.new
  rm -rf "$staging"
  unpack "$NODE22_PACKAGE" "$staging"
  unpack "$NPM_PACKAGE" "$staging/lib/node_modules/npm"
  rm -rf "$node22" && mv "$staging" "$node22"
  write_wrapper npm npm-cli.js
  write_wrapper npx npx-cli.js
  "$node22/bin/node" --version >/dev/null
  echo "$pin" >"$node22/.pin"
}

# Installs npm package spec $1 into its own directory $2 (same package name at two
# versions needs two directories).
install_package() {
  local spec=$1 dest=$2
  pinned "$dest" "$spec" && return
  log "installing $spec into $dest"
  rm -rf "$dest" && mkdir -p "$dest"
  echo '{"private": true}' >"$dest/package.json"
  "$node22/bin/npm" install --prefix "$dest" --no-audit --no-fund --loglevel=error --save-exact "$spec" >&2
  echo "$spec" >"$dest/.pin"
}

install_node
install_package "$CONFORMANCE_STABLE" "$npmcache/conformance-stable"
install_package "$CONFORMANCE_NEXT" "$npmcache/conformance-next"
install_package "$EVERYTHING_SERVER" "$npmcache/server-everything"
install_package "$INSPECTOR" "$npmcache/inspector"
