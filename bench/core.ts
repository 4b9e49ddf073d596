// The cost of the protocol core: ns per 64-byte request + 64-byte response
// passing through two cores in one process (encode, coalesce, decode, ack),
// no transport.
//
//   npm run bench:core -- [--inflight 128] [--turns 2000] [--rounds 7] [--size 64]
//
// The cores are driven the way docs and design say a context drives them:
// per turn the client queues `inflight` requests, each core's transmit batch
// goes to the other in one rx() call, each core's events are drained once,
// the server answers every request from one preallocated buffer. Nothing is
// allocated per message. Three drivers of the same loop:
//   core    host/core.ts as the library uses it: event(i, out) decodes records
//   lean    host/core.ts, but event type and tag read through a cached
//           Uint32Array over core memory (what a hot-path Context can do)
//   raw     the WebAssembly exports called directly, copies by hand: the
//           floor for any JS driver (WASM work + JS->WASM calls + copies)
// The two sides are timed in separate rounds, each right after an untimed
// one (the timer calls would blur the totals): client = queue requests,
// coalesce their batch, decode the responses; server = decode the requests,
// answer, coalesce the responses. Drivers take rounds in turn, so that load
// from elsewhere on a shared machine falls on all alike; every figure is the
// median of the rounds after warm-up, with CPU time (process.cpuUsage) next
// to wall time, since CPU time moves less with other load.

import { parseArgs } from 'node:util';
import { Core, CoreEvent, Ev, coreModule, configWords, defaultConfig, EVENT_SIZE } from '../host/core';

const { values: opt } = parseArgs({
  options: {
    inflight: { type: 'string', default: '128' },
    turns: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '7' },
    warmup: { type: 'string', default: '3' },
    size: { type: 'string', default: '64' },
    drivers: { type: 'string', default: 'core,lean,raw' },
    json: { type: 'boolean', default: false },
  },
});
const INFLIGHT = Number(opt.inflight);
const TURNS = Number(opt.turns);
const ROUNDS = Number(opt.rounds);
const WARMUP = Number(opt.warmup);
const SIZE = Number(opt.size);

const config = { ...defaultConfig };
const EMPTY = new Uint8Array(0);
const KEY = Buffer.from('bench-session-k!');
const reqData = Buffer.alloc(SIZE, 0x71);
const respData = Buffer.alloc(SIZE, 0x72);
let now = 1_000_000;

// ---- the pair, opened through the library's Core ----

interface Pair { cli: Core; srv: Core; cs: number; ss: number; cl: number; sl: number }

function openPair(): Pair {
  const cli = new Core({ ...config, seed: 1 });
  const srv = new Core({ ...config, seed: 2 });
  const ev = new CoreEvent();
  const cs = cli.connect('tcp://bench:1/core', '/core', EMPTY, 1, now);
  let cl = 0, sl = 0, ss = 0, open = false;
  const drain = (core: Core) => {
    const n = core.pollEvents();
    const todo: (() => void)[] = [];
    for (let i = 0; i < n; i++) {
      core.event(i, ev);
      if (core === cli && ev.type === Ev.OPEN_LANE) {
        cl = ev.lane;
        todo.push(() => { sl = srv.laneAccepted(now); cli.laneUp(cl, now); });
      } else if (core === srv && ev.type === Ev.SESSION_REQUEST) {
        const lane = ev.lane;
        todo.push(() => { ss = srv.accept(lane, KEY, [], EMPTY, now); });
      } else if (core === cli && ev.type === Ev.SESSION_OPEN) {
        open = true;
      }
    }
    return todo;
  };
  for (let guard = 0; guard < 20 && !open; guard++) {
    for (const core of [cli, srv]) {
      for (const f of drain(core)) f();
      while (core.pollTransmit(now) !== 0) {
        const to = core === cli ? srv : cli;
        const b = Buffer.from(core.txView());
        to.rx(core === cli ? sl : cl, b, now);
        for (const f of drain(to)) f();
      }
    }
  }
  if (!open || ss <= 0) throw new Error('bench: the session did not open');
  return { cli, srv, cs, ss, cl, sl };
}

