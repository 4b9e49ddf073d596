// The host held to the core's standard (issue 8): what a peer claims must
// not size what the server allocates, and connections that never close must
// not lock new clients out. The server runs in a child process
// (fixtures/attack-server.ts) so its memory and sockets are its own and a
// crash is seen, not suffered; the flood runs in another
// (fixtures/attack-flood.ts). Figures for the same attacks, with latency:
// `npm run attack` (bench/attack.ts).

import t, { Test } from 'tap';
import { connect, Context, NexioError, Session } from '../host/index';
import {
  startAttackServer, startFlood, RawPeer, claim, within, poll, MiB, mib, AttackServer,
} from './fixtures/attack-peer';

/** 4 GiB - 1: the largest dataLen the wire can carry. */
const HUGE = 0xffffffff;

/** A legitimate session on the server, and a round trip that shows the server went through its input. */
async function legitimate(t: Test, server: AttackServer): Promise<Session> {
  const s = await connect(server.portal, { lanes: 1 });
  t.teardown(() => s.destroy());
  t.equal((await s.request('', 'before')).data.toString(), 'before', 'a legitimate session works before the attack');
  return s;
}

/** Lets the server read what was written to it: a round trip on another connection, then a short pause. */
async function settle(s: Session): Promise<void> {
  await s.request('', 'sync').catch(() => undefined);
  await new Promise((r) => setTimeout(r, 200));
}

t.test('a REQUEST claiming 4 GiB of payload allocates nothing: a protocol error, the lane closed', { timeout: 60000 }, async (t) => {
  const server = await startAttackServer(t);
  const legit = await legitimate(t, server);
  const before = await server.memory();
  const peers: RawPeer[] = [];
  t.teardown(() => { for (const p of peers) p.sock.destroy(); });
  for (let i = 0; i < 4; i++) {
    const p = await RawPeer.session(server.port);
    peers.push(p);
    await p.send(claim(HUGE));
  }
  await settle(legit);
  t.ok(server.alive(), `the server is still running${server.alive() ? '' : ` (it exited: ${JSON.stringify(server.exit())})`}`);
  const after = await server.memory().catch(() => undefined);
  if (after) {
    t.comment(`4 claims of 4 GiB: arrayBuffers ${mib(before.arrayBuffers)} -> ${mib(after.arrayBuffers)}, rss ${mib(before.rss)} -> ${mib(after.rss)}`);
    t.ok(after.arrayBuffers - before.arrayBuffers < 64 * MiB, `the server's arrayBuffers grew by less than 64 MiB (${mib(after.arrayBuffers - before.arrayBuffers)})`);
    t.ok(after.rss - before.rss < 64 * MiB, `and its rss by less than 64 MiB (${mib(after.rss - before.rss)})`);
  } else {
    t.fail('the server answered how much memory it uses');
  }
  for (const [i, p] of peers.entries()) {
    const closed = await within(p.closed, 5000);
    const err = p.frames().find((f) => f.type === 'error');
    t.ok(err, `claim ${i}: the server answered with an ERROR frame${err && err.type === 'error' ? ` (code ${err.code})` : ''}`);
    t.ok(closed, `claim ${i}: and closed the lane`);
  }
  if (!server.alive()) return;
  t.equal((await legit.request('', 'after')).data.toString(), 'after', 'the legitimate session still gets its response');
  t.match(legit.stats(), { state: 'open', lanesUp: 1, failovers: 0, protocolErrors: 0 }, 'and lost nothing');
  const again = await connect(server.portal, { lanes: 1 });
  t.equal((await again.request('', 'new')).data.toString(), 'new', 'the server accepts new sessions');
  await again.destroy();
});

