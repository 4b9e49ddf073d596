// The host side of the protocol core: compiles the WebAssembly module once
// per process, makes one instance per context, and drives it. Views over the
// core's memory are cached and refreshed only when memory grows (a grown
// memory detaches the old buffer, so byteLength 0 is the signal).
//
// Drive the core in batches: feed a whole read chunk with rx(), then drain
// pollEvents() and pollTransmit() once per event-loop turn, not per message.

import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { CoreTrapError, InvalidArgumentError } from './errors';
import { KEY_SIZE } from './wire';
import type { Recorder } from './record';

export interface CoreConfig {
  maxSessions: number;
  maxLanes: number;
  /** Messages in flight per session and direction (power of two). */
  windowMsgs: number;
  /** Bytes in flight per session and direction (power of two, >= 32 KiB). */
  windowBytes: number;
  /** Outstanding requests per session. */
  maxRequests: number;
  keepaliveMs: number;
  /** How long a session with no lane waits to resume before it fails. */
  resumeMs: number;
  helloTimeoutMs: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  /** Seed for session ids and reconnect jitter. */
  seed: number;
  eventCap: number;
  /**
   * Zero-copy receive: delivered messages stay in the receive ring, unacked,
   * until release(session, seq); event pointers stay valid until then.
   */
  holdRx?: boolean;
  /**
   * Largest message (header + data) a peer may send this core, in bytes; a
   * larger one is a protocol error (the lane closes) found before anything
   * is allocated, and a larger local send is refused. Peers should agree.
   */
  maxMessageBytes: number;
  /**
   * A server core whose application takes no one-way messages: its
   * sessions' ACCEPT says so, so the client's send() fails at once with
   * NEXIO_ERR_NO_HANDLER, and a ONEWAY that comes anyway is a protocol error.
   */
  refuseOneway?: boolean;
}

export const defaultConfig: CoreConfig = {
  maxSessions: 1024,
  maxLanes: 4096,
  windowMsgs: 4096,
  windowBytes: 256 * 1024,
  maxRequests: 256,
  keepaliveMs: 1000,
  resumeMs: 10000,
  helloTimeoutMs: 5000,
  backoffMinMs: 20,
  backoffMaxMs: 1000,
  seed: 1,
  eventCap: 4096,
  holdRx: false,
  maxMessageBytes: 64 * 1024 * 1024,
};

const configOrder: (keyof CoreConfig)[] = [
  'maxSessions', 'maxLanes', 'windowMsgs', 'windowBytes', 'maxRequests', 'keepaliveMs',
  'resumeMs', 'helloTimeoutMs', 'backoffMinMs', 'backoffMaxMs', 'seed', 'seed', 'eventCap', 'holdRx',
  'maxMessageBytes', 'refuseOneway',
];

/** The config as the 16 u32 words of the core's config block. */
export function configWords(c: CoreConfig): Uint32Array {
  const w = new Uint32Array(16);
  configOrder.forEach((k, i) => { w[i] = Number(c[k]) >>> 0; });
  w[10] = c.seed >>> 0;
  w[11] = Math.floor(c.seed / 2 ** 32) >>> 0;
  return w;
}

export const enum Ev {
  OPEN_LANE = 1, CLOSE_LANE = 2, SESSION_REQUEST = 3, SESSION_OPEN = 4, SESSION_RESUMED = 5,
  SESSION_REJECTED = 6, SESSION_LOST = 7, SESSION_CLOSED = 8, LANE_UP = 9, LANE_DOWN = 10,
  PROTOCOL_ERROR = 11, REQUEST = 12, MESSAGE = 13, RESPONSE = 14, RECEIPT = 15,
  REQUEST_FAILED = 16, CANCEL = 17, EXT_RX = 18, EXT_RELEASE = 19, DRAIN = 20,
  AUTH_REQUEST = 21, AUTH_CHALLENGE = 22, AUTH_PROOF = 23,
}