// ---- drivers: the steps of one turn ----

/**
 * One turn is: client queues requests; client's batches go to the server
 * (poll on the client, rx on the server); server answers; server's batches
 * go to the client; client counts its responses.
 */
interface Driver {
  name: string;
  /** Client: queue INFLIGHT requests. */
  queue(): void;
  /** side 0 = client, 1 = server: pollTransmit; true if a batch is ready. */
  poll(side: number): boolean;
  /** The ready batch of `side` goes to the other core in one rx() call. */
  deliver(side: number): void;
  /** Server: drain events once, answer every request. */
  answer(): void;
  /** Client: drain events once; returns the responses. */
  collect(): number;
}

function turn(d: Driver): number {
  d.queue();
  while (d.poll(0)) d.deliver(0);
  d.answer();
  while (d.poll(1)) d.deliver(1);
  return d.collect();
}

const hr = () => process.hrtime.bigint();

/** The same turn, adding ns to acc[0] (client: queue, encode, decode responses) and acc[1] (server). */
function timedTurn(d: Driver, acc: number[]): void {
  let t = hr(), u: bigint;
  d.queue();
  for (;;) {
    const more = d.poll(0);
    u = hr(); acc[0] += Number(u - t); t = u;
    if (!more) break;
    d.deliver(0);
    u = hr(); acc[1] += Number(u - t); t = u;
  }
  d.answer();
  for (;;) {
    const more = d.poll(1);
    u = hr(); acc[1] += Number(u - t); t = u;
    if (!more) break;
    d.deliver(1);
    u = hr(); acc[0] += Number(u - t); t = u;
  }
  d.collect();
  acc[0] += Number(hr() - t);
}

function fail(msg: string): never {
  throw new Error(`bench: ${msg}`);
}

function coreDriver(p: Pair, lean: boolean): Driver {
  const { cli, srv, cs, ss, cl, sl } = p;
  const cores = [cli, srv], lanes = [sl, cl];
  const ev = new CoreEvent();
  const tags = new Uint32Array(INFLIGHT * 2);
  let u32c = new Uint32Array(cli.memory.buffer);
  let u32s = new Uint32Array(srv.memory.buffer);
  const evc = cli.eventOffset(0), evs = srv.eventOffset(0);
  return {
    name: lean ? 'lean' : 'core',
    queue: () => {
      for (let i = 0; i < INFLIGHT; i++) {
        if (cli.request(cs, EMPTY, reqData, 0, 0, 0, now) <= 0) fail('request refused');
      }
    },
    poll: (side) => cores[side].pollTransmit(now) !== 0,
    deliver: (side) => {
      const v = cores[side].txView();
      if (cores[1 - side].rx(lanes[side], v, now) !== v.length) fail('rx took part of a batch');
    },
    answer: () => {
      const n = srv.pollEvents();
      let k = 0;
      if (lean) {
        if (u32s.byteLength === 0) u32s = new Uint32Array(srv.memory.buffer);
        for (let i = 0, o = evs >>> 2; i < n; i++, o += EVENT_SIZE >>> 2) {
          if (u32s[o] === Ev.REQUEST) tags[k++] = u32s[o + 6];
        }
      } else {
        for (let i = 0; i < n; i++) {
          srv.event(i, ev);
          if (ev.type === Ev.REQUEST) tags[k++] = ev.tag;
        }
      }
      for (let i = 0; i < k; i++) {
        if (srv.respond(ss, tags[i], EMPTY, respData, 0, 0, now) !== 0) fail('respond refused');
      }
    },
    collect: () => {
      const n = cli.pollEvents();
      let got = 0;
      if (lean) {
        if (u32c.byteLength === 0) u32c = new Uint32Array(cli.memory.buffer);
        for (let i = 0, o = evc >>> 2; i < n; i++, o += EVENT_SIZE >>> 2) if (u32c[o] === Ev.RESPONSE) got++;
      } else {
        for (let i = 0; i < n; i++) if (cli.event(i, ev).type === Ev.RESPONSE) got++;
      }
      return got;
    },
  };
}

