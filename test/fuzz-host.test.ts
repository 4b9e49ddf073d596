// Hostile byte streams through the real server Context, smoke size: a few
// thousand host-fuzz runs over mem:// and a hundred over tcp:// on
// 127.0.0.1 (test/fuzz/host-run.ts), each against a server that also
// carries a legitimate session with a ledger. Fails on anything thrown out
// of the host, a disturbed legitimate session, a context past its limits, a
// connection the server never let go, a wrong session key let in, or usage()
// not back to 0 once the peers are gone. The full run is
// `npm run fuzz -- --host --runs 200000`.

import t, { Test } from 'tap';
import { hostFuzz, hostSummary, HostFuzzResult } from './fuzz/host-run';

const SEED = 515151;

function check(t: Test, r: HostFuzzResult, runs: number): void {
  t.comment(hostSummary(r));
  for (const p of r.problems.slice(0, 5)) t.comment(`${p.kind}: ${p.message} (runs ${p.runs.slice(0, 8).join(' ')})`);
  t.equal(r.runs, runs, 'every run ran');
  t.equal(r.counts.harness, 0, 'the fuzzer itself did not fail');
  t.equal(r.counts.throw, 0, 'nothing was thrown out of the host, no context failed');
  t.equal(r.counts.disturbed, 0, 'the legitimate sessions were not disturbed (every request answered once with its bytes, every message once in order, still open)');
  t.equal(r.counts.over, 0, 'no context went past its limits (received bytes beyond what peers sent, lanes, handshakes, sessions)');
  t.equal(r.counts.escape, 0, 'no join or resume with a wrong session key was let in');
  t.equal(r.counts.held, 0, 'every connection a peer held open was let go by the server in time');
  t.equal(r.counts.leak, 0, 'usage() came back to 0 once the peers were gone');
  t.ok(r.contexts.every((c) => c.legit.requests > 0), 'every context carried legitimate traffic');
}

t.test('mem://: 2000 hostile runs against the real server', { timeout: 120000 }, async (t) => {
  const r = await hostFuzz({ runs: 2000, seed: SEED, transport: 'mem', perContext: 500, printLimit: 3, log: (l) => t.comment(l) });
  check(t, r, 2000);
  // The runs reach what they are meant to: protocol errors of each kind, wrong keys refused, a full handshake pool.
  for (const code of [1, 2, 3, 4, 5]) t.ok((r.answers.errors.get(code) ?? 0) > 0, `hostile peers got ERROR ${code}`);
  t.ok((r.answers.rejects.get(8) ?? 0) > 0, 'wrong session keys were refused (REJECT unknown-session)');
  t.ok((r.answers.rejects.get(22) ?? 0) > 0, 'lanes without the pre-shared key, or with a wrong proof, were refused (REJECT auth)');
  t.ok(r.contexts.some((c) => c.variant === 'psk' && c.legit.requests > 0), 'a server with pre-shared keys carried its legitimate (keyed) session through the attack');
  t.ok(r.contexts.some((c) => c.peaks.handshakes === c.limits.handshakes), 'a handshake pool was filled (and evicted from)');
  t.ok(r.contexts.some((c) => c.newcomer === 'admitted'), 'a new legitimate session got in during the attack');
  t.ok(r.seconds < 60, `in under a minute (${r.seconds.toFixed(1)} s)`);
});

t.test('tcp://127.0.0.1: 100 hostile runs, the same scripts over real sockets', { timeout: 120000 }, async (t) => {
  const r = await hostFuzz({ runs: 100, seed: SEED, transport: 'tcp', perContext: 50, printLimit: 3, log: (l) => t.comment(l) });
  check(t, r, 100);
  t.ok(r.seconds < 60, `in under a minute (${r.seconds.toFixed(1)} s)`);
});
