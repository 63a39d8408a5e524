// The console in www/ as www/serve.mjs serves it — its playground (token-response inspector +
// token-request preview) on the package's web build — driven in Debian's Chromium through
// playwright-core. (The whole console, as the Worker serves it: tests/worker-console.test.mjs.)
//
//   node --test tests/www.test.mjs        (needs pkg/ from .ci/build-npm; builds nothing itself)
//
// Every test starts its own server (port 0) and browser and closes both before it ends.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const serveScript = path.join(repo, 'www/serve.mjs');
const CHROMIUM = '/usr/bin/chromium';
const MASK = '••••••••';

// The sample credentials of Optoro's API guide (docs/providers.md#optoro-token-request).
const OPTORO = {
  tokenUrl: 'https://auth.sandbox.optiturn.com/oauth/token',
  clientId: 'f2449833d49b9646a701d2423bef8ec9a49',
  clientSecret: '1d98065fc19939c10d26909f9aa58d2b5ef',
  authStyle: 'json_body',
};

let startServer;
let chromium;

before(async () => {
  for (const f of ['pkg/web/index.js', 'pkg/web/core_bg.wasm', 'pkg/node/index.cjs']) {
    assert.ok(
      fs.existsSync(path.join(repo, f)),
      `${f} is missing: this test builds nothing; build the package first with .ci/build-npm (or make npm-pkg)`,
    );
  }
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's chromium (make setup-browser)`);
  ({ startServer } = await import(serveScript));
  ({ chromium } = await import('playwright-core'));
});

/** GET/other request with a raw, unnormalised path. */
function rawRequest(origin, rawPath, method = 'GET') {
  const { hostname, port } = new URL(origin);
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname, port, path: rawPath, method }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Starts the server and Chromium, opens the page, waits for the package to initialise, runs
 * `fn(page, ctx)`, asserts no console errors / page errors / off-origin requests, and closes
 * the browser and the server whatever happens.
 */
