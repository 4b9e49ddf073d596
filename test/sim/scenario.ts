// One scenario: a server, a few client contexts (one or two sessions of 1-3
// lanes each), an application load, a fault schedule, all derived from one
// seed by generate(), and run() that plays it over the simulated network in
// virtual time with real Contexts, Sessions and a server context, and
// checks the ledger.
//
// Phases (virtual time): load and faults until activeUntil (partitions may
// last longer); clients close gracefully at closeAt (a session that is
// resuming closes once it is back, or is lost), and some scenarios close
// the server then too. The run ends when nothing is left to do (no task on
// the clock: every session ended, every lane closed, every linger over)
// or at endAt, which is a violation. Then every context must hold nothing
// and have no timer armed, and every operation must have settled once.
//
// The loop is async: the host transmits in microtasks and settles its
// promises in microtasks, so after each virtual-time task the microtask
// queue is drained (one setImmediate) before the next one. Nothing else
// runs in the process, so the order is the same every time.

import diagnostics_channel from 'node:diagnostics_channel';
import { registerTransport } from '../../host/index';
import type { CoreConfig } from '../../host/core';
import { Recorder } from '../../host/record';
import { Clock, SCENARIO, SERVER } from './clock';
import { Rng } from './rng';
import { Ledger, Kind, kinds } from './ledger';
import { NetParams, SimNet } from './net';
import {
  ClientApp, ClientHost, ClientSpec, OpSpec, ResponderSpec, ServerApp, ServerSpec, World, newStats, CtxEntry,
} from './app';

export const MS = 1000;

export type { ClientSpec, OpSpec, ResponderSpec, ServerSpec };

export type Fault =
  | { at: number; kind: 'kill'; client: number; halfOpen?: boolean; deaf?: 'client' | 'server' }
  | { at: number; kind: 'killAll'; client: number }
  | { at: number; kind: 'partition'; client: number; until: number }
  /** The server goes away (graceful: Server.close(); else Context.close()) and a new one listens after downUs. */
  | { at: number; kind: 'restart'; downUs: number; graceful?: boolean; closeMs?: number }
  /** The client process closes its Context and starts over with a new one. */
  | { at: number; kind: 'ctxClose'; client: number };

export interface Scenario {
  seed: number;
  server: ServerSpec;
  clients: ClientSpec[];
  faults: Fault[];
  net: NetParams;
  responder: ResponderSpec;
  activeUntil: number;
  closeAt: number;
  endAt: number;
  /** At closeAt the server closes too: gracefully ('close') or its context ('context'). */
  serverEnd?: 'close' | 'context';
}

/** Timers small enough that a scenario is a few virtual seconds. */
export const simTimers: Partial<CoreConfig> = {
  keepaliveMs: 50,
  resumeMs: 2000,
  helloTimeoutMs: 200,
  backoffMinMs: 5,
  backoffMaxMs: 100,
};

function coreConfig(r: Rng): Partial<CoreConfig> {
  return {
    ...simTimers,
    maxSessions: 16,
    maxLanes: 32,
    windowMsgs: r.pick([16, 32, 64]),
    windowBytes: r.pick([32768, 65536, 131072]),
    maxRequests: r.pick([4, 8, 16, 64]),
    eventCap: r.pick([64, 256, 1024]),
  };
}

