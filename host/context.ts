// A Context owns one core instance, its lanes (transport connections) and
// its one timer. One per thread; contexts share nothing but the compiled
// WebAssembly.Module.
//
// The loop: an input (bytes from a lane, an application call, the timer)
// goes to the core; its events are drained at once, in two phases — first
// read and copied out with no application code running (the records are
// only valid until the next input), then dispatched. Transmission happens
// once per turn (a microtask after the inputs of a callback), so everything
// queued in one turn leaves as one batch per lane.

import { randomBytes, randomFillSync } from 'node:crypto';
import { Core, CoreConfig, CoreEvent, Ev } from './core';
import { Recorder } from './record';
import { Transport, Lane, LaneSink, Listener } from './transports/transport';
import { tcp } from './transports/tcp';
import { InvalidArgumentError, NexioError, Code } from './errors';
import { channels } from './diagnostics';

// rdma:// loads its module (and the native addon) on first use: a machine without the addon
// gets NEXIO_ERR_RDMA_UNAVAILABLE at connect/listen time, and pays nothing otherwise.
const rdmaModule = (): typeof import('./transports/rdma') => require('./transports/rdma');
const transports = new Map<string, Transport | (() => Transport)>([
  ['tcp', tcp], ['rdma', () => rdmaModule().loadRdma()],
]);

/**
 * Registers application memory for zero-copy rendezvous sends on rdma://
 * (docs/api.md, "Registered memory"); per thread. Loads the rdma module
 * (not the addon) on first use.
 */
export function registerMemory(buffer: ArrayBuffer | ArrayBufferView): import('./transports/rdma').Registration {
  return rdmaModule().registerMemory(buffer);
}

/** Makes a transport available under its scheme (rdma, shm, a test transport). */
export function registerTransport(t: Transport): void {
  transports.set(t.scheme, t);
}

export function transportFor(uri: URL): Transport {
  const scheme = uri.protocol.replace(/:$/, '');
  let t = transports.get(scheme);
  if (typeof t === 'function') transports.set(scheme, t = t());
  if (!t) throw new InvalidArgumentError(`no transport for ${uri.protocol}// (have: ${[...transports.keys()].join(', ')})`);
  return t;
}

/** What a context tells a session (client or server side) about its traffic. */
export interface SessionPeer {
  readonly handle: number;
  onOpen(lane: number, attrs: Buffer, id: bigint): void;
  onRequest(tag: number, header: Buffer, data: Buffer, flags: number, seq: number): void;
  onMessage(seq: number, header: Buffer, data: Buffer, flags: number): void;
  onResponse(tag: number, header: Buffer, data: Buffer, flags: number, seq: number): void;
  onRequestFailed(tag: number, code: number): void;
  onCancel(tag: number): void;
  onReceipt(seq: number, tag: number): void;
  onDrain(): void;
  onLane(up: boolean, lane: number, code: number): void;
  onResumed(): void;
  onRejected(code: number, message: string): void;
  onLost(code: number, unacked: number): void;
  onClosed(code: number): void;
  onProtocolError(lane: number, code: number): void;
}

export interface SessionRequestInfo {
  resource: string;
  attrs: Buffer;
  version: number;
  remote: string;
  portal: string;
}

export type SessionDecision =
  | { accept: true; attrs?: Uint8Array }
  | { reject: number; message?: string }
  | { redirect: string[] };

/** Decides a new session on a server context; may answer later (Promise). */
export type SessionPolicy = (info: SessionRequestInfo) => SessionDecision | Promise<SessionDecision>;

interface LaneState {
  io: Lane | undefined;
  uri: string;
  closing: boolean;
  /** Incoming ext payload being diverted from this lane's stream. */
  ext: { buf: Buffer; off: number; id: number; discard: boolean; alive: number; rdv: boolean } | undefined;
  /** Client lanes of rendezvous transports: told to the core when the lane is up. */
  rendezvousMin?: number;
  /** Lane bytes that arrived while a rendezvous READ was in flight: fed to the core after it. */
  held?: Uint8Array[];
}

/** An event copied out of the core, waiting for dispatch. */
class Pending {
  ev = 0; session = 0; lane = 0; code = 0; seq = 0; tag = 0; flags = 0; aux = 0;
  h: Buffer = Buffer.alloc(0);
  d: Buffer = Buffer.alloc(0);
  aux64 = 0n;
}

