// Core bug found by the fuzzer (fails today; not run by tap, run it with
// `node dist/test/fuzz/repro-ring-alias.js`).
//
// A message that arrives out of order is held in the session's receive ring
// at the position its slot names. Nothing stops a later frame from being
// written over it: onMessageHeader checks that a frame fits the ring
// ((slot & (windowBytes-1)) + frameLen <= windowBytes) and that its seq is in
// the window, but not that its bytes stay clear of messages still held, and
// the receiver does not bound the bytes in flight (the byte window is only
// enforced by a well-behaved sender). deliver() then trusts the ring copy of
// each held header: type, seq, hdrLen, dataLen and tag come from whatever
// the peer wrote there last, after every check was passed. So a peer can
//   - deliver a REQUEST whose tag index is up to 65535: deliver() writes the
//     inbound-request entry at s.inb + idx x 16, up to 1 MiB past the table,
//     into other sessions' memory, or traps past the end of memory;
//   - deliver headers/data of any length (hdrLen 65535, dataLen 2^32-1):
//     the event points the host past the ring, into other sessions' bytes;
//   - set rxNext to anything (s.rxNext = seq + 1 from the ring): messages
//     skipped, stale ring entries delivered later, sequence going backwards.
// Test 1 rewrites a held header with a hand-placed slot (136 bytes):
//
//   12000000280000000100000000000000400000000800000000000000000000000000000000000000
//   12000000400000000200000000000000200000002000000000000000000000001000000020000000
//   01000000000000000000000000000000ffff01000000000000000000000000001200000020000000
//   0000000000000000e80300000000000000000000000000000000000000000000
//
//   (ONEWAY seq 1 slot 64, held; ONEWAY seq 2 slot 32 whose data is a REQUEST
//   header with tag 0x0001ffff and lands on seq 1's header; ONEWAY seq 0.)
// Test 2 needs no tampering: seq 0 withheld, then honest, consecutive slots
// for more than windowBytes of messages; the ring wraps onto held ones.
//
// Expected: frames that would overwrite bytes still held are refused (a
// protocol error on their lane, e.g. E_WINDOW), and delivery uses what was
// checked at header time (keep type/flags/lengths/tag in the RxEntry rather
// than re-reading the ring). Never a trap, never an event past the limits.

import t, { Test } from 'tap';
import { CoreTrapError } from '../../host/errors';
import * as F from './frames';
import { Target, Delivered } from './target';

const small = { maxSessions: 1, maxLanes: 4, windowMsgs: 16, windowBytes: 32768, maxRequests: 16 };

/** The deliveries are in order and within the limits every header was checked against. */
function checkDeliveries(t: Test, d: Delivered[], R: number): void {
  let last = -1;
  for (const m of d) {
    t.ok(m.seq > last, `seq ${m.seq} after ${last}: in order`);
    t.ok(m.hdrLen <= F.MAX_APP_HEADER && m.hdrLen + m.dataLen <= F.INLINE_MAX, `seq ${m.seq}: ${m.hdrLen}+${m.dataLen} bytes within limits`);
    if (m.type === 12) t.ok((m.tag & 0xffff) < R, `seq ${m.seq}: request tag 0x${m.tag.toString(16)} within the table`);
    last = m.seq;
  }
}

t.test('a later frame rewrites a held header (hand-placed slot)', (t) => {
  const x = new Target(small);
  const held = F.message({ type: F.T.ONEWAY, seq: 1, slot: 64, data: Buffer.alloc(8) });
  const fake = F.message({ type: F.T.REQUEST, seq: 1, slot: 0, tag: 0x0001ffff });
  const cover = F.message({ type: F.T.ONEWAY, seq: 2, slot: 32, data: fake });
  const first = F.message({ type: F.T.ONEWAY, seq: 0, slot: 1000 });
  const input = Buffer.concat([held, cover, first]);
  t.equal(input.length, 136);
  let trap: unknown;
  try {
    x.rx(input);
  } catch (e) {
    trap = e;
  }
  t.notOk(trap instanceof CoreTrapError, `no trap (${(trap as Error)?.message ?? 'none'})`);
  checkDeliveries(t, x.delivered, small.maxRequests);
  t.end();
});

t.test('more than windowBytes in flight behind a gap wraps onto held messages (honest slots)', (t) => {
  const x = new Target({ ...small, maxSessions: 2 });
  const sender = new F.Sender(32768);
  const frames: Buffer[] = [];
  for (let i = 0; i < 8; i++) frames.push(sender.next(F.T.ONEWAY, 0, Buffer.alloc(0), Buffer.alloc(6000, i)));
  let trap: unknown;
  try {
    // seq 0 comes last: seq 1..7 are held while the ring wraps under them.
    x.rx(Buffer.concat(frames.slice(1)));
    x.rx(frames[0]);
    // Go on with the stream for a while: stale ring entries surface later.
    for (let i = 0; i < 40; i++) x.rx(sender.next(F.T.ONEWAY, 0, Buffer.alloc(0), Buffer.alloc(100, i)));
  } catch (e) {
    trap = e;
  }
  t.notOk(trap instanceof CoreTrapError, `no trap (${(trap as Error)?.message ?? 'none'})`);
  // Refusing the frames that overflow the ring is fine (the lane closes);
  // what was delivered must be seq 0, 1, 2, ... once each, as sent.
  const seqs = x.delivered.map((d) => d.seq);
  t.same(seqs, seqs.map((_, i) => i), `delivered in order without gaps or repeats: ${seqs.join(',')}`);
  t.same(x.delivered.slice(0, 8).map((d) => d.dataLen), Array(Math.min(8, seqs.length)).fill(6000), 'the first messages keep their sizes');
  t.comment(`protocol errors: ${JSON.stringify(x.protocolErrors)}`);
  t.end();
});
