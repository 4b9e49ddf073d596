// Receiving: turns a lane's byte stream into frames. Control frames are
// assembled in the lane's 4 KiB buffer; a message frame's 32-byte header is
// checked there, then its body streams straight into the session's receive
// ring (or is skipped when it is a duplicate). Every check a hostile peer
// could fail ends in protocolError() for that lane alone.

import * as cfg from "./config";
import {
  lane, session, L_FREE, L_CLOSING, L_OPEN, L_AWAIT_HELLO, L_PENDING_ACCEPT, L_AUTH, ROLE_CLIENT, ROLE_SERVER,
} from "./state";
import { evRoom } from "./events";
import { protocolError, closeLane } from "./lanes";
import { onHello, onAccept, onReject, onRedirect } from "./handshake";
import { onChallenge, onAuthFrame } from "./auth";
import { onMessageHeader, onMessageBody, onAck, onReceipt, MH_CLOSED, MH_DELIVERED } from "./deliver";
import {
  FRAME_HEADER, MSG_HEADER, MAX_CONTROL_FRAME, MAX_MSG_FRAME, MAX_BATCH, BATCH_SIZE, isMessage,
  T_HELLO, T_ACCEPT, T_REJECT, T_REDIRECT, T_ACK, T_RECEIPT, T_KEEPALIVE, T_ERROR, T_BATCH,
  HELLO_SIZE, ACCEPT_SIZE, REJECT_SIZE, REDIRECT_SIZE, ACK_SIZE, RECEIPT_SIZE, KEEPALIVE_SIZE,
  ERROR_SIZE, F_EXT, F_RESEND, T_CHALLENGE, T_AUTH, CHALLENGE_SIZE, AUTH_SIZE,
} from "./wire";
import {
  E_MALFORMED, E_FRAME_TOO_LARGE, E_BAD_TYPE, E_BAD_STATE,
} from "./errors";
import { traceFrame } from "./trace";

/** Smallest legal size of a control frame of this type, or 0 if unknown. */
function minSize(t: u8): u32 {
  if (t == T_HELLO) return HELLO_SIZE;
  if (t == T_ACCEPT) return ACCEPT_SIZE;
  if (t == T_REJECT) return REJECT_SIZE;
  if (t == T_REDIRECT) return REDIRECT_SIZE;
  if (t == T_ACK) return ACK_SIZE;
  if (t == T_RECEIPT) return RECEIPT_SIZE;
  if (t == T_KEEPALIVE) return KEEPALIVE_SIZE;
  if (t == T_ERROR) return ERROR_SIZE;
  if (t == T_CHALLENGE) return CHALLENGE_SIZE;
  if (t == T_AUTH) return AUTH_SIZE;
  return 0;
}

/** Whether a control frame of type t has a fixed size. */
@inline function fixedSize(t: u8): bool {
  return t == T_ACK || t == T_RECEIPT || t == T_KEEPALIVE || t == T_CHALLENGE || t == T_AUTH;
}

/**
 * Events one frame may add at most: an ack can release a whole window
 * (a receipt and an ext release per message), delivery can empty it.
 */
@inline function eventsPerFrame(): u32 {
  return cfg.windowMsgs * 2 + 16;
}

/** Feeds len bytes at src from lane li. Returns how many were consumed. */
export function laneRx(li: i32, src: usize, len: u32, now: u64): u32 {
  let l = lane(li);
  if (l.state == L_FREE) return 0;
  if (l.state == L_CLOSING) return len;
  l.lastRx = now;
  let p: u32 = 0;
  while (p < len) {
    if (l.state == L_CLOSING) return len;
    if (l.extWait) return p;
    if (l.bodyLeft > 0) {
      let n = len - p;
      if (n > l.bodyLeft) n = l.bodyLeft;
      if (!l.bodySkip) {
        memory.copy(l.bodyDst, src + p, n);
        l.bodyDst += n;
      }
      l.bodyLeft -= n;
      p += n;
      if (l.bodyLeft == 0 && !onMessageBody(li, now)) return len;
      continue;
    }
    if (l.asmLen == 0 && evRoom() < eventsPerFrame()) return p;
    if (l.asmLen == 0 && len - p >= MSG_HEADER) {
      // Fast path: the frame's header (and a control frame whole) is in the
      // input: parsed where it lies, not assembled in rxBuf first.
      let f = src + p;
      let t = load<u8>(f);
      let frameLen = load<u32>(f, 4);
      if (!checkHeader(li, f, t, frameLen, now)) return len;
      if (t == T_BATCH) { p += FRAME_HEADER; continue; }
      if (isMessage(t)) {
        p += MSG_HEADER;
        traceFrame(li, f, frameLen);
        let r = onMessageHeader(li, f, now, frameLen <= len - (p - MSG_HEADER));
        if (r == MH_CLOSED) return len;
        if (r == MH_DELIVERED) { p += frameLen - MSG_HEADER; continue; }
        if (l.bodyLeft == 0 && !onMessageBody(li, now)) return len;
        continue;
      }
      if (frameLen <= len - p) {
        p += frameLen;
        traceFrame(li, f, frameLen);
        if (!onControl(li, t, f, frameLen, now)) return len;
        continue;
      }
      // A control frame cut by the end of the input: assembled as below,
      // its header already checked.
      memory.copy(l.rxBuf, f, FRAME_HEADER);
      l.asmLen = FRAME_HEADER;
      l.need = frameLen;
      p += FRAME_HEADER;
      continue;
    }
    let want = l.need;
    let n = want - l.asmLen;
    if (n > len - p) n = len - p;
    memory.copy(l.rxBuf + l.asmLen, src + p, n);
    l.asmLen += n;
    p += n;
    if (l.asmLen < want) break;
    let f = l.rxBuf;
    let t = load<u8>(f);
    let frameLen = load<u32>(f, 4);
    if (want == FRAME_HEADER) {
      if (!checkHeader(li, f, t, frameLen, now)) return len;
      if (t == T_BATCH) {
        l.asmLen = 0;
        continue;
      }
      l.need = isMessage(t) ? MSG_HEADER : frameLen;
      if (l.need > FRAME_HEADER) continue;
    }
    l.asmLen = 0;
    l.need = FRAME_HEADER;
    traceFrame(li, f, frameLen);
    if (isMessage(t)) {
      if (onMessageHeader(li, f, now, false) == MH_CLOSED) return len;
      if (l.bodyLeft == 0 && !onMessageBody(li, now)) return len;
    } else if (!onControl(li, t, f, frameLen, now)) {
      return len;
    }
  }
  return p;
}

