// Servers: one or more contexts, each binding its own portals. The first
// context's first portal is the public one. A new session arriving there is
// decided by onSession (accept / reject / redirect), then placed on a
// context by the balance policy (round-robin by default, 'hash', or a
// function); a session placed on another context is redirected to that
// context's portals, where it is accepted. With `threads: N` the contexts run
// on N worker_threads, each loading the handler module itself.

import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { Context, SessionDecision, SessionRequestInfo, AdmissionOptions, sameSecurity } from './context';
import { Session, Handler, HotHandler, HotMessage, closeFields, trafficKeys, TrafficCounts } from './session';
import type { CoreConfig } from './core';
import { Code, InvalidArgumentError, NexioError } from './errors';
import { checkCore, checkOptions, either, fn, int, nested, oneOf, str, uriList, bool, Check, tlsOptions } from './options';
import { debug } from './diagnostics';
import { ServerPsk, AuthFailureCount, serverPskCheck } from './psk';

export type Decision = 'accept' | { reject: string | number } | { redirect: string[] } | { accept: true; attrs?: Uint8Array };
export type Balance = 'round-robin' | 'hash' | ((info: SessionRequestInfo, contexts: number) => number);

export interface ServerOptions {
  /** URIs to bind. With threads, context i binds these with the port + i (port 0 stays ephemeral). */
  portals: string[];
  /** URIs to advertise instead of the bound ones (proxies, NAT); same order as portals. */
  advertise?: string[];
  /** Worker threads to run contexts on; 0 (default) runs one context on this thread. */
  threads?: number;
  /** Decides each new session; default accepts all. */
  onSession?: (info: SessionRequestInfo) => Decision | Promise<Decision>;
  /** Request handler: a function (threads: 0 only) or a module path exporting `handler` (and optionally `onMessage`). */
  handler?: Handler | string;
  /**
   * One-way messages (threads: 0 only; with threads, export onMessage from
   * the handler module). With `views`, header and data are lent: call
   * `release()` when done with them.
   */
  onMessage?: (session: Session, header: Buffer, data: Buffer, release?: () => void) => void;
  /**
   * The hot form of `handler` (threads: 0; with threads, export `hotHandler`
   * from the handler module): `(session, tag, header, data)`, no request or
   * reply object, header and data lent for the call; answer with
   * `session.reply(tag, header, data)`. Not with `handler` or `views`.
   */
  hotHandler?: HotHandler;
  /** The hot form of `onMessage`: `(session, header, data)`, lent for the call (export `hotMessage` with threads). Not with `onMessage` or `views`. */
  hotMessage?: HotMessage;
  balance?: Balance;
  /** Zero-copy receive on the server's contexts: a handler's req.header/req.data are views, valid until it settles. */
  views?: boolean;
  core?: Partial<CoreConfig>;
  /** Connections in their handshake: pool size, per-address share, deadline, linger (docs/api.md, "Limits"). */
  admission?: AdmissionOptions;
  /**
   * Required with tls:// portals: options for node:tls's createServer (key
   * and cert; ca and requestCert for mutual TLS; minVersion, ...). TLS 1.3
   * unless they name a minVersion. With threads, they must be cloneable
   * (no functions): each worker gets a copy.
   */
  tls?: import('node:tls').TlsOptions;
  /**
   * Pre-shared keys: every lane must prove one, by
   * identity; clients without one are refused (NEXIO_ERR_AUTH on their
   * side) before onSession. A table `{ [identity]: key }` or a function
   * `(identity) => key | undefined`, asked for every lane (rotate keys
   * there; threads: 0 only, with threads the table form, copied to each
   * worker). Keys are at least 16 bytes (docs/security.md).
   */
  psk?: ServerPsk;
}

const serverFields: Record<keyof ServerOptions, Check> = {
  portals: uriList,
  advertise: uriList,
  threads: int(0, 256),
  onSession: fn,
  handler: either(fn, str),
  onMessage: fn,
  hotHandler: fn,
  hotMessage: fn,
  balance: either(oneOf('round-robin', 'hash'), fn),
  views: bool,
  core: (v) => { checkCore('createServer', v as Partial<CoreConfig>); return undefined; },
  admission: nested('createServer', 'admission', {
    maxHandshakes: int(1), maxHandshakesPerAddress: int(1), handshakeMs: int(1), lingerMs: int(0),
  }),
  tls: tlsOptions,
  psk: serverPskCheck,
};

