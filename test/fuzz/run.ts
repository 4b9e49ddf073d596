// Hostile-input fuzzer for the protocol core.
//
//   npm run fuzz -- --runs 20000 [--seed S] [--only K] [--verbose]
//   npm run fuzz -- --host --runs N [--seed S]   # through the real server Context (host-run.ts)
//
// Feeds random and mutated frames and frame sequences into a server core
// and a client core that also carry a healthy session to each other (see
// harness.ts for the properties checked, scripts.ts for what is sent).
// Every run is a pure function of (seed, run index): `--only K` replays run
// K alone on fresh cores and prints its inputs. Exits non-zero on any
// failure and prints a repro (seed, run, inputs in hex) for the first few.

import { parseArgs } from 'node:util';
import {
  Harness, Stats, Failure, FailureKind, Script, newStats, failureCount, codeName, formatLog, fuzzConfig,
} from './harness';
import { generate, TargetConfig } from './scripts';
import { Rng } from './rng';

export interface FuzzOptions {
  runs: number;
  seed: number;
  /** Replay only this run (on fresh cores). */
  only?: number;
  /** Repros printed in full (the rest are counted). */
  printLimit?: number;
  log?: (line: string) => void;
  verbose?: boolean;
  /** See TargetConfig.avoidKnownBugs. */
  avoidKnownBugs?: boolean;
}

export interface FuzzResult {
  stats: Stats;
  seconds: number;
  /** Memory of both cores after construction and at the end. */
  memory: { start: [number, number]; end: [number, number] };
  eventOverflow: number;
  failures: { run: number; kind: string; failures: Failure[] }[];
}

const baseTarget: TargetConfig = {
  windowMsgs: fuzzConfig.windowMsgs!,
  windowBytes: fuzzConfig.windowBytes!,
  maxRequests: fuzzConfig.maxRequests!,
};

/** Failures after which the cores are not trusted any more: start over with fresh ones. */
const FATAL: FailureKind[] = ['trap', 'escape', 'healthy', 'violation', 'memory', 'overflow', 'stuck'];

function family(kind: string): string {
  return kind.split(':')[0];
}

export function fuzz(o: FuzzOptions): FuzzResult {
  const log = o.log ?? ((l: string) => console.log(l));
  const tc: TargetConfig = { ...baseTarget, avoidKnownBugs: o.avoidKnownBugs };
  const printLimit = o.printLimit ?? 3;
  const stats = newStats();
  let h = new Harness(fuzzConfig, o.seed);
  const start = h.memory;
  let printed = 0;
  const failed: FuzzResult['failures'] = [];
  const t0 = process.hrtime.bigint();
  const first = o.only ?? 0;
  const last = o.only !== undefined ? o.only + 1 : o.runs;
  for (let run = first; run < last; run++) {
    const script = generate(o.seed, run, tc);
    const fam = family(script.kind);
    stats.kinds.set(fam, (stats.kinds.get(fam) ?? 0) + 1);
    const split = script.diff || new Rng(o.seed ^ 0x5a5a, run).chance(0.7);
    const res = h.execute(script, split, stats);
    let diffMsg: string | undefined;
    if (script.diff && res.failures.length === 0) {
      const again = h.execute(script, false, undefined);
      // Bytes built from what the peer learned (tags the core chose) may
      // differ between the two executions; compare only identical inputs.
      if (again.failures.length === 0 && sameBytes(res.fed, again.fed)) {
        stats.diffs++;
        diffMsg = compare(res.sig, again.sig);
      }
    }
    h.checkCores();
    h.healthyRoundTrip();
    stats.healthyRoundTrips++;
    h.now += 20;
    if ((run & 63) === 63) h.tick(1000);
    const failures = h.takeFailures();
    if (diffMsg) failures.push({ kind: 'diff', message: diffMsg });
    stats.runs++;
    if (o.verbose || o.only !== undefined) {
      log(`run ${run}: ${script.kind} (${script.side}, ${split ? 'split' : 'whole'}${script.diff ? ', diff' : ''})`);
      log(formatLog(res.log));
    }
    if (failures.length === 0) continue;
    for (const k of new Set(failures.map((f) => f.kind))) stats.failures[k]++;
    failed.push({ run, kind: script.kind, failures });
    if (printed < printLimit) {
      printed++;
      log(repro(o.seed, run, script, split, failures, res.log));
      const again = isolated(o.seed, script, split);
      log(`  in isolation (fresh cores, this run only): ${again.length ? again.map((f) => f.kind).join(', ') : 'does not reproduce'}`);
    }
    if (failures.some((f) => FATAL.includes(f.kind)) || h.trapped) {
      stats.rebuilds++;
      h = new Harness(fuzzConfig, o.seed + stats.rebuilds);
    }
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return {
    stats, seconds, memory: { start, end: h.memory }, eventOverflow: h.cli.eventOverflow() + h.srv.eventOverflow(),
    failures: failed,
  };
}

function sameBytes(a: Buffer[], b: Buffer[]): boolean {
  return a.length === b.length && a.every((x, i) => x.equals(b[i]));
}

function compare(a: string[], b: string[]): string | undefined {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) {
      return `fed in pieces vs whole: event ${i} differs: ${a[i] ?? '(none)'} vs ${b[i] ?? '(none)'} ` +
        `(type:lane:code:seq:hdrLen:dataLen:flags; ${a.length} vs ${b.length} events)`;
    }
  }
  return undefined;
}

