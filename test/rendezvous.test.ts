// Rendezvous in the core's frames, over real sockets: on a transport that
// can READ peer memory, EXT payloads at or above its threshold travel as
// F_RDV frames whose descriptor (addr, rkey) the sending lane fills in; the
// receiving context READs the payload, holds the lane's later bytes
// meanwhile, and hands the core the payload. The transport here is
// test/fixtures/rdv-transport.ts (tcp plus an in-process "memory"); the
// same path over real RDMA READs runs in the soft-RoCE lab (test/rdma).

import t from 'tap';
import { connect, createServer } from '../host/index';
import { rdvStats, pinnedRegions } from './fixtures/rdv-transport';

t.test('payloads above the threshold go by rendezvous, both ways, in order with what follows them', async (t) => {
  const seen: string[] = [];
  const server = await createServer({
    portals: ['rdvtcp://127.0.0.1:0/svc'],
    handler: (req) => ({ header: req.header, data: req.data }),
    onMessage: (_s, h) => { seen.push(h.toString()); },
  });
  t.teardown(() => server.close());
  const s = await connect(server.portals[0], { lanes: 1 });
  t.teardown(() => s.destroy());
  rdvStats.readDelayMs = 20; // reads take a while: what follows on the lane must wait
  const before = { ...rdvStats };
  const pinned0 = pinnedRegions();
  const sizes = [20_000, 10_000, 300_000, 100, 16_384];
  const payloads = sizes.map((n, i) => Buffer.alloc(n, 0x41 + i));
  const pending = payloads.map((p, i) => s.request(`r${i}`, p));
  for (let i = 0; i < 5; i++) void s.send(`m${i}`, '');
  const replies = await Promise.all(pending);
  replies.forEach((r, i) => t.ok(r.data.equals(payloads[i]) && r.header.toString() === `r${i}`, `request ${i} (${sizes[i]} bytes) round-trips`));
  const big = sizes.filter((n) => n >= 16384).length;
  t.equal(rdvStats.reads - before.reads, 2 * big, `${big} payloads read by rendezvous each way, the others streamed`);
  t.equal(rdvStats.badReads - before.badReads, 0, 'no bad read');
  await new Promise((r) => setTimeout(r, 100));
  t.same(seen, ['m0', 'm1', 'm2', 'm3', 'm4'], 'messages sent behind rendezvous payloads arrive once, in order');
  for (let i = 0; i < 100 && pinnedRegions() > pinned0; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(pinnedRegions(), pinned0, 'acked payloads are unpinned on the lanes that made them readable (the lanes are still up)');
  rdvStats.readDelayMs = 0;
});

t.test('a rendezvous read that fails takes its lane down; the message goes again on another lane', async (t) => {
  let ran = 0;
  const server = await createServer({
    portals: ['rdvtcp://127.0.0.1:0/svc'],
    handler: (req) => { ran++; return String(req.data.length); },
  });
  t.teardown(() => server.close());
  const s = await connect(server.portals[0], { lanes: 2 });
  t.teardown(() => s.destroy());
  const before = rdvStats.badReads;
  rdvStats.corruptNext = 1; // the next descriptor carries a wrong rkey
  const r = await s.request('big', Buffer.alloc(50_000, 1), { timeout: 10000 });
  t.equal(r.data.toString(), '50000', 'the request completes');
  t.equal(rdvStats.badReads - before, 1, 'after one failed read');
  t.equal(ran, 1, 'and its handler ran once');
  t.ok(s.stats().failovers >= 1, 'the lane that failed was replaced');
  t.equal(s.state, 'open', 'the session is open');
});
