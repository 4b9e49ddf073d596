'use strict';
// nexio's rdma:// layer over the native addon (build/Release/nexio_rdma.node).
//
// The addon is thin (one object per rdma_cm/verbs object); this file carries the conveniences:
// the connect state machine (resolve address -> route -> queue pair -> connect) with the retry of a
// connect refused because the server is not listening yet, private data framing, send queueing
// with 'drain', promises for RDMA WRITE/READ, the registration cache and the buffer pool.
//
// Ownership of received bytes: `conn.onFrame(ring, offset, length)` gets a view of a slot of the
// receive ring; the slot is reposted as soon as the callback returns. Copy what you keep.

const { EventEmitter } = require('node:events');
const path = require('node:path');
const net = require('node:net');
const dns = require('node:dns');

const INSTALL_HINT =
  'apt-get install rdma-core libibverbs-dev librdmacm-dev ibverbs-providers, then rebuild the addon: ' +
  '`npm rebuild nexio` (in a clone of nexio: `npm run build:native`)';

class RdmaError extends Error {
  constructor(code, message, props) {
    super(message);
    this.name = 'RdmaError';
    this.code = code;
    if (props) Object.assign(this, props);
    // Formatted now: until then V8 keeps the stack's receivers (the connection, its queue pair and
    // its 1 MiB receive ring) alive for as long as anybody keeps the error (a log, an event list).
    void this.stack;
  }
}

function loadBinding() {
  const file = path.join(__dirname, 'build', 'Release', 'nexio_rdma.node');
  try {
    return require(file);
  } catch (cause) {
    const missing = cause && cause.code === 'MODULE_NOT_FOUND';
    throw new RdmaError('NEXIO_ERR_RDMA_UNAVAILABLE',
      (missing ? 'rdma:// is unavailable: the native addon was not built (rdma-core headers were missing at build time). '
               : `rdma:// is unavailable: the native addon failed to load (${cause.message}). `) + INSTALL_HINT,
      { cause });
  }
}

const binding = loadBinding();
const EV = binding.cmEvents;
const KIND = binding.completionKinds;
const kHandler = Symbol('nexio.rdma.handler');

// rdma_cm private data limits on RoCE/IB (RDMA_PS_TCP): 56 bytes in a REQ, 196 in a REP, 148 in a
// REJ. The CM pads what it delivers to those sizes, so one length byte goes first.
const PDATA_MAX = { connect: 55, accept: 195, reject: 147 };
// IB CM reject reasons that rdma_cm reports as the REJECTED event's status
const REJ_INVALID_SERVICE_ID = 8; // nobody listens on that port (yet)
const REJ_CONSUMER_DEFINED = 28; // the application rejected

function encodePrivateData(data, what) {
  if (data == null) return Buffer.from([0]);
  const b = typeof data === 'string' ? Buffer.from(data) : data;
  if (!(b instanceof Uint8Array)) throw new TypeError(`${what}: privateData must be a Buffer, Uint8Array or string`);
  if (b.length > PDATA_MAX[what]) {
    throw new RdmaError('NEXIO_ERR_RDMA_PRIVATE_DATA_TOO_LONG',
      `${what}: private data is ${b.length} bytes, at most ${PDATA_MAX[what]}`);
  }
  const out = Buffer.allocUnsafe(b.length + 1);
  out[0] = b.length;
  out.set(b, 1);
  return out;
}

function decodePrivateData(buf) {
  if (!buf || buf.length === 0) return Buffer.alloc(0);
  const n = buf[0];
  return n <= buf.length - 1 ? buf.subarray(1, 1 + n) : Buffer.alloc(0);
}

function eventName(ev) {
  for (const k of Object.keys(EV)) if (EV[k] === ev) return k;
  return String(ev);
}

function cmEventError(ev, status, what) {
  const name = eventName(ev);
  const errno = status < 0 ? -status : 0;
  const codes = {
    ADDR_ERROR: 'NEXIO_ERR_RDMA_ADDR_ERROR', ROUTE_ERROR: 'NEXIO_ERR_RDMA_ROUTE_ERROR',
    UNREACHABLE: 'NEXIO_ERR_RDMA_UNREACHABLE', CONNECT_ERROR: 'NEXIO_ERR_RDMA_CONNECT_ERROR',
    DEVICE_REMOVAL: 'NEXIO_ERR_RDMA_DEVICE_REMOVED',
  };
  return new RdmaError(codes[name] || 'NEXIO_ERR_RDMA_CM_EVENT',
    `${what}: rdma_cm event ${name} (status ${status})`, { event: name, status, errno, syscall: 'rdma_get_cm_event' });
}

