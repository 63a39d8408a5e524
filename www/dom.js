// Small DOM helpers shared by the console's views (text only: nothing typed, pasted or
// answered is ever parsed as HTML).

export const $ = (sel) => document.querySelector(sel);

export function el(tag, attrs = {}, ...children) {
  const svg = ['svg', 'rect', 'line', 'g', 'title', 'text'].includes(tag);
  const node = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.setAttribute('class', v);
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** A `<dl>` row: term, then one or more description nodes. */
export function row(id, term, ...desc) {
  return [el('dt', {}, term), el('dd', { id }, ...desc)];
}

export function duration(ms) {
  const neg = ms < 0;
  let s = Math.round(Math.abs(ms) / 1000);
  const units = [];
  for (const [name, size] of [['d', 86400], ['h', 3600], ['min', 60], ['s', 1]]) {
    units.push([Math.floor(s / size), name]);
    s %= size;
  }
  // The largest unit and, when not zero, the next two below it (at most two shown): "1 d 58 min".
  const first = units.findIndex(([n]) => n > 0);
  if (first < 0) return '0 s';
  const parts = units.slice(first, first + 3).filter(([n]) => n > 0).slice(0, 2).map(([n, u]) => `${n} ${u}`);
  return `${neg ? '-' : ''}${parts.join(' ')}`;
}

export function relative(ms, nowMs) {
  const delta = ms - nowMs;
  return delta >= 0 ? `in ${duration(delta)}` : `${duration(-delta)} ago`;
}

/** `<time>` with the ISO instant, plus where it lies relative to now and its epoch ms. */
export function instant(ms, nowMs, extra) {
  const iso = new Date(ms).toISOString();
  return [
    el('time', { datetime: iso, 'data-epoch-ms': ms }, iso),
    el('span', { class: 'aside' }, ` (${relative(ms, nowMs)}${extra ? `; ${extra}` : ''}) · ${ms} ms`),
  ];
}

/** A table: `columns` are header texts, `rows` arrays of cells (nodes or text); `attrs` per row. */
export function table(id, caption, columns, rows, rowAttrs = () => ({})) {
  return el(
    'table',
    { id, class: 'data' },
    caption ? el('caption', {}, caption) : null,
    el('thead', {}, el('tr', {}, columns.map((c) => el('th', { scope: 'col' }, c)))),
    el('tbody', {}, rows.map((r, i) => el('tr', rowAttrs(i), r.map((c, j) => el('td', { 'data-label': columns[j] }, c))))),
  );
}
