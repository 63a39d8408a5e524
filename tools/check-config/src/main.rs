//! `make check-config` (and the first step of `wrangler deploy`'s build): checks the wrangler
//! TOML file a deployment would use (default `wrangler.toml`; its top level, which is what
//! `wrangler deploy` without `--env` reads) before anything is built or uploaded.
//!
//! - `main` and `compatibility_date` are set; a `[[kv_namespaces]]` binds `TOKENGATE_KV` to an
//!   `id` that is not a placeholder; every `[vars]` key is one tokengate reads; a provider that
//!   asks for the minter (`coordination = "durable_object"`) has `TOKENGATE_MINTER` bound to
//!   class `TokenMinter`, declared in `[[migrations]]`; a provider's `mtls_certificate` names an
//!   `[[mtls_certificates]]` binding with a `certificate_id`;
//! - `[vars]` then go through the core's own rules (`tokengate::config::gateway`), in the
//!   Worker's order, so a mistake is reported with the very text the deployed Worker would
//!   answer every request with (its 500's `error_description`).
//!
//! On success it prints the providers and a `npx wrangler secret put` line for each Worker
//! secret the configuration needs (secrets are never in the file, so it cannot check them).
//! On failure it prints `FILE: <the error>` on stderr and exits with status 1.

use serde_json::{Map, Value};
use std::fmt::Write as _;
use std::process::ExitCode;
use tokengate::config::gateway::{
    self, KV_BINDING, LIMITER_BINDING, LIMITER_CLASS, LOG_LEVEL_VAR, MAX_BODY_VAR, MINTER_BINDING,
    MINTER_CLASS, PROVIDERS_VAR,
};
use tokengate::config::{
    is_placeholder, ConfigError, Coordination, ProviderConfig, PLACEHOLDER_MESSAGE,
};

/// The file `wrangler deploy` reads when given no `--config`.
const DEFAULT_FILE: &str = "wrangler.toml";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let file = match args.as_slice() {
        [] => DEFAULT_FILE,
        [f] if !f.starts_with('-') => f.as_str(),
        _ => {
            eprintln!("usage: tokengate-check-config [WRANGLER_TOML]   (default: {DEFAULT_FILE})");
            return ExitCode::FAILURE;
        }
    };
    let config = match load(file) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{file}: {message}");
            return ExitCode::FAILURE;
        }
    };
    match check(&config) {
        Ok(providers) => {
            print!("{}", report(file, &providers));
            ExitCode::SUCCESS
        }
        Err(e) => {
            // First the Worker's own message, then every placeholder left, so a template is
            // filled in one pass.
            eprintln!("{file}: {e}");
            let left = placeholders(&config, "");
            if !left.is_empty() {
                eprintln!("Placeholders still in {file}:\n  {}", left.join("\n  "));
            }
            ExitCode::FAILURE
        }
    }
}

/// The wrangler TOML file as JSON.
fn load(file: &str) -> Result<Value, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot be read ({e})"))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| format!("is not valid TOML ({})", e.message()))?;
    Ok(json(toml::Value::Table(table)))
}

/// A TOML value as JSON, the form wrangler hands `[vars]` to the Worker in.
fn json(v: toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => i.into(),
        toml::Value::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        toml::Value::Boolean(b) => b.into(),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => items.into_iter().map(json).collect(),
        toml::Value::Table(t) => Value::Object(t.into_iter().map(|(k, v)| (k, json(v))).collect()),
    }
}

/// Where `value` still holds a placeholder, as dotted paths (an array's items by its key).
fn placeholders(value: &Value, path: &str) -> Vec<String> {
    match value {
        Value::String(s) if is_placeholder(s) => vec![path.to_string()],
        Value::Array(items) => items.iter().flat_map(|v| placeholders(v, path)).collect(),
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| match path {
                "" => placeholders(v, k),
                _ => placeholders(v, &format!("{path}.{k}")),
            })
            .collect(),
        _ => vec![],
    }
}

