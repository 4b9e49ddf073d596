// Events for tooling, through diagnostics_channel (as undici does), and
// NODE_DEBUG=nexio logging (util.debuglog) of lane and session lifecycle.
// A message is built only when a channel has subscribers or the debug log
// is on: a hot path pays one check for each.
import * as diagnostics_channel from 'node:diagnostics_channel';
import { debuglog } from 'node:util';

/** A message on `nexio:lane`. `lane` is the context's lane handle. */
export interface LaneMessage {
  event: 'open' | 'accepted' | 'up' | 'down' | 'closed' | 'evicted' | 'protocol-error';
  lane: number;
  /** The session the lane belongs to (up, down, protocol-error on a session). */
  session?: number;
  /** The URI the lane was dialled to (open) or accepted on (accepted). */
  uri?: string;
  /** The core's code (Code): why a lane went down, which protocol rule was broken. */
  code?: number;
  /** closed: the transport's error (undefined for an orderly close). */
  error?: Error;
  /** accepted, evicted: the peer's address. */
  remote?: string;
  reason?: string;
}

/** A message on `nexio:session`. `session` is the context's session handle; `id` the server-assigned id. */
export interface SessionMessage {
  event: 'open' | 'resumed' | 'lost' | 'closed' | 'rejected' | 'destroyed' | 'ended';
  session: number;
  id?: bigint;
  /** Why it ended (lost, rejected, destroyed, ended; closed by the peer). */
  error?: Error;
}

/**
 * A message on `nexio:auth` (servers with pre-shared keys): a lane proved
 * the key, or failed to (a wrong proof, an unknown identity, no key where
 * one is required, a key where none is). Keys and proofs are never in it.
 */
export interface AuthMessage {
  event: 'passed' | 'failed';
  lane: number;
  /** The peer's address. */
  remote: string;
  /** The identity the lane claimed (failed: known only when the lane named one before it failed). */
  identity?: string;
  reason?: string;
}

/** A message on `nexio:context`: a context ended (closed, or its core trapped). */
export interface ContextMessage {
  event: 'ended';
  error: Error;
}

export const channels = {
  lane: diagnostics_channel.channel('nexio:lane'),
  session: diagnostics_channel.channel('nexio:session'),
  context: diagnostics_channel.channel('nexio:context'),
  auth: diagnostics_channel.channel('nexio:auth'),
};

interface Messages { lane: LaneMessage; session: SessionMessage; context: ContextMessage; auth: AuthMessage }

/** NODE_DEBUG=nexio: lane and session lifecycle on stderr. */
export const debug = debuglog('nexio');

function describe(m: LaneMessage | SessionMessage | ContextMessage | AuthMessage): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(m)) {
    if (k === 'event' || v === undefined) continue;
    parts.push(`${k}=${v instanceof Error ? `${(v as { code?: string }).code ?? v.name}: ${v.message}` : typeof v === 'bigint' ? v.toString(16) : String(v)}`);
  }
  return parts.join(' ');
}

/**
 * Publishes the message `make()` builds on `nexio:<name>` and logs it
 * under NODE_DEBUG=nexio; `make` runs only if one of them listens.
 */
export function publish<K extends keyof Messages>(name: K, make: () => Messages[K]): void {
  const ch = channels[name];
  const heard = ch.hasSubscribers;
  if (!heard && !debug.enabled) return;
  const m = make();
  if (heard) ch.publish(m);
  if (debug.enabled) debug('%s %s %s', name, m.event, describe(m));
}
