// `make dev`'s promise (README): the gateway runs locally, and the shell lines it prints work
// when pasted into a shell. This test runs .ci/dev, what `make dev` runs once the Worker and
// the console are built (`make test-worker` builds them first), with a free port for the
// gateway and a vars file of its own (TOKENGATE_DEV_VARS: a developer's .dev.vars is neither
// read nor written). It takes the lines the banner prints exactly as printed, runs them with
// bash, and checks what every request in them got. The demo provider listens on 127.0.0.1:8788
// and :8789, the ports wrangler.demo.toml names, so those must be free.
// Run: node --test tests/dev.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort, makeTempDir, removeDir, REPO_ROOT } from './support/gateway.mjs';

/** wrangler's [build] step (make: the configuration check, the Worker, the console) and start. */
const READY_MS = 300_000;
const BANNER_END = 'Press Ctrl-C to stop.';
const PROVIDER_PORTS = [8788, 8789];

/** Whether something accepts connections on 127.0.0.1:`port`. */
function listening(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * The shell lines of the banner: its indented lines from "Try, in another shell:" to the end,
 * without their indent, in paragraphs (a paragraph ends at a line that is not indented).
 */
export function shellParagraphs(banner) {
  const from = banner.indexOf('Try, in another shell:');
  const to = banner.indexOf(BANNER_END);
  assert.ok(from >= 0 && to > from, `no shell lines in the banner:\n${banner}`);
  const paragraphs = [];
  let current = [];
  for (const line of banner.slice(from, to).split('\n').slice(1)) {
    if (line.startsWith('  ')) {
      current.push(line.slice(2));
    } else if (current.length) {
      paragraphs.push(current.join('\n'));
      current = [];
    }
  }
  if (current.length) paragraphs.push(current.join('\n'));
  return paragraphs;
}

/** The JSON objects of a text that holds them one after another (the demo provider's echoes). */
function jsonObjects(text) {
  const found = [];
  let depth = 0;
  let from = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
    } else if (c === '{') {
      if (depth++ === 0) from = i;
    } else if (c === '}' && --depth === 0) {
      found.push(JSON.parse(text.slice(from, i + 1)));
    }
  }
  return found;
}

