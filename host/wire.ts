// Wire protocol v1: a small reference codec, one encoder per frame type and
// one decoder for all of them. docs/protocol.md is the normative text and
// assembly/wire.ts the core's copy of the layouts; this file is the third
// statement of the same thing, written to be read. Tests (byte-exact
// vectors, fuzz mutations, the simulator's frame inspection) and tools use
// it. It is NOT on the data path: the core encodes and decodes for real.
//
// Encoders write the fields they are given, checking only that each fits
// its wire width, so tests can build frames the decoder (and the core)
// must refuse. decodeFrame() applies every check the core applies to a
// frame on its own (without session state: sequence windows, tag ranges and
// lane state need a live session) and throws a ProtocolError
// (code NEXIO_ERR_PROTOCOL, `wire` = the code the core would put in its
// ERROR frame) for the first one that fails, in the core's order.
//
// All integers are little-endian. u64 fields are bigint. Text fields
// (resource, portals, messages) are UTF-8 strings; the core treats them as
// opaque bytes, so a frame whose text is not valid UTF-8 does not survive a
// decode/encode round trip through this codec (it does through the core).

import { Code, InvalidArgumentError, ProtocolError } from './errors';

export const PROTOCOL_MIN = 1;
export const PROTOCOL_MAX = 1;

export const FRAME_HEADER = 8;
export const MSG_HEADER = 32;
export const MAX_CONTROL_FRAME = 4096;
export const MAX_APP_HEADER = 4096;
export const INLINE_MAX = 8192;
export const MAX_MSG_FRAME = MSG_HEADER + INLINE_MAX;
/** The core's default maxMessageBytes (host/core.ts defaultConfig): header + data of one message. */
export const DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024;
export const MAX_BATCH = 65536;
export const MAX_PORTALS_BYTES = 2048;
export const MIN_WINDOW_MSGS = 16;
export const MIN_WINDOW_BYTES = 32768;

/** The session key's length: a join or resume HELLO must carry the key the new session's ACCEPT gave. */
export const KEY_SIZE = 16;
export const HELLO_SIZE = 64;
export const ACCEPT_SIZE = 72;
export const REJECT_SIZE = 16;
export const REDIRECT_SIZE = 16;
export const ACK_SIZE = 16;
export const RECEIPT_SIZE = 16;
export const KEEPALIVE_SIZE = 8;
export const ERROR_SIZE = 16;
export const BATCH_SIZE = 8;
/** Pre-shared keys: CHALLENGE is sessionId (u64) and the server's nonce; AUTH the client's proof. */
export const CHALLENGE_SIZE = 48;
export const AUTH_SIZE = 40;
export const NONCE_SIZE = 32;
export const PROOF_SIZE = 32;
export const MAX_IDENTITY = 255;

export const T_HELLO = 0x01;
export const T_ACCEPT = 0x02;
export const T_REJECT = 0x03;
export const T_REDIRECT = 0x04;
export const T_CHALLENGE = 0x05;
export const T_AUTH = 0x06;
export const T_REQUEST = 0x10;
export const T_RESPONSE = 0x11;
export const T_ONEWAY = 0x12;
export const T_CANCEL = 0x13;
export const T_CLOSE = 0x14;
export const T_ACK = 0x20;
export const T_RECEIPT = 0x21;
export const T_KEEPALIVE = 0x22;
export const T_ERROR = 0x23;
export const T_BATCH = 0x30;

/** Message frames: the receiver wants a RECEIPT. */
export const F_RECEIPT = 0x01;
/** Message frames: the data follows on the stream, outside the frame (rendezvous). */
export const F_EXT = 0x02;
/** RESPONSE: the data is an application error. */
export const F_APP_ERROR = 0x04;
/** With F_EXT: rendezvous; a 16-byte descriptor (addr u64, rkey u32, 0 u32) ends the frame and no payload follows. */
export const F_RDV = 0x08;
export const RDV_DESC = 16;
export const F_KNOWN_MSG = F_RECEIPT | F_EXT | F_APP_ERROR | F_RDV;
/** ACK: a message was lost mid-lane; send every unacked message again. */
export const F_RESEND = 0x01;
/** ACCEPT: a lane joined (or resumed) an existing session. */
export const F_JOINED = 0x01;
/** A new session's ACCEPT: the server takes no one-way messages. */
export const F_NO_ONEWAY = 0x02;
/** ACCEPT: the lane proved a pre-shared key; the server's proof (32 bytes) follows the attrs. */
export const F_AUTH_ACCEPT = 0x04;
/** HELLO: the client proves a pre-shared key; its nonce (32 bytes) and identity (1..255) follow the attrs. */
export const F_AUTH = 0x01;

