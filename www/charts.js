// Hand-drawn SVG for the console: the playground's token timeline and the dashboard's bar
// charts. The SVG carries no text (it is stretched to the width it gets); every number is also
// written out beside it, for screen readers and for narrow screens.

import { el, duration } from './dom.js';

const pct = (x) => `${Math.max(0, Math.min(100, x)).toFixed(3)}`;

/**
 * The token's life on one axis: its lifetime, the stretch memory serves it (until the refresh
 * point), the KV entry (from now, for the KV TTL; none when the policy keeps it in memory only)
 * and now.
 */
export function timeline({ issuedAt, refreshAt, expiresAt, nowMs, ttlSeconds }) {
  const kvUntil = ttlSeconds === null ? null : nowMs + ttlSeconds * 1000;
  const start = Math.min(issuedAt, nowMs);
  const end = Math.max(expiresAt, kvUntil ?? 0, nowMs);
  const span = Math.max(1, end - start);
  // 1 % of room at each end, so a marker at either end stays visible.
  const x = (t) => pct(1 + ((t - start) / span) * 98);
  const w = (a, b) => pct(((b - a) / span) * 98);
  const svg = el(
    'svg',
    { viewBox: '0 0 100 40', preserveAspectRatio: 'none', class: 'timeline', 'aria-hidden': 'true', focusable: 'false' },
    el('rect', { x: x(issuedAt), y: 2, width: w(issuedAt, expiresAt), height: 8, class: 'tl-life', 'data-part': 'lifetime' }),
    el('rect', { x: x(issuedAt), y: 14, width: w(issuedAt, refreshAt), height: 8, class: 'tl-memory', 'data-part': 'memory' }),
    kvUntil === null
      ? null
      : el('rect', { x: x(nowMs), y: 26, width: w(nowMs, kvUntil), height: 8, class: 'tl-kv', 'data-part': 'kv' }),
    el('line', { x1: x(nowMs), x2: x(nowMs), y1: 0, y2: 40, class: 'tl-now', 'data-part': 'now' }),
    el('line', { x1: x(refreshAt), x2: x(refreshAt), y1: 0, y2: 40, class: 'tl-refresh', 'data-part': 'refresh' }),
  );
  const item = (cls, label, text) => el('li', {}, el('span', { class: `swatch ${cls}`, 'aria-hidden': 'true' }), el('strong', {}, label), ' ', text);
  return el(
    'figure',
    { id: 'timeline', class: 'timeline-figure', 'aria-labelledby': 'timeline-title' },
    svg,
    el(
      'ul',
      { id: 'timeline-legend', class: 'legend' },
      item('tl-life', 'Lifetime', `${duration(expiresAt - issuedAt)}, issued ${new Date(issuedAt).toISOString()}`),
      item('tl-memory', 'Memory serves it', `until the refresh point, ${new Date(refreshAt).toISOString()}`),
      kvUntil === null
        ? item('tl-none', 'Memory only', '— under 60 s to the refresh point: no KV entry is written')
        : item('tl-kv', 'KV entry', `from now for ${ttlSeconds} s, until ${new Date(kvUntil).toISOString()}`),
      item('tl-now', 'Now', new Date(nowMs).toISOString()),
    ),
  );
}

/**
 * A horizontal bar chart: one row per `rows` entry ({label, segments: [{name, value, cls}],
 * note}), bars scaled to the largest total. Each segment is a `rect` with `data-name` and
 * `data-value`; the row's numbers are written beside it.
 */
export function barChart(id, title, rows, legend) {
  const max = Math.max(1, ...rows.map((r) => r.segments.reduce((a, s) => a + s.value, 0)));
  return el(
    'figure',
    { id, class: 'chart' },
    el('figcaption', {}, title),
    el('ul', { class: 'legend' }, legend.map(([cls, name]) => el('li', {}, el('span', { class: `swatch ${cls}`, 'aria-hidden': 'true' }), name))),
    rows.length === 0 ? el('p', { class: 'aside' }, 'Nothing counted yet.') : null,
    el(
      'dl',
      { class: 'bars' },
      rows.map((r) => {
        let at = 0;
        const total = r.segments.reduce((a, s) => a + s.value, 0);
        const rects = r.segments.map((s) => {
          const rect = el(
            'rect',
            { x: pct((at / max) * 100), y: 0, width: pct((s.value / max) * 100), height: 10, class: s.cls, 'data-name': s.name, 'data-value': s.value },
            el('title', {}, `${s.name}: ${s.value}`),
          );
          at += s.value;
          return rect;
        });
        return [
          el('dt', {}, el('code', {}, r.label)),
          el(
            'dd',
            { 'data-row': r.label, 'data-total': total },
            el('svg', { viewBox: '0 0 100 10', preserveAspectRatio: 'none', class: 'bar', 'aria-hidden': 'true', focusable: 'false' }, rects),
            el('span', { class: 'bar-note' }, r.note ?? `${total}`),
          ),
        ];
      }),
    ),
  );
}
