#!/usr/bin/env node
// The nexio command line. Argument parsing uses node:util parseArgs (strict:
// unknown options and stray arguments are errors): it ships with Node 20, so
// no parser dependency. Every option is checked before any network work; a
// bad one exits 2 with one line on stderr that names it. A URI its transport
// refuses exits 1 with the library's typed error, also one line.
//
// ping, bench and demo use tool dependencies (hdr-histogram-js, and
// cli-progress when it is there), `replay --trace` @wasmer/wasi: a library
// consumer does not install them (host/tools.ts).

import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type * as Progress from 'cli-progress';
import { replay } from './record';
import type { NexioError } from './errors';
import { connect, createServer, Session } from './index';
import { requestLoad, onewayLoad, pingLoad, table, LoadResult } from './bench';
import { checkTool, optionalTool, MissingToolError } from './tools';

const echoHandler = path.join(__dirname, 'echo.js');

/** A bad command line: printed as one line, exit code 2. */
class UsageError extends Error {}

type Values = Record<string, string | boolean | undefined>;

interface OptionSpec { type: 'string' | 'boolean'; value?: string; help: string }

interface Command {
  /** Positional arguments, each required (e.g. ['URI']). */
  args: string[];
  summary: string;
  options: Record<string, OptionSpec>;
  run(values: Values, args: string[]): Promise<number>;
}

// ---- numbers from the command line ----

/** A whole number in [min, max], or dflt when the option is absent. */
/** --size, bytes per message: at most the core's default maxMessageBytes (64 MiB) less a header. */
const SIZE_OPTION = { type: 'string', value: 'B', help: 'payload bytes per message, 0 to 67104768; default 64' } as const;
const sizeOf = (values: Values): number => int(values, 'size', 64, 0, 64 * 2 ** 20 - 4096);

function int(values: Values, name: string, dflt: number, min: number, max = 2 ** 30): number {
  const v = values[name];
  if (v === undefined) return dflt;
  const n = /^\s*[+-]?\d+\s*$/.test(String(v)) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be a whole number ${max === 2 ** 30 ? `of at least ${min}` : `from ${min} to ${max}`}, not '${v}'`);
  }
  return n;
}

/** A number above 0 (seconds), or dflt when the option is absent. */
function positive(values: Values, name: string, dflt: number): number {
  const v = values[name];
  if (v === undefined) return dflt;
  const n = String(v).trim() === '' ? NaN : Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} must be a number above 0, not '${v}'`);
  return n;
}

// ---- tls:// certificates from files ----

const CLIENT_TLS = {
  ca: { type: 'string', value: 'FILE', help: "tls://: PEM CA certificate(s) to trust for the server's certificate; default Node's list" },
  cert: { type: 'string', value: 'FILE', help: 'tls://: PEM client certificate, for servers that require one (mutual TLS)' },
  key: { type: 'string', value: 'FILE', help: "tls://: PEM private key of --cert" },
} as const;
const SERVER_TLS = {
  cert: { type: 'string', value: 'FILE', help: "tls://: PEM certificate of the server (required on tls://)" },
  key: { type: 'string', value: 'FILE', help: 'tls://: PEM private key of --cert (required on tls://)' },
  ca: { type: 'string', value: 'FILE', help: 'tls://: require client certificates signed by this PEM CA (mutual TLS)' },
} as const;

/** The tls options of --ca/--cert/--key for `uri` (undefined when none given); UsageError for a file that cannot be read or a URI that is not tls://. */
function tlsFrom(values: Values, uri: string, server: boolean): { ca?: Buffer; cert?: Buffer; key?: Buffer; requestCert?: boolean } | undefined {
  const given = (['ca', 'cert', 'key'] as const).filter((k) => values[k] !== undefined);
  const secure = uri.startsWith('tls:');
  if (!secure) {
    if (given.length) throw new UsageError(`--${given[0]} is for tls:// URIs, not '${uri}'`);
    return undefined;
  }
  if (server && (values.cert === undefined || values.key === undefined)) throw new UsageError(`serving ${uri} needs --cert and --key`);
  if ((values.cert === undefined) !== (values.key === undefined)) throw new UsageError('--cert and --key go together');
  const o: { ca?: Buffer; cert?: Buffer; key?: Buffer; requestCert?: boolean } = {};
  for (const k of given) {
    try { o[k] = readFileSync(String(values[k])); } catch (e) { throw new UsageError(`--${k}: cannot read '${values[k]}' (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`); }
  }
  if (server && o.ca) o.requestCert = true;
  return o;
}

