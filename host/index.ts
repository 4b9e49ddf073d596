// nexio's public API.
import { Context, registerTransport, transportFor, registerMemory } from './context';
import { Session } from './session';
import { InvalidArgumentError, TimeoutError } from './errors';
import type { CoreConfig } from './core';
import { clientPskCheck, ClientPsk } from './psk';
import { Check, checkCore, checkOptions, int, ms, nested, str, bytes, bool, tlsOptions } from './options';

export { createServer, Server } from './server';
export type { ServerOptions, ServerCloseOptions, ServerEvents, ServerStats, ContextStats, Decision, Balance } from './server';
export { Session, RemoteError } from './session';
export type {
  Reply, RequestOptions, SendOptions, CloseOptions, IncomingRequest, Handler, HotHandler, HotMessage, HandlerResult, SessionStats, TrafficCounts, Bytes,
  SessionState, SessionEvents,
} from './session';
export { Context, registerTransport, realClock, defaultAdmission } from './context';
export type { SessionRequestInfo, HostClock, ContextOptions, AdmissionOptions, ContextUsage, Registration } from './context';
export type { CoreConfig } from './core';
export type { TlsPeer } from './transports/transport';
export { MemNetwork, mem } from './transports/mem';
export type { MemPeer } from './transports/mem';
export * from './errors';
export { Recorder, replay } from './record';
export { channels } from './diagnostics';
export type { LaneMessage, SessionMessage, ContextMessage, AuthMessage } from './diagnostics';
export type { ClientPsk, ServerPsk, AuthFailureCount } from './psk';

/** Registers application memory for rdma:// rendezvous sends (docs/api.md, "Registered memory"); the same as any Context's register(). */
export const register = registerMemory;

export interface ConnectOptions {
  /** Lanes (connections) the session keeps, 1..8; default 2. */
  lanes?: number;
  /**
   * ms connect() may take in all: every lane's attempts, the handshake and
   * the server's onSession; past it, NEXIO_ERR_TIMEOUT. Default 10000. An
   * address that refuses, cannot be reached or does not resolve fails
   * sooner, with NEXIO_ERR_TRANSPORT.
   */
  timeout?: number;
  /** ms an open session with no lane up waits for one to come back before NEXIO_ERR_SESSION_LOST; default 10000. */
  resumeTimeout?: number;
  /** Credits: messages (16..65536) and bytes (32768..67108864) in flight per direction (rounded to a power of two), and outstanding requests (1..65535). */
  credits?: { messages?: number; bytes?: number; requests?: number };
  /** Resource named in the HELLO (default: the URI's path). */
  resource?: string;
  /** Opaque bytes for the server's onSession. */
  attrs?: Uint8Array;
  /** Operations allowed to wait for credit in request()/send() before NEXIO_ERR_BACKPRESSURE (default 4096; 0: none wait). */
  maxQueued?: number;
  /** Run on this context (default: a context per thread, shared by its sessions). */
  context?: Context;
  /** ms between keepalives on an idle lane (default 1000). */
  keepaliveMs?: number;
  /** The core's settings (docs/api.md, "Context"); credits, resumeTimeout and keepaliveMs take precedence. */
  core?: Partial<CoreConfig>;
  /**
   * Zero-copy receive: replies and messages arrive as views of the receive
   * ring that must be released (docs/api.md, "Zero-copy receive").
   * Sessions with the same views/credits/timer/core settings share a context.
   */
  views?: boolean;
  /**
   * tls:// only: options for node:tls's connect (ca, cert, key, servername,
   * minVersion, ...), used for every lane of the session. The server's
   * certificate is verified (rejectUnauthorized) unless they say otherwise;
   * TLS 1.3 unless they name a minVersion.
   */
  tls?: import('node:tls').ConnectionOptions;
  /**
   * A pre-shared key: every lane of the session proves it to the server
   * (and the server proves it back) without sending it; a server that
   * refuses it, or does not prove it, ends the connect with NEXIO_ERR_AUTH
   * (docs/security.md, "Pre-shared keys").
   */
  psk?: ClientPsk;
}

const connectFields: Record<keyof ConnectOptions, Check> = {
  lanes: int(1, 8),
  timeout: ms(1),
  resumeTimeout: int(1, 0xffffffff),
  credits: nested('connect', 'credits', { messages: int(16, 65536), bytes: int(32768, 1 << 26), requests: int(1, 65535) }),
  resource: str,
  attrs: bytes,
  maxQueued: int(0),
  context: (v) => (v instanceof Context ? undefined : 'a Context'),
  keepaliveMs: int(1, 0xffffffff),
  core: (v) => { checkCore('connect', v as Partial<CoreConfig>); return undefined; },
  views: bool,
  tls: tlsOptions,
  psk: clientPskCheck,
};

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

/**
 * Opens a session to a portal; resolves once the server accepted it.
 * Rejects with NEXIO_ERR_INVALID_ARG (a bad URI or option), NEXIO_ERR_TRANSPORT
 * (the address refused, is unreachable or does not resolve: the system error
 * is `cause`), NEXIO_ERR_PROTOCOL (the peer does not speak nexio),
 * NEXIO_ERR_REJECTED / NEXIO_ERR_LIMIT (the server refused it), NEXIO_ERR_AUTH
 * (pre-shared keys: our proof refused, or the server did not prove the key) or
 * NEXIO_ERR_TIMEOUT (not established within `timeout`).
 */
export async function connect(uri: string, options: ConnectOptions = {}): Promise<Session> {
  if (typeof uri !== 'string') throw new InvalidArgumentError(`connect: uri must be a string such as 'tcp://host:port/service', not ${typeof uri}`);
  let u: URL;
  try {
    u = new URL(uri);
  } catch (e) {
    throw new InvalidArgumentError(`connect: '${uri}' is not a URI (expected e.g. 'tcp://host:port/service' or 'mem://name/service')`, { cause: e });
  }
  checkOptions('connect', options, connectFields);
  // An unknown scheme or a URI its transport cannot use fails now, not after the connect timeout.
  transportFor(u).check?.(u);
  if (options.tls !== undefined && u.protocol !== 'tls:') {
    throw new InvalidArgumentError(`connect: tls options are for tls:// URIs; ${u.protocol}// would not encrypt (write tls://${u.host}${u.pathname})`);
  }
  const lanes = options.lanes ?? 2;
  const ctx = options.context ?? sharedContext(options);
  // Throws NEXIO_ERR_LIMIT (the context holds maxSessions) or NEXIO_ERR_CLOSED (it ended).
  let resource = options.resource;
  if (resource === undefined) {
    try { resource = decodeURIComponent(u.pathname); } catch (e) {
      throw new InvalidArgumentError(`the URI's path is not valid percent-encoding: ${uri}`, { cause: e });
    }
  }
  const h = ctx.connect(u.href, resource, options.attrs ?? new Uint8Array(0), lanes, options.tls ? { tls: options.tls } : undefined, options.psk);
  const s = new Session(ctx, h, { maxQueued: options.maxQueued, uri: u.href });
  // The core bounds each lane's handshake, not the whole establishment
  // (refused connects are retried until its resume time): bound it here.
  const ms = options.timeout ?? 10000;
  let timer: unknown;
  try {
    await Promise.race([s.whenOpen(), new Promise<never>((_, reject) => {
      timer = ctx.clock.setTimer(() => reject(new TimeoutError(`session to ${u.href} could not be established in ${ms} ms`)), ms);
    })]);
  } catch (e) {
    await s.destroy();
    throw e;
  } finally {
    ctx.clock.clearTimer(timer);
  }
  return s;
}
