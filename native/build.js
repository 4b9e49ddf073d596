'use strict';
// Builds the rdma addon with the node-gyp that ships with npm, against the running node's headers.
//   node native/build.js            lenient (the npm "install" script): prints one line saying what
//                                   happened and exits 0, so `npm install` succeeds everywhere;
//                                   without the addon rdma:// throws NEXIO_ERR_RDMA_UNAVAILABLE
//                                   saying what to install. tcp:// and mem:// never need it.
//   node native/build.js --strict   (CI, testbed, npm run build:native): exits 1 unless the addon
//                                   was built, rdma-core's headers missing included.
// Needs no devDependency: node-gyp comes with npm, node-addon-api is a dependency. Without
// rdma-core's headers it does not run node-gyp at all (nothing to build, nothing to download).
//
// npm shows a dependency's install script output only with --foreground-scripts or on failure.
// So the outcome is also written to native/build.log, and when the addon was not built the line
// goes to stderr, and to the terminal (/dev/tty) when npm has hidden stderr.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { hasRdmaHeaders } = require('./detect');

const strict = process.argv.includes('--strict');
const here = __dirname;
const addon = path.join(here, 'build', 'Release', 'nexio_rdma.node');
const log = path.join(here, 'build.log');
const packages = 'apt-get install rdma-core libibverbs-dev librdmacm-dev ibverbs-providers';
// Installed as a dependency (…/node_modules/nexio/native) or in a clone of the repository.
const dependency = here.split(path.sep).includes('node_modules');
const rebuild = dependency ? 'npm rebuild nexio' : 'npm run build:native';

function nodeGyp() {
  const candidates = [];
  try { candidates.push(require.resolve('node-gyp/bin/node-gyp.js', { paths: [here] })); } catch {}
  // npm bundles node-gyp: <prefix>/lib/node_modules/npm/node_modules/node-gyp
  const npmCli = process.env.npm_execpath;
  if (npmCli) candidates.push(path.join(path.dirname(npmCli), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  const prefix = path.dirname(path.dirname(process.execPath));
  candidates.push(path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return candidates.find((f) => fs.existsSync(f));
}

/** Writes the outcome line where it can be seen, then exits (1 only in strict mode, when not built). */
function done(built, msg, detail = '') {
  const line = `nexio: ${msg}`;
  try { fs.writeFileSync(log, `${line}\n${detail}`); } catch { /* read-only install: the line still goes out */ }
  if (built) {
    process.stdout.write(`${line}\n`);
  } else {
    process.stderr.write(`${line}\n`);
    // An install script's stderr is a pipe that npm shows only on failure: the terminal, if any, gets it.
    if (!strict && process.env.npm_lifecycle_event && !process.stderr.isTTY) {
      try { fs.writeFileSync('/dev/tty', `${line}\n`); } catch { /* no terminal (CI): build.log has it */ }
    }
  }
  process.exit(built || !strict ? 0 : 1);
}

const unavailable = 'rdma:// unavailable (tcp:// and mem:// work)';
if (!hasRdmaHeaders()) {
  done(false, `rdma addon not built: rdma-core headers missing; ${unavailable}. For rdma://: ${packages}, then ${rebuild}`);
}
const gyp = nodeGyp();
if (!gyp) done(false, `rdma addon not built: node-gyp not found (it ships with npm); ${unavailable}. Then: ${rebuild}`);
try { require.resolve('node-addon-api', { paths: [here] }); } catch {
  done(false, `rdma addon not built: node-addon-api is missing (reinstall nexio); ${unavailable}`);
}
const args = [gyp, 'rebuild', '--jobs=2'];
// use the installed headers when present (no download: CI has only the npm registry)
const nodedir = path.dirname(path.dirname(process.execPath));
if (fs.existsSync(path.join(nodedir, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${nodedir}`);
const r = spawnSync(process.execPath, args, { cwd: here, encoding: 'utf8' });
const output = `${r.stdout || ''}${r.stderr || ''}${r.error ? String(r.error) : ''}`;
if (r.status !== 0 || !fs.existsSync(addon)) {
  if (strict) process.stderr.write(output);
  done(false, `rdma addon build failed (${path.join(here, 'build.log')}); ${unavailable}. Fix, then ${rebuild}`, output);
}
done(true, `rdma addon built (${path.relative(process.cwd(), addon) || addon})`, output);
