// The console (www/), as the Worker serves it at /ui/ through Workers static assets: the test
// build (build-test/) in Miniflare with wrangler.demo.toml's [assets] translated by wrangler
// itself (build-console/, `make console`), the demo provider's emulators, and Debian's Chromium
// driven by playwright-core. The playground, the dashboard and "Try it" in a real browser;
// a screenshot of each view at 375 px and 1440 px into test-artifacts/console/ (git-ignored).
// CONSOLE_README_SCREENSHOTS=1 also writes docs/console-playground.png and
// docs/console-dashboard.png, the README's.
// Run: node --test --test-concurrency=1 --test-timeout=300000 tests/worker-console.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { startGateway, REPO_ROOT } from './support/gateway.mjs';
import { startProviders } from './support/emulators.mjs';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts', 'console');
const ADMIN = `admin-${crypto.randomBytes(24).toString('base64url')}`;
const STATIC = { id: 'demo-caller', secret: `demo-${crypto.randomBytes(12).toString('base64url')}` };
const WIDTHS = [375, 1440];

let emu;
let gw;
let chromium;
let browser;
let core;

before(async () => {
  for (const f of ['build-console/ui/index.html', 'build-console/ui/pkg/core_bg.wasm', 'build-test/index.js', 'pkg/node/index.cjs']) {
    assert.ok(fs.existsSync(path.join(REPO_ROOT, f)), `${f} is missing: build it first (make worker-test console)`);
  }
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's chromium (make setup-browser)`);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  core = createRequire(import.meta.url)(path.join(REPO_ROOT, 'pkg/node/index.cjs'));
  // The emulators the demo provider runs (tests/support/demo-provider.mjs), on a free port.
  emu = await startProviders({ maskBearer: true });
  const cfg = emu.gatewayConfig({ optoro: { coordination: 'durable_object', max_lifetime_s: 90000, api_headers: { 'X-Optiturn-Api-Version': '1' } } });
  gw = await startGateway({
    ...cfg,
    secrets: { ...cfg.secrets, TOKENGATE_ADMIN_TOKEN: ADMIN },
    clients: { [STATIC.id]: { secret: STATIC.secret, scopes: ['optoro', 'optimum', 'partner'] } },
    minter: true,
    assets: 'wrangler.demo.toml',
    kvProxy: false,
  });
  ({ chromium } = await import('playwright-core'));
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
});

after(async () => {
  await browser?.close();
  await gw?.close();
  await emu?.close();
});

/**
 * A fresh page (its own context: its own sessionStorage) at `width` px on the console, the
 * package loaded. `expected` lists console errors the test provokes on purpose (the browser's
 * "Failed to load resource" for an answer that is a refusal by design, as `status url`);
 * anything else logged as an error, a page error, or a request off the gateway's origin fails.
 */
async function openConsole(t, { width = 1440, hash = '' } = {}) {
  const context = await browser.newContext({ viewport: { width, height: 900 } });
  t.after(() => context.close());
  const page = await context.newPage();
  const problems = [];
  const expected = [];
  const origin = new URL(gw.url).origin;
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const refused = /^Failed to load resource: the server responded with a status of (\d+)/.exec(m.text());
    const url = m.location()?.url ?? '';
    const i = refused ? expected.findIndex((e) => e.status === Number(refused[1]) && url.startsWith(origin + e.path)) : -1;
    if (i >= 0) expected.splice(i, 1);
    else problems.push(`console.error: ${m.text()} (${url})`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.protocol !== 'data:' && u.origin !== origin) problems.push(`off-origin request: ${r.url()}`);
  });
  await page.goto(`${gw.url}/ui/${hash}`);
  await page.locator('#status[data-state="ready"]').waitFor({ timeout: 15000 });
  return {
    page,
    /** A refusal this test provokes on purpose: the browser logs it as a failed resource. */
    expectRefusal: (status, p) => expected.push({ status, path: p }),
    /** No unexpected console error, page error or request; every id unique; every control labelled. */
    async check() {
      const { duplicates, unlabelled } = await page.evaluate(() => {
        const ids = [...document.querySelectorAll('[id]')].map((e) => e.id);
        return {
          duplicates: ids.filter((id, i) => ids.indexOf(id) !== i),
          unlabelled: [...document.querySelectorAll('input:not([type=hidden]), select, textarea')].filter((c) => c.labels.length === 0).map((c) => c.id),
        };
      });
      assert.deepEqual(duplicates, [], 'element ids are unique');
      assert.deepEqual(unlabelled, [], 'every control has a label');
      assert.deepEqual(problems, [], 'the console logged errors or made unexpected requests');
      assert.deepEqual(expected, [], 'every refusal the test provoked was seen');
    },
  };
}