/** A random scenario: a pure function of the seed. */
export function generate(seed: number): Scenario {
  const r = new Rng(seed);
  const activeUntil = r.int(400, 2500) * MS;
  const nClients = r.int(1, 4);
  const clients: ClientSpec[] = [];
  const faults: Fault[] = [];
  const intensity = r.float();
  const hotP = r.pick([0, 0, 0.2, 0.6]);
  for (let c = 0; c < nClients; c++) {
    const ops: OpSpec[] = [];
    const n = r.int(3, 60);
    const startAt = r.int(0, 50) * MS;
    const reqP = r.float();
    for (let i = 0; i < n; i++) {
      let at = r.int(startAt, activeUntil);
      const burst = r.chance(0.1) ? r.int(2, 40) : 1;
      for (let b = 0; b < burst; b++) {
        if (r.chance(0.015)) {
          ops.push({ at, kind: r.chance(0.7) ? 'cycle' : 'destroy', size: 0, receipt: false, timeoutMs: 0, cancelAfterUs: -1 });
          continue;
        }
        const ext = r.chance(0.06);
        const size = ext ? r.int(8193, 100_000) : r.chance(0.1) ? r.int(0, 8192 - 16) : r.int(0, 300);
        const req = r.chance(reqP);
        const hot = r.chance(hotP);
        ops.push({
          at, kind: req ? 'req' : 'ow', size, receipt: !hot && r.chance(0.2), hot,
          timeoutMs: req && r.chance(0.3) ? r.int(5, 800) : 0,
          cancelAfterUs: req && !hot && r.chance(0.12) ? r.int(0, 300) * MS : -1,
        });
        at += r.chance(0.5) ? 0 : r.int(0, 2000);
      }
    }
    ops.sort((a, b) => a.at - b.at);
    const sessions = r.chance(0.25) ? 2 : 1;
    for (const o of ops) o.slot = r.int(0, sessions - 1);
    const views = r.chance(0.3);
    clients.push({
      sessions, views, releaseMaxUs: views ? r.pick([0, 20 * MS]) : 0,
      config: coreConfig(r), lanes: r.int(1, 3), latencyUs: r.int(100, 20_000), startAt, ops,
      bytesPerUs: r.pick([0, 0, 5, 20, 100, 1000]),
      admission: { lingerMs: r.pick([100, 500, 2000]) },
    });
    const kills = r.chance(intensity) ? r.int(1, 6) : 0;
    for (let k = 0; k < kills; k++) faults.push({ at: r.int(startAt, activeUntil), kind: 'kill', client: c, halfOpen: r.chance(0.3) });
    if (r.chance(0.15 * intensity)) faults.push({ at: r.int(startAt, activeUntil), kind: 'killAll', client: c });
    const parts = r.chance(0.4 * intensity) ? r.int(1, 3) : 0;
    let from = startAt;
    for (let k = 0; k < parts && from < activeUntil; k++) {
      const at = r.int(from, activeUntil);
      const len = r.chance(0.2) ? r.int(2000, 2600) * MS : r.chance(0.5) ? r.int(100, 400) * MS : r.int(10, 1500) * MS;
      faults.push({ at, kind: 'partition', client: c, until: at + len });
      from = at + len + 10 * MS;
    }
    if (r.chance(0.05)) faults.push({ at: r.int(startAt, activeUntil), kind: 'ctxClose', client: c });
  }
  if (r.chance(0.08)) {
    faults.push({
      at: r.int(50, activeUntil / MS) * MS, kind: 'restart', downUs: r.int(0, 300) * MS,
      graceful: r.chance(0.5), closeMs: r.pick([50, 1000, 5000]),
    });
  }
  faults.sort((a, b) => a.at - b.at);
  let lastFault = activeUntil;
  for (const f of faults) if (f.kind === 'partition' && f.until > lastFault) lastFault = f.until;
  // Clients close once partitions are over; a session still resuming then
  // closes when it is back (or is lost), so endAt leaves room for resumeMs.
  const closeAt = lastFault + 300 * MS;
  const serverViews = r.chance(0.3);
  const end = r.float();
  const sc: Scenario = {
    seed,
    // The server's lane table never the limit: 4 clients x 2 sessions x 3 lanes, plus lanes closing or in handshake.
    server: {
      config: { ...coreConfig(r), maxLanes: 64, maxSessions: 32 }, views: serverViews,
      admission: { lingerMs: r.pick([100, 500, 2000]) },
    },
    clients,
    faults,
    net: { splitP: r.pick([0, 0.3, 0.8]), coalesceP: r.pick([0, 0.5]), dupP: r.pick([0, 0.02, 0.1]) },
    responder: {
      immediateP: r.float(), maxDelayUs: r.int(0, 100) * MS, slowP: 0.05, slowMaxUs: r.int(100, 1000) * MS,
      extP: r.pick([0, 0.03]), errorP: 0.05, maxSize: r.pick([64, 1000, 8180]), rejectP: r.pick([0, 0, 0.05]),
      redirectP: r.pick([0, 0, 0.05]), laterP: r.pick([0, 0.3]), releaseMaxUs: serverViews ? r.pick([0, 20 * MS]) : 0,
    },
    activeUntil,
    closeAt,
    endAt: closeAt + 10_000 * MS,
    serverEnd: end < 0.15 ? 'close' : end < 0.25 ? 'context' : undefined,
  };
  // Pre-shared keys in some seeds: every lane proves the key, and a client
  // with a wrong key must be refused (NEXIO_ERR_AUTH) every time it tries.
  // Drawn last, so the seeds drawn before keys existed play as they did.
  if (r.chance(0.3)) {
    sc.server.psk = true;
    for (const c of clients) c.psk = r.chance(0.15) ? 'wrong' : 'right';
  }
  return sc;
}

export interface Result {
  seed: number;
  counts: Record<Kind, number>;
  violations: number;
  details: string[];
  stats: Record<string, number>;
  /** Recordings by context (client0, client0.1, server, server1 ...) when asked for. */
  recordings: Map<string, Recorder>;
  /** Virtual time the scenario ran to (µs). */
  endedAt: number;
  world: World;
  clients: ClientApp[];
  net: SimNet;
}