t.test('a claim under the limit with no payload behind it does not allocate the claim up front', { timeout: 60000 }, async (t) => {
  // 60 MiB is under the core's maximum message size (64 MiB by default):
  // the claims are legal, and the payloads must grow as their bytes arrive.
  const server = await startAttackServer(t);
  const legit = await legitimate(t, server);
  // Sessions cost the server something of their own: measure from a baseline
  // that already has eight raw sessions open, claims apart.
  const quiet: RawPeer[] = [];
  const peers: RawPeer[] = [];
  t.teardown(() => { for (const p of [...quiet, ...peers]) p.sock.destroy(); });
  for (let i = 0; i < 8; i++) quiet.push(await RawPeer.session(server.port));
  await settle(legit);
  const before = await server.memory();
  for (let i = 0; i < 8; i++) {
    const p = await RawPeer.session(server.port);
    peers.push(p);
    await p.send(claim(60 * MiB), Buffer.alloc(1024, i));
  }
  await settle(legit);
  t.ok(server.alive(), 'the server is still running');
  const after = await server.memory().catch(() => undefined);
  if (after) {
    t.comment(`8 claims of 60 MiB with 1 KiB sent: arrayBuffers ${mib(before.arrayBuffers)} -> ${mib(after.arrayBuffers)}, rss ${mib(before.rss)} -> ${mib(after.rss)}`);
    t.ok(after.arrayBuffers - before.arrayBuffers < 16 * MiB, `the server's arrayBuffers grew by less than 16 MiB (${mib(after.arrayBuffers - before.arrayBuffers)})`);
    t.ok(after.rss - before.rss < 64 * MiB, `and its rss by less than 64 MiB (${mib(after.rss - before.rss)})`);
  } else {
    t.fail('the server answered how much memory it uses');
  }
  t.equal(peers.filter((p) => p.isClosed).length, 0, 'the claims are legal: their lanes are still open');
  if (!server.alive()) return;
  // The path that grows payloads as they arrive still delivers them whole.
  const big = Buffer.alloc(20 * MiB);
  for (let i = 0; i < big.length; i += 4096) big[i] = i & 0xff;
  const r = await legit.request('big', big);
  t.ok(r.data.equals(big), 'a legitimate 20 MiB request comes back whole');
});

t.test('3,000 connections that never close leave new clients a way in', { timeout: 90000 }, async (t) => {
  const server = await startAttackServer(t);
  const legit = await legitimate(t, server);
  const count = (x: { fds: number; tcp: number }) => (x.fds >= 0 ? x.fds : x.tcp);
  const base = count(await server.sockets());

  const flood = startFlood(t, server.port, 3000);
  const flooded = await Promise.race([flood.flooded, new Promise<undefined>((r) => setTimeout(() => r(undefined), 30000).unref())]);
  t.ok(flooded, 'the attacker set up its connections within 30 s');
  if (!flooded) return;
  t.comment(`flood: ${flooded.connected} connected (${flooded.failed} failed) in ${flooded.ms.toFixed(0)} ms; ${flooded.ended} already ended by the server`);
  t.equal(flooded.connected + flooded.failed, 3000, 'every connection was tried');
  await settle(legit);

  // A new client, while all 3,000 stay open on the attacker's side.
  const ctx = new Context();
  t.teardown(() => ctx.close());
  const t0 = performance.now();
  const fresh = await connect(server.portal, { context: ctx, lanes: 1, timeout: 2000 }).catch((e: NexioError) => e);
  const ms = performance.now() - t0;
  if (fresh instanceof Session) t.teardown(() => fresh.destroy());
  t.ok(fresh instanceof Session, `a new client connects during the flood (${fresh instanceof Session ? `${ms.toFixed(0)} ms` : `${(fresh as NexioError).code}: ${(fresh as Error).message}`})`);
  if (fresh instanceof Session) {
    t.ok(ms < 2000, `within 2 s (${ms.toFixed(0)} ms; the target is 1 s: npm run attack)`);
    t.equal((await fresh.request('', 'fresh')).data.toString(), 'fresh', 'and is served');
  }

  // The session that was there before goes on; generous bound, no timing claim.
  const done = (async () => {
    for (let i = 0; i < 200; i++) if ((await legit.request('', `n${i}`)).data.toString() !== `n${i}`) return false;
    return true;
  })().catch(() => false);
  const served = await Promise.race([done, new Promise<false>((r) => setTimeout(() => r(false), 10000).unref())]);
  t.ok(served, 'the legitimate session completes 200 requests during the flood');
  t.ok(server.alive(), 'the server is still running');

  // The server gives up on every attacker's connection, and lets it go:
  // its open sockets come back to what it had, plus the new client's lane.
  let last = -1;
  const back = await poll(async () => {
    if (!server.alive()) return true;
    last = count(await server.sockets());
    return last <= base + 8;
  }, 20000, 250);
  const st = await flood.status().catch(() => undefined);
  t.comment(`server sockets: ${base} before the flood, ${last} at the end; the attacker saw ${st?.ended ?? '?'} of its connections ended by the server`);
  t.ok(back && server.alive(), `the server's open sockets return to a handful within 20 s, the attacker's still open on its side (${base} before, ${last} now)`);
});
