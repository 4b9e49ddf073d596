'use strict';
// Turns bench/lab.sh's log (PERFTEST-* and BENCH-RESULT lines) into the markdown section that
// goes into docs/benchmarks.md: one row per rdma:// polling mode, tcp://, perftest, and the addon
// alone. usage: node bench/lab-report.js LOG "LOADAVG" SECONDS [--json FILE]
const fs = require('node:fs');
const [log, load = '?', secs = '?'] = process.argv.slice(2);
const text = fs.readFileSync(log, 'utf8').split('\n').map((l) => l.replace(/^\[.\] /, ''));
const row = (name) => { const l = text.find((x) => x.startsWith(`PERFTEST-${name} `)); return l ? l.split(/\s+/).slice(1).filter(Boolean).map(Number) : []; };
const res = text.find((l) => l.startsWith('BENCH-RESULT '));
if (!res) { console.error('no BENCH-RESULT line'); process.exit(1); }
const { results, raw } = JSON.parse(res.slice('BENCH-RESULT '.length));
const byMode = Object.fromEntries(results.map((r) => [r.mode, r]));
const tcp = byMode.tcp, rdma = byMode.adaptive; // adaptive: rdma://'s default polling
const rdmaModes = results.filter((r) => r.mode !== 'tcp');
if (!tcp || !rdma) { console.error('bench/lab: FAIL: no tcp:// or rdma:// (adaptive) result'); process.exit(1); }
const rawBy = Object.fromEntries((raw || []).map((r) => [r.mode, r]));
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
out.push('| | p50 latency | p99 latency | messages/s (64 B one-way) | bandwidth (1 MiB) | CPU/msg client: user + sys | CPU/msg server: user + sys |');
out.push('|---|---|---|---|---|---|---|');
out.push(`| perftest ib_send_lat (64 B, busy-polls) / ib_write_bw (1 MiB) | ${ms(lat[4])} ms (typical) | ${ms(lat[7])} ms | | ${f(bw[3], 1)} MB/s | | |`);
out.push(`| perftest ib_read_bw (64 KiB) | | | | ${f(rbw[3], 1)} MB/s | | |`);
for (const m of ['spin', 'event']) {
  const r = rawBy[m];
  if (r) out.push(`| addon alone, 64 B ping-pong (${m === 'spin' ? 'spin 50 µs' : 'event'}) | ${ms(r.p50us)} ms | ${ms(r.p99us)} ms | | | | |`);
}
const cpu = (c, who) => `${f(c[`${who}User`])} + ${f(c[who] - c[`${who}User`])} µs`;
for (const r of results) {
  const c = r.messages.cpuPerMsg;
  const name = r.mode === 'tcp' ? 'nexio tcp://' : `nexio rdma:// ?poll=${r.mode}${r.mode === 'adaptive' ? ' (default)' : ''}`;
  out.push(`| ${name} | ${ms(r.latency.p50us)} ms | ${ms(r.latency.p99us)} ms | ${f(r.messages.perSec)} | ${f(r.bandwidth.MiBps, 1)} MiB/s | ` +
    `${cpu(c, 'client')} | ${cpu(c, 'server')} |`);
}
out.push('');
out.push('Ratios (same run; latency and CPU: lower is better):', '');
for (const r of rdmaModes) {
  out.push(`- rdma:// ${r.mode} over tcp://: p50 ${ratio(r.latency.p50us, tcp.latency.p50us)}, p99 ${ratio(r.latency.p99us, tcp.latency.p99us)}, ` +
    `messages/s ${ratio(r.messages.perSec, tcp.messages.perSec)}, 1 MiB ${ratio(r.bandwidth.MiBps, tcp.bandwidth.MiBps)}, ` +
    `CPU per message client ${ratio(r.messages.cpuPerMsg.client, tcp.messages.cpuPerMsg.client)} (user ${ratio(r.messages.cpuPerMsg.clientUser, tcp.messages.cpuPerMsg.clientUser)}), ` +
    `server ${ratio(r.messages.cpuPerMsg.server, tcp.messages.cpuPerMsg.server)} (user ${ratio(r.messages.cpuPerMsg.serverUser, tcp.messages.cpuPerMsg.serverUser)}); ` +
    `p50 over ib_send_lat ${ratio(r.latency.p50us, lat[4])}`);
}
out.push(`- 1 MiB (adaptive) over ib_write_bw ${ratio(rdma.bandwidth.MiBps * 1.048576, bw[3])}, over ib_read_bw (64 KiB) ${ratio(rdma.bandwidth.MiBps * 1.048576, rbw[3])}`);
if (rawBy.spin && rawBy.event) {
  const ev = byMode.event;
  out.push(`- Where a 64 B round trip goes (p50): perftest (C, busy-polling) ${ms(lat[4])} ms; the addon alone with a 50 µs spin ${ms(rawBy.spin.p50us)} ms, ` +
    `sleeping on the completion channel ${ms(rawBy.event.p50us)} ms; nexio rdma:// event ${ev ? ms(ev.latency.p50us) : 'n/a'} ms, adaptive ${ms(rdma.latency.p50us)} ms: ` +
    `the core and the session (request, handler, response) add ${ev ? ms(ev.latency.p50us - rawBy.event.p50us) : 'n/a'} ms over the addon's echo.`);
}
out.push('- On soft-RoCE the NIC is software in the guest kernel: part of its work is charged to the process as system time (a post is a write() to uverbs), which real RDMA NICs take off the CPU; compare user time.');
out.push('');
out.push(`Samples: ${rdma.latency.n} pings per mode; messages ${results.map((r) => `${r.mode} ${r.messages.n}`).join(', ')}. ` +
  'Raw data: `' + JSON.stringify({ perftest: { send_lat: lat, write_bw: bw, read_bw: rbw }, raw }) + '`.');
