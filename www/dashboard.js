// The operator dashboard: providers and their tokens' state, managed callers, their live
// tokens, statistics and the error log — all through this gateway's admin API (/admin/*, see
// docs/openapi.json). The admin token lives in this tab's sessionStorage only and travels only
// as the bearer of same-origin admin calls; a client secret is shown once, when the API
// answers it, and kept nowhere.

import { $, el, duration, relative, table } from './dom.js';
import { barChart } from './charts.js';

const KEY = 'tokengate.adminToken';
const AUTO_MS = 3000;

const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

class ApiError extends Error {
  constructor(status, body) {
    const code = body?.error ?? `HTTP ${status}`;
    super(body?.error_description ? `${code}: ${body.error_description}` : code);
    this.status = status;
    this.code = code;
    this.field = body?.field ?? null;
  }
}

/** One admin call with the token in sessionStorage: its JSON (null for 204), or an ApiError. */
async function api(method, path, body, token = sessionStorage.getItem(KEY)) {
  const headers = { authorization: `Bearer ${token ?? ''}`, accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store', credentials: 'omit', redirect: 'error', referrerPolicy: 'no-referrer',
  });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

const errorBox = (id, what, e) =>
  el('div', { class: 'error', id, role: 'alert' }, el('h4', {}, what), el('p', { id: `${id}-message` }, e.message ?? String(e)));

const when = (ms) => (ms === null || ms === undefined ? '—' : el('time', { datetime: new Date(ms).toISOString(), title: new Date(ms).toISOString() }, relative(ms, Date.now())));

/** Re-renders `container` with `nodes`, keeping keyboard focus on the control with the same key. */
function render(container, ...nodes) {
  const key = document.activeElement?.dataset?.focusKey;
  const had = key && container.contains(document.activeElement);
  container.replaceChildren(...nodes);
  if (had) container.querySelector(`[data-focus-key="${CSS.escape(key)}"]`)?.focus();
}

