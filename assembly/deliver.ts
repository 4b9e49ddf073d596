// Reliability: sequence numbers, in-order exactly-once delivery through the
// receive window, acks that return credits, receipts, the request tables
// (requests we sent, requests we received), cancel, close.
//
// Exactly once: a message is delivered when its sequence number equals
// rxNext; anything below rxNext, or already in the window, is a duplicate and
// its bytes are never written. The sender keeps every message (responses
// included) until the ack covers it, so after a lane is lost it can send it
// again on another lane and the receiver drops what it already has.

import * as cfg from "./config";
import {
  Session, lane, session, sessionHandle, laneHandle, txEntry, rxEntry, pendEntry, inbEntry,
  L_OPEN, RX_EMPTY, RX_RECEIVING, RX_PRESENT, RX_HELD, P_FREE, P_WAITING, P_CANCEL_UNSENT, P_CANCELLED,
  SF_ACK, SF_BACKPRESSURED, S_CLOSING, S_DRAINING, S_OPEN, SF_CLOSE_QUEUED, ROLE_SERVER, soonAt, SF_ACK_LATER,
} from "./state";
import {
  push, setSeq, setTag, setHdr, setData, setExt, setAux, EV_REQUEST, EV_MESSAGE, EV_RESPONSE,
  EV_RECEIPT, EV_EXT_RX, EV_EXT_RELEASE, EV_DRAIN, EV_CANCEL, EV_SESSION_CLOSED,
  EV_REQUEST_FAILED,
} from "./events";
import { markSession, enqueue, hasCredit, requeueAll } from "./tx";
import { protocolError, endSession } from "./lanes";
import {
  MSG_HEADER, MAX_APP_HEADER, INLINE_MAX, T_REQUEST, T_RESPONSE, T_ONEWAY, T_CANCEL, T_CLOSE,
  F_EXT, F_RECEIPT, F_KNOWN_MSG, F_RESEND, F_RDV, RDV_DESC,
} from "./wire";
import {
  E_MALFORMED, E_BAD_STATE, E_WINDOW, E_LIMIT, E_FRAME_TOO_LARGE, E_BACKPRESSURE, E_BAD_ARGUMENT, E_BAD_TYPE,
} from "./errors";

let extCounter: u32 = 0;
/** Receive-window entries visited by inByteWindow's scans, in all (a diagnostic: index.ts rxScanSteps). */
export let scanSteps: u64 = 0;

/** Where a rendezvous descriptor is read to, in the lane's control buffer. */
const RDV_SCRATCH: usize = 64;
/** EV_EXT_RX flags: bit 0 the payload is a duplicate's (drop it), bit 1 rendezvous (READ it). */
const EXT_RX_RDV: u32 = 2;

/** onMessageHeader's outcomes. */
export const MH_CLOSED: i32 = 0;
/** The header is taken; the body follows on the lane (l.bodyLeft bytes). */
export const MH_BODY: i32 = 1;
/** The whole frame was in the input: taken and delivered at once. */
export const MH_DELIVERED: i32 = 2;

/**
 * A message frame header (32 bytes at h) arrived on lane li. Checks it and
 * prepares the lane to receive the body: into the receive ring, or skipped
 * when it is a duplicate. `whole`: the frame's body follows the header in
 * the same input; the next message in order, with nothing held after it,
 * is then copied and delivered in one go (no entry written and read back).
 * Returns MH_CLOSED if the lane was closed, MH_BODY or MH_DELIVERED.
 */
