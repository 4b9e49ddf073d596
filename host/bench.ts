// Load generation shared by `nexio bench`, `nexio ping` and `npm start`.
// Latencies go into an HDR histogram (hdr-histogram-js: a maintained,
// well-tested implementation; percentiles are its whole point). It is a
// tool dependency (host/tools.ts), loaded at the first histogram.

import type * as hdr from 'hdr-histogram-js';
import type { Session } from './session';
import { requireTool } from './tools';

export interface LoadResult {
  name: string;
  ops: number;
  seconds: number;
  opsPerSec: number;
  mbPerSec: number;
  p50us: number;
  p99us: number;
  maxUs: number;
}

let hdrLib: typeof hdr | undefined;

export function histogram(): hdr.Histogram {
  hdrLib ??= requireTool<typeof hdr>('hdr-histogram-js', 'a latency histogram (nexio ping, bench, demo)');
  return hdrLib.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3, useWebAssembly: false });
}

export interface LoadOptions {
  seconds: number;
  size: number;
  inflight: number;
  onProgress?: (done: number, elapsed: number) => void;
}

/** Requests of `size` bytes with `inflight` outstanding, through the hot path. */
export function requestLoad(s: Session, o: LoadOptions): Promise<LoadResult> {
  const h = histogram();
  const payload = Buffer.alloc(o.size, 0x61);
  const header = Buffer.alloc(0);
  const start = performance.now();
  const end = start + o.seconds * 1000;
  const sentAt = new Float64Array(1 << 16);
  let done = 0, outstanding = 0, stopping = false, lastReport = start;
  return new Promise((resolve, reject) => {
    const finish = () => {
      const secs = (performance.now() - start) / 1000;
      s.off('drain', fill);
      resolve({
        name: `request/response ${o.size} B, ${o.inflight} in flight`, ops: done, seconds: secs, opsPerSec: done / secs,
        mbPerSec: (done * o.size) / secs / 1e6, p50us: h.getValueAtPercentile(50), p99us: h.getValueAtPercentile(99), maxUs: h.maxValue,
      });
    };
    const onReply = (err: Error | null, _h: Buffer, _d: Buffer, tag: number) => {
      outstanding--;
      if (err) { if (!stopping) { stopping = true; reject(err); } return; }
      const now = performance.now();
      h.recordValue(Math.max(1, Math.round((now - sentAt[tag & 0xffff]) * 1000)));
      done++;
      if (now - lastReport > 200) { lastReport = now; o.onProgress?.(done, (now - start) / 1000); }
      if (now >= end) stopping = true;
      if (stopping) { if (outstanding === 0) finish(); return; }
      fill();
    };
    function fill(): void {
      while (!stopping && outstanding < o.inflight) {
        const t = performance.now();
        const tag = s.tryRequest(header, payload, onReply);
        if (tag === 0) return;
        sentAt[tag & 0xffff] = t;
        outstanding++;
      }
    }
    s.on('drain', fill);
    fill();
  });
}

/** One-way messages as fast as credits allow; a final request makes sure all were delivered. */
export async function onewayLoad(s: Session, o: LoadOptions): Promise<LoadResult> {
  const payload = Buffer.alloc(o.size, 0x62);
  const header = Buffer.alloc(0);
  const start = performance.now();
  const end = start + o.seconds * 1000;
  let done = 0, lastReport = start;
  await new Promise<void>((resolve) => {
    let finished = false;
    const pump = () => {
      if (finished) return;
      let room = true;
      for (let i = 0; i < 4096 && room; i++) {
        room = s.trySend(header, payload); // false: no credit; 'drain' calls pump again
        if (room) done++;
      }
      const now = performance.now();
      if (now - lastReport > 200) { lastReport = now; o.onProgress?.(done, (now - start) / 1000); }
      if (now >= end) { finished = true; s.off('drain', pump); resolve(); return; }
      if (room) setImmediate(pump);
    };
    s.on('drain', pump);
    pump();
  });
  (await s.request('', '')).release?.(); // delivered in order after every message (lent with views: given back)
  const secs = (performance.now() - start) / 1000;
  return { name: `one-way ${o.size} B`, ops: done, seconds: secs, opsPerSec: done / secs, mbPerSec: (done * o.size) / secs / 1e6, p50us: 0, p99us: 0, maxUs: 0 };
}

/** Sequential requests: round-trip latency. */
export async function pingLoad(s: Session, count: number, size: number, h = histogram()): Promise<hdr.Histogram> {
  const payload = Buffer.alloc(size, 0x63);
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    (await s.request('', payload)).release?.();
    h.recordValue(Math.max(1, Math.round((performance.now() - t) * 1000)));
  }
  return h;
}

/** A fixed-width text table. */
export function table(rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? fmt(c) : c)));
  const widths = cells[0].map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const sep = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(cells[0]), sep, ...cells.slice(1).map(line)].join('\n');
}

function fmt(n: number): string {
  if (n >= 100) return Math.round(n).toLocaleString('en-US');
  return n.toFixed(1);
}
