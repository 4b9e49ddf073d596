// The session lifecycle: close() is graceful (outstanding requests finish,
// then the peer is told), destroy() is abrupt (outstanding requests fail
// with NEXIO_ERR_CLOSED at once); both are idempotent and return promises;
// a closed session refuses work with NEXIO_ERR_CLOSED. Tooling sees it all
// on diagnostics_channel.

import t, { Test } from 'tap';
import diagnostics_channel from 'node:diagnostics_channel';
import * as net from 'node:net';
import { connect, createServer, Context, Session, Server } from '../host/index';
import { encodeHello } from '../host/wire';


async function setup(t: Test): Promise<{ server: Server; peers: Session[] }> {
  const peers: Session[] = [];
  const server = await createServer({
    portals: ['tcp://127.0.0.1:0/svc'],
    handler: async (req) => {
      if (!peers.includes(req.session)) peers.push(req.session);
      await new Promise((r) => setTimeout(r, Number(req.data.toString())));
      return 'done';
    },
    onMessage: () => undefined,
  });
  t.teardown(() => server.close());
  return { server, peers };
}

t.test('close(): outstanding requests finish first, the peer hears of it, then it refuses work', async (t) => {
  const { server, peers } = await setup(t);
  const s = await connect(server.portals[0], { lanes: 2 });
  await s.request('', '0');
  const peerClosed = new Promise<Error | undefined>((r) => peers[0].once('close', r));
  const closeEvents: unknown[] = [];
  s.on('close', (e) => closeEvents.push(e));
  const outstanding = s.request('', '300');
  const c1 = s.close();
  t.equal(s.close(), c1, 'close() is idempotent: the same promise');
  t.match(await s.request('', '0').catch((e) => e), { code: 'NEXIO_ERR_CLOSED' }, 'a request after close() is refused');
  t.match(await s.send('', '').catch((e) => e), { code: 'NEXIO_ERR_CLOSED' }, 'so is a send');
  t.equal((await outstanding).data.toString(), 'done', 'the outstanding request completed');
  await c1;
  t.equal(s.state, 'closed');
  t.same(closeEvents, [undefined], "'close' once, without an error");
  t.match(await peerClosed, { code: 'NEXIO_ERR_CLOSED' }, "the server's session closed: the peer closed it");
  t.throws(() => s.trySend(Buffer.alloc(1), Buffer.alloc(1)), { code: 'NEXIO_ERR_CLOSED' }, 'trySend() throws on a closed session');
  t.equal(await s.destroy(), undefined, 'destroy() after close() is a no-op');
});

t.test('destroy(): outstanding requests fail at once with NEXIO_ERR_CLOSED', async (t) => {
  const { server } = await setup(t);
  const s = await connect(server.portals[0], { lanes: 1 });
  await s.request('', '0');
  const outstanding = s.request('', '5000').catch((e) => e);
  const queuedSend = s.send('', 'x');
  const d = s.destroy();
  t.type(d, Promise, 'destroy() returns a promise');
  await d;
  t.match(await outstanding, { code: 'NEXIO_ERR_CLOSED' }, 'the outstanding request failed');
  await t.resolves(queuedSend, 'a send the core had taken already resolved');
  t.equal(s.state, 'closed');
  t.ok(await within(s.destroy().then(() => s.close()), 5000), 'destroy() and close() again resolve at once');
  t.equal(s.state, 'closed', 'and change nothing');
});

t.test('server.close(): clients fail loudly, not silently', async (t) => {
  const { server } = await setup(t);
  const s = await connect(server.portals[0], { lanes: 2, resumeTimeout: 1000 });
  await s.request('', '0');
  const outstanding = s.request('', '5000').catch((e) => e);
  const closed = new Promise((r) => s.once('close', r));
  await server.close();
  t.equal(server.close(), server.close(), 'Server.close() is idempotent');
  const e = await outstanding;
  t.comment(`server.close(): ${e.code} ${e.message}`);
  t.match(e, { code: /^NEXIO_ERR_(SESSION_LOST|CLOSED)$/ }, 'the pending request fails with a typed error');
  t.match(await closed, { code: /^NEXIO_ERR_(SESSION_LOST|CLOSED)$/ }, "and the session emits 'close' with it");
});

