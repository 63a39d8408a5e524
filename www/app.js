// The tokengate console: the playground (a token-response inspector with its timeline and a
// token-request preview, on the package's web build — pkg/web, made by .ci/build-npm — with no
// network), the operator dashboard (dashboard.js) and "Try it" (try.js). No framework, no
// bundler: plain ES modules. The playground's only requests are for the page's own files.

import { $, el, row, duration, instant } from './dom.js';
import { startDashboard } from './dashboard.js';
import { startTry } from './try.js';
import { timeline } from './charts.js';

// The package's web build: ui/pkg/ in the Worker's assets, www/pkg/ under www/serve.mjs.
const PKG = './pkg/index.js';
const MASK = '••••••••';

let tg = null; // the tokengate module once initialised

// ---------------------------------------------------------------------------------------------
// Examples of token responses from the providers' documentation (docs/providers.md).

const b64url = (text) => {
  const bytes = new TextEncoder().encode(text);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
};

/** A JWT-shaped token like the partner API's example (same claims), valid for an hour from now. Unsigned. */
function partnerJwt(nowS) {
  const header = { typ: 'JWT', alg: 'RS256' };
  const claims = {
    aud: '9b1e82a7-0a59-4e7e-add5-b9ffa37aade1',
    jti: '81755a6a7daf0382f0f2723a2cc951f830f533afb46b75d9b9a4cea7d215ee9926a93259567cbf78',
    iat: nowS,
    nbf: nowS,
    exp: nowS + 3600,
    sub: '',
    scopes: ['bookings:create', 'bookings:delete'],
    user_id: '842902db-54e5-4614-b348-002e8ce5da12',
    partner_id: 'f31120ee-b5cb-41c4-9529-288d02e91cd6',
    is_test: false,
  };
  return `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}.${b64url('example signature, not verified')}`;
}

const EXAMPLES = {
  // Optoro's token endpoint spec (Auth API, demoClientExample) with created_at = now; Optoro's
  // 25 h tokens need maxLifetimeS 90000, as in the package README.
  optoro: () => ({
    status: 200,
    body: JSON.stringify(
      {
        access_token: 'G0ybScDl_7CA3tWVou',
        token_type: 'Bearer',
        expires_in: 90000,
        scope: 'read write',
        created_at: Math.floor(Date.now() / 1000),
      },
      null,
      2,
    ),
    policy: { maxLifetimeS: 90000 },
  }),
  // Optimum Automotive (IdentityServer): ~355-day tokens, capped by maxLifetimeS.
  optimum: () => ({
    status: 200,
    body: JSON.stringify(
      {
        access_token: 'eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiNotyEt1dCI6Ikd9S2Vo2SFE4S1M2aXBVWjJ5...',
        expires_in: 30734400,
        token_type: 'Bearer',
      },
      null,
      2,
    ),
    policy: {},
  }),
  // The partner API: a 1 h JWT; built here with exp = now + 3600.
  partner: () => ({
    status: 200,
    body: JSON.stringify(
      { token_type: 'Bearer', expires_in: 3600, access_token: partnerJwt(Math.floor(Date.now() / 1000)) },
      null,
      2,
    ),
    policy: {},
  }),
  // The 401 example of Optoro's token endpoint spec.
  401: () => ({
    status: 401,
    body: JSON.stringify(
      {
        error: 'invalid_client',
        error_description:
          'Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.',
      },
      null,
      2,
    ),
    policy: {},
  }),
};

// ---------------------------------------------------------------------------------------------
// Inspect a token response.

const POLICY_KEYS = [
  ['refreshSkewS', '#policy-skew'],
  ['defaultLifetimeS', '#policy-default'],
  ['maxLifetimeS', '#policy-max'],
];
const POLICY_DEFAULTS = { refreshSkewS: 60, defaultLifetimeS: 300, maxLifetimeS: 86400 };

function readPolicy() {
  const policy = {};
  for (const [key, sel] of POLICY_KEYS) {
    const raw = $(sel).value.trim();
    if (raw !== '') policy[key] = Number(raw);
  }
  return policy;
}

