// Lane lifecycle: opening lanes to portals, losing them, failover of their
// unacked messages to the other lanes, reconnect with backoff, resume.

import * as cfg from "./config";
import * as rng from "./rng";
import {
  Lane, Session, lane, session, laneHandle, sessionHandle, allocLane, freeLane, freeSession,
  posLane, setPosLane, setReconnectAt, attempts, setAttempts, openLanes, rxEntry,
  L_CONNECTING, L_HELLO_SENT, L_OPEN, L_CLOSING, L_FREE, ROLE_CLIENT,
  S_OPEN, S_CONNECTING, S_RESUMING, S_CLOSING, S_DRAINING,
  SF_ACK, SF_RESEND, RX_RECEIVING, RX_EMPTY, soonAt,
} from "./state";
import {
  push, setHdr, setAux, EV_OPEN_LANE, EV_CLOSE_LANE, EV_LANE_DOWN, EV_PROTOCOL_ERROR,
  EV_SESSION_LOST, EV_SESSION_CLOSED,
} from "./events";
import { ctlReserve, requeueLane, markSession } from "./tx";
import {
  putHeader, T_ERROR, ERROR_SIZE, T_HELLO, HELLO_SIZE, PROTOCOL_MIN, PROTOCOL_MAX, F_AUTH,
} from "./wire";
import { helloAuthLen, putHelloAuth } from "./auth";
import { traceLane } from "./trace";

// portalAt() results.
export let portalPtr: usize = 0;
export let portalLen: u32 = 0;

export function portalCount(s: Session): u32 {
  if (s.portalsLen == 0) return 0;
  let n: u32 = 1;
  for (let i: u32 = 0; i < s.portalsLen; i++) if (load<u8>(s.portals + i) == 10) n++;
  return n;
}

/** Sets portalPtr/portalLen to portal k (mod count) of the session. */
export function portalAt(s: Session, k: u32): void {
  let n = portalCount(s);
  k = n ? k % n : 0;
  let start: u32 = 0;
  let idx: u32 = 0;
  for (let i: u32 = 0; i <= s.portalsLen; i++) {
    if (i == s.portalsLen || load<u8>(s.portals + i) == 10) {
      if (idx == k) {
        portalPtr = s.portals + start;
        portalLen = i - start;
        return;
      }
      idx++;
      start = i + 1;
    }
  }
  portalPtr = s.portals;
  portalLen = 0;
}

/** Client: opens lane position p of session si to its next portal. */
export function openPosition(si: i32, p: i32, now: u64): bool {
  let s = session(si);
  let li = allocLane(ROLE_CLIENT, L_CONNECTING, now);
  if (li < 0) return false;
  let l = lane(li);
  l.session = si;
  l.pos = <u8>p;
  setPosLane(s, p, li);
  setReconnectAt(s, p, 0);
  portalAt(s, s.nextPortal);
  s.nextPortal++;
  let e = push(EV_OPEN_LANE, sessionHandle(si), laneHandle(li), 0);
  setHdr(e, portalPtr, portalLen);
  traceLane(li, 1, 0);
  return true;
}

/** Client: the transport is connected; say HELLO. */
export function sendHello(li: i32, now: u64): void {
  let l = lane(li);
  let s = session(l.session);
  // Resource and attrs matter only to a new session; a join or resume names its id.
  let extra = s.id == 0 ? s.helloLen : 0;
  // A pre-shared key: the lane's nonce and the identity follow (auth.ts).
  let auth = helloAuthLen(li);
  let p = ctlReserve(li, HELLO_SIZE + extra + auth);
  if (!p) return;
  putHeader(p, T_HELLO, auth ? F_AUTH : 0, 0, HELLO_SIZE + extra + auth);
  if (auth) putHelloAuth(li, p + HELLO_SIZE + extra);
  store<u16>(p, PROTOCOL_MIN, 8);
  store<u16>(p, PROTOCOL_MAX, 10);
  store<u16>(p, <u16>(extra ? s.resourceLen : 0), 12);
  store<u16>(p, <u16>(extra ? s.helloLen - s.resourceLen : 0), 14);
  memory.copy(p + HELLO_SIZE, s.hello, extra);
  store<u64>(p, s.id, 16);
  store<u64>(p, s.rxAck, 24);
  store<u32>(p, cfg.windowMsgs, 32);
  store<u32>(p, cfg.windowBytes, 36);
  store<u32>(p, cfg.maxRequests, 40);
  store<u32>(p, <u32>(cfg.keepaliveUs / 1000), 44);
  store<u64>(p, s.keyLo, 48);
  store<u64>(p, s.keyHi, 56);
  l.state = L_HELLO_SENT;
  l.lastRx = now;
}

/** Closes lane li: the host flushes what poll_transmit gives, then closes. */
export function closeLane(li: i32, code: i32, now: u64): void {
  let l = lane(li);
  if (l.state == L_CLOSING || l.state == L_FREE) return;
  let wasOpen = l.state == L_OPEN;
  l.state = L_CLOSING;
  l.err = code;
  push(EV_CLOSE_LANE, l.session >= 0 ? sessionHandle(l.session) : 0, laneHandle(li), code);
  // detach() still needs to see a message half received (extWait included).
  detach(li, code, now, wasOpen);
}

