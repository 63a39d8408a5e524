// The entry module of the Rust forwarder (bench/baseline/rust-forwarder): a module Worker whose
// fetch handler is the wasm-bindgen export `fetch(request, env, ctx)` of index.js (the
// wasm-bindgen CLI's output, built by `make bench-forwarder`). Nothing else runs per request.
import { fetch as forward } from './index.js';

export default {
  fetch(request, env, ctx) {
    return forward(request, env, ctx);
  },
};
