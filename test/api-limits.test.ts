// Limits surface as what they are (issue 8): a context or a server out of
// session slots refuses the next session with NEXIO_ERR_LIMIT naming the
// limit, on the client and on the server; and connect() options that differ
// from the defaults do not cost a context (tens of MiB) per session.

import t, { Test } from 'tap';
import { connect, createServer, Context, NexioError, Session } from '../host/index';

const MiB = 1 << 20;
const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

/** Settles p as its value or its error, or 'timeout' after ms: a wait that can fail instead of hang. */
function outcome<T>(p: Promise<T>, ms: number): Promise<T | NexioError | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p.catch((e: NexioError) => e), new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), ms); })])
    .finally(() => clearTimeout(timer));
}

const describe = (x: unknown) => (x instanceof Session ? 'a session' : x === 'timeout' ? 'nothing (timed out)' : `${(x as NexioError).code}: ${(x as Error).message}`);

async function echoServer(t: Test, core?: Record<string, number>) {
  const server = await createServer({ portals: ['tcp://127.0.0.1:0/svc'], core, handler: (req) => req.data });
  t.teardown(() => server.close({ timeout: 100 }));
  return server;
}

t.test('a client context out of session slots: NEXIO_ERR_LIMIT, with the limit in the message', async (t) => {
  const server = await echoServer(t);
  const ctx = new Context({ core: { maxSessions: 4 } });
  t.teardown(() => ctx.close());
  const sessions: Session[] = [];
  t.teardown(() => Promise.all(sessions.map((s) => s.destroy())));
  for (let i = 0; i < 4; i++) sessions.push(await connect(server.portals[0], { context: ctx, lanes: 1 }));
  const fifth = await outcome(connect(server.portals[0], { context: ctx, lanes: 1 }), 5000);
  if (fifth instanceof Session) sessions.push(fifth);
  t.comment(`the 5th connect: ${describe(fifth)}`);
  t.match(fifth, { code: 'NEXIO_ERR_LIMIT' }, 'the 5th session on a context of 4 is refused with NEXIO_ERR_LIMIT');
  t.match((fifth as Error).message, /\b4\b/, 'and the message names the limit (4)');
  t.equal((await sessions[0].request('', 'still')).data.toString(), 'still', 'the four sessions go on');
  await sessions.shift()!.destroy();
  const again = await outcome(connect(server.portals[0], { context: ctx, lanes: 1 }), 5000);
  if (again instanceof Session) sessions.push(again);
  t.ok(again instanceof Session, `with one of them gone, a new one opens (${describe(again)})`);
});

t.test('a server out of session slots: the client gets NEXIO_ERR_LIMIT, with the limit in the message', async (t) => {
  const server = await echoServer(t, { maxSessions: 4 });
  const sessions: Session[] = [];
  t.teardown(() => Promise.all(sessions.map((s) => s.destroy())));
  for (let i = 0; i < 4; i++) sessions.push(await connect(server.portals[0], { lanes: 1 }));
  const fifth = await outcome(connect(server.portals[0], { lanes: 1 }), 5000);
  if (fifth instanceof Session) sessions.push(fifth);
  t.comment(`the 5th connect: ${describe(fifth)}`);
  t.match(fifth, { code: 'NEXIO_ERR_LIMIT' }, 'the 5th session on a server of 4 is refused with NEXIO_ERR_LIMIT');
  t.match((fifth as Error).message, /\b4\b/, 'and the message names the limit (4)');
  t.equal((await sessions[0].request('', 'still')).data.toString(), 'still', 'the four sessions go on');
  await sessions.shift()!.close();
  // The server frees the slot once the close is through on its side too.
  let again: Session | NexioError | 'timeout' = 'timeout';
  for (let i = 0; i < 20 && !(again instanceof Session); i++) {
    again = await outcome(connect(server.portals[0], { lanes: 1 }), 5000);
    if (!(again instanceof Session)) await new Promise((r) => setTimeout(r, 100));
  }
  if (again instanceof Session) sessions.push(again);
  t.ok(again instanceof Session, `with one of them closed, a new one opens (${describe(again)})`);
});

t.test('sessions opened with the same non-default options share a context', async (t) => {
  // Every Context holds a protocol core (WebAssembly memory, counted in
  // `external`; most of it is never touched, so rss hardly shows it). A
  // context per session made 20 sessions cost 20 of them.
  const server = await echoServer(t);
  const warm = await connect(server.portals[0], { lanes: 1 });
  t.teardown(() => warm.destroy());
  await warm.request('', 'warm');
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const before = process.memoryUsage();
  const sessions: Session[] = [];
  t.teardown(() => Promise.all(sessions.map((s) => s.destroy())));
  for (let i = 0; i < 20; i++) {
    const s = await connect(server.portals[0], { keepaliveMs: 500, lanes: 1 });
    sessions.push(s);
    t.equal((await s.request('', `s${i}`)).data.toString(), `s${i}`, `session ${i} works`);
  }
  gc?.();
  const after = process.memoryUsage();
  t.comment(`20 sessions with { keepaliveMs: 500 }: external +${mib(after.external - before.external)}, rss +${mib(after.rss - before.rss)}`);
  // One new context for the 20 (its WebAssembly memory is external; with
  // the default maxSessions it reserves ~640 MiB), not one per session.
  const one = sessions[0].context.core.memoryBytes;
  t.ok(after.external - before.external < 1.5 * one, `external memory grew by less than 1.5 contexts (${mib(after.external - before.external)}; one is ${mib(one)})`);
  t.ok(after.rss - before.rss < 200 * MiB, `rss grew by less than 200 MiB (${mib(after.rss - before.rss)})`);
  t.ok(sessions.every((s) => s.context === sessions[0].context), 'the 20 sessions are on one context');
});
