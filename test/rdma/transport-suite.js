'use strict';
// rdma:// through nexio's public API (dist/host) on a real soft-RoCE (rxe) device. Runs INSIDE the
// lab guests, like verbs-suite.js:
//   single layout: servers and clients in this one process, on rxe0 (loopback through rxe);
//   pair layout:   guest a runs the servers (role server), guest b the tests (role client); the
//                  client drives the server through a tcp:// control session (ctl).
// usage: node test/rdma/transport-suite.js [single|server|client]   (needs `npx tsc` first: dist/)
// Figures printed here are qemu TCG figures: they show the path works, not how fast it is.
const { createHash, randomBytes } = require('node:crypto');
const { spawn, execFile } = require('node:child_process');
const path = require('node:path');
const dc = require('node:diagnostics_channel');
const harness = require('./harness');
const { run, diag, within, rejectsWithCode, assert } = harness;
// NEXIO_RDMA_ONLY=regex runs the matching tests only
const test = (name, fn) => { if (!process.env.NEXIO_RDMA_ONLY || new RegExp(process.env.NEXIO_RDMA_ONLY).test(name)) harness.test(name, fn); };

const ROOT = path.join(__dirname, '..', '..');
const nexio = require(path.join(ROOT, 'dist/host'));
const rdmaT = require(path.join(ROOT, 'dist/host/transports/rdma'));
const { connect, createServer } = nexio;

const layout = process.env.NEXIO_LAB_layout || 'single';
const role = process.argv[2] || (layout === 'single' ? 'single' : process.env.NEXIO_LAB_node === 'a' ? 'server' : 'client');
const ME = process.env.NEXIO_RDMA_ADDR || '10.0.0.1';
const SERVER = role === 'client' ? (process.env.NEXIO_RDMA_PEER || '10.0.0.1') : ME;
const PORT = Number(process.env.NEXIO_RDMA_PORT || 7100);
const SVC = `rdma://${SERVER}:${PORT}/svc`;
const MIX_RDMA = `rdma://${SERVER}:${PORT + 2}/mix`;
const MIX_TCP = `tcp://${SERVER}:${PORT + 3}/mix`;
// pair layout (qemu lab): a second link between the guests, eth1, IP only. The control session
// and the interface-down test's tcp:// portal use it, so taking eth0 (rxe0's netdev) down leaves
// them a path.
const ME2 = process.env.NEXIO_LAB_ADDR2;
const SERVER2 = role === 'client' ? process.env.NEXIO_LAB_PEER2 : ME2;
const LAB_IF = process.env.NEXIO_LAB_IF || 'eth0';
const CTL = `tcp://${SERVER2 || SERVER}:${PORT + 4}/ctl`;
const IFD = `rdma://${SERVER}:${PORT + 5}/ifd`;
// pre-shared keys: a server on its own portal that every lane must prove PSK_KEY to
const PSK = `rdma://${SERVER}:${PORT + 8}/psk`;
const PSK_KEY = Buffer.from('rdma lab pre-shared key, 32 B...');
const MiB = 1 << 20;
const KA = 10000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ip = (...args) => new Promise((resolve, reject) => execFile('ip', args, (err) => (err ? reject(err) : resolve())));
const sha = (b) => createHash('sha256').update(b).digest('hex');
const pattern = (n, seed) => { const b = Buffer.allocUnsafe(n); for (let i = 0; i < n; i++) b[i] = (i * 31 + seed + (i >>> 10)) & 0xff; return b; };

// ------------------------------------------------------------------ server role

const laneEvents = [];
dc.subscribe('nexio:lane', (m) => laneEvents.push(m));

