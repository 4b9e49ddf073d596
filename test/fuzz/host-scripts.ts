// What a hostile peer of the host fuzzer (host-run.ts) does: one run = one
// script = a sequence of actions on one or more connections to the real
// server, drawn from Rng(seed, run) alone (a run can be replayed by itself).
//
// Families (a script's kind is `<family>[:<case>]`):
//   silent      connects and never says a word
//   flood       many connections at once that never speak (or stop half way
//               through their HELLO), all held open
//   slow-hello  a HELLO cut short, or trickled a byte at a time
//   garbage     random bytes, before or after a handshake
//   core        a server-side script of the core fuzzer (scripts.ts: targeted
//               bad frames, chaos, joins, interleaved lanes), its join HELLOs
//               given the session's real key or left with a wrong one
//   claim       a REQUEST / ONEWAY with F_EXT claiming up to 4 GiB - 1, then
//               a trickle of payload bytes (or none, or all of them)
//   keys        joins and resumes with wrong keys: the session's id with a
//               random, zero or flipped key, the legitimate session's id with
//               any key, unknown ids; and valid joins that then misbehave
//   orders      valid frames in hostile orders: duplicates, gaps, window
//               overruns, acks for messages never sent, CANCEL for unknown
//               tags, CLOSE mid-request, more requests than the table holds
//   bytewise    a handshake and valid traffic written one byte per write
//   idle        a handshake, then silence (the dead-lane path)
//   auth        HELLOs with F_AUTH (pre-shared keys): a wrong proof (must
//               never be ACCEPTed), the right one (an insider, who then
//               misbehaves like the others), frames out of place in the
//               AUTH stage, an AUTH before the CHALLENGE, silence after it,
//               joins proving the key or not
// Every connection ends one of three ways: end() (our FIN), destroy() (a
// reset), or hold: it ignores the server's FIN and keeps its side open, and
// the server must end it (handshake deadline, eviction, linger).
//
// The first byte of a hostile request's header tells the server's handler
// what to do with it (host-run.ts): 0 echo, 1 echo later, 2 throw, 3 answer
// only when cancelled (or after a while). The first byte of a new session's
// attrs tells onSession: 0xA1 reject, 0xA2 redirect, 0xA3 decide late
// (possibly after the handshake deadline), 0xA4 throw; anything else accepts.

import { Rng } from './rng';
import * as F from './frames';
import { T } from './frames';
import { generate } from './scripts';
import { newView } from './host-peer';
import { pskProofs } from '../../host/psk';

import type { View, Transport } from './host-peer';

export type Bytes = Buffer | ((v: View) => Buffer);
export type Final = 'hold' | 'end' | 'destroy';

export type Action =
  /** Opens connection `slot`. */
  | { k: 'dial'; slot: number }
  /** Writes bytes on `slot`, cut at the points harness.cuts(len, split) gives (or at every byte). */
  | { k: 'write'; slot: number; bytes: Bytes; split?: number; every?: boolean; note?: string }
  /** Waits (up to ms) for the server's answer to a HELLO on `slot`: ACCEPT, REJECT, ERROR or the end. */
  | { k: 'answer'; slot: number; ms: number; mustNotJoin?: boolean; mustNotOpen?: boolean; decided?: boolean }
  | { k: 'sleep'; ms: number }
  /** Payload bytes on `slot`: `bytes` in pieces of `chunk`, `gapMs` (0: one loop turn) apart. */
  | { k: 'trickle'; slot: number; bytes: number; chunk: number; gapMs: number }
  /** n more connections that never finish a HELLO (`half`: they send part of one), all held. */
  | { k: 'flood'; n: number; half: boolean }
  | { k: 'final'; slot: number; how: Final };

export interface HostScript {
  kind: string;
  actions: Action[];
  /** The largest keepaliveMs this script's HELLOs announced (the server's dead-lane time follows it). */
  keepaliveMs: number;
}

/** What the generator needs to know of the server it attacks. */
export interface HostTarget {
  transport: Transport;
  maxMessageBytes: number;
  windowMsgs: number;
  windowBytes: number;
  maxRequests: number;
  maxHandshakes: number;
  maxHandshakesPerAddress: number;
  handshakeMs: number;
}

