//! Fuzz target `token_machine`: the sans-IO machine of the provider-token lifecycle.
//!
//! Drives `tokengate::token_machine::TokenMachine` and its `Acquisition`s, for an OAuth dialect
//! or a token API (`token_api`), with or without a token-endpoint budget and tagged creations,
//! with an arbitrary sequence of events (the structure comes from `arbitrary`): acquisitions and
//! refresh-aheads (any percentage) started at arbitrary moments, each step's input chosen freely —
//! what the store holds (nothing, a fresh token, one past its refresh point, an expired one,
//! another instance's token, the one the API refused, garbage, a failure), a pause another
//! instance wrote, token-endpoint answers (a token, a token record, refusals of every kind
//! including `success: false` in a 200, `Retry-After`, redirects, garbage, timeouts, dropped
//! connections), the end of a backoff, inputs the machine did not ask for — and, between
//! steps, the API refusing the token in memory (`forget_refused`), `invalidate`, and time
//! moving on.
//!
//! Invariants asserted (a panic is a finding):
//! - nothing panics;
//! - an acquisition ends: at most `max_attempts` answers per exchange and at most two exchanges
//!   (a refused rotation, then a creation), so a bounded number of steps;
//! - once an acquisition is over, any further input ends it again with an error and asks for
//!   nothing;
//! - a token served has not expired, and is what memory serves afterwards (while fresh); a
//!   token written to the store is the one the step serves and reads back as it; one KV could
//!   not keep for 60 s is not written;
//! - nothing is written under the token's key by a step that ends in an error;
//! - every removal is a `DELETE` under the token API's collection, only for a token API, and
//!   never of the token being served; a sweep lists the token API's collection and never
//!   removes the token in use;
//! - a token API's creation or rotation is not sent again after a timeout or a dropped
//!   connection;
//! - the client secret appears in the `Debug` of no step (effects, needs, errors: what a driver
//!   might print, a provider's text scrubbed), and no token in that of a request or removal.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use tokengate::http::{HttpResponse, TransportError};
use tokengate::response::Token;
use tokengate::secret::Secret;
use tokengate::token_machine::{Effect, Need, Next, Slot, TokenMachine, TokenOrigin};
use tokengate::TokenSettings;

const T0: u64 = 1_700_000_000_000;
const SECRET: &str = "SECRET-fuzz-client-secret";
/// Tokens the inputs use; none of them may show in a step's Debug.
const TOKENS: &[&str] = &["tok-aaaaaaaa", "tok-bbbbbbbb", "tok-cccccccc"];

#[derive(Arbitrary, Debug)]
struct Input {
    token_api: bool,
    /// A token-endpoint budget (`token_rate_limit_per_minute`), if any.
    budget: Option<u8>,
    /// Tag created tokens (a sole minter), so ambiguous creations are swept.
    tagged: bool,
    events: Vec<Event>,
}

#[derive(Arbitrary, Debug)]
enum Event {
    /// Start an acquisition (ending any that is under way).
    Acquire,
    /// Start a refresh-ahead at this percentage (ending any acquisition under way).
    AcquireAhead(u8),
    /// Feed the acquisition under way.
    Feed(Feed),
    /// The API refused the token in memory.
    Refused,
    /// `invalidate(None)`.
    Invalidate,
    /// Time moves on by this many seconds.
    Advance(u16),
}

#[derive(Arbitrary, Debug)]
enum Feed {
    Stored(Stored),
    Hold(Option<u16>),
    Answer(Answer),
    Slept,
}

#[derive(Arbitrary, Debug)]
enum Stored {
    Nothing,
    /// A token (one of `TOKENS`) issued `age_s` ago, living `life_s`, with a refresh token.
    Token {
        pick: u8,
        age_s: u16,
        life_s: u16,
    },
    Garbage(String),
    Failed,
}

#[derive(Arbitrary, Debug)]
enum Answer {
    /// An OAuth token response.
    OAuth {
        pick: u8,
        expires_in: u16,
    },
    /// A token record (token API) living `life_s`.
    Record {
        pick: u8,
        life_s: u16,
        wrapped: bool,
    },
    /// `{"success": false, …}` with this HTTP status.
    Refusal {
        status: u16,
    },
    Status {
        status: u16,
        retry_after: Option<u16>,
        body: String,
    },
    Timeout,
    Network,
}

