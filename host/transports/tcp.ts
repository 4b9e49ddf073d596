// tcp://host:port/resource — one TCP connection per lane. Nagle is off
// (setNoDelay): the core already coalesces, so a batch should leave now.
// Writes of one flush are corked so a batch and its ext payload go out in
// one writev, the payload straight from the caller's Buffer.

import * as net from 'node:net';
import type { Transport, Lane, LaneSink, Listener } from './transport';
import { InvalidArgumentError, NexioError } from '../errors';

/**
 * What tcp:// and tls:// lanes share: Nagle off, and the writes of one
 * flush corked until the next tick, so a batch and its ext payload go out in
 * one writev (or TLS records) with the payload read from the caller's Buffer.
 */
export class StreamLane<S extends net.Socket = net.Socket> {
  protected readonly sock: S;
  #corked = false;
  /** Ends the turn's cork (made once per lane, not a closure per write turn). */
  #uncork = (): void => { this.#corked = false; this.sock.uncork(); };
  readonly remote: string;

  constructor(sock: S, remote: string) {
    this.sock = sock;
    this.remote = remote;
    sock.setNoDelay(true);
  }

  write(bytes: Uint8Array, ext?: Uint8Array): void {
    const sock = this.sock;
    if (sock.destroyed) return;
    if (!this.#corked) {
      this.#corked = true;
      sock.cork();
      process.nextTick(this.#uncork);
    }
    sock.write(bytes);
    if (ext) sock.write(ext);
  }

  end(): void {
    if (!this.sock.destroyed) this.sock.end();
  }

  destroy(): void {
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
