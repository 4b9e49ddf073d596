// A server-wide view and logging: server.stats() gives each context's
// figures (what it holds now, and what it counted: sessions, lanes,
// handshakes, requests, messages, bytes, protocol errors) and their totals,
// with threads too (each worker asked over its message port); 'session' and
// 'close' events; NODE_DEBUG=nexio logs lane and session lifecycle;
// diagnostics messages are built only when someone listens.

import t from 'tap';
import * as net from 'node:net';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import diagnostics_channel from 'node:diagnostics_channel';
import { connect, createServer } from '../host/index';
import type { Session, SessionMessage } from '../host/index';
import { publish, debug } from '../host/diagnostics';

t.test('threads: 0: totals and the context, live and ended sessions, protocol errors', async (t) => {
  const seen: Session[] = [];
  const server = await createServer({ portals: ['tcp://127.0.0.1:0/svc'], handler: (req) => req.data, onMessage: () => undefined });
  server.on('session', (s) => seen.push(s));
  let closed = false;
  server.on('close', () => { closed = true; });
  const a = await connect(server.portals[0], { lanes: 1 });
  const b = await connect(server.portals[0], { lanes: 2 });
  await a.request('h', 'hello');
  await b.request('h', 'world!');
  await b.send('m', 'one-way', { receipt: true });
  // A peer that does not speak nexio: a protocol error in the handshake.
  const port = Number(new URL(server.portals[0]).port);
  const raw = net.connect(port, '127.0.0.1', () => raw.write('GET / HTTP/1.1\r\n\r\n'));
  raw.on('error', () => undefined);
  for (let i = 0; i < 100 && (await server.stats()).totals.protocolErrors === 0; i++) await new Promise((r) => setTimeout(r, 20));
  raw.destroy();
  await a.close();
  const st = await server.stats();
  t.equal(st.contexts.length, 1);
  const c = st.contexts[0];
  t.equal(c.index, 0);
  t.same(c.portals, server.portals);
  t.equal(c.sessions, 1, 'one session open now');
  t.equal(c.sessionsAccepted, 2, 'two accepted');
  t.equal(seen.length, 2, "'session' emitted for each");
  t.equal(c.requestsReceived, 2, 'requests received, the ended session included');
  t.equal(c.responses, 2, 'responses sent');
  t.equal(c.messagesReceived, 1);
  t.equal(c.bytesReceived, 'hhello'.length + 'hworld!'.length + 'mone-way'.length);
  t.equal(c.bytesSent, 'hello'.length + 'world!'.length);
  t.ok(c.lanesAccepted >= 4, `lanes accepted (${c.lanesAccepted})`);
  t.ok(c.lanes >= 2, `lanes held now (${c.lanes})`);
  t.equal(c.protocolErrors, 1, "the HTTP peer's protocol error");
  t.same(st.totals, (({ index, portals, ...rest }) => rest)(c), 'totals of one context are its figures');
  await b.close();
  await server.close();
  t.ok(closed, "'close' emitted");
  t.equal((await server.stats()).totals.sessions, 0, 'a closed server has no sessions');
});

t.test('threads: 2: each worker answers for its context', async (t) => {
  const server = await createServer({ portals: ['tcp://127.0.0.1:0/svc'], threads: 2, handler: path.join(__dirname, 'fixtures', 'thread-handler.js') });
  t.teardown(() => server.close());
  const sessions = [];
  for (let i = 0; i < 4; i++) {
    const s = await connect(server.portals[0], { lanes: 1 });
    await s.request('where');
    sessions.push(s);
  }
  const st = await server.stats();
  t.equal(st.contexts.length, 2);
  t.same(st.contexts.map((c) => c.index), [0, 1]);
  t.same(st.contexts.map((c) => c.sessions), [2, 2], 'round-robin: two sessions each');
  t.equal(st.totals.sessions, 4);
  t.equal(st.totals.requestsReceived, 4);
  t.same(st.contexts.map((c) => c.portals), server.contexts);
  for (const s of sessions) await s.close();
  await server.close();
  const after = await server.stats();
  t.equal(after.totals.sessions, 0, 'workers that exited answer zeros');
});

t.test('NODE_DEBUG=nexio logs lane and session lifecycle', async (t) => {
  const script = `
    const n = require(${JSON.stringify(path.join(__dirname, '..', 'host', 'index.js'))});
    (async () => {
      const server = await n.createServer({ portals: ['mem://dbg/svc'] });
      const s = await n.connect('mem://dbg/svc', { lanes: 1 });
      await s.close();
      await server.close();
      await n.connect('mem://nobody/svc').catch(() => undefined);
    })();`;
  const r = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, NODE_DEBUG: 'nexio' }, encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  for (const line of [
    /NEXIO \d+: server: listening on mem:\/\/dbg\/svc/,
    /NEXIO \d+: lane open lane=\d+ uri=mem:\/\/dbg\/svc/,
    /NEXIO \d+: lane accepted lane=\d+ uri=mem:\/\/dbg\/svc remote=/,
    /NEXIO \d+: session open session=\d+ id=[0-9a-f]+/,
    /NEXIO \d+: session closed session=\d+/,
    /NEXIO \d+: session destroyed .*NEXIO_ERR_TRANSPORT: cannot connect to mem:\/\/nobody\/svc/,
  ]) t.match(r.stderr, line, String(line));
  const quiet = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, NODE_DEBUG: '' }, encoding: 'utf8' });
  t.equal(quiet.stderr, '', 'nothing without NODE_DEBUG');
});

t.test('diagnostics: messages are typed, and built only when heard', async (t) => {
  let built = 0;
  if (!debug.enabled) {
    publish('lane', () => { built++; return { event: 'open', lane: 1 }; });
    t.equal(built, 0, 'no subscriber, no debug log: the message is not built');
  }
  const got: SessionMessage[] = [];
  const onMsg = (m: unknown) => got.push(m as SessionMessage);
  diagnostics_channel.subscribe('nexio:session', onMsg);
  t.teardown(() => diagnostics_channel.unsubscribe('nexio:session', onMsg));
  const server = await createServer({ portals: ['mem://diag/svc'] });
  const s = await connect('mem://diag/svc', { lanes: 1 });
  await s.close();
  await server.close();
  t.ok(got.some((m) => m.event === 'open' && typeof m.session === 'number' && typeof m.id === 'bigint'), 'open, with handle and id');
  t.ok(got.some((m) => m.event === 'closed'), 'closed');
});
