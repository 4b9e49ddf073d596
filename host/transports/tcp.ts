// tcp://host:port/resource — one TCP connection per lane. Nagle is off
// (setNoDelay): the core already coalesces, so a batch should leave now.
// The batches of a turn are gathered into the lane's own buffer and leave in
// one write on the next tick; an ext payload follows them in the same writev,
// straight from the caller's Buffer.

import * as net from 'node:net';
import type { Transport, Lane, LaneSink, Listener } from './transport';
import { InvalidArgumentError, NexioError } from '../errors';

/** A lane's gather buffer starts this size and doubles as turns need, to GATHER_MAX. */
const GATHER_MIN = 16 * 1024;
const GATHER_MAX = 64 * 1024; // a core batch is at most 64 KiB

/**
 * What tcp:// and tls:// lanes share: Nagle off, and the batches of one turn
 * gathered (copied out of the core's memory, which they are lent from) into
 * one buffer of the lane's, written once on the next tick. The buffer is
 * used again next turn when the socket took the write whole at once (its
 * writableLength back to 0: nothing of it is still referenced); a write the
 * socket had to queue keeps its buffer, and the lane starts a fresh one.
 * So a busy lane copies each batch once and allocates nothing per batch.
 */
export class StreamLane<S extends net.Socket = net.Socket> {
  /** write() copies the bytes it is given before it returns (Lane.lends). */
  readonly lends = true;
  protected readonly sock: S;
  #buf: Buffer | undefined;
  #size = GATHER_MIN;
  #n = 0;
  #queued = false;
  /** Sends the turn's bytes (made once per lane, not a closure per turn). */
  #sendLater = (): void => { this.#queued = false; this.#send(); };
  readonly remote: string;

  constructor(sock: S, remote: string) {
    this.sock = sock;
    this.remote = remote;
    sock.setNoDelay(true);
  }

  write(bytes: Uint8Array, ext?: Uint8Array): void {
    const sock = this.sock;
    if (sock.destroyed) return;
    const n = bytes.length;
    let b = this.#buf;
    if (b === undefined || this.#n + n > b.length) b = this.#room(n);
    if (b !== undefined) {
      b.set(bytes, this.#n);
      this.#n += n;
    } else {
      sock.write(Buffer.from(bytes)); // larger than any gather buffer: a copy of its own
    }
    if (ext) {
      // The payload goes out right after, from the caller's Buffer: one writev.
      sock.cork();
      this.#send();
      sock.write(ext);
      sock.uncork();
      this.#settle();
      return;
    }
    if (!this.#queued) {
      this.#queued = true;
      process.nextTick(this.#sendLater);
    }
  }

  /** Room for n more bytes: what was gathered is sent, the buffer grows if a turn outgrew it. */
  #room(n: number): Buffer | undefined {
    if (this.#buf !== undefined && this.#n > 0) {
      this.#send();
      this.#size = Math.min(GATHER_MAX, this.#size * 2);
    }
    const size = Math.max(this.#size, Math.min(GATHER_MAX, n));
    if (this.#buf === undefined || this.#buf.length < size) this.#buf = Buffer.allocUnsafe(size);
    return n <= this.#buf.length ? this.#buf : undefined;
  }

  /** Writes what the turn gathered. */
  #send(): void {
    const n = this.#n;
    if (n === 0) return;
    this.#n = 0;
    const sock = this.sock;
    if (sock.destroyed) return;
    sock.write(this.#buf!.subarray(0, n));
    this.#settle();
  }

  /** The gather buffer is ours again only if the socket is done with every write. */
  #settle(): void {
    if (this.sock.writableLength !== 0) this.#buf = undefined;
  }

  end(): void {
    this.#send();
    if (!this.sock.destroyed) this.sock.end();
  }

  destroy(): void {
    this.#n = 0;
    this.sock.destroy();
  }
}

class TcpLane extends StreamLane implements Lane {
  constructor(sock: net.Socket, sink: LaneSink | undefined, remote: string) {
    super(sock, remote);
    if (sink) this.bind(sink);
  }

  bind(sink: LaneSink): void {
    const sock = this.sock;
    sock.on('data', (chunk: Buffer) => sink.data(chunk));
    let done = false;
    const closed = (err?: Error) => {
      if (done) return;
      done = true;
      sink.closed(err);
    };
    sock.on('error', (err) => closed(new NexioError('NEXIO_ERR_TRANSPORT', `tcp ${this.remote}: ${err.message}`, 20, { cause: err })));
    sock.on('close', () => closed());
    sock.on('connect', () => sink.connected());
  }
}

export function hostPort(uri: URL, scheme = 'tcp'): { host: string; port: number } {
  // No default port: a URI without one is a mistake, not port 0 (write
  // :0 to listen on a port the system picks).
  const port = Number(uri.port);
  if (!uri.hostname || uri.port === '' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InvalidArgumentError(`${scheme} portal needs host and port (${scheme}://host:port/resource; :0 to listen on any port): ${uri.href}`);
  }
  return { host: uri.hostname.replace(/^\[|\]$/g, ''), port };
}

export const tcp: Transport = {
  scheme: 'tcp',
  caps: { stream: true, rendezvous: false },

  check(uri: URL): void {
    hostPort(uri);
  },

  connect(uri: URL, sink: LaneSink): Lane {
    const { host, port } = hostPort(uri);
    const sock = net.connect({ host, port });
    return new TcpLane(sock, sink, `${host}:${port}`);
  },

  listen(uri: URL, accept: (bind: (sink: LaneSink) => void, lane: Lane) => void): Promise<Listener> {
    const { host, port } = hostPort(uri);
    return new Promise((resolve, reject) => {
      const server = net.createServer((sock) => {
        const lane = new TcpLane(sock, undefined, `${sock.remoteAddress}:${sock.remotePort}`);
        accept((sink) => lane.bind(sink), lane);
      });
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        const addr = server.address() as net.AddressInfo;
        const h = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
        const bound = new URL(uri.href);
        bound.host = `${h}:${addr.port}`;
        resolve({
          uri: bound.href,
          close: () => new Promise<void>((res) => server.close(() => res())),
        });
      });
    });
  },
};
