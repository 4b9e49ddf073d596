// Record and replay. A Recorder captures every input given to a core and
// every output it produced, in order. replay() feeds the inputs to a fresh
// core and checks each output byte for byte: the core is deterministic, so
// any difference is a bug (or a changed core).
//
// File format (little-endian):
//   "NXRP" u32 version=1 u32 flags (bit0: recorded on the debug core) 16 x u32 config words
//   records: u8 kind, then
//     1 INPUT    u8 op, u8 n, n x f64 args, u32 len, bytes, u32 len, extra, f64 result
//     2 EVENTS   u32 count, count x 64 bytes of records, then per event
//                u32 len + header bytes, u32 len + data bytes
//     3 TX       u32 lane, u32 len, bytes, u32 ext, u32 extLen
//     4 DEADLINE f64

import { readFileSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { Core, CoreEvent, EVENT_SIZE, Op, defaultConfig, CoreConfig } from './core';
import { ReplayMismatchError, InvalidArgumentError } from './errors';

const MAGIC = 0x5052584e; // "NXRP"
const K_INPUT = 1, K_EVENTS = 2, K_TX = 3, K_DEADLINE = 4;

/** A growable byte sink. */
class Sink {
  buf = Buffer.allocUnsafe(1 << 16);
  len = 0;
  need(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const b = Buffer.allocUnsafe(size);
    this.buf.copy(b, 0, 0, this.len);
    this.buf = b;
  }
  u8(v: number): void { this.need(1); this.buf[this.len++] = v; }
  u32(v: number): void { this.need(4); this.buf.writeUInt32LE(v >>> 0, this.len); this.len += 4; }
  f64(v: number): void { this.need(8); this.buf.writeDoubleLE(v, this.len); this.len += 8; }
  bytes(b: Uint8Array | undefined): void {
    const n = b ? b.length : 0;
    this.u32(n);
    if (n) { this.need(n); this.buf.set(b!, this.len); this.len += n; }
  }
}

export class Recorder {
  #sink = new Sink();
  #file: string | undefined;
  #fd: number | undefined;
  #ev = new CoreEvent();

  /** Records into memory; with a file, flushes there as it goes and on save(). */
  constructor(file?: string) {
    this.#file = file;
  }

  begin(words: Uint32Array, debug: boolean): void {
    const s = this.#sink;
    s.u32(MAGIC);
    s.u32(1);
    s.u32(debug ? 1 : 0);
    for (const w of words) s.u32(w);
  }

  input(op: Op, args: number[], bytes: Uint8Array | undefined, extra: Uint8Array | undefined, result: number): void {
    const s = this.#sink;
    s.u8(K_INPUT);
    s.u8(op);
    s.u8(args.length);
    for (const a of args) s.f64(a);
    s.bytes(bytes);
    s.bytes(extra);
    s.f64(result);
    this.#maybeFlush();
  }

  events(core: Core, n: number): void {
    const s = this.#sink;
    s.u8(K_EVENTS);
    s.u32(n);
    const mem = core.memory;
    const p = core.eventOffset(0);
    s.need(n * EVENT_SIZE);
    s.buf.set(mem.subarray(p, p + n * EVENT_SIZE), s.len);
    s.len += n * EVENT_SIZE;
    for (let i = 0; i < n; i++) {
      const e = core.event(i, this.#ev);
      s.bytes(e.hdrPtr ? mem.subarray(e.hdrPtr, e.hdrPtr + e.hdrLen) : undefined);
      s.bytes(e.dataPtr ? mem.subarray(e.dataPtr, e.dataPtr + e.dataLen) : undefined);
    }
  }

  transmit(lane: number, bytes: Uint8Array, ext: number, extLen: number): void {
    const s = this.#sink;
    s.u8(K_TX);
    s.u32(lane);
    s.bytes(bytes);
    s.u32(ext);
    s.u32(extLen);
  }

  deadline(d: number): void {
    this.#sink.u8(K_DEADLINE);
    this.#sink.f64(d);
  }

  /** Everything recorded so far (for a recorder without a file). */
  bytes(): Buffer {
    return this.#sink.buf.subarray(0, this.#sink.len);
  }

  #maybeFlush(): void {
    if (this.#file && this.#sink.len > 1 << 20) this.flush();
  }

  /** Writes what is buffered to the file. */
  flush(): void {
    if (!this.#file) return;
    this.#fd ??= openSync(this.#file, 'w');
    writeSync(this.#fd, this.#sink.buf, 0, this.#sink.len);
    this.#sink.len = 0;
  }

  /** Flushes and closes the file (or writes everything to `file`). */
  save(file?: string): void {
    if (file && !this.#file) {
      writeFileSync(file, this.bytes());
      return;
    }
    this.flush();
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}

class Source {
  off = 0;
  constructor(readonly buf: Buffer) {}
  get done(): boolean { return this.off >= this.buf.length; }
  need(n: number): void {
    if (this.off + n > this.buf.length) throw new InvalidArgumentError(`record file truncated at byte ${this.off}`);
  }
  u8(): number { this.need(1); return this.buf[this.off++]; }
  u32(): number { this.need(4); const v = this.buf.readUInt32LE(this.off); this.off += 4; return v; }
  f64(): number { this.need(8); const v = this.buf.readDoubleLE(this.off); this.off += 8; return v; }
  bytes(): Buffer { const n = this.u32(); this.need(n); const b = this.buf.subarray(this.off, this.off + n); this.off += n; return b; }
}

export interface ReplayResult {
  inputs: number;
  outputs: number;
  trace: string;
}

function configFromWords(w: number[]): CoreConfig {
  return {
    ...defaultConfig,
    maxSessions: w[0], maxLanes: w[1], windowMsgs: w[2], windowBytes: w[3], maxRequests: w[4],
    keepaliveMs: w[5], resumeMs: w[6], helloTimeoutMs: w[7], backoffMinMs: w[8], backoffMaxMs: w[9],
    seed: w[10] + w[11] * 2 ** 32, eventCap: w[12], holdRx: w[13] !== 0,
    // 0 in recordings made before the word existed: no limit, as then.
    maxMessageBytes: w[14] ?? 0,
    refuseOneway: (w[15] ?? 0) !== 0,
  };
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/**
 * Feeds a recording to a fresh core and checks that every output is
 * byte-identical. Throws ReplayMismatchError at the first difference.
 * With trace, runs the debug core and returns its protocol trace.
 */
export async function replay(data: Buffer | string, options: { trace?: boolean } = {}): Promise<ReplayResult> {
  const src = new Source(typeof data === 'string' ? readFileSync(data) : data);
  if (src.u32() !== MAGIC) throw new InvalidArgumentError('not a nexio record file (bad magic)');
  const version = src.u32();
  if (version !== 1) throw new InvalidArgumentError(`record file version ${version} is not supported`);
  src.u32();
  const words: number[] = [];
  for (let i = 0; i < 16; i++) words.push(src.u32());
  const config = configFromWords(words);
  const core = options.trace ? await Core.debugCore(config) : new Core(config);
  const ev = new CoreEvent();
  let inputs = 0, outputs = 0, trace = '';
  const fail = (what: string): never => {
    throw new ReplayMismatchError(`replay diverged at record ${inputs + outputs + 1} (byte ${src.off}): ${what}`);
  };
  while (!src.done) {
    const kind = src.u8();
    if (kind === K_INPUT) {
      const op = src.u8() as Op;
      const n = src.u8();
      const args: number[] = [];
      for (let i = 0; i < n; i++) args.push(src.f64());
      const bytes = src.bytes();
      const extra = src.bytes();
      const want = src.f64();
      const got = core.apply(op, args, bytes, extra);
      inputs++;
      if (!Object.is(got, want) && got !== want) fail(`input op ${op} returned ${got}, recorded ${want}`);
    } else if (kind === K_EVENTS) {
      const n = src.u32();
      src.need(n * EVENT_SIZE);
      const rec = src.buf.subarray(src.off, src.off + n * EVENT_SIZE);
      src.off += n * EVENT_SIZE;
      const got = core.pollEvents();
      outputs++;
      if (got !== n) fail(`${got} events, recorded ${n}`);
      const p = core.eventOffset(0);
      const mem = core.memory;
      if (!rec.equals(mem.subarray(p, p + n * EVENT_SIZE))) fail('event records differ');
      for (let i = 0; i < n; i++) {
        const e = core.event(i, ev);
        const h = src.bytes();
        const d = src.bytes();
        if (e.hdrPtr && !h.equals(mem.subarray(e.hdrPtr, e.hdrPtr + e.hdrLen))) fail(`event ${i} header bytes differ`);
        if (e.dataPtr && !d.equals(mem.subarray(e.dataPtr, e.dataPtr + e.dataLen))) fail(`event ${i} data bytes differ`);
      }
    } else if (kind === K_TX) {
      const lane = src.u32();
      const bytes = src.bytes();
      const ext = src.u32();
      const extLen = src.u32();
      const got = core.pollTransmit(0);
      outputs++;
      if (got !== lane) fail(`transmit on lane ${got}, recorded ${lane}`);
      // lane 0: an idle poll (recorded because it may still move the core's state)
      if (lane !== 0) {
        const view = core.txView();
        if (!bytes.equals(view)) fail(`transmit bytes differ: got ${hex(view).slice(0, 80)}, recorded ${hex(bytes).slice(0, 80)}`);
        if (core.txExt() !== ext || core.txExtLen() !== extLen) fail('transmit ext differs');
      }
    } else if (kind === K_DEADLINE) {
      const want = src.f64();
      const got = core.nextDeadline();
      outputs++;
      if (got !== want) fail(`deadline ${got}, recorded ${want}`);
    } else {
      throw new InvalidArgumentError(`record file corrupt: unknown record kind ${kind} at byte ${src.off - 1}`);
    }
    if (options.trace) trace += core.takeTrace();
  }
  return { inputs, outputs, trace };
}
