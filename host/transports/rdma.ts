// rdma://host:port/resource — one RC queue pair per lane, set up through
// rdma_cm (native/index.js). Same contract as tcp://: a lane is an ordered
// byte stream that the core may split anywhere; every protocol decision
// (reliability, credits, failover) stays in the core.
//
// Wire (transport level, v2). Every SEND carries one frame; byte 0 is its kind:
//
//   DATA     [1][stream bytes, 1 .. recvSize-1]
//   FIN      [4]                                                     orderly end
//
// (Kinds 2 and 3 were v1's transport-level rendezvous descriptors; they are
// refused now.) The connect's private data is "nexio-rdma/2": anything else
// is rejected.
//
// Sending. Lane.write(bytes, ext, rdvAt) cuts bytes (a core batch, up to
// 64 KiB) into DATA frames that fit a receive buffer (16 KiB) and posts them
// as one work-request list; frames up to the QP's inline limit go inline,
// larger ones through the addon's registered send slots. When the send queue
// or the slots are full the addon keeps the rest in order and emits 'drain';
// that queue is bounded by the core's credit windows, so nothing else
// bounds it here.
//
// Rendezvous (docs/protocol.md §9). The core sends an ext payload of at
// least RDV_THRESHOLD (64 KiB) bytes on this transport as an F_RDV frame:
// the frame ends in a 16-byte descriptor at rdvAt and no payload follows on
// the stream. write() makes the payload (the caller's Buffer, which the
// context keeps until the peer acked the message) readable by the peer and
// writes addr and rkey into the descriptor, without registering memory on
// the JS thread: a Buffer registered before (a cache keyed by its
// ArrayBuffer: the same application Buffer sent again costs nothing) goes as
// it is; a first-seen one up to STAGE_MAX (256 KiB) is copied into a
// registered staging arena; a larger one is registered on the libuv thread
// pool, and the lane holds that write and every later one (FIN included) in
// order until it is done. What it advertised is pinned until the context
// unpins it (the core released the payload: acked) or the lane ends;
// unpinned registrations are evicted LRU above REG_CACHE_BYTES. The receiving context calls read(): READs of RDV_CHUNK
// (64 KiB), RDV_READS in flight, into a small registered staging pool (no
// allocation by the peer's declared length), each copied into the
// destination at its offset. Payloads below the threshold follow their frame
// on the stream as DATA frames, like tcp://.
//
// Failure. A failed completion (QP error), a DISCONNECTED without FIN, or
// DEVICE_REMOVAL ends the lane with sink.closed(err), once; FIN then
// DISCONNECTED is an orderly end, closed(). Bytes that do not parse as
// frames end the lane with NEXIO_ERR_PROTOCOL. destroy() tears down the QP
// then the cm id (the addon's reverse order).
//
// Liveness: read() reports each READ that lands (progress), and the context
// tells the core the lane is alive, as for ext bytes on a stream.
//
// Ownership: the bytes given to sink.data() are a scratch buffer, valid
// during the call only (the context copies).

import * as dns from 'node:dns';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Transport, Lane, LaneSink, Listener } from './transport';
import { InvalidArgumentError, NexioError } from '../errors';
import { channels } from '../diagnostics';
import type * as Native from '../../native/index';

/** Ext payloads at or above this many bytes go by RDMA READ; below, in DATA frames. */
// (At least 8 KiB: Node's pooled Buffers, whose ArrayBuffer other data shares, are under 4 KiB.)
export const RDV_THRESHOLD = Math.max(8192, Number(process.env.NEXIO_RDMA_RDV_THRESHOLD) || 64 * 1024);
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
/**
 * Registration stays off the lane's write (the JS thread): a rendezvous source seen for the first
 * time is copied into a registered staging arena when it fits STAGE_MAX (measured in the lab: up to
 * 256 KiB a copy costs less than ibv_reg_mr + ibv_dereg_mr; native/README.md), else registered on
 * the libuv thread pool while the lane holds that write and every later one, in order.
 * NEXIO_RDMA_STAGE_MAX=0 turns staging off; NEXIO_RDMA_REG=sync registers on the JS thread as
 * before (lab comparisons only).
 */