const MiB = 1024 * 1024;
/** The largest dataLen the wire can carry. */
export const HUGE = 0xffffffff;

/** The pre-shared key of the 'psk' server variant (host-run.ts): its legitimate clients and some hostile peers (insiders) know it. */
export const FUZZ_PSK = { identity: 'fuzz-insider', key: Buffer.from('host fuzz pre-shared key 32 B..') };

/** Handler behaviours (first header byte of a hostile request). */
export const H_ECHO = 0, H_LATER = 1, H_THROW = 2, H_HANG = 3;
/** onSession behaviours (first attrs byte of a hostile HELLO). */
export const A_REJECT = 0xa1, A_REDIRECT = 0xa2, A_LATE = 0xa3, A_THROW = 0xa4;

function floorPow2(x: number): number {
  return 2 ** Math.floor(Math.log2(x));
}

function final(r: Rng): Final {
  const x = r.int(10);
  return x < 4 ? 'hold' : x < 7 ? 'end' : 'destroy';
}

/** A peer's side of one session: its offer, the negotiated windows, its numbering. */
class Peer {
  readonly sender: F.Sender;
  readonly M: number;
  readonly R: number;
  readonly W: number;
  readonly ka: number;
  nextIdx = 0;
  readonly tags: number[] = [];
  /** Message frames sent, for duplicates. */
  readonly sent: Buffer[] = [];
  readonly hello: Buffer;

  constructor(readonly r: Rng, readonly t: HostTarget) {
    const pm = r.pick([16, 64, 1024, 65536]);
    const pb = r.pick([32768, 65536, 1 << 20, 64 * MiB]);
    const pr = r.pick([1, 8, 256, 65535]);
    const x = r.int(100);
    // The server's dead-lane time is 3 × the larger keepalive: mostly short, so idle peers cycle.
    this.ka = x < 70 ? r.pick([1, 20, 100, 250]) : x < 99 ? 500 : r.pick([120_000, 0xffffffff]);
    this.M = floorPow2(Math.min(pm, t.windowMsgs));
    this.W = floorPow2(Math.min(pb, t.windowBytes));
    this.R = Math.min(pr, t.maxRequests, 65535);
    this.sender = new F.Sender(this.W);
    const y = r.int(100);
    const decision = y < 88 ? 0 : y < 91 ? A_REJECT : y < 94 ? A_REDIRECT : y < 98 ? A_LATE : A_THROW;
    const attrs = r.bytes(r.size(16, 2000));
    if (attrs.length && decision) attrs[0] = decision;
    else if (attrs.length && attrs[0] >= 0xa0 && attrs[0] <= 0xaf) attrs[0] = 0;
    this.hello = F.hello({
      windowMsgs: pm, windowBytes: pb, maxRequests: pr, keepaliveMs: this.ka,
      resource: r.chance(0.8) ? Buffer.from('/svc') : r.bytes(r.int(40)), attrs,
    });
  }

  hdr(): Buffer {
    const h = this.r.bytes(this.r.size(16, 300));
    if (h.length) {
      const x = this.r.int(100);
      h[0] = x < 75 ? H_ECHO : x < 88 ? H_LATER : x < 95 ? H_THROW : H_HANG;
    }
    return h;
  }

  data(): Buffer {
    return this.r.bytes(this.r.size(200, 6000));
  }

  tag(): number | undefined {
    if (this.nextIdx >= this.R) return undefined;
    const tag = (((1 + this.r.int(0xfffe)) << 16) | this.nextIdx++) >>> 0;
    this.tags.push(tag);
    return tag;
  }

  /** A valid inline message with the next seq and slot. */
  msg(type: number, tag = 0, flags = 0): Buffer {
    let hdr = type === T.CANCEL || type === T.CLOSE ? Buffer.alloc(0) : this.hdr();
    let data = type === T.CANCEL || type === T.CLOSE ? Buffer.alloc(0) : this.data();
    if (hdr.length > F.MAX_APP_HEADER) hdr = hdr.subarray(0, F.MAX_APP_HEADER);
    if (hdr.length + data.length > F.INLINE_MAX) data = data.subarray(0, F.INLINE_MAX - hdr.length);
    const b = this.sender.next(type, tag, hdr, data, flags);
    this.sent.push(b);
    return b;
  }

