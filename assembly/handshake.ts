// Session handshake: HELLO, ACCEPT, REJECT, REDIRECT, on both sides, and the
// host's decision (accept / reject / redirect) for new sessions.
//
//  client lane                          server lane
//  CONNECTING --lane_up--> HELLO_SENT   AWAIT_HELLO --HELLO(new)--> PENDING_ACCEPT
//  HELLO_SENT --ACCEPT--> OPEN          PENDING_ACCEPT --accept()--> OPEN
//  HELLO_SENT --REJECT--> CLOSING       PENDING_ACCEPT --reject()/redirect()--> CLOSING
//  HELLO_SENT --REDIRECT--> CLOSING,    AWAIT_HELLO --HELLO(join/resume)--> OPEN
//     new lane to the first portal          or REJECT(UNKNOWN_SESSION) --> CLOSING
//
// With a pre-shared key (HELLO flag F_AUTH) the server lane passes through
// AUTH (CHALLENGE out, AUTH in, the host's verdict) before PENDING_ACCEPT or
// OPEN; the client lane stays HELLO_SENT meanwhile (auth.ts).

import * as cfg from "./config";
import * as rng from "./rng";
import {
  Session, lane, session, laneHandle, sessionHandle, allocSession, posLane, setPosLane,
  openLanes, nextSession, L_HELLO_SENT, L_AWAIT_HELLO, L_PENDING_ACCEPT, L_OPEN, L_AUTH, ROLE_SERVER, ROLE_CLIENT,
  S_FREE, S_CONNECTING, S_OPEN, S_RESUMING, S_CLOSING, S_DRAINING, SF_ACK, SF_NO_ONEWAY, SF_AUTH,
  authRec, AR_PROOF, A_C_PROVED, A_S_HOST, A_S_PASSED,
} from "./state";
import {
  push, setHdr, setData, setAux, EV_SESSION_REQUEST, EV_SESSION_OPEN, EV_SESSION_RESUMED,
  EV_SESSION_REJECTED, EV_LANE_UP, EV_AUTH_REQUEST, setTag,
} from "./events";
import { ctlReserve, markSession, requeueAll } from "./tx";
import { closeLane, protocolError, openPosition, endSession, laneOpened } from "./lanes";
import { processAck } from "./deliver";
import {
  putHeader, T_ACCEPT, T_REJECT, T_REDIRECT, ACCEPT_SIZE, REJECT_SIZE, REDIRECT_SIZE, HELLO_SIZE,
  PROTOCOL_MIN, PROTOCOL_MAX, MAX_CONTROL_FRAME, MAX_PORTALS_BYTES, MAX_REDIRECTS, F_JOINED, F_NO_ONEWAY, KEY_SIZE,
  F_AUTH, F_AUTH_ACCEPT, NONCE_SIZE, PROOF_SIZE, MAX_IDENTITY,
} from "./wire";
import {
  E_MALFORMED, E_BAD_STATE, E_VERSION, E_UNKNOWN_SESSION, E_LIMIT, E_REJECTED, E_REDIRECT_LOOP,
  E_BAD_HANDLE, E_BAD_ARGUMENT, E_WINDOW, E_AUTH,
} from "./errors";

@inline function min32(a: u32, b: u32): u32 { return a < b ? a : b; }

/** Largest power of two <= x (x > 0). */
@inline function floorPow2(x: u32): u32 { return 1 << (31 - clz(x)); }

export function sendReject(li: i32, reason: i32, msg: usize, msgLen: u32, now: u64): void {
  if (msgLen > MAX_CONTROL_FRAME - REJECT_SIZE) msgLen = MAX_CONTROL_FRAME - REJECT_SIZE;
  let p = ctlReserve(li, REJECT_SIZE + msgLen);
  if (p) {
    putHeader(p, T_REJECT, 0, 0, REJECT_SIZE + msgLen);
    store<u16>(p, <u16>reason, 8);
    store<u16>(p, PROTOCOL_MIN, 10);
    store<u16>(p, PROTOCOL_MAX, 12);
    store<u16>(p, <u16>msgLen, 14);
    memory.copy(p + REJECT_SIZE, msg, msgLen);
  }
  closeLane(li, reason, now);
}