function readHeaders() {
  const headers = [];
  for (const line of $('#resp-headers').value.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0) headers.push([line.slice(0, i).trim(), line.slice(i + 1).trim()]);
  }
  return headers;
}

/** A TokenError's fields; element ids start with `prefix` (one box per tool). */
function errorBox(e, what, prefix) {
  const box = el('div', { class: 'error', id: `${prefix}error` });
  if (tg && e instanceof tg.TokenError) {
    box.append(
      el('h3', {}, `${what}: TokenError`),
      el(
        'dl',
        { class: 'facts' },
        row(`${prefix}err-code`, 'code', el('code', {}, e.code)),
        row(`${prefix}err-status`, 'status', e.status === null ? 'null (no HTTP answer)' : String(e.status)),
        row(`${prefix}err-provider-error`, 'providerError', e.providerError === null ? 'null' : el('code', {}, e.providerError)),
        row(`${prefix}err-retryable`, 'retryable', e.retryable ? 'yes' : 'no'),
        row(`${prefix}err-retry-after`, 'retryAfterMs', e.retryAfterMs === null ? 'null' : `${e.retryAfterMs} ms`),
        row(`${prefix}err-message`, 'message', e.message),
      ),
    );
  } else {
    box.append(el('h3', {}, `${what}: unexpected error`), el('p', { id: `${prefix}err-message` }, String(e?.message ?? e)));
  }
  return box;
}

