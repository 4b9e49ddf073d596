// Hostile scripts: what a hostile peer sends, drawn from a seeded Rng.
//
// Families (the kind of a script is `<side>-<family>[:<case>]`):
//   random      pure random bytes, sometimes after a valid handshake
//   prehello /  a fresh lane (server: before HELLO; client: HELLO sent) gets
//   hellosent   one frame it must refuse, or a valid REJECT / REDIRECT
//   session     handshake, valid traffic (batches with lying counts, EXT,
//               acks, receipts, cancels), then either ONE frame that breaks
//               exactly one rule of docs/protocol.md section 18 (the script
//               says which error or close its lane must get, and no other
//               lane may be touched), or a case the spec calls harmless
//               (an unknown RESPONSE tag), or chaos: valid frames mangled at
//               the byte level (bit flips, field overwrites, truncations,
//               splices of several frames, duplicated tails)
//   join        a second lane joins the session; one lane goes bad while
//               the other keeps sending valid traffic
//   interleave  two lanes of one session, cut mid-frame and interleaved,
//               some messages on both: delivered exactly once, in order
//   auth        (server) a HELLO with F_AUTH, the host's CHALLENGE, then a
//               wrong proof (REJECT(auth)), a right one (the session opens
//               and carries traffic, then one bad frame), or a frame the
//               AUTH stage refuses (bad-state, malformed)
// Every script is fed in random pieces (split points across rx calls); a
// share of them is fed twice, whole and in pieces, to compare the events.

import { Rng } from './rng';
import * as F from './frames';
import { T } from './frames';
import type { Script, Step, PeerView, Side } from './harness';

export interface TargetConfig {
  windowMsgs: number;
  windowBytes: number;
  maxRequests: number;
  /**
   * Diagnostic: steer clear of the core bugs known today (RESPONSE tags
   * outside the request table, held messages overwritten in the receive
   * ring; see test/fuzz/repro-*.ts), to see whether anything else fails.
   * Drops the chaos, aliased-slot, byte-credit and unknown-response scripts.
   */
  avoidKnownBugs?: boolean;
}

// Error codes (assembly/errors.ts).
const MALFORMED = 1, TOO_LARGE = 2, BAD_TYPE = 3, BAD_STATE = 4, WINDOW = 5, VERSION = 6;
const UNKNOWN_SESSION = 8, LIMIT = 14, AUTH = 22;

/**
 * Bytes built when the step runs, from what the peer has learned by then
 * (session id, tags). Every random choice is drawn at generation time: a
 * Lazy must be a pure function of the PeerView, since runs are replayed.
 */
type Lazy = (v: PeerView) => Buffer;

const fixed = (b: Buffer): Lazy => () => b;

function cat(units: Lazy[]): Lazy {
  return (v) => Buffer.concat(units.map((u) => u(v)));
}

function floorPow2(x: number): number {
  return 2 ** Math.floor(Math.log2(x));
}

/** Types no frame has. */
function unknownType(r: Rng): number {
  for (;;) {
    const t = r.int(256);
    if (t === 0 || (t > 0x06 && t < 0x10) || (t > 0x14 && t < 0x20) || (t > 0x23 && t !== 0x30)) return t;
  }
}

const MSG_TYPES = [T.REQUEST, T.RESPONSE, T.ONEWAY, T.CANCEL, T.CLOSE];
const CTL_TYPES = [T.HELLO, T.ACCEPT, T.REJECT, T.REDIRECT, T.CHALLENGE, T.AUTH, T.ACK, T.RECEIPT, T.KEEPALIVE, T.ERROR];

/** The hostile peer's side of a session: its numbering and what it may send. */
class Peer {
  readonly sender: F.Sender;
  /** Negotiated windows, as the target computes them. */
  readonly M: number;
  readonly R: number;
  /** Request tags this peer sent (idx | gen << 16). */
  readonly sentTags: number[] = [];
  nextIdx = 0;
  /** Responses this peer may still send for requests the target sent (index into view.tags). */
  nextResponse = 0;
  /** The target's own receive ring (its config), for slot checks. */
  readonly ring: number;
  closed = false;
  readonly avoid: boolean;

  constructor(readonly r: Rng, tc: TargetConfig, peerMsgs: number, peerBytes: number, peerRequests: number) {
    this.M = floorPow2(Math.min(peerMsgs, tc.windowMsgs));
    const W = floorPow2(Math.min(peerBytes, tc.windowBytes));
    this.R = Math.min(peerRequests, tc.maxRequests, 65535);
    this.sender = new F.Sender(W);
    this.ring = tc.windowBytes;
    this.avoid = tc.avoidKnownBugs === true;
  }

  get rxNext(): number {
    return this.sender.seq;
  }

  hdr(): Buffer {
    return this.r.bytes(this.r.size(16, 300));
  }

  data(): Buffer {
    return this.r.bytes(this.r.size(128, 6000));
  }

  /** A message frame with the next seq and slot; sizes kept inline. */
  msg(type: number, tag: number, flags = 0, body = true): Buffer {
    let hdr = body ? this.hdr() : Buffer.alloc(0);
    let data = body ? this.data() : Buffer.alloc(0);
    if (hdr.length + data.length > F.INLINE_MAX) data = data.subarray(0, F.INLINE_MAX - hdr.length);
    if (hdr.length > F.MAX_APP_HEADER) hdr = hdr.subarray(0, F.MAX_APP_HEADER);
    return this.sender.next(type, tag, hdr, data, flags);
  }

  requestTag(): number | undefined {
    if (this.nextIdx >= this.R) return undefined;
    const tag = ((1 + this.r.int(0xfffe)) << 16) | this.nextIdx++;
    this.sentTags.push(tag);
    return tag;
  }