export type MessageType = 'request' | 'response' | 'oneway' | 'cancel' | 'close';
export type FrameType =
  | 'hello' | 'accept' | 'reject' | 'redirect' | 'challenge' | 'auth' | MessageType
  | 'ack' | 'receipt' | 'keepalive' | 'error' | 'batch';

export const typeCodes: Record<FrameType, number> = {
  hello: T_HELLO, accept: T_ACCEPT, reject: T_REJECT, redirect: T_REDIRECT, challenge: T_CHALLENGE, auth: T_AUTH,
  request: T_REQUEST, response: T_RESPONSE, oneway: T_ONEWAY, cancel: T_CANCEL, close: T_CLOSE,
  ack: T_ACK, receipt: T_RECEIPT, keepalive: T_KEEPALIVE, error: T_ERROR, batch: T_BATCH,
};
export const typeNames: Record<number, FrameType> = Object.fromEntries(
  Object.entries(typeCodes).map(([k, v]) => [v, k as FrameType]));

export interface Hello {
  type: 'hello'; flags: number;
  verMin: number; verMax: number;
  /** 0n: a new session; otherwise the session this lane joins or resumes. */
  sessionId: bigint;
  /** Next sequence number the sender expects (0n for a new session). */
  ackSeq: bigint;
  windowMsgs: number; windowBytes: number; maxRequests: number; keepaliveMs: number;
  /** Join or resume: the session's key (KEY_SIZE bytes); a new session: zeros. */
  key: Buffer;
  resource: string; attrs: Buffer;
  /** With F_AUTH: the lane's nonce (NONCE_SIZE bytes) and the identity whose key it proves. */
  nonce?: Buffer; identity?: string;
}
export interface Accept {
  type: 'accept'; flags: number;
  version: number;
  sessionId: bigint;
  ackSeq: bigint;
  windowMsgs: number; windowBytes: number; maxRequests: number; keepaliveMs: number;
  resumeMs: number;
  /** A new session: its key (KEY_SIZE bytes, not all zero); a join: zeros. */
  key: Buffer;
  portals: string[]; attrs: Buffer;
  /** With F_AUTH_ACCEPT: the server's proof of the pre-shared key (PROOF_SIZE bytes). */
  proof?: Buffer;
}
/** Pre-shared keys: the server's nonce; for a new session, the id it will have. */
export interface Challenge { type: 'challenge'; flags: number; sessionId: bigint; nonce: Buffer }
/** Pre-shared keys: the client's proof. */
export interface Auth { type: 'auth'; flags: number; proof: Buffer }
export interface Reject {
  type: 'reject'; flags: number;
  reason: number; verMin: number; verMax: number; message: string;
}
export interface Redirect { type: 'redirect'; flags: number; portals: string[] }
export interface Message {
  type: MessageType; flags: number;
  seq: bigint;
  /** The frame's offset in the sender's stream; the receiver mirrors it into its ring. */
  slot: number;
  /** (gen << 16) | index of the requester's request; 0 for ONEWAY and CLOSE. */
  tag: number;
  header: Buffer;
  /** Inline data; empty with F_EXT (the payload follows on the stream). */
  data: Buffer;
  dataLen: number;
  /** With F_RDV: where the receiver READs the payload from. */
  rdvAddr?: bigint;
  rdvKey?: number;
}
export interface Ack { type: 'ack'; flags: number; ackSeq: bigint }
export interface Receipt { type: 'receipt'; flags: number; seq: bigint }
export interface Keepalive { type: 'keepalive'; flags: number }
export interface ErrorFrame { type: 'error'; flags: number; code: number; message: string }
export interface Batch {
  type: 'batch'; flags: number;
  /** The u16 frame count as written; receivers do not rely on it. */
  count: number;
  frames: Frame[];
}
export type Frame =
  | Hello | Accept | Reject | Redirect | Challenge | Auth | Message | Ack | Receipt | Keepalive | ErrorFrame | Batch;

// ---- encoding ----

function fits(name: string, v: number, bits: 8 | 16 | 32): number {
  if (!Number.isInteger(v) || v < 0 || v >= 2 ** bits) {
    throw new InvalidArgumentError(`${name} = ${v} does not fit in u${bits}`);
  }
  return v;
}

function fits64(name: string, v: bigint): bigint {
  if (v < 0n || v >= 1n << 64n) throw new InvalidArgumentError(`${name} = ${v} does not fit in u64`);
  return v;
}

function frame(type: number, flags: number, x: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  b[0] = type;
  b[1] = fits('flags', flags, 8);
  b.writeUInt16LE(fits('u16 at 2', x, 16), 2);
  b.writeUInt32LE(fits('frameLen', size, 32), 4);
  return b;
}

const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');

function portalBytes(portals: string[]): Buffer {
  for (const p of portals) {
    if (p === '' || p.includes('\n')) throw new InvalidArgumentError(`bad portal URI ${JSON.stringify(p)}`);
  }
  return utf8(portals.join('\n'));
}

