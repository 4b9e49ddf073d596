// Timers: the core reads no clock. Every input carries nowUs; timeout(nowUs)
// fires what is due and nextDeadline() tells the host when to call again.
// nextDeadline() is asked every turn and scans lanes and sessions only after
// timeout() ran (state.ts soonAt: the earliest deadline is kept between
// scans), so a turn costs nothing per idle session. Keepalives due within
// an eighth of the interval go out together: idle lanes fall into step and
// the timer fires a few times per interval, not once per lane.

import * as cfg from "./config";
import {
  lane, session, posLane, reconnectAt, nextLane, nextSession, L_FREE, L_CLOSING, L_OPEN, ROLE_CLIENT,
  S_FREE, S_OPEN, S_CONNECTING, keptDeadline, keepDeadline, forgetDeadline, SF_ACK, SF_ACK_LATER,
} from "./state";
import { evRoom } from "./events";
import { closeLane, endSession, reconnectDue } from "./lanes";
import { expireRequests } from "./deliver";
import { ctlReserve, markSession } from "./tx";
import { putHeader, T_KEEPALIVE, KEEPALIVE_SIZE } from "./wire";
import { E_TIMEOUT, E_LANE_DEAD, E_SESSION_LOST } from "./errors";

@inline function deadAfter(li: i32): u64 {
  let l = lane(li);
  let ka = l.session >= 0 ? session(l.session).peerKeepaliveUs : cfg.keepaliveUs;
  return ka * 3;
}

export function timeout(now: u64): void {
  forgetDeadline();
  for (let li = nextLane(0); li >= 0; li = nextLane(li + 1)) {
    let l = lane(li);
    if (l.state == L_FREE || l.state == L_CLOSING) continue;
    if (l.state != L_OPEN) {
      if (now - l.opened >= cfg.helloTimeoutUs) closeLane(li, E_TIMEOUT, now);
      continue;
    }
    if (now - l.lastRx >= deadAfter(li)) {
      closeLane(li, E_LANE_DEAD, now);
    } else if (now - l.lastTx >= cfg.keepaliveUs - (cfg.keepaliveUs >> 3) && l.ctlLen == 0) {
      let p = ctlReserve(li, KEEPALIVE_SIZE);
      if (p) putHeader(p, T_KEEPALIVE, 0, 0, KEEPALIVE_SIZE);
      l.lastTx = now;
    }
  }
  for (let si = nextSession(0); si >= 0; si = nextSession(si + 1)) {
    let s = session(si);
    if (s.state == S_FREE) continue;
    if (s.ackAt != 0 && now >= s.ackAt) {
      // The delayed ack found nothing to ride on: it goes alone.
      s.ackAt = 0;
      s.flags = (s.flags | SF_ACK) & ~SF_ACK_LATER;
      markSession(si);
    }
    if (evRoom() < s.R + 32) return;
    if (s.resumeAt != 0 && now >= s.resumeAt && s.state != S_OPEN) {
      // No lane came back in time. A close of ours that never got its ack
      // is a loss like any other unacked message.
      endSession(si, s.state == S_CONNECTING ? E_TIMEOUT : E_SESSION_LOST, now);
      continue;
    }
    if (s.role == ROLE_CLIENT) reconnectDue(si, now);
    expireRequests(si, now, evRoom() - 32);
  }
}

@inline function earlier(a: u64, b: u64): u64 {
  return a == 0 ? b : (b == 0 ? a : (a < b ? a : b));
}

/** The earliest time timeout() has work, in µs; 0 when nothing is armed. */
export function nextDeadline(): u64 {
  let kept = keptDeadline();
  if (kept != u64.MAX_VALUE) return kept;
  let d = scanDeadlines();
  keepDeadline(d);
  return d;
}

function scanDeadlines(): u64 {
  let d: u64 = 0;
  for (let li = nextLane(0); li >= 0; li = nextLane(li + 1)) {
    let l = lane(li);
    if (l.state == L_FREE || l.state == L_CLOSING) continue;
    if (l.state != L_OPEN) {
      d = earlier(d, l.opened + cfg.helloTimeoutUs);
      continue;
    }
    d = earlier(d, l.lastRx + deadAfter(li));
    d = earlier(d, l.lastTx + cfg.keepaliveUs);
  }
  for (let si = nextSession(0); si >= 0; si = nextSession(si + 1)) {
    let s = session(si);
    if (s.state == S_FREE) continue;
    if (s.state != S_OPEN) d = earlier(d, s.resumeAt);
    d = earlier(d, s.reqDeadline);
    d = earlier(d, s.ackAt);
    if (s.role == ROLE_CLIENT) {
      for (let p = 0; p < <i32>s.desired; p++) {
        if (posLane(s, p) < 0) d = earlier(d, reconnectAt(s, p));
      }
    }
  }
  return d;
}
