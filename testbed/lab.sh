#!/bin/bash
# The qemu soft-RoCE lab driver.
#   lab.sh up [single|pair]        boot the guest(s); returns once rxe0 is up in each
#   lab.sh run [-n a|b|all] [-t SECONDS] [--] CMD [ARGS...]
#                                  run CMD as root inside the guest(s), from the repo
#                                  root (host's / is shared read-only); streams output ([a]/[b] prefix
#                                  in the pair layout) and exits with CMD's status (the first
#                                  non-zero one when several guests run it)
#   lab.sh down                    power the guest(s) off (kills qemu after 20 s)
#   lab.sh status                  layout, guests, qemu pids
# Layouts: single = one guest (2 vCPUs), rxe0 over its own NIC, clients and servers on rxe0
# (loopback through rxe); pair = guests a (10.0.0.1) and b (10.0.0.2), 1 vCPU each, linked by a
# qemu UDP socket netdev on 127.0.0.1 (eth0, rxe0), and by a second one (eth1: 10.0.1.1 and
# 10.0.1.2, rxe1) that stays up when a test takes eth0 down; nothing else.
# Inside a guest: NEXIO_LAB_node=a|b, NEXIO_LAB_layout, NEXIO_RDMA_ADDR (own IPv4 on rxe0),
# NEXIO_RDMA_PEER (the other guest's, or own in single), NEXIO_LAB_IF (eth0: rxe0's netdev);
# pair only: NEXIO_LAB_ADDR2, NEXIO_LAB_PEER2 (the eth1 addresses).
# Env: NEXIO_LAB_DIR (default /var/tmp/nexio-lab), NEXIO_LAB_MEM (MiB, default 768),
# NEXIO_LAB_BOOT_TIMEOUT (default 180 s), NEXIO_LAB_IDLE (guest powers itself off after this many
# idle seconds, default 900: a forgotten lab does not run forever).
set -uo pipefail
TB=$(cd "$(dirname "$0")" && pwd); REPO=$(cd "$TB/.." && pwd)
LAB=${NEXIO_LAB_DIR:-/var/tmp/nexio-lab}; RUN=$LAB/run
die() { echo "lab: $*" >&2; exit 1; }
nodes() { cat "$RUN/nodes" 2>/dev/null; }
alive() { local p; p=$(cat "$RUN/$1/qemu.pid" 2>/dev/null) && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

boot() { # NAME SMP "KERNEL ARGS" NETDEV MAC [NETDEV2 MAC2]
  local n=$1 smp=$2 kargs=$3 net=$4 mac=$5 d=$RUN/$1 nic2=()
  [ $# -ge 7 ] && nic2=(-netdev "$6,id=n1" -device "virtio-net-pci,netdev=n1,mac=$7,romfile=")
  mkdir -p "$d/jobs"
  qemu-system-x86_64 -accel tcg -cpu max -m "${NEXIO_LAB_MEM:-768}" -smp "$smp" \
    -display none -no-reboot -nodefaults -monitor none -serial "file:$d/console.log" \
    -daemonize -pidfile "$d/qemu.pid" \
    -kernel "$LAB/vmlinux" -initrd "$LAB/initrd.gz" \
    -append "console=ttyS0 quiet panic=-1 nexio.agent=$TB/guest/agent.sh nexio.node=$n $kargs nexio.idle=${NEXIO_LAB_IDLE:-900} nexio.cache=${NEXIO_LAB_CACHE:-loose}" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$d,mount_tag=lab,security_model=none" \
    -netdev "$net,id=n0" -device "virtio-net-pci,netdev=n0,mac=$mac,romfile=" "${nic2[@]}" \
    || die "qemu failed to start guest $n"
}

cmd_up() {
  local layout=${1:-single}
  for n in $(nodes); do alive "$n" && die "a lab is already up ($(cat "$RUN/layout")): lab.sh down first"; done
  # Packages, kernel and initramfs: fetched or rebuilt only when missing or stale (a fresh clone
  # needs nothing else; NEXIO_LAB_NO_SETUP=1 skips the check).
  if [ -z "${NEXIO_LAB_NO_SETUP:-}" ]; then "$TB/setup.sh" >&2 || die "lab setup failed (testbed/setup.sh)"; fi
  [ -f "$LAB/vmlinux" ] && [ -f "$LAB/initrd.gz" ] || die "no kernel/initrd in $LAB: run testbed/setup.sh"
  rm -rf "$RUN"; mkdir -p "$RUN"; echo "$layout" > "$RUN/layout"
  local t0=$SECONDS
  case $layout in
    single)
      echo a > "$RUN/nodes"
      boot a 2 "nexio.layout=single nexio.addr=10.0.0.1/24 nexio.peer=10.0.0.1" "user,restrict=on" 52:54:00:00:00:01;;
    pair)
      printf 'a\nb\n' > "$RUN/nodes"
      # eth0: the lab link (rxe0); eth1: a second link, IP only, so a test can take eth0 down and
      # still have a path between the guests (tcp:// lanes, the test's control session)
      local p=$((20000 + RANDOM % 20000))
      boot a 1 "nexio.layout=pair nexio.addr=10.0.0.1/24 nexio.peer=10.0.0.2 nexio.addr2=10.0.1.1/24 nexio.peer2=10.0.1.2" \
        "socket,udp=127.0.0.1:$((p+1)),localaddr=127.0.0.1:$p" 52:54:00:00:00:01 \
        "socket,udp=127.0.0.1:$((p+3)),localaddr=127.0.0.1:$((p+2))" 52:54:00:00:01:01
      boot b 1 "nexio.layout=pair nexio.addr=10.0.0.2/24 nexio.peer=10.0.0.1 nexio.addr2=10.0.1.2/24 nexio.peer2=10.0.1.1" \
        "socket,udp=127.0.0.1:$p,localaddr=127.0.0.1:$((p+1))" 52:54:00:00:00:02 \
        "socket,udp=127.0.0.1:$((p+2)),localaddr=127.0.0.1:$((p+3))" 52:54:00:00:01:02;;
    *) die "unknown layout '$layout' (single|pair)";;
  esac
  local deadline=$((SECONDS + ${NEXIO_LAB_BOOT_TIMEOUT:-180}))
  for n in $(nodes); do
    until [ -s "$RUN/$n/ready" ]; do
      if ! alive "$n" || [ $SECONDS -ge $deadline ]; then
        echo "lab: guest $n did not come up; console:" >&2; tail -n 30 "$RUN/$n/console.log" >&2
        cmd_down >/dev/null 2>&1; exit 1
      fi
      sleep 0.2
    done
    grep -q '^ready' "$RUN/$n/ready" || { echo "lab: guest $n: $(cat "$RUN/$n/ready")" >&2; cmd_down >/dev/null 2>&1; exit 1; }
    echo "lab: [$n] $(head -1 "$RUN/$n/ready")"
  done
  echo "lab: $layout up in $((SECONDS - t0))s"
}

