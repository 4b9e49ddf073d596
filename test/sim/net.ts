// The simulated network: a MemNetwork (host/transports/mem.ts) registered
// as sim://, whose callbacks run in virtual time. Real Contexts dial and
// listen on it like on any transport; this file only decides when and how
// their bytes arrive.
//
// A connection is a reliable byte stream, like TCP: each direction delivers
// bytes in order, split at random boundaries (and sometimes coalesced) into
// data() calls, after that link's latency and jitter, paced by its
// bandwidth (a large write arrives over a while). Links of one session have
// different latencies, so traffic is reordered across lanes. Faults:
//   kill       the connection breaks: what is in flight is gone and both
//              ends hear of it a little later (a reset); half-open, one end
//              never hears of it and its keepalive must find out
//   partition  a client's links deliver nothing for a while (bytes wait);
//              new connections from it time out
//   duplicate  a write already delivered (message, ACK, RECEIPT, KEEPALIVE
//              frames only) is delivered again on another open connection
//              of the same session, at a write boundary (every write is
//              one batch from the core, with its ext payload)
// Restarts and closes of the server are the scenario's: it closes the
// server's context and listens with a new one after a while.
//
// Which client a connection belongs to: the dialling context is the actor
// of the task running when connect() is called (clock.ts); every callback
// this network posts runs as the actor owning the end it acts on. Which
// session: the session id in the ACCEPT the server wrote first on it.

import { MemNetwork, MemConn, MemEnd } from '../../host/transports/mem';
import { NexioError } from '../../host/errors';
import { T_ACCEPT, T_BATCH } from '../../host/wire';
import { Clock, SERVER } from './clock';
import { Rng } from './rng';
import { Ledger } from './ledger';

export interface NetParams {
  /** Chance that a write is split into several data() pieces. */
  splitP: number;
  /** Chance that pieces already due are coalesced into one data() call. */
  coalesceP: number;
  /** Chance that a delivered write is duplicated onto another connection of its session. */
  dupP: number;
}

const SYN = 0, SYNACK = 1, DATA = 2, FIN = 3;
interface Unit { bytes: Buffer; link: Link; fromClient: boolean; key: string }
interface Item { kind: number; bytes: Buffer | undefined; unit: Unit | undefined; ready: number }

export class Dir {
  q: Item[] = [];
  head = 0;
  scheduled = false;
  lastReady = 0;
  constructor(readonly link: Link, readonly from: MemEnd, readonly to: MemEnd) {}
  get empty(): boolean { return this.head >= this.q.length; }
  /** Items (writes, pieces, FIN) still to arrive. */
  get inFlight(): number { return this.q.length - this.head; }
  clear(): void { this.q = []; this.head = 0; }
}