export interface RunOptions {
  record?: boolean;
  /** Called with every session and lane event of the host (diagnostics channels), stamped with virtual time and actor. */
  trace?: (line: string) => void;
  /** Called before the run starts, to schedule scripted actions. */
  script?: (ctx: { world: World; clients: ClientApp[]; hosts: ClientHost[]; net: SimNet; server: () => ServerApp | undefined }) => void;
}


/** The world of the scenario running now (the process runs one at a time). */
let current: World | undefined;

// No peer in the simulation is hostile: a protocol error anywhere is a bug.
diagnostics_channel.subscribe('nexio:lane', (m) => {
  const e = m as { event: string; lane: number; code?: number; reason?: string };
  if (e.event === 'protocol-error') current?.ledger.report('stuck', `protocol error ${e.code} on lane ${e.lane} at ${current.clock.now}us${e.reason ? `: ${e.reason}` : ''}`);
});
/** The trace of the scenario running now (RunOptions.trace). */
let tracer: ((line: string) => void) | undefined;
const actorName = (a: number) => (a === SERVER ? 'server' : a === SCENARIO ? 'sim' : `client${a}`);
for (const ch of ['nexio:lane', 'nexio:session', 'nexio:context']) {
  diagnostics_channel.subscribe(ch, (m) => {
    if (!tracer || !current) return;
    const json = JSON.stringify(m, (_k, v) => (typeof v === 'bigint' ? v.toString(16) : v instanceof Error ? `${(v as { code?: string }).code ?? v.name}: ${v.message}` : v));
    tracer(`${(current.clock.now / MS).toFixed(3)}ms ${actorName(current.clock.actor)} ${ch.slice(6)} ${json}`);
  });
}

diagnostics_channel.subscribe('nexio:context', (m) => {
  const e = (m as { error?: Error }).error;
  if (e && (e as { code?: string }).code === 'NEXIO_ERR_CORE_TRAP') current?.ledger.report('stuck', `a core trapped at ${current.clock.now}us: ${e.message}`);
});