/** Options of Server.close(). */
export interface ServerCloseOptions {
  /** ms the graceful close of every session may take before what is left is destroyed (default 5000). */
  timeout?: number;
}

/** A server's events: `on`, `once`, `off` and `emit` take only these names. */
export interface ServerEvents {
  /** A session was accepted (threads: 0 only; with threads, sessions live in the workers). */
  session: (session: Session) => void;
  /** close() finished: every context stopped. */
  close: () => void;
}

/** One context's figures in Server.stats(): what it holds now, and its sessions' traffic (ended ones included). */
export interface ContextStats extends TrafficCounts {
  /** The context's index (its worker's, with threads). */
  index: number;
  portals: string[];
  /** Sessions open now, and accepted since the server started. */
  sessions: number;
  sessionsAccepted: number;
  /** Lanes the context holds now, of them in their handshake, and lanes accepted since it started. */
  lanes: number;
  handshakes: number;
  lanesAccepted: number;
  /** Connections evicted from the handshake pool (admission). */
  evicted: number;
  /** Protocol errors of peers (in a session or in the handshake). */
  protocolErrors: number;
  /** Lanes refused for their pre-shared key (a wrong proof, an unknown identity, none where one is required, one where none is). */
  authFailures: number;
  /** Those by identity claimed ('' when the lane named none) and remote address. */
  authFailuresBy: AuthFailureCount[];
}

/** Server.stats(): every context's figures and their totals. */
export interface ServerStats {
  totals: Omit<ContextStats, 'index' | 'portals'>;
  contexts: ContextStats[];
}

type Figures = Omit<ContextStats, 'index' | 'portals'>;
const zero = (): Figures => ({
  sessions: 0, sessionsAccepted: 0, lanes: 0, handshakes: 0, lanesAccepted: 0, evicted: 0, requestsReceived: 0,
  requests: 0, responses: 0, messagesSent: 0, messagesReceived: 0, messagesDropped: 0, bytesSent: 0, bytesReceived: 0, protocolErrors: 0,
  authFailures: 0, authFailuresBy: [],
});
const counted = trafficKeys;

/** The figures of a served context's sessions that ended, by its set of sessions (serveContext). */
const endedOf = new WeakMap<Set<Session>, Figures>();

/** The figures of one served context: what it holds now, and its counts (ended sessions included). */
export function contextStats(index: number, ctx: Context, sessions: Set<Session>): ContextStats {
  const u = ctx.failed ? undefined : ctx.usage();
  const t = ctx.totals();
  const a = ctx.authFailures();
  const f: ContextStats = {
    index, portals: ctx.portals, ...(endedOf.get(sessions) ?? zero()), sessions: sessions.size,
    lanes: u?.lanes ?? 0, handshakes: u?.handshakes ?? 0, lanesAccepted: t.lanesAccepted, evicted: t.evicted,
    protocolErrors: t.protocolErrors, authFailures: a.total, authFailuresBy: a.by,
  };
  for (const s of sessions) {
    const st = s.stats();
    for (const k of counted) f[k] += st[k];
  }
  return f;
}

function sum(contexts: ContextStats[]): Figures {
  const t = zero();
  const by = new Map<string, AuthFailureCount>();
  for (const c of contexts) {
    for (const k of Object.keys(t) as (keyof Figures)[]) if (k !== 'authFailuresBy') t[k] += c[k];
    for (const f of c.authFailuresBy ?? []) {
      const o = by.get(`${f.identity}\0${f.address}`);
      if (o) o.count += f.count;
      else by.set(`${f.identity}\0${f.address}`, { ...f });
    }
  }
  t.authFailuresBy = [...by.values()];
  return t;
}

