// One-way messages to a server that takes none (created without onMessage)
// are refused, not dropped with a receipt: the server's ACCEPT says so
// (F_NO_ONEWAY, docs/protocol.md section 5), the client's send() fails at
// once with NEXIO_ERR_NO_HANDLER, nothing goes on the wire, the session goes
// on; a client that sends a ONEWAY anyway loses that lane (bad-type).
// Before the change the receipt resolved and the message was dropped.

import t from 'tap';
import * as path from 'node:path';
import { connect, createServer, Context, NexioError, mem } from '../host/index';
import { encodeHello, encodeOneway, F_NO_ONEWAY } from '../host/wire';
import { readFrames } from './fixtures/frames';

let seq = 0;
const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: NexioError) => e.code ?? String(e));

t.test('tcp://: send() to a server without onMessage rejects with NEXIO_ERR_NO_HANDLER, receipt or not', async (t) => {
  const server = await createServer({ portals: ['tcp://127.0.0.1:0/svc'], handler: (req) => req.data });
  t.teardown(() => server.close({ timeout: 100 }));
  const ctx = new Context();
  t.teardown(() => ctx.close());
  const s = await connect(server.portals[0], { context: ctx });
  const t0 = Date.now();
  const withReceipt = s.send('h', 'd', { receipt: true });
  t.equal(await code(withReceipt), 'NEXIO_ERR_NO_HANDLER', 'the receipt rejects');
  t.ok(Date.now() - t0 < 1000, 'at once, not at a deadline');
  const err = await s.send('h', 'd').catch((e: NexioError) => e);
  t.equal((err as NexioError).code, 'NEXIO_ERR_NO_HANDLER', 'a send without receipt rejects too');
  t.match((err as Error).message, /onMessage/, 'the message says why');
  t.throws(() => s.trySend(Buffer.from('h'), Buffer.from('d')), { code: 'NEXIO_ERR_NO_HANDLER' }, 'trySend throws');
  t.equal(s.stats().messagesSent, 0, 'nothing was sent');
  t.equal((await s.request('q', 'still works')).data.toString(), 'still works', 'the session goes on');
  t.equal(s.state, 'open');
  const st = await server.stats();
  t.equal(st.totals.messagesDropped, 0, 'the server dropped nothing: nothing came');
  await s.close();
});

t.test('a server with onMessage takes them, with receipts', async (t) => {
  const got: string[] = [];
  const server = await createServer({
    portals: ['tcp://127.0.0.1:0/svc'],
    onMessage: (_s, h) => { got.push(h.toString()); },
  });
  t.teardown(() => server.close({ timeout: 100 }));
  const ctx = new Context();
  t.teardown(() => ctx.close());
  const s = await connect(server.portals[0], { context: ctx });
  await s.send('one', 'd', { receipt: true });
  t.same(got, ['one'], 'the receipt came after the application got it');
  await s.close();
});

t.test('threads: a handler module without onMessage refuses one-way messages too', async (t) => {
  const server = await createServer({
    portals: ['tcp://127.0.0.1:0/svc'], threads: 1,
    handler: path.join(__dirname, 'fixtures', 'thread-handler.js'),
  });
  t.teardown(() => server.close({ timeout: 100 }));
  const ctx = new Context();
  t.teardown(() => ctx.close());
  const s = await connect(server.portals[0], { context: ctx });
  t.equal(await code(s.send('h', 'd', { receipt: true })), 'NEXIO_ERR_NO_HANDLER');
  t.ok((await s.request('q', 'x')).data.length > 0, 'requests still reach the handler');
  await s.close();
});

t.test('a client that sends a ONEWAY anyway loses that lane with bad-type; the server goes on', async (t) => {
  const uri = `mem://oneway-refused-${process.pid}-${++seq}/svc`;
  const server = await createServer({ portals: [uri], handler: (req) => req.data });
  t.teardown(() => server.close({ timeout: 100 }));
  const p = mem.rawDial(uri);
  let got = Buffer.alloc(0);
  let closed = false;
  p.ondata = (b) => { got = Buffer.concat([got, b]); };
  p.onclose = () => { closed = true; };
  p.onend = () => undefined;
  p.write(encodeHello({
    verMin: 1, verMax: 1, sessionId: 0n, ackSeq: 0n, windowMsgs: 16, windowBytes: 32768, maxRequests: 4,
    keepaliveMs: 1000, key: Buffer.alloc(16), resource: '/svc', attrs: Buffer.alloc(0),
  }));
  const until = async (pred: () => boolean) => {
    for (let i = 0; i < 250 && !pred(); i++) await new Promise((r) => setTimeout(r, 20));
    return pred();
  };
  t.ok(await until(() => readFrames(got).some((f) => f.type === 'accept')), 'ACCEPT came');
  const accept = readFrames(got).find((f) => f.type === 'accept')!;
  t.ok((accept.flags & F_NO_ONEWAY) !== 0, 'the ACCEPT says: no one-way messages');
  p.write(encodeOneway({ seq: 0n, slot: 0, header: Buffer.from('h'), data: Buffer.from('d') }));
  t.ok(await until(() => readFrames(got, true).some((f) => f.type === 'error')), 'an ERROR frame came');
  const e = readFrames(got, true).find((f) => f.type === 'error') as { code: number };
  t.equal(e.code, 3, 'bad-type');
  t.ok(await until(() => closed), 'the lane was closed');
  const ctx = new Context();
  t.teardown(() => ctx.close());
  const s = await connect(uri, { context: ctx });
  t.equal((await s.request('q', 'fine')).data.toString(), 'fine', 'another session is served');
  await s.close();
});