// ---- the commands ----

const commands: Record<string, Command> = {
  serve: {
    args: ['URI'],
    summary: 'echo server on URI (e.g. tcp://127.0.0.1:7000/echo) until SIGINT or SIGTERM',
    options: { threads: { type: 'string', value: 'N', help: 'worker threads, each serving a context (0: on this thread); default 0' }, ...SERVER_TLS },
    async run(values, [uri]) {
      const threads = int(values, 'threads', 0, 0, 256);
      const tls = tlsFrom(values, uri, true);
      const server = await createServer({ portals: [uri], threads, handler: echoHandler, ...(tls ? { tls } : {}) });
      process.stdout.write(`serving ${server.contexts.map((p) => p.join(' ')).join(', ')}\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await server.close();
      return 0;
    },
  },
  ping: {
    args: ['URI'],
    summary: 'round-trip latency histogram of sequential requests',
    options: {
      count: { type: 'string', value: 'N', help: 'requests to time, at least 1; default 1000 (after up to 100 to warm up)' },
      size: SIZE_OPTION,
      ...CLIENT_TLS,
    },
    async run(values, [uri]) {
      const count = int(values, 'count', 1000, 1);
      const size = sizeOf(values);
      const tls = tlsFrom(values, uri, false);
      checkTool('hdr-histogram-js', 'nexio ping');
      const s = await connect(uri, { lanes: 1, ...(tls ? { tls } : {}) });
      let h;
      try {
        await pingLoad(s, Math.min(100, count), size); // warm-up
        h = await pingLoad(s, count, size);
        await s.close();
      } finally {
        await s.destroy(); // an error midway must not leave the session holding the process
      }
      process.stdout.write(`ping ${uri}: ${count} requests of ${size} B\n`);
      process.stdout.write(table([
        ['percentile', 'µs'],
        ...[50, 90, 99, 99.9].map((p) => [`p${p}`, h.getValueAtPercentile(p)]),
        ['max', h.maxValue], ['mean', h.mean],
      ]) + '\n');
      return 0;
    },
  },
  bench: {
    args: ['URI'],
    summary: 'throughput and latency, with progress and a results table',
    options: {
      seconds: { type: 'string', value: 'S', help: 'length of the run, above 0 (each of its two phases runs at least 1 s); default 6' },
      size: SIZE_OPTION,
      inflight: { type: 'string', value: 'N', help: 'requests outstanding, at least 1; default 128' },
      lanes: { type: 'string', value: 'N', help: 'lanes of the session, 1 to 8; default 2' },
      ...CLIENT_TLS,
    },
    async run(values, [uri]) {
      const seconds = positive(values, 'seconds', 6);
      const size = sizeOf(values);
      const inflight = int(values, 'inflight', 128, 1);
      const lanes = int(values, 'lanes', 2, 1, 8);
      const tls = tlsFrom(values, uri, false);
      checkTool('hdr-histogram-js', 'nexio bench');
      printResults(await runBench(uri, seconds, size, inflight, lanes, tls));
      return 0;
    },
  },
  demo: {
    args: [],
    summary: 'server and client on loopback, a short bench, a table (npm start)',
    options: { seconds: { type: 'string', value: 'S', help: 'length of the bench, above 0; default 6' } },
    async run(values) {
      const seconds = positive(values, 'seconds', 6);
      checkTool('hdr-histogram-js', 'nexio demo');
      process.stdout.write('nexio demo: an echo server on a worker thread, a client on this one, over loopback tcp\n');
      const server = await createServer({ portals: ['tcp://127.0.0.1:0/demo'], threads: 1, handler: echoHandler });
      process.stdout.write(`server portal ${server.portals[0]}\n\n`);
      try {
        printResults(await runBench(server.portals[0], seconds, 64, 128, 2));
      } finally {
        await server.close();
      }
      return 0;
    },
  },
  replay: {
    args: ['FILE'],
    summary: 'feed a recording to a fresh core; exit 0 only if every output is identical',
    options: { trace: { type: 'boolean', help: 'run the debug core and print its protocol trace (needs @wasmer/wasi)' } },
    async run(values, [file]) {
      if (values.trace) checkTool('@wasmer/wasi', 'nexio replay --trace');
      const t0 = process.hrtime.bigint();
      try {
        const r = await replay(file, { trace: values.trace === true });
        if (values.trace) process.stdout.write(r.trace);
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        process.stdout.write(`replay: ${file}: ${r.inputs} inputs, ${r.outputs} outputs identical (${ms.toFixed(1)} ms)\n`);
        return 0;
      } catch (e) {
        const err = e as NexioError;
        process.stderr.write(`replay: ${file}: ${err.code ?? 'ERROR'}: ${err.message}\n`);
        return 1;
      }
    },
  },
};

// ---- bench helpers ----

type Bar = { update(done: number, elapsed: number): void; stop(): void };

/** A progress bar (cli-progress), or one line at the end of the phase when it is not installed. */
function progress(label: string, seconds: number): Bar {
  const lib = optionalTool<typeof Progress>('cli-progress');
  if (!lib) {
    let last = { done: 0, elapsed: 0 };
    return {
      update: (done, elapsed) => { last = { done, elapsed }; },
      stop: () => process.stdout.write(`${label.padEnd(34)} ${last.done} ops | ${Math.round(last.done / Math.max(last.elapsed, 1e-3))}/s\n`),
    };
  }
  const bar = new lib.SingleBar({
    format: `${label.padEnd(34)} [{bar}] {percentage}% | {ops} ops | {rate}/s`,
    hideCursor: true, clearOnComplete: false, stream: process.stdout, noTTYOutput: !process.stdout.isTTY, notTTYSchedule: 1000,
  }, lib.Presets.shades_classic);
  bar.start(seconds * 10, 0, { ops: 0, rate: 0 });
  return {
    update: (done, elapsed) => bar.update(Math.min(seconds * 10, Math.round(elapsed * 10)), { ops: done, rate: Math.round(done / Math.max(elapsed, 1e-3)) }),
    stop: () => bar.stop(),
  };
}

async function runBench(uri: string, seconds: number, size: number, inflight: number, lanes: number, tls?: object): Promise<LoadResult[]> {
  const s = await connect(uri, { lanes, ...(tls ? { tls } : {}) });
  try {
    return await benchPhases(s, seconds, size, inflight);
  } finally {
    await s.destroy(); // after close(), or after an error midway: nothing may hold the process
  }
}

async function benchPhases(s: Session, seconds: number, size: number, inflight: number): Promise<LoadResult[]> {
  const results: LoadResult[] = [];
  const phases: [string, (o: Parameters<typeof requestLoad>[1]) => Promise<LoadResult>][] = [
    [`request/response ${size} B x${inflight}`, (o) => requestLoad(s, o)],
    [`one-way ${size} B`, (o) => onewayLoad(s, o)],
  ];
  const each = Math.max(1, seconds / phases.length);
  for (const [label, run] of phases) {
    const p = progress(label, each);
    try {
      const r = await run({ seconds: each, size, inflight, onProgress: p.update });
      p.update(r.ops, each);
      results.push(r);
    } finally {
      p.stop();
    }
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

// ---- help, version, dispatch ----

function synopsis(name: string): string {
  const c = commands[name];
  const opts = Object.entries(c.options).map(([o, spec]) => `[--${o}${spec.value ? ` ${spec.value}` : ''}]`);
  return ['nexio', name, ...c.args, ...opts].join(' ');
}

function usage(): string {
  const rows = Object.keys(commands).map((n) => `  ${[n, ...commands[n].args].join(' ').padEnd(15)} ${commands[n].summary}`);
  return `usage: nexio <command> [options]

commands:
${rows.join('\n')}
  help [COMMAND]  this text, or a command's options (also: nexio COMMAND --help)

options: -h, --help (this text); --version (nexio's version)
`;
}

function commandHelp(name: string): string {
  const c = commands[name];
  const row = (flag: string, help: string) => `  ${flag.padEnd(15)} ${help}`;
  const opts = Object.entries(c.options).map(([o, spec]) => row(`--${o}${spec.value ? ` ${spec.value}` : ''}`, spec.help));
  return `usage: ${synopsis(name)}\n\n${c.summary}\n\noptions:\n${[...opts, row('-h, --help', 'this text')].join('\n')}\n`;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

/** Strict parse of one command's arguments; UsageError on anything it does not take. */
function parse(name: string, argv: string[]): { values: Values; args: string[]; help: boolean } {
  const c = commands[name];
  const options = Object.fromEntries(Object.entries(c.options).map(([o, spec]) => [o, { type: spec.type }]));
  let parsed;
  try {
    parsed = parseArgs({ args: argv, strict: true, allowPositionals: true, options: { ...options, help: { type: 'boolean', short: 'h' } } });
  } catch (e) {
    const err = e as Error & { code?: string };
    const unknown = /^Unknown option '([^']+)'/.exec(err.message);
    if (unknown) throw new UsageError(`unknown option '${unknown[1]}'`);
    const ambiguous = /^Option '(--[^']+)' argument is ambiguous/.exec(err.message);
    if (ambiguous) throw new UsageError(`${ambiguous[1]}: a value that starts with '-' is written ${ambiguous[1]}=VALUE`);
    if (err.code?.startsWith('ERR_PARSE_ARGS')) throw new UsageError(err.message.split('\n')[0].replace(/^Option '(--\S+).*' argument missing$/, '$1 needs a value'));
    throw e;
  }
  const values = parsed.values as Values;
  const help = values.help === true;
  if (!help && parsed.positionals.length !== c.args.length) {
    const want = c.args.length === 0 ? 'no arguments' : `${c.args.length === 1 ? 'one' : c.args.length} ${c.args.join(' ')}`;
    throw new UsageError(parsed.positionals.length > c.args.length && c.args.length > 0
      ? `give ${want}, not ${parsed.positionals.length} (${parsed.positionals.map((p) => `'${p}'`).join(' ')})`
      : `give ${want}${parsed.positionals.length ? `, not '${parsed.positionals.join(' ')}'` : ''}`);
  }
  return { values, args: parsed.positionals, help };
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined) { process.stderr.write(usage()); return 2; }
  if (cmd === '--version') { process.stdout.write(`${version()}\n`); return 0; }
  if (cmd === 'help' || cmd === '--help' || cmd === '-h') {
    const topic = rest[0];
    if (topic === undefined) { process.stdout.write(usage()); return 0; }
    if (!Object.hasOwn(commands, topic)) { process.stderr.write(`nexio help: unknown command '${topic}' (nexio --help lists them)\n`); return 2; }
    process.stdout.write(commandHelp(topic));
    return 0;
  }
  if (!Object.hasOwn(commands, cmd)) {
    process.stderr.write(`nexio: unknown ${cmd.startsWith('-') ? 'option' : 'command'} '${cmd}' (nexio --help lists the commands)\n`);
    return 2;
  }
  try {
    const { values, args, help } = parse(cmd, rest);
    if (help) { process.stdout.write(commandHelp(cmd)); return 0; }
    return await commands[cmd].run(values, args);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`nexio ${cmd}: ${e.message} (nexio ${cmd} --help)\n`);
      return 2;
    }
    if (e instanceof MissingToolError) {
      process.stderr.write(`nexio ${cmd}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e) => {
    const err = e as NexioError;
    process.stderr.write(`nexio: ${err.code ? `${err.code}: ${err.message}` : err.stack ?? e}\n`);
    process.exitCode = 1;
  });
}
