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
import { Transport, Lane, LaneSink, Listener, TransportOptions, TlsPeer } from './transports/transport';
import { tcp } from './transports/tcp';
import { tlsTransport } from './transports/tls';
import { mem } from './transports/mem';
import { InvalidArgumentError, NexioError, Code, ClosedError, CoreTrapError, LimitError, fromCode, codeNames } from './errors';
import { publish } from './diagnostics';
import { PskServer, ServerPsk, ClientPsk, AuthFailureCount, pskProofs, NONCE_SIZE } from './psk';
import { HELLO_SIZE, MAX_CONTROL_FRAME } from './wire';

// rdma:// loads its module (and the native addon) on first use: a machine without the addon
// gets NEXIO_ERR_RDMA_UNAVAILABLE at connect/listen time, and pays nothing otherwise.
const rdmaModule = (): typeof import('./transports/rdma') => require('./transports/rdma');
const transports = new Map<string, Transport | (() => Transport)>([
  ['tcp', tcp], ['tls', tlsTransport], ['mem', mem], ['rdma', () => rdmaModule().loadRdma()],
]);

/**
 * Registers application memory for zero-copy rendezvous sends on rdma://
 * (docs/api.md, "Registered memory"); per thread. Loads the rdma module
 * (not the addon) on first use.
 */
/**
 * Application memory registered for rdma:// rendezvous sends (register()).
 * Declared here, not taken from the rdma transport, so the public types
 * never load the transport's (and its native addon's) declarations.
 */
export interface Registration {
  /** The memory, as given. */
  readonly buffer: ArrayBuffer | ArrayBufferView;
  /** RDMA devices it is registered on now (it goes on others as lanes reach them); [] without rdma. */
  readonly devices: string[];
  /** Lets the registration go (idempotent): the cache may then deregister it. */
  release(): void;
}

export function registerMemory(buffer: ArrayBuffer | ArrayBufferView): Registration {
  return rdmaModule().registerMemory(buffer);
}

/** Makes a transport available under its scheme (a simulated network, a test transport). */
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
  /** A lane of this session failed before it ever connected (refused, unreachable, unresolvable: err). */
  onLaneFailed(uri: string, err: Error): void;
  onResumed(): void;
  onRejected(code: number, message: string): void;
  onLost(code: number, unacked: number): void;
  onClosed(code: number): void;
  onProtocolError(lane: number, code: number): void;
  /**
   * Whether this REQUEST, MESSAGE or RESPONSE goes to a hot receiver, which
   * is lent the bytes for its call instead of given a copy.
   */
  lends(ev: number, tag: number): boolean;
  /** The context ended (closed, or its core trapped): the session ends with err. */
  onEnd(err: Error): void;
}

export interface SessionRequestInfo {
  resource: string;
  attrs: Buffer;
  version: number;
  remote: string;
  portal: string;
  /** tls:// portals: the client's certificate (subject, issuer, authorized, ...); absent on other transports. */
  tls?: TlsPeer;
  /** The identity whose pre-shared key the client proved (servers with `psk`); undefined without. */
  identity?: string;
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
  /** Client lanes: the session that opened it (OPEN_LANE); 0 for accepted lanes. */
  session: number;
  /** The transport connected it (a client lane that never did failed to reach its address). */
  up: boolean;
  closing: boolean;
  /** Server side: accepted and in its handshake (not yet part of a session): in the handshake pool. */
  handshake: boolean;
  /** Remote address (without port) for the per-address bound; '' for client lanes. */
  addr: string;
  /** Handshake deadline (µs, context clock). */
  deadline: number;
  /** Incoming ext payload being diverted from this lane's stream. */
  ext: RxPayload | undefined;
  /** Client lanes of rendezvous transports: told to the core when the lane is up. */
  rendezvousMin?: number;
  /** Lane bytes that arrived while a rendezvous READ was in flight: fed to the core after it. */
  held?: Uint8Array[];
  heldBytes: number;
}

/**
 * An ext payload arriving on a lane. `len` is what the peer announced (the
 * core checked it against maxMessageBytes); `buf` grows as bytes arrive,
 * so a claim costs nothing until the bytes are really sent. A rendezvous
 * READ needs its whole destination at once (bounded by maxMessageBytes).
 */
interface RxPayload { buf: Buffer; off: number; len: number; id: number; session: number; discard: boolean; alive: number; rdv: boolean }

/** An event copied out of the core, waiting for dispatch. */
class Pending {
  ev = 0; session = 0; lane = 0; code = 0; seq = 0; tag = 0; flags = 0; aux = 0;
  h: Buffer = Buffer.alloc(0);
  d: Buffer = Buffer.alloc(0);
  aux64 = 0n;
  /**
   * A message's bytes not taken yet (no views): where they are in the
   * receive ring. Dispatch copies them, or lends them to a hot receiver.
   */
  lazy = false; hp = 0; hl = 0; dp = 0; dl = 0;
}

/**
 * Where a context gets its time and its timers. The real clock by default;
 * the simulator passes a virtual one, so real Contexts and Sessions run on
 * virtual time, deterministically from a seed.
 */
export interface HostClock {
  /** Monotonic microseconds (any origin). */
  now(): number;
  /** Calls fn once after ms milliseconds; the handle is for clearTimer. */
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
  /** Whether the timer keeps the process alive (the real clock's only). */
  refTimer?(handle: unknown, on: boolean): void;
}

const t0 = performance.now();
/** performance.now() and node's timers. */
export const realClock: HostClock = {
  now: () => Math.floor((performance.now() - t0) * 1000),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (h) => clearTimeout(h as NodeJS.Timeout),
  refTimer: (h, on) => { if (on) (h as NodeJS.Timeout).ref(); else (h as NodeJS.Timeout).unref(); },
};

export interface ContextOptions {
  core?: Partial<CoreConfig>;
  /** Time and timers (default: the real clock). */
  clock?: HostClock;
  /**
   * Fills a buffer with random bytes for session keys (default: the
   * CSPRNG, node:crypto randomFillSync). Only a simulation passes its own,
   * to make a seed's run repeatable; keys must be unguessable otherwise.
   */
  random?: (buf: Uint8Array) => void;
  recorder?: Recorder;
  /** Server contexts: how connections in their handshake are admitted (docs/api.md, "Limits"). */
  admission?: AdmissionOptions;
  /**
   * Zero-copy receive: received headers and data (below the ext threshold)
   * are Buffers over the core's receive ring, lent to the application until
   * released (docs/api.md, "Zero-copy receive"). Each message held keeps
   * its credit from the sender until then.
   */
  views?: boolean;
}

/**
 * Admission of connections to a server context. Connections still in their
 * handshake (before their session is accepted or joined) live in a pool of
 * their own and never take an established lane's place.
 */