export function onMessageHeader(li: i32, h: usize, now: u64, whole: bool): i32 {
  let l = lane(li);
  let si = l.session;
  if (si < 0 || l.state != L_OPEN) { protocolError(li, E_BAD_STATE, now); return MH_CLOSED; }
  let s = session(si);
  let type = load<u8>(h);
  let flags = load<u8>(h, 1);
  let hdrLen = <u32>load<u16>(h, 2);
  let frameLen = load<u32>(h, 4);
  let seq = load<u64>(h, 8);
  let slot = load<u32>(h, 16);
  let dataLen = load<u32>(h, 20);
  let tag = load<u32>(h, 24);
  let ext = (flags & F_EXT) != 0;
  let rdv = (flags & F_RDV) != 0;
  if ((flags & ~F_KNOWN_MSG) != 0 || load<u32>(h, 28) != 0) { protocolError(li, E_MALFORMED, now); return MH_CLOSED; }
  if (hdrLen > MAX_APP_HEADER) { protocolError(li, E_FRAME_TOO_LARGE, now); return MH_CLOSED; }
  // A rendezvous only where the host can READ (rdma:// lanes), and only for EXT payloads.
  if (rdv && (!ext || l.rdvMin == 0)) { protocolError(li, E_MALFORMED, now); return MH_CLOSED; }
  if (ext) {
    // The descriptor is not part of the sender's stream: it is read off the
    // lane, not into the ring, and the frame occupies frameLen - RDV_DESC there.
    if (rdv) frameLen -= RDV_DESC;
    if (dataLen == 0 || frameLen != MSG_HEADER + hdrLen) { protocolError(li, E_MALFORMED, now); return MH_CLOSED; }
    // The claim is checked before the host hears of it (EV_EXT_RX): it sizes nothing past our limit.
    if (<u64>hdrLen + <u64>dataLen > <u64>cfg.maxMessage) { protocolError(li, E_FRAME_TOO_LARGE, now); return MH_CLOSED; }
  } else {
    if (hdrLen + dataLen > INLINE_MAX) { protocolError(li, E_FRAME_TOO_LARGE, now); return MH_CLOSED; }
    if (frameLen != MSG_HEADER + hdrLen + dataLen) { protocolError(li, E_MALFORMED, now); return MH_CLOSED; }
  }
  if (type == T_REQUEST || type == T_CANCEL) {
    if ((tag & 0xffff) >= s.R || (tag >> 16) == 0) { protocolError(li, E_LIMIT, now); return MH_CLOSED; }
  }
  // A server that said in its ACCEPT that it takes no one-way messages refuses one.
  if (type == T_ONEWAY && cfg.refuseOneway && s.role == ROLE_SERVER) { protocolError(li, E_BAD_TYPE, now); return MH_CLOSED; }
  if ((type == T_CANCEL || type == T_CLOSE) && (hdrLen | dataLen | <u32>flags) != 0) {
    protocolError(li, E_MALFORMED, now);
    return MH_CLOSED;
  }
  let pos = slot & (cfg.windowBytes - 1);
  if (pos + frameLen > cfg.windowBytes) { protocolError(li, E_WINDOW, now); return MH_CLOSED; }
  // Entries from rxAck on are in use (delivered ones may still be held).
  if (seq >= s.rxAck + <u64>s.M) { protocolError(li, E_WINDOW, now); return MH_CLOSED; }
  l.bodySeq = seq;
  l.bodyLeft = frameLen - MSG_HEADER;
  l.rdvStage = rdv ? 1 : 0;
  let e = rxEntry(s, seq);
  if (seq < s.rxNext || load<u8>(e) != RX_EMPTY) {
    // Duplicate: already delivered, or already arriving on another lane.
    // onMessageBody reads a skipped frame's header from rxBuf (its EXT
    // payload still follows on the stream); the fast parse left it in the input.
    l.bodySkip = 1;
    if (h != l.rxBuf) memory.copy(l.rxBuf, h, MSG_HEADER);
    if (seq < s.rxNext) { s.flags |= SF_ACK; markSession(si); }
  } else {
    if (!inByteWindow(s, seq, slot, frameLen) || overlapsLent(s, pos, frameLen)) { protocolError(li, E_WINDOW, now); return MH_CLOSED; }
    l.bodySkip = 0;
    let dst = s.rxRing + <usize>pos;
    if (whole && !ext && seq == s.rxNext && s.rxHigh == seq && !cfg.holdRx) {
      // In order, nothing held after it, its body here: one copy into the
      // ring, delivered now (what onMessageBody and deliver would do).
      memory.copy(dst, h, frameLen);
      l.bodyLeft = 0;
      s.rxHigh = seq + 1;
      s.rxNext = seq + 1;
      s.rxBase = slot + frameLen;
      let r = deliverOne(s, si, sessionHandle(si), li, dst, type, flags, hdrLen, dataLen, tag, 0, seq, now);
      if (r < 0) return MH_CLOSED;
      deliverTail(s, si, now, r == DL_CLOSE);
      return MH_DELIVERED;
    }
    memory.copy(dst, h, MSG_HEADER);
    l.bodyDst = dst + MSG_HEADER;
    store<u8>(e, RX_RECEIVING);
    store<u8>(e, type, 1);
    store<u8>(e, flags, 2);
    store<i32>(e, li, 4);
    store<u32>(e, pos, 8);
    store<u32>(e, 0, 12);
    store<u32>(e, slot, 16);
    store<u32>(e, hdrLen, 20);
    store<u32>(e, dataLen, 24);
    store<u32>(e, tag, 28);
    if (seq >= s.rxHigh) s.rxHigh = seq + 1;
  }
  return MH_BODY;
}

