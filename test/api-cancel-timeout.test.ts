// Cancel (AbortSignal) and per-request timeouts: the requester stops waiting
// at once, the responder's handler sees req.signal aborted, and no response
// is delivered after a cancel — not to the cancelled request, not to a later
// one. Requests still waiting for credit can be cancelled and time out too.

import t, { Test } from 'tap';
import { connect, createServer, Session, NexioError, AbortedError, TimeoutError } from '../host/index';
import type { IncomingRequest } from '../host/index';

interface Fixture {
  s: Session;
  /** Requests the handler got, by header, with how they ended on the server side. */
  got: Map<string, { req: IncomingRequest; aborted: Promise<unknown>; answered: boolean }>;
  arrived(id: string): Promise<void>;
}

async function setup(t: Test, connectOptions = {}): Promise<Fixture> {
  const got: Fixture['got'] = new Map();
  const waiters = new Map<string, () => void>();
  const server = await createServer({
    portals: ['tcp://127.0.0.1:0/svc'],
    // Answers after the number of ms in the data ('0' at once), whether or
    // not the request was cancelled meanwhile.
    handler: async (req) => {
      const id = req.header.toString();
      const entry = { req, aborted: new Promise((r) => req.signal.addEventListener('abort', () => r(req.signal.reason), { once: true })), answered: false };
      got.set(id, entry);
      waiters.get(id)?.();
      await new Promise((r) => setTimeout(r, Number(req.data.toString())));
      entry.answered = true;
      return `answer to ${id}`;
    },
  });
  const s = await connect(server.portals[0], { lanes: 2, ...connectOptions });
  t.teardown(async () => { await s.destroy(); await server.close(); });
  const arrived = (id: string) => got.has(id) ? Promise.resolve() : new Promise<void>((r) => waiters.set(id, r));
  return { s, got, arrived };
}

/** Settles with what p did, or 'pending' if it has not settled within one macrotask turn. */
const now = (p: Promise<unknown>) => Promise.race([
  p.then((v) => ({ v }), (e) => ({ e: e as NexioError })),
  new Promise<'pending'>((r) => setImmediate(() => r('pending'))),
]);

t.test('AbortSignal: the request fails at once and the handler sees its signal aborted', async (t) => {
  const { s, got, arrived } = await setup(t);
  const ac = new AbortController();
  const p = s.request('a', '300', { signal: ac.signal });
  await arrived('a');
  ac.abort(new Error('changed my mind'));
  const r = await now(p);
  t.not(r, 'pending', 'rejected at once, not when the server answers');
  const e = (r as { e: NexioError }).e;
  t.type(e, AbortedError);
  t.equal(e.code, 'NEXIO_ERR_ABORTED');
  t.match(e.cause, { message: 'changed my mind' }, 'the signal reason is the cause');
  t.match(await got.get('a')!.aborted, { code: 'NEXIO_ERR_ABORTED' }, "the handler's req.signal aborted");
  // The handler answers anyway, later: that answer must go nowhere.
  const b = s.request('b', '600');
  while (!got.get('a')!.answered) await new Promise((r) => setTimeout(r, 10));
  t.equal((await b).data.toString(), 'answer to b', 'a later request gets its own answer, not the cancelled one');
  t.equal(s.stats().responses, 1, 'one response delivered in all');
  t.equal(got.get('a')!.req.session.stats().responses, 1, 'the server sent one response in all');
});

t.test('per-request timeout: NEXIO_ERR_TIMEOUT, the handler is told, no late response', async (t) => {
  const { s, got } = await setup(t);
  const e = await s.request('slow', '600', { timeout: 100 }).catch((x) => x);
  t.type(e, TimeoutError);
  t.equal(e.code, 'NEXIO_ERR_TIMEOUT');
  t.match(await got.get('slow')!.aborted, { code: 'NEXIO_ERR_ABORTED' }, "the handler's req.signal aborted");
  t.equal((await s.request('fast', '0', { timeout: 30000 })).data.toString(), 'answer to fast', 'a request within its timeout completes');
  while (!got.get('slow')!.answered) await new Promise((r) => setTimeout(r, 10));
  await s.request('fence', '0');
  t.equal(s.stats().responses, 2, 'the timed-out request got no response');
});

t.test('an already-aborted signal: rejected at once, nothing is sent', async (t) => {
  const { s, got } = await setup(t);
  const r = await now(s.request('never', '0', { signal: AbortSignal.abort() }));
  t.match(r, { e: { code: 'NEXIO_ERR_ABORTED' } }, 'rejected with NEXIO_ERR_ABORTED');
  await s.request('fence', '0');
  t.notOk(got.has('never'), 'the handler never saw it');
  t.equal(s.stats().requests, 1, 'only the fence was sent');
});

