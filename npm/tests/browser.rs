//! The npm package's exported API in headless Chromium (`wasm-pack test --headless --chrome
//! --features npm -- --test npm_browser`): the same bodies as `npm_web`, in a browser realm
//! where there is a `window`, which the package must not need anyway.
#![cfg(all(target_arch = "wasm32", feature = "npm"))]

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

mod npm_common;
