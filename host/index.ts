// nexio's public API.
import { Context, registerTransport, transportFor, registerMemory } from './context';
import { Session } from './session';
import { InvalidArgumentError, TimeoutError } from './errors';
import type { CoreConfig } from './core';

export { createServer, Server } from './server';
export type { ServerOptions, Decision, Balance } from './server';
export { Session, RemoteError } from './session';
export type { Reply, RequestOptions, SendOptions, CloseOptions, IncomingRequest, Handler, HandlerResult, SessionStats, Bytes } from './session';
export { Context, registerTransport, realClock, defaultAdmission } from './context';
export type { SessionRequestInfo, HostClock, ContextOptions, AdmissionOptions, ContextUsage } from './context';
export { MemNetwork, mem } from './transports/mem';
export type { MemPeer } from './transports/mem';
export * from './errors';
export { Recorder, replay } from './record';
export type { Registration } from './transports/rdma';

/** Registers application memory for rdma:// rendezvous sends (docs/api.md, "Registered memory"); the same as any Context's register(). */
export const register = registerMemory;

export interface ConnectOptions {
  /** Lanes (connections) the session keeps, 1..8; default 2. */
  lanes?: number;
  /** Milliseconds to establish the session (all its retries) before NEXIO_ERR_TIMEOUT; default 10000. Costs no context of its own. */
  timeout?: number;
  /** Milliseconds the session waits for a lane to come back before NEXIO_ERR_SESSION_LOST; default 10000. */
  resumeTimeout?: number;
  /** Credits: messages and bytes in flight per direction, and outstanding requests. */
  credits?: { messages?: number; bytes?: number; requests?: number };
  /** Resource named in the HELLO (default: the URI's path). */
  resource?: string;
  /** Opaque bytes for the server's onSession. */
  attrs?: Uint8Array;
  /** Operations allowed to wait for credit in request()/send() before NEXIO_ERR_BACKPRESSURE. */
  maxQueued?: number;
  /** Run on this context (default: a context per thread, shared by its sessions). */
  context?: Context;
  keepaliveMs?: number;
  core?: Partial<CoreConfig>;
  /**
   * Zero-copy receive: replies and messages arrive as views of the receive
   * ring that must be released (docs/api.md, "Zero-copy receive").
   * Sessions with the same views/credits/timer/core settings share a context.
   */
  views?: boolean;
}

const pow2 = (n: number) => 2 ** Math.round(Math.log2(n));
/**
 * Contexts for sessions opened without `context`, one per distinct set of
 * core settings (credits, timers, views, core): sessions with the same
 * settings share one, so a setting costs a context once, not per session.
 */
const shared = new Map<string, Context>();

function sharedContext(options: ConnectOptions): Context {
  const core: Partial<CoreConfig> = {
    ...options.core,
    ...(options.credits?.messages ? { windowMsgs: pow2(options.credits.messages) } : {}),
    ...(options.credits?.bytes ? { windowBytes: pow2(options.credits.bytes) } : {}),
    ...(options.credits?.requests ? { maxRequests: options.credits.requests } : {}),
    ...(options.resumeTimeout ? { resumeMs: options.resumeTimeout } : {}),
    ...(options.keepaliveMs ? { keepaliveMs: options.keepaliveMs } : {}),
  };
  const views = !!options.views;
  const key = JSON.stringify([views, Object.entries(core).sort(([a], [b]) => (a < b ? -1 : 1))]);
  let ctx = shared.get(key);
  // A context that ended (closed by the application, or trapped) is replaced.
  if (!ctx || ctx.failed) {
    ctx = new Context({ views, core });
    shared.set(key, ctx);
  }
  return ctx;
}

/** Opens a session to a portal; resolves once the server accepted it. */
export async function connect(uri: string, options: ConnectOptions = {}): Promise<Session> {
  const u = new URL(uri);
  // An unknown scheme or a URI its transport cannot use fails now, not after the connect timeout.
  transportFor(u).check?.(u);
  const lanes = options.lanes ?? 2;
  if (!Number.isInteger(lanes) || lanes < 1 || lanes > 8) throw new InvalidArgumentError('lanes must be 1..8');
  const ctx = options.context ?? sharedContext(options);
  // Throws NEXIO_ERR_LIMIT (the context holds maxSessions) or NEXIO_ERR_CLOSED (it ended).
  const h = ctx.connect(u.href, options.resource ?? decodeURIComponent(u.pathname), options.attrs ?? new Uint8Array(0), lanes);
  const s = new Session(ctx, h, { maxQueued: options.maxQueued });
  // The core bounds each lane's handshake, not the whole establishment
  // (refused connects are retried until its resume time): bound it here.
  const ms = options.timeout ?? 10000;
  let timer: unknown;
  try {
    await Promise.race([s.whenOpen(), new Promise<never>((_, reject) => {
      timer = ctx.clock.setTimer(() => reject(new TimeoutError(`session could not be established in ${ms} ms`)), ms);
    })]);
  } catch (e) {
    await s.destroy();
    throw e;
  } finally {
    ctx.clock.clearTimer(timer);
  }
  return s;
}
