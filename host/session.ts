// Session: the application's side of one nexio session, client or server.
//
// Two ways to use it:
//  - ordinary: request() and send() return Promises, take an AbortSignal and
//    a timeout, and wait (in a bounded queue) when credits are short;
//  - hot path: trySend() / tryRequest() return false when credits are short
//    and the session emits 'drain' when they are back: nothing is queued and
//    nothing is allocated per message beyond the payload the core copies.

import { EventEmitter } from 'node:events';
import type { Context, SessionPeer } from './context';
import { Ev, FLAG_APP_ERROR, FLAG_EXT, FLAG_RECEIPT, INLINE_MAX, MAX_APP_HEADER } from './core';
import {
  AbortedError, BackpressureError, ClosedError, Code, codeNames, fromCode, NexioError, ProtocolError,
  RejectedError, SessionLostError, TimeoutError, AuthError, InvalidArgumentError, LimitError, TransportError,
} from './errors';
import { debug, publish } from './diagnostics';
import type { SessionMessage } from './diagnostics';
import { check, checkOptions, bool, either, fn, ms, signal as signalCheck } from './options';

export type Bytes = Uint8Array | string;

/** A session's state (`session.state`, `stats().state`). */
export type SessionState = 'connecting' | 'open' | 'resuming' | 'closing' | 'closed';

/**
 * A session's events and their listeners' signatures: `on`, `once`, `off`
 * and `emit` take only these names (a misspelled one fails to compile).
 */
export interface SessionEvents {
  /** The session is open; `attrs` are the server's accept attrs (client), empty otherwise. */
  open: (attrs: Buffer) => void;
  /** A one-way message. With `views`, header and data are lent: call `release()` when done. */
  message: (header: Buffer, data: Buffer, release?: () => void) => void;
  /** The peer's receipt for the message `seq` (or for a request asked with `receipt`). */
  receipt: (seq: number) => void;
  /** Credits are back after trySend()/tryRequest() answered false. */
  drain: () => void;
  /** A lane (connection) came up. */
  'lane-up': (lane: number, code: number) => void;
  /** A lane went down (`code`: the core's code, e.g. Code.TRANSPORT); the session fails over. */
  'lane-down': (lane: number, code: number) => void;
  /** The session is back after every lane was down. */
  resumed: () => void;
  /** The peer broke the protocol on a lane (only that lane closed). */
  'protocol-error': (error: ProtocolError, lane: number) => void;
  /** The session ended abnormally (lost, rejected, the peer closed it). Emitted only when a listener is attached. */
  error: (error: Error) => void;
  /** The session ended: `error` is why, undefined after an orderly close. */
  close: (error?: Error) => void;
}

type Listener<E extends keyof SessionEvents> = SessionEvents[E];

// Typed events: these declarations merge with the class below.
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export interface Session {
  on<E extends keyof SessionEvents>(event: E, listener: Listener<E>): this;
  once<E extends keyof SessionEvents>(event: E, listener: Listener<E>): this;
  off<E extends keyof SessionEvents>(event: E, listener: Listener<E>): this;
  addListener<E extends keyof SessionEvents>(event: E, listener: Listener<E>): this;
  removeListener<E extends keyof SessionEvents>(event: E, listener: Listener<E>): this;
  prependListener<E extends keyof SessionEvents>(event: E, listener: Listener<E>): this;
  prependOnceListener<E extends keyof SessionEvents>(event: E, listener: Listener<E>): this;
  emit<E extends keyof SessionEvents>(event: E, ...args: Parameters<SessionEvents[E]>): boolean;
  listenerCount<E extends keyof SessionEvents>(event: E): number;
  removeAllListeners<E extends keyof SessionEvents>(event?: E): this;
}

export interface RequestOptions {
  /** Aborting it cancels the request (NEXIO_ERR_ABORTED; the responder's req.signal aborts too). */
  signal?: AbortSignal;
  /**
   * ms from the call until the request fails with NEXIO_ERR_TIMEOUT,
   * time waiting for credit included (0, the default: none).
   */
  timeout?: number;
  /**
   * Ask for a delivery receipt. A function is called once, when the peer's
   * application got the request (before it answered; at the latest just
   * before the response resolves the promise); `true` only emits the
   * session's 'receipt' event.
   */
  receipt?: boolean | (() => void);
}

export interface SendOptions {
  /**
   * Resolve only when the peer application got the message (a delivery
   * receipt). If the session ends first, the promise rejects with the
   * session's end (NEXIO_ERR_CLOSED, NEXIO_ERR_SESSION_LOST, ...).
   */
  receipt?: boolean;
}

export interface CloseOptions {
  /**
   * ms the graceful close may take (outstanding requests both ways, then
   * the CLOSE handshake); past it the session is destroyed and whatever is
   * still pending rejects with NEXIO_ERR_CLOSED. Default 5000.
   */
  timeout?: number;
}

export interface Reply {
  header: Buffer;
  data: Buffer;
  /**
   * Zero-copy receive (`views: true`) only: header and data are lent views;
   * call release() when done with them (idempotent). Until then the
   * message's credit is not returned to the sender.
   */
  release?: () => void;
}

/** A request the server's handler answers. */
export interface IncomingRequest {
  readonly session: Session;
  readonly header: Buffer;
  readonly data: Buffer;
  /** Aborted when the requester cancels or times out. */
  readonly signal: AbortSignal;
}

/** What a handler answers: { header, data } (each bytes or a string, either may be left out), bytes (the data), or nothing. */
export type HandlerResult = { header?: Bytes; data?: Bytes } | Bytes | undefined | void;
export type Handler = (req: IncomingRequest) => HandlerResult | Promise<HandlerResult>;
/**
 * The hot form of a request handler: no request or reply object. header and
 * data are lent: valid during the call only (copy what you keep). Answer
 * with `session.reply(tag, header, data)`, now or later, once.
 */
export type HotHandler = (session: Session, tag: number, header: Buffer, data: Buffer) => void;
/** A hot one-way receiver: header and data are lent, valid during the call only (copy what you keep). */
export type HotMessage = (session: Session, header: Buffer, data: Buffer) => void;

/** The error a requester gets when the responder's handler threw. */
export class RemoteError extends NexioError {
  readonly remoteCode: string;
  constructor(message: string, remoteCode: string) {
    super('NEXIO_ERR_REMOTE', message);
    this.remoteCode = remoteCode;
  }
}

