// Pre-shared keys: the host's half of the CHALLENGE / AUTH exchange
// (docs/protocol.md section 10, "Pre-shared keys"; assembly/auth.ts is the
// core's half). The core carries nonces and proofs; the keys, the MACs and
// the checks of the client's proofs live here. Both proofs are HMAC-SHA-256
// under the key, over one transcript that both sides build from what they
// know: the identity, both lanes' nonces, the session id and the resource.

import { createHmac, timingSafeEqual, randomFillSync } from 'node:crypto';
import type { Check } from './options';
import { InvalidArgumentError } from './errors';

/** A client's key: `identity` names it to the server (1..255 bytes of UTF-8), `key` at least 16 bytes. */
export interface ClientPsk { identity: string; key: Uint8Array }
/**
 * A server's keys: a table by identity, or a function that looks one up
 * (undefined: no such identity), synchronously or not (a secret store).
 * The function runs for every lane that offers a key, so a key rotated
 * there applies to the next lane.
 */
export type ServerPsk =
  | Record<string, Uint8Array>
  | ((identity: string) => Uint8Array | undefined | Promise<Uint8Array | undefined>);

export const PSK_MIN_KEY = 16;
export const PSK_MAX_IDENTITY = 255;
export const NONCE_SIZE = 32;
export const PROOF_SIZE = 32;

const CLIENT_LABEL = Buffer.from('nexio psk v1 client\0');
const SERVER_LABEL = Buffer.from('nexio psk v1 server\0');

const keyWanted = `a Uint8Array (Buffer) of at least ${PSK_MIN_KEY} bytes`;
const identityWanted = `a string of 1..${PSK_MAX_IDENTITY} bytes (UTF-8)`;
const isKey = (v: unknown): boolean => v instanceof Uint8Array && v.length >= PSK_MIN_KEY;
const isIdentity = (v: unknown): boolean =>
  typeof v === 'string' && v.length > 0 && Buffer.byteLength(v) <= PSK_MAX_IDENTITY;

/** connect()'s `psk`: { identity, key }, both required. */
export const clientPskCheck: Check = (v) => {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return '{ identity, key }';
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'identity' && k !== 'key') return `{ identity, key } (no '${k}')`;
  if (!isIdentity(o.identity)) return `{ identity, key } with identity ${identityWanted}`;
  if (!isKey(o.key)) return `{ identity, key } with key ${keyWanted}`;
  return undefined;
};

/** createServer()'s `psk`: a function, or a table whose every entry is named and sized right (the bad entry is named). */
export const serverPskCheck: Check = (v) => {
  if (typeof v === 'function') return undefined;
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return `{ [identity]: key } or (identity) => key | undefined`;
  for (const [id, key] of Object.entries(v as Record<string, unknown>)) {
    if (!isIdentity(id)) throw new InvalidArgumentError(`createServer: psk identity '${id.slice(0, 40)}' must be ${identityWanted}`);
    if (!isKey(key)) throw new InvalidArgumentError(`createServer: psk['${id.slice(0, 40)}'] must be ${keyWanted}`);
  }
  return undefined;
};

/** Both proofs of one lane's exchange. */
export function pskProofs(key: Uint8Array, identity: Uint8Array, clientNonce: Uint8Array, serverNonce: Uint8Array,
  sessionId: bigint, resource: Uint8Array): { client: Buffer; server: Buffer } {
  const t = Buffer.alloc(1 + identity.length + 2 * NONCE_SIZE + 8 + 2 + resource.length);
  let o = t.writeUInt8(identity.length, 0);
  t.set(identity, o); o += identity.length;
  t.set(clientNonce, o); o += NONCE_SIZE;
  t.set(serverNonce, o); o += NONCE_SIZE;
  o = t.writeBigUInt64LE(sessionId, o);
  o = t.writeUInt16LE(resource.length, o);
  t.set(resource, o);
  const mac = (label: Buffer) => createHmac('sha256', key).update(label).update(t).digest();
  return { client: mac(CLIENT_LABEL), server: mac(SERVER_LABEL) };
}

/** One server lane between its HELLO and the check of its proof. */
interface PendingAuth {
  identity: string;
  /** Remote address (no port), for the failure counts. */
  address: string;
  resource: Buffer;
  attrs: Buffer;
  version: number;
  /** The session a join names (0: a new session). */
  session: number;
  expect: Buffer;
  proof: Buffer;
}

/** Authentication failures from one identity at one address (Server.stats()). */
export interface AuthFailureCount { identity: string; address: string; count: number }

/** Distinct (identity, address) pairs counted; beyond, failures count under '*', '*'. */
const MAX_FAILURE_KEYS = 1024;

