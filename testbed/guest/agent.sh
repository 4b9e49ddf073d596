#!/bin/bash
# Runs inside a lab guest, as root, chrooted into the host's / (read-only 9p + tmpfs overlay).
# Brings the lab link and rxe0 up (pair: eth1 and rxe1 too), writes /mnt/lab/ready, then runs the jobs that
# `testbed/lab.sh run` drops into /mnt/lab/jobs/ (ID.sh -> ID.out + ID.rc), concurrently,
# until /mnt/lab/down appears or nothing happened for NEXIO_LAB_idle seconds.
# Kernel args (nexio.K=V -> NEXIO_LAB_K): node, layout, addr, peer, addr2 + peer2 (pair: eth1), idle.
J=/mnt/lab; TB=$(cd "$(dirname "$0")/.." && pwd)
node=${NEXIO_LAB_node:-a}; addr=${NEXIO_LAB_addr:-10.0.0.1/24}; idle=${NEXIO_LAB_idle:-900}
ip link set lo up
ip addr add "$addr" dev eth0 && ip link set eth0 up
if [ -n "${NEXIO_LAB_addr2:-}" ]; then   # pair: the second link (IP only)
  ip addr add "$NEXIO_LAB_addr2" dev eth1 && ip link set eth1 up || { echo "eth1-failed" > $J/ready; exit 1; }
  export NEXIO_LAB_ADDR2=${NEXIO_LAB_addr2%/*} NEXIO_LAB_PEER2=$NEXIO_LAB_peer2
fi
rxe=$("$TB/provision/rxe-up.sh" eth0 rxe0 2>&1); rc=$?
echo "$rxe"
if [ $rc -ne 0 ]; then echo "rxe-failed: $rxe" > $J/ready; exit 1; fi
if [ -n "${NEXIO_LAB_addr2:-}" ]; then   # pair: a second RDMA device on the second link
  rxe2=$("$TB/provision/rxe-up.sh" eth1 rxe1 2>&1) || { echo "rxe1-failed: $rxe2" > $J/ready; exit 1; }
  echo "$rxe2"
  rxe="$rxe; $rxe2"
fi
export NEXIO_LAB_node NEXIO_LAB_layout NEXIO_LAB_addr NEXIO_LAB_peer
export NEXIO_RDMA_ADDR=${addr%/*} NEXIO_RDMA_PEER=${NEXIO_LAB_peer:-${addr%/*}} NEXIO_LAB_IF=eth0
mkdir -p $J/jobs
echo "ready node=$node addr=$addr kernel=$(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime)s $rxe" > $J/ready.tmp && mv $J/ready.tmp $J/ready
last=$SECONDS
while [ ! -e $J/down ]; do
  for f in $J/jobs/*.sh; do
    [ -e "$f" ] || continue
    id=${f%.sh}; mv "$f" "$id.run" || continue
    ( bash "$id.run" > "$id.out" 2>&1; echo $? > "$id.rc.tmp"; mv "$id.rc.tmp" "$id.rc" ) &
    last=$SECONDS
  done
  [ -n "$(jobs -r)" ] && last=$SECONDS
  [ $((SECONDS - last)) -lt $idle ] || { echo "agent: idle for ${idle}s, powering off"; break; }
  sleep 0.2
done
wait