const MAX_STEPS = 5_000_000;
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Plays a scenario; returns the violations it found. */
export async function run(scenario: Scenario, opts: RunOptions = {}): Promise<Result> {
  const sc = scenario;
  const clock = new Clock();
  const rng = new Rng(sc.seed ^ 0x5eed);
  const ledger = new Ledger();
  const net = new SimNet(clock, rng.fork(), sc.net, ledger);
  registerTransport(net);
  const world: World = {
    clock, net, ledger, rng: rng.fork(), seeds: new Rng(sc.seed ^ 0xc0de), reconnectUntil: sc.activeUntil,
    stats: newStats(), record: !!opts.record, recordings: new Map(), contexts: [],
    serverClosedAt: -1,
  };
  const servers: ServerApp[] = [];
  let up: ServerApp | undefined;
  const startServer = (): void => {
    const s = new ServerApp(world, servers.length, sc.server, sc.responder);
    servers.push(s);
    net.serverGen = s.gen;
    up = s;
    s.listen().catch((e) => ledger.report('stuck', `server ${s.gen}: listen failed: ${(e as Error).message}`));
  };
  /** The server goes away: gracefully (Server.close()) or its context closed. */
  const stopServer = (graceful: boolean, closeMs: number): void => {
    const s = up;
    if (!s) return;
    up = undefined;
    const op = ledger.track(`server ${s.gen}: ${graceful ? 'close()' : 'Context.close()'}`, clock.now);
    if (graceful) world.serverClosedAt = clock.now;
    (graceful ? s.close(closeMs) : s.ctx.close()).then(() => ledger.settle(op, clock.now), (e) => {
      ledger.settle(op, clock.now);
      ledger.report('stuck', `server ${s.gen}: close rejected: ${(e as Error).message}`);
    });
  };
  clock.at(0, startServer, SERVER);
  net.clientLatency = (c) => sc.clients[c].latencyUs;
  net.clientBandwidth = (c) => sc.clients[c].bytesPerUs ?? 0;
  // Every session is its own application with its own id (the ledger's
  // "client"); a client context with several carries them side by side.
  const clients: ClientApp[] = [];
  const hosts: ClientHost[] = [];
  sc.clients.forEach((spec, i) => {
    const h = new ClientHost(world, i, spec);
    hosts.push(h);
    for (let k = 0; k < (spec.sessions ?? 1); k++) {
      const app = new ClientApp(world, clients.length, h, spec.lanes);
      clients.push(app);
      h.apps.push(app);
      clock.at(spec.startAt + k * 1000, () => app.connect(), i);
    }
    for (const op of spec.ops) clock.at(op.at, () => h.apps[op.slot ?? 0].issue(op), i);
  });
  for (const f of sc.faults) {
    if (f.kind === 'partition') {
      let ps = net.partitions.get(f.client);
      if (!ps) net.partitions.set(f.client, ps = []);
      ps.push([f.at, f.until]);
      continue;
    }
    if (f.kind === 'ctxClose') {
      clock.at(f.at, () => hosts[f.client].closeContext(), f.client);
      continue;
    }
    if (f.kind === 'restart') {
      clock.at(f.at, () => {
        if (!up) return;
        world.stats.restarts++;
        stopServer(!!f.graceful, f.closeMs ?? 5000);
        clock.after(f.downUs, startServer, SERVER);
      }, SERVER);
      continue;
    }
    clock.at(f.at, () => {
      if (f.kind === 'kill') {
        const ls = net.openLinks(f.client);
        if (ls.length) net.kill(ls[net.rng.int(0, ls.length - 1)], f.halfOpen, f.deaf);
      } else if (f.kind === 'killAll') {
        for (const l of net.openLinks(f.client)) net.kill(l);
      }
    }, SCENARIO);
  }
  clock.at(sc.closeAt, () => {
    for (const c of clients) clock.at(clock.now, () => c.finish(), c.host.idx);
    if (sc.serverEnd) {
      clock.after(world.rng.int(0, 200 * MS), () => {
        world.stats.serverCloses++;
        stopServer(sc.serverEnd === 'close', 5000);
      }, SERVER);
    }
  }, SCENARIO);
  opts.script?.({ world, clients, hosts, net, server: () => up });

  const onError = (e: unknown) => ledger.report('stuck', `exception thrown at ${clock.now}us: ${(e as Error)?.stack ?? e}`);
  process.on('uncaughtException', onError);
  process.on('unhandledRejection', onError);
  current = world;
  tracer = opts.trace;
  let steps = 0;
  let prunedAt = 0;
  try {
    while (clock.peek() <= sc.endAt) {
      const t = clock.take()!;
      try {
        t.fn();
      } catch (e) {
        onError(e);
      }
      await turn();
      if (++steps > MAX_STEPS) { ledger.report('stuck', `more than ${MAX_STEPS} steps`); break; }
      if (clock.now - prunedAt > 100 * MS) {
        net.prune();
        prunedAt = clock.now;
      }
    }
    // End of scenario: everything must be settled.
    net.prune();
    const why = notIdle(clock, net, clients);
    if (why) ledger.report('stuck', `not idle at ${clock.now}us: ${why}`);
    for (const e of world.contexts) leaks(world, e);
    ledger.check();
    // Close what is left (a closed context must hold nothing either).
    for (const e of world.contexts) await e.ctx.close();
    await turn();
    for (const e of world.contexts) leaks(world, e, 'after Context.close()');
  } finally {
    current = undefined;
    tracer = undefined;
    process.off('uncaughtException', onError);
    process.off('unhandledRejection', onError);
  }
  const stats: Record<string, number> = { ...world.stats, ...net.stats, virtualMs: Math.round(clock.now / MS), steps };
  return {
    seed: sc.seed, counts: { ...ledger.counts }, violations: ledger.violations, details: ledger.details, stats,
    recordings: world.recordings, endedAt: clock.now, world, clients, net,
  };
}

/** Why the simulation is not idle, or undefined when it is. */
function notIdle(clock: Clock, net: SimNet, clients: ClientApp[]): string | undefined {
  for (const c of clients) {
    if (c.inc && c.inc.state !== 'ended') return `client ${c.idx} session still ${c.inc.state}`;
  }
  const b = net.busy();
  if (b) return b;
  if (clock.pending) {
    const live = clock.live();
    const actors = [...new Set(live.map((t) => t.actor))].join(', ');
    return `${clock.pending} tasks left (actors ${actors}; next at ${live[0].at}us)`;
  }
  return undefined;
}

/** Everything a context holds must be 0, and no timer of it armed. */
function leaks(world: World, e: CtxEntry, when = 'once its sessions ended'): void {
  const ledger = world.ledger;
  const u = e.ctx.usage();
  const held = Object.entries(u).filter(([, v]) => v !== 0).map(([k, v]) => `${k} ${v}`);
  if (held.length) ledger.report('leaked', `${e.name} ${when}: ${held.join(', ')}`);
  if (e.clock.armed.size) ledger.report('leaked', `${e.name} ${when}: ${e.clock.armed.size} timers armed on the clock`);
}

export function summary(counts: Record<Kind, number>, n: number): string {
  return `sim: ${n} scenarios, ${counts.lost} lost, ${counts.duplicated} duplicated, ${counts.order} out of order, ` +
    `${counts.stuck} stuck, ${counts.unsettled} unsettled, ${counts.leaked} leaked`;
}

export { kinds };