export class Link {
  readonly c2s: Dir;
  readonly s2c: Dir;
  /** Bytes per µs (0: unlimited). */
  bytesPerUs = 0;
  /** Which server context accepted it (0, then 1, 2, ... after restarts); -1 before. */
  server = -1;
  /** The session it carries, `${server}/${id}`, once the server wrote an ACCEPT on it. */
  session: string | undefined;
  #sawS2c = false;
  constructor(readonly id: number, readonly conn: MemConn, readonly client: number, readonly latency: number, readonly jitter: number) {
    this.c2s = new Dir(this, conn.a, conn.b);
    this.s2c = new Dir(this, conn.b, conn.a);
  }
  get broken(): boolean { return this.conn.broken; }
  /** The client's end (the dialler). */
  get clientEnd(): MemEnd { return this.conn.a; }
  get serverEnd(): MemEnd { return this.conn.b; }
  /** Both ends open. */
  get open(): boolean { return !this.broken && this.conn.a.state === 'open' && this.conn.b.state === 'open'; }
  get done(): boolean {
    const a = this.conn.a.state, b = this.conn.b.state;
    return a === 'closed' && (b === 'closed' || b === 'connecting') && (this.broken || (this.c2s.empty && this.s2c.empty));
  }
  /** The server's first write on the link names its session (ACCEPT), or none (REJECT, REDIRECT). */
  learn(b: Buffer): void {
    if (this.#sawS2c) return;
    this.#sawS2c = true;
    const at = b[0] === T_BATCH ? 8 : 0;
    if (b.length >= at + 24 && b[at] === T_ACCEPT) this.session = `${this.server}/${b.readBigUInt64LE(at + 16)}`;
  }
}

/** Whether a write carries an ACK with F_RESEND (the peer lost a message mid-lane). */
export function hasResend(b: Buffer): boolean {
  if (b.length < 8) return false;
  if (b[0] !== T_BATCH) return b[0] === 0x20 && (b[1] & 1) === 1;
  const end = b.readUInt32LE(4);
  for (let p = 8; p + 8 <= end; p += b.readUInt32LE(p + 4)) {
    if (b[p] === 0x20 && (b[p + 1] & 1)) return true;
    if (b.readUInt32LE(p + 4) < 8) break;
  }
  return false;
}

/** Frame types a duplicate may carry: messages, ACK, RECEIPT, KEEPALIVE (an ext payload after them comes along). */
function dupable(b: Buffer): boolean {
  const ok = (t: number) => (t >= 0x10 && t <= 0x14) || (t >= 0x20 && t <= 0x22);
  if (b.length < 8) return false;
  if (b[0] !== T_BATCH) return ok(b[0]);
  const end = b.readUInt32LE(4);
  for (let p = 8; p < end;) {
    const len = b.readUInt32LE(p + 4);
    if (!ok(b[p]) || len < 8) return false;
    p += len;
  }
  return true;
}

export class SimNet extends MemNetwork {
  readonly links: Link[] = [];
  /** Per client: [from, until) intervals in µs. */
  readonly partitions = new Map<number, [number, number][]>();
  readonly stats = { dials: 0, writes: 0, bytes: 0, deliveries: 0, kills: 0, resets: 0, dups: 0, refused: 0, held: 0, resendAcks: 0 };
  /** The server context accepting connections now (counts restarts). */
  serverGen = 0;
  /** The link whose bytes are being handed to a context right now (a handler runs inside). */
  delivering: Link | undefined;
  readonly #byConn = new Map<MemConn, Link>();
  readonly #owner = new Map<MemEnd, number>();
  readonly #pools = new Map<string, Unit[]>();
  #nextLink = 1;

  /** Scripted splits for targeted tests: where to cut a write, and the pause after each piece. */
  cutter: ((link: Link, fromClient: boolean, bytes: Buffer) => { at: number; gapUs: number }[] | undefined) | undefined;
  /** Base one-way latency (µs) of a client's links; set by the scenario. */
  clientLatency: (client: number) => number = () => 1000;
  /** Bandwidth of a client's links in bytes per µs (0: unlimited). */
  clientBandwidth: (client: number) => number = () => 0;
  /** Every link gets exactly clientLatency, no jitter (targeted tests). */
  fixedLatency = false;
  /** Targeted tests: the latency of link number n (1, 2, ... in dialling order), no jitter. */
  linkLatency: ((n: number) => number | undefined) | undefined;

  constructor(readonly clock: Clock, readonly rng: Rng, readonly params: NetParams, readonly ledger: Ledger) {
    super({ scheme: 'sim' });
  }

  get now(): number {
    return this.clock.now;
  }

