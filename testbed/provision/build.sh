#!/bin/bash
# usage: build.sh REPO_DIR
# Installs nexio's npm dependencies and builds it, including the rdma addon (native/build.sh).
# Shared by the Vagrant nodes; the qemu lab builds on the host (testbed/test-rdma.sh).
set -euo pipefail
REPO=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$REPO"
if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
# until node-addon-api is a dependency of the package, fetch it for the addon only
(cd native && node -e "require.resolve('node-addon-api')" 2>/dev/null) || npm install --no-save --no-audit --no-fund node-addon-api@8.9.2
native/build.sh
