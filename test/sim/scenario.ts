// One scenario: a server core, a few client cores (one session of 1-3 lanes
// each), an application load, a fault schedule, all derived from one seed
// by generate(), and run() that plays it on the simulated network in
// virtual time and checks the ledger.
//
// Phases (virtual time): load and faults until activeUntil (partitions may
// last longer); clients close gracefully at closeAt (a session that is
// resuming closes once it is back, or is lost); by endAt every core must be
// idle (no lanes, no sessions, no timer) and every request must have its
// outcome. The run stops early once everything is idle after closeAt.

import { CoreConfig } from '../../host/core';
import { Recorder } from '../../host/record';
import { Clock } from './clock';
import { Rng } from './rng';
import { Ledger, Kind, kinds } from './ledger';
import { Host, NetParams, SimCore, SimNet } from './net';
import { ClientApp, OpSpec, ResponderSpec, Router, ServerApp, World } from './app';

const MS = 1000;

export interface ClientSpec {
  config: Partial<CoreConfig>;
  lanes: number;
  /** Base one-way latency of its links (µs); each link varies around it. */
  latencyUs: number;
  /** Bandwidth of its links, bytes per µs (0 or absent: unlimited). */
  bytesPerUs?: number;
  startAt: number;
  ops: OpSpec[];
  /** Sessions the client core carries at once, each its own application (default 1). */
  sessions?: number;
}

export type Fault =
  | { at: number; kind: 'kill'; client: number; halfOpen?: boolean; deaf?: 'client' | 'server' }
  | { at: number; kind: 'killAll'; client: number }
  | { at: number; kind: 'partition'; client: number; until: number }
  | { at: number; kind: 'restart'; downUs: number };

export interface Scenario {
  seed: number;
  server: Partial<CoreConfig>;
  clients: ClientSpec[];
  faults: Fault[];
  net: NetParams;
  responder: ResponderSpec;
  activeUntil: number;
  closeAt: number;
  endAt: number;
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
          ops.push({ at, kind: r.chance(0.7) ? 'cycle' : 'destroy', size: 0, ext: false, receipt: false, timeoutMs: 0, cancelAfterUs: -1 });
          continue;
        }
        const ext = r.chance(0.06);
        const size = ext ? r.int(8193, 100_000) : r.chance(0.1) ? r.int(0, 8192 - 16) : r.int(0, 300);
        const req = r.chance(reqP);
        ops.push({
          at, kind: req ? 'req' : 'ow', size, ext, receipt: r.chance(0.2),
          timeoutMs: req && r.chance(0.3) ? r.int(5, 800) : 0,
          cancelAfterUs: req && r.chance(0.12) ? r.int(0, 300) * MS : -1,
        });
        at += r.chance(0.5) ? 0 : r.int(0, 2000);
      }
    }
    ops.sort((a, b) => a.at - b.at);
    const sessions = r.chance(0.25) ? 2 : 1;
    for (const o of ops) o.slot = r.int(0, sessions - 1);
    clients.push({
      sessions,
      config: coreConfig(r), lanes: r.int(1, 3), latencyUs: r.int(100, 20_000), startAt, ops,
      bytesPerUs: r.pick([0, 0, 5, 20, 100, 1000]),
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
  }
  if (r.chance(0.08)) faults.push({ at: r.int(50, activeUntil / MS) * MS, kind: 'restart', downUs: r.int(0, 300) * MS });
  faults.sort((a, b) => a.at - b.at);
  let lastFault = activeUntil;
  for (const f of faults) if (f.kind === 'partition' && f.until > lastFault) lastFault = f.until;
  // Clients close once partitions are over; a session still resuming then
  // closes when it is back (or is lost), so endAt leaves room for resumeMs.
  const closeAt = lastFault + 300 * MS;
  return {
    seed,
    // The server's lane table never the limit: 4 clients x 2 sessions x 3 lanes, plus lanes closing or in handshake.
    server: { ...coreConfig(r), maxLanes: 64 },
    clients,
    faults,
    net: { splitP: r.pick([0, 0.3, 0.8]), coalesceP: r.pick([0, 0.5]), dupP: r.pick([0, 0.02, 0.1]) },
    responder: {
      immediateP: r.float(), maxDelayUs: r.int(0, 100) * MS, slowP: 0.05, slowMaxUs: r.int(100, 1000) * MS,
      extP: r.pick([0, 0.03]), receiptP: 0.1, errorP: 0.05, maxSize: r.pick([64, 1000, 8180]), rejectP: r.pick([0, 0, 0.05]),
      redirectP: r.pick([0, 0, 0.05]),
    },
    activeUntil,
    closeAt,
    endAt: closeAt + 10_000 * MS,
  };
}

export interface Result {
  seed: number;
  counts: Record<Kind, number>;
  violations: number;
  details: string[];
  stats: Record<string, number>;
  /** Recordings by side (client0, server, server1 ...) when asked for. */
  recordings: Map<string, Recorder>;
  /** Virtual time the scenario ran to (µs). */
  endedAt: number;
  world: World;
  clients: ClientApp[];
  net: SimNet;
}

export interface RunOptions {
  record?: boolean;
  /** Called before the run starts, to schedule scripted actions. */
  script?: (ctx: { world: World; clients: ClientApp[]; net: SimNet; servers: () => Host }) => void;
  /** Stop as soon as everything is idle after closeAt (default true). */
  stopWhenIdle?: boolean;
}

