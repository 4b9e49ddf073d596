// Zero-copy receive over real tcp: with `views`, replies, messages and a
// handler's request are Buffers over the core's receive ring, not copies;
// they are lent until released, and what is lent keeps its credit from the
// sender (so a receiver that never releases stalls its peer, and a release
// lets it go on). Without `views`, everything is a fresh Buffer as before.

import t from 'tap';
import { connect, createServer, Session } from '../host/index';

/** Polls until f() is true or ms pass; resolves f()'s last answer. */
const M = Buffer.from('m'), X = Buffer.from('x');

async function until(f: () => boolean, ms = 5000): Promise<boolean> {
  for (const end = Date.now() + ms; !f() && Date.now() < end;) await new Promise((r) => setTimeout(r, 5));
  return f();
}

t.test('views: replies, messages and handler requests are lent ring bytes', async (t) => {
  let reqShared = false;
  const server = await createServer({
    portals: ['tcp://127.0.0.1:0/svc'], views: true,
    handler: (req) => {
      reqShared = req.data.buffer === req.header.buffer && req.data.buffer.byteLength > 1 << 20;
      return { header: req.header, data: req.data }; // lent bytes as the reply: copied into the core before release
    },
    onMessage: (s, h, d, release) => { release?.(); s.send('echo', Buffer.concat([h, d])).catch(() => undefined); },
  });
  t.teardown(() => server.close());
  const s = await connect(server.portals[0], { views: true, lanes: 1 });
  t.teardown(() => s.destroy());
  const r = await s.request('hdr', 'some data');
  t.equal(r.header.toString(), 'hdr', 'header');
  t.equal(r.data.toString(), 'some data', 'data');
  t.ok(reqShared, "the handler's req.header and req.data were views of one large memory");
  t.equal(r.data.buffer, r.header.buffer, 'the reply is a view of the same memory');
  t.ok(r.data.buffer.byteLength > 1 << 20, `which is the core's memory (${r.data.buffer.byteLength} bytes)`);
  t.type(r.release, 'function', 'with a release()');
  r.release!();
  r.release!();
  t.pass('release() is idempotent');
  const got = new Promise<[string, boolean]>((resolve) => s.once('message', (h: Buffer, d: Buffer, release?: () => void) => {
    const out: [string, boolean] = [`${h}:${d}`, typeof release === 'function'];
    release!();
    resolve(out);
  }));
  await s.send('ping', 'x');
  t.same(await got, ['echo:pingx', true], "a message event's third argument is its release()");
  const big = Buffer.alloc(100_000, 7);
  const rb = await s.request('big', big);
  t.ok(rb.data.equals(big), 'a payload above the ext threshold arrives whole (into a buffer of its own)');
  rb.release!();
});

t.test('views: what is not released keeps its credit; a release lets the peer go on', async (t) => {
  const held: (() => void)[] = [];
  let received = 0;
  const server = await createServer({
    portals: ['tcp://127.0.0.1:0/svc'], views: true, handler: () => 'ok',
    onMessage: (_s, _h, _d, release) => { received++; held.push(release!); },
  });
  t.teardown(() => server.close());
  const s = await connect(server.portals[0], { lanes: 1, credits: { messages: 16 } });
  t.teardown(() => s.destroy());
  let accepted = 0;
  while (s.trySend(M, X)) accepted++;
  t.ok(accepted <= 16, `the client is out of credit after ${accepted} messages`);
  t.ok(await until(() => received === accepted), `all ${accepted} arrived`);
  await new Promise((r) => setTimeout(r, 100));
  t.notOk(s.trySend(M, X), 'nothing released: still no credit (the acks wait for the releases)');
  const drained = new Promise<void>((r) => s.once('drain', () => r()));
  for (const f of held.splice(0)) f();
  await drained;
  t.ok(s.trySend(M, X), "after the releases the credit is back ('drain')");
});

t.test('views on the requesting side: replies not released hold the server back', async (t) => {
  const server = await createServer({ portals: ['tcp://127.0.0.1:0/svc'], handler: (req) => req.data });
  t.teardown(() => server.close());
  const s: Session = await connect(server.portals[0], { views: true, lanes: 1, credits: { messages: 16 } });
  t.teardown(() => s.destroy());
  const replies = await Promise.all(Array.from({ length: 16 }, (_, i) => s.request('', `r${i}`)));
  t.same(replies.map((r) => r.data.toString()), Array.from({ length: 16 }, (_, i) => `r${i}`), '16 replies, lent');
  let done = false;
  const next = s.request('', 'seventeenth').then((r) => { done = true; return r; });
  await new Promise((r) => setTimeout(r, 200));
  t.notOk(done, "the 17th reply waits: the server's 16 replies are unacked while lent");
  replies[0].release!();
  t.ok(await until(() => done), 'one release, and it arrives');
  t.equal((await next).data.toString(), 'seventeenth', 'the right one');
  for (const r of replies) r.release!();
});

t.test('without views, received bytes are fresh Buffers and there is nothing to release', async (t) => {
  const server = await createServer({ portals: ['tcp://127.0.0.1:0/svc'], handler: (req) => req.data });
  t.teardown(() => server.close());
  const s = await connect(server.portals[0], { lanes: 1 });
  t.teardown(() => s.destroy());
  const r = await s.request('h', 'd');
  t.equal(r.release, undefined, 'no release()');
  t.ok(r.data.buffer.byteLength < 1 << 20, 'data is its own small allocation (or the pool), not the core memory');
});