/** A screenshot of the page at each width into test-artifacts/console/<name>-<width>.png; nothing wider than the screen. */
async function screenshots(page, name) {
  for (const width of WIDTHS) {
    await page.setViewportSize({ width, height: 900 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `${name} at ${width} px: the page is ${overflow} px wider than the screen`);
    await page.screenshot({ path: path.join(ARTIFACTS, `${name}-${width}.png`), fullPage: true });
  }
  await page.setViewportSize({ width: 1440, height: 900 });
}

/** With CONSOLE_README_SCREENSHOTS=1: the README's screenshot of a view, docs/console-<name>.png (1280 × 860). */
async function readmeScreenshot(page, name, scrollTo) {
  if (process.env.CONSOLE_README_SCREENSHOTS !== '1') return;
  await page.setViewportSize({ width: 1280, height: 860 });
  if (scrollTo) await page.locator(scrollTo).evaluate((e) => e.scrollIntoView({ block: 'start' }));
  await page.screenshot({ path: path.join(REPO_ROOT, 'docs', `console-${name}.png`) });
  await page.setViewportSize({ width: 1440, height: 900 });
}

const text = (page, sel) => page.locator(sel).innerText();

// ---------------------------------------------------------------- the routing

test('the Worker serves the console at /ui/ from its assets, and answers every other path itself', async () => {
  const ui = await fetch(`${gw.url}/ui/`);
  assert.equal(ui.status, 200);
  assert.match(ui.headers.get('content-type'), /^text\/html/);
  assert.match(await ui.text(), /<title>tokengate console/);
  const wasm = await fetch(`${gw.url}/ui/pkg/core_bg.wasm`);
  assert.equal(wasm.status, 200);
  assert.equal(wasm.headers.get('content-type'), 'application/wasm');
  assert.equal(Buffer.from(await wasm.arrayBuffer()).subarray(0, 4).toString('latin1'), '\0asm');
  const bare = await fetch(`${gw.url}/ui`, { redirect: 'manual' });
  assert.ok([301, 302, 307, 308].includes(bare.status), `/ui answered ${bare.status}`);
  assert.equal(new URL(bare.headers.get('location'), gw.url).pathname, '/ui/');
  // The gateway's own routes and the proxy: the Worker's JSON, not an asset.
  const health = await fetch(`${gw.url}/healthz`);
  assert.deepEqual(await health.json(), { status: 'ok', providers: 3 });
  for (const [p, status, error] of [['/admin/providers', 401, 'invalid_token'], ['/optoro/rmas', 401, 'invalid_token'],
    ['/index.html', 401, 'invalid_token'], ['/pkg/core_bg.wasm', 401, 'invalid_token']]) {
    const r = await fetch(`${gw.url}${p}`);
    assert.equal(r.status, status, p);
    assert.equal((await r.json()).error, error, p);
  }
});

// ---------------------------------------------------------------- the playground

test('playground: seed 001 (Optoro) → lifetime 90000 s and the core\'s KV TTL; a malformed response shows the error', async (t) => {
  const { page, check } = await openConsole(t);
  assert.equal(await page.title(), 'tokengate console — playground, dashboard, try it');
  const before = Date.now();
  await page.getByRole('button', { name: 'Optoro', exact: true }).click();
  const after = Date.now();
  const body = JSON.parse(await page.locator('#resp-body').inputValue());
  assert.equal(body.expires_in, 90000);
  assert.match(await text(page, '#out-lifetime'), /^90000 s \(1 d 1 h\)/);
  const issued = Number(await page.locator('#out-issued time').getAttribute('data-epoch-ms'));
  const expires = Number(await page.locator('#out-expires time').getAttribute('data-epoch-ms'));
  assert.equal(issued, body.created_at * 1000);
  assert.equal(expires - issued, 90000 * 1000, 'created_at + 25 h');
  // The KV TTL is the core's policy (cachePolicy of the Node build) at the moment of the click.
  const policy = { maxLifetimeS: 90000 };
  const ttl = (now) => core.cachePolicy({ expiresAt: expires, issuedAt: issued }, now, policy).ttlSeconds;
  const shown = Number(/^(\d+) s /.exec(await text(page, '#out-ttl'))?.[1]);
  assert.ok(shown >= ttl(after) && shown <= ttl(before), `KV TTL ${shown} s, the core says ${ttl(after)}–${ttl(before)} s`);
  assert.equal(Number(await page.locator('#out-refresh time').getAttribute('data-epoch-ms')), expires - 60000);
  // The timeline: lifetime, memory until the refresh point, the KV entry, now.
  for (const part of ['lifetime', 'memory', 'kv', 'now', 'refresh']) {
    assert.equal(await page.locator(`#timeline [data-part="${part}"]`).count(), 1, part);
  }
  assert.match(await text(page, '#timeline-legend'), new RegExp(`KV entry\\s+from now for ${shown} s`));
  await screenshots(page, 'playground');
  await readmeScreenshot(page, 'playground', '#inspect-result');

  // A malformed response: the typed error the gateway would give.
  await page.locator('#resp-body').fill('{"access_token": "abc", "expires_in": ');
  await page.getByRole('button', { name: 'Inspect' }).click();
  await page.locator('#inspect-error').waitFor();
  assert.equal(await text(page, '#inspect-err-code'), 'invalid_response');
  assert.equal(await page.locator('#timeline').count(), 0);

  // A bare JWT is read as a token response; a token with under 60 s to its refresh point is memory only.
  const now = Math.floor(Date.now() / 1000);
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  await page.locator('#resp-body').fill(`${part({ alg: 'RS256' })}.${part({ exp: now + 100, iat: now })}.c2ln`);
  await page.getByRole('button', { name: 'Inspect' }).click();
  await page.locator('#out-token', { hasText: 'JWT' }).waitFor();
  assert.match(await text(page, '#out-ttl'), /^memory only/);
  assert.equal(await page.locator('#timeline [data-part="kv"]').count(), 0);
  assert.match(await text(page, '#timeline-legend'), /Memory only/);

  // A seed dialect, then any other key of the provider configuration: the exact request, secret masked.
  await page.getByRole('button', { name: 'RFC 6749 (client_secret_basic)' }).click();
  await page.locator('#cfg-extra').fill('{"audience": "https://api.example", "tokenHeaders": {"X-Request-Source": "console"}}');
  await page.locator('#req-body', { hasText: 'audience=' }).waitFor();
  assert.equal(await text(page, '#req-body'), 'grant_type=client_credentials&scope=api%3Aread&audience=https%3A%2F%2Fapi.example');
  assert.equal(await text(page, '#req-headers tr[data-header="x-request-source"] .header-value'), 'console');
  assert.equal(await text(page, '#req-headers tr[data-header="authorization"] .header-value'), 'Basic ••••••••');
  await page.locator('#cfg-extra').fill('{"audiance": "x"}');
  await page.locator('#req-err-code', { hasText: 'config' }).waitFor();
  assert.match(await text(page, '#req-err-message'), /audiance/);
  await page.locator('#cfg-extra').fill('[1]');
  await page.locator('#req-err-message', { hasText: 'not a JSON object' }).waitFor();
  await check();
});

// ---------------------------------------------------------------- the dashboard and Try it

test('dashboard: a wrong admin token is refused; a caller created, its token used in Try it, counted, charted, revoked', async (t) => {
  const { page, check, expectRefusal } = await openConsole(t, { hash: '#dashboard' });
  assert.equal(await page.locator('#login-form').isVisible(), true);

  // Keyboard: the views are links; Enter on one shows it.
  await page.locator('[data-view-link="try"]').focus();
  await page.keyboard.press('Enter');
  await page.locator('#view-try').waitFor();
  await page.locator('[data-view-link="dashboard"]').focus();
  await page.keyboard.press('Enter');
  await page.locator('#view-dashboard').waitFor();

  // A wrong admin token: refused, nothing kept.
  expectRefusal(401, '/admin/providers');
  await page.locator('#admin-token').fill(`${ADMIN}-wrong`);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#login-error').waitFor();
  assert.match(await text(page, '#login-error'), /Refused/);
  assert.equal(await page.locator('#dashboard').isVisible(), false);
  assert.equal(await page.evaluate(() => sessionStorage.length + localStorage.length), 0);

  // The right one: kept in sessionStorage only, never in the URL or localStorage.
  await page.locator('#admin-token').fill(ADMIN);
  await page.locator('#admin-token').press('Enter');
  await page.locator('#providers-table').waitFor();
  assert.deepEqual(await page.evaluate(() => [Object.keys(sessionStorage), localStorage.length]), [['tokengate.adminToken'], 0]);
  assert.ok(!page.url().includes(ADMIN));
  assert.deepEqual(await page.locator('#providers-table tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.provider)), ['optimum', 'optoro', 'partner']);
  assert.match(await text(page, '#providers-table tr[data-provider="optoro"]'), /not cached/);

  // Create a caller with a long name: its secret is shown once.
  const name = `billing-service-${'0123456789'.repeat(6)}`;
  await page.locator('#caller-name').fill(name);
  await page.locator('#caller-scopes').fill('optoro');
  await page.locator('#caller-rpm').fill('100');
  await page.getByRole('button', { name: 'Create', exact: true }).click();
  await page.locator('#new-client-secret').waitFor();
  const clientId = await text(page, '#new-client-id');
  const secret = await text(page, '#new-client-secret');
  assert.match(clientId, /^cl_[0-9A-Za-z]{22}$/);
  assert.match(secret, /^tgs_[0-9A-Za-z]{72}$/);
  await page.locator(`#callers-table tr[data-client="${clientId}"] td[data-label="Limits"]`, { hasText: '100/min' }).waitFor();
  const rowOf = (id) => page.locator(`#chart-clients dd[data-row$="(${id})"]`);
  assert.equal(await rowOf(clientId).getAttribute('data-total'), '0', 'nothing counted yet');
  await screenshots(page, 'dashboard');

  // Try it: the caller's token, a request through Optoro.
  await page.getByRole('button', { name: 'Use in Try it' }).click();
  await page.locator('#view-try').waitFor();
  assert.equal(await page.locator('#try-client-id').inputValue(), clientId);
  await page.getByRole('button', { name: 'Get token' }).click();
  await page.locator('#try-token').waitFor();
  assert.equal(await text(page, '#try-token-scope'), 'optoro');
  await page.locator('#try-path').fill('/optoro/rmas?status=open');
  await page.getByRole('button', { name: 'Send' }).click();
  await page.locator('#try-status[data-status="200"]').waitFor();
  assert.match(await text(page, '#try-timing'), /token\s+exchange/);
  const echoed = JSON.parse(await text(page, '#try-response-body'));
  assert.equal(echoed.method, 'GET');
  assert.match(await text(page, '#try-headers-table'), /server-timing/);
  await screenshots(page, 'try');

  // The dashboard: the caller's counter and its bar moved; the provider's token is cached.
  await page.locator('[data-view-link="dashboard"]').click();
  await rowOf(clientId).and(page.locator('[data-total="1"]')).waitFor({ timeout: 15000 });
  assert.equal(await rowOf(clientId).locator('rect[data-name="admitted"]').getAttribute('data-value'), '1');
  assert.ok(Number(await rowOf(clientId).locator('rect[data-name="admitted"]').getAttribute('width')) > 0, 'the bar grew');
  await page.locator('#chart-providers dd[data-row="optoro"]:not([data-total="0"])').waitFor({ timeout: 15000 });
  assert.match(await text(page, '#providers-table tr[data-provider="optoro"]'), /cached \(minter\)/);
  const token = page.locator(`#tokens-table tr[data-client="${clientId}"]`);
  await token.locator('[data-requests="1"]').waitFor();
  await readmeScreenshot(page, 'dashboard', '#view-dashboard');

  // Revoke its token: the next call is refused.
  await token.getByRole('button', { name: /^Revoke token/ }).click();
  await token.waitFor({ state: 'detached' });
  await page.locator('[data-view-link="try"]').click();
  expectRefusal(401, '/optoro/rmas');
  await page.getByRole('button', { name: 'Send' }).click();
  await page.locator('#try-status[data-status="401"]').waitFor();
  assert.equal(JSON.parse(await text(page, '#try-response-body')).error, 'invalid_token');

  // Drop the provider's token from the dashboard: not cached any more.
  await page.locator('[data-view-link="dashboard"]').click();
  await page.getByRole('button', { name: "Drop optoro's token" }).click();
  await page.locator('#providers-table tr[data-provider="optoro"]', { hasText: 'not cached' }).waitFor();

  // Edit the caller's scopes and limit, rotate its secret (shown once more), delete it.
  const callerRow = page.locator(`#callers-table tr[data-client="${clientId}"]`);
  await callerRow.getByRole('button', { name: `Edit ${name}` }).click();
  assert.equal(await page.locator('#caller-scopes').inputValue(), 'optoro');
  await page.locator('#caller-scopes').fill('optoro:read optimum');
  await page.locator('#caller-rpm').fill('');
  await page.getByRole('button', { name: 'Save' }).click();
  await callerRow.locator('td', { hasText: 'optoro:read optimum' }).waitFor();
  assert.match(await callerRow.locator('td[data-label="Limits"]').innerText(), /^none\b/, 'the limit was removed');
  await callerRow.getByRole('button', { name: `Rotate ${name}'s secret` }).click();
  // The box still shows the secret from the creation until the rotation answers.
  await page.locator('#new-secret h4', { hasText: 'rotated' }).waitFor();
  const rotated = await text(page, '#new-client-secret');
  assert.match(rotated, /^tgs_[0-9A-Za-z]{72}$/);
  assert.notEqual(rotated, secret);
  await page.getByRole('button', { name: 'Done' }).click();
  assert.equal(await page.locator('#new-client-secret').count(), 0, 'the secret is gone from the page');
  await callerRow.getByRole('button', { name: `Delete ${name}` }).click();
  await callerRow.waitFor({ state: 'detached' });

  // Nothing secret left where it must not be.
  const kept = await page.evaluate(() => ({ local: localStorage.length, session: Object.values(sessionStorage), url: location.href }));
  assert.equal(kept.local, 0);
  assert.deepEqual(kept.session, [ADMIN]);
  for (const s of [ADMIN, secret, rotated]) assert.ok(!kept.url.includes(s));
  await check();
});