export function startDashboard({ onView, goTo }) {
  let view = 'playground';
  let timer = null;
  let busy = false;
  let editing = null; // the client id being edited

  const signedIn = () => sessionStorage.getItem(KEY) !== null;

  function show() {
    $('#login-form').hidden = signedIn();
    $('#dashboard').hidden = !signedIn();
  }

  function schedule() {
    clearInterval(timer);
    timer = null;
    if (view === 'dashboard' && signedIn() && $('#dash-auto').checked) timer = setInterval(refresh, AUTO_MS);
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY);
    clearSecret();
    show();
    schedule();
    render($('#login-result'), message ? errorBox('login-error', 'Signed out', { message }) : '');
  }

  // --- sign in --------------------------------------------------------------------------------

  $('#login-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const token = $('#admin-token').value.trim();
    render($('#login-result'));
    try {
      await api('GET', '/admin/providers', undefined, token);
    } catch (err) {
      const why = err.status === 401
        ? 'Refused: the gateway did not accept this admin token (invalid_token).'
        : err.status === 404
          ? 'No admin API here (the gateway has no TOKENGATE_ADMIN_TOKEN, or this is not a tokengate gateway).'
          : `The gateway could not be asked: ${err.message}`;
      render($('#login-result'), errorBox('login-error', 'Not signed in', { message: why }));
      return;
    }
    sessionStorage.setItem(KEY, token);
    $('#admin-token').value = '';
    show();
    await refresh();
    schedule();
    $('#dash-refresh').focus();
  });

  $('#dash-signout').addEventListener('click', () => signOut());
  $('#dash-refresh').addEventListener('click', () => refresh());
  $('#dash-auto').addEventListener('change', schedule);

  // --- the data ---------------------------------------------------------------------------------

  let scopesLoaded = false;

  let again = false;

  /** Reads everything again; a call while a refresh is under way makes one more after it. */
  async function refresh() {
    if (!signedIn()) return;
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      const [providers, clients, tokens, stats, errors] = await Promise.all([
        api('GET', '/admin/providers'),
        api('GET', '/admin/clients?limit=100'),
        api('GET', '/admin/tokens'),
        api('GET', '/admin/stats'),
        api('GET', '/admin/errors?limit=20'),
      ]);
      if (!scopesLoaded) {
        const scopes = await api('GET', '/admin/scopes');
        $('#scope-list').replaceChildren(...scopes.items.map((s) => el('option', { value: s.scope })));
        scopesLoaded = true;
      }
      renderProviders(providers.items);
      renderCallers(clients.items);
      renderTokens(tokens.items);
      renderStats(stats, clients.items);
      renderErrors(errors.items);
      render($('#dash-error'));
      $('#dash-updated').textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      if (err.status === 401) signOut('The gateway no longer accepts this admin token.');
      else render($('#dash-error'), errorBox('dash-error-box', 'Could not refresh', err));
    } finally {
      busy = false;
    }
    if (again) {
      again = false;
      await refresh();
    }
  }

  /** Runs an admin action, then refreshes; a failure is shown in the dashboard's error box. */
  async function act(what, fn) {
    try {
      await fn();
      render($('#dash-error'));
    } catch (err) {
      if (err.status === 401) return signOut('The gateway no longer accepts this admin token.');
      render($('#dash-error'), errorBox('dash-error-box', what, err));
    }
    await refresh();
  }

  // --- providers --------------------------------------------------------------------------------

  function renderProviders(items) {
    const rows = items.map((p) => {
      const t = p.token;
      const last = p.last_exchange;
      return [
        [el('code', {}, p.provider), el('div', { class: 'aside' }, `${p.auth_style} · ${p.api_host}`)],
        p.coordination === 'durable_object' ? 'minter' : 'isolate',
        t
          ? [el('span', { class: t.fresh ? 'ok' : 'warn' }, `cached (${t.held_by})`), el('div', { class: 'aside' }, el('code', {}, t.sha256_prefix))]
          : el('span', { class: 'aside' }, 'not cached'),
        t ? el('span', { 'data-expires-in': t.expires_in_s }, duration(t.expires_in_s * 1000)) : '—',
        t ? when(t.refresh_at_ms) : '—',
        last ? [when(last.time), el('div', { class: last.ok ? 'ok' : 'bad' }, last.ok ? `ok (${last.status})` : `failed (${last.status || 'no answer'})`)] : 'none yet',
        p.recent_errors.length
          ? el('ul', { class: 'compact' }, p.recent_errors.map((e) => el('li', {}, `${e.kind} ${e.status}${e.provider_error ? ` ${e.provider_error}` : ''}`)))
          : el('span', { class: 'aside' }, 'none'),
        el('button', {
          type: 'button', 'data-focus-key': `drop:${p.provider}`, 'aria-label': `Drop ${p.provider}'s token`,
          onclick: () => act(`Could not drop ${p.provider}'s token`, () => api('DELETE', `/admin/providers/${encodeURIComponent(p.provider)}/token`)),
        }, 'Drop token'),
      ];
    });
    render(
      $('#providers'),
      table('providers-table', null, ['Provider', 'Obtained by', 'Token', 'Expires in', 'Refresh', 'Last exchange', 'Recent errors', ''], rows, (i) => ({ 'data-provider': items[i].provider })),
    );
  }

  // --- callers ----------------------------------------------------------------------------------

  const limitsText = (l) => {
    const parts = [];
    if (l?.requests_per_minute) parts.push(`${l.requests_per_minute}/min`);
    if (l?.total_requests) parts.push(`${l.total_requests} total`);
    return parts.length ? parts.join(', ') : 'none';
  };

  function renderCallers(items) {
    const rows = items.map((c) => [
      [el('strong', {}, c.name), el('div', {}, el('code', {}, c.client_id))],
      el('code', {}, c.scopes.join(' ')),
      [limitsText(c.limits), el('div', { class: 'aside' }, `tokens live ${duration(c.token_ttl_s * 1000)}`)],
      c.disabled ? el('span', { class: 'bad' }, 'disabled') : el('span', { class: 'ok' }, 'enabled'),
      el(
        'div',
        { class: 'row-actions' },
        el('button', { type: 'button', 'data-focus-key': `edit:${c.client_id}`, 'aria-label': `Edit ${c.name}`, onclick: () => startEdit(c) }, 'Edit'),
        el('button', {
          type: 'button', 'data-focus-key': `rotate:${c.client_id}`, 'aria-label': `Rotate ${c.name}'s secret`,
          onclick: () => act('Could not rotate the secret', async () => {
            const r = await api('POST', `/admin/clients/${encodeURIComponent(c.client_id)}/rotate-secret`);
            showSecret(c.name, r.client_id, r.client_secret, 'rotated: the old secret and its tokens no longer work');
          }),
        }, 'Rotate secret'),
        el('button', {
          type: 'button', 'data-focus-key': `delete:${c.client_id}`, 'aria-label': `Delete ${c.name}`,
          onclick: () => act('Could not delete the caller', () => api('DELETE', `/admin/clients/${encodeURIComponent(c.client_id)}`)),
        }, 'Delete'),
      ),
    ]);
    render(
      $('#callers'),
      items.length ? table('callers-table', null, ['Caller', 'Scopes', 'Limits', 'State', ''], rows, (i) => ({ 'data-client': items[i].client_id })) : el('p', { class: 'aside' }, 'No managed callers yet.'),
    );
  }

  function clearSecret() {
    render($('#secret-box'));
  }

  function showSecret(name, clientId, secret, why) {
    const copy = el('button', { type: 'button', id: 'secret-copy' }, 'Copy secret');
    const copied = el('span', { class: 'aside', id: 'secret-copied', role: 'status' });
    copy.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(secret);
        copied.textContent = 'Copied.';
      } catch {
        copied.textContent = 'The browser refused the clipboard: select the secret and copy it.';
      }
    });
    const use = el('button', {
      type: 'button', id: 'secret-use',
      onclick: () => {
        $('#try-client-id').value = clientId;
        $('#try-client-secret').value = secret;
        goTo('try');
      },
    }, 'Use in Try it');
    render(
      $('#secret-box'),
      el(
        'div',
        { class: 'secret', id: 'new-secret' },
        el('h4', {}, `Client secret of ${name} (${why})`),
        el('dl', { class: 'facts' }, el('dt', {}, 'Client id'), el('dd', {}, el('code', { id: 'new-client-id' }, clientId)), el('dt', {}, 'Client secret'), el('dd', {}, el('code', { id: 'new-client-secret' }, secret))),
        el('p', { class: 'warning' }, 'Shown this once: the gateway keeps only its SHA-256, and this page forgets it when you press Done.'),
        el('div', { class: 'actions' }, copy, use, el('button', { type: 'button', id: 'secret-done', onclick: clearSecret }, 'Done'), copied),
      ),
    );
    $('#secret-copy').focus();
  }

  function startEdit(c) {
    editing = c.client_id;
    $('#caller-form-title').textContent = `Edit ${c.name}`;
    $('#caller-name').value = c.name;
    $('#caller-scopes').value = c.scopes.join(' ');
    $('#caller-rpm').value = c.limits?.requests_per_minute ?? '';
    $('#caller-total').value = c.limits?.total_requests ?? '';
    $('#caller-ttl').value = c.token_ttl_s;
    $('#caller-disabled').checked = c.disabled;
    $('#caller-submit').textContent = 'Save';
    $('#caller-cancel').hidden = false;
    $('#caller-name').focus();
  }

  function endEdit() {
    editing = null;
    $('#caller-form').reset();
    $('#caller-form-title').textContent = 'Create a caller';
    $('#caller-submit').textContent = 'Create';
    $('#caller-cancel').hidden = true;
  }

  $('#caller-cancel').addEventListener('click', endEdit);

  $('#caller-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const num = (sel) => ($(sel).value.trim() === '' ? null : Number($(sel).value));
    const body = {
      name: $('#caller-name').value.trim(),
      scopes: $('#caller-scopes').value.split(/[\s,]+/).filter(Boolean),
      limits: { requests_per_minute: num('#caller-rpm'), total_requests: num('#caller-total') },
    };
    if (num('#caller-ttl') !== null) body.token_ttl_s = num('#caller-ttl');
    if (editing) {
      const id = editing;
      body.disabled = $('#caller-disabled').checked;
      act('Could not save the caller', async () => {
        await api('PATCH', `/admin/clients/${encodeURIComponent(id)}`, body);
        endEdit();
      });
    } else {
      // A new caller's limits: only those given.
      body.limits = Object.fromEntries(Object.entries(body.limits).filter(([, v]) => v !== null));
      if ($('#caller-disabled').checked) body.disabled = true;
      act('Could not create the caller', async () => {
        const created = await api('POST', '/admin/clients', body);
        endEdit();
        showSecret(created.name, created.client_id, created.client_secret, 'new caller');
      });
    }
  });

  // --- tokens -----------------------------------------------------------------------------------

  function renderTokens(items) {
    const rows = items.map((t) => [
      el('code', { title: t.id }, `${t.id.slice(0, 12)}…${t.id.slice(-6)}`),
      el('code', {}, t.client_id),
      el('code', {}, t.scopes.join(' ')),
      when(t.issued_at * 1000),
      when(t.expires_at * 1000),
      el('span', { 'data-requests': t.requests }, String(t.requests)),
      el('button', {
        type: 'button', 'data-focus-key': `revoke:${t.id}`, 'aria-label': `Revoke token ${t.id}`,
        onclick: () => act('Could not revoke the token', () => api('DELETE', `/admin/tokens/${encodeURIComponent(t.id)}`)),
      }, 'Revoke'),
    ]);
    render(
      $('#tokens'),
      items.length ? table('tokens-table', null, ['Token id', 'Caller', 'Scopes', 'Issued', 'Expires', 'Requests', ''], rows, (i) => ({ 'data-token': items[i].id, 'data-client': items[i].client_id })) : el('p', { class: 'aside' }, 'No live tokens.'),
    );
  }

  // --- statistics -------------------------------------------------------------------------------

  function renderStats(stats, clients) {
    const names = Object.fromEntries(clients.map((c) => [c.client_id, c.name]));
    const providerRows = Object.entries(stats.providers).map(([id, p]) => {
      const s = p.token_source;
      const served = s.memory + s.kv + s.minter + s.exchange;
      const hits = s.memory + s.kv + s.minter;
      const ratio = served ? `${Math.round((hits / served) * 100)} % cache hits` : 'no cache lookups';
      return {
        label: id,
        segments: [
          { name: '2xx', value: p.responses['2xx'], cls: 's2xx' },
          { name: '3xx', value: p.responses['3xx'], cls: 's3xx' },
          { name: '4xx', value: p.responses['4xx'], cls: 's4xx' },
          { name: '5xx', value: p.responses['5xx'], cls: 's5xx' },
        ],
        note: `${plural(p.requests, 'request')} · ${ratio} · ${plural(p.exchanges, 'exchange')} · ${plural(p.retries, 'retry', 'retries')}`,
      };
    });
    const sourceRows = Object.entries(stats.providers).map(([id, p]) => ({
      label: id,
      segments: ['memory', 'kv', 'minter', 'exchange'].map((k) => ({ name: k, value: p.token_source[k], cls: `src-${k}` })),
      note: `memory ${p.token_source.memory} · KV ${p.token_source.kv} · minter ${p.token_source.minter} · exchange ${p.token_source.exchange}`,
    }));
    const clientRows = Object.entries(stats.clients).map(([id, c]) => ({
      label: names[id] ? `${names[id]} (${id})` : id,
      segments: [
        { name: 'admitted', value: c.requests, cls: 's2xx' },
        { name: '401', value: c.rejected['401'], cls: 's4xx' },
        { name: '403', value: c.rejected['403'], cls: 's3xx' },
        { name: '429', value: c.rejected['429'], cls: 's5xx' },
      ],
      note: `${c.requests} admitted · refused 401: ${c.rejected['401']}, 403: ${c.rejected['403']}, 429: ${c.rejected['429']}`,
    }));
    render(
      $('#stats-providers'),
      barChart('chart-providers', 'Proxied requests per provider, by status class', providerRows, [['s2xx', '2xx'], ['s3xx', '3xx'], ['s4xx', '4xx'], ['s5xx', '5xx']]),
      barChart('chart-sources', 'Where each request\'s provider token came from', sourceRows, [['src-memory', 'memory'], ['src-kv', 'KV'], ['src-minter', 'minter'], ['src-exchange', 'exchange']]),
    );
    render(
      $('#stats-clients'),
      barChart('chart-clients', 'Requests per caller', clientRows, [['s2xx', 'admitted'], ['s4xx', '401'], ['s3xx', '403'], ['s5xx', '429']]),
    );
  }

  // --- errors -----------------------------------------------------------------------------------

  function renderErrors(items) {
    const rows = items.map((e) => [
      when(e.time), el('code', {}, e.provider), e.client_id ? el('code', {}, e.client_id) : '—', e.kind, String(e.status), e.provider_error ?? '—',
    ]);
    render(
      $('#errors'),
      items.length ? table('errors-table', null, ['When', 'Provider', 'Caller', 'What', 'Status', 'Provider error'], rows) : el('p', { class: 'aside' }, 'No errors.'),
    );
  }

  // --- start ------------------------------------------------------------------------------------

  show();
  onView((v) => {
    view = v;
    schedule();
    if (v === 'dashboard' && signedIn()) refresh();
  });
}