/**
 * Writes ACCEPT for session si on lane li, with portals and attrs from src;
 * with F_AUTH_ACCEPT, the server's proof (kept for the lane) after them.
 */
function sendAccept(li: i32, si: i32, flags: u8, src: usize, portalsLen: u32, attrsLen: u32): void {
  let s = session(si);
  let len = ACCEPT_SIZE + portalsLen + attrsLen + (flags & F_AUTH_ACCEPT ? PROOF_SIZE : 0);
  let p = ctlReserve(li, len);
  if (!p) return;
  putHeader(p, T_ACCEPT, flags, 0, len);
  store<u16>(p, <u16>s.version, 8);
  store<u16>(p, <u16>portalsLen, 10);
  store<u16>(p, <u16>attrsLen, 12);
  store<u16>(p, 0, 14);
  store<u64>(p, s.id, 16);
  store<u64>(p, s.rxAck, 24);
  store<u32>(p, cfg.windowMsgs, 32);
  store<u32>(p, cfg.windowBytes, 36);
  store<u32>(p, cfg.maxRequests, 40);
  store<u32>(p, <u32>(cfg.keepaliveUs / 1000), 44);
  store<u32>(p, <u32>(cfg.resumeUs / 1000), 48);
  store<u32>(p, 0, 52);
  let joined = flags & F_JOINED;
  store<u64>(p, joined ? 0 : s.keyLo, 56);
  store<u64>(p, joined ? 0 : s.keyHi, 64);
  memory.copy(p + ACCEPT_SIZE, src, portalsLen + attrsLen);
  if (flags & F_AUTH_ACCEPT) memory.copy(p + ACCEPT_SIZE + portalsLen + attrsLen, authRec(li) + AR_PROOF, PROOF_SIZE);
}

/** The longest keepalive interval taken from a peer: 60 s (dead after 3 minutes of silence). */
const MAX_PEER_KEEPALIVE_US: u64 = 60_000_000;

/** Applies the peer's windows: each is the smaller of both sides. */
function setWindows(s: Session, msgs: u32, bytes: u32, requests: u32, keepaliveMs: u32): bool {
  if (msgs < 16 || bytes < 32768 || requests < 1) return false;
  s.M = floorPow2(min32(msgs, cfg.windowMsgs));
  s.W = floorPow2(min32(bytes, cfg.windowBytes));
  s.R = min32(min32(requests, cfg.maxRequests), 65535);
  // The peer's keepalive sets how long its silence is waited out (3 x): a
  // claim, capped, or a peer announcing 2^32 ms would hold its lane and
  // session for months while saying nothing (protocol.md section 17).
  let ka = <u64>keepaliveMs * 1000;
  if (ka > MAX_PEER_KEEPALIVE_US) ka = MAX_PEER_KEEPALIVE_US;
  s.peerKeepaliveUs = ka > cfg.keepaliveUs ? ka : cfg.keepaliveUs;
  return true;
}

export function findSession(id: u64): i32 {
  if (id == 0) return -1;
  for (let i = nextSession(0); i >= 0; i = nextSession(i + 1)) {
    let s = session(i);
    if (s.state != S_FREE && s.role == ROLE_SERVER && s.id == id) return i;
  }
  return -1;
}

/** Compares the key at k with the session's, in time independent of where they differ. */
function keyMatches(s: Session, k: usize): bool {
  let d = (load<u64>(k) ^ s.keyLo) | (load<u64>(k, 8) ^ s.keyHi);
  return d == 0 && (s.keyLo | s.keyHi) != 0;
}

function freePosition(s: Session): i32 {
  for (let p = 0; p < cfg.LANES_PER_SESSION; p++) if (posLane(s, p) < 0) return p;
  return -1;
}

