// nexio over tcp:// (and over tls://, as the system 'nexio-tls': the cost of
// encryption, with the test certificates of test/fixtures/tls): the hot path
// (tryRequest / trySend, from host/bench.ts) for throughput, request() (the
// Promise API) for ping-pong.

import { connect, createServer, Session } from '../../host/index';
import type { IncomingRequest } from '../../host/index';
import { requestLoad, onewayLoad } from '../../host/bench';
import { certs } from '../../test/fixtures/tls';
import { Client, DeliveryError, Histogram, histogram, Load, LoadResult, replyFor, System, us } from './common';

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
async function serve(scheme: 'tcp' | 'tls'): Promise<number> {
  let messages = 0;
  const count = () => {
    const b = Buffer.allocUnsafe(8);
    b.writeDoubleLE(messages, 0);
    return b;
  };
  const plain = process.env.NEXIO_BENCH_SERVER === 'plain';
  const server = await createServer({
    portals: [`${scheme}://127.0.0.1:0/bench`],
    ...(scheme === 'tls' ? { tls: { key: certs.serverKey, cert: certs.serverCert } } : {}),
    core: window(),
    ...(plain ? {
      handler: (req: IncomingRequest) => (req.header.equals(COUNT) ? count() : { header: req.header, data: replyFor(req.data) as Buffer }),
      onMessage: () => { messages++; },
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

  constructor(s: Session) {
    this.#s = s;
  }

  requests(o: Load): Promise<LoadResult> {
    return requestLoad(this.#s, o);
  }

  async oneway(o: Load): Promise<LoadResult> {
    const r = await onewayLoad(this.#s, o); // ends with a request delivered after every message
    const total = (await this.#s.request(COUNT, '')).data.readDoubleLE(0);
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
      await this.#s.request('', payload);
      h.recordValue(us(t, performance.now()));
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

/** nexio over tls:// (TLS 1.3, the default): compared with nexio tcp://, the cost of encryption. */
export const nexioTls: System = {
  name: 'nexio-tls',
  serve: () => serve('tls'),
  connect: async (port) => new NexioClient(await connect(`tls://127.0.0.1:${port}/bench`, {
    lanes: nexioOptions.lanes, core: window(), tls: { ca: certs.ca },
  })),
};
