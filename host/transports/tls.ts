// tls://host:port/resource — tcp:// with every lane inside its own TLS
// connection (node:tls, TLS 1.3 unless the options say otherwise). The
// options are the application's, passed to node:tls as they are: the
// server's from createServer({ tls }) to listen(), a client session's from
// connect(uri, { tls }) to every lane the session opens (extra lanes,
// reconnects, resumes), so lanes of one session never use another's.
//
// A lane is up (sink.connected) once its handshake is over, not when TCP
// connects: a certificate that is not trusted fails the lane before it ever
// came up, and connect() fails at once with that reason. In TLS 1.3 the
// client finishes its handshake before the server has checked the client's
// certificate, so the server's refusal arrives later as an alert: such
// failures carry a `reason` (transport.ts, LaneSink.closed), and a session
// still connecting fails at once on them too. Retrying would not help. A
// server refusing a client certificate that it did get (another CA, not for
// client auth) sends no alert (node:tls checks it after the handshake and
// drops the connection): a client lane that offered a certificate and is
// dropped after its handshake, before a single byte of answer, says so too.
//
// Writes are corked per flush as on tcp://, so a batch and its ext payload
// are encrypted in one go, the payload read straight from the caller's
// Buffer (the TLS layer's records are the only copy).

import * as tls from 'node:tls';
import type { Transport, Lane, LaneSink, Listener, TransportOptions, TlsPeer } from './transport';
import { InvalidArgumentError, NexioError, Code } from '../errors';
import { hostPort, StreamLane } from './tcp';

/** Certificate checks of the client (ours or the server's) that a retry cannot mend. */
const untrusted = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_UNTRUSTED', 'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID', 'CERT_HAS_EXPIRED', 'CERT_REVOKED', 'CERT_REJECTED', 'INVALID_CA', 'ERR_TLS_CERT_ALTNAME_INVALID',
  'HOSTNAME_MISMATCH', 'INVALID_PURPOSE',
]);

/** What a TLS error means to the application, if it is about certificates or the TLS version (a retry will not help). */
function reasonOf(err: NodeJS.ErrnoException, client: boolean): string | undefined {
  const code = err.code ?? '';
  if (client && untrusted.has(code)) return "the server's certificate was not trusted";
  // The peer's alerts: it refused our certificate (or that we had none), or the version.
  if (/ALERT_(CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN|UNSUPPORTED_CERTIFICATE|CERTIFICATE_REVOKED|CERTIFICATE_EXPIRED|ACCESS_DENIED)/.test(code)) {
    return client ? 'the server refused our certificate (or that we sent none)' : "the peer refused this server's certificate";
  }
  if (/ALERT_PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL|NO_PROTOCOLS_AVAILABLE/.test(code)) return 'no TLS version both sides accept';
  // What came back is not a TLS record at all (a tcp:// portal, another protocol).
  if (client && /WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|RECORD_LAYER_FAILURE/.test(code)) return 'the peer does not speak TLS';
  return undefined;
}

const refusedCert = 'the server dropped the connection after the TLS handshake, before any answer: it did not accept our certificate';

/** A peer certificate's summary, as plain data (it crosses to onSession, also on another thread). */
function peerOf(sock: tls.TLSSocket): TlsPeer {
  const c = sock.getPeerCertificate();
  const has = !!c && Object.keys(c).length > 0;
  const plain = (x: object | undefined): Record<string, string | string[]> => (x ? { ...x } as Record<string, string | string[]> : {});
  const peer: TlsPeer = {
    protocol: sock.getProtocol() ?? '',
    authorized: sock.authorized,
    ...(sock.authorizationError ? { authorizationError: String(sock.authorizationError) } : {}),
    ...(has ? {
      subject: plain(c.subject), issuer: plain(c.issuer), subjectaltname: c.subjectaltname,
      fingerprint256: c.fingerprint256, serialNumber: c.serialNumber, valid_from: c.valid_from, valid_to: c.valid_to,
    } : {}),
  };
  for (const k of Object.keys(peer) as (keyof TlsPeer)[]) if (peer[k] === undefined) delete peer[k];
  return peer;
}

class TlsLane extends StreamLane<tls.TLSSocket> implements Lane {
  #client: boolean;
  /** Client lanes: a certificate was offered; the handshake is over; a byte arrived. */
  #offered = false;
  #secure = false;
  #heard = false;
  readonly tls: TlsPeer | undefined;

