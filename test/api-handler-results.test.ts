// What the requester gets from the server's application: a handler's reply
// that is not bytes is an error to the requester (NEXIO_ERR_REMOTE naming
// it), not an empty reply; a rejection carries the server's text (message)
// and its code (reason); a one-way message to a session with no 'message'
// listener is dropped and counted (messagesDropped); with views its credit
// comes back (a server without onMessage refuses them: api-oneway-refused).

import t from 'tap';
import { connect, createServer, RemoteError, RejectedError, Code } from '../host/index';
import type { HandlerResult } from '../host/index';

t.test('a handler that returns a number, a boolean, an array: NEXIO_ERR_REMOTE', async (t) => {
  const answers: Record<string, unknown> = { n: 42, b: true, a: [1, 2], u: undefined, s: 'text', o: { header: 'h', data: 'd' } };
  const server = await createServer({
    portals: ['mem://results/svc'],
    handler: (req) => answers[req.header.toString()] as HandlerResult,
  });
  t.teardown(() => server.close());
  const s = await connect('mem://results/svc');
  t.teardown(() => s.close());
  const e = await s.request('n').catch((e) => e);
  t.type(e, RemoteError);
  t.equal(e.code, 'NEXIO_ERR_REMOTE');
  t.match(e.message, 'the handler returned a number (42); a reply is a Uint8Array, a string, { header, data } or nothing');
  t.match(await s.request('b').catch((e) => e), { code: 'NEXIO_ERR_REMOTE', message: /returned a boolean/ });
  t.match(await s.request('a').catch((e) => e), { code: 'NEXIO_ERR_REMOTE', message: /returned an array/ });
  t.equal((await s.request('u')).data.length, 0, 'nothing is an empty reply');
  t.equal((await s.request('s')).data.toString(), 'text');
  const r = await s.request('o');
  t.same([r.header.toString(), r.data.toString()], ['h', 'd']);
});

t.test("RejectedError: the server's text as message, its code as reason", async (t) => {
  const server = await createServer({
    portals: ['mem://rejects/svc'],
    onSession: (info) => (info.resource === '/text' ? { reject: 'come back tomorrow' } : { reject: 42 }),
  });
  t.teardown(() => server.close());
  const a = await connect('mem://rejects/text').catch((e) => e);
  t.type(a, RejectedError);
  t.equal(a.message, 'come back tomorrow');
  t.equal(a.reason, Code.REJECTED, 'a text rejection has reason 7 (Code.REJECTED)');
  const b = await connect('mem://rejects/number').catch((e) => e);
  t.equal(b.reason, 42, 'a numeric rejection is the reason');
  t.match(b.message, /session rejected: 42/);
});

t.test('one-way messages to a client session with no message listener are dropped and counted', async (t) => {
  for (const views of [false, true]) {
    const name = `mem://no-receiver-${views}/svc`;
    const server = await createServer({ portals: [name], handler: () => 'ok' });
    const sent = new Promise<void>((resolve, reject) => server.once('session', (peer) => {
      // More messages than the window: with views, each must be released.
      (async () => { for (let i = 0; i < 40; i++) await peer.send('m', 'x'); })().then(resolve, reject);
    }));
    const s = await connect(name, { credits: { messages: 16 }, views });
    await sent;
    t.equal((await s.request('r')).data.toString(), 'ok', `views ${views}: the session goes on (credits came back)`);
    t.equal(s.stats().messagesDropped, 40, `views ${views}: 40 dropped`);
    await s.close();
    await server.close();
  }
});
