#!/bin/bash
# Inside a lab guest (bench/lab.sh runs it in both guests of the pair at once): guest a serves,
# guest b measures. perftest first (ib_send_lat, ib_write_bw, ib_read_bw over rdma_cm: -R), then nexio
# rdma:// and tcp:// (bench/lab.js). Prints PERFTEST-* and BENCH-RESULT lines for bench/lab.sh.
cd "$(dirname "$0")/.." || exit 125
node=${NEXIO_LAB_node:-a}; peer=${NEXIO_RDMA_PEER:-10.0.0.1}
ITERS=${NEXIO_BENCH_PERFTEST_ITERS:-1000}
run_perftest() { # name args...
  local name=$1; shift
  # A perftest client started before its server can hang in the connect: the client gives the
  # server a head start, and every run is bounded (a lost phase costs 150 s, not the whole bench).
  if [ "$node" = a ]; then
    # The server exits 0 after a test; a failed connection ends it non-zero, and the client
    # then tries once more: serve that second attempt too.
    for _ in 1 2; do timeout 150 "$name" -d rxe0 -R "$@" >/dev/null 2>&1 && break; done
  else
    local out
    sleep 6
    for _ in 1 2; do
      out=$(timeout 120 "$name" -d rxe0 -R "$@" "$peer" 2>&1) && break
      sleep 3
    done
    echo "$out" | sed "s/^/# $name: /"
    # the result row: first numeric line after the header
    echo "PERFTEST-$name $(echo "$out" | awk '/^ *[0-9]+ +[0-9]+ +[0-9.]+/ {print; exit}')"
  fi
}
run_perftest ib_send_lat -s 64 -n "$ITERS"
run_perftest ib_write_bw -s 1048576 -n "$((ITERS / 10 > 20 ? ITERS / 10 : 20))"
# the rendezvous READs 64 KiB pieces: the raw figure to hold it against
run_perftest ib_read_bw -s 65536 -n "$((ITERS / 5 > 50 ? ITERS / 5 : 50))"
sleep 2
if [ "$node" = a ]; then exec node bench/lab.js server; else exec node bench/lab.js client; fi
