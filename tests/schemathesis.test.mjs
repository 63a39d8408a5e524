// Schemathesis against the gateway's own POST /oauth/token, with Optoro's published OpenAPI
// document as the schema (tests/fixtures/optoro-auth.openapi.json, docs/providers.md#optoro):
// the test build of the Worker (build-test/) in Miniflare on a real 127.0.0.1 socket, the
// provider emulators behind it, one registered caller, and schemathesis 4 with every check on,
// positive and negative data, a fixed seed and a bounded number of examples. Its configuration
// (tests/fixtures/schemathesis.toml) and extra check (tests/fixtures/schemathesis_hooks.py) say
// why each setting is there. The second test pins the endpoint's deliberate answers with direct
// requests, whatever schemathesis generates.
//
// schemathesis comes from `.ci/setup-tools schemathesis` (a venv, by default
// ~/.cache/tokengate-venv; TOKENGATE_VENV overrides it there and here). TOKENGATE_ST_SEED
// changes the seed for an exploratory run.
// Run: node --test --test-concurrency=1 tests/schemathesis.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { clock, rand, startEmulators } from './worker-lib.mjs';
import { ST_BIN, ST_VERSION, run, runArgs, tally, assertPinnedSchemathesis } from './support/schemathesis.mjs';
import { startGateway, makeTempDir, removeDir, REPO_ROOT } from './support/gateway.mjs';

const FIXTURES = path.join(REPO_ROOT, 'tests', 'fixtures');
const SCHEMA = path.join(FIXTURES, 'optoro-auth.openapi.json');
const CONFIG = path.join(FIXTURES, 'schemathesis.toml');
const HOOKS = path.join(FIXTURES, 'schemathesis_hooks.py');
const SEED = process.env.TOKENGATE_ST_SEED || '20260430';
const MAX_EXAMPLES = 800; // ~10 s of fuzzing here, on top of the coverage phase's ~35 cases
const KILL_AFTER_MS = 45_000;

/** Every check of schemathesis 4.32 (`--checks all`, max_response_time through its option) and ours. */
const CHECKS = [
  'not_a_server_error', 'status_code_conformance', 'content_type_conformance', 'response_headers_conformance',
  'response_schema_conformance', 'negative_data_rejection', 'positive_data_acceptance', 'missing_required_header',
  'unsupported_method', 'allow_header_conformance', 'use_after_free', 'ensure_resource_availability', 'ignored_auth',
  'object_level_authorization', 'max_response_time', 'tokengate_token_contract',
];

/**
 * The registered caller. Its id is one no generator produces (schemathesis's extra check fails
 * the run if it ever does): failed authentications for a registered id count towards a lockout.
 */
const CALLER = { id: `svc-schemathesis-${rand(16)}`, secret: `st-${rand(24)}`, scopes: ['optoro'] };

let emu;
let gw;
before(async () => {
  emu = await startEmulators();
  gw = await startGateway({
    clock, ...emu.gatewayConfig(), clients: { [CALLER.id]: { secret: CALLER.secret, scopes: CALLER.scopes } },
  });
});
after(async () => {
  await gw?.close();
  await emu?.close();
});

test('schemathesis: every check passes on POST /oauth/token against the Optoro schema', { timeout: 60_000 }, async (t) => {
  await assertPinnedSchemathesis();

  // schemathesis and Hypothesis write state (.hypothesis/, reports) into their working directory.
  const work = makeTempDir('tokengate-schemathesis-');
  t.after(() => removeDir(work));
  const { args, reportJson, reportNdjson } = runArgs({
    config: CONFIG, schema: SCHEMA, url: gw.url, seed: SEED, maxExamples: MAX_EXAMPLES, dir: work,
  });
  const started = Date.now();
  const res = await run(ST_BIN, args, {
    cwd: work,
    ms: KILL_AFTER_MS,
    env: {
      ...process.env,
      SCHEMATHESIS_HOOKS: HOOKS,
      TOKENGATE_ST_CLIENT_ID: CALLER.id,
      PYTHONDONTWRITEBYTECODE: '1',
      NO_COLOR: '1',
    },
  });
  const output = `schemathesis ${args.join(' ')}\n(exit ${res.code ?? res.signal} after ${Date.now() - started} ms)\n`
    + `${res.stdout}\n${res.stderr}`;
  const context = `\n---- schemathesis output ----\n${output}\n---- gateway log (last 40 lines) ----\n${gw.logs.slice(-40).join('\n')}`;

  assert.ok(fs.existsSync(reportJson), `no JSON report: schemathesis did not finish${context}`);
  const report = JSON.parse(fs.readFileSync(reportJson, 'utf8'));
  const { checks } = tally(reportNdjson);
  const failedChecks = Object.entries(checks).filter(([, c]) => c.failed > 0).map(([name]) => name);
  t.diagnostic(`schemathesis ${ST_VERSION}, seed ${SEED}: ${report.test_cases?.generated} test cases, `
    + `${Object.values(checks).reduce((n, c) => n + c.ran, 0)} check runs, `
    + `${report.test_cases?.with_failures} failing cases, ${report.failures?.length} failures, ${report.errors?.length} errors`);

  assert.deepEqual(
    { exit: res.code, complete: report.complete, with_failures: report.test_cases?.with_failures,
      errored: report.test_cases?.errored, failures: report.failures, errors: report.errors, failedChecks },
    { exit: 0, complete: true, with_failures: 0, errored: 0, failures: [], errors: [], failedChecks: [] },
    `schemathesis reported problems${context}`,
  );
  assert.equal(report.operations?.tested, 1, `POST /oauth/token was not tested${context}`);
  assert.ok(report.test_cases.generated >= MAX_EXAMPLES / 2, `only ${report.test_cases.generated} test cases${context}`);
  const notRun = CHECKS.filter((name) => !(checks[name]?.ran > 0));
  assert.deepEqual(notRun, [], `checks that never ran${context}`);
});

