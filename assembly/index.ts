// nexio protocol core: the exported interface (the ABI the host drives).
//
// Like quinn-proto, the core reads no clock, no random source and no socket.
// The host feeds it inputs, each carrying nowUs, and polls its outputs:
//
//   inputs   connect, laneAccepted, laneUp, laneDown, rx, extDone,
//            accept, reject, redirect, request, send, respond, cancel,
//            close, destroy, timeout; with pre-shared keys authLane,
//            authChallenge, authProof, authPassed
//   outputs  pollEvents (events and connection actions), pollTransmit
//            (one coalesced batch for one lane), nextDeadline
//
// Bytes the host hands over (received chunks, payloads, URIs) go into the
// staging area first. Return values below zero are -error codes
// (errors.ts). Handles are (generation << 16) | index.

import * as cfg from "./config";
import * as rng from "./rng";
import * as ev from "./events";
import * as tx from "./tx";
import {
  allocTables, allocBitmaps, allocSession, allocLane, lane, session, laneFromHandle, sessionFromHandle,
  sessionHandle, laneHandle, ROLE_CLIENT, ROLE_SERVER, L_AWAIT_HELLO, L_CONNECTING,
  S_CONNECTING, S_OPEN, S_CLOSING, S_DRAINING, S_RESUMING, SF_NO_ONEWAY, soonAt,
} from "./state";
import { laneRx } from "./rx";
import { openPosition, sendHello, laneDown as onLaneDown, endSession } from "./lanes";
import * as hs from "./handshake";
import * as auth from "./auth";
import * as dl from "./deliver";
import * as timers from "./timers";
import { MAX_APP_HEADER, INLINE_MAX, MAX_PORTALS_BYTES, MAX_BATCH, HELLO_SIZE, MAX_CONTROL_FRAME, F_RECEIPT, F_EXT, F_APP_ERROR } from "./wire";
import {
  E_BAD_HANDLE, E_BAD_ARGUMENT, E_BAD_STATE, E_NOT_OPEN, E_LIMIT, E_CLOSED, E_FRAME_TOO_LARGE, E_NO_HANDLER,
} from "./errors";

/** Bytes the host may place in the staging area at once. */
export const STAGING_CAP: u32 = 65536;

let staging: usize = 0;
let ready = false;

/** The time of the latest input: what outputs are stamped with. */
let inputNow: u64 = 0;

/** Every input starts here: the last poll is consumed, the clock moves. */
function input(nowUs: f64): void {
  ev.beginInput();
  inputNow = nowUs > 0 ? <u64>nowUs : 0;
}

@inline function us(nowUs: f64): u64 {
  return nowUs > 0 ? <u64>nowUs : 0;
}

/** Where the host writes the config block before init(). */
export function configPtr(): usize {
  return cfg.configBlock;
}

/** Allocates every table once. Returns 0, or -E_BAD_ARGUMENT for a bad config. */
export function init(): i32 {
  if (ready) return -E_BAD_ARGUMENT;
  if (!cfg.readConfig()) return -E_BAD_ARGUMENT;
  // One frame may add up to 2 x windowMsgs events; keep room for that.
  if (cfg.eventCap < cfg.windowMsgs * 4 + 64) cfg.eventCap = cfg.windowMsgs * 4 + 64;
  rng.seed(cfg.seedLo, cfg.seedHi);
  staging = heap.alloc(STAGING_CAP);
  ev.evBase = heap.alloc(<usize>cfg.eventCap * ev.EV_SIZE);
  tx.allocTx();
  allocTables();
  allocBitmaps();
  ready = true;
  return 0;
}

export function stagingPtr(): usize { return staging; }
export function eventsPtr(): usize { return ev.evBase; }
export function eventCapacity(): u32 { return cfg.eventCap; }
export function eventOverflow(): u32 { return ev.evOverflow; }
/** Receive-window entries the byte-credit check scanned so far (a diagnostic for tests and benches). */
export function rxScanSteps(): f64 { return <f64>dl.scanSteps; }

// ---- lanes ----

/**
 * Client: opens a session over `lanes` lanes. Staging holds the portal URI,
 * then the resource and the attrs the HELLO carries to the server.
 */