async function startServers() {
  const state = { executions: new Map(), messages: [], aborted: new Set(), sessions: [], pskIdentities: [], pskHandled: 0 };
  let shutdown;
  const done = new Promise((r) => { shutdown = r; });

  async function handler(req) {
    const op = req.header.toString();
    switch (op) {
      case 'count': {
        const id = req.data.toString();
        state.executions.set(id, (state.executions.get(id) || 0) + 1);
        if (Math.random() < 0.2) await sleep(Math.random() * 5);
        return { header: 'counted', data: id };
      }
      case 'slow': {
        const ms = Number(req.data.toString());
        await new Promise((r) => { const t = setTimeout(r, ms); req.signal.addEventListener('abort', () => { state.aborted.add(req.header.toString() + ms); clearTimeout(t); r(); }, { once: true }); });
        return 'slow done';
      }
      case 'sum': return { header: String(req.data.length), data: sha(req.data) };
      case 'big': { const [n, seed] = req.data.toString().split(' ').map(Number); return { header: 'big', data: pattern(n, seed) }; }
      default: return { header: req.header, data: req.data };
    }
  }
  const onSession = (info) => {
    state.sessions.push(info.resource);
    if (info.resource === '/reject') return { reject: 'no rdma for you' };
    if (info.resource === '/redirect' && info.portal.includes(`:${PORT}/`)) return { redirect: [MIX_RDMA.replace(SERVER, ME)] };
    return 'accept';
  };
  // 'ordsum N SHA' one-way messages: recorded with whether the bytes hashed to SHA
  const onMessage = (session, header, data) => {
    const h = header.toString();
    state.messages.push(h.startsWith('ordsum ') ? `${h} ${sha(data) === h.split(' ')[2] ? 'ok' : 'BAD'}` : h);
  };
  const svc = await createServer({ portals: [`rdma://${ME}:${PORT}/svc`], handler, onMessage, onSession });
  const mix = await createServer({ portals: [`rdma://${ME}:${PORT + 2}/mix`, `tcp://${ME}:${PORT + 3}/mix`], handler, onMessage, onSession });
  const psk = await createServer({
    portals: [`rdma://${ME}:${PORT + 8}/psk`], psk: { 'lab-client': PSK_KEY },
    onSession: (info) => { state.pskIdentities.push(String(info.identity)); return 'accept'; },
    handler: (req) => { state.pskHandled++; return { header: req.header, data: req.data }; },
  });

  // control: what the client (in the other guest) cannot see or do from there
  async function control(req) {
    const op = req.header.toString();
    const arg = req.data.toString();
    switch (op) {
      case 'counts': {
        const ids = [...state.executions].filter(([k]) => k.startsWith(arg));
        return JSON.stringify({ n: ids.length, twice: ids.filter(([, v]) => v !== 1).map(([k, v]) => `${k}:${v}`) });
      }
      case 'messages': return JSON.stringify(state.messages.filter((m) => m.startsWith(arg)));
      case 'aborted': return JSON.stringify([...state.aborted]);
      case 'sessions': return JSON.stringify(state.sessions);
      case 'psk': return JSON.stringify({ identities: state.pskIdentities, handled: state.pskHandled, stats: (await psk.stats()).totals });
      case 'stats': return JSON.stringify(rdmaT.rdmaStats);
      case 'protocol-errors': return String(laneEvents.filter((e) => e.event === 'protocol-error').length);
      case 'kill-lane': return killLane(arg);
      case 'shutdown': setImmediate(shutdown); return 'bye';
      default: throw new Error(`unknown control ${op}`);
    }
  }
  // interface down: rdma lanes over eth0 (rxe0) and eth1 (rxe1), tcp lanes over eth1 (pair layout)
  const ifd = ME2 ? await createServer({
    portals: [`rdma://${ME}:${PORT + 5}/ifd`, `rdma://${ME2}:${PORT + 7}/ifd`, `tcp://${ME2}:${PORT + 6}/ifd`], handler, onMessage, onSession,
  }) : null;
  const ctl = role === 'server' ? await createServer({ portals: [`tcp://${ME2 || ME}:${PORT + 4}/ctl`], handler: control }) : null;
  return { state, control, done, close: async () => { await svc.close(); await mix.close(); await psk.close(); if (ifd) await ifd.close(); if (ctl) await ctl.close(); } };
}

/** Ends the server-side rdma lane whose peer is at `port` with a fault: 'qp-error' or 'destroy'. */
function killLane(arg) {
  const [port, how] = arg.split(' ');
  const lane = [...rdmaT.lanes].find((l) => l.accepted && l.remote.endsWith(`:${port}`));
  if (!lane) return 'no such lane';
  if (how === 'destroy') { lane.destroy(); return 'destroyed'; }
  // a real QP error: an RDMA READ with an rkey nobody gave us -> the completion fails, the QP is in error
  const conn = lane.connection;
  conn.read(Buffer.alloc(64), { addr: 0x1000n, rkey: 0x7badbad }, 64).catch(() => {});
  return 'qp-error';
}

// ------------------------------------------------------------------ client role

let control; // (op, arg) -> Promise<string>

function myLanes(before) { return [...rdmaT.lanes].filter((l) => !l.accepted && !before.has(l)); }

