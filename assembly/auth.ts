// Pre-shared keys: the CHALLENGE / AUTH exchange between a HELLO with F_AUTH
// and its ACCEPT (protocol.md section 10, "Pre-shared keys").
//
//  client lane (HELLO_SENT throughout)        server lane
//  host: authLane (nonce, identity)
//  lane_up --HELLO F_AUTH-->                  AWAIT_HELLO --> AUTH, EV_AUTH_REQUEST
//                              <--CHALLENGE-- host: authChallenge (its nonce)
//  EV_AUTH_CHALLENGE, host: authProof
//  (our proof, the server's expected) --AUTH-->  EV_AUTH_PROOF, host checks it:
//                                 <--ACCEPT-- authPassed: PENDING_ACCEPT (new) or joined
//                                             (F_AUTH_ACCEPT, the server's proof)
//                                 <--REJECT-- reject(auth)
//  ACCEPT: its proof must be the one the host expected, else the session fails with auth.
//
// The core computes no MAC: it reads no key and draws no nonce. Nonces and
// proofs are inputs from the host (node:crypto), so a recording replays byte
// for byte; the keys themselves never reach the core.

import {
  lane, session, laneHandle, sessionHandle, authRec, L_CONNECTING, L_HELLO_SENT, L_AUTH, L_PENDING_ACCEPT,
  ROLE_CLIENT, ROLE_SERVER, SF_AUTH, S_CONNECTING, AR_PROOF, AR_NONCE,
  A_C_NONCE, A_C_HELLO, A_C_CHALLENGED, A_C_PROVED, A_S_HOST, A_S_CHALLENGED, A_S_VERDICT, A_S_PASSED,
} from "./state";
import { push, setHdr, setData, setAux, EV_AUTH_CHALLENGE, EV_AUTH_PROOF } from "./events";
import { ctlReserve } from "./tx";
import { protocolError } from "./lanes";
import { findSession, joinLane, sendReject } from "./handshake";
import {
  putHeader, T_CHALLENGE, T_AUTH, CHALLENGE_SIZE, AUTH_SIZE, NONCE_SIZE, PROOF_SIZE, MAX_IDENTITY,
  HELLO_SIZE, MAX_CONTROL_FRAME, F_AUTH_ACCEPT,
} from "./wire";
import { E_BAD_STATE, E_BAD_ARGUMENT, E_MALFORMED, E_UNKNOWN_SESSION } from "./errors";

/** Client: bytes the auth trailer adds to this lane's HELLO (0: none). */
export function helloAuthLen(li: i32): u32 {
  let a = authRec(li);
  return load<u8>(a) == A_C_NONCE ? NONCE_SIZE + <u32>load<u8>(a, 1) : 0;
}

/** Client: writes the HELLO's auth trailer at p (helloAuthLen bytes). */
export function putHelloAuth(li: i32, p: usize): void {
  let a = authRec(li);
  let s = session(lane(li).session);
  memory.copy(p, a + AR_NONCE, NONCE_SIZE);
  memory.copy(p + NONCE_SIZE, s.hello + s.helloLen, <u32>load<u8>(a, 1));
  store<u8>(a, A_C_HELLO);
}

/**
 * Client host, before laneUp: this lane proves a pre-shared key. src holds
 * the lane's nonce (32 bytes, fresh from the host's CSPRNG) then the
 * identity (1..255 bytes). The session is marked: from now on it accepts
 * no ACCEPT without the server's proof.
 */
export function authLane(li: i32, src: usize, idLen: u32): i32 {
  let l = lane(li);
  if (l.role != ROLE_CLIENT || l.state != L_CONNECTING || l.session < 0) return -E_BAD_STATE;
  let s = session(l.session);
  // Marked first: a lane whose key could not be set up must not open the
  // session without one (its ACCEPT will lack the proof).
  s.flags |= SF_AUTH;
  if (idLen < 1 || idLen > MAX_IDENTITY) return -E_BAD_ARGUMENT;
  // The identity is kept after the HELLO's resource and attrs (room for it is checked here).
  if (HELLO_SIZE + s.helloLen + NONCE_SIZE + idLen > MAX_CONTROL_FRAME) return -E_BAD_ARGUMENT;
  let a = authRec(li);
  store<u8>(a, A_C_NONCE);
  store<u8>(a, <u8>idLen, 1);
  memory.copy(a + AR_NONCE, src, NONCE_SIZE);
  memory.copy(s.hello + s.helloLen, src + NONCE_SIZE, idLen);
  return 0;
}

