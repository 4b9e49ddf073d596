// Hand-built wire frames for the fuzzer, straight from the layouts in
// assembly/wire.ts (the codec's encoders are not used on purpose: the
// fuzzer must be able to build frames the codec would refuse to build).
// All integers little-endian.

export const T = {
  HELLO: 0x01, ACCEPT: 0x02, REJECT: 0x03, REDIRECT: 0x04, CHALLENGE: 0x05, AUTH: 0x06,
  REQUEST: 0x10, RESPONSE: 0x11, ONEWAY: 0x12, CANCEL: 0x13, CLOSE: 0x14,
  ACK: 0x20, RECEIPT: 0x21, KEEPALIVE: 0x22, ERROR: 0x23, BATCH: 0x30,
} as const;

// Sizes and flags are the protocol's, shared with the codec (one statement
// of the layout in TypeScript); the frames below are still built by hand.
import {
  F_RECEIPT, F_EXT, F_APP_ERROR, F_RESEND, F_JOINED, FRAME_HEADER, MSG_HEADER, MAX_CONTROL_FRAME,
  MAX_APP_HEADER, INLINE_MAX, MAX_MSG_FRAME, MAX_BATCH, MAX_PORTALS_BYTES, HELLO_SIZE, ACCEPT_SIZE,
  REJECT_SIZE, REDIRECT_SIZE, ACK_SIZE, RECEIPT_SIZE, KEEPALIVE_SIZE, ERROR_SIZE, BATCH_SIZE, KEY_SIZE,
} from '../../host/wire';

/** The session key the fuzz targets' hosts accept with; joins must present it. */
export const FUZZ_KEY = Buffer.from('fuzz-session-key');

export {
  F_RECEIPT, F_EXT, F_APP_ERROR, F_RESEND, F_JOINED, FRAME_HEADER, MSG_HEADER, MAX_CONTROL_FRAME,
  MAX_APP_HEADER, INLINE_MAX, MAX_MSG_FRAME, MAX_BATCH, MAX_PORTALS_BYTES, HELLO_SIZE, ACCEPT_SIZE,
  REJECT_SIZE, REDIRECT_SIZE, ACK_SIZE, RECEIPT_SIZE, KEEPALIVE_SIZE, ERROR_SIZE, BATCH_SIZE,
};

export function isMessage(t: number): boolean {
  return t >= T.REQUEST && t <= T.CLOSE;
}

function frame(len: number, type: number, flags: number, x: number): Buffer {
  const b = Buffer.alloc(len);
  b[0] = type;
  b[1] = flags;
  b.writeUInt16LE(x & 0xffff, 2);
  b.writeUInt32LE(len >>> 0, 4);
  return b;
}

function u64(b: Buffer, off: number, v: bigint | number): void {
  b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)), off);
}

export interface HelloFields {
  verMin?: number; verMax?: number; sessionId?: bigint; ackSeq?: bigint | number;
  windowMsgs?: number; windowBytes?: number; maxRequests?: number; keepaliveMs?: number;
  resource?: Uint8Array; attrs?: Uint8Array;
  /** Default: FUZZ_KEY for a join (sessionId set), zeros for a new session. */
  key?: Uint8Array;
  /** F_AUTH: the pre-shared-key trailer (nonce then identity) after the attrs, as given (unchecked). */
  auth?: Uint8Array;
}

export function hello(f: HelloFields = {}): Buffer {
  const res = f.resource ?? Buffer.from('/fuzz');
  const attrs = f.attrs ?? Buffer.alloc(0);
  const auth = f.auth ?? Buffer.alloc(0);
  const b = frame(HELLO_SIZE + res.length + attrs.length + auth.length, T.HELLO, f.auth ? 0x01 : 0, 0);
  b.writeUInt16LE(f.verMin ?? 1, 8);
  b.writeUInt16LE(f.verMax ?? 1, 10);
  b.writeUInt16LE(res.length, 12);
  b.writeUInt16LE(attrs.length, 14);
  u64(b, 16, f.sessionId ?? 0n);
  u64(b, 24, f.ackSeq ?? 0);
  b.writeUInt32LE(f.windowMsgs ?? 256, 32);
  b.writeUInt32LE(f.windowBytes ?? 256 * 1024, 36);
  b.writeUInt32LE(f.maxRequests ?? 256, 40);
  b.writeUInt32LE(f.keepaliveMs ?? 1000, 44);
  b.set(f.key ?? (f.sessionId ? FUZZ_KEY : Buffer.alloc(KEY_SIZE)), 48);
  b.set(res, HELLO_SIZE);
  b.set(attrs, HELLO_SIZE + res.length);
  b.set(auth, HELLO_SIZE + res.length + attrs.length);
  return b;
}

/** Pre-shared keys: CHALLENGE (48 bytes) and AUTH (40 bytes). */
export function challenge(sessionId: bigint, nonce: Uint8Array): Buffer {
  const b = frame(48, T.CHALLENGE, 0, 0);
  u64(b, 8, sessionId);
  b.set(nonce.subarray(0, 32), 16);
  return b;
}

export function auth(proof: Uint8Array): Buffer {
  const b = frame(40, T.AUTH, 0, 0);
  b.set(proof.subarray(0, 32), 8);
  return b;
}

export interface AcceptFields {
  flags?: number; version?: number; sessionId?: bigint; ackSeq?: bigint | number;
  windowMsgs?: number; windowBytes?: number; maxRequests?: number; keepaliveMs?: number;
  resumeMs?: number; portals?: Uint8Array; attrs?: Uint8Array;
  /** Default: FUZZ_KEY, or zeros with F_JOINED. */
  key?: Uint8Array;
}

