// The simulated network and the hosts that drive the cores over it.
//
// A lane is a reliable byte stream, like TCP: each direction delivers bytes
// in order, split at random boundaries (and sometimes coalesced) into rx()
// calls, after that link's latency and jitter, paced by its bandwidth (a
// large batch arrives over a while). Links of one session have different
// latencies, so traffic is reordered across lanes. Faults:
//   kill       the connection breaks: what is in flight is gone and both
//              ends get laneDown a little later (a reset); half-open, one
//              end never hears of it and its keepalive must find out
//   partition  a client's links deliver nothing for a while (bytes wait);
//              new connections from it fail; keepalive finds dead lanes
//   restart    the server core is replaced by a fresh one (state lost);
//              its connections reset, new ones are refused while it is down
//   duplicate  a batch already delivered (message, ACK, RECEIPT, KEEPALIVE
//              frames only) is delivered again on another open lane of the
//              same session, at a frame boundary
//
// A Host owns one core: after every input it drains events (copied out
// first, since the next input invalidates them), then every batch from
// pollTransmit, then closes the lanes the core asked to close in this turn
// (CLOSE_LANE: write what pollTransmit gives for the lane, then close), and
// arms one timer at nextDeadline().

import { Core, CoreConfig, CoreEvent, FLAG_EXT, eventNames as names } from '../../host/core';
import type { Recorder } from '../../host/record';
import { Clock } from './clock';
import { Rng } from './rng';
import { Ledger } from './ledger';

export const E_TRANSPORT = 20;

export const EV = {
  OPEN_LANE: 1, CLOSE_LANE: 2, SESSION_REQUEST: 3, SESSION_OPEN: 4, SESSION_RESUMED: 5,
  SESSION_REJECTED: 6, SESSION_LOST: 7, SESSION_CLOSED: 8, LANE_UP: 9, LANE_DOWN: 10,
  PROTOCOL_ERROR: 11, REQUEST: 12, MESSAGE: 13, RESPONSE: 14, RECEIPT: 15,
  REQUEST_FAILED: 16, CANCEL: 17, EXT_RX: 18, EXT_RELEASE: 19, DRAIN: 20,
} as const;

/** An event copied out of core memory. */
export interface SimEvent {
  type: number; session: number; lane: number; code: number; seq: number; tag: number;
  flags: number; ext: number; aux: number; aux64: number;
  hdr: Buffer | undefined; data: Buffer | undefined; hdrLen: number; dataLen: number;
}

export interface App {
  onEvent(h: Host, e: SimEvent): void;
}

export interface NetParams {
  /** Chance that a batch is split into several rx() pieces. */
  splitP: number;
  /** Chance that pieces already due are coalesced into one rx() call. */
  coalesceP: number;
  /** Chance that a delivered batch is duplicated onto another lane. */
  dupP: number;
}

/**
 * A core that counts its inputs: pollEvents() returns the same events until
 * the next input, so the host polls again only after it gave one.
 */
export class SimCore extends Core {
  inputs = 0;
  constructor(config: Partial<CoreConfig>, recorder?: Recorder) {
    super(config, { recorder });
  }
  override connect(...a: Parameters<Core['connect']>) { this.inputs++; return super.connect(...a); }
  override laneAccepted(...a: Parameters<Core['laneAccepted']>) { this.inputs++; return super.laneAccepted(...a); }
  override laneUp(...a: Parameters<Core['laneUp']>) { this.inputs++; return super.laneUp(...a); }
  override laneDown(...a: Parameters<Core['laneDown']>) { this.inputs++; return super.laneDown(...a); }
  override rx(...a: Parameters<Core['rx']>) { this.inputs++; return super.rx(...a); }
  override extDone(...a: Parameters<Core['extDone']>) { this.inputs++; return super.extDone(...a); }
  override accept(...a: Parameters<Core['accept']>) { this.inputs++; return super.accept(...a); }
  override reject(...a: Parameters<Core['reject']>) { this.inputs++; return super.reject(...a); }
  override redirect(...a: Parameters<Core['redirect']>) { this.inputs++; return super.redirect(...a); }
  override request(...a: Parameters<Core['request']>) { this.inputs++; return super.request(...a); }
  override send(...a: Parameters<Core['send']>) { this.inputs++; return super.send(...a); }
  override respond(...a: Parameters<Core['respond']>) { this.inputs++; return super.respond(...a); }
  override cancel(...a: Parameters<Core['cancel']>) { this.inputs++; return super.cancel(...a); }
  override close(...a: Parameters<Core['close']>) { this.inputs++; return super.close(...a); }
  override destroy(...a: Parameters<Core['destroy']>) { this.inputs++; return super.destroy(...a); }
  override timeout(...a: Parameters<Core['timeout']>) { this.inputs++; return super.timeout(...a); }
}

