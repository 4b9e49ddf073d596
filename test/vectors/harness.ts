// Two real cores (host/core.ts over build/core.wasm) driven by hand, for the
// vector tests: every event and every transmitted batch is captured, and
// nothing moves between the cores unless a test moves it. The config and
// the seeds are fixed, so the session id (from the server's seed) and every
// byte the cores emit are the same on every run.

import { Core, CoreConfig, CoreEvent, eventNames } from '../../host/core';
import { pskProofs } from '../../host/psk';

/** The config both cores run with. Explicit: the vectors depend on it. */
export const vectorConfig: Partial<CoreConfig> = {
  maxSessions: 4,
  maxLanes: 16,
  windowMsgs: 64,
  windowBytes: 65536,
  maxRequests: 32,
  keepaliveMs: 1000,
  resumeMs: 10000,
  helloTimeoutMs: 5000,
  backoffMinMs: 20,
  backoffMaxMs: 1000,
  eventCap: 4096,
};
export const CLIENT_SEED = 1;
export const SERVER_SEED = 2;
export const PORTAL = 'tcp://127.0.0.1:7000/echo';
export const RESOURCE = '/echo';
export const ATTRS = Buffer.from('k=v');
/** The first input's time (µs). */
export const T0 = 1_000_000;
/** The longest an ACK waits for a batch to ride on (assembly/config.ts ACK_DELAY_US). */
export const ACK_DELAY_MS = 5;
/** The session key the server's host hands its core in the vectors ("nexio-key-000001"). */
export const VECTOR_KEY = Buffer.from('nexio-key-000001');

/** An event with its header and data copied out of core memory. */
export interface Ev {
  type: number; name: string; session: number; lane: number; code: number;
  seq: number; tag: number; flags: number; hdr: Buffer; data: Buffer;
  dataLen: number; ext: number; aux: number; aux64: number;
  /** Where the data was in core memory (for tests of lent bytes). */
  dataPtr: number;
}
export interface Tx { lane: number; bytes: Buffer; ext: number; extLen: number }

export class Peer {
  readonly core: Core;
  readonly #ev = new CoreEvent();
  constructor(readonly name: string, seed: number, config: Partial<CoreConfig> = {}) {
    this.core = new Core({ ...vectorConfig, ...config, seed });
  }

  /** Every event queued since the last input. */
  events(): Ev[] {
    const n = this.core.pollEvents();
    const out: Ev[] = [];
    for (let i = 0; i < n; i++) {
      const e = this.core.event(i, this.#ev);
      out.push({
        type: e.type, name: eventNames[e.type], session: e.session, lane: e.lane, code: e.code,
        seq: e.seq, tag: e.tag, flags: e.flags,
        hdr: this.core.copy(e.hdrPtr, e.hdrLen),
        data: e.dataPtr ? this.core.copy(e.dataPtr, e.dataLen) : Buffer.alloc(0),
        dataLen: e.dataLen, ext: e.ext, aux: e.aux, aux64: e.aux64, dataPtr: e.dataPtr,
      });
    }
    return out;
  }

  /** Every batch the core has to send now. */
  transmit(now: number): Tx[] {
    const out: Tx[] = [];
    let lane: number;
    while ((lane = this.core.pollTransmit(now)) !== 0) {
      out.push({ lane, bytes: Buffer.from(this.core.txView()), ext: this.core.txExt(), extLen: this.core.txExtLen() });
    }
    return out;
  }
}

/**
 * A client and a server core with a session between them. Lanes are
 * numbered by position: cliLanes[i] and srvLanes[i] are the two ends of
 * one connection.
 */
export class Pair {
  readonly cli: Peer;
  readonly srv: Peer;
  now = T0;
  cliSession = 0;
  srvSession = 0;
  cliLanes: number[] = [];
  srvLanes: number[] = [];
  /** Events seen by the last step, per side. */
  cliEvents: Ev[] = [];
  srvEvents: Ev[] = [];

  constructor(config: Partial<CoreConfig> = {}) {
    this.cli = new Peer('client', CLIENT_SEED, config);
    this.srv = new Peer('server', SERVER_SEED, config);
  }

  /** The server lane at the other end of client lane h, and the reverse. */
  peerLane(side: 'cli' | 'srv', h: number): number {
    const i = (side === 'cli' ? this.cliLanes : this.srvLanes).indexOf(h);
    if (i < 0) throw new Error(`${side} lane ${h} unknown`);
    return (side === 'cli' ? this.srvLanes : this.cliLanes)[i];
  }

