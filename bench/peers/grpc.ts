// @grpc/grpc-js over HTTP/2, one channel. The service is defined by hand
// with Buffer-in/Buffer-out serializers (no protobuf encoding, no
// proto-loader): what is measured is gRPC's framing and HTTP/2, not
// protobuf. Requests are unary calls; one-way messages are one
// client-streaming call whose single response (the count) confirms delivery.

import * as grpc from '@grpc/grpc-js';
import { Client, DeliveryError, Histogram, histogram, Load, LoadResult, replyFor, result, System, us } from './common';

const same = (b: Buffer) => b;
const def: grpc.ServiceDefinition = {
  echo: {
    path: '/nexio.bench.Bench/Echo', requestStream: false, responseStream: false,
    requestSerialize: same, requestDeserialize: same, responseSerialize: same, responseDeserialize: same,
  },
  push: {
    path: '/nexio.bench.Bench/Push', requestStream: true, responseStream: false,
    requestSerialize: same, requestDeserialize: same, responseSerialize: same, responseDeserialize: same,
  },
};

const channelOptions = { 'grpc.max_receive_message_length': 8 << 20, 'grpc.max_send_message_length': 8 << 20 };

async function serve(): Promise<number> {
  const server = new grpc.Server(channelOptions);
  server.addService(def, {
    echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, replyFor(call.request) as Buffer),
    push: (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      let n = 0;
      call.on('data', () => { n++; });
      call.on('end', () => {
        const b = Buffer.allocUnsafe(8);
        b.writeDoubleLE(n, 0);
        cb(null, b);
      });
    },
  });
  return new Promise((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)));
  });
}

interface BenchClient extends grpc.Client {
  echo(req: Buffer, cb: (err: grpc.ServiceError | null, res: Buffer) => void): grpc.ClientUnaryCall;
  push(cb: (err: grpc.ServiceError | null, res: Buffer) => void): grpc.ClientWritableStream<Buffer>;
}

class GrpcClient implements Client {
  #c: BenchClient;

  constructor(c: BenchClient) {
    this.#c = c;
  }

  requests(o: Load): Promise<LoadResult> {
    const h = histogram();
    const c = this.#c;
    const payload = Buffer.alloc(o.size, 0x61);
    const start = performance.now();
    const end = start + o.seconds * 1000;
    let done = 0, outstanding = 0, stopping = false;
    return new Promise((resolve, reject) => {
      const issue = () => {
        const t = performance.now();
        outstanding++;
        c.echo(payload, (err) => {
          outstanding--;
          if (err) { stopping = true; reject(err); return; }
          const now = performance.now();
          h.recordValue(us(t, now));
          done++;
          if (now >= end) stopping = true;
          if (!stopping) issue();
          else if (outstanding === 0) resolve(result(`request/response ${o.size} B x${o.inflight}`, done, (now - start) / 1000, o.size, h));
        });
      };
      for (let i = 0; i < o.inflight; i++) issue();
    });
  }

  async oneway(o: Load): Promise<LoadResult> {
    const payload = Buffer.alloc(o.size, 0x62);
    const start = performance.now();
    const end = start + o.seconds * 1000;
    let sent = 0;
    let confirmed!: Promise<number>;
    await new Promise<void>((resolve, reject) => {
      confirmed = new Promise<number>((res, rej) => {
        const call = this.#c.push((err, r) => (err ? rej(err) : res(r.readDoubleLE(0))));
        const pump = () => {
          let room = true;
          for (let i = 0; i < 4096 && room; i++) {
            room = call.write(payload); // false: over the stream's high water mark; wait for 'drain'
            sent++;
          }
          if (performance.now() >= end) { call.end(); resolve(); return; }
          if (room) setImmediate(pump);
          else call.once('drain', pump);
        };
        call.on('error', reject);
        pump();
      });
      confirmed.catch(reject);
    });
    const delivered = await confirmed;
    const secs = (performance.now() - start) / 1000;
    if (delivered !== sent) throw new DeliveryError('grpc', sent, delivered);
    return result(`one-way ${o.size} B`, sent, secs, o.size);
  }

  async ping(seconds: number, size: number): Promise<Histogram> {
    const h = histogram();
    const payload = Buffer.alloc(size, 0x63);
    const end = performance.now() + seconds * 1000;
    for (;;) {
      const t = performance.now();
      if (t >= end) break;
      await new Promise<void>((resolve, reject) => this.#c.echo(payload, (err) => (err ? reject(err) : resolve())));
      h.recordValue(us(t, performance.now()));
    }
    return h;
  }

  async close(): Promise<void> {
    this.#c.close();
  }
}

export const grpcJs: System = {
  name: 'grpc',
  serve,
  connect: async (port) => {
    const Ctor = grpc.makeGenericClientConstructor(def, 'Bench') as unknown as new (addr: string, creds: grpc.ChannelCredentials, opts: object) => BenchClient;
    const c = new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), channelOptions);
    await new Promise<void>((resolve, reject) => c.waitForReady(Date.now() + 10_000, (e) => (e ? reject(e) : resolve())));
    return new GrpcClient(c);
  },
};
