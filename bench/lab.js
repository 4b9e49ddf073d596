'use strict';
// nexio rdma:// vs tcp:// between the two guests of the qemu soft-RoCE lab (run by bench/lab.sh,
// inside the guests; needs dist/). Guest a serves (role server), guest b measures (role client).
// For each scheme — rdma:// in each completion polling mode (?poll=adaptive, the default; event;
// spin:50) and tcp:// — on the same pair of guests in the same run:
//   latency    64 B request/response, one at a time: p50, p99
//   messages/s 64 B one-way messages, `window` in flight (receipts pace the window)
//   bandwidth  1 MiB requests (rendezvous on rdma://, in the stream on tcp://), 4 in flight
//   CPU        process.cpuUsage() per message, client and server (the server reports its own)
//   raw        64 B ping-pong over the addon alone (native/, no nexio core), event and spin:50:
//              where the round trip's time goes (wake-up, JS, the core)
// The client prints one line `BENCH-RESULT {json}`. TCG figures: only the ratios mean something.
const path = require('node:path');
const ROOT = path.join(__dirname, '..');
const { connect, createServer } = require(path.join(ROOT, 'dist/host'));

const role = process.argv[2] || (process.env.NEXIO_LAB_node === 'b' ? 'client' : 'server');
const ME = process.env.NEXIO_RDMA_ADDR || '10.0.0.1';
const PEER = process.env.NEXIO_RDMA_PEER || '10.0.0.1';
const PORT = Number(process.env.NEXIO_BENCH_PORT || 7300);
const SECONDS = Number(process.env.NEXIO_BENCH_SECONDS || 8);
const PINGS = Number(process.env.NEXIO_BENCH_PINGS || 300);
/** rdma:// polling modes measured, each on its own server portal (both sides poll alike). */
const MODES = [['adaptive', 0], ['event', 3], ['spin:50', 4]];
const RAW = PORT + 5; // the addon-only echo
const MiB = 1 << 20;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// [user, user+system] µs. On soft-RoCE the NIC is the guest kernel: rxe's work partly lands in the
// process's system time (post_send is a write() to uverbs), so user time is reported apart.
const cpu = () => { const c = process.cpuUsage(); return [c.user, c.user + c.system]; };

async function server() {
  let done;
  const finished = new Promise((r) => { done = r; });
  let oneway = 0;
  const handler = (req) => {
    const op = req.header.toString();
    if (op === 'cpu') return JSON.stringify(cpu());
    if (op === 'oneway-count') return String(oneway);
    if (op === 'bye') { setImmediate(done); return 'bye'; }
    if (op === 'bulk') return 'ok';
    return req.data;
  };
  const srv = await createServer({
    portals: [...MODES.map(([mode, off]) => `rdma://${ME}:${PORT + off}/bench?poll=${mode}`), `tcp://${ME}:${PORT + 1}/bench`], handler,
    onMessage: () => { oneway++; },
  });
  // the addon alone: every frame echoed at once (the client picks the polling mode by private data)
  const { RdmaContext } = require(path.join(ROOT, 'native'));
  const raw = new RdmaContext();
  raw.listen({ host: ME, port: RAW }, (req) => {
    const qp = req.privateData.toString() === 'spin' ? { spinUs: 50 } : {};
    req.accept(null, qp).then((c) => { c.on('error', () => {}); c.onFrame = (ring, off, len) => c.send(Buffer.from(ring.subarray(off, off + len))); }, () => {});
  });
  const tcpOnly = await createServer({ portals: [`tcp://${ME}:${PORT + 2}/bench`], handler, onMessage: () => { oneway++; } });
  console.log(`# bench server at ${srv.portals.join(' ')} ${tcpOnly.portals.join(' ')}`);
  await finished;
  await srv.close();
  await tcpOnly.close();
  await raw.close();
}