  constructor(sock: tls.TLSSocket, sink: LaneSink | undefined, remote: string, peer?: TlsPeer, offered = false) {
    super(sock, remote);
    this.#client = !!sink;
    this.#offered = offered;
    this.tls = peer;
    if (sink) this.bind(sink);
  }

  bind(sink: LaneSink): void {
    const sock = this.sock;
    sock.on('data', (chunk: Buffer) => { this.#heard = true; sink.data(chunk); });
    let done = false;
    const closed = (err?: Error) => {
      if (done) return;
      done = true;
      sink.closed(err);
    };
    const dropped = () => this.#offered && this.#secure && !this.#heard && !this.#ended;
    sock.on('error', (err: NodeJS.ErrnoException) => {
      const reason = reasonOf(err, this.#client) ?? (dropped() ? refusedCert : undefined);
      const e = new NexioError('NEXIO_ERR_TRANSPORT', `tls ${this.remote}: ${reason ? `${reason} (${err.code}: ${err.message})` : err.message}`, Code.TRANSPORT, { cause: err });
      if (reason) (e as NexioError & { reason?: string }).reason = reason;
      closed(e);
    });
    sock.on('close', () => {
      if (!dropped()) { closed(); return; }
      const e = new NexioError('NEXIO_ERR_TRANSPORT', `tls ${this.remote}: ${refusedCert}`, Code.TRANSPORT);
      (e as NexioError & { reason?: string }).reason = refusedCert;
      closed(e);
    });
    // Up once the handshake is over (the server's certificate checked), not at TCP connect.
    if (this.#client) sock.on('secureConnect', () => { this.#secure = true; sink.connected(); });
  }

  /** We ended it (the lane was closed on our side): nobody refused anything. */
  #ended = false;

  end(): void {
    this.#ended = true;
    super.end();
  }

  destroy(): void {
    this.#ended = true;
    super.destroy();
  }
}

function tlsOf(o: TransportOptions | undefined, uri: URL, side: string): tls.TlsOptions & tls.ConnectionOptions {
  const t = o?.tls;
  if (t === undefined) {
    if (side === 'server') throw new InvalidArgumentError(`createServer: tls must be given (key and cert, at least) for the tls portal ${uri.href}`);
    return {};
  }
  if (t === null || typeof t !== 'object' || Array.isArray(t)) throw new InvalidArgumentError(`${side === 'server' ? 'createServer' : 'connect'}: tls must be an object of node:tls options`);
  return t as tls.TlsOptions & tls.ConnectionOptions;
}

/** TLS 1.3 unless the application's options name versions. */
function versions(o: tls.SecureContextOptions): tls.SecureContextOptions {
  return o.minVersion === undefined && o.secureProtocol === undefined ? { minVersion: 'TLSv1.3' } : {};
}

export const tlsTransport: Transport = {
  scheme: 'tls',
  caps: { stream: true, rendezvous: false },

  check(uri: URL): void {
    hostPort(uri, 'tls');
  },

  connect(uri: URL, sink: LaneSink, options?: TransportOptions): Lane {
    const { host, port } = hostPort(uri, 'tls');
    const o = tlsOf(options, uri, 'client');
    const sock = tls.connect({ ...versions(o), ...o, host, port });
    return new TlsLane(sock, sink, `${host}:${port}`, undefined, o.cert !== undefined || o.pfx !== undefined);
  },

  listen(uri: URL, accept: (bind: (sink: LaneSink) => void, lane: Lane) => void, options?: TransportOptions): Promise<Listener> {
    const { host, port } = hostPort(uri, 'tls');
    const o = tlsOf(options, uri, 'server');
    return new Promise((resolve, reject) => {
      let server: tls.Server;
      try {
        // A connection that never finishes its handshake is not yet a lane
        // (the admission pool counts lanes): bound it here.
        server = tls.createServer({ handshakeTimeout: 10000, ...versions(o), ...o }, (sock) => {
          const lane = new TlsLane(sock, undefined, `${sock.remoteAddress}:${sock.remotePort}`, peerOf(sock));
          accept((sink) => lane.bind(sink), lane);
        });
      } catch (e) {
        // Bad key or certificate material: node:tls says which.
        reject(new InvalidArgumentError(`createServer: the tls options for ${uri.href} were refused by node:tls: ${(e as Error).message}`, { cause: e }));
        return;
      }
      // Failed handshakes (a client refusing our certificate, one without an
      // acceptable certificate of its own, a port scanner) end only their connection.
      server.on('tlsClientError', (_err, sock) => sock.destroy());
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        const addr = server.address() as { address: string; family: string; port: number };
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