/** Stream end (slot + frameLen) of the message held in entry e. */
@inline function heldEnd(e: usize): u32 {
  let flags = load<u8>(e, 2);
  return load<u32>(e, 16) + MSG_HEADER + load<u32>(e, 20) + ((flags & F_EXT) ? 0 : load<u32>(e, 24));
}

/**
 * The byte credit, seen from the receiver (protocol.md section 13): a new
 * message seq at [slot, slot + frameLen) of the sender's stream must not
 * overlap a message still held, and what is held must span at most W bytes,
 * so no two held messages share ring bytes. An honest sender keeps all it
 * has unacked within W bytes from its oldest unacked message, at or after
 * rxBase (padded at most to the next multiple of W). Offsets are taken
 * relative to rxBase (u32, wrapping). Held messages are in seq and slot
 * order, so only the neighbours matter: the nearest held below and above
 * seq, and the lowest and highest held, each found by a scan that stops at
 * the first held entry. The lowest is searched from the session's hint
 * (every entry below it is empty), so with batches held behind a missing
 * one (lanes that overtake each other) a message costs O(1), not a scan of
 * the gap: that made two-lane sessions quadratic in the window.
 */
function inByteWindow(s: Session, seq: u64, slot: u32, frameLen: u32): bool {
  let W = s.W;
  let pad = (W - (s.rxBase & (W - 1))) & (W - 1);
  let start = slot - s.rxBase;
  if (start > pad + W || start + frameLen > pad + W) return false;
  let lo = start;
  let hi = start + frameLen;
  let next = s.rxNext;
  let high = s.rxHigh;
  // The lowest held at or above rxNext (high if none): the entry at rxNext
  // on its own, then from the hint up (every entry in (rxNext, hint) is empty).
  let hint = s.rxLowHint > next && s.rxLowHint - next < <u64>s.M ? s.rxLowHint : next + 1;
  let low = next;
  if (low >= high || load<u8>(rxEntry(s, low)) == RX_EMPTY) {
    low = hint;
    while (low < high && load<u8>(rxEntry(s, low)) == RX_EMPTY) { low++; scanSteps++; }
    if (low > high) low = high;
    hint = low; // (rxNext, low) is empty
  }
  // seq, above rxNext, may be held next: the hint must not pass it.
  s.rxLowHint = seq > next && seq < hint ? seq : hint;
  let above = high; // the nearest held above seq (high if none)
  if (low < seq && low < high) {
    // Held below seq: the lowest sets lo; the nearest must end at or before slot.
    lo = load<u32>(rxEntry(s, low), 16) - s.rxBase;
    let n = seq - 1;
    while (load<u8>(rxEntry(s, n)) == RX_EMPTY) { n--; scanSteps++; } // stops at low at the latest
    if (heldEnd(rxEntry(s, n)) - s.rxBase > start) return false;
    if (seq + 1 < high) {
      // From the last arrival's neighbour when seq lies between them (arrivals in
      // order on a lane): (rxUpFrom, rxUpAt) is empty.
      let up = s.rxUpFrom < seq && seq < s.rxUpAt && s.rxUpAt < high ? s.rxUpAt : seq + 1;
      while (up < high && load<u8>(rxEntry(s, up)) == RX_EMPTY) { up++; scanSteps++; }
      above = up;
    }
  } else if (low > seq) {
    above = low;
  }
  s.rxUpFrom = seq;
  s.rxUpAt = above;
  if (above < high) {
    // Held above seq: the nearest must start at or after its end; the highest sets hi.
    if (load<u32>(rxEntry(s, above), 16) - s.rxBase < start + frameLen) return false;
    let top = high - 1;
    while (load<u8>(rxEntry(s, top)) == RX_EMPTY) { top--; scanSteps++; } // stops at above at the latest
    hi = heldEnd(rxEntry(s, top)) - s.rxBase;
  }
  return hi - lo <= W;
}