/** 64 B ping-pong over the addon alone, one at a time: p50, p99 (µs). */
async function rawPing(mode) {
  const { RdmaContext } = require(path.join(ROOT, 'native'));
  const ctx = new RdmaContext();
  const c = await ctx.connect({ host: PEER, port: RAW, privateData: mode, retryRefusedMs: 20000, qp: mode === 'spin' ? { spinUs: 50 } : {} });
  let wake = null;
  c.onFrame = () => { const w = wake; wake = null; if (w) w(); };
  const ping = Buffer.alloc(64, 1), lat = [];
  for (let i = 0; i < PINGS + 30; i++) {
    const t = process.hrtime.bigint();
    await new Promise((r) => { wake = r; c.send(ping); });
    if (i >= 30) lat.push(Number(process.hrtime.bigint() - t) / 1e3);
  }
  lat.sort((a, b) => a - b);
  await c.close();
  await ctx.close();
  return { mode, n: lat.length, p50us: pct(lat, 0.5), p99us: pct(lat, 0.99) };
}

function pct(sorted, p) { return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]; }

async function measure(uri) {
  const s = await connect(uri, { lanes: 1, timeout: 60000 });
  const r = { uri };
  const serverCpu = async () => JSON.parse((await s.request('cpu', '')).data.toString());
  const per = (c0, s0, s1, n) => { const c = cpu(); return { client: (c[1] - c0[1]) / n, server: (s1[1] - s0[1]) / n, clientUser: (c[0] - c0[0]) / n, serverUser: (s1[0] - s0[0]) / n }; };
  const small = Buffer.alloc(64, 1);
  for (let i = 0; i < 30; i++) await s.request('echo', small); // warm-up

  // latency
  let c0 = cpu(), s0 = await serverCpu();
  const lat = [];
  for (let i = 0; i < PINGS; i++) {
    const t = process.hrtime.bigint();
    await s.request('echo', small);
    lat.push(Number(process.hrtime.bigint() - t) / 1e3);
  }
  lat.sort((a, b) => a - b);
  r.latency = { n: PINGS, p50us: pct(lat, 0.5), p99us: pct(lat, 0.99), cpuPerReq: per(c0, s0, await serverCpu(), PINGS) };

  // one-way messages, window in flight
  const window = 64;
  c0 = cpu(); s0 = await serverCpu();
  let sent = 0, inflight = 0;
  const t0 = process.hrtime.bigint(), until = Date.now() + SECONDS * 1000;
  await new Promise((resolve) => {
    const pump = () => {
      while (inflight < window && Date.now() < until) {
        inflight++; sent++;
        s.send('m', small).then(() => { inflight--; pump(); }, () => { inflight--; pump(); });
      }
      if (inflight === 0) resolve();
    };
    pump();
  });
  await s.send('m', small, { receipt: true }); sent++;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  r.messages = { n: sent, perSec: sent / secs, cpuPerMsg: per(c0, s0, await serverCpu(), sent) };

  // bandwidth: 1 MiB requests, 4 in flight (the same application buffer: registered once on rdma://)
  const big = Buffer.alloc(MiB, 7);
  c0 = cpu(); s0 = await serverCpu();
  let bytes = 0, n = 0;
  const b0 = process.hrtime.bigint(), bUntil = Date.now() + SECONDS * 1000;
  await Promise.all([0, 1, 2, 3].map(async () => {
    while (Date.now() < bUntil) { await s.request('bulk', big); bytes += MiB; n++; }
  }));
  const bsecs = Number(process.hrtime.bigint() - b0) / 1e9;
  r.bandwidth = { n, MiBps: bytes / MiB / bsecs, cpuPerMiB: per(c0, s0, await serverCpu(), n) };
  await s.close();
  return r;
}

async function client() {
  const results = [];
  const uris = [...MODES.map(([mode, off]) => [mode, `rdma://${PEER}:${PORT + off}/bench?poll=${mode}`]), ['tcp', `tcp://${PEER}:${PORT + 2}/bench`]];
  for (const [mode, uri] of uris) {
    let tries = 0;
    for (;;) {
      try { results.push({ mode, ...(await measure(uri)) }); break; } catch (e) { if (++tries > 20) throw e; await sleep(1000); }
    }
    console.log(`# ${uri}: ${JSON.stringify(results[results.length - 1])}`);
  }
  const raw = [];
  for (const mode of ['event', 'spin']) { raw.push(await rawPing(mode)); console.log(`# raw ${mode}: ${JSON.stringify(raw[raw.length - 1])}`); }
  const s = await connect(`tcp://${PEER}:${PORT + 2}/bench`, { lanes: 1 });
  await s.request('bye', '').catch(() => {});
  await s.close();
  console.log(`BENCH-RESULT ${JSON.stringify({ results, raw })}`);
}

(role === 'server' ? server() : client()).then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
