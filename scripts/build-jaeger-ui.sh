#!/usr/bin/env bash
# Jaeger's own UI for the all-in-one that scripts/build-tools.sh builds from Go modules.
#
#   scripts/build-jaeger-ui.sh SOURCE
#
# The Go module of Jaeger embeds only a placeholder page (its real UI assets are generated
# at release time and never published in a module), and no registry reachable here serves
# the built UI: not npm (`@jaegertracing/jaeger-ui` is a private workspace), not Maven Central.
# So this builds Jaeger UI v1.62.0, the release that Jaeger 1.62.0 shipped, from its source:
# SOURCE is a git directory of jaegertracing/jaeger-ui holding the tag (bare or not) or an
# unpacked source tree of that release. Its dependencies come from the npm registry through
# Yarn 1 at the versions its yarn.lock pins. The result, index.html and static/, lands in
# ~/.cache/mcp-gateway/jaeger-ui-v1.62.0, which the all-in-one serves with
# `--query.static-files` (tests/gateway/test_jaeger_ui.py, `make trace-screenshot`).
#
# Cost on a 2-core machine: ~3 min to install (1,454 packages), a few minutes to build.
set -euo pipefail

VERSION=v1.62.0
YARN=yarn@1.22.22
cache=${MCP_GATEWAY_CACHE:-$HOME/.cache/mcp-gateway}
out=$cache/jaeger-ui-$VERSION
work=$cache/build/jaeger-ui-$VERSION
log() { printf '[build-jaeger-ui] %s\n' "$*" >&2; }

if [[ -f $out/index.html ]]; then
  echo "$out"
  exit 0
fi
source=${1:-${JAEGER_UI_SOURCE:-}}
if [[ ! -f $work/package.json ]]; then
  [[ -n $source ]] || {
    echo "usage: $0 SOURCE (a git directory of jaegertracing/jaeger-ui with tag $VERSION, or its source tree)" >&2
    exit 2
  }
  mkdir -p "$work"
  if git --git-dir="$source" rev-parse -q --verify "refs/tags/$VERSION" >/dev/null 2>&1; then
    git --git-dir="$source" archive "$VERSION" | tar -x -C "$work"
  elif git -C "$source" rev-parse -q --verify "refs/tags/$VERSION" >/dev/null 2>&1; then
    git -C "$source" archive "$VERSION" | tar -x -C "$work"
  elif [[ -f $source/packages/jaeger-ui/package.json ]]; then
    cp -a "$source/." "$work/"
  else
    echo "$source holds neither tag $VERSION of jaeger-ui nor its source tree" >&2
    rm -rf "$work"
    exit 2
  fi
  grep -q "\"version\": \"${VERSION#v}\"" "$work/packages/jaeger-ui/package.json" || {
    echo "$source is not jaeger-ui $VERSION" >&2
    exit 2
  }
  # The lockfile names Yarn's default registry host; fetch the same pinned tarballs from the npm
  # registry this machine is configured for.
  registry=$(npm config get registry)
  sed -i -E "s#https://registry\.yarnpkg\.com/#${registry%/}/#" "$work/yarn.lock"
fi

cd "$work"
if [[ ! -d node_modules/vite ]]; then
  log "installing the pinned dependencies (yarn.lock)"
  npx --yes "$YARN" install --frozen-lockfile --ignore-scripts --network-timeout 600000
fi
log "building plexus (the graph library the UI imports from its workspace)"
(cd packages/plexus && NODE_ENV=production npx --yes "$YARN" build)
log "building the UI"
(cd packages/jaeger-ui && PATH="$PWD/node_modules/.bin:$work/node_modules/.bin:$PATH" NODE_ENV=production REACT_APP_VSN_STATE={} vite build)
mkdir -p "$out.tmp"
cp -a packages/jaeger-ui/build/. "$out.tmp/"
rm -rf "$out" && mv "$out.tmp" "$out"
log "done: $out"
echo "$out"
