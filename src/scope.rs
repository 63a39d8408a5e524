//! Scopes: what a caller, and each token issued to it, may do.
//!
//! - `<provider>`: any request to that provider (`ANY /{provider}/{path}`);
//! - `<provider>:read`: only `GET`, `HEAD` and `OPTIONS` requests to it;
//! - `introspect`: may call `POST /oauth/introspect`; reaches no provider.
//!
//! A provider id is never `introspect` ([`crate::config::RESERVED_IDS`]), so the three forms
//! never overlap. `optoro` covers `optoro:read`, not the reverse: a caller granted `optoro`
//! may ask for a token that only reads it.

use crate::config::validate_provider_id;
use std::fmt;

/// The scope that allows `POST /oauth/introspect`.
pub const INTROSPECT_SCOPE: &str = "introspect";

/// The suffix of a read-only provider scope.
const READ_SUFFIX: &str = ":read";

/// One scope.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Requests to provider `id`: any method, or only reads when `read_only`.
    Provider {
        /// The provider id.
        id: String,
        /// Only `GET`, `HEAD` and `OPTIONS` ([`read_only_method`]).
        read_only: bool,
    },
    /// `POST /oauth/introspect`.
    Introspect,
}

impl Scope {
    /// Parses a scope; the provider part must pass `crate::config::validate_provider_id`.
    /// The error says what is wrong without repeating the scope.
    pub fn parse(s: &str) -> Result<Scope, String> {
        if s == INTROSPECT_SCOPE {
            return Ok(Scope::Introspect);
        }
        let (id, read_only) = match s.strip_suffix(READ_SUFFIX) {
            Some(id) => (id, true),
            None => (s, false),
        };
        validate_provider_id(id).map_err(|m| {
            format!(
                "must be `<provider>`, `<provider>{READ_SUFFIX}` or `{INTROSPECT_SCOPE}`, and the \
                 provider id {m}"
            )
        })?;
        Ok(Scope::Provider {
            id: id.to_string(),
            read_only,
        })
    }

    /// The provider this scope reaches, if any.
    pub fn provider(&self) -> Option<&str> {
        match self {
            Scope::Provider { id, .. } => Some(id),
            Scope::Introspect => None,
        }
    }

    /// Whether holding `self` includes `other` (`optoro` covers `optoro:read`; not the reverse).
    pub fn covers(&self, other: &Scope) -> bool {
        match (self, other) {
            (Scope::Introspect, Scope::Introspect) => true,
            (
                Scope::Provider { id, read_only },
                Scope::Provider {
                    id: other_id,
                    read_only: other_read_only,
                },
            ) => id == other_id && (!read_only || *other_read_only),
            _ => false,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Provider {
                id,
                read_only: false,
            } => f.write_str(id),
            Scope::Provider {
                id,
                read_only: true,
            } => write!(f, "{id}{READ_SUFFIX}"),
            Scope::Introspect => f.write_str(INTROSPECT_SCOPE),
        }
    }
}

/// GET, HEAD, OPTIONS (case-insensitive).
pub fn read_only_method(method: &str) -> bool {
    ["GET", "HEAD", "OPTIONS"]
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method))
}

/// Whether `scopes` (scope strings; unparsable ones grant nothing) let a request with `method`
/// reach `provider`.
pub fn permits(scopes: &[String], provider: &str, method: &str) -> bool {
    scopes
        .iter()
        .filter_map(|s| Scope::parse(s).ok())
        .any(|s| match s {
            Scope::Provider { id, read_only } => {
                id == provider && (!read_only || read_only_method(method))
            }
            Scope::Introspect => false,
        })
}

/// The scopes a token gets: `requested` (None or empty: all of `granted`) each covered by some
/// granted scope; Err(the first requested scope not covered, or not parsable). A scope
/// requested twice is given once.
pub fn narrow(granted: &[String], requested: Option<&[String]>) -> Result<Vec<String>, String> {
    let requested = match requested {
        None | Some([]) => return Ok(granted.to_vec()),
        Some(r) => r,
    };
    let held: Vec<Scope> = granted
        .iter()
        .filter_map(|s| Scope::parse(s).ok())
        .collect();
    let mut out: Vec<String> = Vec::with_capacity(requested.len());
    for r in requested {
        let wanted = Scope::parse(r).map_err(|_| r.clone())?;
        if !held.iter().any(|g| g.covers(&wanted)) {
            return Err(r.clone());
        }
        if !out.contains(r) {
            out.push(r.clone());
        }
    }
    Ok(out)
}

/// What the scopes `token` carries still allow under the caller's current `granted` scopes (a
/// caller narrowed after the token was issued narrows the token): each token scope the caller
/// still covers, `<provider>:read` for a `<provider>` scope of which the caller now holds only
/// the read form, none for a scope the caller no longer holds. Unparsable scopes give nothing;
/// each scope is given once, in the token's order.
pub fn effective(token: &[String], granted: &[String]) -> Vec<String> {
    let held: Vec<Scope> = granted
        .iter()
        .filter_map(|s| Scope::parse(s).ok())
        .collect();
    let mut out: Vec<String> = Vec::with_capacity(token.len());
    for scope in token.iter().filter_map(|s| Scope::parse(s).ok()) {
        let kept = if held.iter().any(|g| g.covers(&scope)) {
            Some(scope)
        } else {
            match scope {
                Scope::Provider { id, .. } => {
                    let read = Scope::Provider {
                        id,
                        read_only: true,
                    };
                    held.iter().any(|g| g.covers(&read)).then_some(read)
                }
                Scope::Introspect => None,
            }
        };
        if let Some(s) = kept.map(|s| s.to_string()) {
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
