// The hostile peer's end of a connection to a real server Context, over
// mem:// (MemNetwork.rawDial) or tcp:// (a raw socket): bytes out, bytes
// in, and what the peer learns from the server's frames (its session id and
// key from ACCEPT, REJECT reasons, ERROR codes, the server's message count).
// A peer that "holds" ignores the server's FIN and keeps its side open: only
// the server can end the connection then (handshake deadline, eviction,
// linger after the core closed the lane).

import * as net from 'node:net';
import { mem } from '../../host/transports/mem';
import { T } from './frames';
import { F_EXT, F_RDV, F_JOINED, MSG_HEADER, BATCH_SIZE, KEY_SIZE } from '../../host/wire';

export type Transport = 'mem' | 'tcp';

/** What the peer learned from the server (shared by the connections of one run). */
export interface View {
  /** The session the server opened for this run's peer (its ACCEPT), 0n before. */
  sessionId: bigint;
  /** That session's key (zeros before). */
  key: Buffer;
  /** The legitimate session's id (ids are not secret: a peer may have seen it). */
  legitId: bigint;
  /** Messages the server sent this peer (highest seq + 1), for lazy ACKs. */
  sent: number;
  /** Tags of requests the server sent (it sends none: the handler only answers). */
  tags: number[];
  /** The server's maxRequests. */
  R: number;
  /** The last CHALLENGE the server sent this run's peer (pre-shared keys), undefined before. */
  challenge?: { sessionId: bigint; nonce: Buffer };
}

export function newView(legitId: bigint, R: number): View {
  return { sessionId: 0n, key: Buffer.alloc(KEY_SIZE), legitId, sent: 0, tags: [], R };
}

interface Raw {
  write(b: Uint8Array): void;
  end(): void;
  destroy(): void;
}

/** Frames read from the server, and what they told. */
export class Reader {
  accepts = 0;
  joins = 0;
  rejects: number[] = [];
  errors: number[] = [];
  challenges = 0;
  messages = 0;
  bytesIn = 0;
  /** The server sent something that is not a frame (never expected). */
  garbage = false;
  #buf: Buffer = Buffer.alloc(0);
  #skip = 0;

  constructor(readonly view: View) {}

  /** The server decided: ACCEPT, REJECT or ERROR (a CHALLENGE is not a decision). */
  get decided(): boolean {
    return this.accepts + this.joins + this.rejects.length + this.errors.length > 0;
  }

  /** An answer to a HELLO arrived (ACCEPT, REJECT, ERROR, or CHALLENGE to a HELLO with F_AUTH). */
  get answered(): boolean {
    return this.accepts + this.joins + this.challenges + this.rejects.length + this.errors.length > 0;
  }

  feed(c: Uint8Array): void {
    this.bytesIn += c.length;
    if (this.garbage) return;
    let off = 0;
    if (this.#skip) {
      const n = Math.min(this.#skip, c.length);
      this.#skip -= n;
      off = n;
      if (off === c.length) return;
    }
    let buf = this.#buf.length ? Buffer.concat([this.#buf, c.subarray(off)]) : Buffer.from(c.buffer, c.byteOffset + off, c.length - off);
    while (buf.length >= 8) {
      const len = buf.readUInt32LE(4);
      if (len < 8) { this.garbage = true; return; }
      if (buf.length < len) break;
      const ext = this.#frame(buf.subarray(0, len));
      buf = buf.subarray(len);
      if (ext) {
        const n = Math.min(ext, buf.length);
        buf = buf.subarray(n);
        this.#skip = ext - n;
        if (this.#skip) break;
      }
    }
    this.#buf = buf.length ? Buffer.from(buf) : Buffer.alloc(0);
  }

  /** One top-level frame; returns the length of an ext payload that follows it. */
  #frame(f: Buffer): number {
    if (f[0] === T.BATCH) {
      let ext = 0;
      let p = BATCH_SIZE;
      while (p + 8 <= f.length) {
        const len = f.readUInt32LE(p + 4);
        if (len < 8 || p + len > f.length) { this.garbage = true; return 0; }
        ext += this.#one(f.subarray(p, p + len));
        p += len;
      }
      return ext;
    }
    return this.#one(f);
  }

  #one(f: Buffer): number {
    const v = this.view;
    switch (f[0]) {
      case T.ACCEPT:
        if (f.length < 72) return 0;
        if (f[1] & F_JOINED) { this.joins++; return 0; }
        this.accepts++;
        if (v.sessionId === 0n) {
          v.sessionId = f.readBigUInt64LE(16);
          v.key = Buffer.from(f.subarray(56, 56 + KEY_SIZE));
        }
        return 0;
      case T.REJECT:
        if (f.length >= 10) this.rejects.push(f.readUInt16LE(8));
        return 0;
      case T.CHALLENGE:
        if (f.length !== 48) return 0;
        this.challenges++;
        v.challenge = { sessionId: f.readBigUInt64LE(8), nonce: Buffer.from(f.subarray(16, 48)) };
        return 0;
      case T.ERROR:
        if (f.length >= 10) this.errors.push(f.readUInt16LE(8));
        return 0;
      default:
        if (f[0] >= T.REQUEST && f[0] <= T.CLOSE && f.length >= MSG_HEADER) {
          this.messages++;
          const seq = Number(f.readBigUInt64LE(8));
          if (seq + 1 > v.sent) v.sent = seq + 1;
          if ((f[1] & F_EXT) && !(f[1] & F_RDV)) return f.readUInt32LE(20);
        }
        return 0;
    }
  }
}

