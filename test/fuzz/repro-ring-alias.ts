// Core bug found by the fuzzer (not run by tap; run it with
// `node dist/test/fuzz/repro-ring-alias.js`). Fails against the core up to
// commit 1c50484 (test 1 traps; test 2 delivers messages with other
// messages' bytes, skips and repeats sequence numbers); passes from 59676d7
// on ("receive window holds what was checked; byte credit enforced").
//
// A message that arrives out of order is held in the session's receive ring
// at the position its slot names. Nothing stops a later frame from being
// written over it: onMessageHeader checks that a frame fits the ring
// ((slot & (windowBytes-1)) + frameLen <= windowBytes) and that its seq is in
// the window, but not that its bytes stay clear of messages still held, and
// the receiver does not bound the bytes in flight (the byte window is only
// enforced by a well-behaved sender). deliver() then trusts the ring copy of
// each held header: type, seq, hdrLen, dataLen and tag come from whatever
// the peer wrote there last, after every check was passed. Against the core
// up to commit 1c50484 a peer can
//   - deliver a REQUEST whose tag index is up to 65535: deliver() writes the
//     inbound-request entry at s.inb + idx x 16, up to 1 MiB past the table,
//     into other sessions' memory, or traps past the end of memory;
//   - deliver headers/data of any length (hdrLen 65535, dataLen 2^32-1):
//     the event points the host past the ring, into other sessions' bytes;
//   - set rxNext to anything (s.rxNext = seq + 1 from the ring): messages
//     skipped, stale ring entries delivered later, sequence going backwards.
// Test 1 overwrites a held message with a hand-placed slot (144 bytes, HEX
// below): ONEWAY seq 1 at slot 64 is held; ONEWAY seq 2 at slot 32 carries a
// forged REQUEST header (tag 0x0001ffff) over seq 1's header and 8 bytes
// over its data; then ONEWAY seq 0. Up to 1c50484 this traps (or writes
// the request table 1 MiB past its end); keeping the header fields in the
// RxEntry alone stops the trap but still delivers seq 1 with seq 2's bytes
// as its data, where section 13 refuses the overlapping frame.
// Test 2 needs no tampering: one message delivered (so the window does not
// start at a multiple of W), seq 1 withheld, then honest, consecutive slots
// for more than W bytes; the ring wraps onto held messages (a span check
// of pad + W, tried on the way to the fix, still let that through).
//
// Expected (protocol.md section 13): a frame that would land on bytes still
// held is refused with `window` on its lane, and delivery uses what was
// checked at header time. Never a trap, never an event past the limits,
// never a message delivered with bytes it was not sent with.

import t, { Test } from 'tap';
import { CoreTrapError } from '../../host/errors';
import * as F from './frames';
import { Target, Delivered } from './target';

const HEX =
  '120000002800000001000000000000004000000008000000000000000000000068656c642d6d7367' + // ONEWAY seq 1 slot 64 "held-msg"
  '1200000048000000020000000000000020000000280000000000000000000000' + // ONEWAY seq 2 slot 32, 40 bytes of data:
  '100000002000000001000000000000000000000000000000ffff010000000000' + //   a REQUEST header, tag 0x0001ffff
  '0000000000000000' + //   and 8 bytes over "held-msg"
  '12000000200000000000000000000000e8030000000000000000000000000000'; // ONEWAY seq 0 slot 1000

const small = { maxSessions: 1, maxLanes: 4, windowMsgs: 16, windowBytes: 32768, maxRequests: 16 };

