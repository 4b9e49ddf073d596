// The applications on both sides, written against nexio's public API: real
// Contexts, Sessions and a server context (serveContext) on virtual time.
//
// A client host is one Context (a client process) carrying one or two
// client applications, each with its own session. Clients issue requests
// (some with timeouts, some aborted through an AbortSignal, some asking for
// a receipt, some large enough to travel as ext payloads) and one-way
// messages, through the promise API or the hot path (tryRequest/trySend,
// waiting for 'drain'); after a lost or rejected session they open a new
// one and carry on. The server's handler answers each request now or after
// a virtual delay (or throws), and its onSession accepts, rejects or
// redirects, now or later. With views, every lent message is released, now
// or a little later. Everything observable is written to the ledger, and
// every promise or callback the application starts is an Op there.

import { connect, Context, Session, Reply } from '../../host/index';
import { serveContext, closeContext } from '../../host/server';
import type { SessionDecision, SessionRequestInfo, AdmissionOptions } from '../../host/context';
import type { IncomingRequest } from '../../host/session';
import type { CoreConfig } from '../../host/core';
import { Op as CoreOp } from '../../host/core';
import { Recorder } from '../../host/record';
import { Clock, ContextClock, SERVER } from './clock';
import { Rng } from './rng';
import { End, HotCallback, Inc, Ledger, Msg, Outcome, pattern, patternOk } from './ledger';
import { SimNet } from './net';

const MAGIC_REQ = 0x51455252; // header tag of a client message
const MAGIC_RESP = 0x50534552;
export const PORTAL = 'sim://server/sim';
/** connect()'s bound on establishing a session (ms). */
const CONNECT_MS = 3000;
/** Graceful close bound (ms): a close that runs into it is a violation (the network is calm by then). */
export const CLOSE_MS = 9000;

export interface OpSpec {
  /** When the application issues it (µs). */
  at: number;
  /** 'cycle': close the session gracefully, then open a new one; 'destroy': abruptly. */
  kind: 'req' | 'ow' | 'cycle' | 'destroy';
  /** Which of the client context's sessions issues it (default 0). */
  slot?: number;
  /** Data bytes (above ~8 KiB the session sends them as an ext payload). */
  size: number;
  receipt: boolean;
  /** Requests: per-request timeout, 0 none. */
  timeoutMs: number;
  /** Requests: abort this long after sending; -1 never. */
  cancelAfterUs: number;
  /** tryRequest()/trySend() instead of the promise API. */
  hot?: boolean;
}

export interface ResponderSpec {
  /** Chance the handler answers in the same turn. */
  immediateP: number;
  /** Otherwise a delay from minDelayUs (default 0) up to maxDelayUs; slowP of them up to slowMaxUs. */
  minDelayUs?: number;
  maxDelayUs: number;
  slowP: number;
  slowMaxUs: number;
  /** Chance a response is large (an ext payload). */
  extP: number;
  /** Chance the handler throws (the requester gets a RemoteError). */
  errorP: number;
  maxSize: number;
  /** Chance a new session is rejected. */
  rejectP: number;
  /** Chance a new session is redirected (to the same portal). */
  redirectP?: number;
  /** Chance onSession answers later (a Promise). */
  laterP?: number;
  /** With views: lent messages are released up to this long after they arrive (µs). */
  releaseMaxUs?: number;
}

/** The pre-shared key of the sim's clients, and the one a wrong-key client has instead. */
export const SIM_IDENTITY = 'sim-client';
const SIM_KEY = Buffer.from('sim pre-shared key, 32 bytes....');
const WRONG_KEY = Buffer.from('not the sim key, but 32 bytes...');

export interface ServerSpec {
  config: Partial<CoreConfig>;
  /** Every lane must prove SIM_KEY. */
  psk?: boolean;
  views?: boolean;
  admission?: AdmissionOptions;
}

export interface ClientSpec {
  config: Partial<CoreConfig>;
  lanes: number;
  /** Base one-way latency of its links (µs); each link varies around it. */
  latencyUs: number;
  /** Bandwidth of its links, bytes per µs (0 or absent: unlimited). */
  bytesPerUs?: number;
  startAt: number;
  ops: OpSpec[];
  /** Sessions the client context carries at once, each its own application (default 1). */
  sessions?: number;
  views?: boolean;
  admission?: AdmissionOptions;
  /** With views: replies are released up to this long after they arrive (µs). */
  releaseMaxUs?: number;
  /** Its sessions prove SIM_KEY ('right') or another key ('wrong': every connect must fail with NEXIO_ERR_AUTH). */
  psk?: 'right' | 'wrong';
}

