// Raw `net` with batched writes: the practical limit of a Node program over
// one TCP connection. A tiny length-prefixed framing,
//
//   +--------+------+--------+----------------+
//   | len u32| kind | id u32 | body (len)     |   little-endian, 9-byte header
//   +--------+------+--------+----------------+
//
// kinds: 0 request, 1 reply, 2 one-way, 3 count request. Both sides parse a
// whole read chunk and answer with one write per chunk (the server) or per
// turn (the client); bodies larger than ECHO_MAX go out as their own write
// under cork (writev, no copy). Small bodies are handed to the application
// as views into the read chunk; a body split across chunks is copied into
// one Buffer, as an application would need it.

import * as net from 'node:net';
import { Client, DeliveryError, ECHO_MAX, Histogram, histogram, Load, LoadResult, replyFor, result, System, us } from './common';

const HDR = 9;
const REQUEST = 0, REPLY = 1, ONEWAY = 2, COUNT = 3;

type OnFrame = (kind: number, id: number, body: Buffer) => void;

/** Splits a byte stream into frames; calls onFrame for each, in order. */
export class FrameReader {
  #hdr = Buffer.alloc(HDR);
  #hdrHave = 0;
  #body: Buffer | undefined;
  #bodyHave = 0;
  #kind = 0;
  #id = 0;
  onFrame: OnFrame;

  constructor(onFrame: OnFrame) {
    this.onFrame = onFrame;
  }

