'use strict';
// Child of transport-suite.js: what the JS thread spends registering memory while a lane sends
// fresh (never registered) large Buffers by rendezvous: the time inside the addon's synchronous
// register() (ibv_reg_mr), and the lateness of a 1 ms interval meanwhile (the longest synchronous
// stretches, whatever their cause). Run once with NEXIO_RDMA_REG=sync (registration on the JS thread,
// as before issue 12's fix) and once as shipped (thread pool / staging). Prints `REG-CHILD {json}`.
//   usage: node reg-child.js URI
const path = require('node:path');
const { createHash, randomBytes } = require('node:crypto');
const ROOT = path.join(__dirname, '..', '..');
const { connect } = require(path.join(ROOT, 'dist/host'));
const rdmaT = require(path.join(ROOT, 'dist/host/transports/rdma'));
const sha = (b) => createHash('sha256').update(b).digest('hex');
// time spent in ibv_reg_mr on this (the JS) thread: RdmaDevice.register() of memory not yet registered
const { RdmaDevice } = require(path.join(ROOT, 'native'));
let regMs = 0, regCalls = 0;
const reg = RdmaDevice.prototype.register;
RdmaDevice.prototype.register = function (buffer, options) {
  if (this.isRegistered(buffer)) return reg.call(this, buffer, options); // cached: no ibv_reg_mr
  const t = performance.now();
  try { return reg.call(this, buffer, options); } finally { regMs += performance.now() - t; regCalls++; }
};
const MiB = 1 << 20;

(async () => {
  const s = await connect(process.argv[2], { lanes: 1, keepaliveMs: 20000 });
  for (let i = 0; i < 5; i++) await s.request('echo', 'warm');
  const bufs = Array.from({ length: 8 }, () => randomBytes(4 * MiB)); // made before the clock starts
  const sums = bufs.map(sha);
  const late = [];
  let last = performance.now();
  const iv = setInterval(() => { const t = performance.now(); late.push(t - last - 1); last = t; }, 1);
  const st0 = { ...rdmaT.rdmaStats };
  regMs = 0; regCalls = 0;
  const t0 = performance.now();
  const got = await Promise.all(bufs.map((b) => s.request('sum', b)));
  const ms = performance.now() - t0;
  clearInterval(iv);
  late.sort((a, b) => a - b);
  const st = rdmaT.rdmaStats;
  const out = {
    ok: got.every((r, i) => r.data.toString() === sums[i]), ms, regMs, regCalls,
    maxLateMs: late[late.length - 1], p99LateMs: late[Math.floor(late.length * 0.99)], ticks: late.length,
    registrationsSync: st.registrationsSync - st0.registrationsSync, registrationsAsync: st.registrationsAsync - st0.registrationsAsync,
  };
  console.log(`REG-CHILD ${JSON.stringify(out)}`);
  await s.close();
  process.exit(0);
})().catch((e) => { console.log(`REG-CHILD-ERROR ${e.stack}`); process.exit(1); });
