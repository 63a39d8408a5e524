//! The endpoint URL policy of `token_url` and `api_base`: https, or http for loopback hosts
//! only; plain ASCII hosts; no whitespace, controls, credentials or fragment.

use url::Url;

/// Whether `url`'s host is this machine (127.0.0.1, localhost, [::1]): the one place plain
/// http may carry credentials.
pub fn is_loopback(url: &Url) -> bool {
    matches!(
        url.host_str(),
        Some("127.0.0.1") | Some("localhost") | Some("[::1]")
    )
}

/// Validates an endpoint URL: https, or http for loopback hosts only; no credentials, no
/// fragment.
pub fn parse_endpoint(s: &str) -> Result<Url, String> {
    // Host names are plain ASCII (the IDNA tables are left out of the wasm): a percent-encoded
    // or non-ASCII host is refused before the URL parser would try to map it.
    // The URL parser silently drops tabs and newlines and trims spaces and controls: a value
    // holding any is refused rather than read as something other than what it says.
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must not contain whitespace or control characters".into());
    }
    let after_scheme = s.split_once(':').map_or(s, |(_, rest)| rest);
    let authority = after_scheme
        .trim_start_matches(['/', '\\'])
        .split(['/', '\\', '?', '#'])
        .next()
        .unwrap_or("");
    if authority.contains('%') || !authority.is_ascii() {
        return Err(
            "has a host that is not plain ASCII (give an international name in its xn-- form)"
                .into(),
        );
    }
    let url = Url::parse(s).map_err(|e| format!("is not a valid absolute URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err("must use https (http is allowed only for 127.0.0.1 and localhost)".into())
        }
        other => return Err(format!("has unsupported scheme `{other}`")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment".into());
    }
    Ok(url)
}
