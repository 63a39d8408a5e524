// A tiny assert for the façade test cases, so that the same bodies run in Node and in a browser
// page without node:assert. Every failure is an AssertionError whose message says what differed.

export class AssertionError extends Error {
  constructor(message) {
    super(message);
    this.name = 'AssertionError';
  }
}

/** A short, JSON-ish rendering of `v` for messages (class instances prefixed by their class). */
export function show(v) {
  if (v instanceof Error) return `${v.name}: ${v.message}`;
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'function') return `[function ${v.name}]`;
  const proto = typeof v === 'object' && v !== null ? Object.getPrototypeOf(v) : null;
  const kind = proto && proto !== Object.prototype && proto !== Array.prototype ? `${proto.constructor?.name ?? 'object'} ` : '';
  try {
    const s = JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? `${x}n` : x));
    return s === undefined ? String(v) : `${kind}${s.length > 300 ? `${s.slice(0, 300)}…` : s}`;
  } catch {
    return String(v);
  }
}

const where = (msg) => (msg ? `${msg}: ` : '');

export function ok(value, msg) {
  if (!value) throw new AssertionError(`${where(msg)}expected a truthy value, got ${show(value)}`);
}

export function fail(msg) {
  throw new AssertionError(msg ?? 'failed');
}

/** `Object.is` equality. */
export function equal(actual, expected, msg) {
  if (!Object.is(actual, expected)) {
    throw new AssertionError(`${where(msg)}expected ${show(expected)}, got ${show(actual)}`);
  }
}

export function notEqual(actual, unexpected, msg) {
  if (Object.is(actual, unexpected)) throw new AssertionError(`${where(msg)}did not expect ${show(actual)}`);
}

function same(a, b) {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && same(a[k], b[k]));
}

/** Structural equality of plain data (arrays, plain objects, primitives); prototypes must match. */
export function deepEqual(actual, expected, msg) {
  if (!same(actual, expected)) {
    throw new AssertionError(`${where(msg)}expected ${show(expected)}, got ${show(actual)}`);
  }
}

export function match(text, re, msg) {
  if (typeof text !== 'string' || !re.test(text)) {
    throw new AssertionError(`${where(msg)}expected ${show(text)} to match ${re}`);
  }
}

function check(error, predicate, msg) {
  if (predicate === undefined) return error;
  let held;
  try {
    held = predicate(error);
  } catch (e) {
    throw new AssertionError(`${where(msg)}the error ${show(error)} failed a check: ${e.message}`);
  }
  if (held !== true) throw new AssertionError(`${where(msg)}unexpected error ${show(error)}`);
  return error;
}

/**
 * Awaits `promise` (or calls `fn` and awaits what it returns, a synchronous throw included),
 * expects a rejection for which `predicate(error)` returns true; returns the error.
 */
export async function rejects(promiseOrFn, predicate, msg) {
  let settled;
  try {
    settled = await (typeof promiseOrFn === 'function' ? promiseOrFn() : promiseOrFn);
  } catch (error) {
    return check(error, predicate, msg);
  }
  throw new AssertionError(`${where(msg)}expected a rejection, got ${show(settled)}`);
}

/** Calls `fn`, expects a synchronous throw for which `predicate(error)` returns true. */
export function throws(fn, predicate, msg) {
  let value;
  try {
    value = fn();
  } catch (error) {
    return check(error, predicate, msg);
  }
  throw new AssertionError(`${where(msg)}expected a throw, got ${show(value)}`);
}