fn settings(token_api: bool, budget: Option<u8>) -> TokenSettings {
    let mut v = if token_api {
        json!({"tokenUrl": "https://oauth.example.com/tokens", "clientId": "me@example.com",
               "authStyle": "token_api", "tokenBody": {"scopes": ["GET:a.example/x"], "ttl": 3600},
               "retry": {"maxAttempts": 3, "baseDelayMs": 10, "maxDelayMs": 100}})
    } else {
        json!({"tokenUrl": "https://auth.example.com/token", "clientId": "cid",
               "authStyle": "json_body",
               "retry": {"maxAttempts": 3, "baseDelayMs": 10, "maxDelayMs": 100}})
    };
    if let (Some(n), Some(obj)) = (budget, v.as_object_mut()) {
        obj.insert("tokenRateLimitPerMinute".into(), json!(u32::from(n).max(1)));
    }
    TokenSettings::parse_camel(&v, &[]).expect("settings")
}

/// `ms` as an RFC 3339 date-time in whole seconds (days to a civil date: Howard Hinnant's
/// `civil_from_days`).
fn iso(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

fn response(answer: &Answer, now: u64) -> Result<HttpResponse, TransportError> {
    let ok = |body: String| {
        Ok(HttpResponse {
            status: 200,
            headers: vec![],
            body: body.into_bytes(),
        })
    };
    let pick = |p: &u8| TOKENS[*p as usize % TOKENS.len()];
    match answer {
        Answer::OAuth {
            pick: p,
            expires_in,
        } => ok(json!({"access_token": pick(p),
            "token_type": "Bearer", "expires_in": expires_in})
        .to_string()),
        Answer::Record {
            pick: p,
            life_s,
            wrapped,
        } => {
            let record = json!({"token": pick(p), "refreshToken": format!("ref-{}", pick(p)),
                                "expireAt": iso(now + u64::from(*life_s % 7200) * 1000)});
            let body = if *wrapped {
                json!({"success": true, "message": "", "error": null, "data": record})
            } else {
                record
            };
            ok(body.to_string())
        }
        Answer::Refusal { status } => Ok(HttpResponse {
            status: *status,
            headers: vec![],
            body: json!({"success": false, "message": format!("no {SECRET}"), "error": 7,
                         "data": null})
            .to_string()
            .into_bytes(),
        }),
        Answer::Status {
            status,
            retry_after,
            body,
        } => Ok(HttpResponse {
            status: *status,
            headers: retry_after
                .map(|s| vec![("retry-after".to_string(), s.to_string())])
                .unwrap_or_default(),
            body: body.clone().into_bytes(),
        }),
        Answer::Timeout => Err(TransportError::Timeout),
        Answer::Network => Err(TransportError::Network(format!("reset {SECRET}"))),
    }
}

fn stored(s: &Stored, now: u64) -> Result<Option<String>, String> {
    match s {
        Stored::Nothing => Ok(None),
        Stored::Token {
            pick,
            age_s,
            life_s,
        } => {
            let issued = now.saturating_sub(u64::from(*age_s) * 1000);
            let value = TOKENS[*pick as usize % TOKENS.len()];
            Ok(Some(
                Token {
                    access_token: Secret::new(value),
                    token_type: "Bearer".into(),
                    issued_at_ms: issued,
                    expires_at_ms: issued + u64::from(*life_s) * 1000,
                    scope: None,
                    refresh_token: Some(Secret::new(format!("ref-{value}"))),
                }
                .to_stored(),
            ))
        }
        Stored::Garbage(g) => Ok(Some(g.clone())),
        Stored::Failed => Err("store down".into()),
    }
}

/// The checks on one step of an acquisition; whether it ended it.
fn check(m: &TokenMachine, next: &Next, now: u64, token_api: bool, sent_again_after: bool) -> bool {
    let shown = format!("{next:?}");
    assert!(!shown.contains(SECRET), "the secret in {shown}");
    // Requests and removals never show a token (a provider's error text may quote whatever the
    // fuzzer wrote into it, so log lines are not searched for the inputs' tokens).
    let requests: String = next
        .effects
        .iter()
        .filter(|e| !matches!(e, Effect::Log(..)))
        .map(|e| format!("{e:?}"))
        .chain(matches!(next.need, Need::Send(_)).then(|| format!("{:?}", next.need)))
        .collect();
    for t in TOKENS {
        assert!(!requests.contains(t), "a token in {requests}");
    }
    let served = match &next.need {
        Need::Done(Ok((t, _))) => Some(t),
        _ => None,
    };
    for e in &next.effects {
        match e {
            Effect::Remove(r) => {
                assert!(token_api, "a removal without a token API");
                assert_eq!(r.request.method, "DELETE");
                assert!(r
                    .request
                    .url
                    .starts_with("https://oauth.example.com/tokens/"));
                if let Some(t) = served {
                    assert!(
                        !r.request.url.ends_with(t.access_token.expose()),
                        "removing the served token"
                    );
                }
            }
            Effect::Sweep(sweep) => {
                assert!(token_api, "a sweep without a token API");
                assert_eq!(sweep.request.method, "GET");
                assert_eq!(sweep.request.url, "https://oauth.example.com/tokens");
                // The token in use is never among what a sweep removes.
                if let Some(t) = served {
                    let listed = HttpResponse {
                        status: 200,
                        headers: vec![],
                        body: json!([{"token": t.access_token.expose(),
                                      "name": "tokengate [tokengate:f00dcafe]"}])
                        .to_string()
                        .into_bytes(),
                    };
                    assert!(
                        sweep.removals(&listed).is_empty(),
                        "the sweep removes the token in use"
                    );
                }
            }
            Effect::Write {
                slot: Slot::Token,
                value,
                ..
            } => {
                let Some(t) = served else {
                    panic!("a token written by a step that serves none")
                };
                assert_eq!(
                    Token::from_stored(value).as_ref(),
                    Some(t),
                    "the write reads back"
                );
            }
            _ => {}
        }
    }
    if let Need::Send(_) = next.need {
        assert!(
            !sent_again_after,
            "a token API's exchange sent again after a timeout"
        );
    }
    match &next.need {
        Need::Done(Ok((t, origin))) => {
            assert!(t.expires_at_ms > now, "an expired token served");
            let memory = m.memory(now);
            if m.fresh(t, now) {
                assert!(
                    memory.is_some_and(|mem| mem.same_token(t)),
                    "memory serves another token"
                );
            }
            if let TokenOrigin::Exchange { .. } = origin {
                let ttl_ok = t.expires_at_ms.saturating_sub(now) >= 60_000;
                let wrote = next.effects.iter().any(|e| {
                    matches!(
                        e,
                        Effect::Write {
                            slot: Slot::Token,
                            ..
                        }
                    )
                });
                if !ttl_ok {
                    assert!(!wrote, "a token KV cannot keep was written");
                }
            }
            true
        }
        Need::Done(Err(_)) => true,
        _ => false,
    }
}

fuzz_target!(|input: Input| {
    let mut m = TokenMachine::new(
        "p",
        settings(input.token_api, input.budget),
        Secret::new(SECRET),
    );
    if input.tagged {
        m.tag_created_tokens("f00dcafe");
    }
    let mut now = T0;
    let mut run = None;
    let mut steps = 0u32;
    // After a token API's exchange timed out or lost its connection: no Send may follow.
    let mut no_resend = false;
    for event in input.events.iter().take(200) {
        match event {
            Event::Acquire | Event::AcquireAhead(_) => {
                let (r, next) = match event {
                    Event::AcquireAhead(p) => m.acquire_ahead(now, u64::from(*p % 101)),
                    _ => m.acquire(now),
                };
                check(&m, &next, now, input.token_api, false);
                run = Some(r);
                steps = 0;
                no_resend = false;
            }
            Event::Refused => {
                if let Some(t) = m.memory(now) {
                    let _ = m.forget_refused(&t.access_token, now);
                }
            }
            Event::Invalidate => {
                let _ = m.invalidate(None);
            }
            Event::Advance(s) => now += u64::from(*s) * 1000,
            Event::Feed(feed) => {
                let Some(r) = run.as_mut() else { continue };
                steps += 1;
                let next = match feed {
                    Feed::Stored(s) => r.stored(&mut m, now, stored(s, now)),
                    Feed::Hold(h) => r.stored(
                        &mut m,
                        now,
                        Ok(h.map(|s| (now + u64::from(s) * 1000).to_string())),
                    ),
                    Feed::Answer(a) => {
                        let result = response(a, now);
                        let lost = matches!(a, Answer::Timeout | Answer::Network);
                        let next = r.answered(&mut m, now, now, result, 0.5);
                        if input.token_api && lost {
                            no_resend = true;
                        }
                        next
                    }
                    Feed::Slept => r.slept(&mut m),
                };
                let ended = check(&m, &next, now, input.token_api, no_resend);
                // Bounded: store, hold, two exchanges of three answers and two backoffs each,
                // the second store read.
                assert!(steps <= 13 || ended, "an acquisition that does not end");
                if ended {
                    // Anything further ends it again, asking nothing.
                    let again = r.slept(&mut m);
                    assert!(matches!(again.need, Need::Done(Err(_))) && again.effects.is_empty());
                    run = None;
                }
            }
        }
    }
});
