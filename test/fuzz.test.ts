// Hostile input, smoke size: a few thousand fuzz runs (test/fuzz/run.ts)
// against a client core and a server core that carry a healthy session.
// Fails on any trap, any effect outside the hostile lane, a healthy session
// that stops working, memory growth, event overflow, a bad frame refused
// with the wrong code, or a difference between whole and split feeding.
// The full run is `npm run fuzz -- --runs 20000`.

import t from 'tap';
import { fuzz, summary } from './fuzz/run';
import { codeName } from './fuzz/harness';

const SEED = 424242;
const RUNS = 3000;

const r = fuzz({ runs: RUNS, seed: SEED, printLimit: 2, log: (line) => t.comment(line) });
t.comment(summary(r));

t.equal(r.stats.runs, RUNS, 'every run ran');
t.equal(r.stats.failures.trap, 0, 'no trap in the core (see test/fuzz/repro-*.ts for known ones)');
t.equal(r.stats.failures.escape, 0, 'hostile input touched nothing but its own lane and session');
t.equal(r.stats.failures.healthy, 0, 'the healthy session kept working after every run');
t.equal(r.stats.failures.violation, 0, 'every delivered message was in order and within the limits');
t.equal(r.stats.failures.miss, 0, 'every targeted bad frame got the right error on its own lane');
t.equal(r.stats.failures.stuck, 0, 'no lane stuck, no session or lane leaked');
t.equal(r.stats.failures.diff, 0, 'split feeding gave the same events as whole feeding');
t.equal(r.stats.failures.memory, 0, 'core memory never grew');
t.same(r.memory.end, r.memory.start, 'memory at the end = memory after construction');
t.equal(r.stats.failures.overflow + r.eventOverflow, 0, 'no event overflow');
t.ok(r.stats.healthyRoundTrips >= RUNS, 'a healthy round trip after every run');

// The fuzzer reaches the checks that matter: each main error was produced.
for (const code of [1, 2, 3, 4, 5, 14]) {
  t.ok((r.stats.errors.get(code) ?? 0) > 0, `protocol error ${codeName(code)} seen`);
}
t.ok(r.seconds < 60, `well under a minute (${r.seconds.toFixed(1)} s)`);
