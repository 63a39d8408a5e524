//! [`Tokens`]: what an API call needs of a provider's tokens, whoever obtains them — this
//! isolate's own [`super::TokenSource`], or a [`super::MintedSource`] that asks a coordinator
//! minting for every isolate.

use super::Runtime;
use crate::api_call::RefusedToken;
use crate::error::TokenError;
use crate::response::Token;
use crate::secret::Secret;
use crate::token_machine::TokenOrigin;
use crate::TokenSettings;

/// A provider's tokens, as [`super::call_api`] and [`super::decide`] use them.
#[allow(async_fn_in_trait)] // single-threaded runtimes: no Send bound wanted
pub trait Tokens {
    /// The runtime (clock, jitter, sleep, logs).
    type Rt: Runtime;
    /// The name the provider has in logs.
    fn name(&self) -> &str;
    /// The provider's token settings (its retry policy and timeout).
    fn settings(&self) -> &TokenSettings;
    /// The runtime.
    fn runtime(&self) -> &Self::Rt;
    /// A token to send, and where it came from.
    async fn token(&self) -> Result<(Token, TokenOrigin), TokenError>;
    /// What is known about `token`, which the API has just refused with 401.
    fn refused(&self, token: &Secret) -> RefusedToken;
    /// Deals with `token`, which the API refused: afterwards [`Tokens::token`] gives the token
    /// to replay with — a new one, or the same one when the refusal turned out not to be the
    /// token's fault (then the API's 401 stands).
    async fn forget_refused(&self, token: &Secret);
}
