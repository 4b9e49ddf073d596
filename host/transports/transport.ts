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
  /**
   * Large payloads can be read by the peer without a copy (RDMA READ): the
   * core sends EXT payloads of at least `rendezvousMin` bytes as F_RDV
   * frames whose descriptor the lane fills in (write's rdvAt), and asks the
   * receiving lane to read() them (docs/protocol.md §9).
   */
  rendezvous: boolean;
  /** Smallest EXT payload worth a rendezvous on this transport (default 65536). */
  rendezvousMin?: number;
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
  /**
   * Queues bytes; then the optional ext payload right after them. With
   * `rdvAt` (rendezvous transports), the payload does not follow: the lane
   * makes `ext` readable by the peer and writes its descriptor (addr u64,
   * rkey u32, 0 u32, little-endian) into bytes[rdvAt, rdvAt + 16) before
   * sending; it keeps `ext` readable until unpin(ext) or the lane's end
   * (the context keeps the Buffer until the core says the message was
   * acked, then unpins it on every lane that sent it by rendezvous).
   */
  write(bytes: Uint8Array, ext?: Uint8Array, rdvAt?: number): void;
  /** Rendezvous transports: one write's rendezvous of `ext` is over (acked): called once per such write. */
  unpin?(ext: Uint8Array): void;
  /**
   * Rendezvous transports: READs into.length bytes from the peer's (addr,
   * rkey) into `into`; done(null) once they are all there, done(err) if
   * the read failed (the lane is then destroyed). progress(n) as pieces
   * land (the context counts them as life on the lane). One read at a
   * time per lane.
   */
  read?(addr: bigint, rkey: number, into: Buffer, done: (err: Error | null) => void, progress?: (bytes: number) => void): void;
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
