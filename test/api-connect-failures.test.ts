// connect() says what went wrong, at once: an address that refuses, cannot
// be resolved or that nobody listens on is NEXIO_ERR_TRANSPORT naming the
// URI, with the system error as cause (not NEXIO_ERR_TIMEOUT at the
// deadline); a peer that does not speak nexio is NEXIO_ERR_PROTOCOL.

import t from 'tap';
import * as http from 'node:http';
import * as net from 'node:net';
import { connect, NexioError, TransportError, ProtocolError } from '../host/index';

async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

t.test('a closed port: NEXIO_ERR_TRANSPORT naming ECONNREFUSED and the URI within 2 s', async (t) => {
  const uri = `tcp://127.0.0.1:${await closedPort()}/svc`;
  const t0 = Date.now();
  const e = await connect(uri).catch((e) => e);
  const took = Date.now() - t0;
  t.type(e, TransportError);
  t.equal(e.code, 'NEXIO_ERR_TRANSPORT');
  t.match(e.message, 'ECONNREFUSED');
  t.match(e.message, uri, 'names the URI');
  t.equal((e.cause as { code?: string }).code, 'ECONNREFUSED', 'the system error is the cause');
  t.ok(took < 2000, `within 2 s (${took} ms)`);
});

t.test('the same with one lane and a long timeout: not the timeout', async (t) => {
  const uri = `tcp://127.0.0.1:${await closedPort()}/svc`;
  const e = await connect(uri, { lanes: 1, timeout: 60_000 }).catch((e) => e);
  t.equal(e.code, 'NEXIO_ERR_TRANSPORT');
});

t.test('an unresolvable host: NEXIO_ERR_TRANSPORT with the resolver error', async (t) => {
  const e = await connect('tcp://nexio-test.invalid:7000/svc', { timeout: 5000 }).catch((e) => e);
  t.equal(e.code, 'NEXIO_ERR_TRANSPORT', e.message);
  t.match(e.message, 'tcp://nexio-test.invalid:7000/svc');
  t.match((e.cause as { code?: string }).code, /^(ENOTFOUND|EAI_AGAIN|EAI_FAIL)$/, 'the resolver error is the cause');
});

t.test('mem:// with nobody bound: NEXIO_ERR_TRANSPORT at once', async (t) => {
  const e = await connect('mem://nobody-here/svc').catch((e) => e);
  t.equal(e.code, 'NEXIO_ERR_TRANSPORT');
  t.match(e.message, 'mem://nobody-here/svc');
});

t.test('an HTTP server: NEXIO_ERR_PROTOCOL, not a timeout', async (t) => {
  const srv = http.createServer((_, res) => res.end('hello'));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => srv.close(() => r())));
  const uri = `tcp://127.0.0.1:${(srv.address() as net.AddressInfo).port}/svc`;
  const t0 = Date.now();
  const e = await connect(uri, { timeout: 5000 }).catch((e) => e);
  t.type(e, ProtocolError);
  t.equal(e.code, 'NEXIO_ERR_PROTOCOL');
  t.match(e.message, `${uri} does not speak nexio`);
  t.ok(Date.now() - t0 < 2000, 'at once');
});

t.test('a peer that accepts and says nothing: NEXIO_ERR_TIMEOUT after timeout, naming the URI', async (t) => {
  const socks: net.Socket[] = [];
  const srv = net.createServer((s) => socks.push(s));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.teardown(() => { for (const s of socks) s.destroy(); return new Promise<void>((r) => srv.close(() => r())); });
  const uri = `tcp://127.0.0.1:${(srv.address() as net.AddressInfo).port}/svc`;
  const e = await connect(uri, { timeout: 300 }).catch((e) => e);
  t.type(e, NexioError);
  t.equal(e.code, 'NEXIO_ERR_TIMEOUT');
  t.match(e.message, `${uri} could not be established in 300 ms`);
});