/** The deliveries are in order and within the limits every header was checked against. */
function checkDeliveries(t: Test, d: Delivered[], R: number): void {
  const bad: string[] = [];
  let last = -1;
  for (const m of d) {
    if (m.seq <= last) bad.push(`seq ${m.seq} after ${last}`);
    if (m.hdrLen > F.MAX_APP_HEADER || m.hdrLen + m.dataLen > F.INLINE_MAX) bad.push(`seq ${m.seq}: ${m.hdrLen}+${m.dataLen} bytes`);
    if (m.type === 12 && (m.tag & 0xffff) >= R) bad.push(`seq ${m.seq}: request tag 0x${m.tag.toString(16)}`);
    last = m.seq;
  }
  t.same(bad, [], 'deliveries in order, within the limits, request tags within the table');
}

t.test('a later frame rewrites a held message (hand-placed slot)', (t) => {
  const x = new Target(small);
  const heldData = Buffer.from('held-msg');
  const held = F.message({ type: F.T.ONEWAY, seq: 1, slot: 64, data: heldData });
  const fake = F.message({ type: F.T.REQUEST, seq: 1, slot: 0, tag: 0x0001ffff });
  const cover = F.message({ type: F.T.ONEWAY, seq: 2, slot: 32, data: Buffer.concat([fake, Buffer.alloc(8)]) });
  const first = F.message({ type: F.T.ONEWAY, seq: 0, slot: 1000 });
  const input = Buffer.concat([held, cover, first]);
  t.equal(input.toString('hex'), HEX);
  let trap: unknown;
  try {
    x.rx(input);
  } catch (e) {
    trap = e;
  }
  t.notOk(trap instanceof CoreTrapError, `no trap (${(trap as Error)?.message ?? 'none'})`);
  checkDeliveries(t, x.delivered, small.maxRequests);
  // protocol.md section 13: the frame that lands on a held message is refused
  // (window); short of that, the held message must come out as it was sent.
  const refused = x.protocolErrors.some((e) => e.code === 5);
  const seq1 = x.delivered.find((d) => d.seq === 1);
  t.ok(refused || (seq1 !== undefined && seq1.data.equals(heldData)),
    `overlap refused (window) or seq 1 intact (errors ${JSON.stringify(x.protocolErrors)}, seq 1 data ${seq1?.data.toString('hex')})`);
  t.end();
});

t.test('more than the byte window in flight behind a gap wraps onto held messages (honest slots)', (t) => {
  const x = new Target({ ...small, maxSessions: 2 });
  const sender = new F.Sender(32768);
  const sent = new Map<number, Buffer>();
  const next = (data: Buffer): Buffer => {
    sent.set(sender.seq, data);
    return sender.next(F.T.ONEWAY, 0, Buffer.alloc(0), data);
  };
  let trap: unknown;
  try {
    // One message delivered, so the window no longer starts at a multiple of W.
    x.rx(next(Buffer.alloc(100, 0xee)));
    // Then seq 1 held back while seq 2.. fill more than W bytes of ring.
    const frames: Buffer[] = [];
    for (let i = 0; i < 8; i++) frames.push(next(Buffer.alloc(6000, i + 1)));
    x.rx(Buffer.concat(frames.slice(1)));
    x.rx(frames[0]);
    for (let i = 0; i < 40; i++) x.rx(next(Buffer.alloc(100, i)));
  } catch (e) {
    trap = e;
  }
  t.notOk(trap instanceof CoreTrapError, `no trap (${(trap as Error)?.message ?? 'none'})`);
  // Refusing the frames that break the byte credit is right (the lane
  // closes); what was delivered must be seq 0, 1, 2, ... once each, as sent.
  const seqs = x.delivered.map((d) => d.seq);
  t.same(seqs, seqs.map((_, i) => i), `delivered in order without gaps or repeats: ${seqs.join(',')}`);
  const wrong = x.delivered.filter((d) => !d.data.equals(sent.get(d.seq) ?? Buffer.alloc(0))).map((d) => d.seq);
  t.same(wrong, [], 'every delivered message carries the data sent with its seq');
  t.comment(`protocol errors: ${JSON.stringify(x.protocolErrors)}`);
  checkDeliveries(t, x.delivered, small.maxRequests);
  t.end();
});
