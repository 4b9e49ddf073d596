// The transport interface, in the style of UCX's uct: one small ops table per
// transport plus capability flags. A transport moves bytes for lanes; every
// protocol decision stays in the core.
//
// Ownership: the bytes given to LaneSink.data() belong to the transport and
// are valid only during the call (the context copies what it keeps). Buffers
// given to Lane.write() must not be modified until the write completes; the
// context passes fresh copies for core bytes and the caller's own Buffer for
// ext payloads, which it keeps until the core releases them (acked).

export interface Capabilities {
  /** The transport is a byte stream (frames may split across reads). */
  stream: boolean;
  /** Large payloads can be read by the peer without a copy (RDMA READ). */
  rendezvous: boolean;
}

/** Callbacks a transport calls for one lane. */
export interface LaneSink {
  connected(): void;
  data(chunk: Uint8Array): void;
  /** The connection is gone; err is undefined for an orderly end. */
  closed(err?: Error): void;
}

/** One connection carrying one lane. */
export interface Lane {
  /** Queues bytes; then the optional ext payload right after them. */
  write(bytes: Uint8Array, ext?: Uint8Array): void;
  /** Sends what was queued, then closes. */
  end(): void;
  /** Closes now, dropping what was queued. */
  destroy(): void;
  readonly remote: string;
}

export interface Listener {
  /** The URI this listener is reachable at (the bound port filled in). */
  readonly uri: string;
  close(): Promise<void>;
}

export interface Transport {
  readonly scheme: string;
  readonly caps: Capabilities;
  connect(uri: URL, sink: LaneSink): Lane;
  /** Throws InvalidArgumentError for a URI this transport can never reach (checked once by connect()). */
  check?(uri: URL): void;
  listen(uri: URL, accept: (bind: (sink: LaneSink) => void, lane: Lane) => void): Promise<Listener>;
}