const STAGE_UNIT = 64 * 1024;
const STAGE_MAX = envBytes('NEXIO_RDMA_STAGE_MAX', 256 * 1024);
const STAGE_BYTES = Math.max(STAGE_MAX, envBytes('NEXIO_RDMA_STAGE_BYTES', 4 * 1024 * 1024));
const REG_SYNC = process.env.NEXIO_RDMA_REG === 'sync';

function envBytes(name: string, def: number): number {
  const v = Number(process.env[name]);
  return process.env[name] !== undefined && Number.isInteger(v) && v >= 0 ? v : def;
}
const PDATA = 'nexio-rdma/2';
const CONNECT_TIMEOUT_MS = 10000;
const END_TIMEOUT_MS = 2000;
const QP: Native.QueuePairOptions = { recvCount: 64, recvSize: 16384, sendCount: 64, sendSize: 16384, rdmaDepth: 16 };
/** Default spin ceiling of adaptive polling (µs): a NIC's round trip is a few µs, a wake-up some 40. */
const SPIN_US = 50;

/**
 * Completion polling, from the portal URI's `poll` query parameter (docs/api.md, "rdma://"):
 * `adaptive` (default: after completions, poll up to a budget that halves when a spin finds
 * nothing and doubles, up to 50 µs, when it finds a completion), `event` (sleep on the
 * completion channel at once), `spin:N` (always poll N µs after completions, 1..100000).
 * Never while idle: a spin only follows completions.
 */
export function pollOptions(uri: URL): Native.QueuePairOptions {
  const mode = uri.searchParams.get('poll') ?? 'adaptive';
  if (mode === 'adaptive') return { ...QP, spinUs: SPIN_US, adaptive: true };
  if (mode === 'event') return QP;
  const m = /^spin:(\d+)$/.exec(mode);
  const us = m ? Number(m[1]) : NaN;
  if (!Number.isInteger(us) || us < 1 || us > 100000) {
    throw new InvalidArgumentError(`rdma poll must be adaptive, event or spin:N (N µs, 1..100000), not '${mode}': ${uri.href}`);
  }
  return { ...QP, spinUs: us };
}
const DATA_MAX = 16384 - 1;

const K_DATA = 1, K_FIN = 4;
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
    const hint = 'apt-get install rdma-core libibverbs-dev librdmacm-dev ibverbs-providers, then rebuild the addon (`npm rebuild nexio`; in a clone: npm run build:native)';
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
    stages = new WeakMap();
    devices = new Set();
    c.close().catch(() => {});
  });
}

// ---- registration cache for rendezvous sources ----

/**
 * transient: a private copy (the caller's memory could not be registered), deregistered once unpinned.
 * free: a staged copy (units of a staging arena), given back once unpinned.
 */
interface RegEntry { ab: ArrayBufferLike; refs: number; bytes: number; app: boolean; transient?: RegCache; free?: () => void }
interface RegCache { device: Native.RdmaDevice; entries: Map<ArrayBufferLike, RegEntry>; bytes: number }
let regCaches = new WeakMap<Native.RdmaDevice, RegCache>();

/** Counters for tests and benchmarks (this thread). */
export const rdmaStats = {
  lanesOpened: 0, lanesClosed: 0, rendezvousSent: 0, rendezvousReceived: 0, rendezvousBytes: 0,
  registrations: 0, registrationHits: 0, registrationEvictions: 0, inlineExt: 0, protocolErrors: 0,
  /** Bytes of registered rendezvous sources some lane still needs (the peer has not acked them). */
  pinnedBytes: 0,
  /** Rendezvous sources copied into a staging arena (first seen, at most STAGE_MAX bytes). */
  staged: 0,
  /** Registrations run on the libuv thread pool for a lane's write (the lane held its writes meanwhile). */
  registrationsAsync: 0,
  /** Registrations run on the JS thread by a lane's write (NEXIO_RDMA_REG=sync only). */
  registrationsSync: 0,
};

// ---- staging arenas: registered memory for first-seen rendezvous sources up to STAGE_MAX ----

