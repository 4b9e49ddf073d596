// Sending: messages enter the session's send ring (where they stay until
// acked, so they can be retransmitted on any lane); poll_transmit coalesces
// a lane's control frames, the session's ack and receipts, retransmissions
// and new messages into one batch in the transmit area.

import * as cfg from "./config";
import {
  Lane, Session, lane, session, laneHandle, posLane,
  L_OPEN, SF_ACK, SF_RTX, SF_BACKPRESSURED, SF_RESEND, SF_ACK_LATER,
  txEntry, S_OPEN, S_CLOSING, S_DRAINING,
} from "./state";
import {
  MSG_HEADER, MAX_CONTROL_FRAME, MAX_BATCH, BATCH_SIZE, ACK_SIZE, RECEIPT_SIZE,
  T_ACK, T_RECEIPT, T_BATCH, F_EXT, F_RESEND, F_RDV, RDV_DESC, putHeader,
} from "./wire";
import { E_BACKPRESSURE } from "./errors";
import { traceTx } from "./trace";

export let txBase: usize = 0;   // MAX_BATCH bytes
export let txStart: usize = 0;  // first byte of the last batch
export let txLen: u32 = 0;
export let txExt: u32 = 0;      // ext payload to write after the batch (0 none)
export let txExtLen: u32 = 0;
export let txRdv: usize = 0;    // where the batch's rendezvous descriptor is (0 none): the host fills it in

let dirtySessions: usize = 0; // ring of i32
let dsHead: u32 = 0;
let dsCount: u32 = 0;
let dirtyLanes: usize = 0;
let dlHead: u32 = 0;
let dlCount: u32 = 0;

export function allocTx(): void {
  txBase = heap.alloc(MAX_BATCH);
  dirtySessions = heap.alloc(<usize>cfg.maxSessions * 4);
  dirtyLanes = heap.alloc(<usize>cfg.maxLanes * 4);
}

export function markSession(si: i32): void {
  let s = session(si);
  if (s.inDirty) return;
  s.inDirty = 1;
  store<i32>(dirtySessions + (<usize>((dsHead + dsCount) % cfg.maxSessions) << 2), si);
  dsCount++;
}

export function markLane(li: i32): void {
  let l = lane(li);
  if (l.inDirty) return;
  l.inDirty = 1;
  store<i32>(dirtyLanes + (<usize>((dlHead + dlCount) % cfg.maxLanes) << 2), li);
  dlCount++;
}

/** Room for one control frame of n bytes on a lane, or 0. */
export function ctlReserve(li: i32, n: u32): usize {
  let l = lane(li);
  if (l.ctlLen + n > MAX_CONTROL_FRAME) return 0;
  let p = l.ctlBuf + l.ctlLen;
  l.ctlLen += n;
  l.ctlFrames++;
  markLane(li);
  return p;
}

/** Whether the session may queue a message of frameLen bytes now. */
export function hasCredit(s: Session, frameLen: u32): bool {
  if (s.txNextSeq - s.txAcked >= <u64>s.M) return false;
  let off = s.txHead;
  let pos = off & (s.W - 1);
  if (pos + frameLen > s.W) off += s.W - pos;
  return off + frameLen - s.txTail <= s.W;
}

/**
 * Queues one message frame. Header and inline data are copied from src.
 * Returns the sequence number, or -E_BACKPRESSURE when the session is out
 * of credits (messages or bytes).
 */
export function enqueue(
  si: i32, type: u8, flags: u8, src: usize, hdrLen: u32, dataLen: u32, tag: u32, ext: u32,
): i64 {
  let s = session(si);
  let frameLen = MSG_HEADER + hdrLen + ((flags & F_EXT) ? 0 : dataLen);
  if (!hasCredit(s, frameLen)) {
    s.flags |= SF_BACKPRESSURED;
    return -E_BACKPRESSURE;
  }
  let off = s.txHead;
  let pos = off & (s.W - 1);
  if (pos + frameLen > s.W) off += s.W - pos;
  let p = s.txRing + <usize>(off & (cfg.windowBytes - 1));
  let seq = s.txNextSeq;
  putHeader(p, type, flags, <u16>hdrLen, frameLen);
  store<u64>(p, seq, 8);
  store<u32>(p, off, 16);
  store<u32>(p, dataLen, 20);
  store<u32>(p, tag, 24);
  store<u32>(p, 0, 28);
  memory.copy(p + MSG_HEADER, src, frameLen - MSG_HEADER);
  let e = txEntry(s, seq);
  store<u32>(e, off);
  store<u32>(e, frameLen, 4);
  store<i32>(e, -1, 8);
  store<u32>(e, ext, 12);
  store<u8>(e, type, 16);
  store<u8>(e, flags, 17);
  store<u8>(e, 0, 18);
  store<u32>(e, tag, 20);
  s.txHead = off + frameLen;
  s.txNextSeq = seq + 1;
  markSession(si);
  return <i64>seq;
}