export const eventNames: Record<number, string> = {
  1: 'open-lane', 2: 'close-lane', 3: 'session-request', 4: 'session-open', 5: 'session-resumed',
  6: 'session-rejected', 7: 'session-lost', 8: 'session-closed', 9: 'lane-up', 10: 'lane-down',
  11: 'protocol-error', 12: 'request', 13: 'message', 14: 'response', 15: 'receipt',
  16: 'request-failed', 17: 'cancel', 18: 'ext-rx', 19: 'ext-release', 20: 'drain',
  21: 'auth-request', 22: 'auth-challenge', 23: 'auth-proof',
};

/** Message flags (wire.ts). */
export const FLAG_RECEIPT = 0x01;
export const FLAG_EXT = 0x02;
export const FLAG_APP_ERROR = 0x04;
/** Above this many bytes of header + data a payload bypasses WASM memory. */
export const INLINE_MAX = 8192;
export const MAX_APP_HEADER = 4096;
export const EVENT_SIZE = 64;

/** One event, decoded into a reused object: no allocation per event. */
/**
 * A Buffer over core memory, made the way Node makes its own (a Uint8Array
 * whose prototype is Buffer's): Buffer.from(arrayBuffer, offset, length)
 * checks its arguments on every call, and lending two views per message
 * through it was a quarter of a one-way receiver's time. Buffer.isBuffer,
 * instanceof Buffer and every Buffer method hold for it.
 */
class LentBuffer extends Uint8Array {}
Object.setPrototypeOf(LentBuffer.prototype, Buffer.prototype);

export class CoreEvent {
  type = 0; session = 0; lane = 0; code = 0; seq = 0; tag = 0; flags = 0;
  hdrPtr = 0; hdrLen = 0; dataPtr = 0; dataLen = 0; ext = 0; aux = 0; aux64 = 0;
}

/** Input operations, as numbered in record files. */
export const enum Op {
  CONNECT = 1, LANE_ACCEPTED = 2, LANE_UP = 3, LANE_DOWN = 4, RX = 5, EXT_DONE = 6, ACCEPT = 7,
  REJECT = 8, REDIRECT = 9, REQUEST = 10, SEND = 11, RESPOND = 12, CANCEL = 13, CLOSE = 14,
  DESTROY = 15, TIMEOUT = 16, RELEASE = 17, LANE_RENDEZVOUS = 18,
  AUTH_LANE = 19, AUTH_CHALLENGE = 20, AUTH_PROOF = 21, AUTH_PASSED = 22,
}

interface Exports {
  memory: WebAssembly.Memory;
  configPtr(): number; init(): number; stagingPtr(): number; eventsPtr(): number; eventCountPtr(): number;
  eventCapacity(): number; eventOverflow(): number; rxScanSteps(): number;
  connect(uriLen: number, resourceLen: number, attrsLen: number, lanes: number, now: number): number;
  laneAccepted(now: number): number;
  laneUp(h: number, now: number): number;
  laneDown(h: number, code: number, now: number): number;
  laneRendezvous(h: number, minBytes: number, now: number): number;
  rx(h: number, len: number, now: number): number;
  extDone(h: number, now: number): number;
  accept(h: number, portalsLen: number, attrsLen: number, now: number): number;
  reject(h: number, reason: number, msgLen: number, now: number): number;
  redirect(h: number, portalsLen: number, now: number): number;
  authLane(h: number, idLen: number, now: number): number;
  authChallenge(h: number, now: number): number;
  authProof(h: number, now: number): number;
  authPassed(h: number, now: number): number;
  request(h: number, hdrLen: number, dataLen: number, flags: number, timeoutMs: number, ext: number, now: number): number;
  send(h: number, hdrLen: number, dataLen: number, flags: number, ext: number, now: number): number;
  respond(h: number, tag: number, hdrLen: number, dataLen: number, flags: number, ext: number, now: number): number;
  cancel(h: number, tag: number, now: number): number;
  release(h: number, seq: number, now: number): number;
  close(h: number, now: number): number;
  destroy(h: number, now: number): number;
  timeout(now: number): void;
  nextDeadline(): number;
  pollEvents(): number;
  pollTransmit(now: number): number;
  txPtr(): number; txLen(): number; txExt(): number; txExtLen(): number; txRdv(): number;
  sessionInfo(h: number): number;
}