/** A side's traffic counts: a session's, or summed over a server context's sessions (ContextStats). */
export interface TrafficCounts {
  /** Requests this side issued, and requests it received (its handler's). */
  requests: number;
  requestsReceived: number;
  /** Responses received (to its requests) and sent (its handler's answers). */
  responses: number;
  messagesSent: number;
  messagesReceived: number;
  /** One-way messages received with no 'message' listener (dropped; their receipt was sent all the same). */
  messagesDropped: number;
  bytesSent: number;
  bytesReceived: number;
}

/** The keys of TrafficCounts, for summing them. */
export const trafficKeys = [
  'requests', 'requestsReceived', 'responses', 'messagesSent', 'messagesReceived', 'messagesDropped', 'bytesSent', 'bytesReceived',
] as const satisfies readonly (keyof TrafficCounts)[];

export interface SessionStats extends TrafficCounts {
  state: SessionState;
  id: string;
  failovers: number;
  lanesUp: number;
  resumes: number;
  protocolErrors: number;
  rtt: { count: number; meanUs: number; minUs: number; maxUs: number };
  core?: { txNextSeq: number; txAcked: number; rxNext: number; windowMsgs: number; windowBytes: number; maxRequests: number };
}

type HotCallback = (err: Error | null, header: Buffer, data: Buffer, tag: number) => void;

interface Slot {
  resolve?: (r: Reply) => void;
  reject?: (e: Error) => void;
  hot?: HotCallback;
  signal?: AbortSignal;
  onAbort?: () => void;
  /** Called when the request's receipt arrives (RequestOptions.receipt). */
  receipt?: () => void;
  t0: number;
}

const EMPTY: Buffer = Buffer.alloc(0);

/**
 * Requests in flight by full tag: a table indexed by the tag's index (its
 * low 16 bits; the core's request slots, below maxRequests) holding the
 * full tag, so a lookup is an array read and a compare, not a Map. The core
 * frees an index when it delivers the response, so a request issued while
 * an earlier response of the same batch still waits for dispatch can get
 * the same index: that one goes to a Map beside the table.
 */
class SlotTable {
  #tags: Uint32Array;
  #slots: (Slot | undefined)[];
  #over = new Map<number, Slot>();
  size = 0;

  constructor(n: number) {
    this.#tags = new Uint32Array(n);
    this.#slots = new Array<Slot | undefined>(n).fill(undefined);
  }