/** Client: CHALLENGE on lane li. */
export function onChallenge(li: i32, f: usize, now: u64): void {
  let l = lane(li);
  let a = authRec(li);
  if (l.role != ROLE_CLIENT || l.state != L_HELLO_SENT || l.session < 0 || load<u8>(a) != A_C_HELLO) {
    protocolError(li, E_BAD_STATE, now);
    return;
  }
  let s = session(l.session);
  let id = load<u64>(f, 8);
  // A new session learns its id here (the server drew it); a join names its own.
  if (id == 0 || (s.state != S_CONNECTING && id != s.id)) { protocolError(li, E_MALFORMED, now); return; }
  store<u8>(a, A_C_CHALLENGED);
  store<u64>(a, id, 8);
  let e = push(EV_AUTH_CHALLENGE, sessionHandle(l.session), laneHandle(li), 0);
  setHdr(e, a + AR_NONCE, NONCE_SIZE);
  setData(e, f + 16, NONCE_SIZE);
  setAux(e, 0, id);
}

/**
 * Client host: answers EV_AUTH_CHALLENGE. src holds our proof, then the
 * proof the server must send in its ACCEPT (both PROOF_SIZE bytes).
 */
export function authProof(li: i32, src: usize): i32 {
  let l = lane(li);
  let a = authRec(li);
  if (l.role != ROLE_CLIENT || l.state != L_HELLO_SENT || load<u8>(a) != A_C_CHALLENGED) return -E_BAD_STATE;
  let p = ctlReserve(li, AUTH_SIZE);
  if (!p) return 0;
  putHeader(p, T_AUTH, 0, 0, AUTH_SIZE);
  memory.copy(p + 8, src, PROOF_SIZE);
  memory.copy(a + AR_PROOF, src + PROOF_SIZE, PROOF_SIZE);
  store<u8>(a, A_C_PROVED);
  return 0;
}

/** Server host: answers EV_AUTH_REQUEST with its nonce (src, 32 bytes from its CSPRNG). */
export function authChallenge(li: i32, src: usize): i32 {
  let l = lane(li);
  let a = authRec(li);
  if (l.role != ROLE_SERVER || l.state != L_AUTH || load<u8>(a) != A_S_HOST) return -E_BAD_STATE;
  let p = ctlReserve(li, CHALLENGE_SIZE);
  if (!p) return 0;
  putHeader(p, T_CHALLENGE, 0, 0, CHALLENGE_SIZE);
  store<u64>(p, load<u64>(a, 8), 8);
  memory.copy(p + 16, src, NONCE_SIZE);
  store<u8>(a, A_S_CHALLENGED);
  return 0;
}

/** Server: AUTH on lane li: the host checks the proof. */
export function onAuthFrame(li: i32, f: usize, now: u64): void {
  let l = lane(li);
  let a = authRec(li);
  if (l.role != ROLE_SERVER || l.state != L_AUTH || load<u8>(a) != A_S_CHALLENGED) {
    protocolError(li, E_BAD_STATE, now);
    return;
  }
  store<u8>(a, A_S_VERDICT);
  let e = push(EV_AUTH_PROOF, 0, laneHandle(li), 0);
  setData(e, f + 8, PROOF_SIZE);
}

/**
 * Server host: the client's proof is right. src holds the server's proof
 * for the ACCEPT. A new session waits for the host's accept / reject /
 * redirect (PENDING_ACCEPT); a join is answered now.
 */
export function authPassed(li: i32, src: usize, now: u64): i32 {
  let l = lane(li);
  let a = authRec(li);
  if (l.role != ROLE_SERVER || l.state != L_AUTH || load<u8>(a) != A_S_VERDICT) return -E_BAD_STATE;
  memory.copy(a + AR_PROOF, src, PROOF_SIZE);
  store<u8>(a, A_S_PASSED);
  if (!load<u8>(a, 2)) {
    l.state = L_PENDING_ACCEPT;
    return 0;
  }
  // A join: its session may have ended while the lane proved the key.
  let si = findSession(load<u64>(a, 8));
  if (si < 0 || !(session(si).flags & SF_AUTH)) { sendReject(li, E_UNKNOWN_SESSION, 0, 0, now); return 0; }
  joinLane(li, si, load<u64>(a, 16), F_AUTH_ACCEPT, now);
  return 0;
}
