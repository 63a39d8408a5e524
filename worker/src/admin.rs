//! The admin API, `/admin/*`, for operators holding `TOKENGATE_ADMIN_TOKEN` (a bearer,
//! compared in constant time as SHA-256 digests, behind the failed-authentication limit of the
//! client address: [`admin_token`]). Without that secret every route is 404.
//! Managed callers live in the caller authority: changes go through the directory (which
//! applies them through each caller's object and keeps its index in step), reads of one
//! caller go to its object.

use crate::client_auth::{admin_token, hex, unavailable};
use crate::config::Gateway;
use crate::js;
use crate::oauth::provider_scopes;
use crate::respond::{error, json_response, Result};
use crate::runtime::{log_event, random_bytes};
use serde_json::{json, Value};
use tokengate::authority::client::split_public_token_id;
use tokengate::authority::stats::{merge_latest, ErrorEntry};
use tokengate::authority::{client_object, provider_object, sha256, Op, DIRECTORY};
use tokengate::caller_tokens::parse_bearer;
use tokengate::credentials::{self, Kind};
use tokengate::flow::Runtime;
use tokengate::gateway_error::GatewayError;
use tokengate::managed::{
    next_cursor, parse_new_client, parse_page_query, parse_patch, AdminError,
};
use tokengate::oauth_server::scope_catalogue;

/// Largest admin request body read.
const MAX_BODY: usize = 64 * 1024;
/// Page size when the admin API walks every managed caller (tokens, stats).
const WALK_PAGE: usize = 100;

type Answer = std::result::Result<(u16, Value), GatewayError>;

/// Handles `/admin/*`.
pub async fn handle(
    gw: &Gateway,
    req: web_sys::Request,
    method: &str,
    path: &str,
    query: Option<&str>,
) -> Result<web_sys::Response> {
    if gw.admin_token_sha256.is_none() {
        return error(&GatewayError::NotFound("no such route".into()));
    }
    let headers = req.headers();
    let authorization = js::header(&headers, "authorization");
    // The admin token is guessed against the failed-authentication limit of the client
    // address, with the OAuth endpoints' credentials.
    match admin_token(
        gw,
        &headers,
        parse_bearer(authorization.as_deref()),
        "admin",
    )
    .await
    {
        Ok(true) => {}
        Ok(false) => {
            return error(&GatewayError::InvalidToken(
                "the admin API takes the admin token as a bearer",
            ))
        }
        Err(e) => return error(&e),
    }
    // `/admin` once: `/admin/admin/clients` is no route.
    let segments: Vec<&str> = path
        .strip_prefix("/admin")
        .unwrap_or_default()
        .split('/')
        .skip(1)
        .collect();
    let answer = route(gw, &req, method, &segments, query).await;
    match answer {
        Ok((204, _)) => json_response_empty(),
        Ok((status, body)) => json_response(status, &body, &[]),
        Err(e) => error(&e),
    }
}

fn json_response_empty() -> Result<web_sys::Response> {
    let headers = js::headers(&[("Cache-Control", "no-store")])?;
    js::response(204, &headers, None)
}

fn admin_error(e: AdminError) -> GatewayError {
    GatewayError::Admin(e)
}

async fn body(req: &web_sys::Request) -> std::result::Result<Vec<u8>, GatewayError> {
    match js::read_limited(req.body(), MAX_BODY).await {
        Ok(Some(b)) => Ok(b),
        Ok(None) => Err(admin_error(AdminError::malformed(
            "the request body is larger than 64 KiB",
        ))),
        Err(_) => Err(admin_error(AdminError::malformed(
            "the request body could not be read",
        ))),
    }
}

fn method_not_allowed(allow: &'static str) -> GatewayError {
    GatewayError::MethodNotAllowed(allow)
}