/** Server: HELLO on lane li; the frame is in the lane's rx buffer. */
export function onHello(li: i32, f: usize, len: u32, now: u64): void {
  let l = lane(li);
  if (l.state != L_AWAIT_HELLO) { protocolError(li, E_BAD_STATE, now); return; }
  let verMin = load<u16>(f, 8);
  let verMax = load<u16>(f, 10);
  let resLen = <u32>load<u16>(f, 12);
  let attrsLen = <u32>load<u16>(f, 14);
  // F_AUTH: the client's nonce and identity (1..255 bytes) follow the attrs.
  let auth = (load<u8>(f, 1) & F_AUTH) != 0;
  let authLen = len - (HELLO_SIZE + resLen + attrsLen); // checked below before use
  if (HELLO_SIZE + resLen + attrsLen > len || verMin > verMax ||
      (auth ? authLen <= NONCE_SIZE || authLen > NONCE_SIZE + MAX_IDENTITY : authLen != 0)) {
    protocolError(li, E_MALFORMED, now);
    return;
  }
  let hi = verMax < PROTOCOL_MAX ? verMax : PROTOCOL_MAX;
  let lo = verMin > PROTOCOL_MIN ? verMin : PROTOCOL_MIN;
  if (hi < lo) { sendReject(li, E_VERSION, 0, 0, now); return; }
  l.version = hi;
  l.peerMsgs = load<u32>(f, 32);
  l.peerBytes = load<u32>(f, 36);
  l.peerRequests = load<u32>(f, 40);
  l.peerKeepaliveMs = load<u32>(f, 44);
  if (l.peerMsgs < 16 || l.peerBytes < 32768 || l.peerRequests < 1) {
    protocolError(li, E_WINDOW, now);
    return;
  }
  let id = load<u64>(f, 16);
  if (id == 0 && auth) {
    // The new session's id is drawn now: both proofs cover it.
    let nid = rng.next();
    while (nid == 0 || findSession(nid) >= 0) nid = rng.next();
    authRequest(li, -1, f, resLen, attrsLen, authLen, hi, nid, 0);
    return;
  }
  if (id == 0) {
    l.state = L_PENDING_ACCEPT;
    let e = push(EV_SESSION_REQUEST, 0, laneHandle(li), 0);
    setHdr(e, f + HELLO_SIZE, resLen);
    setData(e, f + HELLO_SIZE + resLen, attrsLen);
    setAux(e, hi, 0);
    return;
  }
  // Join or resume an existing session: the HELLO must carry its key. A wrong
  // key gets the same answer as an unknown id, so a guess learns nothing.
  let si = findSession(id);
  if (si < 0 || !keyMatches(session(si), f + 48)) { sendReject(li, E_UNKNOWN_SESSION, 0, 0, now); return; }
  // A session opened with a pre-shared key takes only lanes that prove it,
  // and one opened without takes none that offer one.
  if (((session(si).flags & SF_AUTH) != 0) != auth) { sendReject(li, E_AUTH, 0, 0, now); return; }
  if (auth) {
    authRequest(li, si, f, resLen, attrsLen, authLen, hi, id, load<u64>(f, 24));
    return;
  }
  joinLane(li, si, load<u64>(f, 24), 0, now);
}

/** Server: a HELLO with F_AUTH: the host answers with a CHALLENGE (auth.ts), then its verdict. */
function authRequest(li: i32, si: i32, f: usize, resLen: u32, attrsLen: u32, authLen: u32, version: u32, id: u64, ackSeq: u64): void {
  let l = lane(li);
  l.state = L_AUTH;
  let a = authRec(li);
  store<u8>(a, A_S_HOST);
  store<u64>(a, id, 8);
  store<u8>(a, si < 0 ? 0 : 1, 2);
  store<u64>(a, ackSeq, 16);
  let e = push(EV_AUTH_REQUEST, si < 0 ? 0 : sessionHandle(si), laneHandle(li), 0);
  // The trailer follows whatever resource and attrs the HELLO carries; a
  // join's are ignored (its proof covers its session's resource).
  setHdr(e, f + HELLO_SIZE + resLen + attrsLen, authLen);
  if (si < 0) {
    setData(e, f + HELLO_SIZE, resLen + attrsLen);
    setTag(e, resLen, 0);
  }
  setAux(e, version, id);
}

