#!/bin/bash
# Builds the addon with node-gyp (bundled with npm) against the installed node's headers.
# Where rdma-core's headers are missing, binding.gyp builds nothing and this exits 0:
# native/index.js then throws NEXIO_ERR_RDMA_UNAVAILABLE, saying what to install.
set -euo pipefail
cd "$(dirname "$0")"
GYP=$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js
NODEDIR=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
args=(rebuild --jobs=2)
[ -f "$NODEDIR/include/node/node_api.h" ] && args+=(--nodedir="$NODEDIR")   # no header download
node "$GYP" "${args[@]}" >build.log 2>&1 || { cat build.log; exit 1; }
if [ -f build/Release/nexio_rdma.node ]; then echo "native: built build/Release/nexio_rdma.node"
else echo "native: rdma-core headers not found, addon not built (apt-get install rdma-core libibverbs-dev librdmacm-dev ibverbs-providers)"; fi
