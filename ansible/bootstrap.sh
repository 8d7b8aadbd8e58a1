#!/usr/bin/env bash
# Install everything lab needs on a Debian bookworm host (run as root):
# QEMU, mmdebstrap, the distro kernel lab boots by default, the kernel
# build toolchain, and lab itself (editable, with its test dependencies)
# in a virtual environment of its own, with /usr/local/bin/lab pointing
# at it. Safe to run again: an existing venv is reused.
# ansible/lab-host.yml does the same across many hosts.
#
#   LAB_VENV    the venv (default /opt/lab/venv)
#   LAB_PYTHON  the interpreter that creates it (default /usr/bin/python3,
#               Debian's, which python3-venv from packages.txt belongs to)
set -euo pipefail
LAB_VENV=$(realpath -m "${LAB_VENV:-/opt/lab/venv}")   # relative to the caller's directory
LAB_PYTHON=${LAB_PYTHON:-/usr/bin/python3}
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

# lab and its Python dependencies go into a venv, never into Debian's
# externally managed system Python.
# (Re)create it only when it has no working pip: a half-made venv (say,
# from a run before python3-venv was installed) is completed in place.
if ! "$LAB_VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    echo "bootstrap: creating $LAB_VENV" >&2
    mkdir -p "$(dirname "$LAB_VENV")"
    "$LAB_PYTHON" -m venv "$LAB_VENV"
fi
"$LAB_VENV/bin/python" -m pip install -q -e "$PWD[test]"
ln -sfn "$LAB_VENV/bin/lab" /usr/local/bin/lab
found=$(command -v lab || true)
if [ "$found" != /usr/local/bin/lab ]; then
    echo "bootstrap: warning: 'lab' in PATH is ${found:-missing}, not /usr/local/bin/lab" >&2
fi
echo "bootstrap: done; lab is $LAB_VENV/bin/lab (/usr/local/bin/lab); tests: $LAB_VENV/bin/python -m pytest -q -rs tests; try: lab doctor" >&2
