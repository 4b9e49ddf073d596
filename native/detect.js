// Whether rdma-core's development headers are present (binding.gyp builds the addon only then).
// Run (by binding.gyp): prints 1 or 0. Required (by build.js): exports hasRdmaHeaders().
'use strict';
const fs = require('fs');

function hasRdmaHeaders() {
  const dirs = ['/usr/include', '/usr/local/include', ...(process.env.CPATH || '').split(':').filter(Boolean)];
  const has = (f) => dirs.some((d) => fs.existsSync(`${d}/${f}`));
  return has('infiniband/verbs.h') && has('rdma/rdma_cma.h');
}

module.exports = { hasRdmaHeaders };
if (require.main === module) process.stdout.write(hasRdmaHeaders() ? '1' : '0');
