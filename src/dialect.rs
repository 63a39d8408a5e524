//! Token-request building per [`AuthStyle`] — the byte-exact request each provider expects.
//!
//! - `client_secret_basic`: RFC 6749 §2.3.1 — id and secret are each
//!   `application/x-www-form-urlencoded` before `id:secret` is base64-encoded into HTTP Basic;
//!   the body is a form with `grant_type=client_credentials` (§4.4.2).
//! - `client_secret_post`: the credentials as form parameters (§2.3.1; Optimum Automotive,
//!   `docs/providers.md#optimum-token-request`).
//! - `json_body`: a JSON object `{client_id, client_secret, grant_type}` with
//!   `Content-Type: application/json` (Optoro, whose token endpoint spec forbids any other key:
//!   `docs/providers.md#optoro-token-request`; and the partner API:
//!   `docs/providers.md#partner-token-request`).
//!
//! - `token_api`: a token-management API (openapi.com Oauth v2,
//!   `docs/providers.md#openapi-token-api`): `POST {token_url}` with HTTP Basic encoded as RFC
//!   7617 §2 says — `id:secret` in UTF-8, base64, nothing form-encoded (an e-mail's `@` or `+`
//!   must arrive as written) — and the configured `token_body` as JSON creates a token;
//!   [`rotate_request`] and [`revoke_request`] are its `PATCH` and `DELETE`.
//!
//! - `private_key_jwt` (RFC 7523 §2.2): a form with `client_id`; the signed
//!   `client_assertion` is appended per request by [`crate::flow::ProofTransport`].
//! - `tls_client_auth` (RFC 8705 §2.1.1): a form with `client_id` only; the certificate is
//!   presented in the TLS handshake.
//!
//! Every style sends `Accept: application/json` (the partner API requires it:
//! `docs/providers.md#partner-token-request`).

use crate::config::{AuthStyle, TokenSettings};
use crate::error::TokenError;
use crate::http::HttpRequest;
use crate::http::HttpResponse;
use crate::response::{parse_token_record, parse_token_response_of, Token};
use crate::scrub::{Scrubber, UNRESERVED};
use crate::secret::Secret;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use percent_encoding::utf8_percent_encode;
use serde_json::{Map, Value};

/// The token request for `settings` with client secret `secret`.
pub fn build_token_request(settings: &TokenSettings, secret: &Secret) -> HttpRequest {
    if settings.auth_style == AuthStyle::TokenApi {
        // (The configuration requires a body; none would be `{}`, never an OAuth form.)
        let body = settings.token_body.clone().unwrap_or_default();
        return token_api_request(
            settings,
            "POST",
            settings.token_url.to_string(),
            basic_plain(&settings.client_id, secret),
            Some(Value::Object(body)),
        );
    }
    let mut params: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
    let mut headers = vec![("Accept".to_string(), "application/json".to_string())];
    match settings.auth_style {
        AuthStyle::ClientSecretBasic => {
            let pair = format!(
                "{}:{}",
                form_encode(&settings.client_id),
                form_encode(secret.expose())
            );
            headers.push((
                "Authorization".into(),
                format!("Basic {}", STANDARD.encode(pair)),
            ));
        }
        AuthStyle::ClientSecretPost | AuthStyle::JsonBody | AuthStyle::TokenApi => {
            params.push(("client_id", &settings.client_id));
            params.push(("client_secret", secret.expose()));
        }
        // The client id, and no secret: the assertion that authenticates the client is added
        // to the form when the request is sent, a new one each time
        // ([`crate::flow::ProofTransport`]); a `tls_client_auth` client is authenticated by its
        // certificate (RFC 8705 §2.1.1).
        AuthStyle::PrivateKeyJwt | AuthStyle::TlsClientAuth => {
            params.push(("client_id", &settings.client_id));
        }
    }
    for (k, v) in [
        ("scope", &settings.scope),
        ("audience", &settings.audience),
        ("resource", &settings.resource),
    ] {
        if let Some(v) = v {
            params.push((k, v));
        }
    }
    for (k, v) in &settings.token_params {
        params.push((k, v));
    }
    let (content_type, body) = match settings.auth_style {
        AuthStyle::JsonBody => {
            // Inserted one by one (a map collected from an iterator is sorted first, which
            // costs the wasm builds a sort routine of their own).
            let mut obj = Map::new();
            for (k, v) in &params {
                obj.insert(k.to_string(), Value::String(v.to_string()));
            }
            ("application/json", Value::Object(obj).to_string())
        }
        _ => {
            let mut ser = form_urlencoded::Serializer::new(String::new());
            ser.extend_pairs(params.iter());
            ("application/x-www-form-urlencoded", ser.finish())
        }
    };
    headers.push(("Content-Type".into(), content_type.into()));
    for (k, v) in &settings.token_headers {
        headers.push((k.clone(), v.clone()));
    }
    HttpRequest {
        method: "POST".into(),
        url: settings.token_url.to_string(),
        headers,
        body: body.into_bytes(),
    }
}