function keyBytes(k: Uint8Array): Buffer {
  if (k.length !== KEY_SIZE) throw new InvalidArgumentError(`a session key is ${KEY_SIZE} bytes, not ${k.length}`);
  return Buffer.from(k);
}

type Fields<T extends Frame> = Omit<T, 'type' | 'flags'> & { flags?: number };

function sized(name: string, v: Uint8Array, n: number): Buffer {
  if (v.length !== n) throw new InvalidArgumentError(`${name} is ${n} bytes, not ${v.length}`);
  return Buffer.from(v);
}

export function encodeHello(f: Fields<Hello>): Buffer {
  const res = utf8(f.resource);
  const auth = f.nonce !== undefined ? Buffer.concat([sized('nonce', f.nonce, NONCE_SIZE), utf8(f.identity ?? '')]) : Buffer.alloc(0);
  const b = frame(T_HELLO, f.flags ?? 0, 0, HELLO_SIZE + res.length + f.attrs.length + auth.length);
  b.writeUInt16LE(fits('verMin', f.verMin, 16), 8);
  b.writeUInt16LE(fits('verMax', f.verMax, 16), 10);
  b.writeUInt16LE(fits('resourceLen', res.length, 16), 12);
  b.writeUInt16LE(fits('attrsLen', f.attrs.length, 16), 14);
  b.writeBigUInt64LE(fits64('sessionId', f.sessionId), 16);
  b.writeBigUInt64LE(fits64('ackSeq', f.ackSeq), 24);
  b.writeUInt32LE(fits('windowMsgs', f.windowMsgs, 32), 32);
  b.writeUInt32LE(fits('windowBytes', f.windowBytes, 32), 36);
  b.writeUInt32LE(fits('maxRequests', f.maxRequests, 32), 40);
  b.writeUInt32LE(fits('keepaliveMs', f.keepaliveMs, 32), 44);
  keyBytes(f.key).copy(b, 48);
  res.copy(b, HELLO_SIZE);
  Buffer.from(f.attrs).copy(b, HELLO_SIZE + res.length);
  auth.copy(b, HELLO_SIZE + res.length + f.attrs.length);
  return b;
}

export function encodeAccept(f: Fields<Accept>): Buffer {
  const portals = portalBytes(f.portals);
  const proof = f.proof !== undefined ? sized('proof', f.proof, PROOF_SIZE) : Buffer.alloc(0);
  const b = frame(T_ACCEPT, f.flags ?? 0, 0, ACCEPT_SIZE + portals.length + f.attrs.length + proof.length);
  b.writeUInt16LE(fits('version', f.version, 16), 8);
  b.writeUInt16LE(fits('portalsLen', portals.length, 16), 10);
  b.writeUInt16LE(fits('attrsLen', f.attrs.length, 16), 12);
  b.writeBigUInt64LE(fits64('sessionId', f.sessionId), 16);
  b.writeBigUInt64LE(fits64('ackSeq', f.ackSeq), 24);
  b.writeUInt32LE(fits('windowMsgs', f.windowMsgs, 32), 32);
  b.writeUInt32LE(fits('windowBytes', f.windowBytes, 32), 36);
  b.writeUInt32LE(fits('maxRequests', f.maxRequests, 32), 40);
  b.writeUInt32LE(fits('keepaliveMs', f.keepaliveMs, 32), 44);
  b.writeUInt32LE(fits('resumeMs', f.resumeMs, 32), 48);
  keyBytes(f.key).copy(b, 56);
  portals.copy(b, ACCEPT_SIZE);
  Buffer.from(f.attrs).copy(b, ACCEPT_SIZE + portals.length);
  proof.copy(b, ACCEPT_SIZE + portals.length + f.attrs.length);
  return b;
}

export function encodeChallenge(f: Fields<Challenge>): Buffer {
  const b = frame(T_CHALLENGE, f.flags ?? 0, 0, CHALLENGE_SIZE);
  b.writeBigUInt64LE(fits64('sessionId', f.sessionId), 8);
  sized('nonce', f.nonce, NONCE_SIZE).copy(b, 16);
  return b;
}

export function encodeAuth(f: Fields<Auth>): Buffer {
  const b = frame(T_AUTH, f.flags ?? 0, 0, AUTH_SIZE);
  sized('proof', f.proof, PROOF_SIZE).copy(b, 8);
  return b;
}

export function encodeReject(f: Fields<Reject>): Buffer {
  const msg = utf8(f.message);
  const b = frame(T_REJECT, f.flags ?? 0, 0, REJECT_SIZE + msg.length);
  b.writeUInt16LE(fits('reason', f.reason, 16), 8);
  b.writeUInt16LE(fits('verMin', f.verMin, 16), 10);
  b.writeUInt16LE(fits('verMax', f.verMax, 16), 12);
  b.writeUInt16LE(fits('msgLen', msg.length, 16), 14);
  msg.copy(b, REJECT_SIZE);
  return b;
}