export interface Stats {
  sent: number; responses: number; remoteErrors: number; timeouts: number; aborted: number; refused: number;
  backpressure: number; drains: number; lost: number; rejected: number; closed: number; peerClosed: number;
  destroyed: number; ctxClosed: number; gone: number; resumed: number; receipts: number; cancelsSeen: number;
  ext: number; hot: number; redirects: number; rejects: number; responded: number; views: number;
  restarts: number; serverCloses: number; ctxCloses: number; authRefused: number;
}

export function newStats(): Stats {
  return {
    sent: 0, responses: 0, remoteErrors: 0, timeouts: 0, aborted: 0, refused: 0, backpressure: 0, drains: 0,
    lost: 0, rejected: 0, closed: 0, peerClosed: 0, destroyed: 0, ctxClosed: 0, gone: 0, resumed: 0, receipts: 0,
    cancelsSeen: 0, ext: 0, hot: 0, redirects: 0, rejects: 0, responded: 0, views: 0, restarts: 0, serverCloses: 0, ctxCloses: 0, authRefused: 0,
  };
}

/** A context the scenario made: checked for leaks at the end. */
export interface CtxEntry { name: string; ctx: Context; clock: ContextClock }

/** What the apps share: the clock, the network, the ledger, the phases. */
export interface World {
  clock: Clock;
  net: SimNet;
  ledger: Ledger;
  rng: Rng;
  /** Seeds for the cores, drawn apart from the world's rng. */
  seeds: Rng;
  /** After this, clients open no new sessions (µs). */
  reconnectUntil: number;
  stats: Stats;
  /** When the server last began a graceful close (µs; -1 never). */
  serverClosedAt: number;
  /** Record every context's core (a failing seed, the committed replays). */
  record: boolean;
  recordings: Map<string, Recorder>;
  contexts: CtxEntry[];
}

/**
 * A recorder that also tells the sim when the core takes a message (the
 * order a session delivers in), and records only when asked to.
 */
export class SimRecorder extends Recorder {
  constructor(readonly keep: boolean, readonly onInput: (op: number, args: number[], bytes: Uint8Array | undefined, r: number) => void) {
    super();
  }
  override begin(words: Uint32Array, debug: boolean): void { if (this.keep) super.begin(words, debug); }
  override input(op: CoreOp, args: number[], bytes: Uint8Array | undefined, extra: Uint8Array | undefined, r: number): void {
    this.onInput(op, args, bytes, r);
    if (this.keep) super.input(op, args, bytes, extra, r);
  }
  override events(...a: Parameters<Recorder['events']>): void { if (this.keep) super.events(...a); }
  override transmit(...a: Parameters<Recorder['transmit']>): void { if (this.keep) super.transmit(...a); }
  override deadline(d: number): void { if (this.keep) super.deadline(d); }
}

function header(id: number, client: number, inc: number): Buffer {
  const b = Buffer.allocUnsafe(16);
  b.writeUInt32LE(id, 0);
  b.writeUInt16LE(client, 4);
  b.writeUInt16LE(inc, 6);
  b.writeUInt32LE(0, 8);
  b.writeUInt32LE(MAGIC_REQ, 12);
  return b;
}

function codeOf(e: unknown): string {
  return (e as { code?: string })?.code ?? String(e);
}

/** Makes a context on the world's clock, recorded when asked, its submissions reported to the ledger. */
function makeContext(w: World, name: string, actor: number, o: { config: Partial<CoreConfig>; views?: boolean; admission?: AdmissionOptions }): CtxEntry {
  const rec = new SimRecorder(w.record, (op, args, bytes, r) => {
    if ((op !== CoreOp.REQUEST && op !== CoreOp.SEND) || !bytes || bytes.length !== 16) {
      if (op === CoreOp.RESPOND && r === 0) w.stats.responded++;
      return;
    }
    const b = Buffer.from(bytes.buffer, bytes.byteOffset, 16);
    if (b.readUInt32LE(12) !== MAGIC_REQ) return;
    if (op === CoreOp.REQUEST ? r > 0 : r >= 0) w.ledger.submitted(b.readUInt32LE(0), args[0], op === CoreOp.REQUEST ? 'req' : 'ow', r);
  });
  if (w.record) w.recordings.set(name, rec);
  const clock = new ContextClock(w.clock, actor);
  // Session keys pinned (a key only has to match its session, whose id
  // comes from the seeded core): a seed's recordings are the same every run.
  const ctx = new Context({
    clock, core: { ...o.config, seed: w.seeds.u32() || 1 }, views: o.views, recorder: rec, admission: o.admission,
    random: (b) => { b.fill(0x5a); },
  });
  const e: CtxEntry = { name, ctx, clock };
  w.contexts.push(e);
  return e;
}