/**
 * holdRx: whether ring bytes [pos, pos + len) overlap what is lent to the
 * host, [ackBase, rxBase) of the stream. An honest sender never writes
 * there: it is unacked, so still inside its own ring's credit.
 */
function overlapsLent(s: Session, pos: u32, len: u32): bool {
  if (s.rxAck == s.rxNext) return false;
  let RB = cfg.windowBytes;
  let h = s.rxBase - s.ackBase;
  if (h >= RB) return true;
  let a = s.ackBase & (RB - 1);
  let end = a + h;
  if (pos < (end < RB ? end : RB) && a < pos + len) return true;
  return end > RB && pos < end - RB;
}

/** Moves the ack point over released messages (holdRx), or to rxNext. */
function advanceAck(s: Session): void {
  if (!cfg.holdRx) { s.rxAck = s.rxNext; return; }
  while (s.rxAck < s.rxNext && load<u8>(rxEntry(s, s.rxAck)) != RX_HELD) s.rxAck++;
  s.ackBase = s.rxAck < s.rxNext ? load<u32>(rxEntry(s, s.rxAck), 16) : s.rxBase;
}

/**
 * holdRx: the host is done with delivered message seq (its header and data
 * views). Acks once everything below is released too. Returns 0 or -error.
 */
export function release(si: i32, seq: u64): i32 {
  let s = session(si);
  if (seq < s.rxAck || seq >= s.rxNext) return -E_BAD_ARGUMENT;
  let e = rxEntry(s, seq);
  if (load<u8>(e) != RX_HELD) return -E_BAD_ARGUMENT;
  store<u8>(e, RX_EMPTY);
  if (seq == s.rxAck) {
    advanceAck(s);
    s.flags |= SF_ACK;
    markSession(si);
  }
  return 0;
}

/** The body of lane li's current message has arrived. Returns false if the lane was closed. */
export function onMessageBody(li: i32, now: u64): bool {
  let l = lane(li);
  let si = l.session;
  let s = session(si);
  let e = rxEntry(s, l.bodySeq);
  let skip = l.bodySkip != 0;
  if (l.rdvStage == 1) {
    // The header bytes are in; the rendezvous descriptor follows, into the
    // lane's scratch (its control buffer is free while a body streams).
    l.rdvStage = 2;
    l.bodyLeft = RDV_DESC;
    l.bodyDst = l.rxBuf + RDV_SCRATCH;
    return true;
  }
  let rdv = l.rdvStage == 2;
  l.rdvStage = 0;
  if (rdv) {
    let d = l.rxBuf + RDV_SCRATCH;
    if (!skip && load<u32>(d, 12) != 0) { protocolError(li, E_MALFORMED, now); return false; }
    // A duplicate's payload is nowhere on the lane: nothing to drop.
    if (skip) return true;
  }
  if (!skip && (load<u8>(e, 2) & F_EXT)) {
    let id = ++extCounter;
    if (id == 0) id = ++extCounter;
    store<u32>(e, id, 12);
    l.extWait = 1;
    let ev = push(EV_EXT_RX, sessionHandle(si), laneHandle(li), 0);
    setSeq(ev, l.bodySeq);
    setExt(ev, id);
    setData(ev, 0, load<u32>(e, 24));
    if (rdv) {
      // The host READs the payload from the peer's memory, then extDone().
      let d = l.rxBuf + RDV_SCRATCH;
      setTag(ev, 0, EXT_RX_RDV);
      setAux(ev, load<u32>(d, 8), load<u64>(d));
    }
    return true;
  }
  if (skip) {
    // A duplicate's EXT payload still follows on the stream: the host drops it.
    let h = l.rxBuf;
    if (load<u8>(h, 1) & F_EXT) {
      l.extWait = 1;
      let ev = push(EV_EXT_RX, sessionHandle(si), laneHandle(li), 0);
      setSeq(ev, l.bodySeq);
      setTag(ev, 0, 1);
      setData(ev, 0, load<u32>(h, 20));
    }
    return true;
  }
  store<u8>(e, RX_PRESENT);
  return deliver(si, li, now);
}

