// The types catch mistakes: test/types/*.cts compile as a consumer's code
// does (strict, no skipLibCheck, against the built dist/host/index.d.ts),
// and every mistake in mistakes.cts (a misspelled event or error code, a
// wrong listener, a private callback) sits under a @ts-expect-error: if one
// of them compiled, tsc would report the unused directive and fail.

import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as nexio from '../host/index';

const root = path.join(__dirname, '..', '..');
const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const config = path.join(root, 'test', 'types', 'tsconfig.json');

function compile(project: string): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [tsc, '--noEmit', '-p', project], { encoding: 'utf8', cwd: root });
  return { status: r.status, out: r.stdout + r.stderr };
}

t.test('a strict consumer compiles, and each mistake in mistakes.cts fails to', async (t) => {
  const r = compile(config);
  t.equal(r.status, 0, r.out || 'tsc passed');
});

t.test('a mistake that compiles fails the type test (an unused @ts-expect-error)', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nexio-types-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'ok.cts'), [
    "import { connect } from 'nexio';",
    'export async function f(): Promise<void> {',
    "  const s = await connect('mem://x/y');",
    '  // @ts-expect-error (wrongly: this is a correct event)',
    "  s.on('message', () => undefined);",
    '}',
  ].join('\n'));
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({
    extends: config,
    compilerOptions: { typeRoots: [path.join(root, 'node_modules', '@types')], paths: { nexio: [path.join(root, 'dist', 'host', 'index.d.ts')] } },
    files: ['ok.cts'],
  }));
  const r = compile(path.join(dir, 'tsconfig.json'));
  t.not(r.status, 0, 'tsc fails');
  t.match(r.out, /TS2578/, "with TS2578: Unused '@ts-expect-error' directive");
});

t.test('Code exists at run time, with the core numbers', async (t) => {
  t.equal(nexio.Code.TIMEOUT, 9);
  t.equal(nexio.Code.TRANSPORT, 20);
  t.equal(nexio.Code[20], 'TRANSPORT', 'a plain enum: names by number too');
});

t.test('the context callbacks are not members of Session', async (t) => {
  const server = await nexio.createServer({ portals: ['mem://types-rt/svc'] });
  t.teardown(() => server.close());
  const s = await nexio.connect('mem://types-rt/svc');
  t.teardown(() => s.destroy());
  for (const k of ['onOpen', 'onRequest', 'onMessage', 'onResponse', 'onReceipt', 'onLane', 'onEnd']) {
    t.equal((s as unknown as Record<string, unknown>)[k], undefined, `no ${k}`);
  }
});
