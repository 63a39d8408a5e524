//! The Worker's own settings (`config::gateway`): each var's values, accepted and refused with
//! the message the Worker answers; secrets; the secrets a configuration needs.

use super::*;
use crate::config::gateway::*;
use crate::log_level::LogLevel;

#[test]
fn providers_as_a_table_or_a_json_string() {
    let table = json!({"optoro": entry(json!({})), "partner": entry(json!({}))});
    let ids = |v: &Value| -> Vec<String> {
        providers(Some(v))
            .unwrap()
            .into_iter()
            .map(|p| p.id)
            .collect()
    };
    assert_eq!(ids(&table), ["optoro", "partner"]);
    assert_eq!(
        ids(&Value::String(table.to_string())),
        ["optoro", "partner"]
    );
}

#[test]
fn providers_refused() {
    let cases: &[(Option<Value>, &str)] = &[
        (
            None,
            "TOKENGATE_PROVIDERS: is not set (add it under [vars] in wrangler.toml)",
        ),
        (
            Some(json!(5)),
            "TOKENGATE_PROVIDERS: must be a table of providers",
        ),
        (
            Some(json!([1])),
            "TOKENGATE_PROVIDERS: must be a table of providers",
        ),
        (
            Some(json!(true)),
            "TOKENGATE_PROVIDERS: must be a table of providers",
        ),
        (
            Some(Value::Null),
            "TOKENGATE_PROVIDERS: must be a table of providers",
        ),
        (
            Some(json!("[1]")),
            "TOKENGATE_PROVIDERS: must be an object keyed by provider id",
        ),
        (Some(json!({})), "TOKENGATE_PROVIDERS: defines no provider"),
        (
            Some(json!("{}")),
            "TOKENGATE_PROVIDERS: defines no provider",
        ),
        (
            Some(json!({"p": entry(json!({"token_url": null}))})),
            "provider `p`: token_url: is required",
        ),
    ];
    for (value, message) in cases {
        let e = providers(value.as_ref()).unwrap_err();
        assert_eq!(e.to_string(), *message, "{value:?}");
    }
    let e = providers(Some(&json!("{not json"))).unwrap_err();
    assert_eq!(e.key, "TOKENGATE_PROVIDERS");
    assert!(e.message.starts_with("is not valid JSON ("), "{e}");
}

#[test]
fn max_body_bytes_values() {
    let ok: &[(Option<Value>, u64)] = &[
        (None, DEFAULT_MAX_BODY_BYTES),
        (Some(json!(1)), 1),
        (Some(json!(10485760)), 10_485_760),
        (Some(json!(104857600)), MAX_BODY_CAP),
        (Some(json!(2048.0)), 2048),
        (Some(json!("2048")), 2048),
        (Some(json!(" 2048 ")), 2048),
        (Some(json!("1e3")), 1000),
    ];
    for (value, n) in ok {
        assert_eq!(max_body_bytes(value.as_ref()), Ok(*n), "{value:?}");
    }
    let message = "max_body_bytes: must be a whole number of bytes from 1 to 104857600 (100 MiB, the Workers request limit)";
    for value in [
        json!(0),
        json!(-1),
        json!(1.5),
        json!(104857601),
        json!("ten"),
        json!(""),
        json!(true),
        json!(null),
        json!([1]),
        json!({"n": 1}),
    ] {
        let e = max_body_bytes(Some(&value)).unwrap_err();
        assert_eq!(e.to_string(), message, "{value}");
    }
}

#[test]
fn log_level_values() {
    let table: &[(Option<Value>, Option<LogLevel>)] = &[
        (None, Some(LogLevel::Info)),
        (Some(json!("info")), Some(LogLevel::Info)),
        (Some(json!("warn")), Some(LogLevel::Warn)),
        (Some(json!("error")), Some(LogLevel::Error)),
        (Some(json!("WARN")), None),
        (Some(json!("debug")), None),
        (Some(json!("")), None),
        (Some(json!(1)), None),
        (Some(Value::Null), None),
    ];
    for (value, level) in table {
        match level {
            Some(l) => assert_eq!(log_level(value.as_ref()), Ok(*l), "{value:?}"),
            None => assert_eq!(
                log_level(value.as_ref()).unwrap_err().to_string(),
                "log_level: must be \"info\", \"warn\" or \"error\"",
                "{value:?}"
            ),
        }
    }
}

#[test]
fn secrets() {
    assert_eq!(
        secret(KEY_SECRET, None, Some(&json!("k3y"))),
        Ok("k3y".to_string())
    );
    let table: &[(Option<Value>, Option<&str>, &str)] = &[
        (
            None,
            None,
            "TOKENGATE_KEY: Worker secret `TOKENGATE_KEY` is not set (wrangler secret put TOKENGATE_KEY)",
        ),
        (
            Some(json!("")),
            None,
            "TOKENGATE_KEY: Worker secret `TOKENGATE_KEY` is not set (wrangler secret put TOKENGATE_KEY)",
        ),
        (Some(json!(7)), None, "TOKENGATE_KEY: must be a string secret"),
        (
            None,
            Some("optoro"),
            "provider `optoro`: TOKENGATE_KEY: Worker secret `TOKENGATE_KEY` is not set (wrangler secret put TOKENGATE_KEY)",
        ),
    ];
    for (value, provider, message) in table {
        let e = secret(KEY_SECRET, *provider, value.as_ref()).unwrap_err();
        assert_eq!(e.to_string(), *message, "{value:?}");
    }
}

#[test]
fn kv_binding_missing_names_the_binding() {
    assert_eq!(
        kv_binding_missing().to_string(),
        "TOKENGATE_KV: KV namespace binding is missing (kv_namespaces in wrangler.toml)"
    );
}

#[test]
fn every_var_name_is_a_var() {
    assert_eq!(VARS, [PROVIDERS_VAR, MAX_BODY_VAR, LOG_LEVEL_VAR]);
}

#[test]
fn required_secrets_in_order_each_once() {
    let all = providers(Some(&json!({
        "optoro": entry(json!({"client_secret_name": "OPTORO_CLIENT_SECRET"})),
        "partner-a": entry(json!({"client_secret_name": "PARTNER_SECRET"})),
        "partner-b": entry(json!({"client_secret_name": "PARTNER_SECRET"})),
    })))
    .unwrap();
    let secrets = required_secrets(&all);
    let names: Vec<&str> = secrets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "TOKENGATE_KEY",
            "TOKENGATE_CLIENTS",
            "OPTORO_CLIENT_SECRET",
            "PARTNER_SECRET"
        ]
    );
    assert_eq!(secrets[2].note, "the client secret of provider `optoro`");
    assert_eq!(
        secrets[3].note,
        "the client secret of providers `partner-a`, `partner-b`"
    );
    for s in &secrets {
        assert!(!s.note.is_empty() && !s.note.contains('\n'), "{s:?}");
    }
    assert_eq!(required_secrets(&[]).len(), 2);
}