/** Marks every unacked message sent on lane li for retransmission. */
export function requeueLane(si: i32, li: i32): void {
  let s = session(si);
  for (let q = s.txAcked; q < s.txNextSend; q++) {
    let e = txEntry(s, q);
    if (load<i32>(e, 8) == li) {
      store<i32>(e, -1, 8);
      if (!(s.flags & SF_RTX) || q < s.rtxFrom) s.rtxFrom = q;
      s.flags |= SF_RTX;
    }
  }
  if (s.flags & SF_RTX) markSession(si);
}

/** Marks every unacked sent message for retransmission (peer asked: RESEND). */
export function requeueAll(si: i32): void {
  let s = session(si);
  for (let q = s.txAcked; q < s.txNextSend; q++) store<i32>(txEntry(s, q), -1, 8);
  if (s.txAcked < s.txNextSend) {
    s.rtxFrom = s.txAcked;
    s.flags |= SF_RTX;
    markSession(si);
  }
}

/** The next OPEN lane of the session, round-robin; -1 if none. */
function pickLane(s: Session): i32 {
  for (let k = 0; k < cfg.LANES_PER_SESSION; k++) {
    let p = (<i32>s.rr + k) % cfg.LANES_PER_SESSION;
    let li = posLane(s, p);
    if (li >= 0 && lane(li).state == L_OPEN) {
      s.rr = <u8>((p + 1) % cfg.LANES_PER_SESSION);
      return li;
    }
  }
  return -1;
}

// Batch assembly state.
let bLen: u32 = 0;
let bFrames: u32 = 0;

@inline function room(): u32 {
  return MAX_BATCH - bLen;
}

function put(src: usize, n: u32): void {
  memory.copy(txBase + bLen, src, n);
  bLen += n;
  bFrames++;
}

function putCtl(l: Lane): void {
  if (l.ctlLen == 0) return;
  memory.copy(txBase + bLen, l.ctlBuf, l.ctlLen);
  bLen += l.ctlLen;
  bFrames += l.ctlFrames;
  l.ctlLen = 0;
  l.ctlFrames = 0;
}

/**
 * Copies message q to the batch; returns false when it does not fit. An
 * EXT payload of at least the lane's rdvMin goes by rendezvous: the batch
 * copy gets F_RDV and an empty descriptor (txRdv) for the host to fill in,
 * and no payload follows it (the ring copy stays as it was, for lanes
 * without rendezvous).
 */
function putMessage(s: Session, q: u64, li: i32): bool {
  let e = txEntry(s, q);
  let len = load<u32>(e, 4);
  let src = s.txRing + <usize>(load<u32>(e) & (cfg.windowBytes - 1));
  let ext = load<u8>(e, 17) & F_EXT;
  let extLen = ext ? load<u32>(src, 20) : 0;
  let rdvMin = lane(li).rdvMin;
  let rdv = ext && rdvMin != 0 && extLen >= rdvMin;
  if (len + (rdv ? RDV_DESC : 0) > room()) return false;
  let p = txBase + bLen;
  put(src, len);
  store<i32>(e, li, 8);
  if (ext) {
    txExt = load<u32>(e, 12);
    txExtLen = extLen;
    if (rdv) {
      store<u8>(p, load<u8>(p, 1) | F_RDV, 1);
      store<u32>(p, len + RDV_DESC, 4);
      txRdv = p + len;
      memory.fill(txRdv, 0, RDV_DESC);
      bLen += RDV_DESC;
    }
  }
  return true;
}

