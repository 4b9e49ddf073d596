#!/bin/bash
# Inside a lab guest (bench/lab.sh runs it in both guests of the pair at once): guest a serves,
# guest b measures. perftest first (ib_send_lat, ib_write_bw over rdma_cm: -R), then nexio
# rdma:// and tcp:// (bench/lab.js). Prints PERFTEST-* and BENCH-RESULT lines for bench/lab.sh.
cd "$(dirname "$0")/.." || exit 125
node=${NEXIO_LAB_node:-a}; peer=${NEXIO_RDMA_PEER:-10.0.0.1}
ITERS=${NEXIO_BENCH_PERFTEST_ITERS:-1000}
run_perftest() { # name args...
  local name=$1; shift
  if [ "$node" = a ]; then
    timeout 300 "$name" -d rxe0 -R "$@" >/dev/null 2>&1
  else
    local out
    for _ in $(seq 30); do
      out=$(timeout 300 "$name" -d rxe0 -R "$@" "$peer" 2>&1) && break
      sleep 1
    done
    echo "$out" | sed "s/^/# $name: /"
    # the result row: first numeric line after the header
    echo "PERFTEST-$name $(echo "$out" | awk '/^ *[0-9]+ +[0-9]+ +[0-9.]+/ {print; exit}')"
  fi
}
run_perftest ib_send_lat -s 64 -n "$ITERS"
sleep 2
run_perftest ib_write_bw -s 1048576 -n "$((ITERS / 10 > 20 ? ITERS / 10 : 20))"
sleep 2
if [ "$node" = a ]; then exec node bench/lab.js server; else exec node bench/lab.js client; fi