export function encodeRedirect(f: Fields<Redirect>): Buffer {
  const portals = portalBytes(f.portals);
  const b = frame(T_REDIRECT, f.flags ?? 0, 0, REDIRECT_SIZE + portals.length);
  b.writeUInt16LE(fits('portalsLen', portals.length, 16), 8);
  portals.copy(b, REDIRECT_SIZE);
  return b;
}

export interface MessageFields {
  flags?: number;
  seq: bigint;
  slot: number;
  tag?: number;
  header?: Uint8Array;
  data?: Uint8Array;
  /** Required with F_EXT (the payload's length); otherwise it defaults to data.length. */
  dataLen?: number;
  /** With F_RDV: the descriptor. */
  rdvAddr?: bigint;
  rdvKey?: number;
}

/** Any message frame: REQUEST, RESPONSE, ONEWAY, CANCEL or CLOSE. */
export function encodeMessage(type: MessageType, f: MessageFields): Buffer {
  const flags = f.flags ?? 0;
  const hdr = f.header ?? Buffer.alloc(0);
  const data = f.data ?? Buffer.alloc(0);
  const ext = (flags & F_EXT) !== 0;
  if (ext && data.length > 0) throw new InvalidArgumentError('an EXT message carries no inline data');
  const dataLen = f.dataLen ?? data.length;
  if (!ext && dataLen !== data.length) throw new InvalidArgumentError('dataLen differs from data.length');
  const rdv = (flags & F_RDV) !== 0;
  if (rdv && !ext) throw new InvalidArgumentError('F_RDV needs F_EXT');
  const b = frame(typeCodes[type], flags, hdr.length, MSG_HEADER + hdr.length + data.length + (rdv ? RDV_DESC : 0));
  if (rdv) {
    b.writeBigUInt64LE(fits64('rdvAddr', f.rdvAddr ?? 0n), MSG_HEADER + hdr.length);
    b.writeUInt32LE(fits('rdvKey', f.rdvKey ?? 0, 32), MSG_HEADER + hdr.length + 8);
  }
  b.writeBigUInt64LE(fits64('seq', f.seq), 8);
  b.writeUInt32LE(fits('slot', f.slot, 32), 16);
  b.writeUInt32LE(fits('dataLen', dataLen, 32), 20);
  b.writeUInt32LE(fits('tag', f.tag ?? 0, 32), 24);
  Buffer.from(hdr).copy(b, MSG_HEADER);
  Buffer.from(data).copy(b, MSG_HEADER + hdr.length);
  return b;
}

export const encodeRequest = (f: MessageFields): Buffer => encodeMessage('request', f);
export const encodeResponse = (f: MessageFields): Buffer => encodeMessage('response', f);
export const encodeOneway = (f: MessageFields): Buffer => encodeMessage('oneway', f);
export const encodeCancel = (f: { seq: bigint; slot: number; tag: number }): Buffer => encodeMessage('cancel', f);
export const encodeClose = (f: { seq: bigint; slot: number }): Buffer => encodeMessage('close', f);

export function encodeAck(f: Fields<Ack>): Buffer {
  const b = frame(T_ACK, f.flags ?? 0, 0, ACK_SIZE);
  b.writeBigUInt64LE(fits64('ackSeq', f.ackSeq), 8);
  return b;
}

export function encodeReceipt(f: Fields<Receipt>): Buffer {
  const b = frame(T_RECEIPT, f.flags ?? 0, 0, RECEIPT_SIZE);
  b.writeBigUInt64LE(fits64('seq', f.seq), 8);
  return b;
}

export function encodeKeepalive(f: { flags?: number } = {}): Buffer {
  return frame(T_KEEPALIVE, f.flags ?? 0, 0, KEEPALIVE_SIZE);
}

export function encodeError(f: Fields<ErrorFrame>): Buffer {
  const msg = utf8(f.message);
  const b = frame(T_ERROR, f.flags ?? 0, 0, ERROR_SIZE + msg.length);
  b.writeUInt16LE(fits('code', f.code, 16), 8);
  b.writeUInt16LE(fits('msgLen', msg.length, 16), 10);
  msg.copy(b, ERROR_SIZE);
  return b;
}

/** A BATCH of frames (encoded already, or as objects). count defaults to the number of frames. */
export function encodeBatch(f: { flags?: number; count?: number; frames: (Frame | Uint8Array)[] }): Buffer {
  const parts = f.frames.map((x) => (x instanceof Uint8Array ? Buffer.from(x) : encodeFrame(x)));
  const size = BATCH_SIZE + parts.reduce((n, p) => n + p.length, 0);
  const b = frame(T_BATCH, f.flags ?? 0, f.count ?? parts.length, size);
  let p = BATCH_SIZE;
  for (const part of parts) p += part.copy(b, p);
  return b;
}

