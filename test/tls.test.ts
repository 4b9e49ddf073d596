// tls:// over real sockets: what goes over the wire is encrypted (a relay of
// the test's own records both directions; the same relay over tcp:// shows
// the plaintext, so the check can fail), the server's certificate is
// checked (a client trusting another CA gets NEXIO_ERR_TRANSPORT at once and
// no handler runs), openssl s_client sees TLS 1.3, mutual TLS refuses a
// client without an acceptable certificate and shows onSession the
// subject of one with, every lane of a session (extra ones, reconnects) uses
// that session's own tls options, and bad options are typed errors.

import t from 'tap';
import * as net from 'node:net';
import * as nodeTls from 'node:tls';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { connect, createServer, Session, TransportError, SessionRequestInfo } from '../host/index';
import { installLaneControl } from './fixtures/lane-control';
import { certs, clientTls, serverTls, tlsDir } from './fixtures/tls';
import { startRelay, freePort } from './fixtures/relay';

const control = installLaneControl();

const secret = 'nexio-plaintext-marker-7d41c9';
// An ext payload (above the inline threshold) made of a recognisable text.
const bulk = Buffer.from(`${secret}-bulk|`.repeat(4096));

for (const scheme of ['tcp', 'tls'] as const) {
  t.test(`${scheme}: what a relay between client and server sees`, async (t) => {
    const port = await freePort();
    const relay = await startRelay(port);
    t.teardown(() => relay.close());
    const messages: string[] = [];
    const server = await createServer({
      portals: [`${scheme}://127.0.0.1:${port}/svc`],
      // Peers are told to come through the relay: every lane of the session passes it.
      advertise: [`${scheme}://127.0.0.1:${relay.port}/svc`],
      ...(scheme === 'tls' ? { tls: serverTls() } : {}),
      handler: (req) => ({ header: req.header, data: req.data }),
      onMessage: (_s, header) => { messages.push(header.toString()); },
    });
    t.teardown(() => server.close());
    t.equal(server.portals[0], `${scheme}://127.0.0.1:${relay.port}/svc`, 'the advertised portal is the public one');
    const s = await connect(server.portals[0], { lanes: 2, ...clientTls(server.portals[0]) });
    t.teardown(() => s.destroy());
    while (s.stats().lanesUp < 2) await new Promise((r) => s.once('lane-up', r));
    const r = await s.request(`${secret}-header`, `${secret}-data`);
    t.equal(r.data.toString(), `${secret}-data`, 'small request answered');
    const big = await s.request('bulk', bulk);
    t.ok(big.data.equals(bulk), 'ext payload echoed whole');
    await s.send(`${secret}-oneway`, 'x');
    while (messages.length < 1) await new Promise((r) => setTimeout(r, 10));
    await s.close();
    t.ok(relay.up.length >= 2, `both lanes went through the relay (${relay.up.length} connections)`);
    const wire = relay.captured();
    t.ok(wire.length > bulk.length, `the relay recorded the traffic (${wire.length} bytes)`);
    if (scheme === 'tcp') {
      t.ok(wire.includes(secret), 'tcp://: the plaintext is on the wire (the capture works)');
      t.ok(wire.includes(`${secret}-bulk|${secret}-bulk|`), 'tcp://: so is the ext payload');
    } else {
      t.notOk(wire.includes(secret), 'tls://: no plaintext of any message on the wire');
      t.notOk(wire.includes('-bulk|'), 'tls://: nor of the ext payload');
      t.ok(wire.includes(Buffer.from([0x16, 0x03, 0x01])), 'tls://: a TLS handshake record went by');
    }
  });
}

