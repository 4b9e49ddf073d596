// Prints 1 when rdma-core's development headers are present (binding.gyp builds the addon only then).
'use strict';
const fs = require('fs');
const dirs = ['/usr/include', '/usr/local/include', ...(process.env.CPATH || '').split(':').filter(Boolean)];
const has = (f) => dirs.some((d) => fs.existsSync(`${d}/${f}`));
process.stdout.write(has('infiniband/verbs.h') && has('rdma/rdma_cma.h') ? '1' : '0');
