// rdma://host:port/resource — one RC queue pair per lane, set up through
// rdma_cm (native/index.js). Same contract as tcp://: a lane is an ordered
// byte stream that the core may split anywhere; every protocol decision
// (reliability, credits, failover) stays in the core.
//
// Wire (transport level, v1). Every SEND carries one frame; byte 0 is its kind:
//
//   DATA     [1][stream bytes, 1 .. recvSize-1]
//   RDV      [2][0 0 0][id u32][addr u64][rkey u32][length u32]     24 bytes
//   RDV_DONE [3][0 0 0][id u32]                                      8 bytes
//   FIN      [4]                                                     orderly end
//
// The connect's private data is "nexio-rdma/1": anything else is rejected.
//
// Sending. Lane.write(bytes, ext) cuts bytes (a core batch, up to 64 KiB)
// into DATA frames that fit a receive buffer (16 KiB) and posts them as one
// work-request list; frames up to the QP's inline limit go inline, larger
// ones through the addon's registered send slots. When the send queue or
// the slots are full the addon keeps the rest in order and emits 'drain';
// that queue is bounded by the core's credit windows, so nothing else
// bounds it here.
//
// Rendezvous. An ext payload (the caller's Buffer, which the context keeps
// until the peer acked it) at or above RDV_THRESHOLD (64 KiB) is not copied
// into the stream: it is registered for remote READ only (a cache keyed by
// its ArrayBuffer: the same application Buffer sent again costs no
// registration), and an RDV descriptor takes its place in the stream. The
// receiving lane READs it in RDV_CHUNK (64 KiB) pieces, 4 in flight, into a small registered
// staging pool (no allocation by the peer's declared length) and hands each
// piece to sink.data() in stream order: frames that arrive while a READ is
// outstanding are copied aside and delivered after it. When the last piece
// is in, RDV_DONE tells the sender it may unpin (the cache may then evict
// it). Payloads below the threshold go as DATA frames like the batch.
// v1 carries the address and rkey in this transport-level descriptor, not
// in the core's frames: the core's ext header already says "the next N
// bytes of this lane are a payload", so the transport can substitute a
// READ for those bytes without a protocol change, and the core stays
// transport-agnostic (tcp:// sends the same headers). docs/protocol.md §9.
//
// Failure. A failed completion (QP error), a DISCONNECTED without FIN, or
// DEVICE_REMOVAL ends the lane with sink.closed(err), once; FIN then
// DISCONNECTED is an orderly end, closed(). Bytes that do not parse as
// frames end the lane with NEXIO_ERR_PROTOCOL. destroy() tears down the QP
// then the cm id (the addon's reverse order).
//
// Known limit (core/context, not this file): ext payload bytes are not fed to
// the core, so they do not count as life on the lane; a payload that takes
// longer than the dead-lane time (3 x keepaliveMs) to READ gets its lane
// declared dead and retransmitted on another. Raise keepaliveMs for slow links.
//
// Ownership: the bytes given to sink.data() are a view of the receive ring or
// of the staging pool, valid during the call only (the context copies).

import * as dns from 'node:dns';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Transport, Lane, LaneSink, Listener } from './transport';
import { InvalidArgumentError, NexioError } from '../errors';
import { channels } from '../diagnostics';
import type * as Native from '../../native/index';

/** Ext payloads at or above this many bytes go by RDMA READ; below, in DATA frames. */
export const RDV_THRESHOLD = Number(process.env.NEXIO_RDMA_RDV_THRESHOLD) || 64 * 1024;
/**
 * Bytes per RDMA READ (and per staging chunk), and READs in flight per lane. A READ's response is
 * one burst of packets; in the lab (rxe over qemu's UDP link) bursts beyond ~64 packets get lost
 * and each loss costs the requester a retry timeout: 1 MiB as one READ took 16 s, as 64 KiB x 4
 * in flight 0.17 s (bench/lab-read-probe.js). Real NICs do not care much either way.
 */