  /** One valid frame (or EXT frame + payload, which must end its batch). */
  validFrame(allowExt: boolean): { unit: Lazy; ext: boolean } {
    const r = this.r;
    const flags = r.chance(0.2) ? F.F_RECEIPT : 0;
    const roll = r.int(100);
    if (allowExt && roll < 8) {
      const tag = this.requestTag();
      const type = tag !== undefined && r.chance(0.5) ? T.REQUEST : T.ONEWAY;
      const hdr = this.hdr().subarray(0, 64);
      const extLen = r.range(1, 3000);
      const { seq, slot } = this.sender.take(F.MSG_HEADER + hdr.length);
      const frame = F.message({ type, flags, seq, slot, tag: type === T.REQUEST ? tag : 0, hdr, extLen });
      return { unit: fixed(Buffer.concat([frame, r.bytes(extLen)])), ext: true };
    }
    if (roll < 35) {
      const tag = this.requestTag();
      if (tag !== undefined) return { unit: fixed(this.msg(T.REQUEST, tag, flags)), ext: false };
    }
    if (roll < 60) return { unit: fixed(this.msg(T.ONEWAY, 0, flags)), ext: false };
    if (roll < 70) {
      // A response to the k-th request the target sent us (if it sent one).
      const k = this.nextResponse++;
      const hdr = this.hdr().subarray(0, 32), data = this.data().subarray(0, 200);
      const { seq, slot } = this.sender.take(F.MSG_HEADER + hdr.length + data.length);
      const f2 = r.chance(0.2) ? F.F_APP_ERROR : 0;
      // No request to answer: a tag in range that matches nothing (dropped).
      const rnd = ((1 + r.int(0xfffe)) << 16) | r.int(this.R);
      return {
        unit: (v) => F.message({ type: T.RESPONSE, flags: flags | f2, seq, slot, tag: v.tags[k] ?? rnd, hdr, data }),
        ext: false,
      };
    }
    if (roll < 75 && this.sentTags.length) {
      return { unit: fixed(this.msg(T.CANCEL, r.pick(this.sentTags), 0, false)), ext: false };
    }
    if (roll < 85) {
      // Drawn now: a lazy unit must not touch the Rng when it runs (runs are replayed).
      const all = r.chance(0.5);
      return { unit: (v) => F.ack(all ? v.sent : 0, 0), ext: false };
    }
    if (roll < 92) return { unit: fixed(F.receipt(r.int(8))), ext: false };
    return { unit: fixed(F.keepalive()), ext: false };
  }

  /**
   * n valid units: single frames and batches (sometimes with a lying
   * frame count, which the receiver ignores). Rarely a CLOSE at the end.
   */
  validUnits(n: number): Lazy[] {
    const r = this.r;
    const out: Lazy[] = [];
    for (let i = 0; i < n; i++) {
      if (r.chance(0.4)) {
        const k = r.range(2, 6);
        const frames: Lazy[] = [];
        let ext: Lazy | undefined;
        for (let j = 0; j < k; j++) {
          const f = this.validFrame(j === k - 1);
          if (f.ext) ext = f.unit;
          else frames.push(f.unit);
        }
        const count = r.chance(0.3) ? r.int(0x10000) : undefined;
        if (ext) {
          // The EXT frame is last in the batch; its payload follows the batch.
          const e = ext;
          out.push((v) => {
            const fr = frames.map((f) => f(v));
            const eb = e(v);
            const flen = F.MSG_HEADER + eb.readUInt16LE(2);
            const b = F.batch([...fr, eb.subarray(0, flen)], count);
            return Buffer.concat([b, eb.subarray(flen)]);
          });
        } else {
          out.push((v) => F.batch(frames.map((f) => f(v)), count));
        }
      } else {
        out.push(this.validFrame(true).unit);
      }
    }
    if (r.chance(0.03)) out.push(fixed(this.msg(T.CLOSE, 0, 0, false)));
    return out;
  }
}

export interface Mutation {
  name: string;
  unit: Lazy;
  protocol?: number[];
  close?: number;
  /** Not a violation: no lane may close. */
  none?: boolean;
}

/**
 * A message frame that breaks exactly one rule, on an OPEN lane. It takes
 * no sequence number: the receiver refuses it before it enters the window,
 * so valid traffic on another lane goes on from the same number.
 */
function badMessage(p: Peer): Mutation {
  const seq = p.sender.seq, off = p.sender.off;
  const m = badMessageAt(p);
  p.sender.seq = seq;
  p.sender.off = off;
  return m;
}

