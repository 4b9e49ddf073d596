// Credits bound what is in flight per session; beyond them the API shows
// backpressure instead of buffering: request()/send() wait in a queue of at
// most maxQueued and then fail with NEXIO_ERR_BACKPRESSURE; the hot path
// (trySend/tryRequest) says no and emits 'drain' when credit is back.

import t, { Test } from 'tap';
import { connect, createServer, Session, ConnectOptions } from '../host/index';


interface Fixture {
  s: Session;
  running: () => number;
  maxRunning: () => number;
  handled: string[];
  messages: string[];
  /** Lets every held request answer (and later ones answer at once). */
  release(): void;
}

async function setup(t: Test, options: ConnectOptions): Promise<Fixture> {
  let running = 0, maxRunning = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  const handled: string[] = [];
  const messages: string[] = [];
  const server = await createServer({
    portals: ['tcp://127.0.0.1:0/svc'],
    onMessage: (_s, h) => { messages.push(h.toString()); },
    handler: async (req) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      handled.push(req.header.toString());
      await gate;
      running--;
      return { header: req.header };
    },
  });
  const s = await connect(server.portals[0], { lanes: 2, ...options });
  t.teardown(async () => { release(); await s.destroy(); await server.close(); });
  return { s, running: () => running, maxRunning: () => maxRunning, handled, messages, release };
}

const settle = (p: Promise<unknown>) => p.then(() => 'ok', (e) => e.code as string);

/** Waits for p, but fails with what the session looks like if it takes more than ms (no silent hang). */
async function within<T>(t: Test, p: Promise<T>, ms: number, what: string | (() => string), s: Session): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([p, new Promise<'stuck'>((res) => { timer = setTimeout(() => res('stuck'), ms); })]);
  clearTimeout(timer);
  if (r === 'stuck') { t.fail(`${typeof what === 'string' ? what : what()}: still waiting after ${ms} ms`, { stats: s.stats() }); return undefined; }
  return r as T;
}

t.test('request(): credits bound what is in flight, maxQueued bounds the wait, beyond it NEXIO_ERR_BACKPRESSURE', async (t) => {
  const f = await setup(t, { credits: { requests: 4 }, maxQueued: 3 });
  const outcomes: Promise<string>[] = [];
  for (let i = 0; i < 10; i++) outcomes.push(settle(f.s.request(`r${i}`, 'x')));
  const early = await within(t, Promise.all(outcomes.slice(7)), 5000, 'refusals', f.s);
  t.same(early, ['NEXIO_ERR_BACKPRESSURE', 'NEXIO_ERR_BACKPRESSURE', 'NEXIO_ERR_BACKPRESSURE'],
    'the three beyond credit + queue are refused at once');
  for (let waited = 0; f.handled.length < 4 && waited < 20000; waited += 10) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 100));
  t.equal(f.handled.length, 4, 'only four reached the server while the handler held them');
  t.equal(f.s.stats().core?.maxRequests, 4, 'the session runs with 4 request credits');
  f.release();
  const outcomeNow: string[] = Array(7).fill('pending');
  outcomes.slice(0, 7).forEach((p, i) => p.then((o) => { outcomeNow[i] = o; }));
  const all = await within(t, Promise.all(outcomes.slice(0, 7)), 20000, () => `completion (outcomes ${outcomeNow}, handled ${f.handled})`, f.s);
  t.same(all, Array(7).fill('ok'), 'the four in flight and the three queued complete');
  t.equal(f.maxRunning(), 4, 'the server never had more than four at once');
  t.same(f.handled, ['r0', 'r1', 'r2', 'r3', 'r4', 'r5', 'r6'], 'in order');
});

