// tokengate for browsers, Deno and Workers: the façade plus the WebAssembly initialisers.
// Call `await init()` (or `initSync({ module })`) once before using the package.
export * from './client.js';
export { default, initSync } from './core.js';
