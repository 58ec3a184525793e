#!/usr/bin/env bash
# Install what Volant needs on a fresh Debian 12 host: Debian packages (QEMU, lz4 for the guest
# kernel, Debian's python3.11 for the guest userland, e2fsprogs for the tests' root filesystem
# images, busybox-static for the tests that unpack the guest's cpio archives, dnsmasq-base and
# nftables for the dhcp network mode and port publishing: neither starts a service; iptables for
# the fallback of `volar setup` where nft is missing; dosfstools, mtools and xorriso for the
# cloud-init seeds of volant-cloudinit; with VOLANT_TEST_PACKAGES=1, as `make test` sets it, also
# cloud-init, whose `cloud-init schema` checks the cloud-config of the tests, disabled at once so
# that it never configures the host at boot), uv, the project's locked environment, and
# the system user volant-vmm that VMMs run as.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(qemu-system-x86 qemu-utils lz4 python3.11 ca-certificates e2fsprogs busybox-static dnsmasq-base nftables iptables
    dosfstools mtools xorriso)
[ "${VOLANT_TEST_PACKAGES:-0}" = 1 ] && APT_PACKAGES+=(cloud-init)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# The guest image is built from Debian packages fetched with `apt-get download`: it needs package lists.
if [ ${#missing[@]} -gt 0 ] || ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
    echo "bootstrap: apt-get update" >&2
    $SUDO apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing ${missing[*]}" >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${VOLANT_TEST_PACKAGES:-0}" = 1 ] && [ ! -e /etc/cloud/cloud-init.disabled ]; then
    $SUDO mkdir -p /etc/cloud
    $SUDO touch /etc/cloud/cloud-init.disabled
fi

if ! command -v uv >/dev/null 2>&1; then
    echo "bootstrap: installing uv" >&2
    python3 -m pip install --quiet --disable-pip-version-check uv
fi
# Never let uv download an interpreter: the host's Python 3.11 is the one we test on.
export UV_PYTHON_DOWNLOADS=never
# The project's environment has pip (so `.venv/bin/pip install <plugin>` works as the docs say), and
# is synced to the lock without removing what a user added there (--inexact): a plugin installed with
# pip survives `make demo` and `make test` (docs/adr/0040-adding-plugins.md). Modules are compiled
# as they are installed (uv does not by default): otherwise, where bytecode is not written at run
# time, every volantd start compiles them again, and that took its RSS from 53 to 67 MiB (ADR 24).
VENV="${UV_PROJECT_ENVIRONMENT:-.venv}"
[ -x "$VENV/bin/pip" ] || uv venv --quiet --seed --allow-existing --python python3.11 "$VENV"
uv sync --quiet --all-packages --locked --inexact --compile-bytecode

# The unprivileged user whose groups VMMs run with, each with ids of its VM's own (VOLANT_VMM_USER;
# `volar setup` creates it too), in the kvm group where the host has one (for /dev/kvm).
if ! getent passwd volant-vmm >/dev/null; then
    echo "bootstrap: creating the system user volant-vmm" >&2
    groups=()
    getent group kvm >/dev/null && groups=(--groups kvm)
    $SUDO useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin "${groups[@]}" volant-vmm
fi
