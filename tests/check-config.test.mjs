// The configuration check (`make check-config`, tools/check-config) and what `wrangler deploy`
// does with it: the demo configuration passes, the production template fails until its
// placeholders are filled, a configuration mistake is reported with the very text the built
// Worker answers `/healthz` with, and `wrangler deploy --dry-run` (whose [build] step runs the
// check) succeeds or stops with the check's message. Needs `make worker check-config-bin`.
// Run: node --test --test-concurrency=1 tests/check-config.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { stripVTControlCharacters } from 'node:util';
import { REPO_ROOT, DEPLOYED_BUILD_DIR, startGateway, makeTempDir, removeDir } from './support/gateway.mjs';

const CHECK = path.join(process.env.CARGO_TARGET_DIR ?? path.join(REPO_ROOT, 'target'), 'debug', 'tokengate-check-config');
const WRANGLER = path.join(REPO_ROOT, 'node_modules/.bin/wrangler');
const TEMPLATE = path.join(REPO_ROOT, 'wrangler.toml');
const ENV = { ...process.env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', FORCE_COLOR: '0', NO_COLOR: '1' };
const PLACEHOLDER = 'still holds a placeholder (`<…>`); fill it in';

/** Runs a program in the repository root; resolves { code, stdout, stderr } whatever its exit status. */
function run(file, args, timeout = 60_000) {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: REPO_ROOT, env: ENV, timeout, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      resolve({
        code: err ? (typeof err.code === 'number' ? err.code : -1) : 0,
        stdout: stripVTControlCharacters(stdout),
        stderr: stripVTControlCharacters(stderr),
      });
    });
  });
}
const check = (file) => run(CHECK, [file]);

/**
 * A wrangler file in the repository root (git-ignored `tmp-*`, removed when the test ends), so
 * `main` and the [build] command resolve as for the real files; its [build] command checks it.
 */