  get(tag: number): Slot | undefined {
    const i = tag & 0xffff;
    if (i < this.#tags.length && this.#tags[i] === tag) return this.#slots[i];
    return this.#over.size === 0 ? undefined : this.#over.get(tag);
  }

  set(tag: number, slot: Slot): void {
    const i = tag & 0xffff;
    if (i < this.#tags.length && this.#tags[i] === 0) { this.#tags[i] = tag; this.#slots[i] = slot; }
    else this.#over.set(tag, slot);
    this.size++;
  }

  delete(tag: number): boolean {
    const i = tag & 0xffff;
    if (i < this.#tags.length && this.#tags[i] === tag) { this.#tags[i] = 0; this.#slots[i] = undefined; this.size--; return true; }
    if (this.#over.delete(tag)) { this.size--; return true; }
    return false;
  }

  /** Every [tag, slot], taken as a list first (the caller may delete while it goes). */
  entries(): [number, Slot][] {
    const out: [number, Slot][] = [];
    for (let i = 0; i < this.#tags.length; i++) if (this.#tags[i] !== 0) out.push([this.#tags[i], this.#slots[i]!]);
    for (const e of this.#over) out.push(e);
    return out;
  }
}

/**
 * Tags of requests given to the hot handler and not yet answered: a table by
 * the tag's index (the core's inbound table index, below maxRequests), the
 * full tag checked; a tag whose index is taken (never by the core's own
 * rules, which free an index before reusing it) goes to a Set beside it.
 */
class TagSet {
  #tags: Uint32Array;
  #over = new Set<number>();
  size = 0;

  constructor(n: number) {
    this.#tags = new Uint32Array(n);
  }

  has(tag: number): boolean {
    const i = tag & 0xffff;
    if (i < this.#tags.length && this.#tags[i] === tag) return true;
    return this.#over.size !== 0 && this.#over.has(tag);
  }

  add(tag: number): void {
    const i = tag & 0xffff;
    if (i < this.#tags.length && this.#tags[i] === 0) this.#tags[i] = tag;
    else if (!this.#over.has(tag)) this.#over.add(tag);
    else return;
    this.size++;
  }

  delete(tag: number): boolean {
    const i = tag & 0xffff;
    if (i < this.#tags.length && this.#tags[i] === tag) { this.#tags[i] = 0; this.size--; return true; }
    if (this.#over.delete(tag)) { this.size--; return true; }
    return false;
  }

  clear(): void {
    this.#tags.fill(0);
    this.#over.clear();
    this.size = 0;
  }
}

const requestFields = { signal: signalCheck, timeout: ms(0, 'none'), receipt: either(bool, fn) };
const sendFields = { receipt: bool };
export const closeFields = { timeout: ms(0) };

const TRY_TIMEOUT = ms(0, 'none');
/** request()/send() without options: nothing to check, nothing allocated. */
const NO_OPTIONS: RequestOptions & SendOptions = Object.freeze({});

/** Calls an application's hot callback with an error; a throw from it is rethrown on the next tick, not into nexio's loop. */
function userCall(f: HotCallback, e: Error, tag: number): void {
  try { f(e, EMPTY, EMPTY, tag); } catch (x) { process.nextTick(() => { throw x; }); }
}

export function toBytes(b: Bytes | undefined | null): Uint8Array {
  if (b === undefined || b === null) return EMPTY;
  if (typeof b === 'string') return Buffer.from(b);
  if (b instanceof Uint8Array) return b;
  throw new InvalidArgumentError('header and data must be a Uint8Array (Buffer) or a string');
}

/**
 * The error for an operation the core refused: an oversize header or
 * message is the caller's argument, not a peer's protocol error.
 */
function opError(code: number, hdrLen = 0, total = 0, max = 0): NexioError {
  if (code === Code.NO_HANDLER) return fromCode(code, 'the peer takes no one-way messages (a server created without onMessage): nothing was sent');
  if (code !== Code.FRAME_TOO_LARGE) return fromCode(code);
  if (hdrLen > MAX_APP_HEADER) return new InvalidArgumentError(`header is ${hdrLen} bytes; at most ${MAX_APP_HEADER}`);
  return new InvalidArgumentError(`message is ${total} bytes (header + data); this context's maxMessageBytes is ${max}`);
}

/** An application header: at most MAX_APP_HEADER bytes (the core would refuse it as a frame). */
function headerBytes(b: Bytes | undefined | null): Uint8Array {
  const h = toBytes(b);
  if (h.length > MAX_APP_HEADER) throw new InvalidArgumentError(`header is ${h.length} bytes; at most ${MAX_APP_HEADER}`);
  return h;
}

/**
 * An incoming request. Its AbortController is made only when the handler
 * reads `signal`: making one costs more than the rest of a small request,
 * and most handlers never look. A cancel that comes first is remembered, so
 * a signal read later is already aborted, with the same reason.
 */
class Inbound implements IncomingRequest {
  readonly session: Session;
  readonly header: Buffer;
  readonly data: Buffer;
  #ctl: AbortController | undefined;
  #aborted = false;
  #reason: unknown;

  constructor(session: Session, header: Buffer, data: Buffer) {
    this.session = session;
    this.header = header;
    this.data = data;
  }

  get signal(): AbortSignal {
    if (!this.#ctl) {
      this.#ctl = new AbortController();
      if (this.#aborted) this.#ctl.abort(this.#reason);
    }
    return this.#ctl.signal;
  }

  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#ctl?.abort(reason);
  }
}

// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class Session extends EventEmitter {
  #ctx: Context;
  #handle: number;
  #state: SessionState = 'connecting';
  /** Client: the URI connect() was given (named in its errors). */
  #uri: string | undefined;
  #id = 0n;
  /**
   * Requests in flight, by full tag. Not by tag index: the core frees a
   * request's index when it delivers the response, so a request issued while
   * earlier responses of the same batch still wait for dispatch can reuse it.
   */
  #slots: SlotTable;
  /** Slots of tryRequest() requests, reused: none is made per request once the pool is warm. */
  #freeSlots: Slot[] = [];
  #queue: { run: () => boolean; fail: (e: Error) => void }[] = [];
  #maxQueued: number;
  #receipts = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  /** A DRAIN came while operations were queued: 'drain' is emitted once they are through. */
  #drainOwed = false;
  /** close() waits for outstanding operations: called when the last one settles. */
  #idle: (() => void) | undefined;
  #attrs: Buffer = EMPTY;
  #inbound = new Map<number, Inbound>();
  #handler: Handler | undefined;
  #hotHandler: HotHandler | undefined;
  #hotMessage: HotMessage | undefined;
  /** Requests given to the hot handler and not answered yet, by tag. */
  #hotIn: TagSet;
  #opened: { resolve: (s: Session) => void; reject: (e: Error) => void } | undefined;
  #closing: Promise<void> | undefined;
  #closedResolve: (() => void) | undefined;
  #closeError: Error | undefined;
  #lanesUp = 0;
  #st = {
    requests: 0, requestsReceived: 0, responses: 0, messagesSent: 0, messagesDropped: 0, messagesReceived: 0, bytesSent: 0, bytesReceived: 0,
    failovers: 0, resumes: 0, protocolErrors: 0, rttCount: 0, rttSum: 0, rttMin: Infinity, rttMax: 0,
  };

  /** Sessions come from connect() or a server; applications do not construct them. */
  constructor(ctx: Context, handle: number, options: { maxQueued?: number; handler?: Handler; hotHandler?: HotHandler; hotMessage?: HotMessage; open?: boolean; uri?: string } = {}) {
    super();
    this.#ctx = ctx;
    this.#handle = handle;
    this.#uri = options.uri;
    this.#maxQueued = options.maxQueued ?? 4096;
    this.#handler = options.handler;
    this.#hotHandler = options.hotHandler;
    this.#hotMessage = options.hotMessage;
    this.#slots = new SlotTable(ctx.core.config.maxRequests);
    this.#hotIn = new TagSet(ctx.core.config.maxRequests);
    if (options.open) {
      this.#state = 'open';
      this.#lanesUp = 1;
    }
    // The context's callbacks go to a peer object of this session's own,
    // so they are not part of Session's public surface.
    const peer: SessionPeer = {
      handle,
      onOpen: (lane, attrs, id) => this.#onOpen(lane, attrs, id),
      onRequest: (tag, header, data, flags, seq) => this.#onRequest(tag, header, data, flags, seq),
      onMessage: (seq, header, data, flags) => this.#onMessage(seq, header, data, flags),
      onResponse: (tag, header, data, flags, seq) => this.#onResponse(tag, header, data, flags, seq),
      onRequestFailed: (tag, code) => this.#onRequestFailed(tag, code),
      onCancel: (tag) => this.#onCancel(tag),
      onReceipt: (seq, tag) => this.#onReceipt(seq, tag),
      onDrain: () => this.#onDrain(),
      onLane: (up, lane, code) => this.#onLane(up, lane, code),
      onLaneFailed: (uri, err) => this.#onLaneFailed(uri, err),
      onResumed: () => this.#onResumed(),
      onRejected: (code, message) => this.#onRejected(code, message),
      onLost: (code, unacked) => this.#onLost(code, unacked),
      onClosed: (code) => this.#onClosed(code),
      onProtocolError: (lane, code) => this.#onProtocolError(lane, code),
      lends: (ev, tag) => this.#lends(ev, tag),
      onEnd: (err) => this.#end(err, 'ended'),
    };
    ctx.attach(peer);
    debug('session %d: %s', handle, options.open ? 'accepted' : `connecting to ${options.uri}`);
  }

  /** @internal The core's handle (stripped from the published types). */
  get handle(): number { return this.#handle; }
  /** The context this session runs on. */
  get context(): Context { return this.#ctx; }
  get state(): SessionState { return this.#state; }
  /** The session id the server assigned (what a resume names). */
  get id(): bigint { return this.#id; }
  /** Client: the attrs the server's onSession accepted with (`{ accept: true, attrs }`); empty otherwise. */
  get attrs(): Buffer { return this.#attrs; }

  /** @internal Settles when the first open or failure comes (stripped from the published types). */
  whenOpen(): Promise<Session> {
    if (this.#state !== 'connecting') return Promise.resolve(this);
    return new Promise((resolve, reject) => { this.#opened = { resolve, reject }; });
  }

  // ---- ordinary API ----

  request(header?: Bytes, data?: Bytes, options?: RequestOptions): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      const o: RequestOptions = options === undefined ? NO_OPTIONS : checkOptions('request', options, requestFields);
      const early = this.#refuse(o.signal);
      if (early) { reject(early); return; }
      let hdr = headerBytes(header), dat = toBytes(data);
      const timeout = o.timeout ?? 0;
      const slot: Slot = { resolve, reject, signal: o.signal, t0: 0 };
      if (typeof o.receipt === 'function') slot.receipt = o.receipt;
      if (timeout === 0 && o.signal === undefined && this.#state === 'open' && this.#queue.length === 0) {
        // The common case, into the core at once: none of the closures below
        // (they are for waiting on credit, a timer or a signal).
        const tag = this.#issue(hdr, dat, o.receipt ? FLAG_RECEIPT : 0, 0, slot);
        if (tag > 0) return;
        if (tag < 0) { reject(this.#opError(-tag, hdr, dat)); return; }
      }
      const clock = this.#ctx.clock;
      let timer: unknown;
      // The abort listener of a queued request (#issue sets its own once the request is in the core).
      let queuedAbort: (() => void) | undefined;
      const stop = () => {
        if (timer !== undefined) { clock.clearTimer(timer); timer = undefined; }
        if (queuedAbort) { o.signal!.removeEventListener('abort', queuedAbort); if (slot.onAbort === queuedAbort) slot.onAbort = undefined; queuedAbort = undefined; }
      };
      const started = timeout > 0 ? clock.now() : 0;
      const run = (): boolean => {
        const left = timeout > 0 ? Math.max(1, Math.ceil(timeout - (clock.now() - started) / 1000)) : 0;
        if (timer !== undefined) { clock.clearTimer(timer); timer = undefined; }
        const tag = this.#issue(hdr, dat, o.receipt ? FLAG_RECEIPT : 0, left, slot);
        if (tag === 0) {
          if (timeout > 0) timer = clock.setTimer(expire, left);
          return false;
        }
        if (tag < 0) { stop(); reject(this.#opError(-tag, hdr, dat)); }
        return true;
      };
      const fail = (e: Error) => { stop(); reject(e); };
      const expire = () => {
        timer = undefined;
        stop();
        const i = this.#queue.findIndex((q) => q.run === run);
        if (i >= 0) this.#queue.splice(i, 1);
        reject(new TimeoutError());
        this.#checkIdle();
      };
      if (this.#state === 'open' && this.#queue.length === 0 && run()) return;
      if (this.#queue.length >= this.#maxQueued) { fail(new BackpressureError(`more than ${this.#maxQueued} operations waiting for credit`)); return; }
      if (o.signal) {
        const signal = o.signal;
        queuedAbort = () => {
          const i = this.#queue.findIndex((q) => q.run === run);
          if (i < 0) return;
          this.#queue.splice(i, 1);
          stop();
          reject(new AbortedError(undefined, { cause: signal.reason }));
          this.#checkIdle();
        };
        slot.onAbort = queuedAbort;
        signal.addEventListener('abort', queuedAbort, { once: true });
      }
      // Queued behind others, run() has not armed the timeout yet.
      if (timeout > 0 && timer === undefined) timer = clock.setTimer(expire, timeout);
      // Waiting: bytes lent by a hot receiver are reused once its call returns.
      hdr = this.#own(hdr); dat = this.#own(dat);
      this.#queue.push({ run, fail });
    });
  }


  /** One-way message. Resolves when the core took it (or, with receipt, when the peer application got it). */
  send(header?: Bytes, data?: Bytes, opts?: SendOptions): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const options: SendOptions = opts === undefined ? NO_OPTIONS : checkOptions('send', opts, sendFields);
      const early = this.#refuse(undefined);
      if (early) { reject(early); return; }
      let hdr = headerBytes(header), dat = toBytes(data);
      const run = (): boolean => {
        const seq = this.#oneway(hdr, dat, options.receipt ? FLAG_RECEIPT : 0);
        if (seq === -Code.BACKPRESSURE) return false;
        if (seq < 0) { reject(this.#opError(-seq, hdr, dat)); return true; }
        if (options.receipt) this.#receipts.set(seq, { resolve, reject });
        else resolve();
        return true;
      };
      if (this.#state === 'open' && this.#queue.length === 0 && run()) return;
      if (this.#queue.length >= this.#maxQueued) { reject(new BackpressureError(`more than ${this.#maxQueued} operations waiting for credit`)); return; }
      // Waiting: bytes lent by a hot receiver are reused once its call returns.
      hdr = this.#own(hdr); dat = this.#own(dat);
      this.#queue.push({ run, fail: reject });
    });
  }

  // ---- hot path ----

  /** One-way message without a Promise: false means no credit — wait for 'drain'. Throws on a closed session. */
  trySend(header: Uint8Array, data: Uint8Array): boolean {
    if ((this.#state !== 'open' && this.#state !== 'resuming') || this.#closing) throw this.#refuse(undefined) ?? new ClosedError();
    if (!(header instanceof Uint8Array) || !(data instanceof Uint8Array)) throw new InvalidArgumentError('trySend: header and data must be Uint8Arrays (Buffers)');
    const seq = this.#oneway(header, data, 0);
    if (seq === -Code.BACKPRESSURE) return false;
    if (seq < 0) throw this.#opError(-seq, header, data);
    return true;
  }

  /**
   * Request without a Promise: `done` (one function, reused) gets the reply
   * and the tag. Returns the request's tag, or 0 when there is no credit —
   * wait for 'drain'.
   */
  tryRequest(header: Uint8Array, data: Uint8Array, done: HotCallback, timeoutMs = 0): number {
    if ((this.#state !== 'open' && this.#state !== 'resuming') || this.#closing) throw this.#refuse(undefined) ?? new ClosedError();
    if (!(header instanceof Uint8Array) || !(data instanceof Uint8Array)) throw new InvalidArgumentError('tryRequest: header and data must be Uint8Arrays (Buffers)');
    if (typeof done !== 'function') throw new InvalidArgumentError('tryRequest: done must be a function');
    if (timeoutMs !== 0) check('tryRequest', 'timeoutMs', timeoutMs, TRY_TIMEOUT);
    const slot = this.#freeSlots.pop() ?? { t0: 0 };
    slot.hot = done;
    const tag = this.#issue(header, data, 0, timeoutMs, slot);
    if (tag <= 0) { slot.hot = undefined; this.#freeSlots.push(slot); }
    if (tag < 0) throw this.#opError(-tag, header, data);
    return tag;
  }

  /**
   * The hot one-way receiver of this session: one-way messages go to `fn`
   * with lent bytes (valid during the call only) instead of `'message'`.
   * undefined goes back to `'message'`. Servers pass theirs as
   * `createServer({ hotMessage })`. (Not with `views`: views lend already.)
   */
  setHotMessage(fn: HotMessage | undefined): void {
    if (fn !== undefined && typeof fn !== 'function') throw new InvalidArgumentError('setHotMessage: fn must be a function or undefined');
    this.#hotMessage = fn;
  }

  /**
   * Answers request `tag` given to a hot handler (`createServer({ hotHandler })`):
   * once, now or later, with bytes (Buffers/Uint8Arrays; strings are taken
   * too). Returns false, doing nothing, when the request is no longer
   * outstanding (the requester cancelled, the session ended, or it was
   * answered already). Out of credit, the answer waits in the session's
   * queue like any other.
   */
  reply(tag: number, header?: Bytes, data?: Bytes): boolean {
    if (!Number.isInteger(tag)) throw new InvalidArgumentError(`reply: tag must be the integer the hot handler was given, not ${String(tag)}`);
    if (!this.#hotIn.has(tag)) return false;
    const hdr = headerBytes(header), dat = toBytes(data);
    const max = this.#ctx.core.config.maxMessageBytes;
    if (hdr.length + dat.length > max) throw new InvalidArgumentError(`reply: ${hdr.length + dat.length} bytes; maxMessageBytes is ${max}`);
    this.#hotIn.delete(tag);
    if (this.#queue.length === 0 && this.#tryRespond(tag, hdr, dat, 0)) {
      if (this.#idle) this.#checkIdle();
      return true;
    }
    // Waiting for credit: the bytes may be the lent request's own (an echo),
    // which the ring reuses once this turn is over. Keep copies.
    const h = this.#own(hdr), d = this.#own(dat);
    this.#queue.push({ run: () => this.#tryRespond(tag, h, d, 0), fail: () => undefined });
    return true;
  }

  // ---- lifecycle ----

  /**
   * Graceful: waits for outstanding requests in both directions (its own,
   * and the peer's its handler is still answering), then closes the session
   * with the peer (CLOSE). Bounded by `timeout` ms (default 5000): past it
   * the session is destroyed and what is still pending rejects with
   * NEXIO_ERR_CLOSED. Resolves once the session is closed; idempotent.
   */
  close(options: CloseOptions = {}): Promise<void> {
    try {
      checkOptions('close', options, closeFields);
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.#closing) return this.#closing;
    const ms = options.timeout ?? 5000;
    const clock = this.#ctx.clock;
    let timer: unknown;
    const bound = new Promise<void>((r) => { timer = clock.setTimer(r, ms); });
    const graceful = (async () => {
      if (this.#state === 'connecting') await this.whenOpen().catch(() => undefined);
      if (this.#busy()) await new Promise<void>((r) => { this.#idle = r; });
      if (this.#state === 'closed') return;
      this.#state = 'closing';
      const done = new Promise<void>((r) => { this.#closedResolve = r; });
      this.#ctx.core.close(this.#handle, this.#ctx.now());
      this.#ctx.afterInput();
      await done;
    })();
    this.#closing = Promise.race([graceful, bound]).then(async () => {
      clock.clearTimer(timer);
      this.#idle = undefined;
      // Past the bound (a context that ended has ended the session already).
      if (this.#state !== 'closed') this.#destroyNow(new ClosedError(`session closed: the graceful close took longer than ${ms} ms`));
    }, (e) => { clock.clearTimer(timer); throw e; });
    return this.#closing;
  }

  /** Operations still outstanding: close() waits for them. */
  #busy(): boolean {
    return (this.#slots.size > 0 || this.#queue.length > 0 || this.#inbound.size > 0 || this.#hotIn.size > 0) && this.#state !== 'closed';
  }

  /** Wakes a close() waiting for the last outstanding operation. */
  #checkIdle(): void {
    if (this.#idle && !this.#busy()) {
      const f = this.#idle;
      this.#idle = undefined;
      f();
    }
  }

  /** Abrupt: drops the session now; outstanding operations fail with NEXIO_ERR_CLOSED. Idempotent. */
  destroy(): Promise<void> {
    if (this.#state !== 'closed') this.#destroyNow(new ClosedError('session destroyed'));
    return Promise.resolve();
  }

  #destroyNow(err: Error): void {
    const ctx = this.#ctx;
    if (!ctx.failed && !ctx.core.trapped) {
      try {
        ctx.core.destroy(this.#handle, ctx.now());
        ctx.releaseSessionExts(this.#handle);
        ctx.afterInput();
      } catch {
        // A trapped core fails the context, which ends this session too.
      }
    }
    this.#end(ctx.failed ?? err, 'destroyed');
  }

  stats(): SessionStats {
    const s = this.#st;
    const info = this.#state === 'closed' || this.#ctx.failed ? undefined : this.#ctx.core.sessionInfo(this.#handle);
    return {
      state: this.#state, id: this.#id.toString(16), requests: s.requests, requestsReceived: s.requestsReceived, responses: s.responses,
      messagesSent: s.messagesSent, messagesReceived: s.messagesReceived, messagesDropped: s.messagesDropped, bytesSent: s.bytesSent,
      bytesReceived: s.bytesReceived, failovers: s.failovers, lanesUp: this.#lanesUp, resumes: s.resumes,
      protocolErrors: s.protocolErrors,
      rtt: { count: s.rttCount, meanUs: s.rttCount ? s.rttSum / s.rttCount : 0, minUs: s.rttCount ? s.rttMin : 0, maxUs: s.rttMax },
      core: info && { txNextSeq: info[1], txAcked: info[2], rxNext: info[3], windowMsgs: info[5], windowBytes: info[6], maxRequests: info[7] },
    };
  }

  // ---- internals ----

  #opError(code: number, hdr: Uint8Array, dat: Uint8Array): NexioError {
    return opError(code, hdr.length, hdr.length + dat.length, this.#ctx.core.config.maxMessageBytes);
  }

  /**
   * Bytes kept past the call that gave them: a view of the core's memory
   * (lent to a hot receiver, or a views message) is copied, since the ring
   * reuses it; anything else is the caller's and kept as it is.
   */
  #own(b: Uint8Array): Uint8Array {
    return b.length !== 0 && b.buffer === this.#ctx.core.memory.buffer ? Buffer.from(b) : b;
  }

  /** Removes and returns the slot of request `tag` (undefined if it is not in flight). */
  #take(tag: number): Slot | undefined {
    const slot = this.#slots.get(tag);
    if (slot) {
      this.#slots.delete(tag);
      if (this.#idle) queueMicrotask(() => this.#checkIdle());
    }
    return slot;
  }

  #refuse(signal: AbortSignal | undefined): Error | undefined {
    if (this.#state === 'closed' || this.#state === 'closing') return this.#closeError ?? new ClosedError();
    const failed = this.#ctx.failed;
    if (failed) return failed;
    if (this.#closing) return new ClosedError('session is closing');
    if (signal?.aborted) return new AbortedError(undefined, { cause: signal.reason });
    return undefined;
  }

  /** Issues a request to the core: tag > 0, 0 for no credit, or -code. */
  #issue(hdr: Uint8Array, dat: Uint8Array, flags: number, timeoutMs: number, slot: Slot): number {
    const ctx = this.#ctx;
    const ext = hdr.length + dat.length > INLINE_MAX;
    const id = ext ? ctx.holdExt(this.#own(dat), this.#handle) : 0;
    // One clock read: the core's time and the RTT's start. A timeout is
    // counted from a fresh read, not the turn's kept time (a long turn would
    // shorten it).
    const now = timeoutMs > 0 ? ctx.freshNow() : ctx.now();
    const tag = ctx.core.request(this.#handle, hdr, ext ? dat.length : dat, flags | (ext ? FLAG_EXT : 0), timeoutMs, id, now);
    if (tag < 0) {
      if (ext) ctx.dropExt(id);
      return tag === -Code.BACKPRESSURE ? 0 : tag;
    }
    slot.t0 = now;
    this.#slots.set(tag, slot);
    this.#st.requests++;
    this.#st.bytesSent += hdr.length + dat.length;
    if (slot.signal) {
      const signal = slot.signal;
      if (slot.onAbort) signal.removeEventListener('abort', slot.onAbort);
      slot.onAbort = () => {
        if (this.#slots.get(tag) !== slot) return;
        this.#take(tag);
        ctx.core.cancel(this.#handle, tag, ctx.now());
        ctx.afterInput();
        slot.reject?.(new AbortedError(undefined, { cause: signal.reason }));
      };
      signal.addEventListener('abort', slot.onAbort, { once: true });
    }
    ctx.afterInput();
    return tag;
  }

  #oneway(hdr: Uint8Array, dat: Uint8Array, flags: number): number {
    const ctx = this.#ctx;
    const ext = hdr.length + dat.length > INLINE_MAX;
    const id = ext ? ctx.holdExt(this.#own(dat), this.#handle) : 0;
    const seq = ctx.core.send(this.#handle, hdr, ext ? dat.length : dat, flags | (ext ? FLAG_EXT : 0), id, ctx.now());
    if (seq < 0) {
      if (ext) ctx.dropExt(id);
      return seq;
    }
    this.#st.messagesSent++;
    this.#st.bytesSent += hdr.length + dat.length;
    ctx.afterInput();
    return seq;
  }

  #respond(tag: number, r: HandlerResult | Error): void {
    let hdr: Uint8Array = EMPTY, dat: Uint8Array = EMPTY, flags = 0;
    try {
      if (typeof r === 'string' || r instanceof Uint8Array) {
        dat = toBytes(r);
      } else if (r && typeof r === 'object' && !(r instanceof Error) && !Array.isArray(r)) {
        hdr = headerBytes(r.header);
        dat = toBytes(r.data);
      } else if (r !== undefined && r !== null && !(r instanceof Error)) {
        throw new InvalidArgumentError(`the handler returned ${Array.isArray(r) ? 'an array' : typeof r === 'number' ? `a number (${r})` : `a ${typeof r}`}; a reply is a Uint8Array, a string, { header, data } or nothing`);
      }
      const max = this.#ctx.core.config.maxMessageBytes;
      if (hdr.length + dat.length > max) throw new InvalidArgumentError(`reply is ${hdr.length + dat.length} bytes; maxMessageBytes is ${max}`);
    } catch (e) {
      // A result that cannot be sent answers as a handler error: the
      // requester must not wait forever, and the process must not crash.
      r = e as Error;
    }
    if (r instanceof Error) {
      hdr = EMPTY;
      flags = FLAG_APP_ERROR;
      dat = Buffer.from(JSON.stringify({ message: r.message, code: (r as NexioError).code ?? 'ERR_HANDLER' }));
    }
    // The closure is made only when the response has to wait for credit.
    if (this.#queue.length === 0 && this.#tryRespond(tag, hdr, dat, flags)) {
      if (this.#idle) this.#checkIdle();
      return;
    }
    const h = this.#own(hdr), d = this.#own(dat), f = flags;
    this.#queue.push({ run: () => this.#tryRespond(tag, h, d, f), fail: () => undefined });
  }

  /** One response into the core: false when out of credit. */
  #tryRespond(tag: number, hdr: Uint8Array, dat: Uint8Array, flags: number): boolean {
    // After the peer's CLOSE the core drains the session and still takes
    // responses; after a destroy or loss it answers -BAD_HANDLE (dropped).
    if (this.#ctx.failed) return true;
    const ctx = this.#ctx;
    const ext = hdr.length + dat.length > INLINE_MAX;
    const id = ext ? ctx.holdExt(this.#own(dat), this.#handle) : 0;
    const res = ctx.core.respond(this.#handle, tag, hdr, ext ? dat.length : dat, flags | (ext ? FLAG_EXT : 0), id, ctx.now());
    if (res < 0 && ext) ctx.dropExt(id);
    if (res === -Code.BACKPRESSURE) return false;
    // -BAD_HANDLE: the request was cancelled meanwhile; nothing to deliver.
    if (res === 0) { this.#st.responses++; this.#st.bytesSent += hdr.length + dat.length; }
    ctx.afterInput();
    return true;
  }

  #pump(): void {
    while (this.#queue.length > 0 && (this.#state === 'open')) {
      if (!this.#queue[0].run()) return;
      this.#queue.shift();
    }
    if (this.#idle) this.#checkIdle();
    // Credits came back while queued operations (or a resume) held them:
    // hot-path senders waiting for 'drain' hear it once the queue is through.
    if (this.#drainOwed && this.#queue.length === 0 && (this.#state === 'open' || this.#state === 'resuming')) {
      this.#drainOwed = false;
      this.emit('drain');
    }
  }

  #end(err: Error | undefined, why: SessionMessage['event']): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#closeError = err;
    this.#ctx.detach(this.#handle);
    const e = err ?? new ClosedError();
    for (const [tag, slot] of this.#slots.entries()) {
      this.#take(tag);
      if (slot.signal && slot.onAbort) slot.signal.removeEventListener('abort', slot.onAbort);
      slot.reject?.(e);
      // an application callback that throws must not stop the session from ending
      if (slot.hot) userCall(slot.hot, e, tag);
    }
    for (const q of this.#queue.splice(0)) q.fail(e);
    for (const c of this.#inbound.values()) c.abort(e);
    this.#inbound.clear();
    this.#hotIn.clear();
    const receipts = [...this.#receipts.values()];
    this.#receipts.clear();
    for (const r of receipts) r.reject(e);
    this.#idle?.();
    this.#idle = undefined;
    this.#opened?.reject(e);
    this.#opened = undefined;
    this.#closedResolve?.();
    publish('session', () => ({ event: why, session: this.#handle, id: this.#id, error: err }));
    try {
      if (err && why !== 'destroyed' && this.listenerCount('error') > 0) this.emit('error', err);
    } finally {
      this.emit('close', err);
    }
  }

  // ---- events from the context (through the peer object made in the constructor) ----

  #onOpen(_lane: number, attrs: Buffer, id: bigint): void {
    this.#id = id;
    this.#attrs = attrs;
    this.#state = 'open';
    this.#lanesUp = 1;
    publish('session', () => ({ event: 'open', session: this.#handle, id }));
    this.#opened?.resolve(this);
    this.#opened = undefined;
    this.emit('open', attrs);
    this.#pump();
  }

  #onRequest(tag: number, header: Buffer, data: Buffer, _flags: number, seq: number): void {
    this.#st.requestsReceived++;
    this.#st.bytesReceived += header.length + data.length;
    const hot = this.#hotHandler;
    if (hot && !this.#ctx.views) {
      // Lent bytes (Context #take), no request object: reply(tag, ...) answers.
      this.#hotIn.add(tag);
      try {
        hot(this, tag, header, data);
      } catch (e) {
        if (this.#hotIn.delete(tag)) this.#respond(tag, e instanceof Error ? e : new Error(String(e)));
      }
      return;
    }
    const handler = this.#handler;
    // With views, the request's bytes are lent until the handler settled
    // (its reply, which may be those very bytes, is in the core by then).
    const lent = this.#ctx.views;
    if (!handler) {
      this.#respond(tag, new NexioError('NEXIO_ERR_NO_HANDLER', 'no request handler on this side of the session'));
      if (lent) this.#release(seq);
      return;
    }
    const req = new Inbound(this, header, data);
    this.#inbound.set(tag, req);
    let r: HandlerResult | Promise<HandlerResult>;
    try {
      r = handler(req);
    } catch (e) {
      this.#inbound.delete(tag);
      this.#respond(tag, e instanceof Error ? e : new Error(String(e)));
      if (lent) this.#release(seq);
      return;
    }
    if (r instanceof Promise || typeof (r as { then?: unknown } | undefined)?.then === 'function') {
      // a Promise, or any thenable (another realm's Promise, a library's)
      Promise.resolve(r as Promise<HandlerResult>).then((v) => { if (this.#inbound.delete(tag)) this.#respond(tag, v); if (lent) this.#release(seq); },
        (e) => {
          if (this.#inbound.delete(tag)) this.#respond(tag, e instanceof Error ? e : new Error(String(e)));
          if (lent) this.#release(seq);
        });
    } else {
      this.#inbound.delete(tag);
      this.#respond(tag, r);
      if (lent) this.#release(seq);
    }
  }

  #onMessage(seq: number, header: Buffer, data: Buffer, _flags: number): void {
    this.#st.messagesReceived++;
    this.#st.bytesReceived += header.length + data.length;
    const hot = this.#hotMessage;
    if (hot && !this.#ctx.views) {
      // Lent bytes (Context #take): valid during the call. A throw is the
      // application's, rethrown on its own tick; the batch goes on.
      try { hot(this, header, data); } catch (x) { process.nextTick(() => { throw x; }); }
      return;
    }
    const heard = this.#ctx.views ? this.emit('message', header, data, this.#releaser(seq)) : this.emit('message', header, data);
    if (!heard) {
      // Nobody receives one-way messages on this session (a server without
      // onMessage): the message is dropped, and counted; a lent one is
      // released, or its credit would never come back.
      this.#st.messagesDropped++;
      debug('session %d: message %d dropped: no message listener', this.#handle, seq);
      if (this.#ctx.views) this.#release(seq);
    }
  }

  /** Returns a lent message's bytes to the core (views); later calls do nothing. */
  #release(seq: number): void {
    // A session its peer closed is still draining in the core, which acks
    // the message only once it is released: release it even after 'close'
    // (a freed session answers -BAD_HANDLE, harmless).
    if (this.#ctx.failed) return;
    this.#ctx.core.release(this.#handle, seq, this.#ctx.now());
    this.#ctx.afterInput();
  }

  #releaser(seq: number): () => void {
    let done = false;
    return () => { if (!done) { done = true; this.#release(seq); } };
  }

  #onResponse(tag: number, header: Buffer, data: Buffer, flags: number, seq: number): void {
    const slot = this.#take(tag);
    if (!slot) {
      if (this.#ctx.views) this.#release(seq);
      return;
    }
    const st = this.#st;
    st.responses++;
    st.bytesReceived += header.length + data.length;
    const us = this.#ctx.now() - slot.t0;
    st.rttCount++;
    st.rttSum += us;
    if (us < st.rttMin) st.rttMin = us;
    if (us > st.rttMax) st.rttMax = us;
    if (slot.signal && slot.onAbort) slot.signal.removeEventListener('abort', slot.onAbort);
    // A response proves delivery: a receipt still on its way is not waited for.
    if (slot.receipt) this.#receipted(slot);
    if (flags & FLAG_APP_ERROR) {
      let msg = 'remote handler failed', code = 'ERR_HANDLER';
      try { ({ message: msg, code } = JSON.parse(data.toString())); } catch { /* keep defaults */ }
      const e = new RemoteError(msg, code);
      if (this.#ctx.views) {
        try { slot.hot?.(e, header, data, tag); } finally { this.#release(seq); }
        slot.reject?.(e);
        return;
      }
      slot.reject?.(e);
      slot.hot?.(e, header, data, tag);
      return;
    }
    if (!this.#ctx.views) {
      if (slot.resolve) { slot.resolve({ header, data }); return; }
      // A tryRequest slot goes back to the pool before its callback, which
      // may issue the next request with it.
      const done = slot.hot;
      slot.hot = undefined;
      this.#freeSlots.push(slot);
      done?.(null, header, data, tag);
      return;
    }
    // Views: a promise's reply is the application's to release; the hot
    // path's views are valid during its callback only.
    if (slot.resolve) slot.resolve({ header, data, release: this.#releaser(seq) });
    else {
      try { slot.hot?.(null, header, data, tag); } finally { this.#release(seq); }
    }
  }

  #onRequestFailed(tag: number, code: number): void {
    const slot = this.#take(tag);
    if (!slot) return;
    if (slot.signal && slot.onAbort) slot.signal.removeEventListener('abort', slot.onAbort);
    const e = fromCode(code);
    slot.reject?.(e);
    if (slot.hot) userCall(slot.hot, e, tag);
  }

  /** Whether a message event's bytes go to a hot receiver (lent) rather than a copy. */
  #lends(ev: number, tag: number): boolean {
    if (ev === Ev.RESPONSE) {
      const slot = this.#slots.get(tag);
      return slot !== undefined && slot.resolve === undefined && slot.hot !== undefined;
    }
    if (ev === Ev.MESSAGE) return this.#hotMessage !== undefined;
    return this.#hotHandler !== undefined;
  }

  #onCancel(tag: number): void {
    if (this.#hotIn.delete(tag)) {
      if (this.#idle) this.#checkIdle();
      return;
    }
    const c = this.#inbound.get(tag);
    if (!c) return;
    this.#inbound.delete(tag);
    c.abort(new AbortedError('the requester cancelled'));
    if (this.#idle) this.#checkIdle();
  }

  #onReceipt(seq: number, tag: number): void {
    if (tag !== 0) {
      const slot = this.#slots.get(tag);
      if (slot?.receipt) this.#receipted(slot);
    } else {
      const r = this.#receipts.get(seq);
      if (r) { this.#receipts.delete(seq); r.resolve(); }
    }
    this.emit('receipt', seq);
  }

  #receipted(slot: Slot): void {
    const f = slot.receipt!;
    slot.receipt = undefined;
    try { f(); } catch (e) { process.nextTick(() => { throw e; }); }
  }

  #onDrain(): void {
    // #pump emits 'drain' once the queue is through (now, or after a resume)
    this.#drainOwed = true;
    this.#pump();
  }

  #onLane(up: boolean, lane: number, code: number): void {
    if (up) this.#lanesUp++;
    else {
      this.#lanesUp = Math.max(0, this.#lanesUp - 1);
      this.#st.failovers++;
    }
    publish('lane', () => ({ event: up ? 'up' : 'down', session: this.#handle, lane, code }));
    this.emit(up ? 'lane-up' : 'lane-down', lane, code);
    if (!up && this.#lanesUp === 0 && this.#state === 'open') this.#state = 'resuming';
  }

  #onResumed(): void {
    // A close() in progress stays 'closing': the resume only lets its CLOSE through.
    if (this.#state === 'resuming') this.#state = 'open';
    this.#st.resumes++;
    publish('session', () => ({ event: 'resumed', session: this.#handle, id: this.#id }));
    this.emit('resumed');
    this.#pump();
  }

  #onRejected(code: number, message: string): void {
    // A redirect loop is the client giving up, not a server's refusal.
    const e = code === Code.REDIRECT_LOOP
      ? fromCode(code, message || 'too many redirects: the servers sent the session in a loop')
      : code === Code.LIMIT
      ? new LimitError(message || 'the server holds its limit of sessions')
      : code === Code.AUTH
      ? new AuthError(message || 'pre-shared key authentication failed: the server refused our proof, or did not prove the key itself')
      : new RejectedError(code, message || undefined);
    this.#end(e, 'rejected');
  }

  #onLost(code: number, unacked: number): void {
    const e = code === Code.TIMEOUT
      ? new TimeoutError('session could not be established in time')
      : code === Code.AUTH
      ? new AuthError('pre-shared key authentication failed on a new lane of the session: it ended')
      : new SessionLostError(code, `session lost (${code === Code.UNKNOWN_SESSION ? 'the server no longer knows it' : 'no lane came back in time'}); ${unacked} messages unacknowledged`);
    this.#end(e, 'lost');
  }

  #onClosed(code: number): void {
    this.#end(code === Code.CLOSED ? new ClosedError('the peer closed the session') : undefined, 'closed');
  }

  /**
   * A lane failed to reach its address. A session that never opened ends at
   * once with the transport's error (the address refused, is unreachable or
   * does not resolve: retrying until the connect timeout would only hide
   * it); an open session fails over as usual (its lane-down tells).
   */
  #onLaneFailed(uri: string, err: Error): void {
    if (this.#state !== 'connecting') return;
    const sys = (err as { cause?: unknown }).cause ?? err;
    const code = (sys as { code?: unknown }).code;
    // (OpenSSL's messages end in a newline)
    let why = typeof code === 'string' && !code.startsWith('NEXIO_') ? `${code} (${(sys as Error).message?.trim()})` : (sys as Error).message ?? String(sys);
    // What the transport says it means (tls://: "the server's certificate was not trusted").
    const reason = (err as { reason?: unknown }).reason;
    if (typeof reason === 'string') why = `${reason}: ${why}`;
    this.#destroyNow(new TransportError(`cannot connect to ${this.#uri ?? uri}: ${why}`, { cause: sys }));
  }

  #onProtocolError(lane: number, code: number): void {
    this.#st.protocolErrors++;
    if (this.#state === 'connecting') {
      // The first lane's peer answered with something that is not nexio.
      this.#destroyNow(new ProtocolError(code, `${this.#uri ?? 'the peer'} does not speak nexio (protocol error: ${codeNames[code] ?? code})`));
      return;
    }
    publish('lane', () => ({ event: 'protocol-error', session: this.#handle, lane, code }));
    this.emit('protocol-error', new ProtocolError(code), lane);
  }

}