export function encodeFrame(f: Frame): Buffer {
  switch (f.type) {
    case 'hello': return encodeHello(f);
    case 'accept': return encodeAccept(f);
    case 'reject': return encodeReject(f);
    case 'redirect': return encodeRedirect(f);
    case 'challenge': return encodeChallenge(f);
    case 'auth': return encodeAuth(f);
    case 'ack': return encodeAck(f);
    case 'receipt': return encodeReceipt(f);
    case 'keepalive': return encodeKeepalive(f);
    case 'error': return encodeError(f);
    case 'batch': return encodeBatch(f);
    default: return encodeMessage(f.type, f);
  }
}

// ---- decoding ----

/** Checks the receiver can make without session state; all optional. */
export interface DecodeLimits {
  /** The receiver's maxRequests (after negotiation): REQUEST/CANCEL tags must index below it. */
  maxRequests?: number;
  /** The receiver's windowBytes: a message must fit in its ring at slot. */
  windowBytes?: number;
  /** The receiver's maxMessageBytes (default 64 MiB, the core's default): an EXT claim above it is frame-too-large. */
  maxMessage?: number;
}

function fail(code: number, what: string): never {
  throw new ProtocolError(code, `protocol error (${code}): ${what}`);
}

const isMessage = (t: number): boolean => t >= T_REQUEST && t <= T_CLOSE;

function minSize(t: number): number {
  switch (t) {
    case T_HELLO: return HELLO_SIZE;
    case T_ACCEPT: return ACCEPT_SIZE;
    case T_REJECT: return REJECT_SIZE;
    case T_REDIRECT: return REDIRECT_SIZE;
    case T_ACK: return ACK_SIZE;
    case T_RECEIPT: return RECEIPT_SIZE;
    case T_KEEPALIVE: return KEEPALIVE_SIZE;
    case T_ERROR: return ERROR_SIZE;
    case T_CHALLENGE: return CHALLENGE_SIZE;
    case T_AUTH: return AUTH_SIZE;
  }
  return 0;
}

/** The first-8-bytes checks the core makes before it reads a frame's body. */
function checkHeader(t: number, len: number, batchLeft: number | undefined, extFlag: boolean): void {
  if (t === T_BATCH) {
    if (batchLeft !== undefined) fail(Code.MALFORMED, 'BATCH inside a BATCH');
    // The core reports an empty batch as frame-too-large too.
    if (len <= BATCH_SIZE || len > MAX_BATCH) fail(Code.FRAME_TOO_LARGE, `BATCH of ${len} bytes`);
    return;
  }
  if (isMessage(t)) {
    if (len < MSG_HEADER) fail(Code.MALFORMED, `message frame of ${len} bytes`);
    if (len > MAX_MSG_FRAME) fail(Code.FRAME_TOO_LARGE, `message frame of ${len} bytes`);
  } else {
    const m = minSize(t);
    if (m === 0) fail(Code.BAD_TYPE, `unknown frame type 0x${t.toString(16)}`);
    if (len > MAX_CONTROL_FRAME) fail(Code.FRAME_TOO_LARGE, `control frame of ${len} bytes`);
    const fixed = t === T_ACK || t === T_RECEIPT || t === T_KEEPALIVE || t === T_CHALLENGE || t === T_AUTH;
    if (len < m || (fixed && len !== m)) fail(Code.MALFORMED, `frame type 0x${t.toString(16)} of ${len} bytes`);
  }
  if (batchLeft !== undefined) {
    if (len > batchLeft) fail(Code.MALFORMED, 'frame overruns its BATCH');
    if (len < batchLeft && isMessage(t) && extFlag) fail(Code.MALFORMED, 'EXT message not last in its BATCH');
  }
}

function text(b: Buffer, start: number, len: number): string {
  return b.toString('utf8', start, start + len);
}

function portalList(b: Buffer, start: number, len: number): string[] {
  return len === 0 ? [] : text(b, start, len).split('\n');
}