/** Starts .ci/dev in a process group of its own; resolves with the banner once printed. */
function startDev(env) {
  const child = spawn(path.join(REPO_ROOT, '.ci', 'dev'), [], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const banner = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no banner in ${READY_MS} ms:\n${out}\n${err}`)), READY_MS);
    child.stdout.on('data', (d) => {
      out += d;
      const at = out.indexOf(BANNER_END);
      if (at >= 0) {
        clearTimeout(timer);
        resolve(out.slice(0, at + BANNER_END.length));
      }
    });
    child.stderr.on('data', (d) => { err += d; });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`.ci/dev ended (${code ?? signal}) before its banner:\n${out}\n${err}`));
    });
  });
  /**
   * SIGTERM to the whole group (.ci/dev, the demo provider, wrangler, workerd) — even when
   * .ci/dev itself has ended, as something it started may not have — then SIGKILL to what is
   * left after 30 s.
   */
  const stop = async () => {
    if (!signal(child.pid, 'SIGTERM')) return;
    const deadline = Date.now() + 30_000;
    while (groupAlive(child.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    signal(child.pid, 'SIGKILL');
    await exited;
  };
  banner.catch(() => {}); // (awaited by before(); a failure there is reported there)
  return { banner, stop, pid: child.pid };
}

/** Sends `sig` to process group `pgid`; false when the group is gone. */
function signal(pgid, sig) {
  try {
    process.kill(-pgid, sig);
    return true;
  } catch {
    return false;
  }
}

/** Whether any process of group `pgid` is left, zombies aside (from /proc: Linux). */
function groupAlive(pgid) {
  return fs.readdirSync('/proc').some((d) => {
    if (!/^\d+$/.test(d)) return false;
    try {
      // The fields after the command's closing parenthesis: state, ppid, pgrp, …
      const [state, , pgrp] = fs.readFileSync(`/proc/${d}/stat`, 'utf8').split(') ').pop().split(' ');
      return Number(pgrp) === pgid && state !== 'Z';
    } catch {
      return false; // gone meanwhile
    }
  });
}

/** The running `make dev`: { port, banner, stop } (see before()). */
let dev;
let dir;

before(async () => {
  for (const port of PROVIDER_PORTS) {
    assert.equal(await listening(port), false, `127.0.0.1:${port} is taken: the demo provider needs it`);
  }
  dir = makeTempDir('tokengate-dev-test-');
  const port = await freePort();
  // (wrangler reads a vars file given with --env-file only while this is not "false".)
  const started = startDev({
    GATEWAY_PORT: String(port), TOKENGATE_DEV_VARS: path.join(dir, 'dev.vars'),
    CLOUDFLARE_LOAD_DEV_VARS_FROM_DOT_ENV: 'true',
  });
  // Known to after() before the banner is awaited: a start that fails is stopped all the same.
  dev = { ...started, port };
  dev.banner = await started.banner;
}, { timeout: READY_MS + 10_000 });

after(async () => {
  await dev?.stop();
  if (dir) removeDir(dir);
});

/**
 * Runs `script` with bash, every curl in it also reporting `@@ <status> <url>` on stderr (the
 * script's own lines unchanged). Returns { stdout, calls: [{ status, path }] }.
 */
function runLines(script) {
  const run = spawnSync('bash', ['-c', [
    'set -u',
    `curl() { command curl -w '%{stderr}@@ %{http_code} %{url_effective}\\n' "$@"; }`,
    script,
  ].join('\n')], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(run.status, 0, `the lines failed: ${run.stderr}`);
  const calls = run.stderr.split('\n').filter((l) => l.startsWith('@@ ')).map((l) => {
    const [, status, url] = l.split(' ');
    return { status: Number(status), path: new URL(url).pathname };
  });
  return { stdout: run.stdout, calls, stderr: run.stderr };
}

test('make dev: the gateway starts and every line it prints works as printed', { timeout: 180_000 }, async () => {
  const { banner, port } = dev;
  assert.match(banner, new RegExp(`wrote ${path.join(dir, 'dev.vars').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`),
    'the vars file of the test');
  assert.ok(banner.includes(`http://127.0.0.1:${port}`), `the banner names port ${port}`);

  const paragraphs = shellParagraphs(banner);
  const printedCurls = paragraphs.join('\n').match(/\bcurl\s/g).length;
  // The lines run as printed, in one shell (later lines use the variables earlier ones set).
  const run = runLines([
    ...paragraphs.flatMap((p, i) => [p, `echo "@@@ ${i}"`]),
    // Which tokens the callers held (hash prefixes), to tell them from what the provider got.
    'h() { printf %s "$1" | sha256sum | cut -c1-12; }',
    'echo "@@@ tokens $(h "$TOKEN") $(h "$MTOKEN")"',
  ].join('\n'));
  const { calls } = run;
  assert.equal(calls.length, printedCurls, `every printed curl ran: ${run.stderr}`);
  for (const c of calls) assert.ok(c.status >= 200 && c.status < 300, `${c.path} answered ${c.status}`);
  // What the lines reach: the health check, a proxied request to each demo provider with the
  // static caller's token, the admin API, and a proxied request with the managed caller's token
  // (a token the gateway did not issue would get a 401).
  const paths = calls.map((c) => c.path);
  for (const expected of ['/healthz', '/oauth/token', '/optoro/rmas', '/optimum/vehicles', '/partner/bookings',
    '/openapi/IT-start/12345678901', '/admin/clients', '/admin/stats']) {
    assert.ok(paths.includes(expected), `${expected} among ${paths}`);
  }
  assert.equal(paths.filter((p) => p === '/optoro/rmas').length, 2, 'the static and the managed caller');

  // What each paragraph printed: the health check's answer, then the demo provider's echo of
  // every request it got through the gateway, and the admin API's statistics.
  const outputs = run.stdout.split(/@@@ \d+\n/);
  const printed = (needle) => outputs[paragraphs.findIndex((p) => p.includes(needle))];
  const health = JSON.parse(printed('/healthz'));
  assert.equal(health.status, 'ok');
  assert.equal(health.providers, 4);
  const proxied = printed('curl -si');
  assert.match(proxied, /^HTTP\/1\.1 200 /m);
  assert.match(proxied, /^server-timing: token;desc="exchange"/mi, 'the first call exchanged for a token');
  const [callerHash, managedHash] = run.stdout.match(/^@@@ tokens (\S+) (\S+)$/m).slice(1);
  const echoes = [...jsonObjects(proxied.slice(proxied.indexOf('\r\n\r\n'))), ...jsonObjects(printed('/admin/stats'))];
  const upstream = echoes.filter((e) => e.path);
  assert.deepEqual(upstream.map((e) => e.path), ['/optoro/api/rmas', '/optimum/api/vehicles',
    '/partner/api/v1/bookings', '/company.openapi.com/IT-start/12345678901', '/optoro/api/rmas']);
  for (const e of upstream) {
    // The provider got its own token (the echo shows its length and hash), never a caller's.
    const [, hash] = /^Bearer <\d+ chars, sha256 ([0-9a-f]+)…>$/.exec(e.headers.authorization) ?? [];
    assert.ok(hash, `${e.path}: ${e.headers.authorization}`);
    assert.ok(!callerHash.startsWith(hash) && !managedHash.startsWith(hash), `${e.path} got a caller's token`);
  }
  assert.equal(JSON.parse(upstream[2].body).date, '2026-12-01', 'the POST body went through');
  const stats = echoes.find((e) => e.providers);
  assert.ok(stats?.providers?.optoro, `statistics for optoro: ${JSON.stringify(stats)}`);

});

test('make dev: the README\'s lines work too, each answering what it says', { timeout: 180_000 }, async () => {
  const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const from = readme.indexOf('Then, in another shell:');
  const to = readme.indexOf('\n## ', from);
  assert.ok(from >= 0 && to > from, 'the README\'s make dev section');
  const blocks = [...readme.slice(from, to).matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
  assert.ok(blocks.length >= 2, 'the static and the managed caller\'s lines');
  const script = blocks.join('\n').replaceAll('127.0.0.1:8787', `127.0.0.1:${dev.port}`);
  // What each curl should answer: the status its line's comment names (`# 403 …`), else 2xx.
  const expected = [];
  for (const line of script.replace(/\\\n/g, ' ').split('\n')) {
    const status = Number(/#\s*(\d{3})\b/.exec(line)?.[1]) || '2xx';
    for (let n = (line.match(/\bcurl\s/g) ?? []).length; n > 0; n--) expected.push(status);
  }
  const { calls, stderr } = runLines(script);
  assert.equal(calls.length, expected.length, `every curl of the README ran: ${stderr}`);
  calls.forEach((c, i) => {
    if (expected[i] === '2xx') assert.ok(c.status >= 200 && c.status < 300, `${c.path} answered ${c.status}`);
    else assert.equal(c.status, expected[i], `${c.path}`);
  });
  assert.ok(expected.includes(403), 'the README shows a refusal too');
});

test('make dev: stopping it stops everything it started', { timeout: 60_000 }, async () => {
  await dev.stop();
  assert.equal(groupAlive(dev.pid), false, 'a process of make dev is still running');
  for (const p of [dev.port, ...PROVIDER_PORTS]) assert.equal(await listening(p), false, `127.0.0.1:${p} still answers`);
});