function clientTests() {
  test('connect: a session over rdma:// with 2 lanes, request/response', async () => {
    const before = new Set(rdmaT.lanes);
    const s = await within(30000, connect(SVC, { lanes: 2 }), 'connect');
    try {
      const r = await s.request('echo', 'hello rdma');
      assert.equal(r.header.toString(), 'echo');
      assert.equal(r.data.toString(), 'hello rdma');
      for (let i = 0; i < 50 && s.stats().lanesUp < 2; i++) await sleep(100);
      assert.equal(s.stats().lanesUp, 2, 'both lanes up');
      const mine = myLanes(before);
      assert.equal(mine.length, 2, 'two rdma lanes (queue pairs) for the session');
      const st = mine[0].connection.stats();
      diag(`lane qp stats: ${JSON.stringify(st)}`);
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < 20; i++) await s.request('echo', 'x');
      diag(`FIGURE rdma:// request/response RTT mean ${(Number(process.hrtime.bigint() - t0) / 20e6).toFixed(2)} ms (20 sequential, ${layout})`);
    } finally { await s.close(); }
  });

  test('reject (with the reason) and redirect (onSession)', async () => {
    const e = await rejectsWithCode(connect(SVC.replace('/svc', '/reject'), { lanes: 1 }), 'NEXIO_ERR_REJECTED');
    assert.match(e.message, /no rdma for you/);
    const s = await within(30000, connect(SVC.replace('/svc', '/redirect'), { lanes: 1 }), 'redirect');
    try {
      assert.equal((await s.request('echo', 'after redirect')).data.toString(), 'after redirect');
      const sessions = JSON.parse(await control('sessions', ''));
      assert.equal(sessions.filter((r) => r === '/redirect').length, 2, `onSession saw ${sessions}: at svc, then at mix`);
    } finally { await s.close(); }
  });

  test('pre-shared keys over rdma://: the right key opens 2 lanes (each proves it) and resumes after a lane is killed; a wrong key and no key are NEXIO_ERR_AUTH within 5 s, never reaching onSession', async () => {
    const before = new Set(rdmaT.lanes);
    const s = await within(30000, connect(PSK, { lanes: 2, psk: { identity: 'lab-client', key: PSK_KEY } }), 'connect with the key');
    try {
      assert.equal((await s.request('echo', 'keyed')).data.toString(), 'keyed');
      for (let i = 0; i < 50 && s.stats().lanesUp < 2; i++) await sleep(100);
      assert.equal(s.stats().lanesUp, 2, 'both rdma lanes proved the key');
      assert.equal(myLanes(before).length, 2, 'two rdma lanes (queue pairs)');
      // every lane killed: the session resumes, the new lanes proving the key again
      const resumed = new Promise((r) => s.once('resumed', r));
      for (const l of myLanes(before)) l.destroy();
      await within(30000, resumed, 'resume');
      assert.equal((await s.request('echo', 'after resume')).data.toString(), 'after resume');
    } finally { await s.close(); }
    const wrong = Buffer.from(PSK_KEY); wrong[0] ^= 1;
    for (const [what, o] of [['wrong key', { psk: { identity: 'lab-client', key: wrong } }], ['no key', {}]]) {
      const t0 = Date.now();
      await rejectsWithCode(connect(PSK, { lanes: 1, timeout: 20000, ...o }), 'NEXIO_ERR_AUTH');
      assert.ok(Date.now() - t0 < 5000, `${what}: refused in ${Date.now() - t0} ms`);
    }
    const st = JSON.parse(await control('psk', ''));
    assert.deepEqual(st.identities, ['lab-client'], 'onSession ran once, for the keyed session');
    assert.equal(st.handled, 2, 'the handler ran only for the keyed session');
    assert.equal(st.stats.authFailures, 2, 'the server counted both failures');
    assert.deepEqual(st.stats.authFailuresBy.map((f) => f.identity).sort(), ['', 'lab-client'], 'by identity');
    diag(`psk over rdma://: ${JSON.stringify(st.stats.authFailuresBy)}`);
  });

  test('request/response at every size class (stream splits, ext in frames, rendezvous)', async () => {
    const s = await connect(SVC, { lanes: 2 });
    try {
      const sizes = [0, 1, 100, 8191, 8192, 8193, 16383, 16384, 20000, 65535, 65536, 65537, 200000];
      for (const n of sizes) {
        const d = randomBytes(n);
        const r = await s.request('echo', d);
        assert.equal(r.data.length, n, `size ${n}`);
        assert.ok(r.data.equals(d), `content at size ${n}`);
      }
      // many in flight: batches above 16 KiB are cut into several SENDs
      const all = await Promise.all(Array.from({ length: 200 }, (_, i) => s.request('echo', `m${i}`.padEnd(300 + i, '.'))));
      all.forEach((r, i) => assert.equal(r.data.toString(), `m${i}`.padEnd(300 + i, '.')));
    } finally { await s.close(); }
  });

  test('one-way messages in order, and receipts', async () => {
    const s = await connect(SVC, { lanes: 2 });
    try {
      const sent = [];
      for (let i = 0; i < 300; i++) { sent.push(`ow${i}`); s.send(`ow${i}`, 'x'.repeat(i % 50)).catch(() => {}); }
      await s.send('ow-last', 'with receipt', { receipt: true });
      const got = JSON.parse(await control('messages', 'ow'));
      assert.deepEqual(got, [...sent, 'ow-last'], 'every message once, in order, before the receipt');
      const receipts = [];
      s.on('receipt', (seq) => receipts.push(seq));
      const r = await s.request('echo', 'x', { receipt: true });
      assert.equal(r.data.toString(), 'x');
    } finally { await s.close(); }
  });

  test('cancel (AbortSignal) and per-request timeout', async () => {
    const s = await connect(SVC, { lanes: 1 });
    try {
      const ac = new AbortController();
      const p = s.request('slow', '3000', { signal: ac.signal });
      await sleep(300);
      const t0 = Date.now();
      ac.abort();
      await rejectsWithCode(p, 'NEXIO_ERR_ABORTED');
      assert.ok(Date.now() - t0 < 1000, 'rejected at once');
      await rejectsWithCode(s.request('slow', '2500', { timeout: 300 }), 'NEXIO_ERR_TIMEOUT');
      for (let i = 0; i < 50; i++) { const a = JSON.parse(await control('aborted', '')); if (a.includes('slow3000') && a.includes('slow2500')) break; await sleep(100); }
      const aborted = JSON.parse(await control('aborted', ''));
      assert.ok(aborted.includes('slow3000'), 'the handler saw the cancel');
      assert.ok(aborted.includes('slow2500'), 'the handler saw the timeout');
      assert.equal((await s.request('echo', 'still fine')).data.toString(), 'still fine');
      assert.equal(s.stats().responses, 1, 'no response delivered for the cancelled/timed-out requests');
    } finally { await s.close(); }
  });

  // KA: the core counts no ext byte as life on a lane, so a payload that takes longer than 3 x
  // keepaliveMs to arrive gets its lane declared dead (code 12) and retransmitted elsewhere; under
  // TCG in the pair layout 2 MiB can take that long. Sessions moving MiBs here raise keepaliveMs.
  test('large messages through the rendezvous: 1 MiB and 8 MiB both ways, content checked', async () => {
    const s = await connect(SVC, { lanes: 2, keepaliveMs: KA });
    try {
      const st0 = { ...rdmaT.rdmaStats };
      const srv0 = JSON.parse(await control('stats', ''));
      for (const n of [MiB, 8 * MiB]) {
        const up = pattern(n, n & 0xff ^ 7);
        const t0 = process.hrtime.bigint();
        const r = await within(120000, s.request('sum', up), `upload ${n}`);
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        assert.equal(r.header.toString(), String(n));
        assert.equal(r.data.toString(), sha(up), `upload of ${n} bytes intact`);
        const t1 = process.hrtime.bigint();
        const d = await within(120000, s.request('big', `${n} 11`), `download ${n}`);
        const ms2 = Number(process.hrtime.bigint() - t1) / 1e6;
        assert.equal(d.data.length, n);
        assert.ok(d.data.equals(pattern(n, 11)), `download of ${n} bytes intact`);
        diag(`FIGURE rdma:// rendezvous ${n >> 20} MiB: up ${ms.toFixed(0)} ms (${(n / MiB / (ms / 1000)).toFixed(1)} MiB/s), down ${ms2.toFixed(0)} ms (${layout})`);
      }
      const srv1 = JSON.parse(await control('stats', ''));
      assert.ok(srv1.rendezvousReceived - srv0.rendezvousReceived >= 2, 'the server READ the uploads');
      assert.ok(rdmaT.rdmaStats.rendezvousReceived - st0.rendezvousReceived >= 2, 'the client READ the downloads');
      assert.ok(rdmaT.rdmaStats.rendezvousSent - st0.rendezvousSent >= 2, 'the client sent descriptors, not bytes');
    } finally { await s.close(); }
  });

  test('registered memory: nexio.register(buffer) pre-registers it; sends from it cost no registration; release() deregisters', async () => {
    const s = await connect(SVC, { lanes: 1, keepaliveMs: KA });
    const ctxReg = [];
    try {
      for (let i = 0; i < 50 && s.stats().lanesUp < 1; i++) await sleep(100);
      const buf = pattern(3 * MiB, 9);
      const reg = nexio.register(buf);
      ctxReg.push(reg);
      assert.ok(reg.devices.length >= 1, `registered on the lane's device (${reg.devices})`);
      const dev = myLanes(new Set()).find((l) => l.connection)?.connection.device;
      assert.ok(dev && dev.isRegistered(buf), 'the device holds the registration');
      const st0 = { ...rdmaT.rdmaStats };
      // two requests from different views of the same registered memory
      const a = buf.subarray(0, 2 * MiB), b = buf.subarray(MiB);
      for (const part of [a, b]) assert.equal((await s.request('sum', part)).data.toString(), sha(part));
      const st = rdmaT.rdmaStats;
      assert.equal(st.registrations - st0.registrations, 0, 'no registration on the send path');
      assert.ok(st.rendezvousSent - st0.rendezvousSent >= 2, 'sent by rendezvous');
      for (let i = 0; i < 100 && rdmaT.rdmaStats.pinnedBytes > st0.pinnedBytes; i++) await sleep(50);
      assert.ok(dev.isRegistered(buf), 'still registered after the sends (the application holds it)');
      reg.release();
      reg.release(); // idempotent
      assert.ok(!dev.isRegistered(buf), 'release() deregistered it (nothing in flight)');
      assert.equal((await s.request('sum', a)).data.toString(), sha(a), 'and it can still be sent (registered again on demand)');
    } finally { ctxReg.forEach((r) => r.release()); await s.close(); }
  });

  test('registered memory: an application Buffer sent twice hits the registration cache', async () => {
    const s = await connect(SVC, { lanes: 1, keepaliveMs: KA });
    try {
      const buf = pattern(2 * MiB, 3);
      const st0 = { ...rdmaT.rdmaStats };
      for (let i = 0; i < 2; i++) assert.equal((await s.request('sum', buf)).data.toString(), sha(buf));
      const st = rdmaT.rdmaStats;
      const fo = s.stats().failovers; // a lane lost meanwhile takes its device's cache with it
      assert.equal(st.registrations - st0.registrations, fo ? st.registrations - st0.registrations : 1, 'registered once');
      assert.ok(st.registrationHits - st0.registrationHits >= 1, 'the second send hit the cache');
      if (fo) diag(`registration cache: ${fo} failover(s) during the test`);
      // acked: the lane unpins the Buffer (the cache may evict it)
      for (let i = 0; i < 100 && rdmaT.rdmaStats.pinnedBytes > st0.pinnedBytes; i++) await sleep(50);
      assert.equal(rdmaT.rdmaStats.pinnedBytes, st0.pinnedBytes, 'unpinned once the server acked it');
    } finally { await s.close(); }
  });

  // Issue 12: no ibv_reg_mr on the JS thread when a lane writes a first-seen rendezvous source.
  test('registration off the JS thread: fresh 4 MiB Buffers cost the JS thread no ibv_reg_mr (before: 8 calls); a staged or registering write keeps its order and content; a lane closed while registering loses nothing', async () => {
    const child = (env) => new Promise((resolve, reject) => {
      const p = spawn(process.execPath, [path.join(__dirname, 'reg-child.js'), SVC], { env: { ...process.env, ...env } });
      let o = '';
      p.stdout.on('data', (d) => { o += d; });
      p.stderr.on('data', (d) => { o += d; });
      const t = setTimeout(() => { p.kill(); reject(new Error(`reg-child hung: ${o}`)); }, 180000);
      p.on('exit', () => { clearTimeout(t); const m = /REG-CHILD (.*)/.exec(o); m ? resolve(JSON.parse(m[1])) : reject(new Error(`reg-child: ${o}`)); });
    });
    const before = await child({ NEXIO_RDMA_REG: 'sync' });
    const after = await child({});
    const fig = (r) => `${r.regCalls} ibv_reg_mr on the JS thread (${r.regMs.toFixed(1)} ms), 1 ms interval late by max ${r.maxLateMs.toFixed(1)} ms, ` +
      `p99 ${r.p99LateMs.toFixed(1)} ms, ${r.ms.toFixed(0)} ms in all`;
    diag(`FIGURE fresh 4 MiB x 8 by rendezvous (${layout}): before (NEXIO_RDMA_REG=sync): ${fig(before)}; after: ${fig(after)}`);
    assert.ok(before.ok && after.ok, 'every payload arrived intact');
    assert.equal(before.regCalls, 8, 'before: the lane registered each Buffer on the JS thread');
    assert.equal(after.regCalls, 0, 'after: no registration on the JS thread');
    assert.equal(before.registrationsSync, 8, 'before: 8 registrations on the JS thread');
    assert.equal(after.registrationsSync, 0, 'after: none on the JS thread');
    assert.equal(after.registrationsAsync, 8, 'after: 8 on the thread pool');

    // order and content: one-way messages whose payloads are staged (100 KiB), registered on the
    // thread pool (300 KiB, 1 MiB: the lane holds every later write meanwhile) or in the stream
    const s = await within(30000, connect(SVC, { lanes: 1, keepaliveMs: KA }), 'connect');
    try {
      for (let i = 0; i < 50 && s.stats().lanesUp < 1; i++) await sleep(100);
      const dev0 = myLanes(new Set())[0]?.connection?.device;
      for (let i = 0; i < 100 && !(dev0 && rdmaT.stagingReady(dev0)); i++) await sleep(50);
      assert.ok(dev0 && rdmaT.stagingReady(dev0), 'the staging arena is registered');
      const st0 = { ...rdmaT.rdmaStats };
      const sizes = [100, 300 * 1024, 10, 100 * 1024, MiB, 2000, 300 * 1024, 100 * 1024, 5, MiB + 7];
      const want = [];
      for (let i = 0; i < sizes.length; i++) {
        const d = randomBytes(sizes[i]);
        const h = `ordsum ${i} ${sha(d)}`;
        want.push(`${h} ok`);
        s.send(h, d).catch(() => {});
      }
      await s.send('ordsum-last', 'x', { receipt: true });
      const got = JSON.parse(await control('messages', 'ordsum '));
      assert.deepEqual(got, want, 'every message once, in order, its bytes intact');
      const st = rdmaT.rdmaStats;
      assert.equal(st.staged - st0.staged, 2, 'the 100 KiB payloads were staged');
      assert.equal(st.registrationsAsync - st0.registrationsAsync, 4, 'the larger ones registered on the thread pool');
      assert.equal(st.registrationsSync - st0.registrationsSync, 0);

      // the lane goes while it waits for a registration: the session resumes on a new lane and the
      // request runs once, intact
      const big = randomBytes(8 * MiB);
      const lanes0 = new Set(rdmaT.lanes);
      const p = s.request('sum', big);
      const lane = [...rdmaT.lanes].find((l) => !l.accepted && l.connection && lanes0.has(l));
      const dev = lane.connection.device;
      for (let i = 0; i < 1000 && dev.registering === 0; i++) await new Promise(setImmediate);
      const registering = dev.registering;
      lane.destroy();
      assert.equal((await within(60000, p, 'the request after the lane loss')).data.toString(), sha(big));
      diag(`lane destroyed with ${registering} registration(s) in progress; failovers ${s.stats().failovers}`);
      assert.ok(registering > 0, 'the lane was destroyed while registering');
    } finally { await s.close(); }
  });

  for (const how of ['qp-error', 'destroy']) {
    test(`lane failure mid-load (${how} on the server side, lanes: 2): nothing lost, nothing run twice`, async () => {
      const before = new Set(rdmaT.lanes);
      const s = await connect(SVC, { lanes: 2, resumeTimeout: 30000 });
      try {
        for (let i = 0; i < 50 && s.stats().lanesUp < 2; i++) await sleep(100);
        const victim = myLanes(before)[0];
        const prefix = `${how}-${Date.now()}-`;
        const N = 400;
        let next = 0, ok = 0, killed = false;
        const worker = async () => {
          while (next < N) {
            const i = next++;
            const id = prefix + i;
            const big = i % 50 === 0; // some rendezvous in the mix
            const r = big ? await s.request('sum', pattern(100000, i)) : await s.request('count', id);
            if (big) assert.equal(r.data.toString(), sha(pattern(100000, i)));
            else assert.equal(r.data.toString(), id);
            ok++;
            if (!killed && ok === 60) { killed = true; diag(`kill: ${await control('kill-lane', `${victim.connection.localPort} ${how}`)}`); }
          }
        };
        await within(180000, Promise.all(Array.from({ length: 16 }, worker)), 'load');
        assert.ok(killed);
        assert.equal(ok, N);
        const counts = JSON.parse(await control('counts', prefix));
        assert.deepEqual(counts.twice, [], 'no request ran twice');
        assert.equal(counts.n, N - N / 50, 'every count request ran');
        assert.ok(victim.state === 'closed', 'the victim lane closed');
        diag(`session after ${how}: failovers ${s.stats().failovers}, lanes up ${s.stats().lanesUp}`);
      } finally { await s.close(); }
    });
  }

  // Issue 12: a rare SIGSEGV (1 in ~8 lab runs) in the qp-error case above. This drives the same
  // path many times: a QP error mid-load (the server's READ with a bad rkey fails inside its
  // completion callback, which tears the connection down from inside the completion loop; in the
  // single layout the client's QP, the READ's responder, errors too and is flushed in the same
  // process), with a session destroyed from inside a response callback every third round.
  // NEXIO_RDMA_STRESS_ROUNDS sets the rounds (default 12).
  const ROUNDS = Number(process.env.NEXIO_RDMA_STRESS_ROUNDS || 12);
  test(`stress: qp-error mid-load, ${ROUNDS} rounds (close from inside completion callbacks): nothing lost, nothing run twice, no crash`, async () => {
    let failovers = 0;
    const alive = new Map(); // what the GC has not collected yet, by label
    const reg = new FinalizationRegistry((label) => alive.set(label, alive.get(label) - 1));
    const seen = new Map(); // watched, by label
    const watch = (o, label) => {
      if (!o) return;
      alive.set(label, (alive.get(label) ?? 0) + 1);
      seen.set(label, (seen.get(label) ?? 0) + 1);
      reg.register(o, label);
    };
    const watched = new WeakSet();
    const watchLanes = (round) => {
      for (const l of rdmaT.lanes) {
        if (watched.has(l)) continue;
        watched.add(l);
        const k = `${l.accepted ? 'server' : 'client'}`;
        watch(l, `${k} lane`); watch(l.connection, `${k} connection`); watch(l.connection?.queuePair, `${k} qp`);
        watch(l.connection?.queuePair?.recvRing?.buffer, `${k} ring`);
      }
    };
    for (let round = 0; round < ROUNDS; round++) {
      const before = new Set(rdmaT.lanes);
      const s = await within(30000, connect(SVC, { lanes: 2, resumeTimeout: 30000 }), `connect (round ${round})`);
      try {
        for (let i = 0; i < 50 && s.stats().lanesUp < 2; i++) await sleep(100);
        const victim = myLanes(before)[0];
        assert.ok(victim && victim.connection, `round ${round}: a victim lane`);
        watchLanes(round);
        const prefix = `stress-${round}-${Date.now()}-`;
        const N = 120;
        let next = 0, ok = 0, killed = false;
        const worker = async () => {
          while (next < N) {
            const i = next++;
            const big = i % 40 === 0;
            const r = big ? await s.request('sum', pattern(70000, i)) : await s.request('count', prefix + i);
            assert.equal(r.data.toString(), big ? sha(pattern(70000, i)) : prefix + i);
            ok++;
            if (ok % 20 === 0) watchLanes(round);
            if (!killed && ok === 25) { killed = true; await control('kill-lane', `${victim.connection.localPort} qp-error`); }
          }
        };
        await within(120000, Promise.all(Array.from({ length: 12 }, worker)), `load (round ${round}, ${ok} answered)`);
        assert.equal(ok, N);
        const counts = JSON.parse(await control('counts', prefix));
        assert.deepEqual(counts.twice, [], `round ${round}: no request ran twice`);
        assert.equal(counts.n, N - N / 40, `round ${round}: every count request ran`);
        failovers += s.stats().failovers;
        if (round % 3 === 2) {
          // the session ends from inside the callback that hands it a response (a completion batch)
          const p = s.request('echo', 'last');
          await new Promise((resolve) => { p.then(() => { s.destroy().catch(() => {}); resolve(); }, resolve); });
        }
      } finally { await s.close().catch(() => {}); }
    }
    require('node:v8').setFlagsFromString('--expose-gc');
    const gc = require('node:vm').runInNewContext('gc');
    for (let i = 0; i < 3; i++) { gc(); await sleep(50); }
    await sleep(200); for (let i = 0; i < 3; i++) { gc(); await sleep(50); }
    diag(`stress: not collected after gc: ${JSON.stringify(Object.fromEntries(alive))} of ${JSON.stringify(Object.fromEntries(seen))}`);
    const mu = process.memoryUsage();
    diag(`stress: ${ROUNDS} rounds of qp-error mid-load, ${failovers} failovers; after gc: rss ${(mu.rss / 1048576).toFixed(0)} MiB, ` +
      `array buffers ${(mu.arrayBuffers / 1048576).toFixed(0)} MiB, rdma lanes ${rdmaT.lanes.size}, pinned ${rdmaT.rdmaStats.pinnedBytes}`);
    // Before: every lane's error (kept here by laneEvents, as a log would) held the lane, its
    // connection and its 1 MiB receive ring through the error's unformatted stack (~2.4 MiB per
    // round; the guest ran out of memory after ~150 rounds and rdma connects failed).
    // (a few may still be referenced by what the last rounds left in flight: timers, a resume)
    for (const what of ['client ring', 'server ring', 'client connection', 'server connection']) {
      const n = seen.get(what) ?? 0, left = alive.get(what) ?? 0;
      assert.ok(left <= Math.max(3, n / 4), `closed lanes' ${what}s are collected (${left} of ${n} watched are not)`);
    }
  });

  test('mixed lanes: rdma:// and tcp:// portals in one session', async () => {
    const before = new Set(rdmaT.lanes);
    const mark = laneEvents.length;
    const s = await connect(MIX_RDMA, { lanes: 4, keepaliveMs: KA });
    try {
      for (let i = 0; i < 50 && s.stats().lanesUp < 4; i++) await sleep(100);
      assert.equal(s.stats().lanesUp, 4);
      const opened = laneEvents.slice(mark).filter((e) => e.event === 'open').map((e) => new URL(e.uri).protocol);
      assert.ok(opened.includes('rdma:') && opened.includes('tcp:'), `lanes opened: ${opened}`);
      assert.equal(myLanes(before).length, opened.filter((p) => p === 'rdma:').length);
      const all = await Promise.all(Array.from({ length: 100 }, (_, i) => s.request('echo', `x${i}`)));
      all.forEach((r, i) => assert.equal(r.data.toString(), `x${i}`));
      const big = pattern(MiB, 5);
      const sums = await Promise.all([0, 1, 2, 3].map(() => s.request('sum', big)));
      for (const r of sums) assert.equal(r.data.toString(), sha(big));
      diag(`mixed lanes: ${opened.join(' ')}`);
    } finally { await s.close(); }
  });

  test('bad peer input on an rdma lane closes that lane (NEXIO_ERR_PROTOCOL); other sessions keep working', async () => {
    const { RdmaContext } = require(path.join(ROOT, 'native'));
    const s = await connect(SVC, { lanes: 1 });
    const raw = new RdmaContext();
    try {
      const [host, port] = [SERVER, PORT];
      // not a nexio peer: refused at connect
      await rejectsWithCode(raw.connect({ host, port, privateData: 'hello?' }), 'NEXIO_ERR_RDMA_REJECTED');
      const p0 = Number(await control('protocol-errors', ''));
      for (const garbage of [
        Buffer.concat([Buffer.from([1]), randomBytes(2000)]),       // DATA frame: garbage for the core
        Buffer.concat([Buffer.from([9]), randomBytes(100)]),        // unknown frame kind: the transport
        Buffer.from([2, 0, 0]),                                      // v1's RDV kind: refused in v2
      ]) {
        const conn = await raw.connect({ host, port, privateData: 'nexio-rdma/2' });
        const closed = new Promise((r) => conn.once('close', r));
        conn.on('error', () => {});
        conn.send(garbage);
        await within(20000, closed, 'the server closes the lane');
      }
      let p1 = p0;
      for (let i = 0; i < 50 && p1 < p0 + 3; i++) { p1 = Number(await control('protocol-errors', '')); if (p1 < p0 + 3) await sleep(100); }
      assert.equal(p1 - p0, 3, 'three protocol errors reported');
      assert.equal((await s.request('echo', 'unharmed')).data.toString(), 'unharmed', 'an existing session keeps working');
      const s2 = await connect(SVC, { lanes: 1 });
      assert.equal((await s2.request('echo', 'new')).data.toString(), 'new', 'new sessions keep working');
      await s2.close();
    } finally { await s.close(); await raw.close(); }
  });

  test('CLI: nexio ping rdma://', async () => {
    const out = await new Promise((resolve, reject) => {
      const p = spawn(process.execPath, [path.join(ROOT, 'dist/host/cli.js'), 'ping', SVC, '--count', '50'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let o = '';
      p.stdout.on('data', (d) => { o += d; });
      p.stderr.on('data', (d) => { o += d; });
      const t = setTimeout(() => { p.kill(); reject(new Error(`ping hung: ${o}`)); }, 120000);
      p.on('exit', (code) => { clearTimeout(t); code === 0 ? resolve(o) : reject(new Error(`exit ${code}: ${o}`)); });
    });
    diag(out.trim());
    assert.match(out, /ping rdma:/);
  });

  // Last: after this flap the guest kernel's rxe (Debian 6.1) no longer receives: existing QPs
  // and new rdma_cm connections from guest b time out (its hw_counters/rcvd_pkts stop while eth0
  // still receives the peer's packets; an idle flap does not do it). nexio's part, checked here,
  // is that the session loses and repeats nothing and goes on over what is left (the tcp:// lanes
  // on eth1). testbed/README.md, "Known lab limits".
  // Pair layout: guest b takes its eth0 down (rxe0's netdev, so the link of every rdma lane) for
  // a few seconds in the middle of a load, then up again. The session also has tcp:// lanes over
  // eth1. The load runs from before the link goes down until well after it is back.
  if (role === 'client' && SERVER2) {
    test(`interface down mid-load (${LAB_IF}: rxe0's link, down 3 s; rdma:// lanes on rxe1 and tcp:// lanes on eth1 go on; lanes: 4): nothing lost, nothing run twice`, async () => {
      const mark = laneEvents.length;
      const s = await within(30000, connect(IFD, { lanes: 4, keepaliveMs: 1000, resumeTimeout: 60000 }), 'connect');
      let down = false;
      try {
        for (let i = 0; i < 50 && s.stats().lanesUp < 4; i++) await sleep(100);
        const openedUris = laneEvents.slice(mark).filter((e) => e.event === 'open').map((e) => new URL(e.uri));
        const opened = openedUris.map((u) => u.protocol);
        assert.ok(opened.includes('rdma:') && opened.includes('tcp:'), `lanes opened: ${opened}`);
        // rdma lanes on both devices: rxe0 (eth0, the link that goes down) and rxe1 (eth1)
        const rdmaHosts = new Set(openedUris.filter((u) => u.protocol === 'rdma:').map((u) => u.hostname));
        assert.ok(rdmaHosts.has(SERVER) && rdmaHosts.has(SERVER2), `rdma lanes on both devices: ${[...rdmaHosts]}`);
        const prefix = `ifdown-${Date.now()}-`;
        let next = 0, ok = 0, counted = 0, okAfterUp = 0, flap = null, flapDone = false;
        const t0 = Date.now();
        const flapLink = async (ms) => {
          await ip('link', 'set', LAB_IF, 'down'); down = true;
          const t = Date.now();
          diag(`${LAB_IF} down at ${t - t0} ms (${ok} requests answered)`);
          await sleep(ms);
          await ip('link', 'set', LAB_IF, 'up'); down = false;
          diag(`${LAB_IF} up after ${Date.now() - t} ms (${ok} requests answered)`);
          flapDone = true;
        };
        const worker = async () => {
          while (!flapDone || okAfterUp < 300) {
            const i = next++;
            const id = prefix + i;
            const big = i % 50 === 0; // some rendezvous in the mix (rdma lanes READ them)
            if (!big) counted++;
            const r = big ? await s.request('sum', pattern(100000, i)) : await s.request('count', id);
            if (big) assert.equal(r.data.toString(), sha(pattern(100000, i)));
            else assert.equal(r.data.toString(), id);
            ok++;
            if (flapDone) okAfterUp++;
            if (!flap && ok === 60) flap = flapLink(3000);
          }
        };
        await within(240000, Promise.all(Array.from({ length: 16 }, worker)), `load (${ok} answered, link ${down ? 'down' : 'up'})`);
        await flap;
        const counts = JSON.parse(await control('counts', prefix));
        assert.deepEqual(counts.twice, [], 'no request ran twice');
        assert.equal(counts.n, counted, 'every count request ran');
        const closed = laneEvents.slice(mark).filter((e) => e.event === 'closed').map((e) => `${new URL(e.uri).protocol}${e.error ? ` (${e.error.code})` : ''}`);
        diag(`interface down: ${ok} requests in ${Date.now() - t0} ms; failovers ${s.stats().failovers}, lanes up ${s.stats().lanesUp}; lanes closed: ${closed.join(', ') || 'none'}`);
        // The lanes on the second device (rxe1, eth1) lived through it: failover across devices.
        const lostOn2 = laneEvents.slice(mark).filter((e) => e.event === 'closed' && new URL(e.uri).protocol === 'rdma:' && new URL(e.uri).hostname === SERVER2);
        assert.equal(lostOn2.length, 0, `no rdma lane on rxe1 closed (${lostOn2.length})`);
        // The port went down: the device's asynchronous PORT_ERR closes the rdma lanes at once with
        // its typed code (before: they waited for a completion error or the keepalive).
        assert.ok(closed.includes('rdma: (NEXIO_ERR_RDMA_PORT_DOWN)'), `an rdma lane closed with NEXIO_ERR_RDMA_PORT_DOWN (${closed.join(', ')})`);
        assert.equal((await s.request('echo', 'after')).data.toString(), 'after');
      } finally {
        if (down) await ip('link', 'set', LAB_IF, 'up');
        await s.close();
      }
    });
  }
}

// ------------------------------------------------------------------ main

(async () => {
  let servers;
  if (role === 'single' || role === 'server') servers = await startServers();
  if (role === 'server') {
    console.log(`# servers up at rdma://${ME}:${PORT} (ctl tcp ${PORT + 4}); waiting for the client`);
    const idle = setTimeout(() => { console.log('# no shutdown from the client in 20 min'); process.exit(1); }, 20 * 60000);
    await servers.done;
    clearTimeout(idle);
    await servers.close();
    console.log('ok 1 - served the client until shutdown');
    console.log('1..1');
    process.exit(0);
  }
  let ctlSession;
  if (role === 'single') control = (op, arg) => Promise.resolve(servers.control({ header: Buffer.from(op), data: Buffer.from(arg) })).then(String);
  else {
    for (let i = 0; !ctlSession; i++) {
      try { ctlSession = await connect(CTL, { lanes: 1, timeout: 10000 }); } catch (e) { if (i > 20) throw e; await sleep(1000); }
    }
    control = async (op, arg) => (await ctlSession.request(op, arg)).data.toString();
  }
  clientTests();
  const failed = await run(`rdma transport ${layout}/${role}`);
  if (ctlSession) { await control('shutdown', '').catch(() => {}); await ctlSession.close(); }
  if (servers) await servers.close();
  process.exit(failed ? 1 : 0);
})().catch((err) => { console.log(`not ok - ${err.stack}`); process.exit(1); });