/// Reads a 2xx answer to [`build_token_request`] or [`rotate_request`] received at `now_ms`:
/// an RFC 6749 §5.1 token response, or a token API's token record. What an error keeps of it
/// has gone through `scrub`.
pub fn parse_reply(
    settings: &TokenSettings,
    resp: &HttpResponse,
    now_ms: u64,
    scrub: &Scrubber,
) -> Result<Token, TokenError> {
    if settings.auth_style.manages_tokens() {
        parse_token_record(resp, now_ms, &settings.expiry, scrub)
    } else {
        parse_token_response_of(resp, now_ms, &settings.expiry, scrub, settings.dpop)
    }
}

/// The request that rotates `token` (`PATCH {token_url}/{token}` with `Authorization: Bearer
/// <refresh token>` and `{"ttl": …}`, or `{}` without a configured ttl): a new token and
/// refresh token with the same scopes, the old token deleted by the service
/// (`docs/providers.md#openapi-token-api`). `None` when the dialect does not rotate or the
/// token came without a refresh token.
pub fn rotate_request(settings: &TokenSettings, token: &Token) -> Option<HttpRequest> {
    if !settings.auth_style.manages_tokens() {
        return None;
    }
    let refresh = token.refresh_token.as_ref()?;
    let url = token_url_of(settings, token)?;
    let mut body = Map::new();
    if let Some(ttl) = settings.token_body.as_ref().and_then(|b| b.get("ttl")) {
        body.insert("ttl".into(), ttl.clone());
    }
    Some(token_api_request(
        settings,
        "PATCH",
        url,
        format!("Bearer {}", refresh.expose()),
        Some(Value::Object(body)),
    ))
}

/// The request that removes `token` from the service (`DELETE {token_url}/{token}`, HTTP
/// Basic): a token replaced other than by rotation (by a new one, by another instance's, or
/// minted in an answer that could not be read). `None` when the dialect does not manage tokens
/// (or the token cannot be named in a path).
pub fn revoke_request(
    settings: &TokenSettings,
    secret: &Secret,
    token: &Token,
) -> Option<HttpRequest> {
    if !settings.auth_style.manages_tokens() {
        return None;
    }
    Some(token_api_request(
        settings,
        "DELETE",
        token_url_of(settings, token)?,
        basic_plain(&settings.client_id, secret),
        None,
    ))
}

/// The request that lists the account's live tokens (`GET {token_url}`, HTTP Basic as for
/// creation; `docs/providers.md#openapi-token-api`): how a token that still stands is told
/// from one that is gone, when the API refused it. `None` unless the dialect manages tokens.
pub fn list_request(settings: &TokenSettings, secret: &Secret) -> Option<HttpRequest> {
    if !settings.auth_style.manages_tokens() {
        return None;
    }
    Some(token_api_request(
        settings,
        "GET",
        settings.token_url.to_string(),
        basic_plain(&settings.client_id, secret),
        None,
    ))
}

/// `{token_url}/{token}`, the token one path segment below the collection (everything but RFC
/// 3986 `unreserved` percent-encoded, so a token can never add a segment or a query: the same
/// spelling [`crate::scrub`] looks for); `None` for a token
/// of only dots, which no encoding keeps from being a dot segment (RFC 3986 §5.2.4; the WHATWG
/// URL parser reads `%2E` as a dot too).
fn token_url_of(settings: &TokenSettings, token: &Token) -> Option<String> {
    let t = token.access_token.expose();
    if t.bytes().all(|b| b == b'.') {
        return None;
    }
    let base = settings.token_url.as_str().trim_end_matches('/');
    Some(format!("{base}/{}", utf8_percent_encode(t, UNRESERVED)))
}

/// HTTP Basic as RFC 7617 §2 defines it: `user-id ":" password` in UTF-8, base64-encoded,
/// nothing else encoded.
fn basic_plain(user: &str, secret: &Secret) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{user}:{}", secret.expose()))
    )
}

/// A token API request: `Accept` and `Authorization`, a JSON `body` (with its `Content-Type`)
/// when there is one, then the configured `token_headers`.
fn token_api_request(
    settings: &TokenSettings,
    method: &str,
    url: String,
    authorization: String,
    body: Option<Value>,
) -> HttpRequest {
    let mut headers = vec![
        ("Accept".to_string(), "application/json".to_string()),
        ("Authorization".to_string(), authorization),
    ];
    if body.is_some() {
        headers.push(("Content-Type".to_string(), "application/json".to_string()));
    }
    for (k, v) in &settings.token_headers {
        headers.push((k.clone(), v.clone()));
    }
    HttpRequest {
        method: method.into(),
        url,
        headers,
        body: body.map_or_else(Vec::new, |b| b.to_string().into_bytes()),
    }
}

fn form_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests;
