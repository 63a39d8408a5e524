// "Try it": a caller token from this gateway's POST /oauth/token, then a request through a
// provider route with it — status, headers, Server-Timing and body shown. The caller token is
// kept in this module's memory only (never stored, never in a URL) and shown shortened.

import { $, el, table } from './dom.js';

let callerToken = null;

const shortToken = (t) => `${t.slice(0, 8)}…${t.slice(-4)} (${t.length} characters)`;

/** `Server-Timing` entries: [{name, desc, dur}]. */
function serverTiming(value) {
  return value
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => {
      const [name, ...params] = part.split(';').map((p) => p.trim());
      const entry = { name, desc: '', dur: '' };
      for (const p of params) {
        const i = p.indexOf('=');
        const k = (i < 0 ? p : p.slice(0, i)).toLowerCase();
        const v = i < 0 ? '' : p.slice(i + 1).replace(/^"(.*)"$/, '$1');
        if (k === 'desc') entry.desc = v;
        if (k === 'dur') entry.dur = v;
      }
      return entry;
    });
}

const errorBox = (id, what, message) =>
  el('div', { class: 'error', id, role: 'alert' }, el('h4', {}, what), el('p', { id: `${id}-message` }, message));

export function startTry() {
  $('#try-token-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const out = $('#try-token-result');
    out.replaceChildren();
    callerToken = null;
    let res;
    let body = null;
    try {
      res = await fetch('/oauth/token', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ grant_type: 'client_credentials', client_id: $('#try-client-id').value.trim(), client_secret: $('#try-client-secret').value }),
        cache: 'no-store', credentials: 'omit', redirect: 'error', referrerPolicy: 'no-referrer',
      });
      body = await res.json().catch(() => null);
    } catch (err) {
      out.append(errorBox('try-token-error', 'The gateway could not be reached', String(err?.message ?? err)));
      return;
    }
    if (res.status !== 200 || typeof body?.access_token !== 'string') {
      const why = body?.error ? `${res.status} ${body.error}${body.error_description ? `: ${body.error_description}` : ''}` : `HTTP ${res.status}`;
      out.append(errorBox('try-token-error', 'No token', why));
      return;
    }
    callerToken = body.access_token;
    out.append(
      el('h4', {}, 'Token'),
      el(
        'dl',
        { class: 'facts', id: 'try-token' },
        el('dt', {}, 'Token'), el('dd', {}, el('code', {}, shortToken(callerToken))),
        el('dt', {}, 'Expires in'), el('dd', { id: 'try-token-expires' }, `${body.expires_in} s`),
        el('dt', {}, 'Scope'), el('dd', { id: 'try-token-scope' }, el('code', {}, body.scope ?? '')),
      ),
    );
  });

  $('#try-request-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const out = $('#try-response');
    const path = $('#try-path').value.trim();
    if (!path.startsWith('/') || path.startsWith('//')) {
      out.replaceChildren(errorBox('try-error', 'Not sent', 'The path starts with / and names a provider: /optoro/rmas'));
      return;
    }
    const method = $('#try-method').value;
    const headers = new Headers();
    try {
      for (const line of $('#try-headers').value.split(/\r?\n/)) {
        const i = line.indexOf(':');
        if (i > 0) headers.append(line.slice(0, i).trim(), line.slice(i + 1).trim());
      }
    } catch (err) {
      out.replaceChildren(errorBox('try-error', 'Not sent', `A header is not valid: ${err.message}`));
      return;
    }
    if (callerToken) headers.set('authorization', `Bearer ${callerToken}`);
    const body = ['GET', 'HEAD'].includes(method) || $('#try-body').value === '' ? undefined : $('#try-body').value;
    const started = performance.now();
    let res;
    let text;
    try {
      res = await fetch(path, { method, headers, body, cache: 'no-store', credentials: 'omit', redirect: 'manual', referrerPolicy: 'no-referrer' });
      text = method === 'HEAD' ? '' : await res.text();
    } catch (err) {
      out.replaceChildren(errorBox('try-error', 'No answer', String(err?.message ?? err)));
      return;
    }
    const ms = Math.round(performance.now() - started);
    let pretty = text;
    try {
      pretty = JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      pretty = text;
    }
    const timing = res.headers.get('server-timing');
    out.replaceChildren(
      el(
        'p',
        { class: 'status-line' },
        el('strong', { id: 'try-status', 'data-status': res.status, class: res.ok ? 'ok' : 'bad' }, `${res.status || 'redirect'} ${res.statusText}`),
        el('span', { class: 'aside' }, ` ${method} ${path} · ${ms} ms in this browser${callerToken ? '' : ' · no caller token sent'}`),
      ),
      timing
        ? table('try-timing', 'Server-Timing', ['Metric', 'Description', 'Duration (ms)'], serverTiming(timing).map((t) => [el('code', {}, t.name), t.desc, t.dur]))
        : el('p', { class: 'aside', id: 'try-timing' }, 'No Server-Timing header.'),
      table('try-headers-table', 'Headers', ['Name', 'Value'], [...res.headers].map(([k, v]) => [el('code', {}, k), el('code', {}, v)])),
      el('h4', { id: 'try-body-title' }, 'Body'),
      el('pre', { id: 'try-response-body', tabindex: '0', 'aria-labelledby': 'try-body-title' }, pretty || '(empty)'),
    );
  });
}
