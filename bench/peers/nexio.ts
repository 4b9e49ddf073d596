// nexio over tcp:// (and over tls://, as the system 'nexio-tls': the cost of
// encryption, with the test certificates of test/fixtures/tls): the hot path
// (tryRequest / trySend, from host/bench.ts) for throughput, request() (the
// Promise API) for ping-pong. Two more variants, each compared with nexio:
// 'nexio-promise', the Promise API throughout (request() and send() on the
// client, the ordinary handler and onMessage on the server: what a request
// costs without the hot forms), and 'nexio-views' (zero-copy receive on both
// sides: tryRequest/trySend, the ordinary handler lent the request, one-way
// messages released as they come).

import { connect, createServer, Session } from '../../host/index';
import type { IncomingRequest } from '../../host/index';
import { requestLoad, onewayLoad } from '../../host/bench';
import { certs } from '../../test/fixtures/tls';
import { Client, DeliveryError, Histogram, histogram, Load, LoadResult, replyFor, result, System, us } from './common';

const COUNT = Buffer.from('count');
const EMPTY = Buffer.alloc(0);

/**
 * Lanes per session (`--lanes`; 1 is one TCP connection, as for the other
 * systems) and the credit window (`--window MSGS,BYTES`, both sides; 0 keeps
 * the library's defaults). The server reads them from its environment.
 */
export const nexioOptions = {
  lanes: 1,
  windowMsgs: Number(process.env.NEXIO_BENCH_WINDOW_MSGS ?? 0),
  windowBytes: Number(process.env.NEXIO_BENCH_WINDOW_BYTES ?? 0),
};

function window(): { windowMsgs?: number; windowBytes?: number } {
  return {
    ...(nexioOptions.windowMsgs ? { windowMsgs: nexioOptions.windowMsgs } : {}),
    ...(nexioOptions.windowBytes ? { windowBytes: nexioOptions.windowBytes } : {}),
  };
}

/**
 * The server's hot forms (hotHandler, hotMessage: lent bytes, no request or
 * reply objects), as raw's server answers from its read buffer;
 * NEXIO_BENCH_SERVER=plain uses the ordinary handler and onMessage instead.
 */
type Flavor = 'hot' | 'promise' | 'views';

async function serve(scheme: 'tcp' | 'tls', flavor: Flavor = 'hot'): Promise<number> {
  let messages = 0;
  const count = () => {
    const b = Buffer.allocUnsafe(8);
    b.writeDoubleLE(messages, 0);
    return b;
  };
  const plain = flavor !== 'hot' || process.env.NEXIO_BENCH_SERVER === 'plain';
  const server = await createServer({
    portals: [`${scheme}://127.0.0.1:0/bench`],
    ...(scheme === 'tls' ? { tls: { key: certs.serverKey, cert: certs.serverCert } } : {}),
    core: window(),
    ...(flavor === 'views' ? { views: true } : {}),
    ...(plain ? {
      handler: (req: IncomingRequest) => (req.header.equals(COUNT) ? count() : { header: req.header, data: replyFor(req.data) as Buffer }),
      onMessage: (_s: Session, _h: Buffer, _d: Buffer, release?: () => void) => { messages++; release?.(); },
    } : {
      hotHandler: (s: Session, tag: number, header: Buffer, data: Buffer) => {
        if (header.equals(COUNT)) s.reply(tag, EMPTY, count());
        else s.reply(tag, header, replyFor(data));
      },
      hotMessage: () => { messages++; },
    }),
  });
  return Number(new URL(server.portals[0]).port);
}

class NexioClient implements Client {
  #s: Session;
  #delivered = 0;
  #promise: boolean;

  constructor(s: Session, flavor: Flavor = 'hot') {
    this.#s = s;
    this.#promise = flavor === 'promise';
  }

  requests(o: Load): Promise<LoadResult> {
    return this.#promise ? promiseRequests(this.#s, o) : requestLoad(this.#s, o);
  }