/** The response's own `expires_in`, when it states one (number or numeric string). */
function statedExpiresIn(body) {
  try {
    const v = JSON.parse(body)?.expires_in;
    const n = typeof v === 'string' ? Number(v.trim()) : v;
    return typeof n === 'number' && Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}

function inspect() {
  const out = $('#inspect-result');
  out.replaceChildren();
  if (!tg) return;
  const status = Number($('#resp-status').value);
  let body = $('#resp-body').value;
  // A bare JWT is read as the access token of a response that states nothing else.
  const jwt = /^\s*([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)\s*$/.exec(body);
  if (jwt) body = JSON.stringify({ access_token: jwt[1], token_type: 'Bearer' });
  const policy = readPolicy();
  const nowMs = Date.now();
  let parsed;
  let cache;
  try {
    parsed = tg.parseTokenResponse(status, readHeaders(), body, nowMs, policy);
    cache = tg.cachePolicy({ expiresAt: parsed.expiresAt, issuedAt: parsed.issuedAt }, nowMs, policy);
  } catch (e) {
    out.append(errorBox(e, 'Not a usable token response', 'inspect-'));
    return;
  }
  const effective = { ...POLICY_DEFAULTS, ...policy };
  const claims = tg.decodeJwtClaims(parsed.accessToken);
  const lifetimeMs = parsed.expiresAt - parsed.issuedAt;

  // Why the lifetime is what it is.
  const notes = [];
  const stated = statedExpiresIn(body);
  const cap = nowMs + effective.maxLifetimeS * 1000;
  const jwtExpMs = claims && typeof claims.exp === 'number' ? Math.floor(claims.exp * 1000) : null;
  let capped = false;
  if (parsed.expiresAt === cap && ((stated !== null && parsed.issuedAt + stated * 1000 > cap) || (jwtExpMs ?? 0) > cap)) {
    capped = true;
    notes.push(
      `capped at maxLifetimeS = ${effective.maxLifetimeS} s (${duration(effective.maxLifetimeS * 1000)})` +
        (stated !== null ? `; the response said expires_in ${stated} s (${duration(stated * 1000)})` : ''),
    );
  } else if (stated !== null) {
    notes.push(`from expires_in ${stated} s`);
    if (jwtExpMs !== null && jwtExpMs === parsed.expiresAt && parsed.issuedAt + stated * 1000 > jwtExpMs) {
      notes.push('the JWT exp is earlier and wins');
    }
  } else if (jwtExpMs !== null && parsed.expiresAt === jwtExpMs) {
    notes.push('no expires_in: from the JWT exp claim');
  } else {
    notes.push(`no expires_in: defaultLifetimeS = ${effective.defaultLifetimeS} s`);
  }

  const issuedNote = parsed.issuedAt === nowMs ? 'receipt time' : 'the response’s created_at';
  const ttl =
    cache.ttlSeconds === null
      ? el('strong', {}, 'memory only')
      : [el('strong', {}, `${cache.ttlSeconds} s`), el('span', { class: 'aside' }, ` (${duration(cache.ttlSeconds * 1000)})`)];
  const ttlNote =
    cache.ttlSeconds === null
      ? ' — under 60 s left before the refresh point, so no shared-cache (KV) entry'
      : ' — how long a shared cache (KV) may keep it';

  const facts = el(
    'dl',
    { class: 'facts' },
    row('out-token', 'Access token', claims ? `JWT, ${parsed.accessToken.length} characters` : `opaque, ${parsed.accessToken.length} characters`),
    row('out-token-type', 'Token type', parsed.tokenType),
    row('out-issued', 'Issued at', instant(parsed.issuedAt, nowMs, issuedNote)),
    row(
      'out-lifetime',
      'Lifetime',
      el('strong', {}, `${Math.round(lifetimeMs / 1000)} s`),
      el('span', { class: 'aside' }, ` (${duration(lifetimeMs)}) — ${notes.join('; ')}`),
    ),
    row('out-expires', 'Expires at', instant(parsed.expiresAt, nowMs)),
    row('out-refresh', 'Refresh at', instant(cache.refreshAt, nowMs, `${duration(parsed.expiresAt - cache.refreshAt)} before expiry`)),
    row('out-ttl', 'KV TTL', ttl, el('span', { class: 'aside' }, ttlNote)),
    row('out-fresh', 'Served now?', cache.fresh ? 'yes — fresh' : 'no — past its refresh point'),
    row('out-scope', 'Scope', parsed.scope === null ? el('span', { class: 'aside' }, 'none stated') : el('code', {}, parsed.scope)),
  );
  if (capped) facts.querySelector('#out-lifetime').classList.add('capped');
  out.append(
    el('h3', {}, jwt ? 'Parsed token (a bare JWT)' : 'Parsed token'),
    facts,
    el('h4', { id: 'timeline-title' }, 'Timeline'),
    timeline({ issuedAt: parsed.issuedAt, refreshAt: cache.refreshAt, expiresAt: parsed.expiresAt, nowMs, ttlSeconds: cache.ttlSeconds }),
  );

  if (claims) {
    out.append(
      el(
        'section',
        { class: 'claims', 'aria-labelledby': 'claims-title' },
        el('h3', { id: 'claims-title' }, 'JWT claims (decoded, unverified)'),
        el(
          'p',
          { class: 'warning', id: 'claims-warning' },
          'Decoded with decodeJwtClaims without checking the signature: for display only — never trust these claims.',
        ),
        el('pre', { id: 'out-claims', tabindex: '0' }, JSON.stringify(claims, null, 2)),
      ),
    );
  }
}

function loadExample(key) {
  const ex = EXAMPLES[key]();
  $('#resp-status').value = String(ex.status);
  $('#resp-body').value = ex.body;
  $('#resp-headers').value = '';
  for (const [k, sel] of POLICY_KEYS) $(sel).value = ex.policy[k] ?? '';
  inspect();
}

// ---------------------------------------------------------------------------------------------
// Preview the token request, secret masked.

const PRESETS = {
  // Optoro: the sample credentials of Optoro's API guide, JSON body.
  optoro: {
    tokenUrl: 'https://auth.sandbox.optiturn.com/oauth/token',
    clientId: 'f2449833d49b9646a701d2423bef8ec9a49',
    clientSecret: '1d98065fc19939c10d26909f9aa58d2b5ef',
    authStyle: 'json_body',
    scope: '',
  },
  // Optimum Automotive: IdentityServer, form parameters.
  optimum: {
    tokenUrl: 'https://identityserver-preprod.optimum-automotive.com/connect/token',
    clientId: 'my-optimum-client',
    clientSecret: 'my-optimum-api-password',
    authStyle: 'client_secret_post',
    scope: '',
  },
  // The partner API: JSON body, Accept: application/json.
  partner: {
    tokenUrl: 'https://partner.example/api/oauth/token',
    clientId: 'my-partner-client-id',
    clientSecret: 'my-partner-client-secret',
    authStyle: 'json_body',
    scope: '',
  },
  // Any RFC 6749 server: HTTP Basic.
  rfc6749: {
    tokenUrl: 'https://idp.example/token',
    clientId: 'my-client',
    clientSecret: 'my-client-secret',
    authStyle: 'client_secret_basic',
    scope: 'api:read',
  },
};

const FIELDS = [
  ['tokenUrl', '#cfg-token-url'],
  ['clientId', '#cfg-client-id'],
  ['clientSecret', '#cfg-client-secret'],
  ['authStyle', '#cfg-auth-style'],
  ['scope', '#cfg-scope'],
];

/** The configuration the form gives; throws a TypeError when "More configuration" is not a JSON object. */
function readConfig() {
  const config = {};
  const extra = $('#cfg-extra').value.trim();
  if (extra !== '') {
    let parsed;
    try {
      parsed = JSON.parse(extra);
    } catch (e) {
      throw new TypeError(`More configuration is not JSON: ${e.message}`);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new TypeError('More configuration is not a JSON object');
    Object.assign(config, parsed);
  }
  for (const [key, sel] of FIELDS) {
    const v = $(sel).value;
    if (key === 'scope' && v.trim() === '') continue;
    config[key] = key === 'clientSecret' ? v : v.trim();
  }
  return config;
}

const formDecode = (s) => {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return null;
  }
};

/** The body with every JSON string / form value equal to the secret replaced by the mask. */
function maskBody(body, contentType, secret) {
  if (secret === '') return body;
  if (/json/i.test(contentType)) {
    return body.replace(/"(?:[^"\\]|\\.)*"/g, (lit) => {
      try {
        return JSON.parse(lit) === secret ? `"${MASK}"` : lit;
      } catch {
        return lit;
      }
    });
  }
  if (/x-www-form-urlencoded/i.test(contentType)) {
    return body
      .split('&')
      .map((pair) => {
        const i = pair.indexOf('=');
        if (i < 0) return pair;
        return formDecode(pair.slice(i + 1)) === secret ? `${pair.slice(0, i + 1)}${MASK}` : pair;
      })
      .join('&');
  }
  return body;
}

