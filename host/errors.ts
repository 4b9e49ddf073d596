// Every error nexio raises is an Error with a stable `code`. Numbers are the
// core's codes (assembly/errors.ts), shared with the wire (REJECT reasons,
// ERROR frames); names are what applications match on.

/**
 * The core's numeric codes. A plain enum (not `const`): it exists at run
 * time, so `Code.TIMEOUT` works under isolatedModules and from JavaScript.
 */
export enum Code {
  MALFORMED = 1,
  FRAME_TOO_LARGE = 2,
  BAD_TYPE = 3,
  BAD_STATE = 4,
  WINDOW = 5,
  VERSION = 6,
  REJECTED = 7,
  UNKNOWN_SESSION = 8,
  TIMEOUT = 9,
  ABORTED = 10,
  SESSION_LOST = 11,
  LANE_DEAD = 12,
  BACKPRESSURE = 13,
  LIMIT = 14,
  REDIRECT_LOOP = 15,
  CLOSED = 16,
  BAD_HANDLE = 17,
  BAD_ARGUMENT = 18,
  NOT_OPEN = 19,
  TRANSPORT = 20,
  NO_HANDLER = 21,
  AUTH = 22,
}

/** Short names of the core's codes, as used in traces, stats and docs. */
export const codeNames: Record<number, string> = {
  1: 'malformed',
  2: 'frame-too-large',
  3: 'bad-type',
  4: 'bad-state',
  5: 'window',
  6: 'version',
  7: 'rejected',
  8: 'unknown-session',
  9: 'timeout',
  10: 'aborted',
  11: 'session-lost',
  12: 'lane-dead',
  13: 'backpressure',
  14: 'limit',
  15: 'redirect-loop',
  16: 'closed',
  17: 'bad-handle',
  18: 'bad-argument',
  19: 'not-open',
  20: 'transport',
  21: 'no-handler',
  22: 'auth',
};

/** Every `code` a NexioError can have: compare against these (a misspelled one fails to compile). */
export type ErrorCode =
  | 'NEXIO_ERR_PROTOCOL' | 'NEXIO_ERR_TIMEOUT' | 'NEXIO_ERR_ABORTED' | 'NEXIO_ERR_REJECTED'
  | 'NEXIO_ERR_SESSION_LOST' | 'NEXIO_ERR_BACKPRESSURE' | 'NEXIO_ERR_CLOSED' | 'NEXIO_ERR_CORE_TRAP'
  | 'NEXIO_ERR_INVALID_ARG' | 'NEXIO_ERR_LIMIT' | 'NEXIO_ERR_REPLAY_MISMATCH' | 'NEXIO_ERR_TRANSPORT'
  | 'NEXIO_ERR_REMOTE' | 'NEXIO_ERR_NO_HANDLER' | 'NEXIO_ERR_WORKER' | 'NEXIO_ERR_INTERNAL'
  | 'NEXIO_ERR_AUTH' | 'NEXIO_ERR_LANE_DEAD' | 'NEXIO_ERR_REDIRECT_LOOP' | 'NEXIO_ERR_BAD_HANDLE' | 'NEXIO_ERR_NOT_OPEN'
  | 'NEXIO_ERR_RDMA_UNAVAILABLE' | 'NEXIO_ERR_RDMA_SQ_FULL'
  | 'NEXIO_ERR_RDMA_PORT_DOWN' | 'NEXIO_ERR_RDMA_DEVICE_FATAL' | 'NEXIO_ERR_RDMA_QP_FATAL';

export class NexioError extends Error {
  readonly code: ErrorCode;
  /** The core's numeric code, when the error came from the protocol. */
  readonly wire: number;
  /** `code` should be an ErrorCode; a transport's own code (a native addon's) is kept as it is. */
  constructor(code: ErrorCode | (string & {}), message: string, wire = 0, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code as ErrorCode;
    this.wire = wire;
  }
}

/** The peer broke the protocol; only its lane was closed. */
export class ProtocolError extends NexioError {
  constructor(wire: number, message?: string) {
    super('NEXIO_ERR_PROTOCOL', message ?? `protocol error: ${codeNames[wire] ?? wire}`, wire);
  }
}
export class TimeoutError extends NexioError {
  constructor(message = 'request timed out') { super('NEXIO_ERR_TIMEOUT', message, Code.TIMEOUT); }
}
export class AbortedError extends NexioError {
  constructor(message = 'request aborted', options?: { cause?: unknown }) {
    super('NEXIO_ERR_ABORTED', message, Code.ABORTED, options);
  }
}
/**
 * The server refused the session. `message` is the server's text (its
 * onSession's `{ reject: 'text' }`), or a description of `reason` when it
 * gave none; `reason` is the numeric code it sent (`{ reject: n }`; 7,
 * Code.REJECTED, for a text rejection).
 */
