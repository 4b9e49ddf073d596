// Lanes and sessions: fixed tables of structs indexed by handle, allocated
// once at init. Handles given to the host are (generation << 16) | index, so
// a stale handle never reaches a reused slot.
//
//  Lane (one connection)                    Session
//  +----------------------------+           +-----------------------------+
//  | state role pos extWait     |           | state role desired rr       |
//  | gen inDirty session        |           | gen flags id version        |
//  | rx assembly: asmLen need   |           | windows: M W R               |
//  |   body: left skip dst seq  |           | tx: nextSeq acked nextSend  |
//  |   batchLeft                |           |     head tail rtxFrom        |
//  | ctlLen err clocks          |           | rx: next                     |
//  | peer's HELLO parameters    |           | timers, receipts, portals    |
//  | rxBuf ctlBuf (4 KiB each)  |           | arenas: txIdx rxIdx pend inb |
//  +----------------------------+           |   txRing rxRing lanes ...    |
//                                           +-----------------------------+

import * as cfg from "./config";
import { MAX_CONTROL_FRAME, MAX_PORTALS_BYTES } from "./wire";

// Lane states.
export const L_FREE: u8 = 0;
export const L_CONNECTING: u8 = 1;     // client: host is opening the connection
export const L_HELLO_SENT: u8 = 2;     // client: waiting for ACCEPT / REJECT / REDIRECT
export const L_AWAIT_HELLO: u8 = 3;    // server: connection accepted, no HELLO yet
export const L_PENDING_ACCEPT: u8 = 4; // server: the host decides accept / reject / redirect
export const L_OPEN: u8 = 5;           // attached to a session, carrying traffic
export const L_CLOSING: u8 = 6;        // closed by the core; ignoring input until lane_down
export const L_AUTH: u8 = 7;           // server: a HELLO with F_AUTH; CHALLENGE / AUTH until the host's verdict

export const ROLE_CLIENT: u8 = 1;
export const ROLE_SERVER: u8 = 2;

// Session states.
export const S_FREE: u8 = 0;
export const S_CONNECTING: u8 = 1; // client: first HELLO in flight
export const S_OPEN: u8 = 2;
export const S_RESUMING: u8 = 3;   // every lane lost; waiting up to resumeMs
export const S_CLOSING: u8 = 4;    // local close: CLOSE sent, waiting for its ack
export const S_DRAINING: u8 = 5;   // peer closed: acking, then gone

// Session flags.
export const SF_ACK: u8 = 0x01;
export const SF_RTX: u8 = 0x02;
export const SF_BACKPRESSURED: u8 = 0x04;
export const SF_CLOSE_QUEUED: u8 = 0x08;
export const SF_RESEND: u8 = 0x10;
/** The peer takes no one-way messages (its ACCEPT had F_NO_ONEWAY). */
export const SF_NO_ONEWAY: u8 = 0x20;
/** An ACK is owed but may wait: it rides on the session's next batch, or goes at ackAt (deliver.ts ackByRule). */
export const SF_ACK_LATER: u8 = 0x40;
/** Every lane of this session proves the pre-shared key (client: ours; server: its first lane did). */
export const SF_AUTH: u8 = 0x80;

@unmanaged export class Lane {
  state: u8;
  role: u8;
  pos: u8;
  extWait: u8;
  /** 1: the message body being read ends with a rendezvous descriptor; 2: reading it. */
  rdvStage: u8;
  gen: u16;
  inDirty: u8;
  inBatch: u8;
  session: i32;
  asmLen: u32;
  need: u32;
  bodyLeft: u32;
  bodySkip: u32;
  bodyDst: usize;
  bodySeq: u64;
  batchLeft: u32;
  ctlLen: u32;
  ctlFrames: u32;
  err: i32;
  peerMsgs: u32;
  peerBytes: u32;
  peerRequests: u32;
  peerKeepaliveMs: u32;
  version: u32;
  lastRx: u64;
  lastTx: u64;
  opened: u64;
  /** Rendezvous: EXT payloads of at least this many bytes go by F_RDV on this lane (0: never). */
  rdvMin: u32;
  rxBuf: usize;
  ctlBuf: usize;
}