t.test('trySend(): false when out of message credit, then drain', async (t) => {
  const f = await setup(t, { credits: { messages: 16 } });
  const header = Buffer.from('m');
  let accepted = 0;
  while (f.s.trySend(Buffer.from(`m${accepted}`), Buffer.alloc(10))) {
    accepted++;
    if (accepted > 10000) break;
  }
  t.ok(accepted > 0 && accepted <= 16, `at most 16 messages taken without an ack (${accepted})`);
  t.notOk(f.s.trySend(header, Buffer.alloc(10)), 'still no credit: nothing was queued behind the scenes');
  t.equal(await within(t, new Promise((r) => f.s.once('drain', () => r('drained'))), 10000, "'drain'", f.s), 'drained', "'drain' fired");
  t.ok(f.s.trySend(Buffer.from(`m${accepted++}`), Buffer.alloc(10)), 'and trySend() takes messages again');
  await f.s.send('fence', '', { receipt: true });
  t.same(f.messages, [...Array.from({ length: accepted }, (_, i) => `m${i}`), 'fence'], 'every accepted message arrived once, in order');
});

t.test('trySend(): the byte credit bounds large messages', async (t) => {
  const f = await setup(t, { credits: { bytes: 32768 } });
  t.equal(f.s.stats().core?.windowBytes, 32768, 'a 32 KiB byte window');
  let accepted = 0;
  while (f.s.trySend(Buffer.from('big'), Buffer.alloc(4000))) {
    accepted++;
    if (accepted > 1000) break;
  }
  t.ok(accepted >= 1 && accepted * 4000 <= 32768, `no more than 32 KiB taken without an ack (${accepted} x 4000 B)`);
  await new Promise((r) => f.s.once('drain', () => r(undefined)));
  t.ok(f.s.trySend(Buffer.from('big'), Buffer.alloc(4000)), "after 'drain' it takes more");
});

t.test('tryRequest(): no credit while the handler holds every request, drain when they answer', async (t) => {
  const f = await setup(t, { credits: { requests: 4 } });
  const replies: string[] = [];
  const done = (err: Error | null, header: Buffer) => { replies.push(err ? (err as Error & { code: string }).code : header.toString()); };
  let n = 0;
  while (f.s.tryRequest(Buffer.from(`h${n}`), Buffer.alloc(1), done)) {
    n++;
    if (n > 1000) break;
  }
  t.equal(n, 4, 'four requests taken, the fifth refused');
  const drained = new Promise((r) => f.s.once('drain', () => r(undefined)));
  f.release();
  await drained;
  t.ok(f.s.tryRequest(Buffer.from('h4'), Buffer.alloc(1), done), "after 'drain' a request is taken again");
  while (replies.length < 5) await new Promise((r) => setTimeout(r, 10));
  t.same(replies, ['h0', 'h1', 'h2', 'h3', 'h4'], 'every reply came to the callback');
});

t.test('send(): the window plus maxQueued, then NEXIO_ERR_BACKPRESSURE; nothing is buffered without limit', async (t) => {
  const f = await setup(t, { credits: { messages: 16 }, maxQueued: 8 });
  const outcomes = Array.from({ length: 100 }, (_, i) => settle(f.s.send(`s${i}`, 'x')));
  const results = await Promise.all(outcomes);
  const ok = results.filter((r) => r === 'ok').length;
  const refused = results.filter((r) => r === 'NEXIO_ERR_BACKPRESSURE').length;
  t.equal(ok + refused, 100, 'every send() settled, ok or NEXIO_ERR_BACKPRESSURE');
  t.equal(ok, 16 + 8, 'the window (16) plus the queue (8) were taken');
  t.equal(refused, 100 - 16 - 8, 'the rest were refused at once');
  await f.s.send('fence', '', { receipt: true });
  const taken = results.flatMap((r, i) => (r === 'ok' ? [`s${i}`] : []));
  t.same(f.messages, [...taken, 'fence'], 'exactly the accepted ones arrived, once, in order');
  t.same(taken, Array.from({ length: ok }, (_, i) => `s${i}`), 'and they were the first ones');
});