  async oneway(o: Load): Promise<LoadResult> {
    // Either ends with a request delivered after every message.
    const r = this.#promise ? await promiseOneway(this.#s, o) : await onewayLoad(this.#s, o);
    const reply = await this.#s.request(COUNT, '');
    const total = reply.data.readDoubleLE(0);
    reply.release?.();
    const delivered = total - this.#delivered;
    this.#delivered = total;
    if (delivered !== r.ops) throw new DeliveryError('nexio', r.ops, delivered);
    return r;
  }

  async ping(seconds: number, size: number): Promise<Histogram> {
    const h = histogram();
    const payload = Buffer.alloc(size, 0x63);
    const end = performance.now() + seconds * 1000;
    for (;;) {
      const t = performance.now();
      if (t >= end) break;
      const r = await this.#s.request('', payload);
      h.recordValue(us(t, performance.now()));
      r.release?.();
    }
    return h;
  }

  close(): Promise<void> {
    return this.#s.close();
  }
}

export const nexio: System = {
  name: 'nexio',
  serve: () => serve('tcp'),
  connect: async (port) => new NexioClient(await connect(`tcp://127.0.0.1:${port}/bench`, { lanes: nexioOptions.lanes, core: window() })),
};

/** Requests through request(): a Promise and a reply object each, `inflight` outstanding. */
async function promiseRequests(s: Session, o: Load): Promise<LoadResult> {
  const h = histogram();
  const payload = Buffer.alloc(o.size, 0x61);
  const start = performance.now();
  const end = start + o.seconds * 1000;
  let done = 0;
  const worker = async () => {
    for (;;) {
      const t = performance.now();
      if (t >= end) return;
      await s.request(EMPTY, payload);
      h.recordValue(us(t, performance.now()));
      done++;
    }
  };
  await Promise.all(Array.from({ length: o.inflight }, worker));
  return result(`request/response ${o.size} B x${o.inflight} (request())`, done, (performance.now() - start) / 1000, o.size, h);
}

/** One-way messages through send(): a receipt Promise each, up to the credit (send() waits in its queue past it). */
async function promiseOneway(s: Session, o: Load): Promise<LoadResult> {
  const payload = Buffer.alloc(o.size, 0x62);
  const start = performance.now();
  const end = start + o.seconds * 1000;
  let sent = 0;
  while (performance.now() < end) {
    const batch: Promise<void>[] = [];
    for (let i = 0; i < 1024; i++) batch.push(s.send(EMPTY, payload));
    sent += batch.length;
    await batch[batch.length - 1];
    await Promise.all(batch);
  }
  return result(`one-way ${o.size} B (send())`, sent, (performance.now() - start) / 1000, o.size);
}

/** The Promise API throughout, on both sides: compared with nexio, what the hot forms save. */
export const nexioPromise: System = {
  name: 'nexio-promise',
  serve: () => serve('tcp', 'promise'),
  connect: async (port) => new NexioClient(await connect(`tcp://127.0.0.1:${port}/bench`, { lanes: nexioOptions.lanes, core: window() }), 'promise'),
};

/** Zero-copy receive (views) on both sides: compared with nexio, what lending everything costs or saves. */
export const nexioViews: System = {
  name: 'nexio-views',
  serve: () => serve('tcp', 'views'),
  connect: async (port) => new NexioClient(await connect(`tcp://127.0.0.1:${port}/bench`, { lanes: nexioOptions.lanes, core: window(), views: true }), 'views'),
};

/** nexio over tls:// (TLS 1.3, the default): compared with nexio tcp://, the cost of encryption. */
export const nexioTls: System = {
  name: 'nexio-tls',
  serve: () => serve('tls'),
  connect: async (port) => new NexioClient(await connect(`tls://127.0.0.1:${port}/bench`, {
    lanes: nexioOptions.lanes, core: window(), tls: { ca: certs.ca },
  })),
};