export interface ContextOptions {
  core?: Partial<CoreConfig>;
  recorder?: Recorder;
  /**
   * Zero-copy receive: received headers and data (below the ext threshold)
   * are Buffers over the core's receive ring, lent to the application until
   * released (docs/api.md, "Zero-copy receive"). Each message held keeps
   * its credit from the sender until then.
   */
  views?: boolean;
}

export class Context {
  readonly core: Core;
  /** Received messages are lent views that must be released (ContextOptions.views). */
  readonly views: boolean;
  #lanes = new Map<number, LaneState>();
  #sessions = new Map<number, SessionPeer>();
  #ext = new Map<number, { data: Uint8Array; session: number }>(); // outgoing ext payloads by id, until acked or their session ends
  #extRdv = new Map<number, Lane[]>();        // ... and the lanes that made them readable (rendezvous)
  #extIn = new Map<number, Buffer>();         // received ext payloads by id, until delivered
  #extNext = 1;
  #ev = new CoreEvent();
  /** Events read in phase 1, reused record objects: [0, #count) are in use (nested drains stack above). */
  #pool: Pending[] = [];
  #count = 0;
  #flushQueued = false;
  #timer: NodeJS.Timeout | undefined;
  #timerAt = -1;
  #listeners: Listener[] = [];
  #unlistened: Promise<void>[] = [];
  #policy: SessionPolicy | undefined;
  #onAccepted: ((session: number, lane: number) => void) | undefined;
  #portals: string[] = [];
  #closed = false;
  #t0 = performance.now();

  constructor(options: ContextOptions = {}) {
    // Session ids come from the seed: a fixed default would hand out the
    // same ids after every restart, and a stale client's resume would join
    // a stranger's session. Tests and replays pass their own seed.
    const core = { ...options.core };
    if (core.seed === undefined) core.seed = randomBytes(6).readUIntLE(0, 6) || 1;
    if (options.views) core.holdRx = true;
    this.views = !!core.holdRx;
    this.core = new Core(core, { recorder: options.recorder });
  }

