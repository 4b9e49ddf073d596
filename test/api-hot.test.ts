// The hot paths (issue 9): tryRequest's done, createServer({ hotHandler })
// with session.reply(), and hot one-way receivers (createServer({
// hotMessage }), session.setHotMessage()) are lent a message's bytes for the
// call: views of the receive ring, no copy. Everyone else (request(),
// 'message', the ordinary handler) gets Buffers it owns, that never change
// afterwards. Real tcp:// sockets.

import t from 'tap';
import { connect, createServer, Context, NexioError, Session } from '../host/index';

/** Whether b is a view of the WebAssembly core's memory (lent) or a Buffer of its own. */
const lent = (ctx: Context, b: Buffer) => b.length > 0 && b.buffer === ctx.core.memory.buffer;

t.test('tryRequest done is lent the reply; request() owns its reply', async (t) => {
  const server = await createServer({ portals: ['tcp://127.0.0.1:0/svc'], handler: (req) => ({ header: req.header, data: req.data }) });
  t.teardown(() => server.close({ timeout: 100 }));
  const ctx = new Context();
  t.teardown(() => ctx.close());
  const s = await connect(server.portals[0], { context: ctx });
  const got = await new Promise<{ h: Buffer; d: Buffer; text: string; lentH: boolean; lentD: boolean }>((resolve, reject) => {
    s.tryRequest(Buffer.from('hdr'), Buffer.from('payload-1'), (err, h, d) => {
      if (err) { reject(err); return; }
      resolve({ h, d, text: d.toString(), lentH: lent(ctx, h), lentD: lent(ctx, d) });
    });
  });
  t.equal(got.text, 'payload-1', 'the reply, during the call');
  t.ok(got.lentH && got.lentD, 'header and data are views of the receive ring (no copy)');
  const r = await s.request('hdr', 'payload-2');
  t.notOk(lent(ctx, r.data) || lent(ctx, r.header), "request()'s reply is the application's own");
  // Traffic after: the owned reply keeps its bytes.
  for (let i = 0; i < 200; i++) await s.request('x', Buffer.alloc(100, i));
  t.equal(r.data.toString(), 'payload-2', 'an owned reply never changes afterwards');
  await s.close();
});

t.test('hotHandler: no request object, lent bytes, answered by session.reply (now or later)', async (t) => {
  const seen: { lentD: boolean; text: string }[] = [];
  let serverCtx: Context | undefined;
  const later: [Session, number][] = [];
  const server = await createServer({
    portals: ['tcp://127.0.0.1:0/svc'],
    hotHandler: (session, tag, header, data) => {
      serverCtx ??= session.context;
      seen.push({ lentD: lent(session.context, data), text: data.toString() });
      if (header.toString() === 'later') { later.push([session, tag]); return; }
      if (header.toString() === 'throw') throw new Error('hot handler failed');
      t.equal(session.reply(tag, header, data), true, 'reply answers');
      t.equal(session.reply(tag, header, data), false, 'a second reply does nothing');
    },
  });
  t.teardown(() => server.close({ timeout: 100 }));
  const s = await connect(server.portals[0]);
  t.equal((await s.request('now', 'echo me')).data.toString(), 'echo me');
  const pending = s.request('later', 'wait');
  while (later.length === 0) await new Promise((r) => setTimeout(r, 5));
  const [peer, tag] = later[0];
  t.equal(peer.reply(tag, '', Buffer.from('answered later')), true);
  t.equal((await pending).data.toString(), 'answered later');
  const err = await s.request('throw', 'x').catch((e: NexioError) => e);
  t.equal((err as NexioError).code, 'NEXIO_ERR_REMOTE', 'a throw answers as a handler error');
  t.ok(seen.every((x) => x.lentD), 'every request was lent (no copy)');
  t.same(seen.map((x) => x.text), ['echo me', 'wait', 'x']);
  t.throws(() => peer.reply(1.5), { code: 'NEXIO_ERR_INVALID_ARG' });
  await s.close();
});

t.test('hotMessage on a server, setHotMessage on a client: lent bytes, nothing emitted as message', async (t) => {
  const got: { text: string; lent: boolean }[] = [];
  const server = await createServer({
    portals: ['tcp://127.0.0.1:0/svc'],
    handler: () => 'ok',
    hotMessage: (session, h, d) => {
      got.push({ text: `${h}:${d}`, lent: lent(session.context, d) });
      if (d.toString() === 'ping') void session.send('pong', 'back');
    },
  });
  t.teardown(() => server.close({ timeout: 100 }));
  const ctx = new Context();
  t.teardown(() => ctx.close());
  const s = await connect(server.portals[0], { context: ctx });
  const back = new Promise<{ text: string; lent: boolean }>((resolve) => s.setHotMessage((_s, h, d) => resolve({ text: `${h}:${d}`, lent: lent(ctx, d) })));
  let emitted = 0;
  s.on('message', () => emitted++);
  await s.send('m', 'one', { receipt: true });
  await s.send('m', 'ping');
  const b = await back;
  t.same(got.map((x) => x.text), ['m:one', 'm:ping'], 'the server got both, in order');
  t.ok(got.every((x) => x.lent), 'lent to the server');
  t.equal(b.text, 'pong:back');
  t.ok(b.lent, 'lent to the client');
  t.equal(emitted, 0, "no 'message' while a hot receiver is set");
  t.throws(() => s.setHotMessage(42 as never), { code: 'NEXIO_ERR_INVALID_ARG' });
  await s.close();
});

t.test('hot forms are checked: one form of each, not with views', async (t) => {
  const portals = ['tcp://127.0.0.1:0/svc'];
  const f = () => undefined;
  await t.rejects(createServer({ portals, handler: f, hotHandler: f }), { code: 'NEXIO_ERR_INVALID_ARG' });
  await t.rejects(createServer({ portals, onMessage: f, hotMessage: f }), { code: 'NEXIO_ERR_INVALID_ARG' });
  await t.rejects(createServer({ portals, hotHandler: f, views: true }), { code: 'NEXIO_ERR_INVALID_ARG' });
  await t.rejects(createServer({ portals, hotHandler: 'x' as never }), { code: 'NEXIO_ERR_INVALID_ARG' });
});

t.test('a hot request still waited on by close(): close waits for the reply', async (t) => {
  const later: [Session, number][] = [];
  const server = await createServer({ portals: ['tcp://127.0.0.1:0/svc'], hotHandler: (s, tag) => { later.push([s, tag]); } });
  t.teardown(() => server.close({ timeout: 100 }));
  const s = await connect(server.portals[0]);
  const r = s.request('', 'q');
  while (later.length === 0) await new Promise((res) => setTimeout(res, 5));
  const [peer, tag] = later[0];
  let closed = false;
  const closing = peer.close({ timeout: 2000 }).then(() => { closed = true; });
  await new Promise((res) => setTimeout(res, 50));
  t.notOk(closed, 'the server session waits for its outstanding hot request');
  peer.reply(tag, '', 'done');
  t.equal((await r).data.toString(), 'done');
  await closing;
  t.ok(closed);
  await s.close().catch(() => undefined);
});
