// The npm package's façade (npm/js/client.js) in Node: the built package pkg/node/index.cjs
// (CommonJS, as `require('tokengate')` loads it) runs every case of tests/npm_cases/ — the same
// bodies tests/npm-browser.test.mjs runs in Chromium. The provider is an in-process mock given
// to each client as `options.fetch`.
//
//   node --test tests/npm-fetch.test.mjs        (needs pkg/ from .ci/build-npm; builds nothing)

import { test } from 'node:test';
import fs from 'node:fs';
import path from 'node:path';
import util from 'node:util';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { cases, contextFor, runCase } from './npm_cases/index.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ENTRY = path.join(ROOT, 'pkg/node/index.cjs');

if (!fs.existsSync(ENTRY)) {
  test('the façade cases (Node)', () => {
    throw new Error(`${ENTRY} is missing: build the package with .ci/build-npm`);
  });
} else {
  const pkg = createRequire(import.meta.url)(ENTRY);
  for (const c of cases) {
    test(c.name, async () => {
      // Bounded (10 s): a case that hangs fails instead of stalling the run.
      await runCase(c, contextFor(pkg, { inspect: util.inspect, host: 'node' }));
    });
  }
}
