//! Client authentication for the gateway's own OAuth endpoints (`/oauth/token`, `/revoke`,
//! `/introspect`): the failed-authentication limit of the client address, exact across
//! isolates (the caller authority's `address:` object: [`Gate`]), and the check of the
//! credentials — a static caller's in this isolate, a managed caller's by its authority
//! object.

use crate::config::Gateway;
use crate::js;
use crate::runtime::log_event;
use serde_json::{json, Value};
use tokengate::authority::{address_object, client_object, sha256, Op};
use tokengate::callers::Caller;
use tokengate::credentials::{self, Kind};
use tokengate::flow::Runtime;
use tokengate::gateway_error::GatewayError;
use tokengate::limits::{client_address, TokenEndpointRefusal};
use tokengate::secret::ct_eq_bytes;
use tokengate::Secret;

/// The caller authority could not answer.
pub fn unavailable(op: &str, detail: String) -> GatewayError {
    log_event("authority_error", json!({"op": op, "error": detail}));
    GatewayError::Unavailable("the caller authority is unavailable")
}

/// A token request's place at its address's gate, to settle once its credentials were
/// checked.
pub struct Gate {
    object: String,
    ticket: u64,
}

impl Gate {
    /// Enters the gate of `address` (see [`tokengate::limits::client_address`]): refused with
    /// 429 while the address has failed too often.
    /// `route` names the endpoint in the log line of a refusal.
    pub async fn open(gw: &Gateway, address: &str, route: &str) -> Result<Gate, GatewayError> {
        let object = address_object(address);
        match gw.authority.call(&object, &Op::Begin).await {
            Ok((200, v)) => match v.get("ticket").and_then(Value::as_u64) {
                Some(ticket) => Ok(Gate { object, ticket }),
                None => Err(unavailable("begin", "no ticket".into())),
            },
            Ok((429, v)) => {
                let retry_after_ms = v
                    .get("retry_after_ms")
                    .and_then(Value::as_u64)
                    .unwrap_or(60_000);
                log_event(
                    "caller_auth_refused",
                    json!({"reason": "too many failures from this address", "address": address,
                           "route": route}),
                );
                Err(GatewayError::TokenEndpointLimit(
                    TokenEndpointRefusal::AddressLocked { retry_after_ms },
                ))
            }
            Ok((status, _)) => Err(unavailable("begin", format!("status {status}"))),
            Err(e) => Err(unavailable("begin", e)),
        }
    }

    /// Settles the request: a failure is recorded before the answer goes out (so the limit
    /// is exact), a success frees its place in the background.
    pub async fn close(self, gw: &Gateway, failed: bool) {
        self.settle(gw, failed, false).await;
    }

    /// Settles the request before it goes on, a success too: for a request that has more to
    /// do than answer (an admin operation), whose place would otherwise count as a likely
    /// failure of its address until it ends.
    pub async fn close_now(self, gw: &Gateway, failed: bool) {
        self.settle(gw, failed, true).await;
    }

    async fn settle(self, gw: &Gateway, failed: bool, now: bool) {
        let op = Op::Settle {
            ticket: self.ticket,
            failed,
        };
        if failed || now {
            if let Err(e) = gw.authority.call(&self.object, &op).await {
                log_event("authority_error", json!({"op": "settle", "error": e}));
            }
        } else {
            let (authority, object) = (gw.authority.clone(), self.object);
            gw.rt.background(Box::pin(async move {
                let _ = authority.call(&object, &op).await;
            }));
        }
    }
}

/// Whether `bearer` is the admin token (`TOKENGATE_ADMIN_TOKEN`, compared as SHA-256 digests in
/// constant time), looked at through the gate of the client's address like any credential: a
/// locked address is refused (429) without a look, a wrong or missing token is recorded as a
/// failure before the answer, and a right one frees its place before the request goes on.
/// `route` names the endpoint in the log lines; a refusal is logged as `admin_refused` with the
/// address, never the token.
pub async fn admin_token(
    gw: &Gateway,
    headers: &web_sys::Headers,
    bearer: Option<&str>,
    route: &str,
) -> Result<bool, GatewayError> {
    let presented = bearer.map(|t| sha256(t.as_bytes()));
    let address = client_address(js::header(headers, "cf-connecting-ip").as_deref());
    let gate = Gate::open(gw, &address, route).await?;
    let admitted = match (gw.admin_token_sha256, presented) {
        (Some(admin), Some(presented)) => ct_eq_bytes(&presented, &admin),
        _ => false,
    };
    gate.close_now(gw, !admitted).await;
    if !admitted {
        log_event("admin_refused", json!({"route": route, "address": address}));
    }
    Ok(admitted)
}

/// An authenticated caller.
pub enum Authenticated<'a> {
    /// One of `TOKENGATE_CLIENTS`.
    Static(&'a Caller),
    /// A managed caller, with its current scopes.
    Managed {
        /// Its id.
        client_id: String,
        /// Its scopes.
        scopes: Vec<String>,
    },
}

impl Authenticated<'_> {
    /// The caller's id.
    pub fn client_id(&self) -> &str {
        match self {
            Authenticated::Static(c) => &c.client_id,
            Authenticated::Managed { client_id, .. } => client_id,
        }
    }

    /// The caller's scopes.
    pub fn scopes(&self) -> &[String] {
        match self {
            Authenticated::Static(c) => &c.scopes,
            Authenticated::Managed { scopes, .. } => scopes,
        }
    }
}

/// Why credentials were not accepted.
pub enum Refused {
    /// They do not authenticate (401 `invalid_client`; counts as a failure at the gate).
    Failed,
    /// They may be right, but the request is refused for another reason (403 outside the
    /// allowlist, 503).
    Other(GatewayError),
}

/// Checks `client_id` and `secret` (`address`: `CF-Connecting-IP`). A managed caller's
/// secret is first checked for its shape, checksum and tag, so a mistyped or made-up one
/// costs no round trip.
pub async fn authenticate<'a>(
    gw: &'a Gateway,
    client_id: &str,
    secret: &Secret,
    address: Option<&str>,
) -> Result<Authenticated<'a>, Refused> {
    if !credentials::is_managed_client_id(client_id) {
        return gw
            .callers
            .authenticate(client_id, secret)
            .map(Authenticated::Static)
            .ok_or(Refused::Failed);
    }
    if credentials::check(secret.expose(), Kind::Secret, &gw.keys).is_err() {
        return Err(Refused::Failed);
    }
    let op = Op::Authenticate {
        secret_sha256: hex(&sha256(secret.expose().as_bytes())),
        address: address.map(str::to_string),
    };
    match gw.authority.call(&client_object(client_id), &op).await {
        Ok((200, v)) => Ok(Authenticated::Managed {
            client_id: client_id.to_string(),
            scopes: v
                .get("scopes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect(),
        }),
        Ok((401, _)) => Err(Refused::Failed),
        Ok((403, _)) => Err(Refused::Other(GatewayError::AccessDenied)),
        Ok((status, _)) => Err(Refused::Other(unavailable(
            "authenticate",
            format!("status {status}"),
        ))),
        Err(e) => Err(Refused::Other(unavailable("authenticate", e))),
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