function badMessageAt(p: Peer): Mutation {
  const r = p.r;
  const type = r.pick(MSG_TYPES);
  // Tags valid for the type: REQUEST / CANCEL / RESPONSE index in range (a
  // RESPONSE tag out of range is its own case: response-unknown-tag).
  const tag = type === T.ONEWAY || type === T.CLOSE ? 0 : ((1 + r.int(0xfffe)) << 16) | r.int(p.R);
  const body = type !== T.CANCEL && type !== T.CLOSE;
  const ext = body && r.chance(0.15);
  let hdr = body ? p.hdr() : Buffer.alloc(0);
  let data = body && !ext ? p.data() : Buffer.alloc(0);
  if (hdr.length > 512) hdr = hdr.subarray(0, 512);
  if (hdr.length + data.length > F.INLINE_MAX) data = data.subarray(0, F.INLINE_MAX - hdr.length);
  const extLen = ext ? r.range(1, 5000) : undefined;
  const { seq, slot } = p.sender.take(F.MSG_HEADER + hdr.length + data.length);
  const b = F.message({ type, seq, slot, tag, hdr, data, extLen });
  const hdrLen = hdr.length, dataLen = ext ? extLen! : data.length;
  const len = b.length;
  const which = r.int(12);
  switch (which) {
    case 0: {
      b[0] = unknownType(r);
      return { name: 'msg-bad-type', unit: fixed(b), protocol: [BAD_TYPE] };
    }
    case 1:
      b[1] |= 0x08 << r.int(5);
      return { name: 'msg-unknown-flag', unit: fixed(b), protocol: [MALFORMED] };
    case 2:
      b.writeUInt32LE(1 + r.int(0xffffffff), 28);
      return { name: 'msg-reserved', unit: fixed(b), protocol: [MALFORMED] };
    case 3:
      b.writeUInt16LE(r.range(F.MAX_APP_HEADER + 1, 0xffff), 2);
      return { name: 'msg-hdrlen-too-large', unit: fixed(b), protocol: [TOO_LARGE] };
    case 4: {
      // hdrLen or dataLen disagrees with frameLen.
      let h = hdrLen, d = dataLen;
      if (r.chance(0.5) || ext) {
        do h = r.int(F.MAX_APP_HEADER + 1); while (h === hdrLen);
        b.writeUInt16LE(h, 2);
      } else {
        do d = r.chance(0.5) ? r.int(F.INLINE_MAX + 1) : r.u32(); while (d === dataLen);
        b.writeUInt32LE(d >>> 0, 20);
      }
      if (ext) return { name: 'ext-hdrlen-mismatch', unit: fixed(b), protocol: [MALFORMED] };
      const tooLarge = h + d > F.INLINE_MAX;
      return { name: 'msg-len-mismatch', unit: fixed(b), protocol: [tooLarge ? TOO_LARGE : MALFORMED] };
    }
    case 5: {
      let fl: number;
      do fl = r.pick([r.int(F.MSG_HEADER), r.range(F.MSG_HEADER, F.MAX_MSG_FRAME), r.range(F.MAX_MSG_FRAME + 1, 0xffffffff)]);
      while (fl === len);
      b.writeUInt32LE(fl >>> 0, 4);
      return { name: 'msg-framelen', unit: fixed(b), protocol: [fl > F.MAX_MSG_FRAME ? TOO_LARGE : MALFORMED] };
    }
    case 6: {
      const far = r.pick([
        BigInt(p.rxNext + p.M + r.int(1000)), 1n << 63n, (1n << 64n) - 1n, BigInt(p.rxNext) + (1n << 32n),
      ]);
      b.writeBigUInt64LE(far, 8);
      return { name: 'msg-seq-far', unit: fixed(b), protocol: [WINDOW] };
    }
    case 7: {
      // A slot whose position leaves no room for the frame before the ring's end.
      const hi = r.int(0x10000) * p.ring;
      const s = (hi + p.ring - r.range(1, len - 1)) >>> 0;
      b.writeUInt32LE(s, 16);
      return { name: 'msg-slot-past-ring', unit: fixed(b), protocol: [WINDOW] };
    }
    case 8: {
      if (type !== T.REQUEST && type !== T.CANCEL) return badMessage(p);
      const bad = r.chance(0.5)
        ? ((1 + r.int(0xfffe)) << 16) | r.range(p.R, 0xffff)
        : r.int(p.R);
      b.writeUInt32LE(bad >>> 0, 24);
      return { name: 'msg-tag-out-of-range', unit: fixed(b), protocol: [LIMIT] };
    }
    case 9: {
      if (body) return badMessage(p);
      // CANCEL and CLOSE carry nothing: give one a header, data or a flag.
      const t = type;
      const { seq: s2, slot: sl2 } = p.sender.take(64);
      const m = r.int(3);
      const f = F.message({
        type: t, seq: s2, slot: sl2, tag,
        hdr: m === 0 ? r.bytes(r.range(1, 16)) : undefined,
        data: m === 1 ? r.bytes(r.range(1, 16)) : undefined,
        flags: m === 2 ? r.pick([F.F_RECEIPT, F.F_APP_ERROR]) : 0,
      });
      return { name: 'cancel-close-with-body', unit: fixed(f), protocol: [MALFORMED] };
    }
    case 10: {
      // EXT with no data, or EXT with the data inline.
      if (!body) return badMessage(p);
      const f = Buffer.from(b);
      f[1] |= F.F_EXT;
      if (ext || r.chance(0.5)) {
        f.writeUInt32LE(0, 20);
        if (ext) return { name: 'ext-zero-len', unit: fixed(f), protocol: [MALFORMED] };
      }
      if (f.readUInt32LE(20) === 0 && hdrLen + dataLen + F.MSG_HEADER === len && dataLen > 0) {
        return { name: 'ext-inline', unit: fixed(f), protocol: [MALFORMED] };
      }
      if (dataLen === 0) {
        // EXT, dataLen 0, frameLen 32 + hdrLen: the zero length is the fault.
        return { name: 'ext-zero-len', unit: fixed(f), protocol: [MALFORMED] };
      }
      f.writeUInt32LE(dataLen, 20);
      return { name: 'ext-inline', unit: fixed(f), protocol: [MALFORMED] };
    }
    default: {
      // An EXT message in the middle of a batch.
      const e = F.message({ type: T.ONEWAY, seq: p.rxNext, slot: p.sender.take(64).slot, extLen: r.range(1, 100) });
      const after = p.msg(T.ONEWAY, 0);
      return { name: 'ext-mid-batch', unit: fixed(F.batch([e, after])), protocol: [MALFORMED] };
    }
  }
}

/** A control frame or batch that breaks one rule, on an OPEN lane (takes no sequence number either). */
function badControl(p: Peer): Mutation {
  const seq = p.sender.seq, off = p.sender.off;
  const m = badControlAt(p);
  p.sender.seq = seq;
  p.sender.off = off;
  return m;
}