@unmanaged export class Session {
  state: u8;
  role: u8;
  desired: u8;
  rr: u8;
  gen: u16;
  inDirty: u8;
  flags: u8;
  id: u64;
  keyLo: u64;         // the session key (wire.ts KEY_SIZE), bytes 0..7
  keyHi: u64;         //   and 8..15; 0 until known
  version: u32;
  M: u32;
  W: u32;
  R: u32;
  peerKeepaliveUs: u64;
  txNextSeq: u64;
  txAcked: u64;
  txNextSend: u64;
  rtxFrom: u64;
  txHead: u32;
  txTail: u32;
  rxNext: u64;
  /** What our ACKs say: every message below it was delivered and released (= rxNext without holdRx). */
  rxAck: u64;
  /** Stream offset where the message at rxAck starts (= rxBase when nothing is held). */
  ackBase: u32;
  /** Stream offset where the last delivered message ended (receive byte window). */
  rxBase: u32;
  /** One past the highest sequence number held in the receive window (scans stop there). */
  rxHigh: u64;
  /** Messages below this one were lost mid-lane here: RESEND until rxNext passes it. */
  resendUntil: u64;
  resumeAt: u64;
  reqDeadline: u64;
  /** A delayed ACK goes out by then at the latest (0: none owed). */
  ackAt: u64;
  /** The ackSeq of the last ACK written, and rxBase then: what the peer knows we delivered. */
  ackSentSeq: u64;
  ackSentBase: u32;
  closeSeq: u64;
  /**
   * Where deliver.ts inByteWindow starts its scans (each a hint, checked
   * against the entries before use): every entry in (rxNext, rxLowHint) is
   * empty; and every entry in (rxUpFrom, rxUpAt) is empty, rxUpAt being the
   * nearest message held above rxUpFrom (the last one that arrived) when it
   * was looked for.
   */
  rxLowHint: u64;
  rxUpFrom: u64;
  rxUpAt: u64;
  cancelsUnsent: u32;
  receiptCount: u32;
  portalsLen: u32;
  redirects: u32;
  nextPortal: u32;
  // arenas
  lanes: usize;       // LANES_PER_SESSION x i32 lane index (-1 none)
  reconnectAt: usize; // LANES_PER_SESSION x u64 (0 none)
  attempts: usize;    // LANES_PER_SESSION x u32
  txIdx: usize;       // windowMsgs x TxEntry
  rxIdx: usize;       // windowMsgs x RxEntry
  pend: usize;        // maxRequests x PendEntry (requests we sent)
  inb: usize;         // maxRequests x InbEntry (requests we received)
  receipts: usize;    // windowMsgs x u64
  txRing: usize;      // windowBytes
  rxRing: usize;      // windowBytes
  portals: usize;     // MAX_PORTALS_BYTES
  hello: usize;       // client: resource then attrs for HELLO
  helloLen: u32;
  resourceLen: u32;
}

// TxEntry, 24 bytes: one message we sent and the peer has not acked.
//   0 u32 off (stream offset) | 4 u32 len | 8 i32 lane (-1: to (re)send)
//  12 u32 ext | 16 u8 type | 17 u8 flags | 18 u8 receipted | 20 u32 tag
export const TX_ENTRY: u32 = 24;
// RxEntry, 32 bytes: one message slot of the receive window, with the
// header fields as they were checked when the frame arrived. Delivery reads
// these, never the ring copy of the header: a broken peer could write over
// the ring copy with a later frame, after the checks.
//   0 u8 state | 1 u8 type | 2 u8 flags | 4 i32 owner lane | 8 u32 pos (in the ring)
//  12 u32 ext | 16 u32 slot (sender's stream offset) | 20 u32 hdrLen | 24 u32 dataLen | 28 u32 tag
export const RX_ENTRY: u32 = 32;
export const RX_EMPTY: u8 = 0;
export const RX_RECEIVING: u8 = 1;
export const RX_PRESENT: u8 = 2;
/** Delivered, and its bytes lent to the host (holdRx) until release(). */
export const RX_HELD: u8 = 3;
// PendEntry, 16 bytes: 0 u8 state | 2 u16 gen | 8 u64 deadline (0 none)
export const PEND_ENTRY: u32 = 16;
export const P_FREE: u8 = 0;
export const P_WAITING: u8 = 1;
export const P_CANCEL_UNSENT: u8 = 2; // given up; CANCEL not yet queued
export const P_CANCELLED: u8 = 3;     // CANCEL queued; freed when it is acked
// InbEntry, 16 bytes: 0 u8 state | 4 u32 tag | 8 u64 seq
export const INB_ENTRY: u32 = 16;

