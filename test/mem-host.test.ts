// The host under hostile peers and at its limits, over mem:// (the
// in-memory transport: the real Context, server and sessions, no sockets).
// Each test here failed before the fix it names (issue 8): an EXT claim
// sized an allocation; connections the server gave up on, or that never
// spoke, held lanes and locked new clients out; a receipt never settled
// after destroy; Context.close() left sessions open with requests pending;
// the 65th session failed as NEXIO_ERR_INVALID_ARG. The same attacks over
// real sockets, with the server in its own process: host-attack.test.ts.

import t from 'tap';
import {
  connect, createServer, Context, Session, Server, NexioError, mem, MemPeer,
} from '../host/index';
import { encodeHello, encodeRequest, Frame, F_EXT } from '../host/wire';
import { readFrames } from './fixtures/frames';

let nameSeq = 0;
const portal = () => `mem://host-test-${process.pid}-${++nameSeq}/svc`;

const hello = () => encodeHello({
  verMin: 1, verMax: 1, sessionId: 0n, ackSeq: 0n, windowMsgs: 16, windowBytes: 32768, maxRequests: 4, keepaliveMs: 1000,
  key: Buffer.alloc(16), resource: '/svc', attrs: Buffer.alloc(0),
});

/** A raw mem:// peer that reads frames. */
class Raw {
  readonly p: MemPeer;
  got = Buffer.alloc(0);
  fin = false;
  closed = false;
  #wait: (() => void)[] = [];
  constructor(uri: string) {
    this.p = mem.rawDial(uri);
    this.p.ondata = (b) => { this.got = Buffer.concat([this.got, b]); this.#wake(); };
    this.p.onend = () => { this.fin = true; this.#wake(); }; // ignored: we keep our side open
    this.p.onclose = () => { this.closed = true; this.#wake(); };
  }
  #wake() { for (const w of this.#wait.splice(0)) w(); }
  frames(): Frame[] {
    return readFrames(this.got);
  }
  async until(pred: () => boolean, ms = 5000): Promise<boolean> {
    const end = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > end) return false;
      await new Promise<void>((r) => { this.#wait.push(r); setTimeout(r, 20); });
    }
    return true;
  }
}

async function echoServer(uri: string, extra: Parameters<typeof createServer>[0] extends infer O ? Partial<O> : never = {}): Promise<Server> {
  return createServer({ portals: [uri], handler: (req) => ({ header: req.header, data: req.data }), ...extra });
}

t.test('an EXT claim of 4 GiB is a protocol error before anything is allocated; 60 MiB claims grow only by what arrives', async (t) => {
  const uri = portal();
  const server = await echoServer(uri);
  t.teardown(() => server.close({ timeout: 100 }));
  const ctx = new Context();
  t.teardown(() => ctx.close());
  const legit = await connect(uri, { context: ctx });
  const before = process.memoryUsage().arrayBuffers;
  const raws: Raw[] = [];
  for (let i = 0; i < 4; i++) {
    const r = new Raw(uri);
    r.p.write(hello());
    t.ok(await r.until(() => r.frames().some((f) => f.type === 'accept')), 'the attacker got its session');
    r.p.write(encodeRequest({ seq: 0n, slot: 0, tag: 1 << 16, flags: F_EXT, header: Buffer.from('x'), dataLen: 0xffffffff }));
    raws.push(r);
  }
  for (const r of raws) {
    t.ok(await r.until(() => r.fin || r.closed), 'the lane that claimed 4 GiB is closed');
    t.ok(r.frames().some((f) => f.type === 'error' && f.code === 2), 'with an ERROR frame-too-large');
  }
  const grew = process.memoryUsage().arrayBuffers - before;
  t.ok(grew < 64 * 2 ** 20, `arrayBuffers grew by ${(grew / 2 ** 20).toFixed(1)} MiB (< 64 MiB)`);

  // Under the limit: the claim sizes nothing; the buffer grows with the bytes.
  const small: Raw[] = [];
  for (let i = 0; i < 8; i++) {
    const r = new Raw(uri);
    r.p.write(hello());
    await r.until(() => r.frames().some((f) => f.type === 'accept'));
    r.p.write(encodeRequest({ seq: 0n, slot: 0, tag: 1 << 16, flags: F_EXT, header: Buffer.from('x'), dataLen: 60 * 2 ** 20 }));
    r.p.write(Buffer.alloc(1024, 7));
    small.push(r);
  }
  await new Promise((r) => setTimeout(r, 50));
  const b2 = process.memoryUsage().arrayBuffers - before;
  // Claims within the context's 16 MiB budget are allocated whole; past it, 64 KiB per lane until bytes arrive.
  t.ok(b2 < 16 * 2 ** 20 + 8 * 2 ** 16 + 2 ** 20, `8 claims of 60 MiB with 1 KiB sent hold ${(b2 / 2 ** 20).toFixed(1)} MiB (at most the 16 MiB claim budget + 64 KiB a lane)`);
  const r = await legit.request('still', 'here');
  t.equal(r.data.toString(), 'here', 'the legitimate session in the same context is undisturbed');
  for (const x of [...raws, ...small]) x.p.destroy();
});

t.test('connections that send garbage or nothing and never close do not lock clients out', async (t) => {
  const uri = portal();
  const server = await echoServer(uri, { admission: { maxHandshakes: 64, handshakeMs: 3000, lingerMs: 300 } });
  t.teardown(() => server.close({ timeout: 100 }));
  const ctx = new Context({ core: { helloTimeoutMs: 1000 } });
  t.teardown(() => ctx.close());
  const raws: Raw[] = [];
  for (let i = 0; i < 600; i++) {
    const r = new Raw(uri);
    if (i % 2 === 0) r.p.write(Buffer.from('GARBAGE!')); // 8 bytes of nonsense, then silence
    raws.push(r);
  }
  await new Promise((r) => setTimeout(r, 50));
  const t0 = Date.now();
  const s = await connect(uri, { context: ctx, timeout: 3000 });
  const took = Date.now() - t0;
  t.ok(took < 1000, `a new client connected in ${took} ms (< 1000) with 600 hostile connections open`);
  t.equal((await s.request('a', 'b')).data.toString(), 'b', 'and its requests are answered');
  // Every hostile connection is cut by the server (garbage at once, silent
  // ones evicted or at their deadline), whatever the peer does with its side.
  const all = await raws[0].until(() => raws.every((r) => r.closed), 8000);
  t.ok(all, `the server destroyed every hostile connection (${raws.filter((r) => r.closed).length}/${raws.length})`);
  await s.close();
});

t.test('a session past maxSessions is NEXIO_ERR_LIMIT naming the limit, on the client and on the server', async (t) => {
  const uri = portal();
  const server = await echoServer(uri, { core: { maxSessions: 3 } });
  t.teardown(() => server.close({ timeout: 100 }));
  const ctx = new Context({ core: { maxSessions: 4 } });
  t.teardown(() => ctx.close());
  const ss: Session[] = [];
  for (let i = 0; i < 3; i++) ss.push(await connect(uri, { context: ctx }));
  const e1 = await connect(uri, { context: ctx }).catch((e: NexioError) => e);
  t.equal((e1 as NexioError).code, 'NEXIO_ERR_LIMIT', 'the server at its limit: NEXIO_ERR_LIMIT');
  t.match((e1 as Error).message, /3 sessions/, 'naming the server\'s limit');
  const other = await echoServer(portal());
  t.teardown(() => other.close({ timeout: 100 }));
  ss.push(await connect(other.portals[0], { context: ctx }));
  const e2 = await connect(other.portals[0], { context: ctx }).catch((e: NexioError) => e);
  t.equal((e2 as NexioError).code, 'NEXIO_ERR_LIMIT', 'the client context at its limit: NEXIO_ERR_LIMIT');
  t.match((e2 as Error).message, /4 sessions/, 'naming the context\'s limit');
  for (const s of ss) await s.destroy();
});

t.test('every operation settles: receipt then destroy, Context.close() with a request pending, close() bounded', async (t) => {
  const uri = portal();
  let release: () => void = () => undefined;
  const stuck = new Promise<void>((r) => { release = r; });
  const server = await createServer({
    portals: [uri],
    handler: async () => { await stuck; return 'late'; },
    onMessage: () => undefined,
  });
  t.teardown(async () => { release(); await server.close({ timeout: 100 }); });

  // A receipt that cannot come (the server's lanes go nowhere) then destroy().
  const c1 = new Context();
  const s1 = await connect(uri, { context: c1 });
  const pending = s1.request('h', 'd');
  const rec = s1.send('m', 'x', { receipt: true });
  let settled = 0;
  const recOut = rec.then(() => 'resolved', (e: NexioError) => e.code).finally(() => settled++);
  await s1.destroy();
  t.equal(await recOut, 'NEXIO_ERR_CLOSED', 'send with receipt then destroy(): NEXIO_ERR_CLOSED');
  t.equal(((await pending.catch((e: NexioError) => e)) as NexioError).code, 'NEXIO_ERR_CLOSED', 'and the request too');
  t.equal(settled, 1, 'settled once');
  await c1.close();

  // Context.close() with a request pending: the session ends with NEXIO_ERR_CLOSED.
  const c2 = new Context();
  const s2 = await connect(uri, { context: c2 });
  const p2 = s2.request('h', 'd').catch((e: NexioError) => e);
  const r2 = s2.send('m', 'x', { receipt: true }).then(() => undefined, (e: NexioError) => e);
  let closeEvents = 0;
  s2.on('close', () => closeEvents++);
  await c2.close();
  t.equal((await p2 as NexioError).code, 'NEXIO_ERR_CLOSED', 'a request pending across Context.close(): NEXIO_ERR_CLOSED');
  const r2e = await r2;
  t.ok(r2e === undefined || (r2e as NexioError).code === 'NEXIO_ERR_CLOSED', 'the receipt settled (delivered, or NEXIO_ERR_CLOSED)');
  t.equal(s2.state, 'closed', 'the session is closed');
  t.equal(closeEvents, 1, "one 'close' event");
  t.equal((await connect(uri, { context: c2 }).catch((e: NexioError) => e) as NexioError).code, 'NEXIO_ERR_CLOSED', 'a closed context opens no session');
  const u = c2.usage();
  t.same([u.sessions, u.lanes, u.timers, u.txPayloads], [0, 0, 0, 0], 'and holds nothing');

  // close() with a request the handler never answers: bounded by its timeout.
  const c3 = new Context();
  t.teardown(() => c3.close());
  const s3 = await connect(uri, { context: c3 });
  const p3 = s3.request('h', 'd').catch((e: NexioError) => e);
  const t0 = Date.now();
  await s3.close({ timeout: 200 });
  t.ok(Date.now() - t0 < 2000, `close({ timeout: 200 }) settled in ${Date.now() - t0} ms`);
  t.equal((await p3 as NexioError).code, 'NEXIO_ERR_CLOSED', 'the request it gave up on: NEXIO_ERR_CLOSED');
  t.equal(s3.state, 'closed');
});

t.test('sessions with the same non-default settings share one context', async (t) => {
  const uri = portal();
  const server = await echoServer(uri);
  t.teardown(() => server.close({ timeout: 100 }));
  const a = await connect(uri, { keepaliveMs: 700, timeout: 2000 });
  const b = await connect(uri, { keepaliveMs: 700, timeout: 3000 });
  const c = await connect(uri, { keepaliveMs: 900 });
  t.ok(a.context === b.context, 'same settings, same context (timeout costs no context)');
  t.not(a.context, c.context, 'other settings, another context');
  for (const s of [a, b, c]) await s.close();
});

t.test('the handshake pool: a silent flood beyond it evicts the oldest, a client that speaks gets in', async (t) => {
  const uri = portal();
  const server = await echoServer(uri, { admission: { maxHandshakes: 16, maxHandshakesPerAddress: 16, handshakeMs: 60_000 } });
  t.teardown(() => server.close({ timeout: 100 }));
  const raws: Raw[] = [];
  for (let i = 0; i < 100; i++) raws.push(new Raw(uri));
  await new Promise((r) => setTimeout(r, 30));
  const ctx = new Context();
  t.teardown(() => ctx.close());
  const t0 = Date.now();
  const s = await connect(uri, { context: ctx, timeout: 3000 });
  t.ok(Date.now() - t0 < 1000, `connected in ${Date.now() - t0} ms though the deadline is 60 s`);
  t.ok(raws.filter((r) => r.closed).length >= 84, 'the silent connections beyond the pool were evicted');
  await s.close();
  for (const r of raws) r.p.destroy();
});


/** A HostClock the test moves by hand (the mem:// network still runs on setImmediate). */
function manualClock() {
  let now = 1_000_000;
  const timers = new Map<number, { at: number; fn: () => void }>();
  let next = 1;
  return {
    clock: {
      now: () => now,
      setTimer: (fn: () => void, ms: number) => { const id = next++; timers.set(id, { at: now + ms * 1000, fn }); return id; },
      clearTimer: (h: unknown) => { timers.delete(h as number); },
    },
    /** Moves time on by ms in steps of stepMs, firing what is due, letting I/O run between steps. */
    async advance(ms: number, stepMs: number): Promise<void> {
      for (let t = 0; t < ms; t += stepMs) {
        now += stepMs * 1000;
        for (const [id, x] of [...timers]) if (x.at <= now) { timers.delete(id); x.fn(); }
        await new Promise((r) => setImmediate(r));
      }
    },
  };
}

t.test('a peer that announces a 49-day keepalive and goes silent is let go after 3 minutes, not 149 days', async (t) => {
  const uri = portal();
  const m = manualClock();
  const ctx = new Context({ clock: m.clock, core: { keepaliveMs: 100 } });
  t.teardown(() => ctx.close());
  const { serveContext } = await import('../host/server');
  serveContext(ctx, { handler: (req) => req.data }, () => ({ accept: true }));
  await ctx.listen(uri);
  const r = new Raw(uri);
  r.p.write(encodeHello({
    verMin: 1, verMax: 1, sessionId: 0n, ackSeq: 0n, windowMsgs: 16, windowBytes: 32768, maxRequests: 4, keepaliveMs: 0xffffffff,
    key: Buffer.alloc(16), resource: '/svc', attrs: Buffer.alloc(0),
  }));
  t.ok(await r.until(() => r.frames().some((f) => f.type === 'accept')), 'the peer has its session');
  await m.advance(170_000, 1000);
  t.notOk(r.fin, 'still held at 170 s (3 x the 60 s cap is 180 s)');
  await m.advance(15_000, 1000);
  t.ok(await r.until(() => r.fin, 2000), 'let go (FIN) by 185 s of silence');
  await m.advance(11_000, 1000);
  t.equal(ctx.usage().sessions, 0, 'its session is gone once the resume time (10 s) passed');
  r.p.destroy();
});

t.test('payloads let go when their session ends: one received for a message held out of order, one sent to a peer that CLOSEd', async (t) => {
  const F = await import('./fuzz/frames');
  const { serveContext } = await import('../host/server');
  const uri = portal();
  const ctx = new Context({ core: { keepaliveMs: 100, resumeMs: 200 }, admission: { lingerMs: 10 } });
  t.teardown(() => ctx.close());
  serveContext(ctx, { handler: (req) => ({ data: req.data }) }, () => ({ accept: true }));
  await ctx.listen(uri);
  const len = 20000;
  const idle = async () => {
    for (let i = 0; i < 100 && ctx.usage().sessions + ctx.usage().lanes > 0; i++) await new Promise((r) => setTimeout(r, 20));
  };

  // seq 0 never sent; seq 1, an EXT one-way message, arrives whole: held until seq 0, which never comes.
  const a = new Raw(uri);
  a.p.write(F.hello({ keepaliveMs: 100 }));
  await a.until(() => a.frames().some((f) => f.type === 'accept'));
  a.p.write(Buffer.concat([F.message({ type: F.T.ONEWAY, seq: 1, slot: 32, extLen: len }), Buffer.alloc(len, 7)]));
  await new Promise((r) => setTimeout(r, 30));
  t.equal(ctx.usage().rxPayloads, 1, 'the payload is held for its message');
  a.p.destroy();
  await idle();
  t.same([ctx.usage().sessions, ctx.usage().rxPayloads, ctx.usage().rxBytes], [0, 0, 0], 'gone with its lost session');

  // A request whose echo is an EXT response, then CLOSE, and the peer leaves without acking the response.
  const b = new Raw(uri);
  b.p.write(F.hello({ keepaliveMs: 100 }));
  await b.until(() => b.frames().some((f) => f.type === 'accept'));
  b.p.write(Buffer.concat([
    F.message({ type: F.T.REQUEST, seq: 0, slot: 0, tag: 0x10000, extLen: len }), Buffer.alloc(len, 7),
    F.message({ type: F.T.CLOSE, seq: 1, slot: 32 }),
  ]));
  await new Promise((r) => setTimeout(r, 30));
  t.equal(ctx.usage().txPayloads, 1, 'the EXT response is held until acked');
  b.p.end();
  await idle();
  t.same([ctx.usage().sessions, ctx.usage().txPayloads], [0, 0], 'let go once the core drops the session the peer closed');
});

t.test('an onSession that never answers does not hold a session place once its connection is evicted', async (t) => {
  const uri = portal();
  const server = await createServer({
    portals: [uri], core: { maxSessions: 2 }, admission: { handshakeMs: 200 },
    handler: (req) => req.data,
    // sessions asking for /hang are never decided (every retry of theirs waits for ever)
    onSession: (info) => (info.resource === '/hang' ? new Promise<'accept'>(() => undefined) : 'accept'),
  });
  t.teardown(() => server.close({ timeout: 100 }));
  const ctx = new Context();
  t.teardown(() => ctx.close());
  const hang = uri.replace(/\/svc$/, '/hang');
  const ends = await Promise.all([1, 2, 3].map(() => connect(hang, { context: ctx, lanes: 1, timeout: 1200 }).then(() => 'open', (e: NexioError) => e.code)));
  t.ok(ends.every((c) => c !== 'open'), `the undecided sessions never opened (${ends.join(', ')})`);
  const s = await connect(uri, { context: ctx, lanes: 1, timeout: 3000 }).catch((e: NexioError) => e);
  t.notOk(s instanceof Error, `a new session gets in (${s instanceof Error ? (s as NexioError).code : 'open'})`);
  if (!(s instanceof Error)) await (s as Session).close();
});
