// mem://name/resource — lanes between contexts of one process, with no
// socket under them: a transport like the others (the same ops, the same
// capability flags as tcp://: a byte stream), for tests, the simulator and
// the host fuzzer. A MemNetwork is a namespace of listeners; `mem` is the
// default one, registered under mem://.
//
// Stream semantics follow TCP's, including its awkward parts, so the host
// is tried against them here too: bytes arrive in order, later (never inside
// the write), possibly split or coalesced when a subclass says so; end()
// sends what was written, then a FIN, and the lane reports closed() only
// once the peer has ended its side too (a peer that never does keeps the
// connection half-closed, as on TCP); destroy() resets both sides at once.
//
// How bytes travel is the network's policy: post() decides when a callback
// runs (setImmediate by default; a simulator posts into virtual time), and
// carry() / dial() / finAfterBytes() / reset() can be overridden to delay,
// split, drop or refuse. Every callback the network posts names the end it
// acts on (post's `to`), so a simulator knows whose code it is about to run.

import type { Transport, Lane, LaneSink, Listener } from './transport';
import { InvalidArgumentError, NexioError } from '../errors';

/** A listener's accept function: binds the accepted lane's sink. */
export type Accept = (bind: (sink: LaneSink) => void, lane: Lane) => void;

/** One side of a connection as the transport sees it. */
export interface MemEnd {
  /** 'open': both ways; 'ending': our FIN sent, the peer's not yet; 'closed': gone. */
  state: 'connecting' | 'open' | 'ending' | 'closed';
  /** The peer's FIN arrived. */
  finIn: boolean;
  /** Whoever reads this end: a context's lane sink, or a raw peer's callbacks. */
  sink: LaneSink | undefined;
  readonly remote: string;
}

/** One connection: `a` dialled, `b` was accepted. */
export class MemConn {
  readonly a: MemEnd;
  readonly b: MemEnd;
  constructor(readonly net: MemNetwork, readonly id: number, readonly name: string) {
    this.a = { state: 'connecting', finIn: false, sink: undefined, remote: `mem:${name}` };
    this.b = { state: 'connecting', finIn: false, sink: undefined, remote: `mem:peer-${id}` };
  }

  other(e: MemEnd): MemEnd {
    return e === this.a ? this.b : this.a;
  }

  /** Hands bytes to `to`'s reader now (the network calls this when they arrive). */
  deliver(to: MemEnd, bytes: Uint8Array): void {
    if (to.state === 'closed' || to.finIn || !to.sink) return;
    to.sink.data(bytes);
  }

  /** The FIN from `to`'s peer arrives at `to`. */
  deliverFin(to: MemEnd): void {
    if (to.state === 'closed' || to.finIn) return;
    to.finIn = true;
    // TCP with allowHalfOpen off (node's default): a FIN is answered with ours.
    if (to.state === 'open') this.net.end(this, to);
    this.#maybeClosed(to);
    this.#maybeClosed(this.other(to));
  }

  #maybeClosed(e: MemEnd): void {
    if (e.state === 'ending' && e.finIn) this.closeEnd(e);
  }

  /** `e` is gone: its reader hears closed(err) once. */
  closeEnd(e: MemEnd, err?: Error): void {
    if (e.state === 'closed') return;
    e.state = 'closed';
    if (this.other(e).state === 'closed' || this.other(e).state === 'connecting') this.net.conns.delete(this);
    e.sink?.closed(err);
  }

  /**
   * A reset: both ends close (the other after its own delay), nothing in
   * flight arrives. `only` closes just that end (a half-open connection:
   * the other never hears of it).
   */
  kill(only?: MemEnd): void {
    const err = new NexioError('NEXIO_ERR_TRANSPORT', `mem ${this.name}: connection reset`, 20);
    for (const e of only ? [only] : [this.a, this.b]) {
      if (e.state === 'closed') continue;
      e.finIn = true; // nothing more is read from it
      this.net.reset(this, e, err);
    }
    this.broken = true;
  }

  /** Set by kill(): bytes written afterwards go nowhere. */
  broken = false;
}

