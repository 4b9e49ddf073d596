'use strict';
// Probe (inside the lab pair, guest a serves, b reads): RDMA READ of 1 MiB in pieces of different
// sizes and depths, and one RDMA WRITE, with the raw addon. Why: rxe under TCG over the qemu UDP
// link loses bursts of READ responses, and a lost response costs a retry timeout; smaller READs
// keep the bursts small. Used to choose RDV_CHUNK / RDV_READS in host/transports/rdma.ts.
//   testbed/lab.sh up pair && testbed/lab.sh run -n all -- node bench/lab-read-probe.js
const { RdmaContext } = require('../native');
const node = process.env.NEXIO_LAB_node || 'a';
const ME = process.env.NEXIO_RDMA_ADDR || '10.0.0.1';
const PEER = process.env.NEXIO_RDMA_PEER || '10.0.0.1';
const MiB = 1 << 20;
const ctx = new RdmaContext();
if (node === 'a') {
  const src = Buffer.alloc(4 * MiB, 9);
  let done;
  const l = ctx.listen({ host: ME, port: 7400 }, (req) => {
    const keys = ctx.devices[0].register(src);
    const pd = Buffer.alloc(12); pd.writeBigUInt64LE(keys.addr, 0); pd.writeUInt32LE(keys.rkey, 8);
    req.accept(pd).then((c) => c.on('close', () => done()));
  });
  new Promise((r) => { done = r; }).then(async () => { await l.close(); await ctx.close(); });
} else {
  (async () => {
    const conn = await ctx.connect({ host: PEER, port: 7400, retryRefusedMs: 30000 });
    const raddr = conn.peerPrivateData.readBigUInt64LE(0), rkey = conn.peerPrivateData.readUInt32LE(8);
    const dst = Buffer.alloc(4 * MiB);
    ctx.devices[0].register(dst);
    for (const [chunk, depth] of [[MiB, 1], [256 << 10, 4], [64 << 10, 4], [64 << 10, 8], [16 << 10, 8], [16 << 10, 16], [4 << 10, 16]]) {
      const t0 = process.hrtime.bigint();
      let off = 0;
      const worker = async () => { while (off < MiB) { const o = off; off += chunk; await conn.read(dst.subarray(o, o + chunk), { addr: raddr + BigInt(o), rkey }, chunk); } };
      await Promise.all(Array.from({ length: depth }, worker));
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      console.log(`READ 1 MiB as ${chunk >> 10} KiB x depth ${depth}: ${ms.toFixed(0)} ms (${(8 / (ms / 1000)).toFixed(2)} Mb/s)`);
    }
    const t0 = process.hrtime.bigint();
    await conn.write(dst.subarray(0, MiB), { addr: raddr, rkey }, MiB);
    console.log(`WRITE 1 MiB: ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(0)} ms`);
    await conn.close(); await ctx.close();
  })();
}