export function connect(uriLen: u32, resourceLen: u32, attrsLen: u32, lanes: u32, nowUs: f64): i32 {
  input(nowUs);
  let now = us(nowUs);
  if (uriLen == 0 || uriLen > MAX_PORTALS_BYTES || lanes < 1 || lanes > <u32>cfg.LANES_PER_SESSION) return -E_BAD_ARGUMENT;
  if (resourceLen > 0xffff || attrsLen > 0xffff || HELLO_SIZE + resourceLen + attrsLen > MAX_CONTROL_FRAME) return -E_BAD_ARGUMENT;
  let si = allocSession(ROLE_CLIENT, S_CONNECTING);
  if (si < 0) return -E_LIMIT;
  let s = session(si);
  s.desired = <u8>lanes;
  memory.copy(s.portals, staging, uriLen);
  s.portalsLen = uriLen;
  memory.copy(s.hello, staging + uriLen, resourceLen + attrsLen);
  s.resourceLen = resourceLen;
  s.helloLen = resourceLen + attrsLen;
  s.resumeAt = now + cfg.resumeUs;
  soonAt(s.resumeAt);
  if (!openPosition(si, 0, now)) {
    endSession(si, -1, now);
    return -E_LIMIT;
  }
  return <i32>sessionHandle(si);
}

/** Server: a transport accepted a connection. Returns its lane handle. */
export function laneAccepted(nowUs: f64): i32 {
  input(nowUs);
  let li = allocLane(ROLE_SERVER, L_AWAIT_HELLO, us(nowUs));
  return li < 0 ? -E_LIMIT : <i32>laneHandle(li);
}

/** Client: the connection for this lane is established. */
export function laneUp(h: u32, nowUs: f64): i32 {
  input(nowUs);
  let li = laneFromHandle(h);
  if (li < 0) return -E_BAD_HANDLE;
  if (lane(li).state != L_CONNECTING) return -E_BAD_ARGUMENT;
  sendHello(li, us(nowUs));
  return 0;
}

/**
 * The lane's transport can READ a peer's memory (rdma://): EXT payloads of
 * at least minBytes go by rendezvous on it (0: never), and the peer's
 * rendezvous frames are accepted on it.
 */
export function laneRendezvous(h: u32, minBytes: u32, nowUs: f64): i32 {
  input(nowUs);
  let li = laneFromHandle(h);
  if (li < 0) return -E_BAD_HANDLE;
  lane(li).rdvMin = minBytes;
  return 0;
}

/** The transport lost this lane's connection (code: why). */
export function laneDown(h: u32, code: i32, nowUs: f64): i32 {
  input(nowUs);
  let li = laneFromHandle(h);
  if (li < 0) return -E_BAD_HANDLE;
  onLaneDown(li, code, us(nowUs));
  return 0;
}

/**
 * len bytes in staging arrived on this lane. Returns how many were consumed;
 * fewer than len when the core waits for an ext payload (see EV_EXT_RX) or
 * for the host to drain events. The host calls again with the rest.
 */
export function rx(h: u32, len: u32, nowUs: f64): i32 {
  input(nowUs);
  let li = laneFromHandle(h);
  if (li < 0) return -E_BAD_HANDLE;
  if (len > STAGING_CAP) return -E_BAD_ARGUMENT;
  return <i32>laneRx(li, staging, len, us(nowUs));
}

/** The host has taken the ext payload announced by EV_EXT_RX off this lane. */
export function extDone(h: u32, nowUs: f64): i32 {
  input(nowUs);
  let li = laneFromHandle(h);
  if (li < 0) return -E_BAD_HANDLE;
  if (!lane(li).extWait) return -E_BAD_ARGUMENT;
  dl.extDone(li, us(nowUs));
  return 0;
}

// ---- server decisions ----

/** Accepts the session asked for on this lane; staging holds the session key (16 bytes), portals, attrs. */
export function accept(h: u32, portalsLen: u32, attrsLen: u32, nowUs: f64): i32 {
  input(nowUs);
  let li = laneFromHandle(h);
  if (li < 0) return -E_BAD_HANDLE;
  return hs.accept(li, staging, portalsLen, attrsLen, us(nowUs));
}

/** Rejects it with a reason code and a message in staging. */
export function reject(h: u32, reason: i32, msgLen: u32, nowUs: f64): i32 {
  input(nowUs);
  let li = laneFromHandle(h);
  if (li < 0) return -E_BAD_HANDLE;
  return hs.reject(li, reason, staging, msgLen, us(nowUs));
}