async fn route(
    gw: &Gateway,
    req: &web_sys::Request,
    method: &str,
    segments: &[&str],
    query: Option<&str>,
) -> Answer {
    // An empty segment names nothing (`/admin/clients/` is no client).
    if segments.iter().any(|s| s.is_empty()) {
        return Err(GatewayError::NotFound("no such admin route".into()));
    }
    match segments {
        ["clients"] => match method {
            "POST" => create_client(gw, &body(req).await?).await,
            "GET" => list_clients(gw, query).await,
            _ => Err(method_not_allowed("GET, POST")),
        },
        ["clients", id] => match method {
            "GET" => client_call(gw, id, &Op::Get).await,
            "PATCH" => {
                let body = body(req).await?;
                parse_patch(&body, |p| gw.providers.contains_key(p)).map_err(admin_error)?;
                let text = String::from_utf8_lossy(&body).into_owned();
                let answer = change(gw, id, Op::Patch { body: text }).await?;
                log_event(
                    "admin",
                    json!({"action": "client_updated", "client_id": id}),
                );
                Ok(answer)
            }
            "DELETE" => {
                let answer = change(gw, id, Op::Delete).await?;
                log_event(
                    "admin",
                    json!({"action": "client_deleted", "client_id": id}),
                );
                Ok(answer)
            }
            _ => Err(method_not_allowed("GET, PATCH, DELETE")),
        },
        ["clients", id, "rotate-secret"] => match method {
            "POST" => rotate(gw, id).await,
            _ => Err(method_not_allowed("POST")),
        },
        ["tokens"] => match method {
            "GET" => list_tokens(gw, query).await,
            _ => Err(method_not_allowed("GET")),
        },
        ["tokens", public_id] => match method {
            "DELETE" => {
                let Some((client, id)) = split_public_token_id(public_id) else {
                    return Err(admin_error(AdminError::not_found("no such token")));
                };
                let op = Op::RevokeId { id: id.to_string() };
                let answer = client_call(gw, client, &op).await?;
                if answer.0 == 204 {
                    log_event(
                        "admin",
                        json!({"action": "token_revoked", "client_id": client,
                                              "by": "admin"}),
                    );
                    Ok(answer)
                } else {
                    Err(admin_error(AdminError::not_found("no such token")))
                }
            }
            _ => Err(method_not_allowed("DELETE")),
        },
        ["scopes"] => match method {
            "GET" => Ok((200, scope_catalogue(&provider_scopes(gw)))),
            _ => Err(method_not_allowed("GET")),
        },
        ["stats"] => match method {
            "GET" => stats(gw, query).await,
            _ => Err(method_not_allowed("GET")),
        },
        ["errors"] => match method {
            "GET" => errors(gw, query).await,
            _ => Err(method_not_allowed("GET")),
        },
        ["providers"] => match method {
            "GET" => providers(gw).await,
            _ => Err(method_not_allowed("GET")),
        },
        ["providers", id, "token"] => match method {
            "DELETE" => drop_provider_token(gw, id).await,
            _ => Err(method_not_allowed("DELETE")),
        },
        _ => Err(GatewayError::NotFound("no such admin route".into())),
    }
}

/// An op to one caller's object: its answer, an [`AdminError`] as it is, a failure as 503.
async fn client_call(gw: &Gateway, id: &str, op: &Op) -> Answer {
    object_call(gw, &client_object(id), op).await
}

async fn object_call(gw: &Gateway, object: &str, op: &Op) -> Answer {
    match gw.authority.call(object, op).await {
        Ok((status, body)) if status < 500 => Ok((status, body)),
        Ok((status, _)) => Err(unavailable("admin", format!("status {status}"))),
        Err(e) => Err(unavailable("admin", e)),
    }
}

/// A change to managed caller `id`, applied by the directory.
async fn change(gw: &Gateway, id: &str, op: Op) -> Answer {
    let op = Op::Change {
        id: id.to_string(),
        change: Box::new(op),
    };
    object_call(gw, DIRECTORY, &op).await
}

fn new_secret(gw: &Gateway) -> std::result::Result<String, GatewayError> {
    let random =
        random_bytes::<32>().ok_or(GatewayError::Unavailable("no randomness to make a secret"))?;
    Ok(credentials::issue(Kind::Secret, None, random, &gw.keys))
}

