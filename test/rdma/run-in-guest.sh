#!/bin/bash
# Entry point inside a lab guest (see testbed/lab.sh run): runs the suites in the role this guest
# plays (single: both; pair: a = server, b = client) and prints one RESULT line per suite.
#   usage: test/rdma/run-in-guest.sh [verbs] [transport]     (default: both, in that order)
# The transport suite needs dist/ (npx tsc -p tsconfig.json on the host).
cd "$(dirname "$0")/../.." || exit 125
role=single
[ "${NEXIO_LAB_layout:-single}" = pair ] && { [ "$NEXIO_LAB_node" = a ] && role=server || role=client; }
# In the qemu lab (its job share is /mnt/lab): a suite that dies of a signal leaves a core there,
# which testbed/test-rdma.sh turns into a backtrace in the crash log (the guests run the host's node).
if [ -d /mnt/lab ] && [ -w /proc/sys/kernel/core_pattern ]; then
  ulimit -c unlimited
  echo '/mnt/lab/core.%e.%p' > /proc/sys/kernel/core_pattern
fi
rc=0
for suite in ${@:-verbs transport}; do
  node "test/rdma/$suite-suite.js" "$role"; r=$?
  echo "RDMA-SUITE RESULT $suite ${NEXIO_LAB_layout:-single}/$role: $([ $r = 0 ] && echo PASS || echo "FAIL (exit $r)")"
  [ $r = 0 ] || rc=$r
done
exit $rc
