// Requests, responses and one-way messages through the public API over
// loopback tcp: payloads of every size class (empty, inline, around the
// 8192-byte inline limit, ext/rendezvous at 1 MiB), handler errors, receipts,
// both directions, stats(), and the package as seen from an ESM consumer.

import t, { Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { connect, createServer, RemoteError, NexioError, InvalidArgumentError, Server, Session } from '../host/index';
import type { IncomingRequest } from '../host/index';
import { decodeFrame, Frame } from '../host/wire';
import { installLaneControl } from './fixtures/lane-control';

const control = installLaneControl();

const INLINE_MAX = 8192;
const MAX_APP_HEADER = 4096;

interface Fixture { server: Server; s: Session; messages: [string, Buffer, Buffer][]; served: IncomingRequest[] }

async function setup(t: Test): Promise<Fixture> {
  const messages: [string, Buffer, Buffer][] = [];
  const served: IncomingRequest[] = [];
  const server = await createServer({
    portals: ['tcp://127.0.0.1:0/echo'],
    onMessage: (session, header, data) => { messages.push([session.id.toString(16), header, data]); },
    handler: async (req) => {
      served.push(req);
      const op = req.header.toString();
      if (op === 'throw') throw Object.assign(new Error('boom'), { code: 'E_BOOM' });
      if (op === 'throw-string') throw 'just a string'; // eslint-disable-line no-throw-literal
      if (op === 'reject') return Promise.reject(new Error('async boom'));
      if (op === 'string') return 'a string';
      if (op === 'nothing') return undefined;
      if (op === 'big-reply') return { header: 'big', data: Buffer.alloc(1 << 20, 0x5a) };
      if (op === 'bad-result') return { data: 123 as unknown as Buffer };
      if (op === 'huge-header') return { header: Buffer.alloc(MAX_APP_HEADER + 1), data: 'x' };
      return { header: req.header, data: req.data };
    },
  });
  const s = await connect(server.portals[0], { lanes: 2 });
  t.teardown(async () => { await s.destroy(); await server.close(); });
  return { server, s, messages, served };
}


t.test('header and data round trip at every size class', async (t) => {
  const { s } = await setup(t);
  const sizes: [number, number][] = [
    [0, 0], [0, 1], [1, 0], [16, 100], [MAX_APP_HEADER, 0], [MAX_APP_HEADER, 4096],
    // around the inline limit (header + data): inline below and at it, ext above
    [1, INLINE_MAX - 2], [1, INLINE_MAX - 1], [1, INLINE_MAX], [0, INLINE_MAX], [0, INLINE_MAX + 1],
    [100, INLINE_MAX - 100], [100, INLINE_MAX - 99],
    // large: the payload goes around the core (ext / rendezvous path)
    [0, 1 << 20], [200, (1 << 20) + 3],
  ];
  for (const [h, d] of sizes) {
    const header = randomBytes(h), data = randomBytes(d);
    const r = await s.request(header, data);
    t.ok(r.header.equals(header) && r.data.equals(data), `header ${h} B + data ${d} B come back intact`);
  }
  const r = await s.request('text header', 'text data');
  t.same([r.header.toString(), r.data.toString()], ['text header', 'text data'], 'strings are sent as UTF-8');
  const e = await s.request();
  t.same([e.header.length, e.data.length], [0, 0], 'no header and no data');
});

t.test('many requests in flight with large and small payloads mixed, both directions', async (t) => {
  const { s } = await setup(t);
  const jobs = Array.from({ length: 40 }, (_, i) => {
    const data = randomBytes(i % 5 === 0 ? (1 << 20) - i : i % 3 === 0 ? INLINE_MAX + i : i * 10);
    return s.request(`id-${i}`, data).then((r) => r.header.toString() === `id-${i}` && r.data.equals(data));
  });
  const big = s.request('big-reply', 'small request');
  t.same(await Promise.all(jobs), jobs.map(() => true), 'every reply matches its request');
  const b = await big;
  t.equal(b.data.length, 1 << 20, 'a 1 MiB reply to a small request');
  t.ok(b.data.every((x) => x === 0x5a), 'its content intact');
});

t.test('handler errors reach the requester as RemoteError', async (t) => {
  const { s } = await setup(t);
  const thrown = await s.request('throw', 'x').catch((e) => e);
  t.type(thrown, RemoteError);
  t.match(thrown, { code: 'NEXIO_ERR_REMOTE', message: 'boom', remoteCode: 'E_BOOM' }, 'a thrown Error: message and code');
  t.match(await s.request('reject', 'x').catch((e) => e), { code: 'NEXIO_ERR_REMOTE', message: 'async boom', remoteCode: 'ERR_HANDLER' },
    'a rejected Promise');
  t.match(await s.request('throw-string', 'x').catch((e) => e), { code: 'NEXIO_ERR_REMOTE', message: 'just a string' }, 'a thrown non-Error');
  t.match(await s.request('bad-result', 'x').catch((e) => e), { code: 'NEXIO_ERR_REMOTE', remoteCode: 'NEXIO_ERR_INVALID_ARG' },
    'a result that is not bytes fails the request (and does not crash the server)');
  t.match(await s.request('huge-header', 'x').catch((e) => e), { code: 'NEXIO_ERR_REMOTE', remoteCode: 'NEXIO_ERR_INVALID_ARG' },
    'a reply header over the limit fails the request (it does not leave it waiting)');
  const str = await s.request('string', 'x');
  t.same([str.header.length, str.data.toString()], [0, 'a string'], 'a string result is the data');
  const none = await s.request('nothing', 'x');
  t.same([none.header.length, none.data.length], [0, 0], 'undefined is an empty reply');
  t.equal((await s.request('echo', 'still there')).data.toString(), 'still there', 'the session keeps working');
});

t.test('arguments the API refuses', async (t) => {
  const { s } = await setup(t);
  const big = Buffer.alloc(MAX_APP_HEADER + 1);
  t.match(await s.request(big, 'x').catch((e) => e), { code: 'NEXIO_ERR_INVALID_ARG' }, `request header over ${MAX_APP_HEADER} bytes`);
  t.match(await s.send(big, 'x').catch((e) => e), { code: 'NEXIO_ERR_INVALID_ARG' }, `send header over ${MAX_APP_HEADER} bytes`);
  t.throws(() => s.trySend(big, Buffer.from('x')), { code: 'NEXIO_ERR_INVALID_ARG' }, 'trySend() header over the limit');
  t.throws(() => s.tryRequest(big, Buffer.from('x'), () => undefined), { code: 'NEXIO_ERR_INVALID_ARG' }, 'tryRequest() header over the limit');
  t.type(await s.request(42 as unknown as string).catch((e) => e), InvalidArgumentError, 'a header that is not bytes');
  t.match(await connect('not a uri').catch((e) => e), { code: 'NEXIO_ERR_INVALID_ARG' }, 'a URI that is not a URI');
  t.match(await connect('tcp://127.0.0.1:1/x', { lanes: 9 }).catch((e) => e), { code: 'NEXIO_ERR_INVALID_ARG' }, 'lanes out of 1..8');
  t.match(await connect('nope://127.0.0.1:1/x').catch((e) => e), { code: 'NEXIO_ERR_INVALID_ARG' }, 'a scheme without a transport');
  t.equal((await s.request('echo', 'ok')).data.toString(), 'ok', 'the session is unaffected');
});

t.test('one-way messages: delivered once, in order, with receipts', async (t) => {
  const { s, messages } = await setup(t);
  const sent: [string, Buffer][] = [];
  const ps: Promise<void>[] = [];
  for (let i = 0; i < 200; i++) {
    const data = i === 100 ? randomBytes(1 << 20) : i % 10 === 0 ? randomBytes(INLINE_MAX + 1) : randomBytes(i);
    sent.push([`m-${i}`, data]);
    ps.push(s.send(`m-${i}`, data));
  }
  await Promise.all(ps);
  await s.send('last', 'with receipt', { receipt: true });
  t.ok(messages.some(([, h]) => h.toString() === 'last'), 'the receipt came after the server application got the message');
  const got = messages.filter(([, h]) => h.toString().startsWith('m-'));
  t.same(got.map(([, h]) => h.toString()), sent.map(([h]) => h), 'all 200 arrived once, in order');
  t.ok(got.every(([, , d], i) => d.equals(sent[i][1])), 'with their data intact');
  t.ok(messages.every(([id]) => id === s.id.toString(16)), 'on the server session with the same id');

  const receipts: number[] = [];
  s.on('receipt', (seq: number) => receipts.push(seq));
  const r = await s.request('echo', 'x', { receipt: true });
  t.equal(r.data.toString(), 'x', 'a request with a receipt still gets its reply');
  t.ok(receipts.length >= 1, "and the session emitted 'receipt' for it");
});

t.test('the server side talks back: send and request to the client', async (t) => {
  const { s, served } = await setup(t);
  await s.request('echo', 'hello');
  const peer = served[0].session;
  t.equal(peer.id, s.id, 'both sides name the same session');
  const got = new Promise<[Buffer, Buffer]>((r) => s.once('message', (h: Buffer, d: Buffer) => r([h, d])));
  await peer.send('from-server', Buffer.alloc(INLINE_MAX * 2, 1), { receipt: true });
  const [h, d] = await got;
  t.same([h.toString(), d.length], ['from-server', INLINE_MAX * 2], "the client's 'message' event");
  t.match(await peer.request('q', 'x').catch((e) => e), { code: 'NEXIO_ERR_REMOTE', remoteCode: 'NEXIO_ERR_NO_HANDLER' },
    'a request to a side without a handler fails with NEXIO_ERR_NO_HANDLER');
});

t.test('the session id is the one on the wire (the ACCEPT)', async (t) => {
  const { s } = await setup(t);
  await s.request('echo', 'x');
  const frames: Frame[] = [];
  for (const bytes of control.received) {
    for (let off = 0; off + 8 <= bytes.length;) {
      const len = bytes.readUInt32LE(off + 4);
      if (len < 8 || off + len > bytes.length) break;
      const f = decodeFrame(bytes.subarray(off, off + len));
      frames.push(...(f.type === 'batch' ? f.frames : [f]));
      off += len;
    }
  }
  const accepts = frames.filter((f): f is Extract<Frame, { type: 'accept' }> => f.type === 'accept');
  t.ok(accepts.some((a) => a.sessionId === s.id), `an ACCEPT carried ${s.id}`);
  t.equal(s.stats().id, s.id.toString(16), 'stats().id is its hex form');
});

t.test('stats() counts what the session did', async (t) => {
  const { s } = await setup(t);
  if (s.stats().lanesUp < 2) await new Promise((r) => s.once('lane-up', r));
  await s.request('a', 'bb');
  await s.request('', Buffer.alloc(INLINE_MAX + 10));
  await s.request('ccc', '');
  await s.send('m', 'dddd');
  await s.send('', '', { receipt: true });
  const st = s.stats();
  t.match(st, {
    state: 'open', requests: 3, responses: 3, messagesSent: 2, messagesReceived: 0,
    bytesSent: 3 + INLINE_MAX + 10 + 3 + 5, bytesReceived: 3 + INLINE_MAX + 10 + 3,
    failovers: 0, lanesUp: 2, resumes: 0, protocolErrors: 0,
  });
  t.equal(st.rtt.count, 3, 'one round trip per request');
  t.ok(st.rtt.minUs > 0 && st.rtt.minUs <= st.rtt.meanUs && st.rtt.meanUs <= st.rtt.maxUs, 'min <= mean <= max');
  t.match(st.core, { txAcked: st.core!.txNextSeq, maxRequests: 256 }, 'the core acked everything sent');
});

t.test('an ESM consumer imports the package', async (t) => {
  const index = path.resolve(__dirname, '..', 'host', 'index.js');
  const code = `
    import { connect, createServer, RemoteError, NexioError, Session } from ${JSON.stringify(index)};
    import nexio from ${JSON.stringify(index)};
    const server = await createServer({ portals: ['tcp://127.0.0.1:0/esm'], handler: (r) => r.data });
    const s = await connect(server.portals[0], { lanes: 1 });
    const r = await s.request('', 'from esm');
    console.log(JSON.stringify({ data: r.data.toString(), session: s instanceof Session,
      errors: typeof RemoteError === 'function' && new RemoteError('m', 'c') instanceof NexioError, dflt: typeof nexio.connect }));
    await s.close();
    await server.close();`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 60000 });
  t.equal(r.status, 0, `node exits 0 ${r.stderr}`);
  t.same(JSON.parse(r.stdout.trim() || '{}'), { data: 'from esm', session: true, errors: true, dflt: 'function' });
});