function decodeMessage(b: Buffer, limits: DecodeLimits): Message {
  const t = b[0];
  const flags = b[1];
  const hdrLen = b.readUInt16LE(2);
  const len = b.length;
  const seq = b.readBigUInt64LE(8);
  const slot = b.readUInt32LE(16);
  const dataLen = b.readUInt32LE(20);
  const tag = b.readUInt32LE(24);
  const ext = (flags & F_EXT) !== 0;
  const rdv = (flags & F_RDV) !== 0;
  if ((flags & ~F_KNOWN_MSG) !== 0) fail(Code.MALFORMED, `unknown message flags 0x${flags.toString(16)}`);
  if (b.readUInt32LE(28) !== 0) fail(Code.MALFORMED, 'reserved message word is not 0');
  if (hdrLen > MAX_APP_HEADER) fail(Code.FRAME_TOO_LARGE, `application header of ${hdrLen} bytes`);
  if (rdv && !ext) fail(Code.MALFORMED, 'F_RDV without F_EXT');
  // The rendezvous descriptor is read off the lane; the ring holds the rest.
  const ringLen = rdv ? len - RDV_DESC : len;
  if (ext) {
    if (dataLen === 0 || ringLen !== MSG_HEADER + hdrLen) fail(Code.MALFORMED, 'EXT message lengths');
    const max = limits.maxMessage ?? DEFAULT_MAX_MESSAGE;
    if (hdrLen + dataLen > max) fail(Code.FRAME_TOO_LARGE, `message of ${hdrLen + dataLen} bytes over the receiver's maxMessageBytes ${max}`);
    if (rdv && b.readUInt32LE(MSG_HEADER + hdrLen + 12) !== 0) fail(Code.MALFORMED, 'reserved rendezvous word is not 0');
  } else {
    if (hdrLen + dataLen > INLINE_MAX) fail(Code.FRAME_TOO_LARGE, `inline message of ${hdrLen + dataLen} bytes`);
    if (len !== MSG_HEADER + hdrLen + dataLen) fail(Code.MALFORMED, 'message frameLen differs from its lengths');
  }
  if (t === T_REQUEST || t === T_CANCEL) {
    const idx = tag & 0xffff;
    if (tag >>> 16 === 0 || (limits.maxRequests !== undefined && idx >= limits.maxRequests)) {
      fail(Code.LIMIT, `request tag 0x${tag.toString(16)}`);
    }
  }
  if ((t === T_CANCEL || t === T_CLOSE) && (hdrLen | dataLen | flags) !== 0) {
    fail(Code.MALFORMED, 'CANCEL and CLOSE carry no header, data or flags');
  }
  if (limits.windowBytes !== undefined && (slot & (limits.windowBytes - 1)) + ringLen > limits.windowBytes) {
    fail(Code.WINDOW, 'message crosses the end of the receive ring');
  }
  return {
    type: typeNames[t] as MessageType, flags, seq, slot, tag,
    header: Buffer.from(b.subarray(MSG_HEADER, MSG_HEADER + hdrLen)),
    data: Buffer.from(b.subarray(MSG_HEADER + hdrLen, ringLen)),
    dataLen,
    ...(rdv ? { rdvAddr: b.readBigUInt64LE(MSG_HEADER + hdrLen), rdvKey: b.readUInt32LE(MSG_HEADER + hdrLen + 8) } : {}),
  };
}