t.test('AbortSignal.timeout(): aborted with the timeout as cause', async (t) => {
  const { s } = await setup(t);
  const e = await s.request('x', '500', { signal: AbortSignal.timeout(50) }).catch((x) => x);
  t.match(e, { code: 'NEXIO_ERR_ABORTED', cause: { name: 'TimeoutError' } });
});

t.test('cancel after the response: nothing changes', async (t) => {
  const { s } = await setup(t);
  const ac = new AbortController();
  const r = await s.request('done', '0', { signal: ac.signal });
  ac.abort();
  t.equal(r.data.toString(), 'answer to done');
  t.equal((await s.request('next', '0')).data.toString(), 'answer to next', 'the session is unaffected');
});

t.test('many requests, every other one cancelled', async (t) => {
  const { s, got, arrived } = await setup(t);
  const acs = Array.from({ length: 60 }, () => new AbortController());
  const ps = acs.map((ac, i) => s.request(`r${i}`, '100', { signal: ac.signal }).then((r) => r.data.toString(), (e) => e.code));
  await Promise.all(acs.map((_, i) => arrived(`r${i}`)));
  acs.forEach((ac, i) => { if (i % 2) ac.abort(); });
  const out = await Promise.all(ps);
  t.same(out, out.map((_, i) => (i % 2 ? 'NEXIO_ERR_ABORTED' : `answer to r${i}`)), 'each got its own outcome');
  await Promise.all(acs.map((_, i) => (i % 2 ? got.get(`r${i}`)!.aborted : undefined)));
  const aborted = acs.map((_, i) => got.get(`r${i}`)!.req.signal.aborted);
  t.same(aborted, aborted.map((_, i) => i % 2 === 1), 'exactly the cancelled ones were aborted on the server');
  t.equal(s.stats().responses, 30, 'thirty responses delivered');
});

t.test('a request waiting for credit: cancel and timeout take it out of the queue', async (t) => {
  const { s, got, arrived } = await setup(t, { credits: { requests: 1 } });
  const first = s.request('first', '400');
  await arrived('first');
  const ac = new AbortController();
  const queuedCancel = s.request('queued-cancel', '0', { signal: ac.signal });
  const queuedTimeout = s.request('queued-timeout', '0', { timeout: 100 });
  ac.abort();
  t.match(await now(queuedCancel), { e: { code: 'NEXIO_ERR_ABORTED' } }, 'cancelled while queued: at once');
  t.match(await queuedTimeout.catch((e) => e), { code: 'NEXIO_ERR_TIMEOUT' }, 'timed out while queued');
  t.equal((await first).data.toString(), 'answer to first');
  t.equal((await s.request('after', '0')).data.toString(), 'answer to after', 'the queue moves on');
  t.notOk(got.has('queued-cancel') || got.has('queued-timeout'), 'neither was ever sent');
});

t.test('hot path: tryRequest with a timeout', async (t) => {
  const { s } = await setup(t);
  const e = await new Promise<Error | null>((resolve) => {
    const ok = s.tryRequest(Buffer.from('hot'), Buffer.from('500'), (err) => resolve(err), 100);
    if (!ok) resolve(new Error('no credit on an idle session'));
  });
  t.match(e, { code: 'NEXIO_ERR_TIMEOUT' }, 'the callback gets NEXIO_ERR_TIMEOUT');
});

t.test('connect timeout: a peer that accepts and never answers', { timeout: 20000 }, async (t) => {
  const net = await import('node:net');
  const socks: import('node:net').Socket[] = [];
  const srv = net.createServer((c) => socks.push(c));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as import('node:net').AddressInfo).port;
  t.teardown(() => { for (const c of socks) c.destroy(); return new Promise((r) => srv.close(r)); });
  // The resume time is far beyond this test's own timeout: only connect's
  // timeout can end it in time.
  const e = await connect(`tcp://127.0.0.1:${port}/x`, { timeout: 300, resumeTimeout: 60000 }).catch((x) => x);
  t.match(e, { code: 'NEXIO_ERR_TIMEOUT' }, 'connect() fails with NEXIO_ERR_TIMEOUT after its timeout');
});

t.test('nobody listening: NEXIO_ERR_TRANSPORT at once, not the timeout', { timeout: 20000 }, async (t) => {
  const net = await import('node:net');
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as import('node:net').AddressInfo).port;
  await new Promise((r) => srv.close(r));
  const e = await connect(`tcp://127.0.0.1:${port}/x`, { timeout: 60000, resumeTimeout: 60000 }).catch((x) => x);
  t.match(e, { code: 'NEXIO_ERR_TRANSPORT', message: /ECONNREFUSED/ }, 'the refusal, named');
});