/// `POST /admin/clients`: 201 with the record and `client_secret` (shown once).
async fn create_client(gw: &Gateway, body: &[u8]) -> Answer {
    let new = parse_new_client(body, |p| gw.providers.contains_key(p)).map_err(admin_error)?;
    let id_random = random_bytes::<16>().ok_or(GatewayError::Unavailable(
        "no randomness to make a client id",
    ))?;
    let client_id = credentials::client_id(id_random);
    let secret = new_secret(gw)?;
    let record = new.into_record(client_id.clone(), gw.rt.now_ms() / 1000);
    let op = Op::Add {
        record: record.to_json(),
        secret_sha256: hex(&sha256(secret.as_bytes())),
    };
    let (status, mut shown) = object_call(gw, DIRECTORY, &op).await?;
    if status != 201 {
        return Err(unavailable("add", format!("status {status}")));
    }
    if let Some(obj) = shown.as_object_mut() {
        obj.insert("client_secret".into(), Value::String(secret));
    }
    log_event(
        "admin",
        json!({"action": "client_created", "client_id": client_id}),
    );
    Ok((201, shown))
}

/// `POST /admin/clients/{id}/rotate-secret`: the new secret (shown once); the old one and
/// every token issued under it stop working at once.
async fn rotate(gw: &Gateway, id: &str) -> Answer {
    let secret = new_secret(gw)?;
    let op = Op::Rotate {
        secret_sha256: hex(&sha256(secret.as_bytes())),
    };
    let (status, body) = change(gw, id, op).await?;
    if status != 200 {
        return Ok((status, body));
    }
    log_event(
        "admin",
        json!({"action": "secret_rotated", "client_id": id}),
    );
    Ok((200, json!({"client_id": id, "client_secret": secret})))
}

/// `GET /admin/clients?cursor=&limit=`.
async fn list_clients(gw: &Gateway, query: Option<&str>) -> Answer {
    let page = parse_page_query(query).map_err(admin_error)?;
    let op = Op::List {
        after: page.after,
        limit: page.limit,
    };
    let (_, v) = object_call(gw, DIRECTORY, &op).await?;
    let next = v.get("last").and_then(Value::as_str).map(next_cursor);
    Ok((
        200,
        json!({"items": v.get("items").cloned().unwrap_or(json!([])), "next_cursor": next}),
    ))
}

/// Every managed caller's id, page by page.
async fn managed_ids(gw: &Gateway) -> std::result::Result<Vec<String>, GatewayError> {
    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let op = Op::List {
            after: after.clone(),
            limit: WALK_PAGE,
        };
        let (_, v) = object_call(gw, DIRECTORY, &op).await?;
        for item in v
            .get("items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(id) = item.get("client_id").and_then(Value::as_str) {
                ids.push(id.to_string());
            }
        }
        match v.get("last").and_then(Value::as_str) {
            Some(last) => after = Some(last.to_string()),
            None => return Ok(ids),
        }
    }
}

/// One query parameter's value.
fn param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The `client_id` query parameter, if given: an empty one names no caller (422).
fn client_param(query: Option<&str>) -> std::result::Result<Option<String>, GatewayError> {
    match param(query, "client_id") {
        Some(id) if id.is_empty() => Err(admin_error(AdminError::invalid(
            "client_id",
            "must not be empty",
        ))),
        given => Ok(given),
    }
}

/// `GET /admin/tokens?client_id=`: the live tokens of one managed caller, or of all.
async fn list_tokens(gw: &Gateway, query: Option<&str>) -> Answer {
    let ids = match client_param(query)? {
        Some(id) => vec![id],
        None => managed_ids(gw).await?,
    };
    let lists =
        futures::future::join_all(ids.iter().map(|id| client_call(gw, id, &Op::Tokens))).await;
    let mut items = Vec::new();
    for (id, answer) in ids.iter().zip(lists) {
        match answer? {
            (200, v) => items.extend(
                v.get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            ),
            (404, _) if ids.len() == 1 => {
                return Err(admin_error(AdminError::not_found(format!(
                    "no managed client `{id}`"
                ))))
            }
            _ => {}
        }
    }
    Ok((200, json!({ "items": items })))
}