class MemLane implements Lane {
  /** write() copies what it is given (Lane.lends). */
  readonly lends = true;
  constructor(readonly conn: MemConn, readonly side: MemEnd) {}
  get remote(): string { return this.side.remote; }

  write(bytes: Uint8Array, ext?: Uint8Array): void {
    const e = this.side;
    if (e.state !== 'open' && e.state !== 'connecting') return;
    // The caller may reuse its buffers once write returns (ext payloads stay
    // the caller's until acked, but copies cost nothing here that matters).
    const n = bytes.length + (ext?.length ?? 0);
    const b = Buffer.allocUnsafe(n);
    b.set(bytes, 0);
    if (ext) b.set(ext, bytes.length);
    this.conn.net.carry(this.conn, e, b);
  }

  end(): void {
    if (this.side.state === 'open' || this.side.state === 'connecting') this.conn.net.end(this.conn, this.side);
  }

  destroy(): void {
    const c = this.conn;
    if (this.side.state === 'closed') return;
    c.net.post(() => c.closeEnd(this.side), 0, this.side);
    const peer = c.other(this.side);
    this.side.state = 'ending';
    this.side.finIn = true;
    c.kill(peer);
    c.broken = true;
  }
}

/** A raw client end, for fuzzers and hostile peers: bytes in, bytes out, no protocol. */
export interface MemPeer {
  write(bytes: Uint8Array): void;
  /** Sends our FIN (the server's lane closes only once it ended its side too). */
  end(): void;
  destroy(): void;
  readonly conn: MemConn;
  ondata: ((bytes: Uint8Array) => void) | undefined;
  /** The server's FIN arrived (it gave up on us); our side stays open until end()/destroy(). */
  onend: (() => void) | undefined;
  onclose: ((err?: Error) => void) | undefined;
  readonly closed: boolean;
}

export interface MemNetworkOptions {
  scheme?: string;
  /** Runs fn after delayUs (default: setImmediate, or setTimeout for a delay); `to` is the end fn acts on. */
  post?: (fn: () => void, delayUs: number, to?: MemEnd) => void;
}

export class MemNetwork implements Transport {
  readonly scheme: string;
  readonly caps = { stream: true, rendezvous: false };
  readonly #listeners = new Map<string, Accept>();
  readonly conns = new Set<MemConn>();
  #next = 1;
  readonly #post: (fn: () => void, delayUs: number, to?: MemEnd) => void;

  constructor(options: MemNetworkOptions = {}) {
    this.scheme = options.scheme ?? 'mem';
    this.#post = options.post ?? ((fn, us) => { if (us > 0) setTimeout(fn, us / 1000); else setImmediate(fn); });
  }

  /** Runs fn after delayUs; `to` is the end whose reader fn will call (if any). */
  post(fn: () => void, delayUs: number, to?: MemEnd): void {
    this.#post(fn, delayUs, to);
  }

  /** The accept function of the listener bound to `name`, if any. */
  listener(name: string): Accept | undefined {
    return this.#listeners.get(name);
  }

  check(uri: URL): void {
    if (!uri.hostname) throw new InvalidArgumentError(`${this.scheme} portal needs a name (${this.scheme}://name/resource): ${uri.href}`);
  }

