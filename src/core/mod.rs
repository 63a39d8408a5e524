//! The pure core: everything here is deterministic. Time, randomness and IO are inputs.

pub mod cache_key;
pub mod callers;
pub mod config;
pub mod dialect;
pub mod error;
pub mod expiry;
pub mod http;
pub mod jwt;
pub mod proxy;
pub mod response;
pub mod retry;
pub mod seal;
pub mod secret;

pub use config::{AuthStyle, ConfigError, ProviderConfig, TokenSettings};
pub use error::{ErrorCode, TokenError};
pub use http::{HttpRequest, HttpResponse};
pub use response::Token;
pub use secret::Secret;
