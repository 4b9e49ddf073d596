'use strict';
// Worker thread of verbs-suite.js: its own RdmaContext (the addon's state is per env, never
// static), one echo round trip, then it reports and waits to be terminated with everything open.
const { parentPort, workerData } = require('node:worker_threads');
const { RdmaContext } = require('../../native');
const ctx = new RdmaContext();
ctx.connect({ host: workerData.host, port: workerData.port, privateData: 'echo-worker' }).then((conn) => {
  conn.onFrame = (ring, off, len) => parentPort.postMessage({ echoed: ring.toString('utf8', off, off + len), qp: conn.queuePair.qpNum });
  conn.send(Buffer.from('from a worker'));
}, (err) => parentPort.postMessage({ error: `${err.code}: ${err.message}` }));