t.test('server.close() completes while peers hold connections open', { timeout: 30000 }, async (t) => {
  // One connection that never says HELLO, one whose HELLO waits for a
  // decision, one with an accepted session whose peer never closes: none of
  // them may keep close() waiting.
  let decide!: () => void;
  const server = await createServer({
    portals: ['tcp://127.0.0.1:0/svc'],
    onSession: (info) => (info.resource === '/wait' ? new Promise((r) => { decide = () => r('accept'); }) : 'accept'),
    handler: () => 'x',
  });
  const port = Number(new URL(server.portals[0]).port);
  const hello = (resource: string) => encodeHello({
    verMin: 1, verMax: 1, sessionId: 0n, ackSeq: 0n, windowMsgs: 16, windowBytes: 32768, maxRequests: 4, keepaliveMs: 1000,
    key: Buffer.alloc(16), resource, attrs: Buffer.alloc(0),
  });
  const socks = await Promise.all([undefined, hello('/wait'), hello('/svc')].map(async (first) => {
    const sock = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    sock.on('error', () => undefined);
    sock.resume();
    await new Promise((r) => sock.once('connect', r));
    if (first) sock.write(first);
    return sock;
  }));
  t.teardown(() => { for (const x of socks) x.destroy(); decide?.(); });
  await new Promise((r) => setTimeout(r, 200));
  const ended = socks.map((x) => new Promise<void>((r) => { x.once('end', () => r()); x.once('close', () => r()); }));
  t.ok(await within(server.close(), 10000), 'server.close() resolved');
  t.ok(await within(Promise.all(ended), 10000), 'and the server ended every connection');
  decide();
});

t.test('diagnostics_channel: nexio:session and nexio:lane', async (t) => {
  const { server } = await setup(t);
  const sessions: { event: string; id?: bigint }[] = [];
  const lanes: { event: string }[] = [];
  const onSession = (m: unknown) => sessions.push(m as { event: string; id?: bigint });
  const onLane = (m: unknown) => lanes.push(m as { event: string });
  diagnostics_channel.subscribe('nexio:session', onSession);
  diagnostics_channel.subscribe('nexio:lane', onLane);
  t.teardown(() => {
    diagnostics_channel.unsubscribe('nexio:session', onSession);
    diagnostics_channel.unsubscribe('nexio:lane', onLane);
  });
  const s = await connect(server.portals[0], { lanes: 2 });
  while (s.stats().lanesUp < 2) await new Promise((r) => s.once('lane-up', r));
  await s.close();
  const mine = sessions.filter((m) => m.id === s.id).map((m) => m.event);
  t.ok(mine.includes('open') && mine.includes('closed'), `the session's open and close were published (${mine.join(', ')})`);
  t.ok(lanes.some((m) => m.event === 'open') && lanes.some((m) => m.event === 'up'), 'lanes opening and coming up were published');
});

/** Whether p settles within ms: a wait that can fail instead of hang. */
function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p.then(() => true), new Promise<boolean>((r) => { timer = setTimeout(() => r(false), ms); })])
    .finally(() => clearTimeout(timer));
}

t.test('payloads a destroyed session still held are let go; acked ones too', async (t) => {
  const server = await createServer({
    portals: ['tcp://127.0.0.1:0/svc'],
    handler: (req) => String(req.data.length),
  });
  t.teardown(() => server.close({ timeout: 100 }));
  const ctx = new Context();
  // destroyed before the payloads went out
  const s1 = await connect(server.portals[0], { lanes: 1, context: ctx });
  const p1 = [1, 2, 3].map(() => s1.request('big', Buffer.alloc(100_000, 1)).catch((e) => e));
  t.equal(ctx.heldPayloads, 3, 'three payloads held while their requests are in flight');
  await s1.destroy();
  const errs = await Promise.all(p1);
  t.ok(errs.every((e) => e?.code === 'NEXIO_ERR_CLOSED'), 'the requests failed with NEXIO_ERR_CLOSED');
  t.equal(ctx.heldPayloads, 0, 'destroy() let the payloads go');
  // sent and acked, then the session ends: nothing held either
  const s2 = await connect(server.portals[0], { lanes: 1, context: ctx });
  t.equal((await s2.request('big', Buffer.alloc(50_000, 2))).data.toString(), '50000');
  await s2.close();
  t.equal(ctx.heldPayloads, 0, 'an acked payload is let go');
});