cmd_run() {
  local which=all tmo=600
  while [ $# -gt 0 ]; do case $1 in
    -n) which=$2; shift 2;; -t) tmo=$2; shift 2;; --) shift; break;; *) break;; esac; done
  [ $# -gt 0 ] || die "run: no command"
  local ns; [ "$which" = all ] && ns=$(nodes) || ns=$which
  [ -n "$ns" ] || die "no lab is up"
  local id; id=$(date +%s%N)-$$ ; local q; q=$(printf '%q ' "$@")
  local n tails=() multi=0; [ "$(echo $ns | wc -w)" -gt 1 ] && multi=1
  for n in $ns; do
    alive "$n" || die "guest $n is not running"
    printf 'cd %q || exit 125\nexec timeout -k 5 %s %s\n' "$REPO" "$tmo" "$q" > "$RUN/$n/jobs/$id.tmp"
    : > "$RUN/$n/jobs/$id.out"
    mv "$RUN/$n/jobs/$id.tmp" "$RUN/$n/jobs/$id.sh"
    if [ $multi = 1 ]; then tail -n +1 -F -s 0.2 "$RUN/$n/jobs/$id.out" 2>/dev/null | sed -u "s/^/[$n] /" &
    else tail -n +1 -F -s 0.2 "$RUN/$n/jobs/$id.out" 2>/dev/null & fi
    tails+=($!)
  done
  local deadline=$((SECONDS + tmo + 30)) rc=0 r
  for n in $ns; do
    until [ -f "$RUN/$n/jobs/$id.rc" ]; do
      if ! alive "$n"; then echo "lab: guest $n died" >&2; rc=1; break; fi
      [ $SECONDS -lt $deadline ] || { echo "lab: guest $n: no exit status after ${tmo}s" >&2; rc=124; break; }
      sleep 0.2
    done
    r=$(cat "$RUN/$n/jobs/$id.rc" 2>/dev/null || echo 1); [ $rc = 0 ] && rc=$r
  done
  sleep 0.5; kill "${tails[@]}" 2>/dev/null; wait 2>/dev/null
  return "$rc"
}

cmd_down() {
  local n p
  for n in $(nodes); do [ -d "$RUN/$n" ] && touch "$RUN/$n/down"; done
  for n in $(nodes); do
    for _ in $(seq 100); do alive "$n" || break; sleep 0.2; done
    if alive "$n"; then p=$(cat "$RUN/$n/qemu.pid"); echo "lab: killing guest $n (qemu $p)"; kill "$p"; fi
  done
  echo "lab: down"
}

cmd_status() {
  [ -f "$RUN/layout" ] || { echo "lab: no lab"; return 1; }
  echo "layout: $(cat "$RUN/layout")"
  for n in $(nodes); do alive "$n" && echo "$n: up (qemu $(cat "$RUN/$n/qemu.pid"))" || echo "$n: down"; done
}

c=${1:-}; shift || true
case $c in
  up) cmd_up "$@";; run) cmd_run "$@";; down) cmd_down;; status) cmd_status;;
  *) sed -n '2,18p' "$0"; exit 2;;
esac
