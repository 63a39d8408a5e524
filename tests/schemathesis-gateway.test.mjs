// Schemathesis against every route of the gateway but the proxy, with the gateway's own OpenAPI
// document (docs/openapi.json, served at GET /openapi.json) as the schema: the test build of the
// Worker (build-test/) in Miniflare on a real 127.0.0.1 socket, with the admin API
// (TOKENGATE_ADMIN_TOKEN), the caller authority (the TOKENGATE_LIMITER Durable Object), the
// provider emulators behind it, a static caller and a managed caller, and schemathesis 4 with
// every check on, the two of tests/fixtures/schemathesis_gateway_hooks.py besides, positive and
// negative data, stateful links, a fixed seed and a bounded number of examples. Its configuration
// (tests/fixtures/schemathesis-gateway.toml) says why each setting is there and why the proxy is
// left out (tests/worker-openapi-doc.test.mjs probes it against the document instead).
//
// schemathesis comes from `.ci/setup-tools schemathesis` (a venv, by default
// ~/.cache/tokengate-venv; TOKENGATE_VENV overrides it there and here). TOKENGATE_ST_SEED
// changes the seed and TOKENGATE_ST_EXAMPLES the examples per operation, for an exploratory run.
// Run: node --test --test-concurrency=1 tests/schemathesis-gateway.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { clock, rand, startEmulators, JSON_HEADERS } from './worker-lib.mjs';
import { ST_BIN, ST_VERSION, run, runArgs, tally, assertPinnedSchemathesis } from './support/schemathesis.mjs';
import { startGateway, issueCallerToken, makeTempDir, removeDir, REPO_ROOT } from './support/gateway.mjs';

const FIXTURES = path.join(REPO_ROOT, 'tests', 'fixtures');
const SCHEMA = path.join(REPO_ROOT, 'docs', 'openapi.json');
const CONFIG = path.join(FIXTURES, 'schemathesis-gateway.toml');
const HOOKS = path.join(FIXTURES, 'schemathesis_gateway_hooks.py');
const SEED = process.env.TOKENGATE_ST_SEED || '20260430';
/** Per operation and phase: with the coverage and stateful phases, about 50 s on 2 cores. */
const MAX_EXAMPLES = Number(process.env.TOKENGATE_ST_EXAMPLES || 60);
const KILL_AFTER_MS = 150_000;

/** Every check of schemathesis 4.32 (`--checks all`, max_response_time through its option) and ours. */
const CHECKS = [
  'not_a_server_error', 'status_code_conformance', 'content_type_conformance', 'response_headers_conformance',
  'response_schema_conformance', 'negative_data_rejection', 'positive_data_acceptance', 'missing_required_header',
  'unsupported_method', 'allow_header_conformance', 'use_after_free', 'ensure_resource_availability', 'ignored_auth',
  'object_level_authorization', 'max_response_time', 'tokengate_oauth_contract', 'tokengate_admin_contract',
];

const ADMIN = `admin-${crypto.randomBytes(24).toString('base64url')}`;
/**
 * The static caller (TOKENGATE_CLIENTS). Its id is one no generator produces: failed
 * authentications for a registered id count towards its address's lockout.
 */
const STATIC = { id: `svc-schemathesis-${rand(16)}`, secret: `st-${rand(24)}`, scopes: ['optoro', 'introspect'] };
/** The managed caller's scopes (the hooks expect these). */
const MANAGED_SCOPES = ['optoro', 'partner:read'];
/** Tokens of the managed caller handed to the run (revocations use them up). */
const MANAGED_TOKENS = 4;

let emu;
let gw;
/** What the hooks are told: the callers, their tokens, the configured scopes. */
let callers;
before(async () => {
  emu = await startEmulators();
  const cfg = emu.gatewayConfig();
  gw = await startGateway({
    clock, ...cfg,
    secrets: { ...cfg.secrets, TOKENGATE_ADMIN_TOKEN: ADMIN },
    clients: { [STATIC.id]: { secret: STATIC.secret, scopes: STATIC.scopes } },
    // The static assets (the ASSETS binding) hold the document GET /openapi.json answers with.
    assets: 'wrangler.demo.toml',
  });
  const admin = { authorization: `Bearer ${ADMIN}` };
  const created = await gw.fetch('/admin/clients', {
    method: 'POST', headers: { ...admin, ...JSON_HEADERS },
    body: JSON.stringify({ name: 'schemathesis', scopes: MANAGED_SCOPES }),
  });
  const managed = await created.json();
  assert.equal(created.status, 201, JSON.stringify(managed));
  const scopes = await (await gw.fetch('/admin/scopes', { headers: admin })).json();
  // Each token with the id GET /admin/tokens lists it by (the one that is new after it is issued).
  const tokens = [];
  const ids = [];
  for (let i = 0; i < MANAGED_TOKENS; i++) {
    tokens.push(await issueCallerToken(gw, managed.client_id, managed.client_secret));
    const listed = await (await gw.fetch(`/admin/tokens?client_id=${managed.client_id}`, { headers: admin })).json();
    const fresh = listed.items.map((item) => item.id).filter((id) => !ids.includes(id));
    assert.equal(fresh.length, 1, JSON.stringify(listed));
    ids.push(fresh[0]);
  }
  callers = {
    TOKENGATE_ST_ADMIN_TOKEN: ADMIN,
    TOKENGATE_ST_STATIC_ID: STATIC.id,
    TOKENGATE_ST_STATIC_SECRET: STATIC.secret,
    TOKENGATE_ST_STATIC_TOKEN: await issueCallerToken(gw, STATIC.id, STATIC.secret),
    TOKENGATE_ST_MANAGED_ID: managed.client_id,
    TOKENGATE_ST_MANAGED_SECRET: managed.client_secret,
    TOKENGATE_ST_MANAGED_TOKENS: tokens.join(','),
    TOKENGATE_ST_MANAGED_TOKEN_IDS: ids.join(','),
    TOKENGATE_ST_SCOPES: scopes.items.map((s) => s.scope).join(' '),
  };
});
after(async () => {
  await gw?.close();
  await emu?.close();
});

