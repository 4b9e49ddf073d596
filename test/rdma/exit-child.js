'use strict';
// Child of verbs-suite.js: connects, then exits with the connection, queue pair, device and
// channel still open. The addon's env cleanup hook must release them and let the process exit 0.
const { RdmaContext } = require('../../native');
const [host, port] = process.argv.slice(2);
const ctx = new RdmaContext();
ctx.connect({ host, port: Number(port), privateData: 'echo-child' }).then((conn) => {
  conn.device.register(Buffer.alloc(65536)); // and a memory region
  console.log(`connected qp ${conn.queuePair.qpNum}`);
  process.exit(0);
}, (err) => { console.error(err); process.exit(2); });