interface Queued { op: OpSpec; id: number }

/** A client process: one Context at a time (a new one after Context.close()), one or two apps on it. */
export class ClientHost {
  ctx!: Context;
  entry!: CtxEntry;
  #gen = 0;
  readonly apps: ClientApp[] = [];
  constructor(readonly w: World, readonly idx: number, readonly spec: ClientSpec) {
    this.#newContext();
  }

  #newContext(): void {
    const name = this.#gen ? `client${this.idx}.${this.#gen}` : `client${this.idx}`;
    this.#gen++;
    this.entry = makeContext(this.w, name, this.idx, this.spec);
    this.ctx = this.entry.ctx;
  }

  /** The process closes its context (every session on it ends) and starts over with a new one. */
  closeContext(): void {
    const w = this.w;
    const old = this.ctx;
    w.stats.ctxCloses++;
    const op = w.ledger.track(`client host ${this.idx}: Context.close()`, w.clock.now);
    old.close().then(() => w.ledger.settle(op, w.clock.now), (e) => {
      w.ledger.settle(op, w.clock.now);
      w.ledger.report('stuck', `client host ${this.idx}: Context.close() rejected: ${codeOf(e)}`);
    });
    this.#newContext();
  }
}

export class ClientApp {
  readonly incs: Inc[] = [];
  inc: Inc | undefined;
  /** Ops issued while there is no open session (or blocked on the hot path), in order. */
  readonly queue: Queued[] = [];
  /** The final close phase has begun. */
  closing = false;

  constructor(readonly w: World, readonly idx: number, readonly host: ClientHost, readonly lanes: number) {}

  get now(): number {
    return this.w.clock.now;
  }