function isolated(seed: number, script: Script, split: boolean): Failure[] {
  try {
    const h = new Harness(fuzzConfig, seed);
    h.execute(script, split);
    h.checkCores();
    h.healthyRoundTrip();
    return h.takeFailures();
  } catch (e) {
    return [{ kind: 'trap', message: String(e) }];
  }
}

function repro(seed: number, run: number, script: Script, split: boolean, failures: Failure[], log: Parameters<typeof formatLog>[0]): string {
  const lines = [
    `FAIL seed ${seed} run ${run}: ${script.kind} (target ${script.side}, fed ${split ? 'in pieces' : 'whole'})`,
    ...failures.map((f) => `  ${f.kind}: ${f.message}`),
    `  replay: npm run fuzz -- --seed ${seed} --only ${run}`,
    '  inputs (hostile bytes in hex):',
    formatLog(log),
  ];
  return lines.join('\n');
}

/** Close codes: the core's by name; codes a peer put in its ERROR frame are passed through, so lump those. */
function closes(m: Map<number, number>): string {
  const out: string[] = [];
  let peer = 0;
  for (const [c, n] of [...m.entries()].sort((a, b) => a[0] - b[0])) {
    if (c > 22) peer += n;
    else out.push(`${codeName(c)}=${n}`);
  }
  if (peer) out.push(`other codes from peer ERROR frames=${peer}`);
  return out.join(', ') || 'none';
}

export function summary(r: FuzzResult): string {
  const s = r.stats;
  const byCode = (m: Map<number, number>) => [...m.entries()].sort((a, b) => a[0] - b[0])
    .map(([c, n]) => `${codeName(c)}=${n}`).join(', ') || 'none';
  const f = s.failures;
  const other = (Object.keys(f) as FailureKind[]).filter((k) => k !== 'trap' && k !== 'escape' && f[k] > 0)
    .map((k) => `${f[k]} ${k}`);
  const lines = [
    `fuzz: ${s.runs} runs, ${f.trap} traps, ${f.escape} escapes${other.length ? ', ' + other.join(', ') : ''}, ` +
      `errors by code: ${byCode(s.errors)}`,
    `  lanes closed without a protocol error, by code: ${closes(s.closes)}`,
    `  runs by family: ${[...s.kinds.entries()].sort().map(([k, n]) => `${k}=${n}`).join(', ')}`,
    `  ${s.healthyRoundTrips} healthy round trips, ${s.diffs} whole-vs-pieces comparisons, ${s.rebuilds} core rebuilds, memory ${r.memory.start.join('/')} -> ` +
      `${r.memory.end.join('/')} bytes, eventOverflow ${r.eventOverflow}`,
    `  ${r.seconds.toFixed(2)} s, ${Math.round(s.runs / r.seconds)} runs/s`,
  ];
  return lines.join('\n');
}