export class RejectedError extends NexioError {
  readonly reason: number;
  constructor(reason: number, message?: string) {
    super('NEXIO_ERR_REJECTED', message || `session rejected: ${codeNames[reason] ?? reason}`, Code.REJECTED);
    this.reason = reason;
  }
}
export class SessionLostError extends NexioError {
  constructor(wire: number, message?: string) {
    super('NEXIO_ERR_SESSION_LOST', message ?? `session lost: ${codeNames[wire] ?? wire}`, wire);
  }
}
export class BackpressureError extends NexioError {
  constructor(message = 'no credit: wait for drain') { super('NEXIO_ERR_BACKPRESSURE', message, Code.BACKPRESSURE); }
}
export class ClosedError extends NexioError {
  constructor(message = 'session closed') { super('NEXIO_ERR_CLOSED', message, Code.CLOSED); }
}
/** The core trapped: a bug in nexio. Its context is unusable; other contexts are not touched. */
export class CoreTrapError extends NexioError {
  constructor(cause: unknown) {
    super('NEXIO_ERR_CORE_TRAP', `protocol core trapped: ${(cause as Error)?.message ?? cause}`, 0, { cause });
  }
}
export class InvalidArgumentError extends NexioError {
  constructor(message: string, options?: { cause?: unknown }) { super('NEXIO_ERR_INVALID_ARG', message, Code.BAD_ARGUMENT, options); }
}
/** A configured limit was reached (sessions per context, a server's sessions, a message's size); the message names it. */
export class LimitError extends NexioError {
  constructor(message: string) { super('NEXIO_ERR_LIMIT', message, Code.LIMIT); }
}
/**
 * A transport failed: the address was refused, unreachable or could not be
 * resolved (the system error is `cause`), or a lane broke.
 */
export class TransportError extends NexioError {
  constructor(message: string, options?: { cause?: unknown }) { super('NEXIO_ERR_TRANSPORT', message, Code.TRANSPORT, options); }
}
/**
 * Pre-shared keys: a lane did not prove the key. On a client: the server
 * refused our proof (a wrong key, an unknown identity, no key where the
 * server wants one, a key where it wants none), or the server did not prove
 * the key itself. The session (or the connect) ends with it.
 */
export class AuthError extends NexioError {
  constructor(message = 'pre-shared key authentication failed') { super('NEXIO_ERR_AUTH', message, Code.AUTH); }
}
export class ReplayMismatchError extends NexioError {
  constructor(message: string) { super('NEXIO_ERR_REPLAY_MISMATCH', message); }
}

const simple: Record<number, ErrorCode> = {
  [Code.LANE_DEAD]: 'NEXIO_ERR_LANE_DEAD',
  [Code.LIMIT]: 'NEXIO_ERR_LIMIT',
  [Code.REDIRECT_LOOP]: 'NEXIO_ERR_REDIRECT_LOOP',
  [Code.BAD_HANDLE]: 'NEXIO_ERR_BAD_HANDLE',
  [Code.NOT_OPEN]: 'NEXIO_ERR_NOT_OPEN',
  [Code.TRANSPORT]: 'NEXIO_ERR_TRANSPORT',
  [Code.NO_HANDLER]: 'NEXIO_ERR_NO_HANDLER',
};

/** The Error for a core code. */
export function fromCode(wire: number, message?: string): NexioError {
  if (wire >= Code.MALFORMED && wire <= Code.VERSION) return new ProtocolError(wire, message);
  switch (wire) {
    case Code.REJECTED: return new RejectedError(wire, message);
    case Code.UNKNOWN_SESSION:
    case Code.SESSION_LOST: return new SessionLostError(wire, message);
    case Code.TIMEOUT: return new TimeoutError(message);
    case Code.ABORTED: return new AbortedError(message);
    case Code.BACKPRESSURE: return new BackpressureError(message);
    case Code.CLOSED: return new ClosedError(message);
    case Code.BAD_ARGUMENT: return new InvalidArgumentError(message ?? 'bad argument');
    case Code.LIMIT: return new LimitError(message ?? 'a limit was reached');
    case Code.TRANSPORT: return new TransportError(message ?? 'transport failed');
    case Code.AUTH: return new AuthError(message);
  }
  const name = simple[wire];
  return new NexioError(name ?? 'NEXIO_ERR_INTERNAL', message ?? `${codeNames[wire] ?? 'error'} (${wire})`, wire);
}
