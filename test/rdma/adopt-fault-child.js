'use strict';
// Child of verbs-suite.js, started with NEXIO_RDMA_TEST_FAULT=adopt:1 (the addon's test-only
// fault: the first CONNECT_REQUEST's id cannot be adopted) and MALLOC_PERTURB_ (freed memory is
// overwritten). The addon's failure path must reject that request and report the error as an
// uncaught exception, then serve the next request as usual. Before 7ff9304 it read the request's
// id from the event it had just acked (freed): a junk pointer.
//   usage: node adopt-fault-child.js HOST PORT
const { RdmaContext } = require('../../native');
const [host, port] = process.argv.slice(2);
process.on('uncaughtException', (err) => { console.log(`uncaught ${err.code}`); });
const ctx = new RdmaContext();
ctx.listen({ host, port: Number(port) }, (req) => {
  req.accept('welcome').then((conn) => {
    console.log('accepted');
    conn.on('close', () => { ctx.close().then(() => { console.log('done'); process.exit(0); }); });
  }, (err) => { console.log(`accept failed ${err.code}`); process.exit(3); });
});
console.log('listening');
setTimeout(() => { console.log('child: timeout'); process.exit(4); }, 60000).unref();
