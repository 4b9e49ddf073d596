// nexio tcp:// against raw `net` (batched writes), zeromq (DEALER/ROUTER) and
// @grpc/grpc-js, on one machine, in one run, and nexio tls:// beside its
// tcp:// (system 'nexio-tls': the cost of encryption, as tls / tcp ratios):
//
//   npm run bench -- [--json FILE] [--seconds S] [--rounds R] [--systems a,b] [--lanes N] [--bulk-inflight N]
//
// Every server runs in its own child process (bench/peers/serve.ts), every
// client in this process, over 127.0.0.1. Workloads:
//   rr      64-byte request/response, 128 in flight          ops/s
//   oneway  64-byte one-way messages, delivery confirmed      msgs/s
//   ping    64-byte request/response, one in flight          p50 / p99 µs
//   mib     1 MiB requests, 8-byte replies, 4 in flight       MB/s (10^6 B)
// Each round runs every workload on every system: the workload's time on a
// system is cut into slices (--slice, 0.5 s) taken in turn, nexio and raw
// always next to each other, so that load from elsewhere on a shared
// machine falls on every system alike. A figure is the median over rounds;
// a ratio is the median of the per-round ratios (nexio / peer). CPU µs per
// operation (client process + server process, from process.cpuUsage) is
// reported too: it moves much less with the machine's load than rates do.

import { execFileSync, fork, ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { table, histogram } from '../host/bench';
import type { Histogram } from 'hdr-histogram-js';
import { systems, Client, System } from './peers/index';
import { nexioOptions } from './peers/nexio';

type Metric =
  | 'rr_ops' | 'rr_p50_us' | 'rr_p99_us' | 'rr_cpu_us' | 'oneway_msgs' | 'oneway_cpu_us'
  | 'ping_p50_us' | 'ping_p99_us' | 'mib_mbps' | 'mib_cpu_us';

/** One slice of a workload on one system: operations done, seconds taken, latencies. */
interface Slice { ops: number; secs: number; h?: Histogram; p50?: number; p99?: number; cpuUs: number }

interface Workload {
  key: 'rr' | 'oneway' | 'ping' | 'mib';
  label: string;
  slice(c: Client, seconds: number): Promise<Omit<Slice, 'cpuUs'>>;
  /** The figures of one round from its slices. */
  figures(slices: Slice[]): Partial<Record<Metric, number>>;
}

const SMALL = 64;
const MIB = 1 << 20;

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const rate = (sl: Slice[]) => sum(sl.map((x) => x.ops)) / sum(sl.map((x) => x.secs));
/** CPU µs (client process + server process) per operation. */
const cpuPerOp = (sl: Slice[]) => sum(sl.map((x) => x.cpuUs)) / sum(sl.map((x) => x.ops));

function workloads(bulkInflight: number): Workload[] {
  return [
    {
      key: 'rr', label: `request/response ${SMALL} B, 128 in flight`,
      slice: async (c, seconds) => {
        const r = await c.requests({ seconds, size: SMALL, inflight: 128 });
        return { ops: r.ops, secs: r.seconds, p50: r.p50us, p99: r.p99us };
      },
      figures: (sl) => ({ rr_ops: rate(sl), rr_p50_us: median(sl.map((x) => x.p50!)), rr_p99_us: median(sl.map((x) => x.p99!)), rr_cpu_us: cpuPerOp(sl) }),
    },
    {
      key: 'oneway', label: `one-way ${SMALL} B`,
      slice: async (c, seconds) => {
        const r = await c.oneway({ seconds, size: SMALL, inflight: 0 });
        return { ops: r.ops, secs: r.seconds };
      },
      figures: (sl) => ({ oneway_msgs: rate(sl), oneway_cpu_us: cpuPerOp(sl) }),
    },
    {
      key: 'ping', label: `ping-pong ${SMALL} B, 1 in flight`,
      slice: async (c, seconds) => {
        const t = performance.now();
        const h = await c.ping(seconds, SMALL);
        return { ops: h.totalCount, secs: (performance.now() - t) / 1000, h };
      },
      figures: (sl) => {
        const h = histogram();
        for (const x of sl) h.add(x.h!);
        return { ping_p50_us: h.getValueAtPercentile(50), ping_p99_us: h.getValueAtPercentile(99) };
      },
    },
    {
      key: 'mib', label: `1 MiB requests, ${bulkInflight} in flight`,
      slice: async (c, seconds) => {
        const r = await c.requests({ seconds, size: MIB, inflight: bulkInflight });
        return { ops: r.ops, secs: r.seconds };
      },
      figures: (sl) => ({ mib_mbps: (rate(sl) * MIB) / 1e6, mib_cpu_us: cpuPerOp(sl) }),
    },
  ];
}

/** Ratio nexio/peer per metric, the way the targets read it (issue 9's targets against raw net). */
const ratioOf: { metric: Metric; key: string; target?: { op: '>=' | '<='; value: number } }[] = [
  { metric: 'rr_ops', key: 'rr', target: { op: '>=', value: 0.6 } },
  { metric: 'oneway_msgs', key: 'oneway', target: { op: '>=', value: 0.6 } },
  { metric: 'ping_p50_us', key: 'ping_p50', target: { op: '<=', value: 1.2 } },
  { metric: 'ping_p99_us', key: 'ping_p99' },
  { metric: 'mib_mbps', key: 'mib', target: { op: '>=', value: 0.9 } },
  { metric: 'rr_cpu_us', key: 'rr_cpu', target: { op: '<=', value: 1.6 } },
  { metric: 'oneway_cpu_us', key: 'oneway_cpu', target: { op: '<=', value: 1.6 } },
  { metric: 'mib_cpu_us', key: 'mib_cpu' },
];

/**
 * Variants of nexio, not peers: each is reported as a ratio to nexio (the
 * hot forms over tcp://): tls:// / tcp://, the Promise API / the hot forms,
 * views / the hot forms. The ratio keys keep these names in the JSON.
 */
const VARIANTS: Record<string, string> = { 'nexio-tls': 'tls_vs_tcp', 'nexio-promise': 'promise_vs_hot', 'nexio-views': 'views_vs_hot' };
const variantLabel = (name: string) => VARIANTS[name].replace('_vs_', '/');

/**
 * The order of systems in round r: nexio and raw (the peer the targets name)
 * always next to each other, which of them first alternating; the others
 * rotate, before or after the pair.
 */
function orderFor<T extends { sys: System }>(live: T[], r: number): T[] {
  const nx = live.filter((x) => x.sys.name === 'nexio' || x.sys.name === 'raw');
  // nexio's variants right after the pair, so that they and nexio see the same machine
  nx.push(...live.filter((x) => x.sys.name in VARIANTS));
  if (r % 2) nx.reverse();
  const others = live.filter((x) => !nx.includes(x));
  const rot = others.map((_, i) => others[(i + r) % others.length]);
  return r % 4 < 2 ? [...nx, ...rot] : [...rot, ...nx];
}

interface Running { sys: System; child: ChildProcess; client?: Client; error?: string }

/** CPU µs the server process has used so far. */
function serverCpu(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    const on = (m: { cpu?: NodeJS.CpuUsage }) => {
      if (!m.cpu) return;
      child.off('message', on);
      resolve(m.cpu.user + m.cpu.system);
    };
    child.on('message', on);
    child.send('cpu');
  });
}