export let lanesBase: usize = 0;
export let sessionsBase: usize = 0;
let laneCursor: u32 = 0;
let sessionCursor: u32 = 0;

// Which lanes and sessions are in use, one bit each: the timer scans
// (timeout, nextDeadline) and lookups visit the used entries in index order
// at a cost of one word per 32 entries, so a large table (thousands of
// lanes, a thousand sessions) costs a turn little more than a small one.
let laneBits: usize = 0;
let sessionBits: usize = 0;

@inline function bitWords(n: u32): usize {
  return <usize>((n + 31) >> 5);
}

// Pre-shared-key handshake state, one record per lane, carved after every
// session arena (allocTables), so no address the core had before it moves:
// recordings of sessions without keys replay unchanged. The client's
// identity lives in its session's HELLO buffer, after resource and attrs.
//
//  AuthRec, AUTH_REC bytes:
//   0 u8 stage   1 u8 identityLen   2 u8 join (server: the HELLO named a session)
//   8 u64 sessionId (the CHALLENGE's)
//  16 u64 ackSeq (server, a join: the HELLO's)
//  24 proof[32]  (server: its proof for the ACCEPT; client: the one it expects)
//  56 nonce[32]  (client: its nonce for the HELLO)
export const AUTH_REC: usize = 96;
export const AR_PROOF: usize = 24;
export const AR_NONCE: usize = 56;
// Stages. Client: nonce given, HELLO sent, CHALLENGE told to the host, AUTH sent.
export const A_NONE: u8 = 0;
export const A_C_NONCE: u8 = 1;
export const A_C_HELLO: u8 = 2;
export const A_C_CHALLENGED: u8 = 3;
export const A_C_PROVED: u8 = 4;
// Server: the host owes the CHALLENGE, CHALLENGE sent, the host owes the verdict, passed.
export const A_S_HOST: u8 = 11;
export const A_S_CHALLENGED: u8 = 12;
export const A_S_VERDICT: u8 = 13;
export const A_S_PASSED: u8 = 14;
let authBase: usize = 0;

@inline export function authRec(li: i32): usize {
  return authBase + <usize>li * AUTH_REC;
}

/** Allocated last in init(), so every address carved before it is unchanged. */
export function allocBitmaps(): void {
  laneBits = heap.alloc(bitWords(cfg.maxLanes) << 2);
  memory.fill(laneBits, 0, bitWords(cfg.maxLanes) << 2);
  sessionBits = heap.alloc(bitWords(cfg.maxSessions) << 2);
  memory.fill(sessionBits, 0, bitWords(cfg.maxSessions) << 2);
}

@inline function setBit(base: usize, i: u32, on: bool): void {
  let p = base + (<usize>(i >> 5) << 2);
  let m: u32 = 1 << (i & 31);
  store<u32>(p, on ? load<u32>(p) | m : load<u32>(p) & ~m);
}

function nextBit(base: usize, n: u32, from: u32): i32 {
  let i = from;
  while (i < n) {
    let w = load<u32>(base + (<usize>(i >> 5) << 2)) >> (i & 31);
    if (w != 0) {
      let j = i + <u32>ctz(w);
      return j < n ? <i32>j : -1;
    }
    i = (i | 31) + 1;
  }
  return -1;
}

/** The first lane in use at index >= from, or -1: `for (let li = nextLane(0); li >= 0; li = nextLane(li + 1))`. */
export function nextLane(from: i32): i32 {
  return nextBit(laneBits, cfg.maxLanes, <u32>from);
}

