// The event queue: what the core tells the host. Records are fixed size and
// live in one arena; the host reads them through a cached view after
// poll_events(). Pointers in a record stay valid until the host's next input
// call (rx, timeout, request, ...): the host must consume events before that.
//
//  event record, 64 bytes:
//   0 u32 type     4 u32 session  8 u32 lane     12 i32 code
//  16 u64 seq                     24 u32 tag     28 u32 flags
//  32 u32 hdrPtr  36 u32 hdrLen  40 u32 dataPtr  44 u32 dataLen
//  48 u32 ext     52 u32 aux     56 u64 aux64

import { eventCap } from "./config";

export const EV_SIZE: u32 = 64;

// Connection actions for the host.
export const EV_OPEN_LANE: u32 = 1;      // lane, hdr = portal URI
export const EV_CLOSE_LANE: u32 = 2;     // lane, code: write what poll_transmit gives, then close
// Server side.
export const EV_SESSION_REQUEST: u32 = 3; // lane, hdr = resource, data = attrs, aux = version
// Session state.
export const EV_SESSION_OPEN: u32 = 4;    // session, lane, data = accept attrs (client), aux64 = session id
export const EV_SESSION_RESUMED: u32 = 5; // session, lane
export const EV_SESSION_REJECTED: u32 = 6;// session, code = reason, hdr = message
export const EV_SESSION_LOST: u32 = 7;    // session, code, aux = unacked messages
export const EV_SESSION_CLOSED: u32 = 8;  // session, code (0 = local close done, E_CLOSED = peer closed)
export const EV_LANE_UP: u32 = 9;         // session, lane
export const EV_LANE_DOWN: u32 = 10;      // session, lane, code
export const EV_PROTOCOL_ERROR: u32 = 11; // session (or 0), lane, code: the peer broke the protocol
// Messages.
export const EV_REQUEST: u32 = 12;        // session, seq, tag, hdr, data, ext, flags
export const EV_MESSAGE: u32 = 13;        // session, seq, hdr, data, ext, flags
export const EV_RESPONSE: u32 = 14;       // session, seq, tag, hdr, data, ext, flags
export const EV_RECEIPT: u32 = 15;        // session, seq, tag (a request's; 0 for a one-way message)
export const EV_REQUEST_FAILED: u32 = 16; // session, tag, code
export const EV_CANCEL: u32 = 17;         // session, tag: the requester gave up
export const EV_EXT_RX: u32 = 18;         // session, lane, seq, ext, dataLen, flags bit0 = discard
export const EV_EXT_RELEASE: u32 = 19;    // session, ext: the host may drop the payload
export const EV_DRAIN: u32 = 20;          // session: credits are back after backpressure
// Pre-shared keys (the host computes and checks the proofs).
export const EV_AUTH_REQUEST: u32 = 21;   // server: session (join) or 0, lane, hdr = nonce + identity,
                                          //   data = resource + attrs, tag = resourceLen, aux = version, aux64 = session id
export const EV_AUTH_CHALLENGE: u32 = 22; // client: session, lane, hdr = our nonce, data = server's nonce, aux64 = session id
export const EV_AUTH_PROOF: u32 = 23;     // server: lane, data = the client's proof

export let evBase: usize = 0;
export let evCount: u32 = 0;
/**
 * evCount, mirrored in memory: the host reads it without a call, and skips
 * pollEvents() after an input that queued nothing (most sends, responses).
 */
export const evCountCell: usize = memory.data(4);
/** Events that could not be queued; a core bug if ever non-zero. */
export let evOverflow: u32 = 0;
let consumed: bool = false;

/** Called at the start of every input: the host consumed the last poll. */
export function beginInput(): void {
  if (consumed) {
    evCount = 0;
    store<u32>(evCountCell, 0);
    consumed = false;
  }
}

export function pollEvents(): u32 {
  consumed = true;
  return evCount;
}

export function evRoom(): u32 {
  return eventCap - evCount;
}

/** Appends a zeroed record and returns its address; traps when the queue is full. */
export function push(type: u32, session: u32, lane: u32, code: i32): usize {
  if (evCount >= eventCap) {
    // Dropping an event would lose a message or an outcome without a word:
    // the core traps instead, and the host fails this context (CORE_TRAP).
    evOverflow++;
    unreachable();
  }
  let p = evBase + <usize>evCount * EV_SIZE;
  evCount++;
  store<u32>(evCountCell, evCount);
  memory.fill(p, 0, EV_SIZE);
  store<u32>(p, type);
  store<u32>(p, session, 4);
  store<u32>(p, lane, 8);
  store<i32>(p, code, 12);
  return p;
}

@inline export function setSeq(p: usize, seq: u64): void { if (p) store<u64>(p, seq, 16); }
@inline export function setTag(p: usize, tag: u32, flags: u32): void {
  if (p) { store<u32>(p, tag, 24); store<u32>(p, flags, 28); }
}
@inline export function setHdr(p: usize, ptr: usize, len: u32): void {
  if (p) { store<u32>(p, <u32>ptr, 32); store<u32>(p, len, 36); }
}
@inline export function setData(p: usize, ptr: usize, len: u32): void {
  if (p) { store<u32>(p, <u32>ptr, 40); store<u32>(p, len, 44); }
}
@inline export function setExt(p: usize, ext: u32): void { if (p) store<u32>(p, ext, 48); }
@inline export function setAux(p: usize, aux: u32, aux64: u64): void {
  if (p) { store<u32>(p, aux, 52); store<u64>(p, aux64, 56); }
}
