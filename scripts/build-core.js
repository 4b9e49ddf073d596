// Builds the core (release and debug) unless build/ is newer than every
// source: `npm install`, `npm test` and `npx nexio` all run the build, and
// asc takes seconds we need not spend twice.
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const root = path.join(__dirname, '..');
const sources = [path.join(root, 'asconfig.json'), ...fs.readdirSync(path.join(root, 'assembly'))
  .filter((f) => f.endsWith('.ts')).map((f) => path.join(root, 'assembly', f))];
const outputs = ['core.wasm', 'core.debug.wasm'].map((f) => path.join(root, 'build', f));
const mtime = (f) => { try { return fs.statSync(f).mtimeMs; } catch { return -1; } };
const newest = Math.max(...sources.map(mtime));
if (process.argv.includes('--force') || outputs.some((o) => mtime(o) < newest)) {
  const asc = path.join(root, 'node_modules', '.bin', 'asc');
  for (const target of ['release', 'debug']) {
    execFileSync(asc, ['assembly/index.ts', '--config', 'asconfig.json', '--target', target], { cwd: root, stdio: 'inherit' });
  }
}
