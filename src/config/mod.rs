//! Provider configuration: parsing and validation, shared by the Worker (`snake_case` keys in
//! `wrangler.toml`) and the npm package (`camelCase` keys in JS). Every error names the provider
//! and the offending key; no error ever contains a secret value.
//!
//! One concern per file, every public item re-exported here:
//! - `settings.rs`: the types ([`AuthStyle`], [`TokenSettings`], [`ProviderConfig`],
//!   [`Naming`], [`ConfigError`]) and their small impls;
//! - `provider.rs`: parsing a provider entry ([`ProviderConfig::parse`], [`parse_providers`],
//!   [`validate_provider_id`]; a template's unfilled placeholders, [`is_placeholder`]), the npm
//!   token settings ([`TokenSettings::parse_camel`]) and the expiry keys
//!   ([`ExpiryPolicy::parse_camel`](crate::expiry::ExpiryPolicy::parse_camel));
//! - `gateway.rs`, public as [`gateway`] (its names are the Worker's own): the Worker's
//!   binding, vars and secrets around the provider entries, and the secrets a configuration
//!   needs;
//! - `endpoint.rs`: the endpoint URL policy ([`parse_endpoint`], [`is_loopback`]);
//! - `headers.rs`: the headers a configuration may not set;
//! - `fields.rs`: the reader of typed keys that names unknown ones.

mod endpoint;
mod fields;
pub mod gateway;
mod headers;
mod provider;
mod settings;

pub use endpoint::{is_loopback, parse_endpoint};
pub use provider::{
    is_placeholder, parse_providers, validate_provider_id, PLACEHOLDER_MESSAGE, RESERVED_IDS,
};
pub use settings::{
    AuthStyle, ConfigError, Coordination, Naming, ProviderConfig, TokenSettings,
    DEFAULT_REFRESH_AHEAD_PERCENT, DEFAULT_TIMEOUT_MS, TOKEN_API_MAX_TTL_S,
};

#[cfg(test)]
mod tests;