  /** Every callback runs as the actor owning the end it acts on. */
  override post(fn: () => void, delayUs: number, to?: MemEnd): void {
    this.clock.after(delayUs, fn, (to && this.#owner.get(to)) ?? this.clock.actor);
  }

  #at(delayUs: number, end: MemEnd, fn: () => void): void {
    this.clock.after(delayUs, fn, this.#owner.get(end) ?? this.clock.actor);
  }

  linkOf(conn: MemConn): Link | undefined {
    return this.#byConn.get(conn);
  }

  // ---- connections ----

  /** A client context connects (inside its own code: the clock's actor is that client). */
  override dial(conn: MemConn): void {
    const client = this.clock.actor;
    if (client < 0) this.ledger.report('stuck', `sim: a connection was dialled outside any client's code (actor ${client})`);
    this.stats.dials++;
    const r = this.rng;
    const base = this.clientLatency(client);
    const n = this.#nextLink++;
    const fixed = this.linkLatency?.(n);
    const link = fixed !== undefined
      ? new Link(n, conn, client, fixed, 0)
      : this.fixedLatency
      ? new Link(n, conn, client, base, 0)
      : new Link(n, conn, client, Math.round(base * (0.5 + r.float() * 1.5)), r.int(0, base));
    link.bytesPerUs = this.clientBandwidth(client);
    this.links.push(link);
    this.#byConn.set(conn, link);
    this.#owner.set(conn.a, client);
    this.#owner.set(conn.b, SERVER);
    this.#push(link.c2s, { kind: SYN, bytes: undefined, unit: undefined, ready: 0 });
  }

  /** The connection attempt fails after delay (nobody listens, or the client is cut off). */
  #refuse(link: Link, delay: number): void {
    this.stats.refused++;
    link.conn.broken = true;
    link.c2s.clear();
    link.s2c.clear();
    this.#at(delay, link.conn.a, () => this.refuse(link.conn));
  }

  override carry(conn: MemConn, from: MemEnd, bytes: Uint8Array): void {
    const link = this.#byConn.get(conn);
    if (!link || conn.broken) return;
    const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const fromClient = from === conn.a;
    this.stats.writes++;
    this.stats.bytes += b.length;
    if (!fromClient) link.learn(b);
    if (hasResend(b)) this.stats.resendAcks++;
    let unit: Unit | undefined;
    if (link.session && this.params.dupP > 0 && dupable(b)) unit = { bytes: b, link, fromClient, key: link.session };
    const dir = fromClient ? link.c2s : link.s2c;
    const r = this.rng;
    const cuts = this.cutter?.(link, fromClient, b);
    if (cuts) {
      // Scripted: pieces ending at each cut, each gapUs after the previous.
      let at = 0;
      for (const c of cuts) {
        if (c.at <= at || c.at >= b.length) continue;
        this.#push(dir, { kind: DATA, bytes: b.subarray(at, c.at), unit: undefined, ready: 0 });
        dir.lastReady += c.gapUs;
        at = c.at;
      }
      this.#push(dir, { kind: DATA, bytes: b.subarray(at), unit, ready: 0 });
    } else if (b.length > 1 && r.chance(this.params.splitP)) {
      const cuts: number[] = [];
      const k = r.int(1, 3 + (b.length >> 14));
      for (let i = 0; i < k; i++) cuts.push(r.int(1, b.length - 1));
      cuts.sort((x, y) => x - y);
      let at = 0;
      for (const c of cuts) {
        if (c <= at) continue;
        this.#push(dir, { kind: DATA, bytes: b.subarray(at, c), unit: undefined, ready: 0 });
        at = c;
      }
      this.#push(dir, { kind: DATA, bytes: b.subarray(at), unit, ready: 0 });
    } else {
      this.#push(dir, { kind: DATA, bytes: b, unit, ready: 0 });
    }
  }

  /** The FIN follows the bytes already written, on the same path. */
  override finAfterBytes(conn: MemConn, from: MemEnd): void {
    const link = this.#byConn.get(conn);
    if (!link || conn.broken) return;
    this.#push(from === conn.a ? link.c2s : link.s2c, { kind: FIN, bytes: undefined, unit: undefined, ready: 0 });
  }

  /** A reset (a context destroyed its end) reaches the peer like a packet would. */
  override reset(conn: MemConn, to: MemEnd, err: Error): void {
    const link = this.#byConn.get(conn);
    this.stats.resets++;
    if (link) { link.c2s.clear(); link.s2c.clear(); }
    this.#at(link ? this.#delay(link) : 0, to, () => conn.closeEnd(to, err));
  }

  #delay(link: Link): number {
    return link.latency + (link.jitter ? this.rng.int(0, link.jitter) : 0);
  }

  #push(dir: Dir, item: Item): void {
    const link = dir.link;
    if (link.broken) return;
    let ready = this.now + this.#delay(link);
    if (ready < dir.lastReady) ready = dir.lastReady;
    if (item.bytes && link.bytesPerUs) ready += Math.ceil(item.bytes.length / link.bytesPerUs);
    item.ready = ready;
    dir.lastReady = ready;
    dir.q.push(item);
    this.#schedule(dir);
  }