export class Host {
  inTurn = false;
  readonly ends = new Map<number, End>();
  alive = true;
  armed = -1;
  closing: End[] = [];
  /** Payloads we send outside the core, by ext id, until EXT_RELEASE. */
  readonly extOut = new Map<number, Buffer>();
  /** Payloads received outside the core, by the core's ext id. */
  readonly extIn = new Map<number, Buffer>();
  nextExt = 1;
  app: App | undefined;
  #spinAt = -1;
  #spins = 0;
  constructor(readonly name: string, readonly core: SimCore, readonly client: number, readonly recorder?: Recorder) {}

  /** Guards against a timer that fires again and again at one instant. */
  spin(now: number): boolean {
    if (now !== this.#spinAt) { this.#spinAt = now; this.#spins = 0; }
    return ++this.#spins > 200;
  }
}

type EndState = 'idle' | 'connecting' | 'open' | 'closing' | 'closed';

export class End {
  lane = 0;
  state: EndState = 'idle';
  /** Session handle the core attached this lane to (0: none). */
  session = 0;
  /** Bytes of an ext payload still to divert off this stream. */
  divert = 0;
  divertBuf: Buffer | undefined;
  divertAt = 0;
  divertExt = 0;
  constructor(public host: Host, readonly link: Link) {}
}

const SYN = 0, SYNACK = 1, DATA = 2, FIN = 3;
interface Unit { bytes: Buffer; link: Link; fromClient: boolean; session: number; key: string; delivered: boolean }
interface Item { kind: number; bytes: Buffer | undefined; unit: Unit | undefined; ready: number }

class Dir {
  q: Item[] = [];
  head = 0;
  scheduled = false;
  lastReady = 0;
  constructor(readonly from: End, readonly to: End) {}
  get empty(): boolean { return this.head >= this.q.length; }
  clear(): void { this.q = []; this.head = 0; }
}

export class Link {
  broken = false;
  readonly client: End;
  readonly server: End;
  readonly c2s: Dir;
  readonly s2c: Dir;
  /** Bytes per µs (0: unlimited). */
  bytesPerUs = 0;
  constructor(readonly id: number, clientHost: Host, readonly clientIdx: number, readonly latency: number, readonly jitter: number) {
    this.client = new End(clientHost, this);
    this.server = new End(clientHost, this); // host set when the server accepts
    this.c2s = new Dir(this.client, this.server);
    this.s2c = new Dir(this.server, this.client);
  }
  get done(): boolean {
    return (this.client.state === 'closed' || this.client.state === 'idle') &&
      (this.server.state === 'closed' || this.server.state === 'idle') && this.c2s.empty && this.s2c.empty;
  }
}

/** Whether a batch carries an ACK with F_RESEND (the peer lost a message mid-lane). */
function hasResend(b: Buffer, len: number): boolean {
  if (len < 8) return false;
  if (b[0] !== 0x30) return b[0] === 0x20 && (b[1] & 1) === 1;
  const end = b.readUInt32LE(4);
  for (let p = 8; p < end; p += b.readUInt32LE(p + 4)) if (b[p] === 0x20 && (b[p + 1] & 1)) return true;
  return false;
}

/** Frame types a duplicate may carry: messages, ACK, RECEIPT, KEEPALIVE. */
function dupable(b: Buffer, len: number): boolean {
  const ok = (t: number) => (t >= 0x10 && t <= 0x14) || (t >= 0x20 && t <= 0x22);
  if (len < 8) return false;
  if (b[0] !== 0x30) return ok(b[0]);
  const end = b.readUInt32LE(4);
  for (let p = 8; p < end;) {
    if (!ok(b[p])) return false;
    p += b.readUInt32LE(p + 4);
  }
  return true;
}

export class SimNet {
  readonly links: Link[] = [];
  /** The live server host; undefined while it is down. */
  server: Host | undefined;
  /** Per client: [from, until) intervals in µs. */
  readonly partitions = new Map<number, [number, number][]>();
  readonly stats = { batches: 0, bytes: 0, rxCalls: 0, kills: 0, dups: 0, refused: 0, held: 0, resendAcks: 0 };
  #nextLink = 1;
  #ev = new CoreEvent();
  #pools = new Map<string, Unit[]>();

