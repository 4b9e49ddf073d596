// Failover in real processes: the server runs in a child process, the client
// here drives a load of requests (and one-way messages) with unique ids, and
// lanes are destroyed in the middle of it, from this side and from the
// server's, or go silent (a black hole that only keepalives can detect). Every request must complete exactly once (the server's handler
// ran once for its id) or fail with a typed error; every one-way message
// arrives once, in order. Drops are tied to progress, not to time. Each
// case runs over tcp:// and over tls:// (every lane its own TLS connection).

import t, { Test } from 'tap';
import { connect, NexioError, Session } from '../host/index';
import type { Lane } from '../host/transports/transport';
import { installLaneControl } from './fixtures/lane-control';
import { startServerProc, ServerProc } from './fixtures/proc';
import { clientTls, streamSchemes } from './fixtures/tls';

const control = installLaneControl();

interface Outcome { ok: number; failed: Map<string, number>; wrong: string[]; done: string[] }

/** Runs `total` requests, `inflight` at a time; `onProgress(n)` after each settles. */
async function load(s: Session, prefix: string, total: number, inflight: number, onProgress: (n: number) => void): Promise<Outcome> {
  const out: Outcome = { ok: 0, failed: new Map(), wrong: [], done: [] };
  let next = 0, settled = 0;
  const one = async (): Promise<void> => {
    while (next < total) {
      const i = next++;
      const id = `${prefix}-${i}`;
      if (i % 4 === 0) s.send(`m:${id}`, 'x').catch(() => undefined);
      try {
        const size = i % 97 === 0 ? 1 << 20 : i % 7 === 0 ? 20000 : 100;
        const payload = Buffer.alloc(size, i & 0xff);
        const r = await s.request(id, payload);
        const right = r.header.toString() === id && (size > 8192 ? r.data.equals(payload) : r.data.toString() === id);
        if (right) { out.ok++; out.done.push(id); } else out.wrong.push(id);
      } catch (e) {
        const code = e instanceof NexioError ? e.code : `untyped: ${e}`;
        out.failed.set(code, (out.failed.get(code) ?? 0) + 1);
      }
      onProgress(++settled);
    }
  };
  await Promise.all(Array.from({ length: inflight }, one));
  return out;
}

async function check(t: Test, server: ServerProc, prefix: string, total: number, out: Outcome, sent: string[]): Promise<void> {
  const { counts, messages } = await server.ask<{ counts: Record<string, number>; messages: string[] }>('counts', 'counts');
  t.same([...out.failed], [], 'no request failed (the session survived every lane loss)');
  t.same(out.wrong, [], 'every response carries its own id');
  t.equal(out.ok, total, 'every request completed');
  const twice = Object.entries(counts).filter(([id, n]) => id.startsWith(prefix) && n !== 1);
  t.same(twice, [], 'no handler ran twice (or not at all) for one id');
  t.equal(out.done.filter((id) => counts[id] !== 1).length, 0, 'each completed request ran exactly once');
  const mine = messages.filter((m) => m.startsWith(`m:${prefix}-`));
  t.same(mine, sent, 'every one-way message arrived once, in order');
}

for (const scheme of streamSchemes) {
  t.test(`${scheme}: lanes destroyed from the client side mid-load`, { timeout: 90000 }, async (t) => {
    const server = await startServerProc(t, { delayMs: 1, scheme });
    const s = await connect(server.portal, { lanes: 2, resumeTimeout: 15000, ...clientTls(server.portal) });
    t.teardown(() => s.destroy());
    const total = 1000;
    let drops = 0;
    const sent: string[] = [];
    for (let i = 0; i < total; i += 4) sent.push(`m:c-${i}`);
    const out = await load(s, 'c', total, 32, (n) => {
      // One lane at a time, then all of them at once (the session resumes).
      if (n % 150 === 75 && n < total - 75) {
        const l = [...control.connected];
        if (n % 300 === 75) { const one = l[0] as Lane & { heard?: boolean } | undefined; if (one) { if (one.heard) drops++; one.destroy(); } } else { drops += control.drop('connected'); }
      }
    });
    t.ok(drops >= 3, `lanes were dropped mid-load (${drops})`);
    t.ok(s.stats().failovers >= drops, `stats count the failovers (${s.stats().failovers})`);
    await check(t, server, 'c', total, out, sent);
    t.equal(s.state, 'open', 'the session is still open');
  });

  t.test(`${scheme}: lanes destroyed from the server side mid-load`, { timeout: 90000 }, async (t) => {
    const server = await startServerProc(t, { delayMs: 1, scheme });
    const s = await connect(server.portal, { lanes: 2, resumeTimeout: 15000, ...clientTls(server.portal) });
    t.teardown(() => s.destroy());
    const total = 1000;
    const sent: string[] = [];
    for (let i = 0; i < total; i += 4) sent.push(`m:s-${i}`);
    const drops: Promise<{ n: number }>[] = [];
    const out = await load(s, 's', total, 32, (n) => {
      if (n % 150 === 75 && n < total - 75) drops.push(server.ask<{ n: number }>('drop-lanes', 'dropped'));
    });
    const dropped = (await Promise.all(drops)).reduce((a, d) => a + d.n, 0);
    t.ok(dropped >= 3, `the server dropped lanes mid-load (${dropped})`);
    await check(t, server, 's', total, out, sent);
    t.equal(s.state, 'open', 'the session is still open');
  });

  t.test(`${scheme}: a lane goes silent (no FIN, nothing gets through): keepalive finds it, its traffic moves`, { timeout: 90000 }, async (t) => {
    const keepaliveMs = 200;
    const server = await startServerProc(t, { delayMs: 1, core: { keepaliveMs }, scheme });
    const s = await connect(server.portal, { lanes: 2, keepaliveMs, resumeTimeout: 15000, ...clientTls(server.portal) });
    t.teardown(() => s.destroy());
    const down: number[] = [];
    s.on('lane-down', (_lane: number, code: number) => down.push(code));
    const total = 800;
    const sent: string[] = [];
    for (let i = 0; i < total; i += 4) sent.push(`m:q-${i}`);
    const stalls: Promise<{ ok: boolean }>[] = [];
    const out = await load(s, 'q', total, 16, (n) => {
      if (n === 100) stalls.push(Promise.resolve({ ok: control.stall('connected') }));
      if (n === 400) stalls.push(server.ask<{ ok: boolean }>('stall-lane', 'stalled'));
    });
    t.same((await Promise.all(stalls)).map((x) => x.ok), [true, true], 'a client lane and a server lane went silent mid-load');
    t.ok(down.length >= 2, `the silent lanes were taken down (codes ${down.join(', ')})`);
    await check(t, server, 'q', total, out, sent);
    t.equal(s.state, 'open', 'the session is still open');
  });
}