  get #ledger(): Ledger {
    return this.w.ledger;
  }

  connect(): void {
    if (this.inc && this.inc.state !== 'ended') return;
    const inc = new Inc(this.idx, this.incs.length);
    this.incs.push(inc);
    this.inc = inc;
    const ctx = this.host.ctx;
    inc.ctx = ctx;
    const op = this.#ledger.track(`client ${this.idx} inc ${inc.n}: connect()`, this.now);
    const psk = this.host.spec.psk;
    connect(PORTAL, {
      context: ctx, lanes: this.lanes, timeout: CONNECT_MS, attrs: Buffer.from(`client=${this.idx}`),
      ...(psk ? { psk: { identity: SIM_IDENTITY, key: psk === 'right' ? SIM_KEY : WRONG_KEY } } : {}),
    }).then((s) => {
      this.#ledger.settle(op, this.now);
      if (psk === 'wrong') this.#ledger.report('leaked', `client ${this.idx} inc ${inc.n}: a session opened with a wrong pre-shared key`);
      this.#opened(inc, s);
    }, (e) => {
      this.#ledger.settle(op, this.now);
      // Never open: nothing was sent on it.
      const code = codeOf(e);
      let end: End;
      if (ctx.failed && e === ctx.failed) end = 'ctx-closed';
      else if (code === 'NEXIO_ERR_REJECTED' || code === 'NEXIO_ERR_LIMIT' || code === 'NEXIO_ERR_REDIRECT_LOOP') end = 'rejected';
      else if (code === 'NEXIO_ERR_AUTH' && psk === 'wrong') { end = 'rejected'; this.w.stats.authRefused++; }
      // The server is not there (down, restarting: refused at once) or not in time.
      else if (code === 'NEXIO_ERR_TIMEOUT' || code === 'NEXIO_ERR_SESSION_LOST' || code === 'NEXIO_ERR_TRANSPORT') end = 'lost';
      else {
        this.#ledger.report('stuck', `client ${this.idx} inc ${inc.n}: connect() failed with ${code}: ${(e as Error)?.message}`);
        end = 'gone';
      }
      this.#ended(inc, end, e as Error);
    });
  }

  #opened(inc: Inc, s: Session): void {
    inc.session = s;
    inc.handle = s.handle;
    if (s.state === 'closed') {
      // Ended between its open and this continuation: nothing was sent on it.
      this.#ended(inc, 'gone', undefined);
      return;
    }
    inc.state = 'open';
    inc.openedAt = this.now;
    s.on('close', (err?: Error) => this.#closed(inc, err));
    s.on('drain', () => {
      this.w.stats.drains++;
      if (!inc.blocked) return;
      inc.blocked = false;
      this.flush();
    });
    s.on('resumed', () => { this.w.stats.resumed++; });
    this.flush();
  }

  /** The application issues op now. */
  issue(op: OpSpec): void {
    const inc = this.inc;
    if (op.kind === 'cycle') {
      if (inc?.state === 'open' && !inc.closeCalled && !this.closing) this.#close(inc);
      return;
    }
    if (op.kind === 'destroy') {
      // Also while a close() is under way: it must still settle.
      if (inc?.state !== 'open' || this.closing) return;
      inc.destroyCalled = true;
      const tr = this.#ledger.track(`client ${this.idx} inc ${inc.n}: destroy()`, this.now);
      inc.session!.destroy().then(() => this.#ledger.settle(tr, this.now), (e) => {
        this.#ledger.settle(tr, this.now);
        this.#ledger.report('stuck', `client ${this.idx}: destroy() rejected: ${codeOf(e)}`);
      });
      return;
    }
    this.queue.push({ op, id: this.#ledger.newId() });
    this.flush();
  }

  /** Hands what is queued to the open session (the hot path stops without credit, until 'drain'). */
  flush(): void {
    const inc = this.inc;
    if (!inc || inc.state !== 'open' || inc.closeCalled || inc.blocked) return;
    while (this.queue.length) {
      if (!this.#issue(inc, inc.session!, this.queue[0])) {
        inc.blocked = true;
        this.w.stats.backpressure++;
        return;
      }
      this.queue.shift();
    }
    if (this.closing) this.#finishNow(inc);
  }

  /** One op into the session: false only when the hot path has no credit (nothing was sent). */
  #issue(inc: Inc, s: Session, q: Queued): boolean {
    const { op, id } = q;
    const w = this.w;
    const m: Msg = {
      id, client: this.idx, inc, kind: op.kind as 'req' | 'ow', hot: !!op.hot, receipt: op.receipt && !op.hot,
      dataLen: op.size, calledAt: this.now, timeoutMs: op.timeoutMs, submitted: false, order: -1, seq: -1, tag: 0,
      delivered: 0, deliveredLink: 0, outcome: undefined, receipts: 0, aborted: false, serverCancelled: false, op: undefined,
    };
    this.#ledger.add(m);
    const hdr = header(id, this.idx, inc.n);
    const data = pattern(id, op.size);
    if (op.kind === 'req') {
      if (op.hot) {
        let tag: number;
        try {
          tag = s.tryRequest(hdr, data, this.#hotDone(inc), op.timeoutMs);
        } catch (e) {
          this.#refused(m, e);
          return true;
        }
        if (tag === 0) { this.#ledger.drop(m); return false; }
        m.op = this.#ledger.track(`client ${this.idx}: tryRequest id ${id} callback`, this.now);
        inc.hot.set(tag, m);
        w.stats.hot++;
      } else {
        const ac = op.cancelAfterUs >= 0 ? new AbortController() : undefined;
        const receipt = op.receipt ? () => this.#receipt(m) : undefined;
        m.op = this.#ledger.track(`client ${this.idx}: request id ${id}`, this.now);
        s.request(hdr, data, { timeout: op.timeoutMs, signal: ac?.signal, receipt }).then((r) => {
          this.#ledger.settle(m.op, this.now);
          this.#reply(m, r);
        }, (e) => {
          this.#ledger.settle(m.op, this.now);
          this.#failed(m, e);
        });
        if (ac) {
          w.clock.after(op.cancelAfterUs, () => {
            if (m.outcome !== undefined) return;
            m.aborted = true;
            ac.abort();
          });
        }
      }
    } else if (op.hot) {
      let ok: boolean;
      try {
        ok = s.trySend(hdr, data);
      } catch (e) {
        this.#refused(m, e);
        return true;
      }
      if (!ok) { this.#ledger.drop(m); return false; }
      w.stats.hot++;
    } else {
      m.op = this.#ledger.track(`client ${this.idx}: send id ${id}`, this.now);
      s.send(hdr, data, { receipt: op.receipt }).then(() => {
        this.#ledger.settle(m.op, this.now);
        if (op.receipt) this.#receipt(m);
      }, (e) => {
        this.#ledger.settle(m.op, this.now);
        this.#sendFailed(m, e);
      });
    }
    w.stats.sent++;
    if (op.size + 16 > 8192) w.stats.ext++;
    return true;
  }

  /**
   * Whether the session may refuse a send as closed: it ended or is
   * closing, or the server began a graceful close after it opened (the core
   * refuses sends while it drains the peer's CLOSE, before the session's
   * 'close' event).
   */
  #mayRefuse(inc: Inc, e: unknown): boolean {
    if (inc.state === 'ended' || inc.closeCalled || inc.session?.state.startsWith('clos')) return true;
    return codeOf(e) === 'NEXIO_ERR_CLOSED' && this.w.serverClosedAt >= inc.openedAt;
  }

  /** A hot-path call threw (the session is closing or closed): nothing was sent. */
  #refused(m: Msg, e: unknown): void {
    if (!this.#mayRefuse(m.inc, e)) {
      this.#ledger.report('stuck', `client ${this.idx}: ${m.kind} id ${m.id} refused on a live session: ${codeOf(e)}`);
    }
    this.#ledger.outcome(m, 'refused', this.now);
    this.w.stats.refused++;
  }

  /** The one tryRequest callback of a session (made once per incarnation). */
  #hotDone(inc: Inc): HotCallback {
    return inc.hotDone ??= (err, hdr, data, tag) => {
      const m = inc.hot.get(tag);
      if (!m) {
        this.#ledger.report('unsettled', `client ${this.idx}: tryRequest callback for tag ${tag} that is not in flight`);
        return;
      }
      this.#ledger.settle(m.op, this.now);
      if (m.op!.n > 1) return;
      // A session's end calls this before its 'close' event: classify after it.
      if (err) queueMicrotask(() => this.#failed(m, err));
      else this.#check(m, hdr, data, undefined);
    };
  }

  #reply(m: Msg, r: Reply): void {
    this.#check(m, r.header, r.data, r.release);
  }

  /** A response: the right one, intact; with views, released now or a little later. */
  #check(m: Msg, hdr: Buffer, data: Buffer, release: (() => void) | undefined): void {
    const ledger = this.#ledger;
    if (hdr.length !== 12 || hdr.readUInt32LE(0) !== m.id || hdr.readUInt32LE(4) !== MAGIC_RESP) {
      ledger.report('lost', `client ${this.idx}: response to id ${m.id} carries another header`);
    } else if (data.length !== hdr.readUInt32LE(8) || !patternOk(m.id ^ 0x40000000, data)) {
      ledger.report('lost', `client ${this.idx}: response to id ${m.id} is corrupt`);
    }
    if (m.receipt && m.receipts === 0) ledger.report('lost', `client ${this.idx}: request id ${m.id} answered before its receipt callback ran`);
    ledger.outcome(m, 'response', this.now);
    this.w.stats.responses++;
    if (m.inc.ctx!.views || release) {
      if (!release && !m.hot) ledger.report('leaked', `client ${this.idx}: a reply under views without release()`);
      if (release) {
        this.w.stats.views++;
        const max = this.host.spec.releaseMaxUs ?? 0;
        if (max > 0 && this.w.rng.chance(0.5)) this.w.clock.after(this.w.rng.int(0, max), release);
        else release();
      }
    }
  }

  #receipt(m: Msg): void {
    m.receipts++;
    this.w.stats.receipts++;
    if (m.receipts > 1) this.#ledger.report('duplicated', `client ${this.idx}: receipt for id ${m.id} twice`);
    if (m.delivered === 0) this.#ledger.report('lost', `client ${this.idx}: receipt for id ${m.id} before the server got it`);
  }

  /** A request failed: its own timeout or abort, a handler error, or its session's end. */
  #failed(m: Msg, e: unknown): void {
    const ledger = this.#ledger;
    const inc = m.inc;
    const code = codeOf(e);
    let o: Outcome;
    if (inc.state === 'ended' && (e === inc.endErr || code === 'NEXIO_ERR_CLOSED' || e === inc.ctx?.failed)) {
      o = inc.end!;
    } else if (code === 'NEXIO_ERR_REMOTE') {
      if ((e as Error).message !== `sim ${m.id}`) ledger.report('lost', `client ${this.idx}: request id ${m.id} failed with another request's error: ${(e as Error).message}`);
      if (m.receipt && m.receipts === 0) ledger.report('lost', `client ${this.idx}: request id ${m.id} answered before its receipt callback ran`);
      o = 'response';
      this.w.stats.remoteErrors++;
    } else if (code === 'NEXIO_ERR_TIMEOUT' && m.timeoutMs > 0) {
      if (this.now < m.calledAt + m.timeoutMs * 1000) {
        ledger.report('lost', `client ${this.idx}: request id ${m.id} timed out at ${this.now}us (called ${m.calledAt}, timeout ${m.timeoutMs}ms)`);
      }
      o = 'timeout';
      this.w.stats.timeouts++;
    } else if (code === 'NEXIO_ERR_ABORTED' && m.aborted) {
      o = 'aborted';
      this.w.stats.aborted++;
    } else if (!m.submitted && code === 'NEXIO_ERR_CLOSED' && this.#mayRefuse(inc, e)) {
      o = 'refused';
      this.w.stats.refused++;
    } else {
      ledger.report('lost', `client ${this.idx}: request id ${m.id} failed with ${code} at ${this.now}us (session ${inc.state} ${inc.end ?? ''}): ${(e as Error)?.message}`);
      o = 'gone';
    }
    ledger.outcome(m, o, this.now);
  }

  #sendFailed(m: Msg, e: unknown): void {
    const inc = m.inc;
    if (!m.submitted) {
      // Still waiting for credit when the session ended (or refused outright): never sent.
      if (!this.#mayRefuse(inc, e)) {
        this.#ledger.report('stuck', `client ${this.idx}: send id ${m.id} refused on a live session: ${codeOf(e)}`);
      }
      this.w.stats.refused++;
      return;
    }
    // Taken by the core: only a receipt can still fail, with the session's end.
    if (!m.receipt) this.#ledger.report('unsettled', `client ${this.idx}: send id ${m.id} rejected after the core took it: ${codeOf(e)}`);
    if (inc.state !== 'ended') this.#ledger.report('lost', `client ${this.idx}: receipt of id ${m.id} rejected on a live session: ${codeOf(e)}`);
    else if (inc.end === 'closed') this.#ledger.report('lost', `client ${this.idx}: receipt of id ${m.id} rejected by a clean close`);
  }

  #close(inc: Inc): void {
    inc.closeCalled = true;
    inc.closeCalledAt = this.now;
    const tr = this.#ledger.track(`client ${this.idx} inc ${inc.n}: close()`, this.now);
    inc.session!.close({ timeout: CLOSE_MS }).then(() => this.#ledger.settle(tr, this.now), (e) => {
      this.#ledger.settle(tr, this.now);
      this.#ledger.report('stuck', `client ${this.idx}: close() rejected: ${codeOf(e)}`);
    });
  }

  /** Final phase: close once everything queued is handed over (now, or when the session opens). */
  finish(): void {
    this.closing = true;
    const inc = this.inc;
    if (inc?.state === 'open') this.flush();
  }

  #finishNow(inc: Inc): void {
    if (!inc.closeCalled && inc.state === 'open') this.#close(inc);
  }

  /** The session's 'close' event. */
  #closed(inc: Inc, err: Error | undefined): void {
    if (inc.state === 'ended') {
      this.#ledger.report('duplicated', `client ${this.idx} inc ${inc.n}: session ended twice (${inc.end}, then ${codeOf(err)})`);
      return;
    }
    const code = err ? codeOf(err) : '';
    const ctx = inc.ctx!;
    let end: End;
    if (err && ctx.failed && err === ctx.failed) {
      if (code === 'NEXIO_ERR_CORE_TRAP') this.#ledger.report('stuck', `client ${this.idx}: core trapped: ${err.message}`);
      end = 'ctx-closed';
    } else if (inc.destroyCalled) end = 'destroyed';
    else if (!err) end = 'closed';
    else if (code === 'NEXIO_ERR_SESSION_LOST' || code === 'NEXIO_ERR_TIMEOUT') end = 'lost';
    else if (code === 'NEXIO_ERR_CLOSED') {
      if (inc.closeCalled && this.now - inc.closeCalledAt >= CLOSE_MS * 1000) {
        this.#ledger.report('stuck', `client ${this.idx} inc ${inc.n}: the graceful close begun at ${inc.closeCalledAt}us ran into its ${CLOSE_MS} ms bound`);
        end = 'destroyed';
      } else end = 'peer-closed';
    } else {
      this.#ledger.report('stuck', `client ${this.idx} inc ${inc.n}: session ended with ${code}: ${err.message}`);
      end = 'gone';
    }
    this.#ended(inc, end, err);
  }

  #ended(inc: Inc, end: End, err: Error | undefined): void {
    inc.state = 'ended';
    inc.end = end;
    inc.endErr = err;
    const s = this.w.stats;
    if (end === 'peer-closed') s.peerClosed++;
    else if (end === 'ctx-closed') s.ctxClosed++;
    else s[end]++;
    if (this.inc !== inc) return;
    this.inc = undefined;
    if (!this.closing && this.now < this.w.reconnectUntil) {
      this.w.clock.after(this.w.rng.int(1000, 100_000), () => {
        if (!this.inc && !this.closing) this.connect();
      });
    }
  }
}