t.test('a client that trusts another CA: NEXIO_ERR_TRANSPORT within 5 s, no handler runs', async (t) => {
  let asked = 0, handled = 0;
  const server = await createServer({
    portals: ['tls://127.0.0.1:0/svc'], tls: serverTls(),
    onSession: () => { asked++; return 'accept'; },
    handler: () => { handled++; return 'no'; },
  });
  t.teardown(() => server.close());
  const uri = server.portals[0];
  for (const [what, tls] of [['another CA', { ca: certs.otherCa }], ['the system CAs', {}]] as const) {
    const t0 = Date.now();
    const e = await connect(uri, { lanes: 1, timeout: 60_000, tls }).catch((x) => x);
    const took = Date.now() - t0;
    t.type(e, TransportError, `${what}: a TransportError`);
    t.equal(e.code, 'NEXIO_ERR_TRANSPORT', `${what}: NEXIO_ERR_TRANSPORT`);
    t.match(e.message, uri, `${what}: names the URI`);
    t.match(e.message, "the server's certificate was not trusted", `${what}: says why`);
    t.match((e.cause as { code?: string }).code, /CERT|SIGNATURE|ISSUER/, `${what}: the TLS error is the cause (${(e.cause as { code?: string }).code})`);
    t.ok(took < 5000, `${what}: within 5 s (${took} ms), not at the connect timeout`);
  }
  t.equal(asked, 0, 'onSession never ran');
  t.equal(handled, 0, 'the handler never ran');
  // rejectUnauthorized: false is the application's choice, and node:tls honours it
  const s = await connect(uri, { lanes: 1, tls: { rejectUnauthorized: false } });
  t.equal((await s.request()).data.toString(), 'no', 'with rejectUnauthorized: false, it connects');
  await s.close();
});

/** Whether the socket closes within ms (false: the server kept it open). */
function closedWithin(sock: net.Socket, ms: number): Promise<boolean> {
  if (sock.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => { sock.destroy(); resolve(false); }, ms);
    sock.once('close', () => { clearTimeout(timer); resolve(true); });
  });
}

t.test('a tls client to a tcp:// portal, a tcp client to a tls:// portal', async (t) => {
  const plain = await createServer({ portals: ['tcp://127.0.0.1:0/svc'], handler: () => 'x' });
  t.teardown(() => plain.close());
  const wrong = `tls://${new URL(plain.portals[0]).host}/svc`;
  const e = await connect(wrong, { lanes: 1, timeout: 60_000, ...clientTls(wrong) }).catch((x) => x);
  t.equal(e.code, 'NEXIO_ERR_TRANSPORT', 'tls to a tcp portal: NEXIO_ERR_TRANSPORT');
  t.match(e.message, 'the peer does not speak TLS', e.message);
  const secure = await createServer({ portals: ['tls://127.0.0.1:0/svc'], tls: serverTls(), handler: () => 'y' });
  t.teardown(() => secure.close());
  const e2 = await connect(`tcp://${new URL(secure.portals[0]).host}/svc`, { lanes: 1, timeout: 1000 }).catch((x) => x);
  t.match(e2.code, /^NEXIO_ERR_(TRANSPORT|PROTOCOL|TIMEOUT)$/, `tcp to a tls portal fails typed: ${e2.code}`);
  // a hostile peer sending anything closes only its connection
  const raw = net.connect(Number(new URL(secure.portals[0]).port), '127.0.0.1');
  raw.on('error', () => undefined);
  raw.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  t.ok(await closedWithin(raw, 5000), 'the server closed a connection that does not speak TLS, within 5 s');
  // nor does a peer that completes the TLS handshake and then sends garbage
  const hostile = nodeTls.connect({ port: Number(new URL(secure.portals[0]).port), host: '127.0.0.1', ca: certs.ca });
  hostile.on('error', () => undefined);
  hostile.resume(); // read what the server answers, so its end is seen
  await new Promise((r) => hostile.once('secureConnect', r));
  hostile.write(Buffer.alloc(4096, 0xee));
  t.ok(await closedWithin(hostile, 5000), 'the server closed the hostile TLS connection within 5 s');
  const s = await connect(secure.portals[0], { lanes: 1, ...clientTls(secure.portals[0]) });
  t.equal((await s.request()).data.toString(), 'y', 'the server still serves');
  t.match((await secure.stats()).totals, { protocolErrors: 1 }, 'and counted the garbage as a protocol error');
  await s.close();
});