/// Checks a wrangler configuration (as JSON): its providers, or the first error.
fn check(config: &Value) -> Result<Vec<ProviderConfig>, ConfigError> {
    for (key, what) in [
        (
            "main",
            "the Worker's entry, build/index.js (made by `make worker`)",
        ),
        ("compatibility_date", "the Workers runtime date, YYYY-MM-DD"),
    ] {
        if config[key].as_str().is_none_or(|s| s.trim().is_empty()) {
            return Err(ConfigError::global(key, format!("is required: {what}")));
        }
    }
    let kv = config["kv_namespaces"]
        .as_array()
        .and_then(|all| all.iter().find(|ns| ns["binding"] == KV_BINDING))
        .ok_or_else(gateway::kv_binding_missing)?;
    let no_vars = Map::new();
    let vars = config["vars"].as_object().unwrap_or(&no_vars);
    if let Some(key) = vars.keys().find(|k| !gateway::VARS.contains(&k.as_str())) {
        return Err(ConfigError::global(
            key,
            format!(
                "is not a variable tokengate reads ({}); secrets are put with `wrangler secret put`, never under [vars]",
                gateway::VARS.join(", ")
            ),
        ));
    }
    // The Worker's order (worker/src/config.rs), so the first error is the Worker's first.
    gateway::log_level(vars.get(LOG_LEVEL_VAR))?;
    let providers = gateway::providers(vars.get(PROVIDERS_VAR))?;
    gateway::max_body_bytes(vars.get(MAX_BODY_VAR))?;
    let kv_id = |message: &str| {
        ConfigError::global(
            "kv_namespaces.id",
            format!("{message} (the id `npx wrangler kv namespace create {KV_BINDING}` prints)"),
        )
    };
    match kv["id"].as_str() {
        Some(id) if is_placeholder(id) => return Err(kv_id(PLACEHOLDER_MESSAGE)),
        Some(id) if !id.trim().is_empty() => {}
        _ => return Err(kv_id("is required")),
    }
    check_minter(config, &providers)?;
    check_mtls(config, &providers)?;
    Ok(providers)
}

/// Each provider's `mtls_certificate` is an `[[mtls_certificates]]` binding of the file, with a
/// `certificate_id` (what `npx wrangler mtls-certificate upload` prints): without it the
/// deployed Worker would refuse to start, with the same message.
fn check_mtls(config: &Value, providers: &[ProviderConfig]) -> Result<(), ConfigError> {
    for p in providers {
        let Some(name) = p.mtls_certificate.as_deref() else {
            continue;
        };
        let entry = config["mtls_certificates"]
            .as_array()
            .and_then(|all| all.iter().find(|c| c["binding"] == name))
            .ok_or_else(|| gateway::mtls_binding_missing(&p.id, name))?;
        let id_error = |message: &str| {
            ConfigError::global(
                "mtls_certificates.certificate_id",
                format!(
                    "{message} (binding {name}: the id `npx wrangler mtls-certificate upload` prints)"
                ),
            )
        };
        match entry["certificate_id"].as_str() {
            Some(id) if is_placeholder(id) => return Err(id_error(PLACEHOLDER_MESSAGE)),
            Some(id) if !id.trim().is_empty() => {}
            _ => return Err(id_error("is required")),
        }
    }
    Ok(())
}

/// The caller authority is always bound (`TOKENGATE_LIMITER` to `CallerAuthority`, declared
/// in a migration); a provider with `coordination = "durable_object"` needs the minter bound
/// and declared too: without it the deployed Worker would mint per isolate (and say so in its
/// log), which is not what the file asks for.
fn check_minter(config: &Value, providers: &[ProviderConfig]) -> Result<(), ConfigError> {
    check_object(
        config,
        LIMITER_BINDING,
        LIMITER_CLASS,
        "the caller authority is required: ",
    )?;
    let Some(p) = providers
        .iter()
        .find(|p| p.coordination == Coordination::DurableObject)
    else {
        return Ok(());
    };
    let asks = format!(
        "provider `{}` has coordination = \"durable_object\": ",
        p.id
    );
    check_object(config, MINTER_BINDING, MINTER_CLASS, &asks)
}

