#!/usr/bin/env node
// The nexio command line. Argument parsing uses node:util parseArgs: it ships
// with Node 20 and covers flags and positionals, so no parser dependency.

import { parseArgs } from 'node:util';
import { replay } from './record';
import { NexioError } from './errors';

const usage = `usage: nexio <command> [options]

commands:
  replay FILE [--trace]   feed a recording to a fresh core; exit 0 only if every output is identical
  help                    this text
`;

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
    process.stderr.write(`nexio: ${(e as Error).stack ?? e}\n`);
    process.exitCode = 1;
  });
}
