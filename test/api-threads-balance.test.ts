// Placement: a server with threads runs a context per worker thread, each
// loading the handler module itself; accepted sessions are placed on the
// contexts round-robin (default), by 'hash' of resource and attrs, or by a
// function. The handler fixture answers with the thread it ran on.

import t from 'tap';
import * as path from 'node:path';
import { connect, createServer, Session } from '../host/index';
import type { Balance } from '../host/index';

const handlerModule = path.join(__dirname, 'fixtures', 'thread-handler.js');
const where = async (s: Session) => JSON.parse((await s.request('where')).data.toString()) as { pid: number; threadId: number };

t.test('threads: 2 with a handler module, sessions placed round-robin', async (t) => {
  let asked = 0;
  const server = await createServer({
    portals: ['tcp://127.0.0.1:0/svc'], threads: 2, handler: handlerModule,
    onSession: (info) => { asked++; return info.resource === '/no' ? { reject: 'no threads for you' } : 'accept'; },
  });
  t.teardown(() => server.close());
  t.equal(server.contexts.length, 2, 'two contexts, each with its portals');
  t.not(server.contexts[0][0], server.contexts[1][0], 'on different ports');
  t.equal(server.portals[0], server.contexts[0][0], "the first context's portal is the public one");
  const placed = [];
  for (let i = 0; i < 4; i++) {
    const s = await connect(server.portals[0], { lanes: 2 });
    placed.push(await where(s));
    await s.close();
  }
  t.equal(new Set(placed.map((p) => p.pid)).size, 1, 'one process');
  t.ok(placed.every((p) => p.pid === process.pid), 'this one');
  const ids = placed.map((p) => p.threadId);
  t.not(ids[0], ids[1], 'consecutive sessions on different contexts');
  t.same([ids[2], ids[3]], [ids[0], ids[1]], 'and round and round');
  t.ok(ids.every((id) => id !== 0), 'on worker threads, not the main thread');
  t.equal(asked, 4, 'onSession asked once per session (not again where it was placed)');
  t.match(await connect(server.portals[0].replace(/\/svc$/, '/no')).catch((e) => e),
    { code: 'NEXIO_ERR_REJECTED', message: 'no threads for you' }, 'a rejection from onSession reaches the client through the worker');
});

t.test("balance 'hash' and a custom balance function", async (t) => {
  const hash = await createServer({ portals: ['tcp://127.0.0.1:0/svc'], threads: 2, handler: handlerModule, balance: 'hash' });
  t.teardown(() => hash.close());
  const byKey = new Map<string, number[]>();
  for (let round = 0; round < 2; round++) {
    for (let k = 0; k < 6; k++) {
      const s = await connect(hash.portals[0], { lanes: 1, attrs: Buffer.from(`key-${k}`) });
      const { threadId } = await where(s);
      byKey.set(`key-${k}`, [...(byKey.get(`key-${k}`) ?? []), threadId]);
      await s.close();
    }
  }
  t.ok([...byKey.values()].every(([a, b]) => a === b), "'hash': the same resource and attrs land on the same context");
  t.equal(new Set([...byKey.values()].map(([a]) => a)).size, 2, "'hash': different keys spread over both contexts");

  const calls: number[] = [];
  const fn: Balance = (info, n) => { calls.push(n); return info.attrs[0] === 9 ? 7 : info.attrs[0] % n; };
  const custom = await createServer({ portals: ['tcp://127.0.0.1:0/svc'], threads: 2, handler: handlerModule, balance: fn });
  t.teardown(() => custom.close());
  const ids = [];
  for (const a of [0, 1, 0, 1]) {
    const s = await connect(custom.portals[0], { lanes: 1, attrs: Buffer.from([a]) });
    ids.push((await where(s)).threadId);
    await s.close();
  }
  t.same(calls, [2, 2, 2, 2], 'the function is told the number of contexts');
  t.ok(ids[0] === ids[2] && ids[1] === ids[3] && ids[0] !== ids[1], 'and its choice is where sessions run');
  t.match(await connect(custom.portals[0], { attrs: Buffer.from([9]) }).catch((e) => e), { code: 'NEXIO_ERR_REJECTED' },
    'a choice out of range rejects the session');
});

t.test('threads: 2 with pre-shared keys: every context checks them, onSession sees the identity, the failures add up', async (t) => {
  const key = Buffer.alloc(32, 0x6b);
  const identities: (string | undefined)[] = [];
  const server = await createServer({
    portals: ['tcp://127.0.0.1:0/svc'], threads: 2, handler: handlerModule, psk: { 'app-1': key },
    onSession: (info) => { identities.push(info.identity); return 'accept'; },
  });
  t.teardown(() => server.close());
  const ids = [];
  for (let i = 0; i < 2; i++) {
    // The second session is redirected to the second context, where its lanes prove the key again.
    const s = await connect(server.portals[0], { lanes: 2, psk: { identity: 'app-1', key } });
    ids.push((await where(s)).threadId);
    await s.close();
  }
  t.not(ids[0], ids[1], 'both contexts served a keyed session');
  t.same(identities, ['app-1', 'app-1'], 'onSession saw the identity');
  for (const port of [0, 1]) {
    const e = await connect(server.contexts[port][0], { lanes: 1, psk: { identity: 'app-1', key: Buffer.alloc(32, 1) } }).catch((x) => x);
    t.equal(e.code, 'NEXIO_ERR_AUTH', `context ${port}: a wrong key is refused`);
  }
  const st = await server.stats();
  t.equal(st.totals.authFailures, 2, 'two failures in all');
  t.same(st.totals.authFailuresBy, [{ identity: 'app-1', address: '127.0.0.1', count: 2 }], 'merged by identity and address');
  t.same(st.contexts.map((c) => c.authFailures), [1, 1], 'one per context');
  await t.rejects(createServer({ portals: ['tcp://127.0.0.1:0/x'], threads: 1, handler: handlerModule, psk: () => key }),
    { code: 'NEXIO_ERR_INVALID_ARG', message: /with threads, psk must be a table/ });
});