/// `binding` is bound to Durable Object class `class`, which a migration declares.
fn check_object(config: &Value, binding: &str, class: &str, why: &str) -> Result<(), ConfigError> {
    let bound = config["durable_objects"]["bindings"]
        .as_array()
        .is_some_and(|all| {
            all.iter()
                .any(|b| b["name"] == binding && b["class_name"] == class)
        });
    if !bound {
        return Err(ConfigError::global(
            "durable_objects.bindings",
            format!("{why}bind {binding} to class_name = \"{class}\""),
        ));
    }
    let declared = config["migrations"].as_array().is_some_and(|all| {
        all.iter().any(|m| {
            ["new_sqlite_classes", "new_classes"].iter().any(|k| {
                m[*k]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c == class))
            })
        })
    });
    if !declared {
        return Err(ConfigError::global(
            "migrations",
            format!("{why}declare class {class} (new_sqlite_classes = [\"{class}\"])"),
        ));
    }
    Ok(())
}

/// What a valid `file` configures, and a `wrangler secret put` line for each secret it needs.
fn report(file: &str, providers: &[ProviderConfig]) -> String {
    let ids: Vec<&str> = providers.iter().map(|p| p.id.as_str()).collect();
    let config_flag = match file {
        DEFAULT_FILE | "./wrangler.toml" => String::new(),
        other => format!(" --config {other}"),
    };
    // Each mTLS certificate binding with the providers that send through it.
    let mut users: Vec<(&str, Vec<&str>)> = Vec::new();
    for p in providers {
        if let Some(name) = p.mtls_certificate.as_deref() {
            match users.iter_mut().find(|(n, _)| *n == name) {
                Some((_, ids)) => ids.push(&p.id),
                None => users.push((name, vec![&p.id])),
            }
        }
    }
    let certificates: Vec<String> = users
        .iter()
        .map(|(name, ids)| format!("{name} ({})", ids.join(", ")))
        .collect();
    let mtls = match certificates.len() {
        0 => String::new(),
        1 => format!(", mTLS certificate binding {}", certificates[0]),
        _ => format!(", mTLS certificate bindings {}", certificates.join(", ")),
    };
    let mut out = format!(
        "{file}: valid: {} provider{} ({}), KV namespace {KV_BINDING}{mtls}.\n\
         The Worker secrets it needs (each command asks for the value):\n",
        ids.len(),
        if ids.len() == 1 { "" } else { "s" },
        ids.join(", "),
    );
    let lines: Vec<(String, String)> = gateway::required_secrets(providers)
        .into_iter()
        .chain(gateway::optional_secrets())
        .map(|s| {
            (
                format!("npx wrangler secret put {}{config_flag}", s.name),
                s.note,
            )
        })
        .collect();
    let width = lines.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    for (line, note) in lines {
        let _ = writeln!(out, "  {line:width$}  # {note}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(toml: &str) -> Result<String, String> {
        let table: toml::Table = toml.parse().unwrap();
        check(&json(toml::Value::Table(table)))
            .map(|providers| report("w.toml", &providers))
            .map_err(|e| e.to_string())
    }

    const HEAD: &str = "main = \"build/index.js\"\ncompatibility_date = \"2026-12-06\"\n";
    /// The KV namespace and the caller authority every file needs.
    const KV: &str = "[[kv_namespaces]]\nbinding = \"TOKENGATE_KV\"\nid = \"0123abcd\"\n\
        [[durable_objects.bindings]]\nname = \"TOKENGATE_LIMITER\"\nclass_name = \"CallerAuthority\"\n\
        [[migrations]]\ntag = \"v0\"\nnew_sqlite_classes = [\"CallerAuthority\"]\n";
    const PROVIDER: &str = "[vars.TOKENGATE_PROVIDERS.p]\n\
        token_url = \"https://auth.example.com/token\"\n\
        api_base = \"https://api.example.com/\"\n\
        client_id = \"cid\"\nclient_secret_name = \"P_SECRET\"\n";

    #[test]
    fn valid_file_lists_its_secrets() {
        let out = checked(&format!(
            "{HEAD}{KV}[vars]\nmax_body_bytes = 2048\n{PROVIDER}"
        ))
        .unwrap();
        assert!(
            out.starts_with("w.toml: valid: 1 provider (p), KV namespace TOKENGATE_KV."),
            "{out}"
        );
        for name in [
            "TOKENGATE_KEY",
            "TOKENGATE_CLIENTS",
            "P_SECRET",
            "TOKENGATE_ADMIN_TOKEN",
        ] {
            assert!(
                out.contains(&format!("npx wrangler secret put {name} --config w.toml ")),
                "{out}"
            );
        }
    }

    #[test]
    fn each_file_level_error() {
        let cases = [
            (
                format!("compatibility_date = \"2026-12-06\"\n{KV}{PROVIDER}"),
                "main: is required",
            ),
            (
                format!("main = \"build/index.js\"\n{KV}{PROVIDER}"),
                "compatibility_date: is required",
            ),
            (
                format!("{HEAD}{PROVIDER}"),
                "TOKENGATE_KV: KV namespace binding is missing",
            ),
            (
                format!(
                    "{HEAD}{}{PROVIDER}",
                    KV.replace("0123abcd", "<your KV namespace id>")
                ),
                "kv_namespaces.id: still holds a placeholder",
            ),
            (
                format!("{HEAD}{}{PROVIDER}", KV.replace("id = \"0123abcd\"\n", "")),
                "kv_namespaces.id: is required",
            ),
            (
                format!("{HEAD}{KV}[vars]\nlog_levle = \"warn\"\n{PROVIDER}"),
                "log_levle: is not a variable tokengate reads",
            ),
            (
                format!("{HEAD}{KV}[vars]\nP_SECRET = \"s3cret\"\n{PROVIDER}"),
                "P_SECRET: is not a variable",
            ),
            (
                format!("{HEAD}{KV}[vars]\nlog_level = \"debug\"\n{PROVIDER}"),
                "log_level: must be",
            ),
            (
                format!("{HEAD}{KV}[vars]\nmax_body_bytes = 0\n{PROVIDER}"),
                "max_body_bytes: must be",
            ),
            (format!("{HEAD}{KV}"), "TOKENGATE_PROVIDERS: is not set"),
            (
                format!("{HEAD}{}{PROVIDER}", KV.split("[[durable").next().unwrap()),
                "durable_objects.bindings: the caller authority is required: bind TOKENGATE_LIMITER",
            ),
            (
                format!("{HEAD}{}{PROVIDER}", KV.split("[[migrations]]").next().unwrap()),
                "migrations: the caller authority is required: declare class CallerAuthority",
            ),
            (
                format!("{HEAD}{KV}{}", PROVIDER.replace("client_id", "client_idd")),
                "provider `p`: client_id: is required",
            ),
        ];
        for (toml, expected) in cases {
            let e = checked(&toml).unwrap_err();
            assert!(e.starts_with(expected), "{e}\n--- for ---\n{toml}");
            assert!(!e.contains("s3cret"), "{e}");
        }
    }

    /// A provider's `mtls_certificate` is a binding of the file with a certificate id; the
    /// report names it, and a private_key_jwt provider's key and a DPoP key are secrets to put.
    #[test]
    fn mtls_bindings_and_key_secrets() {
        let mt = "[vars.TOKENGATE_PROVIDERS.mt]\ntoken_url = \"https://auth.example.com/token\"\n\
            api_base = \"https://api.example.com/\"\nclient_id = \"cid\"\n\
            auth_style = \"tls_client_auth\"\nmtls_certificate = \"MT_CERT\"\n";
        let pk = "[vars.TOKENGATE_PROVIDERS.pk]\ntoken_url = \"https://auth.example.com/token\"\n\
            api_base = \"https://api.example.com/\"\nclient_id = \"cid\"\n\
            auth_style = \"private_key_jwt\"\nclient_key_name = \"PK_KEY\"\n\
            client_key_alg = \"PS256\"\ndpop = true\ndpop_key_name = \"PK_DPOP\"\n\
            mtls_certificate = \"MT_CERT\"\n";
        let cert = "[[mtls_certificates]]\nbinding = \"MT_CERT\"\ncertificate_id = \"0123-abcd\"\n";
        let out = checked(&format!("{HEAD}{KV}{cert}{mt}{pk}")).unwrap();
        assert!(
            out.starts_with(
                "w.toml: valid: 2 providers (mt, pk), KV namespace TOKENGATE_KV, \
                 mTLS certificate binding MT_CERT (mt, pk)."
            ),
            "{out}"
        );
        for (name, note) in [
            (
                "PK_KEY",
                "the private key (private_key_jwt) of provider `pk`",
            ),
            ("PK_DPOP", "the DPoP key of provider `pk`"),
        ] {
            let line = out
                .lines()
                .find(|l| l.contains(&format!("secret put {name} ")));
            assert!(line.is_some_and(|l| l.ends_with(note)), "{out}");
        }
        let cases = [
            (
                format!("{HEAD}{KV}{mt}"),
                "provider `mt`: mtls_certificate: names the binding `MT_CERT`, which is not bound: \
                 add an [[mtls_certificates]] entry",
            ),
            (
                format!("{HEAD}{KV}{}{mt}", cert.replace("MT_CERT", "OTHER")),
                "provider `mt`: mtls_certificate: names the binding `MT_CERT`",
            ),
            (
                format!("{HEAD}{KV}{}{mt}", cert.replace("0123-abcd", "<your certificate id>")),
                "mtls_certificates.certificate_id: still holds a placeholder",
            ),
            (
                format!("{HEAD}{KV}{}{mt}", cert.replace("certificate_id = \"0123-abcd\"\n", "")),
                "mtls_certificates.certificate_id: is required (binding MT_CERT",
            ),
        ];
        for (toml, expected) in cases {
            let e = checked(&toml).unwrap_err();
            assert!(e.starts_with(expected), "{e}\n--- for ---\n{toml}");
        }
    }

    /// A provider asking for the minter needs its binding and class in the file.
    #[test]
    fn the_minter_is_bound_and_declared() {
        let asks = PROVIDER.to_string() + "coordination = \"durable_object\"\n";
        let bind = "[[durable_objects.bindings]]\nname = \"TOKENGATE_MINTER\"\nclass_name = \"TokenMinter\"\n";
        let migrate = "[[migrations]]\ntag = \"v1\"\nnew_sqlite_classes = [\"TokenMinter\"]\n";
        let cases = [
            (format!("{HEAD}{KV}{asks}"), Some("durable_objects.bindings: provider `p` has coordination = \"durable_object\": bind TOKENGATE_MINTER")),
            (format!("{HEAD}{KV}{bind}{asks}"), Some("migrations: provider `p` has coordination = \"durable_object\": declare class TokenMinter")),
            (format!("{HEAD}{KV}{}{migrate}{asks}", bind.replace("TokenMinter", "Other")), Some("durable_objects.bindings:")),
            (format!("{HEAD}{KV}{bind}{migrate}{asks}"), None),
            // Isolate coordination needs neither.
            (format!("{HEAD}{KV}{PROVIDER}"), None),
        ];
        for (file, want) in cases {
            match (checked(&file), want) {
                (Ok(_), None) => {}
                (Err(e), Some(w)) => assert!(e.starts_with(w), "{e}"),
                (got, want) => panic!("{file}: {got:?}, wanted {want:?}"),
            }
        }
    }
}
