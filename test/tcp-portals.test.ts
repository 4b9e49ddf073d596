// tcp:// portals: the bound port is filled in, a server may bind several
// portals and a session's lanes spread over the ones ACCEPT names, and a
// server that cannot bind all its portals fails without keeping any.

import t from 'tap';
import * as net from 'node:net';
import { connect, createServer } from '../host/index';
import { installLaneControl } from './fixtures/lane-control';

const control = installLaneControl();

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

t.test('several portals: ports filled in, lanes spread over them', async (t) => {
  const server = await createServer({ portals: ['tcp://127.0.0.1:0/a', 'tcp://127.0.0.1:0/b'], handler: () => 'hi' });
  t.teardown(() => server.close());
  t.equal(server.portals.length, 2);
  for (const p of server.portals) t.match(p, /^tcp:\/\/127\.0\.0\.1:[1-9]\d*\/[ab]$/, `${p}: the bound port is filled in`);
  const s = await connect(server.portals[1], { lanes: 4 });
  t.teardown(() => s.destroy());
  while (s.stats().lanesUp < 4) await new Promise((r) => s.once('lane-up', r));
  const ports = new Set([...control.connected].map((l) => l.remote.split(':').pop()));
  t.same([...ports].sort(), server.portals.map((p) => new URL(p).port).sort(), "the session's lanes use both portals");
  t.equal((await s.request()).data.toString(), 'hi');
});

t.test('a portal that cannot be bound: createServer fails and keeps nothing', async (t) => {
  const taken = await createServer({ portals: ['tcp://127.0.0.1:0/x'] });
  t.teardown(() => taken.close());
  const port = await freePort();
  const e = await createServer({ portals: [`tcp://127.0.0.1:${port}/ok`, taken.portals[0]] }).catch((x) => x);
  t.match(e, { code: 'NEXIO_ERR_TRANSPORT', cause: { code: 'EADDRINUSE' } }, 'rejected with a typed error, the reason its cause');
  const again = await createServer({ portals: [`tcp://127.0.0.1:${port}/ok`] }).catch((x) => x);
  t.match(again, { portals: [`tcp://127.0.0.1:${port}/ok`] }, 'the portal it did bind was released');
  if (typeof again.close === 'function') await again.close();
});

t.test('schemes without a transport are refused at once', async (t) => {
  t.match(await createServer({ portals: ['udp://127.0.0.1:0/x'] }).catch((e) => e), { code: 'NEXIO_ERR_INVALID_ARG' }, 'createServer');
  t.match(await createServer({ portals: [] }).catch((e) => e), { code: 'NEXIO_ERR_INVALID_ARG' }, 'createServer without portals');
});