const RDV_CHUNK = 64 * 1024;
const RDV_READS = 4;
/** Bytes of application memory kept registered for rendezvous (LRU, unreferenced entries evicted). */
const REG_CACHE_BYTES = Number(process.env.NEXIO_RDMA_REG_CACHE) || 256 * 1024 * 1024;
const PDATA = 'nexio-rdma/1';
const CONNECT_TIMEOUT_MS = 10000;
const END_TIMEOUT_MS = 2000;
const QP: Native.QueuePairOptions = { recvCount: 64, recvSize: 16384, sendCount: 64, sendSize: 16384, rdmaDepth: 16 };
const DATA_MAX = 16384 - 1;

const K_DATA = 1, K_RDV = 2, K_RDV_DONE = 3, K_FIN = 4;
const RDV_LEN = 24, DONE_LEN = 8;
const FIN_FRAME = Buffer.from([K_FIN]);

// ---- the addon, loaded on first use ----

type NativeModule = typeof Native;
let native: NativeModule | undefined;

function load(): NativeModule {
  if (native) return native;
  const candidates = [
    process.env.NEXIO_RDMA_NATIVE,
    path.resolve(__dirname, '../../../native'), // dist/host/transports -> repo root
    path.resolve(__dirname, '../../native'),
  ].filter((p): p is string => !!p);
  const dir = candidates.find((d) => fs.existsSync(path.join(d, 'index.js')));
  try {
    if (!dir) throw Object.assign(new Error('native/index.js not found'), { code: 'MODULE_NOT_FOUND' });
    native = require(dir) as NativeModule;
  } catch (e) {
    const err = e as Error & { code?: string };
    const hint = 'apt-get install rdma-core libibverbs-dev librdmacm-dev ibverbs-providers, then rebuild the addon (native/build.sh)';
    throw new NexioError('NEXIO_ERR_RDMA_UNAVAILABLE',
      err.code === 'NEXIO_ERR_RDMA_UNAVAILABLE' ? err.message : `rdma:// is unavailable: ${err.message}. ${hint}`, 0, { cause: e });
  }
  return native;
}

// ---- one RdmaContext per thread, open while lanes or listeners use it ----

let rctx: Native.RdmaContext | undefined;
let users = 0;

function acquire(): Native.RdmaContext {
  const n = load();
  rctx ??= new n.RdmaContext();
  users++;
  return rctx;
}

function release(): void {
  if (--users > 0) return;
  // The cm channel's fd holds the event loop: close the context when nothing uses it.
  setImmediate(() => {
    if (users > 0 || !rctx) return;
    const c = rctx;
    rctx = undefined;
    regCaches = new WeakMap();
    c.close().catch(() => {});
  });
}

// ---- registration cache for rendezvous sources ----

interface RegEntry { ab: ArrayBufferLike; refs: number; bytes: number }
interface RegCache { device: Native.RdmaDevice; entries: Map<ArrayBufferLike, RegEntry>; bytes: number }
let regCaches = new WeakMap<Native.RdmaDevice, RegCache>();

/** Counters for tests and benchmarks (this thread). */
export const rdmaStats = {
  lanesOpened: 0, lanesClosed: 0, rendezvousSent: 0, rendezvousReceived: 0, rendezvousBytes: 0,
  registrations: 0, registrationHits: 0, registrationEvictions: 0, inlineExt: 0, protocolErrors: 0,
};

function regAcquire(device: Native.RdmaDevice, buf: Uint8Array): { entry: RegEntry; keys: Native.Registration } {
  let c = regCaches.get(device);
  if (!c) regCaches.set(device, c = { device, entries: new Map(), bytes: 0 });
  const ab = buf.buffer;
  const keys = device.register(buf, { remoteAccess: 'read' }); // cached by the addon when already registered
  let e = c.entries.get(ab);
  if (e) {
    rdmaStats.registrationHits++;
    c.entries.delete(ab); // most recently used last
  } else {
    e = { ab, refs: 0, bytes: ab.byteLength };
    rdmaStats.registrations++;
    c.bytes += e.bytes;
  }
  c.entries.set(ab, e);
  e.refs++;
  if (c.bytes > REG_CACHE_BYTES) {
    for (const [k, x] of c.entries) {
      if (c.bytes <= REG_CACHE_BYTES) break;
      if (x.refs > 0 || x === e) continue;
      device.deregister(k as ArrayBuffer);
      c.entries.delete(k);
      c.bytes -= x.bytes;
      rdmaStats.registrationEvictions++;
    }
  }
  return { entry: e, keys };
}

