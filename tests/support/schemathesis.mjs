// What the two schemathesis tests share: where the pinned schemathesis is, running it, and
// reading its NDJSON event stream.
//
// schemathesis comes from `.ci/setup-tools schemathesis` (a venv, by default
// ~/.cache/tokengate-venv; TOKENGATE_VENV overrides it there and here).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from './gateway.mjs';

const VENV = process.env.TOKENGATE_VENV || path.join(os.homedir(), '.cache', 'tokengate-venv');
export const ST_BIN = path.join(VENV, 'bin', 'schemathesis');
/** The version .ci/setup-tools pins (the tests' options and configurations are written for it). */
export const ST_VERSION = /^SCHEMATHESIS_VERSION=(\S+)$/m
  .exec(fs.readFileSync(path.join(REPO_ROOT, '.ci', 'setup-tools'), 'utf8'))?.[1];

/** Runs a command to completion (killed after `ms`); resolves { code, signal, stdout, stderr }. */
export function run(cmd, args, { cwd, env, ms }) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('error', (err) => { clearTimeout(timer); reject(err); });
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr }); });
  });
}

/**
 * The `schemathesis run` arguments both tests use — every check, positive and negative data, a
 * fixed seed, no example database, one worker — with reports written into `dir`; `junit` adds a
 * JUnit report. Returns { args, reportJson, reportNdjson, reportJunit? }.
 */
export function runArgs({ config, schema, url, seed, maxExamples, dir, junit = false }) {
  const reportJson = path.join(dir, 'report.json');
  const reportNdjson = path.join(dir, 'events.ndjson');
  const reportJunit = junit ? path.join(dir, 'junit.xml') : undefined;
  const args = [
    '--config-file', config,
    'run', schema,
    '--url', url,
    '--checks', 'all',
    '--max-response-time', '5', // enables max_response_time, generously: answers take milliseconds
    '--mode', 'all', // positive and negative (schema-violating) data
    '--seed', seed,
    '--max-examples', String(maxExamples),
    '--generation-database', 'none',
    '--workers', '1',
    '--request-timeout', '10',
    '--no-color',
    '--report', junit ? 'json,ndjson,junit' : 'json,ndjson',
    '--report-json-path', reportJson,
    '--report-ndjson-path', reportNdjson,
    ...(junit ? ['--report-junit-path', reportJunit] : []),
  ];
  return { args, reportJson, reportNdjson, reportJunit };
}

/** Fails unless the pinned schemathesis is installed. */
export async function assertPinnedSchemathesis() {
  assert.ok(fs.existsSync(ST_BIN),
    `${ST_BIN} not found: install schemathesis with \`.ci/setup-tools schemathesis\``);
  const version = await run(ST_BIN, ['--version'], { ms: 20_000 });
  assert.ok(ST_VERSION && version.stdout.includes(`version ${ST_VERSION}`),
    `${ST_BIN} is "${version.stdout.trim()}", .ci/setup-tools pins ${ST_VERSION}: run \`.ci/setup-tools schemathesis\``);
}

/**
 * From the NDJSON event stream: per check name, how many cases it ran on and how many it failed;
 * and per operation (its label), how many cases it ran.
 */
export function tally(ndjsonPath) {
  const checks = {};
  const operations = {};
  for (const line of fs.readFileSync(ndjsonPath, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const event = JSON.parse(line);
    const recorder = event.ScenarioFinished?.recorder;
    if (!recorder) continue;
    for (const results of Object.values(recorder.checks ?? {})) {
      for (const { name, status } of results) {
        checks[name] ??= { ran: 0, failed: 0 };
        checks[name].ran += 1;
        if (status !== 'success') checks[name].failed += 1;
      }
    }
    operations[recorder.label] = (operations[recorder.label] ?? 0) + Object.keys(recorder.cases ?? {}).length;
  }
  return { checks, operations };
}