  request(behaviour?: number): Buffer | undefined {
    const tag = this.tag();
    if (tag === undefined) return undefined;
    const b = this.msg(T.REQUEST, tag, this.r.chance(0.2) ? F.F_RECEIPT : 0);
    if (behaviour !== undefined && b.readUInt16LE(2) > 0) b[F.MSG_HEADER] = behaviour;
    return b;
  }

  /** An EXT message frame claiming `len` payload bytes (the payload is not included). */
  claim(len: number, type: number): Buffer {
    const tag = type === T.REQUEST ? this.tag() : undefined;
    const t = tag === undefined ? T.ONEWAY : T.REQUEST;
    const hdr = this.hdr().subarray(0, 64);
    const { seq, slot } = this.sender.take(F.MSG_HEADER + hdr.length);
    return F.message({ type: t, seq, slot, tag: tag ?? 0, hdr, extLen: len >>> 0 });
  }
}

/** The script of run `run` against target t. */
export function hostScript(seed: number, run: number, t: HostTarget): HostScript {
  const r = new Rng(seed ^ 0x486f7374, run);
  const roll = r.int(100);
  const s: HostScript = { kind: '', actions: [], keepaliveMs: 0 };
  if (roll < 6) silent(r, s);
  else if (roll < 10) flood(r, s, t);
  else if (roll < 16) slowHello(r, s, t);
  else if (roll < 22) garbage(r, s, t);
  else if (roll < 44) core(r, s, t, seed, run);
  else if (roll < 60) claim(r, s, t);
  else if (roll < 69) keys(r, s, t);
  else if (roll < 77) auth(r, s, t);
  else if (roll < 91) orders(r, s, t);
  else if (roll < 96) bytewise(r, s, t);
  else idle(r, s, t);
  return s;
}

function handshake(r: Rng, s: HostScript, t: HostTarget, slot = 0): Peer {
  const p = new Peer(r, t);
  s.keepaliveMs = Math.max(s.keepaliveMs, p.ka);
  s.actions.push({ k: 'dial', slot });
  s.actions.push({ k: 'write', slot, bytes: p.hello, split: r.chance(0.3) ? r.u32() : undefined, note: 'HELLO' });
  s.actions.push({ k: 'answer', slot, ms: 500 });
  return p;
}

function silent(r: Rng, s: HostScript): void {
  s.kind = 'silent';
  s.actions.push({ k: 'dial', slot: 0 });
  if (r.chance(0.5)) s.actions.push({ k: 'sleep', ms: r.int(30) });
  s.actions.push({ k: 'final', slot: 0, how: r.chance(0.8) ? 'hold' : final(r) });
}

function flood(r: Rng, s: HostScript, t: HostTarget): void {
  const half = r.chance(0.3);
  s.kind = `flood${half ? ':half-hello' : ''}`;
  // Over tcp every peer is 127.0.0.1, one address: the per-address share is what a flood meets there.
  const max = t.transport === 'tcp' ? t.maxHandshakesPerAddress + 8 : t.maxHandshakes + 32;
  s.actions.push({ k: 'flood', n: r.range(8, max), half });
}

function slowHello(r: Rng, s: HostScript, t: HostTarget): void {
  const p = new Peer(r, t);
  s.actions.push({ k: 'dial', slot: 0 });
  if (r.chance(0.5)) {
    s.kind = 'slow-hello:cut';
    const n = r.range(1, p.hello.length - 1);
    s.actions.push({ k: 'write', slot: 0, bytes: p.hello.subarray(0, n), split: r.u32(), note: `HELLO, ${n} of ${p.hello.length} bytes` });
  } else {
    // A byte now and then: the handshake deadline runs out first.
    s.kind = 'slow-hello:trickle';
    const gap = r.pick([10, 20, 40]);
    for (let i = 0; i < Math.min(p.hello.length, r.range(2, 8)); i++) {
      s.actions.push({ k: 'write', slot: 0, bytes: p.hello.subarray(i, i + 1) });
      s.actions.push({ k: 'sleep', ms: gap });
    }
  }
  s.actions.push({ k: 'final', slot: 0, how: final(r) });
}

