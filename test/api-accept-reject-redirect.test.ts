// A server decides each new session: accept, reject (with a reason the
// client sees), or redirect to other portals. ACCEPT advertises the portals
// a session's further lanes use. (Placement on contexts with threads:
// api-threads-balance.test.ts.)

import t from 'tap';
import * as net from 'node:net';
import { connect, createServer, RejectedError } from '../host/index';
import type { SessionRequestInfo, Decision } from '../host/index';

t.test('accept: onSession sees the resource, attrs and addresses', async (t) => {
  const seen: SessionRequestInfo[] = [];
  const server = await createServer({
    portals: ['tcp://127.0.0.1:0/svc'],
    onSession: async (info): Promise<Decision> => { seen.push(info); await new Promise((r) => setTimeout(r, 10)); return 'accept'; },
    handler: () => 'hi',
  });
  t.teardown(() => server.close());
  const s = await connect(server.portals[0].replace(/\/svc$/, '/some/resource'), { lanes: 2, attrs: Buffer.from('token-1') });
  t.teardown(() => s.destroy());
  t.equal((await s.request()).data.toString(), 'hi', 'the session works');
  t.equal(seen.length, 1, 'onSession is asked once per session, not per lane');
  t.match(seen[0], { resource: '/some/resource', version: 1, portal: server.portals[0] });
  t.equal(seen[0].attrs.toString(), 'token-1', 'attrs from connect()');
  t.match(seen[0].remote, /^127\.0\.0\.1:\d+$/, 'the remote address');
});

t.test('reject: the client gets RejectedError with the reason', async (t) => {
  const server = await createServer({
    portals: ['tcp://127.0.0.1:0/svc'],
    onSession: (info): Decision => {
      if (info.resource === '/text') return { reject: 'not on a Sunday' };
      if (info.resource === '/number') return { reject: 4242 };
      if (info.resource === '/throws') throw new Error('policy failed');
      if (info.resource === '/async') return Promise.reject(new Error('async policy failed')) as never;
      return 'accept';
    },
    handler: () => 'hi',
  });
  t.teardown(() => server.close());
  const at = (r: string) => server.portals[0].replace(/\/svc$/, r);
  const text = await connect(at('/text')).catch((e) => e);
  t.type(text, RejectedError);
  t.match(text, { code: 'NEXIO_ERR_REJECTED', message: 'not on a Sunday', reason: 7 }, 'a text reason is the message');
  t.match(await connect(at('/number')).catch((e) => e), { code: 'NEXIO_ERR_REJECTED', reason: 4242 }, 'a numeric reason');
  t.match(await connect(at('/throws')).catch((e) => e), { code: 'NEXIO_ERR_REJECTED', message: 'policy failed' }, 'onSession throwing rejects');
  t.match(await connect(at('/async')).catch((e) => e), { code: 'NEXIO_ERR_REJECTED', message: 'async policy failed' }, 'onSession rejecting rejects');
  const ok = await connect(at('/fine'));
  t.equal((await ok.request()).data.toString(), 'hi', 'the server still accepts other sessions');
  await ok.close();
});

t.test('redirect to a second server; a redirect loop ends in an error', async (t) => {
  const bSeen: SessionRequestInfo[] = [];
  const b = await createServer({ portals: ['tcp://127.0.0.1:0/b'], onSession: (i) => { bSeen.push(i); return 'accept'; }, handler: () => 'from b' });
  t.teardown(() => b.close());
  let asked = 0;
  const a = await createServer({
    portals: ['tcp://127.0.0.1:0/a'],
    onSession: (info): Decision => {
      asked++;
      if (info.resource === '/to-b') return { redirect: b.portals };
      if (info.resource === '/loop') return { redirect: [info.portal.replace(/\/a$/, '/loop')] };
      return 'accept';
    },
    handler: () => 'from a',
  });
  t.teardown(() => a.close());
  const s = await connect(a.portals[0].replace(/\/a$/, '/to-b'), { lanes: 2, attrs: Buffer.from('x') });
  t.teardown(() => s.destroy());
  t.equal((await s.request()).data.toString(), 'from b', 'the session lives on the second server');
  t.equal(bSeen.length, 1, 'which decided it once');
  t.equal(bSeen[0].attrs.toString(), 'x', 'and saw the attrs');
  if (s.stats().lanesUp < 2) await new Promise((r) => s.once('lane-up', r));
  t.equal(s.stats().lanesUp, 2, 'both lanes are up, on the second server');

  asked = 0;
  const loop = await connect(a.portals[0].replace(/\/a$/, '/loop')).catch((e) => e);
  t.match(loop, { code: 'NEXIO_ERR_REDIRECT_LOOP' }, 'a redirect loop fails with NEXIO_ERR_REDIRECT_LOOP');
  t.ok(asked >= 2 && asked <= 16, `after a bounded number of hops (${asked})`);
});

t.test('advertise: the ACCEPT names the portal further lanes use', async (t) => {
  // A forwarding proxy stands for the address the world should use.
  const free = net.createServer();
  await new Promise<void>((r) => free.listen(0, '127.0.0.1', r));
  const port = (free.address() as net.AddressInfo).port;
  await new Promise((r) => free.close(r));
  let proxied = 0;
  const socks = new Set<net.Socket>();
  const proxy = net.createServer((c) => {
    proxied++;
    const up = net.connect(port, '127.0.0.1');
    for (const x of [c, up]) { socks.add(x); x.on('error', () => x.destroy()); x.on('close', () => { c.destroy(); up.destroy(); }); }
    c.pipe(up);
    up.pipe(c);
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  t.teardown(() => { for (const x of socks) x.destroy(); return new Promise((r) => proxy.close(r)); });
  const advertised = `tcp://127.0.0.1:${(proxy.address() as net.AddressInfo).port}/svc`;
  const portals: string[] = [];
  const server = await createServer({
    portals: [`tcp://127.0.0.1:${port}/svc`], advertise: [advertised],
    onSession: (info) => { portals.push(info.portal); return 'accept'; }, handler: () => 'hi',
  });
  t.teardown(() => server.close());
  t.same(server.portals, [advertised], 'server.portals are the advertised ones');

  const s = await connect(`tcp://127.0.0.1:${port}/svc`, { lanes: 3 });
  t.teardown(() => s.destroy());
  while (s.stats().lanesUp < 3) await new Promise((r) => s.once('lane-up', r));
  t.equal(proxied, 2, 'the lanes after the first came through the advertised portal');
  t.same(portals, [`tcp://127.0.0.1:${port}/svc`], 'onSession ran once, on the bound portal');
  t.equal((await s.request()).data.toString(), 'hi', 'the session works');
});