  constructor(readonly clock: Clock, readonly rng: Rng, readonly params: NetParams, readonly ledger: Ledger) {}

  get now(): number {
    return this.clock.now;
  }

  // ---- driving a core ----

  /** After any input to h's core: events, transmit, closes, timer. */
  turn(h: Host): void {
    // Inputs given while handling events are picked up by the loop below.
    if (!h.alive || h.inTurn) return;
    h.inTurn = true;
    try {
      this.#turn(h);
    } finally {
      h.inTurn = false;
    }
  }

  #turn(h: Host): void {
    const core = h.core;
    for (let rounds = 0; ; rounds++) {
      if (rounds > 10000) { this.ledger.report('stuck', `${h.name}: events keep coming`); break; }
      const n = core.pollEvents();
      if (n === 0) break;
      const evs: SimEvent[] = [];
      for (let i = 0; i < n; i++) evs.push(this.#copy(core, i));
      const mark = core.inputs;
      for (const e of evs) {
        if (!h.alive) return;
        this.#onEvent(h, e);
      }
      if (core.inputs === mark) break;
    }
    for (let k = 0; ; k++) {
      const lane = core.pollTransmit(this.now);
      if (lane === 0) break;
      if (k > 100000) { this.ledger.report('stuck', `${h.name}: pollTransmit never idles`); break; }
      this.#write(h, lane, Buffer.from(core.txView()), core.txExt(), core.txExtLen());
    }
    const closing = h.closing;
    h.closing = [];
    for (const end of closing) this.#closeEnd(end);
    this.arm(h);
  }

  #copy(core: Core, i: number): SimEvent {
    const e = core.event(i, this.#ev);
    return {
      type: e.type, session: e.session, lane: e.lane, code: e.code, seq: e.seq, tag: e.tag,
      flags: e.flags, ext: e.ext, aux: e.aux, aux64: e.aux64,
      hdr: e.hdrPtr ? core.copy(e.hdrPtr, e.hdrLen) : undefined,
      data: e.dataPtr ? core.copy(e.dataPtr, e.dataLen) : undefined,
      hdrLen: e.hdrLen, dataLen: e.dataLen,
    };
  }

  /** One timer per core, at its next deadline. */
  arm(h: Host): void {
    if (!h.alive) return;
    const d = h.core.nextDeadline();
    if (d < 0) { h.armed = -1; return; }
    if (d === h.armed) return;
    h.armed = d;
    this.clock.at(d, () => {
      if (!h.alive || h.armed !== d) return;
      h.armed = -1;
      if (h.spin(this.now)) { this.ledger.report('stuck', `${h.name}: timer keeps firing at ${this.now}us`); return; }
      h.core.timeout(this.now);
      this.turn(h);
    });
  }

  /** Set to log every event (debugging a seed). */
  trace: ((line: string) => void) | undefined;

  #onEvent(h: Host, e: SimEvent): void {
    if (this.trace) {
      this.trace(`${(this.now / 1000).toFixed(3)} ${h.name} ${names[e.type]} s=${e.session.toString(16)} l=${e.lane.toString(16)} code=${e.code} seq=${e.seq} tag=${e.tag.toString(16)} fl=${e.flags} ext=${e.ext} len=${e.dataLen}`);
    }
    switch (e.type) {
      case EV.OPEN_LANE:
        this.#open(h, e.lane);
        break;
      case EV.CLOSE_LANE: {
        const end = h.ends.get(e.lane);
        if (!end) { this.ledger.report('stuck', `${h.name}: CLOSE_LANE for unknown lane ${e.lane}`); break; }
        end.session = 0;
        end.divert = 0;
        end.divertBuf = undefined;
        if (end.state === 'open' || end.state === 'connecting') h.closing.push(end);
        break;
      }
      case EV.SESSION_OPEN: case EV.SESSION_RESUMED: case EV.LANE_UP: {
        const end = h.ends.get(e.lane);
        if (end) end.session = e.session;
        break;
      }
      case EV.LANE_DOWN: {
        const end = h.ends.get(e.lane);
        if (end) end.session = 0;
        break;
      }
      case EV.EXT_RX: {
        const end = h.ends.get(e.lane);
        if (!end) { this.ledger.report('stuck', `${h.name}: EXT_RX for unknown lane ${e.lane}`); break; }
        end.divert = e.dataLen;
        end.divertAt = 0;
        end.divertExt = e.ext;
        end.divertBuf = (e.flags & 1) ? undefined : Buffer.allocUnsafe(e.dataLen);
        break;
      }
      case EV.EXT_RELEASE:
        if (e.flags & 1) h.extIn.delete(e.ext);
        else h.extOut.delete(e.ext);
        break;
      case EV.PROTOCOL_ERROR:
        this.ledger.report('stuck', `${h.name}: protocol error ${e.code} on lane ${e.lane} at ${this.now}us`);
        break;
    }
    h.app?.onEvent(h, e);
  }

