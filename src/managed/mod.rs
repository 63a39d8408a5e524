//! Managed clients: the callers an operator creates, changes and removes through the admin API
//! (`/admin/clients`), beside the static ones of `TOKENGATE_CLIENTS` ([`crate::callers`]).
//! Storage (a Durable Object in the Worker) holds each [`ClientRecord`] as
//! [`ClientRecord::to_json`] gives it; everything here is pure.
//!
//! - `record.rs`: the record ([`ClientRecord`], [`Limits`]), what creates one ([`NewClient`])
//!   and what changes one ([`ClientPatch`], [`LimitsPatch`]), and whether an address may use it
//!   ([`ClientRecord::allows_address`]);
//! - `cidr.rs`: the networks of an allowlist ([`Cidr`]);
//! - `admin.rs`: the admin API's bodies ([`parse_new_client`], [`parse_patch`]), its page query
//!   ([`parse_page_query`], [`next_cursor`], [`page`]) and its errors ([`AdminError`]).
//!
//! The API: `POST /admin/clients` takes `{name, scopes, token_ttl_s?, limits?:
//! {requests_per_minute?, total_requests?}, ip_allowlist?, disabled?}`; `PATCH
//! /admin/clients/{id}` any of those members; a record is `{client_id, name, scopes,
//! token_ttl_s, limits, ip_allowlist, disabled, created_at, updated_at}`. Errors are
//! `{"error", "error_description"}`: 400 `invalid_request` for a body that is not a JSON object,
//! 422 `invalid_request` with `"field"` for an invalid value (the description starts with the
//! field), 404 `not_found`.

mod admin;
mod cidr;
mod record;

pub use admin::{
    next_cursor, page, parse_new_client, parse_page_query, parse_patch, AdminError, PageQuery,
    DEFAULT_PAGE_LIMIT, MAX_ALLOWLIST, MAX_NAME_CHARS, MAX_PAGE_LIMIT, MAX_SCOPES,
    REQUESTS_PER_MINUTE_RANGE, TOKEN_TTL_RANGE_S, TOTAL_REQUESTS_RANGE,
};
pub use cidr::Cidr;
pub use record::{ClientPatch, ClientRecord, Limits, LimitsPatch, NewClient};

#[cfg(test)]
mod tests;
