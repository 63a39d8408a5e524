// A latency-by-percentile chart as a standalone SVG (no dependency): one line per series, the
// x axis the percentile on a log scale of "nines" (50, 90, 99, 99.9), the y axis milliseconds.

import { quantile } from './support.mjs';

const COLORS = ['#4c78a8', '#72b7b2', '#f58518', '#54a24b', '#b279a2', '#e45756', '#9d755d', '#eeca3b', '#ff9da6'];
const W = 780;
const H = 420;
const M = { left: 64, right: 230, top: 40, bottom: 56 };

// x position of percentile p (0 < p < 100): -log10(1 - p/100), so 50 → 0.3, 90 → 1, 99 → 2.
const nines = (p) => -Math.log10(1 - p / 100);
const escape = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * series: [{ name, latencies: [ms…] }]; returns the SVG text. Percentiles from 1 to 99.9 (or as
 * far as the sample count supports).
 */
export function latencySvg(series, title) {
  const points = series.map((s) => {
    const n = s.latencies.length;
    const maxP = Math.min(99.9, 100 * (1 - 1 / Math.max(n, 2)));
    const ps = [];
    for (let p = 1; p <= maxP + 1e-9; p = p < 90 ? p + 1 : p < 99 ? p + 0.5 : p + 0.1) ps.push(p);
    return ps.map((p) => [p, quantile(s.latencies, p / 100)]);
  });
  const xMax = nines(99.9);
  const xMin = nines(1);
  const yMax = niceCeil(Math.max(...points.flat().map(([, ms]) => ms)));
  const x = (p) => M.left + ((nines(p) - xMin) / (xMax - xMin)) * (W - M.left - M.right);
  const y = (ms) => H - M.bottom - (ms / yMax) * (H - M.top - M.bottom);
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${M.left}" y="${M.top - 16}" font-size="14">${escape(title)}</text>`);
  for (const p of [1, 50, 90, 99, 99.9]) {
    out.push(`<line x1="${x(p)}" y1="${M.top}" x2="${x(p)}" y2="${H - M.bottom}" stroke="#ddd"/>`);
    out.push(`<text x="${x(p)}" y="${H - M.bottom + 16}" text-anchor="middle">p${p}</text>`);
  }
  for (let i = 0; i <= 5; i++) {
    const ms = (yMax * i) / 5;
    out.push(`<line x1="${M.left}" y1="${y(ms)}" x2="${W - M.right}" y2="${y(ms)}" stroke="#eee"/>`);
    out.push(`<text x="${M.left - 6}" y="${y(ms) + 4}" text-anchor="end">${+ms.toFixed(2)}</text>`);
  }
  out.push(`<text x="${(M.left + W - M.right) / 2}" y="${H - 16}" text-anchor="middle">percentile</text>`);
  out.push(`<text transform="translate(16 ${(M.top + H - M.bottom) / 2}) rotate(-90)" text-anchor="middle">latency, ms</text>`);
  points.forEach((pts, i) => {
    const c = COLORS[i % COLORS.length];
    const d = pts.map(([p, ms], k) => `${k ? 'L' : 'M'}${x(p).toFixed(1)},${y(ms).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${c}" stroke-width="2"/>`);
    out.push(`<line x1="${W - M.right + 16}" y1="${M.top + 8 + i * 20}" x2="${W - M.right + 40}" y2="${M.top + 8 + i * 20}" stroke="${c}" stroke-width="3"/>`);
    out.push(`<text x="${W - M.right + 46}" y="${M.top + 12 + i * 20}">${escape(series[i].name)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

function niceCeil(v) {
  if (!(v > 0)) return 1;
  const mag = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * mag >= v) return m * mag;
  return 10 * mag;
}
