// npm run sim -- --seeds N [--from S] [--out DIR] [--jobs J] [--verbose]
// npm run sim -- --from S --trace        # one seed, every session and lane event
// npm run sim -- --write-examples [--out DIR]
//
// Runs N random scenarios (seeds S .. S+N-1), prints each failing seed with
// what went wrong and writes its recordings (one .nxrp per context) for
// `nexio replay`, and ends with the summary line. Exits 1 on any violation.
// --jobs J splits the seeds over J worker threads (default: one per CPU, at
// most 8); each seed runs alone on its thread, so the result is the same.
// --write-examples records the scenarios of examples.ts `recorded` instead
// (the files committed in test/replays/).

import { mkdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { generate, run, summary } from './scenario';
import { Kind, kinds } from './ledger';
import { recorded } from './examples';

const USAGE = 'usage: npm run sim -- --seeds N [--from S] [--out DIR] [--jobs J] [--verbose] | --from S --trace | --write-examples [--out DIR]';

/** The command line, parsed strictly: an unknown option (say --seed for --seeds) is an error, not the default run. */
function options() {
  try {
    return parseArgs({
      args: process.argv.slice(2), strict: true, allowPositionals: false, options: {
        seeds: { type: 'string', default: '100' }, from: { type: 'string', default: '1' },
        out: { type: 'string', default: path.join(__dirname, '..', '..', '..', 'test', 'replays') },
        jobs: { type: 'string', default: String(Math.min(8, os.availableParallelism?.() ?? os.cpus().length)) },
        verbose: { type: 'boolean', default: false }, trace: { type: 'boolean', default: false },
        'write-examples': { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false },
      },
    }).values;
  } catch (e) {
    console.error(`sim: ${(e as Error).message.split('\n')[0]}\n${USAGE}`);
    process.exit(2);
  }
}

interface SeedResult { seed: number; counts: Record<Kind, number>; violations: number; details: string[]; stats: Record<string, number>; files: string[] }

/** One seed; a failing one runs again, recording every context, and its recordings are written to out. */
async function one(seed: number, out: string): Promise<SeedResult> {
  const res = await run(generate(seed));
  const r: SeedResult = { seed, counts: res.counts, violations: res.violations, details: res.details, stats: res.stats, files: [] };
  if (res.violations === 0) return r;
  // Deterministic: the same seed again, this time recording every context's core.
  const again = await run(generate(seed), { record: true });
  mkdirSync(out, { recursive: true });
  for (const [side, rec] of again.recordings) {
    const file = path.join(out, `failing-${seed}-${side}.nxrp`);
    rec.save(file);
    r.files.push(file);
  }
  return r;
}

async function worker(): Promise<void> {
  const { seeds, out } = workerData as { seeds: number[]; out: string };
  for (const seed of seeds) parentPort!.postMessage(await one(seed, out));
}

async function main(): Promise<void> {
  const o = options();
  if (o.help) { console.log(USAGE); return; }
  const num = (v: string) => (/^\d+$/.test(v) ? Number(v) : NaN);
  const n = num(o.seeds), from = num(o.from), jobs = num(o.jobs), out = o.out, verbose = o.verbose;
  if (!Number.isSafeInteger(n) || n < 1 || !Number.isSafeInteger(from) || !Number.isInteger(jobs) || jobs < 1) {
    console.error(`sim: --seeds and --jobs must be whole numbers of at least 1, --from at least 0\n${USAGE}`);
    process.exit(2);
  }

  if (o.trace) {
    const res = await run(generate(from), { trace: (line) => console.log(line) });
    for (const d of res.details) console.log(d);
    console.log(summary(res.counts, 1));
    process.exitCode = res.violations ? 1 : 0;
    return;
  }

  if (o['write-examples']) {
    mkdirSync(out, { recursive: true });
    for (const [name, make] of Object.entries(recorded)) {
      const ex = make();
      const res = await run(ex.scenario, { ...ex.options, record: true });
      if (res.violations) {
        console.log(`${name}: ${res.violations} violations; not written`, res.details);
        process.exitCode = 1;
        continue;
      }
      for (const [side, rec] of res.recordings) {
        const file = path.join(out, `sim-${name}-${side}.nxrp`);
        rec.save(file);
        console.log(`wrote ${file} (${rec.bytes().length} bytes)`);
      }
    }
    return;
  }

  const totals: Record<Kind, number> = { lost: 0, duplicated: 0, order: 0, stuck: 0, unsettled: 0, leaked: 0 };
  const agg: Record<string, number> = {};
  let failing = 0;
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  const report = (r: SeedResult) => {
    for (const k of kinds) totals[k] += r.counts[k];
    for (const [k, v] of Object.entries(r.stats)) agg[k] = (agg[k] ?? 0) + v;
    if (verbose) console.log(`seed ${r.seed}: ${JSON.stringify(r.stats)}`);
    if (r.violations === 0) return;
    failing++;
    console.log(`seed ${r.seed}: ${r.violations} violations (rerun: npm run sim -- --seeds 1 --from ${r.seed})`);
    for (const d of r.details.slice(0, 10)) console.log(`  ${d}`);
    for (const f of r.files) console.log(`  wrote ${f}`);
  };
  const seeds = Array.from({ length: n }, (_, i) => from + i);
  const workers = Math.min(jobs, n);
  if (workers <= 1) {
    for (const seed of seeds) report(await one(seed, out));
  } else {
    // Seeds dealt round-robin; results reported in seed order.
    const done = new Map<number, SeedResult>();
    let next = from;
    const flush = () => { while (done.has(next)) { report(done.get(next)!); done.delete(next); next++; } };
    await Promise.all(Array.from({ length: workers }, (_, w) => new Promise<void>((resolve, reject) => {
      const mine = seeds.filter((_, i) => i % workers === w);
      const t = new Worker(__filename, { workerData: { seeds: mine, out } });
      t.on('message', (r: SeedResult) => { done.set(r.seed, r); flush(); });
      t.on('error', reject);
      t.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`sim worker ${w} exited with ${code}`))));
    })));
    flush();
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(c0);
  console.log(`sim: ${failing} failing seeds; ${(n / secs).toFixed(1)} seeds/s, ${secs.toFixed(1)} s wall, ` +
    `${((cpu.user + cpu.system) / 1e6).toFixed(1)} s cpu, ${workers} thread${workers === 1 ? '' : 's'}; ` +
    Object.entries(agg).map(([k, v]) => `${k} ${v}`).join(', '));
  console.log(summary(totals, n));
  process.exitCode = failing ? 1 : 0;
}

if (isMainThread) {
  main().catch((e) => { console.error(e); process.exit(1); });
} else {
  worker().catch((e) => { console.error(e); process.exit(1); });
}
