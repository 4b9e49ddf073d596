'use strict';
// Builds the rdma addon with the node-gyp that ships with npm, against the running node's headers.
//   node native/build.js            lenient (npm "install" script): a failed build warns and exits 0,
//                                   so `npm install` succeeds everywhere; rdma:// then throws
//                                   NEXIO_ERR_RDMA_UNAVAILABLE saying what to install
//   node native/build.js --strict   (CI, testbed): any failure exits 1
// Where rdma-core's headers are missing, binding.gyp (via detect.js) builds nothing: not an error.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const strict = process.argv.includes('--strict');
const here = __dirname;
const addon = path.join(here, 'build', 'Release', 'nexio_rdma.node');
const hint = 'apt-get install rdma-core libibverbs-dev librdmacm-dev ibverbs-providers';

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

function done(ok, msg) {
  console.log(`native: ${msg}`);
  process.exit(ok || !strict ? 0 : 1);
}

const gyp = nodeGyp();
if (!gyp) done(false, 'node-gyp not found (it ships with npm); rdma:// will be unavailable');
try { require.resolve('node-addon-api', { paths: [here] }); } catch {
  done(false, 'node-addon-api is not installed (npm install); rdma:// will be unavailable');
}
const args = [gyp, 'rebuild', '--jobs=2'];
// use the installed headers when present (no download: CI has only the npm registry)
const nodedir = path.dirname(path.dirname(process.execPath));
if (fs.existsSync(path.join(nodedir, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${nodedir}`);
const r = spawnSync(process.execPath, args, { cwd: here, encoding: 'utf8' });
fs.writeFileSync(path.join(here, 'build.log'), `${r.stdout || ''}${r.stderr || ''}`);
if (r.status !== 0) {
  if (strict) process.stdout.write(`${r.stdout || ''}${r.stderr || ''}`);
  done(false, `addon build failed (see native/build.log); rdma:// will be unavailable`);
}
if (fs.existsSync(addon)) done(true, `built ${path.relative(process.cwd(), addon)}`);
done(true, `rdma-core headers not found: addon not built, rdma:// unavailable (${hint}, then rebuild)`);