/// `GET /admin/stats?provider=&client_id=`: `{providers: {id: …}, clients: {id: …}}` — every
/// provider and every caller (static and managed), or the one asked for.
async fn stats(gw: &Gateway, query: Option<&str>) -> Answer {
    let provider = param(query, "provider");
    let client = client_param(query)?;
    if let Some(p) = &provider {
        if !gw.providers.contains_key(p) {
            return Err(admin_error(AdminError::invalid(
                "provider",
                "names no configured provider",
            )));
        }
    }
    let providers: Vec<String> = match &provider {
        Some(p) => vec![p.clone()],
        None if client.is_some() => vec![],
        None => gw.providers.keys().cloned().collect(),
    };
    let clients: Vec<String> = match &client {
        Some(c) => vec![c.clone()],
        None if provider.is_some() => vec![],
        None => {
            let mut ids: Vec<String> = gw.callers.iter().map(|c| c.client_id.clone()).collect();
            ids.extend(managed_ids(gw).await?);
            ids
        }
    };
    let p_objects: Vec<String> = providers.iter().map(|p| provider_object(p)).collect();
    let p_answers = futures::future::join_all(
        p_objects
            .iter()
            .map(|o| object_call(gw, o, &Op::ProviderStats)),
    );
    let c_answers =
        futures::future::join_all(clients.iter().map(|c| client_call(gw, c, &Op::ClientStats)));
    let (p_answers, c_answers) = futures::join!(p_answers, c_answers);
    let mut out_p = serde_json::Map::new();
    for (id, a) in providers.iter().zip(p_answers) {
        out_p.insert(id.clone(), a?.1);
    }
    let mut out_c = serde_json::Map::new();
    for (id, a) in clients.iter().zip(c_answers) {
        out_c.insert(id.clone(), a?.1);
    }
    Ok((200, json!({"providers": out_p, "clients": out_c})))
}

/// `GET /admin/errors?limit=`: the latest errors of every provider, newest first.
async fn errors(gw: &Gateway, query: Option<&str>) -> Answer {
    let limit = match param(query, "limit") {
        None => 50,
        // Decimal digits only, as `GET /admin/clients` takes its `limit` (not `+5`).
        Some(l) => match l.parse::<usize>() {
            Ok(n) if l.bytes().all(|b| b.is_ascii_digit()) && (1..=100).contains(&n) => n,
            _ => {
                return Err(admin_error(AdminError::invalid(
                    "limit",
                    "must be a whole number from 1 to 100",
                )))
            }
        },
    };
    let objects: Vec<String> = gw.providers.keys().map(|p| provider_object(p)).collect();
    let op = Op::Errors { limit };
    let answers = futures::future::join_all(objects.iter().map(|o| object_call(gw, o, &op))).await;
    let mut logs = Vec::new();
    for a in answers {
        let (_, v) = a?;
        let items: Vec<ErrorEntry> = v
            .get("items")
            .cloned()
            .and_then(|i| serde_json::from_value(i).ok())
            .unwrap_or_default();
        logs.push(items);
    }
    Ok((200, json!({ "items": merge_latest(logs, limit) })))
}

/// `DELETE /admin/providers/{id}/token`: the provider's cached token is dropped — from this
/// isolate's memory, KV and the minter now, and from every other isolate's memory at its next
/// use (they learn it from the provider's authority object: see [`crate::stats`]).
async fn drop_provider_token(gw: &Gateway, id: &str) -> Answer {
    let Some(provider) = gw.providers.get(id) else {
        return Err(GatewayError::NotFound(format!("unknown provider `{id}`")));
    };
    // Memory, KV and (for a provider with a minter) the minter's storage.
    let dropped = provider
        .tokens
        .drop_token()
        .await
        .map_err(|e| unavailable("drop_token", e))?;
    let op = Op::DropTokens {
        tokens: dropped.iter().map(|h| hex(h)).collect(),
    };
    object_call(gw, &provider_object(id), &op).await?;
    log_event(
        "admin",
        json!({"action": "provider_token_dropped", "provider": id}),
    );
    Ok((204, Value::Null))
}

/// How many of a provider's latest errors `GET /admin/providers` shows.
const RECENT_ERRORS: usize = 5;