t.test('openssl s_client reports TLSv1.3 on a tls:// portal; TLS 1.2 is refused', async (t) => {
  const has = spawnSync('openssl', ['version']);
  if (has.error) {
    if (process.env.CI) t.fail(`openssl is missing (${has.error.message}): CI installs it (.ci/run), this test needs the openssl CLI`);
    else t.plan(0, `openssl is not installed here (${has.error.message}); CI runs this test`);
    return;
  }
  const server = await createServer({ portals: ['tls://127.0.0.1:0/svc'], tls: serverTls(), handler: () => 'x' });
  t.teardown(() => server.close());
  const port = new URL(server.portals[0]).port;
  const run = (version: string) => new Promise<{ out: string; code: number | null }>((resolve) => {
    const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, version, '-CAfile', path.join(tlsDir, 'ca.crt')],
      { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (c) => { out += c; });
    p.stderr.on('data', (c) => { out += c; });
    const timer = setTimeout(() => p.kill('SIGKILL'), 10_000);
    p.on('close', (code) => { clearTimeout(timer); resolve({ out, code }); });
    // Say nothing and hang up once the handshake had time: s_client prints its summary and exits.
    setTimeout(() => p.stdin.end(), 500);
  });
  const v13 = await run('-tls1_3');
  t.match(v13.out, /New, TLSv1\.3, Cipher is TLS_/, 's_client -tls1_3: a TLS 1.3 session');
  t.match(v13.out, /Verify return code: 0 \(ok\)/, 'the certificate verifies against the test CA');
  const v12 = await run('-tls1_2');
  t.notMatch(v12.out, /New, TLSv1\.2, Cipher is/, 's_client -tls1_2: no TLS 1.2 session (TLS 1.3 is the default minimum)');
  t.match(v12.out, /alert|error|no protocols/i, `s_client -tls1_2 is refused`);
});

t.test('mutual TLS: a client without a certificate is refused; with one, onSession sees its subject', async (t) => {
  const infos: SessionRequestInfo[] = [];
  let handled = 0;
  const server = await createServer({
    portals: ['tls://127.0.0.1:0/svc'], tls: serverTls(true),
    onSession: (info) => { infos.push(info); return 'accept'; },
    handler: (req) => { handled++; return req.data; },
  });
  t.teardown(() => server.close());
  const uri = server.portals[0];
  const t0 = Date.now();
  const e = await connect(uri, { lanes: 1, timeout: 60_000, ...clientTls(uri) }).catch((x) => x);
  t.type(e, TransportError, 'no certificate: a TransportError');
  t.equal(e.code, 'NEXIO_ERR_TRANSPORT');
  t.match(e.message, uri, 'names the URI');
  t.match(e.message, 'refused our certificate', 'says why');
  t.ok(Date.now() - t0 < 5000, `at once (${Date.now() - t0} ms)`);
  // a certificate from a CA the server does not accept
  const e2 = await connect(uri, { lanes: 1, timeout: 60_000, tls: { ca: certs.ca, cert: certs.serverCert, key: certs.serverKey } }).catch((x) => x);
  t.equal(e2.code, 'NEXIO_ERR_TRANSPORT', `a certificate not for client auth is refused: ${e2.message.split('\n')[0]}`);
  t.equal(infos.length, 0, 'onSession never ran for the refused clients');

  const s = await connect(uri, { lanes: 3, ...clientTls(uri, { cert: certs.clientCert, key: certs.clientKey }) });
  t.teardown(() => s.destroy());
  while (s.stats().lanesUp < 3) await new Promise((r) => s.once('lane-up', r));
  t.equal(infos.length, 1, 'onSession ran once');
  t.match(infos[0].tls, { protocol: 'TLSv1.3', authorized: true, subject: { CN: 'nexio test client', O: 'nexio tests' }, issuer: { CN: 'nexio test CA' } },
    'onSession sees the client certificate');
  t.match(infos[0].tls?.fingerprint256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/, 'and its fingerprint');
  const big = Buffer.alloc(1 << 20, 0x5a);
  t.ok((await s.request('big', big)).data.equals(big), '1 MiB echoed');
  t.equal(handled, 1);
});

