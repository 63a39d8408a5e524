//! Proxy rules: where a proxied request may go and which headers cross the gateway.
//!
//! - [`upstream_url`] and [`split_request_url`] (in `path.rs`): the upstream URL of a proxied
//!   request, under the provider's `api_base`, and the refused path segments ([`PathError`]);
//!   the Unicode look-alikes of `.`, `/`, `\`, `;` and space those rules read through NFKC
//!   (UAX #15) are a table generated from Unicode data (in `lookalikes.rs`).
//! - [`upstream_headers`], [`downstream_headers`] and the rules they apply (in `headers.rs`):
//!   which request headers go upstream, which response headers come back, and the
//!   `Cache-Control` and `Server-Timing` the gateway sets; the `Location` of a redirect
//!   ([`rewrite_location`], in `location.rs`).
//! - [`forwards_method`] (in `method.rs`): the methods never forwarded.
//! - [`passes_on`] and [`has_null_body`] (in `status.rs`): which API statuses reach the caller,
//!   and which carry no body.
//! - [`plan_body`] and [`ReplayBudget`] (in `body.rs`): whether a request body is refused, held
//!   for a replay or streamed, within what an isolate may hold for replays.

mod body;
mod headers;
mod location;
mod lookalikes;
mod method;
mod path;
mod status;

pub use body::{plan_body, BodyPlan, ReplayBudget, REPLAY_BUDGET, REPLAY_LIMIT};
pub use location::{rewrite_location, RedirectContext};
pub use method::{forwards_method, ALLOWED_METHODS};
pub use status::{has_null_body, passes_on};

pub use headers::{
    downstream_headers, forward_request_header, forward_response_header, private_cache_control,
    server_timing, upstream_headers,
};
pub use path::{split_request_url, upstream_url, PathError};
