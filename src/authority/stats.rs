//! Usage statistics and the error log of `GET /admin/stats` and `GET /admin/errors`.
//!
//! They are counted from the events the gateway already emits (a proxied response, a token
//! exchange, a retry, a refused caller: see [`Tally::observe`]), added up per isolate in a
//! [`Tally`] and sent, as deltas, to the authority object that keeps each total: a provider's
//! in `provider:<id>`, a caller's in `client:<id>` (a managed caller's own requests and
//! refusals are counted there directly, by the check that admits them). Deltas travel after
//! the response (`ctx.waitUntil`): the request path never waits on a statistic. Nothing here
//! holds a secret or a token: the error log keeps the provider's error code, never its text.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};

/// How many errors each provider's log keeps (the oldest are dropped).
pub const ERROR_LOG_LEN: usize = 100;

/// Responses by status class.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusClasses {
    /// 200–299.
    #[serde(rename = "2xx")]
    pub s2xx: u64,
    /// 300–399.
    #[serde(rename = "3xx")]
    pub s3xx: u64,
    /// 400–499.
    #[serde(rename = "4xx")]
    pub s4xx: u64,
    /// 500–599.
    #[serde(rename = "5xx")]
    pub s5xx: u64,
}

/// Where the provider token of each proxied request came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSources {
    /// The isolate's memory.
    pub memory: u64,
    /// Workers KV.
    pub kv: u64,
    /// The provider's minter (a Durable Object).
    pub minter: u64,
    /// An exchange the request waited for.
    pub exchange: u64,
}

/// One provider's totals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderStats {
    /// Proxied requests that reached the provider's API (or failed on the way).
    pub requests: u64,
    /// Their answers, by status class (the gateway's own 502/503/504 included).
    pub responses: StatusClasses,
    /// Token exchanges with the provider's token endpoint, each attempt counted.
    pub exchanges: u64,
    /// Where each request's provider token came from.
    pub token_source: TokenSources,
    /// API attempts sent again (a retry or a replay after a refreshed token).
    pub retries: u64,
}

/// Refusals of a caller's requests, by status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejections {
    /// Its token was unknown, expired or revoked.
    #[serde(rename = "401")]
    pub r401: u64,
    /// Outside its scopes or its IP allowlist.
    #[serde(rename = "403")]
    pub r403: u64,
    /// Over one of its limits.
    #[serde(rename = "429")]
    pub r429: u64,
}

/// One caller's totals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientStats {
    /// Requests admitted to a provider.
    pub requests: u64,
    /// Requests refused.
    pub rejected: Rejections,
}

impl ClientStats {
    /// Counts a refusal with `status` (other statuses are not refusals of the caller).
    pub fn reject(&mut self, status: u16) {
        match status {
            401 => self.rejected.r401 += 1,
            403 => self.rejected.r403 += 1,
            429 => self.rejected.r429 += 1,
            _ => {}
        }
    }

    /// Adds `delta`.
    pub fn add(&mut self, delta: &ClientStats) {
        self.requests += delta.requests;
        self.rejected.r401 += delta.rejected.r401;
        self.rejected.r403 += delta.rejected.r403;
        self.rejected.r429 += delta.rejected.r429;
    }
}

impl ProviderStats {
    /// Adds `delta`.
    pub fn add(&mut self, d: &ProviderStats) {
        self.requests += d.requests;
        self.responses.s2xx += d.responses.s2xx;
        self.responses.s3xx += d.responses.s3xx;
        self.responses.s4xx += d.responses.s4xx;
        self.responses.s5xx += d.responses.s5xx;
        self.exchanges += d.exchanges;
        self.token_source.memory += d.token_source.memory;
        self.token_source.kv += d.token_source.kv;
        self.token_source.minter += d.token_source.minter;
        self.token_source.exchange += d.token_source.exchange;
        self.retries += d.retries;
    }