// ---- the lane ----

type RxItem =
  | { kind: 'data'; bytes: Buffer }
  | { kind: 'fin' }
  | { kind: 'rdv'; id: number; addr: bigint; rkey: number; length: number; posted: number; delivered: number; reads: Read[] };
interface Read { chunk: Native.PoolChunk; n: number; done: boolean }

function protocolError(msg: string): NexioError {
  return new NexioError('NEXIO_ERR_PROTOCOL', `rdma lane: ${msg}`, 1);
}

export class RdmaLane implements Lane {
  readonly remote: string;
  /** True for the lane a listener accepted. */
  readonly accepted: boolean;
  #sink: LaneSink | undefined;
  #conn: Native.RdmaConnection | undefined;
  #pre: [Uint8Array, Uint8Array | undefined][] = [];
  #state: 'connecting' | 'open' | 'ending' | 'closed' = 'connecting';
  #done = false;            // sink.closed() was called
  #destroyed = false;
  #ended = false;           // end() was called
  #finSeen = false;
  #err: Error | undefined;
  #rxq: RxItem[] = [];
  #pool: Native.BufferPool | undefined;
  #free: Native.PoolChunk[] = [];
  #out = new Map<number, RegEntry>(); // rendezvous the peer has not finished reading
  #nextRdv = 1;
  #endTimer: NodeJS.Timeout | undefined;
  #early: Buffer[] | undefined;      // frames before the sink was bound (copied)
  #acc: Buffer | undefined;          // DATA of one completion batch, handed to the sink at once
  #accLen = 0;
  #accQueued = false;

  constructor(remote: string, accepted: boolean, sink?: LaneSink) {
    this.remote = remote;
    this.accepted = accepted;
    this.#sink = sink;
    rdmaStats.lanesOpened++;
    lanes.add(this);
  }

