// nexio tcp:// against raw `net` (batched writes), zeromq (DEALER/ROUTER) and
// @grpc/grpc-js, on one machine, in one run:
//
//   npm run bench -- [--json FILE] [--seconds S] [--rounds R] [--systems a,b] [--lanes N] [--bulk-inflight N]
//
// Every server runs in its own child process (bench/peers/serve.ts), every
// client in this process, over 127.0.0.1. Workloads:
//   rr      64-byte request/response, 128 in flight          ops/s
//   oneway  64-byte one-way messages, delivery confirmed      msgs/s
//   ping    64-byte request/response, one in flight          p50 / p99 µs
//   mib     1 MiB requests, 8-byte replies, 4 in flight       MB/s (10^6 B)
// Each round runs every workload on every system, the order of systems
// rotating from round to round; a figure is the median over rounds and a
// ratio is the median of the per-round ratios (nexio / peer), so a burst of
// load from elsewhere on the machine moves both sides of most ratios.

import { fork, ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { table } from '../host/bench';
import { systems, Client, System } from './peers/index';
import { nexioOptions } from './peers/nexio';

type Metric = 'rr_ops' | 'rr_p50_us' | 'rr_p99_us' | 'oneway_msgs' | 'ping_p50_us' | 'ping_p99_us' | 'mib_mbps';

interface Workload {
  key: 'rr' | 'oneway' | 'ping' | 'mib';
  label: string;
  run(c: Client, seconds: number): Promise<Partial<Record<Metric, number>>>;
}

const SMALL = 64;
const MIB = 1 << 20;

function workloads(bulkInflight: number): Workload[] {
  return [
    {
      key: 'rr', label: `request/response ${SMALL} B, 128 in flight`,
      run: async (c, seconds) => {
        const r = await c.requests({ seconds, size: SMALL, inflight: 128 });
        return { rr_ops: r.opsPerSec, rr_p50_us: r.p50us, rr_p99_us: r.p99us };
      },
    },
    {
      key: 'oneway', label: `one-way ${SMALL} B`,
      run: async (c, seconds) => ({ oneway_msgs: (await c.oneway({ seconds, size: SMALL, inflight: 0 })).opsPerSec }),
    },
    {
      key: 'ping', label: `ping-pong ${SMALL} B, 1 in flight`,
      run: async (c, seconds) => {
        const h = await c.ping(seconds, SMALL);
        return { ping_p50_us: h.getValueAtPercentile(50), ping_p99_us: h.getValueAtPercentile(99) };
      },
    },
    {
      key: 'mib', label: `1 MiB requests, ${bulkInflight} in flight`,
      run: async (c, seconds) => ({ mib_mbps: (await c.requests({ seconds, size: MIB, inflight: bulkInflight })).mbPerSec }),
    },
  ];
}

/** Ratio nexio/peer per metric, the way the targets read it. */
const ratioOf: { metric: Metric; key: string; target?: { op: '>=' | '<='; value: number } }[] = [
  { metric: 'rr_ops', key: 'rr', target: { op: '>=', value: 0.5 } },
  { metric: 'oneway_msgs', key: 'oneway', target: { op: '>=', value: 0.5 } },
  { metric: 'ping_p50_us', key: 'ping_p50', target: { op: '<=', value: 1.3 } },
  { metric: 'ping_p99_us', key: 'ping_p99' },
  { metric: 'mib_mbps', key: 'mib', target: { op: '>=', value: 0.85 } },
];

interface Running { sys: System; child: ChildProcess; client?: Client; error?: string }

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
    lanes: { type: 'string' }, 'bulk-inflight': { type: 'string' }, help: { type: 'boolean' },
  } });
  if (values.help) {
    process.stdout.write('usage: npm run bench -- [--json FILE] [--seconds S] [--rounds R] [--systems nexio,raw,zeromq,grpc] [--lanes N] [--bulk-inflight N]\n');
    return 0;
  }
  const seconds = num(values.seconds, 2, 'seconds');
  const rounds = Math.round(num(values.rounds, 3, 'rounds'));
  const bulkInflight = Math.round(num(values['bulk-inflight'], 4, 'bulk-inflight'));
  nexioOptions.lanes = Math.round(num(values.lanes, 1, 'lanes'));
  const names = values.systems ? values.systems.split(',') : systems.map((s) => s.name);
  if (!names.includes('nexio')) names.unshift('nexio');
  const chosen = systems.filter((s) => names.includes(s.name));
  const loads = workloads(bulkInflight);
  const loadStart = os.loadavg();
  const command = ['npm run bench --', ...argv].join(' ').replace(/ --$/, '');
  process.stderr.write(`${command}\n${os.cpus().length} cpus, load ${loadStart.map((l) => l.toFixed(1)).join(' ')}; ${rounds} rounds of ${seconds} s per workload and system\n`);

  const running = await Promise.all(chosen.map(startServer));
  const unavailable: Record<string, string> = {};
  for (const r of running) if (r.error) { unavailable[r.sys.name] = r.error; process.stderr.write(`${r.sys.name}: unavailable: ${r.error}\n`); }
  const live = running.filter((r) => r.client);
  if (!live.some((r) => r.sys.name === 'nexio')) throw new Error(`nexio did not start: ${unavailable.nexio}`);

  const samples: Record<string, Partial<Record<Metric, number>>[]> = {};
  const errors: { system: string; workload: string; round: number; error: string }[] = [];
  for (const r of live) samples[r.sys.name] = [];
  try {
    // Warm-up: JIT, connection windows, allocator; not recorded.
    for (const w of loads) for (const r of live) await w.run(r.client!, Math.min(0.5, seconds / 2));
    for (let round = 0; round < rounds; round++) {
      const rec: Record<string, Partial<Record<Metric, number>>> = {};
      for (const r of live) rec[r.sys.name] = {};
      for (const w of loads) {
        const order = live.map((_, i) => live[(i + round) % live.length]);
        for (const r of order) {
          try {
            const m = await w.run(r.client!, seconds);
            Object.assign(rec[r.sys.name], m);
            process.stderr.write(`round ${round + 1}/${rounds} ${w.key.padEnd(6)} ${r.sys.name.padEnd(6)} ${Object.entries(m).map(([k, v]) => `${k}=${Math.round(v!)}`).join(' ')}\n`);
          } catch (e) {
            errors.push({ system: r.sys.name, workload: w.key, round, error: String((e as Error)?.message ?? e) });
            process.stderr.write(`round ${round + 1}/${rounds} ${w.key} ${r.sys.name}: ${(e as Error)?.message ?? e}\n`);
          }
        }
      }
      for (const r of live) samples[r.sys.name].push(rec[r.sys.name]);
    }
  } finally {
    await Promise.all(live.map((r) => r.client!.close().catch(() => undefined)));
    for (const r of running) if (r.child.exitCode === null) r.child.kill();
  }

  // Figures: medians over rounds. Ratios: medians of per-round ratios.
  const metrics: Metric[] = ['rr_ops', 'rr_p50_us', 'rr_p99_us', 'oneway_msgs', 'ping_p50_us', 'ping_p99_us', 'mib_mbps'];
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
  for (const peer of Object.keys(samples).filter((n) => n !== 'nexio')) {
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

  const peers = Object.keys(samples).filter((n) => n !== 'nexio');
  const cell = (name: string, m: Metric) => figures[name]?.[m] ?? '-';
  const ratioCell = (key: string, peer: string) => {
    const r = ratios[`${key}_ratio_vs_${peer}`];
    return r === undefined ? '-' : r.toFixed(2);
  };
  const rows: (string | number)[][] = [
    ['workload', ...Object.keys(samples), ...peers.map((p) => `nexio/${p}`), 'target vs raw'],
    ...([
      ['req/resp 64 B x128 (ops/s)', 'rr_ops', 'rr'],
      ['one-way 64 B (msgs/s)', 'oneway_msgs', 'oneway'],
      ['ping-pong p50 (µs)', 'ping_p50_us', 'ping_p50'],
      ['ping-pong p99 (µs)', 'ping_p99_us', 'ping_p99'],
      [`1 MiB x${bulkInflight} (MB/s)`, 'mib_mbps', 'mib'],
    ] as [string, Metric, string][]).map(([label, m, key]) => {
      const t = targets[`${key}_ratio_vs_raw`];
      return [label, ...Object.keys(samples).map((n) => cell(n, m)), ...peers.map((p) => ratioCell(key, p)),
        t ? `${t.op} ${t.target} ${t.met ? 'met' : 'MISSED'}` : ''];
    }),
  ];
  const loadEnd = os.loadavg();
  process.stdout.write(`\n${table(rows)}\n`);
  process.stdout.write(`\nnexio ${nexioOptions.lanes} lane(s); ${rounds} rounds x ${seconds} s; figures are medians over rounds, ratios medians of per-round ratios.\n`);
  process.stdout.write(`${os.cpus().length} cpus (${os.cpus()[0]?.model ?? '?'}), load average ${loadStart[0].toFixed(1)} at start, ${loadEnd[0].toFixed(1)} at end.\n`);
  for (const [n, why] of Object.entries(unavailable)) process.stdout.write(`${n}: not measured: ${why}\n`);
  for (const e of errors) process.stdout.write(`error: ${e.system} ${e.workload} round ${e.round + 1}: ${e.error}\n`);

  if (values.json) {
    const out = {
      command, date: new Date().toISOString(),
      machine: {
        cpus: os.cpus().length, model: os.cpus()[0]?.model, memGiB: +(os.totalmem() / 2 ** 30).toFixed(1), platform: `${os.platform()} ${os.release()}`,
        node: process.version, loadavgStart: loadStart, loadavgEnd: loadEnd,
      },
      versions: { nexio: require(path.join(__dirname, '..', '..', 'package.json')).version as string, zeromq: versionOf('zeromq'), grpc: versionOf('@grpc/grpc-js') },
      settings: { seconds, rounds, nexioLanes: nexioOptions.lanes, smallBytes: SMALL, rrInflight: 128, bulkBytes: MIB, bulkInflight },
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