  /** Feeds bytes that arrived on end's stream into its core. */
  feed(end: End, bytes: Buffer): void {
    const h = end.host;
    const core = h.core;
    let off = 0;
    let idle = 0;
    while (off < bytes.length) {
      if (!h.alive || end.state === 'closed') return;
      if (end.divert > 0) {
        const k = Math.min(end.divert, bytes.length - off);
        if (end.divertBuf) bytes.copy(end.divertBuf, end.divertAt, off, off + k);
        end.divertAt += k;
        end.divert -= k;
        off += k;
        if (end.divert === 0) {
          if (end.divertBuf) h.extIn.set(end.divertExt, end.divertBuf);
          end.divertBuf = undefined;
          const r = core.extDone(end.lane, this.now);
          if (r < 0) this.ledger.report('stuck', `${h.name}: extDone refused (${r})`);
          this.turn(h);
        }
        continue;
      }
      this.stats.rxCalls++;
      const r = core.rx(end.lane, bytes.subarray(off), this.now);
      if (r < 0) { this.ledger.report('stuck', `${h.name}: rx refused (${r}) on lane ${end.lane}`); return; }
      off += r;
      this.turn(h);
      if (r === 0 && end.divert === 0 && ++idle > 3) {
        this.ledger.report('stuck', `${h.name}: rx makes no progress on lane ${end.lane}`);
        return;
      }
      if (r > 0) idle = 0;
    }
  }

  // ---- links ----