function badControlAt(p: Peer): Mutation {
  const r = p.r;
  const which = r.int(13);
  switch (which) {
    case 0: {
      const b = F.ack(0, r.range(2, 255));
      return { name: 'ack-unknown-flag', unit: fixed(b), protocol: [MALFORMED] };
    }
    case 1: {
      const far = r.chance(0.5) ? (1n << 40n) + BigInt(r.u32()) : (1n << 64n) - 1n;
      return { name: 'ack-beyond-sent', unit: fixed(F.ack(far, r.int(2))), protocol: [WINDOW] };
    }
    case 2: {
      const b = F.receipt(r.int(10));
      b[1] = r.range(1, 255);
      return { name: 'receipt-flag', unit: fixed(b), protocol: [MALFORMED] };
    }
    case 3: {
      const t = r.pick([T.ACK, T.RECEIPT, T.KEEPALIVE]);
      const want = t === T.KEEPALIVE ? 8 : 16;
      let fl: number;
      do fl = r.chance(0.7) ? r.int(64) : r.u32(); while (fl === want);
      const b = Buffer.alloc(Math.max(want, Math.min(fl, 64)));
      b[0] = t;
      b.writeUInt32LE(fl >>> 0, 4);
      return { name: 'fixed-size-len', unit: fixed(b), protocol: [fl > F.MAX_CONTROL_FRAME ? TOO_LARGE : MALFORMED] };
    }
    case 4: {
      const msg = r.bytes(r.int(40));
      const b = F.error(r.int(30), msg);
      let ml: number;
      do ml = r.int(0x10000); while (ml === msg.length);
      b.writeUInt16LE(ml, 10);
      return { name: 'error-msglen', unit: fixed(b), protocol: [MALFORMED] };
    }
    case 5: {
      // The peer says we broke the protocol: the lane closes with its code.
      const code = r.int(0x10000);
      return { name: 'peer-error', unit: fixed(F.error(code, r.bytes(r.int(20)))), close: code };
    }
    case 6: {
      const t = r.pick(CTL_TYPES.filter((x) => x !== T.ACK && x !== T.RECEIPT && x !== T.KEEPALIVE));
      const fl = r.range(F.MAX_CONTROL_FRAME + 1, 0xffffffff);
      const b = Buffer.alloc(8);
      b[0] = t;
      b.writeUInt32LE(fl >>> 0, 4);
      return { name: 'control-too-large', unit: fixed(b), protocol: [TOO_LARGE] };
    }
    case 7: {
      const min: Record<number, number> = {
        [T.HELLO]: F.HELLO_SIZE, [T.ACCEPT]: F.ACCEPT_SIZE, [T.REJECT]: F.REJECT_SIZE,
        [T.REDIRECT]: F.REDIRECT_SIZE, [T.ERROR]: F.ERROR_SIZE,
      };
      const t = r.pick([T.HELLO, T.ACCEPT, T.REJECT, T.REDIRECT, T.ERROR]);
      const fl = r.range(0, min[t] - 1);
      const b = Buffer.alloc(Math.max(8, fl));
      b[0] = t;
      b.writeUInt32LE(fl, 4);
      return { name: 'control-too-small', unit: fixed(b), protocol: [MALFORMED] };
    }
    case 8: {
      // Handshake frames on an open lane (pre-shared-key ones included).
      const f = r.int(6);
      const b = f === 0 ? F.hello() : f === 1 ? F.accept() : f === 2 ? F.reject(7) : f === 3 ? F.redirect(Buffer.from('tcp://x:1'))
        : f === 4 ? F.challenge(r.u64() | 1n, r.bytes(32)) : F.auth(r.bytes(32));
      return { name: 'handshake-when-open', unit: fixed(b), protocol: [BAD_STATE] };
    }
    case 9: {
      const inner = F.batch([F.keepalive(), F.keepalive()]);
      const b = F.batch([F.keepalive(), inner]);
      return { name: 'nested-batch', unit: fixed(b), protocol: [MALFORMED] };
    }
    case 10: {
      const b = F.batch([F.keepalive(), F.keepalive()]);
      const fl = r.chance(0.5) ? r.int(F.BATCH_SIZE + 1) : r.range(F.MAX_BATCH + 1, 0xffffffff);
      b.writeUInt32LE(fl >>> 0, 4);
      return { name: 'batch-len-out-of-range', unit: fixed(b), protocol: [TOO_LARGE] };
    }
    case 11: {
      // The batch's length ends inside its last frame.
      const last = p.msg(T.ONEWAY, 0);
      const first = F.keepalive();
      const b = F.batch([first, last]);
      b.writeUInt32LE(b.length - r.range(1, last.length - 1), 4);
      return { name: 'batch-cuts-frame', unit: fixed(b), protocol: [MALFORMED] };
    }
    default: {
      const b = Buffer.alloc(8 + r.int(32));
      b[0] = unknownType(r);
      b.writeUInt32LE(r.chance(0.5) ? b.length : r.u32(), 4);
      return { name: 'control-bad-type', unit: fixed(b), protocol: [BAD_TYPE] };
    }
  }
}

/** A HELLO (or other frame) that a fresh server lane must refuse. */
function badBeforeHello(r: Rng, tc: TargetConfig): Mutation {
  const p = new Peer(r, tc, 256, 1 << 20, 256);
  const which = r.int(13);
  switch (which) {
    case 11: {
      const b = r.chance(0.5) ? F.auth(r.bytes(32)) : F.challenge(r.u64() | 1n, r.bytes(32));
      return { name: 'auth-stage-before-hello', unit: fixed(b), protocol: [BAD_STATE] };
    }
    case 12: {
      // F_AUTH with a trailer too short for a nonce and an identity, or an identity over 255 bytes.
      const n = r.chance(0.5) ? r.int(33) : r.range(32 + 256, 600);
      return { name: 'hello-auth-bad-trailer', unit: fixed(F.hello({ auth: r.bytes(n) })), protocol: [MALFORMED] };
    }
    case 0: {
      const b = F.hello({ resource: r.bytes(r.int(30)), attrs: r.bytes(r.int(30)) });
      if (r.chance(0.5)) b.writeUInt16LE(b.readUInt16LE(12) + r.range(1, 20), 12);
      else b.writeUInt16LE((b.readUInt16LE(14) + r.range(1, 0xfff0)) & 0xffff, 14);
      return { name: 'hello-len-mismatch', unit: fixed(b), protocol: [MALFORMED] };
    }
    case 1: {
      const lo = r.range(2, 0xffff);
      return { name: 'hello-ver-inverted', unit: fixed(F.hello({ verMin: lo, verMax: r.int(lo) })), protocol: [MALFORMED] };
    }
    case 2: {
      const lo = r.range(2, 0xffff);
      const b = r.chance(0.8) ? F.hello({ verMin: lo, verMax: r.range(lo, 0xffff) }) : F.hello({ verMin: 0, verMax: 0 });
      return { name: 'hello-no-common-version', unit: fixed(b), close: VERSION };
    }
    case 3: {
      const f = r.int(3);
      const b = F.hello({
        windowMsgs: f === 0 ? r.int(16) : 64,
        windowBytes: f === 1 ? r.int(32768) : 1 << 20,
        maxRequests: f === 2 ? 0 : 16,
      });
      return { name: 'hello-window-too-small', unit: fixed(b), protocol: [WINDOW] };
    }
    case 4: {
      let id = r.u64();
      if (id === 0n) id = 1n;
      return { name: 'hello-unknown-session', unit: fixed(F.hello({ sessionId: id })), close: UNKNOWN_SESSION };
    }
    case 5: {
      // frameLen larger than the fields say, with the bytes present.
      const b0 = F.hello({ resource: r.bytes(r.int(20)) });
      const extra = r.range(1, 200);
      const b = Buffer.concat([b0, r.bytes(extra)]);
      b.writeUInt32LE(b.length, 4);
      return { name: 'hello-framelen-mismatch', unit: fixed(b), protocol: [MALFORMED] };
    }
    case 6: {
      const m = p.msg(r.pick(MSG_TYPES), ((1 + r.int(100)) << 16) | r.int(16), 0, r.chance(0.5));
      return { name: 'message-before-hello', unit: fixed(m), protocol: [BAD_STATE] };
    }
    case 7: {
      const f = r.int(6);
      const b = f === 0 ? F.ack(0) : f === 1 ? F.receipt(0) : f === 2 ? F.keepalive()
        : f === 3 ? F.accept() : f === 4 ? F.reject(7) : F.redirect(Buffer.from('tcp://x:1'));
      return { name: 'control-before-hello', unit: fixed(b), protocol: [BAD_STATE] };
    }
    case 8: {
      const b = F.batch([F.batch([F.keepalive()]), F.keepalive()]);
      return { name: 'nested-batch-before-hello', unit: fixed(b), protocol: [MALFORMED] };
    }
    case 9: {
      const b = Buffer.alloc(8 + r.int(40));
      b[0] = unknownType(r);
      b.writeUInt32LE(b.length, 4);
      return { name: 'bad-type-before-hello', unit: fixed(b), protocol: [BAD_TYPE] };
    }
    default: {
      const b = F.hello();
      b.writeUInt32LE(r.range(F.MAX_CONTROL_FRAME + 1, 0xffffffff), 4);
      return { name: 'hello-too-large', unit: fixed(b), protocol: [TOO_LARGE] };
    }
  }
}

