'use strict';
// Turns bench/lab.sh's log (PERFTEST-* and BENCH-RESULT lines) into the markdown section that
// goes into docs/benchmarks.md. usage: node bench/lab-report.js LOG "LOADAVG" SECONDS
const fs = require('node:fs');
const [log, load = '?', secs = '?'] = process.argv.slice(2);
const text = fs.readFileSync(log, 'utf8').split('\n').map((l) => l.replace(/^\[.\] /, ''));
const row = (name) => { const l = text.find((x) => x.startsWith(`PERFTEST-${name} `)); return l ? l.split(/\s+/).slice(1).filter(Boolean).map(Number) : []; };
const res = text.find((l) => l.startsWith('BENCH-RESULT '));
if (!res) { console.error('no BENCH-RESULT line'); process.exit(1); }
const [rdma, tcp] = JSON.parse(res.slice('BENCH-RESULT '.length));
const lat = row('ib_send_lat');   // bytes iters t_min t_max t_typical t_avg t_stdev p99 p99.9
const bw = row('ib_write_bw');    // bytes iters bw_peak bw_avg msgrate
const rbw = row('ib_read_bw');
// A phase that failed (twice: lab-node.sh retries it) fails the bench: never an n/a in a green run.
for (const [name, r, n] of [['ib_send_lat', lat, 9], ['ib_write_bw', bw, 5], ['ib_read_bw', rbw, 5]]) {
  if (r.length < n || r.some((x) => Number.isNaN(x))) { console.error(`bench/lab: FAIL: the perftest phase ${name} produced no result (see the log)`); process.exit(1); }
}
const f = (x, d = 0) => (x === undefined || Number.isNaN(x) ? 'n/a' : x.toFixed(d));
const ratio = (a, b, d = 2) => (a && b ? (a / b).toFixed(d) : 'n/a');
const ms = (us) => f(us / 1000, 2);
const out = [];
out.push('## soft-RoCE lab', '');
out.push(`Run ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC by \`bench/lab.sh\`: the qemu pair (guests a and b, 1 vCPU each, ` +
  'rxe0 over a qemu UDP socket link, TCG: no KVM), every figure between the same two guests in one run; host load average ' +
  `${load} on 2 cores; ${secs} s in all. **Under TCG the absolute numbers mean little (every instruction is emulated, ` +
  'and rxe is software RDMA in the emulated kernel); the ratios are the figures.** perftest runs over rdma_cm (`-R`).', '');
out.push('| | p50 latency | p99 latency | messages/s (64 B one-way) | bandwidth (1 MiB) | CPU/msg client (user) | CPU/msg server (user) |');
out.push('|---|---|---|---|---|---|---|');
out.push(`| perftest ib_send_lat (64 B) / ib_write_bw (1 MiB) | ${ms(lat[4])} ms (typical) | ${ms(lat[7])} ms | | ${f(bw[3], 1)} MB/s | | |`);
out.push(`| perftest ib_read_bw (64 KiB) | | | | ${f(rbw[3], 1)} MB/s | | |`);
for (const [name, r] of [['nexio rdma://', rdma], ['nexio tcp://', tcp]]) {
  const c = r.messages.cpuPerMsg;
  out.push(`| ${name} | ${ms(r.latency.p50us)} ms | ${ms(r.latency.p99us)} ms | ${f(r.messages.perSec)} | ${f(r.bandwidth.MiBps, 1)} MiB/s | ` +
    `${f(c.client)} µs (${f(c.clientUser)}) | ${f(c.server)} µs (${f(c.serverUser)}) |`);
}
out.push('');
out.push('Ratios (rdma:// over tcp://, same run; latency and CPU: lower is better, so < 1 favours rdma://):', '');
out.push(`- p50 latency ${ratio(rdma.latency.p50us, tcp.latency.p50us)}, p99 latency ${ratio(rdma.latency.p99us, tcp.latency.p99us)}`);
out.push(`- messages/s ${ratio(rdma.messages.perSec, tcp.messages.perSec)}; bandwidth (1 MiB, rendezvous READ vs stream) ${ratio(rdma.bandwidth.MiBps, tcp.bandwidth.MiBps)}`);
const cr = (k) => { const a = rdma[k.split('.')[0]][k.split('.')[1]], b = tcp[k.split('.')[0]][k.split('.')[1]];
  return `client ${ratio(a.client, b.client)} (user ${ratio(a.clientUser, b.clientUser)}), server ${ratio(a.server, b.server)} (user ${ratio(a.serverUser, b.serverUser)})`; };
out.push(`- CPU (user+system, user alone in brackets) per one-way message: ${cr('messages.cpuPerMsg')}; per request/response: ${cr('latency.cpuPerReq')}; per 1 MiB: ${cr('bandwidth.cpuPerMiB')}`);
out.push(`- nexio rdma:// over raw verbs (perftest): p50 latency ${ratio(rdma.latency.p50us, lat[4])}; 1 MiB bandwidth over ib_write_bw ${ratio(rdma.bandwidth.MiBps * 1.048576, bw[3])}, over ib_read_bw (64 KiB) ${ratio(rdma.bandwidth.MiBps * 1.048576, rbw[3])}`);
out.push('- On soft-RoCE the NIC is software in the guest kernel: part of its work is charged to the process as system time (a post is a write() to uverbs), which real RDMA NICs take off the CPU; the user-time ratios are the fairer CPU comparison here.');
out.push('');
out.push(`Samples: ${rdma.latency.n} pings, ${rdma.messages.n} / ${tcp.messages.n} messages, ${rdma.bandwidth.n} / ${tcp.bandwidth.n} MiB (rdma / tcp). ` +
  'Raw data: `' + JSON.stringify({ perftest: { send_lat: lat, write_bw: bw, read_bw: rbw } }) + '`.');
console.log(out.join('\n'));
// --json FILE: the figures and the ratios, for tools (bench/lab.sh --json FILE).
const jsonAt = process.argv.indexOf('--json');
if (jsonAt >= 0) {
  const num = (a, b) => (a && b ? a / b : null);
  fs.writeFileSync(process.argv[jsonAt + 1], JSON.stringify({
    when: new Date().toISOString(), load, seconds: Number(secs),
    perftest: { ib_send_lat: { p50us: lat[4], p99us: lat[7] }, ib_write_bw: { MBps: bw[3] }, ib_read_bw: { MBps: rbw[3] } },
    rdma, tcp,
    ratios: {
      rdma_p50_vs_ib_send_lat: num(rdma.latency.p50us, lat[4]),
      rdma_p50_vs_tcp_p50: num(rdma.latency.p50us, tcp.latency.p50us),
      rdma_p99_vs_tcp_p99: num(rdma.latency.p99us, tcp.latency.p99us),
      rdma_msgs_vs_tcp: num(rdma.messages.perSec, tcp.messages.perSec),
      rdma_1mib_vs_tcp: num(rdma.bandwidth.MiBps, tcp.bandwidth.MiBps),
      rdma_1mib_vs_ib_write_bw: num(rdma.bandwidth.MiBps * 1.048576, bw[3]),
    },
  }, null, 2) + '\n');
}
