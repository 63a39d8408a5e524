// The API server of bench/npm.mjs, run as a child process (node:child_process fork, IPC), so
// its work lands on the other core rather than in the measuring process's event loop: node:http
// on 127.0.0.1, every request answered with the same small JSON body, 200 when it carries
// `Authorization: Bearer <token>`, 401 otherwise.
//
// Protocol: sends { type: 'ready', url } once listening; then answers { id, op: 'counts' |
// 'close' } with { id, result: { ok, unauthorized } }. Exits after 'close', or as soon as the
// parent goes away.

import http from 'node:http';

const BODY = Buffer.from('{"ok":true,"items":[]}');
const counts = { ok: 0, unauthorized: 0 };

const server = http.createServer((req, res) => {
  req.resume(); // the bench sends no bodies; drain anything anyway
  req.on('end', () => {
    const auth = req.headers.authorization;
    const ok = typeof auth === 'string' && /^Bearer \S+$/.test(auth);
    if (ok) counts.ok++;
    else counts.unauthorized++;
    res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json', 'content-length': BODY.length });
    res.end(BODY);
  });
});
// One keep-alive connection can serve the whole run: no reconnects between rounds.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;

process.on('disconnect', () => process.exit(0));
process.on('message', ({ id, op }) => {
  if (op === 'counts') return process.send({ id, result: { ...counts } });
  if (op === 'close') {
    server.close(() => {
      process.send({ id, result: { ...counts } });
      process.disconnect();
    });
    server.closeAllConnections();
  }
});
server.listen(0, '127.0.0.1', () => {
  process.send({ type: 'ready', url: `http://127.0.0.1:${server.address().port}` });
});
