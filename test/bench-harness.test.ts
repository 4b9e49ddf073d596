// The bench harness ends on its own when nexio cannot start (here: a credit
// window too large for one context's memory), with exit status 1 and the
// reason, and leaves no server process behind. It used to hang: the other
// systems' servers, child processes, kept it alive after the error.

import t from 'tap';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';

t.test('npm run bench exits 1, naming the reason, when nexio does not start', async (t) => {
  const compare = path.join(__dirname, '..', 'bench', 'compare.js');
  const res = spawnSync(process.execPath, [compare, '--systems', 'nexio,raw', '--workloads', 'ping', '--seconds', '0.1', '--rounds', '1', '--warmup', '0', '--window', '4096,1048576'], { encoding: 'utf8', timeout: 30_000 });
  t.equal(res.signal, null, 'ended by itself (not killed after 30 s)');
  t.equal(res.status, 1);
  t.match(res.stderr, /nexio did not start: core config needs more memory/);
});
