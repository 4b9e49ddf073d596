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
const f = (x, d = 0) => (x === undefined || Number.isNaN(x) ? 'n/a' : x.toFixed(d));
const ratio = (a, b, d = 2) => (a && b ? (a / b).toFixed(d) : 'n/a');
const ms = (us) => f(us / 1000, 2);
const out = [];
out.push('## soft-RoCE lab', '');
out.push(`Run ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC by \`bench/lab.sh\`: the qemu pair (guests a and b, 1 vCPU each, ` +
  'rxe0 over a qemu UDP socket link, TCG: no KVM), every figure between the same two guests in one run; host load average ' +
  `${load} on 2 cores; ${secs} s in all. **Under TCG the absolute numbers mean little (every instruction is emulated, ` +
  'and rxe is software RDMA in the emulated kernel); the ratios are the figures.** perftest runs over rdma_cm (`-R`).', '');
out.push('| | p50 latency | p99 latency | messages/s (64 B one-way) | bandwidth (1 MiB) | CPU/msg client | CPU/msg server |');
out.push('|---|---|---|---|---|---|---|');
out.push(`| perftest ib_send_lat (64 B) / ib_write_bw (1 MiB) | ${ms(lat[4])} ms (typical) | ${ms(lat[7])} ms | | ${f(bw[3], 1)} MB/s | | |`);
for (const [name, r] of [['nexio rdma://', rdma], ['nexio tcp://', tcp]]) {
  out.push(`| ${name} | ${ms(r.latency.p50us)} ms | ${ms(r.latency.p99us)} ms | ${f(r.messages.perSec)} | ${f(r.bandwidth.MiBps, 1)} MiB/s | ` +
    `${f(r.messages.cpuUsPerMsgClient)} µs | ${f(r.messages.cpuUsPerMsgServer)} µs |`);
}
out.push('');
out.push('Ratios (rdma:// over tcp://, same run; latency and CPU: lower is better, so < 1 favours rdma://):', '');
out.push(`- p50 latency ${ratio(rdma.latency.p50us, tcp.latency.p50us)}, p99 latency ${ratio(rdma.latency.p99us, tcp.latency.p99us)}`);
out.push(`- messages/s ${ratio(rdma.messages.perSec, tcp.messages.perSec)}; bandwidth (1 MiB, rendezvous READ vs stream) ${ratio(rdma.bandwidth.MiBps, tcp.bandwidth.MiBps)}`);
out.push(`- CPU per one-way message: client ${ratio(rdma.messages.cpuUsPerMsgClient, tcp.messages.cpuUsPerMsgClient)}, server ${ratio(rdma.messages.cpuUsPerMsgServer, tcp.messages.cpuUsPerMsgServer)}; ` +
  `per request/response: client ${ratio(rdma.latency.cpuUsPerReqClient, tcp.latency.cpuUsPerReqClient)}, server ${ratio(rdma.latency.cpuUsPerReqServer, tcp.latency.cpuUsPerReqServer)}; ` +
  `per 1 MiB: client ${ratio(rdma.bandwidth.cpuUsPerMiBClient, tcp.bandwidth.cpuUsPerMiBClient)}, server ${ratio(rdma.bandwidth.cpuUsPerMiBServer, tcp.bandwidth.cpuUsPerMiBServer)}`);
out.push(`- nexio rdma:// over raw verbs (perftest): p50 latency ${ratio(rdma.latency.p50us, lat[4])}, bandwidth ${ratio(rdma.bandwidth.MiBps * 1.048576, bw[3])}`);
out.push('');
out.push(`Samples: ${rdma.latency.n} pings, ${rdma.messages.n} / ${tcp.messages.n} messages, ${rdma.bandwidth.n} / ${tcp.bandwidth.n} MiB (rdma / tcp). ` +
  'Raw data: `' + JSON.stringify({ perftest: { send_lat: lat, write_bw: bw } }) + '`.');
console.log(out.join('\n'));
