// The application model on both sides. Clients issue a mix of requests
// (some with timeouts, some cancelled, some with receipts, some large enough
// to travel outside the core as ext payloads) and one-way messages; after a
// lost or rejected session they open a new one and carry on. The server
// handler answers each request, now or after a virtual delay, and honours
// CANCEL. Everything observable is written to the ledger.

import { FLAG_EXT, FLAG_RECEIPT, FLAG_APP_ERROR } from '../../host/core';
import { Clock } from './clock';
import { Rng } from './rng';
import { Inc, Ledger, Msg, pattern, patternOk } from './ledger';
import { EV, Host, SimEvent, SimNet, App } from './net';

export const E_BACKPRESSURE = 13;
const MAGIC_REQ = 0x51455252; // header tag of a client message
const MAGIC_RESP = 0x50534552;
export const PORTAL = 'sim://server:1/sim';

export interface OpSpec {
  /** When the application issues it (µs). */
  at: number;
  /** 'cycle': close the session gracefully, then open a new one; 'destroy': abruptly. */
  kind: 'req' | 'ow' | 'cycle' | 'destroy';
  /** Which of the client core's sessions issues it (default 0). */
  slot?: number;
  /** Data bytes (inline) or payload bytes (ext). */
  size: number;
  ext: boolean;
  receipt: boolean;
  /** Requests: per-request timeout, 0 none. */
  timeoutMs: number;
  /** Requests: cancel this long after sending; -1 never. */
  cancelAfterUs: number;
}

export interface ResponderSpec {
  /** Chance the handler answers in the same turn. */
  immediateP: number;
  /** Otherwise a delay from minDelayUs (default 0) up to maxDelayUs; slowP of them up to slowMaxUs. */
  minDelayUs?: number;
  maxDelayUs: number;
  slowP: number;
  slowMaxUs: number;
  extP: number;
  receiptP: number;
  errorP: number;
  maxSize: number;
  /** Chance a new session is rejected. */
  rejectP: number;
  /** Chance a new session is redirected (to the same portal). */
  redirectP?: number;
}

/** What the apps share: the clock, the network, the ledger, the phases. */
export interface World {
  clock: Clock;
  net: SimNet;
  ledger: Ledger;
  rng: Rng;
  /** After this, clients open no new sessions (µs). */
  reconnectUntil: number;
  stats: { sent: number; responses: number; timeouts: number; aborted: number; backpressure: number; drains: number;
    lost: number; rejected: number; closed: number; destroyed: number; resumed: number; receipts: number;
    cancelsSeen: number; ext: number; redirects: number; responded: number };
}

function header(m: { id: number; client: number; inc: number; order: number }): Buffer {
  const b = Buffer.allocUnsafe(16);
  b.writeUInt32LE(m.id, 0);
  b.writeUInt16LE(m.client, 4);
  b.writeUInt16LE(m.inc, 6);
  b.writeUInt32LE(m.order, 8);
  b.writeUInt32LE(MAGIC_REQ, 12);
  return b;
}

interface Queued { op: OpSpec; id: number }

export class ClientApp implements App {
  readonly incs: Inc[] = [];
  inc: Inc | undefined;
  readonly queue: Queued[] = [];
  /** The final close phase has begun. */
  closing = false;
  readonly #bySession = new Map<number, Inc>();

  constructor(readonly w: World, readonly idx: number, readonly host: Host, readonly lanes: number) {}

  get now(): number {
    return this.w.clock.now;
  }

  /** Whether session handle s is one of this app's. */
  owns(s: number): boolean {
    return this.#bySession.has(s);
  }

  connect(): void {
    const inc = new Inc(this.idx, this.incs.length);
    this.incs.push(inc);
    this.inc = inc;
    const s = this.host.core.connect(PORTAL, '/sim', Buffer.from(`client=${this.idx}`), this.lanes, this.now);
    if (s < 0) {
      this.w.ledger.report('stuck', `client ${this.idx}: connect refused (${s})`);
      inc.state = 'ended';
      inc.end = 'rejected';
      this.inc = undefined;
      return;
    }
    inc.session = s;
    this.#bySession.set(s, inc);
    this.w.net.turn(this.host);
  }

  /** The application issues op now. */
  issue(op: OpSpec): void {
    if (op.kind === 'cycle') {
      const inc = this.inc;
      if (inc && inc.state === 'open' && !inc.closeCalled && !this.closing) this.#close(inc);
      return;
    }
    if (op.kind === 'destroy') {
      const inc = this.inc;
      if (!inc || inc.state === 'ended' || this.closing) return;
      // destroy() ends the session at once and quietly: the application
      // itself fails what is pending.
      const r = this.host.core.destroy(inc.session, this.now);
      if (r < 0) this.w.ledger.report('stuck', `client ${this.idx}: destroy refused (${r})`);
      this.#end(inc, 'destroyed', 0);
      this.w.net.turn(this.host);
      return;
    }
    this.queue.push({ op, id: this.w.ledger.newId() });
    this.flush();
    this.w.net.turn(this.host);
  }