/** The operations of the document schemathesis is to test: every one but the proxy's. */
function documentedOperations() {
  const doc = JSON.parse(fs.readFileSync(SCHEMA, 'utf8'));
  const methods = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
  return Object.entries(doc.paths)
    .filter(([p]) => p !== '/{provider}/{path}')
    .flatMap(([p, item]) => methods.filter((m) => item[m]).map((m) => `${m.toUpperCase()} ${p}`))
    .sort();
}

test('schemathesis: every check passes on every gateway route of docs/openapi.json but the proxy', { timeout: KILL_AFTER_MS + 30_000 }, async (t) => {
  await assertPinnedSchemathesis();

  // schemathesis and Hypothesis write state (.hypothesis/, reports) into their working directory.
  const work = makeTempDir('tokengate-schemathesis-gateway-');
  t.after(() => removeDir(work));
  const { args, reportJson, reportNdjson, reportJunit } = runArgs({
    config: CONFIG, schema: SCHEMA, url: gw.url, seed: SEED, maxExamples: MAX_EXAMPLES, dir: work, junit: true,
  });
  const started = Date.now();
  const res = await run(ST_BIN, args, {
    cwd: work,
    ms: KILL_AFTER_MS,
    env: { ...process.env, ...callers, SCHEMATHESIS_HOOKS: HOOKS, PYTHONDONTWRITEBYTECODE: '1', NO_COLOR: '1' },
  });
  const output = `schemathesis ${args.join(' ')}\n(exit ${res.code ?? res.signal} after ${Date.now() - started} ms)\n`
    + `${res.stdout}\n${res.stderr}`;
  const context = `\n---- schemathesis output ----\n${output}\n---- gateway log (last 40 lines) ----\n${gw.logs.slice(-40).join('\n')}`;

  assert.ok(fs.existsSync(reportJson) && fs.existsSync(reportNdjson), `no report: schemathesis did not finish${context}`);
  const report = JSON.parse(fs.readFileSync(reportJson, 'utf8'));
  const { checks, operations } = tally(reportNdjson);
  const failedChecks = Object.entries(checks).filter(([, c]) => c.failed > 0).map(([name]) => name);
  const junit = fs.existsSync(reportJunit) ? fs.readFileSync(reportJunit, 'utf8') : '';
  // The JUnit report's count, read separately: failures and errors of every <testsuite>.
  const junitFailures = [...junit.matchAll(/<testsuite\s[^>]*>/g)]
    .flatMap(([tag]) => [...tag.matchAll(/\b(?:failures|errors)="(\d+)"/g)])
    .reduce((n, m) => n + Number(m[1]), 0);
  assert.ok(/<testsuite\s[^>]*\btests="[1-9]/.test(junit), `no JUnit report of a run with tests${context}`);
  t.diagnostic(`schemathesis ${ST_VERSION}, seed ${SEED}, ${MAX_EXAMPLES} examples: ${report.test_cases?.generated} test cases `
    + `on ${report.operations?.tested}/${report.operations?.total} operations (${report.operations?.skipped} skipped), `
    + `${Object.values(checks).reduce((n, c) => n + c.ran, 0)} check runs, ${report.test_cases?.with_failures} failing cases, `
    + `${report.failures?.length} failures, ${report.errors?.length} errors, ${Date.now() - started} ms`);

  assert.deepEqual(
    { exit: res.code, complete: report.complete, with_failures: report.test_cases?.with_failures,
      errored: report.test_cases?.errored, failures: report.failures, errors: report.errors, failedChecks, junitFailures },
    { exit: 0, complete: true, with_failures: 0, errored: 0, failures: [], errors: [], failedChecks: [], junitFailures: 0 },
    `schemathesis reported problems${context}`,
  );
  // Every documented operation but the proxy's ran cases; a run that executed nothing fails here.
  const expected = documentedOperations();
  assert.ok(expected.length >= 18, `only ${expected.length} operations in docs/openapi.json`);
  const untested = expected.filter((op) => !(operations[op] > 0));
  assert.deepEqual(untested, [], `operations without a test case${context}`);
  assert.equal(report.operations?.tested, expected.length, `operations tested${context}`);
  assert.ok(report.test_cases.generated >= expected.length * MAX_EXAMPLES / 2,
    `only ${report.test_cases.generated} test cases${context}`);
  const notRun = CHECKS.filter((name) => !(checks[name]?.ran > 0));
  assert.deepEqual(notRun, [], `checks that never ran${context}`);
});
