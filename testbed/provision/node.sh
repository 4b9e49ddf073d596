#!/bin/bash
# Installs Node.js 20 when the machine has none, or an older one (Debian 12 ships 18).
# Used by the Vagrant nodes; the qemu lab runs the host's node. Needs network (nodejs.org).
set -euo pipefail
want=${NODE_MAJOR:-20}
have=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$have" -ge "$want" ]; then echo "provision: node $(node -v) ok"; exit 0; fi
arch=$(dpkg --print-architecture); case $arch in amd64) arch=x64;; arm64) arch=arm64;; esac
command -v curl >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl ca-certificates xz-utils >/dev/null; }
ver=$(curl -fsSL "https://nodejs.org/dist/latest-v${want}.x/SHASUMS256.txt" | grep -o "node-v${want}[0-9.]*-linux-${arch}.tar.xz" | head -1)
[ -n "$ver" ] || { echo "provision: cannot find a Node $want build for $arch" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
curl -fsSL -o "$tmp/$ver" "https://nodejs.org/dist/latest-v${want}.x/$ver"
(cd "$tmp" && curl -fsSL "https://nodejs.org/dist/latest-v${want}.x/SHASUMS256.txt" | grep " $ver\$" | sha256sum -c - >/dev/null)
tar -xJf "$tmp/$ver" -C /usr/local --strip-components=1 --exclude='*/CHANGELOG.md' --exclude='*/README.md' --exclude='*/LICENSE'
hash -r; echo "provision: installed node $(node -v)"