  /** Feeds bytes to one side's lane; an EXT payload of extLen bytes is taken off the stream. */
  feed(side: 'cli' | 'srv', lane: number, bytes: Buffer, extLen = 0): Ev[] {
    const peer = side === 'cli' ? this.cli : this.srv;
    const all = Buffer.concat([bytes, Buffer.alloc(extLen)]);
    let off = 0;
    const evs: Ev[] = [];
    while (off < all.length) {
      const r = peer.core.rx(lane, all.subarray(off), this.now);
      if (r < 0) throw new Error(`rx returned ${r}`);
      off += r;
      const got = peer.events();
      evs.push(...got);
      const ext = got.find((e) => e.name === 'ext-rx');
      if (ext) {
        off += ext.dataLen;
        peer.core.extDone(lane, this.now);
        evs.push(...peer.events());
      } else if (r === 0) {
        break;
      }
    }
    if (side === 'cli') this.cliEvents = evs; else this.srvEvents = evs;
    return evs;
  }

  /**
   * Delivers everything both sides have to send until both are quiet,
   * delayed acks included: when only an ack waits (a deadline within
   * ACK_DELAY_MS), the clock moves to it and the ack goes.
   */
  flush(): void {
    for (let round = 0; round < 100; round++) {
      const a = this.cli.transmit(this.now);
      for (const t of a) this.feed('srv', this.peerLane('cli', t.lane), t.bytes, t.extLen);
      const b = this.srv.transmit(this.now);
      for (const t of b) this.feed('cli', this.peerLane('srv', t.lane), t.bytes, t.extLen);
      if (a.length === 0 && b.length === 0) {
        const due = [this.cli.core.nextDeadline(), this.srv.core.nextDeadline()].filter((d) => d > 0 && d <= this.now + ACK_DELAY_MS * 1000);
        if (due.length === 0) return;
        this.now = Math.max(this.now, Math.min(...due));
        this.cli.core.timeout(this.now);
        this.srv.core.timeout(this.now);
      }
    }
    throw new Error('pair did not go quiet');
  }

  /** Client: connect with `lanes` lanes; returns the OPEN_LANE events. */
  connect(lanes: number, resource = RESOURCE, attrs = ATTRS): Ev[] {
    const s = this.cli.core.connect(PORTAL, resource, attrs, lanes, this.now);
    if (s < 0) throw new Error(`connect: ${s}`);
    this.cliSession = s;
    return this.cli.events();
  }

  /** The transport of client lane h is up: the server accepts a lane for it, the client says HELLO. */
  laneUp(h: number): Tx[] {
    const sl = this.srv.core.laneAccepted(this.now);
    if (sl < 0) throw new Error(`laneAccepted: ${sl}`);
    this.cliLanes.push(h);
    this.srvLanes.push(sl);
    this.srv.events();
    const r = this.cli.core.laneUp(h, this.now);
    if (r < 0) throw new Error(`laneUp: ${r}`);
    this.cli.events();
    return this.cli.transmit(this.now);
  }

  /**
   * Connects with `lanes` lanes and delivers HELLO and the server's ACCEPT
   * (with `portals` and `attrs`) on the first; returns the client's events
   * after the ACCEPT (session-open, then open-lane for each further lane).
   */
  handshake(lanes = 1, portals: string[] = [], attrs = Buffer.from('srv')): Ev[] {
    const first = this.connect(lanes);
    const hello = this.laneUp(first[0].lane);
    const req = this.feed('srv', this.srvLanes[0], hello[0].bytes).find((e) => e.name === 'session-request');
    if (!req) throw new Error('no session-request');
    this.srvSession = this.srv.core.accept(req.lane, VECTOR_KEY, portals, attrs, this.now);
    if (this.srvSession < 0) throw new Error(`accept: ${this.srvSession}`);
    this.srv.events();
    const acc = this.srv.transmit(this.now);
    return this.feed('cli', this.cliLanes[0], acc[0].bytes);
  }

  /** A session over `lanes` lanes, every handshake frame delivered and the pair quiet. */
  static open(lanes = 1, config: Partial<CoreConfig> = {}): Pair {
    const p = new Pair(config);
    for (const e of p.handshake(lanes)) if (e.name === 'open-lane') p.openExtra(e.lane);
    p.flush();
    return p;
  }

