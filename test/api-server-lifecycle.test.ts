// What a server's life looks like from both ends: the attrs an onSession
// accepts with reach the client (also through worker threads, and onSession
// runs where the session lives, also for a client that dials a worker's
// portal directly); a request's receipt callback; a graceful server.close()
// that answers what is in flight and ends the clients' sessions with CLOSE;
// typed errors for a portal that cannot be bound or has no port.

import t from 'tap';
import * as path from 'node:path';
import { connect, createServer, NexioError } from '../host/index';

const handlerModule = path.join(__dirname, 'fixtures', 'thread-handler.js');

t.test('the attrs onSession accepts with are the client session\'s attrs', async (t) => {
  const server = await createServer({
    portals: ['tcp://127.0.0.1:0/svc'],
    onSession: (info) => ({ accept: true, attrs: Buffer.from(`hello ${info.attrs.toString()}`) }),
    handler: () => 'ok',
  });
  t.teardown(() => server.close());
  const s = await connect(server.portals[0], { attrs: Buffer.from('alice') });
  t.teardown(() => s.destroy());
  t.equal(s.attrs.toString(), 'hello alice', 'readable after connect() resolves');
  const plain = await createServer({ portals: ['tcp://127.0.0.1:0/svc'], handler: () => 'ok' });
  t.teardown(() => plain.close());
  const p = await connect(plain.portals[0]);
  t.teardown(() => p.destroy());
  t.equal(p.attrs.length, 0, 'empty when the server gave none');
});

t.test('threads: onSession runs once, on the context that holds the session, and its attrs get through', async (t) => {
  const seen: string[] = [];
  const server = await createServer({
    portals: ['tcp://127.0.0.1:0/svc'], threads: 2, handler: handlerModule,
    onSession: (info) => {
      seen.push(info.portal);
      return info.attrs.toString() === 'mallory' ? { reject: 'not you' } : { accept: true, attrs: Buffer.from(`ctx ${info.portal}`) };
    },
  });
  t.teardown(() => server.close());
  for (let i = 0; i < 2; i++) {
    const s = await connect(server.portals[0]);
    t.equal(s.attrs.toString(), `ctx ${seen[seen.length - 1]}`, `session ${i}: the attrs of the deciding context`);
    await s.close();
  }
  t.equal(seen.length, 2, 'onSession ran once per session');
  t.not(seen[0], seen[1], 'each on the context the session was placed on');
  // A client that skips the public portal and dials a worker's own is still decided.
  const direct = server.contexts[1][0];
  t.match(await connect(direct, { attrs: Buffer.from('mallory') }).catch((e) => e),
    { code: 'NEXIO_ERR_REJECTED', message: 'not you' }, "a worker's own portal does not bypass onSession");
});

t.test('request({ receipt: fn }): fn runs once, when the peer application got the request', async (t) => {
  let answer: (() => void) | undefined;
  const server = await createServer({
    portals: ['tcp://127.0.0.1:0/svc'],
    handler: (req) => (req.header.toString() === 'slow' ? new Promise((r) => { answer = () => r('late'); }) : 'fast'),
  });
  t.teardown(() => server.close());
  const s = await connect(server.portals[0]);
  t.teardown(() => s.destroy());
  let receipts = 0;
  const slow = s.request('slow', '', { receipt: () => { receipts++; } });
  for (let i = 0; i < 200 && !answer; i++) await new Promise((r) => setTimeout(r, 5));
  t.ok(answer, 'the handler has the request');
  for (let i = 0; i < 200 && receipts === 0; i++) await new Promise((r) => setTimeout(r, 5));
  t.equal(receipts, 1, 'the receipt came before the response');
  answer!();
  t.equal((await slow).data.toString(), 'late', 'then the response');
  t.equal(receipts, 1, 'once');
  let fast = 0;
  const r = await s.request('quick', '', { receipt: () => { fast++; } });
  t.equal(r.data.toString(), 'fast', 'a quick request');
  t.equal(fast, 1, 'has had its receipt by the time it resolves');
});

t.test('server.close(): in-flight requests are answered, clients see CLOSE, new connections are refused', async (t) => {
  let answer: (() => void) | undefined;
  const server = await createServer({
    portals: ['tcp://127.0.0.1:0/svc'],
    handler: () => new Promise((r) => { answer = () => r('finished'); }),
  });
  const s = await connect(server.portals[0], { lanes: 2 });
  t.teardown(() => s.destroy());
  let closedBy: unknown = 'not closed';
  s.on('close', (e?: Error) => { closedBy = e; });
  const lost: number[] = [];
  s.on('lane-down', (_l: number, code: number) => lost.push(code));
  const pending = s.request('work');
  for (let i = 0; i < 200 && !answer; i++) await new Promise((r) => setTimeout(r, 5));
  t.ok(answer, 'a request is in the handler');
  const closing = server.close({ timeout: 10000 });
  await new Promise((r) => setTimeout(r, 50));
  t.type(await connect(server.portals[0], { timeout: 1000 }).catch((e) => e), NexioError, 'a new session cannot be opened while closing');
  answer!();
  t.equal((await pending).data.toString(), 'finished', 'the in-flight request is answered');
  await closing;
  for (let i = 0; i < 200 && s.state !== 'closed'; i++) await new Promise((r) => setTimeout(r, 5));
  t.equal(s.state, 'closed', "the client's session ended");
  t.not(closedBy, 'not closed', "with a 'close' event");
  t.equal(s.stats().resumes, 0, 'it did not try to resume');
});

t.test('server.close({ timeout }) destroys what does not close in time', async (t) => {
  const server = await createServer({ portals: ['tcp://127.0.0.1:0/svc'], handler: () => new Promise(() => undefined) });
  const s = await connect(server.portals[0], { resumeTimeout: 500 });
  t.teardown(() => s.destroy());
  const stuck = s.request('never').catch((e) => e);
  await new Promise((r) => setTimeout(r, 50));
  const t0 = Date.now();
  await server.close({ timeout: 200 });
  const took = Date.now() - t0;
  t.ok(took >= 150 && took < 5000, `close waited for the grace period, then gave up (${took} ms)`);
  t.type(await stuck, NexioError, 'the stuck request fails with a typed error');
});

t.test('a portal that cannot be bound, or has no port, is a typed error', async (t) => {
  const a = await createServer({ portals: ['tcp://127.0.0.1:0/svc'], handler: () => 'x' });
  t.teardown(() => a.close());
  const taken = a.portals[0];
  const e = await createServer({ portals: [taken], handler: () => 'x' }).catch((x) => x);
  t.type(e, NexioError, 'EADDRINUSE becomes a NexioError');
  t.equal(e.code, 'NEXIO_ERR_TRANSPORT', 'with a stable code');
  t.match(e.message, /cannot listen on tcp:\/\/127\.0\.0\.1:\d+\/svc: .*EADDRINUSE/, 'naming the portal and the reason');
  t.equal((e.cause as NodeJS.ErrnoException)?.code, 'EADDRINUSE', "the system's error is its cause");
  for (const uri of ['tcp://127.0.0.1/svc', 'tcp://127.0.0.1']) {
    t.match(await createServer({ portals: [uri], handler: () => 'x' }).catch((x) => x),
      { code: 'NEXIO_ERR_INVALID_ARG', message: /needs host and port/ }, `listen on ${uri}: no port is an error, not port 0`);
    t.match(await connect(uri).catch((x) => x), { code: 'NEXIO_ERR_INVALID_ARG' }, `connect to ${uri}: the same`);
  }
});