/**
 * A server context's keys and its lanes' exchanges. A lane whose identity
 * has no key is challenged like any other, under a random key, so it fails
 * at its proof: an unknown identity and a wrong key look alike.
 */
export class PskServer {
  readonly #lookup: (identity: string) => Uint8Array | undefined | Promise<Uint8Array | undefined>;
  readonly #pending = new Map<number, PendingAuth>();
  /** Sessions accepted after a proof: their identity and resource, for their joins. */
  readonly #sessions = new Map<number, { identity: string; resource: Buffer }>();
  readonly #failures = new Map<string, AuthFailureCount>();
  failed = 0;

  constructor(psk: ServerPsk) {
    if (typeof psk === 'function') this.#lookup = psk;
    else {
      const table = new Map(Object.entries(psk).map(([id, k]) => [id, Buffer.from(k)]));
      this.#lookup = (id) => table.get(id);
    }
  }

  /**
   * The key a lane claiming `identity` must prove (joining `session`, or 0
   * for a new session), now or once the lookup answers. A lane without one
   * (an unknown identity, a join under another identity than its
   * session's, a lookup that throws or rejects) gets a random key: it fails
   * at its proof, like a wrong key, after the same round trips.
   */
  keyFor(identity: string, session: number): Uint8Array | Promise<Uint8Array> {
    const none = () => randomFillSync(Buffer.alloc(PSK_MIN_KEY));
    const ok = (k: unknown): Uint8Array => (k instanceof Uint8Array && k.length >= PSK_MIN_KEY ? k : none());
    if (session && this.#sessions.get(session)?.identity !== identity) return none();
    let k: Uint8Array | undefined | PromiseLike<Uint8Array | undefined>;
    try { k = this.#lookup(identity); } catch { return none(); }
    const later = k as PromiseLike<Uint8Array | undefined> | undefined;
    return typeof later?.then === 'function' ? Promise.resolve(later).then(ok, none) : ok(k);
  }

  /**
   * An auth-request event, with the key from keyFor: trailer = the client's
   * nonce and identity; body = resource then attrs (resourceLen bytes of
   * resource); nonce = the server's, which the host challenges with.
   */
  request(lane: number, key: Uint8Array, trailer: Buffer, body: Buffer, resourceLen: number, version: number, sessionId: bigint,
    session: number, address: string, nonce: Buffer): void {
    const clientNonce = trailer.subarray(0, NONCE_SIZE);
    const idBytes = trailer.subarray(NONCE_SIZE);
    const identity = idBytes.toString();
    // A join's proof covers its session's resource (its HELLO carries none).
    const resource = session ? this.#sessions.get(session)?.resource ?? Buffer.alloc(0) : body.subarray(0, resourceLen);
    const p = pskProofs(key, idBytes, clientNonce, nonce, sessionId, resource);
    this.#pending.set(lane, {
      identity, address, resource: Buffer.from(resource), attrs: Buffer.from(body.subarray(resourceLen)), version, session,
      expect: p.client, proof: p.server,
    });
  }

  /**
   * An auth-proof event: `passed` is the lane's exchange if its proof is
   * right; a wrong one is counted as a failure of the identity it claimed.
   */
  verify(lane: number, proof: Buffer): { passed?: PendingAuth; identity?: string } {
    const p = this.#pending.get(lane);
    this.#pending.delete(lane);
    if (!p) return {};
    if (proof.length === PROOF_SIZE && timingSafeEqual(proof, p.expect)) return { passed: p, identity: p.identity };
    this.fail(p.identity, p.address);
    return { identity: p.identity };
  }

  /** Counts a failure (a wrong proof, no key where one is required, a key where none is). */
  fail(identity: string, address: string): void {
    this.failed++;
    let k = `${identity}\0${address}`;
    if (!this.#failures.has(k) && this.#failures.size >= MAX_FAILURE_KEYS) { k = '*\0*'; identity = '*'; address = '*'; }
    const f = this.#failures.get(k);
    if (f) f.count++;
    else this.#failures.set(k, { identity, address, count: 1 });
  }

  failures(): AuthFailureCount[] {
    return [...this.#failures.values()].map((f) => ({ ...f }));
  }

  accepted(session: number, identity: string, resource: Buffer): void {
    this.#sessions.set(session, { identity, resource });
  }

  identityOf(session: number): string | undefined {
    return this.#sessions.get(session)?.identity;
  }

  /** The lane went (closed, evicted): its exchange with it. */
  laneGone(lane: number): void {
    this.#pending.delete(lane);
  }

  sessionGone(session: number): void {
    this.#sessions.delete(session);
  }
}