/**
 * An onSession answer as the context applies it. Anything else rejects the
 * session (the client gets NEXIO_ERR_REJECTED) and is reported on the
 * server as a process warning carrying an InvalidArgumentError: a wrong
 * answer must neither crash the server nor leave the client waiting.
 */
function toDecision(d: Decision): SessionDecision {
  if (d === 'accept') return { accept: true };
  const bad = (why: string): SessionDecision => {
    const e = new InvalidArgumentError(`onSession answered ${why}: expected 'accept', { accept: true, attrs? }, { reject: string | code } or { redirect: uri[] }`);
    process.emitWarning(e);
    return { reject: Code.REJECTED, message: 'the server could not decide the session' };
  };
  if (d === null || typeof d !== 'object') return bad(String(d));
  if ('reject' in d) {
    if (typeof d.reject === 'number' && Number.isInteger(d.reject) && d.reject > 0 && d.reject < 65536) return { reject: d.reject };
    if (typeof d.reject === 'string') return { reject: Code.REJECTED, message: d.reject };
    return bad(`{ reject: ${String(d.reject)} }`);
  }
  if ('redirect' in d) {
    const r = d.redirect as unknown;
    if (Array.isArray(r) && r.length > 0 && r.every((x) => typeof x === 'string')) return { redirect: r as string[] };
    return bad('a redirect that is not a non-empty list of URIs');
  }
  if ('accept' in d && d.accept === true) {
    if (d.attrs !== undefined && !(d.attrs instanceof Uint8Array)) return bad('accept attrs that are not bytes');
    return d;
  }
  return bad('an unknown decision');
}

function portFor(uri: string, i: number): string {
  const u = new URL(uri);
  if (u.port && Number(u.port) !== 0) u.port = String(Number(u.port) + i);
  return u.href;
}

/** What a server's sessions are handed to: the handlers of createServer() or of a handler module. */
export interface Handlers {
  handler?: Handler;
  onMessage?: ServerOptions['onMessage'];
  hotHandler?: HotHandler;
  hotMessage?: HotMessage;
}

/** Checks that the handlers go together: one form of each, hot forms without views. */
export function checkHandlers(where: string, h: Handlers, views: boolean | undefined): void {
  if (h.handler && h.hotHandler) throw new InvalidArgumentError(`${where}: handler and hotHandler are two forms of one thing: give one`);
  if (h.onMessage && h.hotMessage) throw new InvalidArgumentError(`${where}: onMessage and hotMessage are two forms of one thing: give one`);
  if (views && (h.hotHandler || h.hotMessage)) throw new InvalidArgumentError(`${where}: hotHandler and hotMessage lend bytes already; they do not go with views`);
}

export function loadHandler(spec: string): Handlers {
  let m;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    m = require(path.resolve(spec));
  } catch (e) {
    throw new InvalidArgumentError(`handler module ${spec} could not be loaded: ${(e as Error)?.message ?? e}`, { cause: e });
  }
  const handler = m.handler ?? m.default ?? (typeof m === 'function' ? m : undefined);
  if (typeof handler !== 'function' && typeof m.hotHandler !== 'function') throw new InvalidArgumentError(`handler module ${spec} exports no handler (or hotHandler) function`);
  const fnOr = (x: unknown) => (typeof x === 'function' ? x : undefined) as never;
  return { handler: fnOr(handler), onMessage: fnOr(m.onMessage), hotHandler: fnOr(m.hotHandler), hotMessage: fnOr(m.hotMessage) };
}

/** Places a session on a context. */
export function chooseContext(balance: Balance, info: SessionRequestInfo, n: number, rr: { next: number }): number {
  if (n <= 1) return 0;
  if (balance === 'round-robin') return rr.next++ % n;
  if (balance === 'hash') {
    const h = createHash('sha1').update(info.resource).update(info.attrs).digest();
    return h.readUInt32LE(0) % n;
  }
  const i = balance(info, n);
  if (!Number.isInteger(i) || i < 0 || i >= n) throw new InvalidArgumentError(`balance function returned ${i} for ${n} contexts`);
  return i;
}

