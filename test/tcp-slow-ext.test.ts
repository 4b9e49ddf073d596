// A large payload over a slow link: the receiving core sees no frames while
// the payload's bytes stream past it into their buffer, yet the lane is
// alive. Through a rate-limiting proxy, with a dead-lane time far shorter
// than the transfer, the payload must arrive on the first try: no lane
// declared dead, no failover, no resend.

import t from 'tap';
import * as net from 'node:net';
import { connect, createServer } from '../host/index';

/** A loopback proxy to `port` that forwards at most `bytesPerTick` every `tickMs`, in both directions. */
async function slowProxy(port: number, bytesPerTick: number, tickMs: number): Promise<{ port: number; close(): void }> {
  const socks = new Set<net.Socket>();
  const pump = (from: net.Socket, to: net.Socket) => {
    const queue: Buffer[] = [];
    from.on('data', (d: Buffer) => queue.push(d));
    const timer = setInterval(() => {
      let left = bytesPerTick;
      while (left > 0 && queue.length) {
        const b = queue[0];
        const n = Math.min(left, b.length);
        to.write(b.subarray(0, n));
        if (n === b.length) queue.shift(); else queue[0] = b.subarray(n);
        left -= n;
      }
    }, tickMs);
    const stop = () => { clearInterval(timer); to.destroy(); };
    from.on('close', stop);
    from.on('error', stop);
  };
  const server = net.createServer((c) => {
    const up = net.connect(port, '127.0.0.1');
    socks.add(c); socks.add(up);
    pump(c, up);
    pump(up, c);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => { for (const s of socks) s.destroy(); server.close(); },
  };
}

t.test('a payload that takes many dead-lane times to arrive is not taken for a dead lane', async (t) => {
  const keepaliveMs = 100; // a lane silent for 3 x 100 ms is dead
  const server = await createServer({
    portals: ['tcp://127.0.0.1:0/svc'], core: { keepaliveMs },
    handler: (req) => ({ data: Buffer.from(String(req.data.length)) }),
  });
  t.teardown(() => server.close());
  const proxy = await slowProxy(Number(new URL(server.portals[0]).port), 32 * 1024, 20); // ~1.6 MB/s
  t.teardown(() => proxy.close());
  const s = await connect(`tcp://127.0.0.1:${proxy.port}/svc`, { lanes: 1, keepaliveMs, resumeTimeout: 30000 });
  t.teardown(() => s.destroy());
  const down: number[] = [];
  s.on('lane-down', (_l: number, code: number) => down.push(code));
  const payload = Buffer.alloc(3 * 1024 * 1024, 0x5a);
  const t0 = Date.now();
  const r = await s.request('big', payload, { timeout: 60000 });
  const took = Date.now() - t0;
  t.equal(r.data.toString(), String(payload.length), 'the server got all of it');
  t.ok(took > 3 * 3 * keepaliveMs, `the transfer took ${took} ms, several dead-lane times`);
  t.same(down, [], 'no lane was declared dead on the client');
  t.equal(s.stats().failovers, 0, 'no failover');
  t.equal(s.stats().resumes, 0, 'no resume');
});