interface Stage { memory: Buffer; keys?: Native.Registration; used: Uint8Array }
let stages = new WeakMap<Native.RdmaDevice, Stage>();

/** The device's arena, once registered (on the thread pool, from the first lane on the device). */
function stageOf(device: Native.RdmaDevice): Stage | undefined {
  if (STAGE_MAX === 0) return undefined;
  let st = stages.get(device);
  if (!st) {
    const stage: Stage = st = { memory: Buffer.alloc(STAGE_BYTES), used: new Uint8Array(Math.ceil(STAGE_BYTES / STAGE_UNIT)) };
    stages.set(device, stage);
    device.registerAsync(stage.memory, { remoteAccess: 'read' }).then((k) => { stage.keys = k; }, () => { /* no staging on this device */ });
  }
  return st.keys ? st : undefined;
}

/** A staged copy of src (first fit of whole units), or undefined when the arena is not ready or full. */
function stageAcquire(device: Native.RdmaDevice, src: Uint8Array): { entry: RegEntry; keys: { addr: bigint; rkey: number } } | undefined {
  if (src.length > STAGE_MAX) return undefined;
  const st = stageOf(device);
  if (!st || !st.keys) return undefined;
  const units = Math.ceil(src.length / STAGE_UNIT);
  const used = st.used;
  for (let i = 0; i + units <= used.length;) {
    let j = 0;
    while (j < units && !used[i + j]) j++;
    if (j < units) { i += j + 1; continue; }
    used.fill(1, i, i + units);
    const off = i * STAGE_UNIT;
    st.memory.set(src, off);
    rdmaStats.staged++;
    const entry: RegEntry = { ab: st.memory.buffer, refs: 0, bytes: units * STAGE_UNIT, app: false, free: () => used.fill(0, i, i + units) };
    return { entry, keys: { addr: st.keys.addr + BigInt(off), rkey: st.keys.rkey } };
  }
  return undefined;
}

/** The device's staging arena is registered (tests). */
export function stagingReady(device: object): boolean {
  return !!stages.get(device as Native.RdmaDevice)?.keys;
}

/** Formats err's stack now: until then V8 keeps the stack's receivers (the lane, its connection, rings) alive. */
function formatted<E extends Error>(err: E): E {
  void err.stack;
  return err;
}

function pin(e: RegEntry, n: number): void {
  if (e.refs === 0 && n > 0) rdmaStats.pinnedBytes += e.bytes;
  e.refs += n;
  if (e.refs === 0 && n < 0) {
    rdmaStats.pinnedBytes -= e.bytes;
    e.free?.();
    const c = e.transient;
    if (c && c.entries.get(e.ab) === e) {
      try { c.device.deregister(e.ab as ArrayBuffer); } catch { /* device closed */ }
      c.entries.delete(e.ab);
      c.bytes -= e.bytes;
    }
  }
}

function cacheOf(device: Native.RdmaDevice): RegCache {
  let c = regCaches.get(device);
  if (!c) {
    regCaches.set(device, c = { device, entries: new Map(), bytes: 0 });
    devices.add(device);
    stageOf(device); // its staging arena registers on the thread pool meanwhile
    // a device seen for the first time: the application's registrations go on it, on the thread pool
    // (a write from one of them meanwhile waits for the same registration)
    for (const ab of appRegs.keys()) {
      device.registerAsync(new Uint8Array(ab), { remoteAccess: 'read' }).then(() => {
        if (!appRegs.has(ab) || regCaches.get(device) !== c) return;
        try { regAcquire(device, new Uint8Array(ab)); } catch { /* registered at first send */ }
      }, () => { /* registered at first send */ });
    }
  }
  return c;
}