/** Checks a frame's first 8 bytes (at f) against the limits and the batch it is in. */
function checkHeader(li: i32, f: usize, t: u8, frameLen: u32, now: u64): bool {
  let l = lane(li);
  if (t == T_BATCH) {
    if (l.inBatch) { protocolError(li, E_MALFORMED, now); return false; }
    if (frameLen <= BATCH_SIZE || frameLen > MAX_BATCH) { protocolError(li, E_FRAME_TOO_LARGE, now); return false; }
    l.inBatch = 1;
    l.batchLeft = frameLen - BATCH_SIZE;
    return true;
  }
  if (isMessage(t)) {
    if (frameLen < MSG_HEADER) { protocolError(li, E_MALFORMED, now); return false; }
    if (frameLen > MAX_MSG_FRAME) { protocolError(li, E_FRAME_TOO_LARGE, now); return false; }
  } else {
    let m = minSize(t);
    if (m == 0) { protocolError(li, E_BAD_TYPE, now); return false; }
    if (frameLen > MAX_CONTROL_FRAME) { protocolError(li, E_FRAME_TOO_LARGE, now); return false; }
    if (frameLen < m || (fixedSize(t) && frameLen != m)) { protocolError(li, E_MALFORMED, now); return false; }
  }
  if (l.inBatch) {
    if (frameLen > l.batchLeft) { protocolError(li, E_MALFORMED, now); return false; }
    l.batchLeft -= frameLen;
    if (l.batchLeft == 0) l.inBatch = 0;
    // An EXT message ends its batch: its payload follows the batch.
    if (l.inBatch && isMessage(t) && (load<u8>(f, 1) & F_EXT)) {
      protocolError(li, E_MALFORMED, now);
      return false;
    }
  }
  return true;
}

/** Handles one control frame. Returns false if the lane was closed. */
function onControl(li: i32, t: u8, f: usize, len: u32, now: u64): bool {
  let l = lane(li);
  if (t == T_HELLO) {
    if (l.role != ROLE_SERVER) { protocolError(li, E_BAD_STATE, now); return false; }
    onHello(li, f, len, now);
  } else if (t == T_ACCEPT || t == T_REJECT || t == T_REDIRECT) {
    if (l.role != ROLE_CLIENT) { protocolError(li, E_BAD_STATE, now); return false; }
    if (t == T_ACCEPT) onAccept(li, f, len, now);
    else if (t == T_REJECT) onReject(li, f, len, now);
    else onRedirect(li, f, len, now);
  } else if (t == T_CHALLENGE) {
    onChallenge(li, f, now);
  } else if (t == T_AUTH) {
    onAuthFrame(li, f, now);
  } else if (t == T_ERROR) {
    let msgLen = <u32>load<u16>(f, 10);
    if (ERROR_SIZE + msgLen != len) { protocolError(li, E_MALFORMED, now); return false; }
    // The peer found fault with us and is closing this lane.
    closeLane(li, <i32>load<u16>(f, 8), now);
    return false;
  } else if (t == T_KEEPALIVE) {
    if (l.state == L_AWAIT_HELLO || l.state == L_PENDING_ACCEPT || l.state == L_AUTH) { protocolError(li, E_BAD_STATE, now); return false; }
  } else {
    if (l.state != L_OPEN || l.session < 0) { protocolError(li, E_BAD_STATE, now); return false; }
    if (t == T_ACK) {
      if ((load<u8>(f, 1) & ~F_RESEND) != 0) { protocolError(li, E_MALFORMED, now); return false; }
      return onAck(l.session, li, load<u8>(f, 1), load<u64>(f, 8), now);
    }
    if (load<u8>(f, 1) != 0) { protocolError(li, E_MALFORMED, now); return false; }
    onReceipt(l.session, load<u64>(f, 8));
  }
  return l.state != L_CLOSING && l.state != L_FREE;
}