async function withPage(fn) {
  const srv = await startServer({ port: 0 });
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
    const page = await browser.newPage({ viewport: { width: 1360, height: 1000 } });
    const problems = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console.error: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.protocol !== 'data:' && u.origin !== srv.origin) problems.push(`off-origin request: ${r.url()}`);
    });
    page.on('response', (r) => {
      if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.url()}`);
    });
    await page.goto(srv.url);
    await page.locator('#status[data-state="ready"]').waitFor({ timeout: 15000 });
    await fn(page, srv);
    const duplicateIds = await page.evaluate(() => {
      const ids = [...document.querySelectorAll('[id]')].map((e) => e.id);
      return ids.filter((id, i) => ids.indexOf(id) !== i);
    });
    assert.deepEqual(duplicateIds, [], 'element ids are unique');
    assert.deepEqual(problems, [], 'the page logged errors or made unexpected requests');
  } finally {
    await browser?.close();
    await srv.close();
  }
}

const text = (page, sel) => page.locator(sel).innerText();

test('serve.mjs: MIME types, and nothing outside www/ and pkg/web/', async () => {
  const srv = await startServer({ port: 0 });
  try {
    const expect = {
      '/www/': 'text/html; charset=utf-8',
      '/www/index.html': 'text/html; charset=utf-8',
      '/www/app.js': 'text/javascript; charset=utf-8',
      '/www/style.css': 'text/css; charset=utf-8',
      '/pkg/web/index.js': 'text/javascript; charset=utf-8',
      '/pkg/web/core_bg.wasm': 'application/wasm',
      '/www/pkg/index.js': 'text/javascript; charset=utf-8',
      '/www/pkg/core_bg.wasm': 'application/wasm',
    };
    for (const [p, type] of Object.entries(expect)) {
      const r = await rawRequest(srv.origin, p);
      assert.equal(r.status, 200, p);
      assert.equal(r.headers['content-type'], type, p);
      assert.equal(r.headers['x-content-type-options'], 'nosniff', p);
    }
    const wasm = await rawRequest(srv.origin, '/pkg/web/core_bg.wasm');
    assert.equal(wasm.body.slice(0, 4), '\0asm');
    assert.equal(Number(wasm.headers['content-length']), fs.statSync(path.join(repo, 'pkg/web/core_bg.wasm')).size);

    const root = await rawRequest(srv.origin, '/');
    assert.equal(root.status, 302);
    assert.equal(root.headers.location, '/www/');

    const refused = [
      '/www/../Cargo.toml', '/www/%2e%2e/Cargo.toml', '/www/%2E%2E/.dev.vars', '/pkg/web/../../.dev.vars',
      '/pkg/web/%2e%2e/node/index.cjs', '/pkg/node/index.cjs', '/pkg/package.json', '/src/lib.rs',
      '/.dev.vars', '/www/..%2f..%2f.dev.vars', '/www/%5c..%5cCargo.toml', '/www/.hidden', '/..',
      '/www/%00', '/www/%zz', '//etc/passwd', '/www//etc/passwd', '/tests/www.test.mjs',
    ];
    for (const p of refused) {
      const r = await rawRequest(srv.origin, p);
      assert.ok([400, 403, 404].includes(r.status), `${p} answered ${r.status}`);
      assert.ok(r.body.length < 32, `${p} answered a body: ${r.body.slice(0, 80)}`);
    }
    assert.equal((await rawRequest(srv.origin, '/www/index.html', 'POST')).status, 405);
    assert.equal((await rawRequest(srv.origin, '/www/index.html', 'HEAD')).status, 200);
  } finally {
    await srv.close();
  }
});

test('serve.mjs as a command: --port 0 prints the page URL and serves it on 127.0.0.1', async () => {
  const child = spawn(process.execPath, [serveScript, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const url = await new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`no URL printed; got ${JSON.stringify(out)}`)), 10000);
      child.stdout.on('data', (d) => {
        out += d;
        const m = /http:\/\/127\.0\.0\.1:\d+\/www\//.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[0]);
        }
      });
      child.once('exit', (code) => reject(new Error(`serve.mjs exited ${code}: ${out}`)));
    });
    const u = new URL(url);
    const r = await rawRequest(u.origin, u.pathname);
    assert.equal(r.status, 200);
    assert.match(r.body, /<h1>tokengate/);
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
});

test('the page loads the package with no console errors (screenshot: /tmp/www.png)', async () => {
  await withPage(async (page) => {
    assert.equal(await page.title(), 'tokengate console — playground, dashboard, try it');
    // Both tools render on load: Optoro's example response and the Optoro preset.
    await page.locator('#out-expires time').waitFor();
    await page.locator('#req-body').waitFor();
    const headings = await page.locator('h1, h2').allInnerTexts();
    assert.ok(headings.some((h) => h.startsWith('tokengate')));
    assert.ok(headings.includes('Inspect a token response'));
    assert.ok(headings.includes('Preview the token request'));
    // Every form control has a label.
    const unlabelled = await page.evaluate(() =>
      [...document.querySelectorAll('input, select, textarea')]
        .filter((c) => c.labels.length === 0)
        .map((c) => c.id),
    );
    assert.deepEqual(unlabelled, []);
    await page.screenshot({ path: '/tmp/www.png', fullPage: true });
  });
});

test('Optoro: expiry is created_at + 90000 s, with a KV TTL', async () => {
  await withPage(async (page) => {
    await page.getByRole('button', { name: 'Optoro', exact: true }).click();
    const body = JSON.parse(await page.locator('#resp-body').inputValue());
    const nowS = Date.now() / 1000;
    assert.equal(body.expires_in, 90000);
    assert.ok(Math.abs(body.created_at - nowS) < 30, 'created_at is adjusted to now');
    assert.equal(await page.locator('#policy-max').inputValue(), '90000');

    const expected = (body.created_at + 90000) * 1000;
    const expires = page.locator('#out-expires time');
    assert.equal(Number(await expires.getAttribute('data-epoch-ms')), expected);
    assert.equal(await expires.innerText(), new Date(expected).toISOString());
    assert.equal(Number(await page.locator('#out-issued time').getAttribute('data-epoch-ms')), body.created_at * 1000);
    assert.match(await text(page, '#out-lifetime'), /^90000 s \(1 d 1 h\)/);
    assert.equal(Number(await page.locator('#out-refresh time').getAttribute('data-epoch-ms')), expected - 60000);

    const ttl = await text(page, '#out-ttl');
    const m = /^(\d+) s /.exec(ttl);
    assert.ok(m, `KV TTL shows seconds: ${ttl}`);
    assert.ok(Number(m[1]) > 89800 && Number(m[1]) <= 89940, ttl);
    assert.equal(await text(page, '#out-scope'), 'read write');
    assert.match(await text(page, '#out-token'), /^opaque, 18 characters/);
    assert.equal(await page.locator('#out-claims').count(), 0);
  });
});

test('Optimum Automotive: a ~355-day lifetime is capped at 1 day (maxLifetimeS default)', async () => {
  await withPage(async (page) => {
    await page.getByRole('button', { name: 'Optimum Automotive', exact: true }).click();
    assert.equal(await page.locator('#policy-max').inputValue(), '', 'the default policy applies');
    const lifetime = await text(page, '#out-lifetime');
    assert.match(lifetime, /^86400 s \(1 d\)/);
    assert.match(lifetime, /capped at maxLifetimeS = 86400 s/);
    assert.match(lifetime, /expires_in 30734400 s/);
    const issued = Number(await page.locator('#out-issued time').getAttribute('data-epoch-ms'));
    const expires = Number(await page.locator('#out-expires time').getAttribute('data-epoch-ms'));
    assert.equal(expires - issued, 86400 * 1000);
    assert.ok(Math.abs(expires - (Date.now() + 86400 * 1000)) < 30000);
    assert.match(await text(page, '#out-ttl'), /^\d+ s /);
    assert.equal(await text(page, '#out-scope'), 'none stated');
  });
});

test('partner API: a JWT access token shows its decoded (unverified) claims', async () => {
  await withPage(async (page) => {
    await page.getByRole('button', { name: 'Partner JWT', exact: true }).click();
    const body = JSON.parse(await page.locator('#resp-body').inputValue());
    assert.equal(body.access_token.split('.').length, 3);
    const claims = JSON.parse(await text(page, '#out-claims'));
    assert.deepEqual(claims.scopes, ['bookings:create', 'bookings:delete']);
    assert.equal(claims.partner_id, 'f31120ee-b5cb-41c4-9529-288d02e91cd6');
    assert.ok(Math.abs(claims.exp - (Date.now() / 1000 + 3600)) < 30);
    assert.match(await text(page, '#claims-title'), /unverified/);
    assert.match(await text(page, '#claims-warning'), /without checking the signature/);
    const expires = Number(await page.locator('#out-expires time').getAttribute('data-epoch-ms'));
    assert.ok(expires <= claims.exp * 1000 && expires > Date.now() + 3500 * 1000);
    assert.match(await text(page, '#out-token'), /^JWT, \d+ characters/);
  });
});

test('a refused response shows the TokenError: code invalid_client, status, providerError', async () => {
  await withPage(async (page) => {
    await page.locator('#resp-status').selectOption('401');
    await page.locator('#resp-body').fill('{"error":"invalid_client"}');
    await page.getByRole('button', { name: 'Inspect' }).click();
    await page.locator('#inspect-error').waitFor();
    assert.equal(await text(page, '#inspect-err-code'), 'invalid_client');
    assert.equal(await text(page, '#inspect-err-status'), '401');
    assert.equal(await text(page, '#inspect-err-provider-error'), 'invalid_client');
    assert.equal(await text(page, '#inspect-err-retryable'), 'no');
    assert.equal(await page.locator('#out-expires').count(), 0);

    // A 200 that is not a token response is an invalid_response.
    await page.locator('#resp-status').selectOption('200');
    await page.locator('#resp-body').fill('{"token_type":"Bearer"}');
    await page.getByRole('button', { name: 'Inspect' }).click();
    await page.locator('#inspect-err-code', { hasText: 'invalid_response' }).waitFor();
    assert.equal(await text(page, '#inspect-err-provider-error'), 'null');

    // 429 with Retry-After: rate_limited, retryable, retryAfterMs from the header.
    await page.locator('#resp-status').selectOption('429');
    await page.locator('#resp-headers').fill('Retry-After: 7');
    await page.locator('#resp-body').fill('{}');
    await page.getByRole('button', { name: 'Inspect' }).click();
    await page.locator('#inspect-err-code', { hasText: 'rate_limited' }).waitFor();
    assert.equal(await text(page, '#inspect-err-retryable'), 'yes');
    assert.equal(await text(page, '#inspect-err-retry-after'), '7000 ms');
  });
});

test('request preview, Optoro json_body: the exact JSON body with the secret masked', async () => {
  const { buildTokenRequest } = createRequire(import.meta.url)(path.join(repo, 'pkg/node/index.cjs'));
  const real = buildTokenRequest(OPTORO);
  await withPage(async (page) => {
    await page.getByRole('button', { name: 'RFC 6749 (client_secret_basic)' }).click(); // something else first
    await page.getByRole('button', { name: 'Optoro (json_body)' }).click();
    assert.equal(await page.locator('#cfg-token-url').inputValue(), OPTORO.tokenUrl);
    assert.equal(await page.locator('#cfg-auth-style').inputValue(), 'json_body');
    const body = await text(page, '#req-body');
    assert.equal(body, real.body.replace(JSON.stringify(OPTORO.clientSecret), JSON.stringify(MASK)));
    assert.deepEqual(JSON.parse(body), {
      client_id: OPTORO.clientId, client_secret: MASK, grant_type: 'client_credentials',
    });
    assert.equal(await text(page, '#req-method'), 'POST');
    assert.equal(await text(page, '#req-url'), OPTORO.tokenUrl);
    assert.equal(await text(page, '#req-headers tr[data-header="content-type"] .header-value'), 'application/json');
    assert.equal(await text(page, '#req-headers tr[data-header="accept"] .header-value'), 'application/json');
    assert.equal(await page.locator('#req-headers tr[data-header="authorization"]').count(), 0);
    const raw = await page.locator('#req-raw').textContent();
    assert.ok(raw.startsWith(`POST ${OPTORO.tokenUrl}\n`), raw);
    assert.ok(raw.endsWith(`\n\n${body}`), raw);
    // The secret appears nowhere in the page's text.
    assert.ok(!(await page.locator('body').textContent()).includes(OPTORO.clientSecret));
  });
});

test('request preview, client_secret_basic: Authorization: Basic, masked', async () => {
  await withPage(async (page) => {
    await page.getByRole('button', { name: 'RFC 6749 (client_secret_basic)' }).click();
    await page.locator('#cfg-client-secret').fill('s3cr3t with spaces & symbols');
    const auth = await text(page, '#req-headers tr[data-header="authorization"] .header-value');
    assert.equal(auth, `Basic ${MASK}`);
    assert.match(await text(page, '#req-headers tr[data-header="authorization"] td'), new RegExp(`my-client:${MASK}`));
    assert.equal(await text(page, '#req-headers tr[data-header="content-type"] .header-value'), 'application/x-www-form-urlencoded');
    assert.equal(await text(page, '#req-body'), 'grant_type=client_credentials&scope=api%3Aread');
    const all = await page.locator('body').textContent();
    for (const leak of ['s3cr3t', 'bXktY2xpZW50', 'with+spaces']) assert.ok(!all.includes(leak), leak);

    // client_secret_post masks the form value in place.
    await page.locator('#cfg-auth-style').selectOption('client_secret_post');
    assert.equal(
      await text(page, '#req-body'),
      `grant_type=client_credentials&client_id=my-client&client_secret=${MASK}&scope=api%3Aread`,
    );
    assert.equal(await page.locator('#req-headers tr[data-header="authorization"]').count(), 0);

    // An invalid config is a TokenError with code config.
    await page.locator('#cfg-token-url').fill('http://idp.example/token');
    await page.locator('#req-err-code', { hasText: 'config' }).waitFor();
    assert.match(await text(page, '#req-err-message'), /tokenUrl/);
  });
});