/** What a hostile server sends a client lane in HELLO_SENT that it must refuse. */
function badAfterHello(r: Rng, tc: TargetConfig): Mutation {
  const p = new Peer(r, tc, 256, 1 << 20, 256);
  const which = r.int(13);
  switch (which) {
    case 12:
      // Our HELLO had no F_AUTH: nothing asked for a CHALLENGE.
      return { name: 'challenge-unasked', unit: fixed(F.challenge(r.u64() | 1n, r.bytes(32))), protocol: [BAD_STATE] };
    case 10:
      // A valid REJECT: the session ends, its lane closes quietly.
      return { name: 'reject', unit: fixed(F.reject(r.int(30), r.bytes(r.int(30)))), close: 0 };
    case 11:
      // A valid REDIRECT: this lane closes, a new one opens to the portal given.
      return { name: 'redirect', unit: fixed(F.redirect(Buffer.from('tcp://other:1\ntcp://other:2'))), close: 0 };
    case 0: {
      let v: number;
      do v = r.int(0x10000); while (v === 1);
      return { name: 'accept-bad-version', unit: fixed(F.accept({ version: v })), protocol: [MALFORMED] };
    }
    case 1: {
      const b = F.accept({ portals: r.bytes(r.int(40)), attrs: r.bytes(r.int(40)) });
      if (r.chance(0.5)) b.writeUInt16LE(b.readUInt16LE(10) + r.range(1, 30), 10);
      else b.writeUInt16LE((b.readUInt16LE(12) + r.range(1, 0xfff0)) & 0xffff, 12);
      return { name: 'accept-len-mismatch', unit: fixed(b), protocol: [MALFORMED] };
    }
    case 2: {
      const b = F.accept({ portals: Buffer.alloc(r.range(F.MAX_PORTALS_BYTES + 1, 3000), 0x61) });
      return { name: 'accept-portals-too-long', unit: fixed(b), protocol: [MALFORMED] };
    }
    case 3:
      return { name: 'accept-session-zero', unit: fixed(F.accept({ sessionId: 0n })), protocol: [MALFORMED] };
    case 4: {
      const f = r.int(3);
      const b = F.accept({
        windowMsgs: f === 0 ? r.int(16) : 64, windowBytes: f === 1 ? r.int(32768) : 1 << 20, maxRequests: f === 2 ? 0 : 8,
      });
      return { name: 'accept-window-too-small', unit: fixed(b), protocol: [MALFORMED] };
    }
    case 5: {
      const msg = r.bytes(r.int(30));
      const b = F.reject(r.int(30), msg);
      let ml: number;
      do ml = r.int(0x10000); while (ml === msg.length);
      b.writeUInt16LE(ml, 14);
      return { name: 'reject-len-mismatch', unit: fixed(b), protocol: [MALFORMED] };
    }
    case 6: {
      const portals = r.chance(0.3) ? Buffer.alloc(0) : r.bytes(r.range(1, 40));
      const b = F.redirect(portals);
      if (portals.length > 0) b.writeUInt16LE(portals.length + r.range(1, 100), 8);
      return { name: 'redirect-bad-portals', unit: fixed(b), protocol: [MALFORMED] };
    }
    case 7: {
      const m = p.msg(r.pick(MSG_TYPES), ((1 + r.int(100)) << 16) | r.int(16), 0, r.chance(0.5));
      return { name: 'message-before-accept', unit: fixed(m), protocol: [BAD_STATE] };
    }
    case 8: {
      const f = r.int(3);
      const b = f === 0 ? F.ack(0) : f === 1 ? F.receipt(0) : F.hello();
      return { name: 'control-before-accept', unit: fixed(b), protocol: [BAD_STATE] };
    }
    default: {
      const b = Buffer.alloc(8 + r.int(40));
      b[0] = unknownType(r);
      b.writeUInt32LE(b.length, 4);
      return { name: 'bad-type-before-accept', unit: fixed(b), protocol: [BAD_TYPE] };
    }
  }
}

// ---- chaos: byte-level damage to valid traffic ----

const INTERESTING = [0, 1, 7, 8, 15, 16, 31, 32, 33, 47, 48, 55, 56, 255, 256, 4095, 4096, 4097, 8192, 8224, 8225,
  32767, 32768, 65535, 65536, 65537, 0x7fffffff, 0x80000000, 0xffffffff];

/** Damages b (a copy) with a few operations drawn from seed. */
export function chaos(b: Buffer, seed: number): Buffer {
  const r = new Rng(seed, 11);
  let out = Buffer.from(b);
  const ops = r.range(1, 4);
  for (let i = 0; i < ops && out.length > 0; i++) {
    const at = r.int(out.length);
    switch (r.int(9)) {
      case 0: // bit flips
        for (let k = r.range(1, 4); k > 0; k--) out[r.int(out.length)] ^= 1 << r.int(8);
        break;
      case 1: // an interesting u32 over a 4-aligned field
        if (out.length >= 4) out.writeUInt32LE(r.pick(INTERESTING) >>> 0, (at & ~3) <= out.length - 4 ? at & ~3 : out.length - 4);
        break;
      case 2: // an interesting u16
        if (out.length >= 2) out.writeUInt16LE(r.pick(INTERESTING) & 0xffff, Math.min(at & ~1, out.length - 2));
        break;
      case 3: // a random byte
        out[at] = r.int(256);
        break;
      case 4: // truncate
        out = out.subarray(0, at);
        break;
      case 5: { // insert random bytes
        const ins = r.bytes(r.range(1, 64));
        out = Buffer.concat([out.subarray(0, at), ins, out.subarray(at)]);
        break;
      }
      case 6: { // delete a range
        const n = r.range(1, 64);
        out = Buffer.concat([out.subarray(0, at), out.subarray(Math.min(out.length, at + n))]);
        break;
      }
      case 7: { // splice: a slice of the stream copied elsewhere
        const from = r.int(out.length);
        const n = r.range(1, Math.min(256, out.length - from));
        out = Buffer.concat([out.subarray(0, at), out.subarray(from, from + n), out.subarray(at)]);
        break;
      }
      default: { // duplicate the tail from a point (a replayed frame run)
        const from = r.int(out.length);
        out = Buffer.concat([out, out.subarray(from, Math.min(out.length, from + r.range(8, 2048)))]);
      }
    }
  }
  return out;
}

