// The deterministic simulated network (test/sim/): a thousand random
// scenarios, each from one seed, must show no lost, duplicated or
// out-of-order message and end quiet; then hand-written scenarios check one
// behaviour each; then the recordings committed in test/replays/ replay
// byte for byte. `npm run sim -- --seeds 10000` is the long run.

import t, { Test } from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { replay } from '../host/record';
import { generate, run, summary, Result } from './sim/scenario';
import { Kind, kinds } from './sim/ledger';
import * as ex from './sim/examples';

const SEEDS = 1000;
const FROM = 1;

function clean(t: Test, res: Result, what: string): void {
  t.equal(res.violations, 0, `${what}: no violation`, { details: res.details });
}

t.test(`${SEEDS} random scenarios`, (t) => {
  const totals: Record<Kind, number> = { lost: 0, duplicated: 0, order: 0, stuck: 0 };
  const failing: number[] = [];
  const started = Date.now();
  for (let seed = FROM; seed < FROM + SEEDS; seed++) {
    const res = run(generate(seed));
    for (const k of kinds) totals[k] += res.counts[k];
    if (res.violations) {
      failing.push(seed);
      if (failing.length <= 5) t.comment(`seed ${seed}: ${res.details.slice(0, 5).join('; ')}`);
    }
  }
  t.comment(`${summary(totals, SEEDS)} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  for (const k of kinds) t.equal(totals[k], 0, `0 ${k === 'order' ? 'out of order' : k}`);
  t.same(failing, [], 'failing seeds (rerun: npm run sim -- --seeds 1 --from SEED)');
  t.end();
});

t.test('the same seed plays the same way (recordings identical)', (t) => {
  for (const seed of [7, 4242]) {
    const a = run(generate(seed), { record: true });
    const b = run(generate(seed), { record: true });
    t.same([...a.recordings.keys()], [...b.recordings.keys()], `seed ${seed}: same cores`);
    for (const [side, rec] of a.recordings) {
      t.ok(rec.bytes().equals(b.recordings.get(side)!.bytes()), `seed ${seed} ${side}: byte for byte`);
    }
  }
  t.end();
});

t.test('a lane dies with messages in flight: they go again on the other lane, once', (t) => {
  const e = ex.failover();
  const res = run(e.scenario, e.options);
  clean(t, res, 'failover');
  t.ok(e.seen.killed, 'a lane carrying messages was killed');
  t.ok((e.seen.inFlight ?? 0) > 0, `with ${e.seen.inFlight} batches in flight on it`);
  const msgs = [...res.world.ledger.msgs.values()];
  t.equal(msgs.length, 20, 'all 20 sent');
  t.ok(msgs.every((m) => m.delivered === 1), 'each delivered exactly once');
  t.ok(msgs.every((m) => m.deliveredLane !== e.seen.killed!.server.lane), 'none by the dead lane: the ones it carried were retransmitted');
  t.equal(res.stats.resumed, 0, 'the session never lost every lane');
  t.equal(res.clients[0].incs[0].end, 'closed', 'and closed cleanly at the end');
  t.end();
});

t.test('every lane lost: the session resumes and the responses arrive', (t) => {
  const e = ex.resume();
  const res = run(e.scenario, e.options);
  clean(t, res, 'resume');
  t.ok(res.stats.resumed >= 1, 'session-resumed');
  const msgs = [...res.world.ledger.msgs.values()];
  t.ok(msgs.every((m) => m.outcome === 'response' && m.delivered === 1), 'each request executed once and answered');
  t.equal(res.clients[0].incs.length, 1, 'one session throughout');
  t.end();
});

t.test('server restart: resume refused as unknown session, pending requests fail, a new session works', (t) => {
  const e = ex.sessionLost();
  const res = run(e.scenario, e.options);
  clean(t, res, 'session lost');
  const [first, second] = res.clients[0].incs;
  t.equal(first.end, 'lost', 'the first session is lost');
  t.equal(first.endCode, 8, 'with unknown-session');
  t.ok(first.msgs.length === 5 && first.msgs.every((m) => m.outcome === 'lost'), 'its 5 pending requests fail with it');
  t.ok(second, 'a new session opened');
  t.ok(second.msgs.length === 3 && second.msgs.every((m) => m.outcome === 'response'), 'and its requests are answered');
  t.end();
});

t.test('cancel: no response is delivered, the responder sees CANCEL', (t) => {
  const e = ex.cancel();
  const res = run(e.scenario, e.options);
  clean(t, res, 'cancel');
  const [m] = res.world.ledger.msgs.values();
  t.equal(m.outcome, 'aborted', 'the requester stopped waiting');
  t.equal(m.delivered, 1, 'the request reached the responder');
  t.ok(m.serverCancelled, "the responder's handler saw CANCEL");
  t.equal(res.stats.responses, 0, 'no response delivered');
  t.end();
});

t.test('timeout: one outcome, the late response is not delivered', (t) => {
  const e = ex.timeout();
  const res = run(e.scenario, e.options);
  clean(t, res, 'timeout');
  const [m] = res.world.ledger.msgs.values();
  t.equal(m.outcome, 'timeout');
  t.ok(m.serverCancelled, 'the responder was told (CANCEL)');
  t.equal(res.stats.responses, 0, 'no response delivered');
  t.end();
});

t.test('backpressure: -13 when the window is full, DRAIN later, then everything', (t) => {
  const e = ex.backpressure();
  const res = run(e.scenario, e.options);
  clean(t, res, 'backpressure');
  t.ok(res.stats.backpressure >= 1, `refused with backpressure ${res.stats.backpressure} times`);
  t.ok(res.stats.drains >= 1, `drain came ${res.stats.drains} times`);
  const msgs = [...res.world.ledger.msgs.values()];
  t.equal(msgs.length, 40, 'all 40 sent in the end');
  t.ok(msgs.every((m) => m.delivered === 1), 'each delivered once, in order');
  t.end();
});

t.test('request slot reused after cancels: late responses of old tags are dropped', (t) => {
  const e = ex.slotReuse();
  const res = run(e.scenario, e.options);
  clean(t, res, 'slot reuse');
  const msgs = [...res.world.ledger.msgs.values()];
  t.equal(msgs.length, 12, 'all 12 requests sent');
  t.equal(new Set(msgs.map((m) => m.tag & 0xffff)).size, 1, 'all through one request slot');
  t.equal(new Set(msgs.map((m) => m.tag)).size, 12, 'each with its own tag generation');
  t.ok(res.stats.responded > res.stats.responses, `responses made ${res.stats.responded}, delivered ${res.stats.responses}: the cancelled ones dropped`);
  t.ok(msgs.every((m) => m.outcome === 'response' || m.outcome === 'aborted'), 'each answered or cancelled, once (the ledger checks)');
  t.end();
});

// Regressions: each failed before the core fix named.

t.test('close while every lane is down waits for the resume (core: closing session resumes)', (t) => {
  const e = ex.closeWhileResuming();
  const res = run(e.scenario, e.options);
  clean(t, res, 'close while resuming');
  const first = res.clients[0].incs[0];
  t.equal(first.end, 'closed', 'closed cleanly');
  t.ok(first.msgs.every((m) => m.delivered === 1), 'after every message was delivered');
  t.end();
});

t.test('a lane the core closes mid ext payload (core: closeLane kept extWait)', (t) => {
  const e = ex.extMidPayload();
  const res = run(e.scenario, e.options);
  clean(t, res, 'ext mid payload');
  const [m] = res.world.ledger.msgs.values();
  t.equal(m.delivered, 1, 'the request was delivered once');
  t.equal(m.outcome, 'response', 'and answered');
  t.end();
});

t.test('an ACK lost on a half-open lane is sent again (core: re-ack when a lane is detached)', (t) => {
  const e = ex.ackOnDeadLane();
  const res = run(e.scenario, e.options);
  clean(t, res, 'ack on a dead lane');
  t.equal(res.clients[0].incs[0].end, 'closed', 'the close completes');
  t.end();
});

t.test('a RESEND lost with its lane is asked again (core: resendUntil)', (t) => {
  const e = ex.resendLost();
  const res = run(e.scenario, e.options);
  clean(t, res, 'resend lost');
  const seen = e.seen as typeof e.seen & { a?: unknown; b?: unknown; resendOn?: unknown };
  t.ok(seen.a && seen.b && seen.resendOn && seen.resendOn !== seen.b, 'the scenario happened: copy on A, copy on B, RESEND on a third lane, killed');
  t.ok([...res.world.ledger.msgs.values()].every((m) => m.delivered === 1), 'both messages delivered once');
  t.end();
});

t.test('random seeds that fail on the core before each fix', (t) => {
  // Found with the generator as it is now (a change to generate() moves
  // them; the hand-written tests above stay): on the core before 1c50484,
  // a graceful close during a partition reported a clean close with
  // messages lost (5, 9, 15); before 2fc3764, a lane closed by the core mid
  // ext payload wedged the session (561, 647, 861); before ad81851, the ACK
  // of a CLOSE lost on a half-open lane was never sent again (115, 788);
  // before 74271ae, a RESEND lost with its lane was never asked again (4321).
  for (const seed of [5, 9, 15, 561, 647, 861, 115, 788, 4321]) clean(t, run(generate(seed)), `seed ${seed}`);
  t.end();
});

t.test('duplicates on every delivery are suppressed', (t) => {
  const e = ex.duplicates();
  const res = run(e.scenario, e.options);
  clean(t, res, 'duplicates');
  t.ok(res.stats.dups > 20, `${res.stats.dups} batches delivered twice`);
  t.end();
});

t.test('committed recordings replay byte for byte', async (t) => {
  const dir = path.join(__dirname, '..', '..', 'test', 'replays');
  const files = readdirSync(dir).filter((f) => f.startsWith('sim-') && f.endsWith('.nxrp'));
  t.ok(files.length >= 6, `${files.length} sim recordings`);
  for (const f of files) {
    const r = await replay(path.join(dir, f));
    t.ok(r.inputs > 0 && r.outputs > 0, `${f}: ${r.inputs} inputs, ${r.outputs} outputs identical`);
  }
  // And they are what the scenarios produce today, byte for byte. replay()
  // asks the core only for as many outputs as were recorded (pollEvents and
  // pollTransmit are recorded only when they return something), so a core
  // that now emits more would still replay; this catches it. After a core
  // change that is meant to change them: npm run sim -- --write-examples.
  for (const [name, make] of Object.entries(ex.recorded)) {
    const e = make();
    const res = run(e.scenario, { ...e.options, record: true });
    for (const [side, rec] of res.recordings) {
      const f = `sim-${name}-${side}.nxrp`;
      t.ok(files.includes(f) && readFileSync(path.join(dir, f)).equals(rec.bytes()), `${f} is what the scenario records today`);
    }
  }
});