    fn respond(&mut self, status: u16) {
        match status {
            200..=299 => self.responses.s2xx += 1,
            300..=399 => self.responses.s3xx += 1,
            400..=499 => self.responses.s4xx += 1,
            500..=599 => self.responses.s5xx += 1,
            _ => {}
        }
    }
}

/// One entry of the error log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEntry {
    /// When, ms since the epoch.
    pub time: u64,
    /// The provider.
    pub provider: String,
    /// The caller whose request it was, if one was.
    pub client_id: Option<String>,
    /// What failed: `token_exchange`, or the gateway's error code of a proxied request
    /// (`timeout`, `network`, `invalid_response`, `temporarily_unavailable`, …).
    pub kind: String,
    /// The HTTP status: the token endpoint's (0: no answer), or the caller's.
    pub status: u16,
    /// The provider's error code (`invalid_client`, …), when it sent one.
    pub provider_error: Option<String>,
}

/// The latest token exchange with a provider's token endpoint, as an isolate saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeMark {
    /// When it ended, ms since the epoch.
    pub time: u64,
    /// Whether it gave a token.
    pub ok: bool,
    /// The token endpoint's HTTP status (0: no answer).
    pub status: u16,
}

impl ExchangeMark {
    /// The later of `a` and `b`.
    pub fn latest(a: Option<ExchangeMark>, b: Option<ExchangeMark>) -> Option<ExchangeMark> {
        match (a, b) {
            (Some(a), Some(b)) => Some(if b.time >= a.time { b } else { a }),
            (a, b) => a.or(b),
        }
    }
}

/// What one isolate counted for one authority object since its last flush.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// A provider's counts (`provider:<id>` objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderStats>,
    /// A caller's counts (`client:<id>` objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientStats>,
    /// New error-log entries (`provider:<id>` objects).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ErrorEntry>,
    /// The latest exchange seen (`provider:<id>` objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exchange: Option<ExchangeMark>,
}

/// The error log of one provider: the latest [`ERROR_LOG_LEN`] entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorLog(pub VecDeque<ErrorEntry>);

impl ErrorLog {
    /// Appends `entries`, dropping the oldest beyond [`ERROR_LOG_LEN`].
    pub fn extend(&mut self, entries: impl IntoIterator<Item = ErrorEntry>) {
        for e in entries {
            if self.0.len() == ERROR_LOG_LEN {
                self.0.pop_front();
            }
            self.0.push_back(e);
        }
    }

    /// The latest `limit` entries, newest first.
    pub fn latest(&self, limit: usize) -> Vec<ErrorEntry> {
        self.0.iter().rev().take(limit).cloned().collect()
    }
}

/// The latest `limit` entries of several providers' logs, newest first.
pub fn merge_latest(
    logs: impl IntoIterator<Item = Vec<ErrorEntry>>,
    limit: usize,
) -> Vec<ErrorEntry> {
    let mut all: Vec<ErrorEntry> = logs.into_iter().flatten().collect();
    all.sort_by_key(|e| std::cmp::Reverse(e.time));
    all.truncate(limit);
    all
}

/// The name of a provider's authority object.
pub fn provider_object(provider: &str) -> String {
    format!("provider:{provider}")
}

/// The name of a caller's authority object.
pub fn client_object(client_id: &str) -> String {
    format!("client:{client_id}")
}

/// A proxied request, as [`Tally::proxied`] counts it.
#[derive(Clone, Copy, Debug)]
pub struct Proxied<'a> {
    /// The provider.
    pub provider: &'a str,
    /// The status the caller got.
    pub status: u16,
    /// Where the provider token came from (`memory`, `kv`, `minter`, `exchange`).
    pub token_source: Option<&'a str>,
    /// The caller.
    pub client_id: Option<&'a str>,
    /// Whether the caller is managed (its authority counts its requests).
    pub managed: bool,
    /// For a failed request: the error code and the provider's error code, if any.
    pub error: Option<(&'a str, Option<&'a str>)>,
}

/// Counts of one isolate, per authority object, since they were last taken.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    deltas: BTreeMap<String, Delta>,
}