/** The sender's next offset, moved past the window boundary if `room` bytes would cross it. */
function roomAt(p: Peer, room: number): number {
  const W = p.sender.ringBytes;
  let off = p.sender.off;
  if ((off % W) + room > W) off += W - (off % W);
  return off >>> 0;
}

/**
 * Messages with aliased slots: a held message (seq + 2), then seq + 1 at a
 * slot that makes its body cover the held one's header (with a forged
 * REQUEST header in it), then the missing seq. The peer broke its byte
 * credit: protocol.md section 13 refuses the overlapping frame (`window`).
 * A receiver that trusted the ring copy of a header at delivery would see
 * whatever the peer wrote there.
 */
function aliasedSlots(p: Peer, r: Rng): Mutation {
  const base = p.rxNext;
  const at = roomAt(p, 1100);
  const held = F.message({ type: T.ONEWAY, seq: base + 2, slot: at + 64, data: r.bytes(8) });
  const fake = F.message({
    type: r.pick([T.REQUEST, T.RESPONSE, T.ONEWAY, T.CANCEL]), seq: r.chance(0.5) ? r.u64() : BigInt(base + 2),
    slot: 0, tag: r.chance(0.5) ? 0x1ffff : r.u32(), hdr: Buffer.alloc(0), data: Buffer.alloc(0),
  });
  if (r.chance(0.5)) { fake.writeUInt16LE(r.int(0x10000), 2); fake.writeUInt32LE(r.u32(), 20); }
  const cover = F.message({ type: T.ONEWAY, seq: base + 1, slot: at + 32, data: Buffer.concat([fake, r.bytes(8)]) });
  const first = F.message({ type: T.ONEWAY, seq: base, slot: at + 1024 });
  return { name: 'aliased-slots', unit: fixed(Buffer.concat([held, cover, first])), protocol: [WINDOW] };
}

/**
 * Honest, consecutive slots, but more than the byte window in flight behind
 * a missing message: the ring wraps onto held messages. Refused (`window`).
 */
function byteCreditExceeded(p: Peer, r: Rng): Mutation {
  const W = p.sender.ringBytes;
  const frames: Buffer[] = [];
  const data = r.bytes(F.INLINE_MAX);
  let bytes = 0;
  while (bytes <= W + F.MAX_MSG_FRAME) {
    const f = p.sender.next(T.ONEWAY, 0, Buffer.alloc(0), data);
    frames.push(f);
    bytes += f.length;
  }
  // The first is held back until the end.
  return { name: 'byte-credit-exceeded', unit: fixed(Buffer.concat([...frames.slice(1), frames[0]])), protocol: [WINDOW] };
}

/**
 * A RESPONSE naming a request the target never sent (a tag out of range or
 * with another generation): dropped, not a violation (protocol.md section
 * 18); the lane goes on.
 */
function responseUnknownTag(p: Peer, r: Rng): Mutation {
  const tag = r.chance(0.5)
    ? ((1 + r.int(0xfffe)) << 16) | r.range(p.R, 0xffff)
    : r.chance(0.5) ? r.u32() & 0xffff0000 | r.int(p.R) : r.u32();
  const m = p.sender.next(T.RESPONSE, tag >>> 0, p.hdr().subarray(0, 32), p.data().subarray(0, 200));
  return { name: 'response-unknown-tag', unit: fixed(m), none: true };
}

// ---- scripts ----

function rxSteps(r: Rng, lane: number, units: Lazy[], chaosSeed?: number): Step[] {
  // One to three rx calls; the split seed picks the pieces inside each.
  const steps: Step[] = [];
  let i = 0;
  const parts = Math.min(units.length, r.range(1, 3));
  for (let k = 0; k < parts; k++) {
    const n = k === parts - 1 ? units.length - i : r.range(1, units.length - i - (parts - k - 1));
    const u = cat(units.slice(i, i + n));
    i += n;
    const bytes: Lazy = chaosSeed !== undefined && k === parts - 1 ? (v) => chaos(u(v), chaosSeed) : u;
    steps.push({ k: 'rx', lane, bytes, split: r.u32(), chaos: chaosSeed !== undefined });
  }
  return steps;
}

function helloStep(r: Rng, tc: TargetConfig, auth?: Buffer): { step: Step; peer: Peer } {
  const pm = r.pick([16, 32, 64, 100, 256, 1024]);
  const pb = r.pick([32768, 50000, 65536, 1 << 20]);
  const pr = r.pick([1, 2, 3, 8, 64, 300]);
  const h = F.hello({
    windowMsgs: pm, windowBytes: pb, maxRequests: pr, keepaliveMs: r.range(1, 5000),
    resource: r.bytes(r.int(40)), attrs: r.bytes(r.size(20, 3000)), auth,
  });
  return { step: { k: 'rx', lane: 0, bytes: fixed(h), split: r.u32() }, peer: new Peer(r, tc, pm, pb, pr) };
}

function acceptStep(r: Rng, tc: TargetConfig, id: bigint): { step: Step; peer: Peer } {
  const pm = r.pick([16, 32, 64, 100, 256, 1024]);
  const pb = r.pick([32768, 50000, 65536, 1 << 20]);
  const pr = r.pick([1, 2, 3, 8, 64, 300]);
  const a = F.accept({
    sessionId: id, windowMsgs: pm, windowBytes: pb, maxRequests: pr, keepaliveMs: r.range(1, 5000),
    portals: r.chance(0.3) ? Buffer.from('tcp://p1:1\ntcp://p2:2') : undefined, attrs: r.bytes(r.int(100)),
  });
  return { step: { k: 'rx', lane: 0, bytes: fixed(a), split: r.u32() }, peer: new Peer(r, tc, pm, pb, pr) };
}

