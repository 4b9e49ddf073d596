#!/usr/bin/env node
// The nexio command line. Argument parsing uses node:util parseArgs: it ships
// with Node 20 and covers flags and positionals, so no parser dependency.

import { parseArgs } from 'node:util';
import * as path from 'node:path';
import { SingleBar, Presets } from 'cli-progress';
import { replay } from './record';
import { NexioError } from './errors';
import { connect, createServer } from './index';
import { requestLoad, onewayLoad, pingLoad, table, LoadResult } from './bench';

const usage = `usage: nexio <command> [options]

commands:
  serve URI [--threads N]                 echo server on URI (e.g. tcp://127.0.0.1:7000/echo)
  ping URI [--count N] [--size B]         round-trip latency histogram
  bench URI [--seconds S] [--size B] [--inflight N] [--lanes N]
                                          throughput and latency, with progress and a results table
  demo [--seconds S]                      server and client on loopback, a short bench, a table (npm start)
  replay FILE [--trace]                   feed a recording to a fresh core; exit 0 only if every output is identical
  help                                    this text
`;

const echoHandler = path.join(__dirname, 'echo.js');

function num(v: string | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new NexioError('NEXIO_ERR_INVALID_ARG', `--${name} must be a number, not '${v}'`);
  return n;
}

async function cmdServe(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { threads: { type: 'string' } } });
  if (positionals.length !== 1) { process.stderr.write('nexio serve: give one URI\n'); return 2; }
  const server = await createServer({ portals: positionals, threads: num(values.threads, 0, 'threads'), handler: echoHandler });
  process.stdout.write(`serving ${server.contexts.map((p) => p.join(' ')).join(', ')}\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await server.close();
  return 0;
}

async function cmdPing(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { count: { type: 'string' }, size: { type: 'string' } } });
  if (positionals.length !== 1) { process.stderr.write('nexio ping: give one URI\n'); return 2; }
  const s = await connect(positionals[0], { lanes: 1 });
  const count = num(values.count, 1000, 'count');
  await pingLoad(s, Math.min(100, count), num(values.size, 64, 'size')); // warm-up
  const h = await pingLoad(s, count, num(values.size, 64, 'size'));
  await s.close();
  process.stdout.write(`ping ${positionals[0]}: ${count} requests of ${num(values.size, 64, 'size')} B\n`);
  process.stdout.write(table([
    ['percentile', 'µs'],
    ...[50, 90, 99, 99.9].map((p) => [`p${p}`, h.getValueAtPercentile(p)]),
    ['max', h.maxValue], ['mean', h.mean],
  ]) + '\n');
  return 0;
}

function progress(label: string, seconds: number): { bar: SingleBar; update: (done: number, elapsed: number) => void } {
  const bar = new SingleBar({
    format: `${label.padEnd(34)} [{bar}] {percentage}% | {ops} ops | {rate}/s`,
    hideCursor: true, clearOnComplete: false, stream: process.stdout, noTTYOutput: !process.stdout.isTTY, notTTYSchedule: 1000,
  }, Presets.shades_classic);
  bar.start(seconds * 10, 0, { ops: 0, rate: 0 });
  return {
    bar,
    update: (done, elapsed) => bar.update(Math.min(seconds * 10, Math.round(elapsed * 10)), { ops: done, rate: Math.round(done / Math.max(elapsed, 1e-3)) }),
  };
}

async function runBench(uri: string, seconds: number, size: number, inflight: number, lanes: number): Promise<LoadResult[]> {
  const s = await connect(uri, { lanes });
  const results: LoadResult[] = [];
  const phases: [string, (o: Parameters<typeof requestLoad>[1]) => Promise<LoadResult>][] = [
    [`request/response ${size} B x${inflight}`, (o) => requestLoad(s, o)],
    [`one-way ${size} B`, (o) => onewayLoad(s, o)],
  ];
  const each = Math.max(1, seconds / phases.length);
  for (const [label, run] of phases) {
    const p = progress(label, each);
    const r = await run({ seconds: each, size, inflight, onProgress: p.update });
    p.update(r.ops, each);
    p.bar.stop();
    results.push(r);
  }
  const h = await pingLoad(s, 2000, size);
  results.push({ name: `ping-pong ${size} B`, ops: h.totalCount, seconds: 0, opsPerSec: 0, mbPerSec: 0, p50us: h.getValueAtPercentile(50), p99us: h.getValueAtPercentile(99), maxUs: h.maxValue });
  await s.close();
  return results;
}

function printResults(results: LoadResult[]): void {
  process.stdout.write('\n' + table([
    ['workload', 'ops', 'ops/s', 'MB/s', 'p50 µs', 'p99 µs'],
    ...results.map((r) => [r.name, r.ops, r.opsPerSec || '-', r.mbPerSec || '-', r.p50us || '-', r.p99us || '-']),
  ]) + '\n');
}

async function cmdBench(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: {
    seconds: { type: 'string' }, size: { type: 'string' }, inflight: { type: 'string' }, lanes: { type: 'string' } } });
  if (positionals.length !== 1) { process.stderr.write('nexio bench: give one URI\n'); return 2; }
  const results = await runBench(positionals[0], num(values.seconds, 6, 'seconds'), num(values.size, 64, 'size'),
    num(values.inflight, 128, 'inflight'), num(values.lanes, 2, 'lanes'));
  printResults(results);
  return 0;
}

async function cmdDemo(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { seconds: { type: 'string' } } });
  const seconds = num(values.seconds, 6, 'seconds');
  process.stdout.write('nexio demo: an echo server on a worker thread, a client on this one, over loopback tcp\n');
  const server = await createServer({ portals: ['tcp://127.0.0.1:0/demo'], threads: 1, handler: echoHandler });
  process.stdout.write(`server portal ${server.portals[0]}\n\n`);
  try {
    const results = await runBench(server.portals[0], seconds, 64, 128, 2);
    printResults(results);
  } finally {
    await server.close();
  }
  return 0;
}

async function cmdReplay(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { trace: { type: 'boolean' } } });
  if (positionals.length !== 1) {
    process.stderr.write('nexio replay: give exactly one FILE\n');
    return 2;
  }
  const file = positionals[0];
  const t0 = process.hrtime.bigint();
  try {
    const r = await replay(file, { trace: values.trace });
    if (values.trace) process.stdout.write(r.trace);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    process.stdout.write(`replay: ${file}: ${r.inputs} inputs, ${r.outputs} outputs identical (${ms.toFixed(1)} ms)\n`);
    return 0;
  } catch (e) {
    const err = e as NexioError;
    process.stderr.write(`replay: ${file}: ${err.code ?? 'ERROR'}: ${err.message}\n`);
    return 1;
  }
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'replay': return cmdReplay(rest);
    case 'serve': return cmdServe(rest);
    case 'ping': return cmdPing(rest);
    case 'bench': return cmdBench(rest);
    case 'demo': return cmdDemo(rest);
    case undefined:
    case 'help':
    case '--help':
      process.stdout.write(usage);
      return cmd === undefined ? 2 : 0;
  }
  process.stderr.write(`nexio: unknown command '${cmd}'\n${usage}`);
  return 2;
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e) => {
    const err = e as NexioError;
    process.stderr.write(`nexio: ${err.code ? `${err.code}: ${err.message}` : err.stack ?? e}\n`);
    process.exitCode = 1;
  });
}
