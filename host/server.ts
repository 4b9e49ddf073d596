// Servers: one or more contexts, each binding its own portals. The first
// context's first portal is the public one. A new session arriving there is
// decided by onSession (accept / reject / redirect), then placed on a
// context by the balance policy (round-robin by default, 'hash', or a
// function); a session placed on another context is redirected to that
// context's portals, where it is accepted. With `threads: N` the contexts run
// on N worker_threads, each loading the handler module itself.

import { Worker } from 'node:worker_threads';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { Context, SessionDecision, SessionRequestInfo, AdmissionOptions } from './context';
import { Session, Handler } from './session';
import type { CoreConfig } from './core';
import { Code, InvalidArgumentError, NexioError } from './errors';

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
  balance?: Balance;
  /** Zero-copy receive on the server's contexts: a handler's req.header/req.data are views, valid until it settles. */
  views?: boolean;
  core?: Partial<CoreConfig>;
  /** Connections in their handshake: pool size, per-address share, deadline, linger (docs/api.md, "Limits"). */
  admission?: AdmissionOptions;
}

function toDecision(d: Decision): SessionDecision {
  if (d === 'accept') return { accept: true };
  if ('reject' in d) {
    const reason = typeof d.reject === 'number' ? d.reject : Code.REJECTED;
    return { reject: reason, message: typeof d.reject === 'string' ? d.reject : undefined };
  }
  if ('redirect' in d) return { redirect: d.redirect };
  return d;
}

function portFor(uri: string, i: number): string {
  const u = new URL(uri);
  if (u.port && Number(u.port) !== 0) u.port = String(Number(u.port) + i);
  return u.href;
}

export function loadHandler(spec: string): { handler?: Handler; onMessage?: ServerOptions['onMessage'] } {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const m = require(path.resolve(spec));
  const handler = m.handler ?? m.default ?? (typeof m === 'function' ? m : undefined);
  if (typeof handler !== 'function') throw new InvalidArgumentError(`handler module ${spec} exports no handler function`);
  return { handler, onMessage: m.onMessage };
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

export class Server {
  readonly portals: string[];
  #close: (timeoutMs: number) => Promise<void>;
  #closing: Promise<void> | undefined;
  /** Portals of every context, by context index. */
  readonly contexts: string[][];

  /** @internal */
  constructor(portals: string[][], close: (timeoutMs: number) => Promise<void>) {
    this.contexts = portals;
    this.portals = portals[0];
    this.#close = close;
  }

  /**
   * Stops every context. Idempotent. New connections are refused at once;
   * each session then closes gracefully (in-flight requests are answered,
   * the clients get CLOSE and see their sessions end, not break), and
   * whatever is still open after `timeout` ms (default 5000) is destroyed.
   */
  close(options: { timeout?: number } = {}): Promise<void> {
    this.#closing ??= this.#close(options.timeout ?? 5000);
    return this.#closing;
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
    return s.close().catch(() => undefined);
  }));
  await Promise.race([graceful, new Promise<void>((r) => { timer = ctx.clock.setTimer(r, Math.max(0, timeoutMs)); })]);
  ctx.clock.clearTimer(timer);
  await Promise.all([...sessions].map((s) => s.destroy()));
  await ctx.close();
}

/** Wires a context's sessions to a handler: each accepted session becomes a Session. */
export function serveContext(ctx: Context, handler: Handler | undefined, onMessage: ServerOptions['onMessage'],
  policy: (info: SessionRequestInfo) => Promise<SessionDecision> | SessionDecision): Set<Session> {
  const sessions = new Set<Session>();
  ctx.setPolicy(policy, (handle) => {
    const s = new Session(ctx, handle, { handler, open: true });
    sessions.add(s);
    if (onMessage) s.on('message', (h: Buffer, d: Buffer, release?: () => void) => onMessage(s, h, d, release));
    s.on('close', () => sessions.delete(s));
    s.on('error', () => undefined);
  });
  return sessions;
}

export async function createServer(options: ServerOptions): Promise<Server> {
  const threads = options.threads ?? 0;
  if (!options.portals?.length) throw new InvalidArgumentError('createServer needs at least one portal');
  const onSession = options.onSession ?? (() => 'accept' as Decision);
  const balance = options.balance ?? 'round-robin';
  const rr = { next: 0 };
  if (threads <= 0) {
    const ctx = new Context({ core: options.core, views: options.views, admission: options.admission });
    let handler = options.handler as Handler | undefined;
    let onMessage = options.onMessage;
    if (typeof options.handler === 'string') ({ handler, onMessage = onMessage } = loadHandler(options.handler));
    const sessions = serveContext(ctx, handler, onMessage, async (info) => toDecision(await onSession(info)));
    const bound: string[] = [];
    try {
      for (let i = 0; i < options.portals.length; i++) bound.push(await ctx.listen(options.portals[i], options.advertise?.[i]));
    } catch (e) {
      await ctx.close(); // keep none of the portals bound so far
      throw e;
    }
    return new Server([bound], (ms) => closeContext(ctx, sessions, ms));
  }
  if (typeof options.handler === 'function') {
    throw new InvalidArgumentError('with threads, handler must be a module path: each worker loads it itself');
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
      if (target !== 0) return { redirect: portals[target] };
    }
    return toDecision(await onSession(info));
  };
  const started: Promise<void>[] = [];
  for (let i = 0; i < threads; i++) {
    const w = new Worker(path.join(__dirname, 'worker.js'), {
      workerData: {
        index: i, portals: options.portals.map((p) => portFor(p, i)),
        advertise: options.advertise?.map((p) => portFor(p, i)), handler: options.handler, core: options.core,
        views: options.views, admission: options.admission,
      },
    });
    workers.push(w);
    started.push(new Promise<void>((resolve, reject) => {
      w.on('message', (m: { type: string; portals?: string[]; id?: number; info?: SessionRequestInfo; error?: string }) => {
        if (m.type === 'ready') { portals[i] = m.portals!; resolve(); }
        else if (m.type === 'failed') reject(new NexioError('NEXIO_ERR_WORKER', `context ${i}: ${m.error}`));
        else if (m.type === 'session') {
          const info = { ...m.info!, attrs: Buffer.from(m.info!.attrs) };
          ask(i, info).then((d) => w.postMessage({ type: 'decision', id: m.id, decision: d }),
            (e) => w.postMessage({ type: 'decision', id: m.id, decision: { reject: Code.REJECTED, message: String(e?.message ?? e) } }));
        }
      });
      w.once('error', reject);
      w.once('exit', (code) => reject(new NexioError('NEXIO_ERR_WORKER', `context ${i} exited with ${code}`)));
    }));
  }
  try {
    await Promise.all(started);
  } catch (e) {
    await Promise.all(workers.map((w) => w.terminate()));
    throw e;
  }
  return new Server(portals, async (timeout) => {
    await Promise.all(workers.map((w) => new Promise<void>((res) => {
      w.once('exit', () => res());
      w.postMessage({ type: 'close', timeout });
    })));
  });
}