/**
 * Server: lane li joins (or resumes) session si; ackSeq is the client's.
 * flags: F_AUTH_ACCEPT when the lane proved the pre-shared key.
 */
export function joinLane(li: i32, si: i32, ackSeq: u64, flags: u8, now: u64): void {
  let l = lane(li);
  let s = session(si);
  let p = freePosition(s);
  // A closing session takes lanes too: its CLOSE, or the ack of the peer's,
  // may still have to get through.
  if (p < 0) { sendReject(li, E_LIMIT, 0, 0, now); return; }
  setPosLane(s, p, li);
  l.session = si;
  l.pos = <u8>p;
  laneOpened(s, l);
  if (!processAck(si, ackSeq, li, now)) return;
  sendAccept(li, si, F_JOINED | flags, 0, 0, 0);
  s.resumeAt = 0;
  if (s.state == S_RESUMING) {
    s.state = S_OPEN;
    push(EV_SESSION_RESUMED, sessionHandle(si), laneHandle(li), 0);
  }
  push(EV_LANE_UP, sessionHandle(si), laneHandle(li), 0);
  s.flags |= SF_ACK;
  markSession(si);
}

/**
 * Server host: accept the session asked for on lane li. src holds the
 * session key (KEY_SIZE bytes from the host's CSPRNG; all zero is refused),
 * then portals, then attrs. Returns the session handle or -error.
 */
export function accept(li: i32, src: usize, portalsLen: u32, attrsLen: u32, now: u64): i32 {
  let l = lane(li);
  if (l.state != L_PENDING_ACCEPT) return -E_BAD_STATE;
  let a = authRec(li);
  let authed = load<u8>(a) == A_S_PASSED;
  if (portalsLen > MAX_PORTALS_BYTES || ACCEPT_SIZE + portalsLen + attrsLen + (authed ? PROOF_SIZE : 0) > MAX_CONTROL_FRAME) return -E_BAD_ARGUMENT;
  let keyLo = load<u64>(src), keyHi = load<u64>(src, 8);
  if ((keyLo | keyHi) == 0) return -E_BAD_ARGUMENT;
  // An authenticated lane's session takes the id its CHALLENGE named (drawn
  // unused then; another session taking it since is a 2^-64 event: refused).
  let id = authed ? load<u64>(a, 8) : 0;
  let si = authed && findSession(id) >= 0 ? -1 : allocSession(ROLE_SERVER, S_OPEN);
  if (si < 0) {
    sendReject(li, E_LIMIT, 0, 0, now);
    return -E_LIMIT;
  }
  let s = session(si);
  if (!authed) id = rng.next();
  while (id == 0 || findSession(id) >= 0) id = rng.next();
  s.id = id;
  s.keyLo = keyLo;
  s.keyHi = keyHi;
  s.version = l.version;
  setWindows(s, l.peerMsgs, l.peerBytes, l.peerRequests, l.peerKeepaliveMs);
  setPosLane(s, 0, li);
  l.session = si;
  l.pos = 0;
  laneOpened(s, l);
  if (authed) s.flags |= SF_AUTH;
  sendAccept(li, si, (cfg.refuseOneway ? F_NO_ONEWAY : 0) | (authed ? F_AUTH_ACCEPT : 0), src + KEY_SIZE, portalsLen, attrsLen);
  let e = push(EV_SESSION_OPEN, sessionHandle(si), laneHandle(li), 0);
  setAux(e, s.version, s.id);
  return <i32>sessionHandle(si);
}