function garbage(r: Rng, s: HostScript, t: HostTarget): void {
  const open = r.chance(0.5);
  s.kind = open ? 'garbage:after-handshake' : 'garbage';
  if (open) handshake(r, s, t);
  else s.actions.push({ k: 'dial', slot: 0 });
  const n = r.chance(0.1) ? r.range(8192, 70000) : r.range(1, 600);
  const b = r.bytes(n);
  if (r.chance(0.5) && n >= 8) {
    b[0] = r.pick([T.HELLO, T.REQUEST, T.ONEWAY, T.ACK, T.BATCH, T.ERROR, T.KEEPALIVE]);
    b[1] = r.int(8);
    b.writeUInt32LE(r.range(8, Math.min(n, 8224)), 4);
  }
  s.actions.push({ k: 'write', slot: 0, bytes: b, split: r.u32() });
  s.actions.push({ k: 'final', slot: 0, how: final(r) });
}

/** A server-side script of the core fuzzer, played against the real server. */
function core(r: Rng, s: HostScript, t: HostTarget, seed: number, run: number): void {
  const tc = { windowMsgs: t.windowMsgs, windowBytes: t.windowBytes, maxRequests: t.maxRequests };
  const sub = (seed ^ 0x636f7265) >>> 0;
  let k = run * 8;
  let sc = generate(sub, k, tc);
  while (sc.side !== 'srv') sc = generate(sub, ++k, tc);
  s.kind = `core:${sc.kind.replace(/^srv-/, '')}`;
  // Joins in these scripts carry the core fuzzer's fixed key: give most of them the session's real one.
  const realKey = r.chance(0.7);
  const dialed = new Set<number>();
  const dial = (slot: number) => { if (!dialed.has(slot)) { dialed.add(slot); s.actions.push({ k: 'dial', slot }); } };
  dial(0);
  let opened = 1;
  let ka = 0;
  for (const st of sc.steps) {
    if (st.k === 'open') { dial(opened++); continue; }
    if (st.k === 'requests') continue; // the server's application sends no requests here
    const bytes = st.bytes;
    // HELLOs announce a keepalive as the other families do (the server's dead-lane time follows it;
    // a join HELLO built before the session's ACCEPT arrived is a new session's).
    const k = r.pick([1, 20, 100, 250, 500]);
    ka = Math.max(ka, k);
    const fix = (b: Buffer, v: View): Buffer => withKeepalive(realKey ? withKey(b, v) : b, k);
    const b: Bytes = typeof bytes === 'function' ? (v) => fix(bytes(v), v) : fix(bytes, newView(0n, 0));
    s.actions.push({ k: 'write', slot: st.lane, bytes: b, split: r.chance(0.7) ? st.split : undefined });
    const first = typeof bytes === 'function' ? undefined : bytes[0];
    // After a HELLO, wait for the answer: later steps are built from it.
    if (first === T.HELLO || typeof bytes === 'function') s.actions.push({ k: 'answer', slot: st.lane, ms: 300, mustNotJoin: !realKey && st.lane > 0 });
  }
  s.keepaliveMs = ka;
  for (const slot of dialed) s.actions.push({ k: 'final', slot, how: final(r) });
}

function withKeepalive(b: Buffer, ka: number): Buffer {
  if (b.length < F.HELLO_SIZE || b[0] !== T.HELLO) return b;
  const c = Buffer.from(b);
  c.writeUInt32LE(ka, 44);
  return c;
}

/** A join HELLO for the peer's own session with the core fuzzer's key gets the real one. */
function withKey(b: Buffer, v: View): Buffer {
  if (b.length >= F.HELLO_SIZE && b[0] === T.HELLO && v.sessionId !== 0n && b.readBigUInt64LE(16) === v.sessionId &&
    b.subarray(48, 64).equals(F.FUZZ_KEY)) {
    const c = Buffer.from(b);
    v.key.copy(c, 48);
    return c;
  }
  return b;
}

