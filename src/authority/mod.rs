//! The caller authority: what must be exact across isolates and locations about tokengate's
//! callers, and the protocol an isolate speaks to it. In the Worker it is a Durable Object
//! class (`CallerAuthority`, binding `TOKENGATE_LIMITER`) with one object per concern:
//!
//! | object | keeps | decides |
//! | --- | --- | --- |
//! | `client:<client id>` | a managed caller's record, secret hash, live tokens, limits and counts ([`client`]); a static caller's token-request window and counts | token requests, every proxied request of a managed caller, revocation, introspection |
//! | `address:<address>` | failed authentications from one client address ([`address`]) | whether `POST /oauth/token` looks at a request |
//! | `directory` | the index of managed callers (for listing) and the ledger of static callers' registrations ([`crate::caller_tokens::CallerLedger`]) | admin changes to managed callers, which it applies through their objects |
//! | `provider:<id>` | a provider's statistics and error log ([`stats`]), and the provider tokens dropped by an operator | — |
//!
//! Workers KV holds nothing these decisions depend on: deleting or replaying a KV entry can
//! never revive a revoked token or a removed caller.
//!
//! An isolate sends one [`Op`] as JSON to the object by name and gets `(status, JSON)` back.
//! Nothing here performs I/O.

pub mod address;
pub mod client;
pub mod stats;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

pub use stats::{client_object, provider_object};

/// The name of the directory object.
pub const DIRECTORY: &str = "directory";

/// The name of a client address's object (see [`crate::limits::client_address`]).
pub fn address_object(address: &str) -> String {
    format!("address:{address}")
}

/// What an object is, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    /// `client:<id>`.
    Client,
    /// `address:<address>`.
    Address,
    /// `directory`.
    Directory,
    /// `provider:<id>`.
    Provider,
}

impl ObjectKind {
    /// The kind of the object named `name`, if it is one.
    pub fn of(name: &str) -> Option<ObjectKind> {
        if name == DIRECTORY {
            return Some(ObjectKind::Directory);
        }
        let (kind, rest) = name.split_once(':')?;
        if rest.is_empty() {
            return None;
        }
        match kind {
            "client" => Some(ObjectKind::Client),
            "address" => Some(ObjectKind::Address),
            "provider" => Some(ObjectKind::Provider),
            _ => None,
        }
    }
}

/// One request to an authority object. Hashes are hex SHA-256; no secret or token travels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    // --- client:<id> ---
    /// Creates the managed caller (from the directory): its record and secret hash.
    Create {
        /// The record's JSON ([`crate::managed::ClientRecord::to_json`]).
        record: Value,
        /// SHA-256 of its secret.
        secret_sha256: String,
    },
    /// The record (404 when there is none).
    Get,
    /// Applies a `PATCH /admin/clients/{id}` body (validated by the isolate first); the
    /// record.
    Patch {
        /// The request body.
        body: String,
    },
    /// Removes the caller and every token issued to it.
    Delete,
    /// Replaces the secret (its hash) and revokes every token issued under the old one.
    Rotate {
        /// SHA-256 of the new secret.
        secret_sha256: String,
    },
    /// A token request with the caller's secret (its hash): a [`client::TokenEntry`] for the
    /// token with hash `token_sha256`, or why not.
    Grant {
        /// SHA-256 of the secret the request carried.
        secret_sha256: String,
        /// The scopes asked for.
        scope: Option<Vec<String>>,
        /// `CF-Connecting-IP`.
        address: Option<String>,
        /// SHA-256 of the token the isolate will hand out if the answer is yes.
        token_sha256: String,
    },
    /// Client authentication for `POST /oauth/revoke` and `/oauth/introspect`: the caller's
    /// scopes (200), 401, or 403 outside its `ip_allowlist`.
    Authenticate {
        /// SHA-256 of the secret the request carried.
        secret_sha256: String,
        /// `CF-Connecting-IP`.
        address: Option<String>,
    },
    /// A proxied request with one of the caller's tokens.
    Check(client::CheckRequest),
    /// RFC 7009: revokes the token with this hash, if it is the caller's (200 either way).
    Revoke {
        /// SHA-256 of the token.
        token_sha256: String,
    },
    /// `DELETE /admin/tokens/{id}` (404 when there is no such live token).
    RevokeId {
        /// The token's public id.
        id: String,
    },
    /// RFC 7662 answer for the token with this hash.
    Introspect {
        /// SHA-256 of the token.
        token_sha256: String,
    },
    /// The caller's live tokens.
    Tokens,
    /// The caller's statistics.
    ClientStats,
    /// Adds counts of a static caller's requests, counted by an isolate.
    Count {
        /// The delta.
        stats: stats::ClientStats,
    },
    /// A static caller asks for a token: counted against `per_minute`.
    IssueStatic {
        /// Its `token_requests_per_minute`.
        per_minute: u32,
    },

    // --- address:<address> ---
    /// A token request from this address begins: a ticket, or 429.
    Begin,
    /// The request with `ticket` ended; `failed` when its credentials did not authenticate.
    Settle {
        /// The ticket [`Op::Begin`] gave.
        ticket: u64,
        /// Whether authentication failed.
        failed: bool,
    },

    // --- directory ---
    /// Reconciles the static callers' ledger with an isolate's registry; the ledger.
    Ledger {
        /// `{client id: registration fingerprint}`.
        registrations: BTreeMap<String, String>,
    },
    /// Creates a managed caller (through its object) and indexes it; the record.
    Add {
        /// The record's JSON.
        record: Value,
        /// SHA-256 of its secret.
        secret_sha256: String,
    },
    /// A page of managed callers' records, by id.
    List {
        /// List ids after this one.
        after: Option<String>,
        /// At most this many.
        limit: usize,
    },
    /// Applies `change` ([`Op::Patch`], [`Op::Rotate`] or [`Op::Delete`]) to the caller `id`
    /// through its object, and updates (or drops) the index entry to match.
    Change {
        /// The caller.
        id: String,
        /// What to do.
        change: Box<Op>,
    },

    // --- provider:<id> ---
    /// Adds an isolate's counts; the answer lists the provider tokens dropped by an operator
    /// (their SHA-256), which the isolate forgets if it holds one.
    Flush {
        /// The delta.
        delta: stats::Delta,
    },
    /// The provider's statistics.
    ProviderStats,
    /// What the provider's object knows of its tokens, for `GET /admin/providers`: the latest
    /// exchange, the latest drop and the latest `errors` errors.
    ProviderState {
        /// At most this many errors.
        errors: usize,
    },
    /// The provider's latest errors, newest first.
    Errors {
        /// At most this many.
        limit: usize,
    },
    /// An operator dropped the provider's token: remembers these SHA-256s (the tokens the
    /// dropping isolate found in its memory, KV and the minter).
    DropTokens {
        /// SHA-256 of each.
        tokens: Vec<String>,
    },
}