// ---- raw: the exports, nothing else ----

interface Exports {
  memory: WebAssembly.Memory;
  configPtr(): number; init(): number; stagingPtr(): number; eventsPtr(): number;
  connect(uriLen: number, resourceLen: number, attrsLen: number, lanes: number, now: number): number;
  laneAccepted(now: number): number;
  laneUp(h: number, now: number): number;
  rx(h: number, len: number, now: number): number;
  accept(h: number, portalsLen: number, attrsLen: number, now: number): number;
  request(h: number, hdrLen: number, dataLen: number, flags: number, timeoutMs: number, ext: number, now: number): number;
  respond(h: number, tag: number, hdrLen: number, dataLen: number, flags: number, ext: number, now: number): number;
  pollEvents(): number;
  pollTransmit(now: number): number;
  txPtr(): number; txLen(): number;
}

class Raw {
  readonly x: Exports;
  readonly u8: Uint8Array;
  readonly u32: Uint32Array;
  readonly staging: number;
  readonly events: number;
  constructor(seed: number) {
    this.x = new WebAssembly.Instance(coreModule(false), {}).exports as unknown as Exports;
    const words = configWords({ ...config, seed });
    new Uint32Array(this.x.memory.buffer, this.x.configPtr(), 16).set(words);
    if (this.x.init() < 0) fail('raw init');
    // The memory does not grow after init: these views stay valid.
    this.u8 = new Uint8Array(this.x.memory.buffer);
    this.u32 = new Uint32Array(this.x.memory.buffer);
    this.staging = this.x.stagingPtr();
    this.events = this.x.eventsPtr();
  }
  ev(i: number, field: number): number {
    return this.u32[((this.events + i * EVENT_SIZE) >>> 2) + field];
  }
}

function rawDriver(): Driver {
  const c = new Raw(1), s = new Raw(2);
  // Handshake by hand.
  const uri = Buffer.from('tcp://bench:1/core/core');
  c.u8.set(uri, c.staging);
  const cs = c.x.connect(uri.length - 5, 5, 0, 1, now);
  let cl = 0, sl = 0, ss = 0;
  for (let i = 0, n = c.x.pollEvents(); i < n; i++) if (c.ev(i, 0) === Ev.OPEN_LANE) cl = c.ev(i, 2);
  sl = s.x.laneAccepted(now);
  c.x.laneUp(cl, now);
  const pass = (a: Raw, b: Raw, lane: number) => {
    while (a.x.pollTransmit(now) !== 0) {
      const p = a.x.txPtr(), n = a.x.txLen();
      b.u8.set(a.u8.subarray(p, p + n), b.staging);
      if (b.x.rx(lane, n, now) !== n) fail('raw rx took part of a batch');
    }
  };
  pass(c, s, sl);
  for (let i = 0, n = s.x.pollEvents(); i < n; i++) {
    if (s.ev(i, 0) === Ev.SESSION_REQUEST) ss = s.x.accept(s.ev(i, 2), 0, 0, now);
  }
  s.x.pollEvents();
  pass(s, c, cl);
  let open = false;
  for (let i = 0, n = c.x.pollEvents(); i < n; i++) if (c.ev(i, 0) === Ev.SESSION_OPEN) open = true;
  if (!open || ss <= 0) fail('raw session did not open');

  const tags = new Uint32Array(INFLIGHT * 2);
  const cEv = c.events >>> 2, sEv = s.events >>> 2, step = EVENT_SIZE >>> 2;
  const raws = [c, s], lanes = [sl, cl];
  return {
    name: 'raw',
    queue: () => {
      for (let i = 0; i < INFLIGHT; i++) {
        c.u8.set(reqData, c.staging);
        if (c.x.request(cs, 0, SIZE, 0, 0, 0, now) <= 0) fail('raw request refused');
      }
    },
    poll: (side) => raws[side].x.pollTransmit(now) !== 0,
    deliver: (side) => {
      const a = raws[side], b = raws[1 - side];
      const p = a.x.txPtr(), n = a.x.txLen();
      b.u8.set(a.u8.subarray(p, p + n), b.staging);
      if (b.x.rx(lanes[side], n, now) !== n) fail('raw rx took part of a batch');
    },
    answer: () => {
      const n = s.x.pollEvents();
      let k = 0;
      for (let i = 0, o = sEv; i < n; i++, o += step) if (s.u32[o] === Ev.REQUEST) tags[k++] = s.u32[o + 6];
      for (let i = 0; i < k; i++) {
        s.u8.set(respData, s.staging);
        if (s.x.respond(ss, tags[i], 0, SIZE, 0, 0, now) !== 0) fail('raw respond refused');
      }
    },
    collect: () => {
      const n = c.x.pollEvents();
      let got = 0;
      for (let i = 0, o = cEv; i < n; i++, o += step) if (c.u32[o] === Ev.RESPONSE) got++;
      return got;
    },
  };
}

