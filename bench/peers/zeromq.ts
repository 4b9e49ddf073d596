// zeromq (zeromq.js v6, libzmq through its bundled prebuilt addon):
// DEALER client, ROUTER server, one TCP connection. Messages are multipart:
// [kind (1 byte), id (4 bytes), body]; the ROUTER prepends the peer's
// routing id. zeromq.js allows one pending send() and one pending receive()
// per socket, so the client runs one sender loop and one receiver loop;
// libzmq batches on the wire by itself (its I/O thread).

import type * as Zmq from 'zeromq';
import { Client, DeliveryError, Histogram, histogram, Load, LoadResult, replyFor, result, System, us } from './common';

const REQUEST = 0, ONEWAY = 2, COUNT = 3;
const KIND = [Buffer.from([0]), Buffer.from([1]), Buffer.from([2]), Buffer.from([3])];
const NO_ID = Buffer.alloc(4);
const EMPTY = Buffer.alloc(0);

function zmq(): typeof Zmq {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('zeromq');
}

function idBuf(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32LE(n, 0);
  return b;
}

async function serve(): Promise<number> {
  const z = zmq();
  const sock = new z.Router({ sendHighWaterMark: 0 }) // a ROUTER drops at its HWM: no limit for replies;
  await sock.bind('tcp://127.0.0.1:0');
  const port = Number(/:(\d+)$/.exec(sock.lastEndpoint ?? '')![1]);
  let messages = 0;
  (async () => {
    for await (const [rid, kind, id, body] of sock) {
      switch (kind[0]) {
        case REQUEST: await sock.send([rid, id, replyFor(body)]); break;
        case ONEWAY: messages++; break;
        case COUNT: {
          const b = Buffer.allocUnsafe(8);
          b.writeDoubleLE(messages, 0);
          await sock.send([rid, id, b]);
          break;
        }
      }
    }
  })().catch((e) => { process.stderr.write(`zeromq server: ${e}\n`); process.exit(1); });
  return port;
}

class ZmqClient implements Client {
  #sock: Zmq.Dealer;
  #onReply: (id: number, body: Buffer) => void = () => undefined;
  #delivered = 0;
  #receiving: Promise<void>;

  constructor(sock: Zmq.Dealer) {
    this.#sock = sock;
    this.#receiving = (async () => {
      for await (const [id, body] of sock) this.#onReply(id.readUInt32LE(0), body);
    })().catch(() => undefined);
  }

  async requests(o: Load): Promise<LoadResult> {
    const h = histogram();
    const sock = this.#sock;
    const payload = Buffer.alloc(o.size, 0x61);
    const sentAt = new Float64Array(1 << 16);
    const start = performance.now();
    const end = start + o.seconds * 1000;
    let done = 0, outstanding = 0, next = 0, stopping = false;
    let wake: (() => void) | undefined;
    let finished!: () => void;
    const allBack = new Promise<void>((r) => { finished = r; });
    this.#onReply = (id) => {
      outstanding--;
      const now = performance.now();
      h.recordValue(us(sentAt[id], now));
      done++;
      if (now >= end) stopping = true;
      if (stopping && outstanding === 0) finished();
      const w = wake;
      wake = undefined;
      w?.();
    };
    while (!stopping) {
      if (outstanding >= o.inflight) {
        await new Promise<void>((r) => { wake = r; });
        continue;
      }
      const id = next++ & 0xffff;
      outstanding++;
      sentAt[id] = performance.now();
      await sock.send([KIND[REQUEST], idBuf(id), payload]);
    }
    if (outstanding > 0) await allBack;
    return result(`request/response ${o.size} B x${o.inflight}`, done, (performance.now() - start) / 1000, o.size, h);
  }

  async oneway(o: Load): Promise<LoadResult> {
    const sock = this.#sock;
    const payload = Buffer.alloc(o.size, 0x62);
    const start = performance.now();
    const end = start + o.seconds * 1000;
    let sent = 0;
    while (performance.now() < end) {
      for (let i = 0; i < 1024; i++) await sock.send([KIND[ONEWAY], NO_ID, payload]);
      sent += 1024;
    }
    const total = await new Promise<number>((resolve) => {
      this.#onReply = (_id, body) => resolve(body.readDoubleLE(0));
      sock.send([KIND[COUNT], NO_ID, EMPTY]).catch(() => undefined);
    });
    const secs = (performance.now() - start) / 1000;
    const delivered = total - this.#delivered;
    this.#delivered = total;
    if (delivered !== sent) throw new DeliveryError('zeromq', sent, delivered);
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
      const back = new Promise<void>((resolve) => { this.#onReply = () => resolve(); });
      await this.#sock.send([KIND[REQUEST], idBuf(id++ & 0xffff), payload]);
      await back;
      h.recordValue(us(t, performance.now()));
    }
    return h;
  }

  async close(): Promise<void> {
    this.#sock.close();
    await this.#receiving;
  }
}

export const zeromq: System = {
  name: 'zeromq',
  serve,
  connect: async (port) => {
    const z = zmq();
    const sock = new z.Dealer({ linger: 0 }) // default high water marks (1000): send() waits when full;
    sock.connect(`tcp://127.0.0.1:${port}`);
    return new ZmqClient(sock);
  },
};