/** Redirects it to the portals in staging ('\n'-separated URIs). */
export function redirect(h: u32, portalsLen: u32, nowUs: f64): i32 {
  input(nowUs);
  let li = laneFromHandle(h);
  if (li < 0) return -E_BAD_HANDLE;
  return hs.redirect(li, staging, portalsLen, us(nowUs));
}

// ---- pre-shared keys (auth.ts) ----

/** Client, before laneUp: staging holds the lane's nonce (32 bytes) then the identity (idLen bytes). */
export function authLane(h: u32, idLen: u32, nowUs: f64): i32 {
  input(nowUs);
  let li = laneFromHandle(h);
  if (li < 0) return -E_BAD_HANDLE;
  return auth.authLane(li, staging, idLen);
}

/** Server: answers EV_AUTH_REQUEST; staging holds the server's nonce (32 bytes). */
export function authChallenge(h: u32, nowUs: f64): i32 {
  input(nowUs);
  let li = laneFromHandle(h);
  if (li < 0) return -E_BAD_HANDLE;
  return auth.authChallenge(li, staging);
}

/** Client: answers EV_AUTH_CHALLENGE; staging holds our proof, then the server's expected proof (32 bytes each). */
export function authProof(h: u32, nowUs: f64): i32 {
  input(nowUs);
  let li = laneFromHandle(h);
  if (li < 0) return -E_BAD_HANDLE;
  return auth.authProof(li, staging);
}

/** Server: the client's proof (EV_AUTH_PROOF) is right; staging holds the server's proof. A wrong one: reject(auth). */
export function authPassed(h: u32, nowUs: f64): i32 {
  input(nowUs);
  let li = laneFromHandle(h);
  if (li < 0) return -E_BAD_HANDLE;
  return auth.authPassed(li, staging, us(nowUs));
}

// ---- messages ----

/** Common checks for a message the application sends: returns the session index or -error. */
function sendable(h: u32, hdrLen: u32, dataLen: u32, flags: u32): i32 {
  let si = sessionFromHandle(h);
  if (si < 0) return -E_BAD_HANDLE;
  let s = session(si);
  if (s.state == S_CLOSING || s.state == S_DRAINING) return -E_CLOSED;
  if (s.state == S_CONNECTING) return -E_NOT_OPEN;
  if (hdrLen > MAX_APP_HEADER) return -E_FRAME_TOO_LARGE;
  if ((flags & F_EXT) == 0 && hdrLen + dataLen > INLINE_MAX) return -E_FRAME_TOO_LARGE;
  if ((flags & F_EXT) != 0 && dataLen == 0) return -E_BAD_ARGUMENT;
  if (<u64>hdrLen + <u64>dataLen > <u64>cfg.maxMessage) return -E_FRAME_TOO_LARGE;
  return si;
}

/**
 * Sends a request: staging holds the header, then the data (unless flags
 * has F_EXT: the host then writes the data after the frame, ext names it).
 * Returns the request's tag (> 0) or -error.
 */
export function request(h: u32, hdrLen: u32, dataLen: u32, flags: u32, timeoutMs: u32, ext: u32, nowUs: f64): f64 {
  input(nowUs);
  let si = sendable(h, hdrLen, dataLen, flags);
  if (si < 0) return <f64>si;
  return <f64>dl.request(si, staging, hdrLen, dataLen, <u8>(flags & (F_RECEIPT | F_EXT)),
    <u64>timeoutMs * 1000, ext, us(nowUs));
}

/** Sends a one-way message. Returns its sequence number or -error. */
export function send(h: u32, hdrLen: u32, dataLen: u32, flags: u32, ext: u32, nowUs: f64): f64 {
  input(nowUs);
  let si = sendable(h, hdrLen, dataLen, flags);
  if (si < 0) return <f64>si;
  if (session(si).flags & SF_NO_ONEWAY) return -E_NO_HANDLER;
  return <f64>tx.enqueue(si, 0x12, <u8>(flags & (F_RECEIPT | F_EXT)), staging, hdrLen, dataLen, 0, ext);
}

/** Answers the request with this tag. Returns 0 or -error. */
export function respond(h: u32, tag: u32, hdrLen: u32, dataLen: u32, flags: u32, ext: u32, nowUs: f64): i32 {
  input(nowUs);
  let si = sendable(h, hdrLen, dataLen, flags);
  if (si < 0) {
    // A session the peer is closing still answers what it received.
    si = sessionFromHandle(h);
    if (si < 0 || session(si).state != S_DRAINING) return sendable(h, hdrLen, dataLen, flags);
  }
  return dl.respond(si, tag, staging, hdrLen, dataLen, <u8>(flags & (F_RECEIPT | F_EXT | F_APP_ERROR)), ext);
}