/** A header value with the secret masked; Basic credentials are masked whole. */
function maskHeader(name, value, secret) {
  const basic = /^Basic\s+(\S+)$/i.exec(value);
  if (name.toLowerCase() === 'authorization' && basic) {
    let decoded = null;
    try {
      decoded = new TextDecoder().decode(Uint8Array.from(atob(basic[1]), (c) => c.charCodeAt(0)));
    } catch {
      decoded = null;
    }
    const i = decoded === null ? -1 : decoded.indexOf(':');
    const id = i >= 0 ? formDecode(decoded.slice(0, i)) : null;
    return { value: `Basic ${MASK}`, note: id === null ? null : `base64 of form-encoded client_id:client_secret = ${decoded.slice(0, i)}:${MASK}` };
  }
  return { value: secret !== '' && value.includes(secret) ? value.split(secret).join(MASK) : value, note: null };
}

/** A last guard: no display text may contain the secret (raw, JSON- or form-encoded). */
function scrub(text, secret) {
  if (secret.length < 4) return text;
  const forms = new Set([secret, JSON.stringify(secret).slice(1, -1), encodeURIComponent(secret), new URLSearchParams({ s: secret }).toString().slice(2)]);
  for (const f of forms) text = text.split(f).join(MASK);
  return text;
}

