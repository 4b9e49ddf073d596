// nexio's public API.
import { Context, ContextOptions, registerTransport, transportFor, registerMemory } from './context';
import { Session } from './session';
import { InvalidArgumentError, TimeoutError } from './errors';
import type { CoreConfig } from './core';

export { createServer, Server } from './server';
export type { ServerOptions, Decision, Balance } from './server';
export { Session, RemoteError } from './session';
export type { Reply, RequestOptions, SendOptions, IncomingRequest, Handler, HandlerResult, SessionStats, Bytes } from './session';
export { Context, registerTransport } from './context';
export type { SessionRequestInfo } from './context';
export * from './errors';
export { Recorder, replay } from './record';
export type { Registration } from './transports/rdma';

/** Registers application memory for rdma:// rendezvous sends (docs/api.md, "Registered memory"); the same as any Context's register(). */
export const register = registerMemory;

export interface ConnectOptions {
  /** Lanes (connections) the session keeps, 1..8; default 2. */
  lanes?: number;
  /** Milliseconds to establish the session before NEXIO_ERR_TIMEOUT; default 10000. */
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
   * ring that must be released (docs/api.md, "Zero-copy receive"). The
   * session gets a context of its own.
   */
  views?: boolean;
}

const pow2 = (n: number) => 2 ** Math.round(Math.log2(n));
let shared: Context | undefined;

/** Opens a session to a portal; resolves once the server accepted it. */
export async function connect(uri: string, options: ConnectOptions = {}): Promise<Session> {
  const u = new URL(uri);
  // An unknown scheme or a URI its transport cannot use fails now, not after the connect timeout.
  transportFor(u).check?.(u);
  const lanes = options.lanes ?? 2;
  if (!Number.isInteger(lanes) || lanes < 1 || lanes > 8) throw new InvalidArgumentError('lanes must be 1..8');
  let ctx = options.context;
  const custom = options.credits || options.resumeTimeout || options.timeout || options.keepaliveMs || options.core || options.views;
  if (!ctx && custom) {
    const c: ContextOptions = {
      views: options.views,
      core: {
        ...options.core,
        ...(options.credits?.messages ? { windowMsgs: pow2(options.credits.messages) } : {}),
        ...(options.credits?.bytes ? { windowBytes: pow2(options.credits.bytes) } : {}),
        ...(options.credits?.requests ? { maxRequests: options.credits.requests } : {}),
        ...(options.resumeTimeout ? { resumeMs: options.resumeTimeout } : {}),
        ...(options.timeout ? { helloTimeoutMs: options.timeout } : {}),
        ...(options.keepaliveMs ? { keepaliveMs: options.keepaliveMs } : {}),
      },
    };
    ctx = new Context(c);
  }
  ctx ??= shared ??= new Context();
  const h = ctx.connect(u.href, options.resource ?? decodeURIComponent(u.pathname), options.attrs ?? new Uint8Array(0), lanes);
  if (h < 0) throw new InvalidArgumentError(`cannot open a session (${-h})`);
  const s = new Session(ctx, h, { maxQueued: options.maxQueued });
  // The core bounds each lane's handshake, not the whole establishment
  // (refused connects are retried until its resume time): bound it here.
  const ms = options.timeout ?? 10000;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([s.whenOpen(), new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TimeoutError(`session could not be established in ${ms} ms`)), ms);
    })]);
  } catch (e) {
    await s.destroy();
    throw e;
  } finally {
    clearTimeout(timer);
  }
  return s;
}
