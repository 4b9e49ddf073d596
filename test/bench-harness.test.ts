// The bench harness ends on its own when nexio cannot start (here: a credit
// window too large for one context's memory), with exit status 1 and the
// reason, and leaves no server process behind. It used to hang: the other
// systems' servers, child processes, kept it alive after the error.

import t from 'tap';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { spawnSync } from 'node:child_process';

/** Pids of live processes whose environment carries `mark` (Linux /proc). */
function marked(mark: string): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (fs.readFileSync(`/proc/${d}/environ`, 'latin1').includes(`NEXIO_TEST_MARK=${mark}`)) out.push(Number(d));
    } catch { /* gone, or not ours to read */ }
  }
  return out;
}

t.test('npm run bench exits 1, naming the reason, when nexio does not start', async (t) => {
  const compare = path.join(__dirname, '..', 'bench', 'compare.js');
  // The servers inherit this mark in their environment: none may outlive the bench.
  const mark = `bench-harness-${process.pid}-${Date.now()}`;
  const res = spawnSync(process.execPath, [compare, '--systems', 'nexio,raw', '--workloads', 'ping', '--seconds', '0.1', '--rounds', '1', '--warmup', '0', '--window', '4096,1048576'], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, NEXIO_TEST_MARK: mark } });
  t.equal(res.signal, null, 'ended by itself (not killed after 30 s)');
  t.equal(res.status, 1);
  t.match(res.stderr, /nexio did not start: core config needs more memory/);
  t.same(marked(mark), [], 'no server process left behind');
});