  /** Client h's core asked for a connection for lane. */
  #open(h: Host, lane: number): void {
    const r = this.rng;
    const base = this.clientLatency(h.client);
    const fixed = this.linkLatency?.(this.#nextLink);
    const link = fixed !== undefined
      ? new Link(this.#nextLink++, h, h.client, fixed, 0)
      : this.fixedLatency
      ? new Link(this.#nextLink++, h, h.client, base, 0)
      : new Link(this.#nextLink++, h, h.client, Math.round(base * (0.5 + r.float() * 1.5)), r.int(0, base));
    link.bytesPerUs = this.clientBandwidth(h.client);
    link.client.lane = lane;
    link.client.state = 'connecting';
    h.ends.set(lane, link.client);
    this.links.push(link);
    this.#push(link.c2s, { kind: SYN, bytes: undefined, unit: undefined, ready: 0 });
  }

  /** Scripted splits for targeted tests: where to cut a batch, and the pause after each piece. */
  cutter: ((link: Link, fromClient: boolean, bytes: Buffer) => { at: number; gapUs: number }[] | undefined) | undefined;

  /** Base one-way latency (µs) of a client's links; set by the scenario. */
  clientLatency: (client: number) => number = () => 1000;
  /** Bandwidth of a client's links in bytes per µs (0: unlimited). */
  clientBandwidth: (client: number) => number = () => 0;
  /** Every link gets exactly clientLatency, no jitter (targeted tests). */
  fixedLatency = false;
  /** Targeted tests: the latency of link number n (1, 2, ... in opening order), no jitter. */
  linkLatency: ((n: number) => number | undefined) | undefined;
  /** Makes the server accept no more (restart) or come back. */
  newServer: (() => Host) | undefined;

  #delay(link: Link): number {
    return link.latency + (link.jitter ? this.rng.int(0, link.jitter) : 0);
  }

  #push(dir: Dir, item: Item): void {
    const link = dir.from.link;
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
    this.clock.at(dir.q[dir.head].ready, () => this.#deliver(dir));
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
    const link = dir.from.link;
    if (link.broken || dir.empty) return;
    const item = dir.q[dir.head];
    const held = this.partitionedUntil(link.clientIdx);
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
      const srv = this.server;
      if (!srv || !srv.alive) { this.#refuse(link, this.#delay(link)); return; }
      const lane = srv.core.laneAccepted(this.now);
      if (lane < 0) { this.ledger.report('stuck', `server refused a connection: ${lane}`); this.#refuse(link, 0); return; }
      link.server.host = srv;
      link.server.lane = lane;
      link.server.state = 'open';
      srv.ends.set(lane, link.server);
      this.turn(srv);
      this.#push(link.s2c, { kind: SYNACK, bytes: undefined, unit: undefined, ready: 0 });
    } else if (item.kind === SYNACK) {
      const end = link.client;
      if (end.state === 'connecting') {
        end.state = 'open';
        end.host.core.laneUp(end.lane, this.now);
        this.turn(end.host);
      }
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
      const to = dir.to;
      if (to.state === 'open' || to.state === 'closing') {
        this.feed(to, bytes);
        for (const u of units) this.#delivered(u);
      }
    } else if (item.kind === FIN) {
      const to = dir.to;
      if (to.state === 'open' || to.state === 'connecting') this.#down(to);
    }
    if (dir.empty) dir.clear();
    this.#schedule(dir);
  }

  /** The connection attempt for link fails after delay. */
  #refuse(link: Link, delay: number): void {
    this.stats.refused++;
    link.broken = true;
    link.c2s.clear();
    link.s2c.clear();
    const end = link.client;
    this.clock.after(delay, () => {
      if (end.state === 'connecting') this.#down(end);
    });
  }

  /** The transport tells end's core that its connection is gone. */
  #down(end: End): void {
    end.state = 'closed';
    end.session = 0;
    const h = end.host;
    h.ends.delete(end.lane);
    if (!h.alive) return;
    const r = h.core.laneDown(end.lane, E_TRANSPORT, this.now);
    if (r < 0) this.ledger.report('stuck', `${h.name}: laneDown refused (${r})`);
    this.turn(h);
  }

  /** The core closed end's lane: flush (already done this turn), FIN, and the socket's close. */
  #closeEnd(end: End): void {
    if (end.state !== 'open' && end.state !== 'connecting') return;
    end.state = 'closing';
    const link = end.link;
    this.#push(end === link.client ? link.c2s : link.s2c, { kind: FIN, bytes: undefined, unit: undefined, ready: 0 });
    this.clock.after(this.rng.int(0, 2000), () => {
      if (end.state === 'closing') this.#down(end);
    });
  }

