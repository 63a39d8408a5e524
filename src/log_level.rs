//! Log levels: the `log_level` setting (`info`, `warn`, `error`) and the level of each event
//! the gateway logs, so that a shell writes an event only at or above the configured level.
//! Errors (the store, the configuration, the clock, a panic, a failed proxied request, a
//! failure no other rule covers) are
//! always written; refusals and trouble unless the setting is `error`; successes (a proxied
//! request, an issued token, an exchange or revocation that reported `"ok": true`) only at
//! `info`.

use serde_json::Value;

/// How much is logged (`log_level`): every event at or above it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Everything, one line per proxied request and per issued token included (the default).
    Info,
    /// Refusals and trouble: failed authentications, held or failed exchanges, 401s that
    /// stand.
    Warn,
    /// Errors only: the store, the configuration, proxied requests that failed.
    Error,
}

impl LogLevel {
    /// The `log_level` spelling.
    pub fn parse(s: &str) -> Option<LogLevel> {
        match s {
            "info" => Some(LogLevel::Info),
            "warn" => Some(LogLevel::Warn),
            "error" => Some(LogLevel::Error),
            _ => None,
        }
    }

    /// The level of `event`; `ok` is whether the event reported `"ok": true` (a token exchange
    /// or revocation that succeeded is info, one that failed a warning).
    pub fn of(event: &str, ok: bool) -> LogLevel {
        match event {
            "store_error" | "config_error" | "clock_error" | "panic" | "proxy_error"
            | "internal_error" | "authority_error" => LogLevel::Error,
            // `coordination`: which way an isolate obtains a provider's tokens, when it starts
            // (the configured way; `coordination_fallback`, another, is a warning).
            "proxy" | "token_issued" | "api_retry" | "caller_rejected" | "admin" | "dpop_nonce"
            | "coordination" => LogLevel::Info,
            "token_exchange" | "token_revoked" if ok => LogLevel::Info,
            _ => LogLevel::Warn,
        }
    }

    /// The level of `event` logged with `fields`: [`LogLevel::of`], with `ok` true when the
    /// fields hold `"ok": true`.
    pub fn of_fields(event: &str, fields: &Value) -> LogLevel {
        LogLevel::of(event, fields.get("ok") == Some(&Value::Bool(true)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every event the core and the shells log, with and without `"ok": true`.
    #[test]
    fn level_of_every_logged_event() {
        use LogLevel::{Error, Info, Warn};
        let table: &[(&str, LogLevel, LogLevel)] = &[
            // (event, level when ok, level when not ok)
            ("proxy", Info, Info),
            ("proxy_error", Error, Error),
            ("token_issued", Info, Info),
            ("token_exchange", Info, Warn),
            ("token_revoked", Info, Warn),
            ("token_exchange_held", Warn, Warn),
            ("api_401_not_refreshed", Warn, Warn),
            ("token_refused", Warn, Warn),
            ("caller_auth_failed", Warn, Warn),
            ("caller_auth_refused", Warn, Warn),
            ("admin_refused", Warn, Warn),
            ("token_requests_limited", Warn, Warn),
            ("replay_budget_spent", Warn, Warn),
            ("internal_error", Error, Error),
            ("store_error", Error, Error),
            ("config_error", Error, Error),
            ("clock_error", Error, Error),
            ("panic", Error, Error),
            ("authority_error", Error, Error),
            ("api_retry", Info, Info),
            ("caller_rejected", Info, Info),
            ("admin", Info, Info),
            ("stats_flush_failed", Warn, Warn),
            ("provider_token_dropped", Warn, Warn),
            // A server asking for a DPoP nonce is the protocol working; a refused client
            // assertion is worth a look.
            ("dpop_nonce", Info, Info),
            ("client_assertion_refused", Warn, Warn),
            // The configured coordination is routine; a fallback from it is not.
            ("coordination", Info, Info),
            ("coordination_fallback", Warn, Warn),
        ];
        for &(event, when_ok, when_not) in table {
            assert_eq!(LogLevel::of(event, true), when_ok, "{event} ok");
            assert_eq!(LogLevel::of(event, false), when_not, "{event} not ok");
            assert_eq!(
                LogLevel::of_fields(event, &json!({"ok": true})),
                when_ok,
                "{event} {{ok: true}}"
            );
            assert_eq!(
                LogLevel::of_fields(event, &json!({"ok": false})),
                when_not,
                "{event} {{ok: false}}"
            );
        }
        // An event no one logs yet is a warning.
        assert_eq!(LogLevel::of("something_new", true), Warn);
    }

    #[test]
    fn ok_is_only_the_json_true() {
        for fields in [
            json!({}),
            json!({"ok": "true"}),
            json!({"ok": 1}),
            json!({"ok": null}),
            json!({"status": 200}),
            json!(null),
            json!([true]),
        ] {
            assert_eq!(
                LogLevel::of_fields("token_exchange", &fields),
                LogLevel::Warn,
                "{fields}"
            );
        }
        assert_eq!(
            LogLevel::of_fields("token_exchange", &json!({"provider": "p", "ok": true})),
            LogLevel::Info
        );
    }

    #[test]
    fn parse_and_order() {
        assert_eq!(LogLevel::parse("info"), Some(LogLevel::Info));
        assert_eq!(LogLevel::parse("warn"), Some(LogLevel::Warn));
        assert_eq!(LogLevel::parse("error"), Some(LogLevel::Error));
        for bad in ["", "INFO", "Warn", "debug", "warning", " error"] {
            assert_eq!(LogLevel::parse(bad), None, "{bad:?}");
        }
        assert!(LogLevel::Info < LogLevel::Warn && LogLevel::Warn < LogLevel::Error);
    }
}
