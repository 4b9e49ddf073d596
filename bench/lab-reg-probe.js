'use strict';
// In a lab guest: what a rendezvous source costs the JS thread on first use, per size: ibv_reg_mr
// (+ dereg) of a fresh Buffer vs a copy into memory registered beforehand (bench/README.md).
//   node bench/lab-reg-probe.js    (single layout; prints one REG-PROBE line of JSON)
const { RdmaContext } = require('../native');
const ME = process.env.NEXIO_RDMA_ADDR || '10.0.0.1';
const PORT = 7480;
const KiB = 1024, MiB = 1 << 20;
const sizes = [64 * KiB, 256 * KiB, MiB, 4 * MiB, 16 * MiB];
const med = (a) => a.slice().sort((x, y) => x - y)[a.length >> 1];
(async () => {
  const ctx = new RdmaContext();
  ctx.listen({ host: ME, port: PORT }, (req) => req.accept());
  const conn = await ctx.connect({ host: ME, port: PORT, retryRefusedMs: 5000 });
  const dev = conn.device;
  const staging = Buffer.alloc(16 * MiB);
  dev.register(staging);
  const out = [];
  for (const n of sizes) {
    const reg = [], dereg = [], copy = [];
    for (let k = 0; k < 7; k++) {
      const b = Buffer.alloc(n, k); // fresh memory, as a caller's new Buffer
      let t = process.hrtime.bigint();
      dev.register(b, { remoteAccess: 'read' });
      reg.push(Number(process.hrtime.bigint() - t) / 1e3);
      t = process.hrtime.bigint();
      dev.deregister(b);
      dereg.push(Number(process.hrtime.bigint() - t) / 1e3);
      t = process.hrtime.bigint();
      b.copy(staging, 0, 0, n);
      copy.push(Number(process.hrtime.bigint() - t) / 1e3);
    }
    out.push({ bytes: n, regUs: med(reg), deregUs: med(dereg), copyUs: med(copy) });
    console.log(`# ${n >> 10} KiB: reg_mr ${med(reg).toFixed(0)} us, dereg ${med(dereg).toFixed(0)} us, copy ${med(copy).toFixed(0)} us`);
  }
  console.log(`REG-PROBE ${JSON.stringify(out)}`);
  await conn.close();
  await ctx.close();
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