  /** Writes one batch (and its ext payload) from h's core onto its lane. */
  #write(h: Host, lane: number, bytes: Buffer, ext: number, extLen: number): void {
    this.stats.batches++;
    const end = h.ends.get(lane);
    if (!end) { this.ledger.report('stuck', `${h.name}: transmit on unknown lane ${lane}`); return; }
    const txLen = bytes.length;
    if (hasResend(bytes, txLen)) this.stats.resendAcks++;
    if (ext) {
      const p = h.extOut.get(ext);
      if (!p || p.length !== extLen) {
        this.ledger.report('lost', `${h.name}: transmit names ext ${ext} (${extLen} bytes) that the host does not hold`);
        return;
      }
      bytes = Buffer.concat([bytes, p]);
    }
    if (end.state !== 'open') return; // closing: the socket is gone
    const link = end.link;
    if (link.broken) return;
    this.stats.bytes += bytes.length;
    let unit: Unit | undefined;
    if (end.session && this.params.dupP > 0 && dupable(bytes, txLen)) {
      unit = { bytes, link, fromClient: end === link.client, session: end.session, key: `${h.name}/${end.session}`, delivered: false };
    }
    const dir = end === link.client ? link.c2s : link.s2c;
    const r = this.rng;
    const cuts = this.cutter?.(link, end === link.client, bytes);
    if (cuts) {
      // Scripted: pieces ending at each cut, each gapUs after the previous.
      let at = 0;
      for (const c of cuts) {
        if (c.at <= at || c.at >= bytes.length) continue;
        this.#push(dir, { kind: DATA, bytes: bytes.subarray(at, c.at), unit: undefined, ready: 0 });
        dir.lastReady += c.gapUs;
        at = c.at;
      }
      this.#push(dir, { kind: DATA, bytes: bytes.subarray(at), unit, ready: 0 });
    } else if (bytes.length > 1 && r.chance(this.params.splitP)) {
      const cuts: number[] = [];
      const k = r.int(1, 3 + (bytes.length >> 14));
      for (let i = 0; i < k; i++) cuts.push(r.int(1, bytes.length - 1));
      cuts.sort((a, b) => a - b);
      let at = 0;
      for (const c of cuts) {
        if (c <= at) continue;
        this.#push(dir, { kind: DATA, bytes: bytes.subarray(at, c), unit: undefined, ready: 0 });
        at = c;
      }
      this.#push(dir, { kind: DATA, bytes: bytes.subarray(at), unit, ready: 0 });
    } else {
      this.#push(dir, { kind: DATA, bytes, unit, ready: 0 });
    }
  }

  // ---- faults ----

  /** A unit reached its receiver: keep it, and now and then deliver it again elsewhere. */
  #delivered(u: Unit): void {
    u.delivered = true;
    let pool = this.#pools.get(u.key);
    if (!pool) this.#pools.set(u.key, pool = []);
    pool.push(u);
    if (pool.length > 8) pool.shift();
    if (!this.rng.chance(this.params.dupP)) return;
    const pick = pool[this.rng.int(0, pool.length - 1)];
    this.clock.after(this.rng.int(0, 3000), () => this.#duplicate(pick));
  }

  #duplicate(u: Unit): void {
    const from = u.fromClient ? 'client' : 'server';
    const targets: Link[] = [];
    for (const l of this.links) {
      if (l === u.link || l.broken) continue;
      const src = from === 'client' ? l.client : l.server;
      const dst = from === 'client' ? l.server : l.client;
      if (src.state === 'open' && src.session === u.session && `${src.host.name}/${src.session}` === u.key && dst.state === 'open') targets.push(l);
    }
    if (targets.length === 0) return;
    const l = targets[this.rng.int(0, targets.length - 1)];
    this.stats.dups++;
    this.#push(from === 'client' ? l.c2s : l.s2c, { kind: DATA, bytes: u.bytes, unit: undefined, ready: 0 });
  }

  /**
   * Breaks one connection: in-flight bytes are gone, both ends hear of it,
   * or with halfOpen only one (the other writes into the void until its
   * keepalive finds the lane dead).
   */
  kill(link: Link, halfOpen = false, deaf?: 'client' | 'server'): void {
    if (link.broken) return;
    this.stats.kills++;
    link.broken = true;
    link.c2s.clear();
    link.s2c.clear();
    const side = deaf ?? (halfOpen ? (this.rng.chance(0.5) ? 'client' : 'server') : undefined);
    for (const end of [link.client, link.server]) {
      if (side && end === link[side]) continue;
      if (end.state !== 'open' && end.state !== 'connecting') continue;
      this.clock.after(this.rng.int(0, 20_000), () => {
        if (end.state === 'open' || end.state === 'connecting') this.#down(end);
      });
    }
  }

  /** Open links of client c (both ends up). */
  openLinks(c: number): Link[] {
    return this.links.filter((l) => l.clientIdx === c && !l.broken && l.client.state === 'open' && l.server.state === 'open');
  }

  /** The server loses everything; a fresh one listens again after downUs. */
  restart(downUs: number): void {
    const old = this.server;
    if (!old) return;
    old.alive = false;
    this.server = undefined;
    for (const l of this.links) {
      if (l.server.host === old && l.server.state !== 'idle') {
        l.server.state = 'closed';
        this.kill(l);
      }
    }
    this.clock.after(downUs, () => {
      this.server = this.newServer!();
    });
  }

  /** Drops links that are finished. */
  prune(): void {
    let j = 0;
    for (const l of this.links) if (!l.done) this.links[j++] = l;
    this.links.length = j;
  }

  /** Whether any bytes or connection events are still in flight. */
  busy(): string | undefined {
    for (const l of this.links) {
      if (!l.c2s.empty || !l.s2c.empty) return `link ${l.id} (client ${l.clientIdx}) has bytes in flight`;
    }
    return undefined;
  }
}

export { FLAG_EXT };