impl Op {
    /// Whether an object of `kind` answers this op.
    pub fn for_kind(&self, kind: ObjectKind) -> bool {
        use Op::*;
        match self {
            Create { .. }
            | Get
            | Patch { .. }
            | Delete
            | Rotate { .. }
            | Grant { .. }
            | Authenticate { .. }
            | Check(_)
            | Revoke { .. }
            | RevokeId { .. }
            | Introspect { .. }
            | Tokens
            | ClientStats
            | Count { .. }
            | IssueStatic { .. } => kind == ObjectKind::Client,
            Begin | Settle { .. } => kind == ObjectKind::Address,
            Ledger { .. } | Add { .. } | List { .. } | Change { .. } => {
                kind == ObjectKind::Directory
            }
            Flush { .. }
            | ProviderStats
            | ProviderState { .. }
            | Errors { .. }
            | DropTokens { .. } => kind == ObjectKind::Provider,
        }
    }

    /// The op as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an op always serialises")
    }

    /// The op in `body`, or why it is not one.
    pub fn parse(body: &[u8]) -> Result<Op, String> {
        serde_json::from_slice(body).map_err(|e| format!("not an authority op: {e}"))
    }
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).into()
}

/// Hex SHA-256 of a 32-byte digest, parsed; `None` when it is not 64 hex digits.
pub fn parse_sha256(hex_text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_round_trip_and_go_to_their_kind() {
        let ops = [
            Op::Get,
            Op::Begin,
            Op::Settle {
                ticket: 3,
                failed: true,
            },
            Op::Change {
                id: "cl_x".into(),
                change: Box::new(Op::Rotate {
                    secret_sha256: "ab".into(),
                }),
            },
            Op::Flush {
                delta: stats::Delta::default(),
            },
        ];
        let kinds = [
            ObjectKind::Client,
            ObjectKind::Address,
            ObjectKind::Address,
            ObjectKind::Directory,
            ObjectKind::Provider,
        ];
        for (op, kind) in ops.iter().zip(kinds) {
            let json = op.to_json();
            assert_eq!(&Op::parse(json.as_bytes()).unwrap(), op, "{json}");
            assert!(op.for_kind(kind));
            assert!(!op.for_kind(ObjectKind::Client) || kind == ObjectKind::Client);
        }
        assert!(Op::parse(br#"{"op": "nope"}"#).is_err());
    }

    #[test]
    fn object_names_have_a_kind() {
        assert_eq!(ObjectKind::of("directory"), Some(ObjectKind::Directory));
        assert_eq!(
            ObjectKind::of(&client_object("cl_a")),
            Some(ObjectKind::Client)
        );
        assert_eq!(
            ObjectKind::of(&address_object("::1")),
            Some(ObjectKind::Address)
        );
        assert_eq!(
            ObjectKind::of(&provider_object("optoro")),
            Some(ObjectKind::Provider)
        );
        assert_eq!(ObjectKind::of("client:"), None);
        assert_eq!(ObjectKind::of("other:x"), None);
        assert_eq!(ObjectKind::of("x"), None);
    }
}