function claim(r: Rng, s: HostScript, t: HostTarget): void {
  const p = handshake(r, s, t);
  const mM = t.maxMessageBytes;
  const x = r.int(8);
  const hdrRoom = 64;
  const len = x === 0 ? HUGE
    : x === 1 ? mM + 1 + r.int(4096)
    : x === 2 ? 60 * MiB
    : x === 3 ? mM - hdrRoom
    : x === 4 ? r.range(mM >>> 1, mM - hdrRoom)
    : r.range(1, Math.min(mM - hdrRoom, 256 * 1024));
  const name = x === 0 ? '4GiB' : x === 1 ? 'over-max' : x === 2 ? '60MiB' : x === 3 ? 'at-max' : x === 4 ? 'large' : 'small';
  s.kind = `claim:${name}`;
  const type = r.chance(0.5) ? T.REQUEST : T.ONEWAY;
  const before: Buffer[] = [];
  for (let i = r.int(3); i > 0; i--) before.push(p.msg(T.ONEWAY));
  const frame = p.claim(len, type);
  // Sometimes the claim ends a BATCH (the EXT frame must be its last).
  const head = before.length && r.chance(0.5) ? F.batch([...before, frame]) : Buffer.concat([...before, frame]);
  s.actions.push({ k: 'write', slot: 0, bytes: head, split: r.chance(0.3) ? r.u32() : undefined, note: `claim ${len} bytes` });
  // What follows the claim: nothing, a trickle, or (small claims) the whole payload.
  const cap = Math.min(len, t.transport === 'tcp' ? 256 * 1024 : 1 * MiB);
  const y = r.int(10);
  const bytes = y < 2 ? 0 : len <= 256 * 1024 && y >= 7 ? len : Math.min(cap, r.pick([1, 100, 4095, 65535, 65536, 65537, 200_000, r.int(cap + 1)]));
  if (bytes > 0) {
    let chunk = r.pick([1, 7, 512, 4096, 16384, 65536]);
    const gapMs = r.pick([0, 0, 0, 1, 2]);
    // At most 64 pieces: a trickle, not a crawl.
    chunk = Math.max(chunk, Math.ceil(bytes / 64));
    s.actions.push({ k: 'trickle', slot: 0, bytes, chunk, gapMs });
  }
  if (bytes === len && r.chance(0.5)) {
    for (const u of validUnits(r, p, r.range(1, 3))) s.actions.push({ k: 'write', slot: 0, bytes: u });
  }
  s.actions.push({ k: 'final', slot: 0, how: final(r) });
}

function keys(r: Rng, s: HostScript, t: HostTarget): void {
  const resume = r.chance(0.3);
  s.kind = resume ? 'keys:resume' : 'keys:join';
  const p = handshake(r, s, t);
  if (r.chance(0.5)) for (const u of validUnits(r, p, r.range(1, 3))) s.actions.push({ k: 'write', slot: 0, bytes: u });
  if (resume) {
    s.actions.push({ k: 'sleep', ms: r.int(5) });
    s.actions.push({ k: 'final', slot: 0, how: 'destroy' });
    s.actions.push({ k: 'sleep', ms: r.int(20) });
  }
  const n = r.range(1, 3);
  for (let i = 1; i <= n; i++) {
    const c = r.int(10);
    const bad = c !== 0;
    const flip = r.int(128);
    const rnd = r.bytes(16);
    const rid = r.u64() | 1n;
    const ackSeq = r.chance(0.5) ? undefined : r.int(4);
    // 0 is the real key for our own session; every other case must be refused (unknown-session).
    const bytes = (v: View): Buffer => {
      const own = v.sessionId;
      const key = Buffer.from(v.key);
      if (c === 3) key[flip >> 3] ^= 1 << (flip & 7);
      const [id, k] =
        c === 0 ? [own, v.key] : c === 1 ? [own, rnd] : c === 2 ? [own, Buffer.alloc(16)] : c === 3 ? [own, key]
        : c === 4 ? [v.legitId, rnd] : c === 5 ? [v.legitId, v.key] : c === 6 ? [v.legitId, Buffer.alloc(16)]
        : c === 7 ? [rid, v.key] : c === 8 ? [rid, rnd] : [own ^ 1n, v.key];
      return F.hello({ sessionId: id === 0n ? 1n : id, key: k, ackSeq: ackSeq ?? v.sent, keepaliveMs: p.ka });
    };
    s.kind += bad ? ':bad' : ':good';
    s.actions.push({ k: 'dial', slot: i });
    s.actions.push({ k: 'write', slot: i, bytes, split: r.chance(0.3) ? r.u32() : undefined, note: `join, key case ${c}` });
    // A wrong key must never be let in: checked when the answer comes.
    s.actions.push({ k: 'answer', slot: i, ms: 500, mustNotJoin: bad });
    if (r.chance(0.6)) {
      for (const u of validUnits(r, p, r.range(1, 4))) s.actions.push({ k: 'write', slot: i, bytes: u, split: r.chance(0.3) ? r.u32() : undefined });
    }
    if (r.chance(0.3)) s.actions.push({ k: 'write', slot: i, bytes: r.bytes(r.range(1, 200)) });
  }
  if (!resume) s.actions.push({ k: 'final', slot: 0, how: final(r) });
  for (let i = 1; i <= n; i++) s.actions.push({ k: 'final', slot: i, how: final(r) });
}

