#!/bin/bash
# The soft-RoCE lab bench (host side): boots the qemu pair (testbed/), and in ONE run between the
# same two guests measures perftest's ib_send_lat and ib_write_bw, then nexio rdma:// in each
# completion polling mode (adaptive, event, spin:50) and tcp:// (bench/lab.js: latency p50/p99,
# messages/s, bandwidth, user and system CPU per message on both sides), and a 64 B ping-pong over
# the addon alone (where a round trip's time goes). Appends the figures
# and the RDMA/TCP ratios to docs/benchmarks.md under "soft-RoCE lab" (--no-append: print only).
# qemu runs under TCG here: absolute numbers mean little, the ratios are the figures.
#   --json FILE: also the figures and a `ratios` object as JSON. A perftest phase that fails twice
#   fails the bench (exit 1, the phase named), never an n/a in a green run.
#   env: NEXIO_LAB_DIR, NEXIO_BENCH_SECONDS (8), NEXIO_BENCH_PINGS (300), NEXIO_BENCH_PERFTEST_ITERS (1000)
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd); TB=$REPO/testbed
LAB=${NEXIO_LAB_DIR:-/var/tmp/nexio-lab}; export NEXIO_LAB_DIR=$LAB
append=1; json=
while [ $# -gt 0 ]; do
  case $1 in
    --no-append) append=0 ;;
    --json) json=${2:?--json needs a file}; shift ;;
    *) echo "usage: bench/lab.sh [--no-append] [--json FILE]"; exit 2 ;;
  esac
  shift
done
fail() { echo "bench/lab: FAIL: $*"; exit 1; }
t0=$SECONDS

"$TB/setup.sh" >/dev/null || fail "lab setup (testbed/setup.sh)"
addon=$REPO/native/build/Release/nexio_rdma.node
if [ ! -f "$addon" ] || [ -n "$(find "$REPO/native/src" -newer "$addon" 2>/dev/null | head -1)" ]; then
  "$REPO/native/build.sh" || fail "addon build"
fi
(cd "$REPO" && npx tsc -p tsconfig.json) || fail "TypeScript build"
"$TB/lab.sh" down >/dev/null 2>&1
trap '"$TB/lab.sh" down >/dev/null 2>&1' EXIT
load=$(cut -d' ' -f1-3 /proc/loadavg)
"$TB/lab.sh" up pair || fail "the pair lab did not boot"
log=$LAB/bench-lab.log
"$TB/lab.sh" run -n all -t 1800 -- bench/lab-node.sh 2>&1 | tee "$log"
"$TB/lab.sh" down >/dev/null
node "$REPO/bench/lab-report.js" "$log" "$load" "$((SECONDS - t0))" ${json:+--json "$json"} > "$LAB/bench-lab.md" || fail "a phase failed or left no result (log: $log)"
cat "$LAB/bench-lab.md"
if [ $append = 1 ]; then
  { [ -s "$REPO/docs/benchmarks.md" ] && echo; cat "$LAB/bench-lab.md"; } >> "$REPO/docs/benchmarks.md"
  echo "bench/lab: appended to docs/benchmarks.md"
fi