function regAcquire(device: Native.RdmaDevice, buf: Uint8Array): { entry: RegEntry; keys: Native.Registration } {
  const c = cacheOf(device);
  const ab = buf.buffer;
  const keys = device.register(buf, { remoteAccess: 'read' }); // cached by the addon when already registered
  let e = c.entries.get(ab);
  if (e) {
    rdmaStats.registrationHits++;
    c.entries.delete(ab); // most recently used last
  } else {
    e = { ab, refs: 0, bytes: ab.byteLength, app: appRegs.has(ab) };
    rdmaStats.registrations++;
    c.bytes += e.bytes;
  }
  c.entries.set(ab, e);
  if (c.bytes > REG_CACHE_BYTES) {
    for (const [k, x] of c.entries) {
      if (c.bytes <= REG_CACHE_BYTES) break;
      if (x.refs > 0 || x.app || x === e) continue;
      device.deregister(k as ArrayBuffer);
      c.entries.delete(k);
      c.bytes -= x.bytes;
      rdmaStats.registrationEvictions++;
    }
  }
  return { entry: e, keys };
}

// ---- application registrations (nexio.register) ----

/** ArrayBuffers the application registered: handles held on each. */
const appRegs = new Map<ArrayBufferLike, number>();
/** Devices this thread has a registration cache on (while the rdma context is open). */
let devices = new Set<Native.RdmaDevice>();

/** What register() returns: keeps the memory registered until release(). */
export interface Registration {
  /** The memory, as given. */
  readonly buffer: ArrayBuffer | ArrayBufferView;
  /** RDMA devices it is registered on now (it goes on others as lanes reach them); [] without rdma. */
  readonly devices: string[];
  /** Lets the registration go (idempotent): the cache may then deregister it. */
  release(): void;
}

/**
 * Registers application memory for rendezvous sends on every RDMA device
 * this thread's lanes use, now and as lanes reach devices (a device is
 * opened by the first rdma lane on it, and closed with the last), and
 * keeps it registered, never evicted, until release(): an ext payload in
 * this memory goes by READ with no registration on the send path and no
 * copy. It does not hold the process open. With no rdma lane (no addon, no
 * device, tcp:// only) it registers nothing yet (devices: []); sends work
 * the same over the transports there are.
 */
export function registerMemory(buffer: ArrayBuffer | ArrayBufferView): Registration {
  const ab = buffer instanceof ArrayBuffer ? buffer : (buffer as ArrayBufferView)?.buffer;
  if (!ab || !(ab instanceof ArrayBuffer) || ab.byteLength === 0) {
    throw new InvalidArgumentError('register() takes a non-empty ArrayBuffer or a view of one (not a SharedArrayBuffer)');
  }
  appRegs.set(ab, (appRegs.get(ab) ?? 0) + 1);
  const names: string[] = [];
  for (const d of devices) {
    try {
      regAcquire(d, new Uint8Array(ab)).entry.app = true;
      names.push(d.name);
    } catch (e) {
      unregister(ab);
      const err = e as Error & { code?: string };
      throw new NexioError(err.code ?? 'NEXIO_ERR_RDMA_UNAVAILABLE', `register: ${err.message}`, 0, { cause: e });
    }
  }
  let live = true;
  return {
    buffer,
    devices: names,
    release: () => {
      if (!live) return;
      live = false;
      unregister(ab);
    },
  };
}

/** Application registrations held, by ArrayBuffer (tests). */
export function appRegistrations(): Map<ArrayBufferLike, number> {
  return new Map(appRegs);
}

function unregister(ab: ArrayBufferLike): void {
  const n = (appRegs.get(ab) ?? 1) - 1;
  if (n > 0) { appRegs.set(ab, n); return; }
  appRegs.delete(ab);
  for (const d of devices) {
    const c = regCaches.get(d);
    const e = c?.entries.get(ab);
    if (!c || !e) continue;
    e.app = false;
    if (e.refs === 0) { // nothing in flight from it: deregister now
      try { d.deregister(ab as ArrayBuffer); } catch { /* device closed */ }
      c.entries.delete(ab);
      c.bytes -= e.bytes;
    }
  }
}

// ---- the lane ----

/** One read() in progress: READs posted and landed, copied into `into`. */
interface ReadJob {
  addr: bigint; rkey: number; into: Buffer; posted: number; landed: number;
  /** Offsets of pieces to post again (the send queue was full). */
  retry: number[];
  done: (err: Error | null) => void; progress?: (bytes: number) => void;
}

function protocolError(msg: string): NexioError {
  return new NexioError('NEXIO_ERR_PROTOCOL', `rdma lane: ${msg}`, 1);
}

