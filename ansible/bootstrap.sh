#!/usr/bin/env bash
# Install everything lab needs on a Debian bookworm host (run as root):
# QEMU, mmdebstrap, the distro kernel lab boots by default, the kernel
# build toolchain, and lab itself (editable, with its test dependencies).
# ansible/lab-host.yml does the same across many hosts.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: run as root (apt-get, and image builds need root)" >&2
    exit 2
fi
export DEBIAN_FRONTEND=noninteractive
PACKAGES=$(grep -v '^#' ansible/packages.txt | tr '\n' ' ')
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $PACKAGES

# Debian installs the kernel image 0600; lab reads it to boot it.
chmod o+r /boot/vmlinuz-* 2>/dev/null || true

pip_install() { python3 -m pip install -q "$@" || python3 -m pip install -q --break-system-packages "$@"; }
pip_install -e '.[test]'
echo "bootstrap: done; try: lab doctor" >&2
