// tls:// and pre-shared keys together, as docs/security.md advises between
// hosts: both gates hold on every lane (two lanes each prove the key),
// onSession sees the certificate and the identity, and a wrong key is
// refused over an encrypted lane too.

import t from 'tap';
import { connect, createServer, Context, NexioError } from '../host/index';
import { serverTls, clientTls } from './fixtures/tls';

t.test('psk over tls://: two lanes prove the key; a wrong key is NEXIO_ERR_AUTH; onSession sees both', async (t) => {
  const key = Buffer.alloc(32, 7);
  const seen: { identity?: string; tls: boolean }[] = [];
  let handled = 0;
  const server = await createServer({
    portals: ['tls://127.0.0.1:0/svc'], tls: serverTls(), psk: { app: key },
    handler: (req) => { handled++; return req.data; },
    onSession: (info) => { seen.push({ identity: info.identity, tls: info.tls !== undefined }); return 'accept'; },
  });
  t.teardown(() => server.close({ timeout: 100 }));
  const ctx = new Context();
  t.teardown(() => ctx.close());
  const s = await connect(server.portals[0], { context: ctx, lanes: 2, psk: { identity: 'app', key }, ...clientTls(server.portals[0], { servername: 'localhost' }) });
  for (let i = 0; i < 50 && s.stats().lanesUp < 2; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(s.stats().lanesUp, 2, 'both lanes up (each proved the key)');
  t.equal((await s.request('h', 'over tls with psk')).data.toString(), 'over tls with psk');
  t.same(seen, [{ identity: 'app', tls: true }], 'onSession saw the identity and the certificate info');
  const before = handled;
  const e = await connect(server.portals[0], { context: ctx, psk: { identity: 'app', key: Buffer.alloc(32, 8) }, ...clientTls(server.portals[0], { servername: 'localhost' }) })
    .then(() => undefined, (x: NexioError) => x);
  t.equal(e?.code, 'NEXIO_ERR_AUTH', 'a wrong key over tls:// is refused');
  t.equal(handled, before, 'and no handler ran for it');
  t.equal(seen.length, 1, 'nor onSession');
  await s.close();
});
