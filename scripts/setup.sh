#!/usr/bin/env bash
# Install everything Herd needs on a fresh Debian 12 machine, idempotently and without
# prompts: Debian packages (ZooKeeper, libvirt headers, libvirtd + QEMU for the real-guest
# tests), a virtualenv in .venv, the project in editable mode with its test extra, and the
# web console's pinned third-party code (npm ci in server/ui; Chromium to test it).
# Fast when already done: each step checks before it acts. Called by `make setup`.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(zookeeper libnetty-java openssl default-jre-headless libvirt-dev pkg-config libvirt-clients wrk
              libvirt-daemon-system libvirt-daemon-driver-qemu qemu-system-x86 iproute2
              dnsmasq-base nftables ipxe-qemu qemu-utils prometheus chromium chromium-driver)
# npm from Debian unless a Node.js with npm is there already (NodeSource's ships its own).
command -v npm >/dev/null || APT_PACKAGES+=(npm)
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  # A container without systemd: keep package scripts from trying to start services.
  if [ ! -e /usr/sbin/policy-rc.d ] && [ ! -d /run/systemd/system ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
  fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
  || { echo "setup: Herd needs Python 3.11 (found $("$PYTHON" --version))" >&2; exit 1; }

stamp=.venv/.herd-installed
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Herd and its test tools into .venv"
  quiet() { grep -v "is ignored: it is neither a file nor a directory" || true; }
  .venv/bin/pip install -q --disable-pip-version-check --upgrade pip 2>&1 | quiet
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | quiet
  touch "$stamp"
fi

ui=server/ui
if [ ! -f "$ui/node_modules/.herd-installed" ] || [ "$ui/package-lock.json" -nt "$ui/node_modules/.herd-installed" ]; then
  echo "setup: installing the web console's third-party code (npm ci)"
  npm ci --prefix "$ui" --omit=dev --no-audit --no-fund --loglevel=error >/dev/null
  touch "$ui/node_modules/.herd-installed"
fi