/** A HELLO with F_AUTH: hello's bytes, then nonce and identity. */
function withAuth(hello: Buffer, nonce: Buffer, identity: Buffer): Buffer {
  const b = Buffer.concat([hello, nonce, identity]);
  b[1] |= 0x01;
  b.writeUInt32LE(b.length, 4);
  return b;
}

/** The AUTH for the last CHALLENGE, with `key` (the right proof when it is FUZZ_PSK's). */
function proofFor(key: Buffer, identity: Buffer, nonce: Buffer, resource: Buffer): (v: View) => Buffer {
  return (v) => {
    const c = v.challenge ?? { sessionId: 1n, nonce: Buffer.alloc(32) };
    return F.auth(pskProofs(key, identity, nonce, c.nonce, c.sessionId, resource).client);
  };
}

function auth(r: Rng, s: HostScript, t: HostTarget): void {
  const p = new Peer(r, t);
  s.keepaliveMs = Math.max(s.keepaliveMs, p.ka);
  const insider = r.chance(0.6);
  const identity = insider ? Buffer.from(FUZZ_PSK.identity) : r.bytes(r.range(1, 255));
  const key = insider ? FUZZ_PSK.key : r.bytes(32);
  const nonce = r.bytes(32);
  const resource = p.hello.subarray(64, 64 + p.hello.readUInt16LE(12));
  const c = r.int(6);
  s.kind = `auth:${['prove', 'wrong-proof', 'out-of-place', 'early-auth', 'silent', 'join'][c]}${insider ? ':insider' : ''}`;
  s.actions.push({ k: 'dial', slot: 0 });
  s.actions.push({ k: 'write', slot: 0, bytes: withAuth(p.hello, nonce, identity), split: r.chance(0.3) ? r.u32() : undefined });
  if (c === 3) {
    // The AUTH before the CHALLENGE could have come: refused either way (bad-state, or a wrong proof).
    s.actions.push({ k: 'write', slot: 0, bytes: F.auth(r.bytes(32)) });
    s.actions.push({ k: 'answer', slot: 0, ms: 300, mustNotOpen: true, decided: true });
  } else {
    s.actions.push({ k: 'answer', slot: 0, ms: 300 });
    if (c === 1) {
      s.actions.push({ k: 'write', slot: 0, bytes: F.auth(r.bytes(32)) });
      s.actions.push({ k: 'sleep', ms: r.int(5) });
      s.actions.push({ k: 'answer', slot: 0, ms: 300, mustNotOpen: true, decided: true });
    } else if (c === 2) {
      for (const u of validUnits(r, p, r.range(1, 3))) s.actions.push({ k: 'write', slot: 0, bytes: u });
      s.actions.push({ k: 'answer', slot: 0, ms: 300, mustNotOpen: true, decided: true });
    } else if (c === 0 || c === 5) {
      // An outsider's proof with its own key is wrong; an insider's is right and its session opens.
      s.actions.push({ k: 'write', slot: 0, bytes: proofFor(key, identity, nonce, resource) });
      s.actions.push({ k: 'answer', slot: 0, ms: 300, mustNotOpen: !insider, decided: true });
      for (const u of validUnits(r, p, r.range(1, 4))) s.actions.push({ k: 'write', slot: 0, bytes: u, split: r.chance(0.3) ? r.u32() : undefined });
      if (c === 5) {
        // A join of that session: the right key or not, and the right proof (over the session's resource) or not.
        const jn = r.bytes(32);
        const good = insider && r.chance(0.6);
        s.kind += good ? ':good-join' : ':bad-join';
        s.actions.push({ k: 'dial', slot: 1 });
        s.actions.push({ k: 'write', slot: 1, bytes: (v) => withAuth(F.hello({ sessionId: v.sessionId || 1n, key: v.key, ackSeq: v.sent, keepaliveMs: p.ka }), jn, identity) });
        s.actions.push({ k: 'answer', slot: 1, ms: 300 });
        s.actions.push({ k: 'write', slot: 1, bytes: good ? proofFor(key, identity, jn, resource) : F.auth(r.bytes(32)) });
        s.actions.push({ k: 'answer', slot: 1, ms: 300, mustNotJoin: !good, decided: true });
        for (const u of validUnits(r, p, r.range(1, 3))) s.actions.push({ k: 'write', slot: 1, bytes: u });
        s.actions.push({ k: 'final', slot: 1, how: final(r) });
      }
    }
    // c === 4: silent after the CHALLENGE; the handshake deadline lets it go.
  }
  s.actions.push({ k: 'final', slot: 0, how: final(r) });
}

