// Function names for the profiling copy of the Worker (`make worker-profile`, read by
// bench/profile.mjs). The deployed build has almost no `name` section: the release profile's
// `strip = true` makes the linker drop it, so a CPU profile shows `wasm-function[N]`. Turning
// `strip` off is no answer: it changes Cargo's hashes of every crate, hence symbol names, hence
// LLVM's choices — the code itself changes (by about 1 KB). Instead:
//
//   1. worker-build builds the Worker as `make worker` does (same cargo output, reused), into
//      build-profile/ — its wasm byte for byte the deployed one;
//   2. `cargo rustc … -- -C link-arg=--keep-section=name` links the same code again in another
//      target dir with the linker told to keep the `name` section (a link argument of the last
//      crate only: every crate's hash, and so the code, stays the same);
//   3. the wasm-bindgen CLI processes that copy with worker-build's own options (step 2's
//      output → a scratch directory);
//   4. this script checks that the scratch wasm has the same types, imports, functions, table,
//      memory, globals, start, elements, code and data as build-profile/index_bg.wasm, and only
//      then copies its `name` section into build-profile/index_bg.wasm. (Only the export
//      names may differ: wasm-bindgen names some exports after the functions when names are
//      there. The function indices the `name` section uses are those of the identical import and
//      function sections.)
//
//   node bench/wasm-names.mjs NAMED.wasm TARGET.wasm     splice NAMED's name section into TARGET
//   node bench/wasm-names.mjs --same A.wasm B.wasm       exit 0 iff A and B have the same code

import fs from 'node:fs';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';

const CUSTOM = 0;
const EXPORT = 7;

/** The unsigned LEB128 number at `p` in `buf`, and the position after it. */
function readLeb(buf, p) {
  let r = 0;
  let shift = 0;
  let b;
  do {
    b = buf[p++];
    r += (b & 0x7f) * 2 ** shift;
    shift += 7;
  } while (b & 0x80);
  return [r, p];
}

/** The sections of a wasm module: [{ id, name (custom sections), start, end (payload) }]. */
export function sections(buf) {
  if (buf.readUInt32LE(0) !== 0x6d736100) throw new Error('not a wasm module');
  let p = 8;
  const leb = () => { const [v, next] = readLeb(buf, p); p = next; return v; };
  const out = [];
  while (p < buf.length) {
    const headerStart = p;
    const id = buf[p++];
    const size = leb();
    const start = p;
    let name = '';
    if (id === CUSTOM) {
      const n = leb();
      name = buf.subarray(p, p + n).toString('utf8');
    }
    out.push({ id, name, headerStart, start, end: start + size });
    p = start + size;
  }
  return out;
}

const digest = (buf, s) => crypto.createHash('sha256').update(buf.subarray(s.start, s.end)).digest('hex');

/**
 * The hashes of every non-custom section but the exports (the code, as far as running it is
 * concerned), in order.
 */
export function codeFingerprint(buf, { withExports = false } = {}) {
  return sections(buf)
    .filter((s) => s.id !== CUSTOM && (withExports || s.id !== EXPORT))
    .map((s) => `${s.id}:${digest(buf, s)}`)
    .join(',');
}

/** Function index → name, from a wasm's `name` section (subsection 1); empty when it has none. */
export function functionNames(buf) {
  const names = new Map();
  const sec = sections(buf).find((s) => s.id === CUSTOM && s.name === 'name');
  if (!sec) return names;
  let p = sec.start;
  const leb = () => { const [v, next] = readLeb(buf, p); p = next; return v; };
  p += leb(); // past the custom section's own name, "name"
  while (p < sec.end) {
    const sub = buf[p++];
    const size = leb();
    const end = p + size;
    if (sub === 1) {
      const count = leb();
      for (let i = 0; i < count; i++) {
        const index = leb();
        const len = leb();
        names.set(index, buf.subarray(p, p + len).toString('utf8'));
        p += len;
      }
    }
    p = end;
  }
  return names;
}

/** Export name → function index, for the exported functions of a wasm module. */
export function exportedFunctions(buf) {
  const out = new Map();
  const sec = sections(buf).find((s) => s.id === EXPORT);
  if (!sec) return out;
  let p = sec.start;
  const leb = () => { const [v, next] = readLeb(buf, p); p = next; return v; };
  const count = leb();
  for (let i = 0; i < count; i++) {
    const len = leb();
    const name = buf.subarray(p, p + len).toString('utf8');
    p += len;
    const kind = buf[p++];
    const index = leb();
    if (kind === 0) out.set(name, index);
  }
  return out;
}

/** TARGET with its `name` section replaced by NAMED's (both must have the same code). */
export function spliceNames(named, target) {
  if (codeFingerprint(named) !== codeFingerprint(target)) {
    throw new Error('the named copy and the target have different code: not splicing names');
  }
  const nameSec = sections(named).find((s) => s.id === CUSTOM && s.name === 'name');
  if (!nameSec) throw new Error('the named copy has no name section');
  const parts = [];
  let inserted = false;
  let last = 8;
  parts.push(target.subarray(0, 8));
  for (const s of sections(target)) {
    if (s.id === CUSTOM && s.name === 'name') {
      parts.push(named.subarray(nameSec.headerStart, nameSec.end));
      inserted = true;
    } else {
      parts.push(target.subarray(s.headerStart, s.end));
    }
    last = s.end;
  }
  if (last !== target.length) throw new Error('trailing bytes after the last section');
  if (!inserted) parts.push(named.subarray(nameSec.headerStart, nameSec.end));
  return Buffer.concat(parts);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  if (args[0] === '--same' && args.length === 3) {
    const [a, b] = args.slice(1).map((f) => fs.readFileSync(f));
    const same = codeFingerprint(a, { withExports: true }) === codeFingerprint(b, { withExports: true });
    console.log(same ? 'same code' : 'different code');
    process.exit(same ? 0 : 1);
  }
  if (args.length !== 2) {
    console.error('usage: node bench/wasm-names.mjs NAMED.wasm TARGET.wasm | --same A.wasm B.wasm');
    process.exit(2);
  }
  const [namedFile, targetFile] = args;
  const out = spliceNames(fs.readFileSync(namedFile), fs.readFileSync(targetFile));
  fs.writeFileSync(targetFile, out);
  const n = functionNames(out).size;
  console.error(`[wasm-names] ${targetFile}: ${n} function names from ${namedFile}`);
}
