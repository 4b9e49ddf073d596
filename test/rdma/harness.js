'use strict';
// A minimal TAP producer for the rdma suites: they run inside qemu guests (TCG), where loading tap
// itself would cost seconds; the output is plain TAP 13 that tap (or any TAP consumer) can read.
const assert = require('node:assert/strict');

const tests = [];
let failed = 0;
let n = 0;

function test(name, fn) { tests.push({ name, fn }); }

function diag(msg) { for (const line of String(msg).split('\n')) console.log(`# ${line}`); }

async function run(label) {
  console.log('TAP version 13');
  for (const { name, fn } of tests) {
    n++;
    const t0 = process.hrtime.bigint();
    try {
      await fn();
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      console.log(`ok ${n} - ${name} # time=${ms.toFixed(1)}ms`);
    } catch (err) {
      failed++;
      console.log(`not ok ${n} - ${name}`);
      console.log('  ---');
      console.log(`  message: ${JSON.stringify(String(err && err.message))}`);
      if (err && err.code) console.log(`  code: ${err.code}`);
      console.log(`  stack: |-\n${String(err && err.stack).split('\n').map((l) => `    ${l}`).join('\n')}`);
      console.log('  ...');
    }
  }
  console.log(`1..${n}`);
  console.log(`# ${label}: ${n - failed}/${n} passed`);
  return failed;
}

// Rejects with a timeout error when p does not settle within ms.
function within(ms, p, what) {
  let t;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`timeout after ${ms} ms: ${what}`)), ms); }),
  ]);
}

async function rejectsWithCode(p, code) {
  try {
    await p;
  } catch (err) {
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    return err;
  }
  throw new assert.AssertionError({ message: `expected rejection with ${code}` });
}

module.exports = { test, run, diag, within, rejectsWithCode, assert };