interface Handled { id: number; req: IncomingRequest }

/** One server context (a new one after each restart), serving PORTAL. */
export class ServerApp {
  readonly ctx: Context;
  readonly clock: ContextClock;
  readonly sessions: Set<Session>;

  constructor(readonly w: World, readonly gen: number, readonly spec: ServerSpec, readonly responder: ResponderSpec) {
    const e = makeContext(w, gen ? `server${gen}` : 'server', SERVER, spec);
    this.ctx = e.ctx;
    this.clock = e.clock;
    // Without views, half the servers run the hot forms (hotHandler,
    // hotMessage: lent bytes, answered with session.reply).
    const hot = !spec.views && w.rng.chance(0.5);
    const handlers = hot
      ? { hotHandler: (s: Session, tag: number, h: Buffer, d: Buffer) => this.#hot(s, tag, h, d), hotMessage: (_s: Session, h: Buffer, d: Buffer) => { this.#arrived('ow', h, d); } }
      : { handler: (req: IncomingRequest) => this.#handle(req), onMessage: (_s: Session, h: Buffer, d: Buffer, release?: () => void) => this.#message(h, d, release) };
    this.sessions = serveContext(this.ctx, handlers, (info) => this.#decide(info));
    if (spec.psk) this.ctx.setPsk({ [SIM_IDENTITY]: SIM_KEY });
  }

  /**
   * The hot handler: the lent bytes are checked during the call; the answer
   * comes now (or a throw: a handler error) or later by session.reply,
   * which says false for a request cancelled meanwhile.
   */
  #hot(session: Session, tag: number, hdr: Buffer, data: Buffer): void {
    const m = this.#arrived('req', hdr, data);
    const id = hdr.length >= 4 ? hdr.readUInt32LE(0) : 0;
    const r = this.w.rng;
    const s = this.responder;
    this.w.stats.hot++;
    const answer = () => {
      const size = r.chance(s.extP) ? r.int(8193, 70000) : r.int(0, s.maxSize);
      const h = Buffer.allocUnsafe(12);
      h.writeUInt32LE(id, 0);
      h.writeUInt32LE(MAGIC_RESP, 4);
      h.writeUInt32LE(size, 8);
      return { h, d: pattern(id ^ 0x40000000, size) };
    };
    if (r.chance(s.immediateP)) {
      if (r.chance(s.errorP)) throw Object.assign(new Error(`sim ${id}`), { code: 'SIM' });
      const a = answer();
      session.reply(tag, a.h, a.d);
      return;
    }
    const min = s.minDelayUs ?? 0;
    const d = r.chance(s.slowP) ? r.int(min, s.slowMaxUs) : r.int(min, s.maxDelayUs);
    this.w.clock.after(d, () => {
      const a = answer();
      if (!session.reply(tag, a.h, a.d)) {
        this.w.stats.cancelsSeen++;
        if (m) m.serverCancelled = true;
      }
    });
  }

  get now(): number {
    return this.w.clock.now;
  }

  /** Listens on PORTAL (the network's listener table: a restarted server binds the same name). */
  async listen(): Promise<void> {
    await this.ctx.listen(PORTAL);
  }

  #decide(info: SessionRequestInfo): SessionDecision | Promise<SessionDecision> {
    if (info.identity !== (this.spec.psk ? SIM_IDENTITY : undefined)) {
      this.w.ledger.report('leaked', `server: onSession ran for ${info.attrs.toString()} with identity ${info.identity}`);
    }
    const r = this.w.rng;
    const s = this.responder;
    let d: SessionDecision;
    if (r.chance(s.rejectP)) { d = { reject: 7, message: 'busy' }; this.w.stats.rejects++; }
    else if (r.chance(s.redirectP ?? 0)) { d = { redirect: [PORTAL] }; this.w.stats.redirects++; }
    else d = { accept: true, attrs: Buffer.from('srv=1') };
    if (!r.chance(s.laterP ?? 0)) return d;
    return new Promise((resolve) => this.w.clock.after(r.int(0, 50_000), () => resolve(d)));
  }

  /** A message's identity from its header, checked; its ledger record (first delivery) or undefined. */
  #arrived(kind: 'req' | 'ow', hdr: Buffer, data: Buffer): Msg | undefined {
    const ledger = this.w.ledger;
    if (hdr.length !== 16 || hdr.readUInt32LE(12) !== MAGIC_REQ) {
      ledger.report('lost', `server: ${kind} with a foreign header`);
      return undefined;
    }
    const id = hdr.readUInt32LE(0);
    const m = ledger.delivered(id, hdr.readUInt16LE(4), hdr.readUInt16LE(6), kind, this.w.net.delivering?.id ?? 0, this.now);
    if (m && (data.length !== m.dataLen || !patternOk(id, data))) ledger.report('lost', `server: ${kind} id ${id} arrived corrupt`);
    return m;
  }