/** One hostile connection. */
export class Conn {
  readonly reader: Reader;
  closed = false;
  /** The server's FIN arrived (it ended or destroyed its side). */
  finIn = false;
  /** We sent our FIN (end()) or reset (destroy()). */
  ended = false;
  /** Error the transport closed with (a reset), if any. */
  closeErr: Error | undefined;
  readonly openedAt = performance.now();
  closedAt = 0;
  finAt = 0;
  lastWriteAt = performance.now();
  bytesOut = 0;
  /** The first writes (time since dial, bytes in hex), when tracing. */
  trace: string[] | undefined;
  readonly gone: Promise<void>;
  /** Resolves when the server let the connection go: closed, or (tcp, whose half-open socket never closes by itself) its FIN. */
  readonly released: Promise<void>;
  /** Called with the length of every write. */
  onWrite: ((n: number) => void) | undefined;
  /** Called when the server answers a HELLO on this connection with ACCEPT (new session or joined). */
  onSession: (() => void) | undefined;
  #raw: Raw;
  #released!: () => void;
  #wake = new Set<() => void>();
  #goneResolve!: () => void;

  constructor(kind: Transport, portal: string, view: View) {
    this.reader = new Reader(view);
    this.gone = new Promise((r) => { this.#goneResolve = r; });
    this.released = new Promise((r) => { this.#released = r; });
    const on = {
      data: (b: Uint8Array) => {
        const before = this.reader.accepts + this.reader.joins;
        this.reader.feed(b);
        if (this.reader.accepts + this.reader.joins > before) this.onSession?.();
        this.#poke();
      },
      end: () => {
        this.finIn = true;
        this.finAt = performance.now();
        if (kind === 'tcp') this.#released();
        this.#poke();
      },
      close: (err?: Error) => {
        if (this.closed) return;
        this.closed = true;
        this.closeErr = err;
        this.closedAt = performance.now();
        if (!this.finIn) { this.finIn = true; this.finAt = this.closedAt; }
        this.#poke();
        this.#goneResolve();
        this.#released();
      },
    };
    this.#raw = kind === 'mem' ? memRaw(portal, on) : tcpRaw(portal, on);
  }

  write(b: Uint8Array): void {
    if (this.closed || this.ended) return;
    this.bytesOut += b.length;
    this.lastWriteAt = performance.now();
    this.onWrite?.(b.length);
    if (this.trace && this.trace.length < 24) this.trace.push(`${Math.round(this.lastWriteAt - this.openedAt)}ms ${Buffer.from(b.subarray(0, 40)).toString('hex')}${b.length > 40 ? `..(${b.length})` : ''}`);
    this.#raw.write(b);
  }

  end(): void {
    if (this.closed || this.ended) return;
    this.ended = true;
    this.#raw.end();
  }

  destroy(): void {
    if (this.closed) return;
    this.ended = true;
    this.#raw.destroy();
  }

  /** Resolves once cond() holds (checked whenever something arrives) or after ms. */
  until(cond: () => boolean, ms: number): Promise<boolean> {
    if (cond()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = (): void => {
        if (!cond()) return;
        this.#wake.delete(check);
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => { this.#wake.delete(check); resolve(cond()); }, ms);
      this.#wake.add(check);
    });
  }

  #poke(): void {
    for (const f of [...this.#wake]) f();
  }
}

type On = { data(b: Uint8Array): void; end(): void; close(err?: Error): void };

function memRaw(portal: string, on: On): Raw {
  const p = mem.rawDial(portal);
  p.ondata = on.data;
  p.onend = on.end;
  p.onclose = on.close;
  return { write: (b) => p.write(b), end: () => p.end(), destroy: () => p.destroy() };
}

function tcpRaw(portal: string, on: On): Raw {
  const u = new URL(portal);
  // allowHalfOpen: the server's FIN does not end our side; a peer that holds keeps it open.
  const s = net.connect({ host: u.hostname, port: Number(u.port), allowHalfOpen: true, noDelay: true });
  s.on('data', on.data);
  s.on('end', on.end);
  s.on('error', () => undefined);
  s.on('close', () => on.close());
  return {
    write: (b) => { if (!s.destroyed && s.writable) s.write(b); },
    end: () => { if (!s.destroyed) s.end(); },
    destroy: () => s.destroy(),
  };
}

/** One turn of the event loop (a mem:// hop is one setImmediate). */
export function tick(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
