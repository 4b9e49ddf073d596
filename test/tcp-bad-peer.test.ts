// Hostile and broken peers on a tcp portal: raw sockets send garbage,
// malformed and out-of-state frames. Each such connection gets an ERROR
// (or REJECT) frame and is closed; the server process keeps working and a
// session on the same server, busy the whole time, is not touched.

import t, { Test } from 'tap';
import * as net from 'node:net';
import { connect, createServer, Session, NexioError, Code } from '../host/index';
import {

  encodeHello, encodeRequest, encodeKeepalive, Frame,
} from '../host/wire';
import { readFrames } from './fixtures/frames';

const hello = (sessionId = 0n, over: Partial<Parameters<typeof encodeHello>[0]> = {}) => encodeHello({
  verMin: 1, verMax: 1, sessionId, ackSeq: 0n, windowMsgs: 16, windowBytes: 32768, maxRequests: 4, keepaliveMs: 1000,
  key: Buffer.alloc(16), resource: '/svc', attrs: Buffer.alloc(0), ...over,
});
/** A request as the first of a session: seq 0, slot 0, the first tag (generation 1, index 0). */
const request = (over: Partial<Parameters<typeof encodeRequest>[0]> = {}) => encodeRequest({
  seq: 0n, slot: 0, tag: 1 << 16, header: Buffer.from('raw'), data: Buffer.from('peer'), ...over,
});
const rawFrame = (type: number, len: number, size = 8) => {
  const b = Buffer.alloc(size);
  b[0] = type;
  b.writeUInt32LE(len, 4);
  return b;
};