/** The first session in use at index >= from, or -1. */
export function nextSession(from: i32): i32 {
  return nextBit(sessionBits, cfg.maxSessions, <u32>from);
}

@inline export function lane(i: i32): Lane {
  return changetype<Lane>(lanesBase + <usize>i * offsetof<Lane>());
}
@inline export function session(i: i32): Session {
  return changetype<Session>(sessionsBase + <usize>i * offsetof<Session>());
}
@inline export function laneHandle(i: i32): u32 {
  return (<u32>lane(i).gen << 16) | <u32>i;
}
@inline export function sessionHandle(i: i32): u32 {
  return (<u32>session(i).gen << 16) | <u32>i;
}

/** Index of the live lane named by handle h, or -1. */
export function laneFromHandle(h: u32): i32 {
  let i = h & 0xffff;
  if (i >= cfg.maxLanes) return -1;
  let l = lane(i);
  if (l.state == L_FREE || <u32>l.gen != h >> 16) return -1;
  return <i32>i;
}

export function sessionFromHandle(h: u32): i32 {
  let i = h & 0xffff;
  if (i >= cfg.maxSessions) return -1;
  let s = session(i);
  if (s.state == S_FREE || <u32>s.gen != h >> 16) return -1;
  return <i32>i;
}

@inline function bumpGen(g: u16): u16 {
  g++;
  return g == 0 ? 1 : g;
}

/**
 * All tables come from two blocks, carved here. The stub runtime never
 * frees, so heap.alloc during init() returns memory fresh from memory.grow,
 * which WebAssembly zero-fills. Nothing is written to it here beyond the
 * struct fields: touching every page of every ring at init (a fill, or one
 * allocation header per buffer) commits the whole configuration up front,
 * which costs tens to hundreds of milliseconds for a large config.
 */
let carveAt: usize = 0;

@inline function align16(n: usize): usize {
  return (n + 15) & ~(<usize>15);
}

function carve(bytes: usize): usize {
  let p = carveAt;
  carveAt += align16(bytes);
  return p;
}

/** Bytes of one session's arenas (see carve order in allocTables). */
function sessionArenaBytes(): usize {
  return align16(cfg.LANES_PER_SESSION * 4) + align16(cfg.LANES_PER_SESSION * 8) + align16(cfg.LANES_PER_SESSION * 4) +
    align16(<usize>cfg.windowMsgs * TX_ENTRY) + align16(<usize>cfg.windowMsgs * RX_ENTRY) +
    align16(<usize>cfg.maxRequests * PEND_ENTRY) + align16(<usize>cfg.maxRequests * INB_ENTRY) +
    align16(<usize>cfg.windowMsgs * 8) + align16(cfg.windowBytes) * 2 +
    align16(MAX_PORTALS_BYTES) + align16(MAX_CONTROL_FRAME);
}

export function allocTables(): void {
  let laneBytes = align16(<usize>cfg.maxLanes * offsetof<Lane>()) + <usize>cfg.maxLanes * 2 * MAX_CONTROL_FRAME;
  carveAt = align16(heap.alloc(laneBytes + 16));
  lanesBase = carve(<usize>cfg.maxLanes * offsetof<Lane>());
  for (let i: u32 = 0; i < cfg.maxLanes; i++) {
    let l = lane(i);
    l.rxBuf = carve(MAX_CONTROL_FRAME);
    l.ctlBuf = carve(MAX_CONTROL_FRAME);
    l.session = -1;
    l.gen = 1;
  }
  let sessionBytes = align16(<usize>cfg.maxSessions * offsetof<Session>()) + <usize>cfg.maxSessions * sessionArenaBytes() +
    align16(<usize>cfg.maxLanes * AUTH_REC);
  carveAt = align16(heap.alloc(sessionBytes + 16));
  sessionsBase = carve(<usize>cfg.maxSessions * offsetof<Session>());
  for (let i: u32 = 0; i < cfg.maxSessions; i++) {
    let s = session(i);
    s.gen = 1;
    s.lanes = carve(cfg.LANES_PER_SESSION * 4);
    s.reconnectAt = carve(cfg.LANES_PER_SESSION * 8);
    s.attempts = carve(cfg.LANES_PER_SESSION * 4);
    s.txIdx = carve(<usize>cfg.windowMsgs * TX_ENTRY);
    s.rxIdx = carve(<usize>cfg.windowMsgs * RX_ENTRY);
    s.pend = carve(<usize>cfg.maxRequests * PEND_ENTRY);
    s.inb = carve(<usize>cfg.maxRequests * INB_ENTRY);
    s.receipts = carve(<usize>cfg.windowMsgs * 8);
    s.txRing = carve(cfg.windowBytes);
    s.rxRing = carve(cfg.windowBytes);
    s.portals = carve(MAX_PORTALS_BYTES);
    s.hello = carve(MAX_CONTROL_FRAME);
  }
  authBase = carve(<usize>cfg.maxLanes * AUTH_REC);
}