  push(chunk: Buffer): void {
    const n = chunk.length;
    let off = 0;
    while (off < n) {
      const body = this.#body;
      if (body) {
        const k = Math.min(n - off, body.length - this.#bodyHave);
        chunk.copy(body, this.#bodyHave, off, off + k);
        this.#bodyHave += k;
        off += k;
        if (this.#bodyHave === body.length) {
          this.#body = undefined;
          this.onFrame(this.#kind, this.#id, body);
        }
        continue;
      }
      if (this.#hdrHave === 0 && n - off >= HDR) {
        const len = chunk.readUInt32LE(off), kind = chunk[off + 4], id = chunk.readUInt32LE(off + 5);
        off += HDR;
        if (n - off >= len) {
          this.onFrame(kind, id, chunk.subarray(off, off + len));
          off += len;
        } else {
          this.#start(len, kind, id);
        }
        continue;
      }
      const k = Math.min(HDR - this.#hdrHave, n - off);
      chunk.copy(this.#hdr, this.#hdrHave, off, off + k);
      this.#hdrHave += k;
      off += k;
      if (this.#hdrHave === HDR) {
        this.#hdrHave = 0;
        const h = this.#hdr;
        const len = h.readUInt32LE(0);
        if (len === 0) this.onFrame(h[4], h.readUInt32LE(5), Buffer.alloc(0));
        else this.#start(len, h[4], h.readUInt32LE(5));
      }
    }
  }

  #start(len: number, kind: number, id: number): void {
    this.#body = Buffer.allocUnsafe(len);
    this.#bodyHave = 0;
    this.#kind = kind;
    this.#id = id;
  }
}

/** Frames gathered during a turn, written with one write (large bodies as their own buffers, corked). */
export class Batch {
  #buf = Buffer.allocUnsafe(64 * 1024);
  #n = 0;
  #sock: net.Socket;
  #corked = false;

  constructor(sock: net.Socket) {
    this.#sock = sock;
  }

  add(kind: number, id: number, body: Uint8Array): void {
    if (body.length > ECHO_MAX) {
      this.#header(kind, id, body.length);
      this.#cork();
      this.flush();
      this.#sock.write(body);
      return;
    }
    if (this.#n + HDR + body.length > this.#buf.length) this.flush();
    this.#header(kind, id, body.length);
    this.#buf.set(body, this.#n);
    this.#n += body.length;
  }

  #header(kind: number, id: number, len: number): void {
    const b = this.#buf;
    let n = this.#n;
    b.writeUInt32LE(len, n);
    b[n + 4] = kind;
    b.writeUInt32LE(id, n + 5);
    this.#n = n + HDR;
  }

  #cork(): void {
    if (this.#corked) return;
    this.#corked = true;
    this.#sock.cork();
    process.nextTick(() => { this.#corked = false; this.#sock.uncork(); });
  }

  /** Writes what was gathered; the socket keeps the buffer, so a fresh one takes its place. */
  flush(): void {
    if (this.#n === 0) return;
    this.#sock.write(this.#buf.subarray(0, this.#n));
    this.#buf = Buffer.allocUnsafe(this.#buf.length);
    this.#n = 0;
  }
}

function countBuf(n: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeDoubleLE(n, 0);
  return b;
}

async function serve(): Promise<number> {
  let messages = 0;
  const server = net.createServer((sock) => {
    sock.setNoDelay(true);
    const out = new Batch(sock);
    const reader = new FrameReader((kind, id, body) => {
      if (kind === REQUEST) out.add(REPLY, id, replyFor(body));
      else if (kind === ONEWAY) messages++;
      else if (kind === COUNT) out.add(REPLY, id, countBuf(messages));
    });
    sock.on('data', (chunk: Buffer) => { reader.push(chunk); out.flush(); });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

class RawClient implements Client {
  #sock: net.Socket;
  #out: Batch;
  #reader: FrameReader;
  #onReply: (id: number, body: Buffer) => void = () => undefined;
  #delivered = 0;

  constructor(sock: net.Socket) {
    this.#sock = sock;
    sock.setNoDelay(true);
    this.#out = new Batch(sock);
    this.#reader = new FrameReader((kind, id, body) => { if (kind === REPLY) this.#onReply(id, body); });
    sock.on('data', (chunk: Buffer) => { this.#reader.push(chunk); this.#out.flush(); });
    // A reset must not end the bench process: a slice waiting on this socket
    // then fails by the harness's watchdog, naming the system.
    sock.on('error', () => undefined);
  }

  requests(o: Load): Promise<LoadResult> {
    const h = histogram();
    const payload = Buffer.alloc(o.size, 0x61);
    const sentAt = new Float64Array(1 << 16);
    const out = this.#out;
    const start = performance.now();
    const end = start + o.seconds * 1000;
    let done = 0, outstanding = 0, next = 0, stopping = false;
    return new Promise((resolve) => {
      const issue = (t: number) => {
        const id = next++ & 0xffff;
        sentAt[id] = t;
        out.add(REQUEST, id, payload);
        outstanding++;
      };
      this.#onReply = (id) => {
        outstanding--;
        const now = performance.now();
        h.recordValue(us(sentAt[id], now));
        done++;
        if (now >= end) stopping = true;
        if (!stopping) issue(now);
        else if (outstanding === 0) resolve(result(`request/response ${o.size} B x${o.inflight}`, done, (now - start) / 1000, o.size, h));
      };
      for (let i = 0; i < o.inflight; i++) issue(performance.now());
      out.flush();
    });
  }

  async oneway(o: Load): Promise<LoadResult> {
    const payload = Buffer.alloc(o.size, 0x62);
    const out = this.#out, sock = this.#sock;
    const start = performance.now();
    const end = start + o.seconds * 1000;
    let sent = 0;
    await new Promise<void>((resolve) => {
      const pump = () => {
        for (let i = 0; i < 4096; i++) out.add(ONEWAY, 0, payload);
        sent += 4096;
        out.flush();
        if (performance.now() >= end) { resolve(); return; }
        if (sock.writableNeedDrain) sock.once('drain', pump);
        else setImmediate(pump);
      };
      pump();
    });
    const total = await new Promise<number>((resolve) => {
      this.#onReply = (_id, body) => resolve(body.readDoubleLE(0));
      out.add(COUNT, 0, Buffer.alloc(0));
      out.flush();
    });
    const secs = (performance.now() - start) / 1000;
    const delivered = total - this.#delivered;
    this.#delivered = total;
    if (delivered !== sent) throw new DeliveryError('raw', sent, delivered);
    return result(`one-way ${o.size} B`, sent, secs, o.size);
  }

  async ping(seconds: number, size: number): Promise<Histogram> {
    const h = histogram();
    const payload = Buffer.alloc(size, 0x63);
    const end = performance.now() + seconds * 1000;
    let id = 0;
    for (;;) {
      const t = performance.now();
      if (t >= end) break;
      await new Promise<void>((resolve) => {
        this.#onReply = () => resolve();
        this.#out.add(REQUEST, id++ & 0xffff, payload);
        this.#out.flush();
      });
      h.recordValue(us(t, performance.now()));
    }
    return h;
  }

  close(): Promise<void> {
    return new Promise((resolve) => { this.#sock.once('close', () => resolve()); this.#sock.end(); });
  }
}

export const raw: System = {
  name: 'raw',
  serve,
  connect: (port) => new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port }, () => { sock.off('error', reject); resolve(new RawClient(sock)); });
    sock.once('error', reject);
  }),
};