  #schedule(dir: Dir): void {
    if (dir.scheduled || dir.empty) return;
    dir.scheduled = true;
    this.#at(dir.q[dir.head].ready - this.now, dir.to, () => this.#deliver(dir));
  }

  /** Until when (µs) client c is partitioned at now, or 0. */
  partitionedUntil(c: number): number {
    const ps = this.partitions.get(c);
    if (!ps) return 0;
    for (const [a, b] of ps) if (a <= this.now && this.now < b) return b;
    return 0;
  }

  #deliver(dir: Dir): void {
    dir.scheduled = false;
    const link = dir.link;
    const conn = link.conn;
    if (link.broken) { dir.clear(); return; }
    if (dir.empty) return;
    const item = dir.q[dir.head];
    const held = this.partitionedUntil(link.client);
    if (held && item.kind === SYN) {
      // An unreachable server: the connection attempt times out.
      dir.head++;
      this.#refuse(link, this.rng.int(20_000, 80_000));
      return;
    }
    if (held) {
      this.stats.held++;
      item.ready = held + this.rng.int(0, 2000);
      if (dir.lastReady < item.ready) dir.lastReady = item.ready;
      this.#schedule(dir);
      return;
    }
    dir.head++;
    if (item.kind === SYN) {
      const accept = this.listener(conn.name);
      if (!accept) { this.#refuse(link, this.#delay(link)); return; }
      link.server = this.serverGen;
      this.accept(conn, accept);
      this.#push(link.s2c, { kind: SYNACK, bytes: undefined, unit: undefined, ready: 0 });
    } else if (item.kind === SYNACK) {
      this.connected(conn);
    } else if (item.kind === DATA) {
      let bytes = item.bytes!;
      const units: Unit[] = [];
      if (item.unit) units.push(item.unit);
      // TCP may hand several writes to one read.
      while (!dir.empty && dir.q[dir.head].kind === DATA && dir.q[dir.head].ready <= this.now && this.rng.chance(this.params.coalesceP)) {
        const next = dir.q[dir.head++];
        bytes = Buffer.concat([bytes, next.bytes!]);
        if (next.unit) units.push(next.unit);
      }
      this.stats.deliveries++;
      this.delivering = link;
      try {
        conn.deliver(dir.to, bytes);
      } finally {
        this.delivering = undefined;
      }
      for (const u of units) this.#delivered(u);
    } else if (item.kind === FIN) {
      conn.deliverFin(dir.to);
    }
    if (dir.empty) dir.clear();
    this.#schedule(dir);
  }

  // ---- faults ----

  /** A unit reached its receiver: keep it, and now and then deliver it again elsewhere. */
  #delivered(u: Unit): void {
    let pool = this.#pools.get(u.key);
    if (!pool) this.#pools.set(u.key, pool = []);
    pool.push(u);
    if (pool.length > 8) pool.shift();
    if (!this.rng.chance(this.params.dupP)) return;
    const pick = pool[this.rng.int(0, pool.length - 1)];
    this.clock.after(this.rng.int(0, 3000), () => this.#duplicate(pick));
  }

  #duplicate(u: Unit): void {
    const targets: Link[] = [];
    for (const l of this.links) {
      if (l === u.link || l.session !== u.key || l.client !== u.link.client || !l.open) continue;
      targets.push(l);
    }
    if (targets.length === 0) return;
    const l = targets[this.rng.int(0, targets.length - 1)];
    this.stats.dups++;
    this.#push(u.fromClient ? l.c2s : l.s2c, { kind: DATA, bytes: u.bytes, unit: undefined, ready: 0 });
  }

  /**
   * Breaks one connection: in-flight bytes are gone, both ends hear of it
   * (a reset), or with halfOpen only one (the other writes into the void
   * until its keepalive finds the lane dead).
   */
  kill(link: Link, halfOpen = false, deaf?: 'client' | 'server'): void {
    if (link.broken) return;
    this.stats.kills++;
    const conn = link.conn;
    conn.broken = true;
    link.c2s.clear();
    link.s2c.clear();
    const side = deaf ?? (halfOpen ? (this.rng.chance(0.5) ? 'client' : 'server') : undefined);
    const err = new NexioError('NEXIO_ERR_TRANSPORT', `sim link ${link.id}: connection reset`, 20);
    for (const [name, end] of [['client', conn.a], ['server', conn.b]] as const) {
      if (side === name || end.state === 'closed') continue;
      end.finIn = true; // nothing more arrives on it
      this.#at(this.rng.int(0, 20_000), end, () => conn.closeEnd(end, err));
    }
  }

  /** Open links of client c (both ends up). */
  openLinks(c: number): Link[] {
    return this.links.filter((l) => l.client === c && l.open);
  }

  /** Drops links that are finished. */
  prune(): void {
    let j = 0;
    for (const l of this.links) {
      if (!l.done) { this.links[j++] = l; continue; }
      this.#byConn.delete(l.conn);
      this.#owner.delete(l.conn.a);
      this.#owner.delete(l.conn.b);
    }
    this.links.length = j;
  }

  /** Whether any bytes or connection events are still in flight. */
  busy(): string | undefined {
    for (const l of this.links) {
      if (!l.broken && (!l.c2s.empty || !l.s2c.empty)) return `link ${l.id} (client ${l.client}) has bytes in flight`;
    }
    return undefined;
  }
}