// Asynchronous device events (ibv_event_type) that end connections: a QP's own, and the
// device's or a port's, which end every connection on it. Others are counted only.
const ASYNC_QP = new Map([[1, 'QP_FATAL'], [2, 'QP_REQ_ERR'], [3, 'QP_ACCESS_ERR'], [7, 'PATH_MIG_ERR']]);
const ASYNC_DEVICE = new Map([[8, ['DEVICE_FATAL', 'NEXIO_ERR_RDMA_DEVICE_FATAL']], [10, ['PORT_ERR', 'NEXIO_ERR_RDMA_PORT_DOWN']]]);

const WC_STATUS = ['SUCCESS', 'LOC_LEN_ERR', 'LOC_QP_OP_ERR', 'LOC_EEC_OP_ERR', 'LOC_PROT_ERR', 'WR_FLUSH_ERR',
  'MW_BIND_ERR', 'BAD_RESP_ERR', 'LOC_ACCESS_ERR', 'REM_INV_REQ_ERR', 'REM_ACCESS_ERR', 'REM_OP_ERR',
  'RETRY_EXC_ERR', 'RNR_RETRY_EXC_ERR', 'LOC_RDD_VIOL_ERR', 'REM_INV_RD_REQ_ERR', 'REM_ABORT_ERR',
  'INV_EECN_ERR', 'INV_EEC_STATE_ERR', 'FATAL_ERR', 'RESP_TIMEOUT_ERR', 'GENERAL_ERR'];

function completionError(kind, status) {
  const op = { [KIND.RECV]: 'RECV', [KIND.SEND]: 'SEND', [KIND.WRITE]: 'RDMA WRITE', [KIND.READ]: 'RDMA READ' }[kind];
  const name = WC_STATUS[status] || String(status);
  return new RdmaError('NEXIO_ERR_RDMA_COMPLETION', `${op} completed with IBV_WC_${name}`,
    { wcStatus: name, status, syscall: 'ibv_poll_cq' });
}

async function numericHost(host) {
  if (net.isIP(host)) return host;
  const { address } = await dns.promises.lookup(host);
  return address;
}

