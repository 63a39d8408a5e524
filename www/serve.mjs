#!/usr/bin/env node
// A tiny static server for the tokengate console's playground: serves www/ and pkg/web/ (built
// by .ci/build-npm; also as www/pkg/) from the repository root on 127.0.0.1, and nothing else.
// The whole console — dashboard and "Try it" too — is served by the gateway itself at /ui/.
//
//   node www/serve.mjs [--port N]     (or PORT=N; default 8080; 0 picks a free port)
//   → open http://127.0.0.1:N/www/
//
// Also a module: `startServer({ port, root })` resolves to `{ server, url, origin, close }`.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HOST = '127.0.0.1';
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** URL prefix → directory under the root. Nothing outside these is ever served. */
const MOUNTS = [
  ['/www/pkg/', 'pkg/web'], // where the console imports the package from (ui/pkg/ in the Worker's assets)
  ['/www/', 'www'],
  ['/pkg/web/', 'pkg/web'],
];

export const MIME_TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.ts': 'text/plain; charset=utf-8', // the .d.ts files, not MPEG transport streams
  '.md': 'text/plain; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

const isInside = (dir, file) => {
  const rel = path.relative(dir, file);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
};

function send(res, status, text, extra = {}) {
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'X-Content-Type-Options': 'nosniff',
    ...extra,
  });
  res.end(res.req.method === 'HEAD' ? undefined : text);
}

/** The file a request path maps to, or an HTTP status explaining why there is none. */
async function resolve(root, urlPath) {
  let decoded;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return { status: 400 };
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return { status: 400 };
  const segments = decoded.split('/');
  // No `..`, no `.`, no hidden files: refused before any path arithmetic.
  if (segments.some((s) => s === '..' || s === '.' || (s.startsWith('.') && s.length > 0))) {
    return { status: 403 };
  }
  if (decoded === '/') return { redirect: '/www/' };
  for (const [prefix, dirName] of MOUNTS) {
    if (decoded === prefix.slice(0, -1)) return { redirect: prefix };
    if (!decoded.startsWith(prefix)) continue;
    const dir = path.join(root, dirName);
    let file = path.join(dir, decoded.slice(prefix.length));
    if (!isInside(dir, file)) return { status: 403 };
    let real;
    let realDir;
    try {
      [real, realDir] = await Promise.all([fsp.realpath(file), fsp.realpath(dir)]);
    } catch {
      return { status: 404 };
    }
    if (!isInside(realDir, real)) return { status: 403 }; // a symlink pointing out
    let stat = await fsp.stat(real);
    if (stat.isDirectory()) {
      if (!decoded.endsWith('/')) return { redirect: `${decoded}/` };
      file = path.join(real, 'index.html');
      try {
        real = await fsp.realpath(file);
        stat = await fsp.stat(real);
      } catch {
        return { status: 404 };
      }
      if (!isInside(realDir, real)) return { status: 403 };
    }
    if (!stat.isFile()) return { status: 404 };
    return { file: real, size: stat.size };
  }
  return { status: 404 };
}

async function handle(root, req, res) {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    return send(res, 405, 'method not allowed\n', { Allow: 'GET, HEAD' });
  }
  const urlPath = (req.url ?? '').split(/[?#]/, 1)[0];
  if (!urlPath.startsWith('/')) return send(res, 400, 'bad request\n');
  const found = await resolve(root, urlPath);
  if (found.redirect) {
    return send(res, 302, `see ${found.redirect}\n`, { Location: found.redirect });
  }
  if (!found.file) {
    const text = { 400: 'bad request\n', 403: 'forbidden\n', 404: 'not found\n' }[found.status];
    return send(res, found.status, text ?? 'error\n');
  }
  res.writeHead(200, {
    'Content-Type': MIME_TYPES[path.extname(found.file).toLowerCase()] ?? 'application/octet-stream',
    'Content-Length': found.size,
    'Cache-Control': 'no-cache',
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Cross-Origin-Resource-Policy': 'same-origin',
  });
  if (req.method === 'HEAD') return res.end();
  fs.createReadStream(found.file)
    .on('error', () => res.destroy())
    .pipe(res);
}

/** Starts the server on 127.0.0.1:`port` (0: any free port). */
export function startServer({ port = 8080, root = REPO_ROOT } = {}) {
  const server = http.createServer((req, res) => {
    handle(root, req, res).catch(() => {
      if (!res.headersSent) send(res, 500, 'internal error\n');
      else res.destroy();
    });
  });
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, HOST, () => {
      server.off('error', fail);
      const origin = `http://${HOST}:${server.address().port}`;
      const close = () =>
        new Promise((done) => {
          server.close(() => done());
          server.closeAllConnections();
        });
      ok({ server, origin, url: `${origin}/www/`, close });
    });
  });
}

function portFromArgs(argv, env) {
  let value = env.PORT ?? '8080';
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i] === '--port') value = argv[i + 1];
    else if (argv[i].startsWith('--port=')) value = argv[i].slice('--port='.length);
    else if (argv[i] === '-h' || argv[i] === '--help') {
      console.log('usage: node www/serve.mjs [--port N]   (PORT=N also works; default 8080, 0 = any)');
      process.exit(0);
    } else if (argv[i - 1] !== '--port') {
      throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad port ${value}`);
  return port;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  let port;
  try {
    port = portFromArgs(process.argv.slice(2), process.env);
  } catch (e) {
    console.error(`serve.mjs: ${e.message}`);
    process.exit(2);
  }
  if (!fs.existsSync(path.join(REPO_ROOT, 'pkg/web/index.js'))) {
    console.error('serve.mjs: pkg/web/index.js is missing; build the package first: .ci/build-npm');
  }
  const { url, close } = await startServer({ port });
  console.log(`tokengate page: ${url}`);
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => close().then(() => process.exit(0)));
  }
}