// Typed events: these declarations merge with the class below.
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export interface Server {
  on<E extends keyof ServerEvents>(event: E, listener: ServerEvents[E]): this;
  once<E extends keyof ServerEvents>(event: E, listener: ServerEvents[E]): this;
  off<E extends keyof ServerEvents>(event: E, listener: ServerEvents[E]): this;
  addListener<E extends keyof ServerEvents>(event: E, listener: ServerEvents[E]): this;
  removeListener<E extends keyof ServerEvents>(event: E, listener: ServerEvents[E]): this;
  emit<E extends keyof ServerEvents>(event: E, ...args: Parameters<ServerEvents[E]>): boolean;
  listenerCount<E extends keyof ServerEvents>(event: E): number;
  removeAllListeners<E extends keyof ServerEvents>(event?: E): this;
}

// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class Server extends EventEmitter {
  readonly portals: string[];
  #close: (timeoutMs: number) => Promise<void>;
  #stats: () => Promise<ContextStats[]>;
  #closing: Promise<void> | undefined;
  /** Portals of every context, by context index. */
  readonly contexts: string[][];

  /** Servers come from createServer(); applications do not construct them. */
  constructor(portals: string[][], close: (timeoutMs: number) => Promise<void>, stats: () => Promise<ContextStats[]>) {
    super();
    this.contexts = portals;
    this.portals = portals[0];
    this.#close = close;
    this.#stats = stats;
  }

  /**
   * Stops every context. Idempotent. New connections are refused at once;
   * each session then closes gracefully (in-flight requests are answered,
   * the clients get CLOSE and see their sessions end, not break), and
   * whatever is still open after `timeout` ms (default 5000) is destroyed.
   */
  close(options: ServerCloseOptions = {}): Promise<void> {
    try {
      checkOptions('Server.close', options, closeFields);
    } catch (e) {
      return Promise.reject(e);
    }
    this.#closing ??= this.#close(options.timeout ?? 5000).then(() => { this.emit('close'); });
    return this.#closing;
  }

  /**
   * Every context's figures (sessions, lanes, handshakes, requests,
   * messages, bytes, protocol errors) and their totals. With threads, each
   * worker is asked over its message port; a closed server's contexts
   * answer zeros.
   */
  async stats(): Promise<ServerStats> {
    const contexts = await this.#stats();
    return { totals: sum(contexts), contexts };
  }
}

/** Closes a server context: no new lanes, graceful session closes bounded by timeoutMs, then everything dropped. */
export async function closeContext(ctx: Context, sessions: Set<Session>, timeoutMs: number): Promise<void> {
  ctx.stopListening();
  let timer: unknown;
  // A session with no lane up has no client to tell (it would wait out the
  // grace period resuming): it is destroyed at once, now or when it gets there.
  const graceful = Promise.all([...sessions].map((s) => {
    if (s.state === 'resuming') return s.destroy();
    s.on('lane-down', () => { if (s.stats().lanesUp === 0) void s.destroy(); });
    return s.close({ timeout: Math.max(0, timeoutMs) }).catch(() => undefined);
  }));
  await Promise.race([graceful, new Promise<void>((r) => { timer = ctx.clock.setTimer(r, Math.max(0, timeoutMs)); })]);
  ctx.clock.clearTimer(timer);
  await Promise.all([...sessions].map((s) => s.destroy()));
  await ctx.close();
}

/**
 * Wires a context's sessions to a handler: each accepted session becomes a
 * Session (told to `accepted`). A session's one-way messages go to
 * onMessage; with none, the session has no 'message' listener.
 */
export function serveContext(ctx: Context, handlers: Handlers,
  policy: (info: SessionRequestInfo) => Promise<SessionDecision> | SessionDecision, accepted?: (s: Session) => void): Set<Session> {
  const { handler, onMessage, hotHandler, hotMessage } = handlers;
  const sessions = new Set<Session>();
  const ended = zero();
  endedOf.set(sessions, ended);
  ctx.setPolicy(policy, (handle) => {
    const s = new Session(ctx, handle, { handler, hotHandler, hotMessage, open: true });
    sessions.add(s);
    ended.sessionsAccepted++;
    if (onMessage) s.on('message', (h: Buffer, d: Buffer, release?: () => void) => onMessage(s, h, d, release));
    s.on('close', () => {
      sessions.delete(s);
      const st = s.stats();
      for (const k of counted) ended[k] += st[k];
    });
    s.on('error', () => undefined);
    accepted?.(s);
  });
  return sessions;
}

