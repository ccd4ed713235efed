#!/usr/bin/env bash
# Installs what a Debian 12 host needs to run Corral and its tests. Idempotent: a second run
# installs nothing. QEMU comes from bookworm-backports (10.0.x): bookworm's own 7.2 would
# remove the backported qemu-utils (see shared/HOST-NOTES.md).
set -euo pipefail

log() { printf '[corral install] %s\n' "$*" >&2; }

need_pkgs=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

for p in e2fsprogs openssh-client cpio zstd lz4 xz-utils binutils mmdebstrap nftables iproute2 dnsmasq-base sqlite3; do
  have "$p" || need_pkgs+=("$p")
done
qemu_ok=1
have qemu-system-x86 || qemu_ok=0

if [ ${#need_pkgs[@]} -eq 0 ] && [ $qemu_ok -eq 1 ]; then
  log "host packages present"
else
  if [ $(id -u) -ne 0 ]; then
    log "missing packages (${need_pkgs[*]} qemu-system-x86); run this script as root"
    exit 1
  fi
  src=/etc/apt/sources.list.d/corral-bookworm-backports.sources
  if [ ! -f "$src" ] && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    log "adding bookworm-backports (for QEMU 10)"
    cat > "$src" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  log "apt-get update"
  DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  if [ ${#need_pkgs[@]} -gt 0 ]; then
    log "installing ${need_pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" >&2
  fi
  if [ $qemu_ok -eq 0 ]; then
    log "installing qemu-system-x86 from bookworm-backports"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -t bookworm-backports qemu-system-x86 qemu-system-data >&2
  fi
fi

# Python clients used by the conformance tests (aws CLI v1 and boto3).
if ! python3 -c 'import boto3, awscli, pytest' 2>/dev/null || ! command -v aws >/dev/null; then
  log "installing awscli, boto3 and pytest from PyPI"
  python3 -m pip install -q awscli boto3 pytest >&2
fi
# Ansible (the `ansible` package bundles the amazon.aws collection) for tests/ansible.
if ! python3 -c 'import ansible, ansible_collections.amazon.aws' 2>/dev/null; then
  log "installing ansible from PyPI"
  python3 -m pip install -q ansible >&2
fi
log "done"
