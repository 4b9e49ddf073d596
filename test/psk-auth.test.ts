// Pre-shared keys over real sockets. A relay of the test's own sits between
// client and server (a net.Server forwarding to the real server, every lane
// through it: the server advertises the relay) and records both directions:
// the handshake holds no byte run of the key, a recorded handshake replayed
// later is refused, and killing the relay's connections kills real lanes.
// Wrong, missing and unexpected keys each end the connect with NEXIO_ERR_AUTH
// within 5 s, and neither onSession nor the handler ever runs for them.

import t from 'tap';
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import * as diagnostics_channel from 'node:diagnostics_channel';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { connect, createServer, NexioError, Server, registerTransport, mem, MemNetwork, AuthMessage, Context, Recorder, replay } from '../host/index';
import type { Lane, LaneSink, Transport } from '../host/transports/transport';
import * as W from '../host/wire';
import { serveContext } from '../host/server';
import { startRelay, freePort, Relay } from './fixtures/relay';

/** Whether any 8-byte run of key appears in the bytes. */
function leaks(bytes: Buffer, key: Buffer): boolean {
  for (let i = 0; i + 8 <= key.length; i++) if (bytes.indexOf(key.subarray(i, i + 8)) >= 0) return true;
  return false;
}

interface Served { server: Server; relay: Relay; uri: string; sessions: string[]; handled: number }

/** A psk server behind a relay (it advertises the relay, so every lane goes through it). */
async function served(psk: Parameters<typeof createServer>[0]['psk']): Promise<Served> {
  const rl = await startRelay();
  rl.target = await freePort();
  const out: Served = { server: undefined as unknown as Server, relay: rl, uri: `tcp://127.0.0.1:${rl.port}/svc`, sessions: [], handled: 0 };
  out.server = await createServer({
    portals: [`tcp://127.0.0.1:${rl.target}/svc`], advertise: [out.uri], psk,
    onSession: (info) => { out.sessions.push(String(info.identity)); return 'accept'; },
    handler: (req) => { out.handled++; return { header: req.header, data: req.data }; },
    onMessage: () => undefined,
  });
  return out;
}

async function refused(p: Promise<unknown>): Promise<{ code: string; ms: number }> {
  const t0 = Date.now();
  try {
    const s = await p as { destroy(): Promise<void> };
    await s.destroy();
    return { code: 'connected', ms: Date.now() - t0 };
  } catch (e) {
    return { code: e instanceof NexioError ? e.code : String(e), ms: Date.now() - t0 };
  }
}