/** The host has taken lane li's ext payload off the stream. */
export function extDone(li: i32, now: u64): bool {
  let l = lane(li);
  l.extWait = 0;
  let si = l.session;
  if (si < 0 || l.bodySkip) return true;
  let s = session(si);
  let e = rxEntry(s, l.bodySeq);
  if (load<u8>(e) != RX_RECEIVING || load<i32>(e, 4) != li) return true;
  store<u8>(e, RX_PRESENT);
  return deliver(si, li, now);
}

/** deliverOne's outcomes besides a protocol error (-1): delivered, or delivered the peer's CLOSE. */
const DL_OK: i32 = 0;
const DL_CLOSE: i32 = 1;

/** Delivers every message that is now in order. Returns false if lane li was closed. */
function deliver(si: i32, li: i32, now: u64): bool {
  let s = session(si);
  let sh = sessionHandle(si);
  let closeSeen = false;
  while (true) {
    let e = rxEntry(s, s.rxNext);
    if (load<u8>(e) != RX_PRESENT) break;
    // Everything from the entry, as checked on arrival (see RxEntry).
    let p = s.rxRing + <usize>load<u32>(e, 8);
    let flags = load<u8>(e, 2);
    let hdrLen = load<u32>(e, 20);
    let seq = s.rxNext;
    let dataLen = load<u32>(e, 24);
    store<u8>(e, RX_EMPTY);
    s.rxNext = seq + 1;
    s.rxBase = load<u32>(e, 16) + MSG_HEADER + hdrLen + ((flags & F_EXT) ? 0 : dataLen);
    let r = deliverOne(s, si, sh, li, p, load<u8>(e, 1), flags, hdrLen, dataLen, load<u32>(e, 28), load<u32>(e, 12), seq, now);
    if (r < 0) return false;
    if (r == DL_CLOSE) closeSeen = true;
    if (cfg.holdRx != 0 && r == DL_LENT) store<u8>(e, RX_HELD);
  }
  deliverTail(s, si, now, closeSeen);
  return true;
}

/** What follows a delivery: the ack point, the ack by rule, the session's turn to send, credit back. */
function deliverTail(s: Session, si: i32, now: u64, closeSeen: bool): void {
  advanceAck(s);
  ackByRule(s, now, closeSeen);
  markSession(si);
  maybeDrain(si);
}

/** deliverOne: delivered and lent to the host (holdRx: the entry stays held until release). */
const DL_LENT: i32 = 2;

/**
 * Delivers message seq (the next in order; rxNext is already past it),
 * whose frame is at p in the ring: an event for the host, the request and
 * response tables, a receipt to send. Returns DL_OK, DL_CLOSE (the peer's
 * CLOSE), DL_LENT (holdRx: its bytes are lent), or -1 after a protocol
 * error closed lane li.
 */
