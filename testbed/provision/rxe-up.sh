#!/bin/bash
# usage: rxe-up.sh NETDEV [RXE_NAME]
# Brings a soft-RoCE (rdma_rxe) device up on NETDEV; idempotent. Shared by the qemu lab guests
# and the Vagrant nodes. Prints the device and the GID index of NETDEV's IPv4 address.
set -euo pipefail
NETDEV=${1:?usage: rxe-up.sh NETDEV [RXE_NAME]}; RXE=${2:-rxe0}
modprobe rdma_rxe 2>/dev/null || true      # in the qemu guests the initramfs already loaded it
modprobe rdma_ucm 2>/dev/null || true
if ! rdma link show "$RXE/1" >/dev/null 2>&1; then
  rdma link add "$RXE" type rxe netdev "$NETDEV"
fi
ip4=$(ip -4 -o addr show dev "$NETDEV" | awk '{print $4}' | cut -d/ -f1 | head -1)
gid=""
if [ -n "$ip4" ]; then
  hex=$(printf '%02x%02x:%02x%02x' $(echo "$ip4" | tr . ' '))
  for g in /sys/class/infiniband/$RXE/ports/1/gids/*; do
    [ "$(cat "$g" 2>/dev/null)" = "0000:0000:0000:0000:0000:ffff:$hex" ] && gid=${g##*/} && break
  done
fi
echo "rxe-up: $RXE on $NETDEV ($ip4) state=$(cat /sys/class/infiniband/$RXE/ports/1/state 2>/dev/null) ipv4-gid-index=${gid:-none}"