/**
 * holdRx: the host is done with delivered message seq (the header and data
 * views its event pointed at). Returns 0, or -error (bad-state without holdRx,
 * bad-argument for a seq not delivered or already released).
 */
export function release(h: u32, seq: f64, nowUs: f64): i32 {
  input(nowUs);
  let si = sessionFromHandle(h);
  if (si < 0) return -E_BAD_HANDLE;
  if (!cfg.holdRx) return -E_BAD_STATE;
  return dl.release(si, <u64>seq);
}

/** The application gave up on a request: no response will be delivered. */
export function cancel(h: u32, tag: u32, nowUs: f64): i32 {
  input(nowUs);
  let si = sessionFromHandle(h);
  if (si < 0) return -E_BAD_HANDLE;
  return dl.cancelRequest(si, tag) ? 0 : -E_BAD_HANDLE;
}

/** Graceful close: CLOSE follows every message already sent; done when acked. */
export function close(h: u32, nowUs: f64): i32 {
  input(nowUs);
  let si = sessionFromHandle(h);
  if (si < 0) return -E_BAD_HANDLE;
  let s = session(si);
  if (s.state == S_CLOSING) return 0;
  // Resuming too: CLOSE waits in the send ring for a lane like any message;
  // the session is lost if none comes back within resumeMs.
  if (s.state == S_OPEN || s.state == S_RESUMING) {
    s.state = S_CLOSING;
    dl.queueClose(si);
    return 0;
  }
  endSession(si, 0, us(nowUs));
  return 0;
}

/** Abrupt close: the session and its lanes are gone now. */
export function destroy(h: u32, nowUs: f64): i32 {
  input(nowUs);
  let si = sessionFromHandle(h);
  if (si < 0) return -E_BAD_HANDLE;
  endSession(si, -1, us(nowUs));
  return 0;
}

// ---- time ----

export function timeout(nowUs: f64): void {
  input(nowUs);
  timers.timeout(us(nowUs));
}

/** When to call timeout() next, in µs; -1 when no timer is armed. */
export function nextDeadline(): f64 {
  let d = timers.nextDeadline();
  return d == 0 ? -1 : <f64>d;
}

// ---- outputs ----

/** Number of event records ready at eventsPtr(). Valid until the next input. */
/** Address of a u32 that holds the number of queued events (read without a call). */
export function eventCountPtr(): usize { return ev.evCountCell; }

export function pollEvents(): u32 {
  return ev.pollEvents();
}

/** The next coalesced batch: returns its lane handle, or 0 when idle. */
export function pollTransmit(nowUs: f64): u32 {
  // Stamped with the latest input's time, not nowUs: a batch is produced by
  // what the inputs did, and a recording replays the same without it.
  return tx.pollTransmit(inputNow);
}
export function txPtr(): usize { return tx.txStart; }
export function txLen(): u32 { return tx.txLen; }
export function txExt(): u32 { return tx.txExt; }
export function txExtLen(): u32 { return tx.txExtLen; }
/** Offset in the batch of its rendezvous descriptor, for the host to fill in (addr, rkey); -1 when none. */
export function txRdv(): i32 { return tx.txRdv ? <i32>(tx.txRdv - tx.txStart) : -1; }

// ---- introspection (stats, tests) ----

/** Session counters into staging as u64 words; returns how many. */
export function sessionInfo(h: u32): i32 {
  let si = sessionFromHandle(h);
  if (si < 0) return -E_BAD_HANDLE;
  let s = session(si);
  store<u64>(staging, s.state);
  store<u64>(staging, s.txNextSeq, 8);
  store<u64>(staging, s.txAcked, 16);
  store<u64>(staging, s.rxNext, 24);
  store<u64>(staging, s.id, 32);
  store<u64>(staging, <u64>s.M, 40);
  store<u64>(staging, <u64>s.W, 48);
  store<u64>(staging, <u64>s.R, 56);
  store<u64>(staging, s.rxAck, 64);
  return 9;
}

export const MAX_BATCH_BYTES: u32 = MAX_BATCH;

// A failed invariant traps instead of calling into the host, so the release
// build imports nothing; host/core.ts contains the trap.
function onAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  unreachable();
}