export class RdmaLane implements Lane {
  readonly remote: string;
  /** True for the lane a listener accepted. */
  readonly accepted: boolean;
  #sink: LaneSink | undefined;
  #conn: Native.RdmaConnection | undefined;
  #pre: [Uint8Array, Uint8Array | undefined, number | undefined][] = [];
  #state: 'connecting' | 'open' | 'ending' | 'closed' = 'connecting';
  #done = false;            // sink.closed() was called
  #destroyed = false;
  #ended = false;           // end() was called
  #finSeen = false;
  #err: Error | undefined;
  #finPending = false;      // FIN came while READs were in flight: disconnect after them
  #job: ReadJob | undefined;
  #pool: Native.BufferPool | undefined;
  #free: Native.PoolChunk[] = [];
  /** Rendezvous sources this lane made readable, pinned until unpin() or the lane's end. */
  #pinned = new Map<Uint8Array, RegEntry[]>(); // per payload, one entry per rendezvous write
  #endTimer: NodeJS.Timeout | undefined;
  /** Writes waiting (in order) for a registration on the thread pool; undefined when none runs. */
  #held: (() => void)[] | undefined;
  /** Private copies of rendezvous sources the device refused as they were (registered meanwhile). */
  #copies: Map<Uint8Array, Buffer> | undefined;
  /** Sources whose registration a held write started early (#prefetch). */
  #prefetched: WeakSet<Uint8Array> | undefined;
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
  /**
   * The addon's connection, a native/index.d.ts RdmaConnection (tests: stats, fault injection).
   * Declared `object`, as attach()'s parameter: the emitted declarations (dist/host/transports/rdma.d.ts)
   * must not name native/'s types, whose relative path from dist/ is not the one from host/.
   */
  get connection(): object | undefined { return this.#conn; }

  bind(sink: LaneSink): void {
    this.#sink = sink;
    const e = this.#early;
    this.#early = undefined;
    if (e) for (const b of e) this.#onFrame(b, 0, b.length);
    if (this.#state === 'closed') this.#report();
  }

  /** The connection is up (client: connected; server: accepted and established). */
  attach(connection: object): void {
    const conn = connection as Native.RdmaConnection;
    this.#conn = conn;
    try { cacheOf(conn.device); } catch { /* the application's registrations go on at first send */ }
    if (this.#destroyed) { conn.close({ timeoutMs: 0 }).catch(() => {}); this.#closed(); return; }
    this.#state = 'open';
    conn.on('error', (err: Error) => { this.#err ??= err; });
    conn.on('close', () => this.#closed());
    conn.onFrame = (ring, off, len) => this.#onFrame(ring, off, len);
    if (!this.accepted) this.#sink?.connected();
    const pre = this.#pre;
    this.#pre = [];
    for (const [b, x, at] of pre) this.write(b, x, at);
  }

  connectFailed(err: Error): void {
    this.#err = err;
    this.#closed();
  }

  write(bytes: Uint8Array, ext?: Uint8Array, rdvAt?: number): void {
    if (this.#state === 'connecting') { if (!this.#destroyed) this.#pre.push([bytes, ext, rdvAt]); return; }
    if (this.#state !== 'open') return;
    this.#send(bytes, ext, rdvAt);
  }

  /** Posts a write now, or queues it behind the registration the lane waits for (order kept). */
  #send(bytes: Uint8Array, ext?: Uint8Array, rdvAt?: number): void {
    if (this.#held) {
      if (ext && rdvAt !== undefined) this.#prefetch(ext);
      this.#held.push(() => this.#send(bytes, ext, rdvAt));
      return;
    }
    const conn = this.#conn;
    if (!conn || conn.state !== 'open') return;
    if (ext && rdvAt !== undefined) {
      // F_RDV: the payload stays where it is (or in a staged copy); the frame says where
      const r = this.#rendezvous(conn, bytes, ext, rdvAt);
      if (r === false) return;
      if (r !== true) {
        // ext is being registered on the thread pool: this write and every later one wait for it
        this.#held = [];
        r.then(() => this.#resume(() => this.#send(bytes, ext, rdvAt)), (e: Error) => {
          this.#held = undefined;
          this.#fail(e);
        });
        return;
      }
      ext = undefined;
    }
    const frames: Uint8Array[] = [];
    pushData(frames, bytes);
    if (ext && ext.length) { rdmaStats.inlineExt++; pushData(frames, ext); }
    if (frames.length) this.#post(frames);
  }

  /** The registration the lane waited for is done: the held write first, then the others in order. */
  #resume(first: () => void): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    if (this.#state === 'closed') return;
    first();
    // one that has to wait again queues itself, and so every one after it (#send checks #held)
    for (const f of held) f();
  }

  /**
   * Makes ext readable by the peer and fills in the descriptor at bytes[at, at + 16): true when
   * done, false when the lane failed, or a promise when ext must be registered first (off the JS
   * thread; the caller holds the lane's writes until it settles, then calls this again).
   */
  #rendezvous(conn: Native.RdmaConnection, bytes: Uint8Array, ext: Uint8Array, at: number): boolean | Promise<unknown> {
    if (at < 0 || at + 16 > bytes.length) { this.#fail(new NexioError('NEXIO_ERR_INTERNAL', `rdma lane: descriptor at ${at} of ${bytes.length}`, 1)); return false; }
    const dev = conn.device;
    let reg: { entry: RegEntry; keys: { addr: bigint; rkey: number } } | undefined;
    const copy = this.#copies?.get(ext);
    try {
      if (copy) {
        // ext could not be registered as it is: its private copy was registered meanwhile
        this.#copies!.delete(ext);
        reg = regAcquire(dev, copy);
        reg.entry.transient = cacheOf(dev);
      } else if (dev.isRegistered(ext)) {
        reg = regAcquire(dev, ext); // cached: no registration
      } else if ((reg = stageAcquire(dev, ext))) {
        // first seen and small enough: a copy into the registered arena
      } else if (REG_SYNC) {
        rdmaStats.registrationsSync++;
        reg = regAcquire(dev, ext);
      } else {
        if (!this.#prefetched?.has(ext)) rdmaStats.registrationsAsync++;
        return this.#registerOff(dev, ext);
      }
    } catch (e) {
      this.#fail(e as Error);
      return false;
    }
    const p = this.#pinned.get(ext);
    if (p) p.push(reg.entry);
    else this.#pinned.set(ext, [reg.entry]);
    pin(reg.entry, 1);
    const dv = new DataView(bytes.buffer, bytes.byteOffset + at, 16);
    dv.setBigUint64(0, reg.keys.addr, true); // the view's own address (the whole ArrayBuffer is registered)
    dv.setUint32(8, reg.keys.rkey, true);
    dv.setUint32(12, 0, true);
    rdmaStats.rendezvousSent++;
    return true;
  }

  /**
   * A write queued behind a registration whose source needs one too: its registration starts now
   * (the thread pool runs several at once) instead of when its turn comes; the write still goes in
   * its turn. Undone if the lane closes first (nobody else uses it).
   */
  #prefetch(ext: Uint8Array): void {
    const dev = this.#conn?.device;
    if (!dev || REG_SYNC || ext.length <= STAGE_MAX || !(ext.buffer instanceof ArrayBuffer) || dev.isRegistered(ext)) return;
    const seen = this.#prefetched ??= new WeakSet();
    if (seen.has(ext)) return;
    seen.add(ext);
    rdmaStats.registrationsAsync++;
    dev.registerAsync(ext, { remoteAccess: 'read' }).then(() => {
      if (this.#state === 'closed' && !appRegs.has(ext.buffer) && !regCaches.get(dev)?.entries.has(ext.buffer)) {
        try { dev.deregister(ext); } catch { /* device closed */ }
      }
    }, () => { /* its write registers it again, or copies it, in its turn */ });
  }

  /**
   * Registers ext on the thread pool. Memory the device refuses as it is (a SharedArrayBuffer, a
   * view it cannot pin) goes by a private copy, registered the same way and deregistered once the
   * peer has it (unpinned). Registered for a lane that closed meanwhile: undone (nobody uses it).
   */
  #registerOff(dev: Native.RdmaDevice, ext: Uint8Array): Promise<unknown> {
    const keep = (): void => {
      if (this.#state === 'closed' && !appRegs.has(ext.buffer) && !regCaches.get(dev)?.entries.has(ext.buffer)) {
        try { dev.deregister(ext); } catch { /* device closed */ }
      }
    };
    const viaCopy = (): Promise<unknown> => {
      const copy = Buffer.from(ext);
      (this.#copies ??= new Map()).set(ext, copy);
      return dev.registerAsync(copy, { remoteAccess: 'read' }).then(() => {
        if (this.#state === 'closed') { this.#copies?.delete(ext); try { dev.deregister(copy); } catch { /* device closed */ } }
      });
    };
    if (!(ext.buffer instanceof ArrayBuffer)) return viaCopy();
    return dev.registerAsync(ext, { remoteAccess: 'read' }).then(keep, (e: Error & { code?: string }) => {
      if (e.code === 'NEXIO_ERR_RDMA_CLOSED') throw e;
      return viaCopy();
    });
  }

  /** The context is done with one rendezvous of ext on this lane (the peer acked it): one unpin per write. */
  unpin(ext: Uint8Array): void {
    const p = this.#pinned.get(ext);
    const e = p?.shift();
    if (!e) return;
    if (p!.length === 0) this.#pinned.delete(ext);
    pin(e, -1);
  }

  /** READs into.length bytes of the peer's (addr, rkey) into `into` (one read at a time per lane). */
  read(addr: bigint, rkey: number, into: Buffer, done: (err: Error | null) => void, progress?: (bytes: number) => void): void {
    const conn = this.#conn;
    if (this.#job || !conn || (this.#state !== 'open' && this.#state !== 'ending')) {
      const err = this.#job
        ? new NexioError('NEXIO_ERR_INTERNAL', 'rdma lane: a read is already in progress', 1)
        : new NexioError('NEXIO_ERR_TRANSPORT', `rdma ${this.remote}: the lane is ${this.#state}`, 20);
      queueMicrotask(() => done(err));
      return;
    }
    if (!this.#pool) {
      try {
        this.#pool = conn.device.pool(RDV_CHUNK, RDV_READS, { remoteAccess: false }); // READ targets: local access only
      } catch (e) { queueMicrotask(() => { done(e as Error); this.#fail(e as Error); }); return; } // not inside the caller's event read
      for (let i = 0; i < RDV_READS; i++) this.#free.push(this.#pool.alloc()!);
    }
    this.#job = { addr, rkey, into, posted: 0, landed: 0, retry: [], done, progress };
    this.#pumpReads();
  }

  #pumpReads(): void {
    const job = this.#job;
    const conn = this.#conn;
    if (!job || !conn) return;
    if (job.landed === job.into.length) {
      this.#job = undefined;
      rdmaStats.rendezvousReceived++;
      rdmaStats.rendezvousBytes += job.landed;
      job.done(null);
      if (this.#finPending && !this.#job) this.#disconnect();
      return;
    }
    const len = job.into.length;
    while (this.#free.length && (job.retry.length || job.posted < len)) {
      const chunk = this.#free.pop()!;
      const at = job.retry.length ? job.retry.shift()! : job.posted;
      const n = Math.min(RDV_CHUNK, len - at);
      if (at === job.posted) job.posted += n;
      conn.read(chunk.buffer, { addr: job.addr + BigInt(at), rkey: job.rkey }, n).then(() => {
        if (this.#job !== job) return;
        chunk.buffer.copy(job.into, at, 0, n);
        this.#free.push(chunk);
        job.landed += n;
        job.progress?.(n);
        this.#pumpReads();
      }, (e: Error & { code?: string }) => {
        if (this.#job !== job) return;
        if (e.code === 'NEXIO_ERR_RDMA_SQ_FULL') {
          // the send queue is shared with SENDs: post this piece again shortly
          this.#free.push(chunk);
          job.retry.push(at);
          setTimeout(() => this.#pumpReads(), 1);
          return;
        }
        this.#endJob(e);
        this.#fail(e);
      });
    }
  }

  /** Ends the read in progress with err (the lane is going). */
  #endJob(err: Error): void {
    const job = this.#job;
    if (!job) return;
    this.#job = undefined;
    job.done(formatted(err));
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
    // FIN goes after everything queued (held writes too); the peer disconnects when it has read it.
    this.#sendFin();
    this.#endTimer = setTimeout(() => this.#conn?.close({ timeoutMs: 0 }).catch(() => {}), END_TIMEOUT_MS);
  }

  #sendFin(): void {
    if (this.#held) { this.#held.push(() => this.#sendFin()); return; }
    if (this.#conn?.state === 'open') this.#post([FIN_FRAME]);
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
    if (kind === K_DATA) {
      if (len > 1) this.#accumulate(ring, off + 1, len - 1);
      return;
    }
    this.#flushAcc(); // what came before this frame goes first
    if (kind === K_FIN) {
      if (len !== 1) { this.#protocol(`FIN frame of ${len} bytes`); return; }
      this.#finSeen = true;
      if (this.#job) this.#finPending = true; // the peer's memory stays readable until we disconnect
      else this.#disconnect();
      return;
    }
    this.#protocol(`unknown frame kind ${kind} (${len} bytes)`);
  }

  #disconnect(): void {
    this.#finPending = false;
    this.#conn?.close().catch(() => {});
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
    this.#held = undefined; // writes held behind a registration go nowhere now: the core resends them elsewhere
    this.#copies = undefined;
    clearTimeout(this.#endTimer);
    for (const p of this.#pinned.values()) for (const e of p) pin(e, -1);
    this.#pinned.clear();
    this.#endJob(this.#err ?? new NexioError('NEXIO_ERR_TRANSPORT', `rdma ${this.remote}: the lane closed`, 20));
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
      // The device's own verdicts keep their typed code (port down, device or QP fatal, the
      // addon missing); other addon errors are transport errors with the addon's as cause.
      const code = (err as { code?: string }).code ?? '';
      err = new NexioError(KEPT_CODES.has(code) ? code : 'NEXIO_ERR_TRANSPORT', `rdma ${this.remote}: ${err.message}`, 20, { cause: err });
    }
    this.#sink.closed(err && formatted(err));
  }
}

/** Addon error codes a lane's end reports as they are (docs/api.md, rdma://). */
const KEPT_CODES = new Set([
  'NEXIO_ERR_RDMA_UNAVAILABLE', 'NEXIO_ERR_RDMA_PORT_DOWN', 'NEXIO_ERR_RDMA_DEVICE_FATAL', 'NEXIO_ERR_RDMA_QP_FATAL',
]);

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
  caps: { stream: true, rendezvous: true, rendezvousMin: RDV_THRESHOLD },

  check(uri: URL): void {
    hostPort(uri);
    pollOptions(uri);
  },

  connect(uri: URL, sink: LaneSink): Lane {
    const { host, port } = hostPort(uri);
    const qp = pollOptions(uri);
    const lane = new RdmaLane(`${host}:${port}`, false, sink);
    let ctx: Native.RdmaContext;
    try {
      ctx = acquire();
    } catch (e) {
      queueMicrotask(() => lane.connectFailed(e as Error));
      return lane;
    }
    ctx.connect({ host, port, privateData: PDATA, timeoutMs: CONNECT_TIMEOUT_MS, qp }).then(
      (conn) => lane.attach(conn),
      (err: Error) => { release(); lane.connectFailed(err); });
    return lane;
  },

  async listen(uri: URL, accept: (bind: (sink: LaneSink) => void, lane: Lane) => void): Promise<Listener> {
    const { host, port } = hostPort(uri);
    const qp = pollOptions(uri);
    const addr = await numeric(host);
    const ctx = acquire();
    let l: Native.RdmaListener;
    try {
      l = ctx.listen({ host: addr, port }, (req) => {
        if (req.privateData.toString() !== PDATA) { req.reject('nexio: expected ' + PDATA); return; }
        // counted from the accept: release() runs when the connection closes (or fails to come up)
        users++;
        req.accept(null, qp).then((conn) => {
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
