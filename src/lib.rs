//! tokengate — an edge auth gateway for APIs that use the OAuth 2.0 client-credentials grant
//! (RFC 6749 §4.4).
//!
//! One crate, three faces:
//! - [`core`]: pure, sans-IO logic — provider dialects, token-request building, token-response
//!   parsing, expiry and retry policy, cache keys, caller tokens. No clock, no network, no JS.
//! - [`flow`]: the one async piece: memory cache → store → exchange with retries, over the
//!   [`flow::Transport`], [`flow::TokenStore`] and [`flow::Runtime`] traits, testable natively.
//! - `worker` (feature `worker`): the Cloudflare Worker glue; `npm` (feature `npm`): the
//!   wasm-bindgen package glue. The two features exclude each other.

#![deny(missing_docs)]

#[cfg(all(feature = "worker", feature = "npm"))]
compile_error!("features `worker` and `npm` build different artifacts; enable only one");

pub mod core;
pub mod flow;

#[cfg(any(feature = "worker", feature = "npm"))]
mod js_json;

#[cfg(feature = "worker")]
mod worker;

#[cfg(feature = "npm")]
pub mod npm;