  #message(hdr: Buffer, data: Buffer, release: (() => void) | undefined): void {
    this.#arrived('ow', hdr, data);
    if (this.ctx.views) {
      if (!release) { this.w.ledger.report('leaked', 'server: a one-way message under views without release()'); return; }
      this.#release(release);
    }
  }

  #release(release: () => void): void {
    this.w.stats.views++;
    const max = this.responder.releaseMaxUs ?? 0;
    if (max > 0 && this.w.rng.chance(0.5)) this.w.clock.after(this.w.rng.int(0, max), release);
    else release();
  }

  /** The request handler: answers now or later, or throws. Views are valid until it settles. */
  #handle(req: IncomingRequest): { header: Buffer; data: Buffer } | Promise<{ header: Buffer; data: Buffer }> {
    const m = this.#arrived('req', req.header, req.data);
    const id = req.header.length >= 4 ? req.header.readUInt32LE(0) : 0;
    const h: Handled = { id, req };
    const r = this.w.rng;
    const s = this.responder;
    if (r.chance(s.immediateP)) return this.#answer(h);
    const min = s.minDelayUs ?? 0;
    const d = r.chance(s.slowP) ? r.int(min, s.slowMaxUs) : r.int(min, s.maxDelayUs);
    return new Promise((resolve, reject) => {
      this.w.clock.after(d, () => {
        if (h.req.signal.aborted) {
          this.w.stats.cancelsSeen++;
          if (m) m.serverCancelled = true;
        }
        try {
          resolve(this.#answer(h));
        } catch (e) {
          reject(e);
        }
      });
    });
  }

  #answer(h: Handled): { header: Buffer; data: Buffer } {
    const r = this.w.rng;
    const s = this.responder;
    if (r.chance(s.errorP)) throw Object.assign(new Error(`sim ${h.id}`), { code: 'SIM' });
    const size = r.chance(s.extP) ? r.int(8193, 70000) : r.int(0, s.maxSize);
    const hdr = Buffer.allocUnsafe(12);
    hdr.writeUInt32LE(h.id, 0);
    hdr.writeUInt32LE(MAGIC_RESP, 4);
    hdr.writeUInt32LE(size, 8);
    return { header: hdr, data: pattern(h.id ^ 0x40000000, size) };
  }

  /** A graceful close of the server: what Server.close() does (closeContext), on the context's clock. */
  close(timeoutMs: number): Promise<void> {
    return closeContext(this.ctx, this.sessions, timeoutMs);
  }
}