// ---- measuring ----

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

interface Result {
  driver: string;
  /** Median wall-clock ns per request + response. */
  nsPerPair: number;
  /** The best round's wall-clock ns per pair (the least disturbed by other load). */
  minNsPerPair: number;
  /** Median CPU ns (user + system of this process) per pair: what load from elsewhere moves least. */
  cpuNsPerPair: number;
  pairsPerSec: number;
  msgsPerSec: number;
  /** Wall ns per pair on each side (separate timed rounds). */
  phases: { client: number; server: number };
  rounds: number[];
}

/** One untimed-inside round: wall and CPU ns per pair. */
function round(d: Driver): [number, number] {
  const pairs = TURNS * INFLIGHT;
  let got = 0;
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < TURNS; i++) {
    got += turn(d);
    now += 10;
  }
  const ns = Number(process.hrtime.bigint() - t0);
  const cu = process.cpuUsage(c0);
  if (got !== pairs) fail(`${d.name}: ${got} responses for ${pairs} requests`);
  return [ns / pairs, ((cu.user + cu.system) * 1000) / pairs];
}

function phaseRound(d: Driver): number[] {
  const acc = [0, 0];
  for (let i = 0; i < TURNS; i++) {
    timedTurn(d, acc);
    now += 10;
  }
  return acc.map((x) => x / (TURNS * INFLIGHT));
}

/**
 * Rounds of every driver taken in turn (core, lean, raw, core, ...), so that
 * load from elsewhere on a shared machine falls on all of them alike.
 */
function measureAll(ds: Driver[]): Result[] {
  const wall = ds.map(() => [] as number[]);
  const cpu = ds.map(() => [] as number[]);
  const ph = ds.map(() => [[], []] as number[][]);
  for (let r = 0; r < WARMUP + ROUNDS; r++) {
    ds.forEach((d, k) => {
      const [w, c] = round(d);
      const p = phaseRound(d);
      if (r >= WARMUP) {
        wall[k].push(w);
        cpu[k].push(c);
        p.forEach((x, j) => ph[k][j].push(x));
      }
    });
  }
  return ds.map((d, k) => {
    const ns = median(wall[k]);
    return {
      driver: d.name, nsPerPair: ns, minNsPerPair: Math.min(...wall[k]), cpuNsPerPair: median(cpu[k]), pairsPerSec: 1e9 / ns, msgsPerSec: 2e9 / ns,
      phases: { client: median(ph[k][0]), server: median(ph[k][1]) },
      rounds: wall[k],
    };
  });
}

/** The JS->WASM floor: an export that does nothing much, called in a loop. */
function callCost(): number {
  const r = new Raw(3);
  const n = 5_000_000;
  let sink = 0;
  for (let k = 0; k < 2; k++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) sink += r.x.txLen();
    const ns = Number(process.hrtime.bigint() - t0) / n;
    if (k === 1) return sink >= 0 ? ns : ns;
  }
  return 0;
}

