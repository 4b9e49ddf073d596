// Types for native/index.js (rdma:// over the nexio_rdma addon). Plain JS + this file: no build step.
/// <reference types="node" />
import { EventEmitter } from 'node:events';

export type RdmaErrorCode =
  | 'NEXIO_ERR_RDMA_UNAVAILABLE'          // the addon is not built / cannot load: install rdma-core
  | 'NEXIO_ERR_RDMA_INVALID_ARG'
  | 'NEXIO_ERR_RDMA_CONNECTION_REFUSED'   // nobody listens on that port (IB CM reject reason 8)
  | 'NEXIO_ERR_RDMA_REJECTED'             // the server rejected; err.privateData holds its reason
  | 'NEXIO_ERR_RDMA_TIMEOUT'
  | 'NEXIO_ERR_RDMA_ADDR_ERROR' | 'NEXIO_ERR_RDMA_ROUTE_ERROR' | 'NEXIO_ERR_RDMA_UNREACHABLE'
  | 'NEXIO_ERR_RDMA_CONNECT_ERROR' | 'NEXIO_ERR_RDMA_DEVICE_REMOVED' | 'NEXIO_ERR_RDMA_CM_EVENT'
  | 'NEXIO_ERR_RDMA_COMPLETION'           // a work completion failed; err.wcStatus e.g. 'REM_ACCESS_ERR'
  | 'NEXIO_ERR_RDMA_FRAME_TOO_LARGE' | 'NEXIO_ERR_RDMA_PRIVATE_DATA_TOO_LONG' | 'NEXIO_ERR_RDMA_SQ_FULL'
  | 'NEXIO_ERR_RDMA_NOT_CONNECTED' | 'NEXIO_ERR_RDMA_CLOSED' | 'NEXIO_ERR_RDMA_NO_DEVICE'
  | 'NEXIO_ERR_RDMA_INVALID_STATE'
  // a failed verbs/rdma_cm call: err.syscall names it, err.errno holds the errno
  | 'NEXIO_ERR_RDMA_CM_CHANNEL' | 'NEXIO_ERR_RDMA_CREATE_ID' | 'NEXIO_ERR_RDMA_LISTEN'
  | 'NEXIO_ERR_RDMA_RESOLVE_ADDR' | 'NEXIO_ERR_RDMA_RESOLVE_ROUTE' | 'NEXIO_ERR_RDMA_CONNECT'
  | 'NEXIO_ERR_RDMA_ACCEPT' | 'NEXIO_ERR_RDMA_REJECT' | 'NEXIO_ERR_RDMA_DISCONNECT'
  | 'NEXIO_ERR_RDMA_QUERY_DEVICE' | 'NEXIO_ERR_RDMA_ALLOC_PD' | 'NEXIO_ERR_RDMA_DEALLOC_PD'
  | 'NEXIO_ERR_RDMA_REG_MR' | 'NEXIO_ERR_RDMA_DEREG_MR' | 'NEXIO_ERR_RDMA_CREATE_COMP_CHANNEL'
  | 'NEXIO_ERR_RDMA_CREATE_CQ' | 'NEXIO_ERR_RDMA_REQ_NOTIFY_CQ' | 'NEXIO_ERR_RDMA_CREATE_QP'
  | 'NEXIO_ERR_RDMA_POST_SEND' | 'NEXIO_ERR_RDMA_POST_RECV' | 'NEXIO_ERR_RDMA_POLL_CQ'
  | 'NEXIO_ERR_RDMA_POLL' | 'NEXIO_ERR_RDMA_DEVICE_MISMATCH' | 'NEXIO_ERR_RDMA_INIT';

export declare class RdmaError extends Error {
  code: RdmaErrorCode;
  errno?: number;
  syscall?: string;
  status?: number;
  privateData?: Buffer;
  wcStatus?: string;
}

export interface QueuePairOptions {
  recvCount?: number;  // receive ring slots (64)
  recvSize?: number;   // bytes per slot (16384)
  sendCount?: number;  // send slots for frames above the inline limit (64)
  sendSize?: number;   // bytes per send slot (16384): larger payloads go by RDMA
  rdmaDepth?: number;  // send-queue room for RDMA WRITE/READ (16)
  maxInline?: number;  // inline limit asked of the device (256); the QP reports what it got
  batch?: number;      // completions drained per ibv_poll_cq and per JS call (32)
  busyPoll?: number;   // empty polls after activity before sleeping on the fd (0; bounded)
  perWake?: number;    // completions handled per wakeup before yielding to the event loop (4 x batch)
  spinUs?: number;     // after completions, keep polling up to this many µs before sleeping on the fd (0: off; <= 100000)
  adaptive?: boolean;  // spinUs is a ceiling: the budget halves when a spin finds nothing, doubles when it finds a completion
}

export interface RemoteKeys { addr: bigint | number; rkey: number; }
export interface Registration { addr: bigint; length: number; lkey: number; rkey: number; region: object; }

export interface DeviceInfo {
  name: string; maxQpWr: number; maxSge: number; maxCqe: number; maxMrSize: number;
  maxQpRdAtom: number; maxQpInitRdAtom: number; fwVer: string;
  portState?: string; activeMtu?: number; linkLayer?: string;
}

