// What a hostile peer costs a nexio server, and what it costs the server's
// legitimate clients (issue 8):
//
//   npm run attack -- [--seconds 4] [--flood 3000] [--json FILE]
//
// The server runs in a child process (test/fixtures/attack-server.ts), the
// flood in another (test/fixtures/attack-flood.ts), the legitimate client and
// the raw attacking peers in this one, over 127.0.0.1.
//
//   baseline  a legitimate client's ping-pong (64 B request/response, one in
//             flight) for --seconds: p50 / p99
//   claims    16 raw sessions each send one REQUEST with F_EXT claiming
//             4 GiB - 1 payload bytes and send none; then 8 more claim
//             60 MiB and send 1 KiB. The server's arrayBuffers and rss
//             before and after, whether it is still up.
//   flood     --flood connections (half send 8 bytes of garbage, half
//             nothing; none is ever closed by the attacker). The client's
//             ping-pong and a new client's connect() while they are set up
//             (the storm: shown, no target);
//             then, with all of them held open: the time a new client's
//             connect() takes and the client's ping-pong again; then the
//             server's open sockets, which must come back to a handful.
//
// Targets: claims cost the server under 64 MiB of arrayBuffers (4 GiB ones;
// 16 MiB for the 60 MiB ones) and of rss, and it stays up; a new connect() during the flood
// within 1 s; ping-pong p99 with the flood held under 2x the baseline's; the
// server lets the attacker's connections go (sockets back within 20 s).
// Exits 1 if any target is missed. About 30-60 s.

import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { connect, Context, NexioError, Session } from '../host/index';
import { table, histogram } from '../host/bench';
import type { Histogram } from 'hdr-histogram-js';
import {
  startAttackServer, startFlood, RawPeer, claim, poll, MiB,
} from '../test/fixtures/attack-peer';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '4' },
    flood: { type: 'string', default: '3000' },
    json: { type: 'string' },
  },
});
const SECONDS = Number(args.seconds);
const FLOOD = Number(args.flood);

const cleanups: (() => void | Promise<void>)[] = [];
const owner = { teardown: (fn: () => void | Promise<void>) => { cleanups.push(fn); } };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Ping-pong on s until `stop` settles (or, a number, for that many ms): one 64 B request in flight. */
async function pingPong(s: Session, stop: Promise<unknown> | number): Promise<Histogram> {
  const h = histogram();
  const payload = Buffer.alloc(64, 0x70);
  let done = false;
  if (typeof stop === 'number') setTimeout(() => { done = true; }, stop);
  else { const end = () => { done = true; }; stop.then(end, end); }
  while (!done) {
    const t0 = performance.now();
    await s.request('', payload, { timeout: 5000 });
    h.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)));
  }
  return h;
}

interface Row { what: string; figure: string; target: string; ok: boolean | undefined }

/** Each round of claims on a server of its own: what one round allocated must not be freed (or kept) in the next one's figures. */
async function claims(rows: Row[], out: Record<string, unknown>): Promise<void> {
  const round = async (label: string, n: number, dataLen: number, sendBytes: number, limit: number) => {
    const server = await startAttackServer(owner);
    const legit = await connect(server.portal, { lanes: 1 });
    const before = await server.memory();
    const peers: RawPeer[] = [];
    try {
      for (let i = 0; i < n; i++) {
        const p = await RawPeer.session(server.port);
        peers.push(p);
        await p.send(claim(dataLen), Buffer.alloc(sendBytes, i));
      }
    } catch (e) {
      out[`${label}_error`] = String((e as Error).message);
    }
    // Let the server read it all: a round trip on another connection, then a pause.
    await legit.request('', 'sync').catch(() => undefined);
    await sleep(200);
    const alive = server.alive();
    const after = alive ? await server.memory().catch(() => undefined) : undefined;
    const ab = after ? after.arrayBuffers - before.arrayBuffers : NaN;
    const rss = after ? after.rss - before.rss : NaN;
    const errors = peers.filter((p) => p.frames().some((f) => f.type === 'error')).length;
    out[label] = { claims: n, dataLen, sentBytes: sendBytes, arrayBuffersDelta: ab, rssDelta: rss, alive, errorFrames: errors };
    rows.push({ what: `${label}: server arrayBuffers`, figure: alive ? signed(ab) : 'server died', target: `< ${mb(limit)}`, ok: alive && ab < limit });
    rows.push({ what: `${label}: server rss`, figure: alive ? signed(rss) : 'server died', target: `< ${mb(64 * MiB)}`, ok: alive && rss < 64 * MiB });
    rows.push({ what: `${label}: ERROR frames / claims`, figure: `${errors} / ${n}`, target: '', ok: undefined });
    rows.push({ what: `${label}: server up after`, figure: alive ? 'yes' : `no (${JSON.stringify(server.exit())})`, target: 'yes', ok: alive });
    for (const p of peers) p.sock.destroy();
    await legit.destroy();
    await server.kill();
  };
  await round('16 x 4 GiB claims', 16, 0xffffffff, 0, 64 * MiB);
  await round('8 x 60 MiB claims, 1 KiB sent', 8, 60 * MiB, 1024, 16 * MiB);
}

const mb = (n: number) => (Number.isNaN(n) ? '?' : `${(n / MiB).toFixed(1)} MiB`);
const signed = (n: number) => (n >= 0 ? `+${mb(n)}` : mb(n));
const us = (n: number) => `${Math.round(n)} µs`;