const modules = new Map<string, WebAssembly.Module>();
const EMPTY_BYTES = new Uint8Array(0);

/** The compiled core, once per process (release or debug build). */
// Public signatures name no WebAssembly types: @types/node leaves them to
// lib.dom, so a consumer's strict compile of these declarations would fail.
export function coreModule(debug = false): object {
  const file = path.join(__dirname, '..', '..', 'build', debug ? 'core.debug.wasm' : 'core.wasm');
  let m = modules.get(file);
  if (!m) {
    m = new WebAssembly.Module(readFileSync(file));
    modules.set(file, m);
  }
  return m;
}

let wasiReady: Promise<typeof import('@wasmer/wasi')> | undefined;

export interface CoreOptions {
  /** Record every input and output for replay. */
  recorder?: Recorder;
}

export class Core {
  readonly config: CoreConfig;
  readonly debug: boolean;
  readonly stagingCap = 65536;
  /** Set once the core trapped; every later call throws. */
  trapped: CoreTrapError | undefined;
  /** Called once when the core traps (Context fails its sessions with the error). */
  onTrap: ((e: CoreTrapError) => void) | undefined;
  #x: Exports;
  #u8: Uint8Array;
  #dv: DataView;
  /** The same memory as u32 words: event records are read word by word (little-endian, as WebAssembly is). */
  #u32: Uint32Array;
  #i32: Int32Array;
  #staging: number;
  #events: number;
  #rec: Recorder | undefined;
  #wasi: { getStdoutString(): string } | undefined;
  /** An input ran since the last pollEvents(): only then are there new events. */
  /** Address of the core's queued-event count (eventCountPtr). */
  #evCount: number;
  #fresh = false;

  /**
   * A release core: no imports, nothing outside its own memory. (Core.debugCore()
   * makes the debug build, whose instance comes with a WASI.)
   */
  constructor(config: Partial<CoreConfig> = {}, options: CoreOptions = {}, debug?: { instance: { readonly exports: object }; wasi: { getStdoutString(): string } }) {
    this.config = { ...defaultConfig, ...config };
    this.debug = debug !== undefined;
    const inst = debug ? debug.instance : new WebAssembly.Instance(coreModule(false), {});
    this.#x = inst.exports as unknown as Exports;
    this.#wasi = debug?.wasi;
    this.#u8 = new Uint8Array(0);
    this.#dv = new DataView(new ArrayBuffer(0));
    this.#u32 = new Uint32Array(0);
    this.#i32 = new Int32Array(0);
    this.#staging = 0;
    this.#events = 0;
    this.#evCount = 0;
    this.#start(options);
  }

  /** A debug core: the same protocol, plus a trace written through WASI stdout (captured, no filesystem). */
  static async debugCore(config: Partial<CoreConfig> = {}, options: CoreOptions = {}): Promise<Core> {
    wasiReady ??= import('@wasmer/wasi').then(async (w) => { await w.init(); return w; });
    const w = await wasiReady;
    const wasi = new w.WASI({ args: [], env: {} });
    const instance = wasi.instantiate(coreModule(true), {}) as WebAssembly.Instance;
    return new Core(config, options, { instance, wasi });
  }

  #start(options: CoreOptions): void {
    const x = this.#x;
    const words = configWords(this.config);
    new Uint32Array(x.memory.buffer, x.configPtr(), 16).set(words);
    let r: number;
    try {
      r = x.init();
    } catch (e) {
      // init() allocates every table at once: a trap there is a memory budget the config overran.
      const est = Math.round((this.config.maxSessions * (2 * this.config.windowBytes + this.config.windowMsgs * 96)) / 2 ** 20);
      throw new InvalidArgumentError(`core config needs more memory than WebAssembly gives one context (maxSessions ${this.config.maxSessions} x windows: about ${est} MiB); lower maxSessions or windowBytes`, { cause: e });
    }
    if (r < 0) throw new InvalidArgumentError(`core config rejected: ${JSON.stringify(this.config)}`);
    this.#staging = x.stagingPtr();
    this.#events = x.eventsPtr();
    this.#evCount = x.eventCountPtr();
    if ((this.#events | this.#evCount) & 3) throw new Error('core event records are not 4-byte aligned');
    this.#refresh();
    this.#rec = options.recorder;
    this.#rec?.begin(words, this.debug);
  }

  #refresh(): void {
    const buf = this.#x.memory.buffer;
    this.#u8 = new Uint8Array(buf);
    this.#dv = new DataView(buf);
    this.#u32 = new Uint32Array(buf);
    this.#i32 = new Int32Array(buf);
  }