function base(side: Side, kind: string): Script {
  return { side, kind, steps: [], decision: 'accept', respond: false, clientLanes: 1, diff: false };
}

/** The script for run `run` of a fuzz session seeded with `seed`. */
export function generate(seed: number, run: number, tc: TargetConfig): Script {
  const r = new Rng(seed, run);
  const side: Side = r.chance(0.5) ? 'srv' : 'cli';
  const roll = r.int(100);
  let s: Script;
  if (roll < 8) s = randomScript(r, side, tc);
  else if (roll < 26) s = side === 'srv' ? preHelloScript(r, tc) : helloSentScript(r, tc);
  else if (roll < 38) s = joinScript(r, side, tc);
  else if (roll < 45) s = interleaveScript(r, side, tc);
  else if (roll < 53 && side === 'srv') s = authScript(r, tc);
  else s = sessionScript(r, side, tc);
  // Diff runs compare events: the application must not answer in between.
  if (s.diff && r.chance(0.3)) s.respond = false;
  else s.diff = false;
  return s;
}

function randomScript(r: Rng, side: Side, tc: TargetConfig): Script {
  const s = base(side, `${side}-random`);
  const units: Lazy[] = [];
  if (r.chance(0.5)) {
    // Past the handshake first, so random bytes reach the open-lane parser.
    const hs = side === 'srv' ? helloStep(r, tc) : acceptStep(r, tc, r.u64() | 1n);
    s.steps.push(hs.step);
    s.kind += '-open';
  }
  const n = r.chance(0.1) ? r.range(8192, 70000) : r.range(1, 600);
  let bytes = r.bytes(n);
  if (r.chance(0.5)) {
    // Start with a plausible frame header so the parser gets further in.
    bytes[0] = r.pick([...MSG_TYPES, ...CTL_TYPES, T.BATCH]);
    bytes[1] = r.int(8);
    if (n >= 8) bytes.writeUInt32LE(r.range(8, Math.min(n, 8224)), 4);
  }
  units.push(fixed(bytes));
  s.steps.push({ k: 'rx', lane: 0, bytes: units[0], split: r.u32() });
  s.respond = r.chance(0.5);
  s.diff = true;
  return s;
}

function preHelloScript(r: Rng, tc: TargetConfig): Script {
  const m = badBeforeHello(r, tc);
  const s = base('srv', `srv-prehello:${m.name}`);
  s.steps.push({ k: 'rx', lane: 0, bytes: m.unit, split: r.u32() });
  s.expect = { lane: 0, protocol: m.protocol, close: m.close };
  s.diff = true;
  return s;
}

function helloSentScript(r: Rng, tc: TargetConfig): Script {
  const m = badAfterHello(r, tc);
  const s = base('cli', `cli-hellosent:${m.name}`);
  s.steps.push({ k: 'rx', lane: 0, bytes: m.unit, split: r.u32() });
  s.expect = { lane: 0, protocol: m.protocol, close: m.close };
  s.diff = true;
  return s;
}

/** Handshake, some valid traffic, then one bad frame (targeted) or damage (chaos). */
function sessionScript(r: Rng, side: Side, tc: TargetConfig): Script {
  const s = base(side, `${side}-session`);
  const hs = side === 'srv' ? helloStep(r, tc) : acceptStep(r, tc, r.u64() | 1n);
  const p = hs.peer;
  s.steps.push(hs.step);
  s.respond = r.chance(0.6);
  if (r.chance(0.4)) s.steps.push({ k: 'requests', n: r.range(1, 6) });
  const prefix = p.validUnits(r.int(6));
  const mode = tc.avoidKnownBugs ? r.int(11) : r.int(20);
  if (mode < 12) {
    const m = mode < 6 ? badMessage(p) : mode < 11 ? badControl(p) : r.chance(0.5) ? aliasedSlots(p, r) : byteCreditExceeded(p, r);
    s.kind += `:${m.name}`;
    const suffix = p.validUnits(r.int(3));
    s.steps.push(...rxSteps(r, 0, [...prefix, m.unit, ...suffix]));
    s.expect = { lane: 0, protocol: m.protocol, close: m.close };
  } else if (mode < 13) {
    const m = responseUnknownTag(p, r);
    s.kind += `:${m.name}`;
    s.steps.push(...rxSteps(r, 0, [...prefix, m.unit, ...p.validUnits(r.range(1, 3))]));
    s.expect = { lane: 0, none: true };
  } else {
    s.kind += ':chaos';
    const body = p.validUnits(r.range(1, 8));
    s.steps.push(...rxSteps(r, 0, [...prefix, ...body], r.u32()));
  }
  s.diff = true;
  return s;
}

/**
 * A new session whose HELLO carries F_AUTH (a random nonce and identity).
 * The host answers each with a CHALLENGE between steps; then the peer sends
 * a proof the host finds wrong (the lane ends with REJECT(auth), no
 * protocol error), or right (the session opens and carries traffic, then
 * one bad frame), or a frame the AUTH stage refuses.
 */
