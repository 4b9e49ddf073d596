// The transport interface, in the style of UCX's uct: one small ops table per
// transport plus capability flags. A transport moves bytes for lanes; every
// protocol decision stays in the core.
//
// Ownership: the bytes given to LaneSink.data() belong to the transport and
// are valid only during the call (the context copies what it keeps). A lane
// that says `lends` copies the bytes given to Lane.write() before it returns
// (into buffers of its own, reused once written): the context hands it the
// core's batch where it lies in core memory. Other lanes get a fresh copy of
// the batch, which they may keep until the write completes. Ext payloads are
// the caller's own Buffer either way, kept by the context until the core
// releases them (acked).

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
  /**
   * The connection is gone; err is undefined for an orderly end. An err
   * with a `reason` (a string: what it means, e.g. "the server's
   * certificate was not trusted") is one a retry will not mend: a session
   * still connecting fails at once with it, even if the lane had come up.
   */
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
  /**
   * write() copies `bytes` before it returns: they may be a view of core
   * memory, valid only during the call (no copy made for the lane).
   */
  readonly lends?: boolean;
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
  /** tls:// lanes: the peer's certificate, as the server's onSession sees it. */
  readonly tls?: TlsPeer;
}

/**
 * What a tls:// lane tells about its peer (SessionRequestInfo.tls): plain
 * data, so it can cross to another thread. Certificate fields as node:tls's
 * getPeerCertificate() gives them; absent when the peer sent no certificate.
 */
export interface TlsPeer {
  /** The negotiated version, e.g. 'TLSv1.3'. */
  protocol: string;
  /** The peer's certificate was verified against the trusted CAs. */
  authorized: boolean;
  /** Why it was not (with requestCert and rejectUnauthorized: false). */
  authorizationError?: string;
  subject?: Record<string, string | string[]>;
  issuer?: Record<string, string | string[]>;
  subjectaltname?: string;
  fingerprint256?: string;
  serialNumber?: string;
  valid_from?: string;
  valid_to?: string;
}

/**
 * Settings a transport reads when it opens a lane (a client session's, for
 * each of its lanes) or binds a portal (the server's). Each transport takes
 * its own field and ignores the others.
 */
export interface TransportOptions {
  /** tls://: options passed to node:tls (tls.connect on a client, tls.createServer on a server). */
  tls?: object;
}

export interface Listener {
  /** The URI this listener is reachable at (the bound port filled in). */
  readonly uri: string;
  close(): Promise<void>;
}

export interface Transport {
  readonly scheme: string;
  readonly caps: Capabilities;
  /** `options`: the session's transport options (the same for each of its lanes). */
  connect(uri: URL, sink: LaneSink, options?: TransportOptions): Lane;
  /** Throws InvalidArgumentError for a URI this transport can never reach (checked once by connect()). */
  check?(uri: URL): void;
  /** `options`: the server's transport options. */
  listen(uri: URL, accept: (bind: (sink: LaneSink) => void, lane: Lane) => void, options?: TransportOptions): Promise<Listener>;
}
