// A server holding many idle sessions and one busy one, against the same
// server with the busy one alone, in one run (issue 9: within 10%):
//
//   node dist/bench/idle.js [--idle 1000] [--seconds 2] [--rounds 3] [--json FILE]
//
// The server runs in its own process (bench/peers/serve.ts, the nexio
// system of `npm run bench`), the idle sessions in another (one context,
// `--idle` sessions of one lane each, keepalives and nothing else), the busy
// client here: 64-byte request/response, 128 in flight, through the hot path.
// Each round measures the busy client twice, alone and beside the idle
// sessions (the idle process opens them before and closes them after), in
// alternating order; the figure is the median of the per-round ratios
// (with idle / alone). CPU µs per request (this process + the server's) is
// printed beside throughput: the server's per-turn cost is the point.

import { fork, ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { connect, Session } from '../host/index';
import { requestLoad } from '../host/bench';

interface Args { idle: number; seconds: number; rounds: number; json?: string }

function args(): Args {
  const { values } = parseArgs({
    options: {
      idle: { type: 'string', default: '1000' }, seconds: { type: 'string', default: '2' },
      rounds: { type: 'string', default: '3' }, json: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write('usage: node dist/bench/idle.js [--idle 1000] [--seconds 2] [--rounds 3] [--json FILE]\n');
    process.exit(0);
  }
  const n = (v: string, name: string, min: number) => {
    const x = Number(v);
    if (!Number.isFinite(x) || x < min) throw new Error(`--${name} must be a number >= ${min}, not '${v}'`);
    return x;
  };
  return { idle: Math.floor(n(values.idle!, 'idle', 1)), seconds: n(values.seconds!, 'seconds', 0.2), rounds: Math.floor(n(values.rounds!, 'rounds', 1)), json: values.json };
}

/** The child that holds the idle sessions: `node idle.js --hold PORT N`. */
async function hold(port: number, n: number): Promise<void> {
  const sessions: Session[] = [];
  process.on('message', async (m: string) => {
    if (m === 'open') {
      for (let i = 0; i < n; i += 50) {
        const batch = Array.from({ length: Math.min(50, n - i) }, () => connect(`tcp://127.0.0.1:${port}/bench`, { lanes: 1 }));
        sessions.push(...(await Promise.all(batch)));
      }
      process.send!({ open: sessions.length });
    } else if (m === 'close') {
      await Promise.all(sessions.splice(0).map((s) => s.close({ timeout: 2000 }).catch(() => undefined)));
      process.send!({ closed: true });
    }
  });
  process.on('disconnect', () => process.exit(0));
  process.send!({ ready: true });
}

function ask<T>(child: ChildProcess, msg: unknown, key: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const exit = (c: number | null) => reject(new Error(`child exited with ${c}`));
    const on = (m: Record<string, unknown>) => {
      if (key in m) { child.off('message', on); child.off('exit', exit); resolve(m[key] as T); }
    };
    child.on('message', on);
    child.once('exit', exit);
    if (msg !== undefined) child.send(msg as string);
  });
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

async function main(): Promise<void> {
  if (process.argv[2] === '--hold') { await hold(Number(process.argv[3]), Number(process.argv[4])); return; }
  const a = args();
  const server = fork(path.join(__dirname, 'peers', 'serve.js'), ['nexio'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await ask<number>(server, undefined, 'port');
  const idler = fork(__filename, ['--hold', String(port), String(a.idle)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await ask(idler, undefined, 'ready');
  const busy = await connect(`tcp://127.0.0.1:${port}/bench`, { lanes: 1 });
  const serverCpu = () => ask<NodeJS.CpuUsage>(server, 'cpu', 'cpu').then((c) => c.user + c.system);
  const measure = async () => {
    const c0 = process.cpuUsage(), s0 = await serverCpu();
    const r = await requestLoad(busy, { seconds: a.seconds, size: 64, inflight: 128 });
    const c = process.cpuUsage(c0), s1 = await serverCpu();
    return { ops: r.opsPerSec, cpuUs: (c.user + c.system + s1 - s0) / r.ops, serverCpuUs: (s1 - s0) / r.ops };
  };
  await requestLoad(busy, { seconds: 0.5, size: 64, inflight: 128 }); // warm-up
  const rows: { alone: Awaited<ReturnType<typeof measure>>; idle: Awaited<ReturnType<typeof measure>> }[] = [];
  for (let r = 0; r < a.rounds; r++) {
    let alone, idle;
    const withIdle = async () => {
      const opened = await ask<number>(idler, 'open', 'open');
      if (opened !== a.idle) throw new Error(`only ${opened} of ${a.idle} idle sessions opened`);
      await new Promise((res) => setTimeout(res, 300)); // their handshakes' turns are over
      const m = await measure();
      await ask(idler, 'close', 'closed');
      return m;
    };
    if (r % 2 === 0) { alone = await measure(); idle = await withIdle(); } else { idle = await withIdle(); alone = await measure(); }
    rows.push({ alone, idle });
    process.stdout.write(`round ${r + 1}/${a.rounds}  alone ${Math.round(alone.ops)} ops/s ${alone.cpuUs.toFixed(2)} cpu µs/op (server ${alone.serverCpuUs.toFixed(2)})  with ${a.idle} idle ${Math.round(idle.ops)} ops/s ${idle.cpuUs.toFixed(2)} cpu µs/op (server ${idle.serverCpuUs.toFixed(2)})\n`);
  }
  const ratio = median(rows.map((x) => x.idle.ops / x.alone.ops));
  const cpuRatio = median(rows.map((x) => x.idle.serverCpuUs / x.alone.serverCpuUs));
  const met = ratio >= 0.9;
  process.stdout.write(`\nbusy session's request/response 64 B x128 beside ${a.idle} idle sessions / alone: ${ratio.toFixed(2)} (target >= 0.90 ${met ? 'met' : 'MISSED'}); server CPU per request ${cpuRatio.toFixed(2)}x\n`);
  process.stdout.write(`${os.cpus().length} cpus, load average ${os.loadavg()[0].toFixed(1)}, node ${process.version}\n`);
  if (a.json) writeFileSync(a.json, JSON.stringify({ idle: a.idle, seconds: a.seconds, rounds: rows, ratio, serverCpuRatio: cpuRatio, target: 0.9, met }, null, 2));
  await busy.close();
  idler.disconnect();
  server.disconnect();
}

main().catch((e) => { process.stderr.write(`bench/idle: ${(e as Error)?.stack ?? e}\n`); process.exit(1); });