  #name(uri: URL): string {
    this.check(uri);
    return uri.host;
  }

  // ---- policy: override to shape traffic ----

  /**
   * A connection attempt to a listener: accepts it after post(0), or
   * refuses it (the dialling end closes with an error) when nobody listens.
   */
  dial(conn: MemConn): void {
    this.post(() => {
      const accept = this.#listeners.get(conn.name);
      if (!accept || conn.broken) { this.refuse(conn); return; }
      this.accept(conn, accept);
      this.post(() => this.connected(conn), 0, conn.a);
    }, 0, conn.b);
  }

  /** Bytes written on `from` travel to the other end. Default: in order, whole, after post(0). */
  carry(conn: MemConn, from: MemEnd, bytes: Uint8Array): void {
    const to = conn.other(from);
    if (conn.broken) return;
    this.post(() => { if (!conn.broken) conn.deliver(to, bytes); }, 0, to);
  }

  /** `from` ends its side: the FIN follows the bytes already written. */
  end(conn: MemConn, from: MemEnd): void {
    if (from.state === 'closed' || from.state === 'ending') return;
    from.state = 'ending';
    if (from.finIn) { this.post(() => conn.closeEnd(from), 0, from); }
    this.finAfterBytes(conn, from);
  }

  /** Sends the FIN of `from` behind its bytes (override together with carry()). */
  finAfterBytes(conn: MemConn, from: MemEnd): void {
    const to = conn.other(from);
    this.post(() => { if (!conn.broken) conn.deliverFin(to); }, 0, to);
  }

  /** A reset reaches `to` (kill(), a peer's destroy()): it closes with err. Default: after post(0). */
  reset(conn: MemConn, to: MemEnd, err: Error): void {
    this.post(() => conn.closeEnd(to, err), 0, to);
  }

  // ---- mechanics ----

  refuse(conn: MemConn): void {
    conn.broken = true;
    const err = new NexioError('NEXIO_ERR_TRANSPORT', `mem ${conn.name}: connection refused (nobody listens)`, 20);
    this.conns.delete(conn);
    conn.closeEnd(conn.a, err);
  }

  accept(conn: MemConn, accept: Accept): void {
    conn.b.state = 'open';
    const lane = new MemLane(conn, conn.b);
    accept((sink) => { conn.b.sink = sink; }, lane);
  }

  connected(conn: MemConn): void {
    if (conn.a.state !== 'connecting') return;
    conn.a.state = 'open';
    conn.a.sink?.connected();
  }

  connect(uri: URL, sink: LaneSink): Lane {
    const conn = new MemConn(this, this.#next++, this.#name(uri));
    this.conns.add(conn);
    conn.a.sink = sink;
    this.dial(conn);
    return new MemLane(conn, conn.a);
  }

  listen(uri: URL, accept: Accept): Promise<Listener> {
    const name = this.#name(uri);
    if (this.#listeners.has(name)) {
      return Promise.reject(new NexioError('NEXIO_ERR_TRANSPORT', `${this.scheme}://${name} is already bound (EADDRINUSE)`, 20));
    }
    this.#listeners.set(name, accept);
    const bound = new URL(uri.href);
    return Promise.resolve({
      uri: bound.href,
      close: async () => {
        if (this.#listeners.get(name) === accept) this.#listeners.delete(name);
      },
    });
  }

  /** A raw client connection to listener `uri` (mem://name/...): for fuzzers and hostile peers. */
  rawDial(uri: string): MemPeer {
    const u = new URL(uri);
    const conn = new MemConn(this, this.#next++, this.#name(u));
    this.conns.add(conn);
    const end = conn.a;
    const peer: MemPeer = {
      conn,
      ondata: undefined, onend: undefined, onclose: undefined,
      get closed() { return end.state === 'closed'; },
      write: (bytes) => {
        if (end.state !== 'open' && end.state !== 'connecting') return;
        this.carry(conn, end, Buffer.from(bytes));
      },
      end: () => this.end(conn, end),
      destroy: () => {
        if (end.state === 'closed') return;
        end.state = 'ending';
        end.finIn = true;
        conn.kill(conn.b);
        this.post(() => conn.closeEnd(end), 0, end);
      },
    };
    end.sink = {
      connected: () => undefined,
      data: (b) => peer.ondata?.(b),
      closed: (err) => peer.onclose?.(err),
    };
    // A raw peer keeps its side open after the server's FIN unless it ends it itself.
    const deliverFin = conn.deliverFin.bind(conn);
    conn.deliverFin = (to: MemEnd) => {
      if (to !== end) { deliverFin(to); return; }
      if (end.state === 'closed' || end.finIn) return;
      end.finIn = true;
      peer.onend?.();
      if (end.state === 'ending') conn.closeEnd(end);
    };
    this.dial(conn);
    return peer;
  }
}

/** The default in-memory network (mem://name/resource). */
export const mem = new MemNetwork();