/** A raw socket that speaks (or fails to speak) the protocol. */
class RawPeer {
  readonly sock: net.Socket;
  #got = Buffer.alloc(0);
  #waiters: (() => void)[] = [];
  readonly closed: Promise<void>;
  constructor(port: number) {
    this.sock = net.connect(port, '127.0.0.1');
    this.sock.on('error', () => undefined);
    this.sock.on('data', (d) => { this.#got = Buffer.concat([this.#got, d]); this.#wake(); });
    this.closed = new Promise((r) => this.sock.on('close', () => { this.#wake(); r(); }));
  }
  #wake() { for (const w of this.#waiters.splice(0)) w(); }
  ready(): Promise<void> { return new Promise((r) => (this.sock.connecting ? this.sock.once('connect', () => r()) : r())); }
  send(...b: Buffer[]): void { for (const x of b) this.sock.write(x); }
  frames(): Frame[] {
    return readFrames(this.#got);
  }
  /** Waits for a frame of this type (or the connection's end). */
  async until(type: string): Promise<Frame | undefined> {
    for (;;) {
      const f = this.frames().find((x) => x.type === type);
      if (f || this.sock.destroyed || this.sock.readableEnded) return f;
      await new Promise<void>((r) => this.#waiters.push(r));
    }
  }
}

/** A server and a session on it that keeps requests going until stopped. */
async function setup(t: Test) {
  const server = await createServer({
    portals: ['tcp://127.0.0.1:0/svc'],
    core: { helloTimeoutMs: 500 },
    handler: (req) => ({ header: req.header, data: req.data }),
  });
  const port = Number(new URL(server.portals[0]).port);
  const s: Session = await connect(server.portals[0], { lanes: 2 });
  let running = true, completed = 0;
  const failures: string[] = [];
  const busy = (async () => {
    while (running) {
      const data = Buffer.from(`n${completed}`);
      try {
        const r = await s.request('busy', data);
        if (!r.data.equals(data)) failures.push(`wrong reply ${r.data}`);
        completed++;
      } catch (e) {
        failures.push((e as NexioError).code ?? String(e));
        return;
      }
    }
  })();
  const peers: RawPeer[] = [];
  const peer = async () => { const p = new RawPeer(port); peers.push(p); await p.ready(); return p; };
  t.teardown(async () => { running = false; for (const p of peers) p.sock.destroy(); await s.destroy(); await server.close(); });
  /** Stops the busy session and checks it was untouched. */
  const untouched = async () => {
    const before = completed;
    await new Promise((r) => setTimeout(r, 50));
    running = false;
    await busy;
    t.same(failures, [], 'the busy session saw no failure');
    t.ok(completed > before, `and kept completing requests (${completed} in all)`);
    t.match(s.stats(), { state: 'open', failovers: 0, protocolErrors: 0, lanesUp: 2 }, 'lost no lane and saw no protocol error');
    const again = await connect(server.portals[0], { lanes: 1 });
    t.equal((await again.request('', 'new')).data.toString(), 'new', 'the server accepts new sessions');
    await again.destroy();
  };
  return { server, port, s, peer, untouched };
}

const errorCode = (f: Frame | undefined) => (f && f.type === 'error' ? f.code : undefined);

t.test('garbage and malformed frames before a HELLO: ERROR, then closed', async (t) => {
  const { peer, untouched } = await setup(t);
  const cases: [string, Buffer, number][] = [
    ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), 3],
    ['zeros', Buffer.alloc(64), 3],
    ['a frame length under the header size', rawFrame(0x22, 4), 1],
    ['a frame length of 4 GiB', rawFrame(0x10, 0xffffffff), 2],
    ['a REQUEST before any HELLO', request(), 4],
    ['a HELLO whose resource runs past its end', (() => { const h = hello(); h.writeUInt16LE(60000, 12); return h; })(), 1],
  ];
  for (const [what, bytes, code] of cases) {
    const p = await peer();
    p.send(bytes);
    const e = await p.until('error');
    t.equal(errorCode(e), code, `${what}: an ERROR frame with code ${code}`);
    t.ok(await within(p.closed, 10000), `${what}: the server closed the connection`);
  }
  await untouched();
});

t.test('HELLOs the server refuses: REJECT with the reason, then closed', async (t) => {
  const { peer, untouched } = await setup(t);
  const version = await peer();
  version.send(hello(0n, { verMin: 9, verMax: 9 }));
  t.match(await version.until('reject'), { reason: 6, verMin: 1, verMax: 1 }, 'an unsupported version: REJECT version, with the range spoken');
  await version.closed;
  const unknown = await peer();
  unknown.send(hello(0x1234567890abcdefn));
  t.match(await unknown.until('reject'), { reason: 8 }, 'a resume of a session the server does not know: REJECT unknown-session');
  await unknown.closed;
  await untouched();
});

t.test('a session of its own, then broken frames: only that connection closes', async (t) => {
  const { peer, untouched } = await setup(t);
  // First show the raw peer speaks the protocol: a request gets its response.
  const good = await peer();
  good.send(hello());
  await good.until('accept');
  good.send(request());
  t.match(await good.until('response'), { type: 'response', tag: 1 << 16 }, 'a well-formed request from a raw peer is served');
  good.send(encodeKeepalive());

  const cases: [string, Buffer[], number][] = [
    ['a sequence number far outside the window', [request({ seq: 5000n })], 5],
    ['unknown message flags', [request({ flags: 0x80 })], 1],
    ['a second HELLO on an open lane', [hello()], 4],
    ['a 100 kB message frame', [rawFrame(0x10, 100000)], 2],
    ['an unknown frame type', [rawFrame(0x7f, 8)], 3],
  ];
  for (const [what, bytes, code] of cases) {
    const p = await peer();
    p.send(hello());
    await p.until('accept');
    p.send(...bytes);
    t.equal(errorCode(await p.until('error')), code, `${what}: ERROR code ${code}`);
    await p.closed;
  }
  await untouched();
});

t.test('stream edge cases: byte by byte, truncated, silent', async (t) => {
  const { peer, untouched } = await setup(t);
  const slow = await peer();
  for (const b of hello()) { slow.send(Buffer.from([b])); await new Promise((r) => setImmediate(r)); }
  t.match(await slow.until('accept'), { type: 'accept', version: 1 }, 'a HELLO arriving one byte at a time is accepted');

  const truncated = await peer();
  truncated.send(hello().subarray(0, 20));
  truncated.sock.end();
  await truncated.closed;
  t.same(truncated.frames(), [], 'half a HELLO and an end: closed without an answer');

  const silent = await peer();
  await silent.closed;
  t.same(silent.frames(), [], 'a connection that never says HELLO is closed by the hello timeout');
  await untouched();
});

t.test('fifty hostile connections at once', async (t) => {
  const { peer, untouched } = await setup(t);
  const all = await Promise.all(Array.from({ length: 50 }, async (_, i) => {
    const p = await peer();
    p.send(i % 2 ? Buffer.from(`junk ${i} `.repeat(100)) : Buffer.concat([hello(), rawFrame(0x7f, 8)]));
    await p.closed;
    return p.frames().some((f) => f.type === 'error');
  }));
  t.equal(all.filter(Boolean).length, 50, 'every one got an ERROR and was closed');
  await untouched();
});

// Session ids name sessions; they are not secret (an observer sees them on
// the wire, and a client may guess its neighbours'). What admits a lane to a
// session is its key: 16 bytes from the server's CSPRNG, sent once in the
// new session's ACCEPT, required in every join or resume HELLO.
t.test('a peer that knows a session id but not its key cannot join it', async (t) => {
  const { port, server } = await setup(t);
  const victim = await connect(server.portals[0], { lanes: 1 });
  t.teardown(() => victim.destroy());
  const tries: [string, Buffer | undefined][] = [
    ['no key', undefined],
    ['a wrong key', Buffer.from('0123456789abcdef')],
  ];
  for (const [what, key] of tries) {
    const p = new RawPeer(port);
    t.teardown(() => p.sock.destroy());
    await p.ready();
    p.send(hello(victim.id, key ? { key } : {}));
    const answer = await p.until('reject');
    t.equal(answer?.type === 'reject' ? answer.reason : -1, Code.UNKNOWN_SESSION, `a join HELLO with ${what} is refused as an unknown session`);
    t.notOk(p.frames().some((f) => f.type === 'accept'), `and gets no ACCEPT (${what})`);
    t.ok(await within(p.closed, 5000), `and the connection is closed (${what})`);
  }
  const got = await Promise.all(Array.from({ length: 10 }, (_, i) => victim.request('', `private ${i}`)));
  t.equal(got.length, 10, 'the session goes on');
  t.equal(victim.stats().lanesUp, 1, 'with its one lane');
});

/** Whether p settles within ms: a wait that can fail instead of hang. */
function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p.then(() => true), new Promise<boolean>((r) => { timer = setTimeout(() => r(false), ms); })])
    .finally(() => clearTimeout(timer));
}