const USAGE = [
  'usage: npm run fuzz -- --runs N [--seed S] [--only K] [--verbose] [--print N] [--avoid-known-bugs]',
  '       npm run fuzz -- --host --runs N [--seed S] [--tcp-runs M] [--tcp] [--only K | --only A..B] [--per-context N] [--concurrency C] [--family F] [--trace] [--print N]',
].join('\n');

/**
 * The command line, parsed strictly for its mode (core, or --host: host-run.ts): an unknown option
 * or one of the other mode is an error, not a silent default. Exits 2 with the usage on a bad one.
 */
function options(args: string[]): { values: Record<string, string | boolean | undefined>; host: boolean } {
  const host = args.includes('--host');
  const common = { runs: { type: 'string' }, seed: { type: 'string' }, only: { type: 'string' }, print: { type: 'string' }, help: { type: 'boolean', short: 'h' } } as const;
  const core = { ...common, verbose: { type: 'boolean' }, 'avoid-known-bugs': { type: 'boolean' } } as const;
  const hostOnly = {
    ...common, host: { type: 'boolean' }, tcp: { type: 'boolean' }, 'tcp-runs': { type: 'string' }, 'per-context': { type: 'string' },
    concurrency: { type: 'string' }, family: { type: 'string' }, trace: { type: 'boolean' },
  } as const;
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args, strict: true, allowPositionals: false, options: host ? hostOnly : core }).values as typeof values;
  } catch (e) {
    console.error(`fuzz: ${(e as Error).message.split('\n')[0]}\n${USAGE}`);
    process.exit(2);
  }
  if (values.help) { console.log(USAGE); process.exit(0); }
  const whole = (name: string, min: number) => {
    const v = values[name];
    if (v !== undefined && !(typeof v === 'string' && /^\d+$/.test(v) && Number(v) >= min)) {
      console.error(`fuzz: --${name} must be a whole number of at least ${min}, not '${v}'\n${USAGE}`);
      process.exit(2);
    }
  };
  whole('runs', 1); whole('seed', 0); whole('print', 0);
  if (host) { whole('tcp-runs', 0); whole('per-context', 1); whole('concurrency', 1); }
  else whole('only', 0);
  return { values, host };
}

function main(args: string[]): void {
  const { values } = options(args);
  const opt = (name: string): string | undefined => values[name] as string | undefined;
  const runs = Number(opt('runs') ?? 2000);
  const seed = Number(opt('seed') ?? Date.now() % 1_000_000);
  const only = opt('only') !== undefined ? Number(opt('only')) : undefined;
  console.log(`fuzz: seed ${seed}${only !== undefined ? `, run ${only} only` : `, ${runs} runs`}`);
  const r = fuzz({
    runs, seed, only, verbose: values.verbose === true, printLimit: Number(opt('print') ?? 3),
    avoidKnownBugs: values['avoid-known-bugs'] === true,
  });
  console.log(summary(r));
  if (failureCount(r.stats) > 0) {
    const byKind = new Map<string, number>();
    for (const x of r.failures) byKind.set(x.kind, (byKind.get(x.kind) ?? 0) + 1);
    console.log(`  failing scripts: ${[...byKind.entries()].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k}=${n}`).join(', ')}`);
    process.exitCode = 1;
  }
}

if (require.main === module) {
  // --host: hostile byte streams through the real server Context (host-run.ts).
  const args = process.argv.slice(2);
  const parsed = options(args);
  if (parsed.host) {
    (require('./host-run') as typeof import('./host-run')).hostMain(parsed.values).catch((e) => {
      console.error(e);
      process.exit(1);
    });
  } else {
    main(args);
  }
}
