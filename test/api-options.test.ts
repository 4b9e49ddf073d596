// Every option of connect(), createServer(), request(), send(), close() and
// Server.close() is checked (type, range, unknown keys): a bad one is
// NEXIO_ERR_INVALID_ARG naming the field and what it accepts, before any
// work is done; no plain TypeError escapes.

import t, { Test } from 'tap';
import { connect, createServer, InvalidArgumentError } from '../host/index';
import type { Session, Server } from '../host/index';

// Deliberately wrong options: the types would refuse them.
type Any = any; // eslint-disable-line @typescript-eslint/no-explicit-any

async function invalid(t: Test, p: Promise<unknown> | (() => unknown), field: RegExp, what: string): Promise<void> {
  const e = await (typeof p === 'function' ? Promise.resolve().then(p) : p).then(() => undefined, (e) => e);
  t.type(e, InvalidArgumentError, `${what}: NEXIO_ERR_INVALID_ARG`);
  t.equal(e?.code, 'NEXIO_ERR_INVALID_ARG', what);
  t.match(e?.message, field, `${what}: ${e?.message}`);
}

t.test('connect()', async (t) => {
  for (const [opts, field] of [
    [{ timeout: -1 }, /timeout must be a number of ms from 1 to 2147483647, not -1/],
    [{ timeout: 'abc' }, /timeout must be .*not 'abc'/],
    [{ timeout: NaN }, /timeout must be .*not NaN/],
    [{ timeout: Infinity }, /timeout/],
    [{ keepaliveMs: -1 }, /keepaliveMs must be an integer/],
    [{ maxQueued: -1 }, /maxQueued must be an integer >= 0/],
    [{ lanes: 0 }, /lanes must be an integer in 1\.\.8/],
    [{ lanes: 9 }, /lanes/],
    [{ resumeTimeout: 0 }, /resumeTimeout/],
    [{ credits: { bytes: 1000 } }, /credits\.bytes must be an integer in 32768\.\.67108864, not 1000/],
    [{ credits: { messages: 1.5 } }, /credits\.messages/],
    [{ credits: { windows: 3 } }, /unknown option 'credits\.windows' \(accepts: credits\.messages, credits\.bytes, credits\.requests\)/],
    [{ credits: 5 }, /credits must be an object/],
    [{ attrs: 'x' }, /attrs must be a Uint8Array/],
    [{ resource: 5 }, /resource must be a string/],
    [{ views: 1 }, /views must be true or false/],
    [{ context: {} }, /context must be a Context/],
    [{ core: { windowMsgs: 1000 } }, /core\.windowMsgs must be a power of two in 16\.\.65536, not 1000/],
    [{ core: { bogus: 1 } }, /unknown option 'core\.bogus'/],
    [{ timout: 5 }, /unknown option 'timout' \(accepts: lanes, timeout/],
  ] as [Any, RegExp][]) {
    await invalid(t, connect('mem://nobody/svc', opts), field, `connect ${JSON.stringify(opts)}`);
  }
  await invalid(t, connect('not a uri'), /'not a uri' is not a URI/, "connect('not a uri')");
  await invalid(t, connect(42 as Any), /uri must be a string/, 'connect(42)');
  await invalid(t, connect('mem://nobody/svc', 'fast' as Any), /options must be an object/, "connect(uri, 'fast')");
  await invalid(t, connect('gopher://x/y'), /no transport for gopher:/, 'an unknown scheme');
});

t.test('createServer()', async (t) => {
  await invalid(t, createServer(undefined as Any), /createServer: options must be an object/, 'createServer()');
  for (const [opts, field] of [
    [{}, /portals must be a non-empty array of URI strings/],
    [{ portals: [] }, /portals must be a non-empty array/],
    [{ portals: 'mem://x/y' }, /portals must be a non-empty array/],
    [{ portals: ['not a uri'] }, /'not a uri' is not a URI/],
    [{ portals: ['mem://o1/s'], threads: -1 }, /threads must be an integer in 0\.\.256/],
    [{ portals: ['mem://o1/s'], handler: 42 }, /handler must be a function or a string/],
    [{ portals: ['mem://o1/s'], balance: 'random' }, /balance must be 'round-robin' or 'hash' or a function/],
    [{ portals: ['mem://o1/s'], admission: { handshakeMs: -1 } }, /admission\.handshakeMs must be an integer >= 1/],
    [{ portals: ['mem://o1/s'], admission: { maxHandshake: 3 } }, /unknown option 'admission\.maxHandshake'/],
    [{ portals: ['mem://o1/s'], core: { maxSessions: 0 } }, /core\.maxSessions must be an integer in 1\.\.16384/],
    [{ portals: ['mem://o1/s'], advertise: ['mem://a/b', 'mem://c/d'] }, /advertise must name one URI per portal/],
    [{ portals: ['mem://o1/s'], onsession: () => 'accept' }, /unknown option 'onsession'/],
  ] as [Any, RegExp][]) {
    await invalid(t, createServer(opts), field, `createServer ${JSON.stringify(opts)}`);
  }
});

t.test('request(), send(), close(), tryRequest(), Server.close()', async (t) => {
  const server: Server = await createServer({ portals: ['mem://opts/svc'], handler: () => 'ok' });
  t.teardown(() => server.close());
  const s: Session = await connect('mem://opts/svc');
  t.teardown(() => s.destroy());
  for (const [opts, field] of [
    [{ timeout: -1 }, /request: timeout must be a number of ms from 0 to 2147483647 \(0: none\), not -1/],
    [{ timeout: 'abc' }, /request: timeout must be/],
    [{ timeout: NaN }, /request: timeout must be .*NaN/],
    [{ signal: {} }, /request: signal must be an AbortSignal, not a plain object/],
    [{ receipt: 'yes' }, /receipt must be true or false or a function/],
    [{ timout: 5 }, /request: unknown option 'timout'/],
  ] as [Any, RegExp][]) {
    await invalid(t, s.request('h', 'd', opts), field, `request ${JSON.stringify(opts)}`);
  }
  await invalid(t, s.request('h', 42 as Any), /Uint8Array \(Buffer\) or a string/, 'request data 42');
  await invalid(t, s.send('h', 'd', { receipt: 1 } as Any), /send: receipt must be true or false/, 'send receipt 1');
  await invalid(t, s.send('h', 'd', { ack: true } as Any), /send: unknown option 'ack'/, 'send unknown');
  await invalid(t, () => s.tryRequest(Buffer.from('h'), Buffer.from('d'), () => undefined, -5), /tryRequest: timeoutMs/, 'tryRequest -5');
  await invalid(t, s.close({ timeout: -1 }), /close: timeout must be a number of ms from 0 to 2147483647, not -1/, 'close -1');
  await invalid(t, s.close({ timeot: 1 } as Any), /close: unknown option 'timeot'/, 'close unknown');
  await invalid(t, server.close({ timeout: 'soon' } as Any), /Server\.close: timeout must be/, 'Server.close soon');
  t.equal((await s.request('h', 'd')).data.toString(), 'ok', 'the session still works after its refused calls');
});
