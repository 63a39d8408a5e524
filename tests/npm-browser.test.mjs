// The npm package's façade (npm/js/client.js) in headless Chromium: the web build pkg/web/
// (`await init()` first) runs every case of tests/npm_cases/ — the same bodies
// tests/npm-fetch.test.mjs runs in Node — inside one page, driven by playwright-core. A tiny
// static server on 127.0.0.1 serves only pkg/web/ and tests/npm_cases/.
//
//   node --test tests/npm-browser.test.mjs      (needs pkg/ from .ci/build-npm; builds nothing)
//
// One subtest per case.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cases } from './npm_cases/index.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CHROMIUM = '/usr/bin/chromium';
/** URL prefix → directory; nothing else is served. */
const SERVED = { '/pkg/web/': path.join(ROOT, 'pkg/web'), '/tests/npm_cases/': path.join(ROOT, 'tests/npm_cases') };
const TYPES = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm' };

/** The file under SERVED that `url` names, or null (no traversal, no dot files, files only). */
function resolve(url) {
  let rel;
  try {
    rel = decodeURIComponent(new URL(url, 'http://x').pathname);
  } catch {
    return null;
  }
  for (const [prefix, dir] of Object.entries(SERVED)) {
    if (!rel.startsWith(prefix)) continue;
    const name = rel.slice(prefix.length);
    if (!/^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/.test(name)) return null;
    const file = path.join(dir, name);
    return fs.existsSync(file) && fs.statSync(file).isFile() ? file : null;
  }
  return null;
}

function startServer() {
  const server = http.createServer((req, res) => {
    if (req.url === '/favicon.ico') {
      res.writeHead(204);
      return res.end();
    }
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html' });
      return res.end('<!doctype html><title>tokengate façade cases</title>');
    }
    const file = req.method === 'GET' ? resolve(req.url) : null;
    if (!file) {
      res.writeHead(404);
      return res.end();
    }
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r(server)));
}

const missing = !fs.existsSync(CHROMIUM) ? `no ${CHROMIUM}`
  : !fs.existsSync(path.join(ROOT, 'pkg/web/index.js')) ? 'pkg/web/ is missing: build the package with .ci/build-npm'
    : false;

// `make test` installs Chromium (.ci/setup-tools chromium) and builds pkg/ first: a missing one
// is a failure, never a skip.
test('the façade cases in Chromium (web build)', { timeout: 120_000 }, async (t) => {
  if (missing) throw new Error(missing);
  const { chromium } = await import('playwright-core');
  const server = await startServer();
  t.after(() => new Promise((r) => { server.close(r); server.closeAllConnections(); }));
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  t.after(() => browser.close());
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.url()}`);
  });
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  const results = await page.evaluate(async () => {
    const m = await import('/pkg/web/index.js');
    await m.default(); // fetches core_bg.wasm next to the module
    const { runAll } = await import('/tests/npm_cases/index.mjs');
    return runAll(m, { host: 'chromium' });
  });
  assert.deepEqual(problems, [], 'the page loaded everything it asked for');
  assert.deepEqual(results.map((r) => r.name), cases.map((c) => c.name), 'every case ran, in order');
  for (const r of results) {
    await t.test(r.name, () => {
      if (!r.ok) assert.fail(`${r.error} (after ${r.ms} ms)`);
    });
  }
});