/// What is known of the provider token a request would be served next: never the token.
struct Held {
    /// `minter`, `memory` (this isolate's) or `kv`.
    by: &'static str,
    issued_at_ms: u64,
    expires_at_ms: u64,
    /// The first bytes of its SHA-256, in hex: tells one token from the next.
    sha256_prefix: String,
}

/// `GET /admin/providers`: every provider with the state of its token — who holds it (its
/// minter; else this isolate's memory or KV), when it was issued, expires and is refreshed —
/// its latest exchange, latest drop and latest errors. Metadata only: never a token or secret.
async fn providers(gw: &Gateway) -> Answer {
    let now = gw.rt.now_ms();
    let states = gw.providers.values().map(|p| async move {
        let object = provider_object(&p.config.id);
        let op = Op::ProviderState {
            errors: RECENT_ERRORS,
        };
        let (held, known) = futures::join!(held_token(gw, p), object_call(gw, &object, &op));
        let mut known = known?.1;
        let token = held?.map(|t| {
            let refresh_at = tokengate::expiry::refresh_at_ms(
                &p.config.token.expiry,
                t.issued_at_ms,
                t.expires_at_ms,
            );
            json!({
                "held_by": t.by,
                "issued_at_ms": t.issued_at_ms,
                "expires_at_ms": t.expires_at_ms,
                "refresh_at_ms": refresh_at,
                "expires_in_s": t.expires_at_ms.saturating_sub(now) / 1000,
                "fresh": now < refresh_at,
                "sha256_prefix": t.sha256_prefix,
            })
        });
        let minted = matches!(p.tokens, crate::config::ProviderTokens::Minted(_));
        let mut item = json!({
            "provider": p.config.id,
            "api_host": p.config.api_base.host_str().unwrap_or_default(),
            "auth_style": p.config.token.auth_style.as_str(),
            "coordination": if minted { "durable_object" } else { "isolate" },
            "token": token,
        });
        if let (Some(o), Some(k)) = (item.as_object_mut(), known.as_object_mut()) {
            for key in ["last_exchange", "dropped_at", "recent_errors"] {
                o.insert(key.into(), k.remove(key).unwrap_or(Value::Null));
            }
        }
        Ok::<_, GatewayError>(item)
    });
    let items = futures::future::join_all(states)
        .await
        .into_iter()
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((200, json!({ "items": items })))
}

/// The provider token a request would be served next, and who holds it: the minter (asked, for
/// a provider it coordinates), else this isolate's memory or KV. Nothing is obtained.
async fn held_token(
    gw: &Gateway,
    p: &crate::config::Provider,
) -> std::result::Result<Option<Held>, GatewayError> {
    use tokengate::flow::TokenStore;
    let held = |by, t: &tokengate::response::Token| Held {
        by,
        issued_at_ms: t.issued_at_ms,
        expires_at_ms: t.expires_at_ms,
        sha256_prefix: crate::minter::sha256_prefix(t),
    };
    if let crate::config::ProviderTokens::Minted(m) = &p.tokens {
        let v = crate::minter::minter_state(&m.minter().ns, &p.key, &p.config.id)
            .await
            .map_err(|e| unavailable("minter_state", e))?;
        let t = &v["token"];
        let field = |k: &str| t.get(k).and_then(Value::as_u64);
        return Ok(match (field("issued_at_ms"), field("expires_at_ms")) {
            (Some(issued_at_ms), Some(expires_at_ms)) => Some(Held {
                by: "minter",
                issued_at_ms,
                expires_at_ms,
                sha256_prefix: t["sha256_prefix"].as_str().unwrap_or_default().to_string(),
            }),
            _ => None,
        });
    }
    if let Some(t) = p.tokens.memory_token() {
        return Ok(Some(held("memory", &t)));
    }
    let store = crate::kv::KvTokenStore::new(&gw.kv, &gw.keys);
    let stored = store
        .get(&p.key)
        .await
        .map_err(|e| unavailable("provider_state", e))?;
    Ok(stored
        .as_deref()
        .and_then(tokengate::response::Token::from_stored)
        .filter(|t| t.expires_at_ms > gw.rt.now_ms())
        .map(|t| held("kv", &t)))
}
