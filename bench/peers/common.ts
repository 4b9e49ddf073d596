// What every system in the comparison provides: a server (run in a child
// process by serve.ts) and a client (run in the bench process). The server
// rule is the same for all: a request of up to ECHO_MAX bytes is answered
// with the same bytes, a larger one with an 8-byte reply; one-way messages
// are counted, and a "count" request is answered with the count so far.

import type { Histogram } from 'hdr-histogram-js';
import { histogram, LoadResult } from '../../host/bench';

export { histogram };
export type { LoadResult, Histogram };

export const ECHO_MAX = 4096;

export interface Load {
  seconds: number;
  /** Payload bytes per request or message. */
  size: number;
  /** Requests outstanding at once. */
  inflight: number;
}

export interface Client {
  /** Requests of o.size bytes, o.inflight outstanding, for o.seconds. */
  requests(o: Load): Promise<LoadResult>;
  /** One-way messages of o.size bytes for o.seconds; the result counts only after the server confirmed every message. */
  oneway(o: Load): Promise<LoadResult>;
  /** Sequential requests (one in flight) for `seconds`: round-trip latency in µs. */
  ping(seconds: number, size: number): Promise<Histogram>;
  close(): Promise<void>;
}

export interface System {
  name: string;
  /** Runs the server in this (child) process; resolves with its port. */
  serve(): Promise<number>;
  connect(port: number): Promise<Client>;
}

/** The reply a server gives to a request payload. */
export function replyFor(data: Uint8Array): Uint8Array {
  if (data.length <= ECHO_MAX) return data;
  const r = Buffer.allocUnsafe(8);
  r.writeDoubleLE(data.length, 0);
  return r;
}

/** Round-trip time in whole µs (≥ 1) for the histogram. */
export function us(t0: number, t1: number): number {
  return Math.max(1, Math.round((t1 - t0) * 1000));
}

export function result(name: string, ops: number, secs: number, size: number, h?: Histogram): LoadResult {
  return {
    name, ops, seconds: secs, opsPerSec: ops / secs, mbPerSec: (ops * size) / secs / 1e6,
    p50us: h ? h.getValueAtPercentile(50) : 0, p99us: h ? h.getValueAtPercentile(99) : 0, maxUs: h ? h.maxValue : 0,
  };
}

export class DeliveryError extends Error {
  constructor(system: string, sent: number, delivered: number) {
    super(`${system}: ${sent} one-way messages sent, the server confirmed ${delivered}`);
  }
}
