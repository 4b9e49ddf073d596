// npm run sim -- --seeds N [--from S] [--out DIR] [--verbose]
// npm run sim -- --write-examples [--out DIR]
//
// Runs N random scenarios (seeds S .. S+N-1), prints each failing seed with
// what went wrong and writes its recordings (one .nxrp per core) for
// `nexio replay`, and ends with the summary line. Exits 1 on any violation.
// --write-examples records the scenarios of examples.ts `recorded` instead
// (the files committed in test/replays/).

import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { generate, run, summary } from './scenario';
import { Kind, kinds } from './ledger';
import { recorded } from './examples';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

const n = Number(arg('seeds', '100'));
const from = Number(arg('from', '1'));
const out = arg('out', path.join(__dirname, '..', '..', '..', 'test', 'replays'));
const verbose = process.argv.includes('--verbose');
if (!Number.isSafeInteger(n) || n < 0 || !Number.isSafeInteger(from) || from < 0) {
  console.error('usage: npm run sim -- --seeds N [--from S] [--out DIR] [--verbose]');
  process.exit(2);
}

if (process.argv.includes('--write-examples')) {
  mkdirSync(out, { recursive: true });
  for (const [name, make] of Object.entries(recorded)) {
    const ex = make();
    const res = run(ex.scenario, { ...ex.options, record: true });
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
  process.exit();
}

const totals: Record<Kind, number> = { lost: 0, duplicated: 0, order: 0, stuck: 0 };
const agg: Record<string, number> = {};
let failing = 0;
const t0 = process.hrtime.bigint();
const c0 = process.cpuUsage();
for (let seed = from; seed < from + n; seed++) {
  const res = run(generate(seed));
  for (const k of kinds) totals[k] += res.counts[k];
  for (const [k, v] of Object.entries(res.stats)) agg[k] = (agg[k] ?? 0) + v;
  if (verbose) console.log(`seed ${seed}: ${JSON.stringify(res.stats)}`);
  if (res.violations === 0) continue;
  failing++;
  console.log(`seed ${seed}: ${res.violations} violations (rerun: npm run sim -- --seeds 1 --from ${seed})`);
  for (const d of res.details.slice(0, 10)) console.log(`  ${d}`);
  // Deterministic: the same seed again, this time recording every core.
  const again = run(generate(seed), { record: true });
  mkdirSync(out, { recursive: true });
  for (const [side, rec] of again.recordings) {
    const file = path.join(out, `failing-${seed}-${side}.nxrp`);
    rec.save(file);
    console.log(`  wrote ${file}`);
  }
}
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = process.cpuUsage(c0);
const cpuSecs = (cpu.user + cpu.system) / 1e6;
console.log(`sim: ${failing} failing seeds; ${(n / secs).toFixed(1)} seeds/s, ${secs.toFixed(1)} s wall, ` +
  `${cpuSecs.toFixed(1)} s cpu (${(cpu.system / 1e6).toFixed(1)} system); ` +
  Object.entries(agg).map(([k, v]) => `${k} ${v}`).join(', '));
console.log(summary(totals, n));
process.exitCode = failing ? 1 : 0;
