// The token server of bench/npm.mjs, run as a child process (node:child_process fork, IPC):
// tests/support/oidc.mjs, a real oidc-provider. It stays out of the measuring process because
// oidc-provider uses AsyncLocalStorage, whose promise hooks, once it has handled a request,
// make every `await` in that process several times slower on Node 20 and would distort every
// number. (Not a worker thread: on Node 20 its RSA key generation in a worker can deadlock.)
//
// Protocol: sends { type: 'ready', issuer, tokenUrl, clients } once listening; then answers
// { id, op: 'exchanges' | 'isIssuedToken' | 'close', args } with { id, result } or { id, error }.
// Exits after 'close', or as soon as the parent goes away.

import { startOidc } from '../tests/support/oidc.mjs';

process.on('disconnect', () => process.exit(0));
const oidc = await startOidc({ ttlSeconds: 600 });
const ops = {
  exchanges: () => oidc.exchanges(),
  isIssuedToken: (token) => oidc.isIssuedToken(token),
  close: () => oidc.close().then(() => true),
};
process.on('message', async ({ id, op, args = [] }) => {
  try {
    process.send({ id, result: await ops[op](...args) });
  } catch (err) {
    process.send({ id, error: String(err?.message ?? err) });
  }
  if (op === 'close') process.disconnect();
});
process.send({ type: 'ready', issuer: oidc.issuer, tokenUrl: oidc.tokenUrl, clients: oidc.clients });