export interface AdmissionOptions {
  /** Connections in their handshake at once; a new one beyond this evicts the oldest (default 256). */
  maxHandshakes?: number;
  /** Of those, from one remote address; beyond it, that address's oldest is evicted (default 64). */
  maxHandshakesPerAddress?: number;
  /** ms from accept until the session is accepted or joined, onSession included (default 3000). */
  handshakeMs?: number;
  /** ms a connection the context gave up on (or closed) may linger before it is destroyed (default 2000). */
  lingerMs?: number;
}

export const defaultAdmission: Required<AdmissionOptions> = {
  maxHandshakes: 256, maxHandshakesPerAddress: 64, handshakeMs: 3000, lingerMs: 2000,
};

/** What a context holds right now (Context.usage()): every count is 0 once its sessions ended and it closed its lanes. */
export interface ContextUsage {
  sessions: number;
  /** Lanes the core knows (established or in handshake). */
  lanes: number;
  /** Server lanes in their handshake (the admission pool). */
  handshakes: number;
  /** Connections closed by the core, lingering until their peer closes or the linger ends. */
  lingering: number;
  /** Outgoing ext payloads held until acked. */
  txPayloads: number;
  /** Received ext payloads waiting for delivery, and bytes of payloads still arriving. */
  rxPayloads: number;
  rxBytes: number;
  /** Lane bytes held while a rendezvous READ runs. */
  heldBytes: number;
  /** Timers armed (the core's deadline, handshake deadlines). */
  timers: number;
}

export class Context {
  readonly core: Core;
  /** Received messages are lent views that must be released (ContextOptions.views). */
  readonly views: boolean;
  #lanes = new Map<number, LaneState>();
  #sessions = new Map<number, SessionPeer>();
  /** The same sessions by handle index (handle & 0xffff): dispatch finds a message's session without hashing. */
  #peerAt: (SessionPeer | undefined)[] = [];
  #ext = new Map<number, { data: Uint8Array; session: number }>(); // outgoing ext payloads by id, until acked or their session ends
  #extRdv = new Map<number, Lane[]>();        // ... and the lanes that made them readable (rendezvous)
  #extIn = new Map<number, { buf: Buffer; session: number }>(); // received ext payloads by id, until delivered or their session ends
  /**
   * Sessions the peer closed (SESSION_CLOSED with a code): the core drains
   * them (acks, resends of our unacked payloads) and frees them without an
   * event; the context looks after each turn whether they are gone, and
   * lets their payloads go then.
   */
  #draining = new Set<number>();
  /** Lanes the core closed this turn (CLOSE_LANE): retired after the turn's transmission. */
  #closing: number[] = [];
  #extNext = 1;
  #ev = new CoreEvent();
  /** Events read in phase 1, reused record objects: [0, #count) are in use (nested drains stack above). */
  #pool: Pending[] = [];
  #count = 0;
  #flushQueued = false;
  /** The turn's flush, made once (not a closure per turn). */
  #flushLater = (): void => this.#flush();
  #timer: unknown;
  #timerAt = -1;
  #listeners: Listener[] = [];
  #unlistened: Promise<void>[] = [];
  #policy: SessionPolicy | undefined;
  #onAccepted: ((session: number, lane: number) => void) | undefined;
  #portals: string[] = [];
  /** Client sessions' transport options (connect's `tls`), given to each lane they open. */
  #laneOptions = new Map<number, { options: TransportOptions; scheme: string }>();
  #closed = false;
  /** The error that ended the context (closed or trapped). */
  #failed: Error | undefined;
  readonly clock: HostClock;
  readonly #adm: Required<AdmissionOptions>;
  /** Server lanes in their handshake, oldest first. */
  #handshakes = new Map<number, LaneState>();
  #perAddr = new Map<string, number>();
  #hsTimer: unknown;
  #hsTimerAt = -1;
  /** Connections closed by the core and ended, destroyed after lingerMs unless they close first. */
  #lingering = new Map<number, { io: Lane; timer: unknown }>();
  readonly #random: ((buf: Uint8Array) => void) | undefined;
  /** Sessions being decided (onSession pending) count toward maxSessions. */
  #deciding = new Set<LaneState>();
  /**
   * Bytes allocated for arriving ext payloads and not yet filled. A claim is
   * allocated whole (one copy, no growth) while this stays under
   * RX_PREALLOC; past it, buffers grow as bytes arrive: claims cost memory
   * only up to that budget, bytes that really arrive cost what they are.
   */
  #unfilled = 0;

