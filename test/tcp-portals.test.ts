// tcp:// and tls:// portals: the bound port is filled in, a server may bind
// several portals and a session's lanes spread over the ones ACCEPT names,
// and a server that cannot bind all its portals fails without keeping any.
// A server with both tcp:// and tls:// portals keeps each session on the
// transport it came over.

import t from 'tap';
import { connect, createServer, channels, LaneMessage } from '../host/index';
import { installLaneControl } from './fixtures/lane-control';
import { clientTls, serverTls, streamSchemes } from './fixtures/tls';
import { freePort } from './fixtures/relay';

const control = installLaneControl();

for (const scheme of streamSchemes) {
  const tls = scheme === 'tls' ? { tls: serverTls() } : {};

  t.test(`${scheme}: several portals: ports filled in, lanes spread over them`, async (t) => {
    const server = await createServer({ portals: [`${scheme}://127.0.0.1:0/a`, `${scheme}://127.0.0.1:0/b`], handler: () => 'hi', ...tls });
    t.teardown(() => server.close());
    t.equal(server.portals.length, 2);
    for (const p of server.portals) t.match(p, new RegExp(`^${scheme}://127\\.0\\.0\\.1:[1-9]\\d*/[ab]$`), `${p}: the bound port is filled in`);
    const s = await connect(server.portals[1], { lanes: 4, ...clientTls(server.portals[1]) });
    t.teardown(() => s.destroy());
    while (s.stats().lanesUp < 4) await new Promise((r) => s.once('lane-up', r));
    const ports = new Set([...control.connected].map((l) => l.remote.split(':').pop()));
    t.same([...ports].sort(), server.portals.map((p) => new URL(p).port).sort(), "the session's lanes use both portals");
    t.equal((await s.request()).data.toString(), 'hi');
    if (scheme === 'tls') t.ok([...control.accepted].every((l) => l.tls?.protocol === 'TLSv1.3'), 'every lane is TLS 1.3');
  });

  t.test(`${scheme}: a portal that cannot be bound: createServer fails and keeps nothing`, async (t) => {
    const taken = await createServer({ portals: [`${scheme}://127.0.0.1:0/x`], ...tls });
    t.teardown(() => taken.close());
    const port = await freePort();
    const e = await createServer({ portals: [`${scheme}://127.0.0.1:${port}/ok`, taken.portals[0]], ...tls }).catch((x) => x);
    t.match(e, { code: 'NEXIO_ERR_TRANSPORT', cause: { code: 'EADDRINUSE' } }, 'rejected with a typed error, the reason its cause');
    const again = await createServer({ portals: [`${scheme}://127.0.0.1:${port}/ok`], ...tls }).catch((x) => x);
    t.match(again, { portals: [`${scheme}://127.0.0.1:${port}/ok`] }, 'the portal it did bind was released');
    if (typeof again.close === 'function') await again.close();
  });
}

t.test('tcp:// and tls:// portals on one server: each session keeps to its transport', async (t) => {
  const server = await createServer({
    portals: ['tcp://127.0.0.1:0/svc', 'tls://127.0.0.1:0/svc', 'tcp://127.0.0.1:0/svc', 'tls://127.0.0.1:0/svc'], handler: () => 'hi', tls: serverTls(),
  });
  t.teardown(() => server.close());
  const before = new Set(control.accepted);
  const uris: string[] = [];
  const heard = (m: unknown) => { if ((m as LaneMessage).uri) uris.push((m as LaneMessage).uri!); };
  channels.lane.subscribe(heard);
  const secure = await connect(server.portals[1], { lanes: 4, ...clientTls(server.portals[1]) });
  t.teardown(() => secure.destroy());
  while (secure.stats().lanesUp < 4) await new Promise((r) => secure.once('lane-up', r));
  const tlsLanes = [...control.accepted].filter((l) => !before.has(l));
  t.equal(tlsLanes.length, 4, 'four lanes accepted');
  t.ok(tlsLanes.every((l) => l.tls?.protocol === 'TLSv1.3'), "every lane of the tls session is TLS (ACCEPT named only the tls portals)");
  const tlsPorts = new Set([server.portals[1], server.portals[3]].map((p) => new URL(p).port));
  const used = new Set([...control.connected].map((l) => l.remote.split(':').pop()));
  t.same([...used].filter((p) => !tlsPorts.has(p!)), [], 'no lane went to a tcp portal');
  channels.lane.unsubscribe(heard);
  t.same(uris.filter((u) => !u.startsWith('tls:')), [], 'no lane of the tls session was even tried on a tcp portal');
  const plain = await connect(server.portals[0], { lanes: 4 });
  t.teardown(() => plain.destroy());
  while (plain.stats().lanesUp < 4) await new Promise((r) => plain.once('lane-up', r));
  t.equal(plain.stats().lanesUp, 4, 'the tcp session gets its four lanes on the tcp portals');
  t.equal((await secure.request()).data.toString(), 'hi');
  t.equal((await plain.request()).data.toString(), 'hi');
});

t.test('schemes without a transport are refused at once', async (t) => {
  t.match(await createServer({ portals: ['udp://127.0.0.1:0/x'] }).catch((e) => e), { code: 'NEXIO_ERR_INVALID_ARG' }, 'createServer');
  t.match(await createServer({ portals: [] }).catch((e) => e), { code: 'NEXIO_ERR_INVALID_ARG' }, 'createServer without portals');
});
