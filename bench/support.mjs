// Helpers shared by the benchmarks in bench/.

import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { readdirSync, readFileSync } from 'node:fs';

export const median = (xs) => quantile(xs, 0.5);
export function quantile(xs, q) {
  const s = Float64Array.from(xs).sort();
  if (s.length === 0) return NaN;
  const i = (s.length - 1) * q;
  const lo = Math.floor(i);
  return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (i - lo);
}

/**
 * Starts `file` (a bench/ module) as a child process and waits for its { type: 'ready', ... }
 * message. Returns { info, call(op, ...args), close() }: `close` asks the child to stop its
 * server (op 'close', which resolves to the op's result) and kills it if it has not exited 3 s
 * later.
 */
export function startChild(file) {
  const child = fork(fileURLToPath(new URL(file, import.meta.url)), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: [],
  });
  const pending = new Map();
  let nextId = 1;
  const exited = new Promise((res) => child.once('exit', res));
  const failAll = (err) => { for (const p of pending.values()) p.reject(err); pending.clear(); };
  return new Promise((resolveStart, rejectStart) => {
    child.once('error', rejectStart);
    exited.then((code) => {
      const err = new Error(`${file} exited (${code})`);
      rejectStart(err); // no-op once ready
      failAll(err);
    });
    child.on('message', (m) => {
      if (m.type === 'ready') {
        const call = (op, ...args) => new Promise((res, rej) => {
          const id = nextId++;
          pending.set(id, { resolve: res, reject: rej });
          child.send({ id, op, args });
        });
        let closing = null;
        const close = () => (closing ??= (async () => {
          if (child.exitCode !== null || child.signalCode !== null) return null;
          const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
          try {
            return await call('close').catch(() => null);
          } finally {
            await exited;
            clearTimeout(timer);
          }
        })());
        const { type, ...info } = m;
        return resolveStart({ info, call, close });
      }
      const p = pending.get(m.id);
      if (!p) return;
      pending.delete(m.id);
      if ('error' in m) p.reject(new Error(`${file}: ${m.error}`));
      else p.resolve(m.result);
    });
  });
}


/**
 * CPU time (user + system, ms) a child process of this one has used so far, read from
 * /proc/<pid>/stat (Linux; clock ticks of 100 Hz, the kernel's USER_HZ everywhere it runs).
 * `null` where /proc is not there.
 */
export function cpuMs(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return null;
  }
}

/** The pids of this process's `workerd` children (each Miniflare instance runs one). */
export function workerdPids() {
  let entries;
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  return entries.filter((d) => {
    if (!/^\d+$/.test(d)) return false;
    try {
      return readFileSync(`/proc/${d}/comm`, 'utf8').trim() === 'workerd' &&
        readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1].split(' ')[1] === String(process.pid);
    } catch {
      return false;
    }
  });
}
