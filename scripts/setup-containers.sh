#!/usr/bin/env bash
# Container tools for building the images (`make images`) and, later, running a node:
# podman, podman-compose and the dnsname CNI plugin (tests/chart/test_compose.py), mmdebstrap,
# containerd, runc, the CNI plugins and iptables, from Debian when missing, plus the container
# settings that work on machines like the CI one. Idempotent:
# installs nothing and rewrites nothing when all is in place.
#
# Settings (written only if absent or written by this script before):
#   /etc/containers/containers.conf.d/50-mcp-gateway.conf
#     runtime = "runc"        crun refuses hybrid cgroup v1 hosts
#     default_ulimits = []    no CAP_SYS_RESOURCE: containers must not try to raise rlimits
#     cgroup_manager = "cgroupfs", events_logger = "file"   no systemd as PID 1
#   /etc/containers/storage.conf
#     driver = "vfs"          no overlay mounts inside an unprivileged/nested machine
set -euo pipefail

MARKER="# written by mcp-gateway scripts/setup-containers.sh"
# The dnsname CNI plugin resolves Compose service names on podman's CNI networks (Debian 12).
PACKAGES=(podman podman-compose golang-github-containernetworking-plugin-dnsname mmdebstrap containerd runc
  containernetworking-plugins iptables)
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "setup-containers: run as root (or install sudo)" >&2; exit 1; }
  SUDO=sudo
fi

missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "setup-containers: installing ${missing[*]} from Debian"
  # Other jobs may hold the dpkg lock briefly; wait for it instead of failing.
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${missing[@]}" uidmap slirp4netns >/dev/null
fi

# write_config FILE CONTENT: only when FILE is absent or ours, and only when it changes.
write_config() {
  local file=$1 content="$MARKER"$'\n'$2
  if [[ -f $file ]] && ! grep -qF "$MARKER" "$file"; then
    echo "setup-containers: $file exists and is not ours; left alone. It needs: ${2//$'\n'/ }" >&2
    return 0
  fi
  if [[ ! -f $file ]] || [[ $(cat "$file") != "$content" ]]; then
    $SUDO mkdir -p "$(dirname "$file")"
    printf '%s\n' "$content" | $SUDO tee "$file" >/dev/null
    echo "setup-containers: wrote $file"
  fi
}

write_config /etc/containers/containers.conf.d/50-mcp-gateway.conf '[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"'

write_config /etc/containers/storage.conf '[storage]
driver = "vfs"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"'

podman --version
