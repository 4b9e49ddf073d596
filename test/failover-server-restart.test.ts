// A server that lost its state must say so: the server process is killed
// (SIGKILL) with requests pending and restarted on the same port. The
// client's resume is answered "unknown session", and every pending request
// fails loudly with NEXIO_ERR_SESSION_LOST — never hangs, never runs on the
// new server, and never lands in somebody else's session. Each case runs
// over tcp:// and over tls://.

import t from 'tap';
import { fork } from 'node:child_process';
import * as path from 'node:path';
import { connect, NexioError, SessionLostError } from '../host/index';
import { installLaneControl } from './fixtures/lane-control';
import { startServerProc } from './fixtures/proc';
import { clientTls, streamSchemes } from './fixtures/tls';

const control = installLaneControl();
const UNKNOWN_SESSION = 8;
const SESSION_LOST = 11;
// A long resume timeout: "unknown session" must end these sessions, not the
// timer (a restart takes seconds on a loaded machine).
const fast = { keepaliveMs: 200, resumeTimeout: 60000 };

const settle = (p: Promise<unknown>) => p.then(
  (v) => ({ ok: true as const, v, e: undefined }),
  (e: Error) => ({ ok: false as const, v: undefined, e: e as NexioError }));

for (const scheme of streamSchemes) {
  const opts = { ...fast, ...clientTls(`${scheme}:`) };

  t.test(`${scheme}: killed and restarted on the same port: pending requests fail with NEXIO_ERR_SESSION_LOST`, { timeout: 90000 }, async (t) => {
    const first = await startServerProc(t, { delayMs: 60000, scheme });
    const port = Number(new URL(first.portal).port);
    const s = await connect(first.portal, { lanes: 2, ...opts });
    t.teardown(() => s.destroy());
    const closed = new Promise<Error | undefined>((r) => s.once('close', r));
    const pending = Array.from({ length: 8 }, (_, i) => settle(s.request(`p-${i}`, 'x')));
    // The handler holds them: make sure they reached it before the kill.
    await t.resolveMatch(first.ask('counts', 'counts'), {}, 'server is up');
    while (Object.keys((await first.ask<{ counts: object }>('counts', 'counts')).counts).length < 8) await new Promise((r) => setTimeout(r, 20));

    await first.kill('SIGKILL');
    const second = await startServerProc(t, { port, delayMs: 0, scheme });
    t.equal(Number(new URL(second.portal).port), port, 'restarted on the same port');

    const results = await Promise.all(pending);
    for (const [i, r] of results.entries()) {
      t.notOk(r.ok, `p-${i} did not resolve`);
      t.type(r.e, SessionLostError, `p-${i} failed with SessionLostError`);
      t.equal(r.e?.code, 'NEXIO_ERR_SESSION_LOST', `p-${i} code`);
    }
    t.equal(results[0].e?.wire, UNKNOWN_SESSION, 'because the server answered "unknown session"');
    const why = await closed;
    t.equal((why as NexioError | undefined)?.code, 'NEXIO_ERR_SESSION_LOST', "'close' carries the error");
    t.equal(s.state, 'closed');
    const after = await settle(s.request('late', 'x'));
    t.equal(after.e?.code, 'NEXIO_ERR_SESSION_LOST', 'later requests fail the same way, at once');
    const { counts } = await second.ask<{ counts: Record<string, number> }>('counts', 'counts');
    t.same(counts, {}, 'nothing of the lost session ran on the new server');

    const fresh = await connect(second.portal, { lanes: 1, ...opts });
    t.equal((await fresh.request('fresh', 'x')).data.toString(), 'fresh', 'the new server serves new sessions');
    await fresh.close();
  });

  t.test(`${scheme}: a new client on the restarted server first: the old session does not join its session`, { timeout: 90000 }, async (t) => {
    const first = await startServerProc(t, { delayMs: 60000, scheme });
    const port = Number(new URL(first.portal).port);
    const old = await connect(first.portal, { lanes: 2, ...opts });
    t.teardown(() => old.destroy());
    const pending = Array.from({ length: 4 }, (_, i) => settle(old.request(`old-${i}`, 'x')));
    while (Object.keys((await first.ask<{ counts: object }>('counts', 'counts')).counts).length < 4) await new Promise((r) => setTimeout(r, 20));

    // Hold the old session's reconnects (its lanes use the /svc path) until
    // a new client has its session on the restarted server.
    control.refuse = (u) => u.pathname === '/svc';
    t.teardown(() => { control.refuse = undefined; });
    await first.kill('SIGKILL');
    const second = await startServerProc(t, { port, delayMs: 0, scheme });
    const other = second.portal.replace(/\/svc$/, '/other');
    const fresh = await connect(other, { lanes: 1, ...opts });
    t.teardown(() => fresh.destroy());
    let freshResumed = 0;
    fresh.on('resumed', () => freshResumed++);
    t.not(fresh.id, old.id, 'the restarted server does not hand out the old session id again');
    control.refuse = undefined;

    const results = await Promise.all(pending);
    for (const [i, r] of results.entries()) t.equal(r.e?.code, 'NEXIO_ERR_SESSION_LOST', `old-${i} failed with NEXIO_ERR_SESSION_LOST`);
    t.equal(old.state, 'closed', 'the old session is closed');
    t.equal((await fresh.request('fresh', 'x')).data.toString(), 'fresh', "the new client's session still works");
    const { counts } = await second.ask<{ counts: Record<string, number> }>('counts', 'counts');
    t.same(Object.keys(counts).filter((id) => id.startsWith('old-')), [], 'no request of the old session ran on the new server');
    t.equal(freshResumed, 0, 'nobody resumed into the new session');
  });

  t.test(`${scheme}: killed and not restarted: pending requests fail after the resume timeout`, { timeout: 90000 }, async (t) => {
    const server = await startServerProc(t, { delayMs: 60000, scheme });
    const resumeTimeout = 1500;
    const s = await connect(server.portal, { lanes: 2, keepaliveMs: 200, resumeTimeout, ...clientTls(server.portal) });
    t.teardown(() => s.destroy());
    const pending = Array.from({ length: 4 }, (_, i) => settle(s.request(`q-${i}`, 'x')));
    while (Object.keys((await server.ask<{ counts: object }>('counts', 'counts')).counts).length < 4) await new Promise((r) => setTimeout(r, 20));
    const t0 = performance.now();
    await server.kill('SIGKILL');
    const results = await Promise.all(pending);
    const waited = performance.now() - t0;
    for (const [i, r] of results.entries()) {
      t.equal(r.e?.code, 'NEXIO_ERR_SESSION_LOST', `q-${i} failed with NEXIO_ERR_SESSION_LOST`);
      t.equal(r.e?.wire, SESSION_LOST, `q-${i}: no lane came back in time`);
    }
    t.ok(waited >= resumeTimeout * 0.9, `the session waited for the resume timeout first (${waited.toFixed(0)} ms)`);
  });

  t.test(`${scheme}: a client process waiting on a request while every lane is down stays alive until the outcome`, { timeout: 90000 }, async (t) => {
    const server = await startServerProc(t, { delayMs: 60000, scheme });
    const child = fork(path.join(__dirname, 'fixtures', 'client-proc.js'),
      [server.portal, JSON.stringify({ lanes: 1, keepaliveMs: 200, resumeTimeout: 1500, ...clientTls(server.portal) })], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    t.teardown(async () => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); await exited; });
    const messages: { type: string; ok?: boolean; code?: string }[] = [];
    const sent = new Promise<void>((r) => child.on('message', (m: { type: string }) => { messages.push(m); if (m.type === 'sent') r(); }));
    await sent;
    while (Object.keys((await server.ask<{ counts: object }>('counts', 'counts')).counts).length < 1) await new Promise((r) => setTimeout(r, 20));
    await server.kill('SIGKILL');
    const code = await exited;
    t.same(messages.find((m) => m.type === 'outcome'), { type: 'outcome', ok: false, code: 'NEXIO_ERR_SESSION_LOST' },
      'the request ended with NEXIO_ERR_SESSION_LOST before the process exited');
    t.equal(code, 0, 'the client exited cleanly');
  });
}