export declare class RdmaDevice {
  readonly name: string;
  readonly info: DeviceInfo;
  /**
   * Asynchronous events read from the device, by name (ibv_event_type_str). PORT_ERR and
   * DEVICE_FATAL fail every connection on the device (NEXIO_ERR_RDMA_PORT_DOWN,
   * NEXIO_ERR_RDMA_DEVICE_FATAL); QP_FATAL, QP_REQ_ERR, QP_ACCESS_ERR and PATH_MIG_ERR fail
   * that QP's connection (NEXIO_ERR_RDMA_QP_FATAL).
   */
  readonly events: Record<string, number>;
  /** Connections failed with NEXIO_ERR_RDMA_PORT_DOWN on a completion error while the port was down. */
  readonly portDownFailures: number;
  /** The device's events could not be watched (it works without them). */
  readonly watchFailed?: boolean;
  /** Registers the whole ArrayBuffer behind `buffer` once (cached per ArrayBuffer). */
  register(buffer: ArrayBuffer | ArrayBufferView, options?: { remoteAccess?: boolean | 'read' }): Registration;
  /** register() with ibv_reg_mr on the libuv thread pool (the JS thread goes on meanwhile). */
  registerAsync(buffer: ArrayBuffer | ArrayBufferView, options?: { remoteAccess?: boolean | 'read' }): Promise<Registration>;
  /** Registrations running on the thread pool. */
  readonly registering: number;
  isRegistered(buffer: ArrayBuffer | ArrayBufferView): boolean;
  deregister(buffer: ArrayBuffer | ArrayBufferView): boolean;
  /** remoteAccess as in register(): false for READ targets (local writes only). */
  pool(chunkSize: number, count: number, options?: { remoteAccess?: boolean | 'read' }): BufferPool;
  close(): void;
}

export interface PoolChunk { index: number; buffer: Buffer; addr: bigint; lkey: number; rkey: number; }
export declare class BufferPool {
  readonly chunkSize: number;
  readonly count: number;
  readonly available: number;
  /** The registered memory behind the chunks. */
  readonly memory: Buffer;
  alloc(): PoolChunk | null;
  free(chunk: PoolChunk): void;
}

export interface QueuePairStats {
  cqEvents: number; polls: number; completions: number; callbacks: number; busyPollHits: number;
  /** Drains cut short at perWake completions (resumed on the loop's next turn), and the most completions one wakeup handled. */
  yields: number; maxPerWake: number;
  /** Spins that found a completion, spins that ran out, and the spin budget now (µs). */
  spinHits: number; spinMisses: number; spinBudgetUs: number;
  sendPosts: number; sendWrs: number; inlineSends: number; sqFree: number; slotsFree: number;
}

export declare class RdmaConnection extends EventEmitter {
  readonly state: 'connecting' | 'open' | 'closed';
  readonly device: RdmaDevice;
  readonly maxInline: number;
  readonly peerPrivateData: Buffer | null;
  readonly localAddress?: string; readonly localPort?: number;
  readonly remoteAddress?: string; readonly remotePort?: number;
  /** Hot path. `ring` is valid for [offset, offset+length) until the callback returns. Frames that
   *  arrive before it is set (or a 'frame' listener added) are kept and handed to the first one. */
  onFrame: ((ring: Buffer, offset: number, length: number) => void) | null;
  /** One work-request list; false when some frames wait for room: wait for 'drain'. */
  send(frames: Uint8Array | Uint8Array[]): boolean;
  write(local: Uint8Array, remote: RemoteKeys, length?: number): Promise<number>;
  read(local: Uint8Array, remote: RemoteKeys, length?: number): Promise<number>;
  stats(): QueuePairStats | null;
  close(options?: { timeoutMs?: number }): Promise<void>;
  on(event: 'frame', listener: (frame: Buffer) => void): this;
  on(event: 'drain' | 'close' | 'established', listener: () => void): this;
  on(event: 'error', listener: (err: RdmaError) => void): this;
}

export declare class ConnectionRequest {
  readonly privateData: Buffer;
  readonly initiatorDepth: number;
  readonly responderResources: number;
  accept(privateData?: Uint8Array | string | null, qp?: QueuePairOptions): Promise<RdmaConnection>;
  reject(privateData?: Uint8Array | string | null): void;
}

export declare class RdmaListener extends EventEmitter {
  readonly port: number;
  close(): Promise<void>;
}

export interface ConnectOptions {
  host: string;
  port: number;
  privateData?: Uint8Array | string;  // at most 55 bytes
  timeoutMs?: number;                 // whole connect, retries included (10000)
  retryRefusedMs?: number;            // keep retrying while nobody listens (0)
  retryDelayMs?: number;              // (100)
  qp?: QueuePairOptions;
}

export declare class RdmaContext {
  readonly devices: RdmaDevice[];
  listen(options: { host: string; port?: number; backlog?: number }, onRequest: (req: ConnectionRequest) => void): RdmaListener;
  connect(options: ConnectOptions): Promise<RdmaConnection>;
  register(buffer: ArrayBuffer | ArrayBufferView, options?: { device?: string }): Registration;
  close(): Promise<void>;
}

export declare const PDATA_MAX: { connect: 55; accept: 195; reject: 147 };
export declare const INSTALL_HINT: string;
export declare const binding: unknown;