t.test("each session's lanes use its own tls options, also after they drop (shared context)", async (t) => {
  const server = await createServer({ portals: ['tls://127.0.0.1:0/svc'], tls: serverTls(true), handler: (req) => req.data });
  t.teardown(() => server.close());
  const uri = server.portals[0];
  const withCert = { ...clientTls(uri, { cert: certs.clientCert, key: certs.clientKey }), lanes: 2, resumeTimeout: 15000 };
  const a = await connect(uri, withCert);
  t.teardown(() => a.destroy());
  // same core settings: the same shared context as a, other tls options
  const b = await connect(uri, { ...clientTls(uri), lanes: 2, resumeTimeout: 15000 }).catch((x) => x);
  t.equal(b.code, 'NEXIO_ERR_TRANSPORT', 'a session without a certificate is refused next to one with');
  const c = await connect(uri, { lanes: 2, resumeTimeout: 15000, tls: { ca: certs.otherCa } }).catch((x) => x);
  t.match(c.message, 'not trusted', 'and one trusting another CA');
  while (a.stats().lanesUp < 2) await new Promise((r) => a.once('lane-up', r));
  for (let round = 0; round < 3; round++) {
    const dropped = control.drop('connected');
    t.ok(dropped >= 1, `round ${round}: lanes dropped (${dropped})`);
    t.equal((await a.request('x', `r${round}`)).data.toString(), `r${round}`, `round ${round}: the session resumed and answers`);
    while (a.stats().lanesUp < 2) await new Promise((r) => a.once('lane-up', r));
  }
  const lanes = [...control.accepted];
  t.ok(lanes.length >= 2 && lanes.every((l) => (l.tls?.subject as { CN?: string } | undefined)?.CN === 'nexio test client'),
    `every lane the server holds carries the client certificate (${lanes.length})`);
});

t.test('tls:// with threads: sessions placed on the workers stay on tls', async (t) => {
  const server = await createServer({
    portals: ['tls://127.0.0.1:0/svc'], tls: serverTls(), threads: 2,
    handler: path.join(__dirname, 'fixtures', 'thread-handler.js'),
  });
  t.teardown(() => server.close());
  t.ok(server.contexts.every((c) => c.every((p) => p.startsWith('tls://'))), 'every context binds a tls portal');
  const sessions: Session[] = [];
  for (let i = 0; i < 2; i++) sessions.push(await connect(server.portals[0], { lanes: 2, ...clientTls(server.portals[0]) }));
  t.teardown(() => Promise.all(sessions.map((s) => s.destroy())));
  const where = new Set<number>();
  for (const s of sessions) where.add(JSON.parse((await s.request('w')).data.toString()).threadId);
  t.equal(where.size, 2, 'the two sessions run on two workers');
  const e = await createServer({ portals: ['tls://127.0.0.1:0/svc'], threads: 1, handler: path.join(__dirname, 'fixtures', 'thread-handler.js'),
    tls: { ...serverTls(), SNICallback: () => undefined } }).catch((x) => x);
  t.equal(e.code, 'NEXIO_ERR_INVALID_ARG', 'with threads, tls options that cannot be copied to a worker are refused');
  t.match(e.message, 'tls');
});

