// Edges found by the review of issue 8's change, over mem://: each of these
// failed before its fix (a throwing callback stopped a session's end, a
// server's close bound was ignored, 'drain' came twice, abort listeners
// piled up, a wrong onSession answer crashed the server, strings went
// through the hot path as zeros, a huge timeout fired at once, a thenable
// reply came back empty, a bad %-path threw a plain URIError).

import t from 'tap';
import { connect, createServer, Context, NexioError, Session } from '../host/index';

let seq = 0;
const portal = () => `mem://edges-${process.pid}-${++seq}/svc`;
const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: NexioError) => e.code ?? String(e));

t.test('a hot callback that throws does not stop the session from ending', async (t) => {
  const uri = portal();
  const server = await createServer({ portals: [uri], handler: () => new Promise(() => undefined) });
  t.teardown(() => server.close({ timeout: 50 }));
  const ctx = new Context();
  t.teardown(() => ctx.close());
  const s = await connect(uri, { context: ctx });
  const thrown: unknown[] = [];
  const onUncaught = (e: unknown) => thrown.push(e);
  process.prependListener('uncaughtException', onUncaught);
  t.teardown(() => { process.off('uncaughtException', onUncaught); });
  s.tryRequest(Buffer.from('h'), Buffer.from('d'), () => { throw new Error('app bug'); });
  const pending = code(s.request('h', 'd'));
  let closes = 0;
  s.on('close', () => closes++);
  await s.destroy();
  t.equal(await pending, 'NEXIO_ERR_CLOSED', 'the other request settled');
  t.equal(closes, 1, "'close' was emitted");
  await new Promise((r) => setImmediate(r));
  t.match(String(thrown[0]), /app bug/, "the callback's error is rethrown on its own tick");
});

t.test('server.close({ timeout }) gives sessions that long, not their own 5 s default', async (t) => {
  const uri = portal();
  let arrived: () => void = () => undefined;
  const inHandler = new Promise<void>((r) => { arrived = r; });
  const server = await createServer({ portals: [uri], handler: () => { arrived(); return new Promise((r) => setTimeout(() => r('late'), 6000)); } });
  const ctx = new Context();
  t.teardown(() => ctx.close());
  const s = await connect(uri, { context: ctx });
  const p = s.request('h', 'd');
  await inHandler; // the server is answering it when it begins to close
  const t0 = Date.now();
  await server.close({ timeout: 8000 });
  t.equal((await p).data.toString(), 'late', 'the request took 6 s and was answered');
  t.ok(Date.now() - t0 >= 5500, `the close waited for it (${Date.now() - t0} ms)`);
});

t.test("'drain' once per return of credit; abort listeners do not pile up", async (t) => {
  const uri = portal();
  const server = await createServer({ portals: [uri], handler: (r) => r.data });
  t.teardown(() => server.close({ timeout: 50 }));
  const ctx = new Context({ core: { maxRequests: 4 } });
  t.teardown(() => ctx.close());
  const s = await connect(uri, { context: ctx, credits: { requests: 4 } });
  let drains = 0;
  s.on('drain', () => drains++);
  const ac = new AbortController();
  const ps: Promise<unknown>[] = [];
  for (let i = 0; i < 12; i++) ps.push(s.request('h', String(i), { signal: ac.signal }));
  await Promise.all(ps);
  const { EventEmitter } = await import('node:events');
  t.equal(EventEmitter.getEventListeners(ac.signal, 'abort').length, 0, 'every abort listener removed once its request settled');
  t.equal(drains, 1, "one 'drain' when the queue that waited for credit is through (it came twice)");
});

t.test('a wrong onSession answer rejects the session; the server stays up', async (t) => {
  const uri = portal();
  const warnings: Error[] = [];
  const onWarn = (w: Error) => warnings.push(w);
  process.on('warning', onWarn);
  t.teardown(() => { process.off('warning', onWarn); });
  const server = await createServer({
    portals: [uri], handler: (r) => r.data,
    onSession: (info) => (info.resource === '/svc' ? { redirect: 'mem://x' as unknown as string[] } : 'accept'),
  });
  t.teardown(() => server.close({ timeout: 50 }));
  const ctx = new Context();
  t.teardown(() => ctx.close());
  t.equal(await code(connect(uri, { context: ctx, timeout: 2000 })), 'NEXIO_ERR_REJECTED', 'the client is rejected at once, not left waiting');
  const ok = await connect(uri.replace(/\/svc$/, '/other'), { context: ctx });
  t.equal((await ok.request('h', 'still up')).data.toString(), 'still up', 'the server serves the next session');
  await new Promise((r) => setImmediate(r));
  t.match(String(warnings[0]), /onSession answered/, 'the fault is reported on the server as a warning');
});

t.test('hot path arguments, huge timeouts, thenable replies, bad %-paths: typed errors or the right answer', async (t) => {
  const uri = portal();
  const server = await createServer({
    portals: [uri],
    handler: (r) => ({ then: (ok: (v: unknown) => void) => ok({ data: Buffer.concat([Buffer.from('then:'), r.data]) }) }) as never,
  });
  t.teardown(() => server.close({ timeout: 50 }));
  const ctx = new Context();
  t.teardown(() => ctx.close());
  const s: Session = await connect(uri, { context: ctx });
  t.throws(() => s.trySend('hello' as never, 'world' as never), { code: 'NEXIO_ERR_INVALID_ARG' }, 'trySend with strings');
  t.throws(() => s.tryRequest(Buffer.alloc(1), Buffer.alloc(1), 42 as never), { code: 'NEXIO_ERR_INVALID_ARG' }, 'tryRequest without a function');
  t.equal(await code(s.request('h', 'd', { timeout: 2 ** 32 + 5 })), 'NEXIO_ERR_INVALID_ARG', 'a timeout beyond 2^31 - 1 ms is refused, not fired at once');
  t.equal(await code(s.close({ timeout: 2 ** 31 })), 'NEXIO_ERR_INVALID_ARG', 'close too');
  t.equal((await s.request('h', 'x')).data.toString(), 'then:x', 'a thenable reply is awaited');
  t.equal(await code(connect('mem://edges-none/%E0%A4%A', { context: ctx })), 'NEXIO_ERR_INVALID_ARG', 'a malformed %-path');
  await s.close();
});