impl Tally {
    fn provider(&mut self, id: &str) -> &mut Delta {
        self.deltas.entry(provider_object(id)).or_default()
    }

    fn client(&mut self, id: &str) -> &mut ClientStats {
        self.deltas
            .entry(client_object(id))
            .or_default()
            .client
            .get_or_insert_with(Default::default)
    }

    /// Counts what event `event` with `fields` (as the gateway logs it) says, at `now_ms`:
    ///
    /// - `proxy` (`provider`, `status`, `token_source`, `client_id`): a request and its answer;
    ///   the caller's request unless `managed` (a managed caller's are counted by its check);
    /// - `proxy_error` (`provider`, `status`, `error`, `client_id`): the same, and an error;
    /// - `token_exchange` (`provider`, `ok`, `status`, `error`, `provider_error`): an
    ///   exchange, and an error when it failed;
    /// - `api_retry` (`provider`): a retry;
    /// - `caller_rejected` (`client_id`, `status`): a refusal of a caller's request.
    ///
    /// Other events count nothing.
    pub fn observe(&mut self, event: &str, fields: &Value, now_ms: u64) {
        let text = |k: &str| fields.get(k).and_then(Value::as_str);
        let num = |k: &str| fields.get(k).and_then(Value::as_u64).unwrap_or(0) as u16;
        let managed = fields.get("managed").and_then(Value::as_bool) == Some(true);
        match event {
            "proxy" | "proxy_error" => {
                let Some(provider) = text("provider") else {
                    return;
                };
                let error = (event == "proxy_error")
                    .then(|| (text("error").unwrap_or("error"), text("provider_error")));
                let request = Proxied {
                    provider,
                    status: num("status"),
                    token_source: text("token_source"),
                    client_id: text("client_id"),
                    managed,
                    error,
                };
                self.proxied(&request, now_ms);
            }
            "token_exchange" => {
                let Some(provider) = text("provider") else {
                    return;
                };
                let d = self.provider(provider);
                d.provider.get_or_insert_with(Default::default).exchanges += 1;
                let ok = fields.get("ok").and_then(Value::as_bool) == Some(true);
                let mark = ExchangeMark {
                    time: now_ms,
                    ok,
                    status: num("status"),
                };
                d.last_exchange = ExchangeMark::latest(d.last_exchange.take(), Some(mark));
                if !ok {
                    d.errors.push(ErrorEntry {
                        time: now_ms,
                        provider: provider.to_string(),
                        client_id: None,
                        kind: "token_exchange".into(),
                        status: num("status"),
                        provider_error: text("provider_error").map(str::to_string),
                    });
                }
            }
            "api_retry" => {
                let Some(provider) = text("provider") else {
                    return;
                };
                self.provider(provider)
                    .provider
                    .get_or_insert_with(Default::default)
                    .retries += 1;
            }
            "caller_rejected" if !managed => {
                if let Some(client) = text("client_id") {
                    let status = num("status");
                    self.client(client).reject(status);
                }
            }
            _ => {}
        }
    }

    /// Counts a proxied request (what [`Tally::observe`] does for `proxy` and `proxy_error`,
    /// without building the event).
    pub fn proxied(&mut self, r: &Proxied<'_>, now_ms: u64) {
        let d = self.provider(r.provider);
        let p = d.provider.get_or_insert_with(Default::default);
        p.requests += 1;
        p.respond(r.status);
        match r.token_source {
            Some("memory") => p.token_source.memory += 1,
            Some("kv") => p.token_source.kv += 1,
            Some("minter") => p.token_source.minter += 1,
            Some("exchange") => p.token_source.exchange += 1,
            _ => {}
        }
        if let Some((kind, provider_error)) = r.error {
            d.errors.push(ErrorEntry {
                time: now_ms,
                provider: r.provider.to_string(),
                client_id: r.client_id.map(str::to_string),
                kind: kind.to_string(),
                status: r.status,
                provider_error: provider_error.map(str::to_string),
            });
        }
        if let (Some(client), false) = (r.client_id, r.managed) {
            self.client(client).requests += 1;
        }
    }

