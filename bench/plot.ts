// Draws the ratios of a compare run as an SVG bar chart, no dependencies:
//
//   node dist/bench/plot.js [RESULTS.json] [OUT.svg]     (defaults: docs/benchmarks.json, docs/benchmarks.svg)
//
// One group per workload, one bar per peer, on a log scale where 1 is
// parity. Every bar reads "higher is better for nexio": throughput bars are
// nexio / peer, the latency bar is peer p50 / nexio p50. The targets against
// raw net are drawn as dashes over the raw bars.

import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

interface Results {
  command: string;
  date: string;
  machine: { cpus: number; model?: string; loadavgStart: number[]; loadavgEnd: number[] };
  ratios: Record<string, number>;
  targets: Record<string, { ratio: number; op: string; target: number; met: boolean }>;
}

const groups: { key: string; label: string; invert?: boolean }[] = [
  { key: 'rr', label: 'req/resp 64 B ×128' },
  { key: 'oneway', label: 'one-way 64 B' },
  { key: 'ping_p50', label: 'ping-pong p50', invert: true },
  { key: 'mib', label: '1 MiB ×4' },
];
const peers = [
  { name: 'raw', label: 'raw net (batched)', color: '#4c72b0' },
  { name: 'zeromq', label: 'zeromq', color: '#dd8452' },
  { name: 'grpc', label: 'grpc-js', color: '#55a868' },
];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function plot(r: Results): string {
  const W = 760, H = 440, left = 70, right = 20, top = 56, bottom = 96;
  const ph = H - top - bottom, pw = W - left - right;
  const lo = -2, hi = 3; // log10 range: 0.01 .. 1000
  const y = (v: number) => top + ph * (1 - (Math.log10(Math.min(Math.max(v, 10 ** lo), 10 ** hi)) - lo) / (hi - lo));
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">nexio tcp:// relative to each peer (higher is better for nexio; 1 = parity)</text>`);
  out.push(`<text x="${W / 2}" y="40" text-anchor="middle" fill="#555">${esc(`${r.date.slice(0, 16).replace('T', ' ')} UTC · ${r.machine.cpus} cores (shared, load ${r.machine.loadavgStart[0].toFixed(1)}) · log scale`)}</text>`);
  for (let e = lo; e <= hi; e++) {
    const v = 10 ** e;
    out.push(`<line x1="${left}" x2="${W - right}" y1="${y(v)}" y2="${y(v)}" stroke="${e === 0 ? '#000' : '#ddd'}" stroke-width="${e === 0 ? 1.2 : 1}"/>`);
    out.push(`<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${v >= 1 ? v : v.toFixed(-e)}×</text>`);
  }
  const gw = pw / groups.length, bw = (gw * 0.7) / peers.length;
  groups.forEach((g, gi) => {
    const x0 = left + gi * gw + gw * 0.15;
    peers.forEach((p, pi) => {
      const raw = r.ratios[`${g.key}_ratio_vs_${p.name}`];
      if (raw === undefined || !Number.isFinite(raw) || raw <= 0) return;
      const v = g.invert ? 1 / raw : raw;
      const x = x0 + pi * bw;
      const y1 = y(1), yv = y(v);
      out.push(`<rect x="${x.toFixed(1)}" y="${Math.min(y1, yv).toFixed(1)}" width="${(bw - 4).toFixed(1)}" height="${Math.max(1, Math.abs(yv - y1)).toFixed(1)}" fill="${p.color}"><title>${esc(`${g.label} vs ${p.label}: ${v.toFixed(2)}`)}</title></rect>`);
      out.push(`<text x="${(x + (bw - 4) / 2).toFixed(1)}" y="${(v >= 1 ? yv - 4 : yv + 13).toFixed(1)}" text-anchor="middle" font-size="11">${v >= 10 ? v.toFixed(0) : v.toFixed(2)}</text>`);
      const t = r.targets[`${g.key}_ratio_vs_${p.name}`];
      if (t) {
        const tv = g.invert ? 1 / t.target : t.target;
        out.push(`<line x1="${(x - 3).toFixed(1)}" x2="${(x + bw - 1).toFixed(1)}" y1="${y(tv).toFixed(1)}" y2="${y(tv).toFixed(1)}" stroke="#c00" stroke-width="2" stroke-dasharray="4 2"/>`);
      }
    });
    out.push(`<text x="${(x0 + (bw * peers.length) / 2).toFixed(1)}" y="${top + ph + 18}" text-anchor="middle" font-weight="bold">${esc(g.label)}</text>`);
  });
  const ly = H - 40;
  let lx = left;
  for (const p of peers) {
    out.push(`<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${p.color}"/><text x="${lx + 17}" y="${ly}">vs ${esc(p.label)}</text>`);
    lx += 170;
  }
  out.push(`<line x1="${lx}" x2="${lx + 18}" y1="${ly - 4}" y2="${ly - 4}" stroke="#c00" stroke-width="2" stroke-dasharray="4 2"/><text x="${lx + 23}" y="${ly}">target vs raw</text>`);
  out.push(`<text x="${left}" y="${H - 14}" fill="#555" font-size="11">${esc(r.command)}</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}

if (require.main === module) {
  const root = path.join(__dirname, '..', '..');
  const inFile = process.argv[2] ?? path.join(root, 'docs', 'benchmarks.json');
  const outFile = process.argv[3] ?? path.join(root, 'docs', 'benchmarks.svg');
  writeFileSync(outFile, plot(JSON.parse(readFileSync(inFile, 'utf8')) as Results));
  process.stdout.write(`wrote ${outFile}\n`);
}
