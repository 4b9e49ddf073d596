#!/bin/bash
# Installs rdma-core and the headers the native addon builds against (Debian/Ubuntu).
# Shared by the qemu lab (testbed/setup.sh) and the Vagrant nodes. Idempotent:
# apt is only called when a package is missing. Extra package names may be given
# as arguments (the qemu lab adds its own).
set -euo pipefail
PKGS=(rdma-core libibverbs-dev librdmacm-dev ibverbs-providers ibverbs-utils rdmacm-utils perftest
      iproute2 g++ make python3 "$@")
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "provision: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "provision: packages ok (${#PKGS[@]} checked, ${#missing[@]} installed)"