/** The peer broke the protocol on lane li: tell it why, then close the lane. */
export function protocolError(li: i32, code: i32, now: u64): void {
  let l = lane(li);
  if (l.state == L_CLOSING || l.state == L_FREE) return;
  let p = ctlReserve(li, ERROR_SIZE);
  if (p) {
    putHeader(p, T_ERROR, 0, 0, ERROR_SIZE);
    store<u16>(p, <u16>code, 8);
    store<u16>(p, 0, 10);
    store<u32>(p, 0, 12);
  }
  push(EV_PROTOCOL_ERROR, l.session >= 0 ? sessionHandle(l.session) : 0, laneHandle(li), code);
  traceLane(li, 3, code);
  closeLane(li, code, now);
}

/** The host reports the connection gone. */
export function laneDown(li: i32, code: i32, now: u64): void {
  let l = lane(li);
  if (l.state != L_CLOSING) detach(li, code, now, l.state == L_OPEN);
  traceLane(li, 2, code);
  freeLane(li);
}

function backoff(s: Session, p: i32): u64 {
  let n = attempts(s, p);
  setAttempts(s, p, n + 1);
  let d = cfg.backoffMinUs << (n > 16 ? 16 : n);
  if (d > cfg.backoffMaxUs) d = cfg.backoffMaxUs;
  return d + rng.next() % (d / 2 + 1);
}

/**
 * Takes lane li out of its session: failover, reconnect, resume. wasOpen:
 * the lane carried traffic (the host hears LANE_DOWN only for those).
 */
export function detach(li: i32, code: i32, now: u64, wasOpen: bool): void {
  let l = lane(li);
  let si = l.session;
  if (si < 0) return;
  let s = session(si);
  let p = <i32>l.pos;
  setPosLane(s, p, -1);
  l.session = -1;
  // A message this lane was still receiving must come again: the sender
  // may believe it delivered (another copy of it may be on a live lane of
  // the sender's, skipped here as a duplicate), so ask (ACK with RESEND).
  if ((l.bodyLeft > 0 || l.extWait) && !l.bodySkip) {
    let e = rxEntry(s, l.bodySeq);
    if (load<u8>(e) == RX_RECEIVING && load<i32>(e, 4) == li) {
      store<u8>(e, RX_EMPTY);
      if (l.bodySeq >= s.resendUntil) s.resendUntil = l.bodySeq + 1;
    }
  }
  l.bodyLeft = 0;
  l.extWait = 0;
  requeueLane(si, li);
  // The last ACK may have gone out on this lane and died with it, and with
  // it a RESEND not yet answered. An ACK is sent only when something
  // arrives, so a quiet peer would wait forever (its CLOSE never acked, the
  // message never sent again). Say both again on the other lanes.
  if (s.rxNext > 0 || s.resendUntil > 0) {
    s.flags |= SF_ACK;
    if (s.resendUntil > s.rxNext) s.flags |= SF_RESEND;
    markSession(si);
  }
  if (wasOpen) push(EV_LANE_DOWN, sessionHandle(si), laneHandle(li), code);
  if (s.state == S_DRAINING) {
    // The peer closed the session; it closes its lanes once our ack is in.
    if (openLanes(s) == 0) endSession(si, -1, now);
    return;
  }
  // A closing session reconnects and resumes like an open one: until its
  // CLOSE is acked, what it sent may not have arrived. (Ending it as closed
  // here would report a clean close with messages lost.)
  if (s.role == ROLE_CLIENT) setReconnectAt(s, p, now + backoff(s, p));
  if (openLanes(s) > 0) return;
  if (s.state == S_OPEN) s.state = S_RESUMING;
  // No lane left: the session waits up to resumeMs for one (a CONNECTING
  // session's deadline was set by connect()).
  if (s.resumeAt == 0) s.resumeAt = now + cfg.resumeUs;
  soonAt(s.resumeAt);
}

/**
 * Ends session si and closes its lanes. code < 0: quietly (the host already
 * heard why); 0: closed; otherwise SESSION_LOST with that code.
 */
export function endSession(si: i32, code: i32, now: u64): void {
  let s = session(si);
  let h = sessionHandle(si);
  if (code > 0) {
    let e = push(EV_SESSION_LOST, h, 0, code);
    setAux(e, <u32>(s.txNextSeq - s.txAcked), s.id);
  } else if (code == 0) {
    push(EV_SESSION_CLOSED, h, 0, 0);
  }
  for (let p = 0; p < cfg.LANES_PER_SESSION; p++) {
    let li = posLane(s, p);
    if (li < 0) continue;
    let l = lane(li);
    setPosLane(s, p, -1);
    l.session = -1;
    if (l.state != L_CLOSING) {
      l.state = L_CLOSING;
      push(EV_CLOSE_LANE, h, laneHandle(li), code > 0 ? code : 0);
    }
  }
  freeSession(si);
}

/** Client timers: reopen lost lanes whose backoff expired. */
export function reconnectDue(si: i32, now: u64): void {
  let s = session(si);
  for (let p = 0; p < <i32>s.desired; p++) {
    if (posLane(s, p) >= 0) continue;
    let t = load<u64>(s.reconnectAt + (<usize>p << 3));
    if (t != 0 && t <= now) {
      if (!openPosition(si, p, now)) setReconnectAt(s, p, now + cfg.backoffMaxUs);
    }
  }
}

/** A lane reached OPEN: its backoff starts over. */
export function laneOpened(s: Session, l: Lane): void {
  setAttempts(s, <i32>l.pos, 0);
  l.state = L_OPEN;
  // An open lane's deadlines (timers.ts): keepalive and silence.
  soonAt(l.lastTx + cfg.keepaliveUs);
  soonAt(l.lastRx + s.peerKeepaliveUs * 3);
}
