//! API calls with a provider token: [`call_api`] sends attempts and performs what
//! [`crate::api_call::ApiCall`] decides after each; [`decide`] is the one step shared with a
//! shell that runs its own loop (the npm package's JavaScript `fetch`).

use super::{Runtime, TokenOrigin, Tokens, TransportError};
use crate::api_call::{Action, ApiCall, Attempted, CallError, Facts, RefusedToken};
use crate::response::Token;
use crate::secret::Secret;
use serde_json::json;
use std::cell::Cell;
use std::future::Future;

/// What one API attempt returned.
pub struct ApiReply<Resp> {
    /// HTTP status.
    pub status: u16,
    /// The raw `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The response itself, handed back to the caller untouched.
    pub response: Resp,
}

/// The action after an attempt of `call` that carried `token` and ended as `attempted`: the
/// machine's [`Facts`] are `source`'s runtime (time, jitter) and, after a 401, what `source`'s
/// memory says about the token. Logs `api_401_not_refreshed` when a 401 stands because one
/// caused a refresh less than [`crate::api_call::REFRESH_ON_401_WINDOW_MS`] ago.
pub fn decide<P: Tokens>(
    source: &P,
    call: &mut ApiCall,
    attempted: Attempted<'_>,
    token: impl FnOnce() -> Secret,
) -> Action {
    let facts = SourceFacts {
        source,
        token: Cell::new(Some(token)),
        held: Cell::new(false),
    };
    let action = call.next(attempted, &facts);
    let standing = Action::Return {
        forget_token: false,
    };
    if facts.held.get() && action == standing {
        source.runtime().log(
            "api_401_not_refreshed",
            json!({"provider": source.name(),
                   "reason": "a 401 refreshed the token less than 30 s ago"}),
        );
    }
    action
}

/// The facts of [`decide`]: `source`'s runtime and memory.
struct SourceFacts<'a, P, F> {
    source: &'a P,
    token: Cell<Option<F>>,
    /// Set when a 401's token was the current one.
    held: Cell<bool>,
}

impl<P, F> Facts for SourceFacts<'_, P, F>
where
    P: Tokens,
    F: FnOnce() -> Secret,
{
    fn now_ms(&self) -> u64 {
        self.source.runtime().now_ms()
    }

    fn jitter(&self) -> f64 {
        self.source.runtime().jitter()
    }

    fn refused(&self) -> RefusedToken {
        let refused = match self.token.take() {
            Some(token) => self.source.refused(&token()),
            None => RefusedToken::Replaced,
        };
        self.held
            .set(matches!(refused, RefusedToken::Current { .. }));
        refused
    }
}

/// Calls an API with a bearer token from `source`: `send(token)` performs one attempt of a
/// `method` request whose body can (`replayable`) or cannot be sent again. Returns the response
/// to hand to the caller, where the token it carried came from, and that token (so the
/// response can be checked for an echo of it).
pub async fn call_api<P, Resp, F, Fut>(
    source: &P,
    method: &str,
    replayable: bool,
    mut send: F,
) -> Result<(Resp, TokenOrigin, Secret), CallError>
where
    P: Tokens,
    F: FnMut(Secret) -> Fut,
    Fut: Future<Output = Result<ApiReply<Resp>, TransportError>>,
{
    call_api_token(source, method, replayable, move |t: Token| {
        send(t.access_token)
    })
    .await
}

/// [`call_api`] whose `send` gets the whole token record: its type says how it is sent
/// ([`Token::authorization`]: `Bearer`, or `DPoP` with a proof bound to it).
pub async fn call_api_token<P, Resp, F, Fut>(
    source: &P,
    method: &str,
    replayable: bool,
    mut send: F,
) -> Result<(Resp, TokenOrigin, Secret), CallError>
where
    P: Tokens,
    F: FnMut(Token) -> Fut,
    Fut: Future<Output = Result<ApiReply<Resp>, TransportError>>,
{
    let mut call = ApiCall::new(method, replayable, source.settings().retry);
    let (mut record, mut origin) = source.token().await.map_err(CallError::Token)?;
    let mut token = record.access_token.clone();
    loop {
        let result = send(record.clone()).await;
        let attempted = match &result {
            Ok(reply) => Attempted::Response {
                status: reply.status,
                retry_after: reply.retry_after.as_deref(),
            },
            Err(TransportError::Timeout) => Attempted::Timeout,
            Err(TransportError::Network(_)) => Attempted::Network,
        };
        let action = decide(source, &mut call, attempted, || token.clone());
        if let Action::Retry { .. } | Action::Replay { .. } = action {
            let status = result.as_ref().ok().map(|r| r.status);
            source.runtime().log(
                "api_retry",
                json!({"provider": source.name(), "status": status,
                       "replay": matches!(action, Action::Replay { .. })}),
            );
        }
        match action {
            Action::Retry { delay_ms } => source.runtime().sleep(delay_ms).await,
            Action::Replay { forget_token } => {
                if forget_token {
                    source.forget_refused(&token).await;
                }
                let (t, o) = source.token().await.map_err(CallError::Token)?;
                if forget_token && t.access_token.ct_eq(token.expose()) {
                    // The refusal was not the token's fault (it is still the one to use): the
                    // API's 401 stands rather than being asked again.
                    return result
                        .map(|r| (r.response, origin, token))
                        .map_err(CallError::Transport);
                }
                (token, origin) = (t.access_token.clone(), o);
                record = t;
            }
            Action::Return { forget_token } => {
                if forget_token {
                    source.forget_refused(&token).await;
                }
                return result
                    .map(|r| (r.response, origin, token))
                    .map_err(CallError::Transport);
            }
            Action::Fail(_) => {
                return result
                    .map(|r| (r.response, origin, token))
                    .map_err(CallError::Transport)
            }
        }
    }
}