// The earliest deadline of timers.ts, kept between scans so that a turn
// costs nothing per idle lane or session: nextDeadline() scans only when
// timeout() ran since (timeout() fires what is due and moves deadlines);
// otherwise the kept value is a lower bound, lowered by soonAt() wherever a
// deadline is armed earlier than before (a lane allocated or opened, a
// request with a timeout, a resume or reconnect time). Deadlines that move
// later (keepalive, lastRx) leave it early: the host's timer then fires
// early, timeout() finds nothing due, and the next call scans again.
let deadlineLow: u64 = 0; // 0: none armed
let deadlineKnown = false;

/** A deadline at t (µs) was armed: the kept earliest deadline is at most t. */
export function soonAt(t: u64): void {
  if (deadlineKnown && t != 0 && (deadlineLow == 0 || t < deadlineLow)) deadlineLow = t;
}
/** The kept earliest deadline, or u64.MAX_VALUE when a scan is needed. */
export function keptDeadline(): u64 {
  return deadlineKnown ? deadlineLow : u64.MAX_VALUE;
}
export function keepDeadline(d: u64): void {
  deadlineLow = d;
  deadlineKnown = true;
}
export function forgetDeadline(): void {
  deadlineKnown = false;
}

/** A free lane, reset, or -1 when the table is full. */
export function allocLane(role: u8, state: u8, now: u64): i32 {
  for (let k: u32 = 0; k < cfg.maxLanes; k++) {
    let i = (laneCursor + k) % cfg.maxLanes;
    let l = lane(i);
    if (l.state != L_FREE) continue;
    laneCursor = (i + 1) % cfg.maxLanes;
    setBit(laneBits, i, true);
    l.state = state;
    l.role = role;
    l.pos = 0;
    l.extWait = 0;
    l.rdvStage = 0;
    l.rdvMin = 0;
    l.inDirty = 0;
    l.inBatch = 0;
    l.session = -1;
    l.asmLen = 0;
    l.need = 8;
    l.bodyLeft = 0;
    l.bodySkip = 0;
    l.bodyDst = 0;
    l.bodySeq = 0;
    l.batchLeft = 0;
    l.ctlLen = 0;
    l.ctlFrames = 0;
    l.err = 0;
    l.version = 0;
    l.lastRx = now;
    l.lastTx = now;
    l.opened = now;
    soonAt(now + cfg.helloTimeoutUs);
    if (authBase) store<u8>(authRec(<i32>i), A_NONE);
    return <i32>i;
  }
  return -1;
}

export function freeLane(i: i32): void {
  let l = lane(i);
  l.state = L_FREE;
  l.session = -1;
  l.gen = bumpGen(l.gen);
  setBit(laneBits, <u32>i, false);
}