function decodeControl(b: Buffer): Frame {
  const t = b[0];
  const flags = b[1];
  const len = b.length;
  switch (t) {
    case T_HELLO: {
      const verMin = b.readUInt16LE(8), verMax = b.readUInt16LE(10);
      const resLen = b.readUInt16LE(12), attrsLen = b.readUInt16LE(14);
      // F_AUTH: the nonce and 1..255 bytes of identity follow the attrs.
      const authLen = len - (HELLO_SIZE + resLen + attrsLen);
      const auth = (flags & F_AUTH) !== 0;
      if (auth ? authLen <= NONCE_SIZE || authLen > NONCE_SIZE + MAX_IDENTITY : authLen !== 0) fail(Code.MALFORMED, 'HELLO lengths');
      if (verMin > verMax) fail(Code.MALFORMED, 'HELLO verMin > verMax');
      const f: Hello = {
        type: 'hello', flags, verMin, verMax,
        sessionId: b.readBigUInt64LE(16), ackSeq: b.readBigUInt64LE(24),
        windowMsgs: b.readUInt32LE(32), windowBytes: b.readUInt32LE(36),
        maxRequests: b.readUInt32LE(40), keepaliveMs: b.readUInt32LE(44),
        key: Buffer.from(b.subarray(48, 48 + KEY_SIZE)),
        resource: text(b, HELLO_SIZE, resLen),
        attrs: Buffer.from(b.subarray(HELLO_SIZE + resLen, HELLO_SIZE + resLen + attrsLen)),
      };
      if (auth) {
        f.nonce = Buffer.from(b.subarray(HELLO_SIZE + resLen + attrsLen, HELLO_SIZE + resLen + attrsLen + NONCE_SIZE));
        f.identity = text(b, HELLO_SIZE + resLen + attrsLen + NONCE_SIZE, authLen - NONCE_SIZE);
      }
      // A server that shares no version answers REJECT(version) before it looks at windows.
      const common = Math.min(verMax, PROTOCOL_MAX) >= Math.max(verMin, PROTOCOL_MIN);
      if (common && (f.windowMsgs < MIN_WINDOW_MSGS || f.windowBytes < MIN_WINDOW_BYTES || f.maxRequests < 1)) {
        fail(Code.WINDOW, 'HELLO windows below the minimum');
      }
      return f;
    }
    case T_ACCEPT: {
      const version = b.readUInt16LE(8);
      const portalsLen = b.readUInt16LE(10), attrsLen = b.readUInt16LE(12);
      const proofLen = flags & F_AUTH_ACCEPT ? PROOF_SIZE : 0;
      if (ACCEPT_SIZE + portalsLen + attrsLen + proofLen !== len || portalsLen > MAX_PORTALS_BYTES ||
          version < PROTOCOL_MIN || version > PROTOCOL_MAX) {
        fail(Code.MALFORMED, 'ACCEPT lengths or version');
      }
      const f: Accept = {
        type: 'accept', flags, version,
        sessionId: b.readBigUInt64LE(16), ackSeq: b.readBigUInt64LE(24),
        windowMsgs: b.readUInt32LE(32), windowBytes: b.readUInt32LE(36),
        maxRequests: b.readUInt32LE(40), keepaliveMs: b.readUInt32LE(44),
        resumeMs: b.readUInt32LE(48),
        key: Buffer.from(b.subarray(56, 56 + KEY_SIZE)),
        portals: portalList(b, ACCEPT_SIZE, portalsLen),
        attrs: Buffer.from(b.subarray(ACCEPT_SIZE + portalsLen, ACCEPT_SIZE + portalsLen + attrsLen)),
      };
      if (proofLen) f.proof = Buffer.from(b.subarray(len - PROOF_SIZE, len));
      if (f.sessionId === 0n) fail(Code.MALFORMED, 'ACCEPT without a session id');
      // A join's ACCEPT repeats the server's windows; only a new session applies them.
      // A join's ACCEPT repeats the server's windows and carries no key; only
      // a new session's ACCEPT is checked for both.
      if ((flags & F_JOINED) === 0) {
        if (f.windowMsgs < MIN_WINDOW_MSGS || f.windowBytes < MIN_WINDOW_BYTES || f.maxRequests < 1) {
          fail(Code.MALFORMED, 'ACCEPT windows below the minimum');
        }
        if (f.key.every((x) => x === 0)) fail(Code.MALFORMED, 'ACCEPT of a new session without a key');
      }
      return f;
    }
    case T_REJECT: {
      const msgLen = b.readUInt16LE(14);
      if (REJECT_SIZE + msgLen !== len) fail(Code.MALFORMED, 'REJECT lengths');
      return {
        type: 'reject', flags, reason: b.readUInt16LE(8), verMin: b.readUInt16LE(10), verMax: b.readUInt16LE(12),
        message: text(b, REJECT_SIZE, msgLen),
      };
    }
    case T_REDIRECT: {
      const portalsLen = b.readUInt16LE(8);
      if (REDIRECT_SIZE + portalsLen !== len || portalsLen === 0 || portalsLen > MAX_PORTALS_BYTES) {
        fail(Code.MALFORMED, 'REDIRECT lengths');
      }
      return { type: 'redirect', flags, portals: portalList(b, REDIRECT_SIZE, portalsLen) };
    }
    case T_CHALLENGE: {
      const sessionId = b.readBigUInt64LE(8);
      if (sessionId === 0n) fail(Code.MALFORMED, 'CHALLENGE without a session id');
      return { type: 'challenge', flags, sessionId, nonce: Buffer.from(b.subarray(16, 48)) };
    }
    case T_AUTH:
      return { type: 'auth', flags, proof: Buffer.from(b.subarray(8, 40)) };
    case T_ACK:
      if ((flags & ~F_RESEND) !== 0) fail(Code.MALFORMED, `unknown ACK flags 0x${flags.toString(16)}`);
      return { type: 'ack', flags, ackSeq: b.readBigUInt64LE(8) };
    case T_RECEIPT:
      if (flags !== 0) fail(Code.MALFORMED, 'RECEIPT flags');
      return { type: 'receipt', flags, seq: b.readBigUInt64LE(8) };
    case T_KEEPALIVE:
      return { type: 'keepalive', flags };
    default: { // T_ERROR: checkHeader let nothing else through
      const msgLen = b.readUInt16LE(10);
      if (ERROR_SIZE + msgLen !== len) fail(Code.MALFORMED, 'ERROR lengths');
      return { type: 'error', flags, code: b.readUInt16LE(8), message: text(b, ERROR_SIZE, msgLen) };
    }
  }
}

/**
 * Decodes the frame at buf[off]. Inside a BATCH, batchLeft is what the
 * batch has left; like the core, a frame's 8-byte header is read from the
 * stream before its length is checked against the batch.
 */
