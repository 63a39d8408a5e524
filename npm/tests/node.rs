//! The npm package's exported API under Node (`wasm-pack test --node --features npm -- --test
//! npm_web`). The bodies are shared with the browser run in `npm_common`.
#![cfg(all(target_arch = "wasm32", feature = "npm"))]

mod npm_common;
