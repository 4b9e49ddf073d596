#!/bin/bash
# Host side of the rdma:// tests: prepares the lab, builds the addon if needed, then runs
# both suites of test/rdma (verbs-suite: the addon; transport-suite: rdma:// through nexio's API,
# from dist/) in both layouts (single: one guest, rxe loopback; pair: server in guest a, client in
# guest b). Prints one summary line per layout (and per suite); exits non-zero on any failure, and
# when the lab cannot be prepared or booted (this never skips).
#   env: NEXIO_LAB_DIR, NEXIO_RDMA_LAYOUTS (default "single pair"), NEXIO_RDMA_TIMEOUT (s, default 900)
set -uo pipefail
TB=$(cd "$(dirname "$0")" && pwd); REPO=$(cd "$TB/.." && pwd)
LAB=${NEXIO_LAB_DIR:-/var/tmp/nexio-lab}; export NEXIO_LAB_DIR=$LAB
t0=$SECONDS
fail() { echo "test-rdma: FAIL: $*"; exit 1; }

echo "==== test-rdma: lab setup [$(date -u +%H:%M:%S)]"
"$TB/setup.sh" || fail "lab setup (testbed/setup.sh)"
echo "==== test-rdma: builds (addon, dist/) [$(date -u +%H:%M:%S), +$((SECONDS - t0))s]"
addon=$REPO/native/build/Release/nexio_rdma.node
if [ ! -f "$addon" ] || [ -n "$(find "$REPO/native/src" "$REPO/native/binding.gyp" -newer "$addon" 2>/dev/null | head -1)" ]; then
  (cd "$REPO/native" && node -e "require.resolve('node-addon-api')" 2>/dev/null) ||
    fail "node-addon-api is not installed (npm install at the repo root)"
  "$REPO/native/build.sh" || fail "addon build"
  [ -f "$addon" ] || fail "the addon was not built (rdma-core headers missing?)"
fi
(cd "$REPO" && npx tsc -p tsconfig.json) || fail "TypeScript build (dist/, for the transport suite)"
"$TB/lab.sh" down >/dev/null 2>&1   # a lab left over from an interrupted run
trap '"$TB/lab.sh" down >/dev/null 2>&1' EXIT

# A guest that does not come up is retried once, loudly (qemu under TCG on a loaded machine);
# a test is never retried. The failed boot's job folders (console logs) are kept in
# $LAB/boot-failed-<layout>-<attempt>/ (lab.sh up starts from an empty run/).
boot() { # LAYOUT
  local attempt
  for attempt in 1 2; do
    "$TB/lab.sh" up "$1" && return 0
    echo "test-rdma: WARNING: the $1 lab did not boot (attempt $attempt of 2)"
    rm -rf "$LAB/boot-failed-$1-$attempt"; cp -r "$LAB/run" "$LAB/boot-failed-$1-$attempt" 2>/dev/null
  done
  return 1
}

summary=() rc=0
for layout in ${NEXIO_RDMA_LAYOUTS:-single pair}; do
  t=$SECONDS
  echo "==== test-rdma: $layout layout [$(date -u +%H:%M:%S), +$((SECONDS - t0))s]"
  if ! boot "$layout"; then
    summary+=("test-rdma: $layout: FAIL (lab did not boot, twice)"); rc=1; continue
  fi
  log=$LAB/test-rdma-$layout.log
  "$TB/lab.sh" run -t "${NEXIO_RDMA_TIMEOUT:-900}" -- test/rdma/run-in-guest.sh 2>&1 | tee "$log"
  r=${PIPESTATUS[0]}
  "$TB/lab.sh" down >/dev/null
  crashed=""
  if grep -q 'Segmentation fault\|RDMA-SUITE RESULT .*(exit 13[49])' "$log"; then
    # A suite process that died of a signal (a native crash) is a defect, not a flaky
    # test: it is kept, named in the summary, and its layout run once more so the rest of
    # the suite still reports. Known: a rare SIGSEGV in the transport suite's qp-error
    # case (issue 12); a test that fails is never retried.
    crashed=$LAB/test-rdma-$layout-crash.log
    cp "$log" "$crashed"
    # the guest's core (test/rdma/run-in-guest.sh), read with the host's node and gdb
    for core in "$LAB"/run/*/core.*; do
      [ -f "$core" ] || continue
      { echo "---- backtrace of $core"
        gdb -batch -ex 'thread apply all bt 30' "$(command -v node)" "$core" 2>&1 | tail -n 200
      } >> "$crashed"
      mv "$core" "$LAB/$(basename "$core")-$layout"
      echo "test-rdma: core kept as $LAB/$(basename "$core")-$layout, backtrace in $crashed"
    done
    echo "test-rdma: WARNING: a suite process crashed in the $layout layout (log kept: $crashed); running the layout once more"
    if boot "$layout"; then
      "$TB/lab.sh" run -t "${NEXIO_RDMA_TIMEOUT:-900}" -- test/rdma/run-in-guest.sh 2>&1 | tee "$log"
      r=${PIPESTATUS[0]}
      "$TB/lab.sh" down >/dev/null
    fi
  fi
  pass=$(grep -c '^\(\[.\] \)\?ok ' "$log"); failn=$(grep -c '^\(\[.\] \)\?not ok ' "$log")
  suites=$(grep -h 'RDMA-SUITE RESULT' "$log" | sed 's/^\[.\] //; s/^RDMA-SUITE RESULT //' | paste -sd';' | sed 's/;/; /g')
  nres=$(grep -c 'RDMA-SUITE RESULT' "$log")
  want=2; [ "$layout" = pair ] && want=4
  if [ "$r" = 0 ] && [ "$failn" = 0 ] && [ "$pass" -gt 0 ] && [ "$nres" = "$want" ]; then
    summary+=("test-rdma: $layout: PASS ($pass tests, $((SECONDS - t))s incl. boot) [$suites]${crashed:+ AFTER A CRASH (kept: $crashed)}")
  else
    summary+=("test-rdma: $layout: FAIL ($pass passed, $failn failed, exit $r, $((SECONDS - t))s; log $log) [$suites]"); rc=1
    for c in "$LAB"/run/*/console.log; do echo "---- $c (last 40 lines)"; tail -n 40 "$c"; done
  fi
done
echo "----"
printf '%s\n' "${summary[@]}"
grep -h 'FIGURE' "$LAB"/test-rdma-*.log 2>/dev/null | sed 's/^\[.\] //; s/^# FIGURE /figure (qemu TCG, functional only): /'
echo "test-rdma: $([ $rc = 0 ] && echo ALL PASSED || echo FAILED) in $((SECONDS - t0))s"
exit $rc
