// Wire protocol v1: frame layouts. docs/protocol.md is the normative text;
// this file is its single source in code. All integers are little-endian.
//
// Every frame starts with the same 8 bytes:
//
//   0       1       2               4                               8
//   +-------+-------+---------------+-------------------------------+
//   | type  | flags |  u16 (type)   |  frameLen: u32 (whole frame)  |
//   +-------+-------+---------------+-------------------------------+

export const PROTOCOL_MIN: u16 = 1;
export const PROTOCOL_MAX: u16 = 1;

export const FRAME_HEADER: u32 = 8;
export const MSG_HEADER: u32 = 32;
/** Largest handshake / control frame. */
export const MAX_CONTROL_FRAME: u32 = 4096;
/** Largest application header carried by a message. */
export const MAX_APP_HEADER: u32 = 4096;
/** Above this many bytes of header + data a payload travels outside the core (EXT). */
export const INLINE_MAX: u32 = 8192;
export const MAX_MSG_FRAME: u32 = MSG_HEADER + INLINE_MAX;
/** Largest batch: what one transmit unit may hold. */
export const MAX_BATCH: u32 = 65536;
export const MAX_PORTALS_BYTES: u32 = 2048;
export const MAX_REDIRECTS: u32 = 4;

// Frame types.
export const T_HELLO: u8 = 0x01;
export const T_ACCEPT: u8 = 0x02;
export const T_REJECT: u8 = 0x03;
export const T_REDIRECT: u8 = 0x04;
/** Pre-shared keys: the server's nonce for a HELLO with F_AUTH (protocol.md section 10, "Pre-shared keys"). */
export const T_CHALLENGE: u8 = 0x05;
/** Pre-shared keys: the client's proof, answering CHALLENGE. */
export const T_AUTH: u8 = 0x06;
export const T_REQUEST: u8 = 0x10;
export const T_RESPONSE: u8 = 0x11;
export const T_ONEWAY: u8 = 0x12;
export const T_CANCEL: u8 = 0x13;
export const T_CLOSE: u8 = 0x14;
export const T_ACK: u8 = 0x20;
export const T_RECEIPT: u8 = 0x21;
export const T_KEEPALIVE: u8 = 0x22;
export const T_ERROR: u8 = 0x23;
export const T_BATCH: u8 = 0x30;

// Message frame flags.
export const F_RECEIPT: u8 = 0x01;
export const F_EXT: u8 = 0x02;
export const F_APP_ERROR: u8 = 0x04;
/**
 * With F_EXT: rendezvous. The payload is not on the lane: the frame ends
 * with a 16-byte descriptor (addr u64, rkey u32, reserved u32 = 0) from
 * which the receiver READs dataLen bytes (rdma:// lanes only).
 */
export const F_RDV: u8 = 0x08;
export const RDV_DESC: u32 = 16;
export const F_KNOWN_MSG: u8 = F_RECEIPT | F_EXT | F_APP_ERROR | F_RDV;
// ACK flags.
export const F_RESEND: u8 = 0x01;
// ACCEPT flags.
export const F_JOINED: u8 = 0x01;
/** A new session's ACCEPT: the server takes no one-way messages (it has no receiver for them). */
export const F_NO_ONEWAY: u8 = 0x02;
/** ACCEPT: the lane proved a pre-shared key; the server's proof follows the attrs (PROOF_SIZE bytes). */
export const F_AUTH_ACCEPT: u8 = 0x04;
// HELLO flags.
/** HELLO: the client proves a pre-shared key; its nonce and identity follow the attrs. */
export const F_AUTH: u8 = 0x01;

// Pre-shared keys. A HELLO with F_AUTH ends with nonce[32] then the
// identity (1..255 bytes, UTF-8); the server answers CHALLENGE, the client
// AUTH, the server ACCEPT (F_AUTH_ACCEPT, its proof after the attrs) or
// REJECT(auth). The proofs are HMAC-SHA-256, computed by the hosts: the
// core only carries them and compares the server's with the one the
// client's host expects.
export const NONCE_SIZE: u32 = 32;
export const PROOF_SIZE: u32 = 32;
export const MAX_IDENTITY: u32 = 255;
// CHALLENGE: 48 bytes: 8 u64 sessionId (new session: the id it will have) | 16 nonce[32].
export const CHALLENGE_SIZE: u32 = 48;
// AUTH: 40 bytes: 8 proof[32].
export const AUTH_SIZE: u32 = 40;

// The session key: 16 random bytes the server draws for each session (from
// the host's CSPRNG) and sends in the new session's ACCEPT; a join or resume
// HELLO must carry it. The session id only names a session; the key proves
// the lane belongs to it.
export const KEY_SIZE: u32 = 16;
// HELLO: 64 bytes + resource + attrs.
//   8 u16 verMin | 10 u16 verMax | 12 u16 resourceLen | 14 u16 attrsLen
//  16 u64 sessionId (0 = new session)
//  24 u64 ackSeq (next sequence the sender expects; 0 for a new session)
//  32 u32 windowMsgs | 36 u32 windowBytes
//  40 u32 maxRequests | 44 u32 keepaliveMs
//  48 key[16] (join/resume: the session's key; new session: 0)
export const HELLO_SIZE: u32 = 64;
// ACCEPT: 72 bytes + portals + attrs.
//   8 u16 version | 10 u16 portalsLen | 12 u16 attrsLen | 14 u16 reserved
//  16 u64 sessionId | 24 u64 ackSeq
//  32 u32 windowMsgs | 36 u32 windowBytes | 40 u32 maxRequests | 44 u32 keepaliveMs
//  48 u32 resumeMs | 52 u32 reserved
//  56 key[16] (new session: the session's key, never all zero; join: 0)
export const ACCEPT_SIZE: u32 = 72;
// REJECT: 16 bytes + message.
//   8 u16 reason | 10 u16 verMin | 12 u16 verMax | 14 u16 msgLen
export const REJECT_SIZE: u32 = 16;
// REDIRECT: 16 bytes + portals.
//   8 u16 portalsLen | 10 u16 reserved | 12 u32 reserved
export const REDIRECT_SIZE: u32 = 16;
// Message frames (REQUEST, RESPONSE, ONEWAY, CANCEL, CLOSE):
//   2 u16 hdrLen
//   8 u64 seq
//  16 u32 slot (the message's offset in the sender's stream)
//  20 u32 dataLen
//  24 u32 tag (requester's request handle; 0 for ONEWAY and CLOSE)
//  28 u32 reserved (0)
//  32 header bytes, then data bytes unless EXT
// ACK: 16 bytes: 8 u64 ackSeq (next sequence the receiver will deliver).
export const ACK_SIZE: u32 = 16;
// RECEIPT: 16 bytes: 8 u64 seq.
export const RECEIPT_SIZE: u32 = 16;
export const KEEPALIVE_SIZE: u32 = 8;
// ERROR: 16 bytes + message: 8 u16 code | 10 u16 msgLen | 12 u32 reserved.
export const ERROR_SIZE: u32 = 16;
// BATCH: 8 bytes, u16 at 2 = frame count; frameLen counts the batch header
// and every frame in it. An EXT message ends its batch: its payload follows.
export const BATCH_SIZE: u32 = 8;

@inline export function isMessage(t: u8): bool {
  return t >= T_REQUEST && t <= T_CLOSE;
}

@inline export function putHeader(p: usize, type: u8, flags: u8, x: u16, len: u32): void {
  store<u8>(p, type);
  store<u8>(p, flags, 1);
  store<u16>(p, x, 2);
  store<u32>(p, len, 4);
}
