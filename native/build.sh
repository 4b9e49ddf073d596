#!/bin/bash
# Strict build of the rdma addon (CI, testbed): see build.js.
exec node "$(dirname "$0")/build.js" --strict