export function reject(li: i32, reason: i32, src: usize, msgLen: u32, now: u64): i32 {
  let l = lane(li);
  // A lane in its pre-shared-key stage is refused too (REJECT(auth)), whatever the host awaits.
  if (l.state != L_PENDING_ACCEPT && l.state != L_AUTH) return -E_BAD_STATE;
  sendReject(li, reason > 0 ? reason : E_REJECTED, src, msgLen, now);
  return 0;
}

export function redirect(li: i32, src: usize, portalsLen: u32, now: u64): i32 {
  let l = lane(li);
  if (l.state != L_PENDING_ACCEPT) return -E_BAD_STATE;
  if (portalsLen == 0 || portalsLen > MAX_PORTALS_BYTES) return -E_BAD_ARGUMENT;
  let p = ctlReserve(li, REDIRECT_SIZE + portalsLen);
  if (p) {
    putHeader(p, T_REDIRECT, 0, 0, REDIRECT_SIZE + portalsLen);
    store<u16>(p, <u16>portalsLen, 8);
    store<u16>(p, 0, 10);
    store<u32>(p, 0, 12);
    memory.copy(p + REDIRECT_SIZE, src, portalsLen);
  }
  closeLane(li, 0, now);
  return 0;
}

/** Client: ACCEPT on lane li. */
export function onAccept(li: i32, f: usize, len: u32, now: u64): void {
  let l = lane(li);
  if (l.state != L_HELLO_SENT || l.session < 0) { protocolError(li, E_BAD_STATE, now); return; }
  let si = l.session;
  let s = session(si);
  let version = <u32>load<u16>(f, 8);
  let portalsLen = <u32>load<u16>(f, 10);
  let attrsLen = <u32>load<u16>(f, 12);
  // A session with a pre-shared key takes only an ACCEPT carrying the
  // server's proof, after the AUTH we sent: anything else is a server that
  // does not know the key (or does not check it), never a session without.
  let auth = (s.flags & SF_AUTH) != 0;
  let proofLen: u32 = auth && (load<u8>(f, 1) & F_AUTH_ACCEPT) ? PROOF_SIZE : 0;
  if (ACCEPT_SIZE + portalsLen + attrsLen + proofLen != len || portalsLen > MAX_PORTALS_BYTES ||
      version < PROTOCOL_MIN || version > PROTOCOL_MAX) {
    protocolError(li, E_MALFORMED, now);
    return;
  }
  let id = load<u64>(f, 16);
  if (auth) {
    let a = authRec(li);
    let pf = f + ACCEPT_SIZE + portalsLen + attrsLen;
    if (proofLen == 0 || load<u8>(a) != A_C_PROVED || id != load<u64>(a, 8) || !proofMatches(a + AR_PROOF, pf)) {
      authFailed(li, now);
      return;
    }
  }
  if (s.state == S_CONNECTING) {
    let keyLo = load<u64>(f, 56), keyHi = load<u64>(f, 64);
    if (id == 0 || (keyLo | keyHi) == 0 || !setWindows(s, load<u32>(f, 32), load<u32>(f, 36), load<u32>(f, 40), load<u32>(f, 44))) {
      protocolError(li, E_MALFORMED, now);
      return;
    }
    s.id = id;
    s.keyLo = keyLo;
    s.keyHi = keyHi;
    s.version = version;
    s.state = S_OPEN;
    s.resumeAt = 0;
    if (load<u8>(f, 1) & F_NO_ONEWAY) s.flags |= SF_NO_ONEWAY;
    if (portalsLen > 0) {
      memory.copy(s.portals, f + ACCEPT_SIZE, portalsLen);
      s.portalsLen = portalsLen;
      s.nextPortal = 0;
    }
    laneOpened(s, l);
    let e = push(EV_SESSION_OPEN, sessionHandle(si), laneHandle(li), 0);
    setData(e, f + ACCEPT_SIZE + portalsLen, attrsLen);
    setAux(e, version, id);
    for (let p = 1; p < <i32>s.desired; p++) openPosition(si, p, now);
    if (s.txNextSeq > 0) markSession(si);
    return;
  }
  if (id != s.id) { protocolError(li, E_MALFORMED, now); return; }
  laneOpened(s, l);
  if (!processAck(si, load<u64>(f, 24), li, now)) return;
  if (s.resumeAt != 0) {
    // First lane back after all were lost (resuming or closing).
    s.resumeAt = 0;
    requeueAll(si);
  }
  if (s.state == S_RESUMING) {
    s.state = S_OPEN;
    push(EV_SESSION_RESUMED, sessionHandle(si), laneHandle(li), 0);
  }
  push(EV_LANE_UP, sessionHandle(si), laneHandle(li), 0);
  s.flags |= SF_ACK;
  markSession(si);
}

