// tcp:// lanes gather a turn's batches into a buffer of their own (copied out
// of core memory) and use it again once the socket has taken the write whole.
// A socket that has to queue a write still holds that buffer: reusing it
// then would rewrite bytes not yet sent. Here a relay stops reading for a
// while, so the client's socket queues behind large payloads, and every
// small message sent meanwhile must arrive as it was sent, in order.

import t from 'tap';
import * as net from 'node:net';
import { connect, createServer } from '../host/index';

/** A relay to `port` whose client-side reads can be paused. */
async function pausableRelay(port: number): Promise<{ port: number; pause(): void; resume(): void; close(): void }> {
  const socks = new Set<net.Socket>();
  const server = net.createServer((c) => {
    const up = net.connect(port, '127.0.0.1');
    socks.add(c).add(up);
    c.pipe(up);
    up.pipe(c);
    const end = () => { c.destroy(); up.destroy(); };
    c.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    pause: () => { for (const s of socks) if (s.remotePort !== port) s.pause(); },
    resume: () => { for (const s of socks) if (s.remotePort !== port) s.resume(); },
    close: () => { for (const s of socks) s.destroy(); server.close(); },
  };
}

const body = (i: number): Buffer => Buffer.alloc(1 + ((i * 37) % 3000), i & 0xff);

t.test('batches written while the socket queues arrive as they were sent', async (t) => {
  const got: string[] = [];
  let bad = 0;
  let bigs = 0;
  const server = await createServer({
    portals: ['tcp://127.0.0.1:0/svc'],
    onMessage: (_s, h, d) => {
      const name = h.toString();
      if (name.startsWith('big')) {
        bigs++;
        if (d.length !== 8 << 20 || d[0] !== 0xb0 || d[d.length - 1] !== 0xb0) bad++;
        return;
      }
      got.push(name);
      if (!d.equals(body(Number(name.slice(1))))) bad++;
    },
    handler: (req) => ({ header: req.header, data: req.data }),
  });
  t.teardown(() => server.close());
  const relay = await pausableRelay(Number(new URL(server.portals[0]).port));
  t.teardown(() => relay.close());
  const s = await connect(`tcp://127.0.0.1:${relay.port}/svc`, { lanes: 1, keepaliveMs: 10000 });
  t.teardown(() => s.destroy());

  const big = Buffer.alloc(8 << 20, 0xb0);
  const receipts: Promise<void>[] = [];
  const echoes: Promise<boolean>[] = [];
  let n = 0;
  relay.pause();
  for (let round = 0; round < 6; round++) {
    // A large payload the paused relay cannot take: the socket queues it and what follows.
    receipts.push(s.send(`big${round}`, big));
    // Small messages over several turns, each turn's batch gathered and written after the payload.
    for (let turn = 0; turn < 5; turn++) {
      for (let k = 0; k < 20; k++, n++) {
        receipts.push(s.send(`m${n}`, body(n)));
        const q = Buffer.from(`q${n}`);
        echoes.push(s.request(q, body(n)).then((r) => r.header.equals(q) && r.data.equals(body(Number(q.toString().slice(1))))));
      }
      await new Promise((r) => setImmediate(r));
    }
    if (round === 2) { relay.resume(); await new Promise((r) => setTimeout(r, 50)); relay.pause(); }
  }
  setTimeout(() => relay.resume(), 200);
  await Promise.all(receipts);
  const echoed = await Promise.all(echoes);
  t.equal(bigs, 6, 'every large payload arrived');
  t.equal(got.length, n, 'every small message arrived');
  t.same(got, Array.from({ length: n }, (_, i) => `m${i}`), 'in the order sent');
  t.equal(bad, 0, 'no message arrived changed');
  t.equal(echoed.filter((x) => !x).length, 0, 'every echo came back as sent');
});