export function allocSession(role: u8, state: u8): i32 {
  for (let k: u32 = 0; k < cfg.maxSessions; k++) {
    let i = (sessionCursor + k) % cfg.maxSessions;
    let s = session(i);
    if (s.state != S_FREE) continue;
    sessionCursor = (i + 1) % cfg.maxSessions;
    setBit(sessionBits, i, true);
    s.state = state;
    s.role = role;
    s.desired = 1;
    s.rr = 0;
    s.inDirty = 0;
    s.flags = 0;
    s.id = 0;
    s.keyLo = 0;
    s.keyHi = 0;
    s.version = 0;
    s.M = cfg.windowMsgs;
    s.W = cfg.windowBytes;
    s.R = cfg.maxRequests;
    s.peerKeepaliveUs = cfg.keepaliveUs;
    s.txNextSeq = 0;
    s.txAcked = 0;
    s.txNextSend = 0;
    s.rtxFrom = 0;
    s.txHead = 0;
    s.txTail = 0;
    s.rxNext = 0;
    s.rxAck = 0;
    s.ackBase = 0;
    s.rxBase = 0;
    s.rxHigh = 0;
    s.resendUntil = 0;
    s.resumeAt = 0;
    s.reqDeadline = 0;
    s.ackAt = 0;
    s.ackSentSeq = 0;
    s.ackSentBase = 0;
    s.rxLowHint = 0;
    s.rxUpFrom = 0;
    s.rxUpAt = 0;
    s.closeSeq = 0;
    s.cancelsUnsent = 0;
    s.receiptCount = 0;
    s.portalsLen = 0;
    s.redirects = 0;
    s.nextPortal = 0;
    s.helloLen = 0;
    s.resourceLen = 0;
    for (let p = 0; p < cfg.LANES_PER_SESSION; p++) {
      store<i32>(s.lanes + (<usize>p << 2), -1);
      store<u64>(s.reconnectAt + (<usize>p << 3), 0);
      store<u32>(s.attempts + (<usize>p << 2), 0);
    }
    memory.fill(s.rxIdx, 0, <usize>cfg.windowMsgs * RX_ENTRY);
    memory.fill(s.pend, 0, <usize>cfg.maxRequests * PEND_ENTRY);
    memory.fill(s.inb, 0, <usize>cfg.maxRequests * INB_ENTRY);
    return <i32>i;
  }
  return -1;
}

export function freeSession(i: i32): void {
  let s = session(i);
  s.state = S_FREE;
  s.gen = bumpGen(s.gen);
  setBit(sessionBits, <u32>i, false);
}

// Lane positions of a session.
@inline export function posLane(s: Session, p: i32): i32 {
  return load<i32>(s.lanes + (<usize>p << 2));
}
@inline export function setPosLane(s: Session, p: i32, l: i32): void {
  store<i32>(s.lanes + (<usize>p << 2), l);
}
@inline export function reconnectAt(s: Session, p: i32): u64 {
  return load<u64>(s.reconnectAt + (<usize>p << 3));
}
@inline export function setReconnectAt(s: Session, p: i32, t: u64): void {
  store<u64>(s.reconnectAt + (<usize>p << 3), t);
  soonAt(t);
}
@inline export function attempts(s: Session, p: i32): u32 {
  return load<u32>(s.attempts + (<usize>p << 2));
}
@inline export function setAttempts(s: Session, p: i32, n: u32): void {
  store<u32>(s.attempts + (<usize>p << 2), n);
}

/** Number of OPEN lanes in a session. */
export function openLanes(s: Session): i32 {
  let n = 0;
  for (let p = 0; p < cfg.LANES_PER_SESSION; p++) {
    let li = posLane(s, p);
    if (li >= 0 && lane(li).state == L_OPEN) n++;
  }
  return n;
}

// Entry addresses.
@inline export function txEntry(s: Session, seq: u64): usize {
  return s.txIdx + <usize>(<u32>seq & (cfg.windowMsgs - 1)) * TX_ENTRY;
}
@inline export function rxEntry(s: Session, seq: u64): usize {
  return s.rxIdx + <usize>(<u32>seq & (cfg.windowMsgs - 1)) * RX_ENTRY;
}
@inline export function pendEntry(s: Session, idx: u32): usize {
  return s.pend + <usize>idx * PEND_ENTRY;
}
@inline export function inbEntry(s: Session, idx: u32): usize {
  return s.inb + <usize>idx * INB_ENTRY;
}
