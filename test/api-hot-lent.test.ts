// Lent bytes must not be kept past the call that lent them (found by review
// of issue 9's hot paths; each check failed before its fix): a hot handler
// that echoes its lent data as an ext payload (held until acked, resent on
// failover), a hot receiver that forwards lent bytes with send() while the
// session waits for credit; and a request's timeout counted from a fresh
// clock read, not the turn's kept time.

import t from 'tap';
import { createServer, connect, registerTransport, Context } from '../host/index';
import { tcp } from '../host/transports/tcp';
import type { Lane, LaneSink } from '../host/transports/transport';

t.test('a hot handler echoing its lent data as an ext payload: every reply intact after failover', async (t) => {
  // A tcp:// look-alike whose server lanes can be told to drop what they write.
  const accepted: { io: Lane; stalled: boolean }[] = [];
  const scheme = `tcpspy${process.pid}`;
  registerTransport({
    scheme, caps: tcp.caps, check: tcp.check,
    connect: (u: URL, sink: LaneSink, o?: object) => tcp.connect(new URL(u.href.replace(scheme, 'tcp')), sink, o as never),
    listen: (u: URL, accept: (bind: (s: LaneSink) => void, lane: Lane) => void, o?: object) => tcp.listen(new URL(u.href.replace(scheme, 'tcp')), (bind, io) => {
      const spy = { io, stalled: false };
      accepted.push(spy);
      accept(bind, {
        get remote() { return io.remote; },
        write: (b: Uint8Array, ext?: Uint8Array, rdv?: number) => { if (!spy.stalled) io.write(b, ext, rdv); },
        end: () => io.end(), destroy: () => io.destroy(),
      });
    }, o as never).then((l) => ({ uri: l.uri.replace('tcp:', `${scheme}:`), close: () => l.close() })),
  });
  const HDR = Buffer.alloc(1000, 0x68);
  const server = await createServer({ portals: [`${scheme}://127.0.0.1:0/svc`], hotHandler: (s, tag, _h, data) => { s.reply(tag, HDR, data); } });
  t.teardown(() => server.close({ timeout: 100 }));
  const s = await connect(server.portals[0], { lanes: 2 });
  while (s.stats().lanesUp < 2 || accepted.length < 2) await new Promise((r) => setTimeout(r, 10));
  accepted[0].stalled = true; // one server lane loses what it writes
  const N = 120, SIZE = 7500;
  const results: Promise<boolean>[] = [];
  for (let i = 0; i < N; i++) {
    results.push(s.request(Buffer.alloc(0), Buffer.alloc(SIZE, i + 1), { timeout: 20000 })
      .then((r) => r.data.length === SIZE && r.data.every((b) => b === i + 1), () => false));
    await new Promise((r) => setImmediate(r));
  }
  await new Promise((r) => setTimeout(r, 300));
  accepted[0].io.destroy(); // the lane dies: what it lost is sent again on the other
  const ok = await Promise.all(results);
  t.equal(ok.filter((x) => !x).length, 0, 'no reply carries another message\'s bytes');
  await s.close();
});

t.test('a hot receiver forwarding lent bytes with send() while out of credit: each echo is its own message', async (t) => {
  const server = await createServer({
    portals: ['tcp://127.0.0.1:0/svc'], core: { windowMsgs: 16, windowBytes: 32768 },
    handler: () => 'ok', hotMessage: (s, h, d) => { s.send(h, d).catch(() => undefined); },
  });
  t.teardown(() => server.close({ timeout: 100 }));
  const s = await connect(server.portals[0], { views: true, core: { windowMsgs: 16, windowBytes: 32768 } });
  const N = 200, SIZE = 3000;
  let got = 0, wrong = 0, holding = true;
  const held: (() => void)[] = [];
  const done = new Promise<void>((resolve) => s.on('message', (h: Buffer, d: Buffer, release?: () => void) => {
    if (h.readUInt32LE(0) !== got || d[0] !== (got & 0xff)) wrong++;
    if (holding) held.push(release!); else release!();
    if (++got === N) resolve();
  }));
  for (let i = 0; i < N;) {
    const h = Buffer.alloc(4);
    h.writeUInt32LE(i);
    if (s.trySend(h, Buffer.alloc(SIZE, i & 0xff))) { i++; continue; }
    await new Promise<void>((r) => s.once('drain', () => r()));
  }
  await new Promise((r) => setTimeout(r, 100));
  holding = false;
  for (const r of held.splice(0)) r();
  await Promise.race([done, new Promise((r) => setTimeout(r, 10000))]);
  t.equal(got, N, 'every echo came');
  t.equal(wrong, 0, 'and each is the message it answers');
  await s.close();
});

t.test("a request's timeout counts from the call, even after long synchronous work in the same turn", async (t) => {
  const server = await createServer({ portals: ['tcp://127.0.0.1:0/svc'], handler: () => new Promise((r) => setTimeout(() => r('ok'), 50)) });
  t.teardown(() => server.close({ timeout: 100 }));
  const ctx = new Context();
  t.teardown(() => ctx.close());
  const s = await connect(server.portals[0], { context: ctx });
  await new Promise((r) => setTimeout(r, 20));
  const t0 = Date.now();
  const first = s.request('a', 'b', { timeout: 1000 }); // the turn's first clock read
  while (Date.now() - t0 < 200) { /* 200 ms of synchronous work */ }
  const second = s.request('a', 'b', { timeout: 150 }); // answered in ~50 ms
  const r = await Promise.allSettled([first, second]);
  t.equal(r[1].status, 'fulfilled', 'not timed out from the turn\'s kept time');
  await s.close();
});