  /** Brings up an extra client lane the core asked for and delivers its HELLO. */
  openExtra(h: number): void {
    const hello = this.laneUp(h);
    this.feed('srv', this.peerLane('cli', h), hello[0].bytes);
  }
}

export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

// ---- pre-shared keys (docs/protocol.md section 10, "Pre-shared keys") ----

/** The identity and key of the vectors' client; the nonces are fixed per lane position (0xc0 + i client, 0x5e + i server). */
export const PSK_IDENTITY = 'vector-client';
export const PSK_KEY = Buffer.from('nexio-psk-vector-key-00000000001');
export const clientNonce = (i: number): Buffer => Buffer.alloc(32, 0xc0 + i);
export const serverNonce = (i: number): Buffer => Buffer.alloc(32, 0x5e + i);

/** Both proofs of a lane of the vectors' session (resource RESOURCE), as the hosts compute them. */
export function vectorProofs(nc: Uint8Array, ns: Uint8Array, sessionId: bigint, key: Uint8Array = PSK_KEY): { client: Buffer; server: Buffer } {
  return pskProofs(key, Buffer.from(PSK_IDENTITY), nc, ns, sessionId, Buffer.from(RESOURCE));
}

/**
 * A Pair whose client proves a pre-shared key on every lane: the steps of
 * the exchange, one at a time, each returning what went on the wire.
 */
export class PskPair extends Pair {
  /** Client lane h (position i) is up with its nonce: returns its HELLO. */
  pskLaneUp(h: number, i: number): Buffer {
    const r = this.cli.core.authLane(h, clientNonce(i), Buffer.from(PSK_IDENTITY), this.now);
    if (r < 0) throw new Error(`authLane: ${r}`);
    const tx = this.laneUp(h);
    if (tx.length !== 1) throw new Error(`${tx.length} transmits after laneUp`);
    return tx[0].bytes;
  }

  /** Server lane sl got the HELLO: its host challenges with position i's nonce. Returns the CHALLENGE and the auth-request event. */
  challenge(sl: number, hello: Buffer, i: number): { bytes: Buffer; ev: Ev } {
    const evs = this.feed('srv', sl, hello);
    if (evs.length !== 1 || evs[0].name !== 'auth-request') throw new Error(`events ${evs.map((e) => e.name)} for a HELLO with F_AUTH`);
    this.srv.core.authChallenge(sl, serverNonce(i), this.now);
    const tx = this.srv.transmit(this.now);
    if (tx.length !== 1) throw new Error(`${tx.length} transmits after authChallenge`);
    return { bytes: tx[0].bytes, ev: evs[0] };
  }

  /** Client lane h got the CHALLENGE: its host proves `key`. Returns the AUTH. */
  prove(h: number, challenge: Buffer, key: Uint8Array = PSK_KEY): Buffer {
    const evs = this.feed('cli', h, challenge);
    if (evs.length !== 1 || evs[0].name !== 'auth-challenge') throw new Error(`events ${evs.map((e) => e.name)} for a CHALLENGE`);
    const p = vectorProofs(evs[0].hdr, evs[0].data, challenge.readBigUInt64LE(8), key);
    this.cli.core.authProof(h, p.client, p.server, this.now);
    const tx = this.cli.transmit(this.now);
    if (tx.length !== 1) throw new Error(`${tx.length} transmits after authProof`);
    return tx[0].bytes;
  }

  /** Server lane sl got the AUTH; its host finds the proof right. Returns the events. */
  pass(sl: number, auth: Buffer, nc: Buffer, ns: Buffer, sessionId: bigint): Ev[] {
    const evs = this.feed('srv', sl, auth);
    if (evs.length !== 1 || evs[0].name !== 'auth-proof') throw new Error(`events ${evs.map((e) => e.name)} for an AUTH`);
    const p = vectorProofs(nc, ns, sessionId);
    if (!evs[0].data.equals(p.client)) throw new Error('the proof is not the right one');
    this.srv.core.authPassed(sl, p.server, this.now);
    return this.srv.events();
  }

  /** A new session over `lanes` lanes with the first one's exchange done and accepted: returns the ACCEPT. */
  pskOpen(lanes: number): Buffer {
    const cl = this.connect(lanes)[0].lane;
    const hello = this.pskLaneUp(cl, 0);
    const sl = this.srvLanes[0];
    const ch = this.challenge(sl, hello, 0);
    const auth = this.prove(cl, ch.bytes);
    this.pass(sl, auth, clientNonce(0), serverNonce(0), ch.bytes.readBigUInt64LE(8));
    this.srvSession = this.srv.core.accept(sl, VECTOR_KEY, [], Buffer.alloc(0), this.now);
    this.srv.events();
    const tx = this.srv.transmit(this.now);
    if (tx.length !== 1) throw new Error(`${tx.length} transmits after accept`);
    return tx[0].bytes;
  }
}