function preview() {
  const out = $('#request-result');
  out.replaceChildren();
  if (!tg) return;
  let config;
  let req;
  try {
    config = readConfig();
    req = tg.buildTokenRequest(config);
  } catch (e) {
    out.append(errorBox(e, 'Invalid configuration', 'req-'));
    return;
  }
  const secret = config.clientSecret ?? '';
  const contentType = Object.entries(req.headers).find(([k]) => k.toLowerCase() === 'content-type')?.[1] ?? '';
  const headers = Object.entries(req.headers).map(([name, value]) => ({ name, ...maskHeader(name, value, secret) }));
  const body = scrub(maskBody(req.body, contentType, secret), secret);
  for (const h of headers) h.value = scrub(h.value, secret);

  const table = el(
    'table',
    { id: 'req-headers', class: 'headers' },
    el('caption', {}, 'Headers'),
    el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Name'), el('th', { scope: 'col' }, 'Value'))),
    el(
      'tbody',
      {},
      headers.map((h) =>
        el(
          'tr',
          { 'data-header': h.name.toLowerCase() },
          el('th', { scope: 'row' }, el('code', {}, h.name)),
          el('td', {}, el('code', { class: 'header-value' }, h.value), h.note ? el('div', { class: 'aside' }, h.note) : null),
        ),
      ),
    ),
  );
  const raw = [`${req.method} ${req.url}`, ...headers.map((h) => `${h.name}: ${h.value}`), '', body].join('\n');

  out.append(
    el('h3', {}, 'Token request'),
    el(
      'dl',
      { class: 'facts' },
      row('req-method', 'Method', el('code', {}, req.method)),
      row('req-url', 'URL', el('code', {}, req.url)),
    ),
    table,
    el('h4', { id: 'req-body-title' }, 'Body ', el('span', { class: 'aside' }, `(${contentType || 'no Content-Type'})`)),
    el('pre', { id: 'req-body', 'aria-labelledby': 'req-body-title', tabindex: '0' }, body),
    el(
      'details',
      {},
      el('summary', {}, 'As raw HTTP (secret masked)'),
      el('pre', { id: 'req-raw', tabindex: '0' }, raw),
    ),
    el('p', { class: 'note' }, `The client secret is shown as ${MASK}. Nothing was sent: this is the request tokengate would send.`),
  );
}

function loadPreset(key) {
  const p = PRESETS[key];
  for (const [k, sel] of FIELDS) $(sel).value = p[k] ?? '';
  $('#cfg-extra').value = '';
  preview();
}

// ---------------------------------------------------------------------------------------------
// Start.

// ---------------------------------------------------------------------------------------------
// Views: #playground (default), #dashboard, #try. The hash names a view and nothing else.

const VIEWS = ['playground', 'dashboard', 'try'];
const viewListeners = [];

/** Calls `fn(view)` whenever the shown view changes (and once now). */
export function onView(fn) {
  viewListeners.push(fn);
  fn(currentView());
}

function currentView() {
  const v = location.hash.slice(1);
  return VIEWS.includes(v) ? v : 'playground';
}

function showView() {
  const view = currentView();
  for (const section of document.querySelectorAll('[data-view]')) section.hidden = section.dataset.view !== view;
  for (const a of document.querySelectorAll('[data-view-link]')) {
    if (a.dataset.viewLink === view) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  for (const fn of viewListeners) fn(view);
}

/** Shows `view` (as following its link would). */
export function goTo(view) {
  if (currentView() === view) return;
  location.hash = view;
}

async function main() {
  const status = $('#status');
  window.addEventListener('hashchange', showView);
  showView();
  startDashboard({ onView, goTo });
  startTry({ onView });
  for (const b of document.querySelectorAll('[data-example]')) b.addEventListener('click', () => loadExample(b.dataset.example));
  for (const b of document.querySelectorAll('[data-preset]')) b.addEventListener('click', () => loadPreset(b.dataset.preset));
  $('#inspect-form').addEventListener('submit', (e) => {
    e.preventDefault();
    inspect();
  });
  $('#request-form').addEventListener('submit', (e) => {
    e.preventDefault();
    preview();
  });
  $('#request-form').addEventListener('input', () => preview());
  $('#request-form').addEventListener('change', () => preview());

  try {
    tg = await import(PKG);
    await tg.default(); // fetches core_bg.wasm next to the module
  } catch (e) {
    tg = null;
    status.dataset.state = 'error';
    status.textContent = `Could not load the tokengate package from ${PKG} (${e?.message ?? e}): the playground needs it. Build it with make console (or .ci/build-npm for node www/serve.mjs).`;
    return;
  }
  status.dataset.state = 'ready';
  status.textContent = 'tokengate loaded (the playground runs on WebAssembly in this browser).';
  loadExample('optoro');
  loadPreset('optoro');
}

main();