function deliverOne(
  s: Session, si: i32, sh: u32, li: i32, p: usize, type: u8, flags: u8, hdrLen: u32, dataLen: u32, tag: u32, ext: u32, seq: u64, now: u64,
): i32 {
  let r = DL_OK;
  if (type == T_REQUEST) {
    let ib = inbEntry(s, tag & 0xffff);
    if (load<u8>(ib) != P_FREE) { advanceAck(s); protocolError(li, E_LIMIT, now); return -1; }
    store<u8>(ib, P_WAITING);
    store<u32>(ib, tag, 4);
    store<u64>(ib, seq, 8);
    let ev = push(EV_REQUEST, sh, laneHandle(li), 0);
    if (cfg.holdRx != 0) r = DL_LENT;
    setSeq(ev, seq);
    setTag(ev, tag, flags);
    setHdr(ev, p + MSG_HEADER, hdrLen);
    setData(ev, (flags & F_EXT) ? 0 : p + MSG_HEADER + hdrLen, dataLen);
    setExt(ev, ext);
  } else if (type == T_ONEWAY) {
    let ev = push(EV_MESSAGE, sh, laneHandle(li), 0);
    if (cfg.holdRx != 0) r = DL_LENT;
    setSeq(ev, seq);
    setTag(ev, 0, flags);
    setHdr(ev, p + MSG_HEADER, hdrLen);
    setData(ev, (flags & F_EXT) ? 0 : p + MSG_HEADER + hdrLen, dataLen);
    setExt(ev, ext);
  } else if (type == T_RESPONSE) {
    // A response that matches no request of ours is dropped; its tag is
    // range-checked before it names a table entry.
    let idx = tag & 0xffff;
    let pe = pendEntry(s, idx);
    let st = idx < s.R ? load<u8>(pe) : P_FREE;
    if (st != P_FREE && <u32>load<u16>(pe, 2) == tag >> 16) {
      if (st == P_WAITING) {
        store<u8>(pe, P_FREE);
        let ev = push(EV_RESPONSE, sh, laneHandle(li), 0);
        if (cfg.holdRx != 0) r = DL_LENT;
        setSeq(ev, seq);
        setTag(ev, tag, flags);
        setHdr(ev, p + MSG_HEADER, hdrLen);
        setData(ev, (flags & F_EXT) ? 0 : p + MSG_HEADER + hdrLen, dataLen);
        setExt(ev, ext);
      } else if (ext) {
        // Cancelled: no response is delivered, but its payload must be dropped.
        let ev = push(EV_EXT_RELEASE, sh, 0, 0);
        setExt(ev, ext);
        store<u32>(ev, 1, 28);
      }
    } else if (ext) {
      let ev = push(EV_EXT_RELEASE, sh, 0, 0);
      setExt(ev, ext);
      store<u32>(ev, 1, 28);
    }
  } else if (type == T_CANCEL) {
    let ib = inbEntry(s, tag & 0xffff);
    if (load<u8>(ib) == P_WAITING && load<u32>(ib, 4) == tag) {
      store<u8>(ib, P_FREE);
      let ev = push(EV_CANCEL, sh, laneHandle(li), 0);
      setSeq(ev, load<u64>(ib, 8));
      setTag(ev, tag, 0);
    }
  } else if (type == T_CLOSE) {
    r = DL_CLOSE;
    if (s.state != S_CLOSING) {
      s.state = S_DRAINING;
      push(EV_SESSION_CLOSED, sh, 0, 16 /* E_CLOSED */);
    }
  }
  if ((flags & F_RECEIPT) && s.receiptCount < cfg.windowMsgs) {
    store<u64>(s.receipts + (<usize>s.receiptCount << 3), seq);
    s.receiptCount++;
  }
  return r;
}

/**
 * Acks by rule (protocol.md section 12): what was delivered is acked at
 * once when a quarter of the message or byte window is unacked, or when
 * the peer's CLOSE was delivered (its session ends on that ack); otherwise
 * the ACK waits up to ACK_DELAY_US for a batch of ours to ride on (a
 * response, a request, a message). A sender out of credit has a whole
 * window unacked, so it never waits on the delay.
 */
function ackByRule(s: Session, now: u64, closeSeen: bool): void {
  if (s.rxAck <= s.ackSentSeq || (s.flags & SF_ACK)) return;
  if (s.rxAck - s.ackSentSeq >= <u64>(s.M >> 2) || s.rxBase - s.ackSentBase >= (s.W >> 2) || closeSeen || s.state == S_DRAINING) {
    s.flags = (s.flags | SF_ACK) & ~SF_ACK_LATER;
    s.ackAt = 0;
    return;
  }
  s.flags |= SF_ACK_LATER;
  if (s.ackAt == 0) {
    s.ackAt = now + cfg.ACK_DELAY_US;
    soonAt(s.ackAt);
  }
}