/** Fills the batch for session si on lane li. Returns true if work remains. */
function fillSession(si: i32, li: i32): bool {
  let s = session(si);
  let l = lane(li);
  putCtl(l);
  if ((s.flags & (SF_ACK | SF_ACK_LATER)) && room() >= ACK_SIZE) {
    // A delayed ack rides here too: the session sends anyway.
    let p = txBase + bLen;
    putHeader(p, T_ACK, (s.flags & SF_RESEND) ? F_RESEND : 0, 0, ACK_SIZE);
    store<u64>(p, s.rxAck, 8);
    bLen += ACK_SIZE;
    bFrames++;
    s.flags &= ~(SF_ACK | SF_ACK_LATER | SF_RESEND);
    s.ackAt = 0;
    s.ackSentSeq = s.rxAck;
    s.ackSentBase = s.rxBase;
  }
  while (s.receiptCount > 0 && room() >= RECEIPT_SIZE) {
    s.receiptCount--;
    let p = txBase + bLen;
    putHeader(p, T_RECEIPT, 0, 0, RECEIPT_SIZE);
    store<u64>(p, load<u64>(s.receipts + (<usize>s.receiptCount << 3)), 8);
    bLen += RECEIPT_SIZE;
    bFrames++;
  }
  if (s.receiptCount > 0) return true;
  if (s.flags & SF_RTX) {
    let q = s.rtxFrom;
    for (; q < s.txNextSend; q++) {
      if (load<i32>(txEntry(s, q), 8) != -1) continue;
      if (!putMessage(s, q, li)) { s.rtxFrom = q; return true; }
      if (txExt) { s.rtxFrom = q + 1; return true; }
    }
    s.flags &= ~SF_RTX;
  }
  while (s.txNextSend < s.txNextSeq) {
    if (!putMessage(s, s.txNextSend, li)) return true;
    s.txNextSend++;
    if (txExt) return s.txNextSend < s.txNextSeq;
  }
  return false;
}

function sessionHasWork(s: Session): bool {
  return (s.flags & (SF_ACK | SF_RTX)) != 0 || s.receiptCount > 0 || s.txNextSend < s.txNextSeq;
}

function finish(li: i32, now: u64): u32 {
  let l = lane(li);
  l.lastTx = now;
  if (bFrames > 1) {
    putHeader(txBase, T_BATCH, 0, <u16>(bFrames > 0xffff ? 0xffff : bFrames), bLen);
    txStart = txBase;
    txLen = bLen;
  } else {
    txStart = txBase + BATCH_SIZE;
    txLen = bLen - BATCH_SIZE;
  }
  traceTx(li, txStart, txLen, txExt);
  return laneHandle(li);
}

/**
 * Produces the next batch: returns the lane handle it goes to (0 when there
 * is nothing to send). The bytes are txStart[0, txLen); when txExt is not 0
 * the host writes that ext payload (txExtLen bytes) right after them.
 */
export function pollTransmit(now: u64): u32 {
  txExt = 0;
  txExtLen = 0;
  txRdv = 0;
  while (dsCount > 0) {
    let si = load<i32>(dirtySessions + (<usize>dsHead << 2));
    let s = session(si);
    if (!sessionHasWork(s) || (s.state != S_OPEN && s.state != S_CLOSING && s.state != S_DRAINING)) {
      dsHead = (dsHead + 1) % cfg.maxSessions;
      dsCount--;
      s.inDirty = 0;
      continue;
    }
    let li = pickLane(s);
    if (li < 0) {
      dsHead = (dsHead + 1) % cfg.maxSessions;
      dsCount--;
      s.inDirty = 0;
      continue;
    }
    bLen = BATCH_SIZE;
    bFrames = 0;
    let more = fillSession(si, li);
    if (!more) {
      dsHead = (dsHead + 1) % cfg.maxSessions;
      dsCount--;
      s.inDirty = 0;
    }
    if (bFrames == 0) continue;
    return finish(li, now);
  }
  while (dlCount > 0) {
    let li = load<i32>(dirtyLanes + (<usize>dlHead << 2));
    dlHead = (dlHead + 1) % cfg.maxLanes;
    dlCount--;
    let l = lane(li);
    l.inDirty = 0;
    if (l.ctlLen == 0) continue;
    bLen = BATCH_SIZE;
    bFrames = 0;
    putCtl(l);
    return finish(li, now);
  }
  return 0;
}

