//! The npm crate's exports in headless Chromium (`wasm-pack test --headless --chrome npm --test
//! browser`): the same bodies as `node.rs`, in a browser realm where there is a `window`, which
//! the package must not need anyway.
#![cfg(target_arch = "wasm32")]

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

mod common;