function tempConfig(t, text) {
  const name = `tmp-check-config-${crypto.randomBytes(4).toString('hex')}.toml`;
  fs.writeFileSync(path.join(REPO_ROOT, name), text.replace(/WRANGLER_CONFIG=[^"\s]+/, `WRANGLER_CONFIG=${name}`));
  t.after(() => fs.rmSync(path.join(REPO_ROOT, name), { force: true }));
  return name;
}

/** The production template with every `<…>` filled in: hosts with a host, the rest with a hex id. */
const filledTemplate = () => fs.readFileSync(TEMPLATE, 'utf8')
  .replace(/https:\/\/<[^<>]+>/g, 'https://api.filled.example')
  .replace(/<[^<>]+>/g, '0123456789abcdef0123456789abcdef');

/** `wrangler deploy --dry-run` of a file, bundling into a temporary directory. */
async function dryRun(t, file) {
  const outdir = makeTempDir('tokengate-dry-run-');
  t.after(() => removeDir(outdir));
  const r = await run(WRANGLER, ['deploy', '--dry-run', '--outdir', outdir, '--config', file], 600_000);
  return { ...r, output: r.stdout + r.stderr, outdir };
}

/** A TOML value, written the way a user would (strings as JSON strings are valid TOML). */
function toml(v) {
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(toml).join(', ')}]`;
  return `{ ${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)} = ${toml(x)}`).join(', ')} }`;
}

// ---------------------------------------------------------------- the check alone

test('the demo configuration passes and prints the secret lines for its secrets', async () => {
  const r = await check('wrangler.demo.toml');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.match(r.stdout, /^wrangler\.demo\.toml: valid: 4 providers \(openapi, optimum, optoro, partner\)/);
  const puts = [...r.stdout.matchAll(/^ {2}npx wrangler secret put (\S+) --config wrangler\.demo\.toml +# \S/gm)].map((m) => m[1]);
  assert.deepEqual(puts, ['TOKENGATE_KEY', 'TOKENGATE_CLIENTS', 'OPENAPI_API_KEY', 'OPTIMUM_CLIENT_SECRET',
    'OPTORO_CLIENT_SECRET', 'PARTNER_CLIENT_SECRET', 'TOKENGATE_ADMIN_TOKEN']);
  assert.match(r.stdout, /secret put TOKENGATE_ADMIN_TOKEN --config wrangler\.demo\.toml +# optional: /);
  // The secrets `make dev` writes for the demo are exactly these.
  const devVars = [...fs.readFileSync(path.join(REPO_ROOT, '.ci/dev'), 'utf8').matchAll(/echo "([A-Z_]+)=/g)].map((m) => m[1]);
  assert.deepEqual([...devVars].sort(), [...puts].sort());
});

test('the shipped production template fails on a placeholder, naming provider and key, and lists every one left', async () => {
  const r = await check('wrangler.toml');
  assert.equal(r.code, 1, r.stdout);
  assert.equal(r.stdout, '');
  const first = r.stderr.split('\n')[0];
  assert.match(first, /^wrangler\.toml: provider `[a-z0-9-]+`: [a-z_.]+: /);
  assert.ok(first.endsWith(PLACEHOLDER), first);
  assert.ok(!first.includes('<your'), 'the placeholder text is not echoed');
  for (const where of ['kv_namespaces.id', 'vars.TOKENGATE_PROVIDERS.partner.token_url', 'vars.TOKENGATE_PROVIDERS.optimum.client_id']) {
    assert.match(r.stderr, new RegExp(`^ {2}${where.replaceAll('.', '\\.')}$`, 'm'), r.stderr);
  }
});

test('the template with every placeholder filled passes, secret lines without --config for wrangler.toml', async (t) => {
  const name = tempConfig(t, filledTemplate());
  const r = await check(name);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /valid: 4 providers \(company, optimum, optoro, partner\)/);
  for (const s of ['TOKENGATE_KEY', 'TOKENGATE_CLIENTS', 'OPTORO_CLIENT_SECRET', 'OPTIMUM_CLIENT_SECRET', 'PARTNER_CLIENT_SECRET', 'OPENAPI_API_KEY']) {
    assert.match(r.stdout, new RegExp(`npx wrangler secret put ${s} --config ${name} `));
  }
  // Filled in place, the file `wrangler deploy` reads by default needs no --config.
  const dir = makeTempDir('tokengate-check-');
  t.after(() => removeDir(dir));
  fs.writeFileSync(path.join(dir, 'wrangler.toml'), filledTemplate());
  const inPlace = await new Promise((resolve) => execFile(CHECK, [], { cwd: dir }, (err, stdout) => resolve({ err, stdout })));
  assert.equal(inPlace.err, null);
  assert.match(inPlace.stdout, /^ {2}npx wrangler secret put TOKENGATE_KEY +# /m);
  assert.doesNotMatch(inPlace.stdout, /--config/);
});

test("the README's production example is wrangler.toml's providers, line for line", () => {
  const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const block = readme.match(/as configured for production[^\n]*\n(?:[^\n]*\n)*?```toml\n([\s\S]*?)```/)?.[1];
  assert.ok(block, 'README has the production example');
  const template = fs.readFileSync(TEMPLATE, 'utf8');
  const providers = template.slice(template.indexOf('[vars.TOKENGATE_PROVIDERS.'));
  assert.equal(block, providers);
});

// ---------------------------------------------------------------- the check says what the Worker says

/** The demo's Optoro entry (wrangler.demo.toml), changed by `change`. */
function optoro(change) {
  const entry = {
    token_url: 'http://127.0.0.1:8788/optoro/oauth/token',
    api_base: 'http://127.0.0.1:8788/optoro/api/',
    client_id: 'demo-client',
    client_secret_name: 'OPTORO_CLIENT_SECRET',
    auth_style: 'json_body',
    max_lifetime_s: 90000,
    api_headers: { 'X-Optiturn-Api-Version': '1' },
  };
  change(entry);
  return entry;
}

const mistakes = [
  ['a misspelt key', (e) => { e.auth_stlye = e.auth_style; delete e.auth_style; }, 'provider `optoro`: auth_stlye: is not a known key'],
  ['a missing token_url', (e) => { delete e.token_url; }, 'provider `optoro`: token_url: is required'],
  ['an invalid URL', (e) => { e.api_base = 'https://api.optiturn.com:99999/'; }, /^provider `optoro`: api_base: ./],
  ['a placeholder', (e) => { e.client_id = '<your Optoro client id>'; }, `provider \`optoro\`: client_id: ${PLACEHOLDER}`],
];

for (const [what, change, expected] of mistakes) {
  test(`${what}: the check's error is the built Worker's /healthz error_description`, async (t) => {
    const entry = optoro(change);
    const head = fs.readFileSync(path.join(REPO_ROOT, 'wrangler.demo.toml'), 'utf8').split('\n[vars]')[0];
    const body = Object.entries(entry).map(([k, v]) => `${k} = ${toml(v)}`).join('\n');
    const name = tempConfig(t, `${head}\n[vars]\nmax_body_bytes = 10485760\n\n[vars.TOKENGATE_PROVIDERS.optoro]\n${body}\n`);
    const r = await check(name);
    assert.equal(r.code, 1, r.stdout);

    const gw = await startGateway({
      buildDir: DEPLOYED_BUILD_DIR,
      providers: { optoro: entry },
      secrets: { OPTORO_CLIENT_SECRET: 'demo-secret' },
      clients: { 'svc-a': { secret: 'caller-secret', scopes: ['optoro'] } },
    });
    t.after(() => gw.close());
    const res = await gw.fetch('/healthz');
    assert.equal(res.status, 500);
    const answer = await res.json();
    assert.equal(answer.error, 'config_error');
    if (expected instanceof RegExp) assert.match(answer.error_description, expected);
    else assert.equal(answer.error_description, expected);
    assert.equal(r.stderr.split('\n')[0], `${name}: ${answer.error_description}`);
  });
}

// ---------------------------------------------------------------- wrangler deploy --dry-run

test('wrangler deploy --dry-run: the demo configuration checks, builds and bundles', async (t) => {
  const r = await dryRun(t, 'wrangler.demo.toml');
  assert.equal(r.code, 0, r.output);
  assert.match(r.output, /Running: make check-config worker console WRANGLER_CONFIG=wrangler\.demo\.toml/);
  assert.match(r.output, /wrangler\.demo\.toml: valid: 4 providers/);
  // The console, built by the [build] step: the [assets] wrangler uploads with the Worker.
  assert.match(r.output, /Read \d+ files from the assets directory \S*build-console/);
  assert.match(r.output, /--dry-run: exiting now\./);
  assert.ok(fs.existsSync(path.join(r.outdir, 'index.js')), 'the bundle was written');
});

test('wrangler deploy --dry-run: the filled template checks, builds and bundles', async (t) => {
  const name = tempConfig(t, filledTemplate());
  const r = await dryRun(t, name);
  assert.equal(r.code, 0, r.output);
  assert.match(r.output, new RegExp(`${name}: valid: 4 providers`));
  assert.match(r.output, /env\.TOKENGATE_KV \(0123456789abcdef0123456789abcdef\)/);
  assert.match(r.output, /--dry-run: exiting now\./);
});

test('wrangler deploy --dry-run: the unfilled template stops at the check, with its message', async (t) => {
  const expected = (await check('wrangler.toml')).stderr.split('\n')[0];
  assert.ok(expected.endsWith(PLACEHOLDER), expected);
  const r = await dryRun(t, 'wrangler.toml');
  assert.notEqual(r.code, 0, r.output);
  assert.ok(r.output.includes(expected), r.output);
  assert.doesNotMatch(r.output, /--dry-run: exiting now\./);
  assert.ok(!fs.existsSync(path.join(r.outdir, 'index.js')), 'nothing was bundled');
});
