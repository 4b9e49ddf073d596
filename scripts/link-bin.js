// Makes `npx nexio ...` work inside this checkout without npx fetching or
// rebuilding the package: links the CLI into node_modules/.bin, as npm does
// for a dependency's bin.
const fs = require('node:fs');
const path = require('node:path');
const root = path.join(__dirname, '..');
const cli = path.join(root, 'dist', 'host', 'cli.js');
const bin = path.join(root, 'node_modules', '.bin');
if (fs.existsSync(cli) && fs.existsSync(path.join(root, 'node_modules'))) {
  fs.chmodSync(cli, 0o755);
  fs.mkdirSync(bin, { recursive: true });
  const link = path.join(bin, 'nexio');
  try { fs.unlinkSync(link); } catch { /* not there */ }
  fs.symlinkSync(path.relative(bin, cli), link);
}