function readFrame(buf: Buffer, off: number, limits: DecodeLimits, batchLeft?: number): Frame {
  if (buf.length - off < FRAME_HEADER) fail(Code.MALFORMED, 'truncated frame header');
  const t = buf[off];
  const len = buf.readUInt32LE(off + 4);
  checkHeader(t, len, batchLeft, (buf[off + 1] & F_EXT) !== 0);
  if (t === T_BATCH) {
    const frames: Frame[] = [];
    const end = off + len;
    for (let p = off + BATCH_SIZE; p < end; p += buf.readUInt32LE(p + 4)) {
      frames.push(readFrame(buf, p, limits, end - p));
    }
    return { type: 'batch', flags: buf[off + 1], count: buf.readUInt16LE(off + 2), frames };
  }
  if (buf.length - off < len) fail(Code.MALFORMED, `truncated frame: ${buf.length - off} of ${len} bytes`);
  const b = buf.subarray(off, off + len);
  return isMessage(t) ? decodeMessage(b, limits) : decodeControl(b);
}

/**
 * Decodes one frame (a BATCH with every frame in it) that fills buf
 * exactly. An EXT payload is not part of its frame: pass the frame (or the
 * batch it ends) without it. Throws ProtocolError on the first violation.
 */
export function decodeFrame(buf: Uint8Array, limits: DecodeLimits = {}): Frame {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const f = readFrame(b, 0, limits);
  const len = b.readUInt32LE(4);
  if (len !== b.length) fail(Code.MALFORMED, `${b.length - len} bytes after the frame`);
  return f;
}

/** The bytes of each frame in a BATCH (or [buf] for a single frame), checked like decodeFrame. */
export function splitBatch(buf: Uint8Array): Buffer[] {
  const f = decodeFrame(buf);
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (f.type !== 'batch') return [b];
  const out: Buffer[] = [];
  for (let p = BATCH_SIZE; p < b.length; p += b.readUInt32LE(p + 4)) out.push(b.subarray(p, p + b.readUInt32LE(p + 4)));
  return out;
}

/** The EXT message that ends this frame or batch, if any: its payload follows on the stream. */
export function extTail(f: Frame): Message | undefined {
  const last = f.type === 'batch' ? f.frames[f.frames.length - 1] : f;
  // A rendezvous payload is not on the stream (F_RDV): nothing follows.
  if (last && 'seq' in last && 'slot' in last && (last.flags & F_EXT) !== 0 && (last.flags & F_RDV) === 0) return last;
  return undefined;
}

// ---- JSON form (vectors, traces) ----

/** A JSON-safe copy of a frame: u64 as decimal strings, byte fields as hex. */
export function frameToJson(f: Frame): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(f)) {
    if (typeof v === 'bigint') out[k] = v.toString();
    else if (Buffer.isBuffer(v)) out[k] = v.toString('hex');
    else if (k === 'frames') out[k] = (v as Frame[]).map(frameToJson);
    else out[k] = v;
  }
  return out;
}

const u64Fields = new Set(['sessionId', 'ackSeq', 'seq', 'rdvAddr']);
const byteFields = new Set(['attrs', 'header', 'data', 'key', 'nonce', 'proof']);

/**
 * The frame a JSON form names. Omitted fields take their defaults: flags 0,
 * empty bytes and text, tag 0, dataLen = data length, count = frames.
 */
export function frameFromJson(j: Record<string, unknown>): Frame {
  const type = j.type as FrameType;
  if (!(type in typeCodes)) throw new InvalidArgumentError(`unknown frame type ${String(j.type)}`);
  const f: Record<string, unknown> = { type, flags: 0 };
  for (const [k, v] of Object.entries(j)) {
    if (u64Fields.has(k)) f[k] = BigInt(v as string);
    else if (byteFields.has(k)) f[k] = Buffer.from(v as string, 'hex');
    else if (k === 'frames') f[k] = (v as Record<string, unknown>[]).map(frameFromJson);
    else f[k] = v;
  }
  const defaults: Record<string, Record<string, unknown>> = {
    hello: { resource: '', attrs: Buffer.alloc(0), sessionId: 0n, ackSeq: 0n, key: Buffer.alloc(KEY_SIZE) },
    accept: { portals: [], attrs: Buffer.alloc(0), ackSeq: 0n, key: Buffer.alloc(KEY_SIZE) },
    reject: { message: '' },
    error: { message: '' },
    batch: { count: (f.frames as Frame[] | undefined)?.length ?? 0 },
  };
  if (isMessage(typeCodes[type])) {
    defaults[type] = { tag: 0, header: Buffer.alloc(0), data: Buffer.alloc(0) };
  }
  const d = defaults[type] ?? {};
  for (const k of Object.keys(d)) if (f[k] === undefined) f[k] = d[k];
  if (isMessage(typeCodes[type]) && f.dataLen === undefined) f.dataLen = (f.data as Buffer).length;
  return f as unknown as Frame;
}
