// Every operation settles, exactly once, however its session ends (issue 8):
// a send waiting for its receipt when the session is destroyed, closed by
// the peer or lost with its server; requests pending across Context.close();
// close() itself, bounded by its timeout when the peer never answers.
//
// The receipt cases need a peer that never receipts: a raw tcp server that
// answers the HELLO with an ACCEPT and then only sends what the test says
// (KEEPALIVEs to keep the lane up, a CLOSE, or nothing at all).

import t, { Test } from 'tap';
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import { connect, createServer, Context, NexioError } from '../host/index';
import { encodeAccept, encodeClose, encodeKeepalive, decodeFrame, Hello } from '../host/wire';

interface Tracked<T> { calls: number; value?: T; error?: NexioError; settled: Promise<void> }

/** Counts how often p settles and keeps what it settled with. */
function track<T>(p: Promise<T>): Tracked<T> {
  const r: Tracked<T> = { calls: 0, settled: Promise.resolve() };
  r.settled = p.then((v) => { r.calls++; r.value = v; }, (e) => { r.calls++; r.error = e; });
  return r;
}

/** Whether p settles within ms: a wait that can fail instead of hang. */
function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p.then(() => true, () => true), new Promise<boolean>((r) => { timer = setTimeout(() => r(false), ms); })])
    .finally(() => clearTimeout(timer));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A raw peer server: ACCEPTs every new session, never acks or receipts anything. */
async function rawServer(t: Test) {
  const socks = new Set<net.Socket>();
  const srv = net.createServer((sock) => {
    socks.add(sock);
    sock.on('error', () => undefined);
    sock.on('close', () => socks.delete(sock));
    let got = Buffer.alloc(0);
    let accepted = false;
    sock.on('data', (d) => {
      got = Buffer.concat([got, d]);
      if (accepted || got.length < 8 || got.length < got.readUInt32LE(4)) return;
      const h = decodeFrame(got.subarray(0, got.readUInt32LE(4))) as Hello;
      accepted = true;
      sock.write(encodeAccept({
        version: 1, sessionId: 0x5e55n, ackSeq: 0n, windowMsgs: h.windowMsgs, windowBytes: h.windowBytes,
        maxRequests: h.maxRequests, keepaliveMs: 1000, resumeMs: 10000, key: randomBytes(16), portals: [], attrs: Buffer.alloc(0),
      }));
    });
  });
  // The lane must not die of silence while a test waits (3 x keepalive).
  const keepalive = setInterval(() => { for (const s of socks) s.write(encodeKeepalive()); }, 300);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const uri = `tcp://127.0.0.1:${(srv.address() as net.AddressInfo).port}/svc`;
  const vanish = () => {
    clearInterval(keepalive);
    for (const s of socks) s.destroy();
    srv.close();
  };
  t.teardown(vanish);
  return {
    uri,
    /** The peer closes the session: a CLOSE, the first message of its stream. */
    close: () => { for (const s of socks) s.write(encodeClose({ seq: 0n, slot: 0 })); },
    /** The server is gone: connections dropped, nothing listening. */
    vanish,
  };
}

/** A server whose handler never answers a request with the header 'hang'; `got` resolves when one arrived. */
async function hangingServer(t: Test) {
  let arrived!: () => void;
  const got = new Promise<void>((r) => { arrived = r; });
  const server = await createServer({
    portals: ['tcp://127.0.0.1:0/svc'],
    handler: (req) => {
      if (req.header.toString() !== 'hang') return req.data;
      arrived();
      return new Promise<never>(() => undefined);
    },
  });
  t.teardown(() => server.close({ timeout: 100 }));
  return { uri: server.portals[0], got };
}

/** A session whose teardown destroys it (and so ends any wait a failing test left behind). */
async function open(t: Test, uri: string, options: Parameters<typeof connect>[1] = {}) {
  const s = await connect(uri, { lanes: 1, ...options });
  t.teardown(() => s.destroy());
  const closes: (Error | undefined)[] = [];
  s.on('close', (e) => closes.push(e));
  s.on('error', () => undefined);
  return { s, closes };
}

t.test('send({ receipt: true }) then destroy(): the send rejects with NEXIO_ERR_CLOSED', async (t) => {
  const peer = await rawServer(t);
  const { s, closes } = await open(t, peer.uri);
  const sent = track(s.send('', 'never receipted', { receipt: true }));
  await sleep(50); // the message is out; its receipt never comes
  t.equal(sent.calls, 0, 'the send waits for its receipt');
  await s.destroy();
  t.ok(await within(sent.settled, 1000), 'the send settled within 1 s of destroy()');
  t.match(sent.error, { code: 'NEXIO_ERR_CLOSED' }, 'it rejected with NEXIO_ERR_CLOSED');
  await sleep(100);
  t.equal(sent.calls, 1, 'once');
  t.equal(s.state, 'closed', "the session's state is 'closed'");
  t.equal(closes.length, 1, "'close' once");
});

t.test('the peer closes the session while a receipt is pending: the send rejects', async (t) => {
  const peer = await rawServer(t);
  const { s, closes } = await open(t, peer.uri);
  const sent = track(s.send('', 'never receipted', { receipt: true }));
  const closed = new Promise((r) => s.once('close', r));
  await sleep(50);
  peer.close();
  t.ok(await within(closed, 5000), "the session ended ('close') when the peer closed it");
  t.ok(await within(sent.settled, 1000), 'the send settled within 1 s of that');
  t.match(sent.error, { code: 'NEXIO_ERR_CLOSED' }, 'it rejected with NEXIO_ERR_CLOSED');
  await sleep(100);
  t.equal(sent.calls, 1, 'once');
  t.equal(closes.length, 1, "'close' once");
});