  get state(): string { return this.#state; }
  #isClosed(): boolean { return this.#state === 'closed'; }
  /** The addon's connection (tests: stats, fault injection). */
  get connection(): Native.RdmaConnection | undefined { return this.#conn; }

  bind(sink: LaneSink): void {
    this.#sink = sink;
    const e = this.#early;
    this.#early = undefined;
    if (e) for (const b of e) this.#onFrame(b, 0, b.length);
    if (this.#state === 'closed') this.#report();
  }

  /** The connection is up (client: connected; server: accepted and established). */
  attach(conn: Native.RdmaConnection): void {
    this.#conn = conn;
    if (this.#destroyed) { conn.close({ timeoutMs: 0 }).catch(() => {}); this.#closed(); return; }
    this.#state = 'open';
    conn.on('error', (err: Error) => { this.#err ??= err; });
    conn.on('close', () => this.#closed());
    conn.onFrame = (ring, off, len) => this.#onFrame(ring, off, len);
    if (!this.accepted) this.#sink?.connected();
    const pre = this.#pre;
    this.#pre = [];
    for (const [b, x] of pre) this.write(b, x);
  }

  connectFailed(err: Error): void {
    this.#err = err;
    this.#closed();
  }

  write(bytes: Uint8Array, ext?: Uint8Array): void {
    if (this.#state === 'connecting') { if (!this.#destroyed) this.#pre.push([bytes, ext]); return; }
    const conn = this.#conn;
    if (this.#state !== 'open' || !conn || conn.state !== 'open') return;
    const frames: Uint8Array[] = [];
    pushData(frames, bytes);
    if (ext && ext.length) {
      if (ext.length >= RDV_THRESHOLD && ext.length <= 0xffffffff) this.#rendezvous(frames, conn, ext);
      else { rdmaStats.inlineExt++; pushData(frames, ext); }
    }
    if (frames.length) this.#post(frames);
  }

  #rendezvous(frames: Uint8Array[], conn: Native.RdmaConnection, ext: Uint8Array): void {
    let reg;
    try {
      reg = regAcquire(conn.device, ext);
    } catch {
      // not registrable (a SharedArrayBuffer, memory limits): the bytes go in the stream
      rdmaStats.inlineExt++;
      pushData(frames, ext);
      return;
    }
    const id = this.#nextRdv;
    this.#nextRdv = (this.#nextRdv + 1) >>> 0 || 1;
    this.#out.set(id, reg.entry);
    const f = Buffer.alloc(RDV_LEN);
    f[0] = K_RDV;
    f.writeUInt32LE(id, 4);
    f.writeBigUInt64LE(reg.keys.addr, 8);
    f.writeUInt32LE(reg.keys.rkey, 16);
    f.writeUInt32LE(ext.length, 20);
    frames.push(f);
    rdmaStats.rendezvousSent++;
  }

  #post(frames: Uint8Array[]): void {
    try {
      this.#conn!.send(frames); // false: the rest waits in order for 'drain' inside the addon
    } catch (e) {
      this.#fail(e as Error);
    }
  }

  end(): void {
    if (this.#state === 'connecting') { this.destroy(); return; }
    if (this.#state !== 'open') return;
    this.#state = 'ending';
    this.#ended = true;
    // FIN goes after everything queued; the peer disconnects when it has read it.
    this.#post([FIN_FRAME]);
    this.#endTimer = setTimeout(() => this.#conn?.close({ timeoutMs: 0 }).catch(() => {}), END_TIMEOUT_MS);
  }

  destroy(): void {
    if (this.#destroyed || this.#state === 'closed') return;
    this.#destroyed = true;
    this.#pre = [];
    if (this.#conn) this.#conn.close({ timeoutMs: 0 }).catch(() => {}); // disconnect, then QP and id go
    // connecting: attach() closes what the connect resolves with
  }

  // ---- receiving ----

  #onFrame(ring: Buffer, off: number, len: number): void {
    if (this.#state === 'closed') return;
    if (!this.#sink) { (this.#early ??= []).push(Buffer.from(ring.subarray(off, off + len))); return; }
    const kind = len > 0 ? ring[off] : 0;
    if (kind === K_DATA && this.#rxq.length === 0) {
      if (len > 1) this.#accumulate(ring, off + 1, len - 1);
      return;
    }
    this.#flushAcc(); // what came before this frame goes first
    switch (kind) {
      case K_DATA:
        if (len > 1) this.#rxq.push({ kind: 'data', bytes: Buffer.from(ring.subarray(off + 1, off + len)) });
        return;
      case K_RDV: {
        if (len !== RDV_LEN) { this.#protocol(`RDV frame of ${len} bytes`); return; }
        this.#rxq.push({
          kind: 'rdv', id: ring.readUInt32LE(off + 4), addr: ring.readBigUInt64LE(off + 8), rkey: ring.readUInt32LE(off + 16),
          length: ring.readUInt32LE(off + 20), posted: 0, delivered: 0, reads: [],
        });
        if (this.#rxq.length === 1) this.#pump();
        return;
      }
      case K_RDV_DONE: {
        if (len !== DONE_LEN) { this.#protocol(`RDV_DONE frame of ${len} bytes`); return; }
        const id = ring.readUInt32LE(off + 4);
        const e = this.#out.get(id);
        if (e) { e.refs--; this.#out.delete(id); }
        return;
      }
      case K_FIN:
        if (len !== 1) { this.#protocol(`FIN frame of ${len} bytes`); return; }
        this.#rxq.push({ kind: 'fin' });
        if (this.#rxq.length === 1) this.#pump();
        return;
      default:
        this.#protocol(`unknown frame kind ${kind} (${len} bytes)`);
    }
  }

  /**
   * The DATA frames of one completion batch sit in separate ring slots; one sink.data() for the
   * batch (a copy into a 64 KiB scratch buffer, flushed in a microtask after the batch's callback,
   * or before any other frame) costs the context one core input instead of one per SEND.
   */
  #accumulate(ring: Buffer, start: number, n: number): void {
    const acc = this.#acc ??= Buffer.allocUnsafe(4 * 16384);
    if (this.#accLen + n > acc.length) this.#flushAcc();
    ring.copy(acc, this.#accLen, start, start + n);
    this.#accLen += n;
    if (!this.#accQueued) {
      this.#accQueued = true;
      queueMicrotask(() => { this.#accQueued = false; this.#flushAcc(); });
    }
  }

  #flushAcc(): void {
    const n = this.#accLen;
    if (n === 0) return;
    this.#accLen = 0;
    if (this.#state !== 'closed') this.#sink!.data(this.#acc!.subarray(0, n));
  }

  /** Delivers the receive queue in stream order; READs the rendezvous at its head. */
  #pump(): void {
    const conn = this.#conn!;
    while (this.#rxq.length && this.#state !== 'closed') {
      const h = this.#rxq[0];
      if (h.kind === 'data') { this.#rxq.shift(); this.#sink!.data(h.bytes); continue; }
      if (h.kind === 'fin') { this.#rxq.shift(); this.#finSeen = true; conn.close().catch(() => {}); return; }
      // deliver finished READs in order, then post more
      while (h.reads.length && h.reads[0].done) {
        const r = h.reads.shift()!;
        h.delivered += r.n;
        this.#sink!.data(r.chunk.buffer.subarray(0, r.n));
        this.#free.push(r.chunk);
        if (this.#isClosed()) return;
      }
      if (h.delivered === h.length) {
        this.#rxq.shift();
        rdmaStats.rendezvousReceived++;
        rdmaStats.rendezvousBytes += h.length;
        const f = Buffer.alloc(DONE_LEN);
        f[0] = K_RDV_DONE;
        f.writeUInt32LE(h.id, 4);
        this.#post([f]);
        continue;
      }
      if (!this.#pool) {
        try {
          this.#pool = conn.device.pool(RDV_CHUNK, RDV_READS, { remoteAccess: false }); // READ targets: local access only
        } catch (e) { this.#fail(e as Error); return; }
        for (let i = 0; i < RDV_READS; i++) this.#free.push(this.#pool.alloc()!);
      }
      while (h.posted < h.length && this.#free.length) {
        const chunk = this.#free.pop()!;
        const n = Math.min(RDV_CHUNK, h.length - h.posted);
        const r: Read = { chunk, n, done: false };
        const remote = { addr: h.addr + BigInt(h.posted), rkey: h.rkey };
        h.posted += n;
        h.reads.push(r);
        conn.read(chunk.buffer, remote, n).then(() => { r.done = true; this.#pump(); }, (e: Error & { code?: string }) => {
          if (e.code === 'NEXIO_ERR_RDMA_SQ_FULL') {
            // the send queue is shared with SENDs: try again shortly
            h.posted -= n; h.reads.splice(h.reads.indexOf(r), 1); this.#free.push(chunk);
            setTimeout(() => this.#pump(), 1);
            return;
          }
          this.#fail(e);
        });
      }
      return;
    }
  }

  #protocol(msg: string): void {
    rdmaStats.protocolErrors++;
    channels.lane.publish({ event: 'protocol-error', uri: `rdma://${this.remote}`, error: msg });
    this.#fail(protocolError(msg));
  }

  #fail(err: Error): void {
    if (this.#state === 'closed') return;
    this.#err ??= err;
    if (this.#conn) this.#conn.close({ timeoutMs: 0 }).catch(() => {});
    else this.#closed();
  }

  /** The connection is gone (or never came): free, then tell the sink once. */
  #closed(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    clearTimeout(this.#endTimer);
    for (const e of this.#out.values()) e.refs--;
    this.#out.clear();
    this.#rxq = [];
    this.#accLen = 0;
    if (this.#pool && this.#conn) { try { this.#conn.device.deregister(this.#pool.memory as Buffer); } catch { /* device closed */ } }
    this.#pool = undefined;
    this.#free = [];
    lanes.delete(this);
    rdmaStats.lanesClosed++;
    if (this.#conn) release(); // connect failures released already
    this.#report();
  }

  #report(): void {
    if (this.#done || !this.#sink) return;
    this.#done = true;
    const orderly = this.#finSeen || this.#destroyed || (this.#ended && !this.#err);
    let err = this.#err;
    if (!err && !orderly) err = new NexioError('NEXIO_ERR_TRANSPORT', `rdma ${this.remote}: the peer disconnected`, 20);
    if (err && !(err instanceof NexioError)) {
      err = new NexioError((err as { code?: string }).code === 'NEXIO_ERR_RDMA_UNAVAILABLE' ? 'NEXIO_ERR_RDMA_UNAVAILABLE' : 'NEXIO_ERR_TRANSPORT',
        `rdma ${this.remote}: ${err.message}`, 20, { cause: err });
    }
    this.#sink.closed(err);
  }
}

function pushData(frames: Uint8Array[], bytes: Uint8Array): void {
  for (let off = 0; off < bytes.length; off += DATA_MAX) {
    const n = Math.min(DATA_MAX, bytes.length - off);
    const f = Buffer.allocUnsafe(n + 1);
    f[0] = K_DATA;
    f.set(bytes.subarray(off, off + n), 1);
    frames.push(f);
  }
}

/** Live lanes of this thread (tests: fault injection). */
export const lanes = new Set<RdmaLane>();

function hostPort(uri: URL): { host: string; port: number } {
  const port = Number(uri.port);
  if (!uri.hostname || !uri.port || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InvalidArgumentError(`rdma portal needs host and port: ${uri.href}`);
  }
  return { host: uri.hostname.replace(/^\[|\]$/g, ''), port };
}

async function numeric(host: string): Promise<string> {
  return net.isIP(host) ? host : (await dns.promises.lookup(host)).address;
}

/** The transport, once the addon loads (throws NEXIO_ERR_RDMA_UNAVAILABLE otherwise). */
export function loadRdma(): Transport {
  load();
  try {
    acquire(); // the cm event channel needs /dev/infiniband/rdma_cm: fail at connect/listen, not after a timeout
  } catch (e) {
    throw new NexioError('NEXIO_ERR_RDMA_UNAVAILABLE', `rdma:// is unavailable: ${(e as Error).message}; ` +
      'load rdma_ucm and add an RDMA device (rdma link add rxe0 type rxe netdev IFACE for soft-RoCE)', 0, { cause: e });
  }
  release();
  return rdma;
}

export const rdma: Transport = {
  scheme: 'rdma',
  caps: { stream: true, rendezvous: true },

  connect(uri: URL, sink: LaneSink): Lane {
    const { host, port } = hostPort(uri);
    const lane = new RdmaLane(`${host}:${port}`, false, sink);
    let ctx: Native.RdmaContext;
    try {
      ctx = acquire();
    } catch (e) {
      queueMicrotask(() => lane.connectFailed(e as Error));
      return lane;
    }
    ctx.connect({ host, port, privateData: PDATA, timeoutMs: CONNECT_TIMEOUT_MS, qp: QP }).then(
      (conn) => lane.attach(conn),
      (err: Error) => { release(); lane.connectFailed(err); });
    return lane;
  },

  async listen(uri: URL, accept: (bind: (sink: LaneSink) => void, lane: Lane) => void): Promise<Listener> {
    const { host, port } = hostPort(uri);
    const addr = await numeric(host);
    const ctx = acquire();
    let l: Native.RdmaListener;
    try {
      l = ctx.listen({ host: addr, port }, (req) => {
        if (req.privateData.toString() !== PDATA) { req.reject('nexio: expected ' + PDATA); return; }
        // counted from the accept: release() runs when the connection closes (or fails to come up)
        users++;
        req.accept(null, QP).then((conn) => {
          const lane = new RdmaLane(`${conn.remoteAddress}:${conn.remotePort}`, true);
          lane.attach(conn);
          accept((sink) => lane.bind(sink), lane);
        }, () => release());
      });
    } catch (e) {
      release();
      const err = e as Error & { code?: string };
      throw new NexioError(err.code ?? 'NEXIO_ERR_TRANSPORT', `rdma listen on ${addr}:${port}: ${err.message}`, 20, { cause: e });
    }
    const bound = new URL(uri.href);
    bound.port = String(l.port);
    let closed = false;
    return {
      uri: bound.href,
      close: async () => {
        if (closed) return;
        closed = true;
        await l.close();
        release();
      },
    };
  },
};