/** Plays a scenario; returns the violations it found. */
export function run(sc: Scenario, opts: RunOptions = {}): Result {
  const clock = new Clock();
  const rng = new Rng(sc.seed ^ 0x5eed);
  const ledger = new Ledger();
  const net = new SimNet(clock, rng.fork(), sc.net, ledger);
  const world: World = {
    clock, net, ledger, rng: rng.fork(), reconnectUntil: sc.activeUntil,
    stats: { sent: 0, responses: 0, timeouts: 0, aborted: 0, backpressure: 0, drains: 0, lost: 0, rejected: 0,
      closed: 0, destroyed: 0, resumed: 0, receipts: 0, cancelsSeen: 0, ext: 0, redirects: 0, responded: 0 },
  };
  const recordings = new Map<string, Recorder>();
  const hosts: Host[] = [];
  const servers: Host[] = [];
  const seeds = new Rng(sc.seed ^ 0xc0de);
  const makeHost = (name: string, config: Partial<CoreConfig>, client: number): Host => {
    const rec = opts.record ? new Recorder() : undefined;
    if (rec) recordings.set(name, rec);
    const h = new Host(name, new SimCore({ ...config, seed: seeds.u32() }, rec), client, rec);
    hosts.push(h);
    return h;
  };
  const newServer = (): Host => {
    const h = makeHost(servers.length ? `server${servers.length}` : 'server', sc.server, -1);
    h.app = new ServerApp(world, h, sc.responder);
    servers.push(h);
    return h;
  };
  net.newServer = newServer;
  net.server = newServer();
  net.clientLatency = (c) => sc.clients[c].latencyUs;
  net.clientBandwidth = (c) => sc.clients[c].bytesPerUs ?? 0;
  // Every session is its own application with its own id (the ledger's
  // "client"); a client core with several carries them side by side.
  const clients: ClientApp[] = [];
  sc.clients.forEach((spec, i) => {
    const h = makeHost(`client${i}`, spec.config, i);
    const router = new Router();
    h.app = router;
    for (let k = 0; k < (spec.sessions ?? 1); k++) {
      const app = new ClientApp(world, clients.length, h, spec.lanes);
      clients.push(app);
      router.apps.push(app);
      clock.at(spec.startAt + k * 1000, () => app.connect());
    }
    for (const op of spec.ops) clock.at(op.at, () => router.apps[op.slot ?? 0].issue(op));
  });
  for (const f of sc.faults) {
    if (f.kind === 'partition') {
      let ps = net.partitions.get(f.client);
      if (!ps) net.partitions.set(f.client, ps = []);
      ps.push([f.at, f.until]);
      continue;
    }
    clock.at(f.at, () => {
      if (f.kind === 'kill') {
        const ls = net.openLinks(f.client);
        if (ls.length) net.kill(ls[net.rng.int(0, ls.length - 1)], f.halfOpen, f.deaf);
      } else if (f.kind === 'killAll') {
        for (const l of net.openLinks(f.client)) net.kill(l);
      } else if (f.kind === 'restart') {
        net.restart(f.downUs);
      }
    });
  }
  clock.at(sc.closeAt, () => { for (const c of clients) c.finish(); });
  opts.script?.({ world, clients, net, servers: () => servers[servers.length - 1] });

  let steps = 0;
  let prunedAt = 0;
  const stopWhenIdle = opts.stopWhenIdle ?? true;
  try {
    while (clock.peek() <= sc.endAt) {
      const t = clock.take()!;
      t.fn();
      if (++steps > 5_000_000) { ledger.report('stuck', 'more than 5M steps'); break; }
      if (clock.now - prunedAt > 100 * MS) {
        net.prune();
        prunedAt = clock.now;
        if (stopWhenIdle && clock.now > sc.closeAt && idle(hosts, net, clients) === undefined) break;
      }
    }
  } catch (e) {
    ledger.report('stuck', `exception at ${clock.now}us: ${(e as Error).stack ?? e}`);
  }
  // End of scenario: everything must be settled.
  net.prune();
  const why = idle(hosts, net, clients);
  if (why) ledger.report('stuck', `not idle at ${clock.now}us: ${why}`);
  for (const h of hosts) {
    const o = h.core.trapped ? -1 : h.core.eventOverflow();
    if (o !== 0) ledger.report('stuck', `${h.name}: event overflow ${o}`);
  }
  ledger.check();
  const stats: Record<string, number> = { ...world.stats, ...net.stats, virtualMs: Math.round(clock.now / MS), steps };
  return {
    seed: sc.seed, counts: { ...ledger.counts }, violations: ledger.violations, details: ledger.details, stats,
    recordings, endedAt: clock.now, world, clients, net,
  };
}

/** Why the simulation is not idle, or undefined when it is. */
function idle(hosts: Host[], net: SimNet, clients: ClientApp[]): string | undefined {
  const b = net.busy();
  if (b) return b;
  for (const c of clients) {
    if (c.inc && c.inc.state !== 'ended') return `client ${c.idx} session still ${c.inc.state}`;
    if (c.queue.length && c.inc) return `client ${c.idx} has ${c.queue.length} ops queued`;
  }
  for (const h of hosts) {
    if (!h.alive) continue;
    if (h.core.trapped) return `${h.name} trapped`;
    if (h.ends.size) return `${h.name} still has ${h.ends.size} lanes`;
    const d = h.core.nextDeadline();
    if (d >= 0) return `${h.name} still has a timer armed (${d}us)`;
  }
  return undefined;
}

export function summary(counts: Record<Kind, number>, n: number): string {
  return `sim: ${n} scenarios, ${counts.lost} lost, ${counts.duplicated} duplicated, ${counts.order} out of order, ${counts.stuck} stuck`;
}

export { kinds };
