//! Proxy rules: where a proxied request may go and which headers cross the gateway.
//!
//! - [`upstream_url`] and [`split_request_url`] (in `path.rs`): the upstream URL of a proxied
//!   request, under the provider's `api_base`, and the refused path segments ([`PathError`]);
//!   the Unicode look-alikes of `.`, `/`, `\`, `;` and space those rules read through NFKC
//!   (UAX #15) are a table generated from Unicode data (in `lookalikes.rs`).
//! - [`upstream_headers`], [`downstream_headers`] and the rules they apply (in `headers.rs`):
//!   which request headers go upstream, which response headers come back, and the
//!   `Cache-Control` and `Server-Timing` the gateway sets.

mod headers;
mod lookalikes;
mod path;

pub use headers::{
    downstream_headers, forward_request_header, forward_response_header, private_cache_control,
    server_timing, upstream_headers,
};
pub use path::{split_request_url, upstream_url, PathError};