function authScript(r: Rng, tc: TargetConfig): Script {
  const s = base('srv', 'srv-auth');
  const hs = helloStep(r, tc, r.bytes(32 + r.range(1, 255)));
  const p = hs.peer;
  s.steps.push(hs.step);
  const mode = r.int(5);
  if (mode === 0) {
    s.kind += ':wrong-proof';
    s.auth = 'fail';
    s.steps.push({ k: 'rx', lane: 0, bytes: fixed(F.auth(r.bytes(32))), split: r.u32() });
    s.expect = { lane: 0, close: AUTH };
  } else if (mode <= 2) {
    s.auth = 'pass';
    s.decision = r.pick(['accept', 'accept', 'reject', 'redirect']);
    s.steps.push({ k: 'rx', lane: 0, bytes: fixed(F.auth(r.bytes(32))), split: r.u32() });
    if (s.decision !== 'accept') {
      s.kind += `:passed-${s.decision}`;
      s.expect = { lane: 0, close: s.decision === 'reject' ? 7 : 0 };
    } else {
      s.respond = r.chance(0.6);
      const m = mode === 1 ? badMessage(p) : badControl(p);
      s.kind += `:passed:${m.name}`;
      s.steps.push(...rxSteps(r, 0, [...p.validUnits(r.int(5)), m.unit]));
      s.expect = { lane: 0, protocol: m.protocol, close: m.close };
    }
  } else if (mode === 3) {
    // Waiting for the proof: anything but AUTH (or ERROR) is out of place.
    const f = r.int(7);
    const b = f === 0 ? F.keepalive() : f === 1 ? F.ack(0) : f === 2 ? F.receipt(0) : f === 3 ? F.hello()
      : f === 4 ? F.challenge(r.u64() | 1n, r.bytes(32)) : f === 5 ? F.accept() : p.msg(r.pick(MSG_TYPES), (1 << 16) | 0, 0, r.chance(0.5));
    s.kind += ':out-of-place';
    s.steps.push({ k: 'rx', lane: 0, bytes: fixed(b), split: r.u32() });
    s.expect = { lane: 0, protocol: [BAD_STATE] };
  } else {
    // An AUTH of the wrong size (fixed at 40 bytes).
    const b = Buffer.concat([F.auth(r.bytes(32)), r.bytes(8)]);
    const fl = r.chance(0.5) ? r.range(8, 39) : r.range(41, 48);
    b.writeUInt32LE(fl, 4);
    s.kind += ':auth-size';
    s.steps.push({ k: 'rx', lane: 0, bytes: fixed(b.subarray(0, Math.max(8, fl))), split: r.u32() });
    s.expect = { lane: 0, protocol: [MALFORMED] };
  }
  return s;
}

/**
 * Two lanes in one hostile session; one of them goes bad while the other
 * keeps sending valid traffic, which must go on being accepted.
 */
function joinScript(r: Rng, side: Side, tc: TargetConfig): Script {
  const s = base(side, `${side}-join`);
  const id = r.u64() | 1n;
  const hs = side === 'srv' ? helloStep(r, tc) : acceptStep(r, tc, id);
  const p = hs.peer;
  s.steps.push(hs.step);
  s.respond = r.chance(0.6);
  if (side === 'srv') {
    s.steps.push({ k: 'open' });
    s.steps.push({ k: 'rx', lane: 1, bytes: (v) => F.hello({ sessionId: v.sessionId }), split: r.u32() });
  } else {
    s.clientLanes = 2;
    s.steps.push({ k: 'rx', lane: 1, bytes: fixed(F.accept({ flags: F.F_JOINED, sessionId: id })), split: r.u32() });
  }
  const bad = r.int(2);
  const good = 1 - bad;
  s.steps.push(...rxSteps(r, good, p.validUnits(r.range(1, 4))));
  s.steps.push(...rxSteps(r, bad, p.validUnits(r.int(3))));
  const m = r.chance(0.55) ? badMessage(p) : badControl(p);
  s.kind += `:${m.name}`;
  s.steps.push({ k: 'rx', lane: bad, bytes: m.unit, split: r.u32() });
  s.steps.push(...rxSteps(r, good, p.validUnits(r.range(1, 4))));
  s.expect = { lane: bad, protocol: m.protocol, close: m.close };
  s.diff = true;
  return s;
}

/**
 * Two lanes of one session carrying valid messages at the same time: each
 * lane's bytes cut at random points and the pieces interleaved, some
 * messages sent on both lanes (as after a failover), each lane in its own
 * order. Nothing is wrong: every message must be delivered exactly once,
 * in order, and no lane closed.
 */
function interleaveScript(r: Rng, side: Side, tc: TargetConfig): Script {
  const s = base(side, `${side}-interleave`);
  const id = r.u64() | 1n;
  const hs = side === 'srv' ? helloStep(r, tc) : acceptStep(r, tc, id);
  const p = hs.peer;
  s.steps.push(hs.step);
  s.respond = r.chance(0.5);
  if (side === 'srv') {
    s.steps.push({ k: 'open' });
    s.steps.push({ k: 'rx', lane: 1, bytes: (v) => F.hello({ sessionId: v.sessionId }), split: r.u32() });
  } else {
    s.clientLanes = 2;
    s.steps.push({ k: 'rx', lane: 1, bytes: fixed(F.accept({ flags: F.F_JOINED, sessionId: id })), split: r.u32() });
  }
  // Few and small enough to stay within the message and byte windows while held.
  const n = r.range(2, Math.min(12, p.M - 2));
  const frames: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const tag = r.chance(0.4) ? p.requestTag() : undefined;
    const hdr = r.bytes(r.int(24));
    if (r.chance(0.15)) {
      const extLen = r.range(1, 2000);
      const { seq, slot } = p.sender.take(F.MSG_HEADER + hdr.length);
      const f = F.message({ type: tag !== undefined ? T.REQUEST : T.ONEWAY, seq, slot, tag: tag ?? 0, hdr, extLen });
      frames.push(Buffer.concat([f, r.bytes(extLen)]));
    } else {
      frames.push(p.sender.next(tag !== undefined ? T.REQUEST : T.ONEWAY, tag ?? 0, hdr, r.bytes(r.int(400))));
    }
  }
  const lanes: Buffer[][] = [[], []];
  for (const f of frames) {
    const where = r.int(4); // 0, 1: one lane; 2, 3: both
    if (where !== 1) lanes[0].push(f);
    if (where !== 0) lanes[1].push(f);
  }
  const streams = lanes.map((fs) => {
    for (let i = fs.length - 1; i > 0; i--) {
      if (r.chance(0.5)) { const j = r.int(i + 1); [fs[i], fs[j]] = [fs[j], fs[i]]; }
    }
    return Buffer.concat(fs);
  });
  const pieces = streams.map((b) => {
    const cut = new Set<number>();
    for (let k = r.range(0, 4); k > 0 && b.length > 1; k--) cut.add(r.range(1, b.length - 1));
    const at = [0, ...[...cut].sort((x, y) => x - y), b.length];
    const out: Buffer[] = [];
    for (let i = 0; i + 1 < at.length; i++) if (at[i + 1] > at[i]) out.push(b.subarray(at[i], at[i + 1]));
    return out;
  });
  while (pieces[0].length || pieces[1].length) {
    const l = pieces[0].length && (!pieces[1].length || r.chance(0.5)) ? 0 : 1;
    s.steps.push({ k: 'rx', lane: l, bytes: fixed(pieces[l].shift()!), split: r.u32() });
  }
  s.expect = { lane: 0, none: true, delivered: n };
  s.diff = true;
  return s;
}
