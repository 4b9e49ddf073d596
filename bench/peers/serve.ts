// The server side of one system, in its own process (forked by compare.ts):
// `node dist/bench/peers/serve.js SYSTEM`. Reports its port over IPC and
// exits when the bench process goes away.

import { systems } from './index';

const name = process.argv[2];
const sys = systems.find((s) => s.name === name);
if (!sys || !process.send) {
  process.stderr.write(`usage: forked by bench/compare.js with one of ${systems.map((s) => s.name).join(', ')}\n`);
  process.exit(2);
}
process.on('disconnect', () => process.exit(0));
// CPU time used so far, for the bench's CPU-per-operation figures.
process.on('message', (m) => { if (m === 'cpu') process.send!({ cpu: process.cpuUsage() }); });
sys.serve().then(
  (port) => process.send!({ port }),
  (e) => { process.send!({ error: String((e as Error)?.message ?? e) }); process.exit(1); },
);