/** A protection domain on one RDMA device, with the registration cache and buffer pools. */
class RdmaDevice {
  #native;
  #cache = new WeakMap(); // ArrayBuffer -> MemoryRegion (whole backing store, registered once)
  #regions = new Set();
  #conns = new Map(); // qp number -> RdmaConnection (for asynchronous events)
  #registering = new Map(); // ArrayBuffer -> Promise<MemoryRegion> (registerAsync in progress)
  #closed = false;
  constructor(nativeDevice) {
    this.#native = nativeDevice;
    this.info = nativeDevice.query();
    this.name = this.info.name;
    /** Asynchronous events read, by name (port up/down, QP fatal, ...). */
    this.events = {};
    /** Connections failed with NEXIO_ERR_RDMA_PORT_DOWN on a completion error while the port was down. */
    this.portDownFailures = 0;
    // Port down, QP fatal, device fatal: the connections they hit fail now, with a typed code,
    // instead of waiting for a completion error or the lane's keepalive.
    // Optional: a device whose events cannot be watched still works (lanes then learn of a
    // dead port from completion errors or keepalive).
    try { nativeDevice.watch((type, name, qpNum, port) => this.#onAsync(type, name, qpNum, port)); } catch { this.watchFailed = true; }
  }
  get native() { return this.#native; }

  /**
   * NEXIO_ERR_RDMA_PORT_DOWN when port 1 is not active, else null. A completion error on a port
   * that went down is the port's doing: which reaches us first, the port's asynchronous event or
   * the QP's failed completions, is a race, so both say the same.
   */
  portDownError() {
    let st;
    try { st = this.#native.query().portState; } catch { return null; }
    if (st === undefined || /active/i.test(st)) return null; // ibv_port_state_str: 'active' (older: 'PORT_ACTIVE')
    this.portDownFailures++;
    return new RdmaError('NEXIO_ERR_RDMA_PORT_DOWN', `${this.name}: port 1 is ${st}`, { event: 'PORT_ERR', port: 1 });
  }

  _attach(qpNum, conn) { this.#conns.set(qpNum, conn); }
  _detach(qpNum) { this.#conns.delete(qpNum); }

  #onAsync(type, name, qpNum, port) {
    this.events[name] = (this.events[name] ?? 0) + 1;
    const qpEvent = ASYNC_QP.get(type);
    if (qpEvent) {
      const c = this.#conns.get(qpNum);
      if (c) c._asyncFail(new RdmaError('NEXIO_ERR_RDMA_QP_FATAL', `${this.name}: asynchronous event ${qpEvent} (${name}) on qp ${qpNum}`, { event: qpEvent }));
      return;
    }
    const dev = ASYNC_DEVICE.get(type);
    if (!dev) return;
    const [ev, code] = dev;
    for (const c of [...this.#conns.values()]) {
      c._asyncFail(new RdmaError(code, `${this.name}: asynchronous event ${ev} (${name})${port ? ` on port ${port}` : ''}`, { event: ev, port }));
    }
  }

  /**
   * Registers the whole ArrayBuffer behind `buffer` (once: cached) and returns the view's keys.
   * remoteAccess: true (peers may READ and WRITE it), 'read' (READ only: rendezvous sources),
   * false (local only). The first registration of an ArrayBuffer decides its access.
   */
  register(buffer, { remoteAccess = true } = {}) {
    const ab = buffer instanceof ArrayBuffer ? buffer : buffer.buffer;
    const offset = buffer instanceof ArrayBuffer ? 0 : buffer.byteOffset;
    const length = buffer.byteLength;
    let mr = this.#cache.get(ab);
    if (!mr) {
      mr = this.#native.register(ab, remoteAccess);
      this.#cache.set(ab, mr);
      this.#regions.add(mr);
    }
    return { addr: mr.addr + BigInt(offset), length, lkey: mr.lkey, rkey: mr.rkey, region: mr };
  }

  /**
   * register() off the JS thread: ibv_reg_mr runs on the libuv thread pool (it pins and maps
   * every page, as long as a copy of the bytes or longer: native/README.md). Resolves with the
   * same keys as register(); a registration cached or in progress is shared. Rejects with
   * NEXIO_ERR_RDMA_CLOSED when the device closes meanwhile (the registration is undone).
   */
  registerAsync(buffer, { remoteAccess = true } = {}) {
    const ab = buffer instanceof ArrayBuffer ? buffer : buffer.buffer;
    const offset = buffer instanceof ArrayBuffer ? 0 : buffer.byteOffset;
    const length = buffer.byteLength;
    const keys = (mr) => ({ addr: mr.addr + BigInt(offset), length, lkey: mr.lkey, rkey: mr.rkey, region: mr });
    const mr = this.#cache.get(ab);
    if (mr) return Promise.resolve(keys(mr));
    let p = this.#registering.get(ab);
    if (!p) {
      if (this.#closed) return Promise.reject(new RdmaError('NEXIO_ERR_RDMA_CLOSED', 'register: the device is closed'));
      p = new Promise((resolve, reject) => {
        this.#native.registerAsync(ab, remoteAccess, (err, region) => {
          this.#registering.delete(ab);
          if (err) { reject(err); return; }
          if (this.#closed) { region.deregister(); reject(new RdmaError('NEXIO_ERR_RDMA_CLOSED', 'register: the device closed meanwhile')); return; }
          const had = this.#cache.get(ab); // registered synchronously meanwhile: keep that one
          if (had) { region.deregister(); resolve(had); return; }
          this.#cache.set(ab, region);
          this.#regions.add(region);
          resolve(region);
        });
      });
      this.#registering.set(ab, p);
    }
    return p.then(keys);
  }

  /** Registrations running on the thread pool (registerAsync). */
  get registering() { return this.#registering.size; }

  isRegistered(buffer) {
    return this.#cache.has(buffer instanceof ArrayBuffer ? buffer : buffer.buffer);
  }

  deregister(buffer) {
    const ab = buffer instanceof ArrayBuffer ? buffer : buffer.buffer;
    const mr = this.#cache.get(ab);
    if (!mr) return false;
    mr.deregister();
    this.#cache.delete(ab);
    this.#regions.delete(mr);
    return true;
  }

  /** A pool of `count` registered chunks of `chunkSize` bytes (rendezvous staging). */
  pool(chunkSize, count, { remoteAccess = true } = {}) { return new BufferPool(this, chunkSize, count, remoteAccess); }

  close() {
    this.#closed = true;
    this.#conns.clear();
    for (const mr of this.#regions) mr.deregister();
    this.#regions.clear();
    this.#native.close();
  }
}

class BufferPool {
  #free = [];
  constructor(device, chunkSize, count, remoteAccess = true) {
    this.chunkSize = chunkSize;
    this.count = count;
    this.memory = Buffer.alloc(chunkSize * count);
    this.keys = device.register(this.memory, { remoteAccess });
    for (let i = count - 1; i >= 0; i--) this.#free.push(i);
  }
  get available() { return this.#free.length; }
  /** A chunk {index, buffer, addr, lkey, rkey}, or null when the pool is empty. */
  alloc() {
    const i = this.#free.pop();
    if (i === undefined) return null;
    const off = i * this.chunkSize;
    return { index: i, buffer: this.memory.subarray(off, off + this.chunkSize),
      addr: this.keys.addr + BigInt(off), lkey: this.keys.lkey, rkey: this.keys.rkey };
  }
  free(chunk) { this.#free.push(chunk.index); }
}

/** One RC connection (a lane). Events: 'established', 'drain', 'error', 'close'. */
class RdmaConnection extends EventEmitter {
  #ctx; #id; #qp = null; #queue = []; #queueHead = 0; #blocked = false;
  #ops = new Map(); #nextToken = 1; #state = 'connecting'; #closing = null;
  #recvSize = 0; #onFrame = null; #early = null;
  /** The receive ring as a Buffer over the ring's own ArrayBuffer (it keeps the memory alive). */
  #ring = null;
  constructor(ctx, id, device) {
    super();
    this.#ctx = ctx;
    this.#id = id;
    this.device = device;
    this.peerPrivateData = null;
  }
  get state() { return this.#state; }
  /**
   * Hot path: (ring: Buffer, offset, length) => void. Default: emit 'frame' with a copy.
   * Frames that arrive before anybody listens (the peer may send as soon as it is ESTABLISHED,
   * before this side has handed the connection out) are kept, copied, and handed to the first
   * onFrame set or 'frame' listener added.
   */
  get onFrame() { return this.#onFrame; }
  set onFrame(fn) {
    this.#onFrame = fn;
    if (fn && this.#early) { const e = this.#early; this.#early = null; for (const b of e) fn(b, 0, b.length); }
  }
  #deliverEarly() {
    if (!this.#early) return;
    const e = this.#early; this.#early = null;
    for (const b of e) this.emit('frame', b);
  }
  get queuePair() { return this.#qp; }

  _createQp(options) {
    this.#qp = new binding.QueuePair(this.#id, this.device.native, (n) => this.#onCompletions(n), options);
    this.#recvSize = this.#qp.recvSize;
    const r = this.#qp.recvRing;
    this.#ring = Buffer.from(r.buffer, r.byteOffset, r.byteLength);
    this.maxInline = this.#qp.maxInline;
  }
  _established(pdata) {
    this.peerPrivateData = pdata;
    Object.assign(this, this.#id.addresses());
    this.#state = 'open';
    // device events reach it from now on (a connection still connecting fails through its connect)
    if (this.#qp) this.device._attach(this.#qp.qpNum, this);
    this.emit('established');
  }

  /** Posts frames (one work-request list); false when some had to wait: wait for 'drain'. */
  send(frames) {
    if (this.#state !== 'open') {
      throw new RdmaError('NEXIO_ERR_RDMA_NOT_CONNECTED', `send on a ${this.#state} connection`);
    }
    if (!Array.isArray(frames)) frames = [frames];
    if (this.#queueHead < this.#queue.length) {
      for (const f of frames) this.#queue.push(f);
      return false;
    }
    const n = this.#qp.postSends(frames, 0);
    if (n === frames.length) return true;
    for (let i = n; i < frames.length; i++) this.#queue.push(frames[i]);
    this.#blocked = true;
    return false;
  }

  #flush() {
    while (this.#queueHead < this.#queue.length) {
      const pending = this.#queueHead === 0 ? this.#queue : this.#queue.slice(this.#queueHead);
      const n = this.#qp.postSends(pending, 0);
      if (n === 0) return;
      if (n === pending.length) { this.#queue = []; this.#queueHead = 0; break; }
      this.#queue = pending.slice(n); this.#queueHead = 0;
    }
    if (this.#blocked) { this.#blocked = false; this.emit('drain'); }
  }

  /** RDMA WRITE of local (a registered or registrable Buffer) to remote {addr, rkey}. */
  write(local, remote, length = local.byteLength) { return this.#rdma(KIND.WRITE, local, remote, length); }
  /** RDMA READ of remote {addr, rkey} into local. */
  read(local, remote, length = local.byteLength) { return this.#rdma(KIND.READ, local, remote, length); }

  #rdma(kind, local, remote, length) {
    if (this.#state !== 'open') {
      return Promise.reject(new RdmaError('NEXIO_ERR_RDMA_NOT_CONNECTED', `RDMA on a ${this.#state} connection`));
    }
    const keys = this.device.register(local);
    const token = this.#nextToken;
    this.#nextToken = (this.#nextToken + 1) >>> 0 || 1;
    return new Promise((resolve, reject) => {
      if (!this.#qp.postRdma(kind, token, keys.addr, length, keys.lkey, BigInt(remote.addr), remote.rkey)) {
        reject(new RdmaError('NEXIO_ERR_RDMA_SQ_FULL', 'send queue full: wait for outstanding RDMA operations'));
        return;
      }
      this.#ops.set(token, { resolve, reject, length });
    });
  }

  #onCompletions(n) {
    const c = this.#qp.completions;
    const ring = this.#ring;
    let sendsDone = false;
    for (let i = 0; i < n; i++) {
      if (this.#state === 'closed') return; // a callback closed us: the rest is moot
      const kind = c[i * 4], id = c[i * 4 + 1], len = c[i * 4 + 2], status = c[i * 4 + 3];
      if (status !== 0) { this.#fail(this.device.portDownError() ?? completionError(kind, status)); return; }
      if (kind === KIND.RECV) {
        if (this.#onFrame) this.#onFrame(ring, id * this.#recvSize, len);
        else {
          const copy = Buffer.from(ring.subarray(id * this.#recvSize, id * this.#recvSize + len));
          if (this.listenerCount('frame')) { this.#deliverEarly(); this.emit('frame', copy); }
          else (this.#early ??= []).push(copy);
        }
      } else if (kind === KIND.SEND) {
        sendsDone = true;
      } else {
        const op = this.#ops.get(id);
        if (op) { this.#ops.delete(id); op.resolve(op.length); }
      }
    }
    if (sendsDone && this.#state === 'open' && (this.#blocked || this.#queue.length)) this.#flush();
  }

  #fail(err) {
    if (this.#state === 'closed') return;
    for (const op of this.#ops.values()) op.reject(err);
    this.#ops.clear();
    if (this.listenerCount('error')) this.emit('error', err);
    this._teardown();
  }

  /** An asynchronous device event hit this connection (RdmaDevice). */
  _asyncFail(err) { this.#fail(err); }

  _onCmEvent(ev, status) {
    if (ev === EV.DISCONNECTED) this._teardown();
    else if (ev === EV.DEVICE_REMOVAL) this.#fail(cmEventError(ev, status, 'connection'));
  }

  _teardown() {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    const err = new RdmaError('NEXIO_ERR_RDMA_CLOSED', 'the connection closed');
    for (const op of this.#ops.values()) op.reject(err);
    this.#ops.clear();
    if (this.#qp) { this.device._detach(this.#qp.qpNum); this.#qp.close(); } // before the id: rdma_destroy_qp needs it
    this.#id.close();
    this.#ctx._forget(this);
    this.emit('close');
  }

  stats() { return this.#qp ? this.#qp.stats() : null; }

  /** Disconnects (the peer sees 'close'), waits for DISCONNECTED (at most timeoutMs), frees. Idempotent. */
  close({ timeoutMs = 2000 } = {}) {
    if (this.#state === 'closed') return Promise.resolve();
    if (this.#closing) return this.#closing;
    this.#closing = new Promise((resolve) => {
      const t = setTimeout(() => this._teardown(), timeoutMs);
      this.once('close', () => { clearTimeout(t); resolve(); });
      try { this.#id.disconnect(); } catch { this._teardown(); }
    });
    return this.#closing;
  }
}

/** A bound rdma_cm id listening for connection requests. */
class RdmaListener extends EventEmitter {
  #ctx; #id;
  constructor(ctx, id, port) { super(); this.#ctx = ctx; this.#id = id; this.port = port; }
  close() { if (this.#id) { this.#id.close(); this.#id = null; this.#ctx._forget(this); } return Promise.resolve(); }
}

/** A connection request: accept() or reject() it (synchronously or later, within the CM timeout). */
class ConnectionRequest {
  #ctx; #id; #device; #done = false;
  constructor(ctx, id, device, privateData, info) {
    this.#ctx = ctx; this.#id = id; this.#device = device;
    this.privateData = privateData;
    this.initiatorDepth = info.initiatorDepth;
    this.responderResources = info.responderResources;
  }
  /** Creates the queue pair and accepts; resolves with the connection once ESTABLISHED. */
  accept(privateData, qpOptions) {
    if (this.#done) throw new RdmaError('NEXIO_ERR_RDMA_INVALID_STATE', 'request already answered');
    this.#done = true;
    const conn = new RdmaConnection(this.#ctx, this.#id, this.#device);
    this.#ctx._track(conn);
    const established = new Promise((resolve, reject) => {
      this.#id[kHandler] = (ev, status) => {
        if (ev === EV.ESTABLISHED) { conn._established(Buffer.alloc(0)); resolve(conn); return; }
        if (conn.state === 'connecting') {
          this.#id[kHandler] = (e, s) => conn._onCmEvent(e, s);
          conn._teardown();
          reject(cmEventError(ev, status, 'accept'));
          return;
        }
        conn._onCmEvent(ev, status);
      };
    });
    const d = this.#device.info;
    try {
      conn._createQp(qpOptions);
      this.#id.accept(encodePrivateData(privateData, 'accept'),
        { responderResources: Math.min(d.maxQpRdAtom, 16), initiatorDepth: Math.min(d.maxQpInitRdAtom, 16) });
    } catch (err) {
      conn._teardown();
      return Promise.reject(err);
    }
    established.then(() => { if (conn.state === 'open') conn.emit('ready'); }, () => {});
    return established;
  }
  reject(privateData) {
    if (this.#done) throw new RdmaError('NEXIO_ERR_RDMA_INVALID_STATE', 'request already answered');
    this.#done = true;
    try { this.#id.reject(encodePrivateData(privateData, 'reject')); } finally { this.#id.close(); }
  }
}

/** One per thread: the rdma_cm event channel, the devices, the connections and listeners. */
class RdmaContext {
  #channel; #devices = new Map(); #objects = new Set(); #closed = false;
  /** Connects in progress (not yet connections): close() fails them. */
  #attempts = new Set();
  constructor() {
    this.#channel = new binding.CmChannel((id, ev, status, pdata, child, info) => {
      const h = id && id[kHandler];
      if (h) h(ev, status, pdata, child, info);
    });
  }
  _track(o) { this.#objects.add(o); }
  _forget(o) { this.#objects.delete(o); }

  deviceFor(cmId) {
    const name = cmId.deviceName();
    if (!name) throw new RdmaError('NEXIO_ERR_RDMA_NO_DEVICE', 'the address is not on an RDMA device');
    let d = this.#devices.get(name);
    if (!d) { d = new RdmaDevice(new binding.Device(cmId)); this.#devices.set(name, d); }
    return d;
  }
  get devices() { return [...this.#devices.values()]; }

  /** Listens on host:port (numeric address of an RDMA netdev; port 0 = any). */
  listen({ host, port = 0, backlog = 128 }, onRequest) {
    const id = new binding.CmId(this.#channel);
    let bound;
    try { bound = id.listen(host, port, backlog); } catch (err) { id.close(); throw err; }
    const listener = new RdmaListener(this, id, bound);
    this._track(listener);
    id[kHandler] = (ev, status, pdata, child, info) => {
      if (ev !== EV.CONNECT_REQUEST) return;
      let device;
      try { device = this.deviceFor(child); } catch (err) { child.reject(); child.close(); listener.emit('error', err); return; }
      const req = new ConnectionRequest(this, child, device, decodePrivateData(pdata), info);
      child[kHandler] = () => {}; // events before accept() (none expected) are ignored
      onRequest(req);
    };
    return listener;
  }

  /**
   * Connects to host:port. Resolves with an open connection; rejects with NEXIO_ERR_RDMA_REJECTED
   * (err.privateData = the server's reason), NEXIO_ERR_RDMA_CONNECTION_REFUSED (nobody listening,
   * after retrying for retryRefusedMs), NEXIO_ERR_RDMA_TIMEOUT, or an rdma_cm event error.
   */
  async connect({ host, port, privateData, timeoutMs = 10000, retryRefusedMs = 0, retryDelayMs = 100, qp } = {}) {
    const addr = await numericHost(host);
    const pdata = encodePrivateData(privateData, 'connect');
    const deadline = Date.now() + timeoutMs, refusedUntil = Date.now() + retryRefusedMs;
    for (;;) {
      try {
        return await this.#attempt(addr, port, pdata, deadline, qp);
      } catch (err) {
        if (err.code !== 'NEXIO_ERR_RDMA_CONNECTION_REFUSED' || Date.now() + retryDelayMs >= Math.min(refusedUntil, deadline)) throw err;
        await new Promise((r) => setTimeout(r, retryDelayMs));
      }
    }
  }

  #attempt(host, port, pdata, deadline, qpOptions) {
    if (this.#closed) return Promise.reject(new RdmaError('NEXIO_ERR_RDMA_CLOSED', 'context closed'));
    return new Promise((resolve, reject) => {
      const id = new binding.CmId(this.#channel);
      let conn = null, timer = null;
      const fail = (err) => {
        this.#attempts.delete(fail);
        clearTimeout(timer);
        id[kHandler] = null;
        if (conn) conn._teardown(); else id.close();
        reject(err);
      };
      this.#attempts.add(fail);
      timer = setTimeout(() => fail(new RdmaError('NEXIO_ERR_RDMA_TIMEOUT', `connect to ${host}:${port} timed out`)),
        Math.max(0, deadline - Date.now()));
      const step = (ev, status, pd) => {
        try {
          switch (ev) {
            case EV.ADDR_RESOLVED: id.resolveRoute(2000); break;
            case EV.ROUTE_RESOLVED: {
              const device = this.deviceFor(id);
              conn = new RdmaConnection(this, id, device);
              conn._createQp(qpOptions);
              const d = device.info;
              id.connect(pdata, { responderResources: Math.min(d.maxQpRdAtom, 16), initiatorDepth: Math.min(d.maxQpInitRdAtom, 16) });
              break;
            }
            case EV.ESTABLISHED:
              this.#attempts.delete(fail);
              clearTimeout(timer);
              id[kHandler] = (e, s) => conn._onCmEvent(e, s);
              this._track(conn);
              conn._established(decodePrivateData(pd));
              resolve(conn);
              break;
            case EV.REJECTED:
              if (status === REJ_INVALID_SERVICE_ID) {
                fail(new RdmaError('NEXIO_ERR_RDMA_CONNECTION_REFUSED', `connect to ${host}:${port}: nobody listens there`,
                  { status, syscall: 'rdma_connect' }));
              } else {
                fail(new RdmaError('NEXIO_ERR_RDMA_REJECTED', `connect to ${host}:${port}: rejected by the server`,
                  { status, privateData: status === REJ_CONSUMER_DEFINED ? decodePrivateData(pd) : Buffer.alloc(0), syscall: 'rdma_connect' }));
              }
              break;
            default:
              fail(cmEventError(ev, status, `connect to ${host}:${port}`));
          }
        } catch (err) { fail(err); }
      };
      id[kHandler] = step;
      try { id.resolveAddr(host, port, 2000); } catch (err) { fail(err); }
    });
  }

  /** Registers application memory on the (first or named) device. */
  register(buffer, { device } = {}) {
    const d = device ? this.#devices.get(device) : this.#devices.values().next().value;
    if (!d) throw new RdmaError('NEXIO_ERR_RDMA_NO_DEVICE', 'no RDMA device open yet: listen or connect first');
    return d.register(buffer);
  }

  /** Closes connections, listeners, devices and the channel, in that order. Idempotent. */
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    // connects in progress end now (their ids go before the channel), not at their timeout
    for (const fail of [...this.#attempts]) fail(new RdmaError('NEXIO_ERR_RDMA_CLOSED', 'connect: the context closed'));
    const objs = [...this.#objects];
    await Promise.all(objs.filter((o) => o instanceof RdmaConnection).map((c) => c.close()));
    for (const o of objs) if (o instanceof RdmaListener) o.close();
    for (const d of this.#devices.values()) d.close();
    this.#devices.clear();
    this.#channel.close();
  }
}

module.exports = { RdmaContext, RdmaConnection, RdmaListener, RdmaDevice, BufferPool, ConnectionRequest, RdmaError,
  binding, PDATA_MAX, INSTALL_HINT };
