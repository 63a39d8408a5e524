//! The npm crate's exports under Node (`wasm-pack test --node npm --test node`). The bodies
//! are shared with the browser run in `common/`.
#![cfg(target_arch = "wasm32")]

mod common;