/** Lets a server exit by itself (so that e.g. --cpu-prof can write its profile); kills it after 5 s. */
function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill(), 5000);
    child.once('exit', () => { clearTimeout(timer); resolve(); });
    if (child.connected) child.disconnect();
    else child.kill();
  });
}

function clientCpu(): number {
  const c = process.cpuUsage();
  return c.user + c.system;
}

function startServer(sys: System): Promise<Running> {
  const child = fork(path.join(__dirname, 'peers', 'serve.js'), [sys.name], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ sys, child, error: 'server did not start in 20 s' }), 20_000);
    child.once('message', async (m: { port?: number; error?: string }) => {
      clearTimeout(timer);
      if (m.error !== undefined) { resolve({ sys, child, error: m.error }); return; }
      try {
        resolve({ sys, child, client: await sys.connect(m.port!) });
      } catch (e) {
        resolve({ sys, child, error: String((e as Error)?.message ?? e) });
      }
    });
    child.once('exit', (code) => { clearTimeout(timer); resolve({ sys, child, error: `server exited with ${code}` }); });
  });
}

function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function num(v: string | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, not '${v}'`);
  return n;
}

/** The commit measured, and whether host/ or assembly/ differ from it. */
function commitOf(): { commit: string; dirty: boolean } | undefined {
  try {
    const git = (...a: string[]) => execFileSync('git', a, { cwd: path.join(__dirname, '..', '..'), encoding: 'utf8' }).trim();
    return { commit: git('rev-parse', 'HEAD'), dirty: git('status', '--porcelain', '--', 'host', 'assembly', 'build').length > 0 };
  } catch {
    return undefined;
  }
}

function versionOf(pkg: string): string {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(`${pkg}/package.json`).version;
  } catch {
    return 'not installed';
  }
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: {
    json: { type: 'string' }, seconds: { type: 'string' }, rounds: { type: 'string' }, systems: { type: 'string' },
    lanes: { type: 'string' }, 'bulk-inflight': { type: 'string' }, slice: { type: 'string' }, window: { type: 'string' }, warmup: { type: 'string' }, workloads: { type: 'string' }, help: { type: 'boolean' },
  } });
  if (values.help) {
    process.stdout.write('usage: npm run bench -- [--json FILE] [--seconds S] [--rounds R] [--systems nexio,nexio-tls,nexio-promise,nexio-views,raw,zeromq,grpc] [--workloads rr,oneway,ping,mib] [--lanes N] [--bulk-inflight N] [--slice S] [--warmup S] [--window MSGS,BYTES]\n');
    return 0;
  }
  const seconds = num(values.seconds, 2, 'seconds');
  const rounds = Math.round(num(values.rounds, 3, 'rounds'));
  const bulkInflight = Math.round(num(values['bulk-inflight'], 4, 'bulk-inflight'));
  const sliceSeconds = num(values.slice, 0.5, 'slice');
  const warmup = values.warmup === '0' ? 0 : num(values.warmup, 1, 'warmup');
  if (values.window) {
    // nexio's credit window on both sides (the servers read it from the environment).
    const [m, b] = values.window.split(',').map((x) => Math.round(num(x, 0, 'window')));
    process.env.NEXIO_BENCH_WINDOW_MSGS = String(m);
    process.env.NEXIO_BENCH_WINDOW_BYTES = String(b ?? 0);
    nexioOptions.windowMsgs = m;
    nexioOptions.windowBytes = b ?? 0;
  }
  nexioOptions.lanes = Math.round(num(values.lanes, 1, 'lanes'));
  const names = values.systems ? values.systems.split(',') : systems.map((s) => s.name);
  if (!names.includes('nexio')) names.unshift('nexio');
  const chosen = systems.filter((s) => names.includes(s.name));
  const loads = workloads(bulkInflight).filter((w) => !values.workloads || values.workloads.split(',').includes(w.key));
  const loadStart = os.loadavg();
  const command = ['npm run bench --', ...argv].join(' ').replace(/ --$/, '');
  process.stderr.write(`${command}\n${os.cpus().length} cpus, load ${loadStart.map((l) => l.toFixed(1)).join(' ')}; ${rounds} rounds of ${seconds} s per workload and system\n`);

  const running = await Promise.all(chosen.map(startServer));
  const unavailable: Record<string, string> = {};
  for (const r of running) if (r.error) { unavailable[r.sys.name] = r.error; process.stderr.write(`${r.sys.name}: unavailable: ${r.error}\n`); }
  const live = running.filter((r) => r.client);
  if (!live.some((r) => r.sys.name === 'nexio')) {
    // The other servers are child processes: left running they keep the bench
    // from exiting. Their clients close first (a server gone under an open
    // client is a reset the client has no listener for).
    await Promise.all(live.map((r) => r.client!.close().catch(() => undefined)));
    await Promise.all(running.map((r) => stopServer(r.child)));
    throw new Error(`nexio did not start: ${unavailable.nexio}`);
  }

  const samples: Record<string, Partial<Record<Metric, number>>[]> = {};
  const errors: { system: string; workload: string; round: number; error: string }[] = [];
  for (const r of live) samples[r.sys.name] = [];
  const slices = Math.max(1, Math.round(seconds / sliceSeconds));
  const stuck = new Set<string>();
  const runSlice = async (w: Workload, r: Running, secs: number): Promise<Slice> => {
    const s0 = await serverCpu(r.child), c0 = clientCpu();
    // A slice that never ends (a lost wake-up, a peer stuck on credit) fails
    // its system for this workload and round, by name, instead of hanging the run.
    const limit = Math.max(30, secs * 20) * 1000;
    let timer: NodeJS.Timeout | undefined;
    const x = await Promise.race([
      w.slice(r.client!, secs),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          stuck.add(r.sys.name); // its client is wedged: the system sits out the rest of the run
          reject(new Error(`${w.key} slice on ${r.sys.name} did not finish in ${limit / 1000} s; ${r.sys.name} is left out of the rest of the run`));
        }, limit);
      }),
    ]).finally(() => clearTimeout(timer));
    const c1 = clientCpu(), s1 = await serverCpu(r.child);
    return { ...x, cpuUs: c1 - c0 + s1 - s0 };
  };
  try {
    // Warm-up: JIT, connection windows, allocator; not recorded.
    if (warmup > 0) for (const w of loads) for (const r of live) await runSlice(w, r, warmup);
    for (let round = 0; round < rounds; round++) {
      const rec: Record<string, Partial<Record<Metric, number>>> = {};
      for (const r of live) rec[r.sys.name] = {};
      for (const w of loads) {
        // The workload's time on each system, cut into slices taken in turn,
        // so that load from elsewhere falls on every system alike.
        const got = new Map<string, Slice[]>(live.map((r) => [r.sys.name, []]));
        const failed = new Set<string>();
        const order = orderFor(live, round);
        for (let k = 0; k < slices; k++) {
          for (const r of (k % 2 ? [...order].reverse() : order)) {
            if (failed.has(r.sys.name) || stuck.has(r.sys.name)) continue;
            try {
              got.get(r.sys.name)!.push(await runSlice(w, r, seconds / slices));
            } catch (e) {
              failed.add(r.sys.name);
              errors.push({ system: r.sys.name, workload: w.key, round, error: String((e as Error)?.message ?? e) });
              process.stderr.write(`round ${round + 1}/${rounds} ${w.key} ${r.sys.name}: ${(e as Error)?.message ?? e}\n`);
            }
          }
        }
        for (const r of order) {
          const sl = got.get(r.sys.name)!;
          if (failed.has(r.sys.name) || !sl.length) continue;
          const m = w.figures(sl);
          Object.assign(rec[r.sys.name], m);
          process.stderr.write(`round ${round + 1}/${rounds} ${w.key.padEnd(6)} ${r.sys.name.padEnd(6)} ${Object.entries(m).map(([k, v]) => `${k}=${v! >= 100 ? Math.round(v!) : v!.toFixed(2)}`).join(' ')}\n`);
        }
      }
      for (const r of live) samples[r.sys.name].push(rec[r.sys.name]);
    }
  } finally {
    await Promise.all(live.map((r) => r.client!.close().catch(() => undefined)));
    await Promise.all(running.map((r) => stopServer(r.child)));
  }

  // Figures: medians over rounds. Ratios: medians of per-round ratios.
  const metrics: Metric[] = ['rr_ops', 'rr_p50_us', 'rr_p99_us', 'rr_cpu_us', 'oneway_msgs', 'oneway_cpu_us', 'ping_p50_us', 'ping_p99_us', 'mib_mbps', 'mib_cpu_us'];
  const figures: Record<string, Partial<Record<Metric, number>>> = {};
  for (const [name, rs] of Object.entries(samples)) {
    figures[name] = {};
    for (const m of metrics) {
      const xs = rs.map((r) => r[m]).filter((x): x is number => x !== undefined);
      if (xs.length) figures[name][m] = median(xs);
    }
  }
  const ratios: Record<string, number> = {};
  const targets: Record<string, { ratio: number; op: string; target: number; met: boolean }> = {};
  for (const peer of Object.keys(samples).filter((n) => n !== 'nexio' && !(n in VARIANTS))) {
    for (const { metric, key, target } of ratioOf) {
      const per: number[] = [];
      samples.nexio.forEach((nx, i) => {
        const a = nx[metric], b = samples[peer][i]?.[metric];
        if (a !== undefined && b !== undefined && b > 0) per.push(a / b);
      });
      if (!per.length) continue;
      const ratio = median(per);
      ratios[`${key}_ratio_vs_${peer}`] = ratio;
      if (target && peer === 'raw') {
        targets[`${key}_ratio_vs_raw`] = { ratio, op: target.op, target: target.value, met: target.op === '>=' ? ratio >= target.value : ratio <= target.value };
      }
    }
  }

  // The variants over nexio (the cost of encryption, of the Promise API, of views), per round, medians.
  const variants = Object.keys(samples).filter((n) => n in VARIANTS);
  for (const v of variants) {
    for (const { metric, key } of ratioOf) {
      const per: number[] = [];
      samples.nexio.forEach((nx, i) => {
        const a = samples[v][i]?.[metric], b = nx[metric];
        if (a !== undefined && b !== undefined && b > 0) per.push(a / b);
      });
      if (per.length) ratios[`${key}_ratio_${VARIANTS[v]}`] = median(per);
    }
  }
  const peers = Object.keys(samples).filter((n) => n !== 'nexio' && !(n in VARIANTS));
  const cell = (name: string, m: Metric) => figures[name]?.[m] ?? '-';
  const ratioCell = (key: string, peer: string) => {
    const r = ratios[`${key}_ratio_vs_${peer}`];
    return r === undefined ? '-' : r.toFixed(2);
  };
  const rows: (string | number)[][] = [
    ['workload', ...Object.keys(samples), ...variants.map(variantLabel), ...peers.map((p) => `nexio/${p}`), 'target vs raw'],
    ...([
      ['req/resp 64 B x128 (ops/s)', 'rr_ops', 'rr'],
      ['one-way 64 B (msgs/s)', 'oneway_msgs', 'oneway'],
      ['ping-pong p50 (µs)', 'ping_p50_us', 'ping_p50'],
      ['ping-pong p99 (µs)', 'ping_p99_us', 'ping_p99'],
      [`1 MiB x${bulkInflight} (MB/s)`, 'mib_mbps', 'mib'],
      ['req/resp CPU µs per op', 'rr_cpu_us', 'rr_cpu'],
      ['one-way CPU µs per msg', 'oneway_cpu_us', 'oneway_cpu'],
      ['1 MiB CPU µs per op', 'mib_cpu_us', 'mib_cpu'],
    ] as [string, Metric, string][]).map(([label, m, key]) => {
      const t = targets[`${key}_ratio_vs_raw`];
      const vCell = (v: string) => { const r = ratios[`${key}_ratio_${VARIANTS[v]}`]; return r === undefined ? '-' : r.toFixed(2); };
      return [label, ...Object.keys(samples).map((n) => cell(n, m)), ...variants.map(vCell),
        ...peers.map((p) => ratioCell(key, p)),
        t ? `${t.op} ${t.target} ${t.met ? 'met' : 'MISSED'}` : ''];
    }),
  ];
  const loadEnd = os.loadavg();
  process.stdout.write(`\n${table(rows)}\n`);
  const win = nexioOptions.windowMsgs || nexioOptions.windowBytes ? `window ${nexioOptions.windowMsgs || 'default'} msgs / ${nexioOptions.windowBytes || 'default'} B` : 'default credit window';
  process.stdout.write(`\nnexio: ${nexioOptions.lanes} lane(s), ${win}. ${rounds} rounds x ${seconds} s per workload and system, in slices of ${seconds / slices} s;\nfigures are medians over rounds, ratios medians of per-round ratios; CPU is client + server process.\n`);
  process.stdout.write(`${os.cpus().length} cpus (${os.cpus()[0]?.model ?? '?'}), load average ${loadStart[0].toFixed(1)} at start, ${loadEnd[0].toFixed(1)} at end.\n`);
  for (const [n, why] of Object.entries(unavailable)) process.stdout.write(`${n}: not measured: ${why}\n`);
  for (const e of errors) process.stdout.write(`error: ${e.system} ${e.workload} round ${e.round + 1}: ${e.error}\n`);

  if (values.json) {
    const out = {
      command, date: new Date().toISOString(), source: commitOf(),
      machine: {
        cpus: os.cpus().length, model: os.cpus()[0]?.model, memGiB: +(os.totalmem() / 2 ** 30).toFixed(1), platform: `${os.platform()} ${os.release()}`,
        node: process.version, loadavgStart: loadStart, loadavgEnd: loadEnd,
      },
      versions: { nexio: require(path.join(__dirname, '..', '..', 'package.json')).version as string, zeromq: versionOf('zeromq'), grpc: versionOf('@grpc/grpc-js') },
      settings: { seconds, rounds, sliceSeconds, warmup, nexioWindow: { msgs: nexioOptions.windowMsgs || 'default', bytes: nexioOptions.windowBytes || 'default' }, nexioLanes: nexioOptions.lanes, smallBytes: SMALL, rrInflight: 128, bulkBytes: MIB, bulkInflight },
      figures, ratios, targets, samples, unavailable, errors,
    };
    writeFileSync(values.json, JSON.stringify(out, null, 2) + '\n');
    process.stdout.write(`wrote ${values.json}\n`);
  }
  return errors.length ? 1 : 0;
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e) => {
  process.stderr.write(`bench: ${(e as Error)?.stack ?? e}\n`);
  process.exitCode = 1;
});