/** Tells the host once credits are back after it was refused for lack of them. */
function maybeDrain(si: i32): void {
  let s = session(si);
  if (!(s.flags & SF_BACKPRESSURED) || !hasCredit(s, MSG_HEADER + INLINE_MAX)) return;
  for (let i: u32 = 0; i < s.R; i++) {
    if (load<u8>(pendEntry(s, i)) == P_FREE) {
      s.flags &= ~SF_BACKPRESSURED;
      push(EV_DRAIN, sessionHandle(si), 0, 0);
      return;
    }
  }
}

/** The peer's ack: every message below ackSeq was delivered. Returns false if lane li was closed. */
export function processAck(si: i32, ackSeq: u64, li: i32, now: u64): bool {
  let s = session(si);
  // Only what was sent can be acked (a message queued but never sent too
  // would be dropped unsent).
  if (ackSeq > s.txNextSend) { protocolError(li, E_WINDOW, now); return false; }
  if (ackSeq <= s.txAcked) return true;
  let sh = sessionHandle(si);
  let closed = false;
  for (let q = s.txAcked; q < ackSeq; q++) {
    let e = txEntry(s, q);
    let flags = load<u8>(e, 17);
    let type = load<u8>(e, 16);
    if ((flags & F_RECEIPT) && !load<u8>(e, 18)) {
      let ev = push(EV_RECEIPT, sh, 0, 0);
      setSeq(ev, q);
      if (type == T_REQUEST) setTag(ev, load<u32>(e, 20), 0);
    }
    if (flags & F_EXT) {
      let ev = push(EV_EXT_RELEASE, sh, 0, 0);
      setExt(ev, load<u32>(e, 12));
    }
    if (type == T_CANCEL) {
      let tag = load<u32>(e, 20);
      let pe = pendEntry(s, tag & 0xffff);
      if (load<u8>(pe) == P_CANCELLED && <u32>load<u16>(pe, 2) == tag >> 16) store<u8>(pe, P_FREE);
    } else if (type == T_CLOSE) {
      closed = true;
    }
  }
  s.txAcked = ackSeq;
  if (s.rtxFrom < ackSeq) s.rtxFrom = ackSeq;
  s.txTail = ackSeq < s.txNextSeq ? load<u32>(txEntry(s, ackSeq)) : s.txHead;
  if (closed) {
    endSession(si, 0, now);
    return false;
  }
  if (s.cancelsUnsent > 0) flushCancels(si);
  if (s.flags & SF_CLOSE_QUEUED) queueClose(si);
  maybeDrain(si);
  return true;
}

/** The peer's RECEIPT for message seq. */
export function onReceipt(si: i32, seq: u64): void {
  let s = session(si);
  if (seq < s.txAcked || seq >= s.txNextSend) return;
  let e = txEntry(s, seq);
  if ((load<u8>(e, 17) & F_RECEIPT) && !load<u8>(e, 18)) {
    store<u8>(e, 1, 18);
    let ev = push(EV_RECEIPT, sessionHandle(si), 0, 0);
    setSeq(ev, seq);
    if (load<u8>(e, 16) == T_REQUEST) setTag(ev, load<u32>(e, 20), 0);
  }
}

/** An ACK frame, with F_RESEND when the peer lost a message mid-lane. */
export function onAck(si: i32, li: i32, flags: u8, ackSeq: u64, now: u64): bool {
  if (!processAck(si, ackSeq, li, now)) return false;
  if (flags & F_RESEND) requeueAll(si);
  return true;
}

// ---- requests we send ----

let tagCursor: u32 = 0;