t.test('bad tls options are typed errors naming the field', async (t) => {
  const noTls = await createServer({ portals: ['tls://127.0.0.1:0/svc'] }).catch((x) => x);
  t.equal(noTls.code, 'NEXIO_ERR_INVALID_ARG', 'a tls portal without tls');
  t.match(noTls.message, /tls must be given/);
  for (const bad of ['key', 5, null, [1]]) {
    const e = await createServer({ portals: ['tls://127.0.0.1:0/svc'], tls: bad as never }).catch((x) => x);
    t.equal(e.code, 'NEXIO_ERR_INVALID_ARG', `createServer tls: ${JSON.stringify(bad)}`);
    t.match(e.message, 'tls must be');
    const c = await connect('tls://127.0.0.1:1/svc', { tls: bad as never }).catch((x) => x);
    t.equal(c.code, 'NEXIO_ERR_INVALID_ARG', `connect tls: ${JSON.stringify(bad)}`);
    t.match(c.message, 'tls must be');
  }
  const empty = await createServer({ portals: ['tls://127.0.0.1:0/svc'], tls: {} }).catch((x) => x);
  t.equal(empty.code, 'NEXIO_ERR_INVALID_ARG', 'tls without a certificate');
  t.match(empty.message, "tls must hold the server's certificate");
  const garbage = await createServer({ portals: ['tls://127.0.0.1:0/svc'], tls: { key: 'not a key', cert: 'not a cert' } }).catch((x) => x);
  t.equal(garbage.code, 'NEXIO_ERR_INVALID_ARG', `key material node:tls refuses: ${garbage.message}`);
  const plain = await connect('tcp://127.0.0.1:1/svc', { tls: { ca: certs.ca } }).catch((x) => x);
  t.equal(plain.code, 'NEXIO_ERR_INVALID_ARG', 'tls options with a tcp:// URI (they would not encrypt anything)');
  const noPort = await connect('tls://127.0.0.1/svc').catch((x) => x);
  t.equal(noPort.code, 'NEXIO_ERR_INVALID_ARG', 'a tls URI without a port');
  t.match(noPort.message, 'tls portal needs host and port');
});

t.test('the CLI: serve and ping over tls:// with certificate files', async (t) => {
  const cli = path.join(__dirname, '..', 'host', 'cli.js');
  const file = (f: string) => path.join(tlsDir, f);
  const run = (args: string[]) => new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
    const p = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (c) => { out += c; });
    p.stderr.on('data', (c) => { err += c; });
    const timer = setTimeout(() => p.kill('SIGKILL'), 30_000);
    p.on('close', (code) => { clearTimeout(timer); resolve({ code, out, err }); });
  });
  const srv = spawn(process.execPath, [cli, 'serve', 'tls://127.0.0.1:0/echo', '--cert', file('server.crt'), '--key', file('server.key'), '--ca', file('ca.crt')],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((r) => srv.once('close', r));
  t.teardown(async () => { srv.kill('SIGTERM'); await exited; });
  const uri = await new Promise<string>((resolve, reject) => {
    let out = '';
    srv.stdout.on('data', (c) => { out += c; const m = /serving (tls:\/\/\S+)/.exec(out); if (m) resolve(m[1]); });
    srv.once('close', (code) => reject(new Error(`nexio serve exited (${code}): ${out}`)));
  });
  const ok = await run(['ping', uri, '--count', '20', '--ca', file('ca.crt'), '--cert', file('client.crt'), '--key', file('client.key')]);
  t.equal(ok.code, 0, `ping with a client certificate: ${ok.err}`);
  t.match(ok.out, `ping ${uri}: 20 requests`);
  const refused = await run(['ping', uri, '--count', '1', '--ca', file('ca.crt')]);
  t.equal(refused.code, 1, 'ping without one fails');
  t.match(refused.err, /NEXIO_ERR_TRANSPORT: cannot connect to .* refused our certificate/);
  const noCert = await run(['serve', 'tls://127.0.0.1:0/echo']);
  t.equal(noCert.code, 2, 'serve tls:// without --cert and --key is a usage error');
  t.match(noCert.err, 'needs --cert and --key');
  const plain = await run(['ping', 'tcp://127.0.0.1:1/x', '--ca', file('ca.crt')]);
  t.equal(plain.code, 2, '--ca with a tcp:// URI is a usage error');
});