async function main(): Promise<number> {
  const rows: Row[] = [];
  const out: Record<string, unknown> = { seconds: SECONDS, flood: FLOOD, node: process.version };

  await claims(rows, out);

  const server = await startAttackServer(owner);
  const legit = await connect(server.portal, { lanes: 1 });
  await pingPong(legit, 500); // warm-up
  const base = await pingPong(legit, SECONDS * 1000);
  const b50 = base.getValueAtPercentile(50), b99 = base.getValueAtPercentile(99);
  rows.push({ what: 'ping-pong before the flood p50 / p99', figure: `${us(b50)} / ${us(b99)}`, target: '', ok: undefined });
  const sockets0 = await server.sockets();

  const flood = startFlood(owner, server.port, FLOOD);
  // A new client while the connections pour in, too: shown, no target.
  const stormCtx = new Context();
  const stormConnect = sleep(200).then(async () => {
    const t = performance.now();
    const r = await connect(server.portal, { context: stormCtx, lanes: 1, timeout: 5000 }).catch((e: NexioError) => e);
    const ms = performance.now() - t;
    if (r instanceof Session) await r.destroy();
    return r instanceof Session ? `${Math.round(ms)} ms` : `failed after ${Math.round(ms)} ms (${r.code})`;
  });
  const storm = await pingPong(legit, Promise.race([flood.flooded, sleep(30000)])).catch(() => undefined);
  const flooded = await Promise.race([flood.flooded, sleep(1).then(() => undefined)]);
  rows.push({ what: `flood: connections set up`, figure: flooded ? `${flooded.connected} of ${FLOOD} in ${Math.round(flooded.ms)} ms` : 'not done in 30 s', target: '', ok: undefined });
  if (storm) {
    rows.push({ what: 'ping-pong while they connect p50 / p99', figure: `${us(storm.getValueAtPercentile(50))} / ${us(storm.getValueAtPercentile(99))}`, target: '', ok: undefined });
  }
  rows.push({ what: 'new connect() while they connect', figure: await stormConnect, target: '', ok: undefined });
  await stormCtx.close();

  const ctx = new Context();
  const t0 = performance.now();
  const fresh = await connect(server.portal, { context: ctx, lanes: 1, timeout: 5000 }).catch((e: NexioError) => e);
  const connectMs = performance.now() - t0;
  const connected = fresh instanceof Session;
  rows.push({ what: 'new connect() during the flood', figure: connected ? `${Math.round(connectMs)} ms` : `failed after ${Math.round(connectMs)} ms (${(fresh as NexioError).code})`, target: '< 1000 ms', ok: connected && connectMs < 1000 });
  if (connected) await fresh.destroy();
  await ctx.close();

  const held = await pingPong(legit, SECONDS * 1000).catch(() => undefined);
  const h50 = held?.getValueAtPercentile(50) ?? NaN, h99 = held?.getValueAtPercentile(99) ?? NaN;
  rows.push({ what: 'ping-pong with the flood held p50 / p99', figure: held ? `${us(h50)} / ${us(h99)}` : 'failed', target: '', ok: undefined });
  rows.push({ what: 'p99 with the flood held / before', figure: `${(h99 / b99).toFixed(2)}x`, target: '< 2x', ok: h99 / b99 < 2 });

  let sockets = -1;
  const count = (x: { fds: number; tcp: number }) => (x.fds >= 0 ? x.fds : x.tcp);
  const t1 = performance.now();
  const back = await poll(async () => {
    if (!server.alive()) return true;
    sockets = count(await server.sockets());
    return sockets <= count(sockets0) + 8;
  }, 20000, 250);
  rows.push({ what: 'server sockets: before the flood / after', figure: `${count(sockets0)} / ${sockets} (${((performance.now() - t1) / 1000).toFixed(1)} s)`, target: `<= ${count(sockets0) + 8} in 20 s`, ok: back && server.alive() });
  rows.push({ what: 'server up after the flood', figure: server.alive() ? 'yes' : 'no', target: 'yes', ok: server.alive() });
  await legit.destroy();

  Object.assign(out, {
    baseline: { p50us: b50, p99us: b99 },
    storm: storm && { p50us: storm.getValueAtPercentile(50), p99us: storm.getValueAtPercentile(99) },
    held: { p50us: h50, p99us: h99, p99ratio: h99 / b99 },
    flooded, connectMs: connected ? connectMs : null, connectError: connected ? null : (fresh as NexioError).code,
    sockets: { before: count(sockets0), after: sockets },
    rows,
  });

  console.log(table([
    ['', 'figure', 'target', ''],
    ...rows.map((r) => [r.what, r.figure, r.target, r.ok === undefined ? '' : r.ok ? 'ok' : 'MISSED']),
  ]));
  const missed = rows.filter((r) => r.ok === false);
  if (args.json) writeFileSync(args.json, JSON.stringify(out, null, 2));
  console.log(missed.length ? `\n${missed.length} target(s) missed` : '\nevery target met');
  return missed.length ? 1 : 0;
}

main()
  .catch((e) => { console.error(e); return 2; })
  .then(async (code) => {
    for (const c of cleanups.reverse()) await c();
    process.exit(code);
  });