console.log(out.join('\n'));
// --json FILE: the figures and the ratios, for tools (bench/lab.sh --json FILE).
const jsonAt = process.argv.indexOf('--json');
if (jsonAt >= 0) {
  const num = (a, b) => (a && b ? a / b : null);
  fs.writeFileSync(process.argv[jsonAt + 1], JSON.stringify({
    when: new Date().toISOString(), load, seconds: Number(secs),
    perftest: { ib_send_lat: { p50us: lat[4], p99us: lat[7] }, ib_write_bw: { MBps: bw[3] }, ib_read_bw: { MBps: rbw[3] } },
    rdma, tcp, modes: byMode, raw,
    ratios: {
      rdma_p50_vs_ib_send_lat: num(rdma.latency.p50us, lat[4]),
      rdma_p50_vs_tcp_p50: num(rdma.latency.p50us, tcp.latency.p50us),
      rdma_p99_vs_tcp_p99: num(rdma.latency.p99us, tcp.latency.p99us),
      rdma_msgs_vs_tcp: num(rdma.messages.perSec, tcp.messages.perSec),
      rdma_1mib_vs_tcp: num(rdma.bandwidth.MiBps, tcp.bandwidth.MiBps),
      rdma_1mib_vs_ib_write_bw: num(rdma.bandwidth.MiBps * 1.048576, bw[3]),
      by_mode: Object.fromEntries(rdmaModes.map((r) => [r.mode, {
        p50_vs_ib_send_lat: num(r.latency.p50us, lat[4]), p50_vs_tcp_p50: num(r.latency.p50us, tcp.latency.p50us),
        p99_vs_tcp_p99: num(r.latency.p99us, tcp.latency.p99us), msgs_vs_tcp: num(r.messages.perSec, tcp.messages.perSec),
        mib_vs_tcp: num(r.bandwidth.MiBps, tcp.bandwidth.MiBps),
        cpu_client_vs_tcp: num(r.messages.cpuPerMsg.client, tcp.messages.cpuPerMsg.client),
        cpu_server_vs_tcp: num(r.messages.cpuPerMsg.server, tcp.messages.cpuPerMsg.server),
      }])),
    },
  }, null, 2) + '\n');
}