  /** Sends what is queued while the session takes it. Call turn() after. */
  flush(): void {
    const inc = this.inc;
    if (!inc || inc.state !== 'open' || inc.backpressured || inc.closeCalled) return;
    while (this.queue.length) {
      const r = this.#send(inc, this.queue[0]);
      if (r === -E_BACKPRESSURE) {
        inc.backpressured = true;
        this.w.stats.backpressure++;
        return;
      }
      if (r < 0) {
        this.w.ledger.report('stuck', `client ${this.idx}: send refused (${r}) on an open session`);
        return;
      }
      this.queue.shift();
    }
    if (this.closing) this.finish();
  }

  #send(inc: Inc, q: Queued): number {
    const { op, id } = q;
    const core = this.host.core;
    const hdr = header({ id, client: this.idx, inc: inc.n, order: inc.order });
    const flags = (op.receipt ? FLAG_RECEIPT : 0) | (op.ext ? FLAG_EXT : 0);
    const ext = op.ext ? this.host.nextExt++ : 0;
    const data = op.ext ? op.size : pattern(id, op.size);
    let seq: number;
    let tag = 0;
    let r: number;
    if (op.kind === 'req') {
      seq = core.sessionInfo(inc.session)![1];
      r = core.request(inc.session, hdr, data, flags, op.timeoutMs, ext, this.now);
      tag = r;
    } else {
      r = core.send(inc.session, hdr, data, flags, ext, this.now);
      seq = r;
    }
    if (r < 0) return r;
    if (op.ext) { this.host.extOut.set(ext, pattern(id, op.size)); this.w.stats.ext++; }
    const m: Msg = {
      id, client: this.idx, inc, order: inc.order++, kind: op.kind as 'req' | 'ow', seq, tag,
      receipt: op.receipt, ext: op.ext, dataLen: op.size, sentAt: this.now, timeoutMs: op.timeoutMs,
      delivered: 0, deliveredLane: 0, outcome: undefined, receipts: 0, serverCancelled: false,
    };
    this.w.ledger.sent(m);
    this.w.stats.sent++;
    inc.bySeq.set(seq, m);
    if (op.kind === 'req') {
      inc.byTag.set(tag, m);
      if (op.cancelAfterUs >= 0) this.w.clock.after(op.cancelAfterUs, () => this.cancel(m));
    }
    return 0;
  }

  /** The application gives up on request m (AbortSignal). */
  cancel(m: Msg): void {
    if (m.outcome !== undefined || m.inc.state === 'ended') return;
    const r = this.host.core.cancel(m.inc.session, m.tag, this.now);
    if (r === 0) {
      this.w.ledger.outcome(m, 'aborted', this.now);
      this.w.stats.aborted++;
    } else {
      this.w.ledger.report('lost', `client ${this.idx}: cancel of pending request id ${m.id} refused (${r})`);
    }
    this.w.net.turn(this.host);
  }

  #close(inc: Inc): void {
    inc.closeCalled = true;
    const r = this.host.core.close(inc.session, this.now);
    if (r < 0) this.w.ledger.report('stuck', `client ${this.idx}: close refused (${r})`);
    this.w.net.turn(this.host);
  }

  /** Final phase: close once everything queued is sent and the session is OPEN. */
  finish(): void {
    this.closing = true;
    const inc = this.inc;
    if (!inc || inc.closeCalled || inc.state === 'ended') return;
    if (this.queue.length || inc.state !== 'open') return; // flush() or SESSION_OPEN calls again
    const state = this.host.core.sessionInfo(inc.session)![0];
    if (state !== 2) {
      // Resuming: close when a lane is back (a close now would drop what is unacked).
      this.w.clock.after(20_000, () => this.finish());
      return;
    }
    this.#close(inc);
  }

  #end(inc: Inc, o: 'lost' | 'rejected' | 'closed' | 'destroyed', code: number): void {
    if (inc.state === 'ended') {
      this.w.ledger.report('duplicated', `client ${this.idx} inc ${inc.n}: session ended twice (${inc.end}, then ${o})`);
      return;
    }
    inc.state = 'ended';
    inc.end = o;
    inc.endCode = code;
    this.w.stats[o]++;
    for (const m of [...inc.byTag.values()]) this.w.ledger.outcome(m, o, this.now);
    if (this.inc !== inc) return;
    this.inc = undefined;
    if (!this.closing && this.now < this.w.reconnectUntil) {
      this.w.clock.after(this.w.rng.int(1000, 100_000), () => {
        if (!this.inc && !this.closing) this.connect();
      });
    }
  }

  onEvent(h: Host, e: SimEvent): void {
    const inc = this.#bySession.get(e.session);
    const ledger = this.w.ledger;
    switch (e.type) {
      case EV.SESSION_OPEN:
        if (!inc) break;
        inc.state = 'open';
        this.flush();
        if (this.closing) this.finish();
        break;
      case EV.SESSION_RESUMED:
        this.w.stats.resumed++;
        break;
      case EV.SESSION_REJECTED:
        if (inc) this.#end(inc, 'rejected', e.code);
        break;
      case EV.SESSION_LOST:
        if (inc) this.#end(inc, 'lost', e.code);
        break;
      case EV.SESSION_CLOSED:
        if (inc) this.#end(inc, 'closed', e.code);
        break;
      case EV.RESPONSE: {
        const m = inc?.byTag.get(e.tag);
        const payload = (e.flags & FLAG_EXT) ? h.extIn.get(e.ext) : (e.data ?? Buffer.alloc(0));
        if (e.flags & FLAG_EXT) h.extIn.delete(e.ext);
        if (!m) {
          ledger.report('duplicated', `client ${this.idx}: response for tag ${e.tag} with no pending request at ${this.now}us`);
          break;
        }
        const hdr = e.hdr;
        if (!hdr || hdr.length !== 12 || hdr.readUInt32LE(0) !== m.id || hdr.readUInt32LE(4) !== MAGIC_RESP) {
          ledger.report('lost', `client ${this.idx}: response to id ${m.id} carries another header`);
        } else if (!payload || payload.length !== hdr.readUInt32LE(8) || !patternOk(m.id ^ 0x40000000, payload)) {
          ledger.report('lost', `client ${this.idx}: response to id ${m.id} is corrupt`);
        }
        ledger.outcome(m, 'response', this.now);
        this.w.stats.responses++;
        break;
      }
      case EV.REQUEST_FAILED: {
        const m = inc?.byTag.get(e.tag);
        if (!m) {
          ledger.report('duplicated', `client ${this.idx}: failure ${e.code} for tag ${e.tag} with no pending request`);
          break;
        }
        if (e.code !== 9 || this.now < m.sentAt + m.timeoutMs * 1000 || m.timeoutMs === 0) {
          ledger.report('lost', `client ${this.idx}: request id ${m.id} failed with ${e.code} at ${this.now}us (sent ${m.sentAt}, timeout ${m.timeoutMs}ms)`);
        }
        ledger.outcome(m, 'timeout', this.now);
        this.w.stats.timeouts++;
        break;
      }
      case EV.RECEIPT: {
        const m = inc?.bySeq.get(e.seq);
        if (!m || !m.receipt) {
          ledger.report('lost', `client ${this.idx}: receipt for seq ${e.seq} that asked for none`);
          break;
        }
        m.receipts++;
        this.w.stats.receipts++;
        if (m.receipts > 1) ledger.report('duplicated', `client ${this.idx}: receipt for id ${m.id} twice`);
        if (m.delivered === 0) ledger.report('lost', `client ${this.idx}: receipt for id ${m.id} before the server got it`);
        break;
      }
      case EV.DRAIN:
        this.w.stats.drains++;
        if (inc) {
          inc.backpressured = false;
          this.flush();
        }
        break;
      case EV.REQUEST: case EV.MESSAGE: case EV.CANCEL:
        ledger.report('stuck', `client ${this.idx}: unexpected event ${e.type}`);
        break;
    }
  }
}