export function accept(f: AcceptFields = {}): Buffer {
  const portals = f.portals ?? Buffer.alloc(0);
  const attrs = f.attrs ?? Buffer.alloc(0);
  const b = frame(ACCEPT_SIZE + portals.length + attrs.length, T.ACCEPT, f.flags ?? 0, 0);
  b.writeUInt16LE(f.version ?? 1, 8);
  b.writeUInt16LE(portals.length, 10);
  b.writeUInt16LE(attrs.length, 12);
  u64(b, 16, f.sessionId ?? 0x1234_5678_9abcn);
  u64(b, 24, f.ackSeq ?? 0);
  b.writeUInt32LE(f.windowMsgs ?? 256, 32);
  b.writeUInt32LE(f.windowBytes ?? 256 * 1024, 36);
  b.writeUInt32LE(f.maxRequests ?? 256, 40);
  b.writeUInt32LE(f.keepaliveMs ?? 1000, 44);
  b.writeUInt32LE(f.resumeMs ?? 10000, 48);
  b.set(f.key ?? ((f.flags ?? 0) & F_JOINED ? Buffer.alloc(KEY_SIZE) : FUZZ_KEY), 56);
  b.set(portals, ACCEPT_SIZE);
  b.set(attrs, ACCEPT_SIZE + portals.length);
  return b;
}

export function reject(reason: number, msg: Uint8Array = Buffer.alloc(0)): Buffer {
  const b = frame(REJECT_SIZE + msg.length, T.REJECT, 0, 0);
  b.writeUInt16LE(reason & 0xffff, 8);
  b.writeUInt16LE(1, 10);
  b.writeUInt16LE(1, 12);
  b.writeUInt16LE(msg.length, 14);
  b.set(msg, REJECT_SIZE);
  return b;
}

export function redirect(portals: Uint8Array): Buffer {
  const b = frame(REDIRECT_SIZE + portals.length, T.REDIRECT, 0, 0);
  b.writeUInt16LE(portals.length, 8);
  b.set(portals, REDIRECT_SIZE);
  return b;
}

export interface MessageFields {
  type: number; flags?: number; seq: bigint | number; slot: number; tag?: number;
  hdr?: Uint8Array; data?: Uint8Array;
  /** EXT: only the length travels in the frame. */
  extLen?: number;
  reserved?: number;
}

export function message(f: MessageFields): Buffer {
  const hdr = f.hdr ?? Buffer.alloc(0);
  const ext = f.extLen !== undefined;
  const data = ext ? Buffer.alloc(0) : (f.data ?? Buffer.alloc(0));
  const b = frame(MSG_HEADER + hdr.length + data.length, f.type, (f.flags ?? 0) | (ext ? F_EXT : 0), hdr.length);
  u64(b, 8, f.seq);
  b.writeUInt32LE(f.slot >>> 0, 16);
  b.writeUInt32LE((ext ? f.extLen! : data.length) >>> 0, 20);
  b.writeUInt32LE((f.tag ?? 0) >>> 0, 24);
  b.writeUInt32LE((f.reserved ?? 0) >>> 0, 28);
  b.set(hdr, MSG_HEADER);
  b.set(data, MSG_HEADER + hdr.length);
  return b;
}

export function ack(ackSeq: bigint | number, flags = 0): Buffer {
  const b = frame(ACK_SIZE, T.ACK, flags, 0);
  u64(b, 8, ackSeq);
  return b;
}

export function receipt(seq: bigint | number): Buffer {
  const b = frame(RECEIPT_SIZE, T.RECEIPT, 0, 0);
  u64(b, 8, seq);
  return b;
}

export function keepalive(): Buffer {
  return frame(KEEPALIVE_SIZE, T.KEEPALIVE, 0, 0);
}

export function error(code: number, msg: Uint8Array = Buffer.alloc(0)): Buffer {
  const b = frame(ERROR_SIZE + msg.length, T.ERROR, 0, 0);
  b.writeUInt16LE(code & 0xffff, 8);
  b.writeUInt16LE(msg.length, 10);
  b.set(msg, ERROR_SIZE);
  return b;
}

/** A BATCH around frames; count and length may be overridden to lie. */
export function batch(frames: Uint8Array[], count?: number, frameLen?: number): Buffer {
  const body = Buffer.concat(frames);
  const b = Buffer.alloc(BATCH_SIZE + body.length);
  b[0] = T.BATCH;
  b.writeUInt16LE((count ?? frames.length) & 0xffff, 2);
  b.writeUInt32LE((frameLen ?? b.length) >>> 0, 4);
  b.set(body, BATCH_SIZE);
  return b;
}

/**
 * A well-behaved sender's numbering: sequence numbers from 0 and slots that
 * follow the send ring of `ringBytes` (a frame never wraps the ring end).
 */
export class Sender {
  seq = 0;
  off = 0;
  constructor(readonly ringBytes: number) {}

  /** The slot for a frame of frameLen bytes, advancing the stream. */
  take(frameLen: number): { seq: number; slot: number } {
    let off = this.off;
    const pos = off & (this.ringBytes - 1);
    if (pos + frameLen > this.ringBytes) off += this.ringBytes - pos;
    this.off = (off + frameLen) >>> 0;
    return { seq: this.seq++, slot: off >>> 0 };
  }

  /** A valid message frame with the next sequence number and slot. */
  next(type: number, tag: number, hdr: Uint8Array, data: Uint8Array, flags = 0): Buffer {
    const { seq, slot } = this.take(MSG_HEADER + hdr.length + data.length);
    return message({ type, flags, seq, slot, tag, hdr, data });
  }
}