  /** The core's memory as bytes (refreshed after growth). */
  get memory(): Uint8Array {
    if (this.#u8.byteLength === 0) this.#refresh();
    return this.#u8;
  }

  get memoryBytes(): number {
    return this.#x.memory.buffer.byteLength;
  }

  get recorder(): Recorder | undefined {
    return this.#rec;
  }

  /** Trace lines written by the debug core since the last call. */
  takeTrace(): string {
    return this.#wasi ? this.#wasi.getStdoutString() : '';
  }

  #trap(e: unknown): never {
    if (e instanceof WebAssembly.RuntimeError) {
      const overflow = this.#x.eventOverflow();
      this.trapped = new CoreTrapError(overflow
        ? new Error(`event queue overflow (eventCap ${this.#x.eventCapacity()}): the core stops rather than drop an event`, { cause: e })
        : e);
      this.onTrap?.(this.trapped);
      throw this.trapped;
    }
    throw e;
  }

  #stage(bytes: Uint8Array | undefined, extra?: Uint8Array): void {
    if (this.trapped) throw this.trapped;
    // Empty inputs (a message without header, say) copy nothing: skipping
    // TypedArray.set() for them is measurable on the per-message path.
    let n = 0;
    if (bytes !== undefined && bytes.length !== 0) {
      if (bytes.length > this.stagingCap) throw new InvalidArgumentError(`input of ${bytes.length} bytes exceeds the staging area`);
      this.memory.set(bytes, this.#staging);
      n = bytes.length;
    }
    if (extra !== undefined && extra.length !== 0) {
      if (n + extra.length > this.stagingCap) throw new InvalidArgumentError('input exceeds the staging area');
      this.memory.set(extra, this.#staging + n);
    }
  }

  #input(op: Op, args: number[], bytes: Uint8Array | undefined, extra: Uint8Array | undefined, r: number): number {
    this.#rec?.input(op, args, bytes, extra, r);
    return r;
  }