  constructor(options: ContextOptions = {}) {
    // Session ids come from the seed: a fixed default would hand out the
    // same ids after every restart, and a stale client's resume would join
    // a stranger's session. Tests and replays pass their own seed.
    const core = { ...options.core };
    if (core.seed === undefined) core.seed = randomBytes(6).readUIntLE(0, 6) || 1;
    if (options.views) core.holdRx = true;
    this.views = !!core.holdRx;
    this.core = new Core(core, { recorder: options.recorder });
    this.core.onTrap = (e) => queueMicrotask(() => this.#fail(e));
    this.clock = options.clock ?? realClock;
    this.#random = options.random;
    const adm = { ...defaultAdmission, ...options.admission };
    for (const [k, v] of Object.entries(adm)) {
      // ms beyond 2^31 - 1 would overflow the timers
      if (!Number.isInteger(v) || v < (k === 'lingerMs' ? 0 : 1) || v > 0x7fffffff) throw new InvalidArgumentError(`admission.${k} must be an integer from ${k === 'lingerMs' ? 0 : 1} to 2147483647, not ${String(v)}`);
    }
    this.#adm = adm;
  }

  #totals = { lanesAccepted: 0, evicted: 0, protocolErrors: 0 };
  /** Server side: the pre-shared keys every lane must prove (setPsk); undefined: none may. */
  #psk: PskServer | undefined;
  /** Client sessions with a pre-shared key: what their lanes prove it with. */
  #clientPsk = new Map<number, { identity: Buffer; key: Uint8Array; resource: Buffer }>();

  /** Server side: every lane must prove one of these keys (docs/security.md, "Pre-shared keys"). */
  setPsk(psk: ServerPsk): void {
    this.#psk = new PskServer(psk);
  }

  /** Authentication failures by identity and remote address (servers with psk), and their total. */
  authFailures(): { total: number; by: AuthFailureCount[] } {
    return { total: this.#psk?.failed ?? 0, by: this.#psk?.failures() ?? [] };
  }

  /** Counts since the context started: lanes accepted, connections evicted in their handshake, peers' protocol errors. */
  totals(): { lanesAccepted: number; evicted: number; protocolErrors: number } {
    return { ...this.#totals };
  }

  #nowKept = -1;
  #forgetNow = (): void => { this.#nowKept = -1; };

  /**
   * Monotonic µs (the core's clock: the context's HostClock). The real clock
   * is read once per turn of the event loop: the first call of a turn keeps
   * the time until the turn's microtasks run, so a loop of 4096 trySend()s
   * reads it once, not 4096 times (performance.now() was 16% of a sender's
   * profile). After long synchronous work in one turn the kept time is
   * behind: what is stamped with it (a keepalive's last send, an ack's
   * delay) comes due early by that much; a request's timeout is counted
   * from freshNow(). A HostClock of the caller's (the simulator's) is asked
   * every time.
   */
  /** The clock read now (kept for the rest of the turn): for inputs that arm a user's timeout. */
  freshNow(): number {
    this.#nowKept = -1;
    return this.now();
  }

  now(): number {
    if (this.#nowKept >= 0) return this.#nowKept;
    const t = this.clock.now();
    if (this.clock === realClock) {
      this.#nowKept = t;
      queueMicrotask(this.#forgetNow);
    }
    return t;
  }

  /** The error that ended this context (NEXIO_ERR_CLOSED after close(), NEXIO_ERR_CORE_TRAP after a trap), if it ended. */
  get failed(): Error | undefined {
    return this.#failed;
  }

  /** Sessions this context may hold (core.maxSessions). */
  get maxSessions(): number {
    return this.core.config.maxSessions;
  }

  /** What the context holds now: sessions, lanes, payloads, timers (a leak check: all 0 once it is idle). */
  usage(): ContextUsage {
    let rxBytes = 0, heldBytes = 0;
    for (const st of this.#lanes.values()) {
      if (st.ext) rxBytes += st.ext.buf.length;
      heldBytes += st.heldBytes;
    }
    for (const x of this.#extIn.values()) rxBytes += x.buf.length;
    return {
      sessions: this.#sessions.size, lanes: this.#lanes.size, handshakes: this.#handshakes.size,
      lingering: this.#lingering.size, txPayloads: this.#ext.size, rxPayloads: this.#extIn.size, rxBytes, heldBytes,
      timers: (this.#timer !== undefined ? 1 : 0) + (this.#hsTimer !== undefined ? 1 : 0) + this.#lingering.size,
    };
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
  async listen(uri: string, advertise?: string, options?: TransportOptions): Promise<string> {
    if (this.#closed) throw this.#failed ?? new ClosedError('context closed');
    let u: URL;
    try { u = new URL(uri); } catch { throw new InvalidArgumentError(`not a portal URI: ${String(uri)}`); }
    const t = transportFor(u);
    // The bound URI (port 0 filled in) once listen() resolved; connections come after it.
    let bound = u.href;
    const l = await t.listen(u, (bind, io) => this.#accepted(t, bound, bind, io), options).catch((e: unknown) => {
      // EADDRINUSE, EACCES, EADDRNOTAVAIL...: a typed error; the system's is its cause.
      if (e instanceof NexioError) throw e;
      const err = e as NodeJS.ErrnoException;
      const why = err.code && !err.message.includes(err.code) ? `${err.code}: ${err.message}` : err.message;
      throw new NexioError('NEXIO_ERR_TRANSPORT', `cannot listen on ${u.href}: ${why}`, Code.TRANSPORT, { cause: e });
    });
    bound = l.uri;
    if (this.#closed) {
      // closed while the portal was being bound: it must not outlive the context
      await l.close();
      throw this.#failed ?? new ClosedError('context closed');
    }
    this.#listeners.push(l);
    const pub = advertise ?? l.uri;
    this.#portals.push(pub);
    return pub;
  }


  /**
   * A transport accepted a connection. It joins the handshake pool: when the
   * pool (or its remote address's share) is full, the oldest connection still
   * in its handshake is evicted, so connections that never speak cannot keep
   * a client that does out for longer than its handshake takes.
   */
  #accepted(t: Transport, portal: string, bind: (sink: LaneSink) => void, io: Lane): void {
    if (this.#closed) { io.destroy(); return; }
    try {
      const addr = addressOf(io.remote);
      const adm = this.#adm;
      if ((this.#perAddr.get(addr) ?? 0) >= adm.maxHandshakesPerAddress) {
        for (const [lane, st] of this.#handshakes) if (st.addr === addr) { this.#evict(lane, st); break; }
      }
      if (this.#handshakes.size >= adm.maxHandshakes) {
        const [lane, st] = this.#handshakes.entries().next().value as [number, LaneState];
        this.#evict(lane, st);
      }
      const now = this.now();
      const lane = this.core.laneAccepted(now);
      if (lane < 0) { io.destroy(); this.#afterInput(); return; }
      if (t.caps.rendezvous) this.core.laneRendezvous(lane, t.caps.rendezvousMin ?? RENDEZVOUS_MIN, now);
      const st: LaneState = {
        io, uri: portal, session: 0, up: true, closing: false, ext: undefined, handshake: true, addr, deadline: now + adm.handshakeMs * 1000, heldBytes: 0,
      };
      this.#lanes.set(lane, st);
      this.#handshakes.set(lane, st);
      this.#perAddr.set(addr, (this.#perAddr.get(addr) ?? 0) + 1);
      this.#armHandshakes();
      bind(this.#sink(lane));
      this.#totals.lanesAccepted++;
      publish('lane', () => ({ event: 'accepted', lane, uri: portal, remote: io.remote }));
      this.#afterInput();
    } catch (e) {
      io.destroy();
      this.#caught(e);
    }
  }

  /** The lane left the handshake pool (its session is up, or it is closing). */
  #handshakeOver(lane: number, st: LaneState): void {
    this.#deciding.delete(st);
    this.#psk?.laneGone(lane);
    if (!st.handshake) return;
    st.handshake = false;
    this.#handshakes.delete(lane);
    const n = (this.#perAddr.get(st.addr) ?? 1) - 1;
    if (n > 0) this.#perAddr.set(st.addr, n);
    else this.#perAddr.delete(st.addr);
    if (this.#handshakes.size === 0 && this.#hsTimer !== undefined) this.#armHandshakes(); // clears it
  }

  /** Drops a connection still in its handshake: destroyed now, its core lane freed. */
  #evict(lane: number, st: LaneState): void {
    this.#handshakeOver(lane, st);
    this.#dropRx(st);
    this.#lanes.delete(lane);
    st.io?.destroy();
    this.#totals.evicted++;
    publish('lane', () => ({ event: 'evicted', lane, uri: st.uri, remote: st.io?.remote }));
    this.core.laneDown(lane, Code.TIMEOUT, this.now());
    this.#afterInput();
  }

  /** One timer for every handshake deadline: the pool is in accept order, so the oldest is due first. */
  #armHandshakes(): void {
    const first = this.#handshakes.values().next();
    if (first.done || this.#closed) {
      if (this.#hsTimer !== undefined) this.clock.clearTimer(this.#hsTimer);
      this.#hsTimer = undefined;
      this.#hsTimerAt = -1;
      return;
    }
    const at = first.value.deadline;
    if (this.#hsTimer !== undefined && this.#hsTimerAt <= at) return;
    if (this.#hsTimer !== undefined) this.clock.clearTimer(this.#hsTimer);
    this.#hsTimerAt = at;
    this.#hsTimer = this.clock.setTimer(() => {
      this.#hsTimer = undefined;
      this.#hsTimerAt = -1;
      if (this.#closed) return;
      try {
        const now = this.now();
        for (const [lane, st] of this.#handshakes) {
          if (st.deadline > now) break;
          this.#evict(lane, st);
        }
        this.#armHandshakes();
      } catch (e) {
        this.#caught(e);
      }
    }, Math.max(1, Math.ceil((at - this.now()) / 1000)));
    this.clock.refTimer?.(this.#hsTimer, false);
  }

  /** Registers a session object for events of this handle. */
  attach(peer: SessionPeer): void {
    this.#sessions.set(peer.handle, peer);
    this.#peerAt[peer.handle & 0xffff] = peer;
    if (this.#timer !== undefined) this.clock.refTimer?.(this.#timer, true);
  }

  detach(handle: number): void {
    this.#sessions.delete(handle);
    if (this.#peerAt[handle & 0xffff]?.handle === handle) this.#peerAt[handle & 0xffff] = undefined;
    this.#laneOptions.delete(handle);
    if (this.#sessions.size === 0 && this.#timer !== undefined) this.clock.refTimer?.(this.#timer, false);
  }

  /** registerMemory(): registrations are per thread, every context of the thread sees them. */
  register(buffer: ArrayBuffer | ArrayBufferView): Registration {
    return registerMemory(buffer);
  }

  // ---- client side ----

  /**
   * Opens a client session; the core asks for lanes through OPEN_LANE events.
   * Throws NEXIO_ERR_LIMIT when the context holds maxSessions sessions.
   */
  connect(uri: string, resource: string, attrs: Uint8Array, lanes: number, options?: TransportOptions, psk?: ClientPsk): number {
    if (this.#closed) throw this.#failed ?? new ClosedError('context closed');
    if (psk) {
      // The HELLO carries the nonce and the identity after resource and attrs, within one control frame.
      const n = HELLO_SIZE + Buffer.byteLength(resource) + attrs.length + NONCE_SIZE + Buffer.byteLength(psk.identity);
      if (n > MAX_CONTROL_FRAME) throw new InvalidArgumentError(`connect: resource, attrs and psk.identity make a HELLO of ${n} bytes; at most ${MAX_CONTROL_FRAME}`);
    }
    const h = this.core.connect(uri, resource, attrs, lanes, this.now());
    if (h > 0 && psk) this.#clientPsk.set(h, { identity: Buffer.from(psk.identity), key: Buffer.from(psk.key), resource: Buffer.from(resource) });
    if (h === -Code.LIMIT) {
      throw new LimitError(`this context holds its limit of ${this.maxSessions} sessions (core.maxSessions); close one or use another context`);
    }
    if (h < 0) throw fromCode(-h, `cannot open a session: ${codeNames[-h] ?? -h}`);
    // Before the first lane opens (the drain below): every lane of the session reads them.
    this.#laneOptions.set(h, { options: options ?? {}, scheme: schemeOf(uri) });
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
    this.#draining.delete(session);
    if (this.#ext.size) for (const [id, x] of this.#ext) if (x.session === session) this.#releaseExt(id);
    // Payloads received whole for messages it will never deliver (an earlier one was missing).
    if (this.#extIn.size) for (const [id, x] of this.#extIn) if (x.session === session) this.#extIn.delete(id);
    this.#clientPsk.delete(session);
    this.#psk?.sessionGone(session);
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
        try {
          const st = this.#lanes.get(lane);
          if (st) st.up = true;
          const min = st?.rendezvousMin;
          if (min) this.core.laneRendezvous(lane, min, this.now());
          // A session with a pre-shared key: a fresh nonce for every lane's HELLO.
          const psk = st?.session ? this.#clientPsk.get(st.session) : undefined;
          if (psk) this.core.authLane(lane, this.#nonce(), psk.identity, this.now());
          this.core.laneUp(lane, this.now());
          this.#afterInput();
        } catch (e) {
          this.#caught(e);
        }
      },
      data: (chunk) => {
        try {
          this.#data(lane, chunk);
        } catch (e) {
          this.#caught(e);
        }
      },
      closed: (err) => {
        const st = this.#lanes.get(lane);
        if (!st) {
          // A retired lane's connection closed before its linger ended.
          const lg = this.#lingering.get(lane);
          if (lg) { this.clock.clearTimer(lg.timer); this.#lingering.delete(lane); }
          return;
        }
        this.#lanes.delete(lane);
        this.#handshakeOver(lane, st);
        this.#dropRx(st);
        if (this.#closed) return;
        try {
          this.core.laneDown(lane, err ? Code.TRANSPORT : Code.CLOSED, this.now());
          publish('lane', () => ({ event: 'closed', lane, uri: st.uri, error: err }));
          this.#afterInput();
          // A lane that never came up, or one whose failure a retry cannot mend (a certificate refused).
          if (err && (!st.up || (err as { reason?: string }).reason) && st.session) this.#sessions.get(st.session)?.onLaneFailed(st.uri, err);
        } catch (e) {
          this.#caught(e);
        }
      },
    };
  }

  #data(lane: number, chunk: Uint8Array): void {
    const core = this.core;
    if (this.#closed) return;
    let off = 0;
    let stalls = 0;
    while (off < chunk.length) {
      const st = this.#lanes.get(lane);
      if (!st) return;
      const x = st.ext;
      if (x?.rdv) {
        // The payload is being READ; what follows it on the lane waits, up
        // to what a peer keeping to its window could have sent meanwhile.
        const rest = chunk.length - off;
        st.heldBytes += rest;
        if (st.heldBytes > this.#heldMax()) {
          publish('lane', () => ({ event: 'protocol-error', lane, code: Code.WINDOW, reason: 'bytes held during a rendezvous READ over the limit' }));
          st.io?.destroy();
          return;
        }
        (st.held ??= []).push(Buffer.from(chunk.subarray(off)));
        break;
      }
      if (x) {
        const n = Math.min(chunk.length - off, x.len - x.off);
        if (!x.discard) {
          // Grow by what arrived (doubling, or whole within the budget), never by the claim alone.
          if (x.off + n > x.buf.length) this.#grow(x, x.off + n);
          x.buf.set(chunk.subarray(off, off + n), x.off);
          this.#unfilled -= n;
        }
        x.off += n;
        off += n;
        // The core sees no frames while a payload streams past it: tell it
        // the lane is alive (an empty rx) now and then, or a slow transfer
        // longer than the dead-lane time would be taken for a dead lane.
        const now = this.now();
        if (now - x.alive >= EXT_ALIVE_US && x.off < x.len) {
          x.alive = now;
          core.rx(lane, EMPTY, now);
        }
        if (x.off === x.len) {
          st.ext = undefined;
          if (!x.discard) this.#extIn.set(x.id, { buf: x.buf, session: x.session });
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

  /** A pre-shared-key nonce: 32 bytes from the CSPRNG (or the context's own source). */
  #nonce(): Buffer {
    const n = Buffer.alloc(NONCE_SIZE);
    if (this.#random) this.#random(n);
    else randomFillSync(n);
    return n;
  }

  /** A session key: 16 bytes from the CSPRNG (or the context's own source). */
  #key(): Buffer {
    if (!this.#random) return sessionKey();
    const k = Buffer.alloc(KEY_SIZE);
    do this.#random(k); while (k.every((b) => b === 0)); // all-zero is no key (the core refuses it)
    return k;
  }

  /** Grows an arriving payload's buffer to hold at least `need` bytes. */
  #grow(x: RxPayload, need: number): void {
    const double = Math.min(x.len, Math.max(x.buf.length * 2, need));
    const size = this.#unfilled + (x.len - x.buf.length) <= RX_PREALLOC ? x.len : double;
    const b = Buffer.allocUnsafe(size);
    b.set(x.buf.subarray(0, x.off));
    this.#unfilled += size - x.buf.length;
    x.buf = b;
  }

  /** A lane with a payload still arriving is gone: its unfilled bytes leave the budget. */
  #dropRx(st: LaneState): void {
    const x = st.ext;
    if (!x) return;
    st.ext = undefined;
    if (x.buf.length > x.off) this.#unfilled -= x.buf.length - x.off;
  }

  /** Lane bytes one lane may hold while a READ runs: a window's worth and a batch. */
  #heldMax(): number {
    return this.core.config.windowBytes + 2 * 65536;
  }

  #afterInput(): void {
    this.#drain();
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(this.#flushLater);
    }
  }

  /** Phase 1: read the core's events with no application code running. Phase 2: dispatch. */
  #drain(): void {
    const core = this.core;
    if (core.trapped || this.#closed) return;
    for (;;) {
      const n = core.pollEvents();
      if (n === 0) break;
      const start = this.#count;
      const ev = this.#ev;
      const w = core.eventWords;
      for (let i = 0; i < n; i++) {
        const q = core.eventWord(i);
        const type = w[q];
        // A message without an ext payload (most events, without views):
        // straight into its dispatch record, its bytes left in the ring.
        if ((type === Ev.REQUEST || type === Ev.MESSAGE || type === Ev.RESPONSE) && w[q + 12] === 0 && !this.views) {
          let p = this.#pool[this.#count];
          if (!p) p = this.#pool[this.#count] = new Pending();
          this.#count++;
          p.ev = type; p.session = w[q + 1]; p.lane = w[q + 2]; p.code = 0;
          p.seq = w[q + 4] + w[q + 5] * 4294967296; p.tag = w[q + 6]; p.flags = w[q + 7];
          const hp = w[q + 8], dp = w[q + 10];
          p.lazy = true; p.hp = hp; p.hl = hp ? w[q + 9] : 0; p.dp = dp; p.dl = dp ? w[q + 11] : 0;
          p.h = EMPTY; p.d = EMPTY; p.aux = 0; p.aux64 = 0n;
          continue;
        }
        core.event(i, ev);
        this.#read(ev, i);
      }
      const end = this.#count;
      // Application code runs from here: an input it makes may start a nested
      // drain, which uses the records above `end` and gives them back.
      for (let k = start; k < end; k++) {
        // An application callback that throws (a hot callback, a 'message' listener) must
        // not lose the events after it: rethrown on the next tick, the batch goes on.
        try { this.#dispatch(this.#pool[k]); } catch (e) { this.#caught(e); }
      }
      this.#count = start;
      if (this.#closed) return;
    }
  }

  #read(e: CoreEvent, i: number): void {
    const core = this.core;
    switch (e.type) {
      case Ev.OPEN_LANE: {
        const uri = core.copy(e.hdrPtr, e.hdrLen).toString();
        this.#openLane(e.lane, uri, e.session);
        return;
      }
      case Ev.CLOSE_LANE: {
        const st = this.#lanes.get(e.lane);
        if (st && !st.closing) {
          st.closing = true;
          this.#closing.push(e.lane);
          this.#handshakeOver(e.lane, st);
        }
        return;
      }
      case Ev.EXT_RX: {
        const st = this.#lanes.get(e.lane);
        if (!st) return;
        const rdv = (e.flags & 2) !== 0;
        const discard = (e.flags & 1) !== 0;
        // dataLen was checked by the core against maxMessageBytes; even so,
        // only a READ's destination is allocated whole up front.
        const whole = rdv || this.#unfilled + e.dataLen <= RX_PREALLOC;
        const first = discard ? 0 : whole ? e.dataLen : Math.min(e.dataLen, RX_FIRST);
        const x: RxPayload = { buf: first ? Buffer.allocUnsafe(first) : EMPTY, off: 0, len: e.dataLen, id: e.ext, session: e.session, discard, alive: this.now(), rdv };
        this.#unfilled += first;
        st.ext = x;
        if (rdv) this.#rendezvous(e.lane, st, x, core.eventAux64(i), e.aux);
        return;
      }
      case Ev.EXT_RELEASE:
        if (e.flags & 1) this.#extIn.delete(e.ext);
        else this.#releaseExt(e.ext);
        return;
      case Ev.SESSION_OPEN:
      case Ev.SESSION_RESUMED:
      case Ev.LANE_UP: {
        // The lane's session is up: it leaves the handshake pool.
        const st = this.#lanes.get(e.lane);
        if (st?.handshake) this.#handshakeOver(e.lane, st);
        break;
      }
      case Ev.SESSION_LOST:
      case Ev.SESSION_CLOSED:
      case Ev.SESSION_REJECTED:
        // Ends (SESSION_CLOSED with a code is the peer's CLOSE: draining,
        // our unacked payloads may still be resent; #flush sees when the
        // core lets it go). Dispatched below.
        if (e.type === Ev.SESSION_CLOSED && e.code !== 0) this.#draining.add(e.session);
        else this.releaseSessionExts(e.session);
        break;
    }
    let p = this.#pool[this.#count];
    if (!p) p = this.#pool[this.#count] = new Pending();
    this.#count++;
    let h: Buffer = EMPTY, d: Buffer = EMPTY;
    const message = e.type === Ev.REQUEST || e.type === Ev.MESSAGE || e.type === Ev.RESPONSE;
    // Views: the ring bytes stay put until the application releases the
    // message (the core holds its ack), so they are lent now. Otherwise a
    // message's bytes are taken at dispatch (#take): the ring holds them
    // until the next rx(), which no dispatch can cause, so a hot receiver is
    // lent them for its call and everyone else gets one copy.
    const lend = this.views && message;
    const lazy = !this.views && message;
    p.lazy = lazy;
    if (lazy) {
      p.hp = e.hdrPtr; p.hl = e.hdrPtr ? e.hdrLen : 0;
      p.dp = e.dataPtr; p.dl = !e.ext && e.dataPtr ? e.dataLen : 0;
    } else if (e.hdrLen && e.hdrPtr) h = lend ? core.lend(e.hdrPtr, e.hdrLen) : core.copy(e.hdrPtr, e.hdrLen);
    if (e.ext) {
      d = this.#extIn.get(e.ext)?.buf ?? EMPTY;
      this.#extIn.delete(e.ext);
    } else if (!lazy && e.dataLen && e.dataPtr) {
      d = lend ? core.lend(e.dataPtr, e.dataLen) : core.copy(e.dataPtr, e.dataLen);
    }
    p.ev = e.type; p.session = e.session; p.lane = e.lane; p.code = e.code; p.seq = e.seq; p.tag = e.tag;
    p.flags = e.flags; p.h = h; p.d = d; p.aux = e.aux;
    p.aux64 = e.type === Ev.SESSION_OPEN || e.type === Ev.AUTH_REQUEST || e.type === Ev.AUTH_CHALLENGE ? core.eventAux64(i) : 0n;
  }

  #dispatch(p: Pending): void {
    if (this.#closed) return;
    if (p.ev === Ev.SESSION_REQUEST) {
      // A server with pre-shared keys takes no session without one (before onSession).
      if (this.#psk) this.#authRefuse(p.lane, '', 'this server requires a pre-shared key');
      else this.#decide(p.lane, p.h.toString(), p.d, p.aux);
      return;
    }
    if (p.ev >= Ev.AUTH_REQUEST && p.ev <= Ev.AUTH_PROOF) {
      this.#auth(p);
      return;
    }
    const at = this.#peerAt[p.session & 0xffff];
    let peer = at !== undefined && at.handle === p.session ? at : this.#sessions.get(p.session);
    if (p.ev === Ev.SESSION_OPEN && !peer && this.#onAccepted) {
      this.#onAccepted(p.session, p.lane);
      peer = this.#sessions.get(p.session);
    }
    if (p.ev === Ev.PROTOCOL_ERROR) this.#totals.protocolErrors++;
    if (!peer) {
      if (p.ev === Ev.PROTOCOL_ERROR) publish('lane', () => ({ event: 'protocol-error', lane: p.lane, code: p.code }));
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
      case Ev.REQUEST: if (p.lazy) this.#take(p, peer); peer.onRequest(p.tag, p.h, p.d, p.flags, p.seq); break;
      case Ev.MESSAGE: if (p.lazy) this.#take(p, peer); peer.onMessage(p.seq, p.h, p.d, p.flags); break;
      case Ev.RESPONSE: if (p.lazy) this.#take(p, peer); peer.onResponse(p.tag, p.h, p.d, p.flags, p.seq); break;
      case Ev.RECEIPT: peer.onReceipt(p.seq, p.tag); break;
      case Ev.REQUEST_FAILED: peer.onRequestFailed(p.tag, p.code); break;
      case Ev.CANCEL: peer.onCancel(p.tag); break;
      case Ev.DRAIN: peer.onDrain(); break;
    }
  }

  /** A message's bytes out of the receive ring: lent to a hot receiver, one copy for anyone else. */
  #take(p: Pending, peer: SessionPeer): void {
    const core = this.core;
    const lend = peer.lends(p.ev, p.tag);
    p.h = p.hl === 0 ? EMPTY : lend ? core.lend(p.hp, p.hl) : core.copy(p.hp, p.hl);
    if (p.dl !== 0) p.d = lend ? core.lend(p.dp, p.dl) : core.copy(p.dp, p.dl);
    p.lazy = false;
  }

  /** The pre-shared-key exchange's events (assembly/auth.ts): proofs made and checked here. */
  #auth(p: Pending): void {
    const lane = p.lane;
    const now = this.now();
    if (p.ev === Ev.AUTH_CHALLENGE) {
      // Client: our proof, and the one the server's ACCEPT must carry.
      const c = this.#clientPsk.get(p.session);
      if (!c) return; // the session ended meanwhile
      const pr = pskProofs(c.key, c.identity, p.h, p.d, p.aux64, c.resource);
      this.core.authProof(lane, pr.client, pr.server, now);
      this.#afterInput();
      return;
    }
    const st = this.#lanes.get(lane);
    const remote = st?.io?.remote ?? '';
    if (p.ev === Ev.AUTH_REQUEST) {
      const identity = p.h.subarray(NONCE_SIZE).toString();
      const psk = this.#psk;
      if (!psk) { this.#authRefuse(lane, identity, 'this server takes no pre-shared keys'); return; }
      // The record is reused after dispatch; the key lookup may answer later.
      const { h, d, tag, aux, aux64, session } = p;
      const challenge = (key: Uint8Array) => {
        // The lane may have gone meanwhile (closed by its peer, its handshake deadline).
        if (this.#closed || this.core.trapped || this.#lanes.get(lane) !== st || st?.closing) return;
        try {
          const nonce = this.#nonce();
          psk.request(lane, key, h, d, tag, aux, aux64, session, addressOf(remote), nonce);
          this.core.authChallenge(lane, nonce, this.now());
          this.#afterInput();
        } catch (e) {
          this.#caught(e);
        }
      };
      const key = psk.keyFor(identity, session);
      if (key instanceof Promise) void key.then(challenge, (e) => this.#caught(e));
      else challenge(key);
      return;
    }
    // AUTH_PROOF (server)
    const v = this.#psk?.verify(lane, p.d) ?? {};
    const a = v.passed;
    if (!a) {
      publish('auth', () => ({ event: 'failed', lane, remote, identity: v.identity, reason: 'wrong proof' }));
      this.core.reject(lane, Code.AUTH, 'pre-shared key authentication failed', now);
      this.#afterInput();
      return;
    }
    publish('auth', () => ({ event: 'passed', lane, remote, identity: a.identity }));
    this.core.authPassed(lane, a.proof, now);
    this.#afterInput();
    if (!a.session) this.#decide(lane, a.resource.toString(), a.attrs, a.version, { identity: a.identity, resource: a.resource });
  }

  /** Refuses a lane with REJECT(auth), counted by identity and address. */
  #authRefuse(lane: number, identity: string, message: string): void {
    const remote = this.#lanes.get(lane)?.io?.remote ?? '';
    this.#psk?.fail(identity, addressOf(remote));
    publish('auth', () => ({ event: 'failed', lane, remote, identity, reason: message }));
    this.core.reject(lane, Code.AUTH, message, this.now());
    this.#afterInput();
  }

  /** authed: the lane proved a pre-shared key (its identity, and the resource's bytes its joins' proofs cover). */
  #decide(lane: number, resource: string, attrs: Buffer, version: number, authed?: { identity: string; resource: Buffer }): void {
    // The decision may come later.
    const st = this.#lanes.get(lane);
    const info: SessionRequestInfo = {
      resource, attrs, version, remote: st?.io?.remote ?? '', portal: st?.uri ?? '',
      ...(st?.io?.tls ? { tls: st.io.tls } : {}),
      ...(authed ? { identity: authed.identity } : {}),
    };
    // Counted until decided or until the lane goes (an onSession that never answers
    // must not hold a session's place after its connection was evicted).
    if (st) this.#deciding.add(st);
    const apply = (d: SessionDecision) => {
      if (st) this.#deciding.delete(st);
      // The lane may have gone meanwhile (evicted at its handshake deadline, closed by its peer).
      if (this.#closed || this.core.trapped || !st || this.#lanes.get(lane) !== st || st.closing) return;
      try {
        const now = this.now();
        if ('redirect' in d) this.core.redirect(lane, d.redirect, now);
        else if ('reject' in d) this.core.reject(lane, d.reject || Code.REJECTED, d.message ?? '', now);
        else if (this.#sessions.size >= this.maxSessions) {
          this.core.reject(lane, Code.LIMIT, `the server holds its limit of ${this.maxSessions} sessions`, now);
        } else {
          const h = this.core.accept(lane, this.#key(), sameSecurity(this.#portals, st.uri), d.attrs ?? EMPTY, now);
          if (authed && h > 0) this.#psk?.accepted(h, authed.identity, authed.resource);
        }
        this.#afterInput();
      } catch (e) {
        this.#caught(e);
      }
    };
    if (!this.#policy) { apply({ reject: Code.REJECTED, message: 'this context accepts no sessions' }); return; }
    if (this.#sessions.size + this.#deciding.size > this.maxSessions) {
      apply({ reject: Code.LIMIT, message: `the server holds its limit of ${this.maxSessions} sessions` });
      return;
    }
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
  #rendezvous(lane: number, st: LaneState, x: RxPayload, addr: bigint, rkey: number): void {
    const io = st.io;
    if (!io?.read) { io?.destroy(); return; }
    const alive = (): void => {
      // READs landing are life on the lane, like ext bytes on a stream
      const now = this.now();
      if (now - x.alive < EXT_ALIVE_US || this.#closed || this.core.trapped || this.#lanes.get(lane) !== st || st.ext !== x) return;
      x.alive = now;
      try {
        this.core.rx(lane, EMPTY, now);
        this.#afterInput();
      } catch (e) {
        this.#caught(e);
      }
    };
    io.read(addr, rkey, x.buf, (err) => {
      if (this.#closed || this.core.trapped || this.#lanes.get(lane) !== st || st.ext !== x) return;
      if (err) { io.destroy(); return; }
      try {
        st.ext = undefined;
        this.#unfilled -= x.buf.length - x.off;
        if (!x.discard) this.#extIn.set(x.id, { buf: x.buf, session: x.session });
        this.core.extDone(lane, this.now());
        this.#drain();
        const held = st.held;
        st.held = undefined;
        st.heldBytes = 0;
        if (held) for (const c of held) this.#data(lane, c);
        this.#afterInput();
      } catch (e) {
        this.#caught(e);
      }
    }, alive);
  }

  #openLane(lane: number, uri: string, session: number): void {
    let u: URL;
    let t: Transport;
    const st: LaneState = { io: undefined, uri, session, up: false, closing: false, ext: undefined, handshake: false, addr: '', deadline: 0, heldBytes: 0 };
    this.#lanes.set(lane, st);
    try {
      u = new URL(uri);
      t = transportFor(u);
      // (An input here would invalidate the events being read: the core
      // learns about rendezvous when the lane is up.)
      if (t.caps.rendezvous) st.rendezvousMin = t.caps.rendezvousMin ?? RENDEZVOUS_MIN;
      const lo = this.#laneOptions.get(session);
      // A session opened over tls:// stays on tls:// (a redirect or a portal list cannot downgrade it).
      if (lo?.scheme === 'tls' && u.protocol !== 'tls:') {
        throw new NexioError('NEXIO_ERR_TRANSPORT', `a tls:// session opens only tls:// lanes, not ${uri}`, Code.TRANSPORT);
      }
      st.io = t.connect(u, this.#sink(lane), lo?.options);
    } catch (e) {
      // Report the failure as the lane going down, after this drain.
      queueMicrotask(() => this.#sink(lane).closed(e as Error));
      return;
    }
    publish('lane', () => ({ event: 'open', lane, uri }));
  }

  #flush(): void {
    this.#flushQueued = false;
    const core = this.core;
    if (core.trapped || this.#closed) return;
    try {
      for (let round = 0; round < 8; round++) {
        const now = this.now();
        for (;;) {
          const lane = core.pollTransmit(now);
          if (lane === 0) break;
          const st = this.#lanes.get(lane);
          if (!st?.io) continue;
          // Lent where the lane copies before it returns (tcp://, tls://, mem://):
          // the batch is read straight out of core memory, no Buffer made for it.
          const bytes = st.io.lends ? core.txView() : Buffer.from(core.txView());
          const ext = core.txExt();
          const rdv = ext ? core.txRdv() : -1;
          if (rdv >= 0 && st.io.unpin) {
            const on = this.#extRdv.get(ext);
            if (!on) this.#extRdv.set(ext, [st.io]);
            else on.push(st.io); // one unpin per rendezvous write
          }
          st.io.write(bytes, ext ? this.#ext.get(ext)?.data : undefined, rdv >= 0 ? rdv : undefined);
        }
        // Lanes the core closed: what it had for them is written; the
        // connection ends and lingers (destroyed after lingerMs whatever its
        // peer does), and the core's lane is freed now, so neither a peer
        // that never closes nor the linger holds a lane of the table.
        if (this.#closing.length === 0) break;
        const closing = this.#closing;
        this.#closing = [];
        for (const lane of closing) {
          const st = this.#lanes.get(lane);
          if (!st?.closing) continue;
          this.#lanes.delete(lane);
          this.#handshakeOver(lane, st);
          this.#dropRx(st);
          if (st.io) this.#linger(lane, st.io);
          core.laneDown(lane, Code.CLOSED, now);
        }
        this.#drain();
      }
      if (this.#draining.size) {
        // Sessions the peer closed that the core has let go (a query, not an input).
        for (const h of this.#draining) if (!core.sessionInfo(h)) this.releaseSessionExts(h);
      }
    } catch (e) {
      this.#caught(e);
      return;
    }
    this.#arm();
  }

  /** Ends a connection and destroys it after lingerMs unless it closed by then (its sink's closed() clears the timer). */
  #linger(lane: number, io: Lane): void {
    const timer = this.clock.setTimer(() => {
      this.#lingering.delete(lane);
      io.destroy();
    }, this.#adm.lingerMs);
    this.clock.refTimer?.(timer, false);
    this.#lingering.set(lane, { io, timer });
    io.end();
  }

  #arm(): void {
    if (this.#closed) return;
    const d = this.core.nextDeadline();
    const clock = this.clock;
    if (d < 0) {
      if (this.#timer !== undefined) clock.clearTimer(this.#timer);
      this.#timer = undefined;
      this.#timerAt = -1;
      return;
    }
    // A timer armed for d or earlier is kept: most turns move the deadline
    // later (keepalive, retransmission), and a timer that fires early only
    // arms itself again, which costs less than setting a timer every turn.
    if (this.#timer !== undefined && this.#timerAt <= d) return;
    if (this.#timer !== undefined) clock.clearTimer(this.#timer);
    this.#timerAt = d;
    const ms = Math.max(0, (d - this.now()) / 1000);
    this.#timer = clock.setTimer(() => {
      this.#timer = undefined;
      this.#timerAt = -1;
      if (this.#closed || this.core.trapped) return;
      try {
        const now = this.now();
        const due = this.core.nextDeadline();
        if (due < 0) return;
        if (due > now) { this.#arm(); return; }
        this.core.timeout(now);
        this.#afterInput();
      } catch (e) {
        this.#caught(e);
      }
    }, Math.ceil(ms));
    // While a session lives the timer holds the process: with every lane
    // down it is all that is left of a reconnect, a resume or a timeout, and
    // an exit would drop pending requests without a word.
    if (this.#sessions.size === 0) clock.refTimer?.(this.#timer, false);
  }

  /** Keeps the process alive while sessions are open (timers are unref'd otherwise). */
  ref(on: boolean): void {
    if (this.#timer !== undefined) this.clock.refTimer?.(this.#timer, on);
  }

  /** Stops accepting connections; lanes already up stay up (close() ends them). */
  stopListening(): void {
    // A listener's close() resolves when its connections have ended: keep
    // the promise for close().
    for (const l of this.#listeners) this.#unlistened.push(l.close());
    this.#listeners = [];
  }

  /** An error thrown inside the loop: a core trap fails the context; anything else is a bug, reported on the next tick. */
  #caught(e: unknown): void {
    if (e instanceof CoreTrapError) { this.#fail(e); return; }
    if (this.core.trapped) { this.#fail(this.core.trapped); return; }
    process.nextTick(() => { throw e; });
  }

  /**
   * Ends the context with `err`: every session on it ends with it (each
   * pending operation settles with it), every lane is destroyed, nothing
   * more is accepted.
   */
  #fail(err: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#failed = err;
    if (this.#timer !== undefined) this.clock.clearTimer(this.#timer);
    this.#timer = undefined;
    if (this.#hsTimer !== undefined) this.clock.clearTimer(this.#hsTimer);
    this.#hsTimer = undefined;
    this.stopListening();
    for (const st of this.#lanes.values()) st.io?.destroy();
    this.#lanes.clear();
    this.#closing = [];
    this.#unfilled = 0;
    this.#handshakes.clear();
    this.#deciding.clear();
    this.#perAddr.clear();
    for (const { io, timer } of this.#lingering.values()) { this.clock.clearTimer(timer); io.destroy(); }
    this.#lingering.clear();
    const sessions = [...this.#sessions.values()];
    this.#sessions.clear();
    this.#peerAt = [];
    for (const s of sessions) { try { s.onEnd(err); } catch (e) { process.nextTick(() => { throw e; }); } }
    this.#ext.clear();
    this.#extRdv.clear();
    this.#extIn.clear();
    this.#draining.clear();
    publish('context', () => ({ event: 'ended', error: err }));
  }

  /**
   * Stops listening, ends every session on this context with
   * NEXIO_ERR_CLOSED (their pending operations reject with it) and drops
   * every lane. Idempotent.
   */
  async close(): Promise<void> {
    this.#fail(this.#failed ?? new ClosedError('context closed'));
    // A listener's close() waits for its connections to end: #fail destroyed them.
    const listeners = this.#unlistened;
    await Promise.all(listeners);
  }
}

function schemeOf(uri: string): string {
  const i = uri.indexOf(':');
  return i > 0 ? uri.slice(0, i) : '';
}

/**
 * The portals a session that arrived on `portal` is told about: tls:// ones
 * for a tls:// session (its other lanes must be TLS too), the others for the
 * rest (they could not open a tls:// lane without the client's tls options).
 */
export function sameSecurity(portals: string[], portal: string): string[] {
  const tls = schemeOf(portal) === 'tls';
  if (!portals.some((p) => (schemeOf(p) === 'tls') !== tls)) return portals;
  return portals.filter((p) => (schemeOf(p) === 'tls') === tls);
}

/** The address part of a transport's remote ('127.0.0.1:5000' -> '127.0.0.1', '[::1]:5' -> '::1'). */
function addressOf(remote: string): string {
  const m = /^\[?([^\]]*?)\]?:\d+$/.exec(remote);
  return m ? m[1] : remote;
}

const EMPTY: Buffer = Buffer.alloc(0);
/** Smallest EXT payload sent by rendezvous when the transport names none. */
const RENDEZVOUS_MIN = 64 * 1024;
/** The first piece of an arriving ext payload past the budget; it grows (doubling) as bytes arrive. */
const RX_FIRST = 64 * 1024;
/** Bytes of claims a context allocates whole before their bytes arrive (#unfilled). */
const RX_PREALLOC = 16 * 1024 * 1024;
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