t.test('the server goes away while a receipt is pending: the send rejects when the session is lost', async (t) => {
  const peer = await rawServer(t);
  const { s, closes } = await open(t, peer.uri, { resumeTimeout: 500 });
  const sent = track(s.send('', 'never receipted', { receipt: true }));
  const closed = new Promise((r) => s.once('close', r));
  await sleep(50);
  peer.vanish();
  t.ok(await within(closed, 5000), "the session ended ('close') once it could not resume");
  t.ok(await within(sent.settled, 1000), 'the send settled within 1 s of that');
  t.comment(`the send: ${sent.error?.code} ${sent.error?.message}`);
  t.match(sent.error, { code: /^NEXIO_ERR_(SESSION_LOST|CLOSED)$/ }, 'it rejected with the session\'s end');
  await sleep(100);
  t.equal(sent.calls, 1, 'once');
  t.equal(closes.length, 1, "'close' once");
});

t.test('Context.close() with requests pending: they reject with NEXIO_ERR_CLOSED and the session is closed', async (t) => {
  const { uri, got } = await hangingServer(t);
  const ctx = new Context();
  let ctxClosed = false;
  t.teardown(() => (ctxClosed ? undefined : ctx.close()));
  const { s, closes } = await open(t, uri, { context: ctx });
  const pending = track(s.request('hang', 'never answered'));
  const hot: (Error | null)[] = [];
  s.tryRequest(Buffer.from('hang'), Buffer.from('hot'), (err) => { hot.push(err); });
  await got;
  t.ok(await within(ctx.close().then(() => { ctxClosed = true; }), 5000), 'Context.close() resolved');
  t.ok(await within(pending.settled, 1000), 'the pending request settled within 1 s');
  t.match(pending.error, { code: 'NEXIO_ERR_CLOSED' }, 'it rejected with NEXIO_ERR_CLOSED');
  await sleep(100);
  t.equal(pending.calls, 1, 'once');
  t.equal(hot.length, 1, 'the hot-path request got its callback once');
  t.match(hot[0], { code: 'NEXIO_ERR_CLOSED' }, 'with NEXIO_ERR_CLOSED');
  t.equal(s.state, 'closed', "the session's state is 'closed'");
  t.equal(closes.length, 1, "'close' once");
  const after = track(s.request('', 'after'));
  await within(after.settled, 1000);
  t.match(after.error, { code: 'NEXIO_ERR_CLOSED' }, 'and it refuses new work');
});

t.test('close({ timeout: 200 }) with a request the server never answers: bounded, and the request rejects', async (t) => {
  const { uri, got } = await hangingServer(t);
  const { s, closes } = await open(t, uri);
  const pending = track(s.request('hang', 'never answered'));
  await got;
  const t0 = performance.now();
  const closing = track(s.close({ timeout: 200 }));
  t.ok(await within(closing.settled, 2000), `close({ timeout: 200 }) settled within 2 s${closing.calls ? ` (${(performance.now() - t0).toFixed(0)} ms)` : ''}`);
  t.ok(await within(pending.settled, 1000), 'the pending request settled');
  t.comment(`close(): ${!closing.calls ? 'pending' : closing.error ? `rejected ${closing.error.code}` : 'resolved'}; the request: ${pending.calls ? `${pending.error?.code} ${pending.error?.message}` : 'pending'}`);
  t.ok(pending.error instanceof NexioError && /^NEXIO_ERR_/.test(pending.error.code), 'the request rejected with a typed error');
  await sleep(100);
  t.equal(pending.calls, 1, 'the request settled once');
  t.equal(closing.calls, 1, 'close() settled once');
  t.equal(s.state, 'closed', "the session's state is 'closed'");
  t.equal(closes.length, 1, "'close' once");
});

t.test('close() with a request the server never answers still settles (default timeout)', { timeout: 30000 }, async (t) => {
  const { uri, got } = await hangingServer(t);
  const { s } = await open(t, uri);
  const pending = track(s.request('hang', 'never answered'));
  await got;
  const t0 = performance.now();
  const closing = track(s.close());
  t.ok(await within(closing.settled, 15000), `close() settled within 15 s${closing.calls ? ` (${(performance.now() - t0).toFixed(0)} ms)` : ''}`);
  t.ok(await within(pending.settled, 1000), 'so did the pending request');
  t.ok(pending.error instanceof NexioError, `with a typed error (${pending.error?.code})`);
  t.equal(s.state, 'closed', "the session's state is 'closed'");
});

t.test('eight sends waiting for receipts: each settles once on destroy()', async (t) => {
  const peer = await rawServer(t);
  const { s } = await open(t, peer.uri);
  const sends = Array.from({ length: 8 }, (_, i) => track(s.send('', `m${i}`, { receipt: true })));
  await sleep(50);
  await s.destroy();
  await within(Promise.all(sends.map((x) => x.settled)), 1000);
  t.equal(sends.filter((x) => x.calls === 1).length, 8, 'all 8 settled, each once');
  t.ok(sends.every((x) => x.error?.code === 'NEXIO_ERR_CLOSED'), 'each with NEXIO_ERR_CLOSED');
});