/** One staging copy of a SIZE-byte payload (TypedArray.set into core memory). */
function copyCost(): number {
  const r = new Raw(4);
  const n = 5_000_000;
  let ns = 0;
  for (let k = 0; k < 2; k++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) r.u8.set(reqData, r.staging + (i & 7));
    ns = Number(process.hrtime.bigint() - t0) / n;
  }
  return ns;
}

function main(): void {
  const make: Record<string, () => Driver> = {
    core: () => coreDriver(openPair(), false), lean: () => coreDriver(openPair(), true), raw: rawDriver,
  };
  const names = String(opt.drivers).split(',');
  const drivers = names.map((n) => (make[n] ?? fail(`unknown driver ${n}`))());
  const results = measureAll(drivers);
  const call = callCost();
  const copy = copyCost();
  if (opt.json) {
    console.log(JSON.stringify({ inflight: INFLIGHT, size: SIZE, turns: TURNS, rounds: ROUNDS, callNs: call, copyNs: copy, results }, null, 2));
    return;
  }
  const f1 = (x: number) => x.toFixed(1).padStart(7);
  const fm = (x: number) => `${(x / 1e6).toFixed(2)} M`.padStart(8);
  console.log(`bench:core: ${SIZE}-byte request + ${SIZE}-byte response through two cores, ${INFLIGHT} in flight per turn,`);
  console.log(`  ${TURNS} turns x ${ROUNDS} rounds per driver, interleaved, median (${WARMUP} warm-up rounds); node ${process.version}, load ${loadavg()}`);
  console.log('');
  console.log('  driver  ns/pair (best)  cpu ns/pair  pairs/s   msgs/s | ns/pair: client side  server side');
  for (const r of results) {
    console.log(`  ${r.driver.padEnd(6)}${f1(r.nsPerPair)} (${r.minNsPerPair.toFixed(0).padStart(4)})   ${f1(r.cpuNsPerPair)} ${fm(r.pairsPerSec)} ${fm(r.msgsPerSec)} |` +
      `            ${f1(r.phases.client)}      ${f1(r.phases.server)}`);
  }
  console.log('  (client side: queue requests, coalesce them, decode responses and their events;');
  console.log('   server side: decode requests, drain events, answer, coalesce responses; acks ride in both batches)');
  const by = (n: string) => results.find((r) => r.driver === n);
  const core = by('core'), lean = by('lean'), raw = by('raw');
  console.log('');
  if (!core || !lean || !raw) return;
  console.log(`  host/core.ts over the raw exports: ${(core.cpuNsPerPair - raw.cpuNsPerPair).toFixed(1)} cpu ns/pair; ` +
    `of which event(i, out): ${(core.cpuNsPerPair - lean.cpuNsPerPair).toFixed(1)}`);
  const calls = 2 + 10 / INFLIGHT;
  const wasm = raw.cpuNsPerPair - calls * call - 2 * copy;
  console.log(`  raw = WASM + ${calls.toFixed(2)} JS->WASM calls per pair (${call.toFixed(1)} ns each) + two ${SIZE}-byte staging copies ` +
    `(${copy.toFixed(1)} ns each): WASM about ${wasm.toFixed(0)} ns/pair, ${(wasm / 2).toFixed(0)} ns per message through both cores`);
  console.log(`  target (issue 9) 100 ns per message, 200 per pair: ${core.cpuNsPerPair <= 200 ? 'met' : 'not met'} (host/core.ts ${(core.cpuNsPerPair / 2).toFixed(0)} cpu ns per message; floor with raw exports ${(raw.cpuNsPerPair / 2).toFixed(0)})`);
}

function loadavg(): string {
  return require('node:os').loadavg().map((x: number) => x.toFixed(1)).join(' ');
}

main();