/** Sends a request; returns its tag (> 0) or -error. */
export function request(si: i32, src: usize, hdrLen: u32, dataLen: u32, flags: u8, timeoutUs: u64, ext: u32, now: u64): i64 {
  let s = session(si);
  let idx: u32 = 0xffffffff;
  for (let k: u32 = 0; k < s.R; k++) {
    let i = (tagCursor + k) % s.R;
    if (load<u8>(pendEntry(s, i)) == P_FREE) { idx = i; break; }
  }
  if (idx == 0xffffffff) {
    s.flags |= SF_BACKPRESSURED;
    return -E_BACKPRESSURE;
  }
  let pe = pendEntry(s, idx);
  let gen = load<u16>(pe, 2) + 1;
  if (gen == 0) gen = 1;
  let tag = (<u32>gen << 16) | idx;
  let r = enqueue(si, T_REQUEST, flags, src, hdrLen, dataLen, tag, ext);
  if (r < 0) return r;
  tagCursor = idx + 1;
  store<u8>(pe, P_WAITING);
  store<u16>(pe, gen, 2);
  let deadline = timeoutUs ? now + timeoutUs : 0;
  store<u64>(pe, deadline, 8);
  if (deadline && (s.reqDeadline == 0 || deadline < s.reqDeadline)) { s.reqDeadline = deadline; soonAt(deadline); }
  return <i64>tag;
}

/** Gives up on request tag: it will get no response; the responder is told. */
export function cancelRequest(si: i32, tag: u32): bool {
  let s = session(si);
  let idx = tag & 0xffff;
  if (idx >= s.R) return false;
  let pe = pendEntry(s, idx);
  if (load<u8>(pe) != P_WAITING || <u32>load<u16>(pe, 2) != tag >> 16) return false;
  if (enqueue(si, T_CANCEL, 0, 0, 0, 0, tag, 0) >= 0) {
    store<u8>(pe, P_CANCELLED);
  } else {
    store<u8>(pe, P_CANCEL_UNSENT);
    s.cancelsUnsent++;
  }
  return true;
}

function flushCancels(si: i32): void {
  let s = session(si);
  for (let i: u32 = 0; i < s.R && s.cancelsUnsent > 0; i++) {
    let pe = pendEntry(s, i);
    if (load<u8>(pe) != P_CANCEL_UNSENT) continue;
    let tag = (<u32>load<u16>(pe, 2) << 16) | i;
    if (enqueue(si, T_CANCEL, 0, 0, 0, 0, tag, 0) < 0) return;
    store<u8>(pe, P_CANCELLED);
    s.cancelsUnsent--;
  }
}

/** Fails requests whose deadline passed. Stops early when the event queue is short of room. */
export function expireRequests(si: i32, now: u64, room: u32): void {
  let s = session(si);
  if (s.reqDeadline == 0 || s.reqDeadline > now) return;
  let next: u64 = 0;
  let sh = sessionHandle(si);
  for (let i: u32 = 0; i < s.R; i++) {
    let pe = pendEntry(s, i);
    if (load<u8>(pe) != P_WAITING) continue;
    let d = load<u64>(pe, 8);
    if (d == 0) continue;
    if (d <= now && room > 0) {
      room--;
      let tag = (<u32>load<u16>(pe, 2) << 16) | i;
      let ev = push(EV_REQUEST_FAILED, sh, 0, 9 /* E_TIMEOUT */);
      setTag(ev, tag, 0);
      cancelRequest(si, tag);
    } else if (next == 0 || d < next) {
      next = d;
    }
  }
  s.reqDeadline = next;
}

// ---- requests we received ----

/** Answers the request with tag; returns 0 or -error. */
export function respond(si: i32, tag: u32, src: usize, hdrLen: u32, dataLen: u32, flags: u8, ext: u32): i32 {
  let s = session(si);
  let idx = tag & 0xffff;
  if (idx >= s.R) return -17;
  let ib = inbEntry(s, idx);
  if (load<u8>(ib) != P_WAITING || load<u32>(ib, 4) != tag) return -17; // E_BAD_HANDLE: answered or cancelled
  let r = enqueue(si, T_RESPONSE, flags, src, hdrLen, dataLen, tag, ext);
  if (r < 0) return <i32>r;
  store<u8>(ib, P_FREE);
  return 0;
}

// ---- close ----

export function queueClose(si: i32): void {
  let s = session(si);
  let r = enqueue(si, T_CLOSE, 0, 0, 0, 0, 0, 0);
  if (r >= 0) {
    s.closeSeq = <u64>r;
    s.flags &= ~SF_CLOSE_QUEUED;
  } else {
    s.flags |= SF_CLOSE_QUEUED;
  }
}

