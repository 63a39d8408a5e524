// Types of the tokengate package's web build: the API plus the WebAssembly initialisers.
export * from './client.js';

/** Where the WebAssembly module comes from (default: `core_bg.wasm` beside this file). */
export type InitInput = RequestInfo | URL | Response | BufferSource | WebAssembly.Module;

/** Instantiates the WebAssembly module; await it once before using the package. */
export default function init(
  moduleOrPath?: { module_or_path: InitInput | Promise<InitInput> } | InitInput | Promise<InitInput>,
): Promise<unknown>;

/** Instantiates an already compiled module synchronously (e.g. in a Worker). */
export declare function initSync(module: { module: BufferSource | WebAssembly.Module } | BufferSource | WebAssembly.Module): unknown;
