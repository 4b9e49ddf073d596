#!/bin/bash
# Entry point inside a lab guest (see testbed/lab.sh run): runs the verbs suite in the role this
# guest plays (single: both; pair: a = server, b = client) and prints one RESULT line.
cd "$(dirname "$0")/../.." || exit 125
role=single
[ "${NEXIO_LAB_layout:-single}" = pair ] && { [ "$NEXIO_LAB_node" = a ] && role=server || role=client; }
node test/rdma/verbs-suite.js "$role"; rc=$?
echo "RDMA-SUITE RESULT ${NEXIO_LAB_layout:-single}/$role: $([ $rc = 0 ] && echo PASS || echo "FAIL (exit $rc)")"
exit $rc