/** n units of valid traffic: requests, one-way messages, acks, keepalives, sometimes batched. */
function validUnits(r: Rng, p: Peer, n: number): Bytes[] {
  const out: Bytes[] = [];
  for (let i = 0; i < n; i++) {
    const one = (): Bytes | undefined => {
      const x = r.int(10);
      if (x < 4) return p.request();
      if (x < 8) return p.msg(T.ONEWAY, 0, r.chance(0.2) ? F.F_RECEIPT : 0);
      if (x < 9) return (v: View) => F.ack(v.sent);
      return F.keepalive();
    };
    if (r.chance(0.3)) {
      const parts = [one(), one(), one()].filter((u): u is Bytes => u !== undefined);
      out.push((v) => F.batch(parts.map((u) => (typeof u === 'function' ? u(v) : u))));
    } else {
      const u = one();
      if (u) out.push(u);
    }
  }
  return out;
}

function orders(r: Rng, s: HostScript, t: HostTarget): void {
  const p = handshake(r, s, t);
  const names: string[] = [];
  const units: Bytes[] = [];
  for (let i = r.range(1, 6); i > 0; i--) {
    const x = r.int(14);
    switch (x) {
      case 0: { // the same message twice (a duplicate seq): dropped
        const m = p.request() ?? p.msg(T.ONEWAY);
        units.push(m, m);
        names.push('dup');
        break;
      }
      case 1: { // an old message again, later
        if (p.sent.length) units.push(r.pick(p.sent));
        names.push('replay');
        break;
      }
      case 2: { // two messages swapped: the later one is held, then both delivered
        const a = p.msg(T.ONEWAY), b = p.request() ?? p.msg(T.ONEWAY);
        units.push(b, a);
        names.push('swap');
        break;
      }
      case 3: { // a gap, then more than the message window behind it: window
        p.msg(T.ONEWAY);
        for (let k = 0; k < Math.min(p.M + 2, 80); k++) units.push(p.sender.next(T.ONEWAY, 0, Buffer.alloc(0), r.bytes(r.int(64))));
        names.push('window-overrun');
        break;
      }
      case 4: // an ACK for messages the server never sent: window
        units.push(((extra: number) => (v: View) => F.ack(v.sent + extra))(r.range(1, 1 << 20)));
        names.push('ack-unsent');
        break;
      case 5: { // CANCEL for a tag never used (in range): ignored
        const tag = (((1 + r.int(0xfffe)) << 16) | r.int(p.R)) >>> 0;
        if (!p.tags.includes(tag)) units.push(p.msg(T.CANCEL, tag));
        names.push('cancel-unknown');
        break;
      }
      case 6: { // a request the handler holds, then CANCEL for it
        const m = p.request(H_HANG);
        if (m) { units.push(m); units.push(p.msg(T.CANCEL, m.readUInt32LE(24))); }
        names.push('cancel');
        break;
      }
      case 7: { // CLOSE while requests are being answered
        const m = p.request(r.pick([H_LATER, H_HANG, H_ECHO]));
        if (m) units.push(m);
        units.push(p.msg(T.CLOSE));
        names.push('close-mid-request');
        break;
      }
      case 8: { // more requests than the table holds, the handler holding them: limit
        for (let k = 0; k < Math.min(p.R + 1, 40); k++) {
          const tag = ((((1 + r.int(0xfffe)) << 16) | (k % p.R)) >>> 0);
          const hdr = Buffer.from([H_HANG]);
          units.push(p.sender.next(T.REQUEST, tag, hdr, r.bytes(r.int(32))));
        }
        names.push('request-overrun');
        break;
      }
      case 9: // RECEIPT and RESPONSE for things never sent: dropped
        units.push(F.receipt(r.int(100)));
        units.push(p.msg(T.RESPONSE, r.u32() >>> 0));
        names.push('unknown-receipt-response');
        break;
      case 10: // RESEND for nothing
        units.push((v: View) => F.ack(v.sent, F.F_RESEND));
        names.push('resend');
        break;
      case 11: { // a small EXT payload, complete: delivered, answered with an EXT response
        const len = r.range(F.INLINE_MAX, 64 * 1024);
        const f = p.claim(len, T.REQUEST);
        units.push(Buffer.concat([f, r.bytes(len)]));
        names.push('ext');
        break;
      }
      case 12: // a burst of valid traffic
        units.push(...validUnits(r, p, r.range(2, 10)));
        names.push('burst');
        break;
      default: // a new HELLO on the open lane: bad-state
        units.push(F.hello());
        names.push('hello-again');
    }
  }
  s.kind = `orders:${names[0] ?? 'none'}`;
  // Units are written in a few writes, each cut at random points (or not).
  let i = 0;
  while (i < units.length) {
    const n = r.range(1, Math.min(8, units.length - i));
    const group = units.slice(i, i + n);
    i += n;
    s.actions.push({
      k: 'write', slot: 0, bytes: (v) => Buffer.concat(group.map((u) => (typeof u === 'function' ? u(v) : u))),
      split: r.chance(0.5) ? r.u32() : undefined,
    });
  }
  s.actions.push({ k: 'final', slot: 0, how: final(r) });
}

function bytewise(r: Rng, s: HostScript, t: HostTarget): void {
  s.kind = 'bytewise';
  const p = new Peer(r, t);
  s.keepaliveMs = p.ka;
  s.actions.push({ k: 'dial', slot: 0 });
  s.actions.push({ k: 'write', slot: 0, bytes: p.hello, every: true, note: 'HELLO' });
  s.actions.push({ k: 'answer', slot: 0, ms: 500 });
  const units = validUnits(r, p, r.range(1, 4));
  s.actions.push({ k: 'write', slot: 0, bytes: (v) => Buffer.concat(units.map((u) => (typeof u === 'function' ? u(v) : u))).subarray(0, 2048), every: true });
  s.actions.push({ k: 'final', slot: 0, how: final(r) });
}

function idle(r: Rng, s: HostScript, t: HostTarget): void {
  s.kind = 'idle';
  const p = handshake(r, s, t);
  if (r.chance(0.5)) for (const u of validUnits(r, p, r.range(1, 3))) s.actions.push({ k: 'write', slot: 0, bytes: u });
  s.actions.push({ k: 'final', slot: 0, how: r.chance(0.8) ? 'hold' : final(r) });
}