  #call<T>(f: () => T): T {
    if (this.trapped) throw this.trapped;
    try {
      return f();
    } catch (e) {
      return this.#trap(e);
    }
  }

  // ---- inputs ----

  /** Opens a client session to portal `uri`; the server sees `resource` and `attrs` in its session request. */
  connect(uri: string, resource: string, attrs: Uint8Array, lanes: number, now: number): number {
    this.#fresh = true;
    const b = Buffer.concat([Buffer.from(uri), Buffer.from(resource)]);
    const u = Buffer.byteLength(uri);
    this.#stage(b, attrs);
    const r = this.#call(() => this.#x.connect(u, b.length - u, attrs.length, lanes, now));
    return this.#rec ? this.#input(Op.CONNECT, [u, b.length - u, attrs.length, lanes, now], b, attrs, r) : r;
  }

  laneAccepted(now: number): number {
    this.#fresh = true;
    const r = this.#call(() => this.#x.laneAccepted(now));
    return this.#rec ? this.#input(Op.LANE_ACCEPTED, [now], undefined, undefined, r) : r;
  }

  laneUp(lane: number, now: number): number {
    this.#fresh = true;
    const r = this.#call(() => this.#x.laneUp(lane, now));
    return this.#rec ? this.#input(Op.LANE_UP, [lane, now], undefined, undefined, r) : r;
  }

  laneDown(lane: number, code: number, now: number): number {
    this.#fresh = true;
    const r = this.#call(() => this.#x.laneDown(lane, code, now));
    return this.#rec ? this.#input(Op.LANE_DOWN, [lane, code, now], undefined, undefined, r) : r;
  }
  /** The lane's transport can READ peer memory: EXT payloads of at least minBytes go by rendezvous on it. */
  laneRendezvous(lane: number, minBytes: number, now: number): number {
    this.#fresh = true;
    const r = this.#call(() => this.#x.laneRendezvous(lane, minBytes, now));
    return this.#rec ? this.#input(Op.LANE_RENDEZVOUS, [lane, minBytes, now], undefined, undefined, r) : r;
  }


  /** Feeds up to stagingCap bytes; returns how many the core consumed (see rx in assembly/index.ts). */
  rx(lane: number, chunk: Uint8Array, now: number): number {
    this.#fresh = true;
    const n = Math.min(chunk.length, this.stagingCap);
    const piece = n === chunk.length ? chunk : chunk.subarray(0, n);
    this.#stage(piece);
    let r: number;
    try {
      r = this.#x.rx(lane, n, now);
    } catch (e) {
      this.#trap(e);
    }
    return this.#rec ? this.#input(Op.RX, [lane, n, now], piece, undefined, r) : r;
  }

  extDone(lane: number, now: number): number {
    this.#fresh = true;
    const r = this.#call(() => this.#x.extDone(lane, now));
    return this.#rec ? this.#input(Op.EXT_DONE, [lane, now], undefined, undefined, r) : r;
  }

  /**
   * Accepts the new session asked for on `lane`. `key` is the session key:
   * 16 bytes from a CSPRNG (Context uses crypto.randomFillSync); every later
   * lane of the session must present it. A recording holds it.
   */
  accept(lane: number, key: Uint8Array, portals: string[], attrs: Uint8Array, now: number): number {
    this.#fresh = true;
    if (key.length !== KEY_SIZE) throw new InvalidArgumentError(`a session key is ${KEY_SIZE} bytes, not ${key.length}`);
    const p = Buffer.from(portals.join('\n'));
    const kp = Buffer.concat([key, p]);
    this.#stage(kp, attrs);
    const r = this.#call(() => this.#x.accept(lane, p.length, attrs.length, now));
    return this.#rec ? this.#input(Op.ACCEPT, [lane, p.length, attrs.length, now], kp, attrs, r) : r;
  }

  reject(lane: number, reason: number, message: string, now: number): number {
    this.#fresh = true;
    const m = Buffer.from(message);
    this.#stage(m);
    const r = this.#call(() => this.#x.reject(lane, reason, m.length, now));
    return this.#rec ? this.#input(Op.REJECT, [lane, reason, m.length, now], m, undefined, r) : r;
  }

  redirect(lane: number, portals: string[], now: number): number {
    this.#fresh = true;
    const p = Buffer.from(portals.join('\n'));
    this.#stage(p);
    const r = this.#call(() => this.#x.redirect(lane, p.length, now));
    return this.#rec ? this.#input(Op.REDIRECT, [lane, p.length, now], p, undefined, r) : r;
  }

  // ---- pre-shared keys (assembly/auth.ts): nonces and proofs come from the host ----

  /** Client, before laneUp: the lane proves a pre-shared key; its nonce (32 bytes) and the identity go in its HELLO. */
  authLane(lane: number, nonce: Uint8Array, identity: Uint8Array, now: number): number {
    this.#fresh = true;
    this.#stage(nonce, identity);
    const r = this.#call(() => this.#x.authLane(lane, identity.length, now));
    return this.#rec ? this.#input(Op.AUTH_LANE, [lane, identity.length, now], nonce, identity, r) : r;
  }

  /** Server: answers an auth-request event with the server's nonce (32 bytes). */
  authChallenge(lane: number, nonce: Uint8Array, now: number): number {
    this.#fresh = true;
    this.#stage(nonce);
    const r = this.#call(() => this.#x.authChallenge(lane, now));
    return this.#rec ? this.#input(Op.AUTH_CHALLENGE, [lane, now], nonce, undefined, r) : r;
  }

  /** Client: answers an auth-challenge event: our proof, and the proof the server's ACCEPT must carry. */
  authProof(lane: number, proof: Uint8Array, expected: Uint8Array, now: number): number {
    this.#fresh = true;
    this.#stage(proof, expected);
    const r = this.#call(() => this.#x.authProof(lane, now));
    return this.#rec ? this.#input(Op.AUTH_PROOF, [lane, now], proof, expected, r) : r;
  }

  /** Server: the auth-proof event's proof is right; `proof` is the server's, for its ACCEPT. */
  authPassed(lane: number, proof: Uint8Array, now: number): number {
    this.#fresh = true;
    this.#stage(proof);
    const r = this.#call(() => this.#x.authPassed(lane, now));
    return this.#rec ? this.#input(Op.AUTH_PASSED, [lane, now], proof, undefined, r) : r;
  }

  /**
   * Stages a message's header and, unless FLAG_EXT (or only a length is
   * given), its data. Returns the inline data staged, for the recorder.
   */
  #stageMessage(hdr: Uint8Array, data: Uint8Array | number, flags: number): Uint8Array | undefined {
    this.#fresh = true;
    const inline = (flags & FLAG_EXT) !== 0 || typeof data === 'number' ? undefined : data;
    this.#stage(hdr, inline);
    return inline;
  }

  /**
   * Sends a request. With FLAG_EXT, `data` is not copied: only its length
   * travels in the frame, and the host writes the bytes after the batch that
   * pollTransmit reports with this ext id. Returns the tag (> 0) or -code.
   */
  request(session: number, hdr: Uint8Array, data: Uint8Array | number, flags: number, timeoutMs: number, ext: number, now: number): number {
    const inline = this.#stageMessage(hdr, data, flags);
    const dataLen = typeof data === 'number' ? data : data.length;
    let r: number;
    try {
      r = this.#x.request(session, hdr.length, dataLen, flags, timeoutMs, ext, now);
    } catch (e) {
      this.#trap(e);
    }
    return this.#rec ? this.#input(Op.REQUEST, [session, hdr.length, dataLen, flags, timeoutMs, ext, now], hdr, inline, r) : r;
  }

  send(session: number, hdr: Uint8Array, data: Uint8Array | number, flags: number, ext: number, now: number): number {
    const inline = this.#stageMessage(hdr, data, flags);
    const dataLen = typeof data === 'number' ? data : data.length;
    let r: number;
    try {
      r = this.#x.send(session, hdr.length, dataLen, flags, ext, now);
    } catch (e) {
      this.#trap(e);
    }
    return this.#rec ? this.#input(Op.SEND, [session, hdr.length, dataLen, flags, ext, now], hdr, inline, r) : r;
  }

  respond(session: number, tag: number, hdr: Uint8Array, data: Uint8Array | number, flags: number, ext: number, now: number): number {
    const inline = this.#stageMessage(hdr, data, flags);
    const dataLen = typeof data === 'number' ? data : data.length;
    let r: number;
    try {
      r = this.#x.respond(session, tag, hdr.length, dataLen, flags, ext, now);
    } catch (e) {
      this.#trap(e);
    }
    return this.#rec ? this.#input(Op.RESPOND, [session, tag, hdr.length, dataLen, flags, ext, now], hdr, inline, r) : r;
  }

  cancel(session: number, tag: number, now: number): number {
    this.#fresh = true;
    const r = this.#call(() => this.#x.cancel(session, tag, now));
    return this.#rec ? this.#input(Op.CANCEL, [session, tag, now], undefined, undefined, r) : r;
  }

  /** holdRx: the host is done with the views of delivered message `seq`. */
  release(session: number, seq: number, now: number): number {
    this.#fresh = true;
    const r = this.#call(() => this.#x.release(session, seq, now));
    return this.#rec ? this.#input(Op.RELEASE, [session, seq, now], undefined, undefined, r) : r;
  }

  close(session: number, now: number): number {
    this.#fresh = true;
    const r = this.#call(() => this.#x.close(session, now));
    return this.#rec ? this.#input(Op.CLOSE, [session, now], undefined, undefined, r) : r;
  }

  destroy(session: number, now: number): number {
    this.#fresh = true;
    const r = this.#call(() => this.#x.destroy(session, now));
    return this.#rec ? this.#input(Op.DESTROY, [session, now], undefined, undefined, r) : r;
  }

  timeout(now: number): void {
    this.#fresh = true;
    this.#call(() => this.#x.timeout(now));
    if (this.#rec) this.#input(Op.TIMEOUT, [now], undefined, undefined, 0);
  }

  /** Replays one recorded input; returns the core's result. */
  apply(op: Op, a: number[], bytes: Uint8Array, extra: Uint8Array): number {
    this.#fresh = true;
    this.#stage(bytes.length ? bytes : undefined, extra.length ? extra : undefined);
    const x = this.#x;
    return this.#call(() => {
      switch (op) {
        case Op.CONNECT: return x.connect(a[0], a[1], a[2], a[3], a[4]);
        case Op.LANE_ACCEPTED: return x.laneAccepted(a[0]);
        case Op.LANE_UP: return x.laneUp(a[0], a[1]);
        case Op.LANE_DOWN: return x.laneDown(a[0], a[1], a[2]);
        case Op.LANE_RENDEZVOUS: return x.laneRendezvous(a[0], a[1], a[2]);
        case Op.RX: return x.rx(a[0], a[1], a[2]);
        case Op.EXT_DONE: return x.extDone(a[0], a[1]);
        case Op.ACCEPT: return x.accept(a[0], a[1], a[2], a[3]);
        case Op.REJECT: return x.reject(a[0], a[1], a[2], a[3]);
        case Op.REDIRECT: return x.redirect(a[0], a[1], a[2]);
        case Op.REQUEST: return x.request(a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
        case Op.SEND: return x.send(a[0], a[1], a[2], a[3], a[4], a[5]);
        case Op.RESPOND: return x.respond(a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
        case Op.CANCEL: return x.cancel(a[0], a[1], a[2]);
        case Op.RELEASE: return x.release(a[0], a[1], a[2]);
        case Op.CLOSE: return x.close(a[0], a[1]);
        case Op.DESTROY: return x.destroy(a[0], a[1]);
        case Op.TIMEOUT: x.timeout(a[0]); return 0;
        case Op.AUTH_LANE: return x.authLane(a[0], a[1], a[2]);
        case Op.AUTH_CHALLENGE: return x.authChallenge(a[0], a[1]);
        case Op.AUTH_PROOF: return x.authProof(a[0], a[1]);
        case Op.AUTH_PASSED: return x.authPassed(a[0], a[1]);
      }
      throw new InvalidArgumentError(`unknown op ${op}`);
    });
  }

  // ---- outputs ----

  /** When to call timeout() next (µs), or -1 when no timer is armed. */
  nextDeadline(): number {
    if (this.trapped) throw this.trapped;
    let d: number;
    try {
      d = this.#x.nextDeadline();
    } catch (e) {
      this.#trap(e);
    }
    this.#rec?.deadline(d);
    return d;
  }

  /** Number of events ready; read them with event(i, out). Valid until the next input. */
  pollEvents(): number {
    if (!this.#fresh) return 0;
    this.#fresh = false;
    if (this.trapped) throw this.trapped;
    // Most inputs (a send, a response) queue no event: the count is read
    // from memory and the call skipped. Nothing is lost: an unpolled empty
    // queue is what the next input appends to.
    if (this.#u8.byteLength === 0) this.#refresh();
    if (this.#u32[this.#evCount >>> 2] === 0) return 0;
    let n: number;
    try {
      n = this.#x.pollEvents();
    } catch (e) {
      this.#trap(e);
    }
    if (this.#rec && n > 0) this.#rec.events(this, n);
    return n;
  }

  /**
   * The event records as u32 words (valid until the next input): record i
   * starts at word eventWord(i); fields as event() reads them.
   */
  get eventWords(): Uint32Array {
    if (this.#u8.byteLength === 0) this.#refresh();
    return this.#u32;
  }
  eventWord(i: number): number {
    return (this.#events + i * EVENT_SIZE) >>> 2;
  }

  /** Byte offset of event i in memory (for raw access). */
  eventOffset(i: number): number {
    return this.#events + i * EVENT_SIZE;
  }

  event(i: number, out: CoreEvent): CoreEvent {
    if (this.#u8.byteLength === 0) this.#refresh();
    // Records are 4-byte aligned (eventsPtr, EVENT_SIZE): read as words.
    const w = this.#u32;
    const q = (this.#events + i * EVENT_SIZE) >>> 2;
    out.type = w[q];
    out.session = w[q + 1];
    out.lane = w[q + 2];
    out.code = this.#i32[q + 3];
    out.seq = w[q + 4] + w[q + 5] * 4294967296;
    out.tag = w[q + 6];
    out.flags = w[q + 7];
    out.hdrPtr = w[q + 8];
    out.hdrLen = w[q + 9];
    out.dataPtr = w[q + 10];
    out.dataLen = w[q + 11];
    out.ext = w[q + 12];
    out.aux = w[q + 13];
    out.aux64 = w[q + 14] + w[q + 15] * 4294967296;
    return out;
  }

  /** The 64-bit aux field of event i exactly (session ids exceed 2^53). */
  eventAux64(i: number): bigint {
    if (this.#u8.byteLength === 0) this.#refresh();
    return this.#dv.getBigUint64(this.#events + i * EVENT_SIZE + 56, true);
  }

  /** A copy of core memory [ptr, ptr+len): a fresh Buffer the caller owns. */
  copy(ptr: number, len: number): Buffer {
    const b = Buffer.allocUnsafe(len);
    b.set(this.memory.subarray(ptr, ptr + len));
    return b;
  }

  /**
   * A Buffer over core memory, for bytes the core lends (holdRx): the core
   * allocates all its memory at init and never grows it, so the Buffer
   * stays attached; its bytes stay put until the message is released.
   */
  lend(ptr: number, len: number): Buffer {
    if (this.#u8.byteLength === 0) this.#refresh();
    return new LentBuffer(this.#u8.buffer as ArrayBuffer, ptr, len) as unknown as Buffer;
  }

  /** A view of core memory: valid only until the next input to this core. */
  view(ptr: number, len: number): Uint8Array {
    return this.memory.subarray(ptr, ptr + len);
  }

  /**
   * The next coalesced batch: returns its lane handle (0 when idle). Read it
   * with txView() before the next call; txExt()/txExtLen() name an ext
   * payload to write right after it.
   */
  pollTransmit(now: number): number {
    // Once or more per turn: no closure (what #call would take) on this path.
    if (this.trapped) throw this.trapped;
    let lane: number;
    try {
      lane = this.#x.pollTransmit(now);
    } catch (e) {
      this.#trap(e);
    }
    // Idle polls are recorded too: one can still move the core's state (the
    // dirty-session queue, a session's lane rotation), so a replay must make it.
    if (this.#rec) {
      if (lane !== 0) this.#rec.transmit(lane, this.txView(), this.#x.txExt(), this.#x.txExtLen());
      else this.#rec.transmit(0, EMPTY_BYTES, 0, 0);
    }
    return lane;
  }

  txView(): Uint8Array {
    const p = this.#x.txPtr();
    return this.memory.subarray(p, p + this.#x.txLen());
  }

  txExt(): number { return this.#x.txExt(); }
  txExtLen(): number { return this.#x.txExtLen(); }
  /** Offset in the batch of the rendezvous descriptor the lane fills in; -1 when none. */
  txRdv(): number { return this.#x.txRdv(); }

  /** Events the core could not queue: a core bug if ever non-zero. */
  eventOverflow(): number { return this.#x.eventOverflow(); }
  /** Receive-window entries the core's byte-credit check has scanned (a diagnostic: tests, benches). */
  rxScanSteps(): number { return this.#x.rxScanSteps(); }

  /** Session counters: [state, txNextSeq, txAcked, rxNext, id, windowMsgs, windowBytes, maxRequests]. */
  sessionInfo(session: number): number[] | undefined {
    const n = this.#call(() => this.#x.sessionInfo(session));
    if (n < 0) return undefined;
    const dv = this.#dv;
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      out.push(dv.getUint32(this.#staging + i * 8, true) + dv.getUint32(this.#staging + i * 8 + 4, true) * 4294967296);
    }
    return out;
  }
}