export async function createServer(options: ServerOptions): Promise<Server> {
  if (options === undefined || options === null || typeof options !== 'object') {
    throw new InvalidArgumentError(`createServer: options must be an object such as { portals: ['tcp://0.0.0.0:7000/svc'], handler }, not ${options === null ? 'null' : typeof options}`);
  }
  checkOptions('createServer', options, serverFields);
  if (options.portals === undefined) throw new InvalidArgumentError("createServer: portals must be a non-empty array of URI strings (e.g. ['tcp://0.0.0.0:7000/svc'])");
  for (const p of [...options.portals, ...(options.advertise ?? [])]) {
    try { new URL(p); } catch (e) { throw new InvalidArgumentError(`createServer: '${p}' is not a URI (expected e.g. 'tcp://0.0.0.0:7000/svc')`, { cause: e }); }
  }
  const tlsPortal = options.portals.find((p) => p.startsWith('tls:'));
  if (tlsPortal && options.tls === undefined) {
    throw new InvalidArgumentError(`createServer: tls must be given (node:tls options: key and cert at least) for the tls portal ${tlsPortal}`);
  }
  if (tlsPortal && (['cert', 'pfx', 'SNICallback'] as const).every((k) => options.tls![k] === undefined)) {
    // node:tls would take it and fail every handshake
    throw new InvalidArgumentError(`createServer: tls must hold the server's certificate (cert and key, or pfx) for the tls portal ${tlsPortal}`);
  }
  if (options.advertise && options.advertise.length !== options.portals.length) {
    throw new InvalidArgumentError(`createServer: advertise must name one URI per portal (${options.portals.length}), not ${options.advertise.length}`);
  }
  const threads = options.threads ?? 0;
  const onSession = options.onSession ?? (() => 'accept' as Decision);
  const balance = options.balance ?? 'round-robin';
  const rr = { next: 0 };
  if (threads <= 0) {
    // before the context: a handler that fails to load leaves nothing behind
    const loaded: Handlers = typeof options.handler === 'string' ? loadHandler(options.handler) : { handler: options.handler };
    const handlers: Handlers = {
      handler: loaded.handler, hotHandler: options.hotHandler ?? loaded.hotHandler,
      onMessage: options.onMessage ?? loaded.onMessage, hotMessage: options.hotMessage ?? loaded.hotMessage,
    };
    checkHandlers('createServer', handlers, options.views);
    // No one-way receiver: the sessions' ACCEPT says so and a client's send() fails at once.
    const ctx = new Context({ core: { ...options.core, refuseOneway: !handlers.onMessage && !handlers.hotMessage }, views: options.views, admission: options.admission });
    if (options.psk) ctx.setPsk(options.psk);
    let server: Server | undefined;
    const sessions = serveContext(ctx, handlers, async (info) => toDecision(await onSession(info)), (s) => server?.emit('session', s));
    const bound: string[] = [];
    try {
      const transport = options.tls ? { tls: options.tls } : undefined;
      for (let i = 0; i < options.portals.length; i++) bound.push(await ctx.listen(options.portals[i], options.advertise?.[i], transport));
    } catch (e) {
      await ctx.close(); // keep none of the portals bound so far
      throw e;
    }
    debug('server: listening on %s', bound.join(', '));
    server = new Server([bound], (ms) => closeContext(ctx, sessions, ms), async () => [contextStats(0, ctx, sessions)]);
    return server;
  }
  if (typeof options.handler === 'function' || options.hotHandler || options.hotMessage || options.onMessage) {
    throw new InvalidArgumentError('with threads, handlers come from a module path (handler): each worker loads it itself; export onMessage, hotHandler or hotMessage from it');
  }
  if (options.tls !== undefined) {
    try { structuredClone(options.tls); } catch (e) {
      throw new InvalidArgumentError('createServer: with threads, tls must hold only cloneable values (strings, Buffers, numbers; no functions): each worker gets a copy', { cause: e });
    }
  }
  if (typeof options.psk === 'function') {
    throw new InvalidArgumentError('createServer: with threads, psk must be a table { [identity]: key } (each worker gets a copy; a function cannot cross to a worker)');
  }
  const workers: Worker[] = [];
  const portals: string[][] = [];
  // A new session comes to context 0's portals first; balancing sends it on
  // to its context with a REDIRECT, and the context that will hold it asks
  // onSession. So onSession runs once per session, where the session lives
  // (its accept attrs reach the client), and a client that dials a worker's
  // portal directly is decided like any other.
  const ask = async (from: number, info: SessionRequestInfo): Promise<SessionDecision> => {
    if (from === 0) {
      const target = chooseContext(balance, info, threads, rr);
      // to the target's portals of the transport the session came over (a tls:// session stays on tls://)
      if (target !== 0) return { redirect: sameSecurity(portals[target], info.portal) };
    }
    return toDecision(await onSession(info));
  };
  const started: Promise<void>[] = [];
  const asked = new Map<number, (s: ContextStats) => void>();
  let nextAsk = 1;
  const exited = new Set<number>();
  for (let i = 0; i < threads; i++) {
    const w = new Worker(path.join(__dirname, 'worker.js'), {
      workerData: {
        index: i, portals: options.portals.map((p) => portFor(p, i)),
        advertise: options.advertise?.map((p) => portFor(p, i)), handler: options.handler, core: options.core,
        views: options.views, admission: options.admission, tls: options.tls, psk: options.psk,
      },
    });
    workers.push(w);
    started.push(new Promise<void>((resolve, reject) => {
      w.on('message', (m: { type: string; portals?: string[]; id?: number; info?: SessionRequestInfo; error?: string; stats?: ContextStats }) => {
        if (m.type === 'ready') { portals[i] = m.portals!; resolve(); }
        else if (m.type === 'stats') { asked.get(m.id!)?.(m.stats!); asked.delete(m.id!); }
        else if (m.type === 'failed') reject(new NexioError('NEXIO_ERR_WORKER', `context ${i}: ${m.error}`));
        else if (m.type === 'session') {
          const info = { ...m.info!, attrs: Buffer.from(m.info!.attrs) };
          ask(i, info).then((d) => w.postMessage({ type: 'decision', id: m.id, decision: d }),
            (e) => w.postMessage({ type: 'decision', id: m.id, decision: { reject: Code.REJECTED, message: String(e?.message ?? e) } }));
        }
      });
      w.once('error', reject);
      w.once('exit', (code) => { exited.add(i); reject(new NexioError('NEXIO_ERR_WORKER', `context ${i} exited with ${code}`)); });
    }));
  }
  try {
    await Promise.all(started);
  } catch (e) {
    await Promise.all(workers.map((w) => w.terminate()));
    throw e;
  }
  const askStats = (i: number): Promise<ContextStats> => {
    if (exited.has(i)) return Promise.resolve({ index: i, portals: portals[i], ...zero() });
    return new Promise<ContextStats>((resolve) => {
      const id = nextAsk++;
      const onExit = () => { asked.delete(id); resolve({ index: i, portals: portals[i], ...zero() }); };
      asked.set(id, (st) => { workers[i].off('exit', onExit); resolve({ ...st, index: i }); });
      workers[i].once('exit', onExit);
      workers[i].postMessage({ type: 'stats', id });
    });
  };
  debug('server: %d contexts on worker threads, listening on %s', threads, portals.map((p) => p.join(', ')).join('; '));
  return new Server(portals, async (timeout) => {
    await Promise.all(workers.map((w, i) => new Promise<void>((res) => {
      if (exited.has(i)) { res(); return; }
      w.once('exit', () => res());
      w.postMessage({ type: 'close', timeout });
    })));
  }, () => Promise.all(workers.map((_, i) => askStats(i))));
}
