#!/usr/bin/env node
// Demo provider for `make dev`: the three OAuth provider emulators (Optoro, Optimum Automotive,
// the partner API; docs/providers.md) on a fixed port with fixed demo credentials (client id
// `demo-client`, secret `demo-secret` for every provider), and the openapi.com token-management
// service (tests/support/openapi.mjs) on the next port (account `demo+tokengate@example.com`,
// API key `demo-secret`).
//
//   node tests/support/demo-provider.mjs [--port 8788] [--credentials-file <path>]
//
// --credentials-file: when the file exists it is read as JSON
//   { "optoro": {"clientId", "clientSecret"}, "optimum": {...}, "partner": {...},
//     "openapi": {"email", "apiKey"} } (any subset) and overrides the demo credentials; when it
//   does not exist, the credentials in use are written to it (mode 0600) so other scripts can
//   build .dev.vars from it.
// Prints one JSON line on stdout when ready (URLs only, never a secret); stops on SIGTERM/SIGINT.

import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { startProviders, PROVIDERS } from './emulators.mjs';
import { startTokenService } from './openapi.mjs';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8788' },
    'credentials-file': { type: 'string' },
  },
});

const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`demo-provider: invalid --port ${values.port}`);
  process.exit(2);
}

let credentials = Object.fromEntries(PROVIDERS.map((p) => [p, { clientId: 'demo-client', clientSecret: 'demo-secret' }]));
const openapi = { email: 'demo+tokengate@example.com', apiKey: 'demo-secret' };
const file = values['credentials-file'];
if (file && fs.existsSync(file)) {
  const fromFile = JSON.parse(fs.readFileSync(file, 'utf8'));
  for (const p of PROVIDERS) Object.assign(credentials[p], fromFile[p] ?? {});
  Object.assign(openapi, fromFile.openapi ?? {});
}

let emu;
let svc;
try {
  emu = await startProviders({ port, credentials, maskBearer: true });
  svc = await startTokenService({ port: port === 0 ? 0 : port + 1, credentials: openapi });
} catch (err) {
  console.error(`demo-provider: cannot listen on 127.0.0.1:${port} and the next port: ${err.code ?? err.message}`);
  await emu?.close();
  process.exit(1);
}
credentials = { ...emu.credentials, openapi: svc.credentials };
if (file && !fs.existsSync(file)) {
  fs.writeFileSync(file, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
}

console.log(JSON.stringify({
  event: 'demo-provider ready',
  url: emu.url,
  token_urls: { ...Object.fromEntries(PROVIDERS.map((p) => [p, emu.endpoints[p].token])), openapi: svc.tokenUrl },
  api_bases: { ...Object.fromEntries(PROVIDERS.map((p) => [p, emu.endpoints[p].api])), openapi: svc.apiBase() },
}));

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await Promise.all([emu.close(), svc.close()]);
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
