#!/bin/bash
# usage: vagrant-node.sh NAME ADDRESS PEER [REPO_DIR]
# Provisioning of one Vagrant node: packages (the same list as the qemu lab), Node 20, rxe0 on the
# NIC that carries ADDRESS (the private network), nexio built. Re-runnable (`vagrant provision`).
set -euo pipefail
NAME=$1; ADDR=$2; PEER=$3; REPO=${4:-/vagrant}
TB=$(cd "$(dirname "$0")/.." && pwd)
"$TB/provision/packages.sh"
"$TB/provision/node.sh"
nic=$(ip -4 -o addr show | awk -v a="$ADDR" 'index($4, a"/")==1 {print $2; exit}')
[ -n "$nic" ] || { echo "vagrant-node: no interface carries $ADDR" >&2; exit 1; }
"$TB/provision/rxe-up.sh" "$nic" rxe0
# rxe links do not survive a reboot: a oneshot unit brings rxe0 back
cat > /etc/systemd/system/nexio-rxe.service <<UNIT
[Unit]
Description=nexio soft-RoCE device rxe0 on $nic
After=network-online.target
Wants=network-online.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=$TB/provision/rxe-up.sh $nic rxe0
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload && systemctl enable nexio-rxe.service >/dev/null 2>&1 || true
cat > /etc/profile.d/nexio-lab.sh <<ENV
export NEXIO_LAB_node=$NAME NEXIO_LAB_layout=pair NEXIO_RDMA_ADDR=$ADDR NEXIO_RDMA_PEER=$PEER
ENV
"$TB/provision/build.sh" "$REPO"
echo "vagrant-node: $NAME ready: rxe0 on $nic ($ADDR), peer $PEER"