    /// Whether nothing was counted since the last [`Tally::take`].
    pub fn is_empty(&self) -> bool {
        self.deltas.is_empty()
    }

    /// Everything counted, by authority object, and a fresh start.
    pub fn take(&mut self) -> BTreeMap<String, Delta> {
        std::mem::take(&mut self.deltas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_become_deltas_per_object() {
        let mut t = Tally::default();
        t.observe(
            "proxy",
            &json!({"provider": "optoro", "status": 200, "token_source": "memory", "client_id": "svc"}),
            1,
        );
        t.observe(
            "proxy",
            &json!({"provider": "optoro", "status": 404, "token_source": "exchange", "client_id": "cl_x", "managed": true}),
            2,
        );
        t.observe(
            "proxy_error",
            &json!({"provider": "optoro", "status": 504, "error": "timeout", "client_id": "svc"}),
            3,
        );
        t.observe(
            "token_exchange",
            &json!({"provider": "optoro", "ok": false, "status": 401, "provider_error": "invalid_client"}),
            4,
        );
        t.observe(
            "token_exchange",
            &json!({"provider": "optoro", "ok": true, "status": 200}),
            5,
        );
        t.observe("api_retry", &json!({"provider": "optoro"}), 6);
        t.observe(
            "caller_rejected",
            &json!({"client_id": "svc", "status": 403}),
            7,
        );
        t.observe(
            "caller_rejected",
            &json!({"client_id": "cl_x", "status": 429, "managed": true}),
            7,
        );
        t.observe("token_issued", &json!({"client_id": "svc"}), 8);
        let d = t.take();
        assert!(t.is_empty());
        assert_eq!(
            d.keys().collect::<Vec<_>>(),
            ["client:svc", "provider:optoro"]
        );
        let p = d["provider:optoro"].provider.clone().unwrap();
        assert_eq!(p.requests, 3);
        assert_eq!(
            (p.responses.s2xx, p.responses.s4xx, p.responses.s5xx),
            (1, 1, 1)
        );
        assert_eq!((p.token_source.memory, p.token_source.exchange), (1, 1));
        assert_eq!((p.exchanges, p.retries), (2, 1));
        let errors = &d["provider:optoro"].errors;
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].kind, "timeout");
        assert_eq!(errors[0].client_id.as_deref(), Some("svc"));
        assert_eq!(errors[1].provider_error.as_deref(), Some("invalid_client"));
        let c = d["client:svc"].client.clone().unwrap();
        assert_eq!((c.requests, c.rejected.r403), (2, 1));
        // The latest exchange is the successful one at 5.
        assert_eq!(
            d["provider:optoro"].last_exchange,
            Some(ExchangeMark {
                time: 5,
                ok: true,
                status: 200
            })
        );
    }

    #[test]
    fn the_error_log_keeps_the_latest() {
        let mut log = ErrorLog::default();
        let e = |time| ErrorEntry {
            time,
            provider: "p".into(),
            client_id: None,
            kind: "timeout".into(),
            status: 504,
            provider_error: None,
        };
        log.extend((0..150).map(e));
        assert_eq!(log.0.len(), ERROR_LOG_LEN);
        assert_eq!(
            log.latest(2).iter().map(|e| e.time).collect::<Vec<_>>(),
            [149, 148]
        );
        let merged = merge_latest([vec![e(5), e(1)], vec![e(3)]], 2);
        assert_eq!(merged.iter().map(|e| e.time).collect::<Vec<_>>(), [5, 3]);
    }

    #[test]
    fn stats_serialise_with_status_class_names() {
        let mut p = ProviderStats::default();
        p.respond(201);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["responses"]["2xx"], 1);
        let c = ClientStats::default();
        assert_eq!(serde_json::to_value(&c).unwrap()["rejected"]["429"], 0);
        let mut sum = ProviderStats::default();
        sum.add(&p);
        sum.add(&p);
        assert_eq!(sum.responses.s2xx, 2);
    }
}