/** Routes a client core's events to the app that owns the session. */
export class Router implements App {
  readonly apps: ClientApp[] = [];
  onEvent(h: Host, e: SimEvent): void {
    for (const a of this.apps) {
      if (a.owns(e.session)) {
        a.onEvent(h, e);
        return;
      }
    }
  }
}

interface Handler { session: number; tag: number; id: number; cancelled: boolean; done: boolean }

export class ServerApp implements App {
  readonly #handlers = new Map<string, Handler>();
  readonly #blocked = new Map<number, Handler[]>();

  #keys = 0;

  constructor(readonly w: World, readonly host: Host, readonly spec: ResponderSpec) {}

  get now(): number {
    return this.w.clock.now;
  }

  /** Session keys: distinct and deterministic (drawn apart from the world's rng, so they move no scenario). */
  #nextKey(): Buffer {
    const k = Buffer.alloc(16);
    k.write(`k:${this.host.name}`.slice(0, 12));
    k.writeUInt32LE(++this.#keys, 12);
    return k;
  }

  onEvent(h: Host, e: SimEvent): void {
    const core = h.core;
    const ledger = this.w.ledger;
    switch (e.type) {
      case EV.SESSION_REQUEST:
        if (this.w.rng.chance(this.spec.rejectP)) {
          core.reject(e.lane, 7, 'busy', this.now);
        } else if (this.w.rng.chance(this.spec.redirectP ?? 0)) {
          this.w.stats.redirects++;
          core.redirect(e.lane, [PORTAL], this.now);
        } else {
          core.accept(e.lane, this.#nextKey(), [], Buffer.from('srv=1'), this.now);
        }
        break;
      case EV.REQUEST: case EV.MESSAGE: {
        const kind = e.type === EV.REQUEST ? 'req' : 'ow';
        const hdr = e.hdr;
        const payload = (e.flags & FLAG_EXT) ? h.extIn.get(e.ext) : (e.data ?? Buffer.alloc(0));
        if (e.flags & FLAG_EXT) h.extIn.delete(e.ext);
        if (!hdr || hdr.length !== 16 || hdr.readUInt32LE(12) !== MAGIC_REQ) {
          ledger.report('lost', `server: ${kind} with a foreign header`);
          break;
        }
        const id = hdr.readUInt32LE(0);
        const m = ledger.delivered(id, hdr.readUInt16LE(4), hdr.readUInt16LE(6), hdr.readUInt32LE(8), kind, e.lane, this.now);
        if (m && (!payload || payload.length !== m.dataLen || !patternOk(id, payload))) {
          ledger.report('lost', `server: ${kind} id ${id} arrived corrupt`);
        }
        if (kind === 'req') {
          const hd: Handler = { session: e.session, tag: e.tag, id, cancelled: false, done: false };
          this.#handlers.set(`${e.session}:${e.tag}`, hd);
          this.#schedule(hd);
        }
        break;
      }
      case EV.CANCEL: {
        const key = `${e.session}:${e.tag}`;
        const hd = this.#handlers.get(key);
        this.w.stats.cancelsSeen++;
        if (!hd) {
          ledger.report('duplicated', `server: CANCEL for tag ${e.tag} that the handler does not hold`);
          break;
        }
        hd.cancelled = true;
        this.#handlers.delete(key);
        const m = ledger.msgs.get(hd.id);
        if (m) m.serverCancelled = true;
        break;
      }
      case EV.SESSION_LOST:
        for (const [k, hd] of this.#handlers) if (hd.session === e.session) { hd.done = true; this.#handlers.delete(k); }
        this.#blocked.delete(e.session);
        break;
      case EV.DRAIN: {
        const list = this.#blocked.get(e.session);
        this.#blocked.delete(e.session);
        if (list) for (const hd of list) this.#respond(hd);
        break;
      }
      case EV.RESPONSE: case EV.REQUEST_FAILED:
        ledger.report('stuck', `server: unexpected event ${e.type}`);
        break;
    }
  }

  #schedule(hd: Handler): void {
    const r = this.w.rng;
    const s = this.spec;
    if (r.chance(s.immediateP)) { this.#respond(hd); return; }
    const min = s.minDelayUs ?? 0;
    const d = r.chance(s.slowP) ? r.int(min, s.slowMaxUs) : r.int(min, s.maxDelayUs);
    this.w.clock.after(d, () => {
      this.#respond(hd);
      this.w.net.turn(this.host);
    });
  }

  /** The handler answers. Call turn() after (when not inside one). */
  #respond(hd: Handler): void {
    if (!this.host.alive || hd.cancelled || hd.done) return;
    const r = this.w.rng;
    const s = this.spec;
    const ext = r.chance(s.extP);
    const size = ext ? r.int(8193, 70000) : r.int(0, s.maxSize);
    const hdr = Buffer.allocUnsafe(12);
    hdr.writeUInt32LE(hd.id, 0);
    hdr.writeUInt32LE(MAGIC_RESP, 4);
    hdr.writeUInt32LE(size, 8);
    const body = pattern(hd.id ^ 0x40000000, size);
    const flags = (ext ? FLAG_EXT : 0) | (r.chance(s.receiptP) ? FLAG_RECEIPT : 0) | (r.chance(s.errorP) ? FLAG_APP_ERROR : 0);
    const extId = ext ? this.host.nextExt++ : 0;
    const res = this.host.core.respond(hd.session, hd.tag, hdr, ext ? size : body, flags, extId, this.now);
    if (res === 0) {
      this.w.stats.responded++;
      hd.done = true;
      this.#handlers.delete(`${hd.session}:${hd.tag}`);
      if (ext) this.host.extOut.set(extId, body);
    } else if (res === -E_BACKPRESSURE) {
      let list = this.#blocked.get(hd.session);
      if (!list) this.#blocked.set(hd.session, list = []);
      list.push(hd);
    } else {
      // Cancelled (its CANCEL event is on its way) or the session is gone.
      hd.done = true;
    }
  }

  /** Handlers still waiting to answer on a live session. */
  pending(): number {
    let n = 0;
    for (const hd of this.#handlers.values()) if (!hd.done && !hd.cancelled) n++;
    return n;
  }
}