t.test('tcp: the right key opens a session of 2 lanes that resumes after its lanes are killed; the key never crosses the wire', async (t) => {
  const key = randomBytes(32);
  const sv = await served({ alice: key });
  t.teardown(async () => { await sv.server.close(); await sv.relay.close(); });
  const s = await connect(sv.uri, { psk: { identity: 'alice', key }, lanes: 2, timeout: 5000 });
  t.teardown(() => s.destroy());
  t.same(sv.sessions, ['alice'], 'onSession saw the identity the client proved');
  t.equal((await s.request('a', 'b')).header.toString(), 'a');
  for (let i = 0; i < 100 && s.stats().lanesUp < 2; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(s.stats().lanesUp, 2, 'the second lane proved the key and joined');
  t.equal(sv.relay.up.length, 2, 'both lanes went through the relay');

  // Kill every lane: the session resumes, each new lane proving the key again.
  const resumed = new Promise<void>((r) => s.once('resumed', () => r()));
  t.ok(sv.relay.kill() >= 4, 'the relay dropped both lanes');
  await resumed;
  t.equal((await s.request('after', 'resume')).header.toString(), 'after', 'a request after the resume');
  for (let i = 0; i < 100 && s.stats().lanesUp < 2; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(s.stats().lanesUp, 2, 'both lanes back, each having proved the key');
  t.ok(sv.relay.up.length >= 3, `lanes came back through the relay (${sv.relay.up.length} connections)`);

  const all = Buffer.concat([...sv.relay.up.flat(), ...sv.relay.down.flat()]);
  t.ok(all.length > 500, `the relay recorded the traffic (${all.length} bytes)`);
  t.notOk(leaks(all, key), 'no 8-byte run of the key appears in either direction');
  // Every lane's first frame is a HELLO with F_AUTH naming the identity; the server answered with a CHALLENGE.
  for (const [i, c] of sv.relay.up.entries()) {
    const b = Buffer.concat(c);
    t.equal(b[0], 0x01, `lane ${i}: HELLO`);
    t.equal(b[1] & 0x01, 0x01, `lane ${i}: F_AUTH`);
    t.ok(b.subarray(0, b.readUInt32LE(4)).includes(Buffer.from('alice')), `lane ${i}: the identity`);
    t.equal(Buffer.concat(sv.relay.down[i])[0], 0x05, `lane ${i}: answered with a CHALLENGE`);
  }
  t.same(sv.sessions, ['alice'], 'joins and resumes never reached onSession');
  t.equal((await sv.server.stats()).totals.authFailures, 0, 'no failures counted');
});

t.test('tcp: wrong key, unknown identity, missing key, key against a server without keys: NEXIO_ERR_AUTH within 5 s, nothing runs', async (t) => {
  const key = randomBytes(16);
  const sv = await served({ alice: key });
  t.teardown(async () => { await sv.server.close(); await sv.relay.close(); });
  const heard: AuthMessage[] = [];
  const onAuth = (m: unknown) => heard.push(m as AuthMessage);
  diagnostics_channel.subscribe('nexio:auth', onAuth);
  t.teardown(() => diagnostics_channel.unsubscribe('nexio:auth', onAuth));

  const wrong = Buffer.from(key);
  wrong[15] ^= 1;
  const cases: [string, object][] = [
    ['wrong key', { psk: { identity: 'alice', key: wrong } }],
    ['unknown identity', { psk: { identity: 'mallory', key } }],
    ['no key', {}],
  ];
  for (const [name, o] of cases) {
    const r = await refused(connect(sv.uri, { ...o, timeout: 20000 }));
    t.equal(r.code, 'NEXIO_ERR_AUTH', `${name}: NEXIO_ERR_AUTH`);
    t.ok(r.ms < 5000, `${name}: within 5 s (${r.ms} ms), not a timeout`);
  }
  t.same(sv.sessions, [], 'onSession never ran');
  t.equal(sv.handled, 0, 'the handler never ran');
  const st = await sv.server.stats();
  t.equal(st.totals.authFailures, 3, 'three failures counted');
  const by = Object.fromEntries(st.totals.authFailuresBy.map((f) => [`${f.identity}@${f.address}`, f.count]));
  t.same(by, { 'alice@127.0.0.1': 1, 'mallory@127.0.0.1': 1, '@127.0.0.1': 1 }, 'counted by identity and address');
  t.same(heard.filter((m) => m.event === 'failed').map((m) => m.identity).sort(), ['', 'alice', 'mallory'], 'each failure published on nexio:auth');
  t.notOk(heard.some((m) => JSON.stringify(m).includes(key.toString('hex'))), 'no key in the messages');

  // A client with a key against a server that has none: refused, never silently unauthenticated.
  let ran = 0;
  const plain = await createServer({ portals: ['tcp://127.0.0.1:0/svc'], onSession: () => { ran++; return 'accept'; }, handler: () => { ran++; return {}; } });
  t.teardown(() => plain.close());
  const r = await refused(connect(plain.portals[0], { psk: { identity: 'alice', key }, timeout: 20000 }));
  t.equal(r.code, 'NEXIO_ERR_AUTH', 'key against a server without keys: NEXIO_ERR_AUTH');
  t.ok(r.ms < 5000, `within 5 s (${r.ms} ms)`);
  t.equal(ran, 0, "the plain server's onSession and handler never ran");
});

t.test('tcp: a recorded handshake replayed to the server is refused (its nonce is fresh)', async (t) => {
  const key = randomBytes(32);
  const sv = await served({ alice: key });
  t.teardown(async () => { await sv.server.close(); await sv.relay.close(); });
  const s = await connect(sv.uri, { psk: { identity: 'alice', key }, lanes: 1, timeout: 5000 });
  await s.close();
  const up = Buffer.concat(sv.relay.up[0]);
  const helloLen = up.readUInt32LE(4);
  t.equal(up[helloLen], 0x06, 'the client sent AUTH after its HELLO');
  const hello = up.subarray(0, helloLen);
  const auth = up.subarray(helloLen, helloLen + 40);

  // Replay the HELLO, wait for the CHALLENGE, replay the recorded AUTH.
  const sock = net.connect(sv.relay.target, '127.0.0.1');
  t.teardown(() => sock.destroy());
  let got = Buffer.alloc(0);
  const until = (n: number) => new Promise<void>((res, rej) => {
    const f = () => { if (got.length >= n) { sock.off('data', f); res(); } };
    sock.on('data', (b) => { got = Buffer.concat([got, b]); f(); });
    sock.once('close', () => (got.length >= n ? res() : rej(new Error(`closed after ${got.length} bytes`))));
    f();
  });
  sock.write(hello);
  await until(48);
  t.equal(got[0], 0x05, 'a CHALLENGE');
  t.not(got.subarray(16, 48).toString('hex'), Buffer.concat(sv.relay.down[0]).subarray(16, 48).toString('hex'), 'with a new nonce');
  sock.write(auth);
  await until(48 + 16);
  t.equal(got[48], 0x03, 'answered with REJECT');
  t.equal(got.readUInt16LE(48 + 8), 22, 'reason auth (22)');
  t.same(sv.sessions, ['alice'], 'the replay opened no session');
  t.equal((await sv.server.stats()).totals.authFailures, 1, 'the replay counts as a failure');
});

t.test('keys rotate through the function form: the next lane proves the new key', async (t) => {
  let current = randomBytes(32);
  const old = current;
  const server = await createServer({ portals: ['tcp://127.0.0.1:0/svc'], psk: (id) => (id === 'svc' ? current : undefined), handler: (r) => ({ header: r.header }) });
  t.teardown(() => server.close());
  const a = await connect(server.portals[0], { psk: { identity: 'svc', key: old }, lanes: 1 });
  t.teardown(() => a.destroy());
  current = randomBytes(32);
  t.equal((await refused(connect(server.portals[0], { psk: { identity: 'svc', key: old }, timeout: 20000 }))).code, 'NEXIO_ERR_AUTH', 'the old key is refused');
  const b = await connect(server.portals[0], { psk: { identity: 'svc', key: current }, lanes: 1 });
  t.teardown(() => b.destroy());
  t.equal((await b.request('x', '')).header.toString(), 'x', 'the new key works');
  t.equal((await a.request('y', '')).header.toString(), 'y', 'a session opened before the rotation goes on');

  // The lookup may answer later (a secret store); one that rejects knows no key.
  const store = new Map([['svc', current]]);
  const later = await createServer({
    portals: ['tcp://127.0.0.1:0/svc'], handler: (r) => ({ header: r.header }),
    psk: async (id) => { await new Promise((r) => setTimeout(r, 5)); if (id === 'boom') throw new Error('store down'); return store.get(id); },
  });
  t.teardown(() => later.close());
  const c = await connect(later.portals[0], { psk: { identity: 'svc', key: current }, lanes: 2 });
  t.teardown(() => c.destroy());
  t.equal((await c.request('z', '')).header.toString(), 'z', 'an async lookup: the key works');
  for (let i = 0; i < 100 && c.stats().lanesUp < 2; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(c.stats().lanesUp, 2, 'and the join proved it too');
  t.equal((await refused(connect(later.portals[0], { psk: { identity: 'boom', key: current }, timeout: 20000 }))).code, 'NEXIO_ERR_AUTH', 'a lookup that rejects: refused');
  t.equal((await refused(connect(later.portals[0], { psk: { identity: 'svc', key: old }, timeout: 20000 }))).code, 'NEXIO_ERR_AUTH', 'a wrong key with an async lookup: refused');
});

/** The mem transport, its client lanes kept so the test can kill them. */
function killableMem(): { lanes: Set<Lane>; restore(): void } {
  const lanes = new Set<Lane>();
  const wrapped: Transport = {
    scheme: 'mem', caps: mem.caps, check: mem.check?.bind(mem),
    connect(uri: URL, sink: LaneSink): Lane {
      let io: Lane | undefined;
      const s: LaneSink = { connected: () => sink.connected(), data: (c) => sink.data(c), closed: (e) => { lanes.delete(io!); sink.closed(e); } };
      io = mem.connect(uri, s);
      lanes.add(io);
      return io;
    },
    listen: mem.listen.bind(mem),
  };
  registerTransport(wrapped);
  return { lanes, restore: () => registerTransport(mem as MemNetwork) };
}

t.test('mem: the right key opens 2 lanes and resumes after they are killed; a wrong key is refused', async (t) => {
  const m = killableMem();
  t.teardown(() => m.restore());
  const key = randomBytes(24);
  const idents: string[] = [];
  let handled = 0;
  const server = await createServer({
    portals: ['mem://psk-auth/svc'], psk: { 'app-1': key },
    onSession: (i) => { idents.push(String(i.identity)); return 'accept'; },
    handler: (r) => { handled++; return { header: r.header }; },
  });
  t.teardown(() => server.close());
  const s = await connect('mem://psk-auth/svc', { psk: { identity: 'app-1', key }, lanes: 2, timeout: 5000 });
  t.teardown(() => s.destroy());
  for (let i = 0; i < 100 && s.stats().lanesUp < 2; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(s.stats().lanesUp, 2, 'both lanes up');
  const resumed = new Promise<void>((r) => s.once('resumed', () => r()));
  const n = m.lanes.size;
  for (const l of [...m.lanes]) l.destroy();
  t.equal(n, 2, 'killed both lanes');
  await resumed;
  t.equal((await s.request('m', '')).header.toString(), 'm', 'a request after the resume');
  t.same(idents, ['app-1'], 'one session, its identity seen by onSession');

  const before = handled;
  const r = await refused(connect('mem://psk-auth/svc', { psk: { identity: 'app-1', key: randomBytes(24) }, timeout: 20000 }));
  t.equal(r.code, 'NEXIO_ERR_AUTH', 'a wrong key: NEXIO_ERR_AUTH');
  t.ok(r.ms < 5000, `within 5 s (${r.ms} ms)`);
  t.equal(handled, before, 'the handler did not run for it');
  const st = await server.stats();
  t.same(st.totals.authFailuresBy.map((f) => [f.identity, f.count]), [['app-1', 1]], 'counted by identity');
});

t.test('psk options: keys shorter than 16 bytes and bad identities are NEXIO_ERR_INVALID_ARG naming the field', async (t) => {
  const short = Buffer.alloc(15, 1);
  await t.rejects(connect('tcp://127.0.0.1:1/x', { psk: { identity: 'a', key: short } }), { code: 'NEXIO_ERR_INVALID_ARG', message: /psk.*key.*16 bytes/ });
  await t.rejects(connect('tcp://127.0.0.1:1/x', { psk: { identity: '', key: Buffer.alloc(16) } }), { code: 'NEXIO_ERR_INVALID_ARG', message: /psk.*identity/ });
  await t.rejects(connect('tcp://127.0.0.1:1/x', { psk: { identity: 'x'.repeat(256), key: Buffer.alloc(16) } }), { code: 'NEXIO_ERR_INVALID_ARG', message: /psk/ });
  await t.rejects(connect('tcp://127.0.0.1:1/x', { psk: 'secret' as never }), { code: 'NEXIO_ERR_INVALID_ARG', message: /psk/ });
  await t.rejects(createServer({ portals: ['tcp://127.0.0.1:0/x'], psk: { bob: short } }), { code: 'NEXIO_ERR_INVALID_ARG', message: /psk\['bob'\].*16 bytes/ });
  await t.rejects(createServer({ portals: ['tcp://127.0.0.1:0/x'], psk: { bob: 'not a key' as never } }), { code: 'NEXIO_ERR_INVALID_ARG', message: /psk\['bob'\]/ });
  await t.rejects(createServer({ portals: ['tcp://127.0.0.1:0/x'], psk: 42 as never }), { code: 'NEXIO_ERR_INVALID_ARG', message: /psk/ });
  // A HELLO with the nonce and identity must fit one control frame (4096 bytes).
  await t.rejects(connect('tcp://127.0.0.1:1/x', { attrs: Buffer.alloc(3900), psk: { identity: 'x'.repeat(200), key: Buffer.alloc(16) } }), { code: 'NEXIO_ERR_INVALID_ARG', message: /HELLO of 4\d{3} bytes/ });
});

t.test("an impostor server that does not know the key cannot open a keyed client's session, however it answers", async (t) => {
  const key = randomBytes(32);
  // A raw peer that speaks the handshake: CHALLENGE, then an ACCEPT with a proof it made up, or none.
  for (const how of ['a made-up proof', 'no proof (a server that ignores keys)', 'ACCEPT at once, no CHALLENGE'] as const) {
    const got: Buffer[] = [];
    const srv = net.createServer((c) => {
      let buf = Buffer.alloc(0);
      let stage = 0;
      c.on('error', () => undefined);
      c.on('data', (b) => {
        got.push(Buffer.from(b));
        buf = Buffer.concat([buf, b]);
        for (;;) {
          if (buf.length < 8 || buf.length < buf.readUInt32LE(4)) return;
          const f = buf.subarray(0, buf.readUInt32LE(4));
          buf = buf.subarray(f.length);
          const accept = (flags: number, proof?: Buffer) => W.encodeFrame({
            type: 'accept', flags, version: 1, sessionId: 77n, ackSeq: 0n, windowMsgs: 64, windowBytes: 65536, maxRequests: 32,
            keepaliveMs: 1000, resumeMs: 10000, key: randomBytes(16), portals: [], attrs: Buffer.alloc(0), ...(proof ? { proof } : {}),
          });
          if (stage === 0 && f[0] === W.T_HELLO) {
            stage = 1;
            if (how === 'ACCEPT at once, no CHALLENGE') c.write(accept(0));
            else c.write(W.encodeFrame({ type: 'challenge', flags: 0, sessionId: 77n, nonce: randomBytes(32) }));
          } else if (stage === 1 && f[0] === W.T_AUTH) {
            stage = 2;
            c.write(how === 'a made-up proof' ? accept(W.F_AUTH_ACCEPT, randomBytes(32)) : accept(0));
          }
        }
      });
    });
    await new Promise<void>((res) => srv.listen(0, '127.0.0.1', () => res()));
    t.teardown(() => new Promise<void>((res) => srv.close(() => res())));
    const port = (srv.address() as net.AddressInfo).port;
    const r = await refused(connect(`tcp://127.0.0.1:${port}/svc`, { psk: { identity: 'alice', key }, lanes: 1, timeout: 20000 }));
    t.equal(r.code, 'NEXIO_ERR_AUTH', `${how}: NEXIO_ERR_AUTH`);
    t.ok(r.ms < 5000, `${how}: within 5 s (${r.ms} ms)`);
    const sent = Buffer.concat(got);
    const frames: number[] = [];
    for (let p = 0; p + 8 <= sent.length; p += sent.readUInt32LE(p + 4)) frames.push(sent[p]);
    t.ok(frames.every((x) => x === W.T_HELLO || x === W.T_AUTH || x === W.T_ERROR), `${how}: the client sent nothing but its handshake (${frames.map((x) => x.toString(16))})`);
    t.notOk(leaks(sent, key), `${how}: and no run of the key`);
  }
});

t.test('a keyed session recorded on both contexts replays byte for byte: the nonces and proofs are inputs, the key is in neither file', async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nexio-psk-'));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const key = randomBytes(32);
  const srvRec = new Recorder();
  const sctx = new Context({ recorder: srvRec });
  t.teardown(() => sctx.close());
  serveContext(sctx, { handler: (r) => ({ header: r.header, data: r.data }) }, () => ({ accept: true }));
  sctx.setPsk({ rec: key });
  const portal = await sctx.listen('tcp://127.0.0.1:0/rec');
  const cliRec = new Recorder();
  const ctx = new Context({ recorder: cliRec });
  t.teardown(() => ctx.close());
  const s = await connect(portal, { context: ctx, lanes: 2, psk: { identity: 'rec', key } });
  for (let i = 0; i < 10; i++) await s.request(`h${i}`, 'x');
  for (let i = 0; i < 100 && s.stats().lanesUp < 2; i++) await new Promise((r) => setTimeout(r, 10));
  const bad = await refused(connect(portal, { context: ctx, lanes: 1, psk: { identity: 'rec', key: randomBytes(32) }, timeout: 20000 }));
  t.equal(bad.code, 'NEXIO_ERR_AUTH', 'a refused session is in the recordings too');
  await s.close();
  for (const [side, rec] of [['client', cliRec], ['server', srvRec]] as const) {
    const file = path.join(tmp, `${side}.nxrp`);
    rec.save(file);
    const r = await replay(file);
    t.ok(r.inputs > 10, `the ${side}'s recording replays (${r.inputs} inputs)`);
    t.notOk(leaks(fs.readFileSync(file), key), `the key is not in the ${side}'s`);
  }
});