// ---------------------------------------------------------------- pinned semantics

/** POST /oauth/token over the socket schemathesis uses; returns { status, headers, json, text }. */
async function post(body, headers = { 'content-type': 'application/json', accept: 'application/json' }) {
  const res = await fetch(`${gw.url}/oauth/token`, { method: 'POST', headers, body });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, json, text };
}
const tokenBody = (o) => JSON.stringify({ grant_type: 'client_credentials', client_id: CALLER.id, client_secret: CALLER.secret, ...o });

test('token endpoint: the answers schemathesis relies on, asserted directly', async () => {
  // The registered caller gets a token shaped as the fixture's 200 response schema says.
  const fixture = JSON.parse(fs.readFileSync(SCHEMA, 'utf8'));
  const okSchema = fixture.paths['/oauth/token'].post.responses['200'].content['application/json'].schema;
  let r = await post(tokenBody());
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  for (const [name, prop] of Object.entries(okSchema.properties)) {
    assert.equal(typeof r.json[name], prop.type === 'integer' ? 'number' : prop.type, name);
    if (prop.type === 'integer') assert.ok(Number.isInteger(r.json[name]), name);
    if (prop.enum) assert.ok(prop.enum.includes(r.json[name]), name);
  }

  // Schema-valid (strings may be empty) but unknown credentials: 401 invalid_client. Two of these
  // are failed authentications of the registered id, well below its lockout (429 after 10 a minute).
  for (const o of [{ client_id: '' }, { client_secret: '' }, { client_id: '', client_secret: '' },
    { client_secret: `${CALLER.secret}x` }, { client_id: `nobody-${rand()}` }]) {
    r = await post(tokenBody(o));
    assert.equal(r.status, 401, `${JSON.stringify(Object.keys(o))}: ${r.text}`);
    assert.equal(r.json?.error, 'invalid_client');
    assert.equal(typeof r.json.error_description, 'string');
  }

  // Schema-valid but no grant type the gateway knows: 400 unsupported_grant_type (RFC 6749 §5.2).
  for (const grant_type of ['', 'password', 'authorization_code', 'Client_Credentials', 'client_credentials ']) {
    r = await post(tokenBody({ grant_type }));
    assert.equal(r.status, 400, `${JSON.stringify(grant_type)}: ${r.text}`);
    assert.equal(r.json?.error, 'unsupported_grant_type', r.text);
  }

  // A JSON object the schema rejects: 422 in Optoro's validation shape, naming the field.
  const validation = (body, field, code) => {
    assert.equal(body.message, 'Validation Failed');
    assert.ok(Array.isArray(body.errors));
    assert.ok(body.errors.some((e) => e.field === field && e.code === code), JSON.stringify(body));
    for (const e of body.errors) assert.ok(typeof e.field === 'string' && typeof e.code === 'string');
  };
  for (const field of ['grant_type', 'client_id', 'client_secret']) {
    const obj = JSON.parse(tokenBody());
    delete obj[field];
    r = await post(JSON.stringify(obj));
    assert.equal(r.status, 422, `missing ${field}: ${r.text}`);
    validation(r.json, field, 'missing_field');
  }
  r = await post('{}');
  assert.equal(r.status, 422, r.text);
  assert.equal(r.json.errors.length, 3, r.text);
  r = await post(tokenBody({ client_id: 42 }));
  assert.equal(r.status, 422, r.text);
  validation(r.json, 'client_id', 'invalid_type');
  r = await post(tokenBody({ scope: 'optoro' }));
  assert.equal(r.status, 422, r.text);
  validation(r.json, 'scope', 'unexpected_field');

  // Not a JSON object at all: 400.
  for (const body of ['{"grant_type": "client_credentials",', '', 'null', '[]', '"client_credentials"', '\u0000']) {
    r = await post(body);
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.json?.error, 'invalid_request', r.text);
  }

  // Any other method: 405 with Allow: POST.
  for (const method of ['GET', 'PUT', 'DELETE']) {
    const res = await fetch(`${gw.url}/oauth/token`, { method });
    assert.equal(res.status, 405, method);
    assert.equal(res.headers.get('allow'), 'POST', method);
    await res.arrayBuffer();
  }
});