/** Compares two proofs in time independent of where they differ. */
function proofMatches(a: usize, b: usize): bool {
  let d: u64 = 0;
  for (let i: usize = 0; i < <usize>PROOF_SIZE; i += 8) d |= load<u64>(a + i) ^ load<u64>(b + i);
  return d == 0;
}

/**
 * Client: the server did not prove the pre-shared key (or refused ours):
 * a new session is rejected with auth, an open one ends with it. A wrong
 * key is no passing fault: retrying the lane would only repeat it.
 */
export function authFailed(li: i32, now: u64): void {
  let si = lane(li).session;
  let s = session(si);
  if (s.state == S_CONNECTING) {
    push(EV_SESSION_REJECTED, sessionHandle(si), laneHandle(li), E_AUTH);
    endSession(si, -1, now);
  } else {
    endSession(si, E_AUTH, now);
  }
}

/** Client: REJECT on lane li. */
export function onReject(li: i32, f: usize, len: u32, now: u64): void {
  let l = lane(li);
  if (l.state != L_HELLO_SENT || l.session < 0) { protocolError(li, E_BAD_STATE, now); return; }
  let msgLen = <u32>load<u16>(f, 14);
  if (REJECT_SIZE + msgLen != len) { protocolError(li, E_MALFORMED, now); return; }
  let reason = <i32>load<u16>(f, 8);
  let si = l.session;
  let s = session(si);
  if (reason == E_AUTH && s.state != S_CONNECTING) { authFailed(li, now); return; }
  if (s.state == S_CONNECTING) {
    let e = push(EV_SESSION_REJECTED, sessionHandle(si), laneHandle(li), reason);
    setHdr(e, f + REJECT_SIZE, msgLen);
    endSession(si, -1, now);
    return;
  }
  if (reason == E_UNKNOWN_SESSION) {
    endSession(si, E_UNKNOWN_SESSION, now);
    return;
  }
  // A join refused (e.g. the server's lane limit): this lane only.
  closeLane(li, reason, now);
}

/** Client: REDIRECT on lane li: start over at the first portal given. */
export function onRedirect(li: i32, f: usize, len: u32, now: u64): void {
  let l = lane(li);
  if (l.state != L_HELLO_SENT || l.session < 0) { protocolError(li, E_BAD_STATE, now); return; }
  let portalsLen = <u32>load<u16>(f, 8);
  if (REDIRECT_SIZE + portalsLen != len || portalsLen == 0 || portalsLen > MAX_PORTALS_BYTES) {
    protocolError(li, E_MALFORMED, now);
    return;
  }
  let si = l.session;
  let s = session(si);
  if (s.state != S_CONNECTING) { protocolError(li, E_BAD_STATE, now); return; }
  s.redirects++;
  if (s.redirects > MAX_REDIRECTS) {
    push(EV_SESSION_REJECTED, sessionHandle(si), laneHandle(li), E_REDIRECT_LOOP);
    endSession(si, -1, now);
    return;
  }
  memory.copy(s.portals, f + REDIRECT_SIZE, portalsLen);
  s.portalsLen = portalsLen;
  s.nextPortal = 0;
  let p = <i32>l.pos;
  closeLane(li, 0, now);
  openPosition(si, p, now);
}