  /** Monotonic µs since the context began (the core's clock). */
  now(): number {
    return Math.floor((performance.now() - this.#t0) * 1000);
  }

  // ---- server side ----

  /** The URIs this context's listeners are reachable at (what ACCEPT advertises). */
  get portals(): string[] {
    return this.#portals;
  }

  setPolicy(policy: SessionPolicy, onAccepted: (session: number, lane: number) => void): void {
    this.#policy = policy;
    this.#onAccepted = onAccepted;
  }

  /** Binds a portal. `advertise` is the URI peers are told to use (proxies, NAT). */
  async listen(uri: string, advertise?: string): Promise<string> {
    const u = new URL(uri);
    const t = transportFor(u);
    const l = await t.listen(u, (bind, io) => {
      if (this.#closed) { io.destroy(); return; }
      const lane = this.core.laneAccepted(this.now());
      if (lane < 0) { io.destroy(); return; }
      if (t.caps.rendezvous) this.core.laneRendezvous(lane, t.caps.rendezvousMin ?? RENDEZVOUS_MIN, this.now());
      const st: LaneState = { io, uri: l.uri, closing: false, ext: undefined };
      this.#lanes.set(lane, st);
      bind(this.#sink(lane));
      this.#afterInput();
    }).catch((e: unknown) => {
      // EADDRINUSE, EACCES, EADDRNOTAVAIL...: a typed error; the system's is its cause.
      if (e instanceof NexioError) throw e;
      const err = e as NodeJS.ErrnoException;
      const why = err.code && !err.message.includes(err.code) ? `${err.code}: ${err.message}` : err.message;
      throw new NexioError('NEXIO_ERR_TRANSPORT', `cannot listen on ${u.href}: ${why}`, Code.TRANSPORT, { cause: e });
    });
    this.#listeners.push(l);
    const pub = advertise ?? l.uri;
    this.#portals.push(pub);
    return pub;
  }

  /** Registers a session object for events of this handle. */
  attach(peer: SessionPeer): void {
    this.#sessions.set(peer.handle, peer);
    this.#timer?.ref();
  }

  detach(handle: number): void {
    this.#sessions.delete(handle);
    if (this.#sessions.size === 0) this.#timer?.unref();
  }

  /** registerMemory(): registrations are per thread, every context of the thread sees them. */
  register(buffer: ArrayBuffer | ArrayBufferView): import('./transports/rdma').Registration {
    return registerMemory(buffer);
  }

  // ---- client side ----

  /** Opens a client session; the core asks for lanes through OPEN_LANE events. */
  connect(uri: string, resource: string, attrs: Uint8Array, lanes: number): number {
    const h = this.core.connect(uri, resource, attrs, lanes, this.now());
    this.#afterInput();
    return h;
  }

  // ---- application operations (each is one core input) ----

  /** Keeps an ext payload until the core releases it; returns its id. */
  holdExt(data: Uint8Array, session: number): number {
    const id = this.#extNext++;
    if (this.#extNext > 0xfffffff0) this.#extNext = 1;
    this.#ext.set(id, { data, session });
    return id;
  }

  dropExt(id: number): void {
    this.#releaseExt(id);
  }

  /** Outgoing payloads above the ext threshold this context still holds (until acked or their session ends). */
  get heldPayloads(): number {
    return this.#ext.size;
  }

  /**
   * A session ended (lost, closed, rejected, destroyed): the core releases
   * nothing more for it, so its payloads still held (unacked or unsent) go
   * now, and rendezvous lanes unpin them.
   */
  releaseSessionExts(session: number): void {
    for (const [id, x] of this.#ext) if (x.session === session) this.#releaseExt(id);
  }

  #releaseExt(id: number): void {
    const buf = this.#ext.get(id)?.data;
    this.#ext.delete(id);
    const on = this.#extRdv.get(id);
    if (!on) return;
    this.#extRdv.delete(id);
    if (buf) for (const io of on) io.unpin?.(buf);
  }

  /** Runs an application input and schedules the turn's transmission. */
  afterInput(): void {
    this.#afterInput();
  }

  // ---- the loop ----

  #sink(lane: number): LaneSink {
    return {
      connected: () => {
        if (this.#closed) return;
        const min = this.#lanes.get(lane)?.rendezvousMin;
        if (min) this.core.laneRendezvous(lane, min, this.now());
        this.core.laneUp(lane, this.now());
        this.#afterInput();
      },
      data: (chunk) => this.#data(lane, chunk),
      closed: (err) => {
        const st = this.#lanes.get(lane);
        if (!st) return;
        this.#lanes.delete(lane);
        if (this.#closed || this.core.trapped) return;
        this.core.laneDown(lane, err ? Code.TRANSPORT : Code.CLOSED, this.now());
        channels.lane.publish({ event: 'closed', lane, uri: st.uri, error: err });
        this.#afterInput();
      },
    };
  }

  #data(lane: number, chunk: Uint8Array): void {
    const core = this.core;
    if (core.trapped) return;
    let off = 0;
    let stalls = 0;
    while (off < chunk.length) {
      const st = this.#lanes.get(lane);
      if (!st) return;
      const x = st.ext;
      if (x?.rdv) {
        // The payload is being READ; what follows it on the lane waits.
        (st.held ??= []).push(Buffer.from(chunk.subarray(off)));
        break;
      }
      if (x) {
        const n = Math.min(chunk.length - off, x.buf.length - x.off);
        if (!x.discard) x.buf.set(chunk.subarray(off, off + n), x.off);
        x.off += n;
        off += n;
        // The core sees no frames while a payload streams past it: tell it
        // the lane is alive (an empty rx) now and then, or a slow transfer
        // longer than the dead-lane time would be taken for a dead lane.
        const now = this.now();
        if (now - x.alive >= EXT_ALIVE_US && x.off < x.buf.length) {
          x.alive = now;
          core.rx(lane, EMPTY, now);
        }
        if (x.off === x.buf.length) {
          st.ext = undefined;
          if (!x.discard) this.#extIn.set(x.id, x.buf);
          core.extDone(lane, this.now());
          this.#drain();
        }
        continue;
      }
      const n = core.rx(lane, off === 0 ? chunk : chunk.subarray(off), this.now());
      if (n < 0) break;
      off += n;
      this.#drain();
      if (n === 0 && !st.ext && ++stalls > 2) break;
    }
    this.#afterInput();
  }

  #afterInput(): void {
    this.#drain();
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(() => this.#flush());
    }
  }

  /** Phase 1: read the core's events with no application code running. Phase 2: dispatch. */
  #drain(): void {
    const core = this.core;
    for (;;) {
      const n = core.pollEvents();
      if (n === 0) break;
      const start = this.#count;
      const ev = this.#ev;
      for (let i = 0; i < n; i++) {
        core.event(i, ev);
        this.#read(ev, i);
      }
      const end = this.#count;
      // Application code runs from here: an input it makes may start a nested
      // drain, which uses the records above `end` and gives them back.
      for (let k = start; k < end; k++) this.#dispatch(this.#pool[k]);
      this.#count = start;
    }
  }

  #read(e: CoreEvent, i: number): void {
    const core = this.core;
    switch (e.type) {
      case Ev.OPEN_LANE: {
        const uri = core.copy(e.hdrPtr, e.hdrLen).toString();
        this.#openLane(e.lane, uri);
        return;
      }
      case Ev.CLOSE_LANE: {
        const st = this.#lanes.get(e.lane);
        if (st) st.closing = true;
        return;
      }
      case Ev.EXT_RX: {
        const st = this.#lanes.get(e.lane);
        if (!st) return;
        const rdv = (e.flags & 2) !== 0;
        const x = { buf: Buffer.allocUnsafe(e.dataLen), off: 0, id: e.ext, discard: (e.flags & 1) !== 0, alive: this.now(), rdv };
        st.ext = x;
        if (rdv) this.#rendezvous(e.lane, st, x, core.eventAux64(i), e.aux);
        return;
      }
      case Ev.EXT_RELEASE:
        if (e.flags & 1) this.#extIn.delete(e.ext);
        else this.#releaseExt(e.ext);
        return;
      case Ev.SESSION_LOST:
      case Ev.SESSION_CLOSED:
      case Ev.SESSION_REJECTED:
        // Ends (SESSION_CLOSED with a code is the peer's CLOSE: draining,
        // our unacked payloads may still be resent). Dispatched below.
        if (this.#ext.size && (e.type !== Ev.SESSION_CLOSED || e.code === 0)) this.releaseSessionExts(e.session);
        break;
    }
    let h: Buffer = EMPTY, d: Buffer = EMPTY;
    // Views: the ring bytes stay put until the application releases the
    // message (the core holds its ack); copies otherwise.
    const lend = this.views && (e.type === Ev.REQUEST || e.type === Ev.MESSAGE || e.type === Ev.RESPONSE);
    if (e.hdrLen && e.hdrPtr) h = lend ? core.lend(e.hdrPtr, e.hdrLen) : core.copy(e.hdrPtr, e.hdrLen);
    if (e.ext) {
      d = this.#extIn.get(e.ext) ?? EMPTY;
      this.#extIn.delete(e.ext);
    } else if (e.dataLen && e.dataPtr) {
      d = lend ? core.lend(e.dataPtr, e.dataLen) : core.copy(e.dataPtr, e.dataLen);
    }
    let p = this.#pool[this.#count];
    if (!p) p = this.#pool[this.#count] = new Pending();
    this.#count++;
    p.ev = e.type; p.session = e.session; p.lane = e.lane; p.code = e.code; p.seq = e.seq; p.tag = e.tag;
    p.flags = e.flags; p.h = h; p.d = d; p.aux64 = e.type === Ev.SESSION_OPEN ? core.eventAux64(i) : 0n; p.aux = e.aux;
  }

  #dispatch(p: Pending): void {
    if (p.ev === Ev.SESSION_REQUEST) {
      this.#decide(p);
      return;
    }
    const s = this.#sessions.get(p.session);
    if (p.ev === Ev.SESSION_OPEN && !s && this.#onAccepted) {
      this.#onAccepted(p.session, p.lane);
    }
    const peer = this.#sessions.get(p.session);
    if (!peer) {
      if (p.ev === Ev.PROTOCOL_ERROR) channels.lane.publish({ event: 'protocol-error', lane: p.lane, code: p.code });
      return;
    }
    switch (p.ev) {
      case Ev.SESSION_OPEN: peer.onOpen(p.lane, p.d, p.aux64); break;
      case Ev.SESSION_RESUMED: peer.onResumed(); break;
      case Ev.SESSION_REJECTED: peer.onRejected(p.code, p.h.toString()); break;
      case Ev.SESSION_LOST: peer.onLost(p.code, p.aux); break;
      case Ev.SESSION_CLOSED: peer.onClosed(p.code); break;
      case Ev.LANE_UP: peer.onLane(true, p.lane, 0); break;
      case Ev.LANE_DOWN: peer.onLane(false, p.lane, p.code); break;
      case Ev.PROTOCOL_ERROR: peer.onProtocolError(p.lane, p.code); break;
      case Ev.REQUEST: peer.onRequest(p.tag, p.h, p.d, p.flags, p.seq); break;
      case Ev.MESSAGE: peer.onMessage(p.seq, p.h, p.d, p.flags); break;
      case Ev.RESPONSE: peer.onResponse(p.tag, p.h, p.d, p.flags, p.seq); break;
      case Ev.RECEIPT: peer.onReceipt(p.seq, p.tag); break;
      case Ev.REQUEST_FAILED: peer.onRequestFailed(p.tag, p.code); break;
      case Ev.CANCEL: peer.onCancel(p.tag); break;
      case Ev.DRAIN: peer.onDrain(); break;
    }
  }

  #decide(p: Pending): void {
    // The record is reused after dispatch; the decision may come later.
    const lane = p.lane;
    const st = this.#lanes.get(lane);
    const info: SessionRequestInfo = {
      resource: p.h.toString(), attrs: p.d, version: p.aux, remote: st?.io?.remote ?? '', portal: st?.uri ?? '',
    };
    const apply = (d: SessionDecision) => {
      if (this.#closed || this.core.trapped) return;
      const now = this.now();
      if ('redirect' in d) this.core.redirect(lane, d.redirect, now);
      else if ('reject' in d) this.core.reject(lane, d.reject || Code.REJECTED, d.message ?? '', now);
      else this.core.accept(lane, sessionKey(), this.#portals, d.attrs ?? EMPTY, now);
      this.#afterInput();
    };
    if (!this.#policy) { apply({ reject: Code.REJECTED, message: 'this context accepts no sessions' }); return; }
    let d: SessionDecision | Promise<SessionDecision>;
    try {
      d = this.#policy(info);
    } catch (e) {
      apply({ reject: Code.REJECTED, message: String((e as Error)?.message ?? e) });
      return;
    }
    if (d instanceof Promise) d.then(apply, (e) => apply({ reject: Code.REJECTED, message: String(e?.message ?? e) }));
    else apply(d);
  }

  /** Rendezvous: READs an EXT payload from the peer's memory, then lets the lane go on. */
  #rendezvous(lane: number, st: LaneState, x: NonNullable<LaneState['ext']>, addr: bigint, rkey: number): void {
    const io = st.io;
    if (!io?.read) { io?.destroy(); return; }
    const alive = (): void => {
      // READs landing are life on the lane, like ext bytes on a stream
      const now = this.now();
      if (now - x.alive < EXT_ALIVE_US || this.#closed || this.core.trapped || this.#lanes.get(lane) !== st || st.ext !== x) return;
      x.alive = now;
      this.core.rx(lane, EMPTY, now);
      this.#afterInput();
    };
    io.read(addr, rkey, x.buf, (err) => {
      if (this.#closed || this.core.trapped || this.#lanes.get(lane) !== st || st.ext !== x) return;
      if (err) { io.destroy(); return; }
      st.ext = undefined;
      if (!x.discard) this.#extIn.set(x.id, x.buf);
      this.core.extDone(lane, this.now());
      this.#drain();
      const held = st.held;
      st.held = undefined;
      if (held) for (const c of held) this.#data(lane, c);
      this.#afterInput();
    }, alive);
  }

  #openLane(lane: number, uri: string): void {
    let u: URL;
    let t: Transport;
    const st: LaneState = { io: undefined, uri, closing: false, ext: undefined };
    this.#lanes.set(lane, st);
    try {
      u = new URL(uri);
      t = transportFor(u);
      // (An input here would invalidate the events being read: the core
      // learns about rendezvous when the lane is up.)
      if (t.caps.rendezvous) st.rendezvousMin = t.caps.rendezvousMin ?? RENDEZVOUS_MIN;
      st.io = t.connect(u, this.#sink(lane));
    } catch (e) {
      // Report the failure as the lane going down, after this drain.
      queueMicrotask(() => this.#sink(lane).closed(e as Error));
      return;
    }
    channels.lane.publish({ event: 'open', lane, uri });
  }

  #flush(): void {
    this.#flushQueued = false;
    const core = this.core;
    if (core.trapped) return;
    const now = this.now();
    for (;;) {
      const lane = core.pollTransmit(now);
      if (lane === 0) break;
      const st = this.#lanes.get(lane);
      if (!st?.io) continue;
      const bytes = Buffer.from(core.txView());
      const ext = core.txExt();
      const rdv = ext ? core.txRdv() : -1;
      if (rdv >= 0 && st.io.unpin) {
        const on = this.#extRdv.get(ext);
        if (!on) this.#extRdv.set(ext, [st.io]);
        else on.push(st.io); // one unpin per rendezvous write
      }
      st.io.write(bytes, ext ? this.#ext.get(ext)?.data : undefined, rdv >= 0 ? rdv : undefined);
    }
    for (const [lane, st] of this.#lanes) {
      if (st.closing) {
        st.closing = false;
        if (st.io) st.io.end();
        else this.#lanes.delete(lane);
      }
    }
    this.#arm();
  }

  #arm(): void {
    if (this.#closed) return;
    const d = this.core.nextDeadline();
    if (d < 0) {
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#timerAt = -1;
      return;
    }
    // A timer armed for d or earlier is kept: most turns move the deadline
    // later (keepalive, retransmission), and a timer that fires early only
    // arms itself again, which costs less than setting a timer every turn.
    if (this.#timer && this.#timerAt <= d) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timerAt = d;
    const ms = Math.max(0, (d - this.now()) / 1000);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = -1;
      if (this.#closed || this.core.trapped) return;
      const now = this.now();
      const due = this.core.nextDeadline();
      if (due < 0) return;
      if (due > now) { this.#arm(); return; }
      this.core.timeout(now);
      this.#afterInput();
    }, Math.ceil(ms));
    // While a session lives the timer holds the process: with every lane
    // down it is all that is left of a reconnect, a resume or a timeout, and
    // an exit would drop pending requests without a word.
    if (this.#sessions.size === 0) this.#timer.unref?.();
  }

  /** Keeps the process alive while sessions are open (timers are unref'd otherwise). */
  ref(on: boolean): void {
    if (this.#timer) (on ? this.#timer.ref() : this.#timer.unref());
  }

  /** Stops accepting connections; lanes already up stay up (close() ends them). */
  stopListening(): void {
    // A listener's close() resolves when its connections have ended: keep
    // the promise for close().
    for (const l of this.#listeners) this.#unlistened.push(l.close());
    this.#listeners = [];
  }

  /** Stops listening and drops every lane. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    // A listener's close() waits for its connections to end, and with the
    // timer stopped nothing else ends them: drop the lanes first.
    this.stopListening();
    const listeners = this.#unlistened;
    for (const st of this.#lanes.values()) st.io?.destroy();
    this.#lanes.clear();
    await Promise.all(listeners);
  }
}

const EMPTY: Buffer = Buffer.alloc(0);
/** Smallest EXT payload sent by rendezvous when the transport names none. */
const RENDEZVOUS_MIN = 64 * 1024;
/** How often a lane streaming an ext payload tells the core it is alive (µs). */
const EXT_ALIVE_US = 50_000;

// Session keys come from the CSPRNG, drawn 256 at a time: every lane that
// joins or resumes a session must present its key, so it must not be
// guessable from anything a client sees (session ids are not secret).
const KEY_SIZE = 16;
const keyPool = Buffer.alloc(KEY_SIZE * 256);
let keyAt = keyPool.length;
function sessionKey(): Buffer {
  if (keyAt === keyPool.length) { randomFillSync(keyPool); keyAt = 0; }
  return keyPool.subarray(keyAt, (keyAt += KEY_SIZE));
}

export function isNexioError(e: unknown): e is NexioError {
  return e instanceof NexioError;
}
